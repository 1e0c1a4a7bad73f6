//! The vocabulary of synchronisation, shared by the planner, the engine, the stores and the
//! protocol adapters.

use std::collections::HashMap;

use chrono::{DateTime, Datelike, Duration, Utc};
use serde::{Deserialize, Serialize};

use crate::hash::ContentHash;
use crate::model::{CalendarId, Event, EventData, EventId};

/// The time range calbridge keeps in sync for each calendar.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Window {
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
}

impl Window {
    /// At least `past_days` before and `future_days` after `now`. The start is rounded down to
    /// a Monday (00:00 UTC) and the end lies a week further than needed, so the window stays
    /// the same for a whole week: Exchange's delta cursors are bound to the range they were
    /// made for, and a new range means a full listing.
    pub fn around(now: DateTime<Utc>, past_days: u32, future_days: u32) -> Self {
        let first = now.date_naive() - Duration::days(past_days as i64);
        let monday = first - Duration::days(first.weekday().num_days_from_monday() as i64);
        let start = monday.and_hms_opt(0, 0, 0).unwrap().and_utc();
        Window { start, end: start + Duration::days(past_days as i64 + future_days as i64 + 8) }
    }

    pub fn contains(&self, data: &EventData) -> bool {
        data.overlaps(self.start, self.end)
    }
}

/// An opaque position in a mailbox's change stream (a Graph `@odata.deltaLink`, an EWS
/// `SyncState`). Only the adapter that made it can read it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Cursor(pub String);

/// The tag every event calbridge creates carries in Exchange (an extended property): which
/// installation made it and under which local id.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Provenance {
    pub installation: String,
    pub local_id: EventId,
}

impl Provenance {
    /// The value stored in the extended property: `calbridge:{installation}:{local id}`.
    pub fn encode(&self) -> String {
        format!("calbridge:{}:{}", self.installation, self.local_id)
    }

    pub fn decode(value: &str) -> Option<Self> {
        let rest = value.strip_prefix("calbridge:")?;
        let (installation, local) = rest.split_once(':')?;
        if installation.is_empty() || local.is_empty() {
            return None;
        }
        Some(Provenance { installation: installation.into(), local_id: EventId::new(local) })
    }
}

/// An item as Exchange reported it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RemoteItem {
    /// Exchange's id (Graph `id`, EWS `ItemId/@Id`).
    pub remote_id: String,
    /// Exchange's version (Graph `@odata.etag` / `changeKey`, EWS `ChangeKey`).
    pub version: String,
    pub data: EventData,
    pub provenance: Option<Provenance>,
}

/// One entry of a change page.
#[allow(clippy::large_enum_variant)] // pages are short-lived; boxing buys nothing
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum RemoteChange {
    /// Created or updated (Exchange does not say which).
    Upsert(RemoteItem),
    /// Deleted, or moved out of the window. When `remote_id` is a series' master, its
    /// instances went with it.
    Removed { remote_id: String },
    /// Every instance of the series `master_id` within the window, just listed (an adapter
    /// that reads series as their masters expands them, see [`crate::series`]): the series'
    /// local instances not among `instance_ids` are gone (cancelled, or the series shrank).
    SeriesListed { master_id: String, instance_ids: Vec<String> },
}

/// A page of changes. Save `next` together with the effects of `changes`, in one transaction.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChangePage {
    pub changes: Vec<RemoteChange>,
    /// Where to continue: the next page, or (when `done`) the start of the next round.
    pub next: Cursor,
    /// The round is complete: `next` asks for changes made from now on.
    pub done: bool,
    /// Ids of items Exchange reported but the adapter could not read (each logged with the
    /// reason). They are neither created nor deleted locally: a re-listing must not take
    /// their absence for a deletion.
    pub skipped: Vec<String>,
}

/// What calbridge asks Exchange to do with one event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PushChange {
    /// Create; `provenance.local_id` is the idempotency key (Graph `transactionId`).
    Create { data: EventData, provenance: Provenance },
    /// Update, only if Exchange still has version `if_match`.
    Update { remote_id: String, if_match: String, data: EventData },
    /// Delete (cancels the meeting for its attendees).
    Delete { remote_id: String },
}

/// Exchange's confirmation of a create or an update.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Confirmed {
    pub remote_id: String,
    pub version: String,
    /// The event as Exchange now holds it (it may have normalised what was sent).
    pub data: EventData,
}

/// The last state both sides agreed on for one event: the base of the three-way comparison.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncRecord {
    pub calendar_id: CalendarId,
    pub local_id: EventId,
    pub remote_id: String,
    /// Exchange's version when last synced.
    pub remote_version: String,
    /// Hash of Exchange's content when last synced.
    pub remote_hash: ContentHash,
    /// Local version when last synced.
    pub local_version: i64,
    /// Hash of the local content when last synced.
    pub local_hash: ContentHash,
}

/// Everything the planner needs to know about one calendar's local side.
#[derive(Clone, Debug, Default)]
pub struct Snapshot {
    pub events: HashMap<EventId, Event>,
    pub records: HashMap<EventId, SyncRecord>,
    pub by_remote: HashMap<String, EventId>,
}

impl Snapshot {
    pub fn new(events: Vec<Event>, records: Vec<SyncRecord>) -> Self {
        let by_remote = records.iter().map(|r| (r.remote_id.clone(), r.local_id.clone())).collect();
        Snapshot {
            events: events.into_iter().map(|e| (e.id.clone(), e)).collect(),
            records: records.into_iter().map(|r| (r.local_id.clone(), r)).collect(),
            by_remote,
        }
    }

    /// Apply committed writes, so a snapshot can follow a multi-page sync without re-reading.
    /// Takes them by value: the events and records move into the snapshot.
    pub fn apply(&mut self, writes: impl IntoIterator<Item = Write>) {
        for w in writes {
            match w {
                Write::PutEvent(e) => {
                    self.events.insert(e.id.clone(), e);
                }
                Write::RemoveEvent(id) => {
                    self.events.remove(&id);
                    if let Some(r) = self.records.remove(&id) {
                        self.by_remote.remove(&r.remote_id);
                    }
                }
                Write::PutRecord(r) => {
                    let (remote_id, local_id) = (r.remote_id.clone(), r.local_id.clone());
                    if let Some(old) = self.records.insert(local_id.clone(), r) {
                        self.by_remote.remove(&old.remote_id);
                    }
                    self.by_remote.insert(remote_id, local_id);
                }
                Write::RemoveRecord(id) => {
                    if let Some(r) = self.records.remove(&id) {
                        self.by_remote.remove(&r.remote_id);
                    }
                }
                Write::Notify(_) => {}
            }
        }
    }
}

/// One change to the local store. The engine turns applied actions into writes and commits
/// them, with the cursor, in one transaction.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Write {
    /// Insert or replace an event (by id).
    PutEvent(Event),
    /// Remove an event and its sync record.
    RemoveEvent(EventId),
    /// Insert or replace a sync record (by local id).
    PutRecord(SyncRecord),
    /// Remove a sync record.
    RemoveRecord(EventId),
    /// Queue a webhook message (`event.created`, `booking.accepted`, ...) in the outbox, in
    /// the same transaction as the change it reports.
    Notify(crate::store::Notification),
}

/// What to do with the stored cursor when committing writes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CursorUpdate {
    Keep,
    Set(Cursor),
    Clear,
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn the_window_covers_what_was_asked_and_holds_for_a_week() {
        let mut seen = std::collections::HashSet::new();
        let mut last: Option<Window> = None;
        for h in 0..24 * 21 {
            let now = Utc.with_ymd_and_hms(2026, 11, 2, 0, 30, 0).unwrap() + Duration::hours(h);
            let w = Window::around(now, 30, 365);
            assert!(w.start <= now - Duration::days(30), "{now}: {w:?}");
            assert!(w.end >= now + Duration::days(365), "{now}: {w:?}");
            assert_eq!(w.start.weekday(), chrono::Weekday::Mon);
            if let Some(prev) = last {
                assert!(
                    w == prev || w.start == prev.start + Duration::days(7),
                    "moves a week at a time: {prev:?} -> {w:?}"
                );
            }
            last = Some(w);
            seen.insert(w);
        }
        assert!((3..=4).contains(&seen.len()), "three weeks touch three or four windows: {}", seen.len());
    }
}
