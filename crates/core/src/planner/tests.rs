//! Planner tests: examples for each rule, then a model-based property test with random edits
//! on both sides, lost confirmations and expired cursors.

use std::collections::{BTreeMap, HashMap, HashSet};

use chrono::{DateTime, Duration, TimeZone, Utc};
use proptest::prelude::*;

use super::*;
use crate::hash::content_hash;
use crate::model::*;
use crate::sync::*;

const INSTALLATION: &str = "test-install";
const CAL: i64 = 1;

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 6, 1, 8, 0, 0).unwrap()
}

fn window() -> Window {
    Window { start: t0() - Duration::days(30), end: t0() + Duration::days(365) }
}

fn data(subject: &str, day: i64) -> EventData {
    let start = t0() + Duration::days(day);
    EventData::new(subject, start, start + Duration::hours(1))
}

fn item(id: &str, version: &str, d: EventData, prov: Option<&str>) -> RemoteItem {
    RemoteItem {
        remote_id: id.into(),
        version: version.into(),
        data: d,
        provenance: prov.map(|l| Provenance { installation: INSTALLATION.into(), local_id: EventId::new(l) }),
    }
}

fn synced(local: &str, origin: Origin, remote: &str, version: &str, d: EventData) -> (Event, SyncRecord) {
    let ev = Event { id: EventId::new(local), calendar_id: CAL, origin, data: d.clone(), version: 1, deleted: false };
    let rec = SyncRecord {
        calendar_id: CAL,
        local_id: EventId::new(local),
        remote_id: remote.into(),
        remote_version: version.into(),
        remote_hash: content_hash(&d),
        local_version: 1,
        local_hash: content_hash(&d),
    };
    (ev, rec)
}

#[test]
fn new_remote_event_is_created_locally_and_same_version_is_ignored() {
    let snap = Snapshot::default();
    let plan = plan_pull(&snap, &[RemoteChange::Upsert(item("R1", "v1", data("a", 1), None))], &window(), INSTALLATION);
    assert!(matches!(plan.actions.as_slice(), [Action::CreateLocal { .. }]));

    let (ev, rec) = synced("L1", Origin::Exchange, "R1", "v1", data("a", 1));
    let snap = Snapshot::new(vec![ev], vec![rec]);
    let plan = plan_pull(&snap, &[RemoteChange::Upsert(item("R1", "v1", data("a", 1), None))], &window(), INSTALLATION);
    assert!(plan.is_empty(), "{plan}");
}

/// An instance of the series `M` (origin Exchange).
fn instance(local: &str, remote: &str, day: i64) -> (Event, SyncRecord) {
    let mut d = data("Lab", day);
    d.series = Series {
        kind: SeriesKind::Occurrence,
        master_id: Some("M".into()),
        original_start: Some(d.start),
        recurrence: None,
    };
    synced(local, Origin::Exchange, remote, "v1", d)
}

#[test]
fn a_listed_series_drops_the_instances_it_no_longer_has_and_a_deleted_master_takes_them_all() {
    let (e1, r1) = instance("L1", "M#1", 1);
    let (e2, r2) = instance("L2", "M#2", 8);
    let (e3, r3) = synced("L3", Origin::Exchange, "R3", "v1", data("single", 2));
    let snap = Snapshot::new(vec![e1, e2, e3], vec![r1, r2, r3]);
    let listed = RemoteChange::SeriesListed { master_id: "M".into(), instance_ids: vec!["M#1".into()] };
    let plan = plan_pull(&snap, &[listed], &window(), INSTALLATION);
    assert!(
        matches!(plan.actions.as_slice(), [Action::DeleteLocal { local_id, .. }] if local_id.as_str() == "L2"),
        "only the instance the listing lacks goes: {plan}"
    );
    let plan = plan_pull(&snap, &[RemoteChange::Removed { remote_id: "M".into() }], &window(), INSTALLATION);
    let gone: Vec<&str> = plan
        .actions
        .iter()
        .filter_map(|a| match a {
            Action::DeleteLocal { local_id, .. } => Some(local_id.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(gone, ["L1", "L2"], "the series' instances, not the single event: {plan}");
    let complete = RemoteChange::SeriesListed { master_id: "M".into(), instance_ids: vec!["M#1".into(), "M#2".into()] };
    assert!(plan_pull(&snap, &[complete], &window(), INSTALLATION).is_empty());
}

#[test]
fn a_change_needs_a_new_version_and_different_content() {
    let (ev, rec) = synced("L1", Origin::Exchange, "R1", "v1", data("a", 1));
    let snap = Snapshot::new(vec![ev], vec![rec]);
    // New version, same content: bookkeeping only.
    let plan = plan_pull(&snap, &[RemoteChange::Upsert(item("R1", "v2", data("a", 1), None))], &window(), INSTALLATION);
    assert!(matches!(plan.actions.as_slice(), [Action::Refresh { .. }]), "{plan}");
    // New version, new content: update.
    let plan = plan_pull(&snap, &[RemoteChange::Upsert(item("R1", "v2", data("b", 1), None))], &window(), INSTALLATION);
    assert!(matches!(plan.actions.as_slice(), [Action::UpdateLocal { .. }]), "{plan}");
}

#[test]
fn both_sides_changed_host_application_wins_for_its_own_events() {
    let (mut ev, rec) = synced("L1", Origin::Local, "R1", "v1", data("a", 1));
    ev.data.subject = "local edit".into();
    ev.version = 2;
    let snap = Snapshot::new(vec![ev], vec![rec]);
    let plan = plan_pull(
        &snap,
        &[RemoteChange::Upsert(item("R1", "v2", data("outlook edit", 1), None))],
        &window(),
        INSTALLATION,
    );
    let [Action::Refresh { .. }] = plan.actions.as_slice() else { panic!("{plan}") };
    let mut snap2 = snap.clone();
    snap2.apply(local_writes(&plan.actions[0], &snap, CAL, &mut || unreachable!()));
    let push = plan_push(&snap2, &window());
    let [Action::UpdateRemote { if_match, data, .. }] = push.actions.as_slice() else { panic!("{push}") };
    assert_eq!(if_match, "v2");
    assert_eq!(data.subject, "local edit");
}

#[test]
fn removed_deletes_locally_and_unknown_removed_is_ignored() {
    let (ev, rec) = synced("L1", Origin::Exchange, "R1", "v1", data("a", 1));
    let snap = Snapshot::new(vec![ev], vec![rec]);
    let plan = plan_pull(
        &snap,
        &[RemoteChange::Removed { remote_id: "R1".into() }, RemoteChange::Removed { remote_id: "R9".into() }],
        &window(),
        INSTALLATION,
    );
    assert!(matches!(plan.actions.as_slice(), [Action::DeleteLocal { .. }]), "{plan}");
}

#[test]
fn our_own_create_with_a_lost_confirmation_is_linked_not_duplicated() {
    let ev = Event {
        id: EventId::new("L1"),
        calendar_id: CAL,
        origin: Origin::Local,
        data: data("a", 1),
        version: 1,
        deleted: false,
    };
    let snap = Snapshot::new(vec![ev], vec![]);
    let plan =
        plan_pull(&snap, &[RemoteChange::Upsert(item("R1", "v1", data("a", 1), Some("L1")))], &window(), INSTALLATION);
    assert!(matches!(plan.actions.as_slice(), [Action::Link { .. }]), "{plan}");
    // Another installation's tag is just an Exchange event.
    let mut other = item("R2", "v1", data("b", 1), Some("L1"));
    other.provenance.as_mut().unwrap().installation = "elsewhere".into();
    let plan = plan_pull(&snap, &[RemoteChange::Upsert(other)], &window(), INSTALLATION);
    assert!(matches!(plan.actions.as_slice(), [Action::CreateLocal { .. }]), "{plan}");
}

#[test]
fn push_plans_create_update_delete_and_forget() {
    let (mut changed, rec) = synced("L2", Origin::Local, "R2", "v1", data("b", 2));
    changed.data.subject = "b2".into();
    changed.version = 2;
    let (mut gone, rec3) = synced("L3", Origin::Local, "R3", "v1", data("c", 3));
    gone.deleted = true;
    let new = Event {
        id: EventId::new("L1"),
        calendar_id: CAL,
        origin: Origin::Local,
        data: data("a", 1),
        version: 1,
        deleted: false,
    };
    let never = Event {
        id: EventId::new("L4"),
        calendar_id: CAL,
        origin: Origin::Local,
        data: data("d", 4),
        version: 2,
        deleted: true,
    };
    let (pulled, rec5) = synced("L5", Origin::Exchange, "R5", "v1", data("e", 5));
    let snap = Snapshot::new(vec![new, changed, gone, never, pulled], vec![rec, rec3, rec5]);
    let plan = plan_push(&snap, &window());
    let kinds: Vec<&str> = plan
        .actions
        .iter()
        .map(|a| match a {
            Action::CreateRemote { .. } => "create",
            Action::UpdateRemote { .. } => "update",
            Action::DeleteRemote { .. } => "delete",
            Action::Forget { .. } => "forget",
            _ => "other",
        })
        .collect();
    assert_eq!(kinds, ["create", "update", "delete", "forget"], "{plan}");
}

#[test]
fn full_relisting_deletes_only_what_is_missing_and_guard_pauses_mass_deletion() {
    let mut events = vec![];
    let mut records = vec![];
    for i in 0..50 {
        let (e, r) = synced(&format!("L{i}"), Origin::Exchange, &format!("R{i}"), "v1", data("x", i % 20));
        events.push(e);
        records.push(r);
    }
    let snap = Snapshot::new(events, records);
    let seen: HashSet<String> = (0..50).filter(|i| i % 10 != 0).map(|i| format!("R{i}")).collect();
    let plan = plan_reconcile(&snap, &seen, &window());
    assert_eq!(plan.local_deletions(), 5);
    let guard = DeleteGuard::default();
    assert!(guard.check(plan.local_deletions(), 50).is_none());
    let plan = plan_reconcile(&snap, &HashSet::new(), &window());
    assert_eq!(plan.local_deletions(), 50);
    let why = guard.check(plan.local_deletions(), 50).expect("an empty-looking mailbox must pause");
    assert!(why.contains("paused"), "{why}");
}

#[test]
fn plans_print_one_line_per_action() {
    let plan = plan_pull(
        &Snapshot::default(),
        &[RemoteChange::Upsert(item("R1", "v1", data("Team sync", 1), None))],
        &window(),
        INSTALLATION,
    );
    let text = plan.to_string();
    assert!(text.starts_with("pull   create  R1"), "{text}");
    assert!(text.contains("\"Team sync\""), "{text}");
    assert_eq!(Plan::default().to_string(), "nothing to do\n");
}

// ---------------------------------------------------------------------------------------------
// Model-based property test.

/// A minimal Exchange: items with versions, a change log, `transactionId` de-duplication.
#[derive(Default, Debug)]
struct MemRemote {
    items: BTreeMap<String, (u64, EventData, Option<Provenance>)>,
    log: Vec<String>,
    txn: HashMap<String, String>,
    next: u64,
    epoch: u64,
}

impl MemRemote {
    fn bump(&mut self, id: &str) {
        self.log.push(id.to_string());
    }
    fn create(&mut self, d: EventData, prov: Option<Provenance>) -> String {
        if let Some(p) = &prov {
            if let Some(id) = self.txn.get(p.local_id.as_str()) {
                if self.items.contains_key(id) {
                    return id.clone();
                }
            }
        }
        self.next += 1;
        let id = format!("R{}", self.next);
        if let Some(p) = &prov {
            self.txn.insert(p.local_id.0.clone(), id.clone());
        }
        self.items.insert(id.clone(), (1, d, prov));
        self.bump(&id);
        id
    }
    fn update(&mut self, id: &str, d: EventData) {
        if let Some(it) = self.items.get_mut(id) {
            it.0 += 1;
            it.1 = d;
            self.bump(id);
        }
    }
    fn delete(&mut self, id: &str) {
        if self.items.remove(id).is_some() {
            self.bump(id);
        }
    }
    fn to_item(&self, id: &str) -> RemoteItem {
        let (v, d, p) = &self.items[id];
        RemoteItem { remote_id: id.into(), version: format!("v{v}"), data: d.clone(), provenance: p.clone() }
    }
    /// Cursor "epoch:since:upto:offset"; since = -1 is a full listing.
    fn changes(&self, cursor: Option<&Cursor>) -> Result<ChangePage, ()> {
        let (since, upto, offset) = match cursor {
            None => (-1i64, self.log.len(), 0usize),
            Some(c) => {
                let p: Vec<&str> = c.0.split(':').collect();
                if p[0].parse::<u64>().unwrap() != self.epoch {
                    return Err(());
                }
                let since: i64 = p[1].parse().unwrap();
                let upto: usize = p[2].parse().unwrap();
                let offset: usize = p[3].parse().unwrap();
                if offset == usize::MAX {
                    (upto as i64, self.log.len(), 0)
                } else {
                    (since, upto, offset)
                }
            }
        };
        let ids: Vec<String> = if since < 0 {
            self.items.keys().cloned().collect()
        } else {
            let mut seen = Vec::new();
            for id in &self.log[since as usize..upto.min(self.log.len())] {
                if !seen.contains(id) {
                    seen.push(id.clone());
                }
            }
            seen
        };
        const PAGE: usize = 3;
        let page: Vec<RemoteChange> = ids
            .iter()
            .skip(offset)
            .take(PAGE)
            .map(|id| {
                if self.items.contains_key(id) {
                    RemoteChange::Upsert(self.to_item(id))
                } else {
                    RemoteChange::Removed { remote_id: id.clone() }
                }
            })
            .collect();
        let done = offset + PAGE >= ids.len();
        let next = if done {
            Cursor(format!("{}:{}:{}:{}", self.epoch, upto, upto, usize::MAX))
        } else {
            Cursor(format!("{}:{}:{}:{}", self.epoch, since, upto, offset + PAGE))
        };
        Ok(ChangePage { changes: page, next, done, skipped: vec![] })
    }
}

#[derive(Clone, Debug)]
enum Op {
    LocalCreate(u8),
    LocalUpdate(u8, u8),
    LocalDelete(u8),
    RemoteCreate(u8),
    RemoteUpdate(u8, u8),
    RemoteTouch(u8),
    RemoteDelete(u8),
    ExpireCursor,
    /// A sync; `lose` makes the n-th push confirmation of this sync get lost (0: none).
    Sync {
        lose: u8,
    },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => any::<u8>().prop_map(Op::LocalCreate),
        2 => (any::<u8>(), any::<u8>()).prop_map(|(a, b)| Op::LocalUpdate(a, b)),
        1 => any::<u8>().prop_map(Op::LocalDelete),
        3 => any::<u8>().prop_map(Op::RemoteCreate),
        2 => (any::<u8>(), any::<u8>()).prop_map(|(a, b)| Op::RemoteUpdate(a, b)),
        1 => any::<u8>().prop_map(Op::RemoteTouch),
        1 => any::<u8>().prop_map(Op::RemoteDelete),
        1 => Just(Op::ExpireCursor),
        3 => (0u8..4).prop_map(|lose| Op::Sync { lose }),
    ]
}

#[derive(Default)]
struct World {
    remote: MemRemote,
    snap: Snapshot,
    cursor: Option<Cursor>,
    next_local: u64,
    writes: usize,
}

impl World {
    fn new_id(&mut self) -> EventId {
        self.next_local += 1;
        EventId::new(format!("L{}", self.next_local))
    }

    fn commit(&mut self, writes: Vec<Write>) {
        self.writes += writes.len();
        self.snap.apply(writes);
    }

    fn pull(&mut self) {
        let mut full = self.cursor.is_none();
        let mut seen = HashSet::new();
        loop {
            let page = match self.remote.changes(self.cursor.as_ref()) {
                Ok(p) => p,
                Err(()) => {
                    // Cursor lost: re-list everything and reconcile.
                    self.cursor = None;
                    full = true;
                    seen.clear();
                    continue;
                }
            };
            for c in &page.changes {
                if let RemoteChange::Upsert(i) = c {
                    seen.insert(i.remote_id.clone());
                }
            }
            let plan = plan_pull(&self.snap, &page.changes, &window(), INSTALLATION);
            let mut writes = vec![];
            let mut counter = self.next_local;
            for a in &plan.actions {
                if a.is_remote() {
                    // A duplicate of our own create: delete it in Exchange.
                    if let Action::DeleteRemote { remote_id, .. } = a {
                        self.remote.delete(remote_id);
                    }
                    continue;
                }
                let snap = &self.snap;
                writes.extend(local_writes(a, snap, CAL, &mut || {
                    counter += 1;
                    EventId::new(format!("L{counter}"))
                }));
            }
            self.next_local = counter;
            self.commit(writes);
            if self.cursor.as_ref() != Some(&page.next) {
                self.cursor = Some(page.next.clone());
                self.writes += 1;
            }
            if page.done {
                break;
            }
        }
        if full {
            let plan = plan_reconcile(&self.snap, &seen, &window());
            let writes: Vec<Write> =
                plan.actions.iter().flat_map(|a| local_writes(a, &self.snap, CAL, &mut || unreachable!())).collect();
            self.commit(writes);
        }
    }

    fn push(&mut self, lose: u8) {
        let plan = plan_push(&self.snap, &window());
        for (n, a) in plan.actions.iter().enumerate() {
            let lost = lose != 0 && n + 1 == lose as usize;
            let confirmed = match a {
                Action::CreateRemote { local_id, data } => {
                    let prov = Provenance { installation: INSTALLATION.into(), local_id: local_id.clone() };
                    let id = self.remote.create(data.clone(), Some(prov));
                    let it = self.remote.to_item(&id);
                    Some(Confirmed { remote_id: id, version: it.version, data: it.data })
                }
                Action::UpdateRemote { remote_id, if_match, data, .. } => {
                    match self.remote.items.get(remote_id) {
                        Some((v, _, _)) if format!("v{v}") == *if_match => {
                            self.remote.update(remote_id, data.clone());
                            let it = self.remote.to_item(remote_id);
                            Some(Confirmed { remote_id: remote_id.clone(), version: it.version, data: it.data })
                        }
                        Some(_) => continue, // version conflict: the next pull refreshes
                        None => continue,    // gone: the next pull deletes it locally
                    }
                }
                Action::DeleteRemote { remote_id, .. } => {
                    self.remote.delete(remote_id);
                    None
                }
                Action::Forget { .. } => None,
                _ => unreachable!("push plans only push actions"),
            };
            if lost {
                continue;
            }
            let writes = confirm(a, &self.snap, CAL, confirmed.as_ref());
            let writes = if matches!(a, Action::Forget { .. }) {
                local_writes(a, &self.snap, CAL, &mut || unreachable!())
            } else {
                writes
            };
            self.commit(writes);
        }
    }

    fn sync(&mut self, lose: u8) {
        self.pull();
        self.push(lose);
    }

    fn live_local_ids(&self, origin: Option<Origin>) -> Vec<EventId> {
        let mut v: Vec<EventId> = self
            .snap
            .events
            .values()
            .filter(|e| !e.deleted && origin.is_none_or(|o| e.origin == o))
            .map(|e| e.id.clone())
            .collect();
        v.sort();
        v
    }

    fn known_remote_ids(&self) -> Vec<String> {
        let mut v: Vec<String> = self
            .snap
            .records
            .values()
            .map(|r| r.remote_id.clone())
            .filter(|r| self.remote.items.contains_key(r))
            .collect();
        v.sort();
        v
    }
}

fn pick<T: Clone>(v: &[T], n: u8) -> Option<T> {
    if v.is_empty() {
        None
    } else {
        Some(v[n as usize % v.len()].clone())
    }
}

fn run(ops: &[Op]) -> Result<(), TestCaseError> {
    let mut w = World::default();
    // Logical events expected alive at the end: local ones by local id, Exchange ones by remote id.
    let mut alive_local: HashSet<EventId> = HashSet::new();
    let mut alive_remote: HashSet<String> = HashSet::new();
    for op in ops {
        match *op {
            Op::LocalCreate(s) => {
                let id = w.new_id();
                let d = data(&format!("local {s}"), (s % 40) as i64);
                w.snap.events.insert(
                    id.clone(),
                    Event {
                        id: id.clone(),
                        calendar_id: CAL,
                        origin: Origin::Local,
                        data: d,
                        version: 1,
                        deleted: false,
                    },
                );
                alive_local.insert(id);
            }
            Op::LocalUpdate(n, s) => {
                if let Some(id) = pick(&w.live_local_ids(Some(Origin::Local)), n) {
                    let ev = w.snap.events.get_mut(&id).unwrap();
                    ev.data.subject = format!("local edit {s}");
                    ev.data.start = t0() + Duration::days((s % 40) as i64);
                    ev.data.end = ev.data.start + Duration::hours(2);
                    ev.version += 1;
                }
            }
            Op::LocalDelete(n) => {
                if let Some(id) = pick(&w.live_local_ids(Some(Origin::Local)), n) {
                    // Always a tombstone: a create whose confirmation was lost may exist in
                    // Exchange, and only the next pull can tell.
                    let ev = w.snap.events.get_mut(&id).unwrap();
                    ev.deleted = true;
                    ev.version += 1;
                    alive_local.remove(&id);
                }
            }
            Op::RemoteCreate(s) => {
                let id = w.remote.create(data(&format!("outlook {s}"), (s % 40) as i64), None);
                alive_remote.insert(id);
            }
            // People in Outlook edit and delete events calbridge has seen (an Exchange event, or
            // one calbridge created and got confirmed).
            Op::RemoteUpdate(n, s) => {
                if let Some(id) = pick(&w.known_remote_ids(), n) {
                    let mut d = w.remote.items[&id].1.clone();
                    d.subject = format!("outlook edit {s}");
                    w.remote.update(&id, d);
                }
            }
            Op::RemoteTouch(n) => {
                if let Some(id) = pick(&w.known_remote_ids(), n) {
                    let d = w.remote.items[&id].1.clone();
                    w.remote.update(&id, d);
                }
            }
            Op::RemoteDelete(n) => {
                if let Some(id) = pick(&w.known_remote_ids(), n) {
                    if let Some(p) = &w.remote.items[&id].2 {
                        alive_local.remove(&p.local_id);
                    }
                    alive_remote.remove(&id);
                    w.remote.delete(&id);
                }
            }
            Op::ExpireCursor => w.remote.epoch += 1,
            Op::Sync { lose } => w.sync(lose),
        }
    }
    // Faults stop: two clean syncs converge (the first may relink lost confirmations).
    w.sync(0);
    w.sync(0);

    // Converged: records pair every live local event with one remote item, same content.
    let live: Vec<&Event> = w.snap.events.values().filter(|e| !e.deleted).collect();
    prop_assert_eq!(w.snap.events.len(), live.len(), "tombstones left after convergence");
    for ev in &live {
        let rec = w.snap.records.get(&ev.id);
        prop_assert!(rec.is_some(), "event {} has no sync record", ev.id);
        let rec = rec.unwrap();
        let remote = w.remote.items.get(&rec.remote_id);
        prop_assert!(remote.is_some(), "event {} points at missing remote {}", ev.id, rec.remote_id);
        prop_assert_eq!(&remote.unwrap().1, &ev.data, "content differs for {}", ev.id);
    }
    // No duplicates: every remote item is known exactly once.
    let known: HashSet<&String> = w.snap.records.values().map(|r| &r.remote_id).collect();
    prop_assert_eq!(known.len(), w.snap.records.len());
    prop_assert_eq!(w.remote.items.len(), known.len(), "remote items not known locally (duplicates?)");
    let mut provs = HashSet::new();
    for (_, _, p) in w.remote.items.values() {
        if let Some(p) = p {
            prop_assert!(provs.insert(p.local_id.clone()), "two remote copies of {}", p.local_id);
        }
    }
    // Nothing lost: every logical event still alive is on both sides.
    for id in &alive_local {
        prop_assert!(w.snap.events.contains_key(id), "local event {} was lost", id);
    }
    for id in &alive_remote {
        prop_assert!(w.remote.items.contains_key(id), "remote event {} was lost", id);
        prop_assert!(w.snap.by_remote.contains_key(id), "remote event {} never arrived", id);
    }
    prop_assert_eq!(w.snap.events.len(), alive_local.len() + alive_remote.len());
    // Idle: one more sync writes nothing.
    let before = w.writes;
    let log = w.remote.log.len();
    w.sync(0);
    prop_assert_eq!(w.writes, before, "an idle sync wrote to the store");
    prop_assert_eq!(w.remote.log.len(), log, "an idle sync wrote to Exchange");
    Ok(())
}

fn cases() -> u32 {
    std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(1000)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), ..ProptestConfig::default() })]

    /// Random edits on both sides, lost confirmations and expired cursors: the sync converges,
    /// loses nothing, duplicates nothing, and an idle sync writes nothing.
    #[test]
    fn sync_converges_without_loss_or_duplicates(ops in proptest::collection::vec(op(), 1..40)) {
        run(&ops)?;
    }
}
