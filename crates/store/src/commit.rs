//! How a commit's writes change the rows they touch, worked out in memory.
//!
//! A sync page commits hundreds of writes. Checking and applying them one statement at a time
//! costs several round trips per event (to SQLite's worker thread or PostgreSQL's socket), so
//! both backends instead read the touched rows in a few set-wise queries ([`Keys`]), let
//! [`plan`] apply the writes in order to that copy with exactly the checks the trait promises,
//! and send the difference between the rows as they stood and as they end in a few multi-row
//! statements ([`Plan`]). The outcome, errors and counts included, is that of applying the
//! writes one by one; the contract suite holds both backends to it.

use std::borrow::Cow;
use std::collections::HashMap;

use calbridge_core::model::{CalendarId, Event};
use calbridge_core::store::{Notification, StoreError, WriteStats};
use calbridge_core::sync::{SyncRecord, Write};

/// Rows a backend sends in one multi-row statement (or reads with one `IN (...)` list); well
/// within both SQLite's and PostgreSQL's limits on bound parameters (8 per event row).
pub(crate) const CHUNK: usize = 500;

/// The rows a commit touches: read these before [`plan`].
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Keys<'a> {
    /// Events by id (any calendar: an id is global).
    pub event_ids: Vec<&'a str>,
    /// Sync records by local id (any calendar).
    pub record_ids: Vec<&'a str>,
    /// Sync records of the committing calendar by remote id (a remote id links one event).
    pub remote_ids: Vec<&'a str>,
}

impl<'a> Keys<'a> {
    pub fn of(writes: &'a [Write]) -> Self {
        let mut keys = Keys::default();
        for w in writes {
            match w {
                Write::PutEvent(e) => keys.event_ids.push(e.id.as_str()),
                Write::RemoveEvent(id) => {
                    keys.event_ids.push(id.as_str());
                    keys.record_ids.push(id.as_str());
                }
                Write::PutRecord(r) => {
                    keys.record_ids.push(r.local_id.as_str());
                    keys.remote_ids.push(&r.remote_id);
                }
                Write::RemoveRecord(id) => keys.record_ids.push(id.as_str()),
                Write::Notify(_) => {}
            }
        }
        for list in [&mut keys.event_ids, &mut keys.record_ids, &mut keys.remote_ids] {
            list.sort_unstable();
            list.dedup();
        }
        keys
    }
}

/// The statements a commit needs, in the order a backend must send them: deletions first (so a
/// remote id that moves between records is free before it is taken again), then updates, then
/// insertions, then the webhook messages.
#[derive(Debug, Default)]
pub(crate) struct Plan<'a> {
    pub delete_events: Vec<&'a str>,
    pub delete_records: Vec<&'a str>,
    pub update_events: Vec<&'a Event>,
    /// Records whose remote id stays; one whose remote id changes is deleted and inserted.
    pub update_records: Vec<&'a SyncRecord>,
    pub insert_events: Vec<&'a Event>,
    pub insert_records: Vec<&'a SyncRecord>,
    pub notifications: Vec<&'a Notification>,
    /// What the writes changed, counted as applying them one by one would count it.
    pub stats: WriteStats,
}

/// Applies `writes` in order to the rows read for their [`Keys`] (`events`, and `records` by
/// local id or by this calendar's remote ids) and returns the statements that take the store
/// from those rows to the result. Fails as the first failing write would, writing nothing.
pub(crate) fn plan<'a>(
    calendar_id: CalendarId,
    writes: &'a [Write],
    events: Vec<Event>,
    records: Vec<SyncRecord>,
) -> Result<Plan<'a>, StoreError> {
    let before_events: HashMap<String, Event> = events.into_iter().map(|e| (e.id.as_str().to_owned(), e)).collect();
    let before_records: HashMap<String, SyncRecord> =
        records.into_iter().map(|r| (r.local_id.as_str().to_owned(), r)).collect();
    // The rows as the writes leave them: `None` is a row removed. Keys absent here are as before.
    let mut events: HashMap<&str, Option<&Event>> = HashMap::new();
    let mut records: HashMap<&str, Option<&SyncRecord>> = HashMap::new();
    // This calendar's remote ids, as the writes leave them.
    let mut linked: HashMap<&str, &str> = before_records
        .values()
        .filter(|r| r.calendar_id == calendar_id)
        .map(|r| (r.remote_id.as_str(), r.local_id.as_str()))
        .collect();
    let mut plan = Plan::default();

    for write in writes {
        match write {
            Write::PutEvent(e) => {
                if e.calendar_id != calendar_id {
                    return Err(StoreError::Conflict(format!(
                        "a commit for calendar {calendar_id} tried to write event {} of calendar {}",
                        e.id, e.calendar_id
                    )));
                }
                let id = e.id.as_str();
                let stored = current(&events, &before_events, id);
                match stored {
                    None => plan.stats.events += 1,
                    // An identical row: a retried commit. Nothing to do.
                    Some(stored) if stored == e => continue,
                    Some(stored) if stored.calendar_id != calendar_id => {
                        return Err(StoreError::Conflict(format!(
                            "event {} belongs to calendar {}, not to calendar {calendar_id}; events do not move \
                             between calendars",
                            e.id, stored.calendar_id
                        )))
                    }
                    Some(stored) if stored.version >= e.version => {
                        return Err(StoreError::Conflict(format!(
                            "event {} changed while it was being synced: the store has version {}, the sync wrote \
                             version {}; the sync will read it again",
                            e.id, stored.version, e.version
                        )))
                    }
                    Some(_) => plan.stats.events += 1,
                }
                events.insert(id, Some(e));
            }
            Write::RemoveEvent(id) => {
                let id = id.as_str();
                if current(&events, &before_events, id).is_some_and(|e| e.calendar_id == calendar_id) {
                    events.insert(id, None);
                    plan.stats.events += 1;
                }
                plan.stats.records += remove_record(calendar_id, id, &mut records, &before_records, &mut linked);
            }
            Write::PutRecord(r) => {
                if r.calendar_id != calendar_id {
                    return Err(StoreError::Conflict(format!(
                        "a commit for calendar {calendar_id} tried to write the sync record of event {} of calendar {}",
                        r.local_id, r.calendar_id
                    )));
                }
                let id = r.local_id.as_str();
                let stored = current(&records, &before_records, id);
                match stored {
                    Some(s) if s == r => continue,
                    Some(s) if s.calendar_id != calendar_id => {
                        return Err(StoreError::Conflict(format!(
                            "the sync record of event {} belongs to calendar {}, not to calendar {calendar_id}",
                            r.local_id, s.calendar_id
                        )))
                    }
                    _ => {}
                }
                if let Some(other) = linked.get(r.remote_id.as_str()).filter(|other| **other != id) {
                    return Err(StoreError::Conflict(format!(
                        "remote item {} of calendar {calendar_id} is already linked to event {other}, so it cannot \
                         be linked to event {} too",
                        r.remote_id, r.local_id
                    )));
                }
                if let Some(s) = stored {
                    linked.remove(s.remote_id.as_str());
                }
                linked.insert(&r.remote_id, id);
                records.insert(id, Some(r));
                plan.stats.records += 1;
            }
            Write::RemoveRecord(id) => {
                plan.stats.records +=
                    remove_record(calendar_id, id.as_str(), &mut records, &before_records, &mut linked);
            }
            Write::Notify(n) => plan.notifications.push(n),
        }
    }

    // The difference, in the order the writes first touched each row (stable statements).
    let mut seen_events: Vec<&str> = Vec::new();
    let mut seen_records: Vec<&str> = Vec::new();
    for w in writes {
        match w {
            Write::PutEvent(e) => seen_events.push(e.id.as_str()),
            Write::RemoveEvent(id) => {
                seen_events.push(id.as_str());
                seen_records.push(id.as_str());
            }
            Write::PutRecord(r) => seen_records.push(r.local_id.as_str()),
            Write::RemoveRecord(id) => seen_records.push(id.as_str()),
            Write::Notify(_) => {}
        }
    }
    let mut done = std::collections::HashSet::new();
    for id in seen_events {
        if !done.insert(id) {
            continue;
        }
        let Some(after) = events.get(id) else { continue };
        match (before_events.get(id), after) {
            (None, Some(e)) => plan.insert_events.push(e),
            (Some(b), Some(e)) if b != *e => plan.update_events.push(e),
            (Some(_), None) => plan.delete_events.push(id),
            _ => {}
        }
    }
    done.clear();
    for id in seen_records {
        if !done.insert(id) {
            continue;
        }
        let Some(after) = records.get(id) else { continue };
        match (before_records.get(id), after) {
            (None, Some(r)) => plan.insert_records.push(r),
            (Some(b), Some(r)) if b.remote_id != r.remote_id => {
                plan.delete_records.push(id);
                plan.insert_records.push(r);
            }
            (Some(b), Some(r)) if b != *r => plan.update_records.push(r),
            (Some(_), None) => plan.delete_records.push(id),
            _ => {}
        }
    }
    Ok(plan)
}

/// The stored JSON of the events a commit puts, made before its write transaction starts: a
/// store has one writer at a time, which should not wait while hundreds of events are
/// serialised.
#[derive(Debug, Default)]
pub(crate) struct EventJson<'a> {
    by_id: HashMap<&'a str, (&'a Event, String)>,
}

impl<'a> EventJson<'a> {
    pub fn of(writes: &'a [Write]) -> Self {
        let mut by_id = HashMap::with_capacity(writes.len());
        for w in writes {
            if let Write::PutEvent(e) = w {
                by_id.insert(e.id.as_str(), (e, crate::common::to_json(&e.data)));
            }
        }
        EventJson { by_id }
    }

    /// The JSON of `e`'s data: the one made in advance when `e` is one of the writes' events
    /// (the very same value), else made now.
    pub fn get<'s>(&'s self, e: &Event) -> Cow<'s, str> {
        match self.by_id.get(e.id.as_str()) {
            Some((put, json)) if std::ptr::eq(*put, e) => Cow::Borrowed(json),
            _ => Cow::Owned(crate::common::to_json(&e.data)),
        }
    }
}

/// The row `id` as the writes so far leave it.
fn current<'r, T>(after: &HashMap<&str, Option<&'r T>>, before: &'r HashMap<String, T>, id: &str) -> Option<&'r T> {
    match after.get(id) {
        Some(row) => *row,
        None => before.get(id),
    }
}

/// Removes this calendar's record `id` if there is one; 1 if it did.
fn remove_record<'a, 'b>(
    calendar_id: CalendarId,
    id: &'a str,
    records: &mut HashMap<&'a str, Option<&'a SyncRecord>>,
    before: &'b HashMap<String, SyncRecord>,
    linked: &mut HashMap<&'b str, &'b str>,
) -> u64
where
    'a: 'b,
{
    let stored = match records.get(id) {
        Some(row) => *row,
        None => before.get(id),
    };
    match stored {
        Some(r) if r.calendar_id == calendar_id => {
            linked.remove(r.remote_id.as_str());
            records.insert(id, None);
            1
        }
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use calbridge_core::hash::ContentHash;
    use calbridge_core::model::{EventData, EventId, Origin};
    use chrono::{TimeZone, Utc};

    fn event(id: &str, calendar_id: CalendarId, version: i64) -> Event {
        let start = Utc.with_ymd_and_hms(2026, 1, 5, 9, 0, 0).unwrap();
        Event {
            id: EventId::new(id),
            calendar_id,
            origin: Origin::Exchange,
            data: EventData::new(format!("subject of {id}"), start, start + chrono::Duration::hours(1)),
            version,
            deleted: false,
        }
    }

    fn record(id: &str, calendar_id: CalendarId, remote: &str) -> SyncRecord {
        SyncRecord {
            calendar_id,
            local_id: EventId::new(id),
            remote_id: remote.into(),
            remote_version: "v1".into(),
            remote_hash: ContentHash("h".into()),
            local_version: 1,
            local_hash: ContentHash("h".into()),
        }
    }

    fn ids<T: AsRef<str>>(v: &[T]) -> Vec<&str> {
        v.iter().map(AsRef::as_ref).collect()
    }

    #[test]
    fn keys_list_each_touched_row_once() {
        let writes = vec![
            Write::PutEvent(event("a", 1, 1)),
            Write::PutRecord(record("a", 1, "R-a")),
            Write::RemoveEvent(EventId::new("b")),
            Write::RemoveRecord(EventId::new("a")),
        ];
        let keys = Keys::of(&writes);
        assert_eq!(keys.event_ids, vec!["a", "b"]);
        assert_eq!(keys.record_ids, vec!["a", "b"]);
        assert_eq!(keys.remote_ids, vec!["R-a"]);
    }

    #[test]
    fn new_rows_become_inserts_and_a_replayed_commit_writes_nothing() {
        let writes = vec![Write::PutEvent(event("a", 1, 1)), Write::PutRecord(record("a", 1, "R-a"))];
        let p = plan(1, &writes, vec![], vec![]).unwrap();
        assert_eq!(p.insert_events.len(), 1);
        assert_eq!(p.insert_records.len(), 1);
        assert_eq!((p.stats.events, p.stats.records), (1, 1));

        let again = plan(1, &writes, vec![event("a", 1, 1)], vec![record("a", 1, "R-a")]).unwrap();
        assert!(again.insert_events.is_empty() && again.update_events.is_empty() && again.insert_records.is_empty());
        assert_eq!(again.stats.total(), 0);
    }

    #[test]
    fn a_row_written_then_removed_in_one_commit_leaves_no_statement() {
        let writes = vec![
            Write::PutEvent(event("a", 1, 1)),
            Write::PutRecord(record("a", 1, "R-a")),
            Write::RemoveEvent(EventId::new("a")),
        ];
        let p = plan(1, &writes, vec![], vec![]).unwrap();
        assert!(p.insert_events.is_empty() && p.delete_events.is_empty());
        assert!(p.insert_records.is_empty() && p.delete_records.is_empty());
        // Counted as the writes one by one: inserted, then deleted.
        assert_eq!((p.stats.events, p.stats.records), (2, 2));
    }

    #[test]
    fn removing_another_calendars_rows_does_nothing() {
        let writes = vec![Write::RemoveEvent(EventId::new("a")), Write::RemoveRecord(EventId::new("a"))];
        let p = plan(1, &writes, vec![event("a", 2, 1)], vec![record("a", 2, "R-a")]).unwrap();
        assert!(p.delete_events.is_empty() && p.delete_records.is_empty());
        assert_eq!(p.stats.total(), 0);
    }

    #[test]
    fn a_remote_id_may_move_to_another_record_once_freed() {
        // b takes a's remote id after a is removed: a delete, then an insert.
        let writes = vec![Write::RemoveRecord(EventId::new("a")), Write::PutRecord(record("b", 1, "R-a"))];
        let p = plan(1, &writes, vec![], vec![record("a", 1, "R-a")]).unwrap();
        assert_eq!(ids(&p.delete_records), vec!["a"]);
        assert_eq!(p.insert_records.len(), 1);

        // A record whose remote id changes is deleted and inserted, so the new id is free of
        // the old one in any order of statements.
        let writes = vec![Write::PutRecord(record("a", 1, "R-new"))];
        let p = plan(1, &writes, vec![], vec![record("a", 1, "R-a")]).unwrap();
        assert_eq!(ids(&p.delete_records), vec!["a"]);
        assert_eq!(p.insert_records[0].remote_id, "R-new");
        assert!(p.update_records.is_empty());
    }

    #[test]
    fn the_first_breach_fails_the_plan() {
        let taken = vec![Write::PutRecord(record("b", 1, "R-a"))];
        let err = plan(1, &taken, vec![], vec![record("a", 1, "R-a")]).unwrap_err();
        assert!(err.to_string().contains("already linked to event a"), "{err}");

        let stale = vec![Write::PutEvent(event("a", 1, 2))];
        let err = plan(1, &stale, vec![event("a", 1, 3)], vec![]).unwrap_err();
        assert!(err.to_string().contains("store has version 3"), "{err}");

        let moved = vec![Write::PutEvent(event("a", 1, 2))];
        let err = plan(1, &moved, vec![event("a", 2, 1)], vec![]).unwrap_err();
        assert!(err.to_string().contains("belongs to calendar 2"), "{err}");
    }
}
