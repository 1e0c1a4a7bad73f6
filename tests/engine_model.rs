//! Model-based property test of the whole sync path: the real engine, Graph client and SQLite
//! store against the simulator over HTTP. Random edits on both sides, lost confirmations,
//! expired cursors and rounds that break off; then, faults over, the sync converges, loses
//! nothing, duplicates nothing, and an idle sync writes nothing on either side.
//!
//! Cases per run: `ENGINE_MODEL_CASES` (default 64; each case starts its own simulator).

use std::collections::{HashMap, HashSet};

use chrono::{Duration, Utc};
use proptest::prelude::*;
use serde_json::json;

use calbridge_core::model::*;
use calbridge_graph::client::GraphOptions;
use calbridge_sim::NewEvent;
use calbridge_tests::{FailingAfter, World, SCENARIO};

const ANN: &str = "ann@fabrikam.example";

#[derive(Clone, Debug)]
enum Op {
    LocalCreate(u8),
    LocalUpdate(u8, u8),
    LocalDelete(u8),
    RemoteCreate(u8),
    RemoteUpdate(u8, u8),
    RemoteDelete(u8),
    ExpireCursor,
    /// A sync; `lose`: the answers to the first two changes (or to a change and the client's retry of it) are lost; `break_after`: the pull's n-th page
    /// request fails (a crash or an outage in the middle of a round).
    Sync {
        lose: bool,
        break_after: Option<u8>,
    },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => any::<u8>().prop_map(Op::LocalCreate),
        2 => (any::<u8>(), any::<u8>()).prop_map(|(a, b)| Op::LocalUpdate(a, b)),
        1 => any::<u8>().prop_map(Op::LocalDelete),
        3 => any::<u8>().prop_map(Op::RemoteCreate),
        2 => (any::<u8>(), any::<u8>()).prop_map(|(a, b)| Op::RemoteUpdate(a, b)),
        1 => any::<u8>().prop_map(Op::RemoteDelete),
        1 => Just(Op::ExpireCursor),
        4 => (any::<bool>(), proptest::option::weighted(0.2, 1u8..4)).prop_map(|(lose, break_after)| Op::Sync { lose, break_after }),
    ]
}

fn day(n: u8, hour: u32) -> (chrono::DateTime<Utc>, chrono::DateTime<Utc>) {
    let today = Utc::now().date_naive().and_hms_opt(0, 0, 0).unwrap().and_utc();
    let start = today + Duration::days((n % 30) as i64) + Duration::hours(hour as i64);
    (start, start + Duration::hours(1))
}

fn pick<T: Clone>(v: &[T], n: u8) -> Option<T> {
    (!v.is_empty()).then(|| v[n as usize % v.len()].clone())
}

async fn run(ops: Vec<Op>) -> Result<(), TestCaseError> {
    let w = World::with(SCENARIO, GraphOptions { page_size: 4, ..GraphOptions::default() }, None).await;
    let cal = w.link(ANN, CalendarKind::Person).await;
    let outlook = w.sim.outlook();
    let mut alive_local: HashSet<EventId> = HashSet::new();
    let mut alive_remote: HashSet<String> = HashSet::new();
    let mut next = 0u32;

    for op in ops {
        match op {
            Op::LocalCreate(s) => {
                next += 1;
                let id = EventId::new(format!("local-{next}"));
                let (a, b) = day(s, 9);
                w.store.create_local_event(cal.id, &id, &EventData::new(format!("local {s}"), a, b)).await.unwrap();
                alive_local.insert(id);
            }
            Op::LocalUpdate(n, s) => {
                let ours: Vec<Event> = w.local(&cal).await.into_iter().filter(|e| e.origin == Origin::Local).collect();
                if let Some(ev) = pick(&ours, n) {
                    let mut d = ev.data.clone();
                    d.subject = format!("local edit {s}");
                    w.store.update_local_event(&ev.id, &d, None).await.unwrap();
                }
            }
            Op::LocalDelete(n) => {
                let ours: Vec<Event> = w.local(&cal).await.into_iter().filter(|e| e.origin == Origin::Local).collect();
                if let Some(ev) = pick(&ours, n) {
                    w.store.delete_local_event(&ev.id).await.unwrap();
                    alive_local.remove(&ev.id);
                }
            }
            Op::RemoteCreate(s) => {
                let (a, b) = day(s, 14);
                let id = outlook.create_event(ANN, NewEvent::new(format!("outlook {s}"), a, b)).unwrap();
                alive_remote.insert(id);
            }
            // People in Outlook change what calbridge has seen.
            Op::RemoteUpdate(n, _) | Op::RemoteDelete(n) => {
                let snap = w.store.snapshot(cal.id).await.unwrap();
                let mut known: Vec<(String, EventId)> = snap
                    .records
                    .values()
                    .filter(|r| outlook.get_event(ANN, &r.remote_id).is_ok())
                    .map(|r| (r.remote_id.clone(), r.local_id.clone()))
                    .collect();
                known.sort();
                if let Some((remote_id, local_id)) = pick(&known, n) {
                    if let Op::RemoteUpdate(_, s) = op {
                        outlook.update_event(ANN, &remote_id, json!({"subject": format!("outlook edit {s}")})).unwrap();
                    } else {
                        outlook.delete_event(ANN, &remote_id).unwrap();
                        alive_local.remove(&local_id);
                        alive_remote.remove(&remote_id);
                    }
                }
            }
            Op::ExpireCursor => w.sim.faults().expire_delta_tokens(),
            Op::Sync { lose, break_after } => {
                if lose {
                    w.sim.faults().drop_responses_after_apply(2);
                }
                match break_after {
                    Some(k) => {
                        let flaky = FailingAfter::new(w.remote.clone(), k as u64);
                        w.engine.sync_calendar(&flaky, &cal, Utc::now()).await;
                    }
                    None => {
                        w.sync(&cal).await;
                    }
                }
                w.sim.faults().clear();
            }
        }
    }

    // Faults over: two syncs converge (the first may link lost confirmations).
    for _ in 0..2 {
        let r = w.sync(&cal).await;
        prop_assert!(r.error.is_none() && r.paused.is_none(), "clean sync failed: {:?} {:?}", r.error, r.paused);
    }

    let local = w.local(&cal).await;
    let snap = w.store.snapshot(cal.id).await.unwrap();
    prop_assert_eq!(snap.events.len(), local.len(), "tombstones left after convergence");
    let in_exchange = outlook.list_events(ANN).unwrap();
    let by_id: HashMap<String, &calbridge_sim::wire::Event> =
        in_exchange.iter().map(|e| (e.id.clone().unwrap_or_default(), e)).collect();
    // Converged: every local event is paired with one Exchange event of the same content.
    for ev in &local {
        let rec = snap.records.get(&ev.id);
        prop_assert!(rec.is_some(), "{} has no sync record", ev.id);
        let there = by_id.get(&rec.unwrap().remote_id);
        prop_assert!(there.is_some(), "{} points at a missing Exchange event", ev.id);
        prop_assert_eq!(
            there.unwrap().subject.as_deref(),
            Some(ev.data.subject.as_str()),
            "content differs for {}",
            ev.id
        );
    }
    // Nothing duplicated, nothing lost.
    prop_assert_eq!(in_exchange.len(), local.len(), "Exchange and calbridge hold different numbers of events");
    let tags: Vec<&String> = in_exchange.iter().filter_map(|e| e.transaction_id.as_ref()).collect();
    prop_assert_eq!(tags.iter().collect::<HashSet<_>>().len(), tags.len(), "two Exchange copies of one create");
    for id in &alive_local {
        prop_assert!(local.iter().any(|e| &e.id == id), "local event {} was lost", id);
    }
    for id in &alive_remote {
        prop_assert!(snap.by_remote.contains_key(id), "Exchange event {} never arrived or was lost", id);
    }
    prop_assert_eq!(local.len(), alive_local.len() + alive_remote.len());

    // Idle: nothing written on either side.
    let before = w.sim.stats();
    let idle = w.sync(&cal).await;
    prop_assert_eq!(idle.writes.total(), 0, "an idle sync wrote to the store: {:?}", idle);
    let after = w.sim.stats();
    for route in ["event_create", "event_update", "event_delete"] {
        prop_assert_eq!(
            before.by_route.get(route),
            after.by_route.get(route),
            "an idle sync wrote to Exchange ({})",
            route
        );
    }
    Ok(())
}

fn cases() -> u32 {
    std::env::var("ENGINE_MODEL_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(64)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), max_shrink_iters: 200, ..ProptestConfig::default() })]

    #[test]
    fn the_engine_converges_over_graph_without_loss_or_duplicates(ops in proptest::collection::vec(op(), 1..24)) {
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        rt.block_on(run(ops))?;
    }
}
