//! Recurring series on the EWS face: a master's `t:Recurrence` (Graph's
//! `patternedRecurrence` in EWS's shape), `t:FirstOccurrence`, `t:LastOccurrence` (bounded
//! series only), `t:ModifiedOccurrences` (the exceptions, with their own ids) and
//! `t:DeletedOccurrences` (the original starts of cancelled occurrences); item references to
//! occurrences by index (`t:OccurrenceItemId`) and to the series of an occurrence
//! (`t:RecurringMasterItemId`). CalendarView expansion itself is the shared state's
//! (`StoredEvent::instances`).

use chrono::{DateTime, Duration, Utc};

use super::convert::{ews_id, ews_time, graph_id};
use crate::ews_wire::types::{Item, ItemId, ItemRef, OccurrenceInfo, Recurrence, RecurrencePattern, RecurrenceRange};
use crate::ids;
use crate::state::{State, StoredEvent};
use crate::wire::PatternedRecurrence;

fn title(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_ascii_uppercase().to_string() + c.as_str(),
        None => String::new(),
    }
}

const MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];

fn month(m: Option<i32>) -> String {
    MONTHS[(m.unwrap_or(1).clamp(1, 12) - 1) as usize].to_string()
}

/// Graph's recurrence in EWS's terms (`None` when it has no pattern).
pub(crate) fn recurrence(rec: &PatternedRecurrence, series_start: &str) -> Option<Recurrence> {
    let p = rec.pattern.as_ref()?;
    let interval = p.interval.unwrap_or(1).max(1) as u32;
    let days: Vec<String> = p.days_of_week.iter().flatten().map(|d| title(d)).collect();
    let first_day = || days.first().cloned().unwrap_or_else(|| "Monday".into());
    let index = || title(p.index.as_deref().unwrap_or("first"));
    let pattern = match p.kind.as_deref().unwrap_or("daily") {
        "weekly" => RecurrencePattern::Weekly {
            interval,
            days_of_week: days.join(" "),
            first_day_of_week: p.first_day_of_week.as_deref().map(title),
        },
        "absoluteMonthly" => {
            RecurrencePattern::AbsoluteMonthly { interval, day_of_month: p.day_of_month.unwrap_or(1).max(1) as u32 }
        }
        "relativeMonthly" => {
            RecurrencePattern::RelativeMonthly { interval, days_of_week: first_day(), day_of_week_index: index() }
        }
        "absoluteYearly" => RecurrencePattern::AbsoluteYearly {
            day_of_month: p.day_of_month.unwrap_or(1).max(1) as u32,
            month: month(p.month),
        },
        "relativeYearly" => RecurrencePattern::RelativeYearly {
            days_of_week: first_day(),
            day_of_week_index: index(),
            month: month(p.month),
        },
        _ => RecurrencePattern::Daily { interval },
    };
    let r = rec.range.clone().unwrap_or_default();
    let start_date = r.start_date.clone().unwrap_or_else(|| series_start.to_string());
    let range = match r.kind.as_deref().unwrap_or("noEnd") {
        "endDate" => RecurrenceRange::EndDate { start_date, end_date: r.end_date.clone().unwrap_or_default() },
        "numbered" => RecurrenceRange::Numbered {
            start_date,
            number_of_occurrences: r.number_of_occurrences.unwrap_or(1).max(1) as u32,
        },
        _ => RecurrenceRange::NoEnd { start_date },
    };
    Some(Recurrence { pattern, range })
}

fn occurrence(master: &str, key: i64, start: DateTime<Utc>, end: DateTime<Utc>, ck: Option<String>) -> OccurrenceInfo {
    OccurrenceInfo {
        item_id: ItemId::new(ews_id(&ids::occurrence_id(master, key)), ck),
        start: ews_time(start),
        end: ews_time(end),
        original_start: DateTime::from_timestamp(key, 0).map(ews_time).unwrap_or_default(),
    }
}

/// Adds the series fields of a master to its EWS item (nothing for single items).
pub(crate) fn add_series_fields(item: &mut Item, ev: &StoredEvent) {
    let Some(rec) = ev.event.recurrence.as_ref() else { return };
    item.recurrence = recurrence(rec, &ev.start.format("%Y-%m-%d").to_string());
    let master = ev.id();
    let ck = ev.event.change_key.clone();
    let bounded = rec.range.as_ref().and_then(|r| r.kind.as_deref()).is_some_and(|k| k == "endDate" || k == "numbered");
    let horizon = if bounded { Duration::days(20 * 366) } else { Duration::days(400) };
    let all = ev.instances(ev.start - Duration::days(1), ev.start + horizon);
    let info = |i: &crate::state::Instance<'_>| {
        let key = i.original_start.map(|o| o.timestamp()).unwrap_or(i.start.timestamp());
        occurrence(master, key, i.start, i.end, ck.clone())
    };
    item.first_occurrence = all.first().map(info);
    item.last_occurrence = if bounded { all.last().map(info) } else { None };
    let modified: Vec<OccurrenceInfo> = ev
        .exceptions
        .iter()
        .map(|(key, x)| occurrence(master, *key, x.start, x.end, x.event.change_key.clone()))
        .collect();
    item.modified_occurrences = (!modified.is_empty()).then_some(modified);
    let deleted: Vec<String> =
        ev.cancelled.iter().filter_map(|k| DateTime::from_timestamp(*k, 0)).map(ews_time).collect();
    item.deleted_occurrences = (!deleted.is_empty()).then_some(deleted);
}

/// The Graph id an item reference names: an item's (single, master, occurrence or exception),
/// the `InstanceIndex`-th occurrence of a series (`t:OccurrenceItemId`), or the series of an
/// occurrence (`t:RecurringMasterItemId`).
pub(crate) fn graph_item_id(state: &State, r: &ItemRef) -> Result<String, super::ItemError> {
    let not_found = || ("ErrorItemNotFound", "The specified object was not found in the store.".to_string());
    match r {
        ItemRef::Item(id) => Ok(graph_id(&id.id)),
        ItemRef::RecurringMaster { occurrence_id, .. } => {
            let gid = graph_id(occurrence_id);
            Ok(ids::parse_occurrence_id(&gid).map(|(master, _)| master).unwrap_or(gid))
        }
        ItemRef::Occurrence { recurring_master_id, instance_index, .. } => {
            let master = graph_id(recurring_master_id);
            let (mb, _) = state.locate(&master).ok_or_else(not_found)?;
            let ev = state.event(&mb.key, &master).ok_or_else(not_found)?;
            Ok(ids::occurrence_id(&master, nth_occurrence(ev, *instance_index)?))
        }
    }
}

/// The original start (Unix seconds) of the `index`-th occurrence (1-based) of a series,
/// counting cancelled occurrences, as `OccurrenceItemId/@InstanceIndex` does.
pub(crate) fn nth_occurrence(ev: &StoredEvent, index: u32) -> Result<i64, super::ItemError> {
    let out_of_range = || {
        (
            "ErrorCalendarOccurrenceIndexIsOutOfRecurrenceRange",
            "Occurrence index is out of recurrence range.".to_string(),
        )
    };
    if ev.event.recurrence.is_none() || index == 0 {
        return Err(out_of_range());
    }
    let span = Duration::days(20 * 366);
    let mut keys: Vec<i64> = ev
        .instances(ev.start - Duration::days(1), ev.start + span)
        .iter()
        .filter_map(|i| i.original_start.map(|o| o.timestamp()))
        .chain(ev.cancelled.iter().copied())
        .collect();
    keys.sort_unstable();
    keys.dedup();
    let key = *keys.get(index as usize - 1).ok_or_else(out_of_range)?;
    if ev.cancelled.contains(&key) {
        return Err((
            "ErrorCalendarOccurrenceIsDeletedFromRecurrence",
            "Occurrence with this index was previously deleted from the recurrence.".into(),
        ));
    }
    Ok(key)
}

fn month_number(name: &str) -> i32 {
    MONTHS.iter().position(|m| m.eq_ignore_ascii_case(name)).map(|i| i as i32 + 1).unwrap_or(1)
}

/// `Day`, `Weekday`, `WeekendDay` or a day name → Graph's days of week.
fn days(list: &str) -> Vec<String> {
    const WEEK: [&str; 7] = ["sunday", "monday", "tuesday", "wednesday", "thursday", "friday", "saturday"];
    list.split_whitespace()
        .flat_map(|d| match d {
            "Day" => WEEK.to_vec(),
            "Weekday" => WEEK[1..6].to_vec(),
            "WeekendDay" => vec![WEEK[0], WEEK[6]],
            other => WEEK.iter().copied().filter(|w| w.eq_ignore_ascii_case(other)).collect(),
        })
        .map(str::to_string)
        .collect()
}

/// An EWS `t:Recurrence` as Graph's `patternedRecurrence` (what the shared state keeps);
/// `zone` is the series' Windows zone.
pub(crate) fn graph_recurrence(r: &Recurrence, zone: Option<&str>) -> serde_json::Value {
    use serde_json::json;
    let lower = |s: &str| s.to_ascii_lowercase();
    let pattern = match &r.pattern {
        RecurrencePattern::Daily { interval } => json!({"type": "daily", "interval": interval}),
        RecurrencePattern::Weekly { interval, days_of_week, first_day_of_week } => json!({
            "type": "weekly", "interval": interval, "daysOfWeek": days(days_of_week),
            "firstDayOfWeek": lower(first_day_of_week.as_deref().unwrap_or("Sunday")),
        }),
        RecurrencePattern::AbsoluteMonthly { interval, day_of_month } => {
            json!({"type": "absoluteMonthly", "interval": interval, "dayOfMonth": day_of_month})
        }
        RecurrencePattern::RelativeMonthly { interval, days_of_week, day_of_week_index } => json!({
            "type": "relativeMonthly", "interval": interval, "daysOfWeek": days(days_of_week),
            "index": lower(day_of_week_index),
        }),
        RecurrencePattern::AbsoluteYearly { day_of_month, month } => {
            json!({"type": "absoluteYearly", "interval": 1, "dayOfMonth": day_of_month, "month": month_number(month)})
        }
        RecurrencePattern::RelativeYearly { days_of_week, day_of_week_index, month } => json!({
            "type": "relativeYearly", "interval": 1, "daysOfWeek": days(days_of_week),
            "index": lower(day_of_week_index), "month": month_number(month),
        }),
    };
    // xs:date may carry an offset (`2026-12-07+01:00`, `2026-12-07Z`): the date is what counts.
    let date = |s: &str| s.trim().get(..10).unwrap_or(s.trim()).to_string();
    let mut range = match &r.range {
        RecurrenceRange::NoEnd { start_date } => json!({"type": "noEnd", "startDate": date(start_date)}),
        RecurrenceRange::EndDate { start_date, end_date } => {
            json!({"type": "endDate", "startDate": date(start_date), "endDate": date(end_date)})
        }
        RecurrenceRange::Numbered { start_date, number_of_occurrences } => {
            json!({"type": "numbered", "startDate": date(start_date), "numberOfOccurrences": number_of_occurrences})
        }
    };
    if let Some(z) = zone {
        range["recurrenceTimeZone"] = json!(z);
    }
    json!({"pattern": pattern, "range": range})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recurrences_convert_both_ways() {
        let ews = Recurrence {
            pattern: RecurrencePattern::Weekly {
                interval: 2,
                days_of_week: "Monday Wednesday".into(),
                first_day_of_week: Some("Monday".into()),
            },
            range: RecurrenceRange::Numbered { start_date: "2026-12-07+01:00".into(), number_of_occurrences: 6 },
        };
        let graph: PatternedRecurrence =
            serde_json::from_value(graph_recurrence(&ews, Some("W. Europe Standard Time"))).unwrap();
        assert_eq!(graph.pattern.as_ref().unwrap().days_of_week.as_ref().unwrap(), &["monday", "wednesday"]);
        assert_eq!(graph.range.as_ref().unwrap().start_date.as_deref(), Some("2026-12-07"));
        let back = recurrence(&graph, "2026-12-07").unwrap();
        assert_eq!(back.pattern, ews.pattern);
        assert_eq!(back.range, RecurrenceRange::Numbered { start_date: "2026-12-07".into(), number_of_occurrences: 6 });

        let yearly = Recurrence {
            pattern: RecurrencePattern::RelativeYearly {
                days_of_week: "Weekday".into(),
                day_of_week_index: "Last".into(),
                month: "March".into(),
            },
            range: RecurrenceRange::NoEnd { start_date: "2027-03-31".into() },
        };
        let graph: PatternedRecurrence = serde_json::from_value(graph_recurrence(&yearly, None)).unwrap();
        let p = graph.pattern.as_ref().unwrap();
        assert_eq!(
            (p.month, p.index.as_deref(), p.days_of_week.as_ref().map(Vec::len)),
            (Some(3), Some("last"), Some(5))
        );
    }
}
