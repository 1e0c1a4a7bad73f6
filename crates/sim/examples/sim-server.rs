//! Runs the Exchange simulator as a process (for third-party client tests, e.g.
//! tests/python): prints one JSON line with the URLs and credentials on stdout, then serves
//! until stdin closes or the process is terminated.
//!
//! ```text
//! cargo run -p calbridge-sim --example sim-server -- [--scenario FILE] [--tls] [--ca-out FILE]
//!     [--state FILE] [--port N]
//! ```
//! `--scenario` defaults to the bundled demo. `--tls` serves HTTPS (plain HTTP on the same
//! port too) with a throw-away CA written to `--ca-out` (default: a file in the temp dir).
//! `--state FILE` loads the snapshot if it exists and saves it on exit.
//! `--exit-on-stdin-eof` also stops when stdin closes (so a test harness that dies never
//! leaves the server behind). SIGINT and SIGTERM stop it.

use std::path::PathBuf;

use calbridge_sim::{Scenario, SimTls, Simulator};

fn usage(msg: &str) -> ! {
    eprintln!("sim-server: {msg}\nusage: sim-server [--scenario FILE] [--tls] [--ca-out FILE] [--state FILE] [--port N] [--exit-on-stdin-eof]");
    std::process::exit(2)
}

#[tokio::main]
async fn main() {
    let mut scenario_path: Option<PathBuf> = None;
    let mut tls = false;
    let mut ca_out: Option<PathBuf> = None;
    let mut state_path: Option<PathBuf> = None;
    let mut port: u16 = 0;
    let mut stdin_eof = false;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--scenario" => {
                scenario_path = Some(args.next().unwrap_or_else(|| usage("--scenario needs a file")).into())
            }
            "--tls" => tls = true,
            "--exit-on-stdin-eof" => stdin_eof = true,
            "--ca-out" => ca_out = Some(args.next().unwrap_or_else(|| usage("--ca-out needs a file")).into()),
            "--state" => state_path = Some(args.next().unwrap_or_else(|| usage("--state needs a file")).into()),
            "--port" => {
                port = args.next().and_then(|p| p.parse().ok()).unwrap_or_else(|| usage("--port needs a number"))
            }
            "-h" | "--help" => usage("help"),
            other => usage(&format!("unknown argument {other}")),
        }
    }
    let sim = match &state_path {
        Some(p) if p.exists() => Simulator::load_state(p).unwrap_or_else(|e| usage(&e.to_string())),
        _ => {
            let scenario = match &scenario_path {
                Some(p) => Scenario::load(p).unwrap_or_else(|e| usage(&e.to_string())),
                None => Scenario::demo(),
            };
            Simulator::new(&scenario).unwrap_or_else(|e| usage(&e.to_string()))
        }
    };
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await.unwrap_or_else(|e| usage(&e.to_string()));
    let addr = listener.local_addr().expect("bound");
    let certs = if tls { Some(SimTls::self_signed().unwrap_or_else(|e| usage(&e.to_string()))) } else { None };
    let ca_file = certs.as_ref().map(|c| {
        let path = ca_out
            .clone()
            .unwrap_or_else(|| std::env::temp_dir().join(format!("calbridge-sim-ca-{}.pem", addr.port())));
        std::fs::write(&path, &c.ca_cert_pem).unwrap_or_else(|e| usage(&format!("{}: {e}", path.display())));
        path
    });
    let scheme = if tls { "https" } else { "http" };
    let base = format!("{scheme}://127.0.0.1:{}", addr.port());
    let line = sim.connection_info(&base, ca_file.map(|p| p.display().to_string()));
    println!("{line}");
    let shutdown = async move {
        let stdin_closed = async move {
            if !stdin_eof {
                return std::future::pending::<()>().await;
            }
            calbridge_sim::stdin_closed().await
        };
        let mut term =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).expect("SIGTERM handler");
        tokio::select! {
            _ = stdin_closed => {}
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    };
    let result = match &certs {
        Some(c) => sim.serve_tls(listener, c, shutdown).await,
        None => sim.serve(listener, shutdown).await,
    };
    if let Some(p) = &state_path {
        if let Err(e) = sim.save_state(p) {
            eprintln!("sim-server: {e}");
        }
    }
    if let Err(e) = result {
        eprintln!("sim-server: {e}");
        std::process::exit(1);
    }
}
