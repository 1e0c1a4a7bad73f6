//! UpdateItem — <https://learn.microsoft.com/exchange/client-developer/web-service-reference/updateitem-operation>
//!
//! Applies `SetItemField` / `DeleteItemField` to items by EWS id. With `ConflictResolution`
//! `NeverOverwrite` or `AutoResolve`, a `ChangeKey` that is not the item's current one fails
//! with `ErrorIrresolvableConflict`; `AlwaysOverwrite` applies regardless. When the time or
//! the attendees change and `SendMeetingInvitationsOrCancellations` is not `SendToNone`,
//! attendees' copies follow and rooms decide again.

use chrono::Utc;
use serde_json::{Map, Value};

use super::convert::{calendar_item, ews_id, graph_event, graph_id};
use super::{schema_fault, Ctx, SoapFault};
use crate::booking;
use crate::ews_wire::ops::update_item::{self, FieldUpdate};
use crate::ews_wire::ops::Message;
use crate::ews_wire::types::{Item, ItemId, ItemRef, PropertyPath};
use crate::ews_wire::xml::{Node, XmlWriter};
use crate::state::{render_event, RenderOpts};

/// The Graph properties an EWS update may change.
const PATCHED: &[&str] = &[
    "subject",
    "body",
    "start",
    "end",
    "isAllDay",
    "showAs",
    "sensitivity",
    "location",
    "attendees",
    "categories",
    "singleValueExtendedProperties",
];

fn apply(current: &mut Item, updates: &[FieldUpdate]) -> Result<(), (&'static str, String)> {
    for u in updates {
        match (u, u.path()) {
            (FieldUpdate::Set { item, .. } | FieldUpdate::Append { item, .. }, PropertyPath::Field(uri)) => {
                // Fields the simulator does not model (item:InReplyTo, item:Culture of a
                // reply, …) are accepted and not kept, as clients send every field they know.
                if !current.set_field(uri, item) {
                    tracing::debug!("UpdateItem: {uri} is not kept by the simulator");
                }
            }
            (FieldUpdate::Set { item, .. }, PropertyPath::Extended(uri)) => {
                current.extended_properties.retain(|p| !p.uri.same_property(uri));
                current
                    .extended_properties
                    .extend(item.extended_properties.iter().filter(|p| p.uri.same_property(uri)).cloned());
            }
            (FieldUpdate::Delete { .. }, PropertyPath::Field(uri)) => {
                if matches!(uri.as_str(), "item:Subject" | "calendar:Start" | "calendar:End" | "item:ItemClass") {
                    return Err(("ErrorInvalidPropertyDelete", format!("The property {uri} cannot be deleted.")));
                }
                current.clear_field(uri);
            }
            (FieldUpdate::Delete { .. }, PropertyPath::Extended(uri)) => {
                current.extended_properties.retain(|p| !p.uri.same_property(uri));
            }
            (_, other) => return Err(("ErrorInvalidPropertySet", format!("The simulator cannot update {other:?}."))),
        }
    }
    Ok(())
}

pub(crate) fn handle(ctx: &Ctx, body: Node<'_, '_>, w: &mut XmlWriter) -> Result<(), SoapFault> {
    let req = update_item::Request::parse(body).map_err(schema_fault)?;
    let invite = req.send_meeting_invitations_or_cancellations.as_deref().is_some_and(|s| s != "SendToNone");
    let opts = RenderOpts { expand_props: Some(vec![]), ..Default::default() };
    let now = Utc::now();
    let mut messages: update_item::Response = Vec::new();
    let mut state = ctx.sim.inner.state.lock().unwrap();
    for change in &req.item_changes {
        let ItemRef::Item(id) = &change.item_id else {
            messages
                .push(Message::error("ErrorInvalidIdMalformed", "Id is malformed: the simulator reads ItemId only."));
            continue;
        };
        let gid = graph_id(&id.id);
        let Some(mb) = state.mailboxes.iter().find(|m| state.event(&m.key, &gid).is_some()).cloned() else {
            messages.push(Message::error("ErrorItemNotFound", "The specified object was not found in the store."));
            continue;
        };
        if let Err((code, text)) = ctx.check_access(&mb) {
            messages.push(Message::error(code, text));
            continue;
        }
        let stored = state.event(&mb.key, &gid).expect("found above").clone();
        let check = req.conflict_resolution != "AlwaysOverwrite";
        if check && id.change_key.is_some() && id.change_key != stored.event.change_key {
            messages.push(Message::error(
                "ErrorIrresolvableConflict",
                "The send or update operation could not be performed because the change key passed in the request does not match the current change key for the item.",
            ));
            continue;
        }
        let mut current =
            calendar_item(&render_event(&stored, &opts), stored.start, stored.end, &mb.calendar_id, false);
        if let Err((code, text)) = apply(&mut current, &change.updates) {
            messages.push(Message::error(code, text));
            continue;
        }
        let patch = match graph_event(&current).map(|e| serde_json::to_value(e).unwrap_or_default()) {
            Ok(Value::Object(all)) => {
                all.into_iter().filter(|(k, _)| PATCHED.contains(&k.as_str())).collect::<Map<_, _>>()
            }
            Ok(_) => Map::new(),
            Err((code, text)) => {
                messages.push(Message::error(code, text));
                continue;
            }
        };
        match state.update_event(&mb.key, &gid, &patch, None, now) {
            Ok((master, reprocess)) => {
                if stored.origin.is_none() && invite {
                    booking::sync_meeting(&mut state, &mb.key, &master, reprocess, now);
                }
                let ck = state.event(&mb.key, &master).and_then(|e| e.event.change_key.clone());
                messages.push(Message::ok(vec![Item {
                    item_id: Some(ItemId::new(ews_id(&master), ck)),
                    ..Item::calendar()
                }]));
            }
            Err(e) => messages.push(Message::error("ErrorInvalidRequest", e.message)),
        }
    }
    drop(state);
    update_item::write_response(w, &messages);
    Ok(())
}
