//! Shared test harness: a small organisation on 127.0.0.1:0 and a reqwest client with a token.
#![allow(dead_code)]

use calbridge_sim::{RunningSim, Scenario, Simulator};
use chrono::{DateTime, Duration, Timelike, Utc};
use serde_json::Value;

pub const TENANT_ID: &str = "11111111-2222-4333-8444-555555555555";
pub const CLIENT_ID: &str = "aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee";
pub const SECRET: &str = "s3cret-value-never-echo";

pub const SCENARIO: &str = r#"
name = "Test organisation"
time_zone = "W. Europe Standard Time"
mailbox_concurrency = 4

[tenant]
id = "11111111-2222-4333-8444-555555555555"
domain = "test.example"
name = "Test Org"

[[apps]]
client_id = "aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee"
client_secret = "s3cret-value-never-echo"
roles = ["Calendars.ReadWrite", "User.Read.All"]

[[apps]]
client_id = "bbbbbbbb-bbbb-4ccc-8ddd-eeeeeeeeeeee"
client_secret = "read-only"
roles = ["Calendars.Read"]

[[mailboxes]]
email = "ann@test.example"
name = "Ann Archer"
job_title = "Instructor"

[[mailboxes]]
email = "bob@test.example"
name = "Bob Baker"

[[mailboxes]]
email = "room1@test.example"
name = "Room 1 (12 seats)"
kind = "room"
capacity = 12

[[mailboxes]]
email = "room2@test.example"
name = "Room 2 (8 seats)"
kind = "room"
booking_window_days = 30

[[mailboxes]]
email = "projector@test.example"
name = "Projector"
kind = "equipment"
max_duration_minutes = 120

[[mailboxes]]
email = "manual-room@test.example"
name = "Manual room"
kind = "room"
auto_accept = false
"#;

pub struct Env {
    pub sim: Simulator,
    pub run: RunningSim,
    pub http: reqwest::Client,
    pub token: String,
}

/// Tomorrow at `hour`:00 UTC plus `days`.
pub fn at(days: i64, hour: u32) -> DateTime<Utc> {
    let d = Utc::now() + Duration::days(days + 1);
    d.with_hour(hour).unwrap().with_minute(0).unwrap().with_second(0).unwrap().with_nanosecond(0).unwrap()
}

pub fn graph_time(t: DateTime<Utc>) -> Value {
    serde_json::json!({"dateTime": t.format("%Y-%m-%dT%H:%M:%S").to_string(), "timeZone": "UTC"})
}

/// EWS accounts for the EWS tests: a service account with impersonation, and Ann's own.
pub const EWS_ACCOUNTS: &str = r#"
[[ews_accounts]]
username = "svc-calbridge"
password = "svc-password"
impersonation = true

[[ews_accounts]]
username = "ann"
password = "ann-password"
mailbox = "ann@test.example"
"#;

/// The test organisation with [`EWS_ACCOUNTS`].
pub async fn ews_env() -> Env {
    Env::with(&format!("{SCENARIO}{EWS_ACCOUNTS}")).await
}

impl Env {
    pub async fn new() -> Env {
        Env::with(SCENARIO).await
    }

    pub async fn with(toml: &str) -> Env {
        let scenario = Scenario::from_toml(toml).expect("test scenario parses");
        let sim = Simulator::new(&scenario).expect("simulator");
        Env::serve(sim).await
    }

    pub async fn serve(sim: Simulator) -> Env {
        let run = sim.start().await.expect("start");
        let http = reqwest::Client::new();
        let mut env = Env { sim, run, http, token: String::new() };
        env.token = env.fetch_token(CLIENT_ID, SECRET).await;
        env
    }

    pub async fn fetch_token(&self, client_id: &str, secret: &str) -> String {
        let resp = self
            .http
            .post(format!("{}/{TENANT_ID}/oauth2/v2.0/token", self.run.authority_url()))
            .form(&[
                ("grant_type", "client_credentials"),
                ("client_id", client_id),
                ("client_secret", secret),
                ("scope", "https://graph.microsoft.com/.default"),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        resp.json::<Value>().await.unwrap()["access_token"].as_str().unwrap().to_string()
    }

    pub fn url(&self, path: &str) -> String {
        if path.starts_with("http") {
            path.to_string()
        } else {
            format!("{}/v1.0{path}", self.run.graph_url())
        }
    }

    pub fn get(&self, path: &str) -> reqwest::RequestBuilder {
        self.http.get(self.url(path)).bearer_auth(&self.token)
    }

    pub fn post(&self, path: &str, body: &Value) -> reqwest::RequestBuilder {
        self.http.post(self.url(path)).bearer_auth(&self.token).json(body)
    }

    pub fn patch(&self, path: &str, body: &Value) -> reqwest::RequestBuilder {
        self.http.patch(self.url(path)).bearer_auth(&self.token).json(body)
    }

    pub fn delete(&self, path: &str) -> reqwest::RequestBuilder {
        self.http.delete(self.url(path)).bearer_auth(&self.token)
    }

    /// GET returning (status, JSON body).
    pub async fn get_json(&self, path: &str) -> (u16, Value) {
        let r = self.get(path).send().await.unwrap();
        let s = r.status().as_u16();
        (s, r.json().await.unwrap_or(Value::Null))
    }

    /// Follows a delta round to its deltaLink; returns (items, deltaLink, pages).
    pub async fn delta_round(&self, first: &str, page_size: usize) -> (Vec<Value>, String, usize) {
        let mut url = self.url(first);
        let mut items = Vec::new();
        let mut pages = 0;
        loop {
            let r = self
                .http
                .get(&url)
                .bearer_auth(&self.token)
                .header("Prefer", format!("odata.maxpagesize={page_size}"))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200, "delta page {url}");
            let body: Value = r.json().await.unwrap();
            pages += 1;
            items.extend(body["value"].as_array().unwrap().iter().cloned());
            if let Some(next) = body["@odata.nextLink"].as_str() {
                assert!(next.contains("$skiptoken="), "{next}");
                url = next.to_string();
                continue;
            }
            let delta = body["@odata.deltaLink"].as_str().expect("nextLink or deltaLink").to_string();
            assert!(delta.contains("$deltatoken="), "{delta}");
            return (items, delta, pages);
        }
    }

    /// Creates an event over Graph in `mailbox`; returns the 201 body.
    pub async fn create(&self, mailbox: &str, body: Value) -> Value {
        let r = self.post(&format!("/users/{mailbox}/events"), &body).send().await.unwrap();
        let status = r.status();
        let v: Value = r.json().await.unwrap();
        assert_eq!(status, 201, "{v}");
        v
    }
}

pub fn meeting(subject: &str, start: DateTime<Utc>, end: DateTime<Utc>, attendees: &[(&str, &str)]) -> Value {
    serde_json::json!({
        "subject": subject,
        "start": graph_time(start),
        "end": graph_time(end),
        "attendees": attendees.iter().map(|(a, t)| serde_json::json!({"emailAddress": {"address": a}, "type": t})).collect::<Vec<_>>(),
    })
}

/// Microsoft's protocol files (`CALBRIDGE_PROTOCOL_DIR`, default `../shared/protocol`); `None`
/// (and a note) where they are absent, which CI does not allow.
pub fn protocol_dir() -> Option<std::path::PathBuf> {
    let dir = std::env::var_os("CALBRIDGE_PROTOCOL_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/protocol"));
    if dir.join("graph").is_dir() {
        Some(dir)
    } else {
        assert!(
            std::env::var_os("CI").is_none_or(|v| v.is_empty()),
            "protocol files not found at {}: in CI the protocol tests must run; set CALBRIDGE_PROTOCOL_DIR",
            dir.display()
        );
        println!("skipped: protocol files not found at {}", dir.display());
        None
    }
}

/// One protocol file's text, e.g. `graph/examples/json-batching/01-request.http`.
pub fn protocol_file(rel: &str) -> Option<String> {
    let path = protocol_dir()?.join(rel);
    Some(std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display())))
}
