//! End-to-end through the REST API: the real server (router, store on an SQLite file, engine,
//! Graph connector, webhook worker) on 127.0.0.1:0, driven over HTTP against the simulator.

use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use chrono::Utc;
use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;

use calbridge_api::{ApiConfig, ApiState};
use calbridge_core::connector::Connector;
use calbridge_core::store::{Scope, Store};
use calbridge_engine::secrets::MasterKey;
use calbridge_engine::{Engine, EngineConfig};
use calbridge_graph::{GraphConnector, GraphOptions};
use calbridge_sim::{NewEvent, RunningSim, Scenario, Simulator};
use calbridge_tests::{both, weekly_series, Protocol, INSTALLATION, SCENARIO};

const ORGANIZER: &str = "scheduler@fabrikam.example";
const ROOM1: &str = "room1@fabrikam.example";
const ROOM2: &str = "room2@fabrikam.example";
const ANN: &str = "ann@fabrikam.example";
const BOB: &str = "bob@fabrikam.example";
const PROJECTOR: &str = "projector1@fabrikam.example";
const CANARY: &str = "canary-7f3c9e1d-do-not-leak";

/// A second app registration that may only read calendars, limited to two mailboxes.
const LIMITED_APP: &str = r#"
[[apps]]
client_id = "0badc0de-1234-4abc-8def-0123456789ab"
client_secret = "limited-app-secret"
roles = ["Calendars.Read", "User.Read.All"]
mailbox_scope = ["scheduler@fabrikam.example"]
"#;

/// Everything this process logs, to check that no secret reaches a log line.
fn logs() -> &'static Arc<Mutex<Vec<u8>>> {
    static LOGS: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    LOGS.get_or_init(|| {
        let buf = Arc::new(Mutex::new(Vec::new()));
        let writer = buf.clone();
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new("debug"))
            .with_writer(move || LogWriter(writer.clone()))
            .try_init();
        buf
    })
}

struct LogWriter(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for LogWriter {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

struct Api {
    sim: Simulator,
    running: RunningSim,
    base: String,
    http: reqwest::Client,
    admin: String,
    write: String,
    read: String,
    store: Arc<dyn Store>,
    dir: std::path::PathBuf,
    _tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for Api {
    fn drop(&mut self) {
        for t in &self._tasks {
            t.abort();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Api {
    async fn start() -> Api {
        Api::start_with(ApiConfig::default()).await
    }

    /// With the scheduling options of `base` (its outbound hosts and webhook timing are the
    /// test's own; a `public_url` means this server's own address, turning on change
    /// notifications).
    async fn start_with(base: ApiConfig) -> Api {
        logs();
        let scenario = format!("{SCENARIO}\n{LIMITED_APP}");
        let sim = Simulator::new(&Scenario::from_toml(&scenario).unwrap()).unwrap();
        let running = sim.start().await.unwrap();
        let dir = std::env::temp_dir().join(format!("calbridge-api-e2e-{}", uuid()));
        std::fs::create_dir_all(&dir).unwrap();
        let store = calbridge_store::open_store(&format!("sqlite://{}", dir.join("cb.db").display())).await.unwrap();
        let engine = Engine::new(store.clone(), EngineConfig::new(INSTALLATION));
        let graph = GraphOptions { installation_id: INSTALLATION.into(), ..GraphOptions::default() };
        let ews = calbridge_ews::EwsOptions { installation_id: INSTALLATION.into(), ..Default::default() };
        let connectors: Vec<Arc<dyn Connector>> =
            vec![Arc::new(GraphConnector::new(graph)), Arc::new(calbridge_ews::EwsConnector::new(ews))];
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let own = format!("http://{}", listener.local_addr().unwrap());
        let config = ApiConfig {
            outbound_hosts: Some(vec!["127.0.0.1".into()]),
            webhook_retry_base: Duration::from_millis(50),
            public_url: base.public_url.as_ref().map(|_| own.clone()),
            ..base
        };
        let state = ApiState::new(engine, connectors, MasterKey::from_bytes([42; 32]), config);
        let base = own;
        let server = tokio::spawn({
            let state = state.clone();
            async move {
                calbridge_api::serve(listener, state, std::future::pending()).await.unwrap();
            }
        });
        let worker = tokio::spawn(calbridge_api::webhooks::run_worker(state.clone()));
        let notified = tokio::spawn(calbridge_api::notifications::run_sync_queue(state.clone()));
        let keeper = tokio::spawn(calbridge_api::notifications::run_subscriptions(state.clone()));
        let watcher = tokio::spawn(calbridge_api::notifications::run_ews_notifications(state.clone()));
        let key = |scope| {
            let store = store.clone();
            async move { calbridge_api::auth::create_key(store.as_ref(), "e2e", scope).await.unwrap().0 }
        };
        let (admin, write, read) = (key(Scope::Admin).await, key(Scope::Write).await, key(Scope::Read).await);
        Api {
            sim,
            running,
            base,
            http: reqwest::Client::new(),
            admin,
            write,
            read,
            store,
            dir,
            _tasks: vec![server, worker, notified, keeper, watcher],
        }
    }

    async fn call(&self, key: Option<&str>, method: &str, path: &str, body: Option<Value>) -> (u16, Value, String) {
        let mut req = self.http.request(method.parse().unwrap(), format!("{}{path}", self.base));
        if let Some(k) = key {
            req = req.bearer_auth(k);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let res = req.send().await.unwrap();
        let status = res.status().as_u16();
        let content_type =
            res.headers().get("content-type").map(|v| v.to_str().unwrap().to_string()).unwrap_or_default();
        let text = res.text().await.unwrap();
        if status >= 400 {
            assert_eq!(content_type, "application/problem+json", "{method} {path}: {status} {text}");
        }
        let value = serde_json::from_str(&text).unwrap_or(Value::Null);
        (status, value, text)
    }

    async fn ok(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let (status, v, text) = self.call(Some(&self.admin), method, path, body).await;
        assert!((200..300).contains(&status), "{method} {path}: {status} {text}");
        v
    }

    fn connection_body(&self, name: &str, client_id: &str, secret: &str) -> Value {
        json!({
            "name": name,
            "settings": {
                "kind": "graph",
                "tenant_id": self.sim.credentials().tenant_domain,
                "client_id": client_id,
                "authority_url": self.running.authority_url(),
                "graph_url": self.running.graph_url(),
            },
            "secret": secret,
            "default_organizer": ORGANIZER,
        })
    }

    async fn connection(&self) -> i64 {
        let creds = self.sim.credentials();
        let c = self
            .ok("POST", "/connections", Some(self.connection_body("fabrikam", &creds.client_id, &creds.client_secret)))
            .await;
        c["id"].as_i64().unwrap()
    }

    /// A connection to the simulator over `p`: Graph (client credentials) or EWS (NTLM as the
    /// service account, impersonating).
    async fn connection_over(&self, p: Protocol) -> i64 {
        match p {
            Protocol::Graph => self.connection().await,
            Protocol::Ews => {
                let account = self.sim.ews_accounts().into_iter().find(|a| a.impersonation).unwrap();
                let body = json!({
                    "name": "fabrikam-ews",
                    "settings": {"kind": "ews", "url": self.running.ews_url(), "auth": "ntlm", "username": account.username},
                    "secret": account.password,
                    "default_organizer": ORGANIZER,
                });
                self.ok("POST", "/connections", Some(body)).await["id"].as_i64().unwrap()
            }
        }
    }

    async fn link(&self, conn: i64, email: &str, kind: &str) -> i64 {
        let c = self.ok("POST", "/calendars", Some(json!({"email": email, "kind": kind, "connection_id": conn}))).await;
        assert_eq!(c["verification"]["state"], "verified", "{c}");
        c["id"].as_i64().unwrap()
    }
}

fn uuid() -> String {
    // Tests start in parallel: a counter keeps two from one directory even in the same tick.
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!("{}-{}-{n}", std::process::id(), Utc::now().timestamp_nanos_opt().unwrap())
}

fn at(days: i64, hour: u32) -> chrono::DateTime<Utc> {
    let today = Utc::now().date_naive().and_hms_opt(0, 0, 0).unwrap().and_utc();
    today + chrono::Duration::days(days) + chrono::Duration::hours(hour as i64)
}

fn check<'a>(diagnosis: &'a Value, name: &str) -> &'a Value {
    diagnosis["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no check {name}: {diagnosis}"))
}

/// One received webhook request.
struct Received {
    headers: axum::http::HeaderMap,
    body: String,
}

/// A webhook receiver on 127.0.0.1:0 that records every request and answers 204.
async fn receiver() -> (String, tokio::sync::mpsc::UnboundedReceiver<Received>) {
    failing_receiver(0).await
}

/// A receiver that answers the first `failures` requests with 503, then 204.
async fn failing_receiver(failures: usize) -> (String, tokio::sync::mpsc::UnboundedReceiver<Received>) {
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let count = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |headers: axum::http::HeaderMap, body: String| {
            let (tx, count) = (tx.clone(), count.clone());
            async move {
                let _ = tx.send(Received { headers, body });
                if count.fetch_add(1, std::sync::atomic::Ordering::SeqCst) < failures {
                    axum::http::StatusCode::SERVICE_UNAVAILABLE
                } else {
                    axum::http::StatusCode::NO_CONTENT
                }
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, rx)
}

/// Verifies a Standard Webhooks signature independently of calbridge's code.
fn verify_signature(secret: &str, r: &Received) -> bool {
    let key = B64.decode(secret.strip_prefix("whsec_").unwrap()).unwrap();
    let id = r.headers["webhook-id"].to_str().unwrap();
    let ts = r.headers["webhook-timestamp"].to_str().unwrap();
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).unwrap();
    mac.update(format!("{id}.{ts}.{}", r.body).as_bytes());
    let expected = format!("v1,{}", B64.encode(mac.finalize().into_bytes()));
    r.headers["webhook-signature"].to_str().unwrap().split(' ').any(|s| s == expected)
}

/// The whole path a host application takes: connect, test, link, book, get the signed webhook,
/// and find the event in Exchange after the sync.
#[tokio::test]
async fn connect_test_link_book_and_receive_the_signed_webhook() {
    let api = Api::start().await;
    let (url, mut inbox) = receiver().await;
    let hook =
        api.ok("POST", "/webhooks", Some(json!({"url": url, "events": ["event.created", "booking.accepted"]}))).await;
    let secret = hook["secret"].as_str().unwrap().to_string();
    assert!(secret.starts_with("whsec_"));
    let listed = api.ok("GET", &format!("/webhooks/{}", hook["id"].as_str().unwrap()), None).await;
    assert!(listed.get("secret").is_none(), "the secret is shown only once: {listed}");

    let conn = api.connection().await;
    let organizer = api.link(conn, ORGANIZER, "person").await;
    let room = api.link(conn, ROOM1, "room").await;
    let diagnosis = api.ok("POST", &format!("/connections/{conn}/test"), None).await;
    assert_eq!(diagnosis["ok"], true, "{diagnosis}");
    for name in ["token", "permissions", "mailbox.person", "calendar.person", "mailbox.room", "calendar.room"] {
        assert_eq!(check(&diagnosis, name)["result"], "pass", "{name}: {diagnosis}");
    }

    let event = api
        .ok(
            "POST",
            &format!("/calendars/{organizer}/events"),
            Some(json!({
                "subject": "Onboarding class",
                "start": at(2, 9), "end": at(2, 11),
                "attendees": [{"email": ANN, "name": "Ann Lee"}],
                "rooms": [ROOM1],
            })),
        )
        .await;
    let event_id = event["id"].as_str().unwrap().to_string();
    assert_eq!(event["location"], ROOM1, "the room's name is the default location: {event}");

    let got = tokio::time::timeout(Duration::from_secs(30), inbox.recv()).await.expect("a webhook arrives").unwrap();
    assert!(verify_signature(&secret, &got), "the signature verifies with the endpoint's secret");
    assert!(!verify_signature("whsec_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=", &got), "and with no other");
    let body: Value = serde_json::from_str(&got.body).unwrap();
    assert_eq!(body["type"], "event.created");
    assert_eq!(body["data"]["id"], event_id.as_str());
    let message_id = got.headers["webhook-id"].to_str().unwrap();
    assert!(message_id.starts_with("msg_"), "{message_id}");

    let status = api.ok("POST", &format!("/calendars/{organizer}/sync"), None).await;
    assert_eq!(status["state"], "ok", "{status}");
    assert_eq!(status["pushed"], 1, "{status}");
    let in_exchange = api.sim.outlook().list_events(ORGANIZER).unwrap();
    let pushed = in_exchange.iter().find(|e| e.subject.as_deref() == Some("Onboarding class")).expect("in Exchange");
    assert!(pushed.transaction_id.as_deref().is_some_and(|t| t.contains(&event_id)), "tagged with its local id");
    // The room received the booking and its own copy.
    assert!(api
        .sim
        .outlook()
        .list_events(ROOM1)
        .unwrap()
        .iter()
        .any(|e| e.subject.as_deref() == Some("Onboarding class")));
    let room_status = api.ok("POST", &format!("/calendars/{room}/sync"), None).await;
    assert_eq!(room_status["state"], "ok");
    let all = api.ok("GET", "/sync/status", None).await;
    assert_eq!(all.as_array().unwrap().len(), 2);

    // The room accepted in Exchange; the next pull of the organizer's calendar reports it.
    api.ok("POST", &format!("/calendars/{organizer}/sync"), None).await;
    let mut seen = Vec::new();
    let accepted = loop {
        let got =
            tokio::time::timeout(Duration::from_secs(30), inbox.recv()).await.expect("the booking's answer").unwrap();
        assert!(verify_signature(&secret, &got));
        let body: Value = serde_json::from_str(&got.body).unwrap();
        if body["type"] == "booking.accepted" {
            break body;
        }
        seen.push(body);
    };
    assert_eq!(accepted["data"]["resource"], ROOM1, "{accepted}");
    assert_eq!(accepted["data"]["event"]["id"], event_id.as_str());
    // Only subscribed types arrive: the room's own copy is an Exchange event (event.created).
    assert!(seen.iter().all(|b| b["type"] == "event.created"), "{seen:?}");
}

/// Changes that arrive from Exchange are reported too, with the event as a reader sees it.
#[tokio::test]
async fn exchange_changes_reach_the_webhooks() {
    let api = Api::start().await;
    let (url, mut inbox) = receiver().await;
    let hook = api
        .ok(
            "POST",
            "/webhooks",
            Some(json!({"url": url, "events": ["event.created", "event.updated", "event.deleted"]})),
        )
        .await;
    let secret = hook["secret"].as_str().unwrap().to_string();
    let conn = api.connection().await;
    let ann = api.link(conn, ANN, "person").await;
    let o = api.sim.outlook();
    let id = o.create_event(ANN, NewEvent::new("Planning", at(1, 8), at(1, 9))).unwrap();
    api.ok("POST", &format!("/calendars/{ann}/sync"), None).await;
    o.update_event(ANN, &id, json!({"subject": "Planning (moved)"})).unwrap();
    api.ok("POST", &format!("/calendars/{ann}/sync"), None).await;
    o.delete_event(ANN, &id).unwrap();
    api.ok("POST", &format!("/calendars/{ann}/sync"), None).await;
    let mut got = Vec::new();
    while got.len() < 3 {
        let r = tokio::time::timeout(Duration::from_secs(30), inbox.recv()).await.expect("three messages").unwrap();
        assert!(verify_signature(&secret, &r));
        got.push(serde_json::from_str::<Value>(&r.body).unwrap());
    }
    // One worker sends each endpoint's messages in the order they were queued.
    let types: Vec<&str> = got.iter().map(|b| b["type"].as_str().unwrap()).collect();
    assert_eq!(types, ["event.created", "event.updated", "event.deleted"]);
    assert_eq!(got[0]["data"]["origin"], "exchange");
    assert_eq!(got[1]["data"]["subject"], "Planning (moved)");
    assert_eq!(got[2]["data"]["id"], got[0]["data"]["id"]);
}

/// The syncs of a connection share one adapter: one token for all of them, until the
/// connection is saved with other settings.
#[tokio::test]
async fn syncs_share_the_connections_adapter_until_it_changes() {
    let api = Api::start().await;
    let conn = api.connection().await;
    let ann = api.link(conn, ANN, "person").await;
    let tokens = |api: &Api| api.sim.stats().by_route.get("token").copied().unwrap_or(0);
    api.ok("POST", &format!("/calendars/{ann}/sync"), None).await;
    let first = tokens(&api);
    for _ in 0..3 {
        api.ok("POST", &format!("/calendars/{ann}/sync"), None).await;
    }
    api.ok("POST", &format!("/connections/{conn}/sync"), None).await;
    assert_eq!(tokens(&api), first, "later syncs reuse the adapter's token");
    let creds = api.sim.credentials();
    let body = api.connection_body("contoso", &creds.client_id, &creds.client_secret);
    api.ok("PUT", &format!("/connections/{conn}"), Some(body)).await;
    api.ok("POST", &format!("/calendars/{ann}/sync"), None).await;
    assert_eq!(tokens(&api), first + 1, "a saved connection gets a fresh adapter");
}

/// A connection whose app may only read calendars, for some mailboxes: the diagnosis names the
/// permission and the access policy; a wrong secret names the secret's Value.
#[tokio::test]
async fn failing_diagnoses_name_the_fix() {
    let api = Api::start().await;
    let body = api.connection_body("limited", "0badc0de-1234-4abc-8def-0123456789ab", "limited-app-secret");
    let conn = api.ok("POST", "/connections", Some(body)).await["id"].as_i64().unwrap();
    api.ok("POST", "/calendars", Some(json!({"email": ROOM2, "kind": "room", "connection_id": conn}))).await;
    let d = api.ok("POST", &format!("/connections/{conn}/test"), None).await;
    assert_eq!(d["ok"], false, "{d}");
    assert_eq!(check(&d, "token")["result"], "pass");
    let perm = check(&d, "permissions");
    assert_eq!(perm["result"], "fail");
    assert!(perm["hint"].as_str().unwrap().contains("Calendars.ReadWrite"), "{perm}");
    assert_eq!(check(&d, "calendar.person")["result"], "pass", "the organizer is inside the policy: {d}");
    let room = check(&d, "mailbox.room");
    assert_eq!(room["result"], "fail", "{d}");
    let hint = room["hint"].as_str().unwrap();
    assert!(
        hint.contains("Calendars.ReadWrite") && hint.contains("application access policy") && hint.contains(ROOM2),
        "{hint}"
    );

    let creds = api.sim.credentials();
    let wrong = api.connection_body("wrong-secret", &creds.client_id, "not-the-secret");
    let conn = api.ok("POST", "/connections", Some(wrong)).await["id"].as_i64().unwrap();
    let d = api.ok("POST", &format!("/connections/{conn}/test"), None).await;
    let token = check(&d, "token");
    assert_eq!(token["result"], "fail", "{d}");
    assert!(token["hint"].as_str().unwrap().contains("Value"), "{token}");
    assert_eq!(check(&d, "permissions")["result"], "skip");
}

/// 401 without a key or with a wrong one, 403 when the scope is too small.
#[tokio::test]
async fn keys_are_required_and_scopes_enforced() {
    let api = Api::start().await;
    assert_eq!(api.call(None, "GET", "/healthz", None).await.0, 200, "healthz is open");
    for path in ["/connections", "/calendars", "/sync/status", "/openapi.json", "/metrics", "/webhooks"] {
        let (status, body, _) = api.call(None, "GET", path, None).await;
        assert_eq!(status, 401, "{path}");
        assert!(body["detail"].as_str().unwrap().contains("Authorization: Bearer"), "{body}");
        assert_eq!(api.call(Some("cbk_0000"), "GET", path, None).await.0, 401, "{path} with a wrong key");
        assert_eq!(api.call(Some("not-even-a-key"), "GET", path, None).await.0, 401, "{path}");
        assert_eq!(api.call(Some(&api.read), "GET", path, None).await.0, 200, "{path} with a read key");
    }
    let creds = api.sim.credentials();
    let body = api.connection_body("x", &creds.client_id, &creds.client_secret);
    let (status, problem, _) = api.call(Some(&api.read), "POST", "/connections", Some(body.clone())).await;
    assert_eq!(status, 403);
    assert!(problem["detail"].as_str().unwrap().contains("needs admin"), "{problem}");
    assert_eq!(api.call(Some(&api.write), "POST", "/connections", Some(body.clone())).await.0, 403);
    let nonsense = json!({"what": "ever"});
    assert_eq!(
        api.call(Some(&api.read), "POST", "/connections", Some(nonsense.clone())).await.0,
        403,
        "the scope is checked before the body is read"
    );
    assert_eq!(api.call(None, "POST", "/connections", Some(nonsense)).await.0, 401);
    assert_eq!(api.call(None, "POST", "/connections", Some(body)).await.0, 401);
    let conn = api.connection().await;
    let cal = json!({"email": ANN, "kind": "person", "connection_id": conn});
    assert_eq!(api.call(Some(&api.read), "POST", "/calendars", Some(cal.clone())).await.0, 403);
    assert_eq!(api.call(Some(&api.write), "POST", "/calendars", Some(cal)).await.0, 201);
}

/// A canary secret stored in a connection appears in no answer, no error, no log line, and
/// not in the database file.
#[tokio::test]
async fn a_canary_secret_never_leaks() {
    let api = Api::start().await;
    let creds = api.sim.credentials();
    let body = api.connection_body("canary", &creds.client_id, CANARY);
    let (status, created, text) = api.call(Some(&api.admin), "POST", "/connections", Some(body.clone())).await;
    assert_eq!(status, 201, "{text}");
    assert_eq!(created["secret_set"], true);
    let id = created["id"].as_i64().unwrap();
    let mut answers = vec![text];
    let cal = api.ok("POST", "/calendars", Some(json!({"email": ANN, "kind": "person", "connection_id": id}))).await;
    answers.push(cal.to_string());
    for (method, path, body) in [
        ("GET", format!("/connections/{id}"), None),
        ("GET", "/connections".to_string(), None),
        ("POST", format!("/connections/{id}/test"), None),
        ("POST", format!("/calendars/{}/sync", cal["id"]), None),
        ("GET", format!("/calendars/{}", cal["id"]), None),
        ("GET", "/sync/status".to_string(), None),
        ("PUT", format!("/connections/{id}"), Some(body.clone())),
        ("POST", "/connections".to_string(), Some(body.clone())), // 409: the name is in use
        (
            "PUT",
            format!("/connections/{id}"),
            Some(json!({"name": "", "settings": body["settings"], "secret": CANARY})),
        ),
        (
            "POST",
            "/connections".to_string(),
            Some(json!({"name": "c2", "settings": {"kind": "graph"}, "secret": CANARY})),
        ),
        ("GET", "/metrics".to_string(), None),
    ] {
        let (_, _, text) = api.call(Some(&api.admin), method, &path, body).await;
        answers.push(text);
    }
    let diagnosis: Value = serde_json::from_str(&answers[4]).unwrap();
    assert_eq!(check(&diagnosis, "token")["result"], "fail", "the canary is a wrong secret: {diagnosis}");
    for a in &answers {
        assert!(!a.contains(CANARY), "an answer shows the secret: {a}");
    }
    let logged = String::from_utf8_lossy(&logs().lock().unwrap()).to_string();
    assert!(!logged.is_empty(), "the test captures the logs");
    assert!(!logged.contains(CANARY), "a log line shows the secret");
    for file in std::fs::read_dir(&api.dir).unwrap() {
        let bytes = std::fs::read(file.unwrap().path()).unwrap();
        assert!(!String::from_utf8_lossy(&bytes).contains(CANARY), "the secret is stored in the clear");
    }
}

/// Events from Exchange are read-only (409 with the reason); local ones can be replaced and
/// deleted, and the deletion reaches Exchange.
async fn exchange_events_are_read_only_and_local_ones_editable(p: Protocol) {
    let api = Api::start().await;
    let conn = api.connection_over(p).await;
    let ann = api.link(conn, ANN, "person").await;
    api.sim.outlook().create_event(ANN, NewEvent::new("Dentist", at(1, 8), at(1, 9))).unwrap();
    api.ok("POST", &format!("/calendars/{ann}/sync"), None).await;
    let list = api
        .ok(
            "GET",
            &format!("/calendars/{ann}/events?from={}&to={}", at(0, 0).to_rfc3339(), at(3, 0).to_rfc3339())
                .replace('+', "%2B"),
            None,
        )
        .await;
    let dentist = list.as_array().unwrap().iter().find(|e| e["subject"] == "Dentist").expect("pulled").clone();
    assert_eq!((dentist["origin"].as_str(), dentist["read_only"].as_bool()), (Some("exchange"), Some(true)));
    let path = format!("/events/{}", dentist["id"].as_str().unwrap());
    let edit = json!({"subject": "Moved", "start": at(1, 10), "end": at(1, 11)});
    for (method, body) in [("PUT", Some(edit.clone())), ("DELETE", None)] {
        let (status, problem, _) = api.call(Some(&api.write), method, &path, body).await;
        assert_eq!(status, 409, "{method}");
        assert!(problem["detail"].as_str().unwrap().contains("read-only"), "{problem}");
    }

    let mine = api
        .ok(
            "POST",
            &format!("/calendars/{ann}/events"),
            Some(json!({"subject": "1:1", "start": at(2, 8), "end": at(2, 9)})),
        )
        .await;
    let mine_path = format!("/events/{}", mine["id"].as_str().unwrap());
    let replaced = api
        .ok(
            "PUT",
            &mine_path,
            Some(json!({"subject": "1:1 (moved)", "start": at(2, 10), "end": at(2, 11), "expected_version": 1})),
        )
        .await;
    assert_eq!((replaced["version"].as_i64(), replaced["subject"].as_str()), (Some(2), Some("1:1 (moved)")));
    let (status, _, _) = api
        .call(
            Some(&api.write),
            "PUT",
            &mine_path,
            Some(json!({"subject": "stale", "start": at(2, 10), "end": at(2, 11), "expected_version": 1})),
        )
        .await;
    assert_eq!(status, 409, "a stale version is a conflict");
    api.ok("POST", &format!("/calendars/{ann}/sync"), None).await;
    assert!(api.sim.outlook().list_events(ANN).unwrap().iter().any(|e| e.subject.as_deref() == Some("1:1 (moved)")));
    let (status, _, _) = api.call(Some(&api.write), "DELETE", &mine_path, None).await;
    assert_eq!(status, 204);
    assert_eq!(api.call(Some(&api.read), "GET", &mine_path, None).await.0, 404);
    api.ok("POST", &format!("/calendars/{ann}/sync"), None).await;
    assert!(!api.sim.outlook().list_events(ANN).unwrap().iter().any(|e| e.subject.as_deref() == Some("1:1 (moved)")));
}

/// Bad input is 400/415/422 with the field named, never a 5xx.
#[tokio::test]
async fn bad_input_is_refused_with_the_field_named() {
    let api = Api::start().await;
    let conn = api.connection().await;
    let ann = api.link(conn, ANN, "person").await;
    let cases: Vec<(&str, String, Option<Value>, u16, &str)> = vec![
        ("GET", "/calendars/abc".into(), None, 400, "path parameter"),
        ("GET", "/calendars/999999".into(), None, 404, "calendar 999999"),
        ("GET", format!("/calendars/{ann}/events?from=yesterday&to=2026-01-01T00:00:00Z"), None, 400, "query"),
        (
            "GET",
            format!("/calendars/{ann}/events?from=2026-02-01T00:00:00Z&to=2026-01-01T00:00:00Z"),
            None,
            422,
            "after",
        ),
        (
            "POST",
            format!("/calendars/{ann}/events"),
            Some(json!({"subject": "x", "start": at(1, 9), "end": at(1, 8)})),
            422,
            "/end",
        ),
        (
            "POST",
            format!("/calendars/{ann}/events"),
            Some(json!({"subject": "x", "start": at(1, 9), "end": at(1, 10), "colour": "red"})),
            422,
            "colour",
        ),
        (
            "POST",
            format!("/calendars/{ann}/events"),
            Some(json!({"subject": "x", "start": at(1, 9), "end": at(1, 10), "rooms": ["not an address"]})),
            422,
            "/rooms/0",
        ),
        (
            "POST",
            "/calendars".into(),
            Some(json!({"email": "bob@fabrikam.example", "kind": "hall", "connection_id": conn})),
            422,
            "kind",
        ),
        (
            "POST",
            "/connections".into(),
            Some(json!({
                "name": "bad-test-mailbox",
                "settings": {"kind": "ews", "url": "http://127.0.0.1:9/EWS/Exchange.asmx", "username": "svc",
                             "test_mailbox": "room one"},
                "secret": "x",
            })),
            422,
            "/settings/test_mailbox",
        ),
        (
            "POST",
            "/webhooks".into(),
            Some(json!({"url": "http://10.1.2.3/hook", "events": ["event.created"]})),
            422,
            "allowed outbound hosts",
        ),
        (
            "POST",
            "/webhooks".into(),
            Some(json!({"url": "http://127.0.0.1:9/hook", "events": ["event.exploded"]})),
            422,
            "/events/0",
        ),
        (
            "POST",
            "/availability".into(),
            Some(json!({"calendars": [], "from": at(0, 0), "to": at(1, 0)})),
            422,
            "/calendars",
        ),
    ];
    for (method, path, body, want, needle) in cases {
        let (status, problem, text) = api.call(Some(&api.admin), method, &path, body).await;
        assert_eq!(status, want, "{method} {path}: {text}");
        assert!(text.contains(needle), "{method} {path}: the problem should mention {needle:?}: {text}");
        assert_eq!(problem["status"].as_u64(), Some(want as u64));
    }
    let res = api.http.post(format!("{}/calendars", api.base)).bearer_auth(&api.admin).body("{}").send().await.unwrap();
    assert_eq!(res.status().as_u16(), 415, "a body without Content-Type: application/json");
    let res = api
        .http
        .post(format!("{}/calendars", api.base))
        .bearer_auth(&api.admin)
        .header("content-type", "application/json")
        .body("{\"email\":")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 400);
}

/// Busy intervals merge across calendars; free slots avoid every participant's events and
/// name the free candidate rooms.
#[tokio::test]
async fn availability_merges_and_finds_slots_with_a_room() {
    let api = Api::start().await;
    let conn = api.connection().await;
    let ann = api.link(conn, ANN, "person").await;
    let bob = api.link(conn, "bob@fabrikam.example", "person").await;
    let room1 = api.link(conn, ROOM1, "room").await;
    let room2 = api.link(conn, ROOM2, "room").await;
    let o = api.sim.outlook();
    o.create_event(ANN, NewEvent::new("Ann busy", at(3, 9), at(3, 10))).unwrap();
    o.create_event("bob@fabrikam.example", NewEvent::new("Bob busy", at(3, 10), at(3, 11))).unwrap();
    for c in [ann, bob] {
        api.ok("POST", &format!("/calendars/{c}/sync"), None).await;
    }
    // Room 1 is booked 11-12 through calbridge (a local event counts before it is synced).
    api.ok(
        "POST",
        &format!("/calendars/{room1}/events"),
        Some(json!({"subject": "Held", "start": at(3, 11), "end": at(3, 12)})),
    )
    .await;

    let busy = api
        .ok("POST", "/availability", Some(json!({"calendars": [ann, bob], "from": at(3, 8), "to": at(3, 18)})))
        .await;
    assert_eq!(busy["merged"], json!([{"start": at(3, 9), "end": at(3, 11)}]), "{busy}");
    assert_eq!(busy["calendars"][0]["busy"], json!([{"start": at(3, 9), "end": at(3, 10)}]));
    // Calendars come back in the order asked, each once; an unknown one is named; more than
    // 1,000 are refused with the limit.
    let busy = api
        .ok("POST", "/availability", Some(json!({"calendars": [bob, ann, bob], "from": at(3, 8), "to": at(3, 18)})))
        .await;
    let order: Vec<i64> =
        busy["calendars"].as_array().unwrap().iter().map(|c| c["calendar_id"].as_i64().unwrap()).collect();
    assert_eq!(order, [bob, ann], "{busy}");
    assert_eq!(busy["calendars"][0]["busy"], json!([{"start": at(3, 10), "end": at(3, 11)}]));
    let unknown = ann + bob + room1 + room2;
    let body = json!({"calendars": [ann, unknown], "from": at(3, 8), "to": at(3, 18)});
    let (status, problem, _) = api.call(Some(&api.read), "POST", "/availability", Some(body)).await;
    assert_eq!(status, 404, "{problem}");
    assert!(problem.to_string().contains(&format!("calendar {unknown}")), "{problem}");
    let many: Vec<i64> = (1..=1001).collect();
    let body = json!({"calendars": many, "from": at(3, 8), "to": at(3, 18)});
    let (status, problem, _) = api.call(Some(&api.read), "POST", "/availability", Some(body)).await;
    assert_eq!(status, 422, "{problem}");
    assert!(problem.to_string().contains("1 to 1000"), "{problem}");

    let slots = api
        .ok(
            "POST",
            "/availability/free-slots",
            Some(json!({"participants": [ann, bob], "rooms": [room1, room2], "duration_minutes": 60,
                        "from": at(3, 8), "to": at(3, 13), "step_minutes": 60})),
        )
        .await;
    let got: Vec<(String, Vec<i64>)> = slots["slots"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["start"].as_str().unwrap().to_string(),
                s["rooms"].as_array().unwrap().iter().map(|r| r.as_i64().unwrap()).collect(),
            )
        })
        .collect();
    let iso = |t: chrono::DateTime<Utc>| serde_json::to_value(t).unwrap().as_str().unwrap().to_string();
    assert_eq!(
        got,
        vec![(iso(at(3, 8)), vec![room1, room2]), (iso(at(3, 11)), vec![room2]), (iso(at(3, 12)), vec![room1, room2])]
    );
}

/// Disconnecting removes the connection's calendars and events locally and, when asked, the
/// events calbridge created in Exchange — and only those.
async fn disconnect_removes_what_calbridge_created(p: Protocol) {
    let api = Api::start().await;
    let conn = api.connection_over(p).await;
    let ann = api.link(conn, ANN, "person").await;
    api.sim.outlook().create_event(ANN, NewEvent::new("Theirs", at(1, 8), at(1, 9))).unwrap();
    api.ok(
        "POST",
        &format!("/calendars/{ann}/events"),
        Some(json!({"subject": "Ours", "start": at(1, 10), "end": at(1, 11)})),
    )
    .await;
    api.ok("POST", &format!("/calendars/{ann}/sync"), None).await;
    let subjects = |api: &Api| -> Vec<String> {
        api.sim.outlook().list_events(ANN).unwrap().into_iter().filter_map(|e| e.subject).collect()
    };
    assert!(subjects(&api).contains(&"Ours".to_string()));

    let report = api.ok("DELETE", &format!("/connections/{conn}?remove_from_exchange=true"), None).await;
    assert_eq!(report["deleted_in_exchange"], 1, "{report}");
    assert_eq!(report["calendars"], 1);
    assert!(report["events_removed"].as_u64().unwrap() >= 2, "{report}");
    let left = subjects(&api);
    assert!(left.contains(&"Theirs".to_string()) && !left.contains(&"Ours".to_string()), "{left:?}");
    assert_eq!(api.call(Some(&api.read), "GET", &format!("/connections/{conn}"), None).await.0, 404);
    assert_eq!(api.call(Some(&api.read), "GET", &format!("/calendars/{ann}"), None).await.0, 404);
    assert!(api.store.calendars(None).await.unwrap().is_empty());
}

/// The OpenAPI document lists every route with the key requirement and the problem answers.
#[tokio::test]
async fn the_openapi_document_describes_the_api() {
    let api = Api::start().await;
    let doc = api.ok("GET", "/openapi.json", None).await;
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    for path in [
        "/connections",
        "/connections/{id}/test",
        "/calendars/{id}/events",
        "/availability/free-slots",
        "/webhooks",
        "/sync/status",
    ] {
        assert!(doc["paths"][path].is_object(), "{path} is documented");
    }
    let op = &doc["paths"]["/connections"]["post"];
    assert_eq!(op["security"], json!([{"apiKey": []}]));
    assert!(op["responses"]["422"]["content"]["application/problem+json"].is_object(), "{op}");
    assert!(doc["paths"]["/healthz"]["get"]["security"] != json!([{"apiKey": []}]));
    let secret = &doc["components"]["schemas"]["ConnectionInput"]["properties"]["secret"];
    assert_eq!(secret["writeOnly"], true, "{secret}");
    assert!(doc["components"]["schemas"]["ConnectionView"]["properties"].get("secret").is_none());
}

/// A connection whose credentials Exchange refuses is reported: the link and the sync status
/// name the fix, the metrics count an auth error, and one `connection.failed` message per
/// connection and hour arrives.
#[tokio::test]
async fn a_refused_connection_is_reported() {
    let api = Api::start().await;
    let (url, mut inbox) = receiver().await;
    let hook = api.ok("POST", "/webhooks", Some(json!({"url": url, "events": ["connection.failed"]}))).await;
    let secret = hook["secret"].as_str().unwrap().to_string();
    let creds = api.sim.credentials();
    let conn = api.ok("POST", "/connections", Some(api.connection_body("bad", &creds.client_id, "wrong"))).await;
    let conn = conn["id"].as_i64().unwrap();
    let cal = api.ok("POST", "/calendars", Some(json!({"email": ANN, "kind": "person", "connection_id": conn}))).await;
    assert_eq!(cal["verification"]["state"], "failed", "{cal}");
    let cal = cal["id"].as_i64().unwrap();

    let hour = || Utc::now().format("%Y%m%d%H").to_string();
    let before = hour();
    for _ in 0..2 {
        let s = api.ok("POST", &format!("/calendars/{cal}/sync"), None).await;
        assert_eq!(s["state"], "failed", "{s}");
        assert!(s["hint"].as_str().unwrap().contains("Value"), "the hint names the fix: {s}");
    }
    let after = hour();
    let got = tokio::time::timeout(Duration::from_secs(30), inbox.recv()).await.expect("connection.failed").unwrap();
    assert!(verify_signature(&secret, &got));
    let body: Value = serde_json::from_str(&got.body).unwrap();
    assert_eq!(body["type"], "connection.failed");
    assert_eq!(body["data"]["connection_id"], conn);
    assert!(body["data"]["hint"].as_str().is_some_and(|h| !h.is_empty()), "{body}");
    if before == after {
        let c = api.store.delivery_counts().await.unwrap();
        assert_eq!(c.pending + c.delivered + c.failed, 1, "one message per connection and hour: {c:?}");
    }
    let (status, _, metrics) = api.call(Some(&api.read), "GET", "/metrics", None).await;
    assert_eq!(status, 200);
    assert!(metrics.lines().any(|l| l == "calbridge_sync_errors_total{class=\"auth\"} 2"), "{metrics}");
    assert!(metrics.lines().any(|l| l == "calbridge_sync_runs_total{result=\"failed\"} 2"), "{metrics}");
}

/// A link can be changed in place: "busy only" masks its Exchange events from then on; its
/// address cannot change.
async fn a_link_changes_in_place_and_busy_only_masks(p: Protocol) {
    let api = Api::start().await;
    let conn = api.connection_over(p).await;
    let ann = api.link(conn, ANN, "person").await;
    api.sim.outlook().create_event(ANN, NewEvent::new("Salary review", at(1, 8), at(1, 9))).unwrap();
    api.ok("POST", &format!("/calendars/{ann}/sync"), None).await;
    let range = format!("from={}&to={}", at(0, 0).to_rfc3339(), at(3, 0).to_rfc3339()).replace('+', "%2B");
    let subjects = |v: &Value| -> Vec<String> {
        v.as_array().unwrap().iter().map(|e| e["subject"].as_str().unwrap().to_string()).collect()
    };
    let open = api.ok("GET", &format!("/calendars/{ann}/events?{range}"), None).await;
    assert_eq!(subjects(&open), ["Salary review"]);

    let changed = api
        .ok(
            "PUT",
            &format!("/calendars/{ann}"),
            Some(json!({"email": ANN, "kind": "person", "connection_id": conn, "busy_only": true, "display_name": "Ann"})),
        )
        .await;
    assert_eq!((changed["busy_only"].as_bool(), changed["display_name"].as_str()), (Some(true), Some("Ann")));
    assert_eq!(changed["verification"]["state"], "verified", "the same connection keeps the verification");
    let masked = api.ok("GET", &format!("/calendars/{ann}/events?{range}"), None).await;
    assert_eq!(subjects(&masked), ["Busy"]);
    assert!(masked[0]["attendees"].as_array().unwrap().is_empty());

    let other = json!({"email": "bob@fabrikam.example", "kind": "person", "connection_id": conn});
    let (status, problem, _) = api.call(Some(&api.write), "PUT", &format!("/calendars/{ann}"), Some(other)).await;
    assert_eq!(status, 422);
    assert!(problem["detail"].as_str().unwrap().contains("cannot change"), "{problem}");
}

/// Booking lifecycle: a booking of a room is `pending` until the room mailbox answers, then
/// `accepted`; a second booking of the busy room is declined by Exchange (never double-booked),
/// and the host application learns both outcomes through the API and `booking.*` webhooks.
async fn booking_lifecycle_pending_then_accepted_or_declined(p: Protocol) {
    let api = Api::start().await;
    let (url, mut inbox) = receiver().await;
    let hook = api
        .ok("POST", "/webhooks", Some(json!({"url": url, "events": ["booking.accepted", "booking.declined"]})))
        .await;
    let secret = hook["secret"].as_str().unwrap().to_string();
    let conn = api.connection_over(p).await;
    let organizer = api.link(conn, ORGANIZER, "person").await;
    let ann = api.link(conn, ANN, "person").await;
    let first = json!({"subject": "Class A", "start": at(4, 9), "end": at(4, 10), "rooms": [ROOM2]});
    let second = json!({"subject": "Class B", "start": at(4, 9), "end": at(4, 10), "rooms": [ROOM2]});
    let a = api.ok("POST", &format!("/calendars/{organizer}/events"), Some(first)).await;
    let room_of =
        |ev: &Value| ev["attendees"].as_array().unwrap().iter().find(|x| x["email"] == ROOM2).unwrap().clone();
    assert_eq!(room_of(&a)["response"], "none", "pending until the room answers: {a}");
    let b = api.ok("POST", &format!("/calendars/{ann}/events"), Some(second)).await;
    // Push both, then pull the rooms' answers.
    for cal in [organizer, ann, organizer, ann] {
        api.ok("POST", &format!("/calendars/{cal}/sync"), None).await;
    }
    let mut answers = Vec::new();
    while answers.len() < 2 {
        let r = tokio::time::timeout(Duration::from_secs(30), inbox.recv()).await.expect("both answers").unwrap();
        assert!(verify_signature(&secret, &r));
        answers.push(serde_json::from_str::<Value>(&r.body).unwrap());
    }
    let declined = answers.iter().find(|a| a["type"] == "booking.declined").expect("one declined");
    assert_eq!(declined["data"]["event"]["id"], b["id"], "the later booking is declined: {answers:?}");
    assert_eq!(declined["data"]["resource"], ROOM2);
    assert!(answers.iter().any(|a| a["type"] == "booking.accepted" && a["data"]["event"]["subject"] == "Class A"));
    let stored_a = api.ok("GET", &format!("/events/{}", a["id"].as_str().unwrap()), None).await;
    assert_eq!(room_of(&stored_a)["response"], "accepted", "{stored_a}");
    let stored_b = api.ok("GET", &format!("/events/{}", b["id"].as_str().unwrap()), None).await;
    assert_eq!(room_of(&stored_b)["response"], "declined", "{stored_b}");
    // The room's own calendar holds the accepted booking only.
    let held: Vec<String> = api
        .sim
        .outlook()
        .list_events(ROOM2)
        .unwrap()
        .into_iter()
        .filter(|e| e.show_as.as_deref() != Some("free") && !e.is_cancelled.unwrap_or(false))
        .filter_map(|e| e.subject)
        .filter(|s| s.starts_with("Class"))
        .collect();
    assert_eq!(held, ["Class A"], "never double-booked");
}

both!(booking_lifecycle_pending_then_accepted_or_declined);

/// Pulled events: Free is hidden, Tentative and Out-of-office block time, events from Exchange
/// are read-only, and a private event is masked in the API even on an open calendar.
async fn pulled_events_block_time_by_status_and_private_ones_are_masked(p: Protocol) {
    let api = Api::start().await;
    let conn = api.connection_over(p).await;
    let ann = api.link(conn, ANN, "person").await;
    let o = api.sim.outlook();
    let with = |subject: &str, hour: u32, show_as: &str, sensitivity: &str| {
        let mut e = NewEvent::new(subject, at(2, hour), at(2, hour + 1));
        e.show_as = Some(show_as.into());
        e.sensitivity = Some(sensitivity.into());
        e.body = Some("details".into());
        e
    };
    o.create_event(ANN, with("Lunch walk", 8, "free", "normal")).unwrap();
    o.create_event(ANN, with("Maybe: vendor call", 10, "tentative", "normal")).unwrap();
    o.create_event(ANN, with("Conference", 12, "oof", "normal")).unwrap();
    o.create_event(ANN, with("Doctor", 14, "busy", "private")).unwrap();
    api.ok("POST", &format!("/calendars/{ann}/sync"), None).await;

    let busy =
        api.ok("POST", "/availability", Some(json!({"calendars": [ann], "from": at(2, 0), "to": at(3, 0)}))).await;
    assert_eq!(
        busy["merged"],
        json!([
            {"start": at(2, 10), "end": at(2, 11)},
            {"start": at(2, 12), "end": at(2, 13)},
            {"start": at(2, 14), "end": at(2, 15)}
        ]),
        "free is hidden, tentative, out-of-office and busy block time: {busy}"
    );
    let range = format!("from={}&to={}", at(2, 0).to_rfc3339(), at(3, 0).to_rfc3339()).replace('+', "%2B");
    let events = api.ok("GET", &format!("/calendars/{ann}/events?{range}"), None).await;
    let all = events.as_array().unwrap();
    assert!(all.iter().all(|e| e["read_only"] == true && e["origin"] == "exchange"), "{events}");
    let private = all.iter().find(|e| e["start"] == json!(at(2, 14))).expect("the private event is listed");
    assert_eq!(private["subject"], "Busy", "a private event is masked: {private}");
    assert_eq!((private["body"].as_str(), private["location"].as_str()), (Some(""), Some("")));
    assert!(all.iter().any(|e| e["subject"] == "Maybe: vendor call"), "an open event keeps its subject");
}

both!(pulled_events_block_time_by_status_and_private_ones_are_masked);

/// A failed delivery is retried (with backoff) until the endpoint takes it; every attempt
/// carries the same message id, the receiver's deduplication key, and a valid signature.
#[tokio::test]
async fn failed_deliveries_are_retried_with_the_same_id() {
    let api = Api::start().await;
    let (url, mut inbox) = failing_receiver(2).await;
    let hook = api.ok("POST", "/webhooks", Some(json!({"url": url, "events": ["event.created"]}))).await;
    let secret = hook["secret"].as_str().unwrap().to_string();
    let conn = api.connection().await;
    let ann = api.link(conn, ANN, "person").await;
    api.ok(
        "POST",
        &format!("/calendars/{ann}/events"),
        Some(json!({"subject": "Retry me", "start": at(1, 9), "end": at(1, 10)})),
    )
    .await;
    let mut attempts = Vec::new();
    for _ in 0..3 {
        let r = tokio::time::timeout(Duration::from_secs(30), inbox.recv()).await.expect("three attempts").unwrap();
        assert!(verify_signature(&secret, &r));
        attempts.push((r.headers["webhook-id"].to_str().unwrap().to_string(), r.body));
    }
    assert!(attempts.iter().all(|a| a == &attempts[0]), "the same message each time: {attempts:?}");
    // The third attempt succeeded: the delivery is recorded so (after the answer arrived).
    for _ in 0..300 {
        if api.store.delivery_counts().await.unwrap().delivered == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let c = api.store.delivery_counts().await.unwrap();
    assert_eq!((c.pending, c.delivered, c.failed), (0, 1, 0));
    let (_, _, metrics) = api.call(Some(&api.read), "GET", "/metrics", None).await;
    assert!(metrics.lines().any(|l| l == "calbridge_webhook_attempts_total{result=\"retry\"} 2"), "{metrics}");
}

/// The same path over EWS: an `ews` connection (NTLM, impersonation) created through the API,
/// tested before anything is linked (its test mailbox), then linked and tested (passing, then
/// failing with the fix for a wrong password), booked, and the
/// booking found in Exchange. The sync that pushes it is throttled (ErrorServerBusy with a
/// 1 s back-off, twice): it still succeeds, and its status shows the time spent waiting.
#[tokio::test]
async fn an_ews_connection_is_created_tested_linked_and_booked_through_the_api() {
    let api = Api::start().await;
    let account = api.sim.ews_accounts().into_iter().find(|a| a.impersonation).unwrap();
    let body = |secret: &str| {
        json!({
            "name": "fabrikam-onprem",
            "settings": {
                "kind": "ews",
                "url": api.running.ews_url(),
                "auth": "ntlm",
                "version": "Exchange2013_SP1",
                "username": account.username,
            },
            "secret": secret,
            "default_organizer": ORGANIZER,
        })
    };
    let created = api.ok("POST", "/connections", Some(body(&account.password))).await;
    assert_eq!(created["settings"]["kind"], "ews", "{created}");
    assert_eq!(created["settings"]["impersonation"], true, "impersonation is the default: {created}");
    assert_eq!(created["settings"]["max_connections"], 27, "{created}");
    assert!(!created.to_string().contains(&account.password), "the password is never echoed");
    let conn = created["id"].as_i64().unwrap();
    // Nothing linked yet: the test opens the test mailbox.
    let mut with_test = body(&account.password);
    with_test["settings"]["test_mailbox"] = json!(" Room1@Fabrikam.example ");
    let updated = api.ok("PUT", &format!("/connections/{conn}"), Some(with_test)).await;
    assert_eq!(updated["settings"]["test_mailbox"], ROOM1, "trimmed and lower-cased: {updated}");
    let diagnosis = api.ok("POST", &format!("/connections/{conn}/test"), None).await;
    assert_eq!(diagnosis["ok"], true, "{diagnosis}");
    assert!(check(&diagnosis, "mailbox.test")["detail"].as_str().unwrap().contains(ROOM1), "{diagnosis}");
    let organizer = api.link(conn, ORGANIZER, "person").await;
    api.link(conn, ROOM1, "room").await;
    let diagnosis = api.ok("POST", &format!("/connections/{conn}/test"), None).await;
    assert_eq!(diagnosis["ok"], true, "{diagnosis}");
    for name in ["settings", "credentials", "mailbox.person", "mailbox.room"] {
        assert_eq!(check(&diagnosis, name)["result"], "pass", "{name}: {diagnosis}");
    }

    let event = api
        .ok(
            "POST",
            &format!("/calendars/{organizer}/events"),
            Some(json!({"subject": "On-premises induction", "start": at(3, 9), "end": at(3, 10), "rooms": [ROOM1]})),
        )
        .await;
    api.sim.faults().throttle_next(2, 1);
    let status = api.ok("POST", &format!("/calendars/{organizer}/sync"), None).await;
    assert_eq!((status["state"].as_str(), status["pushed"].as_i64()), (Some("ok"), Some(1)), "{status}");
    assert!(api.sim.stats().throttled_429 >= 2, "the simulator throttled twice: {:?}", api.sim.stats());
    let throttled = status["throttled_ms"].as_u64().unwrap();
    assert!((2000..10_000).contains(&throttled), "two 1 s back-offs are recorded: {status}");
    let all = api.ok("GET", "/sync/status", None).await;
    let recorded = all.as_array().unwrap().iter().find(|s| s["calendar_id"] == organizer).unwrap();
    assert_eq!(recorded["throttled_ms"].as_u64(), Some(throttled), "{all}");
    let (_, _, metrics) = api.call(Some(&api.read), "GET", "/metrics", None).await;
    let seconds = metrics.lines().find_map(|l| l.strip_prefix("calbridge_sync_throttled_seconds_total ")).unwrap();
    assert!(seconds.parse::<f64>().unwrap() >= 2.0, "{metrics}");
    let pushed = api.sim.outlook().list_events(ORGANIZER).unwrap();
    assert!(pushed.iter().any(|e| e.subject.as_deref() == Some("On-premises induction")), "in Exchange, over EWS");
    assert!(event["id"].is_string());

    // A wrong password: the sign-in check fails and names the fix.
    let mut wrong = body("not-the-password");
    wrong["name"] = json!("fabrikam-wrong");
    let bad = api.ok("POST", "/connections", Some(wrong)).await;
    let diagnosis = api.ok("POST", &format!("/connections/{}/test", bad["id"]), None).await;
    assert_eq!(diagnosis["ok"], false, "{diagnosis}");
    let creds = check(&diagnosis, "credentials");
    assert_eq!(creds["result"], "fail", "{diagnosis}");
    assert!(creds["hint"].as_str().unwrap().contains("password"), "{creds}");
    assert!(!diagnosis.to_string().contains("not-the-password"), "the secret never appears");
}

/// Room discovery in one call: every room the directory lists becomes a room calendar, each
/// room list a site; a second import links nothing twice, and a foreign site is refused.
async fn rooms_are_imported_in_one_call(p: Protocol) {
    let api = Api::start().await;
    let conn = api.connection_over(p).await;
    let report = api.ok("POST", &format!("/connections/{conn}/rooms/import"), Some(json!({}))).await;
    let mut linked: Vec<&str> = report["linked"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
    linked.sort();
    assert_eq!(linked, [ROOM1, ROOM2], "{report}");
    assert_eq!(report["sites_created"], json!(["All rooms"]), "{report}");
    let calendars = api.ok("GET", "/calendars", None).await;
    let room = calendars.as_array().unwrap().iter().find(|c| c["email"] == ROOM1).expect("room 1 linked");
    assert_eq!(room["kind"], "room", "{room}");
    let again = api.ok("POST", &format!("/connections/{conn}/rooms/import"), Some(json!({}))).await;
    assert_eq!(again["linked"], json!([]), "{again}");
    assert_eq!(again["existing"].as_array().unwrap().len(), 2);
    let (status, problem, _) = api
        .call(Some(&api.admin), "POST", &format!("/connections/{conn}/rooms/import"), Some(json!({"site_id": 999})))
        .await;
    assert_eq!(status, 422, "{problem}");
    assert!(problem["detail"].as_str().unwrap().contains("site_id"), "{problem}");
    let (status, _, _) =
        api.call(Some(&api.read), "POST", &format!("/connections/{conn}/rooms/import"), Some(json!({}))).await;
    assert_eq!(status, 403, "a read key cannot import");
}
both!(exchange_events_are_read_only_and_local_ones_editable);
both!(disconnect_removes_what_calbridge_created);
both!(rooms_are_imported_in_one_call);
both!(a_link_changes_in_place_and_busy_only_masks);

/// External bookers and room displays: a booking made for someone outside the directory, or
/// from a room display, goes straight into the room's own calendar (no organizer's meeting,
/// no invitation to anyone); a display booking can then be extended and ended early.
async fn external_and_display_bookings_book_the_room_calendar_only(p: Protocol) {
    let api = Api::start().await;
    let conn = api.connection_over(p).await;
    let room = api.link(conn, ROOM1, "room").await;
    api.ok("POST", &format!("/calendars/{room}/sync"), None).await;
    let visitor = api
        .ok(
            "POST",
            &format!("/calendars/{room}/events"),
            Some(json!({"subject": "Visitor: Contoso Partners", "body": "Booked for guest@partner.example",
                        "start": at(2, 13), "end": at(2, 14)})),
        )
        .await;
    let display = api
        .ok(
            "POST",
            &format!("/calendars/{room}/events"),
            Some(json!({"subject": "Booked at the door", "start": at(3, 9), "end": at(3, 10)})),
        )
        .await;
    api.ok("POST", &format!("/calendars/{room}/sync"), None).await;
    let in_room = |subject: &str| {
        api.sim.outlook().list_events(ROOM1).unwrap().into_iter().find(|e| e.subject.as_deref() == Some(subject))
    };
    assert!(in_room("Visitor: Contoso Partners").is_some(), "the room's calendar holds the visitor's booking");
    for person in [ORGANIZER, ANN, "bob@fabrikam.example"] {
        assert!(
            !api.sim
                .outlook()
                .list_events(person)
                .unwrap()
                .iter()
                .any(|e| e.subject.as_deref() == Some("Visitor: Contoso Partners")),
            "nobody else's calendar has it ({person})"
        );
    }
    assert!(visitor["attendees"].as_array().unwrap().is_empty());

    // The display extends the meeting by half an hour, then ends it early.
    let path = format!("/events/{}", display["id"].as_str().unwrap());
    let extended = api
        .ok(
            "PUT",
            &path,
            Some(json!({"subject": "Booked at the door", "start": at(3, 9), "end": at(3, 10) + chrono::Duration::minutes(30),
                        "expected_version": display["version"]})),
        )
        .await;
    api.ok("POST", &format!("/calendars/{room}/sync"), None).await;
    let end_of = |subject: &str| in_room(subject).and_then(|e| e.end).map(|e| e.date_time).unwrap_or_default();
    assert!(end_of("Booked at the door")
        .starts_with(&(at(3, 10) + chrono::Duration::minutes(30)).format("%Y-%m-%dT%H:%M").to_string()));
    api.ok(
        "PUT",
        &path,
        Some(
            json!({"subject": "Booked at the door", "start": at(3, 9), "end": at(3, 9) + chrono::Duration::minutes(20),
                    "expected_version": extended["version"]}),
        ),
    )
    .await;
    api.ok("POST", &format!("/calendars/{room}/sync"), None).await;
    assert!(
        end_of("Booked at the door")
            .starts_with(&(at(3, 9) + chrono::Duration::minutes(20)).format("%Y-%m-%dT%H:%M").to_string()),
        "ended early"
    );
}
both!(external_and_display_bookings_book_the_room_calendar_only);

/// A series made in Outlook shows in the API as its occurrences, each naming its series and
/// its original start, over both protocols.
async fn a_series_shows_as_its_occurrences(p: Protocol) {
    let api = Api::start().await;
    let conn = api.connection_over(p).await;
    let ann = api.link(conn, ANN, "person").await;
    let start = at(1, 9);
    api.sim.outlook().create_event(ANN, weekly_series("Weekly lab", start, 2, 6)).unwrap();
    api.ok("POST", &format!("/calendars/{ann}/sync"), None).await;
    let range = format!("from={}&to={}", at(0, 0).to_rfc3339(), at(30, 0).to_rfc3339()).replace('+', "%2B");
    let events = api.ok("GET", &format!("/calendars/{ann}/events?{range}"), None).await;
    let labs: Vec<&Value> = events.as_array().unwrap().iter().filter(|e| e["subject"] == "Weekly lab").collect();
    assert_eq!(labs.len(), 3, "every other week within 30 days: {events}");
    for (k, e) in labs.iter().enumerate() {
        assert_eq!(e["series"], "occurrence", "{e}");
        assert_eq!(e["series_master_id"], labs[0]["series_master_id"]);
        assert!(e["series_master_id"].is_string());
        assert_eq!(e["original_start"], json!(start + chrono::Duration::weeks(2 * k as i64)));
        assert!(e.get("recurrence").is_none(), "the rule belongs to the series, not an occurrence: {e}");
    }
}
both!(a_series_shows_as_its_occurrences);

/// The range query of day `days` from today.
fn day(days: i64) -> String {
    format!("from={}&to={}", at(days, 0).to_rfc3339(), at(days + 1, 0).to_rfc3339()).replace('+', "%2B")
}

/// Events of a mailbox in the simulator with this subject.
fn in_exchange(api: &Api, mailbox: &str, subject: &str) -> Vec<calbridge_sim::wire::Event> {
    api.sim
        .outlook()
        .list_events(mailbox)
        .unwrap()
        .into_iter()
        .filter(|e| e.subject.as_deref() == Some(subject))
        .collect()
}

fn sim_body(e: &calbridge_sim::wire::Event) -> String {
    e.body.as_ref().and_then(|b| b.content.clone()).unwrap_or_default()
}

fn sim_start(e: &calbridge_sim::wire::Event) -> String {
    e.start.as_ref().map(|s| s.date_time.clone()).unwrap_or_default()
}

/// Class sessions: one meeting organised by the connection's default organizer, instructors as
/// required attendees, learners as optional ones (or invited separately), rooms and equipment
/// as resources. Only a change of date, time, zone or location re-sends the meeting over EWS
/// (over Graph, Exchange decides); learners moved to their own invitations leave the meeting;
/// cancelling the session cancels everything.
async fn class_sessions_are_organised_by_the_default_organizer(p: Protocol) {
    let api = Api::start().await;
    let conn = api.connection_over(p).await;
    let mut body = json!({
        "id": "rust-101-s1", "connection_id": conn, "subject": "Rust 101", "body": "Bring a laptop",
        "start": at(5, 9), "end": at(5, 11), "time_zone": "Europe/Zurich",
        "instructors": [ANN], "learners": [BOB, "carol@partner.example"], "rooms": [ROOM1], "equipment": [PROJECTOR],
    });
    let (status, problem, text) = api.call(Some(&api.write), "POST", "/sessions", Some(body.clone())).await;
    assert_eq!(status, 422, "the organizer is not linked yet: {text}");
    assert!(problem["errors"][0]["message"].as_str().unwrap().contains("POST /calendars"), "{problem}");

    let organizer = api.link(conn, ORGANIZER, "person").await;
    let session = api.ok("POST", "/sessions", Some(body.clone())).await;
    assert_eq!((session["organizer"].as_str(), session["calendar_id"].as_i64()), (Some(ORGANIZER), Some(organizer)));
    assert_eq!(session["learners_invited"], "with_session");
    let roles: Vec<(String, String)> = session["event"]["attendees"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| (a["email"].as_str().unwrap().to_string(), a["role"].as_str().unwrap().to_string()))
        .collect();
    let expected = [
        (ANN, "required"),
        (BOB, "optional"),
        ("carol@partner.example", "optional"),
        (ROOM1, "resource"),
        (PROJECTOR, "resource"),
    ];
    assert_eq!(roles, expected.map(|(a, r)| (a.to_string(), r.to_string())), "{session}");
    let sync_path = format!("/calendars/{organizer}/sync");
    let sync = || api.ok("POST", &sync_path, None);
    sync().await;
    sync().await;
    let meeting = in_exchange(&api, ORGANIZER, "Rust 101");
    assert_eq!(meeting.len(), 1, "one meeting, organised by the default organizer");
    assert_eq!(meeting[0].is_organizer, Some(true));
    for person in [ANN, BOB] {
        assert_eq!(in_exchange(&api, person, "Rust 101").len(), 1, "{person} is invited");
    }
    let read = api.ok("GET", "/sessions/rust-101-s1", None).await;
    for resource in [ROOM1, PROJECTOR] {
        let a = read["event"]["attendees"].as_array().unwrap().iter().find(|a| a["email"] == resource).unwrap();
        assert_eq!(a["response"], "accepted", "{resource} accepted: {read}");
    }

    // A new agenda only: over EWS the meeting is updated without re-sending it.
    body["body"] = json!("Bring a laptop and a charger");
    body["expected_version"] = read["event"]["version"].clone();
    body.as_object_mut().unwrap().remove("id");
    let updated = api.ok("PUT", "/sessions/rust-101-s1", Some(body.clone())).await;
    sync().await;
    assert!(sim_body(&in_exchange(&api, ORGANIZER, "Rust 101")[0]).contains("charger"), "the meeting is updated");
    if p == Protocol::Ews {
        assert!(!sim_body(&in_exchange(&api, ANN, "Rust 101")[0]).contains("charger"), "silently: no update went out");
    }
    // A new time re-sends it.
    body["start"] = json!(at(5, 13));
    body["end"] = json!(at(5, 15));
    body["expected_version"] = updated["event"]["version"].clone();
    let moved = api.ok("PUT", "/sessions/rust-101-s1", Some(body.clone())).await;
    sync().await;
    let anns = in_exchange(&api, ANN, "Rust 101");
    assert!(sim_start(&anns[0]).starts_with(&at(5, 13).format("%Y-%m-%dT%H:%M").to_string()), "moved for Ann");
    assert!(sim_body(&anns[0]).contains("charger"), "with the current agenda");

    // Learners invited separately: each gets an invitation of their own, without the room.
    body["learners_invited"] = json!("separately");
    body["expected_version"] = moved["event"]["version"].clone();
    let separate = api.ok("PUT", "/sessions/rust-101-s1", Some(body.clone())).await;
    assert_eq!(separate["learners_invited"], "separately");
    let invitations = separate["invitations"].as_array().unwrap();
    assert_eq!(invitations.len(), 2, "{separate}");
    for inv in invitations {
        let attendees = inv["attendees"].as_array().unwrap();
        assert_eq!(attendees.len(), 1, "one learner each: {inv}");
        assert_eq!(inv["start"], json!(at(5, 13)));
        assert_eq!(inv["location"], separate["event"]["location"], "same place");
    }
    assert!(separate["event"]["attendees"].as_array().unwrap().iter().all(|a| a["email"] != BOB), "{separate}");
    sync().await;
    sync().await;
    let bobs = in_exchange(&api, BOB, "Rust 101");
    assert_eq!(bobs.len(), 1, "Bob holds his own invitation only");
    let bobs_attendees = bobs[0].attendees.clone().unwrap_or_default();
    assert_eq!(bobs_attendees.len(), 1, "and sees no other attendee");
    assert_eq!(in_exchange(&api, ORGANIZER, "Rust 101").len(), 3, "the meeting and two invitations");
    let room_bookings =
        in_exchange(&api, ROOM1, "Rust 101").len() + in_exchange(&api, ROOM1, "Scheduler Rust 101").len();
    assert!(room_bookings <= 1, "the room is booked once");

    // Cancelling the session cancels the meeting and every invitation.
    api.ok("DELETE", "/sessions/rust-101-s1", None).await;
    assert_eq!(api.call(Some(&api.read), "GET", "/sessions/rust-101-s1", None).await.0, 404);
    sync().await;
    for mailbox in [ORGANIZER, ANN, BOB, ROOM1, PROJECTOR] {
        assert!(in_exchange(&api, mailbox, "Rust 101").is_empty(), "cancelled for {mailbox}");
    }
}
both!(class_sessions_are_organised_by_the_default_organizer);

/// Declining from the host application (`scheduling.decline_on_delete`, off by default):
/// deleting a booking made in Exchange from a room's calendar declines it in the room's name.
/// The booking leaves the room's calendar and the store; the organizer's meeting stays, with
/// the room's decline, and the other attendees keep theirs.
async fn deleting_a_booking_declines_it_for_the_room_only(p: Protocol) {
    for enabled in [false, true] {
        let api = Api::start_with(ApiConfig { decline_on_delete: enabled, ..ApiConfig::default() }).await;
        let conn = api.connection_over(p).await;
        let room = api.link(conn, ROOM1, "room").await;
        let outlook = api.sim.outlook();
        let meeting = outlook
            .create_event(ANN, NewEvent::new("Team sync", at(3, 9), at(3, 10)).with_attendees(&[ROOM1, BOB]))
            .unwrap();
        let own = outlook.create_event(ROOM1, NewEvent::new("Maintenance", at(3, 12), at(3, 13))).unwrap();
        api.ok("POST", &format!("/calendars/{room}/sync"), None).await;
        let listed = api.ok("GET", &format!("/calendars/{room}/events?{}", day(3)), None).await;
        let find = |start| listed.as_array().unwrap().iter().find(|e| e["start"] == json!(start)).cloned();
        let booking = find(at(3, 9)).expect("the booking is pulled");
        let maintenance = find(at(3, 12)).expect("the room's own event is pulled");
        let (status, problem, text) =
            api.call(Some(&api.write), "DELETE", &format!("/events/{}", booking["id"].as_str().unwrap()), None).await;
        if !enabled {
            assert_eq!(status, 409, "read-only by default: {text}");
            assert!(problem["detail"].as_str().unwrap().contains("scheduling.decline_on_delete"), "{problem}");
            assert!(!in_exchange(&api, ROOM1, "Team sync").is_empty(), "nothing changed in Exchange");
            continue;
        }
        assert_eq!(status, 204, "{text}");
        assert!(in_exchange(&api, ROOM1, "Team sync").is_empty(), "the booking left the room's calendar");
        let organizers = outlook.get_event(ANN, &meeting).expect("the organizer's meeting stays");
        assert_ne!(organizers.is_cancelled, Some(true));
        let room_answer = organizers
            .attendees
            .unwrap_or_default()
            .into_iter()
            .find(|a| a.email_address.as_ref().and_then(|e| e.address.as_deref()) == Some(ROOM1))
            .and_then(|a| a.status)
            .and_then(|s| s.response);
        assert_eq!(room_answer.as_deref(), Some("declined"), "the organizer sees the room's decline");
        assert_eq!(in_exchange(&api, BOB, "Team sync").len(), 1, "Bob keeps his invitation");
        let after = api.ok("GET", &format!("/calendars/{room}/events?{}", day(3)), None).await;
        assert!(
            after.as_array().unwrap().iter().all(|e| e["start"] != json!(at(3, 9))),
            "gone from the store: {after}"
        );
        let idle = api.ok("POST", &format!("/calendars/{room}/sync"), None).await;
        assert_eq!((idle["pulled"].as_u64(), idle["pushed"].as_u64()), (Some(0), Some(0)), "no loop: {idle}");

        // The room's own event was never sent to it as a meeting: nobody to decline it to.
        let (status, problem, _) = api
            .call(Some(&api.write), "DELETE", &format!("/events/{}", maintenance["id"].as_str().unwrap()), None)
            .await;
        assert_eq!(status, 409);
        assert!(problem["detail"].as_str().unwrap().contains("nobody to decline"), "{problem}");
        assert!(outlook.get_event(ROOM1, &own).is_ok(), "and it stays in Exchange");
    }
}
both!(deleting_a_booking_declines_it_for_the_room_only);

/// A series created through the API (an RRULE): Exchange holds one series, whose occurrences
/// come back as events of their own. Changing one makes it an exception (never a new
/// standalone event), deleting one cancels it, a change of the whole series keeps the
/// exception, and deleting the series removes it everywhere.
async fn a_series_created_through_the_api_is_edited_occurrence_by_occurrence(p: Protocol) {
    let api = Api::start().await;
    let conn = api.connection_over(p).await;
    let ann = api.link(conn, ANN, "person").await;
    let start = at(2, 9);
    let day = chrono::Datelike::weekday(&start.date_naive()).to_string().to_uppercase()[..2].to_string();
    let rule = format!("FREQ=WEEKLY;BYDAY={day};COUNT=4");
    let series = json!({"id": "lab-series", "subject": "Lab", "start": start, "end": start + chrono::Duration::hours(1),
                        "recurrence": rule});
    let master = api.ok("POST", &format!("/calendars/{ann}/events"), Some(series.clone())).await;
    let canonical = format!("FREQ=WEEKLY;BYDAY={day};WKST=MO;COUNT=4");
    assert_eq!((master["series"].as_str(), master["recurrence"].as_str()), (Some("master"), Some(canonical.as_str())));
    let sync_path = format!("/calendars/{ann}/sync");
    let sync = || api.ok("POST", &sync_path, None);
    sync().await;
    sync().await;
    let range = format!("from={}&to={}", at(0, 0).to_rfc3339(), at(40, 0).to_rfc3339()).replace('+', "%2B");
    let list_path = format!("/calendars/{ann}/events?{range}");
    let list = || api.ok("GET", &list_path, None);
    let instances = |all: Value| -> Vec<Value> {
        let mut v: Vec<Value> = all
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["series"] != "master" && e["subject"].as_str().unwrap().starts_with("Lab"))
            .cloned()
            .collect();
        v.sort_by_key(|e| e["original_start"].as_str().unwrap().to_string());
        v
    };
    let pulled = instances(list().await);
    assert_eq!(pulled.len(), 4, "the occurrences came back: {pulled:?}");
    for (k, e) in pulled.iter().enumerate() {
        assert!(e["id"].as_str().unwrap().starts_with("lab-series@"), "{e}");
        assert_eq!((e["origin"].as_str(), e["read_only"].as_bool()), (Some("local"), Some(false)), "{e}");
        assert_eq!(e["start"], json!(start + chrono::Duration::weeks(k as i64)));
    }
    let in_outlook = || in_exchange(&api, ANN, "Lab").len() + in_exchange(&api, ANN, "Lab (guest talk)").len();
    assert_eq!(in_outlook(), 1, "one series in Exchange");

    // The second occurrence moves an hour later with a new subject; the third is cancelled.
    let second = &pulled[1];
    let moved = start + chrono::Duration::weeks(1) + chrono::Duration::hours(1);
    let edit = json!({"subject": "Lab (guest talk)", "start": moved, "end": moved + chrono::Duration::hours(1),
                      "expected_version": second["version"]});
    api.ok("PUT", &format!("/events/{}", second["id"].as_str().unwrap()), Some(edit)).await;
    api.ok("DELETE", &format!("/events/{}", pulled[2]["id"].as_str().unwrap()), None).await;
    sync().await;
    sync().await;
    assert_eq!(in_outlook(), 1, "still one series, no standalone event");
    let outlook = api.sim.outlook().list_instances(ANN, at(0, 0), at(40, 0)).unwrap();
    let labs: Vec<_> = outlook.iter().filter(|e| e.subject.as_deref().is_some_and(|s| s.starts_with("Lab"))).collect();
    assert_eq!(labs.len(), 3, "the third occurrence is cancelled: {labs:?}");
    assert_eq!(labs[1].subject.as_deref(), Some("Lab (guest talk)"));
    assert_eq!(labs[1].kind.as_deref(), Some("exception"));
    assert!(sim_start(labs[1]).starts_with(&moved.format("%Y-%m-%dT%H:%M").to_string()), "{:?}", labs[1].start);
    let now = instances(list().await);
    assert_eq!(now.len(), 3);
    assert_eq!((now[1]["id"].as_str(), now[1]["series"].as_str()), (second["id"].as_str(), Some("exception")));

    // A new subject for the series: the occurrences take it, the exception keeps its own.
    let master_now = api.ok("GET", "/events/lab-series", None).await;
    let mut renamed = series.clone();
    renamed.as_object_mut().unwrap().remove("id");
    renamed["subject"] = json!("Lab II");
    renamed["expected_version"] = master_now["version"].clone();
    api.ok("PUT", "/events/lab-series", Some(renamed)).await;
    sync().await;
    sync().await;
    let outlook = api.sim.outlook().list_instances(ANN, at(0, 0), at(40, 0)).unwrap();
    let subjects: Vec<&str> =
        outlook.iter().filter_map(|e| e.subject.as_deref()).filter(|s| s.starts_with("Lab")).collect();
    assert_eq!(subjects, ["Lab II", "Lab (guest talk)", "Lab II"], "the exception is kept");
    let idle = sync().await;
    assert_eq!((idle["pulled"].as_u64(), idle["pushed"].as_u64()), (Some(0), Some(0)), "then idle: {idle}");

    api.ok("DELETE", "/events/lab-series", None).await;
    sync().await;
    sync().await;
    assert!(api.sim.outlook().list_instances(ANN, at(0, 0), at(40, 0)).unwrap().iter().all(|e| !e
        .subject
        .as_deref()
        .unwrap_or_default()
        .starts_with("Lab")));
    assert!(instances(list().await).is_empty(), "and from the store");
}
both!(a_series_created_through_the_api_is_edited_occurrence_by_occurrence);

/// The admin console: its pages are served without a key; an administrator signs in and gets
/// an HttpOnly, SameSite=Strict session cookie that the API takes as the admin scope, but a
/// change needs the session's CSRF token too; wrong passwords are refused alike and, after a
/// few, rate limited; signing out ends the session; neither password nor token is logged.
#[tokio::test]
async fn the_console_signs_in_with_a_cookie_and_requires_the_csrf_token() {
    let api = Api::start().await;
    const PASSWORD: &str = "console-password-5b1e0c";
    calbridge_api::console::create_admin(api.store.as_ref(), "Ops", PASSWORD).await.unwrap();
    let short = calbridge_api::console::create_admin(api.store.as_ref(), "x", "short").await;
    assert!(short.unwrap_err().to_string().contains("at least"), "short passwords are refused");

    let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let url = |p: &str| format!("{}{p}", api.base);
    let root = http.get(url("/")).send().await.unwrap();
    assert_eq!(root.headers()["location"], "/ui/");
    let page = http.get(url("/ui/")).send().await.unwrap();
    assert_eq!(page.status(), 200);
    assert!(page.headers()["content-security-policy"].to_str().unwrap().contains("script-src 'self'"));
    assert!(page.text().await.unwrap().contains("/ui/app.js"));
    assert_eq!(http.get(url("/ui/session")).send().await.unwrap().status(), 204, "nobody signed in");

    let login = |user: &str, password: &str| {
        http.post(url("/ui/login")).json(&json!({"username": user, "password": password})).send()
    };
    let wrong = login("ops", "not the password").await.unwrap();
    let unknown = login("nobody", "not the password").await.unwrap();
    assert_eq!((wrong.status().as_u16(), unknown.status().as_u16()), (401, 401));
    assert_eq!(wrong.text().await.unwrap(), unknown.text().await.unwrap(), "the same answer for both");

    let ok = login("OPS", PASSWORD).await.unwrap();
    assert_eq!(ok.status(), 200);
    let set_cookie = ok.headers()["set-cookie"].to_str().unwrap().to_string();
    for attr in ["HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(set_cookie.contains(attr), "{set_cookie}");
    }
    let cookie = set_cookie.split(';').next().unwrap().to_string();
    let token = cookie.split_once('=').unwrap().1.to_string();
    let session: Value = ok.json().await.unwrap();
    assert_eq!(session["username"], "ops");
    let csrf = session["csrf_token"].as_str().unwrap().to_string();

    // Reads with the cookie alone; changes only with the CSRF token as well.
    let list = http.get(url("/connections")).header("cookie", &cookie).send().await.unwrap();
    assert_eq!(list.status(), 200);
    let site = json!({"name": "North", "connection_id": 999});
    let forged = http.post(url("/sites")).header("cookie", &cookie).json(&site).send().await.unwrap();
    assert_eq!(forged.status(), 403);
    assert!(forged.text().await.unwrap().contains("X-CSRF-Token"));
    let bad_token =
        http.post(url("/sites")).header("cookie", &cookie).header("x-csrf-token", "0000").json(&site).send().await;
    assert_eq!(bad_token.unwrap().status(), 403);
    let with_token =
        http.post(url("/sites")).header("cookie", &cookie).header("x-csrf-token", &csrf).json(&site).send().await;
    assert_eq!(with_token.unwrap().status(), 404, "past authentication: connection 999 does not exist");
    let creds = api.sim.credentials();
    let conn = http
        .post(url("/connections"))
        .header("cookie", &cookie)
        .header("x-csrf-token", &csrf)
        .json(&api.connection_body("console", &creds.client_id, &creds.client_secret))
        .send()
        .await
        .unwrap();
    assert_eq!(conn.status(), 201, "the console has the admin scope");

    // Sign out: the cookie no longer works, for reads either.
    let out = http.post(url("/ui/logout")).header("cookie", &cookie).header("x-csrf-token", &csrf).send().await;
    assert_eq!(out.unwrap().status(), 204);
    assert_eq!(http.get(url("/connections")).header("cookie", &cookie).send().await.unwrap().status(), 401);
    assert_eq!(http.get(url("/ui/session")).header("cookie", &cookie).send().await.unwrap().status(), 204);

    // Failures lock the name for a while, even for the right password.
    for _ in 0..calbridge_api::console::MAX_FAILURES {
        assert_eq!(login("ops", "guess").await.unwrap().status(), 401);
    }
    let locked = login("ops", PASSWORD).await.unwrap();
    assert_eq!(locked.status(), 429);
    assert!(locked.headers().contains_key("retry-after"));

    let logged = String::from_utf8_lossy(&logs().lock().unwrap()).to_string();
    assert!(!logged.contains(PASSWORD) && !logged.contains(&token) && !logged.contains(&csrf), "nothing secret logged");
}

/// Waits (up to 15 s) until `check` holds, polling.
async fn eventually<F, Fut>(what: &str, check: F)
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    for _ in 0..150 {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("timed out waiting until {what}");
}

fn metric(text: &str, line_start: &str) -> f64 {
    text.lines()
        .find(|l| l.starts_with(line_start))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

/// How many events of a calendar's day two (in the store) have this subject.
async fn events_named(api: &Api, calendar: i64, subject: &str) -> usize {
    let events = api.ok("GET", &format!("/calendars/{calendar}/events?{}", day(2)), None).await;
    events.as_array().unwrap().iter().filter(|e| e["subject"] == subject).count()
}

/// Change notifications over Graph: with a public URL, calbridge subscribes each linked
/// calendar (the simulator validates the URL as Graph does) and a change made in Exchange
/// reaches the store in seconds, without any scheduled sync (none runs here, and the
/// reconcile is a day away). Duplicated and reversed deliveries are harmless; a notification
/// with a wrong clientState is dropped; a removed subscription is made again.
/// With change notifications on, a calendar syncs when Exchange notifies it: a change the host
/// application makes must not wait for the reconcile (a day here) to reach Exchange.
async fn a_host_change_to_a_notified_calendar_reaches_exchange_without_waiting_for_the_reconcile(p: Protocol) {
    let api = Api::start_with(ApiConfig {
        public_url: (p == Protocol::Graph).then(String::new),
        ews_notifications: p == Protocol::Ews,
        subscription_check: Duration::from_millis(200),
        reconcile_interval: Duration::from_secs(86_400),
        ..ApiConfig::default()
    })
    .await;
    let conn = api.connection_over(p).await;
    let ann = api.link(conn, ANN, "person").await;
    eventually("Ann's calendar is notified", || async {
        match p {
            Protocol::Graph => api.sim.subscriptions().iter().any(|(_, mailbox, _)| mailbox == ANN),
            Protocol::Ews => api.sim.ews_subscriptions().iter().any(|s| s.mailbox == ANN),
        }
    })
    .await;
    let in_exchange = |subject: &'static str| {
        let sim = api.sim.clone();
        async move {
            sim.outlook().list_events(ANN).unwrap().iter().filter(|e| e.subject.as_deref() == Some(subject)).count()
        }
    };
    let body = json!({"subject": "Made here", "start": at(2, 9), "end": at(2, 10)});
    let created = api.ok("POST", &format!("/calendars/{ann}/events"), Some(body)).await;
    let id = created["id"].as_str().unwrap().to_string();
    eventually("the new event is in Exchange", || async { in_exchange("Made here").await == 1 }).await;
    let body = json!({"subject": "Changed here", "start": at(2, 11), "end": at(2, 12)});
    api.ok("PUT", &format!("/events/{id}"), Some(body)).await;
    eventually("the change is in Exchange", || async {
        in_exchange("Changed here").await == 1 && in_exchange("Made here").await == 0
    })
    .await;
    let (status, _, _) = api.call(Some(&api.admin), "DELETE", &format!("/events/{id}"), None).await;
    assert_eq!(status, 204);
    eventually("the deletion is in Exchange", || async { in_exchange("Changed here").await == 0 }).await;
}

both!(a_host_change_to_a_notified_calendar_reaches_exchange_without_waiting_for_the_reconcile);

#[tokio::test]
async fn notifications_bring_changes_without_waiting_for_the_reconcile() {
    let api = Api::start_with(ApiConfig {
        public_url: Some(String::new()),
        subscription_check: Duration::from_millis(200),
        reconcile_interval: Duration::from_secs(86_400),
        ..ApiConfig::default()
    })
    .await;
    let conn = api.connection().await;
    let ann = api.link(conn, ANN, "person").await;
    let subscribed = || async { api.sim.subscriptions().iter().any(|(_, mailbox, _)| mailbox == ANN) };
    eventually("Ann's calendar is subscribed", subscribed).await;
    let (sub_id, _, url) = api.sim.subscriptions().into_iter().find(|(_, m, _)| m == ANN).unwrap();
    assert_eq!(url, format!("{}/notifications/graph", api.base));

    let listed = |subject: &'static str| events_named(&api, ann, subject);
    api.sim.outlook().create_event(ANN, NewEvent::new("Notified", at(2, 9), at(2, 10))).unwrap();
    eventually("the new event is in the store", || async { listed("Notified").await == 1 }).await;

    // Each batch delivered twice, the second time reversed: still one copy each.
    api.sim.faults().duplicate_notifications(10);
    api.sim.outlook().create_event(ANN, NewEvent::new("Twice", at(2, 11), at(2, 12))).unwrap();
    api.sim.outlook().create_event(ANN, NewEvent::new("Thrice", at(2, 13), at(2, 14))).unwrap();
    eventually("both arrive", || async { listed("Twice").await == 1 && listed("Thrice").await == 1 }).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!((listed("Twice").await, listed("Thrice").await, listed("Notified").await), (1, 1, 1), "no duplicates");

    // Graph's validation handshake, and a forgery.
    let echo = api
        .http
        .post(format!("{}/notifications/graph?validationToken=Validation%3A%20abc", api.base))
        .send()
        .await
        .unwrap();
    assert_eq!(echo.status(), 200);
    assert!(echo.headers()["content-type"].to_str().unwrap().starts_with("text/plain"));
    assert_eq!(echo.text().await.unwrap(), "Validation: abc");
    let forged = json!({"value": [{"subscriptionId": sub_id, "clientState": "guessed", "changeType": "updated"}]});
    let r = api.http.post(format!("{}/notifications/graph", api.base)).json(&forged).send().await.unwrap();
    assert_eq!(r.status(), 202, "answered like any other, so a forger learns nothing");
    let (_, _, raw) = api.call(Some(&api.admin), "GET", "/metrics", None).await;
    assert_eq!(metric(&raw, "calbridge_notifications_total{result=\"rejected\"}"), 1.0, "{raw}");
    assert!(metric(&raw, "calbridge_notifications_total{result=\"accepted\"}") >= 3.0, "{raw}");

    // Exchange drops the subscription: calbridge makes a new one, and changes keep coming.
    assert!(api.sim.lifecycle_event(&sub_id, "subscriptionRemoved"));
    eventually("a new subscription", || async {
        api.sim.subscriptions().iter().any(|(id, m, _)| m == ANN && *id != sub_id)
    })
    .await;
    api.sim.outlook().create_event(ANN, NewEvent::new("After", at(2, 15), at(2, 16))).unwrap();
    eventually("the change after resubscribing arrives", || async { listed("After").await == 1 }).await;
}

/// Change notifications over EWS, which calbridge reads itself (no public URL): a streaming
/// subscription on the linked calendar, and a change made in Outlook reaches the store in
/// seconds without any scheduled sync (none runs here, and the reconcile is a day away). A
/// subscription Exchange drops is made again; when the server refuses streaming, pull
/// subscriptions read with GetEvents take over; when it refuses subscriptions altogether, the
/// calendar is left to the scheduled sync (polling). The mode shows in the metrics and logs.
#[tokio::test]
async fn ews_notifications_stream_then_pull_then_poll() {
    let api = Api::start_with(ApiConfig {
        ews_notifications: true,
        ews_pull_interval: Duration::from_millis(200),
        subscription_check: Duration::from_millis(200),
        reconcile_interval: Duration::from_secs(86_400),
        ..ApiConfig::default()
    })
    .await;
    let conn = api.connection_over(Protocol::Ews).await;
    let ann = api.link(conn, ANN, "person").await;
    let subscribed = |streaming: bool| {
        let sim = api.sim.clone();
        move || {
            let sim = sim.clone();
            async move {
                sim.ews_subscriptions().iter().filter(|s| s.mailbox == ANN && s.streaming == streaming).count() == 1
            }
        }
    };
    eventually("Ann's calendar is streamed", subscribed(true)).await;
    let watched = |mode: &'static str| {
        let api = &api;
        async move {
            let (_, _, raw) = api.call(Some(&api.admin), "GET", "/metrics", None).await;
            metric(&raw, &format!("calbridge_ews_watched_calendars{{mode=\"{mode}\"}}")) == 1.0
        }
    };
    eventually("the metrics show it streamed", || watched("streaming")).await;
    let listed = |subject: &'static str| events_named(&api, ann, subject);
    api.sim.outlook().create_event(ANN, NewEvent::new("Streamed", at(2, 9), at(2, 10))).unwrap();
    eventually("the new event is in the store", || async { listed("Streamed").await == 1 }).await;

    // Exchange drops the subscription (a mailbox move): calbridge makes a new one.
    let first = api.sim.ews_subscriptions()[0].id.clone();
    assert_eq!(api.sim.ews_drop_subscriptions(ANN), 1);
    eventually("a new streaming subscription", || async {
        api.sim.ews_subscriptions().iter().any(|s| s.mailbox == ANN && s.streaming && s.id != first)
    })
    .await;
    api.sim.outlook().create_event(ANN, NewEvent::new("Resubscribed", at(2, 11), at(2, 12))).unwrap();
    eventually("the change after resubscribing arrives", || async { listed("Resubscribed").await == 1 }).await;

    // The server refuses streaming (as Exchange 2007 does): pull subscriptions take over.
    api.sim.ews_refuse_streaming(true);
    api.sim.ews_drop_subscriptions(ANN);
    eventually("Ann's calendar is pulled", subscribed(false)).await;
    eventually("the metrics show it pulled", || watched("pull")).await;
    api.sim.outlook().create_event(ANN, NewEvent::new("Pulled", at(2, 13), at(2, 14))).unwrap();
    eventually("the change arrives by GetEvents", || async { listed("Pulled").await == 1 }).await;

    // No subscriptions at all: the calendar is left to the scheduled sync.
    api.sim.ews_refuse_subscriptions(true);
    api.sim.ews_drop_subscriptions(ANN);
    eventually("the metrics show it polled", || watched("polling")).await;
    assert!(api.sim.ews_subscriptions().is_empty());
    let logged = String::from_utf8_lossy(&logs().lock().unwrap()).to_string();
    for mode in ["streaming (1 mailboxes)", "pull (1 mailboxes)", "polling (1 mailboxes)"] {
        assert!(logged.contains(&format!("EWS change notifications: {mode}")), "{mode} is logged");
    }
    for subject in ["Streamed", "Resubscribed", "Pulled"] {
        assert_eq!(listed(subject).await, 1, "{subject} once");
    }
}
