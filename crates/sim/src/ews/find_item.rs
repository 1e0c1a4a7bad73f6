//! FindItem — <https://learn.microsoft.com/exchange/client-developer/web-service-reference/finditem-operation>
//!
//! A `CalendarView` lists the instances (single items, occurrences, exceptions) overlapping
//! `[StartDate, EndDate)`, sorted by start, at most `MaxEntriesReturned` (then
//! `IncludesLastItemInRange="false"`); an `IndexedPageItemView` (or none) pages through
//! the folder's items (singles and series masters) by offset. The shape picks the fields.

use super::convert::calendar_item;
use super::series::add_series_fields;
use super::{schema_fault, Ctx, SoapFault};
use crate::ews_wire::ops::find_item::{self, RootFolder, View};
use crate::ews_wire::ops::Message;
use crate::ews_wire::types::{Item, PropertyPath, Shape};
use crate::ews_wire::xml::{Node, XmlWriter};
use crate::state::{event_typed, instance_typed, RenderOpts};

/// The fields an item shape selects (`None`: every field).
pub(crate) fn selected(shape: &Shape) -> Option<Vec<String>> {
    let extra = shape.additional_properties.iter().filter_map(|p| match p {
        PropertyPath::Field(u) => Some(u.clone()),
        _ => None,
    });
    match shape.base_shape.as_str() {
        "AllProperties" => None,
        "Default" => Some(
            [
                "item:Subject",
                "calendar:Start",
                "calendar:End",
                "calendar:Location",
                "calendar:CalendarItemType",
                "calendar:Organizer",
                "calendar:IsRecurring",
                "calendar:LegacyFreeBusyStatus",
                "item:HasAttachments",
                "item:Sensitivity",
                "calendar:IsMeeting",
                "calendar:IsCancelled",
                "calendar:MyResponseType",
            ]
            .iter()
            .map(|s| s.to_string())
            .chain(extra)
            .collect(),
        ),
        _ => Some(extra.collect()),
    }
}

/// `item` reduced to the shape: the id always, the selected fields, the asked-for extended
/// properties.
pub(crate) fn shaped(item: Item, shape: &Shape) -> Item {
    let wanted: Vec<_> = shape
        .additional_properties
        .iter()
        .filter_map(|p| match p {
            PropertyPath::Extended(x) => Some(x.clone()),
            _ => None,
        })
        .collect();
    let mut out = match selected(shape) {
        None => item.clone(),
        Some(fields) => {
            let refs: Vec<&str> = fields.iter().map(String::as_str).collect();
            item.project(&refs, true)
        }
    };
    out.extended_properties =
        item.extended_properties.into_iter().filter(|p| wanted.iter().any(|w| w.same_property(&p.uri))).collect();
    out
}

fn parse_time(what: &str, s: &str) -> Result<chrono::DateTime<chrono::Utc>, SoapFault> {
    chrono::DateTime::parse_from_rfc3339(s.trim())
        .map(|t| t.with_timezone(&chrono::Utc))
        .or_else(|_| chrono::NaiveDateTime::parse_from_str(s.trim(), "%Y-%m-%dT%H:%M:%S").map(|n| n.and_utc()))
        .map_err(|_| SoapFault {
            code: "ErrorSchemaValidation",
            message: format!("The request failed schema validation: {what} {s:?} is not an xs:dateTime."),
        })
}

pub(crate) fn handle(ctx: &Ctx, body: Node<'_, '_>, w: &mut XmlWriter) -> Result<(), SoapFault> {
    let req = find_item::Request::parse(body).map_err(schema_fault)?;
    let text_body = req.item_shape.body_type.as_deref() == Some("Text");
    let mut messages: find_item::Response = Vec::new();
    for folder in &req.parent_folder_ids {
        let mb = match ctx.mailbox_for(folder) {
            Ok(mb) => mb,
            Err((code, text)) => {
                messages.push(Message::error(code, text));
                continue;
            }
        };
        let state = ctx.sim.inner.state.lock().unwrap();
        let opts = RenderOpts { expand_props: Some(vec![]), ..Default::default() };
        let root = match &req.view {
            Some(View::Calendar { start_date, end_date, max_entries_returned }) => {
                let (from, to) = (parse_time("StartDate", start_date)?, parse_time("EndDate", end_date)?);
                let all = state.instances(&mb.key, from, to);
                let max = max_entries_returned.map(|m| m as usize).unwrap_or(usize::MAX);
                let items: Vec<Item> = all
                    .iter()
                    .take(max)
                    .map(|i| {
                        shaped(
                            calendar_item(instance_typed(i, &opts), i.start, i.end, &mb.calendar_id, text_body),
                            &req.item_shape,
                        )
                    })
                    .collect();
                RootFolder {
                    total_items_in_view: all.len() as u32,
                    includes_last_item_in_range: all.len() <= max,
                    indexed_paging_offset: None,
                    items,
                }
            }
            other => {
                let (max, offset) = match other {
                    Some(View::IndexedPage { max_entries_returned, offset, .. }) => {
                        (max_entries_returned.map(|m| m as usize).unwrap_or(usize::MAX), *offset as usize)
                    }
                    _ => (usize::MAX, 0),
                };
                let events: Vec<_> = state.events.get(&mb.key).map(|m| m.values().collect()).unwrap_or_default();
                let page: Vec<Item> = events
                    .iter()
                    .skip(offset)
                    .take(max)
                    .map(|e| {
                        let mut item = calendar_item(event_typed(e, &opts), e.start, e.end, &mb.calendar_id, text_body);
                        add_series_fields(&mut item, e);
                        shaped(item, &req.item_shape)
                    })
                    .collect();
                let next = offset + page.len();
                RootFolder {
                    total_items_in_view: events.len() as u32,
                    includes_last_item_in_range: next >= events.len(),
                    indexed_paging_offset: Some(next as u32),
                    items: page,
                }
            }
        };
        messages.push(Message::ok(root));
    }
    find_item::write_response(w, &messages);
    Ok(())
}
