//! DeleteItem — <https://learn.microsoft.com/exchange/client-developer/web-service-reference/deleteitem-operation>
//!
//! Deletes items (or cancels one occurrence, by its id or by `OccurrenceItemId`) in a mailbox
//! this request may open.
//! `SendMeetingCancellations` is required for calendar items; an organizer's meeting that
//! is deleted is removed from its attendees' and resources' calendars.

use chrono::Utc;

use super::series::graph_item_id;
use super::{schema_fault, Ctx, SoapFault};
use crate::booking;
use crate::ews_wire::ops::{delete_item, Message};
use crate::ews_wire::xml::{Node, XmlWriter};

pub(crate) fn handle(ctx: &Ctx, body: Node<'_, '_>, w: &mut XmlWriter) -> Result<(), SoapFault> {
    let req = delete_item::Request::parse(body).map_err(schema_fault)?;
    let mut messages: delete_item::Response = Vec::new();
    let now = Utc::now();
    let mut state = ctx.sim.inner.state.lock().unwrap();
    for r in &req.item_ids {
        let gid = match graph_item_id(&state, r) {
            Ok(g) => g,
            Err((code, text)) => {
                messages.push(Message::error(code, text));
                continue;
            }
        };
        let Some(mb) = state.locate(&gid).map(|(m, _)| m.clone()) else {
            messages.push(Message::error("ErrorItemNotFound", "The specified object was not found in the store."));
            continue;
        };
        if let Err((code, text)) = ctx.check_access(&mb) {
            messages.push(Message::error(code, text));
            continue;
        }
        if req.send_meeting_cancellations.is_none() {
            messages.push(Message::error(
                "ErrorSendMeetingCancellationsRequired",
                "The SendMeetingCancellations attribute is required for calendar items.",
            ));
            continue;
        }
        let was_copy = state
            .resolve_id(&mb.key, &gid)
            .and_then(|(m, _)| state.event(&mb.key, &m))
            .is_some_and(|e| e.origin.is_some());
        match state.delete_event(&mb.key, &gid, None, now) {
            Ok((master, _)) => {
                if !was_copy {
                    booking::sync_meeting(&mut state, &mb.key, &master, false, now);
                }
                messages.push(Message::ok(()));
            }
            Err(e) => messages.push(Message::error("ErrorItemNotFound", e.message)),
        }
    }
    drop(state);
    delete_item::write_response(w, &messages);
    Ok(())
}
