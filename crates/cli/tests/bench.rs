//! `calbridge bench` at a tiny scale: the real binary, the simulator in its own process, every
//! scenario over both protocols, and a report whose figures make sense. (The full-scale run and
//! its figures are in docs/performance.md; they are not for CI.)

use std::process::Command;

use serde_json::Value;

fn bench() -> Value {
    let out = Command::new(env!("CARGO_BIN_EXE_calbridge"))
        .args(["bench", "--mailboxes", "3", "--events", "10", "--latency-ms", "1", "--samples", "5", "--json"])
        .env_remove("CALBRIDGE_CONFIG")
        .env_remove("CALBRIDGE_STORE")
        .output()
        .expect("run calbridge bench");
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(out.status.success(), "bench failed ({}):\n{stdout}\n{stderr}", out.status);
    serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("not JSON ({e}):\n{stdout}"))
}

fn row<'a>(report: &'a Value, scenario: &str, protocol: &str) -> &'a Value {
    report["rows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["scenario"] == scenario && r["protocol"] == protocol)
        .unwrap_or_else(|| panic!("no {scenario} row for {protocol} in {report:#}"))
}

fn num(v: &Value, key: &str) -> f64 {
    v[key].as_f64().unwrap_or_else(|| panic!("{key} is not a number in {v:#}"))
}

#[test]
fn bench_at_tiny_scale_reports_every_scenario_with_sane_figures() {
    let report = bench();
    assert_eq!((report["mailboxes"].as_u64(), report["events_per_mailbox"].as_u64()), (Some(3), Some(10)));
    for protocol in ["graph", "ews"] {
        let initial = row(&report, "initial", protocol);
        assert_eq!(initial["failed"], 0, "{initial:#}");
        assert_eq!(initial["changed_events"], 30, "every generated event arrives: {initial:#}");
        assert!(num(initial, "requests") >= 6.0, "at least a mailbox check and a page per mailbox: {initial:#}");
        assert!(num(initial, "ratio") >= 1.0, "nothing beats the lower bound: {initial:#}");
        assert!(num(initial, "bound_s") > 0.0 && num(initial, "wall_s") > 0.0, "{initial:#}");
        assert!(num(initial, "peak_mem_mib") > 1.0, "{initial:#}");
        assert!(initial["bound"].as_str().unwrap().contains("concurrency"), "the bound says how: {initial:#}");

        let changed = row(&report, "steady 1% (cycle 1)", protocol);
        assert_eq!(changed["changed_events"], 1, "one event of thirty changed: {changed:#}");
        assert!(num(changed, "ratio") >= 1.0, "{changed:#}");
        let idle = row(&report, "steady idle", protocol);
        assert_eq!((idle["requests"].as_u64(), idle["changed_events"].as_u64()), (Some(3), Some(0)), "{idle:#}");
    }
    for protocol in ["graph", "ews"] {
        let quiet = row(&report, "steady idle, notifications", protocol);
        assert_eq!(quiet["requests"], 0, "with notifications an idle calbridge asks nothing: {quiet:#}");
        let propagation = row(&report, "propagation", protocol);
        assert_eq!(
            (propagation["changed_events"].as_u64(), propagation["failed"].as_u64()),
            (Some(5), Some(0)),
            "{propagation:#}"
        );
        assert!(num(propagation, "p50_ms") > 0.0 && num(propagation, "p99_ms") >= num(propagation, "p50_ms"));
        assert!(num(propagation, "ratio") >= 1.0, "{propagation:#}");
        assert!(num(propagation, "requests") >= 5.0, "each change is read from Exchange: {propagation:#}");
    }
    let availability = row(&report, "availability (3 calendars, 1 week)", "store");
    assert!(num(availability, "p99_ms") >= num(availability, "p50_ms"), "{availability:#}");
    // The peer runs where exchangelib is installed, and says why not elsewhere.
    match report["peer"].get("skipped") {
        Some(why) => assert!(!why.as_str().unwrap().is_empty()),
        None => {
            assert!(num(&report["peer"], "speedup") > 0.0, "{report:#}");
            let peer = row(&report, "initial, exchangelib peer", "ews");
            assert_eq!((peer["changed_events"].as_u64(), peer["failed"].as_u64()), (Some(30), Some(0)), "{peer:#}");
        }
    }
}
