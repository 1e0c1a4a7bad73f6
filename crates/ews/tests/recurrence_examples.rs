//! Every recurrence in Microsoft's EWS examples (CreateItem, GetItem, UpdateItem) reads as a
//! calbridge rule, with the values the example gives and the occurrences it describes.

use chrono::{NaiveDate, Weekday};

use calbridge_core::recurrence::{Pattern, Range};
use calbridge_ews::recurrence::from_wire;
use calbridge_ews::testing::{ews_dir, examples, fix_soap_namespace};
use calbridge_ews::wire::types::Item;
use calbridge_ews::wire::xml::{parse, Limits, NS_TYPES};

fn d(y: i32, m: u32, day: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, m, day).unwrap()
}

#[test]
fn documented_recurrences_read_with_their_values() {
    let Some(ews) = ews_dir("documented_recurrences_read_with_their_values") else { return };
    let mut read = Vec::new();
    for (op, kind) in [("CreateItem", "request"), ("GetItem", "response"), ("UpdateItem", "request")] {
        for (name, xml) in examples(&ews, op, kind) {
            if !xml.contains("Recurrence>") {
                continue;
            }
            let xml = fix_soap_namespace(&xml);
            let doc = parse(&xml, Limits::default()).unwrap();
            for node in doc.descendants().filter(|n| {
                n.is_element() && n.tag_name().namespace() == Some(NS_TYPES) && n.tag_name().name() == "CalendarItem"
            }) {
                let item = Item::parse(node).unwrap_or_else(|e| panic!("{name}: {e}"));
                if let Some(r) = &item.recurrence {
                    let rule = from_wire(r).unwrap_or_else(|e| panic!("{name}: {e}"));
                    read.push((name.clone(), item.subject.clone(), rule));
                }
            }
        }
    }
    assert!(read.len() >= 4, "the examples hold recurring items: {read:?}");
    // "How to create a recurring series": ten Saturdays from 8 March 2014.
    let (_, _, weekly) =
        read.iter().find(|(n, _, _)| n.contains("GetItem") || n.contains("05-response")).expect("the GetItem example");
    assert_eq!(
        weekly.pattern,
        Pattern::Weekly { interval: 1, days: vec![Weekday::Sat], first_day_of_week: Weekday::Sun }
    );
    assert_eq!((weekly.start_date, weekly.range), (d(2014, 3, 8), Range::Numbered { count: 10 }));
    let dates = weekly.dates(d(2015, 1, 1), 100);
    assert_eq!((dates.len(), dates[0], dates[9]), (10, d(2014, 3, 8), d(2014, 5, 10)));
    // "How to update a recurring series": Tuesdays until 22 June 2014 (an xs:date with an offset).
    let (_, _, update) =
        read.iter().find(|(n, _, _)| n.contains("update-a-recurring-series")).expect("the UpdateItem example");
    assert_eq!(update.range, Range::EndDate { end_date: d(2014, 6, 22) });
    assert_eq!(update.dates(d(2015, 1, 1), 100).last(), Some(&d(2014, 6, 17)));
}
