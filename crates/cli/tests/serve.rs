//! `calbridge serve`, `apikey` and `secrets` end to end: the real binary on a temporary SQLite
//! file.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

fn temp_dir(label: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("calbridge-cli-{label}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn calbridge(dir: &Path, key: Option<&str>) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_calbridge"));
    c.env("CALBRIDGE_CONFIG", dir.join("empty.toml"))
        .env("CALBRIDGE_STORE", format!("sqlite://{}", dir.join("cb.db").display()))
        .env_remove("CALBRIDGE_MASTER_KEY")
        .env_remove("CALBRIDGE_NEW_MASTER_KEY");
    std::fs::write(dir.join("empty.toml"), "").unwrap();
    if let Some(k) = key {
        c.env("CALBRIDGE_MASTER_KEY", k);
    }
    c
}

fn run(cmd: &mut Command) -> (bool, String, String) {
    let out = cmd.output().expect("run calbridge");
    (out.status.success(), String::from_utf8_lossy(&out.stdout).into(), String::from_utf8_lossy(&out.stderr).into())
}

/// A raw HTTP/1.1 GET, to stay free of client crates.
fn get(addr: &str, path: &str, key: Option<&str>) -> String {
    let mut s = TcpStream::connect(addr).unwrap();
    let auth = key.map(|k| format!("Authorization: Bearer {k}\r\n")).unwrap_or_default();
    write!(s, "GET {path} HTTP/1.1\r\nHost: {addr}\r\n{auth}Connection: close\r\n\r\n").unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out
}

#[test]
fn serve_needs_a_master_key_and_says_how_to_make_one() {
    let dir = temp_dir("nokey");
    let (ok, _, err) = run(calbridge(&dir, None).args(["serve", "--listen", "127.0.0.1:0"]));
    assert!(!ok);
    assert!(err.contains("CALBRIDGE_MASTER_KEY") && err.contains("openssl rand -base64 32"), "{err}");
    let (ok, _, err) = run(calbridge(&dir, Some("c2hvcnQ=")).args(["serve", "--listen", "127.0.0.1:0"]));
    assert!(!ok);
    assert!(err.contains("decodes to 5 bytes, not 32"), "{err}");
}

#[test]
fn serve_answers_with_a_created_key_and_stops_on_sigterm() {
    let dir = temp_dir("serve");
    let (ok, master, _) = run(calbridge(&dir, None).args(["secrets", "new-key"]));
    assert!(ok);
    let master = master.trim().to_string();
    let (ok, key, err) = run(calbridge(&dir, None).args(["apikey", "create", "--scope", "read", "--name", "ci"]));
    assert!(ok, "{err}");
    let key = key.trim().to_string();
    assert!(key.starts_with("cbk_") && err.contains("shown only now"), "{key} / {err}");
    let (_, list, _) = run(calbridge(&dir, None).args(["apikey", "list"]));
    assert!(list.contains("read") && list.contains("ci") && !list.contains(&key), "{list}");

    let mut child = calbridge(&dir, Some(&master))
        .args(["serve", "--listen", "127.0.0.1:0", "--sync-interval", "0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let first = lines.next().unwrap().unwrap();
    let addr = first.rsplit("http://").next().unwrap().trim().to_string();
    assert!(get(&addr, "/healthz", None).starts_with("HTTP/1.1 200"));
    assert!(get(&addr, "/connections", None).starts_with("HTTP/1.1 401"));
    let ok = get(&addr, "/connections", Some(&key));
    assert!(ok.starts_with("HTTP/1.1 200") && ok.ends_with("[]"), "{ok}");

    let killed = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    assert!(killed.success());
    let status = child.wait().unwrap();
    let rest: Vec<String> = lines.map_while(Result::ok).collect();
    assert!(status.success(), "serve exits cleanly on SIGTERM: {status}");
    assert!(rest.iter().any(|l| l == "calbridge stopped"), "{rest:?}");
}

#[test]
fn secrets_rotate_needs_both_keys() {
    let dir = temp_dir("rotate");
    let (_, old, _) = run(calbridge(&dir, None).args(["secrets", "new-key"]));
    let (ok, _, err) = run(calbridge(&dir, Some(old.trim())).args(["secrets", "rotate"]));
    assert!(!ok && err.contains("CALBRIDGE_NEW_MASTER_KEY"), "{err}");
    let (_, new, _) = run(calbridge(&dir, None).args(["secrets", "new-key"]));
    let (ok, out, err) =
        run(calbridge(&dir, Some(old.trim())).env("CALBRIDGE_NEW_MASTER_KEY", new.trim()).args(["secrets", "rotate"]));
    assert!(ok, "{err}");
    assert!(out.contains("re-sealed 0 secret(s)"), "{out}");
}

#[test]
fn serve_reads_its_table_and_a_master_key_file() {
    let dir = temp_dir("table");
    let (_, master, _) = run(calbridge(&dir, None).args(["secrets", "new-key"]));
    std::fs::write(dir.join("master.key"), master.trim()).unwrap();
    let config = dir.join("calbridge.toml");
    std::fs::write(
        &config,
        format!(
            "store = \"sqlite://{}\"\n[serve]\nlisten = \"127.0.0.1:0\"\nsync_interval_secs = 0\nmaster_key_file = \"{}\"\n",
            dir.join("cb.db").display(),
            dir.join("master.key").display()
        ),
    )
    .unwrap();
    let mut child = calbridge(&dir, None)
        .env("CALBRIDGE_CONFIG", &config)
        .env_remove("CALBRIDGE_STORE")
        .arg("serve")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let first = lines.next().expect("serve prints its address").unwrap();
    let addr = first.rsplit("http://").next().unwrap().trim().to_string();
    assert!(get(&addr, "/healthz", None).starts_with("HTTP/1.1 200"), "{first}");
    Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    assert!(child.wait().unwrap().success());

    std::fs::write(dir.join("master.key"), "not a key").unwrap();
    let (ok, _, err) =
        run(calbridge(&dir, None).env("CALBRIDGE_CONFIG", &config).env_remove("CALBRIDGE_STORE").arg("serve"));
    assert!(!ok && err.contains("master.key holds no usable master key"), "{err}");
}
