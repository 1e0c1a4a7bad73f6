//! The admin console: a web UI served by the API itself under `/ui/`, and its sign-in.
//!
//! The UI is static files (`ui/`: HTML, CSS and plain JavaScript, no build step, nothing
//! fetched from elsewhere), compiled into the binary. Its pages call the REST API, so the
//! console has no path to the data of its own.
//!
//! **Administrators** are stored with an argon2id hash of their password (`calbridge admin
//! create`). `POST /ui/login` checks one and opens a **session**: a random token in the cookie
//! `calbridge_session` (`HttpOnly; SameSite=Strict; Path=/`, `Secure` behind an HTTPS proxy that
//! says `X-Forwarded-Proto: https`), kept in memory as its SHA-256 with its expiry (8 hours) and
//! a CSRF token. The API's [`Authorized`](crate::auth::Authorized) extractor accepts the cookie
//! as the admin scope, and on every request that is not a GET or HEAD requires the header
//! `X-CSRF-Token` to match the session's CSRF token, so a page on another site cannot act with
//! the cookie. Sessions live in the process: a restart signs everyone out.
//!
//! Sign-in failures all answer the same 401, take the same time whether the user exists or not
//! (an unknown name is checked against a dummy hash), and after [`MAX_FAILURES`] failures for a
//! user name within [`FAILURE_WINDOW`] further attempts are refused (429) until the window ends.
//! Passwords, tokens and cookies are never logged.

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use calbridge_core::store::{AdminAccount, NewAdmin, Store, StoreError};
use serde::{Deserialize, Serialize};

use crate::auth::{hash_token, random_bytes};
use crate::error::{ApiError, ApiResult};
use crate::extract::Json;
use crate::ApiState;

/// The session cookie's name.
pub const COOKIE: &str = "calbridge_session";
/// The header carrying the session's CSRF token on requests that change something.
pub const CSRF_HEADER: &str = "x-csrf-token";
/// How long a session lasts after sign-in.
pub const SESSION_TTL: Duration = Duration::from_secs(8 * 3600);
/// Failed sign-ins for one user name, within [`FAILURE_WINDOW`], before further attempts are
/// refused until the window ends.
pub const MAX_FAILURES: u32 = 5;
pub const FAILURE_WINDOW: Duration = Duration::from_secs(15 * 60);
/// The shortest password `calbridge admin create` accepts.
pub const MIN_PASSWORD_CHARS: usize = 10;

/// Why an administrator cannot be created.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error("the user name must be 1 to 64 letters, digits or . _ @ -; pick another")]
    BadUsername,
    #[error("the password must have at least {MIN_PASSWORD_CHARS} characters; choose a longer one")]
    ShortPassword,
    #[error("the password could not be hashed: {0}")]
    Hash(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

fn valid_username(name: &str) -> bool {
    (1..=64).contains(&name.len()) && name.chars().all(|c| c.is_alphanumeric() || ".-_@".contains(c))
}

/// An argon2id PHC string of `password` under a random salt (argon2's default cost: 19 MiB,
/// two passes).
pub fn hash_password(password: &str) -> Result<String, AdminError> {
    let salt = SaltString::encode_b64(&random_bytes::<16>()).map_err(|e| AdminError::Hash(e.to_string()))?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| AdminError::Hash(e.to_string()))
}

/// Whether `password` matches the PHC string `phc`. A malformed hash matches nothing.
pub fn verify_password(password: &str, phc: &str) -> bool {
    match PasswordHash::new(phc) {
        Ok(h) => Argon2::default().verify_password(password.as_bytes(), &h).is_ok(),
        Err(_) => false,
    }
}

/// Creates an administrator, or sets the password of an existing one.
pub async fn create_admin(store: &dyn Store, username: &str, password: &str) -> Result<AdminAccount, AdminError> {
    let username = username.trim().to_lowercase();
    if !valid_username(&username) {
        return Err(AdminError::BadUsername);
    }
    if password.chars().count() < MIN_PASSWORD_CHARS {
        return Err(AdminError::ShortPassword);
    }
    let hash = hash_password(password)?;
    Ok(store.upsert_admin(NewAdmin { username, password_hash: hash, now: chrono::Utc::now() }).await?)
}

/// Compares in time that depends only on the lengths.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// A signed-in administrator.
#[derive(Clone, Debug)]
pub struct Session {
    pub username: String,
    pub csrf: String,
    expires: Instant,
}

/// Sessions and sign-in failures, in memory.
#[derive(Default)]
pub struct Sessions {
    /// By SHA-256 of the cookie's token.
    open: Mutex<HashMap<String, Session>>,
    /// Failed sign-ins by user name: how many, since when.
    failures: Mutex<HashMap<String, (u32, Instant)>>,
}

fn hex_token() -> String {
    random_bytes::<32>().iter().map(|b| format!("{b:02x}")).collect()
}

impl Sessions {
    /// Opens a session; returns the cookie's token and the session.
    pub fn open(&self, username: &str, now: Instant) -> (String, Session) {
        let token = hex_token();
        let session = Session { username: username.to_string(), csrf: hex_token(), expires: now + SESSION_TTL };
        let mut open = self.open.lock().expect("sessions");
        open.retain(|_, s| s.expires > now);
        open.insert(hash_token(&token), session.clone());
        (token, session)
    }

    /// The live session of a cookie's token.
    pub fn get(&self, token: &str, now: Instant) -> Option<Session> {
        let open = self.open.lock().expect("sessions");
        open.get(&hash_token(token)).filter(|s| s.expires > now).cloned()
    }

    pub fn close(&self, token: &str) {
        self.open.lock().expect("sessions").remove(&hash_token(token));
    }

    /// When sign-ins for `username` are refused, how long still.
    fn locked_for(&self, username: &str, now: Instant) -> Option<Duration> {
        let failures = self.failures.lock().expect("failures");
        match failures.get(username) {
            Some((n, since)) if *n >= MAX_FAILURES && now < *since + FAILURE_WINDOW => {
                Some(*since + FAILURE_WINDOW - now)
            }
            _ => None,
        }
    }

    fn failed(&self, username: &str, now: Instant) {
        let mut failures = self.failures.lock().expect("failures");
        failures.retain(|_, (_, since)| now < *since + FAILURE_WINDOW);
        let entry = failures.entry(username.to_string()).or_insert((0, now));
        entry.0 += 1;
    }

    fn succeeded(&self, username: &str) {
        self.failures.lock().expect("failures").remove(username);
    }
}

/// The value of cookie `name` in the request's `Cookie` headers.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim())
}

/// The session of a request's cookie, checking the CSRF header when the method changes
/// something. `Ok(None)` when the request has no session cookie.
pub fn session_of(state: &ApiState, method: &Method, headers: &HeaderMap) -> Result<Option<Session>, ApiError> {
    let Some(token) = cookie(headers, COOKIE) else { return Ok(None) };
    let session = state.sessions().get(token, Instant::now()).ok_or_else(|| {
        ApiError::unauthorized("the console session has ended (signed out or expired); sign in again at /ui/")
    })?;
    if !matches!(*method, Method::GET | Method::HEAD) {
        let sent = headers.get(CSRF_HEADER).map(|v| v.as_bytes()).unwrap_or_default();
        if !constant_time_eq(sent, session.csrf.as_bytes()) {
            return Err(ApiError::forbidden(
                "this request carries the console's session cookie without its CSRF token. Fix: send the header \
                 X-CSRF-Token with the token GET /ui/session returns (the console does so)",
            ));
        }
    }
    Ok(Some(session))
}

// ------------------------------------------------------------------------------------------
// Routes

const INDEX_HTML: &str = include_str!("../ui/index.html");
const APP_JS: &str = include_str!("../ui/app.js");
const APP_CSS: &str = include_str!("../ui/app.css");

/// Headers every console response carries: no script, style or frame from elsewhere.
fn hardened(mut res: Response) -> Response {
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; \
             form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    res
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    hardened(([(header::CONTENT_TYPE, content_type)], body).into_response())
}

pub async fn root() -> Redirect {
    Redirect::to("/ui/")
}

pub async fn index() -> Response {
    asset("text/html; charset=utf-8", INDEX_HTML)
}

pub async fn app_js() -> Response {
    asset("text/javascript; charset=utf-8", APP_JS)
}

pub async fn app_css() -> Response {
    asset("text/css; charset=utf-8", APP_CSS)
}

/// A sign-in.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoginInput {
    pub username: String,
    pub password: String,
}

/// Who is signed in, the CSRF token to send with changes, and what the pages need to know
/// about this server.
#[derive(Serialize)]
pub struct SessionView {
    pub username: String,
    pub csrf_token: String,
    /// Seconds between scheduled syncs; absent when syncs run only on request.
    pub sync_interval_secs: Option<u64>,
    /// The connection kinds this server serves.
    pub kinds: Vec<&'static str>,
}

fn session_view(state: &ApiState, s: &Session) -> SessionView {
    SessionView {
        username: s.username.clone(),
        csrf_token: s.csrf.clone(),
        sync_interval_secs: state.config().sync_interval.map(|d| d.as_secs()),
        kinds: state.kinds(),
    }
}

fn secure(headers: &HeaderMap) -> bool {
    headers.get("x-forwarded-proto").is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"https"))
}

fn set_cookie(value: &str, max_age: u64, secure: bool) -> HeaderValue {
    let text = format!(
        "{COOKIE}={value}; HttpOnly; SameSite=Strict; Path=/; Max-Age={max_age}{}",
        if secure { "; Secure" } else { "" }
    );
    HeaderValue::from_str(&text).expect("a cookie of hex digits is a valid header")
}

/// A dummy hash to check unknown user names against, so they take as long as known ones.
fn dummy_hash() -> &'static str {
    static DUMMY: OnceLock<String> = OnceLock::new();
    DUMMY.get_or_init(|| hash_password(&hex_token()).expect("hashing a random password works"))
}

/// `POST /ui/login`: checks an administrator's password and opens a session. JSON only, so a
/// form on another site cannot sign someone in.
pub async fn login(
    State(state): State<ApiState>,
    headers: HeaderMap,
    Json(input): Json<LoginInput>,
) -> ApiResult<Response> {
    let username = input.username.trim().to_lowercase();
    let now = Instant::now();
    if let Some(wait) = state.sessions().locked_for(&username, now) {
        let mut res = ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "rate-limited",
            format!(
                "too many failed sign-ins for this user name; try again in {} minutes, or reset the password with \
                 `calbridge admin create --username NAME`",
                wait.as_secs() / 60 + 1
            ),
        )
        .into_response();
        res.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(wait.as_secs() + 1));
        return Ok(res);
    }
    let account = if valid_username(&username) { state.store().admin_by_username(&username).await? } else { None };
    let phc = account.as_ref().map(|a| a.password_hash.clone()).unwrap_or_else(|| dummy_hash().to_string());
    let password = input.password;
    let matches = tokio::task::spawn_blocking(move || verify_password(&password, &phc))
        .await
        .map_err(|e| ApiError::internal(format!("the password check failed: {e}")))?;
    let Some(account) = account.filter(|_| matches) else {
        state.sessions().failed(&username, now);
        tracing::info!("console sign-in refused");
        return Err(ApiError::unauthorized(
            "wrong user name or password. Fix: check both; an administrator is created or reset with \
             `calbridge admin create --username NAME`",
        ));
    };
    state.sessions().succeeded(&username);
    let (token, session) = state.sessions().open(&account.username, now);
    tracing::info!(user = %account.username, "console sign-in");
    let mut res = hardened(axum::Json(session_view(&state, &session)).into_response());
    res.headers_mut().insert(header::SET_COOKIE, set_cookie(&token, SESSION_TTL.as_secs(), secure(&headers)));
    Ok(res)
}

/// `GET /ui/session`: the signed-in administrator and the CSRF token, or 204 when no one is
/// signed in (not 401: the page asks before it knows, and a browser reports every 401).
pub async fn session(State(state): State<ApiState>, method: Method, headers: HeaderMap) -> Response {
    match session_of(&state, &method, &headers) {
        Ok(Some(s)) => hardened(axum::Json(session_view(&state, &s)).into_response()),
        _ => hardened(StatusCode::NO_CONTENT.into_response()),
    }
}

/// `POST /ui/logout`: ends the session (with its CSRF token) and clears the cookie.
pub async fn logout(State(state): State<ApiState>, method: Method, headers: HeaderMap) -> ApiResult<Response> {
    if session_of(&state, &method, &headers)?.is_some() {
        if let Some(token) = cookie(&headers, COOKIE) {
            state.sessions().close(token);
        }
    }
    let mut res = hardened(StatusCode::NO_CONTENT.into_response());
    res.headers_mut().insert(header::SET_COOKIE, set_cookie("", 0, secure(&headers)));
    Ok(res)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_hash_with_salt_and_verify() {
        let a = hash_password("correct horse battery").unwrap();
        let b = hash_password("correct horse battery").unwrap();
        assert!(a.starts_with("$argon2id$"), "{a}");
        assert_ne!(a, b, "a random salt each time");
        assert!(verify_password("correct horse battery", &a));
        assert!(!verify_password("correct horse battery!", &a));
        assert!(!verify_password("x", "not a hash"));
    }

    #[test]
    fn sessions_expire_and_close() {
        let s = Sessions::default();
        let t0 = Instant::now();
        let (token, session) = s.open("ops", t0);
        assert_eq!(s.get(&token, t0).unwrap().csrf, session.csrf);
        assert!(s.get("other", t0).is_none());
        assert!(s.get(&token, t0 + SESSION_TTL).is_none());
        s.close(&token);
        assert!(s.get(&token, t0).is_none());
        assert!(!s.open.lock().unwrap().keys().any(|k| k == &token), "only the token's hash is kept");
    }

    #[test]
    fn failures_lock_a_name_for_the_window() {
        let s = Sessions::default();
        let t0 = Instant::now();
        for _ in 0..MAX_FAILURES {
            assert!(s.locked_for("ops", t0).is_none());
            s.failed("ops", t0);
        }
        assert!(s.locked_for("ops", t0).is_some());
        assert!(s.locked_for("other", t0).is_none());
        assert!(s.locked_for("ops", t0 + FAILURE_WINDOW).is_none());
        s.succeeded("ops");
        assert!(s.locked_for("ops", t0).is_none());
    }

    #[test]
    fn cookies_are_found_among_others() {
        let mut h = HeaderMap::new();
        h.append(header::COOKIE, HeaderValue::from_static("a=1; calbridge_session=abc ; b=2"));
        assert_eq!(cookie(&h, COOKIE), Some("abc"));
        assert_eq!(cookie(&h, "b"), Some("2"));
        assert_eq!(cookie(&h, "c"), None);
        assert!(constant_time_eq(b"abc", b"abc") && !constant_time_eq(b"abc", b"abd") && !constant_time_eq(b"a", b""));
    }
}
