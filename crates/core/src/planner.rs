//! The three-way sync planner.
//!
//! Each side is compared with the last state both agreed on (the [`SyncRecord`]): a side has
//! changed only when it has a new version *and* different content. The planner turns what it
//! finds into a [`Plan`], a printable list of [`Action`]s, and never performs I/O. The engine
//! performs the remote half of each action, then records its local half with
//! [`local_writes`] (pull) or [`confirm`] (push, only after Exchange confirmed it).
//!
//! Ownership: an event that came from Exchange is read-only locally, so Exchange always wins
//! for it. An event calbridge created is owned by the host application: when only Exchange
//! changed it (a room answered, someone moved it in Outlook) the change is taken locally; when
//! both changed, the host application's content wins and is pushed again.

use std::collections::{HashMap, HashSet};
use std::fmt;

use crate::hash::content_hash;
use crate::model::{Event, EventData, EventId, Origin, SeriesKind};
use crate::sync::{Confirmed, Provenance, RemoteChange, RemoteItem, Snapshot, SyncRecord, Window, Write};

/// One step of a plan.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// A new event in Exchange: store it locally (origin Exchange).
    CreateLocal { remote: RemoteItem },
    /// A new instance (occurrence or exception) of a series calbridge created: store it as the
    /// host application's (origin local, id `{series local id}@{original start}`), so it can
    /// be changed or cancelled on its own.
    Adopt { series: EventId, remote: RemoteItem },
    /// Exchange changed an event and the local side did not (or may not): take Exchange's.
    UpdateLocal { local_id: EventId, remote: RemoteItem },
    /// The event is gone from Exchange (or left the window): remove it locally.
    DeleteLocal { local_id: EventId, remote_id: String, why: &'static str },
    /// An event calbridge created reached Exchange but the confirmation was lost: adopt it.
    Link { local_id: EventId, remote: RemoteItem },
    /// Exchange has a new version whose content needs no local change: remember the version.
    Refresh { local_id: EventId, remote: RemoteItem, why: &'static str },
    /// A local event not yet in Exchange: create it.
    CreateRemote { local_id: EventId, data: EventData },
    /// A local change not yet in Exchange: update it, if Exchange still has `if_match`.
    UpdateRemote { local_id: EventId, remote_id: String, if_match: String, data: EventData },
    /// Delete in Exchange: a local deletion, or a duplicate of calbridge's own create.
    DeleteRemote { local_id: Option<EventId>, remote_id: String, why: &'static str },
    /// A local deletion of an event that never reached Exchange: drop the tombstone.
    Forget { local_id: EventId },
}

impl Action {
    /// Whether the action changes Exchange (push) rather than the local store (pull).
    pub fn is_remote(&self) -> bool {
        matches!(self, Action::CreateRemote { .. } | Action::UpdateRemote { .. } | Action::DeleteRemote { .. })
    }
}

fn when(d: &EventData) -> String {
    format!("{}", d.start.format("%Y-%m-%d %H:%MZ"))
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Action::CreateLocal { remote } => write!(
                f,
                "pull   create  {:<24} {} {:?}",
                short(&remote.remote_id),
                when(&remote.data),
                remote.data.subject
            ),
            Action::UpdateLocal { local_id, remote } => {
                write!(f, "pull   update  {:<24} {} {:?}", local_id.as_str(), when(&remote.data), remote.data.subject)
            }
            Action::Adopt { series, remote } => write!(
                f,
                "pull   adopt   {:<24} {} {:?} (an instance of {series})",
                short(&remote.remote_id),
                when(&remote.data),
                remote.data.subject
            ),
            Action::DeleteLocal { local_id, why, .. } => write!(f, "pull   delete  {:<24} ({why})", local_id.as_str()),
            Action::Link { local_id, remote } => {
                write!(
                    f,
                    "pull   link    {:<24} to {} (confirmation was lost)",
                    local_id.as_str(),
                    short(&remote.remote_id)
                )
            }
            Action::Refresh { local_id, why, .. } => write!(f, "pull   version {:<24} ({why})", local_id.as_str()),
            Action::CreateRemote { local_id, data } => {
                write!(f, "push   create  {:<24} {} {:?}", local_id.as_str(), when(data), data.subject)
            }
            Action::UpdateRemote { local_id, data, .. } => {
                write!(f, "push   update  {:<24} {} {:?}", local_id.as_str(), when(data), data.subject)
            }
            Action::DeleteRemote { local_id, remote_id, why } => write!(
                f,
                "push   delete  {:<24} ({why})",
                local_id.as_ref().map(|l| l.as_str().to_string()).unwrap_or_else(|| short(remote_id))
            ),
            Action::Forget { local_id } => {
                write!(f, "local  forget  {:<24} (deleted before it reached Exchange)", local_id.as_str())
            }
        }
    }
}

fn short(id: &str) -> String {
    if id.len() > 24 {
        format!("{}…", &id[..23])
    } else {
        id.to_string()
    }
}

/// A printable list of actions.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Plan {
    pub actions: Vec<Action>,
}

impl Plan {
    pub fn is_empty(&self) -> bool {
        self.actions.is_empty()
    }
    pub fn len(&self) -> usize {
        self.actions.len()
    }
    /// How many local deletions the plan makes (for the mass-deletion guard).
    pub fn local_deletions(&self) -> usize {
        self.actions.iter().filter(|a| matches!(a, Action::DeleteLocal { .. })).count()
    }
}

impl fmt::Display for Plan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.actions.is_empty() {
            return writeln!(f, "nothing to do");
        }
        for a in &self.actions {
            writeln!(f, "{a}")?;
        }
        Ok(())
    }
}

/// Protection against a mailbox that suddenly looks empty or a plan that deletes too much:
/// such a plan is not applied; the mailbox is paused and reported instead.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct DeleteGuard {
    /// Deletions up to this many are always allowed.
    pub min_count: usize,
    /// Above `min_count`, at most this fraction of the calendar's synced events may go at once.
    pub max_fraction: f64,
}

impl Default for DeleteGuard {
    fn default() -> Self {
        DeleteGuard { min_count: 20, max_fraction: 0.5 }
    }
}

impl DeleteGuard {
    /// `Some(reason)` when deleting `deletions` of `synced` events must pause the mailbox.
    pub fn check(&self, deletions: usize, synced: usize) -> Option<String> {
        if deletions > self.min_count && (deletions as f64) > self.max_fraction * synced as f64 {
            Some(format!(
                "the plan would delete {deletions} of {synced} synced events at once (more than {} and more than {:.0}%); \
                 calbridge paused this mailbox instead of deleting. If the deletions are real, raise `sync.delete_guard_min` \
                 or `sync.delete_guard_fraction` and sync again (the calendar is listed afresh)",
                self.min_count,
                self.max_fraction * 100.0
            ))
        } else {
            None
        }
    }
}

fn dedup_last(changes: &[RemoteChange]) -> Vec<&RemoteChange> {
    // Exchange may report an item twice in one round; only its last state counts.
    let key = |c: &RemoteChange| match c {
        RemoteChange::Upsert(i) => i.remote_id.clone(),
        RemoteChange::Removed { remote_id } => remote_id.clone(),
        RemoteChange::SeriesListed { master_id, .. } => format!("series listing {master_id}"),
    };
    let last: HashMap<String, usize> = changes.iter().enumerate().map(|(i, c)| (key(c), i)).collect();
    changes.iter().enumerate().filter(|(i, c)| last[&key(c)] == *i).map(|(_, c)| c).collect()
}

fn ours<'a>(item: &'a RemoteItem, installation: &str) -> Option<&'a Provenance> {
    item.provenance.as_ref().filter(|p| p.installation == installation)
}

fn local_changed(ev: &Event, rec: &SyncRecord) -> bool {
    ev.deleted || (ev.version != rec.local_version && content_hash(&ev.data) != rec.local_hash)
}

/// The synced instances of the series `master_id` in the snapshot: (local id, remote id), by
/// local id.
fn instances_of<'a>(snapshot: &'a Snapshot, master_id: &str) -> Vec<(&'a EventId, &'a str)> {
    let mut out: Vec<(&EventId, &str)> = snapshot
        .records
        .values()
        .filter(|r| {
            snapshot.events.get(&r.local_id).is_some_and(|e| e.data.series.master_id.as_deref() == Some(master_id))
        })
        .map(|r| (&r.local_id, r.remote_id.as_str()))
        .collect();
    out.sort();
    out
}

/// Plans the local effects of a page of remote changes.
pub fn plan_pull(snapshot: &Snapshot, changes: &[RemoteChange], window: &Window, installation: &str) -> Plan {
    let mut actions = Vec::new();
    let mut linked: HashSet<EventId> = HashSet::new();
    for change in dedup_last(changes) {
        match change {
            RemoteChange::Removed { remote_id } => {
                if let Some(local_id) = snapshot.by_remote.get(remote_id) {
                    actions.push(Action::DeleteLocal {
                        local_id: local_id.clone(),
                        remote_id: remote_id.clone(),
                        why: "deleted in Exchange",
                    });
                }
                for (local_id, instance) in instances_of(snapshot, remote_id) {
                    actions.push(Action::DeleteLocal {
                        local_id: local_id.clone(),
                        remote_id: instance.to_string(),
                        why: "its series was deleted in Exchange",
                    });
                }
            }
            RemoteChange::SeriesListed { master_id, instance_ids } => {
                let listed: HashSet<&str> = instance_ids.iter().map(String::as_str).collect();
                for (local_id, instance) in instances_of(snapshot, master_id) {
                    if !listed.contains(instance) {
                        actions.push(Action::DeleteLocal {
                            local_id: local_id.clone(),
                            remote_id: instance.to_string(),
                            why: "no longer an occurrence of its series",
                        });
                    }
                }
            }
            RemoteChange::Upsert(item) => {
                if let Some(local_id) = snapshot.by_remote.get(&item.remote_id) {
                    let rec = &snapshot.records[local_id];
                    let Some(ev) = snapshot.events.get(local_id) else { continue };
                    if item.version == rec.remote_version {
                        continue; // no new version: nothing happened
                    }
                    if !window.contains(&item.data) && ev.origin == Origin::Exchange {
                        actions.push(Action::DeleteLocal {
                            local_id: local_id.clone(),
                            remote_id: item.remote_id.clone(),
                            why: "moved out of the sync window",
                        });
                        continue;
                    }
                    let remote_hash = content_hash(&item.data);
                    if remote_hash == rec.remote_hash {
                        actions.push(Action::Refresh {
                            local_id: local_id.clone(),
                            remote: item.clone(),
                            why: "new version, same content",
                        });
                    } else if ev.origin == Origin::Local && local_changed(ev, rec) {
                        actions.push(Action::Refresh {
                            local_id: local_id.clone(),
                            remote: item.clone(),
                            why: "changed on both sides; the host application's change wins",
                        });
                    } else {
                        actions.push(Action::UpdateLocal { local_id: local_id.clone(), remote: item.clone() });
                    }
                    continue;
                }
                let is_instance = matches!(item.data.series.kind, SeriesKind::Occurrence | SeriesKind::Exception);
                // An instance carries its series' tag: it is no duplicate of the series.
                if let Some(p) = ours(item, installation).filter(|_| !is_instance) {
                    if snapshot.events.contains_key(&p.local_id) {
                        if let Some(rec) = snapshot.records.get(&p.local_id) {
                            if rec.remote_id != item.remote_id {
                                actions.push(Action::DeleteRemote {
                                    local_id: None,
                                    remote_id: item.remote_id.clone(),
                                    why: "duplicate of an event calbridge created",
                                });
                            }
                        } else if !linked.insert(p.local_id.clone()) {
                            // A second copy of the same create in this page.
                            actions.push(Action::DeleteRemote {
                                local_id: None,
                                remote_id: item.remote_id.clone(),
                                why: "duplicate of an event calbridge created",
                            });
                        } else {
                            actions.push(Action::Link { local_id: p.local_id.clone(), remote: item.clone() });
                        }
                        continue;
                    }
                }
                // A series is kept as its instances; only a series calbridge created (whose
                // master is linked above) is known as a master.
                if item.data.series.kind == SeriesKind::Master || !window.contains(&item.data) {
                    continue;
                }
                let series = item.data.series.master_id.as_ref().and_then(|m| snapshot.by_remote.get(m));
                match series.and_then(|id| snapshot.events.get(id)).filter(|m| m.origin == Origin::Local) {
                    Some(master) if is_instance => {
                        actions.push(Action::Adopt { series: master.id.clone(), remote: item.clone() })
                    }
                    _ => actions.push(Action::CreateLocal { remote: item.clone() }),
                }
            }
        }
    }
    Plan { actions }
}

/// After a full listing: every synced event in the window that the listing did not contain is
/// gone from Exchange.
pub fn plan_reconcile(snapshot: &Snapshot, seen: &HashSet<String>, window: &Window) -> Plan {
    let mut gone: Vec<&SyncRecord> = snapshot
        .records
        .values()
        .filter(|r| !seen.contains(&r.remote_id))
        .filter(|r| snapshot.events.get(&r.local_id).is_some_and(|e| window.contains(&e.data)))
        .collect();
    gone.sort_by(|a, b| a.local_id.cmp(&b.local_id));
    Plan {
        actions: gone
            .into_iter()
            .map(|r| Action::DeleteLocal {
                local_id: r.local_id.clone(),
                remote_id: r.remote_id.clone(),
                why: "no longer in Exchange (full re-listing)",
            })
            .collect(),
    }
}

/// Plans pushing local changes to Exchange. A deletion of an event that never reached
/// Exchange is forgotten only inside `window`: there, the pull that precedes every push
/// would have found a create whose confirmation was lost; outside it, the tombstone waits.
pub fn plan_push(snapshot: &Snapshot, window: &Window) -> Plan {
    let mut events: Vec<&Event> = snapshot.events.values().filter(|e| e.origin == Origin::Local).collect();
    events.sort_by(|a, b| a.id.cmp(&b.id));
    let mut actions = Vec::new();
    for ev in events {
        match (ev.deleted, snapshot.records.get(&ev.id)) {
            (true, Some(rec)) => actions.push(Action::DeleteRemote {
                local_id: Some(ev.id.clone()),
                remote_id: rec.remote_id.clone(),
                why: "deleted in the host application",
            }),
            (true, None) if window.contains(&ev.data) => actions.push(Action::Forget { local_id: ev.id.clone() }),
            (true, None) => {}
            (false, None) => actions.push(Action::CreateRemote { local_id: ev.id.clone(), data: ev.data.clone() }),
            (false, Some(rec)) => {
                if local_changed(ev, rec) {
                    actions.push(Action::UpdateRemote {
                        local_id: ev.id.clone(),
                        remote_id: rec.remote_id.clone(),
                        if_match: rec.remote_version.clone(),
                        data: ev.data.clone(),
                    });
                }
            }
        }
    }
    Plan { actions }
}

/// The local id of an instance of the series `series` (a local event): the series' id, `@`,
/// and the instance's original start (`lab@20270301T080000Z`), so the same instance always
/// gets the same id.
pub fn instance_id(series: &EventId, remote: &RemoteItem) -> EventId {
    let original = remote.data.series.original_start.unwrap_or(remote.data.start);
    EventId::new(format!("{series}@{}", original.format("%Y%m%dT%H%M%SZ")))
}

/// The local writes of a pull action. `new_id` supplies ids for events new to calbridge.
/// Push actions have no local writes until confirmed (see [`confirm`]).
pub fn local_writes(
    action: &Action,
    snapshot: &Snapshot,
    calendar_id: i64,
    new_id: &mut dyn FnMut() -> EventId,
) -> Vec<Write> {
    // A record whose base, on both sides, is Exchange's content (hashed once).
    let record = |local_id: &EventId, remote: &RemoteItem, local_version: i64| {
        let remote_hash = content_hash(&remote.data);
        SyncRecord {
            calendar_id,
            local_id: local_id.clone(),
            remote_id: remote.remote_id.clone(),
            remote_version: remote.version.clone(),
            local_hash: remote_hash.clone(),
            remote_hash,
            local_version,
        }
    };
    // A new local event holding Exchange's content, with its sync record.
    let stored = |id: EventId, origin: Origin, remote: &RemoteItem| {
        let ev = Event { id: id.clone(), calendar_id, origin, data: remote.data.clone(), version: 1, deleted: false };
        vec![Write::PutEvent(ev), Write::PutRecord(record(&id, remote, 1))]
    };
    match action {
        Action::CreateLocal { remote } => stored(new_id(), Origin::Exchange, remote),
        Action::UpdateLocal { local_id, remote } => {
            let Some(old) = snapshot.events.get(local_id) else { return vec![] };
            let ev = Event { data: remote.data.clone(), version: old.version + 1, deleted: false, ..old.clone() };
            let rec = record(local_id, remote, ev.version);
            vec![Write::PutEvent(ev), Write::PutRecord(rec)]
        }
        Action::Adopt { series, remote } => {
            let id = instance_id(series, remote);
            if snapshot.events.contains_key(&id) {
                return vec![];
            }
            stored(id, Origin::Local, remote)
        }
        Action::DeleteLocal { local_id, .. } => vec![Write::RemoveEvent(local_id.clone())],
        Action::Link { local_id, remote } => {
            if !snapshot.events.contains_key(local_id) {
                return vec![];
            }
            // Which local version was pushed is unknown (the confirmation was lost): take
            // Exchange's content as the base and no version, so any difference from the local
            // content is pushed once more.
            vec![Write::PutRecord(record(local_id, remote, 0))]
        }
        Action::Refresh { local_id, remote, .. } => {
            let Some(rec) = snapshot.records.get(local_id) else { return vec![] };
            vec![Write::PutRecord(SyncRecord {
                remote_version: remote.version.clone(),
                remote_hash: content_hash(&remote.data),
                ..rec.clone()
            })]
        }
        Action::Forget { local_id } => vec![Write::RemoveEvent(local_id.clone())],
        Action::CreateRemote { .. } | Action::UpdateRemote { .. } | Action::DeleteRemote { .. } => vec![],
    }
}

/// The local writes of a push action after Exchange confirmed it. `confirmed` is Exchange's
/// answer to a create or update; `None` for a delete (done, or already gone).
pub fn confirm(action: &Action, snapshot: &Snapshot, calendar_id: i64, confirmed: Option<&Confirmed>) -> Vec<Write> {
    match (action, confirmed) {
        (Action::CreateRemote { local_id, data }, Some(c)) | (Action::UpdateRemote { local_id, data, .. }, Some(c)) => {
            let Some(ev) = snapshot.events.get(local_id) else { return vec![] };
            vec![Write::PutRecord(SyncRecord {
                calendar_id,
                local_id: local_id.clone(),
                remote_id: c.remote_id.clone(),
                remote_version: c.version.clone(),
                remote_hash: content_hash(&c.data),
                local_version: ev.version,
                local_hash: content_hash(data),
            })]
        }
        (Action::DeleteRemote { local_id: Some(local_id), .. }, _) => vec![Write::RemoveEvent(local_id.clone())],
        _ => vec![],
    }
}

#[cfg(test)]
mod tests;
