//! `calbridge bench`: calbridge against the physical limit and against a peer.
//!
//! The Exchange simulator runs in a separate process (this binary's `calbridge sim` with a
//! generated organisation and a per-request latency), so the peak memory measured here
//! (`VmHWM` of this process, reset before each scenario through `/proc/self/clear_refs`) is
//! calbridge's alone. Requests are counted by the simulator (`GET /_sim/stats`), token
//! requests apart. Scenarios, over Graph and over EWS:
//!
//! - `initial`: the first sync of every mailbox (always run: the others start from its store).
//! - `steady`: cycles in which a share of the events change in the simulator, as people edit
//!   them in Outlook (`POST /_sim/outlook/changes`), then an idle cycle.
//! - `propagation`: the REST API's change-notification machinery for real — the API on a
//!   loopback port; over Graph with a public URL, the simulator delivering notifications to it;
//!   over EWS with streaming subscriptions read over one long-lived connection; the time from a
//!   change in the simulator to the change in the store.
//! - `availability`: `POST /availability` over HTTP on loopback (the REST API's own route,
//!   reading the store), over a set of calendars for one week.
//!
//! Each result is set against a lower bound: the fewest requests the protocol allows, times
//! the latency, divided by the concurrency the budgets allow (see [`Bound`] and
//! `docs/performance.md`). With `--peer`, a Python script using exchangelib does the same
//! initial sync over EWS against the same simulator, for a ratio of wall times.

use std::collections::HashMap;
use std::io::BufRead;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use chrono::{Duration as ChronoDuration, Utc};
use clap::Args;
use serde::{Deserialize, Serialize};

use calbridge_api::{ApiConfig, ApiState};
use calbridge_core::model::Connection;
use calbridge_core::store::Scope;
use calbridge_engine::secrets::MasterKey;
use calbridge_engine::{CalendarReport, SyncSummary};
use calbridge_sim::{ChangedEvent, SimStats, SubscriptionInfo};

use crate::app::{adapter, progress_bar, sync_with_progress, Adapter, App};
use crate::config::{Config, ConnectionConfig};
use crate::demo::Protocol;

/// The largest page Graph hands out for `calendarView/delta` (`Prefer: odata.maxpagesize`).
/// Microsoft's pages name no maximum for delta; 1,000 is Graph's largest `$top` for Outlook
/// resources and the simulator's cap.
pub const GRAPH_MAX_PAGE: u64 = 1000;
/// The most changes one EWS `SyncFolderItems` returns (`MaxChangesReturned`, schema maximum).
pub const EWS_MAX_SYNC_PAGE: u64 = 512;
/// Exchange's default `EWSMaxConcurrency`: requests in flight to one EWS server.
pub const EWS_MAX_CONCURRENCY: u64 = 27;
/// Calendars per `POST /availability` (the REST API's limit).
const AVAILABILITY_CHUNK: usize = calbridge_api::MAX_AVAILABILITY_CALENDARS;

const INSTALLATION: &str = "bench";
const CONNECTION: &str = "bench";

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum BenchScenario {
    Initial,
    Steady,
    Propagation,
    Availability,
}

#[derive(Args)]
pub struct BenchArgs {
    /// Scenarios, comma-separated: initial, steady, propagation, availability (the initial sync
    /// always runs: the others start from its store).
    #[arg(long, value_enum, value_delimiter = ',', default_values = ["initial", "steady", "propagation", "availability"])]
    scenarios: Vec<BenchScenario>,
    /// Protocols, comma-separated: graph, ews.
    #[arg(long, value_enum, value_delimiter = ',', default_values = ["graph", "ews"])]
    protocols: Vec<Protocol>,
    /// Person mailboxes in the simulated organisation.
    #[arg(long, default_value_t = 1000)]
    mailboxes: usize,
    /// Single events per mailbox (28 days back to 120 days ahead, all in the sync window).
    #[arg(long, default_value_t = 500)]
    events: usize,
    /// The simulator's latency per Graph or EWS request, in milliseconds.
    #[arg(long, default_value_t = 20)]
    latency_ms: u64,
    /// The connection's `max_threads`: requests in flight at once (and the peer's threads).
    #[arg(long, default_value_t = 4)]
    max_threads: u32,
    /// Steady-state cycles with changes (each followed by none; then one idle cycle).
    #[arg(long, default_value_t = 2)]
    cycles: u32,
    /// Share of all events changed in the simulator before each steady cycle, in percent.
    #[arg(long, default_value_t = 1.0)]
    change_percent: f64,
    /// Measurements for the percentiles of `propagation` and `availability`.
    #[arg(long, default_value_t = 100)]
    samples: usize,
    /// Calendars in one availability query (at most the mailboxes).
    #[arg(long, default_value_t = 500)]
    availability_calendars: usize,
    /// The store (default: a fresh SQLite file per protocol in a temporary directory). A
    /// PostgreSQL URL must name an empty database, and then only one protocol may run.
    #[arg(long, value_name = "URL")]
    store: Option<String>,
    /// Skip the exchangelib peer (by default it runs when python3 can import exchangelib).
    #[arg(long)]
    no_peer: bool,
    /// The Python interpreter for the peer.
    #[arg(long, env = "PYTHON", default_value = "python3")]
    python: String,
    /// Print the results as JSON instead of a table.
    #[arg(long)]
    json: bool,
}

/// One line of the report.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Row {
    pub scenario: String,
    pub protocol: String,
    /// Wall time of the measured work, seconds.
    pub wall_s: f64,
    /// Graph or EWS requests the simulator answered (token requests not included).
    pub requests: u64,
    pub tokens: u64,
    /// Events pulled (created, updated or deleted in the store).
    pub changed_events: u64,
    pub requests_per_changed_event: Option<f64>,
    /// Peak resident memory of calbridge during the scenario, MiB.
    pub peak_mem_mib: Option<f64>,
    /// CPU time (user + system) calbridge used during the measured work, seconds: set
    /// against `wall_s`, how many cores it kept busy.
    pub cpu_s: Option<f64>,
    /// CPU time the simulator used meanwhile, seconds (it shares the machine).
    pub sim_cpu_s: Option<f64>,
    /// The lower bound, seconds, and how it was computed.
    pub bound_s: Option<f64>,
    pub bound: Option<String>,
    /// wall_s / bound_s.
    pub ratio: Option<f64>,
    pub p50_ms: Option<f64>,
    pub p99_ms: Option<f64>,
    pub failed: u64,
    pub note: String,
}

/// A lower bound: requests on the longest per-mailbox chain and in total, spread over the
/// concurrency the budgets allow.
#[derive(Clone, Debug)]
struct Bound {
    total: u64,
    chain: u64,
    concurrency: u64,
    latency: Duration,
    how: String,
}

impl Bound {
    fn seconds(&self) -> f64 {
        let l = self.latency.as_secs_f64();
        (self.total as f64 * l / self.concurrency.max(1) as f64).max(self.chain as f64 * l)
    }

    fn describe(&self) -> String {
        format!(
            "{}; max({} requests x {} ms / {}, {} x {} ms)",
            self.how,
            self.total,
            self.latency.as_millis(),
            self.concurrency,
            self.chain,
            self.latency.as_millis()
        )
    }
}

fn ceil_div(a: u64, b: u64) -> u64 {
    a.div_ceil(b.max(1))
}

/// The fewest requests of an initial sync of mailboxes holding `events[i]` events each.
fn initial_bound(protocol: Protocol, events: &[u64], latency: Duration, max_threads: u32) -> Bound {
    let (chains, how, concurrency): (Vec<u64>, String, u64) = match protocol {
        Protocol::Graph => (
            events.iter().map(|n| 1 + ceil_div(*n, GRAPH_MAX_PAGE).max(1)).collect(),
            format!("per mailbox 1 (the mailbox) + ceil(events/{GRAPH_MAX_PAGE}) delta pages, in sequence; concurrency = max_threads"),
            max_threads as u64,
        ),
        Protocol::Ews => (
            events.iter().map(|n| 1 + 2 * ceil_div(*n, EWS_MAX_SYNC_PAGE).max(1)).collect(),
            format!(
                "per mailbox 1 GetFolder + per {EWS_MAX_SYNC_PAGE} items 1 SyncFolderItems and 1 GetItem, in sequence; concurrency = min(max_threads, {EWS_MAX_CONCURRENCY})"
            ),
            (max_threads as u64).min(EWS_MAX_CONCURRENCY),
        ),
    };
    Bound { total: chains.iter().sum(), chain: chains.iter().copied().max().unwrap_or(0), concurrency, latency, how }
}

/// The fewest requests of a polling cycle: without notifications every mailbox must be asked
/// once; over EWS a mailbox with changes also needs a GetItem for their content.
fn cycle_bound(
    protocol: Protocol,
    mailboxes: u64,
    changed_mailboxes: u64,
    latency: Duration,
    max_threads: u32,
) -> Bound {
    match protocol {
        Protocol::Graph => Bound {
            total: mailboxes,
            chain: 1,
            concurrency: max_threads as u64,
            latency,
            how: "per mailbox 1 delta request (changes come with it); concurrency = max_threads".into(),
        },
        Protocol::Ews => Bound {
            total: mailboxes + changed_mailboxes,
            chain: if changed_mailboxes > 0 { 2 } else { 1 },
            concurrency: (max_threads as u64).min(EWS_MAX_CONCURRENCY),
            latency,
            how: format!(
                "per mailbox 1 SyncFolderItems, + 1 GetItem per mailbox with changes; concurrency = min(max_threads, {EWS_MAX_CONCURRENCY})"
            ),
        },
    }
}

// ------------------------------------------------------------------------------------------
// Memory

/// Peak resident set size of this process (`VmHWM`), MiB.
fn peak_memory_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

/// CPU time (user + system) a process has used so far, seconds, from `/proc/{pid}/stat`
/// (`self` for this one), in clock ticks of 1/100 s (Linux's `USER_HZ`).
fn cpu_seconds(pid: &str) -> Option<f64> {
    stat_cpu_seconds(&std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
}

/// utime + stime of a `/proc/{pid}/stat` line, seconds.
fn stat_cpu_seconds(stat: &str) -> Option<f64> {
    // The fields after the command name, which is in parentheses and may hold spaces: the
    // first of them is the line's third field, so utime and stime (14 and 15) are 11 and 12.
    let fields: Vec<&str> = stat.get(stat.rfind(')')? + 1..)?.split_whitespace().collect();
    let ticks = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    Some(ticks as f64 / 100.0)
}

/// Resets the peak to the current resident size (Linux: `5` into `/proc/self/clear_refs`).
fn reset_peak_memory() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

// ------------------------------------------------------------------------------------------
// The simulator process

#[derive(Clone, Debug, Deserialize)]
struct SimInfo {
    base_url: String,
    ews_url: String,
    tenant_domain: String,
    client_id: String,
    client_secret: String,
    ews_username: Option<String>,
    ews_password: Option<String>,
    mailboxes: Vec<String>,
}

/// `calbridge sim` in a child process; it stops when its standard input closes (on drop).
struct SimProcess {
    child: std::process::Child,
    info: SimInfo,
    http: reqwest::Client,
}

impl SimProcess {
    async fn start(args: &BenchArgs) -> Result<SimProcess> {
        let exe = std::env::current_exe().context("cannot find the calbridge executable to start the simulator")?;
        let mut child = std::process::Command::new(exe)
            .args(["sim", "--listen", "127.0.0.1:0", "--json", "--exit-on-stdin-eof"])
            .arg("--generate-mailboxes")
            .arg(args.mailboxes.to_string())
            .arg("--generate-events")
            .arg(args.events.to_string())
            .arg("--latency-ms")
            .arg(args.latency_ms.to_string())
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .context("cannot start the simulator process (calbridge sim)")?;
        let stdout = child.stdout.take().context("the simulator's output")?;
        let line = tokio::task::spawn_blocking(move || {
            let mut line = String::new();
            std::io::BufReader::new(stdout).read_line(&mut line).map(|_| line)
        })
        .await??;
        if line.trim().is_empty() {
            let status = child.wait()?;
            bail!("the simulator exited ({status}) before it was ready; see its messages above");
        }
        let info: SimInfo = serde_json::from_str(line.trim())
            .with_context(|| format!("the simulator's first line is not its JSON description: {line}"))?;
        Ok(SimProcess { child, info, http: reqwest::Client::new() })
    }

    async fn stats(&self) -> Result<SimStats> {
        let r = self.http.get(format!("{}/_sim/stats", self.info.base_url)).send().await?.error_for_status()?;
        Ok(r.json().await?)
    }

    async fn subscriptions(&self) -> Result<Vec<SubscriptionInfo>> {
        let r = self.http.get(format!("{}/_sim/subscriptions", self.info.base_url)).send().await?.error_for_status()?;
        Ok(r.json().await?)
    }

    /// How many EWS subscriptions the simulator holds (`POST /_sim/ews-notifications` with no
    /// change answers them).
    async fn ews_subscriptions(&self) -> Result<usize> {
        let r = self
            .http
            .post(format!("{}/_sim/ews-notifications", self.info.base_url))
            .json(&serde_json::json!({}))
            .send()
            .await?
            .error_for_status()?;
        let list: Vec<serde_json::Value> = r.json().await?;
        Ok(list.len())
    }

    /// People change `count` events in Outlook.
    async fn change(&self, count: usize, seed: u64) -> Result<Vec<ChangedEvent>> {
        let r = self
            .http
            .post(format!("{}/_sim/outlook/changes", self.info.base_url))
            .json(&serde_json::json!({ "count": count, "seed": seed }))
            .send()
            .await?;
        let status = r.status();
        if !status.is_success() {
            bail!("the simulator refused the changes ({status}): {}", r.text().await.unwrap_or_default());
        }
        Ok(r.json().await?)
    }
}

impl Drop for SimProcess {
    fn drop(&mut self) {
        drop(self.child.stdin.take());
        for _ in 0..50 {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Graph and EWS requests (not token, discovery or `/_sim` requests).
fn exchange_requests(s: &SimStats) -> u64 {
    let other: u64 = ["sim", "token", "openid_configuration", "instance_discovery"]
        .iter()
        .map(|k| s.by_route.get(*k).copied().unwrap_or(0))
        .sum();
    s.requests_total - other
}

fn tokens(s: &SimStats) -> u64 {
    s.by_route.get("token").copied().unwrap_or(0)
}

// ------------------------------------------------------------------------------------------
// One protocol's calbridge

struct Side {
    protocol: Protocol,
    app: App,
    conn: Connection,
    cc: ConnectionConfig,
    adapter: Adapter,
    _dir: TempDir,
}

struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn protocol_name(p: Protocol) -> &'static str {
    match p {
        Protocol::Graph => "graph",
        Protocol::Ews => "ews",
    }
}

async fn open_side(args: &BenchArgs, sim: &SimInfo, protocol: Protocol) -> Result<Side> {
    let dir = std::env::temp_dir().join(format!("calbridge-bench-{}-{}", std::process::id(), protocol_name(protocol)));
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let dir = TempDir(dir);
    let store = args.store.clone().unwrap_or_else(|| format!("sqlite://{}", dir.0.join("bench.db").display()));
    let connection = match protocol {
        Protocol::Graph => format!(
            "kind = \"graph\"\ntenant_id = \"{}\"\nclient_id = \"{}\"\nclient_secret = \"{}\"\nauthority_url = \"{}\"\ngraph_url = \"{}\"\n",
            sim.tenant_domain, sim.client_id, sim.client_secret, sim.base_url, sim.base_url
        ),
        Protocol::Ews => format!(
            "kind = \"ews\"\nurl = \"{}\"\nauth = \"ntlm\"\nusername = {:?}\npassword = {:?}\nimpersonation = true\n",
            sim.ews_url,
            sim.ews_username.as_deref().context("the simulator has no EWS service account")?,
            sim.ews_password.as_deref().unwrap_or_default()
        ),
    };
    let mut text = format!(
        "installation_id = \"{INSTALLATION}\"\nstore = {store:?}\n[[connections]]\nname = \"{CONNECTION}\"\n{connection}max_threads = {}\n",
        args.max_threads
    );
    for m in &sim.mailboxes {
        text.push_str(&format!("[[calendars]]\nemail = \"{m}\"\nkind = \"person\"\nconnection = \"{CONNECTION}\"\n"));
    }
    let config = Config::parse(&text, &|_| None)?;
    let app = App::open(config).await?;
    let links = app.apply_links().await?;
    let (conn, cc) = links.into_iter().next().context("the bench connection was not stored")?;
    let adapter = adapter(&cc, INSTALLATION)?;
    Ok(Side { protocol, app, conn, cc, adapter, _dir: dir })
}

fn failures(reports: &[CalendarReport]) -> (u64, String) {
    let failed: Vec<&CalendarReport> = reports.iter().filter(|r| !r.ok()).collect();
    let note = failed
        .first()
        .map(|r| {
            format!(
                "{} failed, e.g. {}: {}",
                failed.len(),
                r.email,
                r.error.as_deref().or(r.paused.as_deref()).unwrap_or("")
            )
        })
        .unwrap_or_default();
    (failed.len() as u64, note)
}

/// Syncs every calendar of the side once and measures it.
async fn measured_sync(sim: &SimProcess, side: &Side, label: &str) -> Result<(Row, Vec<CalendarReport>)> {
    reset_peak_memory();
    let before = sim.stats().await?;
    let sim_pid = sim.child.id().to_string();
    let cpu_before = (cpu_seconds("self"), cpu_seconds(&sim_pid));
    let started = Instant::now();
    let reports =
        sync_with_progress(&side.app.engine, &side.conn, side.adapter.remote.clone(), Utc::now(), label).await?;
    let wall = started.elapsed();
    let cpu_after = (cpu_seconds("self"), cpu_seconds(&sim_pid));
    let after = sim.stats().await?;
    let s = SyncSummary::of(&reports);
    let changed = s.pulled.total();
    let requests = exchange_requests(&after) - exchange_requests(&before);
    let (failed, note) = failures(&reports);
    let row = Row {
        protocol: protocol_name(side.protocol).into(),
        wall_s: wall.as_secs_f64(),
        requests,
        tokens: tokens(&after) - tokens(&before),
        changed_events: changed,
        requests_per_changed_event: (changed > 0).then(|| requests as f64 / changed as f64),
        peak_mem_mib: peak_memory_mib(),
        cpu_s: cpu_after.0.zip(cpu_before.0).map(|(a, b)| a - b),
        sim_cpu_s: cpu_after.1.zip(cpu_before.1).map(|(a, b)| a - b),
        failed,
        note,
        ..Row::default()
    };
    Ok((row, reports))
}

fn join_notes(first: String, then: &str) -> String {
    if then.is_empty() {
        first
    } else {
        format!("{first}; {then}")
    }
}

fn with_bound(mut row: Row, bound: &Bound) -> Row {
    let b = bound.seconds();
    row.bound_s = Some(b);
    row.bound = Some(bound.describe());
    row.ratio = (b > 0.0).then(|| row.wall_s / b);
    row
}

async fn initial(args: &BenchArgs, sim: &SimProcess, side: &Side) -> Result<Row> {
    let (row, reports) = measured_sync(sim, side, &format!("initial sync ({})", protocol_name(side.protocol))).await?;
    let events: Vec<u64> = reports.iter().map(|r| r.pulled.created).collect();
    let bound = initial_bound(side.protocol, &events, Duration::from_millis(args.latency_ms), args.max_threads);
    Ok(Row { scenario: "initial".into(), ..with_bound(row, &bound) })
}

async fn steady(args: &BenchArgs, sim: &SimProcess, side: &Side, seed_base: u64) -> Result<Vec<Row>> {
    let mut rows = Vec::new();
    let total_events = (args.mailboxes * args.events) as f64;
    let count = ((total_events * args.change_percent / 100.0).round() as usize).max(1);
    let latency = Duration::from_millis(args.latency_ms);
    let mailboxes = sim.info.mailboxes.len() as u64;
    for cycle in 1..=args.cycles {
        let changed = sim.change(count, seed_base + cycle as u64).await?;
        let changed_mailboxes =
            changed.iter().map(|c| c.mailbox.as_str()).collect::<std::collections::HashSet<_>>().len() as u64;
        let (row, _) =
            measured_sync(sim, side, &format!("steady cycle {cycle} ({})", protocol_name(side.protocol))).await?;
        let bound = cycle_bound(side.protocol, mailboxes, changed_mailboxes, latency, args.max_threads);
        let mut row = with_bound(row, &bound);
        row.scenario = format!("steady {}% (cycle {cycle})", args.change_percent);
        row.note = join_notes(format!("{} changes made in {} mailboxes", changed.len(), changed_mailboxes), &row.note);
        rows.push(row);
    }
    let (row, _) = measured_sync(sim, side, &format!("idle cycle ({})", protocol_name(side.protocol))).await?;
    let bound = cycle_bound(side.protocol, mailboxes, 0, latency, args.max_threads);
    let mut row = with_bound(row, &bound);
    row.scenario = "steady idle".into();
    row.note = join_notes(
        format!("{:.2} requests per mailbox (target: at most 1)", row.requests as f64 / mailboxes as f64),
        &row.note,
    );
    rows.push(row);
    Ok(rows)
}

// ------------------------------------------------------------------------------------------
// Propagation through change notifications

fn percentile(sorted: &[f64], p: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1])
}

/// The REST API on a loopback port, with its background tasks.
struct RunningApi {
    base: String,
    state: ApiState,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for RunningApi {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// The REST API on a loopback port; with `notifications`, the change-notification machinery
/// of that protocol too (Graph: subscriptions to this server's URL; EWS: streaming watches).
async fn start_api(side: &Side, notifications: Option<Protocol>) -> Result<RunningApi> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.context("cannot bind 127.0.0.1:0")?;
    let base = format!("http://{}", listener.local_addr()?);
    let config = ApiConfig {
        policy: side.app.config.sync.policy,
        public_url: (notifications == Some(Protocol::Graph)).then(|| base.clone()),
        ews_notifications: notifications == Some(Protocol::Ews),
        subscription_check: Duration::from_millis(500),
        reconcile_interval: Duration::from_secs(86_400),
        ..ApiConfig::default()
    };
    let mut key = [0u8; 32];
    key[..16].copy_from_slice(uuid::Uuid::new_v4().as_bytes());
    key[16..].copy_from_slice(uuid::Uuid::new_v4().as_bytes());
    let secrets: HashMap<_, _> = side.cc.secret.clone().ok().map(|s| (side.cc.name.clone(), s)).into_iter().collect();
    let state = ApiState::new(
        side.app.engine.clone(),
        crate::serve::connectors(INSTALLATION),
        MasterKey::from_bytes(key),
        config,
    )
    .with_fallback_secrets(secrets);
    let mut tasks = vec![tokio::spawn({
        let state = state.clone();
        async move {
            if let Err(e) = calbridge_api::serve(listener, state, std::future::pending()).await {
                eprintln!("the bench's API server stopped: {e}");
            }
        }
    })];
    if notifications.is_some() {
        tasks.push(tokio::spawn(calbridge_api::notifications::run_sync_queue(state.clone())));
        tasks.push(tokio::spawn(calbridge_api::notifications::run_subscriptions(state.clone())));
        tasks.push(tokio::spawn(calbridge_api::notifications::run_ews_notifications(state.clone())));
    }
    Ok(RunningApi { base, state, tasks })
}

/// Waits until the simulator has answered no Graph or EWS request for a second.
async fn quiet(sim: &SimProcess, limit: Duration) -> Result<()> {
    let started = Instant::now();
    let mut last = exchange_requests(&sim.stats().await?);
    while started.elapsed() < limit {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let now = exchange_requests(&sim.stats().await?);
        if now == last {
            return Ok(());
        }
        last = now;
    }
    bail!("calbridge kept sending requests for {} s after subscribing", limit.as_secs())
}

async fn propagation(args: &BenchArgs, sim: &SimProcess, side: &Side, protocol: Protocol) -> Result<Vec<Row>> {
    let mailboxes = sim.info.mailboxes.len();
    let name = protocol_name(protocol);
    reset_peak_memory();
    let api = start_api(side, Some(protocol)).await?;
    // Subscriptions first (one request each, and an idle sync each afterwards).
    let bar = progress_bar(mailboxes as u64, &format!("subscribing ({name})"));
    let limit = Duration::from_millis(mailboxes as u64 * (args.latency_ms + 100) * 4) + Duration::from_secs(60);
    let started = Instant::now();
    loop {
        let n = match protocol {
            Protocol::Graph => sim.subscriptions().await?.len(),
            Protocol::Ews => sim.ews_subscriptions().await?,
        };
        bar.set_position(n as u64);
        if n >= mailboxes {
            break;
        }
        if started.elapsed() > limit {
            bar.finish_and_clear();
            bail!(
                "only {n} of {mailboxes} calendars were subscribed to change notifications after {} s",
                limit.as_secs()
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    bar.finish_and_clear();
    quiet(sim, Duration::from_secs(300)).await?;

    // Idle with notifications: nothing changes, so nothing should be asked.
    let idle = Duration::from_secs(5);
    let before = sim.stats().await?;
    tokio::time::sleep(idle).await;
    let after = sim.stats().await?;
    let idle_requests = exchange_requests(&after) - exchange_requests(&before);
    let idle_row = Row {
        scenario: "steady idle, notifications".into(),
        protocol: name.into(),
        wall_s: idle.as_secs_f64(),
        requests: idle_requests,
        tokens: tokens(&after) - tokens(&before),
        bound_s: Some(0.0),
        bound: Some("no change, no request".into()),
        note: format!(
            "{:.3} requests per mailbox in {} s with every calendar subscribed (target: none)",
            idle_requests as f64 / mailboxes as f64,
            idle.as_secs()
        ),
        ..Row::default()
    };

    // One change at a time: from the change in the simulator to the change in the store.
    let store = side.app.store.clone();
    let mut calendars = HashMap::new();
    for c in store.calendars(Some(side.conn.id)).await? {
        calendars.insert(c.email.to_ascii_lowercase(), c.id);
    }
    let bar = progress_bar(args.samples as u64, &format!("propagation ({name})"));
    let before = sim.stats().await?;
    let mut latencies = Vec::with_capacity(args.samples);
    let mut lost = 0;
    for i in 0..args.samples {
        let t0 = Instant::now();
        // Each protocol's own seeds: both sides share one simulator, and a change the other
        // side already made would be no change at all.
        let seed = match protocol {
            Protocol::Graph => 1_000_000,
            Protocol::Ews => 2_000_000,
        } + i as u64;
        let changed = sim.change(1, seed).await?;
        let Some(c) = changed.into_iter().next() else { bail!("the simulator made no change") };
        let cal = *calendars.get(&c.mailbox.to_ascii_lowercase()).context("a change in a mailbox not linked")?;
        loop {
            let events = store.events_in_range(cal, c.start, c.end.max(c.start + ChronoDuration::minutes(1))).await?;
            if events.iter().any(|e| e.data.subject == c.subject) {
                latencies.push(t0.elapsed().as_secs_f64() * 1000.0);
                break;
            }
            if t0.elapsed() > Duration::from_secs(10) {
                lost += 1;
                break;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        bar.inc(1);
    }
    bar.finish_and_clear();
    let after = sim.stats().await?;
    let wall = latencies.iter().sum::<f64>() / 1000.0;
    latencies.sort_by(|a, b| a.total_cmp(b));
    let requests = exchange_requests(&after) - exchange_requests(&before);
    let p50 = percentile(&latencies, 50.0);
    // After the notification: Graph reads one delta page; EWS one SyncFolderItems page, then
    // one GetItem for the changed item.
    let chain = match protocol {
        Protocol::Graph => 1,
        Protocol::Ews => 2,
    };
    let bound_s = (chain * args.latency_ms) as f64 / 1000.0;
    let row = Row {
        scenario: "propagation".into(),
        protocol: name.into(),
        wall_s: wall,
        requests,
        tokens: tokens(&after) - tokens(&before),
        changed_events: latencies.len() as u64,
        requests_per_changed_event: (!latencies.is_empty()).then(|| requests as f64 / latencies.len() as f64),
        peak_mem_mib: peak_memory_mib(),
        bound_s: Some(bound_s),
        bound: Some(match protocol {
            Protocol::Graph => format!("one delta request after the notification: {} ms", args.latency_ms),
            Protocol::Ews => format!("SyncFolderItems then GetItem after the notification: 2 × {} ms", args.latency_ms),
        }),
        ratio: p50.filter(|_| bound_s > 0.0).map(|p| p / 1000.0 / bound_s),
        p50_ms: p50,
        p99_ms: percentile(&latencies, 99.0),
        failed: lost,
        cpu_s: None,
        sim_cpu_s: None,
        note: format!(
            "{} changes one at a time; ratio = p50 / bound; {}{}",
            args.samples,
            match protocol {
                Protocol::Graph => "the simulator delivers Graph notifications every 50 ms",
                Protocol::Ews => "EWS events are streamed as they happen",
            },
            if lost > 0 { format!("; {lost} not in the store within 10 s") } else { String::new() }
        ),
    };
    drop(api);
    Ok(vec![idle_row, row])
}

// ------------------------------------------------------------------------------------------
// Availability from the store, through the REST API

async fn availability(args: &BenchArgs, side: &Side) -> Result<Row> {
    reset_peak_memory();
    let api = start_api(side, None).await?;
    let (key, _) = calbridge_api::auth::create_key(api.state.store().as_ref(), "bench", Scope::Read).await?;
    let mut ids: Vec<i64> = side.app.store.calendars(Some(side.conn.id)).await?.iter().map(|c| c.id).collect();
    ids.truncate(args.availability_calendars.max(1));
    let from = Utc::now().date_naive().and_hms_opt(0, 0, 0).unwrap().and_utc();
    let to = from + ChronoDuration::days(7);
    let http = reqwest::Client::new();
    let url = format!("{}/availability", api.base);
    let query = || {
        let futures = ids.chunks(AVAILABILITY_CHUNK).map(|chunk| {
            let body = serde_json::json!({ "calendars": chunk, "from": from, "to": to });
            let req = http.post(&url).bearer_auth(&key).json(&body);
            async move {
                let r = req.send().await?;
                let status = r.status();
                let body = r.bytes().await?;
                if !status.is_success() {
                    bail!("POST /availability answered {status}: {}", String::from_utf8_lossy(&body));
                }
                // Parsed whole, as a client with typed answers would; only the merged count is kept.
                #[derive(serde::Deserialize)]
                struct Answer {
                    merged: Vec<serde::de::IgnoredAny>,
                }
                let answer: Answer = serde_json::from_slice(&body)?;
                Ok::<usize, anyhow::Error>(answer.merged.len())
            }
        });
        futures_join_all(futures)
    };
    for _ in 0..3 {
        query().await?; // warm-up: connections, caches
    }
    let bar = progress_bar(args.samples as u64, "availability");
    let mut times = Vec::with_capacity(args.samples);
    let started = Instant::now();
    let mut busy = 0;
    for _ in 0..args.samples {
        let t0 = Instant::now();
        busy = query().await?.into_iter().sum::<usize>();
        times.push(t0.elapsed().as_secs_f64() * 1000.0);
        bar.inc(1);
    }
    bar.finish_and_clear();
    let wall = started.elapsed();
    times.sort_by(|a, b| a.total_cmp(b));
    drop(api);
    Ok(Row {
        scenario: format!("availability ({} calendars, 1 week)", ids.len()),
        protocol: "store".into(),
        wall_s: wall.as_secs_f64(),
        peak_mem_mib: peak_memory_mib(),
        p50_ms: percentile(&times, 50.0),
        p99_ms: percentile(&times, 99.0),
        note: format!(
            "{} queries; each is {} POST /availability (at most {AVAILABILITY_CHUNK} calendars each, concurrent) over HTTP on loopback; {busy} merged busy intervals",
            args.samples,
            ids.len().div_ceil(AVAILABILITY_CHUNK)
        ),
        ..Row::default()
    })
}

/// Runs the futures concurrently and collects their results in order.
async fn futures_join_all<T, F>(futures: impl Iterator<Item = F>) -> Result<Vec<T>>
where
    F: std::future::Future<Output = Result<T>>,
{
    let futures: Vec<_> = futures.map(Box::pin).collect();
    let mut out = Vec::with_capacity(futures.len());
    // Started together: each is polled by the join below.
    let results = join_all_inner(futures).await;
    for r in results {
        out.push(r?);
    }
    Ok(out)
}

async fn join_all_inner<F: std::future::Future + Unpin>(mut futures: Vec<F>) -> Vec<F::Output> {
    let mut results: Vec<Option<F::Output>> = futures.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (f, slot) in futures.iter_mut().zip(results.iter_mut()) {
            if slot.is_none() {
                match std::pin::Pin::new(&mut *f).poll(cx) {
                    std::task::Poll::Ready(v) => *slot = Some(v),
                    std::task::Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            std::task::Poll::Pending
        } else {
            std::task::Poll::Ready(())
        }
    })
    .await;
    results.into_iter().map(|r| r.expect("every future completed")).collect()
}

// ------------------------------------------------------------------------------------------
// The exchangelib peer

/// The peer script, shipped inside the binary.
const PEER_SCRIPT: &str = include_str!("../../../bench/exchangelib_peer.py");

#[derive(Debug, Deserialize)]
struct PeerResult {
    wall_s: f64,
    items: u64,
    mailboxes: u64,
    errors: u64,
    peak_mem_mib: Option<f64>,
    first_error: Option<String>,
}

/// Why the peer cannot run here, if it cannot.
fn peer_unavailable(python: &str) -> Option<String> {
    match std::process::Command::new(python)
        .args(["-c", "import exchangelib"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
    {
        Ok(s) if s.success() => None,
        Ok(_) => Some(format!("{python} cannot import exchangelib (pip install -r tests/python/requirements.txt)")),
        Err(e) => Some(format!("{python} cannot be run ({e}); set --python or PYTHON")),
    }
}

async fn peer(args: &BenchArgs, sim: &SimProcess, side: &Side) -> Result<Row> {
    let dir = &side._dir.0;
    let script = dir.join("exchangelib_peer.py");
    std::fs::write(&script, PEER_SCRIPT)?;
    let list = dir.join("mailboxes.txt");
    std::fs::write(&list, sim.info.mailboxes.join("\n"))?;
    let window = side.app.engine.config().window(Utc::now());
    let before = sim.stats().await?;
    let started = Instant::now();
    let bar = progress_bar(0, "exchangelib peer (ews)");
    bar.set_length(1);
    let output = tokio::process::Command::new(&args.python)
        .arg(&script)
        .args(["--ews-url", &sim.info.ews_url])
        .args(["--username", sim.info.ews_username.as_deref().unwrap_or_default()])
        .args(["--mailboxes"])
        .arg(&list)
        .args(["--start", &window.start.to_rfc3339(), "--end", &window.end.to_rfc3339()])
        .args(["--threads", &args.max_threads.to_string()])
        .env("CALBRIDGE_PEER_PASSWORD", sim.info.ews_password.as_deref().unwrap_or_default())
        .stdin(std::process::Stdio::null())
        .output()
        .await
        .context("cannot run the exchangelib peer")?;
    bar.finish_and_clear();
    let wall = started.elapsed();
    let after = sim.stats().await?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let Some(result) = stdout.lines().rev().find_map(|l| serde_json::from_str::<PeerResult>(l).ok()) else {
        bail!(
            "the exchangelib peer failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr).lines().rev().take(5).collect::<Vec<_>>().join(" | ")
        );
    };
    let requests = exchange_requests(&after) - exchange_requests(&before);
    let events: Vec<u64> = vec![args.events as u64; result.mailboxes as usize];
    let bound = initial_bound(Protocol::Ews, &events, Duration::from_millis(args.latency_ms), args.max_threads);
    let mut row = with_bound(
        Row {
            scenario: "initial, exchangelib peer".into(),
            protocol: "ews".into(),
            wall_s: result.wall_s,
            requests,
            tokens: tokens(&after) - tokens(&before),
            changed_events: result.items,
            requests_per_changed_event: (result.items > 0).then(|| requests as f64 / result.items as f64),
            peak_mem_mib: result.peak_mem_mib,
            failed: result.errors,
            ..Row::default()
        },
        &bound,
    );
    row.note = format!(
        "{} mailboxes, {} threads; process wall time {:.1} s (with Python's start){}",
        result.mailboxes,
        args.max_threads,
        wall.as_secs_f64(),
        result.first_error.map(|e| format!("; first error: {e}")).unwrap_or_default()
    );
    Ok(row)
}

// ------------------------------------------------------------------------------------------
// The command

pub async fn run(args: BenchArgs) -> Result<()> {
    if args.mailboxes == 0 || args.events == 0 || args.samples == 0 || args.max_threads == 0 {
        bail!("--mailboxes, --events, --samples and --max-threads must be at least 1");
    }
    if !(args.change_percent > 0.0 && args.change_percent <= 100.0) {
        bail!("--change-percent must be above 0 and at most 100 (got {})", args.change_percent);
    }
    if args.store.is_some() && args.protocols.len() > 1 {
        bail!("--store names one database, but each protocol needs its own. Fix: run once per protocol (--protocols graph, then --protocols ews with another empty database)");
    }
    let wants = |s: BenchScenario| args.scenarios.contains(&s);
    eprintln!(
        "calbridge bench: {} mailboxes x {} events, {} ms per request, max_threads {}",
        args.mailboxes, args.events, args.latency_ms, args.max_threads
    );
    eprintln!("starting the simulator (another process) and generating its mailboxes ...");
    let sim = SimProcess::start(&args).await?;
    let peer_skip = if args.no_peer {
        Some("--no-peer".to_string())
    } else if !args.protocols.contains(&Protocol::Ews) {
        Some("EWS is not among --protocols".to_string())
    } else {
        peer_unavailable(&args.python)
    };
    let mut rows: Vec<Row> = Vec::new();
    let mut availability_done = false;
    for (i, protocol) in args.protocols.iter().copied().enumerate() {
        let side = open_side(&args, &sim.info, protocol).await?;
        let row = initial(&args, &sim, &side).await?;
        eprintln!("  {} initial sync: {:.1} s, {} requests", protocol_name(protocol), row.wall_s, row.requests);
        rows.push(row);
        if protocol == Protocol::Ews && peer_skip.is_none() {
            let row = peer(&args, &sim, &side).await?;
            eprintln!("  exchangelib peer: {:.1} s, {} requests", row.wall_s, row.requests);
            rows.push(row);
        }
        if wants(BenchScenario::Steady) {
            rows.extend(steady(&args, &sim, &side, 100 * (i as u64 + 1)).await?);
        }
        if wants(BenchScenario::Propagation) {
            rows.extend(propagation(&args, &sim, &side, protocol).await?);
        }
        if wants(BenchScenario::Availability) && !availability_done {
            rows.push(availability(&args, &side).await?);
            availability_done = true;
        }
    }
    let ews_initial = rows.iter().find(|r| r.scenario == "initial" && r.protocol == "ews").map(|r| r.wall_s);
    let peer_wall = rows.iter().find(|r| r.scenario.contains("peer")).map(|r| r.wall_s);
    let speedup = match (ews_initial, peer_wall) {
        (Some(c), Some(p)) if c > 0.0 => Some(p / c),
        _ => None,
    };
    if args.json {
        let doc = serde_json::json!({
            "mailboxes": args.mailboxes,
            "events_per_mailbox": args.events,
            "latency_ms": args.latency_ms,
            "max_threads": args.max_threads,
            "rows": rows,
            "peer": match &peer_skip { Some(why) => serde_json::json!({"skipped": why}), None => serde_json::json!({"speedup": speedup}) },
        });
        println!("{}", serde_json::to_string_pretty(&doc)?);
    } else {
        print_table(&args, &rows);
        match (&peer_skip, speedup) {
            (Some(why), _) => println!("\nexchangelib peer: skipped ({why})"),
            (None, Some(x)) => println!(
                "\ncalbridge's EWS initial sync is {x:.1}x as fast as the exchangelib script (its wall time / calbridge's)"
            ),
            (None, None) => println!("\nexchangelib peer: no comparison (no EWS initial sync)"),
        }
    }
    Ok(())
}

fn opt(v: Option<f64>, digits: usize) -> String {
    v.map(|v| format!("{v:.digits$}")).unwrap_or_else(|| "-".into())
}

fn print_table(args: &BenchArgs, rows: &[Row]) {
    println!(
        "\ncalbridge bench: {} mailboxes x {} events, latency {} ms, max_threads {}, {} cores\n",
        args.mailboxes,
        args.events,
        args.latency_ms,
        args.max_threads,
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
    );
    println!(
        "{:<34} {:<6} {:>9} {:>7} {:>7} {:>9} {:>9} {:>9} {:>9} {:>7} {:>9} {:>9}",
        "scenario",
        "proto",
        "wall s",
        "cpu s",
        "sim cpu",
        "requests",
        "req/chg",
        "peak MiB",
        "bound s",
        "ratio",
        "p50 ms",
        "p99 ms"
    );
    for r in rows {
        println!(
            "{:<34} {:<6} {:>9.2} {:>7} {:>7} {:>9} {:>9} {:>9} {:>9} {:>7} {:>9} {:>9}",
            r.scenario,
            r.protocol,
            r.wall_s,
            opt(r.cpu_s, 1),
            opt(r.sim_cpu_s, 1),
            r.requests,
            opt(r.requests_per_changed_event, 3),
            opt(r.peak_mem_mib, 1),
            opt(r.bound_s, 2),
            opt(r.ratio, 2),
            opt(r.p50_ms, 1),
            opt(r.p99_ms, 1),
        );
    }
    println!("\nnotes:");
    for r in rows {
        let mut parts = Vec::new();
        if let Some(b) = &r.bound {
            parts.push(format!("bound: {b}"));
        }
        if r.failed > 0 {
            parts.push(format!("{} failed", r.failed));
        }
        if !r.note.is_empty() {
            parts.push(r.note.clone());
        }
        if !parts.is_empty() {
            println!("  {} ({}): {}", r.scenario, r.protocol, parts.join("; "));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_time_is_read_past_a_command_name_with_spaces_and_parentheses() {
        let line = "4242 (calbridge (x) y) S 1 4242 4242 0 -1 4194560 900 0 0 0 1234 56 0 0 20 0 9 0 77 0 0";
        assert_eq!(stat_cpu_seconds(line), Some(12.9));
        assert_eq!(stat_cpu_seconds("4242 (short) S 1"), None, "a truncated line has no CPU time");
        let before = cpu_seconds("self").expect("this process's CPU time");
        let mut x = 0u64;
        let started = Instant::now();
        while started.elapsed() < Duration::from_millis(150) {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(std::hint::black_box(1));
        }
        std::hint::black_box(x);
        assert!(cpu_seconds("self").unwrap() > before, "busy work shows as CPU time");
    }

    #[test]
    fn the_graph_bound_counts_pages_per_mailbox_and_spreads_them_over_the_threads() {
        let b = initial_bound(Protocol::Graph, &[500, 500, 1500, 0], Duration::from_millis(20), 2);
        assert_eq!((b.total, b.chain, b.concurrency), (2 + 2 + 3 + 2, 3, 2));
        assert!((b.seconds() - 9.0 * 0.020 / 2.0).abs() < 1e-9);
        let one = initial_bound(Protocol::Graph, &[5000], Duration::from_millis(10), 8);
        assert!((one.seconds() - 6.0 * 0.010).abs() < 1e-9, "one mailbox: its chain is the bound");
    }

    #[test]
    fn the_ews_bound_reads_each_sync_page_with_one_getitem_and_caps_concurrency_at_27() {
        let b = initial_bound(Protocol::Ews, &[500, 600], Duration::from_millis(20), 64);
        assert_eq!((b.total, b.chain, b.concurrency), (3 + 5, 5, 27));
        let idle = cycle_bound(Protocol::Ews, 10, 0, Duration::from_millis(20), 4);
        assert_eq!((idle.total, idle.chain), (10, 1));
    }

    #[test]
    fn percentiles_take_the_nearest_rank() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&v, 50.0), Some(50.0));
        assert_eq!(percentile(&v, 99.0), Some(99.0));
        assert_eq!(percentile(&[7.0], 99.0), Some(7.0));
        assert_eq!(percentile(&[], 50.0), None);
    }
}
