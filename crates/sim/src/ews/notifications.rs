//! EWS subscriptions (pull and streaming), as Exchange keeps them: on a mailbox's calendar
//! folder, fed from the mailbox's change log (the one SyncFolderItems and Graph's delta read),
//! each with its position in that log. A watermark names a log position.
//!
//! Lifetimes: a streaming subscription lives while a `GetStreamingEvents` connection carries
//! it and 30 minutes after the last one ends; a pull subscription lives `Timeout` minutes
//! after it was made or last read with `GetEvents`. Only the account that made a
//! subscription may use it (`ErrorSubscriptionAccessDenied`). A lapsed one is
//! `ErrorExpiredSubscription` once, then gone (`ErrorSubscriptionNotFound`).
//!
//! Controls (for tests of calbridge's fallbacks, see [`crate::Simulator`]): refuse streaming
//! subscriptions as Exchange 2007 does (`ErrorInvalidRequest`), refuse subscriptions
//! altogether, drop a mailbox's subscriptions, make their next read report lost events
//! (`ErrorMissedNotificationEvents`), and shorten the simulator's notification "minute" so
//! timeouts and keep-alives can be watched in a test.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use base64::Engine as _;

use super::convert::{ews_id, ews_time};
use crate::ews_wire::ops::get_events::{Event, Notification};
use crate::ews_wire::types::ItemId;
use crate::state::State;

/// How long a streaming subscription outlives its last connection, in minutes.
pub const STREAMING_LIFETIME_MINUTES: u32 = 30;
/// The most events one `GetEvents` answer or streamed notification carries.
pub const MAX_EVENTS: usize = 50;

/// One subscription.
#[derive(Clone, Debug)]
pub struct EwsSubscription {
    pub id: String,
    /// The mailbox key.
    pub mailbox: String,
    pub streaming: bool,
    /// Pull: minutes without `GetEvents` before it lapses.
    pub timeout_minutes: u32,
    /// The account that made it.
    pub owner: String,
    /// The last log position delivered (streaming) or made (pull, at subscribe).
    pub seq: u64,
    /// Made, read, or (streaming) last connection ended.
    pub last_activity: Instant,
    /// Open streaming connections carrying it.
    pub connections: usize,
    /// Its next read reports `ErrorMissedNotificationEvents`.
    pub missed: bool,
}

/// Why a subscription cannot be used.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unusable {
    NotFound,
    Expired,
    AccessDenied,
    Missed,
}

impl Unusable {
    pub fn code_and_text(self) -> (&'static str, &'static str) {
        match self {
            Unusable::NotFound => ("ErrorSubscriptionNotFound", "The specified subscription was not found."),
            Unusable::Expired => ("ErrorExpiredSubscription", "The subscription has expired."),
            Unusable::AccessDenied => (
                "ErrorSubscriptionAccessDenied",
                "Access is denied. Only the subscription owner may access the subscription.",
            ),
            Unusable::Missed => (
                "ErrorMissedNotificationEvents",
                "Events were missed; the subscription is no longer valid. Subscribe again and resynchronize.",
            ),
        }
    }
}

/// Every EWS subscription of the simulator, and the controls.
pub struct Registry {
    subs: Mutex<BTreeMap<String, EwsSubscription>>,
    refuse_streaming: AtomicBool,
    refuse_all: AtomicBool,
    minute_ms: AtomicU64,
    /// GetStreamingEvents answers being streamed now.
    pub open_streams: AtomicUsize,
}

impl Default for Registry {
    fn default() -> Self {
        Registry {
            subs: Mutex::new(BTreeMap::new()),
            refuse_streaming: AtomicBool::new(false),
            refuse_all: AtomicBool::new(false),
            minute_ms: AtomicU64::new(60_000),
            open_streams: AtomicUsize::new(0),
        }
    }
}

/// A watermark: the log position, opaque to clients.
pub fn watermark(seq: u64) -> String {
    base64::engine::general_purpose::STANDARD.encode(format!("calbridge-sim-watermark:{seq}"))
}

/// The log position of a watermark this simulator issued.
pub fn read_watermark(text: &str) -> Option<u64> {
    let bytes = base64::engine::general_purpose::STANDARD.decode(text.trim()).ok()?;
    String::from_utf8(bytes).ok()?.strip_prefix("calbridge-sim-watermark:")?.parse().ok()
}

impl Registry {
    /// The simulator's notification minute (60 s unless a test shortened it).
    pub fn minute(&self) -> Duration {
        Duration::from_millis(self.minute_ms.load(Ordering::Relaxed).max(1))
    }
    pub fn set_minute(&self, d: Duration) {
        self.minute_ms.store(d.as_millis().max(1) as u64, Ordering::Relaxed);
    }
    pub fn set_refuse_streaming(&self, on: bool) {
        self.refuse_streaming.store(on, Ordering::Relaxed);
    }
    pub fn refuses_streaming(&self) -> bool {
        self.refuse_streaming.load(Ordering::Relaxed)
    }
    pub fn set_refuse_all(&self, on: bool) {
        self.refuse_all.store(on, Ordering::Relaxed);
    }
    pub fn refuses_all(&self) -> bool {
        self.refuse_all.load(Ordering::Relaxed)
    }

    fn lapsed(&self, s: &EwsSubscription, now: Instant) -> bool {
        let minutes = if s.streaming {
            if s.connections > 0 {
                return false;
            }
            STREAMING_LIFETIME_MINUTES
        } else {
            s.timeout_minutes
        };
        now.duration_since(s.last_activity) >= self.minute() * minutes
    }

    /// Records a new subscription at the mailbox's current log position.
    pub fn add(&self, mailbox: &str, streaming: bool, timeout_minutes: u32, owner: &str, seq: u64) -> EwsSubscription {
        let s = EwsSubscription {
            id: base64::engine::general_purpose::STANDARD.encode(uuid::Uuid::new_v4().as_bytes()),
            mailbox: mailbox.to_string(),
            streaming,
            timeout_minutes,
            owner: owner.to_string(),
            seq,
            last_activity: Instant::now(),
            connections: 0,
            missed: false,
        };
        self.subs.lock().unwrap().insert(s.id.clone(), s.clone());
        s
    }

    /// The subscription, if `owner` may use it now; a lapsed one is removed.
    pub fn usable(&self, id: &str, owner: &str) -> Result<EwsSubscription, Unusable> {
        let mut subs = self.subs.lock().unwrap();
        let s = subs.get(id).ok_or(Unusable::NotFound)?;
        if !s.owner.eq_ignore_ascii_case(owner) {
            return Err(Unusable::AccessDenied);
        }
        if self.lapsed(s, Instant::now()) {
            subs.remove(id);
            return Err(Unusable::Expired);
        }
        if s.missed {
            subs.remove(id);
            return Err(Unusable::Missed);
        }
        Ok(s.clone())
    }

    /// Updates a subscription (if it still exists).
    pub fn update(&self, id: &str, f: impl FnOnce(&mut EwsSubscription)) {
        if let Some(s) = self.subs.lock().unwrap().get_mut(id) {
            f(s);
        }
    }

    pub fn get(&self, id: &str) -> Option<EwsSubscription> {
        self.subs.lock().unwrap().get(id).cloned()
    }

    pub fn remove(&self, id: &str) -> bool {
        self.subs.lock().unwrap().remove(id).is_some()
    }

    /// The live subscriptions: (id, mailbox key, streaming).
    pub fn list(&self) -> Vec<(String, String, bool)> {
        let now = Instant::now();
        let subs = self.subs.lock().unwrap();
        subs.values().filter(|s| !self.lapsed(s, now)).map(|s| (s.id.clone(), s.mailbox.clone(), s.streaming)).collect()
    }

    /// Drops every subscription on a mailbox (as Exchange does on a mailbox move or a
    /// restart); the number dropped.
    pub fn drop_mailbox(&self, mailbox: &str) -> usize {
        let mut subs = self.subs.lock().unwrap();
        let before = subs.len();
        subs.retain(|_, s| s.mailbox != mailbox);
        before - subs.len()
    }

    /// Marks a mailbox's subscriptions so their next read reports lost events.
    pub fn miss_mailbox(&self, mailbox: &str) -> usize {
        let mut subs = self.subs.lock().unwrap();
        subs.values_mut().filter(|s| s.mailbox == mailbox).map(|s| s.missed = true).count()
    }
}

/// The events of `mailbox`'s calendar after log position `after`, at most [`MAX_EVENTS`], and
/// the position of the last one; `more` when others follow.
pub fn events_since(state: &State, mailbox: &str, after: u64) -> (Vec<Event>, u64, bool) {
    let Some(mb) = state.mailbox_by_key(mailbox) else { return (vec![], after, false) };
    let log = state.log.get(mailbox).map(Vec::as_slice).unwrap_or_default();
    let pending: Vec<_> = log.iter().filter(|e| e.seq > after).collect();
    let more = pending.len() > MAX_EVENTS;
    let now = ews_time(chrono::Utc::now());
    let folder = ItemId::new(ews_id(&mb.calendar_id), None);
    let mut last = after;
    let events = pending
        .into_iter()
        .take(MAX_EVENTS)
        .map(|entry| {
            last = entry.seq;
            let kind = match state.event(mailbox, &entry.id) {
                Some(e) if e.event.created_date_time == e.event.last_modified_date_time => "CreatedEvent",
                Some(_) => "ModifiedEvent",
                None => "DeletedEvent",
            };
            let change_key = state.event(mailbox, &entry.id).and_then(|e| e.event.change_key.clone());
            Event {
                kind: kind.into(),
                watermark: Some(watermark(entry.seq)),
                time_stamp: Some(now.clone()),
                item_id: Some(ItemId::new(ews_id(&entry.id), change_key)),
                parent_folder_id: Some(folder.clone()),
                ..Default::default()
            }
        })
        .collect();
    (events, last, more)
}

/// A notification of `events` for a subscription, starting after `previous`.
pub fn notification(id: &str, previous: u64, events: Vec<Event>, more: bool) -> Notification {
    let events = if events.is_empty() {
        vec![Event { kind: "StatusEvent".into(), watermark: Some(watermark(previous)), ..Default::default() }]
    } else {
        events
    };
    Notification {
        subscription_id: id.to_string(),
        previous_watermark: Some(watermark(previous)),
        more_events: Some(more),
        events,
    }
}
