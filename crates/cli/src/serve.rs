//! `calbridge serve` (the API server and the sync engine in one process), `calbridge apikey`
//! (API keys), `calbridge admin` (administrators of the admin console) and `calbridge secrets`
//! (the master key: make one, rotate to a new one).

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};

use calbridge_api::{ApiConfig, ApiState};
use calbridge_core::connector::Connector;
use calbridge_core::store::Scope;
use calbridge_engine::secrets::{MasterKey, GENERATE_HINT};
use calbridge_graph::GraphConnector;

use crate::app::App;
use crate::config::Config;

/// The connectors this build serves, one per connection kind. A new kind is one line here.
pub fn connectors(installation_id: &str) -> Vec<Arc<dyn Connector>> {
    let graph = crate::app::graph_options(installation_id);
    let ews = crate::app::ews_options(installation_id);
    vec![Arc::new(GraphConnector::new(graph)), Arc::new(calbridge_ews::EwsConnector::new(ews))]
}

/// The master key from `CALBRIDGE_MASTER_KEY` (or the variable `var`), with an error that says
/// how to make one.
pub fn master_key_from_env(var: &str) -> Result<MasterKey> {
    let Some(text) = crate::config::process_env(var) else {
        bail!("{var} is not set: calbridge needs a master key to seal the secrets it stores. Fix: {GENERATE_HINT}, then export {var}=<the key>");
    };
    MasterKey::from_base64(&text).with_context(|| format!("{var} holds no usable master key"))
}

#[derive(Args)]
pub struct ServeArgs {
    /// Address to listen on [default: 127.0.0.1:8080, or serve.listen].
    #[arg(long, env = "CALBRIDGE_LISTEN")]
    listen: Option<String>,
    /// Seconds between two scheduled syncs of every calendar, 0 for only on request
    /// [default: 300, or serve.sync_interval_secs].
    #[arg(long, env = "CALBRIDGE_SYNC_INTERVAL")]
    sync_interval: Option<u64>,
    /// Comma-separated hosts calbridge may send requests to (Exchange and webhooks);
    /// connection and webhook URLs naming another host are refused. Default: any host.
    #[arg(long, env = "CALBRIDGE_OUTBOUND_HOSTS", value_delimiter = ',')]
    outbound_hosts: Option<Vec<String>>,
    /// Attempts per webhook message and endpoint before it is marked failed
    /// [default: 12, or serve.webhook_max_attempts].
    #[arg(long, env = "CALBRIDGE_WEBHOOK_MAX_ATTEMPTS")]
    webhook_max_attempts: Option<u32>,
    /// Seconds before the first webhook retry; each further one waits twice as long, at most
    /// 6 hours [default: 10, or serve.webhook_retry_secs].
    #[arg(long, env = "CALBRIDGE_WEBHOOK_RETRY_SECS")]
    webhook_retry_secs: Option<u64>,
    /// The base URL at which Exchange reaches this server (https://calbridge.contoso.com):
    /// turns on change notifications (Graph) at {url}/notifications/graph [default: none,
    /// calbridge polls; or serve.public_url].
    #[arg(long, env = "CALBRIDGE_PUBLIC_URL")]
    public_url: Option<String>,
    /// Seconds between reconciles of calendars that receive change notifications
    /// [default: 3600, or serve.reconcile_interval_secs].
    #[arg(long, env = "CALBRIDGE_RECONCILE_INTERVAL")]
    reconcile_interval: Option<u64>,
    /// EWS change notifications: streaming, else pull subscriptions, else the scheduled sync
    /// (true or false) [default: true, or serve.ews_notifications].
    #[arg(long, env = "CALBRIDGE_EWS_NOTIFICATIONS")]
    ews_notifications: Option<bool>,
    /// Seconds between reads of EWS pull subscriptions, used when the server refuses
    /// streaming [default: 15, or serve.ews_pull_interval_secs].
    #[arg(long, env = "CALBRIDGE_EWS_PULL_INTERVAL")]
    ews_pull_interval: Option<u64>,
    /// Long-lived EWS streaming connections per Exchange server (each carries up to 200
    /// mailboxes; at most a quarter of the connection's max_connections; 0: pull only)
    /// [default: 2, or serve.ews_streaming_connections].
    #[arg(long, env = "CALBRIDGE_EWS_STREAMING_CONNECTIONS")]
    ews_streaming_connections: Option<usize>,
    /// This worker's name among the `serve` processes sharing a PostgreSQL store
    /// [default: host name and process id].
    #[arg(long, env = "CALBRIDGE_WORKER_ID")]
    worker_id: Option<String>,
    /// On PostgreSQL: seconds a worker's claim on a calendar lasts without a heartbeat; a
    /// killed worker's calendars move to the others within it [default: 30, or
    /// serve.lease_secs].
    #[arg(long, env = "CALBRIDGE_LEASE_SECS")]
    lease_secs: Option<u64>,
}

/// Completes when the process receives SIGTERM (never elsewhere than on Unix).
pub async fn terminated() {
    #[cfg(unix)]
    match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(mut s) => {
            s.recv().await;
        }
        Err(_) => std::future::pending::<()>().await,
    }
    #[cfg(not(unix))]
    std::future::pending::<()>().await
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let term = terminated();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}

pub async fn serve(config: Option<&Path>, args: ServeArgs) -> Result<()> {
    let cfg = Config::load(config, &crate::config::process_env)?;
    let key = match (crate::config::process_env("CALBRIDGE_MASTER_KEY"), &cfg.serve.master_key_file) {
        (None, Some(path)) => {
            let text = std::fs::read_to_string(path).with_context(|| {
                format!("cannot read the master key file {} (serve.master_key_file)", path.display())
            })?;
            MasterKey::from_base64(&text).with_context(|| format!("{} holds no usable master key", path.display()))?
        }
        _ => master_key_from_env("CALBRIDGE_MASTER_KEY")?,
    };
    let serve_cfg = cfg.serve.clone();
    let listen = args.listen.or(serve_cfg.listen).unwrap_or_else(|| "127.0.0.1:8080".into());
    let sync_interval = args.sync_interval.or(serve_cfg.sync_interval_secs).unwrap_or(300);
    let outbound_hosts = args.outbound_hosts.or(serve_cfg.outbound_hosts);
    let webhook_max_attempts = args.webhook_max_attempts.or(serve_cfg.webhook_max_attempts).unwrap_or(12);
    let webhook_retry_secs = args.webhook_retry_secs.or(serve_cfg.webhook_retry_secs).unwrap_or(10);
    let reconcile_secs = args.reconcile_interval.or(serve_cfg.reconcile_interval_secs).unwrap_or(3600);
    let public_url = match args.public_url.or(serve_cfg.public_url).filter(|u| !u.trim().is_empty()) {
        Some(u) => Some(check_public_url(u.trim())?),
        None => None,
    };
    let lease_secs = args.lease_secs.or(serve_cfg.lease_secs).unwrap_or(30).max(1);
    let ews_notifications = args.ews_notifications.or(serve_cfg.ews_notifications).unwrap_or(true);
    let ews_pull_secs = args.ews_pull_interval.or(serve_cfg.ews_pull_interval_secs).unwrap_or(15).max(1);
    let ews_streams = args.ews_streaming_connections.or(serve_cfg.ews_streaming_connections).unwrap_or(2);
    let worker_id = args.worker_id.filter(|w| !w.trim().is_empty()).unwrap_or_else(default_worker_id);
    let shared = cfg.store.trim_start().starts_with("postgres");
    let app = App::open(cfg).await?;
    // Connections of the configuration file are applied like `calbridge sync` does; their
    // secrets come from the file or the environment.
    app.apply_links().await?;
    let fallback: HashMap<_, _> =
        app.config.connections.iter().filter_map(|c| c.secret.clone().ok().map(|s| (c.name.clone(), s))).collect();
    let api_config = ApiConfig {
        outbound_hosts: outbound_hosts.map(|h| h.into_iter().map(|s| s.trim().to_string()).collect()),
        policy: app.config.sync.policy,
        webhook_max_attempts: webhook_max_attempts.max(1),
        webhook_retry_base: Duration::from_secs(webhook_retry_secs.max(1)),
        decline_on_delete: app.config.scheduling.decline_on_delete,
        learners: if app.config.scheduling.learners_separately {
            calbridge_api::dto::LearnerInvites::Separately
        } else {
            calbridge_api::dto::LearnerInvites::WithSession
        },
        sync_interval: (sync_interval > 0).then(|| Duration::from_secs(sync_interval)),
        public_url: public_url.clone(),
        reconcile_interval: Duration::from_secs(reconcile_secs.max(60)),
        ews_notifications,
        ews_pull_interval: Duration::from_secs(ews_pull_secs),
        ews_streaming_connections: ews_streams,
        worker_id: worker_id.clone(),
        // Several workers share a PostgreSQL store; a SQLite file has one.
        lease_ttl: shared.then(|| Duration::from_secs(lease_secs)),
        ..ApiConfig::default()
    };
    let state = ApiState::new(app.engine.clone(), connectors(&app.config.installation_id), key, api_config)
        .with_fallback_secrets(fallback);
    let listener = tokio::net::TcpListener::bind(&listen).await.with_context(|| {
        format!("cannot listen on {listen} (--listen, CALBRIDGE_LISTEN or serve.listen): is the port in use?")
    })?;
    println!("calbridge API listening on http://{}", listener.local_addr()?);
    println!("  store: {}", calbridge_store::redact_url(&app.config.store));
    println!("  API reference: http://{}/openapi.json (with an API key)", listener.local_addr()?);
    println!("  admin console: http://{}/ui/ (an administrator from `calbridge admin create`)", listener.local_addr()?);
    match &public_url {
        Some(u) => println!("  change notifications: {}", calbridge_api::notifications::notification_url(u)),
        None => println!("  change notifications: off (no --public-url); calendars sync every {sync_interval} s"),
    }
    if ews_notifications {
        println!(
            "  EWS change notifications: on (streaming over at most {ews_streams} connection(s) per server, else pull \
             every {ews_pull_secs} s, else polling)"
        );
    } else {
        println!("  EWS change notifications: off; EWS calendars sync every {sync_interval} s");
    }
    if shared {
        println!("  worker {worker_id}: sharing the calendars with the other workers of this database ({lease_secs} s leases)");
    }
    let leases = tokio::spawn(calbridge_api::leases::run_leases(state.clone()));
    let forwarded = tokio::spawn(calbridge_api::leases::run_forwarded(state.clone()));
    let worker = tokio::spawn(calbridge_api::webhooks::run_worker(state.clone()));
    let notified = tokio::spawn(calbridge_api::notifications::run_sync_queue(state.clone()));
    let keeper = tokio::spawn(calbridge_api::notifications::run_subscriptions(state.clone()));
    let watcher = tokio::spawn(calbridge_api::notifications::run_ews_notifications(state.clone()));
    let scheduler = (sync_interval > 0)
        .then(|| tokio::spawn(calbridge_api::sync::run_periodic(state.clone(), Duration::from_secs(sync_interval))));
    let served = calbridge_api::serve(listener, state.clone(), shutdown_signal()).await;
    leases.abort();
    forwarded.abort();
    calbridge_api::leases::release(&state).await;
    worker.abort();
    notified.abort();
    keeper.abort();
    watcher.abort();
    if let Some(s) = scheduler {
        s.abort();
    }
    served.context("the API server failed")?;
    println!("calbridge stopped");
    Ok(())
}

/// `{host name}-{process id}`: unique among the workers of one database.
fn default_worker_id() -> String {
    let host = std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "calbridge".into());
    format!("{host}-{}", std::process::id())
}

/// The public URL must be absolute http(s) without a query; Graph itself insists on https.
fn check_public_url(url: &str) -> Result<String> {
    let parsed = url::Url::parse(url).map_err(|e| {
        anyhow::anyhow!(
            "--public-url {url:?} is not a URL ({e}). Fix: give the https address Exchange reaches calbridge at"
        )
    })?;
    if !matches!(parsed.scheme(), "https" | "http") || parsed.query().is_some() || parsed.host_str().is_none() {
        anyhow::bail!(
            "--public-url {url:?} must be an http(s) base URL without a query, e.g. https://calbridge.contoso.com. \
             Fix: Microsoft Graph notifies only https addresses it can reach"
        );
    }
    Ok(url.trim_end_matches('/').to_string())
}

// ------------------------------------------------------------------------------------------
// `calbridge apikey`

#[derive(Subcommand)]
pub enum ApiKeyCommand {
    /// Create a key and print it (only this once).
    Create {
        /// read (GET only), write (also events, calendar links, sync) or admin (everything).
        #[arg(long, value_parser = ["read", "write", "admin"])]
        scope: String,
        /// Who or what uses the key ("lms-production").
        #[arg(long)]
        name: String,
    },
    /// List the keys (name, scope, first characters; never the key).
    List,
    /// Delete a key by id: requests with it are refused from now on.
    Delete {
        #[arg(long)]
        id: i64,
    },
}

pub async fn apikey(config: Option<&Path>, cmd: ApiKeyCommand) -> Result<()> {
    let cfg = Config::load(config, &crate::config::process_env)?;
    let app = App::open(cfg).await?;
    match cmd {
        ApiKeyCommand::Create { scope, name } => {
            let scope = Scope::parse(&scope).expect("clap checked the scope");
            let (token, key) = calbridge_api::auth::create_key(app.store.as_ref(), &name, scope).await?;
            eprintln!("API key {} ({}, scope {}) created; it is shown only now:", key.id, key.name, key.scope.as_str());
            println!("{token}");
        }
        ApiKeyCommand::List => {
            for k in app.store.api_keys().await? {
                println!(
                    "{:>4}  {:<6} {}…  {}  {}",
                    k.id,
                    k.scope.as_str(),
                    k.prefix,
                    k.created_at.format("%Y-%m-%d"),
                    k.name
                );
            }
        }
        ApiKeyCommand::Delete { id } => {
            app.store.delete_api_key(id).await?;
            println!("API key {id} deleted");
        }
    }
    Ok(())
}

// ------------------------------------------------------------------------------------------
// `calbridge admin`

#[derive(Subcommand)]
pub enum AdminCommand {
    /// Create an administrator of the admin console, or set a new password for one. The
    /// password is read from CALBRIDGE_ADMIN_PASSWORD, else from standard input (one line).
    Create {
        /// The user name to sign in with (letters, digits, . _ @ -).
        #[arg(long)]
        username: String,
    },
}

/// The new password: the environment, else a line of standard input (not echoed on a terminal).
fn read_password() -> Result<String> {
    if let Some(p) = crate::config::process_env("CALBRIDGE_ADMIN_PASSWORD") {
        return Ok(p);
    }
    let tty = std::io::IsTerminal::is_terminal(&std::io::stdin());
    let stty = |arg: &str| {
        let _ = std::process::Command::new("stty").arg(arg).stdin(std::process::Stdio::inherit()).status();
    };
    if tty {
        eprint!(
            "Password for the administrator (at least {} characters): ",
            calbridge_api::console::MIN_PASSWORD_CHARS
        );
        stty("-echo");
    }
    let mut line = String::new();
    let read = std::io::stdin().read_line(&mut line);
    if tty {
        stty("echo");
        eprintln!();
    }
    read.context("cannot read the password from standard input")?;
    let password = line.trim_end_matches(['\r', '\n']).to_string();
    if password.is_empty() {
        bail!("no password given: set CALBRIDGE_ADMIN_PASSWORD or type it on standard input");
    }
    Ok(password)
}

pub async fn admin(config: Option<&Path>, cmd: AdminCommand) -> Result<()> {
    let cfg = Config::load(config, &crate::config::process_env)?;
    let app = App::open(cfg).await?;
    match cmd {
        AdminCommand::Create { username } => {
            let password = read_password()?;
            let a = calbridge_api::console::create_admin(app.store.as_ref(), &username, &password).await?;
            if a.created_at == a.updated_at {
                println!("administrator {} created; sign in at /ui/ of `calbridge serve`", a.username);
            } else {
                println!(
                    "administrator {}: password changed (open sessions stay until they expire or the server restarts)",
                    a.username
                );
            }
        }
    }
    Ok(())
}

// ------------------------------------------------------------------------------------------
// `calbridge secrets`

#[derive(Subcommand)]
pub enum SecretsCommand {
    /// Print a new random master key (base64 of 32 bytes).
    NewKey,
    /// Re-seal every stored secret under CALBRIDGE_NEW_MASTER_KEY, opening them with
    /// CALBRIDGE_MASTER_KEY; then start calbridge with the new key as CALBRIDGE_MASTER_KEY.
    Rotate,
}

pub async fn secrets(config: Option<&Path>, cmd: SecretsCommand) -> Result<()> {
    match cmd {
        SecretsCommand::NewKey => {
            use base64::Engine as _;
            println!("{}", base64::engine::general_purpose::STANDARD.encode(calbridge_api::auth::random_bytes::<32>()));
            Ok(())
        }
        SecretsCommand::Rotate => {
            let old = master_key_from_env("CALBRIDGE_MASTER_KEY")?;
            let new = master_key_from_env("CALBRIDGE_NEW_MASTER_KEY")?;
            let cfg = Config::load(config, &crate::config::process_env)?;
            let app = App::open(cfg).await?;
            let r = calbridge_engine::secrets::rotate(app.store.as_ref(), &old, &new).await?;
            println!(
                "re-sealed {} secret(s) under master key {} ({} already were); now set CALBRIDGE_MASTER_KEY to the new \
                 key and restart calbridge",
                r.resealed,
                new.id(),
                r.already
            );
            Ok(())
        }
    }
}
