//! Shared wiring for the commands: store, adapters, engine, progress output.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use chrono::{DateTime, NaiveDate, Utc};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};

use calbridge_core::model::{Calendar, Connection, ConnectionSettings};
use calbridge_core::policy::{present, FreeBusyPolicy};
use calbridge_core::remote::Remote;
use calbridge_core::store::{NewCalendar, NewConnection, Store};
use calbridge_engine::{CalendarReport, Engine, EngineConfig, SyncSummary};
use calbridge_ews::{EwsConnector, EwsOptions, EwsRemote};
use calbridge_graph::client::{GraphClient, GraphOptions};
use calbridge_graph::remote::GraphRemote;

use crate::config::{Config, ConnectionConfig};

/// The engine and its store, configured.
pub struct App {
    pub store: Arc<dyn Store>,
    pub engine: Engine,
    pub config: Config,
}

impl App {
    pub async fn open(config: Config) -> Result<App> {
        let store = calbridge_store::open_store(&config.store).await.with_context(|| {
            let store = calbridge_store::redact_url(&config.store);
            format!("cannot open the store {store:?} (key `store`, or CALBRIDGE_STORE)")
        })?;
        let mut ec = EngineConfig::new(config.installation_id.clone());
        ec.window_past_days = config.sync.window_past_days;
        ec.window_future_days = config.sync.window_future_days;
        ec.delete_guard = config.sync.delete_guard;
        let engine = Engine::new(store.clone(), ec);
        Ok(App { store, engine, config })
    }

    /// Writes the configuration's connections, sites and calendar links into the store.
    pub async fn apply_links(&self) -> Result<Vec<(Connection, ConnectionConfig)>> {
        let mut out = Vec::new();
        for c in &self.config.connections {
            let conn = self
                .store
                .upsert_connection(NewConnection {
                    name: c.name.clone(),
                    settings: c.settings.clone(),
                    default_organizer: c.default_organizer.clone(),
                    max_threads: c.max_threads,
                })
                .await?;
            out.push((conn, c.clone()));
        }
        let conn_id = |name: &str| out.iter().find(|(c, _)| c.name == name).map(|(c, _)| c.id).expect("validated");
        let mut site_ids = std::collections::HashMap::new();
        for s in &self.config.sites {
            let site = self.store.upsert_site(&s.name, conn_id(&s.connection)).await?;
            site_ids.insert(s.name.clone(), site.id);
        }
        for c in &self.config.calendars {
            self.store
                .upsert_calendar(NewCalendar {
                    email: c.email.clone(),
                    kind: c.kind,
                    display_name: c.name.clone(),
                    connection_id: conn_id(&c.connection),
                    site_id: c.site.as_ref().map(|s| site_ids[s]),
                    busy_only: c.busy_only,
                })
                .await?;
        }
        Ok(out)
    }
}

/// A connection's adapter, plus its count of requests sent to Exchange.
pub struct Adapter {
    pub remote: Arc<dyn Remote>,
    requests: Box<dyn Fn() -> u64 + Send + Sync>,
}

impl Adapter {
    /// Requests sent to Exchange so far (token requests not included).
    pub fn requests(&self) -> u64 {
        (self.requests)()
    }
}

/// Graph's client settings: delta pages of 1,000 events (the largest page Graph serves; the
/// library's default of 100 costs five times the requests and round trips of a first sync).
pub fn graph_options(installation_id: &str) -> GraphOptions {
    GraphOptions { installation_id: installation_id.to_string(), page_size: 1000, ..GraphOptions::default() }
}

/// EWS's client settings: SyncFolderItems pages stay at their maximum of 512, and one GetItem
/// reads a whole page's items (the schema sets no limit on a GetItem's ids; exchangelib reads
/// 100 at a time, the library's default is 50), so a page costs two requests, not six.
pub fn ews_options(installation_id: &str) -> EwsOptions {
    EwsOptions { installation_id: installation_id.to_string(), get_item_batch: 512, ..EwsOptions::default() }
}

pub fn adapter(c: &ConnectionConfig, installation_id: &str) -> Result<Adapter> {
    match &c.settings {
        ConnectionSettings::Graph(g) => {
            let options =
                GraphOptions { max_in_flight: c.max_threads.max(1) as usize, ..graph_options(installation_id) };
            let secret = c.secret.clone().map_err(anyhow::Error::msg)?;
            let client = GraphClient::new(g, secret, options)
                .with_context(|| format!("cannot set up the Graph client of connection {:?}", c.name))?;
            Ok(Adapter {
                remote: Arc::new(GraphRemote::new(client.clone())),
                requests: Box::new(move || client.requests()),
            })
        }
        ConnectionSettings::Ews(e) => {
            let options = EwsOptions { max_in_flight: c.max_threads.max(1) as usize, ..ews_options(installation_id) };
            let secret = c.secret.clone().map_err(anyhow::Error::msg)?;
            let client = EwsConnector::new(options)
                .client(e, secret)
                .with_context(|| format!("cannot set up the EWS client of connection {:?}", c.name))?;
            Ok(Adapter {
                remote: Arc::new(EwsRemote::new(client.clone())),
                requests: Box::new(move || client.requests()),
            })
        }
    }
}

pub fn progress_bar(len: u64, what: &str) -> ProgressBar {
    let bar = if std::io::IsTerminal::is_terminal(&std::io::stderr()) {
        ProgressBar::new(len)
    } else {
        ProgressBar::hidden()
    };
    bar.set_style(
        ProgressStyle::with_template("{spinner} {msg:<28} [{bar:32}] {pos}/{len} {per_sec} eta {eta}")
            .expect("template")
            .progress_chars("=> "),
    );
    bar.set_message(what.to_string());
    bar.enable_steady_tick(Duration::from_millis(120));
    bar
}

/// Syncs one connection with a progress bar; when stderr is not a terminal, prints a line per
/// tenth of the calendars instead.
pub async fn sync_with_progress(
    engine: &Engine,
    conn: &Connection,
    remote: Arc<dyn Remote>,
    now: DateTime<Utc>,
    label: &str,
) -> Result<Vec<CalendarReport>> {
    let total = engine.store().calendars(Some(conn.id)).await?.len() as u64;
    let bar = progress_bar(total, label);
    let plain = bar.is_hidden();
    let done = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let bar2 = bar.clone();
    let label2 = label.to_string();
    let on_done = Arc::new(move |r: &CalendarReport| {
        let n = done.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
        bar2.inc(1);
        if let Some(e) = &r.error {
            bar2.println(format!("  ! {}: {e}", r.email));
        }
        if let Some(p) = &r.paused {
            bar2.println(format!("  ! {} paused: {p}", r.email));
        }
        if plain && (n == total || n.is_multiple_of((total / 10).max(1))) {
            eprintln!("  {label2}: {n}/{total} calendars");
        }
    });
    let reports = engine.sync_connection(conn, remote, now, on_done).await?;
    bar.finish_and_clear();
    Ok(reports)
}

pub fn print_summary_line(s: &SyncSummary) {
    println!(
        "  calendars {}  pulled +{} ~{} -{}  pushed +{} ~{} -{}  writes {}  failed {}  paused {}",
        s.calendars,
        s.pulled.created,
        s.pulled.updated,
        s.pulled.deleted,
        s.pushed.created,
        s.pushed.updated,
        s.pushed.deleted,
        s.writes.total(),
        s.failed,
        s.paused
    );
}

// ------------------------------------------------------------------------------------------
// `calbridge sync`

#[derive(Args)]
pub struct SyncArgs {
    /// Only this connection (by name).
    #[arg(long)]
    connection: Option<String>,
    /// Only this calendar (by e-mail address).
    #[arg(long)]
    calendar: Option<String>,
}

#[derive(clap::Args)]
pub struct RoomsImportArgs {
    /// The connection whose organisation's rooms to import (default: the only one).
    #[arg(long)]
    connection: Option<String>,
    /// Put every imported room in this site (created if missing) instead of one per room list.
    #[arg(long)]
    site: Option<String>,
}

/// `calbridge rooms import`: links every room Exchange lists (GetRoomLists/GetRooms over EWS,
/// `places` over Graph) as a room calendar of the connection, each room list as a site.
pub async fn rooms_import(config: Option<&Path>, args: RoomsImportArgs) -> Result<()> {
    let cfg = Config::load(config, &crate::config::process_env)?;
    let names: Vec<String> = cfg.connections.iter().map(|c| c.name.clone()).collect();
    let chosen = match (&args.connection, names.as_slice()) {
        (Some(n), _) if names.contains(n) => n.clone(),
        (Some(n), _) => bail!("no connection named {n:?}. Fix: use one of: {}", names.join(", ")),
        (None, [only]) => only.clone(),
        (None, []) => bail!("no connections configured. Fix: add a [[connections]] table (see the README)"),
        (None, _) => {
            bail!("several connections are configured. Fix: pick one with --connection ({})", names.join(", "))
        }
    };
    let app = App::open(cfg).await?;
    let links = app.apply_links().await?;
    let (conn, cc) = links.iter().find(|(c, _)| c.name == chosen).context("the connection was not stored")?;
    let site = match &args.site {
        Some(name) => Some(app.store.upsert_site(name, conn.id).await?.id),
        None => None,
    };
    let ad = adapter(cc, &app.config.installation_id)?;
    let report = calbridge_engine::rooms::import_rooms(app.store.as_ref(), ad.remote.as_ref(), conn, site)
        .await
        .with_context(|| format!("importing the rooms of connection {:?} failed", conn.name))?;
    for s in &report.sites_created {
        println!("site created: {s}");
    }
    for r in &report.linked {
        println!("linked: {r}");
    }
    println!(
        "{} rooms linked, {} already linked; run `calbridge sync` to verify and sync them",
        report.linked.len(),
        report.existing.len()
    );
    Ok(())
}

pub async fn sync(config: Option<&Path>, args: SyncArgs) -> Result<()> {
    let cfg = Config::load(config, &crate::config::process_env)?;
    if cfg.connections.is_empty() {
        bail!(
            "no connections configured{}. Fix: add a [[connections]] table (see the README's configuration reference), \
             or try `calbridge demo`",
            cfg.source.as_ref().map(|p| format!(" in {}", p.display())).unwrap_or_default()
        );
    }
    let app = App::open(cfg).await?;
    let links = app.apply_links().await?;
    let now = Utc::now();
    let mut all = Vec::new();
    let mut matched = false;
    for (conn, cc) in &links {
        if args.connection.as_ref().is_some_and(|n| n != &conn.name) {
            continue;
        }
        let ad = adapter(cc, &app.config.installation_id)?;
        if let Some(email) = &args.calendar {
            let email = email.to_ascii_lowercase();
            let Some(cal) = app.store.calendar_by_email(&email).await? else { continue };
            if cal.connection_id != conn.id {
                continue;
            }
            matched = true;
            let r = app.engine.verify_and_sync(ad.remote.as_ref(), cal, now).await;
            print_report(&r);
            all.push(r);
        } else {
            matched = true;
            println!("connection {}:", conn.name);
            let reports = sync_with_progress(&app.engine, conn, ad.remote.clone(), now, &conn.name).await?;
            for r in &reports {
                print_report(r);
            }
            all.extend(reports);
        }
        println!("  requests to Exchange: {}", ad.requests());
    }
    if !matched {
        bail!(
            "nothing to sync: {}. Fix: check the name against the configuration",
            match (&args.connection, &args.calendar) {
                (_, Some(c)) => format!("no linked calendar {c:?} in the selected connections"),
                (Some(n), None) => format!("no connection named {n:?}"),
                _ => "no connections".into(),
            }
        );
    }
    let s = SyncSummary::of(&all);
    println!("total:");
    print_summary_line(&s);
    if s.failed > 0 || s.paused > 0 {
        bail!("{} calendar(s) failed and {} paused; see the messages above", s.failed, s.paused);
    }
    Ok(())
}

fn print_report(r: &CalendarReport) {
    let state = if let Some(e) = &r.error {
        format!("FAILED: {e}")
    } else if let Some(p) = &r.paused {
        format!("PAUSED: {p}")
    } else if r.pulled.total() + r.pushed.total() == 0 && r.writes.total() == 0 {
        "idle".into()
    } else {
        format!(
            "pulled +{} ~{} -{}  pushed +{} ~{} -{}  writes {}{}",
            r.pulled.created,
            r.pulled.updated,
            r.pulled.deleted,
            r.pushed.created,
            r.pushed.updated,
            r.pushed.deleted,
            r.writes.total(),
            if r.relisted { "  (cursor expired: re-listed)" } else { "" }
        )
    };
    println!("  {:<9} {:<40} {state}", r.kind.as_str(), r.email);
    for w in &r.warnings {
        println!("      warning: {w}");
    }
}

// ------------------------------------------------------------------------------------------
// `calbridge events`

#[derive(Args)]
pub struct EventsArgs {
    /// The calendar's e-mail address.
    #[arg(long)]
    calendar: String,
    /// First day, YYYY-MM-DD (default: today).
    #[arg(long)]
    from: Option<NaiveDate>,
    /// Day after the last, YYYY-MM-DD (default: 7 days after --from).
    #[arg(long)]
    to: Option<NaiveDate>,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
    /// Also show events marked Free (hidden by the free/busy policy).
    #[arg(long)]
    include_free: bool,
}

pub async fn events(config: Option<&Path>, args: EventsArgs) -> Result<()> {
    let cfg = Config::load(config, &crate::config::process_env)?;
    let policy: FreeBusyPolicy = cfg.sync.policy;
    let app = App::open(cfg).await?;
    let email = args.calendar.to_ascii_lowercase();
    let Some(cal) = app.store.calendar_by_email(&email).await? else {
        bail!("no linked calendar {email:?} in the store. Fix: link it in the configuration and run `calbridge sync` first");
    };
    let from = args.from.unwrap_or_else(|| Utc::now().date_naive());
    let to = args.to.unwrap_or(from + chrono::Duration::days(7));
    if to <= from {
        bail!("--to ({to}) must be after --from ({from})");
    }
    let (f, t) = (from.and_hms_opt(0, 0, 0).unwrap().and_utc(), to.and_hms_opt(0, 0, 0).unwrap().and_utc());
    let events: Vec<_> = app
        .store
        .events_in_range(cal.id, f, t)
        .await?
        .into_iter()
        .filter(|e| args.include_free || policy.visible(&e.data))
        .map(|e| present(&cal, &e))
        .collect();
    if args.json {
        println!("{}", serde_json::to_string_pretty(&events)?);
        return Ok(());
    }
    print_events(&cal, &events);
    Ok(())
}

pub fn print_events(cal: &Calendar, events: &[calbridge_core::model::Event]) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    // A closed pipe (`calbridge events … | head`) ends the listing quietly.
    let _ = (|| -> std::io::Result<()> {
        writeln!(out, "{} ({}) — {} event(s)", cal.display_name, cal.email, events.len())?;
        for e in events {
            let d = &e.data;
            let when = if d.all_day {
                format!("{} all day       ", d.start.format("%a %Y-%m-%d"))
            } else {
                format!("{} {}-{}", d.start.format("%a %Y-%m-%d"), d.start.format("%H:%M"), d.end.format("%H:%M"))
            };
            let status = format!("{:?}", d.show_as).to_lowercase();
            let series = match d.series.kind {
                calbridge_core::model::SeriesKind::Single => "",
                _ => " ↻",
            };
            let location = if d.location.is_empty() { String::new() } else { format!("  @ {}", d.location) };
            writeln!(out, "  {when} UTC  {status:<9} {:<8} {}{series}{location}", e.origin.as_str(), d.subject)?;
        }
        Ok(())
    })();
}

// ------------------------------------------------------------------------------------------
// `calbridge sim`

#[derive(Args)]
pub struct SimArgs {
    /// Scenario file (TOML). Default: the bundled demo organisation.
    #[arg(long, value_name = "FILE")]
    scenario: Option<PathBuf>,
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:5080")]
    listen: String,
    /// Keep the simulator's mailboxes in this file: loaded at start if present, saved on exit.
    #[arg(long, value_name = "FILE")]
    state: Option<PathBuf>,
    /// Serve HTTPS (and plain HTTP on the same port) with a throw-away certificate authority,
    /// for clients that accept only https:// authorities (MSAL, azure-identity).
    #[arg(long)]
    tls: bool,
    /// With --tls: write the CA certificate (PEM) here, for the client to trust
    /// (e.g. REQUESTS_CA_BUNDLE / SSL_CERT_FILE). Default: calbridge-sim-ca.pem.
    #[arg(long, value_name = "FILE", requires = "tls")]
    ca_out: Option<PathBuf>,
    /// Instead of a scenario file: a generated organisation of this many person mailboxes
    /// (the demo's tenant, app and EWS service account), for benchmarks.
    #[arg(long, value_name = "N", conflicts_with_all = ["scenario", "state"])]
    generate_mailboxes: Option<usize>,
    /// With --generate-mailboxes: single events per mailbox, between 28 days before today and
    /// 120 days after.
    #[arg(long, value_name = "N", default_value_t = 500, requires = "generate_mailboxes")]
    generate_events: usize,
    /// Every Graph and EWS request waits this long before it is handled, like a distant server.
    #[arg(long, value_name = "MS", default_value_t = 0)]
    latency_ms: u64,
    /// Print one JSON line (URLs, credentials, the EWS service account, the mailboxes) instead
    /// of the text, for programs that start the simulator.
    #[arg(long)]
    json: bool,
    /// Also stop when standard input closes (a parent process that dies never leaves the
    /// simulator behind).
    #[arg(long)]
    exit_on_stdin_eof: bool,
}

pub async fn sim(args: SimArgs) -> Result<()> {
    let sim = match &args.state {
        Some(p) if p.exists() => calbridge_sim::Simulator::load_state(p)
            .with_context(|| format!("cannot load simulator state from {}", p.display()))?,
        _ => {
            let scenario = match (&args.scenario, args.generate_mailboxes) {
                (Some(p), _) => {
                    calbridge_sim::Scenario::load(p).with_context(|| format!("cannot load scenario {}", p.display()))?
                }
                (None, Some(n)) => calbridge_sim::Scenario::bench(n, args.generate_events),
                (None, None) => calbridge_sim::Scenario::demo(),
            };
            calbridge_sim::Simulator::new(&scenario)?
        }
    };
    sim.faults().set_latency(Duration::from_millis(args.latency_ms));
    let listener = tokio::net::TcpListener::bind(&args.listen)
        .await
        .with_context(|| format!("cannot listen on {} (--listen): is the port in use?", args.listen))?;
    let tls = if args.tls {
        let tls = calbridge_sim::SimTls::self_signed()?;
        let path = args.ca_out.clone().unwrap_or_else(|| PathBuf::from("calbridge-sim-ca.pem"));
        std::fs::write(&path, &tls.ca_cert_pem)
            .with_context(|| format!("cannot write the CA certificate to {}", path.display()))?;
        Some((tls, path))
    } else {
        None
    };
    let base = format!("{}://{}", if tls.is_some() { "https" } else { "http" }, listener.local_addr()?);
    let creds = sim.credentials();
    if args.json {
        let line = sim.connection_info(&base, tls.as_ref().map(|(_, p)| p.display().to_string()));
        println!("{line}");
        return serve_sim(&sim, listener, tls.as_ref().map(|(t, _)| t), &args).await;
    }
    println!("calbridge Exchange simulator");
    println!("  Graph:          {base}/v1.0");
    println!("  token endpoint: {base}/{}/oauth2/v2.0/token", creds.tenant_id);
    println!("  tenant:         {} ({})", creds.tenant_id, creds.tenant_domain);
    println!("  client id:      {}", creds.client_id);
    println!("  client secret:  {}", creds.client_secret);
    println!("  scope:          https://graph.microsoft.com/.default");
    println!();
    println!("A connection for calbridge.toml:");
    println!("  [[connections]]\n  name = \"sim\"\n  kind = \"graph\"\n  tenant_id = \"{}\"\n  client_id = \"{}\"\n  client_secret = \"{}\"\n  authority_url = \"{base}\"\n  graph_url = \"{base}\"", creds.tenant_domain, creds.client_id, creds.client_secret);
    println!();
    if let Some(account) = sim.ews_accounts().into_iter().find(|a| a.impersonation) {
        println!("  EWS:            {base}/EWS/Exchange.asmx (Basic, NTLM; Bearer for apps with full_access_as_app)");
        println!("  service account {} / {} (ApplicationImpersonation)", account.username, account.password);
        println!();
        println!("An EWS connection for calbridge.toml:");
        println!(
            "  [[connections]]\n  name = \"sim-ews\"\n  kind = \"ews\"\n  url = \"{base}/EWS/Exchange.asmx\"\n  auth = \"ntlm\"\n  username = {:?}\n  password = {:?}",
            account.username, account.password
        );
        println!();
    }
    if let Some((_, path)) = &tls {
        println!("HTTPS: trust the CA in {} (REQUESTS_CA_BUNDLE / SSL_CERT_FILE for Python clients).", path.display());
        println!();
    }
    println!("Press Ctrl-C to stop{}.", if args.state.is_some() { " (the state is saved on exit)" } else { "" });
    serve_sim(&sim, listener, tls.as_ref().map(|(t, _)| t), &args).await
}

/// Serves until Ctrl-C, SIGTERM or (with --exit-on-stdin-eof) the end of standard input, then
/// saves the state when asked to.
async fn serve_sim(
    sim: &calbridge_sim::Simulator,
    listener: tokio::net::TcpListener,
    tls: Option<&calbridge_sim::SimTls>,
    args: &SimArgs,
) -> Result<()> {
    let stdin_eof = args.exit_on_stdin_eof;
    let shutdown = async move {
        let stdin_closed = async move {
            if !stdin_eof {
                return std::future::pending::<()>().await;
            }
            calbridge_sim::stdin_closed().await
        };
        tokio::select! {
            _ = stdin_closed => {}
            _ = tokio::signal::ctrl_c() => {}
            _ = crate::serve::terminated() => {}
        }
    };
    match tls {
        Some(t) => sim.serve_tls(listener, t, shutdown).await?,
        None => sim.serve(listener, shutdown).await?,
    }
    if let Some(p) = &args.state {
        sim.save_state(p).with_context(|| format!("cannot save simulator state to {}", p.display()))?;
        if !args.json {
            println!("state saved to {}", p.display());
        }
    }
    Ok(())
}
