//! GetItem — <https://learn.microsoft.com/exchange/client-developer/web-service-reference/getitem-operation-calendar-item>
//!
//! Items by EWS id (the Graph id in standard base64), in any mailbox this request may open,
//! with the fields of the item shape; an unknown id is `ErrorItemNotFound`. A series' master
//! comes with its recurrence and its modified and deleted occurrences; an occurrence id reads
//! that occurrence (or exception), as does `OccurrenceItemId` (the series and a 1-based index);
//! `RecurringMasterItemId` reads the series of an occurrence.

use super::convert::calendar_item;
use super::find_item::shaped;
use super::series::{add_series_fields, graph_item_id};
use super::{schema_fault, Ctx, SoapFault};
use crate::ews_wire::ops::{get_item, Message};
use crate::ews_wire::xml::{Node, XmlWriter};
use crate::state::{event_typed, instance_typed, RenderOpts};

fn not_found() -> Message<Vec<crate::ews_wire::types::Item>> {
    Message::error("ErrorItemNotFound", "The specified object was not found in the store.")
}

pub(crate) fn handle(ctx: &Ctx, body: Node<'_, '_>, w: &mut XmlWriter) -> Result<(), SoapFault> {
    let req = get_item::Request::parse(body).map_err(schema_fault)?;
    let text_body = req.item_shape.body_type.as_deref() == Some("Text");
    let opts = RenderOpts { expand_props: Some(vec![]), ..Default::default() };
    let state = ctx.sim.inner.state.lock().unwrap();
    let messages: get_item::Response = req
        .item_ids
        .iter()
        .map(|r| {
            let gid = match graph_item_id(&state, r) {
                Ok(g) => g,
                Err((code, text)) => return Message::error(code, text),
            };
            let found = state.locate(&gid).map(|(mb, (master, occurrence))| (mb.clone(), master, occurrence));
            let Some((mb, master, occurrence)) = found else { return not_found() };
            if let Err((code, text)) = ctx.check_access(&mb) {
                return Message::error(code, text);
            }
            let Some(ev) = state.event(&mb.key, &master) else { return not_found() };
            let item = match occurrence {
                None => {
                    let mut item = calendar_item(event_typed(ev, &opts), ev.start, ev.end, &mb.calendar_id, text_body);
                    add_series_fields(&mut item, ev);
                    item
                }
                Some(key) => match ev.occurrence(key) {
                    Some(inst) => {
                        calendar_item(instance_typed(&inst, &opts), inst.start, inst.end, &mb.calendar_id, text_body)
                    }
                    None => return not_found(),
                },
            };
            Message::ok(vec![shaped(item, &req.item_shape)])
        })
        .collect();
    // Written without the lock, so that concurrent requests write in parallel.
    drop(state);
    get_item::write_response(w, &messages);
    Ok(())
}
