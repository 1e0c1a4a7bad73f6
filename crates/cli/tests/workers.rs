//! Several `calbridge serve` workers on one PostgreSQL database, end to end: two real worker
//! processes, the simulator, a fresh database. The workers share the mailboxes out with leases
//! (each mailbox synced by one worker, once per cycle); after `kill -9` of one, the other
//! takes its mailboxes over within a lease's lifetime; events made before and after the kill
//! all arrive, none twice. Workers started at the same instant link the configured
//! mailboxes once, and a sync asked of one worker for a mailbox the other holds is run by the
//! holder.
//!
//! Needs a PostgreSQL server (`CALBRIDGE_TEST_POSTGRES`, default
//! `postgres://postgres@127.0.0.1:5432/postgres`); without one the test is skipped, except
//! under CI, where it fails.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

mod common;

use calbridge_sim::{NewEvent, Scenario, Simulator};
use chrono::Utc;
use common::{drop_database, fresh_database};

const MAILBOXES: usize = 8;
const LEASE_SECS: u64 = 3;
const MASTER_KEY: &str = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";

fn scenario() -> String {
    let mut s = String::from(
        r#"name = "workers"
[tenant]
id = "8e1d6c2a-3b4f-4a5e-9d7c-6b5a4f3e2d1c"
domain = "fabrikam.example"
[[apps]]
client_id = "c0ffee00-1234-4abc-8def-0123456789ab"
client_secret = "workers-secret-value"
roles = ["Calendars.ReadWrite", "User.Read.All"]
"#,
    );
    for i in 0..MAILBOXES {
        s.push_str(&format!("[[mailboxes]]\nemail = \"mb{i}@fabrikam.example\"\nname = \"Mailbox {i}\"\n"));
    }
    s
}

struct Worker {
    name: &'static str,
    child: Child,
    log: PathBuf,
}

impl Drop for Worker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start(dir: &Path, name: &'static str, store: &str) -> Worker {
    let log = dir.join(format!("{name}.log"));
    let out = std::fs::File::create(dir.join(format!("{name}.out"))).unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_calbridge"))
        .args(["--config", dir.join("calbridge.toml").to_str().unwrap(), "serve", "--listen", "127.0.0.1:0"])
        .args(["--sync-interval", "1", "--worker-id", name, "--lease-secs", &LEASE_SECS.to_string()])
        .env("CALBRIDGE_STORE", store)
        .env("CALBRIDGE_MASTER_KEY", MASTER_KEY)
        .env("CALBRIDGE_LOG", "warn,calbridge_api::sync=debug,calbridge_api::leases=debug")
        .stdout(out)
        .stderr(std::fs::File::create(&log).unwrap())
        .stdin(Stdio::null())
        .spawn()
        .expect("start calbridge serve");
    Worker { name, child, log }
}

/// How many times each mailbox appears in a worker's log of syncs so far.
fn counts(w: &Worker) -> BTreeMap<String, usize> {
    let text = std::fs::read_to_string(&w.log).unwrap_or_default();
    let mut out = BTreeMap::new();
    for line in text.lines().filter(|l| l.contains("calendar synced") && l.contains(&format!("worker={}", w.name))) {
        if let Some(mailbox) = line.split("mailbox=").nth(1).and_then(|r| r.split_whitespace().next()) {
            *out.entry(mailbox.to_string()).or_insert(0) += 1;
        }
    }
    out
}

fn wait_until(what: &str, limit: Duration, mut check: impl FnMut() -> bool) -> Duration {
    let started = Instant::now();
    while started.elapsed() < limit {
        if check() {
            return started.elapsed();
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("timed out after {limit:?} waiting until {what}");
}

/// The configuration both workers read: one Graph connection to the simulator and every
/// mailbox linked. Returns the mailboxes.
fn write_config(dir: &Path, sim: &Simulator, running: &calbridge_sim::RunningSim) -> BTreeSet<String> {
    let creds = sim.credentials();
    let mut config = format!(
        "[[connections]]\nname = \"fabrikam\"\nkind = \"graph\"\ntenant_id = \"{}\"\nclient_id = \"{}\"\n\
         client_secret = \"{}\"\nauthority_url = \"{}\"\ngraph_url = \"{}\"\n",
        creds.tenant_domain,
        creds.client_id,
        creds.client_secret,
        running.authority_url(),
        running.graph_url()
    );
    let mailboxes: BTreeSet<String> = (0..MAILBOXES).map(|i| format!("mb{i}@fabrikam.example")).collect();
    for m in &mailboxes {
        config.push_str(&format!("[[calendars]]\nemail = \"{m}\"\nkind = \"person\"\nconnection = \"fabrikam\"\n"));
    }
    std::fs::write(dir.join("calbridge.toml"), config).unwrap();
    mailboxes
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_workers_share_the_mailboxes_and_one_takes_over_when_the_other_is_killed() {
    let Some((store_url, db)) = fresh_database("workers").await else { return };
    let sim = Simulator::new(&Scenario::from_toml(&scenario()).unwrap()).unwrap();
    let running = sim.start().await.unwrap();
    let dir = std::env::temp_dir().join(format!("calbridge-workers-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let mailboxes = write_config(&dir, &sim, &running);

    // A first, alone, holds everything; then B joins and they share.
    let mut a = start(&dir, "A", &store_url);
    wait_until("worker A syncs every mailbox", Duration::from_secs(60), || counts(&a).len() == MAILBOXES);
    let b = start(&dir, "B", &store_url);
    wait_until("worker B syncs some mailboxes", Duration::from_secs(60), || !counts(&b).is_empty());
    // Let the share settle (a heartbeat each), then watch a window of cycles.
    std::thread::sleep(Duration::from_secs(2 * LEASE_SECS));
    let (a0, b0) = (counts(&a), counts(&b));
    std::thread::sleep(Duration::from_secs(4));
    let (a1, b1) = (counts(&a), counts(&b));
    let delta = |before: &BTreeMap<String, usize>, after: &BTreeMap<String, usize>| -> BTreeMap<String, usize> {
        after
            .iter()
            .map(|(m, n)| (m.clone(), n - before.get(m).copied().unwrap_or(0)))
            .filter(|(_, n)| *n > 0)
            .collect()
    };
    let (da, db_) = (delta(&a0, &a1), delta(&b0, &b1));
    println!("in 4 s of shared work: worker A synced {da:?}, worker B synced {db_:?}");
    let by_a: BTreeSet<&String> = da.keys().collect();
    let by_b: BTreeSet<&String> = db_.keys().collect();
    assert!(by_a.is_disjoint(&by_b), "a mailbox synced by both workers: A {by_a:?}, B {by_b:?}");
    let covered: BTreeSet<&String> = by_a.union(&by_b).copied().collect();
    assert_eq!(covered.len(), MAILBOXES, "every mailbox synced: A {by_a:?}, B {by_b:?}");
    assert!(!by_a.is_empty() && !by_b.is_empty(), "the workers share the mailboxes");
    for d in [&da, &db_] {
        let (lo, hi) = (d.values().min().unwrap(), d.values().max().unwrap());
        assert!(hi - lo <= 1, "each mailbox of a worker synced once per cycle: {d:?}");
    }

    // Events made now arrive; then A is killed with SIGKILL, more events are made, and B
    // takes A's mailboxes over.
    for m in &mailboxes {
        let at = Utc::now() + chrono::Duration::days(2);
        sim.outlook().create_event(m, NewEvent::new("before the kill", at, at + chrono::Duration::hours(1))).unwrap();
    }
    a.child.kill().expect("kill -9 worker A");
    a.child.wait().unwrap();
    let orphans: BTreeSet<String> = da.keys().cloned().collect();
    let b_before = counts(&b);
    for m in &mailboxes {
        let at = Utc::now() + chrono::Duration::days(3);
        sim.outlook().create_event(m, NewEvent::new("after the kill", at, at + chrono::Duration::hours(1))).unwrap();
    }
    let took = wait_until("worker B syncs A's mailboxes", Duration::from_secs(10 * LEASE_SECS), || {
        let now = counts(&b);
        orphans.iter().all(|m| now.get(m).copied().unwrap_or(0) > b_before.get(m).copied().unwrap_or(0))
    });
    println!(
        "worker B took over A's {} mailboxes {:.1} s after the kill (lease: {LEASE_SECS} s)",
        orphans.len(),
        took.as_secs_f64()
    );

    // Nothing lost, nothing twice: every mailbox holds each event once.
    let store = calbridge_store::open_store(&store_url).await.unwrap();
    let from = Utc::now() - chrono::Duration::days(1);
    let to = Utc::now() + chrono::Duration::days(5);
    let mut complete = false;
    for _ in 0..100 {
        let mut all = true;
        for m in &mailboxes {
            let cal = store.calendar_by_email(m).await.unwrap().expect("linked");
            let events = store.events_in_range(cal.id, from, to).await.unwrap();
            let n = |s: &str| events.iter().filter(|e| e.data.subject == s).count();
            assert!(n("before the kill") <= 1 && n("after the kill") <= 1, "a duplicate in {m}: {events:?}");
            all &= n("before the kill") == 1 && n("after the kill") == 1;
        }
        if all {
            complete = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(complete, "every event arrived");
    drop(b);
    drop(a);
    drop(store);
    drop_database(&db).await;
    let _ = std::fs::remove_dir_all(&dir);
}

/// The address a worker listens on, from the line `serve` prints first.
fn address(w: &Worker, dir: &Path) -> String {
    let mut found = None;
    wait_until("the worker listens", Duration::from_secs(30), || {
        let out = std::fs::read_to_string(dir.join(format!("{}.out", w.name))).unwrap_or_default();
        found = out.lines().find_map(|l| l.strip_prefix("calbridge API listening on http://")).map(str::to_string);
        found.is_some()
    });
    found.unwrap()
}

/// A raw HTTP/1.1 POST without a body: (status, body).
fn post(addr: &str, path: &str, key: &str) -> (u16, String) {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    write!(
        s,
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {key}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    let status = out.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    (status, out.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workers_started_together_link_once_and_pass_syncs_to_the_holder() {
    let Some((store_url, db)) = fresh_database("workers").await else { return };
    let sim = Simulator::new(&Scenario::from_toml(&scenario()).unwrap()).unwrap();
    let running = sim.start().await.unwrap();
    let dir = std::env::temp_dir().join(format!("calbridge-workers-together-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let mailboxes = write_config(&dir, &sim, &running);

    // Both at the same instant, on a database neither has seen: each migrates it and applies
    // the configuration's links.
    let mut a = start(&dir, "A", &store_url);
    let mut b = start(&dir, "B", &store_url);
    wait_until("the workers sync every mailbox between them", Duration::from_secs(60), || {
        counts(&a).keys().chain(counts(&b).keys()).collect::<BTreeSet<_>>().len() == MAILBOXES
    });
    for w in [&mut a, &mut b] {
        let log = std::fs::read_to_string(&w.log).unwrap_or_default();
        assert!(w.child.try_wait().unwrap().is_none(), "worker {} stopped at start: {log}", w.name);
    }
    let store = calbridge_store::open_store(&store_url).await.unwrap();
    assert_eq!(store.connections().await.unwrap().len(), 1, "the connection saved once");
    let linked = store.calendars(None).await.unwrap();
    assert_eq!(linked.iter().map(|c| c.email.clone()).collect::<BTreeSet<_>>(), mailboxes);
    assert_eq!(linked.len(), MAILBOXES, "each mailbox linked once");

    // A "sync now" asked of B for a mailbox A holds is run by A, and B answers with A's run.
    std::thread::sleep(Duration::from_secs(2 * LEASE_SECS));
    let (a0, b0) = (counts(&a), counts(&b));
    std::thread::sleep(Duration::from_secs(3));
    let (a1, b1) = (counts(&a), counts(&b));
    let synced_by = |before: &BTreeMap<String, usize>, after: &BTreeMap<String, usize>| -> BTreeSet<String> {
        after.iter().filter(|(m, n)| **n > before.get(*m).copied().unwrap_or(0)).map(|(m, _)| m.clone()).collect()
    };
    let (by_a, by_b) = (synced_by(&a0, &a1), synced_by(&b0, &b1));
    let held_by_a = by_a.difference(&by_b).next().expect("A holds a mailbox of its own").clone();
    let cal = store.calendar_by_email(&held_by_a).await.unwrap().unwrap();
    let (ok, key, err) = {
        let out = Command::new(env!("CARGO_BIN_EXE_calbridge"))
            .args(["--config", dir.join("calbridge.toml").to_str().unwrap()])
            .args(["apikey", "create", "--scope", "write", "--name", "workers"])
            .env("CALBRIDGE_STORE", &store_url)
            .env("CALBRIDGE_MASTER_KEY", MASTER_KEY)
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).trim().to_string(),
            String::from_utf8_lossy(&out.stderr).to_string(),
        )
    };
    assert!(ok, "{err}");
    let addr = address(&b, &dir);
    let b_seen = std::fs::read_to_string(&b.log).unwrap().len();
    let (status, body) = post(&addr, &format!("/calendars/{}/sync", cal.id), &key);
    assert_eq!(status, 200, "B answers with the holder's run: {body}");
    let run: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(run["calendar_id"], cal.id, "{body}");
    let asked = format!("calendar={}", cal.id);
    wait_until("A takes B's request", Duration::from_secs(10), || {
        let a_log = std::fs::read_to_string(&a.log).unwrap();
        a_log.lines().any(|l| l.contains("a sync asked by another worker") && l.contains(&asked))
    });
    let b_log = std::fs::read_to_string(&b.log).unwrap();
    assert!(
        !b_log[b_seen..].lines().any(|l| l.contains("calendar synced") && l.contains(&format!("mailbox={held_by_a} "))),
        "B does not sync A's mailbox itself: {}",
        &b_log[b_seen..]
    );
    drop(a);
    drop(b);
    drop(store);
    drop_database(&db).await;
    let _ = std::fs::remove_dir_all(&dir);
}
