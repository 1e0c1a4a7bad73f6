//! `calendarView/delta` sync state. A round covers the changes of one mailbox between two
//! sequence numbers of its change log (`from`, exclusive, to `to`, inclusive; `from = 0` is
//! the initial full listing). Tokens are opaque to the client: base64url JSON of the mailbox,
//! the range, the two sequence numbers, the page cursor (skip tokens), the simulator instance,
//! the sync-state epoch and the issue time, signed with the simulator's key. Anything else —
//! tampered, from another simulator, from an older epoch (`expire_delta_tokens`), or older
//! than the scenario's `delta_token_lifetime_secs` — is `410 syncStateNotFound`.
//!
//! Pages are ordered by instance id and resume after the last id sent, so an item that did not
//! change is never skipped even if others are added or removed between pages; an item that
//! changed during a round is reported again in the next one.

use std::collections::{BTreeMap, BTreeSet};

use chrono::DateTime;
use serde::{Deserialize, Serialize};

use crate::ids::{b64url, b64url_decode, hmac_sha256};
use crate::state::{instance_event, Instance, RenderOpts, Shown, State};
use crate::wire;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncToken {
    /// Simulator instance.
    pub i: String,
    /// Sync-state epoch.
    pub ep: u64,
    /// Mailbox key.
    pub mb: String,
    /// Range start/end (Unix seconds).
    pub s: i64,
    pub e: i64,
    /// The first round: every instance in the range (not a change set).
    #[serde(default)]
    pub full: bool,
    /// Changes after `from` up to and including `to`.
    pub from: u64,
    pub to: u64,
    /// Skip tokens: the last instance id already sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<String>,
    /// Issued at (Unix seconds).
    pub iat: i64,
}

pub fn encode(key: &[u8], token: &SyncToken) -> String {
    let body = b64url(serde_json::to_string(token).unwrap_or_default().as_bytes());
    let sig = hmac_sha256(key, body.as_bytes());
    format!("{body}.{}", b64url(&sig[..16]))
}

/// Decodes and checks a token; `None` means 410 syncStateNotFound.
pub fn decode(key: &[u8], text: &str, instance: &str, epoch: u64, now: i64, lifetime_secs: u64) -> Option<SyncToken> {
    let (body, sig) = text.trim().split_once('.')?;
    let expected = hmac_sha256(key, body.as_bytes());
    if b64url_decode(sig)? != expected[..16] {
        return None;
    }
    let token: SyncToken = serde_json::from_slice(&b64url_decode(body)?).ok()?;
    if token.i != instance || token.ep != epoch || now - token.iat > lifetime_secs as i64 || now < token.iat - 300 {
        return None;
    }
    Some(token)
}

/// An item of a delta page, taken from the state; [`PageItem::render`] shows it as Graph
/// does, without the state (so without its lock).
pub enum PageItem {
    Upsert(Box<wire::Event>),
    Removed(String),
}

impl PageItem {
    pub fn render(self, opts: &RenderOpts) -> ShownItem {
        match self {
            PageItem::Upsert(e) => ShownItem::Upsert(Box::new(Shown::new(*e, opts))),
            PageItem::Removed(id) => ShownItem::Removed {
                odata_type: "#microsoft.graph.event",
                id,
                removed: wire::Removed { reason: Some("deleted".into()) },
            },
        }
    }
}

/// A delta page's item as Graph shows it: the event, or its id marked `@removed`.
#[derive(Serialize)]
#[serde(untagged)]
pub enum ShownItem {
    Upsert(Box<Shown>),
    Removed {
        #[serde(rename = "@odata.type")]
        odata_type: &'static str,
        id: String,
        #[serde(rename = "@removed")]
        removed: wire::Removed,
    },
}

/// One page of a round: its items, and the cursor for the next page if more remain.
pub fn page(state: &State, token: &SyncToken, page_size: usize, opts: &RenderOpts) -> (Vec<PageItem>, Option<String>) {
    let (Some(from), Some(to)) = (DateTime::from_timestamp(token.s, 0), DateTime::from_timestamp(token.e, 0)) else {
        return (vec![], None);
    };
    let mb = token.mb.as_str();
    // id → Some(instance) to upsert, None to report removed.
    let mut items: BTreeMap<String, Option<Instance<'_>>> = BTreeMap::new();
    if token.full {
        for inst in state.instances(mb, from, to) {
            items.insert(inst.id.clone(), Some(inst));
        }
    } else {
        let mut changed: BTreeSet<&str> = BTreeSet::new();
        let mut removed: BTreeSet<&str> = BTreeSet::new();
        for entry in state.log.get(mb).into_iter().flatten() {
            if entry.seq > token.from && entry.seq <= token.to {
                changed.insert(&entry.id);
                removed.extend(entry.removed.iter().map(String::as_str));
            }
        }
        for id in &changed {
            match state.event(mb, id) {
                Some(ev) => {
                    let insts = ev.instances(from, to);
                    if insts.is_empty() {
                        removed.insert(id);
                    }
                    for inst in insts {
                        items.insert(inst.id.clone(), Some(inst));
                    }
                }
                None => {
                    removed.insert(id);
                }
            }
        }
        for id in removed {
            items.entry(id.to_string()).or_insert(None);
        }
    }
    let after = token.after.as_deref();
    let mut remaining = items.into_iter().filter(|(id, _)| after.is_none_or(|a| id.as_str() > a));
    let mut out = Vec::new();
    let mut last = None;
    for (id, item) in remaining.by_ref().take(page_size.max(1)) {
        out.push(match item {
            Some(inst) => PageItem::Upsert(Box::new(instance_event(&inst, opts))),
            None => PageItem::Removed(id.clone()),
        });
        last = Some(id);
    }
    let more = remaining.next().is_some();
    (out, if more { last } else { None })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip_and_reject_tampering() {
        let t = SyncToken {
            i: "inst".into(),
            ep: 0,
            mb: "a@b".into(),
            s: 0,
            e: 10,
            full: false,
            from: 0,
            to: 5,
            after: None,
            iat: 1000,
        };
        let text = encode(b"key", &t);
        assert_eq!(decode(b"key", &text, "inst", 0, 1000, 60), Some(t.clone()));
        assert_eq!(decode(b"key", &text, "inst", 1, 1000, 60), None, "older epoch");
        assert_eq!(decode(b"key", &text, "other", 0, 1000, 60), None, "other simulator");
        assert_eq!(decode(b"key", &text, "inst", 0, 2000, 60), None, "expired");
        assert_eq!(decode(b"key", &format!("x{text}"), "inst", 0, 1000, 60), None, "tampered");
        assert_eq!(decode(b"key", "garbage", "inst", 0, 1000, 60), None);
    }
}
