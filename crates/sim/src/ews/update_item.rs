//! UpdateItem — <https://learn.microsoft.com/exchange/client-developer/web-service-reference/updateitem-operation>
//!
//! Applies `SetItemField` / `DeleteItemField` to items by EWS id (an occurrence, by its id or
//! by `OccurrenceItemId`, becomes an exception of its series). With `ConflictResolution`
//! `NeverOverwrite`, a `ChangeKey` that is not the item's current one fails with
//! `ErrorIrresolvableConflict`; `AutoResolve` merges as Exchange does for changes to other
//! fields (a room's answer to the meeting, say) — the simulator applies the request's fields
//! over the current item; `AlwaysOverwrite` applies regardless. When the time or
//! the attendees change and `SendMeetingInvitationsOrCancellations` is not `SendToNone`,
//! attendees' copies follow and rooms decide again.

use chrono::Utc;
use serde_json::{Map, Value};

use super::convert::{calendar_item, ews_id, graph_event};
use super::series::graph_item_id;
use super::{schema_fault, Ctx, SoapFault};
use crate::booking;
use crate::ews_wire::ops::update_item::{self, FieldUpdate};
use crate::ews_wire::ops::Message;
use crate::ews_wire::types::{Item, ItemId, ItemRef, PropertyPath};
use crate::ews_wire::xml::{Node, XmlWriter};
use crate::state::{event_typed, instance_typed, RenderOpts};

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
        let gid = match graph_item_id(&state, &change.item_id) {
            Ok(g) => g,
            Err((code, text)) => {
                messages.push(Message::error(code, text));
                continue;
            }
        };
        let change_key = match &change.item_id {
            ItemRef::Item(id) => id.change_key.clone(),
            ItemRef::Occurrence { change_key, .. } | ItemRef::RecurringMaster { change_key, .. } => change_key.clone(),
        };
        let found = state.locate(&gid).map(|(m, r)| (m.clone(), r));
        let Some((mb, (master_id, occurrence))) = found else {
            messages.push(Message::error("ErrorItemNotFound", "The specified object was not found in the store."));
            continue;
        };
        if let Err((code, text)) = ctx.check_access(&mb) {
            messages.push(Message::error(code, text));
            continue;
        }
        let stored = state.event(&mb.key, &master_id).expect("resolved above").clone();
        // An occurrence's change key is its exception's, else the series'.
        let exception_ck = |key: i64| stored.exceptions.get(&key).and_then(|x| x.event.change_key.clone());
        let current_ck = occurrence.and_then(exception_ck).or_else(|| stored.event.change_key.clone());
        let check = req.conflict_resolution == "NeverOverwrite";
        if check && change_key.is_some() && change_key != current_ck {
            messages.push(Message::error(
                "ErrorIrresolvableConflict",
                "The send or update operation could not be performed because the change key passed in the request does not match the current change key for the item.",
            ));
            continue;
        }
        let current = match occurrence {
            None => Some(calendar_item(event_typed(&stored, &opts), stored.start, stored.end, &mb.calendar_id, false)),
            Some(key) => stored
                .occurrence(key)
                .map(|i| calendar_item(instance_typed(&i, &opts), i.start, i.end, &mb.calendar_id, false)),
        };
        let Some(mut current) = current else {
            messages.push(Message::error("ErrorItemNotFound", "The specified object was not found in the store."));
            continue;
        };
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
                let ev = state.event(&mb.key, &master);
                let (id, ck) = match occurrence {
                    None => (master.clone(), ev.and_then(|e| e.event.change_key.clone())),
                    Some(key) => {
                        (gid.clone(), ev.and_then(|e| e.exceptions.get(&key)).and_then(|x| x.event.change_key.clone()))
                    }
                };
                messages
                    .push(Message::ok(vec![Item { item_id: Some(ItemId::new(ews_id(&id), ck)), ..Item::calendar() }]));
            }
            Err(e) => messages.push(Message::error("ErrorInvalidRequest", e.message)),
        }
    }
    drop(state);
    update_item::write_response(w, &messages);
    Ok(())
}
