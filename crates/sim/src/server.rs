//! The HTTP surface: the router, the middleware every Graph request passes (the random mode's
//! fault, injected faults, bearer-token check, app roles, per-mailbox concurrency limit,
//! latency, dropped responses),
//! and a serve loop on hyper that can also speak TLS and can abort a connection mid-request.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::middleware::{from_fn_with_state, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use axum::Router;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{oneshot, watch};
use tokio_rustls::rustls::ServerConfig;
use tower::ServiceExt;

use crate::faults::{FaultKind, RequestClass};
use crate::graph;
use crate::http::{AppContext, RequestIds, Scheme, REQUEST_IDS};
use crate::state::ApiError;
use crate::{SimTls, Simulator};

/// Marks a response whose connection must be aborted instead (fault injection).
#[derive(Clone, Copy, Debug)]
struct Abort;

#[derive(Debug)]
struct AbortError;

impl std::fmt::Display for AbortError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("response dropped after the change was applied (fault injection)")
    }
}
impl std::error::Error for AbortError {}

/// A body that fails at once: under a plain `axum::serve` the client sees a broken body.
struct FailingBody;

impl http_body::Body for FailingBody {
    type Data = Bytes;
    type Error = std::io::Error;
    fn poll_frame(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, std::io::Error>>> {
        Poll::Ready(Some(Err(std::io::Error::new(std::io::ErrorKind::ConnectionAborted, AbortError.to_string()))))
    }
}

pub(crate) fn abort_response() -> Response {
    let mut resp = Response::new(Body::new(FailingBody));
    resp.extensions_mut().insert(Abort);
    resp
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            if let Ok(v) = u8::from_str_radix(&s[i + 1..i + 3], 16) {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Route kind (for statistics and permissions) and the mailbox segment of a path.
pub(crate) fn classify(method: &Method, path: &str) -> (&'static str, Option<String>) {
    let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
    match segs.as_slice() {
        [_, "oauth2", "v2.0", "token"] => ("token", None),
        [_, "v2.0", ".well-known", "openid-configuration"] => ("openid_configuration", None),
        ["common", "discovery", "instance"] => ("instance_discovery", None),
        ["_sim", ..] => ("sim", None),
        ["EWS", "Exchange.asmx"] | ["ews", "exchange.asmx"] => ("ews", None),
        ["v1.0", "users"] => ("user_list", None),
        ["v1.0", "places", ..] => ("place_list", None),
        ["v1.0", "subscriptions", ..] => ("subscription", None),
        ["v1.0", "$batch"] => ("batch", None),
        ["v1.0", "users", u] => ("user_get", Some(percent_decode(u))),
        ["v1.0", "users", u, rest @ ..] => {
            let kind = match rest {
                ["calendars"] => "calendar_list",
                ["calendar"] | ["calendars", _] => "calendar_get",
                ["calendar", "getSchedule"] => "get_schedule",
                [.., "calendarView", "delta" | "delta()"] => "calendar_view_delta",
                [.., "calendarView"] => "calendar_view",
                [.., "events"] if method == Method::POST => "event_create",
                [.., "events"] => "event_list",
                [.., "events", _] if method == Method::GET => "event_get",
                [.., "events", _] if method == Method::PATCH => "event_update",
                [.., "events", _] if method == Method::DELETE => "event_delete",
                [.., "events", _, "decline"] if method == Method::POST => "event_decline",
                _ => "other",
            };
            (kind, Some(percent_decode(u)))
        }
        _ => ("other", None),
    }
}

const USER_ROLES: &[&str] =
    &["User.Read.All", "User.ReadBasic.All", "User.ReadWrite.All", "Directory.Read.All", "Directory.ReadWrite.All"];
const CALENDAR_READ: &[&str] =
    &["Calendars.Read", "Calendars.ReadWrite", "Calendars.ReadBasic", "Calendars.ReadBasic.All"];
const CALENDAR_WRITE: &[&str] = &["Calendars.ReadWrite"];
const PLACE_ROLES: &[&str] = &["Place.Read.All", "Place.ReadWrite.All"];

fn check_roles(kind: &str, app: &AppContext) -> Result<(), ApiError> {
    let has = |wanted: &[&str]| app.roles.iter().any(|r| wanted.iter().any(|w| w.eq_ignore_ascii_case(r)));
    match kind {
        "user_get" | "user_list" if !has(USER_ROLES) => {
            Err(ApiError::new(403, "Authorization_RequestDenied", "Insufficient privileges to complete the operation."))
        }
        "place_list" if !has(PLACE_ROLES) => {
            Err(ApiError::new(403, "ErrorAccessDenied", "Access is denied. Check credentials and try again."))
        }
        "event_create" | "event_update" | "event_delete" | "event_decline" if !has(CALENDAR_WRITE) => {
            Err(ApiError::new(403, "ErrorAccessDenied", "Access is denied. Check credentials and try again."))
        }
        "calendar_list"
        | "calendar_get"
        | "get_schedule"
        | "calendar_view"
        | "calendar_view_delta"
        | "event_list"
        | "event_get"
        | "subscription"
            if !has(CALENDAR_READ) =>
        {
            Err(ApiError::new(403, "ErrorAccessDenied", "Access is denied. Check credentials and try again."))
        }
        _ => Ok(()),
    }
}

fn throttled(retry_after: u64) -> Response {
    let mut resp =
        ApiError::new(429, "ApplicationThrottled", "Application is over its MailboxConcurrency limit.").into_response();
    resp.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(retry_after));
    resp
}

fn server_error(status: u16) -> Response {
    let (code, message) = match status {
        500 => ("generalException", "General exception while processing."),
        502 => ("BadGateway", "The server, while acting as a gateway, received an invalid response."),
        503 => ("ServiceNotAvailable", "The service is temporarily unavailable. Please retry later."),
        504 => ("GatewayTimeout", "The server, while acting as a gateway, did not get a response in time."),
        _ => ("UnknownError", "An unknown error occurred."),
    };
    ApiError::new(status, code, message).into_response()
}

/// Holds a mailbox concurrency slot; released on drop.
struct Slot {
    sim: Simulator,
    key: String,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut inflight = self.sim.inner.inflight.lock().unwrap();
        if let Some(n) = inflight.get_mut(&self.key) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                inflight.remove(&self.key);
            }
        }
    }
}

fn acquire(sim: &Simulator, key: String) -> Option<Slot> {
    let limit = sim.inner.scenario.mailbox_concurrency;
    let mut inflight = sim.inner.inflight.lock().unwrap();
    let n = inflight.entry(key.clone()).or_insert(0);
    if *n >= limit {
        return None;
    }
    *n += 1;
    Some(Slot { sim: sim.clone(), key })
}

/// A person edits the item a request is about to change, so the request meets a stale
/// version (the random mode's [`FaultKind::Conflict`]). Whether the edit happened.
pub(crate) fn concurrent_edit(sim: &Simulator, mailbox: &str, id: &str) -> bool {
    let patch = serde_json::json!({
        "body": {"contentType": "text", "content": "Changed in Outlook at the same moment (simulated conflict)."}
    });
    sim.outlook().update_event(mailbox, id, patch).is_ok()
}

/// The bearer token's claims, or Graph's `401 InvalidAuthenticationToken`.
pub(crate) fn authenticate(sim: &Simulator, headers: &axum::http::HeaderMap) -> Result<serde_json::Value, ApiError> {
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|h| h.to_str().ok())
        .map(|h| h.trim())
        .and_then(|h| {
            let (scheme, rest) = h.split_once(' ').unwrap_or((h, ""));
            scheme.eq_ignore_ascii_case("bearer").then(|| rest.trim().to_string())
        })
        .unwrap_or_default();
    let tenant = &sim.inner.scenario.tenant.id;
    crate::auth::verify(&sim.inner.signing_key, &bearer, tenant, chrono::Utc::now().timestamp())
        .map_err(|problem| ApiError::new(401, "InvalidAuthenticationToken", problem.message()))
}

async fn graph_layer(State(sim): State<Simulator>, mut req: Request, next: Next) -> Response {
    let (kind, user) = classify(req.method(), req.uri().path());
    let faults = &sim.inner.faults;
    let class = RequestClass {
        mutating: matches!(kind, "event_create" | "event_update" | "event_delete" | "event_decline"),
        edits_item: matches!(kind, "event_update" | "event_delete"),
        sync: kind == "calendar_view_delta",
    };
    let random = faults.draw(class);
    match random {
        Some(FaultKind::Throttle) => {
            sim.inner.stats.throttled();
            sim.inner.stats.fault(FaultKind::Throttle);
            return throttled(faults.random_retry_after());
        }
        Some(FaultKind::Unavailable) => {
            sim.inner.stats.failed();
            sim.inner.stats.fault(FaultKind::Unavailable);
            return server_error(503);
        }
        Some(FaultKind::Reset) => {
            sim.inner.stats.fault(FaultKind::Reset);
            return abort_response();
        }
        Some(FaultKind::ExpiredSyncState) => {
            faults.expire_delta_tokens();
            sim.inner.stats.fault(FaultKind::ExpiredSyncState);
        }
        Some(FaultKind::Conflict) => {
            let id = req.uri().path().trim_end_matches('/').rsplit('/').next().map(percent_decode);
            if let (Some(user), Some(id)) = (&user, id) {
                if concurrent_edit(&sim, user, &id) {
                    sim.inner.stats.fault(FaultKind::Conflict);
                }
            }
        }
        Some(FaultKind::LostResponse | FaultKind::DuplicateNotifications) | None => {}
    }
    if let Some(status) = faults.take_fail() {
        sim.inner.stats.failed();
        return server_error(status);
    }
    if let Some(secs) = faults.take_throttle() {
        sim.inner.stats.throttled();
        return throttled(secs);
    }
    let claims = match authenticate(&sim, req.headers()) {
        Ok(c) => c,
        Err(e) => return e.into_response(),
    };
    let client_id = claims["appid"].as_str().unwrap_or_default().to_string();
    let app = AppContext {
        app_id: client_id.clone(),
        roles: claims["roles"]
            .as_array()
            .map(|r| r.iter().filter_map(|x| x.as_str().map(String::from)).collect())
            .unwrap_or_default(),
    };
    if let Err(e) = check_roles(kind, &app) {
        return e.into_response();
    }
    let mailbox_key = user.as_ref().map(|u| {
        let state = sim.inner.state.lock().unwrap();
        state.mailbox(u).map(|m| m.key.clone()).unwrap_or_else(|| u.to_ascii_lowercase())
    });
    if let (Some(key), Some(scope)) = (
        &mailbox_key,
        sim.inner
            .scenario
            .apps
            .iter()
            .find(|a| a.client_id.eq_ignore_ascii_case(&client_id))
            .and_then(|a| a.mailbox_scope.as_ref()),
    ) {
        if !scope.iter().any(|m| m.eq_ignore_ascii_case(key)) {
            return ApiError::new(
                403,
                "ErrorAccessDenied",
                "Access to OData is disabled: this mailbox is outside the application access policy.",
            )
            .into_response();
        }
    }
    req.extensions_mut().insert(app);
    let _slot = match mailbox_key {
        Some(key) => match acquire(&sim, key) {
            Some(slot) => Some(slot),
            None => {
                sim.inner.stats.throttled();
                return throttled(sim.inner.scenario.throttle_retry_after_secs);
            }
        },
        None => None,
    };
    let in_flight = sim.inner.stats.enter();
    let latency = faults.latency();
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    let resp = next.run(req).await;
    drop(in_flight);
    if class.mutating && resp.status().is_success() {
        if random == Some(FaultKind::LostResponse) {
            sim.inner.stats.dropped();
            sim.inner.stats.fault(FaultKind::LostResponse);
            return abort_response();
        }
        if faults.take_drop() {
            sim.inner.stats.dropped();
            return abort_response();
        }
    }
    resp
}

async fn common_layer(State(sim): State<Simulator>, req: Request, next: Next) -> Response {
    let (kind, _) = classify(req.method(), req.uri().path());
    sim.inner.stats.request(kind);
    let request_id = uuid::Uuid::new_v4().to_string();
    let client_request_id = req
        .headers()
        .get("client-request-id")
        .and_then(|h| h.to_str().ok())
        .map(String::from)
        .unwrap_or_else(|| request_id.clone());
    let ids = RequestIds { request_id: request_id.clone(), client_request_id: client_request_id.clone() };
    let mut resp = REQUEST_IDS.scope(ids, next.run(req)).await;
    if resp.extensions().get::<Abort>().is_some() {
        return resp;
    }
    let headers = resp.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&request_id) {
        headers.insert("request-id", v);
    }
    if let Ok(v) = HeaderValue::from_str(&client_request_id) {
        headers.insert("client-request-id", v);
    }
    if kind != "token" && !headers.contains_key(header::CACHE_CONTROL) {
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    }
    resp
}

async fn fallback(req: Request) -> Response {
    let path = req.uri().path().to_string();
    if path.starts_with("/v1.0/") {
        let segment = path.trim_end_matches('/').rsplit('/').next().unwrap_or_default().to_string();
        return ApiError::new(400, "BadRequest", format!("Resource not found for the segment '{segment}'."))
            .into_response();
    }
    (StatusCode::NOT_FOUND, "Not found").into_response()
}

async fn me_not_supported() -> Response {
    ApiError::new(400, "BadRequest", "/me request is only valid with delegated authentication flow.").into_response()
}

pub(crate) fn router(sim: Simulator) -> Router {
    use graph::*;
    let mut graph_routes = Router::new()
        .route("/v1.0/users", get(user_get::list))
        .route("/v1.0/users/{user}", get(user_get::handler))
        .route("/v1.0/users/{user}/calendars", get(calendar_list::list))
        .route("/v1.0/users/{user}/calendar", get(calendar_list::default_calendar))
        .route("/v1.0/users/{user}/calendars/{cal}", get(calendar_list::one))
        .route("/v1.0/users/{user}/calendar/getSchedule", post(calendar_get_schedule::handler))
        .route("/v1.0/subscriptions", post(subscription::create))
        .route(
            "/v1.0/subscriptions/{id}",
            get(subscription::get).patch(subscription::update).delete(subscription::delete),
        )
        .route("/v1.0/places/microsoft.graph.room", get(place_list::rooms))
        .route("/v1.0/places/microsoft.graph.roomlist", get(place_list::room_lists))
        .route("/v1.0/places/{place}/microsoft.graph.roomlist/rooms", get(place_list::list_rooms));
    for prefix in ["/v1.0/users/{user}", "/v1.0/users/{user}/calendar", "/v1.0/users/{user}/calendars/{cal}"] {
        graph_routes = graph_routes
            .route(&format!("{prefix}/events"), get(event_list::handler).post(event_create::handler))
            .route(
                &format!("{prefix}/events/{{id}}"),
                get(event_get::handler).patch(event_update::handler).delete(event_delete::handler),
            )
            .route(&format!("{prefix}/events/{{id}}/decline"), post(event_decline::handler))
            .route(&format!("{prefix}/calendarView"), get(calendar_view::handler))
            .route(&format!("{prefix}/calendarView/delta"), get(calendar_view_delta::handler))
            .route(&format!("{prefix}/calendarView/delta()"), get(calendar_view_delta::handler));
    }
    let graph_routes = graph_routes
        .route("/v1.0/me", any(me_not_supported))
        .route("/v1.0/me/{*rest}", any(me_not_supported))
        .layer(from_fn_with_state(sim.clone(), graph_layer));
    // A batch's requests run through the same routes and middleware as requests sent alone.
    let inner = graph_routes.clone().with_state(sim.clone());
    let batch_sim = sim.clone();
    let mut app = Router::new()
        .route(
            "/v1.0/$batch",
            post(move |headers: axum::http::HeaderMap, body: Bytes| {
                graph::batch::handler(batch_sim.clone(), inner.clone(), headers, body)
            }),
        )
        .route("/{tenant}/oauth2/v2.0/token", post(token::handler))
        .route("/{tenant}/v2.0/.well-known/openid-configuration", get(openid::configuration))
        .route("/common/discovery/instance", get(openid::instance_discovery))
        .route("/EWS/Exchange.asmx", post(crate::ews::handler))
        .route("/ews/exchange.asmx", post(crate::ews::handler))
        .route("/{tenant}/discovery/v2.0/keys", get(openid::keys))
        .merge(graph_routes);
    if sim.inner.scenario.sim_control {
        app = app.merge(crate::control::router());
    }
    app.fallback(fallback).layer(from_fn_with_state(sim.clone(), common_layer)).with_state(sim)
}

async fn serve_io<I>(io: I, router: Router, scheme: &'static str, mut stop: watch::Receiver<bool>)
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    // One per TCP connection: NTLM signs a connection in, not a request.
    let connection = crate::ews::Connection::default();
    let service = hyper::service::service_fn(move |mut req: hyper::Request<hyper::body::Incoming>| {
        let router = router.clone();
        let connection = connection.clone();
        async move {
            req.extensions_mut().insert(Scheme(scheme));
            req.extensions_mut().insert(connection);
            let resp = router.oneshot(req.map(Body::new)).await.unwrap_or_else(|e| match e {});
            if resp.extensions().get::<Abort>().is_some() {
                return Err(AbortError);
            }
            Ok(resp)
        }
    });
    let conn = hyper::server::conn::http1::Builder::new().keep_alive(true).serve_connection(TokioIo::new(io), service);
    let mut conn = std::pin::pin!(conn);
    tokio::select! {
        _ = conn.as_mut() => {}
        _ = stop.changed() => {
            conn.as_mut().graceful_shutdown();
            let _ = tokio::time::timeout(Duration::from_secs(5), conn).await;
        }
    }
}

async fn handle_connection(
    stream: TcpStream,
    router: Router,
    tls: Option<Arc<ServerConfig>>,
    stop: watch::Receiver<bool>,
) {
    let _ = stream.set_nodelay(true);
    if let Some(config) = tls {
        let mut first = [0u8; 1];
        match stream.peek(&mut first).await {
            Ok(1) if first[0] == 0x16 => {
                match tokio_rustls::TlsAcceptor::from(config).accept(stream).await {
                    Ok(tls_stream) => serve_io(tls_stream, router, "https", stop).await,
                    Err(e) => tracing::debug!("TLS handshake failed: {e}"),
                }
                return;
            }
            Ok(_) => {}
            Err(_) => return,
        }
    }
    serve_io(stream, router, "http", stop).await
}

/// Aborts a background task when dropped.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

pub(crate) async fn serve(
    sim: Simulator,
    listener: TcpListener,
    tls: Option<Arc<ServerConfig>>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let router = sim.router();
    // Change notifications go out for as long as the simulator serves.
    let _delivery = AbortOnDrop(tokio::spawn(crate::notify::deliver(sim.clone())));
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut shutdown = std::pin::pin!(shutdown);
    let mut connections = tokio::task::JoinSet::new();
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    connections.spawn(handle_connection(stream, router.clone(), tls.clone(), stop_rx.clone()));
                }
                Err(e) => {
                    tracing::warn!("accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    let _ = stop_tx.send(true);
    let _ =
        tokio::time::timeout(Duration::from_secs(5), async { while connections.join_next().await.is_some() {} }).await;
    connections.abort_all();
    Ok(())
}

/// A simulator serving in a background task; see [`Simulator::start`].
pub struct RunningSim {
    /// `http://127.0.0.1:PORT` (or `https://` from [`Simulator::start_tls`]).
    pub base_url: String,
    pub addr: SocketAddr,
    /// The CA to trust, when serving TLS.
    pub ca_cert_pem: Option<String>,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
}

impl RunningSim {
    /// Identity-platform base: the token endpoint is `{authority_url}/{tenant}/oauth2/v2.0/token`.
    pub fn authority_url(&self) -> String {
        self.base_url.clone()
    }

    /// Graph base: requests go to `{graph_url}/v1.0/...`.
    pub fn graph_url(&self) -> String {
        self.base_url.clone()
    }

    /// The EWS endpoint.
    pub fn ews_url(&self) -> String {
        format!("{}/EWS/Exchange.asmx", self.base_url)
    }

    /// Stops accepting, lets open requests finish (up to 5 s) and waits for the task.
    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for RunningSim {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

pub(crate) async fn start(sim: Simulator, tls: Option<SimTls>) -> std::io::Result<RunningSim> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let config = tls.as_ref().map(|t| t.server_config()).transpose().map_err(std::io::Error::other)?;
    let (tx, rx) = oneshot::channel::<()>();
    let task = tokio::spawn(serve(sim, listener, config, async move {
        let _ = rx.await;
    }));
    let scheme = if tls.is_some() { "https" } else { "http" };
    Ok(RunningSim {
        base_url: format!("{scheme}://127.0.0.1:{}", addr.port()),
        addr,
        ca_cert_pem: tls.map(|t| t.ca_cert_pem),
        shutdown: Some(tx),
        task: Some(task),
    })
}
