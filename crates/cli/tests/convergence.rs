//! The convergence suite: the real `calbridge serve` binary against the simulator, with random
//! edits on both sides, about 10% of Exchange's answers faulty (the simulator's seeded random
//! mode: throttling, 503, reset connections, answers lost after the change was applied,
//! expired sync states, ChangeKey/etag conflicts, duplicated and reordered notifications), and
//! calbridge killed with SIGKILL at random moments and restarted on the same SQLite file. Then
//! the faults and the edits stop, and within three sync cycles both sides must hold every
//! event exactly once with equal content, lose nothing that was not deleted, follow the
//! conflict policy of docs/sync-spec.md (R3), and then an idle cycle must write nothing.
//!
//! Over Microsoft Graph with change notifications (`--public-url`) and over EWS (polling), on
//! an SQLite file; and over Graph on PostgreSQL (`CALBRIDGE_TEST_POSTGRES`, as one worker with
//! leases; skipped without a server, except in CI).
//!
//! - `cargo test -p calbridge --test convergence`: the short form (CI): 20 mailboxes × 20
//!   events, 20 kills, per run.
//! - `CALBRIDGE_CONVERGENCE=long`: the long form: 200 mailboxes × 200 events, 60 kills.
//! - `CALBRIDGE_CONVERGENCE_SEED=<n>`: replays a run (every run prints its seed): the same
//!   edits, faults and kill moments (what calbridge is doing at each moment may differ).
//! - `CALBRIDGE_CONVERGENCE_LOG`: calbridge's log filter (default `warn`), e.g.
//!   `warn,calbridge_engine=debug` for every plan; a failing run keeps its directory.
//!
//! A sync cycle is one sync of every calendar: after the faults stop, calbridge is restarted
//! with scheduled syncs off and each cycle is asked for with `POST /connections/{id}/sync`, so
//! the cycles are counted exactly.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

mod common;

use calbridge_sim::{NewEvent, Scenario, SimStats, Simulator};
use chrono::{DateTime, NaiveDateTime, Utc};
use common::{drop_database, fresh_database};
use serde_json::{json, Value};

const MASTER_KEY: &str = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";
const INSTALLATION: &str = "convergence";
const DOMAIN: &str = "fabrikam.example";

/// The sizes of a run.
#[derive(Clone, Copy, Debug)]
struct Form {
    name: &'static str,
    mailboxes: usize,
    /// Events per mailbox at the start: half made in Outlook, half through the API.
    events: usize,
    kills: usize,
    /// calbridge runs this long (uniformly drawn, milliseconds) between a restart and the
    /// next kill.
    alive_ms: (u64, u64),
    /// Pause between two edits (milliseconds).
    edit_pause_ms: (u64, u64),
    sync_interval_secs: u64,
    fault_rate: f64,
}

const SHORT: Form = Form {
    name: "short",
    mailboxes: 20,
    events: 20,
    kills: 20,
    alive_ms: (300, 1500),
    edit_pause_ms: (10, 60),
    sync_interval_secs: 1,
    fault_rate: 0.10,
};

const LONG: Form = Form {
    name: "long",
    mailboxes: 200,
    events: 200,
    kills: 60,
    alive_ms: (2_000, 12_000),
    edit_pause_ms: (5, 30),
    sync_interval_secs: 5,
    fault_rate: 0.10,
};

fn form() -> Form {
    match std::env::var("CALBRIDGE_CONVERGENCE").as_deref() {
        Ok("long") => LONG,
        _ => SHORT,
    }
}

/// SplitMix64: the suite's only randomness, fixed by the printed seed.
#[derive(Clone)]
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    fn between(&mut self, (lo, hi): (u64, u64)) -> u64 {
        lo + self.below(hi - lo + 1)
    }
    fn chance(&mut self, p: f64) -> bool {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64 <= p
    }
}

fn seed() -> u64 {
    std::env::var("CALBRIDGE_CONVERGENCE_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| Utc::now().timestamp_micros() as u64)
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Protocol {
    Graph,
    Ews,
}

fn scenario(mailboxes: usize) -> String {
    let mut s = format!(
        r#"name = "convergence"
[tenant]
id = "8e1d6c2a-3b4f-4a5e-9d7c-6b5a4f3e2d1c"
domain = "{DOMAIN}"
[[apps]]
client_id = "c0ffee00-1234-4abc-8def-0123456789ab"
client_secret = "convergence-secret-value"
roles = ["Calendars.ReadWrite", "User.Read.All"]
[[ews_accounts]]
username = "svc-calbridge"
password = "svc-password"
impersonation = true
"#
    );
    for i in 0..mailboxes {
        s.push_str(&format!("[[mailboxes]]\nemail = \"{}\"\nname = \"Mailbox {i}\"\n", mailbox(i)));
    }
    s
}

fn mailbox(i: usize) -> String {
    format!("mb{i}@{DOMAIN}")
}

/// Subject, start and end: what both sides must agree on.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Content {
    subject: String,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
}

impl std::fmt::Display for Content {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?} {}–{}", self.subject, self.start.format("%m-%d %H:%M"), self.end.format("%H:%M"))
    }
}

/// Some day in the sync window, at a whole hour.
fn content(rng: &mut Rng, subject: String) -> Content {
    let today = Utc::now().date_naive().and_hms_opt(0, 0, 0).unwrap().and_utc();
    let start =
        today + chrono::Duration::days(1 + rng.below(40) as i64) + chrono::Duration::hours(7 + rng.below(10) as i64);
    Content { subject, start, end: start + chrono::Duration::minutes(30 * (1 + rng.below(4) as i64)) }
}

/// What the host application knows of one of its events.
#[derive(Clone, Debug)]
struct HostEvent {
    mailbox: usize,
    /// The last content the host application wrote, and when.
    content: Content,
    written: Instant,
    /// The last content a person wrote in Outlook, and when.
    outlook: Option<(Content, Instant)>,
    host_deleted: bool,
    outlook_deleted: bool,
}

/// An event a person made in Outlook.
#[derive(Clone, Debug)]
struct OutlookEvent {
    mailbox: usize,
    remote_id: String,
    content: Content,
    deleted: bool,
}

#[derive(Default, Debug)]
struct Counts {
    outlook_creates: u64,
    outlook_updates: u64,
    outlook_deletes: u64,
    host_creates: u64,
    host_replaces: u64,
    host_deletes: u64,
    host_retries: u64,
}

/// The `calbridge serve` child process, killed and restarted by the test.
struct Calbridge {
    dir: PathBuf,
    port: u16,
    public_url: bool,
    /// On PostgreSQL: one worker with leases, under the same worker id at every restart.
    worker: bool,
    child: Option<Child>,
    starts: usize,
}

impl Calbridge {
    fn start(&mut self, sync_interval_secs: u64) {
        self.starts += 1;
        let log = std::fs::OpenOptions::new().create(true).append(true).open(self.dir.join("serve.log")).unwrap();
        let out = log.try_clone().unwrap();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_calbridge"));
        cmd.args(["--config", self.dir.join("calbridge.toml").to_str().unwrap(), "serve"])
            .args(["--listen", &format!("127.0.0.1:{}", self.port)])
            .args(["--sync-interval", &sync_interval_secs.to_string()])
            .env("CALBRIDGE_MASTER_KEY", MASTER_KEY)
            .env("CALBRIDGE_LOG", std::env::var("CALBRIDGE_CONVERGENCE_LOG").unwrap_or_else(|_| "warn".into()))
            .env_remove("CALBRIDGE_STORE")
            .stdout(out)
            .stderr(log)
            .stdin(Stdio::null());
        if self.public_url {
            cmd.args(["--public-url", &format!("http://127.0.0.1:{}", self.port)]);
        }
        if self.worker {
            cmd.args(["--worker-id", "convergence", "--lease-secs", "3"]);
        }
        self.child = Some(cmd.spawn().expect("start calbridge serve"));
    }

    /// SIGKILL, as a crash or `kill -9` would.
    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            c.kill().expect("kill -9 calbridge");
            c.wait().unwrap();
        }
    }

    fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child.as_mut().and_then(|c| c.try_wait().ok().flatten())
    }
}

impl Drop for Calbridge {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The REST API of the calbridge under test.
#[derive(Clone)]
struct Api {
    base: String,
    key: String,
    http: reqwest::Client,
}

impl Api {
    async fn send(&self, method: reqwest::Method, path: &str, body: Option<&Value>) -> reqwest::Result<(u16, Value)> {
        let mut req = self.http.request(method, format!("{}{path}", self.base)).bearer_auth(&self.key);
        if let Some(b) = body {
            req = req.json(b);
        }
        let resp = req.send().await?;
        let status = resp.status().as_u16();
        let bytes = resp.bytes().await?;
        Ok((status, serde_json::from_slice(&bytes).unwrap_or(Value::Null)))
    }

    /// Retries until calbridge answers (it may be down between a kill and its restart).
    async fn call(&self, method: reqwest::Method, path: &str, body: Option<&Value>, retries: &mut u64) -> (u16, Value) {
        let (status, body, _) = self.call_noting_lost(method, path, body, retries).await;
        (status, body)
    }

    /// [`Api::call`], and whether an attempt reached calbridge but got no answer (calbridge was
    /// killed while handling it, so it may have been applied).
    async fn call_noting_lost(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
        retries: &mut u64,
    ) -> (u16, Value, bool) {
        let started = Instant::now();
        let mut lost = false;
        loop {
            match self.send(method.clone(), path, body).await {
                Ok(answer) if answer.0 != 503 => return (answer.0, answer.1, lost),
                other => {
                    lost |= other.as_ref().is_err_and(|e| !e.is_connect());
                    *retries += 1;
                    assert!(started.elapsed() < Duration::from_secs(120), "calbridge did not answer {method} {path}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
    }

    async fn healthy(&self) -> bool {
        self.http.get(format!("{}/healthz", self.base)).send().await.is_ok_and(|r| r.status().is_success())
    }
}

fn event_body(id: Option<&str>, c: &Content) -> Value {
    let mut v = json!({"subject": c.subject, "start": c.start, "end": c.end});
    if let Some(id) = id {
        v["id"] = json!(id);
    }
    v
}

fn parse_time(t: &calbridge_sim::wire::DateTimeTimeZone) -> DateTime<Utc> {
    NaiveDateTime::parse_from_str(&t.date_time, "%Y-%m-%dT%H:%M:%S%.f").expect("a Graph dateTime").and_utc()
}

/// Exchange's side of a mailbox: (provenance tag's local id if calbridge made it, remote id,
/// content).
fn exchange_side(sim: &Simulator, mb: &str) -> Vec<(Option<String>, String, Content)> {
    let prefix = format!("calbridge:{INSTALLATION}:");
    sim.outlook()
        .list_events(mb)
        .unwrap()
        .into_iter()
        .map(|e| {
            let tag = e
                .single_value_extended_properties
                .iter()
                .flatten()
                .filter_map(|p| p.value.as_deref())
                .find_map(|v| v.strip_prefix(&prefix).map(String::from));
            let c = Content {
                subject: e.subject.clone().unwrap_or_default(),
                start: parse_time(e.start.as_ref().unwrap()),
                end: parse_time(e.end.as_ref().unwrap()),
            };
            (tag, e.id.clone().unwrap_or_default(), c)
        })
        .collect()
}

/// calbridge's side of a calendar through the REST API: (id, origin, content).
async fn calbridge_side(api: &Api, calendar: i64, retries: &mut u64) -> Vec<(String, String, Content)> {
    let from = (Utc::now() - chrono::Duration::days(2)).format("%Y-%m-%dT00:00:00Z");
    let to = (Utc::now() + chrono::Duration::days(60)).format("%Y-%m-%dT00:00:00Z");
    let (status, body) = api
        .call(reqwest::Method::GET, &format!("/calendars/{calendar}/events?from={from}&to={to}"), None, retries)
        .await;
    assert_eq!(status, 200, "{body}");
    body.as_array()
        .unwrap()
        .iter()
        .map(|e| {
            let t = |k: &str| e[k].as_str().unwrap().parse::<DateTime<Utc>>().unwrap();
            (
                e["id"].as_str().unwrap().to_string(),
                e["origin"].as_str().unwrap().to_string(),
                Content { subject: e["subject"].as_str().unwrap().to_string(), start: t("start"), end: t("end") },
            )
        })
        .collect()
}

/// Everything the test knows, shared by the editors.
struct Model {
    host: BTreeMap<String, HostEvent>,
    outlook: Vec<OutlookEvent>,
    counts: Counts,
    next: u64,
}

/// One random edit on either side.
async fn edit(model: &Mutex<Model>, rng: &mut Rng, sim: &Simulator, api: &Api, calendars: &[i64], f: &Form, db: &str) {
    let outlook = sim.outlook();
    let mb = rng.below(f.mailboxes as u64) as usize;
    let n = {
        let mut m = model.lock().unwrap();
        m.next += 1;
        m.next
    };
    let now = Instant::now();
    match rng.below(100) {
        // A person creates an event in Outlook.
        0..=14 => {
            let c = content(rng, format!("o{n}"));
            let id = outlook.create_event(&mailbox(mb), NewEvent::new(c.subject.clone(), c.start, c.end)).unwrap();
            let mut m = model.lock().unwrap();
            m.outlook.push(OutlookEvent { mailbox: mb, remote_id: id, content: c, deleted: false });
            m.counts.outlook_creates += 1;
        }
        // A person moves or renames an event of their own.
        15..=29 => {
            let pick = {
                let m = model.lock().unwrap();
                let alive: Vec<usize> = (0..m.outlook.len()).filter(|i| !m.outlook[*i].deleted).collect();
                (!alive.is_empty()).then(|| alive[rng.below(alive.len() as u64) as usize])
            };
            if let Some(i) = pick {
                let (mb, id, old) = {
                    let m = model.lock().unwrap();
                    (m.outlook[i].mailbox, m.outlook[i].remote_id.clone(), m.outlook[i].content.clone())
                };
                let prefix = old.subject.split(' ').next().unwrap().to_string();
                let c = content(rng, format!("{prefix} v{n}"));
                outlook.update_event(&mailbox(mb), &id, patch(&c)).unwrap();
                let mut m = model.lock().unwrap();
                m.outlook[i].content = c;
                m.counts.outlook_updates += 1;
            }
        }
        // A person deletes an event of their own.
        30..=34 => {
            let mut m = model.lock().unwrap();
            let alive: Vec<usize> = (0..m.outlook.len()).filter(|i| !m.outlook[*i].deleted).collect();
            if !alive.is_empty() {
                let i = alive[rng.below(alive.len() as u64) as usize];
                outlook.delete_event(&mailbox(m.outlook[i].mailbox), &m.outlook[i].remote_id).unwrap();
                m.outlook[i].deleted = true;
                m.counts.outlook_deletes += 1;
            }
        }
        // A person moves, or (rarely) deletes, an event the host application made.
        35..=44 => {
            let candidates: Vec<(String, usize)> = {
                let m = model.lock().unwrap();
                m.host
                    .iter()
                    .filter(|(_, h)| !h.host_deleted && !h.outlook_deleted && h.mailbox == mb)
                    .map(|(id, h)| (id.clone(), h.mailbox))
                    .collect()
            };
            let in_exchange: BTreeMap<String, String> = exchange_side(sim, &mailbox(mb))
                .into_iter()
                .filter_map(|(tag, remote, _)| tag.map(|t| (t, remote)))
                .collect();
            let there: Vec<&(String, usize)> =
                candidates.iter().filter(|(id, _)| in_exchange.contains_key(id)).collect();
            if !there.is_empty() {
                let (id, mb) = there[rng.below(there.len() as u64) as usize].clone();
                let remote = &in_exchange[&id];
                // A person deletes only what calbridge knows reached Exchange: deleted in the
                // moment between a create and calbridge learning of it (an answer lost), an
                // event is created again (docs/sync-spec.md, R4).
                let delete = rng.chance(0.15) && linked(db, &id, remote).await;
                let c = content(rng, format!("{id} outlook v{n}"));
                // Holding the model: the edit and its record happen at one moment.
                let mut m = model.lock().unwrap();
                if delete {
                    if outlook.delete_event(&mailbox(mb), remote).is_ok() {
                        m.host.get_mut(&id).unwrap().outlook_deleted = true;
                        m.counts.outlook_deletes += 1;
                    }
                } else if outlook.update_event(&mailbox(mb), remote, patch(&c)).is_ok() {
                    m.host.get_mut(&id).unwrap().outlook = Some((c, now));
                    m.counts.outlook_updates += 1;
                }
            }
        }
        // The host application creates an event.
        45..=64 => {
            let id = format!("h{n}");
            let c = content(rng, format!("{id} host v{n}"));
            host_create(model, api, calendars[mb], mb, &id, c).await;
        }
        // The host application replaces one of its events.
        65..=89 => {
            let pick = pick_host(model, rng, mb);
            if let Some(id) = pick {
                let c = content(rng, format!("{id} host v{n}"));
                let mut retries = 0;
                let (status, body) = api
                    .call(reqwest::Method::PUT, &format!("/events/{id}"), Some(&event_body(None, &c)), &mut retries)
                    .await;
                let mut m = model.lock().unwrap();
                m.counts.host_retries += retries;
                match status {
                    200 => {
                        let h = m.host.get_mut(&id).unwrap();
                        h.content = c;
                        h.written = Instant::now();
                        m.counts.host_replaces += 1;
                    }
                    // Gone: only because a person deleted it in Outlook.
                    404 => assert!(
                        m.host[&id].outlook_deleted,
                        "the host application's event {id} vanished from calbridge, deleted by nobody: {body}"
                    ),
                    _ => panic!("PUT /events/{id}: {status} {body}"),
                }
            }
        }
        // The host application deletes one of its events.
        _ => {
            if let Some(id) = pick_host(model, rng, mb) {
                let mut retries = 0;
                let (status, body, lost) =
                    api.call_noting_lost(reqwest::Method::DELETE, &format!("/events/{id}"), None, &mut retries).await;
                let mut m = model.lock().unwrap();
                m.counts.host_retries += retries;
                match status {
                    // 404 after an attempt without an answer: that attempt deleted it (calbridge
                    // was killed before it could answer), as a host application must assume.
                    204 | 404 if status == 204 || lost => {
                        m.host.get_mut(&id).unwrap().host_deleted = true;
                        m.counts.host_deletes += 1;
                    }
                    404 => assert!(
                        m.host[&id].outlook_deleted || m.host[&id].host_deleted,
                        "the host application's event {id} vanished from calbridge, deleted by nobody: {body}"
                    ),
                    _ => panic!("DELETE /events/{id}: {status} {body}"),
                }
            }
        }
    }
}

/// Whether calbridge's store (`store`: its URL) links the host application's event
/// `local_id` to `remote_id`.
async fn linked(store: &str, local_id: &str, remote_id: &str) -> bool {
    use sqlx::Connection;
    let found: Option<String> = if store.starts_with("postgres") {
        let Ok(mut conn) = sqlx::PgConnection::connect(store).await else { return false };
        let found = sqlx::query_scalar("SELECT remote_id FROM sync_records WHERE local_id = $1")
            .bind(local_id)
            .fetch_optional(&mut conn)
            .await
            .unwrap_or(None);
        let _ = conn.close().await;
        found
    } else {
        let url = format!("{store}?mode=ro");
        let Ok(mut conn) = sqlx::SqliteConnection::connect(&url).await else { return false };
        let found = sqlx::query_scalar("SELECT remote_id FROM sync_records WHERE local_id = ?")
            .bind(local_id)
            .fetch_optional(&mut conn)
            .await
            .unwrap_or(None);
        let _ = conn.close().await;
        found
    };
    // EWS ids are Graph's with `+` and `/` for `-` and `_` (the simulator shows Graph's).
    let graph = |id: &str| id.replace('+', "-").replace('/', "_");
    found.is_some_and(|r| graph(&r) == graph(remote_id))
}

fn patch(c: &Content) -> Value {
    let t = |d: DateTime<Utc>| json!({"dateTime": d.format("%Y-%m-%dT%H:%M:%S").to_string(), "timeZone": "UTC"});
    json!({"subject": c.subject, "start": t(c.start), "end": t(c.end)})
}

fn pick_host(model: &Mutex<Model>, rng: &mut Rng, mb: usize) -> Option<String> {
    let m = model.lock().unwrap();
    let alive: Vec<&String> = m
        .host
        .iter()
        .filter(|(_, h)| h.mailbox == mb && !h.host_deleted && !h.outlook_deleted)
        .map(|(id, _)| id)
        .collect();
    (!alive.is_empty()).then(|| alive[rng.below(alive.len() as u64) as usize].clone())
}

async fn host_create(model: &Mutex<Model>, api: &Api, calendar: i64, mb: usize, id: &str, c: Content) {
    let mut retries = 0;
    // With the host application's own id, a create retried after a lost answer is recognised.
    let (status, body) = api
        .call(
            reqwest::Method::POST,
            &format!("/calendars/{calendar}/events"),
            Some(&event_body(Some(id), &c)),
            &mut retries,
        )
        .await;
    assert_eq!(status, 201, "POST /calendars/{calendar}/events: {body}");
    let mut m = model.lock().unwrap();
    m.counts.host_retries += retries;
    m.counts.host_creates += 1;
    let now = Instant::now();
    m.host.insert(
        id.to_string(),
        HostEvent { mailbox: mb, content: c, written: now, outlook: None, host_deleted: false, outlook_deleted: false },
    );
}

/// Differences between what the model expects and what both sides hold; empty when converged.
async fn differences(model: &Model, sim: &Simulator, api: &Api, calendars: &[i64], f: &Form) -> Vec<String> {
    let mut out = Vec::new();
    let mut retries = 0;
    for (mb, cal) in calendars.iter().enumerate().take(f.mailboxes) {
        let ex = exchange_side(sim, &mailbox(mb));
        let cb = calbridge_side(api, *cal, &mut retries).await;
        // The host application's events: once on each side, equal, as the policy says.
        let mut ours: BTreeMap<String, Vec<Content>> = BTreeMap::new();
        let mut ours_ids: BTreeMap<String, Vec<String>> = BTreeMap::new();
        let mut people: BTreeMap<String, Content> = BTreeMap::new();
        for (tag, remote, c) in &ex {
            match tag {
                Some(t) => {
                    ours.entry(t.clone()).or_default().push(c.clone());
                    ours_ids.entry(t.clone()).or_default().push(remote.clone());
                }
                None => {
                    people.insert(remote.clone(), c.clone());
                }
            }
        }
        let local: BTreeMap<&String, &Content> = cb.iter().filter(|e| e.1 == "local").map(|e| (&e.0, &e.2)).collect();
        let pulled: Vec<&Content> = cb.iter().filter(|e| e.1 == "exchange").map(|e| &e.2).collect();
        for (id, h) in model.host.iter().filter(|(_, h)| h.mailbox == mb) {
            let copies = ours.remove(id).unwrap_or_default();
            let here = local.get(id);
            if h.host_deleted || h.outlook_deleted {
                let why = if h.host_deleted { "the host application" } else { "a person in Outlook" };
                if !copies.is_empty() {
                    out.push(format!("{id} (deleted by {why}) still in Exchange: {copies:?}"));
                }
                if here.is_some() {
                    out.push(format!("{id} (deleted by {why}) still in calbridge"));
                }
                continue;
            }
            // R3: the host application's content wins when both changed; a change made only in
            // Outlook is taken. When the person's last edit came after the host's, either may
            // stand (it depends on whether a sync ran between them); both sides must agree.
            let mut allowed = vec![h.content.clone()];
            if let Some((c, at)) = &h.outlook {
                if *at > h.written {
                    allowed.push(c.clone());
                }
            }
            match copies.len() {
                0 => out.push(format!("{id} lost in Exchange")),
                1 => {}
                n => out.push(format!("{id} is {n} times in Exchange: {copies:?}")),
            }
            match here {
                None => out.push(format!("{id} lost in calbridge")),
                Some(c) => {
                    if !allowed.contains(c) {
                        out.push(format!("{id} in calbridge is {c}, the policy allows {allowed:?}"));
                    }
                    if copies.len() == 1 && copies[0] != **c {
                        let remote = &ours_ids[id][0];
                        let etag = sim.outlook().get_event(&mailbox(mb), remote).ok().and_then(|e| e.odata_etag);
                        out.push(format!("{id}: calbridge {c} but Exchange {} ({remote}, {etag:?})", copies[0]));
                    }
                }
            }
        }
        for (t, copies) in ours {
            out.push(format!("Exchange holds {copies:?} tagged {t}, which the host application never made"));
        }
        for l in local.keys() {
            if !model.host.contains_key(*l) {
                out.push(format!("calbridge holds a local event {l} the host application never made"));
            }
        }
        // People's events: Exchange is the truth; calbridge mirrors each once.
        for o in model.outlook.iter().filter(|o| o.mailbox == mb) {
            let in_ex = people.remove(&o.remote_id);
            let mirrored: Vec<&&Content> =
                pulled.iter().filter(|c| key(&c.subject) == key(&o.content.subject)).collect();
            if o.deleted {
                if in_ex.is_some() {
                    out.push(format!("{} (deleted in Outlook) still in Exchange", o.content.subject));
                }
                if !mirrored.is_empty() {
                    out.push(format!("{} (deleted in Outlook) still in calbridge: {mirrored:?}", o.content.subject));
                }
                continue;
            }
            match in_ex {
                None => out.push(format!("{} was lost in Exchange (deleted by calbridge?)", o.content)),
                Some(c) if c != o.content => out.push(format!("{} changed in Exchange to {c}", o.content)),
                Some(_) => {}
            }
            match mirrored.as_slice() {
                [] => out.push(format!("{} (from Outlook) missing in calbridge", o.content)),
                [c] if ***c != o.content => out.push(format!("{} (from Outlook) is {} in calbridge", o.content, c)),
                [_] => {}
                many => out.push(format!("{} (from Outlook) is {} times in calbridge", o.content, many.len())),
            }
        }
        for (remote, c) in people {
            out.push(format!("Exchange holds {c} ({remote}) that nobody made"));
        }
        let known: BTreeSet<String> = model.outlook.iter().map(|o| key(&o.content.subject)).collect();
        for c in pulled {
            if !known.contains(&key(&c.subject)) {
                out.push(format!("calbridge holds {c} from Exchange that nobody made"));
            }
        }
    }
    out
}

/// The first word of a subject: the event's identity in this suite (`o17`, `h42`).
fn key(subject: &str) -> String {
    subject.split(' ').next().unwrap_or_default().to_string()
}

/// Graph and EWS requests the simulator answered (not the token endpoint nor `/_sim`; the
/// requests inside a `$batch`, each of which may meet a fault, rather than the batch).
fn exchange_requests(s: &SimStats) -> u64 {
    s.by_route
        .iter()
        .filter(|(r, _)| !matches!(r.as_str(), "token" | "sim" | "openid_configuration" | "batch"))
        .map(|(_, n)| n)
        .sum()
}

fn mutations(s: &SimStats) -> u64 {
    ["event_create", "event_update", "event_delete", "event_decline"]
        .iter()
        .map(|r| s.by_route.get(*r).copied().unwrap_or(0))
        .sum::<u64>()
}

/// Where calbridge keeps its state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum StoreKind {
    Sqlite,
    /// A fresh database on `CALBRIDGE_TEST_POSTGRES`'s server; calbridge runs as one worker
    /// with leases, restarted under the same worker id.
    Postgres,
}

async fn run(protocol: Protocol, store_kind: StoreKind) {
    let f = form();
    let base = seed();
    // The runs go at once; each draws its own sequence from the printed seed.
    let seed = base
        ^ if protocol == Protocol::Ews { 0x5EED } else { 0 }
        ^ if store_kind == StoreKind::Postgres { 0x9A55 } else { 0 };
    println!(
        "convergence ({protocol:?}, {store_kind:?}, {} form): seed {base} (replay with CALBRIDGE_CONVERGENCE_SEED={base})",
        f.name
    );
    let started = Instant::now();
    let mut rng = Rng(seed);
    let sim = Simulator::new(&Scenario::from_toml(&scenario(f.mailboxes)).unwrap()).unwrap();
    let running = sim.start().await.unwrap();
    let dir =
        std::env::temp_dir().join(format!("calbridge-convergence-{protocol:?}-{store_kind:?}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();

    // Half of the events are people's, made in Outlook before calbridge starts.
    let mut model = Model { host: BTreeMap::new(), outlook: Vec::new(), counts: Counts::default(), next: 0 };
    for mb in 0..f.mailboxes {
        for _ in 0..f.events / 2 {
            model.next += 1;
            let c = content(&mut rng, format!("o{}", model.next));
            let id =
                sim.outlook().create_event(&mailbox(mb), NewEvent::new(c.subject.clone(), c.start, c.end)).unwrap();
            model.outlook.push(OutlookEvent { mailbox: mb, remote_id: id, content: c, deleted: false });
        }
    }

    let (store, pg_name) = match store_kind {
        StoreKind::Sqlite => (format!("sqlite://{}", dir.join("calbridge.db").display()), None),
        StoreKind::Postgres => match fresh_database("convergence").await {
            Some((url, name)) => (url, Some(name)),
            None => return,
        },
    };
    write_config(&dir, protocol, &sim, &running, f.mailboxes, &store);
    let key = api_key(&dir);
    let port = free_port();
    let mut cb = Calbridge {
        dir: dir.clone(),
        port,
        public_url: protocol == Protocol::Graph,
        worker: store_kind == StoreKind::Postgres,
        child: None,
        starts: 0,
    };
    let api = Api { base: format!("http://127.0.0.1:{port}"), key, http: reqwest::Client::new() };
    cb.start(f.sync_interval_secs);
    wait_healthy(&api, &mut cb).await;
    let calendars = calendar_ids(&api, f.mailboxes).await;

    // The other half: the host application's, through the API.
    let model = Arc::new(Mutex::new(model));
    for (mb, calendar) in calendars.iter().enumerate() {
        for _ in 0..f.events - f.events / 2 {
            let n = {
                let mut m = model.lock().unwrap();
                m.next += 1;
                m.next
            };
            let id = format!("h{n}");
            let c = content(&mut rng, format!("{id} host v{n}"));
            host_create(&model, &api, *calendar, mb, &id, c).await;
        }
    }

    // Chaos: edits on both sides, faults, and kills at random moments.
    let set_up = started.elapsed();
    let requests_before = exchange_requests(&sim.stats());
    sim.faults().set_random(f.fault_rate, seed, 1);
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let editor = {
        let (model, sim, api, calendars, stop) =
            (model.clone(), sim.clone(), api.clone(), calendars.clone(), stop.clone());
        let db = store.clone();
        let mut rng = Rng(seed.rotate_left(17));
        tokio::spawn(async move {
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                edit(&model, &mut rng, &sim, &api, &calendars, &f, &db).await;
                tokio::time::sleep(Duration::from_millis(rng.between(f.edit_pause_ms))).await;
            }
        })
    };
    let mut expected_kinds =
        vec!["throttle", "unavailable", "reset", "lost_response", "expired_sync_state", "conflict"];
    if protocol == Protocol::Graph {
        expected_kinds.push("duplicate_notifications");
    }
    // At least `kills` kills, and on until every kind of fault has happened (at most twice as
    // long: the kinds are drawn at random).
    let mut kills = 0;
    while kills < f.kills
        || (kills < 2 * f.kills && expected_kinds.iter().any(|k| !sim.stats().faults.contains_key(*k)))
    {
        kills += 1;
        tokio::time::sleep(Duration::from_millis(rng.between(f.alive_ms))).await;
        if let Some(status) = cb.exited() {
            panic!("calbridge exited by itself ({status}); see {}", dir.join("serve.log").display());
        }
        cb.kill();
        tokio::time::sleep(Duration::from_millis(rng.between((0, 300)))).await;
        cb.start(f.sync_interval_secs);
    }
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    editor.await.expect("the editor");
    sim.faults().clear();
    let chaos = started.elapsed() - set_up;
    let requests = exchange_requests(&sim.stats()) - requests_before;
    let faults = sim.stats().faults;

    // Faults and edits over: one more SIGKILL, then calbridge runs with only the cycles the
    // test asks for.
    cb.kill();
    cb.start(0);
    wait_healthy(&api, &mut cb).await;
    let mut model = Arc::try_unwrap(model).ok().unwrap().into_inner().unwrap();
    let staged = stage_conflicts(&mut model, &mut rng, &sim, &api, &calendars, &store).await;
    let mut cycles = 0;
    let mut diffs = Vec::new();
    for cycle in 1..=3 {
        sync_cycle(&api).await;
        cycles = cycle;
        diffs = differences(&model, &sim, &api, &calendars, &f).await;
        if diffs.is_empty() {
            break;
        }
    }
    let summary = format!(
        "convergence ({protocol:?}, {store_kind:?}, {} form, seed {}): {} mailboxes × {} events; {} kills (SIGKILL) and restarts; \
         Outlook edits: {} creates, {} updates, {} deletes; host application edits through the API: {} creates, {} \
         replaces, {} deletes ({} requests retried while calbridge was down); faults injected: {:?} (total {}); \
         {requests} Graph/EWS requests during the chaos ({:.1}% of them faulty); set-up {:.1} s, chaos {:.1} s; \
         conflicts staged before the cycles: {staged}; converged in {cycles} cycle(s); wall time {:.1} s",
        f.name,
        base,
        f.mailboxes,
        f.events,
        cb.starts - 2,
        model.counts.outlook_creates,
        model.counts.outlook_updates,
        model.counts.outlook_deletes,
        model.counts.host_creates,
        model.counts.host_replaces,
        model.counts.host_deletes,
        model.counts.host_retries,
        faults,
        faults.values().sum::<u64>(),
        100.0 * faults.iter().filter(|(k, _)| *k != "duplicate_notifications").map(|(_, n)| n).sum::<u64>() as f64
            / requests.max(1) as f64,
        set_up.as_secs_f64(),
        chaos.as_secs_f64(),
        started.elapsed().as_secs_f64(),
    );
    println!("{summary}");
    assert!(
        diffs.is_empty(),
        "not converged after 3 sync cycles ({} differences), seed {} (calbridge's log: {}):\n{}",
        diffs.len(),
        base,
        dir.join("serve.log").display(),
        diffs.iter().take(40).cloned().collect::<Vec<_>>().join("\n")
    );
    assert!(cb.starts - 2 >= 20, "at least 20 kills");
    for k in expected_kinds {
        assert!(faults.get(k).copied().unwrap_or(0) > 0, "no {k} fault was injected: {faults:?}");
    }

    // Idle: one more cycle writes nothing, on either side.
    let before = sim.stats();
    let statuses = sync_cycle(&api).await;
    let after = sim.stats();
    assert_eq!(mutations(&before), mutations(&after), "an idle cycle changed Exchange: {:?}", after.by_route);
    for s in &statuses {
        assert_eq!((s["pulled"].as_u64(), s["pushed"].as_u64()), (Some(0), Some(0)), "an idle cycle wrote: {s}");
    }
    drop(cb);
    if let Some(name) = pg_name {
        drop_database(&name).await;
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// Conflicts made on purpose while no sync runs (over EWS nothing syncs until the first
/// cycle; over Graph a notification may start one, and the policy gives the same outcome):
/// in each mailbox, one event of the host application is changed in Outlook and then by the
/// host application (R3: the host application's content wins), one changed in Outlook and
/// then deleted by the host application, one changed by the host application and then
/// deleted in Outlook (R3: a deletion wins over a change). And a pulled event is read-only.
async fn stage_conflicts(
    model: &mut Model,
    rng: &mut Rng,
    sim: &Simulator,
    api: &Api,
    calendars: &[i64],
    db: &str,
) -> String {
    let (mut both_edited, mut edit_vs_host_delete, mut edit_vs_outlook_delete) = (0, 0, 0);
    let mut retries = 0;
    for (mb, _) in calendars.iter().enumerate() {
        let tagged: BTreeMap<String, String> = exchange_side(sim, &mailbox(mb))
            .into_iter()
            .filter_map(|(tag, remote, _)| tag.map(|t| (t, remote)))
            .collect();
        let mut linked_ids = Vec::new();
        for (id, h) in &model.host {
            if h.mailbox == mb && !h.host_deleted && !h.outlook_deleted {
                if let Some(remote) = tagged.get(id) {
                    if linked(db, id, remote).await {
                        linked_ids.push((id.clone(), remote.clone()));
                    }
                }
            }
        }
        for (case, (id, remote)) in linked_ids.into_iter().take(3).enumerate() {
            model.next += 1;
            let n = model.next;
            let outlook_content = content(rng, format!("{id} outlook v{n}"));
            let host_content = content(rng, format!("{id} host v{n}"));
            let put = |c: &Content| event_body(None, c);
            match case {
                0 | 1 => {
                    sim.outlook().update_event(&mailbox(mb), &remote, patch(&outlook_content)).unwrap();
                    model.host.get_mut(&id).unwrap().outlook = Some((outlook_content, Instant::now()));
                    if case == 0 {
                        let (status, body) = api
                            .call(
                                reqwest::Method::PUT,
                                &format!("/events/{id}"),
                                Some(&put(&host_content)),
                                &mut retries,
                            )
                            .await;
                        assert_eq!(status, 200, "{body}");
                        let h = model.host.get_mut(&id).unwrap();
                        (h.content, h.written) = (host_content, Instant::now());
                        both_edited += 1;
                    } else {
                        let (status, body) =
                            api.call(reqwest::Method::DELETE, &format!("/events/{id}"), None, &mut retries).await;
                        assert_eq!(status, 204, "{body}");
                        model.host.get_mut(&id).unwrap().host_deleted = true;
                        edit_vs_host_delete += 1;
                    }
                }
                _ => {
                    let (status, body) = api
                        .call(reqwest::Method::PUT, &format!("/events/{id}"), Some(&put(&host_content)), &mut retries)
                        .await;
                    assert_eq!(status, 200, "{body}");
                    let h = model.host.get_mut(&id).unwrap();
                    (h.content, h.written) = (host_content, Instant::now());
                    sim.outlook().delete_event(&mailbox(mb), &remote).unwrap();
                    model.host.get_mut(&id).unwrap().outlook_deleted = true;
                    edit_vs_outlook_delete += 1;
                }
            }
        }
    }
    // Events from Exchange are read-only in calbridge (R3).
    let pulled = calbridge_side(api, calendars[0], &mut retries).await.into_iter().find(|e| e.1 == "exchange");
    if let Some((id, _, c)) = pulled {
        let (status, body) =
            api.call(reqwest::Method::PUT, &format!("/events/{id}"), Some(&event_body(None, &c)), &mut retries).await;
        assert_eq!(status, 409, "a pulled event must be read-only: {body}");
    }
    format!(
        "{both_edited} changed on both sides, {edit_vs_host_delete} changed in Outlook and deleted by the host \
         application, {edit_vs_outlook_delete} changed by the host application and deleted in Outlook"
    )
}

/// One sync of every calendar; answers each calendar's status. Every run must succeed.
async fn sync_cycle(api: &Api) -> Vec<Value> {
    let mut retries = 0;
    let (status, conns) = api.call(reqwest::Method::GET, "/connections", None, &mut retries).await;
    assert_eq!(status, 200, "{conns}");
    let mut out = Vec::new();
    for c in conns.as_array().unwrap() {
        let (status, runs) =
            api.call(reqwest::Method::POST, &format!("/connections/{}/sync", c["id"]), None, &mut retries).await;
        assert_eq!(status, 200, "{runs}");
        for r in runs.as_array().unwrap() {
            assert_eq!(r["state"], "ok", "a sync without faults failed: {r}");
            out.push(r.clone());
        }
    }
    out
}

fn write_config(
    dir: &Path,
    protocol: Protocol,
    sim: &Simulator,
    running: &calbridge_sim::RunningSim,
    mailboxes: usize,
    store: &str,
) {
    let creds = sim.credentials();
    // The suite deletes on purpose: the mass-deletion guard (R7) must not pause a calendar.
    let mut config = format!(
        "installation_id = \"{INSTALLATION}\"\nstore = \"{store}\"\n[sync]\ndelete_guard_min = 100000\n\n[[connections]]\nname = \"fabrikam\"\n"
    );
    match protocol {
        Protocol::Graph => config.push_str(&format!(
            "kind = \"graph\"\ntenant_id = \"{}\"\nclient_id = \"{}\"\nclient_secret = \"{}\"\nauthority_url = \"{}\"\n\
             graph_url = \"{}\"\n",
            creds.tenant_domain,
            creds.client_id,
            creds.client_secret,
            running.authority_url(),
            running.graph_url()
        )),
        Protocol::Ews => config.push_str(&format!(
            "kind = \"ews\"\nurl = \"{}\"\nauth = \"basic\"\nusername = \"svc-calbridge\"\npassword = \"svc-password\"\n\
             version = \"Exchange2016\"\n",
            running.ews_url()
        )),
    }
    for i in 0..mailboxes {
        config.push_str(&format!(
            "[[calendars]]\nemail = \"{}\"\nkind = \"person\"\nconnection = \"fabrikam\"\n",
            mailbox(i)
        ));
    }
    std::fs::write(dir.join("calbridge.toml"), config).unwrap();
}

fn api_key(dir: &Path) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_calbridge"))
        .args(["--config", dir.join("calbridge.toml").to_str().unwrap()])
        .args(["apikey", "create", "--scope", "write", "--name", "convergence"])
        .env_remove("CALBRIDGE_STORE")
        .output()
        .expect("calbridge apikey create");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// A port for calbridge to listen on across restarts (Exchange's subscriptions name it).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

async fn wait_healthy(api: &Api, cb: &mut Calbridge) {
    let started = Instant::now();
    while !api.healthy().await {
        if let Some(status) = cb.exited() {
            panic!("calbridge exited ({status}); see {}", cb.dir.join("serve.log").display());
        }
        assert!(started.elapsed() < Duration::from_secs(60), "calbridge did not start");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn calendar_ids(api: &Api, mailboxes: usize) -> Vec<i64> {
    let mut retries = 0;
    let (status, body) = api.call(reqwest::Method::GET, "/calendars", None, &mut retries).await;
    assert_eq!(status, 200, "{body}");
    let by_email: BTreeMap<String, i64> = body
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["email"].as_str().unwrap().to_string(), c["id"].as_i64().unwrap()))
        .collect();
    (0..mailboxes).map(|i| by_email[&mailbox(i)]).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graph_with_notifications_converges_after_faults_and_kills() {
    run(Protocol::Graph, StoreKind::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ews_polling_converges_after_faults_and_kills() {
    run(Protocol::Ews, StoreKind::Sqlite).await;
}

/// The Graph run on PostgreSQL (`CALBRIDGE_TEST_POSTGRES`; skipped without a server, except in
/// CI): calbridge as a worker with leases, killed and restarted under the same worker id.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graph_on_postgres_converges_after_faults_and_kills() {
    run(Protocol::Graph, StoreKind::Postgres).await;
}
