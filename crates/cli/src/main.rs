//! # calbridge — the binary and composition root
//!
//! The only crate that sees every other: it reads the configuration, opens the store, builds
//! a protocol adapter per connection, hands both to the engine, and prints what happened.
//!
//! Commands: `demo` (the simulator, a sample organisation, a full sync and a booking, in one
//! go), `sim` (the Exchange simulator on its own), `bench` (benchmarks against the simulator
//! in another process, the protocol's lower bound and an exchangelib peer), `sync` (apply the configuration's links and
//! sync), `events` (read a calendar from the store), `rooms import` (room discovery), `serve` (the REST API with the sync
//! engine, the webhook worker and the admin console), `apikey` (API keys), `admin`
//! (administrators of the admin console) and `secrets` (the master key).

mod app;
mod bench;
mod config;
mod demo;
mod serve;

use std::path::PathBuf;

use anyhow::Result;
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "calbridge",
    version,
    about = "Keeps business applications' calendars in sync with Microsoft Exchange"
)]
struct Cli {
    /// Configuration file (default: $CALBRIDGE_CONFIG, else ./calbridge.toml if present).
    #[arg(long, global = true, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Log filter, e.g. `info` or `calbridge_engine=debug` (also $CALBRIDGE_LOG).
    #[arg(long, global = true, value_name = "FILTER")]
    log: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the whole product on a simulated Exchange: sample organisation, sync, a booking.
    Demo(demo::DemoArgs),
    /// Run the Exchange simulator alone, for building against calbridge offline.
    Sim(app::SimArgs),
    /// Benchmark calbridge against a simulator with Exchange's latency and budgets, against the
    /// lower bound the protocol allows and against an exchangelib script (docs/performance.md).
    Bench(bench::BenchArgs),
    /// Link the configured mailboxes and sync them with Exchange.
    Sync(app::SyncArgs),
    /// List a calendar's events from the store.
    Events(app::EventsArgs),
    /// Import the organisation's rooms and room lists from Exchange as calendars and sites.
    #[command(subcommand)]
    Rooms(RoomsCommand),
    /// Run the REST API and the sync engine (scheduled syncs, webhook deliveries) in one process.
    Serve(serve::ServeArgs),
    /// Manage the API keys of the REST API.
    #[command(subcommand)]
    Apikey(serve::ApiKeyCommand),
    /// Manage the administrators of the admin console (the web UI at /ui/ of `serve`).
    #[command(subcommand)]
    Admin(serve::AdminCommand),
    /// Manage the master key that seals stored secrets.
    #[command(subcommand)]
    Secrets(serve::SecretsCommand),
}

#[derive(Subcommand)]
enum RoomsCommand {
    /// Link every room Exchange lists as a room calendar of a connection (room lists as sites).
    Import(app::RoomsImportArgs),
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    init_logging(cli.log.as_deref());
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("tokio runtime");
    let result: Result<()> = runtime.block_on(async move {
        match cli.command {
            Command::Demo(a) => demo::run(a).await,
            Command::Sim(a) => app::sim(a).await,
            Command::Bench(a) => bench::run(a).await,
            Command::Sync(a) => app::sync(cli.config.as_deref(), a).await,
            Command::Events(a) => app::events(cli.config.as_deref(), a).await,
            Command::Rooms(RoomsCommand::Import(a)) => app::rooms_import(cli.config.as_deref(), a).await,
            Command::Serve(a) => serve::serve(cli.config.as_deref(), a).await,
            Command::Apikey(c) => serve::apikey(cli.config.as_deref(), c).await,
            Command::Admin(c) => serve::admin(cli.config.as_deref(), c).await,
            Command::Secrets(c) => serve::secrets(cli.config.as_deref(), c).await,
        }
    });
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn init_logging(filter: Option<&str>) {
    let filter = filter
        .map(str::to_string)
        .or_else(|| std::env::var("CALBRIDGE_LOG").ok())
        .unwrap_or_else(|| "warn,sqlx=error".to_string());
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
        .with_writer(std::io::stderr)
        // Colours on a terminal only: a log file or a collector gets plain text.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(false)
        .try_init();
}
