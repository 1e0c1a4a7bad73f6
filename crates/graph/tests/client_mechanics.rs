//! The client's mechanics against a real HTTP server on 127.0.0.1:0 that returns canned
//! answers: token errors, token caching, throttling, retries, cursors, conflicts, broken
//! bodies and foreign links. (End-to-end behaviour against the simulator is tested in the
//! workspace's tests/.)

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::Router;
use chrono::{TimeZone, Utc};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use calbridge_core::model::{EventData, EventId};
use calbridge_core::remote::{Remote, RemoteError};
use calbridge_core::sync::{Cursor, Provenance, PushChange, RemoteChange, Window};
use calbridge_core::{GraphSettings, Secret};
use calbridge_graph::auth::ManualClock;
use calbridge_graph::{GraphClient, GraphError, GraphOptions, GraphRemote};

const SECRET: &str = "S3cr3t~Value.of-the_app";
const TENANT: &str = "contoso.onmicrosoft.com";
const MAILBOX: &str = "adele@contoso.com";

/// One request the server saw.
#[derive(Clone, Debug)]
struct Hit {
    method: String,
    path: String,
    query: Option<String>,
    headers: HeaderMap,
    body: Vec<u8>,
    at: Instant,
}

impl Hit {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
    fn headers_all(&self, name: &str) -> Vec<String> {
        self.headers.get_all(name).iter().filter_map(|v| v.to_str().ok()).map(str::to_string).collect()
    }
    fn is_token(&self) -> bool {
        self.path.ends_with("/oauth2/v2.0/token")
    }
}

/// What the server answers: a response and how long to take.
type Responder = dyn Fn(&Hit, &[Hit]) -> (Response, Duration) + Send + Sync;

struct Server {
    base: String,
    log: Arc<Mutex<Vec<Hit>>>,
    max_in_flight: Arc<AtomicUsize>,
}

impl Server {
    fn hits(&self) -> Vec<Hit> {
        self.log.lock().unwrap().clone()
    }
    fn graph_hits(&self) -> Vec<Hit> {
        self.hits().into_iter().filter(|h| !h.is_token()).collect()
    }
    fn token_hits(&self) -> usize {
        self.hits().iter().filter(|h| h.is_token()).count()
    }
}

async fn serve(responder: impl Fn(&Hit, &[Hit]) -> (Response, Duration) + Send + Sync + 'static) -> Server {
    let responder: Arc<Responder> = Arc::new(responder);
    let log: Arc<Mutex<Vec<Hit>>> = Arc::default();
    let in_flight = Arc::new(AtomicUsize::new(0));
    let max_in_flight = Arc::new(AtomicUsize::new(0));
    let (l, f, m) = (log.clone(), in_flight.clone(), max_in_flight.clone());
    let app = Router::new().fallback(move |req: Request| {
        let (responder, log, in_flight, max_in_flight) = (responder.clone(), l.clone(), f.clone(), m.clone());
        async move {
            let (parts, body) = req.into_parts();
            let body = axum::body::to_bytes(body, usize::MAX).await.unwrap().to_vec();
            let hit = Hit {
                method: parts.method.to_string(),
                path: parts.uri.path().to_string(),
                query: parts.uri.query().map(str::to_string),
                headers: parts.headers,
                body,
                at: Instant::now(),
            };
            let earlier = {
                let mut log = log.lock().unwrap();
                let earlier = log.clone();
                log.push(hit.clone());
                earlier
            };
            let (response, delay) = responder(&hit, &earlier);
            if !hit.is_token() {
                let now = in_flight.fetch_add(1, Ordering::SeqCst) + 1;
                max_in_flight.fetch_max(now, Ordering::SeqCst);
            }
            tokio::time::sleep(delay).await;
            if !hit.is_token() {
                in_flight.fetch_sub(1, Ordering::SeqCst);
            }
            response
        }
    });
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr: SocketAddr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    Server { base: format!("http://{addr}"), log, max_in_flight }
}

fn json_response(status: u16, body: Value) -> Response {
    Response::builder()
        .status(StatusCode::from_u16(status).unwrap())
        .header("content-type", "application/json")
        .body(Body::from(body.to_string()))
        .unwrap()
}

fn graph_error(status: u16, code: &str, message: &str) -> Response {
    json_response(status, json!({"error": {"code": code, "message": message}}))
}

fn token_ok(n: usize, expires_in: u64) -> Response {
    json_response(
        200,
        json!({"token_type": "Bearer", "expires_in": expires_in, "ext_expires_in": expires_in, "access_token": format!("tok-{n}")}),
    )
}

/// The token endpoint hands out `tok-1`, `tok-2`, ... valid for an hour.
fn token_or(hit: &Hit, earlier: &[Hit]) -> Option<(Response, Duration)> {
    hit.is_token().then(|| (token_ok(earlier.iter().filter(|h| h.is_token()).count() + 1, 3600), Duration::ZERO))
}

fn settings(authority: &str, graph: &str) -> GraphSettings {
    GraphSettings {
        tenant_id: TENANT.into(),
        client_id: "11111111-2222-3333-4444-555555555555".into(),
        authority_url: authority.into(),
        graph_url: graph.into(),
    }
}

fn client(server: &Server) -> GraphClient {
    client_with(server, GraphOptions::default())
}

fn client_with(server: &Server, options: GraphOptions) -> GraphClient {
    GraphClient::new(&settings(&server.base, &server.base), Secret::new(SECRET), options).unwrap()
}

fn user_json() -> Value {
    json!({"id": "u1", "displayName": "Adele Vance", "mail": MAILBOX, "userPrincipalName": MAILBOX})
}

fn event_json(id: &str, etag: &str) -> Value {
    json!({
        "@odata.etag": etag,
        "id": id,
        "subject": "Class",
        "body": {"contentType": "text", "content": "Bring a laptop"},
        "start": {"dateTime": "2026-11-23T09:00:00.0000000", "timeZone": "UTC"},
        "end": {"dateTime": "2026-11-23T10:00:00.0000000", "timeZone": "UTC"},
        "originalStartTimeZone": "UTC",
        "showAs": "busy",
        "type": "singleInstance",
        "transactionId": "calbridge:inst-1:ev-1"
    })
}

fn window() -> Window {
    Window {
        start: Utc.with_ymd_and_hms(2026, 11, 1, 0, 0, 0).unwrap(),
        end: Utc.with_ymd_and_hms(2026, 12, 1, 0, 0, 0).unwrap(),
    }
}

fn sample_data() -> EventData {
    let s = Utc.with_ymd_and_hms(2026, 11, 23, 9, 0, 0).unwrap();
    let mut d = EventData::new("Class", s, s + chrono::Duration::hours(1));
    d.body = "Bring a laptop".into();
    d
}

#[tokio::test]
async fn token_errors_name_the_fix_and_never_show_the_secret() {
    let cases = [
        (401, "invalid_client", 7000215u64, "Invalid client secret provided.", "Value (not its Secret ID)"),
        (
            400,
            "unauthorized_client",
            700016,
            "Application with identifier 'x' was not found in the directory 'contoso'.",
            "client id was not found in the tenant",
        ),
        (400, "invalid_request", 90002, "Tenant 'contoso.onmicrosoft.com' not found.", "tenant id or domain is wrong"),
        (
            400,
            "invalid_scope",
            1002012,
            "The provided value for scope https://graph.microsoft.com is not valid.",
            "must end in /.default",
        ),
    ];
    for (status, error, code, text, fix) in cases {
        let server = serve(move |hit, _| {
            assert!(hit.is_token(), "no Graph request may be sent without a token");
            // A server that echoes the secret back must not get it into our messages.
            let description = format!("AADSTS{code}: {text} (received '{SECRET}')\r\nTrace ID: 1\r\nCorrelation ID: 2");
            let body = json!({"error": error, "error_description": description, "error_codes": [code]});
            (json_response(status, body), Duration::ZERO)
        })
        .await;
        let remote = GraphRemote::new(client(&server));
        let err = remote.client().user(MAILBOX).await.unwrap_err();
        assert!(matches!(&err, GraphError::Token { aadsts: Some(c), .. } if *c == code), "{err:?}");
        let shown = format!("{err} {err:?}");
        assert!(shown.contains(&format!("AADSTS{code}")), "{shown}");
        assert!(shown.contains(fix), "{shown}");
        assert!(!shown.contains(SECRET), "the secret leaked: {shown}");
        match remote.mailbox(MAILBOX).await.unwrap_err() {
            RemoteError::Auth { message, hint } => {
                assert!(hint.contains(fix), "{hint}");
                assert!(message.contains(&format!("AADSTS{code}")), "{message}");
                assert!(!message.contains(SECRET) && !hint.contains(SECRET));
            }
            other => panic!("{other:?}"),
        }
        // The token request itself was right.
        let hit = &server.hits()[0];
        assert_eq!(hit.method, "POST");
        assert_eq!(hit.path, format!("/{TENANT}/oauth2/v2.0/token"));
        let form: Vec<(String, String)> = url::form_urlencoded::parse(&hit.body).into_owned().collect();
        assert!(form.contains(&("grant_type".into(), "client_credentials".into())));
        assert!(form.contains(&("client_secret".into(), SECRET.into())));
        assert!(form.contains(&("scope".into(), "https://graph.microsoft.com/.default".into())));
        assert_eq!(server.graph_hits().len(), 0);
    }
}

#[tokio::test]
async fn the_token_is_cached_shared_by_clones_and_renewed_early() {
    let server = serve(|hit, earlier| match token_or(hit, earlier) {
        Some(r) => r,
        None => (json_response(200, user_json()), Duration::ZERO),
    })
    .await;
    let t0 = Utc.with_ymd_and_hms(2026, 5, 1, 8, 0, 0).unwrap();
    let clock = Arc::new(ManualClock::new(t0));
    let c = GraphClient::with_clock(
        &settings(&server.base, &server.base),
        Secret::new(SECRET),
        GraphOptions::default(),
        clock.clone(),
    )
    .unwrap();
    let clone = c.clone();
    c.user(MAILBOX).await.unwrap();
    clone.user(MAILBOX).await.unwrap();
    assert_eq!(c.token_requests(), 1);
    // 54 minutes into a 60-minute token: still more than 5 minutes left.
    clock.advance(chrono::Duration::minutes(54));
    c.user(MAILBOX).await.unwrap();
    assert_eq!(server.token_hits(), 1);
    // 55 minutes: 5 minutes left, renewed before it is sent again.
    clock.advance(chrono::Duration::minutes(1));
    clone.user(MAILBOX).await.unwrap();
    assert_eq!(server.token_hits(), 2);
    let auth: Vec<String> =
        server.graph_hits().iter().map(|h| h.header("authorization").unwrap().to_string()).collect();
    assert_eq!(auth, vec!["Bearer tok-1", "Bearer tok-1", "Bearer tok-1", "Bearer tok-2"]);
    assert_eq!(c.requests(), 4);
    // Every request carries its own client-request-id.
    let ids: std::collections::HashSet<String> =
        server.graph_hits().iter().map(|h| h.header("client-request-id").unwrap().to_string()).collect();
    assert_eq!(ids.len(), 4);
}

#[tokio::test]
async fn concurrent_callers_wait_for_one_token_request() {
    let server = serve(|hit, earlier| {
        if hit.is_token() {
            let n = earlier.iter().filter(|h| h.is_token()).count() + 1;
            (token_ok(n, 3600), Duration::from_millis(300))
        } else {
            (json_response(200, user_json()), Duration::ZERO)
        }
    })
    .await;
    let c = client(&server);
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..8 {
        let c = c.clone();
        tasks.spawn(async move { c.user(&format!("user{i}@contoso.com")).await });
    }
    while let Some(r) = tasks.join_next().await {
        r.unwrap().unwrap();
    }
    assert_eq!(server.token_hits(), 1);
    assert_eq!(server.graph_hits().len(), 8);
}

#[tokio::test]
async fn a_rejected_token_is_renewed_once() {
    let server = serve(|hit, earlier| match token_or(hit, earlier) {
        Some(r) => r,
        None if hit.header("authorization") == Some("Bearer tok-1") => (
            graph_error(401, "InvalidAuthenticationToken", "Lifetime validation failed, the token is expired."),
            Duration::ZERO,
        ),
        None => (json_response(200, user_json()), Duration::ZERO),
    })
    .await;
    let c = client(&server);
    assert_eq!(c.user(MAILBOX).await.unwrap().display_name.as_deref(), Some("Adele Vance"));
    assert_eq!(server.token_hits(), 2);

    // A 401 that persists is reported as Auth after one renewal, not retried forever.
    let server = serve(|hit, earlier| match token_or(hit, earlier) {
        Some(r) => r,
        None => (graph_error(401, "InvalidAuthenticationToken", "Access token validation failure."), Duration::ZERO),
    })
    .await;
    let remote = GraphRemote::new(client(&server));
    assert!(matches!(remote.mailbox(MAILBOX).await, Err(RemoteError::Auth { .. })));
    assert_eq!(server.graph_hits().len(), 2);
    assert_eq!(server.token_hits(), 2);
}

#[tokio::test]
async fn access_denied_is_auth_with_the_permission_to_grant() {
    let server = serve(|hit, earlier| match token_or(hit, earlier) {
        Some(r) => r,
        None => (
            graph_error(403, "ErrorAccessDenied", "Access is denied. Check credentials and try again."),
            Duration::ZERO,
        ),
    })
    .await;
    let remote = GraphRemote::new(client(&server));
    match remote.changes(MAILBOX, &window(), None).await.unwrap_err() {
        RemoteError::Auth { message, hint } => {
            assert!(message.contains("ErrorAccessDenied") && message.contains("Access is denied"), "{message}");
            assert!(hint.contains("Calendars.ReadWrite") && hint.contains("admin consent"), "{hint}");
            assert!(hint.contains("application access policy"), "{hint}");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(server.graph_hits().len(), 1, "a 403 is not retried");
}

#[tokio::test]
async fn throttling_waits_retry_after_then_retries() {
    let server = serve(|hit, earlier| match token_or(hit, earlier) {
        Some(r) => r,
        None if earlier.iter().filter(|h| !h.is_token()).count() == 0 => {
            let mut r = graph_error(429, "ApplicationThrottled", "Application is over its MailboxConcurrency limit.");
            r.headers_mut().insert("retry-after", "1".parse().unwrap());
            (r, Duration::ZERO)
        }
        None => (json_response(200, user_json()), Duration::ZERO),
    })
    .await;
    let c = client(&server);
    c.user(MAILBOX).await.unwrap();
    let hits = server.graph_hits();
    assert_eq!(hits.len(), 2);
    let waited = hits[1].at - hits[0].at;
    assert!(waited >= Duration::from_secs(1), "retried after {waited:?}, before Retry-After");
    assert_eq!(c.requests(), 2);
    assert_eq!(c.throttled_wait(), Duration::from_secs(1), "the wait is counted for the sync status");
}

#[tokio::test]
async fn throttling_surfaces_after_the_attempts_or_the_wait_budget() {
    let server = serve(|hit, earlier| match token_or(hit, earlier) {
        Some(r) => r,
        None => {
            let mut r = graph_error(503, "ServiceUnavailable", "Service Unavailable");
            r.headers_mut().insert("retry-after", "1".parse().unwrap());
            (r, Duration::ZERO)
        }
    })
    .await;
    let remote = GraphRemote::new(client_with(&server, GraphOptions { max_attempts: 2, ..GraphOptions::default() }));
    let err = remote.fetch(MAILBOX, &["AAMk1".to_string()]).await.unwrap_err();
    assert_eq!(err, RemoteError::Throttled { retry_after: Some(Duration::from_secs(1)) });
    let hits = server.graph_hits();
    assert_eq!(hits.len(), 2);
    assert!(hits[1].at - hits[0].at >= Duration::from_secs(1));

    // Retry-After longer than the wait budget: surfaced at once, for the engine to schedule.
    let server = serve(|hit, earlier| match token_or(hit, earlier) {
        Some(r) => r,
        None => {
            let mut r = graph_error(429, "TooManyRequests", "Too many requests");
            r.headers_mut().insert("retry-after", "300".parse().unwrap());
            (r, Duration::ZERO)
        }
    })
    .await;
    let remote = GraphRemote::new(client(&server));
    let err = remote.mailbox(MAILBOX).await.unwrap_err();
    assert_eq!(err, RemoteError::Throttled { retry_after: Some(Duration::from_secs(300)) });
    assert_eq!(server.graph_hits().len(), 1);
}

#[tokio::test]
async fn at_most_four_requests_per_mailbox_and_max_in_flight_over_all_are_in_flight() {
    let server = serve(|hit, earlier| match token_or(hit, earlier) {
        Some(r) => r,
        None => (json_response(200, event_json("AAMk1", "W/\"1\"")), Duration::from_millis(150)),
    })
    .await;
    let remote = GraphRemote::new(client(&server));
    let ids: Vec<String> = (0..10).map(|i| format!("AAMk{i}")).collect();
    let items = remote.fetch(MAILBOX, &ids).await.unwrap();
    assert_eq!(items.len(), 10);
    assert_eq!(server.max_in_flight.load(Ordering::SeqCst), 4);

    // Two mailboxes have a budget each, within the client's own limit (the connection's
    // max_threads): 6 of the 4 + 4 the mailboxes would allow.
    let server = serve(|hit, earlier| match token_or(hit, earlier) {
        Some(r) => r,
        None => (json_response(200, event_json("AAMk1", "W/\"1\"")), Duration::from_millis(300)),
    })
    .await;
    let remote = GraphRemote::new(client_with(&server, GraphOptions { max_in_flight: 6, ..GraphOptions::default() }));
    let (a, b) = tokio::join!(remote.fetch("a@contoso.com", &ids[..6]), remote.fetch("b@contoso.com", &ids[..6]));
    assert_eq!((a.unwrap().len(), b.unwrap().len()), (6, 6));
    assert_eq!(server.max_in_flight.load(Ordering::SeqCst), 6);

    // The client's limit holds over every mailbox: 2 at once, however many mailboxes.
    let server = serve(|hit, earlier| match token_or(hit, earlier) {
        Some(r) => r,
        None => (json_response(200, event_json("AAMk1", "W/\"1\"")), Duration::from_millis(100)),
    })
    .await;
    let remote = GraphRemote::new(client_with(&server, GraphOptions { max_in_flight: 2, ..GraphOptions::default() }));
    let (a, b, c) = tokio::join!(
        remote.fetch("a@contoso.com", &ids[..3]),
        remote.fetch("b@contoso.com", &ids[..3]),
        remote.fetch("c@contoso.com", &ids[..3])
    );
    assert_eq!((a.unwrap().len(), b.unwrap().len(), c.unwrap().len()), (3, 3, 3));
    assert_eq!(server.max_in_flight.load(Ordering::SeqCst), 2);
    let zero = GraphClient::new(
        &settings(&server.base, &server.base),
        Secret::new(SECRET),
        GraphOptions { max_in_flight: 0, ..GraphOptions::default() },
    )
    .unwrap_err();
    assert!(zero.to_string().contains("max_in_flight (max_threads)"), "{zero}");
}

#[tokio::test]
async fn a_delta_round_then_an_expired_cursor() {
    let server = serve(move |hit, earlier| {
        if let Some(r) = token_or(hit, earlier) {
            return r;
        }
        let q = hit.query.clone().unwrap_or_default();
        let base = format!("http://{}", hit.header("host").unwrap());
        let body = if q.contains("startDateTime=") {
            json!({
                "@odata.nextLink": format!("{base}/v1.0/users/{MAILBOX}/calendarView/delta?$skiptoken=page2"),
                "value": [event_json("AAMk1", "W/\"1\"")]
            })
        } else if q.contains("$skiptoken=page2") {
            json!({
                "@odata.deltaLink": format!("{base}/v1.0/users/{MAILBOX}/calendarView/delta?$deltatoken=round1"),
                "value": [{"@odata.type": "#microsoft.graph.event", "id": "AAMk0", "@removed": {"reason": "deleted"}}]
            })
        } else {
            return (graph_error(410, "SyncStateNotFound", "The sync state generation is not found."), Duration::ZERO);
        };
        (json_response(200, body), Duration::ZERO)
    })
    .await;
    let remote = GraphRemote::new(client_with(&server, GraphOptions { page_size: 25, ..GraphOptions::default() }));
    let p1 = remote.changes(MAILBOX, &window(), None).await.unwrap();
    assert!(!p1.done);
    assert!(p1.next.0.ends_with("$skiptoken=page2"));
    match &p1.changes[..] {
        [RemoteChange::Upsert(item)] => {
            assert_eq!(item.remote_id, "AAMk1");
            assert_eq!(item.version, "W/\"1\"");
            assert_eq!(
                item.provenance,
                Some(Provenance { installation: "inst-1".into(), local_id: EventId::new("ev-1") })
            );
        }
        other => panic!("{other:?}"),
    }
    let p2 = remote.changes(MAILBOX, &window(), Some(&p1.next)).await.unwrap();
    assert!(p2.done);
    assert_eq!(p2.changes, vec![RemoteChange::Removed { remote_id: "AAMk0".into() }]);
    let expired = remote.changes(MAILBOX, &window(), Some(&p2.next)).await;
    assert_eq!(expired, Err(RemoteError::CursorExpired));

    let hits = server.graph_hits();
    assert_eq!(hits[0].path, format!("/v1.0/users/{MAILBOX}/calendarView/delta"));
    assert_eq!(hits[0].query.as_deref(), Some("startDateTime=2026-11-01T00:00:00Z&endDateTime=2026-12-01T00:00:00Z"));
    assert_eq!(
        hits[0].headers_all("prefer"),
        vec!["odata.maxpagesize=25", "outlook.timezone=\"UTC\"", "outlook.body-content-type=\"text\""]
    );
    assert_eq!(hits[1].query.as_deref(), Some("$skiptoken=page2"));
    assert_eq!(hits[2].query.as_deref(), Some("$deltatoken=round1"));
    assert_eq!(hits.len(), 3, "a 410 is not retried");
}

#[tokio::test]
async fn delta_reports_events_it_cannot_read_as_skipped() {
    let server = serve(move |hit, earlier| {
        if let Some(r) = token_or(hit, earlier) {
            return r;
        }
        let base = format!("http://{}", hit.header("host").unwrap());
        let mut bad = event_json("AAMkBad", "W/\"2\"");
        bad["start"]["dateTime"] = json!("2026-13-45T99:00:00.0000000");
        let body = json!({
            "@odata.deltaLink": format!("{base}/v1.0/users/{MAILBOX}/calendarView/delta?$deltatoken=round1"),
            "value": [event_json("AAMk1", "W/\"1\""), bad, {"subject": "no id", "start": {"dateTime": "?"}}]
        });
        (json_response(200, body), Duration::ZERO)
    })
    .await;
    let remote = GraphRemote::new(client(&server));
    let page = remote.changes(MAILBOX, &window(), None).await.unwrap();
    assert!(page.done);
    assert!(matches!(&page.changes[..], [RemoteChange::Upsert(item)] if item.remote_id == "AAMk1"), "{page:?}");
    assert_eq!(page.skipped, vec!["AAMkBad".to_string()]);
}

#[tokio::test]
async fn state_tokens_stay_out_of_error_messages() {
    // A saved cursor on a port nobody listens on: the connection is refused.
    let tokens = serve(|hit, earlier| token_or(hit, earlier).unwrap()).await;
    let closed = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let graph = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let c = GraphClient::new(
        &settings(&tokens.base, &graph),
        Secret::new(SECRET),
        GraphOptions { max_attempts: 1, ..GraphOptions::default() },
    )
    .unwrap();
    let remote = GraphRemote::new(c.clone());
    let cursor = Cursor(format!("/v1.0/users/{MAILBOX}/calendarView/delta?$deltatoken=SECRETISH"));
    match remote.changes(MAILBOX, &window(), Some(&cursor)).await {
        Err(RemoteError::Transient(m)) => {
            assert!(m.contains("/calendarView/delta") && !m.contains("SECRETISH"), "{m}");
        }
        other => panic!("{other:?}"),
    }
    let link = format!("{graph}/v1.0/users/{MAILBOX}/calendarView/delta?$skiptoken=SECRETISH");
    let e = c.delta(MAILBOX, window().start, window().end, Some(&link)).await.unwrap_err();
    assert!(matches!(e, GraphError::Transport { .. }), "{e:?}");
    assert!(!e.to_string().contains("SECRETISH") && !format!("{e:?}").contains("SECRETISH"), "{e:?}");
}

#[tokio::test]
async fn absurd_retry_after_and_token_lifetimes_are_capped_not_panics() {
    // A short Retry-After, then one of u64::MAX seconds: the wait budget is exceeded (no
    // overflow), and the engine is told a capped wait.
    let server = serve(|hit, earlier| match token_or(hit, earlier) {
        Some(r) => r,
        None => {
            let first = earlier.iter().all(|h| h.is_token());
            let mut r = graph_error(429, "TooManyRequests", "Too many requests");
            let after = if first { "0.05" } else { "18446744073709551615" };
            r.headers_mut().insert("retry-after", after.parse().unwrap());
            (r, Duration::ZERO)
        }
    })
    .await;
    let err = GraphRemote::new(client(&server)).mailbox(MAILBOX).await.unwrap_err();
    assert_eq!(err, RemoteError::Throttled { retry_after: Some(calbridge_graph::client::MAX_RETRY_AFTER) });
    assert_eq!(server.graph_hits().len(), 2);

    // A token "valid" for u64::MAX seconds is kept for a day at most.
    let server = serve(|hit, earlier| match hit.is_token() {
        true => (token_ok(earlier.iter().filter(|h| h.is_token()).count() + 1, u64::MAX), Duration::ZERO),
        false => (json_response(200, user_json()), Duration::ZERO),
    })
    .await;
    let clock = Arc::new(ManualClock::new(Utc.with_ymd_and_hms(2026, 5, 1, 8, 0, 0).unwrap()));
    let c = GraphClient::with_clock(
        &settings(&server.base, &server.base),
        Secret::new(SECRET),
        GraphOptions::default(),
        clock.clone(),
    )
    .unwrap();
    c.user(MAILBOX).await.unwrap();
    clock.advance(chrono::Duration::hours(23));
    c.user(MAILBOX).await.unwrap();
    assert_eq!(server.token_hits(), 1);
    clock.advance(chrono::Duration::hours(1));
    c.user(MAILBOX).await.unwrap();
    assert_eq!(server.token_hits(), 2);
}

#[tokio::test]
async fn a_foreign_host_link_is_refused_and_gets_no_token() {
    let server = serve(|hit, earlier| match token_or(hit, earlier) {
        Some(r) => r,
        None => (
            json_response(
                200,
                json!({"@odata.nextLink": "http://graph.evil.example/v1.0/users/x/calendarView/delta?$skiptoken=steal", "value": []}),
            ),
            Duration::ZERO,
        ),
    })
    .await;
    let remote = GraphRemote::new(client(&server));
    match remote.changes(MAILBOX, &window(), None).await.unwrap_err() {
        RemoteError::Permanent(m) => {
            assert!(m.contains("graph.evil.example") && m.contains("never sent"), "{m}");
            assert!(!m.contains("steal"), "the state token is not in the message: {m}");
        }
        other => panic!("{other:?}"),
    }
    // A saved cursor on another host (or port) is not followed either.
    let before = remote.client().requests();
    let cursor = Cursor("http://127.0.0.1:1/v1.0/users/x/calendarView/delta?$deltatoken=x".into());
    assert!(matches!(remote.changes(MAILBOX, &window(), Some(&cursor)).await, Err(RemoteError::Permanent(_))));
    assert_eq!(remote.client().requests(), before);
    assert_eq!(server.graph_hits().len(), 1);
}

#[tokio::test]
async fn push_create_update_delete() {
    let server = serve(|hit, earlier| {
        if let Some(r) = token_or(hit, earlier) {
            return r;
        }
        let r = match (hit.method.as_str(), hit.path.as_str()) {
            ("POST", p) if p.ends_with("/calendar/events") => {
                let mut ev: Value = serde_json::from_slice(&hit.body).unwrap();
                ev["id"] = json!("AAMkNew");
                ev["@odata.etag"] = json!("W/\"v1\"");
                ev["originalStartTimeZone"] = json!("UTC");
                json_response(201, ev)
            }
            ("PATCH", p) if p.ends_with("/events/AAMkOld") => graph_error(
                412,
                "ErrorIrresolvableConflict",
                "The change key passed in the request does not match the current change key for the item.",
            ),
            ("PATCH", _) => json_response(200, event_json("AAMkNew", "W/\"v2\"")),
            ("DELETE", _) => graph_error(404, "ErrorItemNotFound", "The specified object was not found in the store."),
            _ => graph_error(400, "BadRequest", "unexpected"),
        };
        (r, Duration::ZERO)
    })
    .await;
    let remote = GraphRemote::new(client(&server));
    let provenance = Provenance { installation: "inst-1".into(), local_id: EventId::new("ev-1") };
    let created = remote
        .push(MAILBOX, &PushChange::Create { data: sample_data(), provenance: provenance.clone() })
        .await
        .unwrap()
        .unwrap();
    assert_eq!(created.remote_id, "AAMkNew");
    assert_eq!(created.version, "W/\"v1\"");
    assert_eq!(created.data, sample_data());
    let sent: Value = serde_json::from_slice(&server.graph_hits()[0].body).unwrap();
    assert_eq!(sent["transactionId"], "calbridge:inst-1:ev-1");
    assert_eq!(sent["singleValueExtendedProperties"][0]["value"], "calbridge:inst-1:ev-1");
    assert_eq!(sent["start"], json!({"dateTime": "2026-11-23T09:00:00", "timeZone": "UTC"}));

    let conflict = remote
        .push(
            MAILBOX,
            &PushChange::Update { remote_id: "AAMkOld".into(), if_match: "W/\"v0\"".into(), data: sample_data() },
        )
        .await;
    assert_eq!(conflict, Err(RemoteError::VersionConflict));
    let patch = &server.graph_hits()[1];
    assert_eq!(patch.method, "PATCH");
    assert_eq!(patch.header("if-match"), Some("W/\"v0\""));

    let updated = remote
        .push(
            MAILBOX,
            &PushChange::Update { remote_id: "AAMkNew".into(), if_match: "W/\"v1\"".into(), data: sample_data() },
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(updated.version, "W/\"v2\"");

    assert_eq!(remote.push(MAILBOX, &PushChange::Delete { remote_id: "AAMkGone".into() }).await, Ok(None));
    assert_eq!(server.graph_hits().len(), 4, "412 and 404 are answers, not retried");
}

#[tokio::test]
async fn an_update_without_a_version_is_never_sent() {
    let server = serve(|hit, earlier| match token_or(hit, earlier) {
        Some(r) => r,
        None => (json_response(200, event_json("AAMk1", "W/\"2\"")), Duration::ZERO),
    })
    .await;
    let remote = GraphRemote::new(client(&server));
    let change = PushChange::Update { remote_id: "AAMk1".into(), if_match: String::new(), data: sample_data() };
    match remote.push(MAILBOX, &change).await {
        Err(RemoteError::Permanent(m)) => assert!(m.contains("refusing to update without a version"), "{m}"),
        other => panic!("{other:?}"),
    }
    assert!(server.hits().is_empty(), "nothing is sent, not even a token request");
}

#[tokio::test]
async fn fetch_leaves_out_what_is_gone() {
    let server = serve(|hit, earlier| match token_or(hit, earlier) {
        Some(r) => r,
        None if hit.path.ends_with("/events/AAMkGone") => {
            (graph_error(404, "ErrorItemNotFound", "The specified object was not found in the store."), Duration::ZERO)
        }
        None => {
            let id = hit.path.rsplit('/').next().unwrap().to_string();
            (json_response(200, event_json(&id, "W/\"1\"")), Duration::ZERO)
        }
    })
    .await;
    let remote = GraphRemote::new(client(&server));
    let ids = vec!["AAMkA".to_string(), "AAMkGone".to_string(), "AAMkB".to_string()];
    let items = remote.fetch(MAILBOX, &ids).await.unwrap();
    assert_eq!(items.iter().map(|i| i.remote_id.as_str()).collect::<Vec<_>>(), vec!["AAMkA", "AAMkB"]);
    let hit = server.graph_hits().into_iter().find(|h| h.path.ends_with("/AAMkA")).unwrap();
    assert!(hit.query.as_deref().unwrap().starts_with("$expand=singleValueExtendedProperties($filter=id%20eq%20"));
}

/// A raw HTTP/1.1 server: for the n-th connection, reads one request and writes
/// `answers[n]` (or closes without answering when it is `None`).
async fn raw_server(answers: Vec<Option<String>>) -> (String, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let seen: Arc<Mutex<Vec<String>>> = Arc::default();
    let s = seen.clone();
    tokio::spawn(async move {
        for answer in answers {
            let Ok((mut sock, _)) = listener.accept().await else { return };
            let mut buf = Vec::new();
            let mut chunk = [0u8; 4096];
            loop {
                let n = sock.read(&mut chunk).await.unwrap_or(0);
                if n == 0 {
                    break;
                }
                buf.extend_from_slice(&chunk[..n]);
                let text = String::from_utf8_lossy(&buf).to_string();
                if let Some(end) = text.find("\r\n\r\n") {
                    let len = text[..end]
                        .lines()
                        .find_map(|l| {
                            l.to_ascii_lowercase()
                                .strip_prefix("content-length:")
                                .map(|v| v.trim().parse::<usize>().unwrap())
                        })
                        .unwrap_or(0);
                    if buf.len() >= end + 4 + len {
                        break;
                    }
                }
            }
            s.lock().unwrap().push(String::from_utf8_lossy(&buf).to_string());
            if let Some(a) = answer {
                let _ = sock.write_all(a.as_bytes()).await;
            }
            let _ = sock.shutdown().await;
        }
    });
    (base, seen)
}

#[tokio::test]
async fn a_body_that_breaks_off_is_transient() {
    let tokens = serve(|hit, earlier| token_or(hit, earlier).unwrap()).await;
    let broken = "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 1000\r\nconnection: close\r\n\r\n{\"id\":\"AAMk".to_string();
    let (graph, seen) = raw_server(vec![Some(broken)]).await;
    let c = GraphClient::new(&settings(&tokens.base, &graph), Secret::new(SECRET), GraphOptions::default()).unwrap();
    let remote = GraphRemote::new(c);
    match remote.fetch(MAILBOX, &["AAMk1".to_string()]).await {
        Err(RemoteError::Transient(m)) => {
            assert!(m.contains("broke off"), "{m}");
            assert!(!m.contains("tok-1") && !m.contains(SECRET), "{m}");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(seen.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn only_idempotent_requests_are_retried_without_an_answer() {
    let tokens = serve(|hit, earlier| token_or(hit, earlier).unwrap()).await;
    let created = json!({"id": "AAMkNew", "@odata.etag": "W/\"v1\"", "subject": "Class",
        "start": {"dateTime": "2026-11-23T09:00:00.0000000", "timeZone": "UTC"},
        "end": {"dateTime": "2026-11-23T10:00:00.0000000", "timeZone": "UTC"}})
    .to_string();
    let ok = format!(
        "HTTP/1.1 201 Created\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{created}",
        created.len()
    );
    // A create with a transactionId: the connection drops without an answer, one retry.
    let (graph, seen) = raw_server(vec![None, Some(ok)]).await;
    let c = GraphClient::new(&settings(&tokens.base, &graph), Secret::new(SECRET), GraphOptions::default()).unwrap();
    let remote = GraphRemote::new(c);
    let provenance = Provenance { installation: "inst-1".into(), local_id: EventId::new("ev-1") };
    let confirmed =
        remote.push(MAILBOX, &PushChange::Create { data: sample_data(), provenance }).await.unwrap().unwrap();
    assert_eq!(confirmed.remote_id, "AAMkNew");
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 2);
    assert!(seen.iter().all(|r| r.starts_with("POST ") && r.contains("calbridge:inst-1:ev-1")));

    // A PATCH is never sent twice.
    let (graph, seen) = raw_server(vec![None, None]).await;
    let c = GraphClient::new(&settings(&tokens.base, &graph), Secret::new(SECRET), GraphOptions::default()).unwrap();
    let remote = GraphRemote::new(c);
    let r = remote
        .push(
            MAILBOX,
            &PushChange::Update { remote_id: "AAMk1".into(), if_match: "W/\"1\"".into(), data: sample_data() },
        )
        .await;
    assert!(matches!(r, Err(RemoteError::Transient(_))), "{r:?}");
    assert_eq!(seen.lock().unwrap().len(), 1);
}
