//! `calbridge demo` end to end: the real binary, the bundled organisation on the simulator,
//! a real SQLite file. Run twice on the same database, the second sync must be idle.

use std::path::Path;
use std::process::Command;

fn demo(db: &Path) -> String {
    demo_over(db, "graph")
}

fn demo_over(db: &Path, protocol: &str) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_calbridge"))
        .args(["demo", "--protocol", protocol, "--db"])
        .arg(db)
        .env_remove("CALBRIDGE_CONFIG")
        .env_remove("CALBRIDGE_STORE")
        .output()
        .expect("run calbridge demo");
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(out.status.success(), "demo failed ({}):\n{stdout}\n{stderr}", out.status);
    stdout
}

fn number_after(text: &str, label: &str) -> u64 {
    let line = text
        .lines()
        .find(|l| l.trim_start().starts_with(label))
        .unwrap_or_else(|| panic!("no {label:?} line in:\n{text}"));
    line.trim_start()[label.len()..]
        .split_whitespace()
        .next()
        .and_then(|w| w.parse().ok())
        .unwrap_or_else(|| panic!("no number after {label:?} in {line:?}"))
}

#[test]
fn demo_twice_reports_an_idle_second_sync() {
    let dir = std::env::temp_dir().join(format!("calbridge-demo-test-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let db = dir.join("demo.db");

    let first = demo(&db);
    assert!(first.contains("Summary"), "{first}");
    assert!(number_after(&first, "events pulled") >= 2000, "the sample organisation has thousands of events:\n{first}");
    assert_eq!(number_after(&first, "events pushed"), 1, "one class session is pushed:\n{first}");
    assert!(first.contains("answered: accepted"), "the room accepts the class session:\n{first}");
    assert!(db.exists(), "the SQLite file exists");
    assert!(first.contains(&db.display().to_string()), "the summary names the SQLite file:\n{first}");

    let second = demo(&db);
    assert!(second.contains("idle sync"), "second run must report an idle sync:\n{second}");
    assert_eq!(number_after(&second, "store writes"), 0, "{second}");
    assert_eq!(number_after(&second, "events pulled"), 0, "{second}");
    assert_eq!(number_after(&second, "events pushed"), 0, "{second}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn the_demo_runs_over_ews_and_its_second_sync_is_idle() {
    let dir = std::env::temp_dir().join(format!("calbridge-demo-ews-test-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let db = dir.join("demo-ews.db");

    let first = demo_over(&db, "ews");
    assert!(first.contains("EWS, NTLM with impersonation"), "{first}");
    assert!(number_after(&first, "events pulled") >= 2000, "{first}");
    assert_eq!(number_after(&first, "events pushed"), 1, "{first}");
    assert!(first.contains("answered: accepted"), "the room accepts the class session over EWS too:\n{first}");
    assert!(first.contains("--protocol ews"), "what to try next keeps the protocol:\n{first}");

    let second = demo_over(&db, "ews");
    assert!(second.contains("idle sync"), "{second}");
    assert_eq!(number_after(&second, "store writes"), 0, "{second}");
    let _ = std::fs::remove_dir_all(&dir);
}
