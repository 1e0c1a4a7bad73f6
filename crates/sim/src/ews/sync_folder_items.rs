//! SyncFolderItems — <https://learn.microsoft.com/exchange/client-developer/web-service-reference/syncfolderitems>
//!
//! The calendar folder's items (singles and series masters, never occurrences) changed since
//! a `SyncState`, from the mailbox's change log — the same log Graph's delta reads. Without a
//! state, every item arrives as a `Create`, ordered by id and paged by `MaxChangesReturned`;
//! then changes follow: `Create` for items born after the state, `Update` for the others,
//! `Delete` for items that existed and are gone, each item once, in the order of its last
//! change. States are signed tokens (mailbox, log position, listing position); a tampered,
//! foreign or expired one (`expire_delta_tokens`) is `ErrorInvalidSyncStateData`.

use std::collections::BTreeMap;

use super::convert::{calendar_item, ews_id};
use super::find_item::shaped;
use super::series::add_series_fields;
use super::{schema_fault, Ctx, SoapFault};
use crate::delta::{self, SyncToken};
use crate::ews_wire::ops::sync_folder_items::{self, Change, SyncResult};
use crate::ews_wire::ops::Message;
use crate::ews_wire::types::ItemId;
use crate::ews_wire::xml::{Node, XmlWriter};
use crate::state::{event_typed, RenderOpts};

pub(crate) fn handle(ctx: &Ctx, body: Node<'_, '_>, w: &mut XmlWriter) -> Result<(), SoapFault> {
    let req = sync_folder_items::Request::parse(body).map_err(schema_fault)?;
    let message = match ctx.mailbox_for(&req.sync_folder_id) {
        Err((code, text)) => Message::error(code, text),
        Ok(mb) => sync(ctx, &mb, &req),
    };
    sync_folder_items::write_response(w, &vec![message]);
    Ok(())
}

fn sync(ctx: &Ctx, mb: &crate::state::Mailbox, req: &sync_folder_items::Request) -> Message<SyncResult> {
    let inner = &ctx.sim.inner;
    let key = &inner.signing_key;
    let now = chrono::Utc::now().timestamp();
    let epoch = inner.faults.epoch();
    let lifetime = inner.scenario.delta_token_lifetime_secs;
    let state = inner.state.lock().unwrap();
    let current = state.current_seq(&mb.key);
    let token = match &req.sync_state {
        None => SyncToken {
            i: inner.instance_id.clone(),
            ep: epoch,
            mb: mb.key.clone(),
            s: 0,
            e: 0,
            full: true,
            from: 0,
            to: current,
            after: None,
            iat: now,
        },
        Some(text) => {
            match delta::decode(key, text, &inner.instance_id, epoch, now, lifetime).filter(|t| t.mb == mb.key) {
                Some(t) => t,
                None => {
                    return Message::error(
                        "ErrorInvalidSyncStateData",
                        "Synchronization state data is corrupt or otherwise invalid.",
                    )
                }
            }
        }
    };
    let max = req.max_changes_returned as usize;
    let opts = RenderOpts { expand_props: Some(vec![]), ..Default::default() };
    let text_body = req.item_shape.body_type.as_deref() == Some("Text");
    let events = state.events.get(&mb.key);
    let item = |id: &str| {
        events.and_then(|m| m.get(id)).map(|e| {
            let mut item = calendar_item(event_typed(e, &opts), e.start, e.end, &mb.calendar_id, text_body);
            add_series_fields(&mut item, e);
            shaped(item, &req.item_shape)
        })
    };
    let next = |t: SyncToken| delta::encode(key, &SyncToken { iat: now, ..t });

    if token.full {
        let ids: Vec<&String> = events
            .map(|m| m.keys().filter(|id| token.after.as_ref().is_none_or(|a| *id > a)).collect())
            .unwrap_or_default();
        let page: Vec<&String> = ids.iter().take(max).copied().collect();
        let changes: Vec<Change> = page.iter().filter_map(|id| item(id)).map(Change::Create).collect();
        let done = page.len() == ids.len();
        let state_text = if done {
            next(SyncToken { full: false, from: token.to, to: token.to, after: None, ..token })
        } else {
            next(SyncToken { after: page.last().map(|s| s.to_string()), ..token })
        };
        return Message::ok(SyncResult { sync_state: state_text, includes_last_item_in_range: done, changes });
    }

    // Changes after `from`: each item once, at its last change.
    let log = state.log.get(&mb.key).map(Vec::as_slice).unwrap_or_default();
    let mut first: BTreeMap<&str, u64> = BTreeMap::new();
    let mut last: BTreeMap<&str, u64> = BTreeMap::new();
    for e in log {
        first.entry(e.id.as_str()).or_insert(e.seq);
        if e.seq > token.from {
            last.insert(e.id.as_str(), e.seq);
        }
    }
    let mut changed: Vec<(&str, u64)> = last.into_iter().collect();
    changed.sort_by_key(|(_, seq)| *seq);
    let included = &changed[..changed.len().min(max)];
    let cutoff =
        if included.len() == changed.len() { current } else { included.last().map(|(_, s)| *s).unwrap_or(current) };
    let mut changes = Vec::new();
    for (id, _) in included {
        let born_after = first.get(id).is_some_and(|s| *s > token.from);
        match item(id) {
            Some(i) if born_after => changes.push(Change::Create(i)),
            Some(i) => changes.push(Change::Update(i)),
            None if !born_after => changes.push(Change::Delete(ItemId::new(ews_id(id), None))),
            None => {}
        }
    }
    let done = cutoff == current;
    let state_text = next(SyncToken { full: false, from: cutoff, to: cutoff, after: None, ..token });
    Message::ok(SyncResult { sync_state: state_text, includes_last_item_in_range: done, changes })
}
