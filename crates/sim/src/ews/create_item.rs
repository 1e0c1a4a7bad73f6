//! CreateItem — <https://learn.microsoft.com/exchange/client-developer/web-service-reference/createitem-operation-calendar-item>
//!
//! Creates calendar items in the folder named by `SavedItemFolderId` (else the acting
//! mailbox's calendar), as their organizer. With attendees and `SendMeetingInvitations`
//! other than `SendToNone`, invitations go out: attendees get copies and rooms and equipment
//! decide by their booking rules, as over Graph. A `t:Recurrence` makes a series (kept as
//! Graph's `patternedRecurrence`, see `series.rs`). A `t:DeclineItem` answers a meeting
//! instead (`decline_item.rs`).

use chrono::Utc;

use super::convert::{ews_id, graph_event};
use super::{schema_fault, Ctx, SoapFault};
use crate::booking;
use crate::ews_wire::ops::{create_item, decline_item, Message};
use crate::ews_wire::types::{FolderRef, Item, ItemId};
use crate::ews_wire::xml::{Node, XmlWriter};

pub(crate) fn handle(ctx: &Ctx, body: Node<'_, '_>, w: &mut XmlWriter) -> Result<(), SoapFault> {
    if let Some(decline) = decline_item::Request::parse(body).map_err(schema_fault)? {
        super::decline_item::handle(ctx, &decline, w);
        return Ok(());
    }
    let req = create_item::Request::parse(body).map_err(schema_fault)?;
    let is_calendar = req.items.iter().any(Item::is_calendar_item);
    if is_calendar && req.send_meeting_invitations.is_none() {
        return Err(SoapFault {
            code: "ErrorSendMeetingInvitationsRequired",
            message: "The SendMeetingInvitations attribute is required for calendar items.".into(),
        });
    }
    let invite = req.send_meeting_invitations.as_deref().is_some_and(|s| s != "SendToNone");
    let folder = req.saved_item_folder_id.clone().unwrap_or_else(|| FolderRef::calendar(None));
    let mut messages: create_item::Response = Vec::new();
    for item in &req.items {
        let mb = match ctx.mailbox_for(&folder) {
            Ok(mb) => mb,
            Err((code, text)) => {
                messages.push(Message::error(code, text));
                continue;
            }
        };
        if !item.is_calendar_item() {
            messages.push(Message::error(
                "ErrorInvalidRequest",
                format!("The simulator creates calendar items only, not {}.", item.element),
            ));
            continue;
        }
        let event = match graph_event(item) {
            Ok(e) => e,
            Err((code, text)) => {
                messages.push(Message::error(code, text));
                continue;
            }
        };
        let now = Utc::now();
        let mut state = ctx.sim.inner.state.lock().unwrap();
        let has_attendees = event.attendees.as_ref().is_some_and(|a| !a.is_empty());
        match state.create_event(&mb.key, event, now) {
            Ok((id, created)) => {
                // The change key of the item as saved: resources answer afterwards (Exchange's
                // booking attendant works asynchronously), which changes it again.
                let ck = state.event(&mb.key, &id).and_then(|e| e.event.change_key.clone());
                if created && has_attendees && invite {
                    booking::sync_meeting(&mut state, &mb.key, &id, true, now);
                }
                messages
                    .push(Message::ok(vec![Item { item_id: Some(ItemId::new(ews_id(&id), ck)), ..Item::calendar() }]));
            }
            Err(e) => messages.push(Message::error("ErrorInvalidRequest", e.message)),
        }
    }
    create_item::write_response(w, &messages);
    Ok(())
}
