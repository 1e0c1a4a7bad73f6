//! [`GraphClient`]: sends [`GraphRequest`]s to Microsoft Graph for one connection.
//!
//! Every request carries the bearer token (from the shared [`TokenProvider`] cache) and a
//! fresh `client-request-id`. Per attempt:
//! - `429`/`503`: wait `Retry-After` (seconds or an HTTP date; without it 1, 2, 4, 8 … s) and
//!   try again, up to `max_attempts` and `max_retry_wait` in total; then the error surfaces
//!   (classified `Throttled`, carrying the last `Retry-After`).
//! - `401`: the token is dropped from the cache and the request sent once more with a new one.
//! - no answer (connect, timeout, reset): tried again only when safe — idempotent requests up
//!   to `max_attempts`, a create with a `transactionId` once, any request that provably never
//!   left (connect failure); never a PATCH or a plain POST that may have been processed.
//! - the body breaking off: `GraphError::Body` (transient), not retried here.
//!
//! At most `mailbox_concurrency` (default 4, Graph's documented budget) requests per mailbox
//! are in flight at once: a tokio semaphore per mailbox; the permit is released while waiting
//! to retry. Over all mailboxes, at most `max_in_flight` (the connection's `max_threads`),
//! each from sending the request to the last byte of the answer: the answer is parsed after
//! the slot is given back. Redirects are not followed, and every URL (also a nextLink or a saved cursor)
//! must have `graph_url`'s scheme, host and port, so the token never goes anywhere else.

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use calbridge_core::{GraphSettings, Secret};
use chrono::{DateTime, Utc};
use reqwest::header::HeaderMap;
use tokio::sync::Semaphore;
use url::Url;

use crate::auth::{Clock, SystemClock, TokenProvider};
use crate::endpoints::{
    self, batch, calendar_get_schedule, calendar_list, calendar_view, calendar_view_delta, event_create, event_decline,
    event_delete, event_get, event_update, place_list, snippet, subscription_create, subscription_delete,
    subscription_update, user_get, without_query, GraphRequest, TransportRetry,
};
use crate::error::GraphError;
use crate::types::{self, ODataError};

/// Tuning of a [`GraphClient`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GraphOptions {
    /// Attempts per request, the first included, when throttled or (if safe) unanswered.
    pub max_attempts: u32,
    /// The most a request waits in total for throttling or backoff before the error surfaces.
    pub max_retry_wait: Duration,
    /// Requests in flight per mailbox (Graph allows 4).
    pub mailbox_concurrency: usize,
    /// Requests the client has in flight at once over all its mailboxes: the connection's
    /// `max_threads`. A slot is held from sending a request to the last byte of its answer;
    /// reading the answer happens after it is given back. Token requests take none.
    pub max_in_flight: usize,
    /// `Prefer: odata.maxpagesize` of delta pages, and `$top` of calendarView pages.
    pub page_size: u32,
    /// Timeout of one HTTP request, connect to last byte.
    pub request_timeout: Duration,
    /// This installation's id (sent in the `User-Agent`, so a tenant admin can tell
    /// installations apart).
    pub installation_id: String,
    /// Requests per mailbox within `mailbox_window` (Graph's Outlook limit: 10,000 per 10
    /// minutes); past it, requests are paced instead of being throttled by Graph.
    pub mailbox_requests: u32,
    pub mailbox_window: Duration,
}

impl Default for GraphOptions {
    fn default() -> Self {
        GraphOptions {
            max_attempts: 5,
            max_retry_wait: Duration::from_secs(120),
            mailbox_concurrency: 4,
            max_in_flight: 4,
            page_size: 100,
            request_timeout: Duration::from_secs(60),
            installation_id: String::new(),
            mailbox_requests: 10_000,
            mailbox_window: Duration::from_secs(600),
        }
    }
}

/// A mailbox's request budget: `limit` requests per `window`, as a generic cell rate
/// (GCRA): a burst of up to `limit` requests goes at once, then requests are paced one per
/// `window / limit`. One instant per mailbox, whatever the limit.
#[derive(Debug)]
pub struct RequestBudget {
    interval: Duration,
    window: Duration,
    /// When the budget would be back to full ("theoretical arrival time").
    tat: Mutex<Option<std::time::Instant>>,
}

impl RequestBudget {
    pub fn new(limit: u32, window: Duration) -> Self {
        RequestBudget { interval: window / limit.max(1), window, tat: Mutex::new(None) }
    }

    /// Takes one request's share at `now`; returns how long to wait before sending it.
    pub fn reserve(&self, now: std::time::Instant) -> Duration {
        let mut tat = self.tat.lock().expect("budget lock");
        let start = tat.map_or(now, |t| t.max(now));
        let next = start + self.interval;
        *tat = Some(next);
        next.saturating_duration_since(now + self.window)
    }
}

/// An answer Graph gave with a 2xx status.
#[derive(Clone, Debug)]
pub struct GraphResponse {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

/// A Microsoft Graph client for one connection. Cheap to clone; clones share the token
/// cache, the per-mailbox limits and the request counter.
#[derive(Clone)]
pub struct GraphClient {
    inner: Arc<Inner>,
}

struct Inner {
    http: reqwest::Client,
    settings: GraphSettings,
    base: Url,
    options: GraphOptions,
    auth: TokenProvider,
    clock: Arc<dyn Clock>,
    secret: Secret,
    requests: AtomicU64,
    /// Milliseconds waited on 429/503 answers so far.
    throttled_ms: AtomicU64,
    mailboxes: Mutex<HashMap<String, MailboxLimits>>,
    /// [`GraphOptions::max_in_flight`].
    in_flight: Semaphore,
}

/// A mailbox's concurrency limit and request budget, shared by the client's clones.
type MailboxLimits = (Arc<Semaphore>, Arc<RequestBudget>);

impl fmt::Debug for GraphClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GraphClient")
            .field("graph_url", &self.inner.base.as_str())
            .field("tenant_id", &self.inner.settings.tenant_id)
            .field("client_id", &self.inner.settings.client_id)
            .field("options", &self.inner.options)
            .field("requests", &self.requests())
            .finish()
    }
}

fn parse_base(key: &str, value: &str) -> Result<Url, GraphError> {
    let url = Url::parse(value.trim()).map_err(|e| GraphError::Config {
        message: format!("{key} {value:?} is not a URL ({e}). Fix: use e.g. https://graph.microsoft.com"),
    })?;
    if !matches!(url.scheme(), "http" | "https") || url.cannot_be_a_base() {
        return Err(GraphError::Config {
            message: format!("{key} {value:?} is not an http(s) URL. Fix: use e.g. https://graph.microsoft.com"),
        });
    }
    Ok(url)
}

impl GraphClient {
    /// A client for one connection, on the system clock.
    pub fn new(settings: &GraphSettings, secret: Secret, options: GraphOptions) -> Result<GraphClient, GraphError> {
        Self::with_clock(settings, secret, options, Arc::new(SystemClock))
    }

    /// A client whose token lifetimes and `Retry-After` dates are read against `clock`.
    pub fn with_clock(
        settings: &GraphSettings,
        secret: Secret,
        options: GraphOptions,
        clock: Arc<dyn Clock>,
    ) -> Result<GraphClient, GraphError> {
        let need = |key: &str, v: &str, fix: &str| {
            if v.trim().is_empty() {
                Err(GraphError::Config { message: format!("{key} is empty. Fix: {fix}") })
            } else {
                Ok(())
            }
        };
        need(
            "tenant_id",
            &settings.tenant_id,
            "use the Directory (tenant) ID from the app registration's Overview page",
        )?;
        need(
            "client_id",
            &settings.client_id,
            "use the Application (client) ID from the app registration's Overview page",
        )?;
        if secret.is_empty() {
            return Err(GraphError::Config {
                message: "the client secret is empty. Fix: paste the secret's Value from the app registration's \
                          Certificates & secrets page"
                    .into(),
            });
        }
        let authority = parse_base("authority_url", &settings.authority_url)?;
        let base = parse_base("graph_url", &settings.graph_url)?;
        if options.max_attempts == 0
            || options.mailbox_concurrency == 0
            || options.max_in_flight == 0
            || options.page_size == 0
        {
            return Err(GraphError::Config {
                message:
                    "max_attempts, mailbox_concurrency, max_in_flight (max_threads) and page_size must be at least 1"
                        .into(),
            });
        }
        let user_agent = if options.installation_id.is_empty() {
            format!("calbridge/{}", env!("CARGO_PKG_VERSION"))
        } else {
            format!("calbridge/{} (installation {})", env!("CARGO_PKG_VERSION"), options.installation_id)
        };
        let http = reqwest::Client::builder()
            .timeout(options.request_timeout)
            .connect_timeout(options.request_timeout.min(Duration::from_secs(15)))
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(user_agent)
            .build()
            .map_err(|e| GraphError::Config { message: format!("cannot set up the HTTP client: {e}") })?;
        let auth = TokenProvider::new(
            http.clone(),
            authority,
            settings.tenant_id.trim(),
            settings.client_id.trim(),
            secret.clone(),
            endpoints::token::scope_for(&base),
            clock.clone(),
        );
        Ok(GraphClient {
            inner: Arc::new(Inner {
                http,
                settings: settings.clone(),
                base,
                auth,
                clock,
                secret,
                requests: AtomicU64::new(0),
                throttled_ms: AtomicU64::new(0),
                mailboxes: Mutex::new(HashMap::new()),
                in_flight: Semaphore::new(options.max_in_flight),
                options,
            }),
        })
    }

    /// Requests sent to Graph so far (every attempt; token requests not included).
    pub fn requests(&self) -> u64 {
        self.inner.requests.load(Ordering::Relaxed)
    }

    /// Time this client (and its clones) waited on Graph's throttling (429/503 with
    /// `Retry-After`) before trying again.
    pub fn throttled_wait(&self) -> Duration {
        Duration::from_millis(self.inner.throttled_ms.load(Ordering::Relaxed))
    }

    /// Token requests sent to the identity platform so far.
    pub fn token_requests(&self) -> u64 {
        self.inner.auth.fetches()
    }

    pub fn settings(&self) -> &GraphSettings {
        &self.inner.settings
    }

    pub fn options(&self) -> &GraphOptions {
        &self.inner.options
    }

    /// The parsed `graph_url`.
    pub fn graph_url(&self) -> &Url {
        &self.inner.base
    }

    /// Gets an access token (from the cache or the identity platform): the first step of a
    /// connection test.
    pub async fn authenticate(&self) -> Result<(), GraphError> {
        self.inner.auth.token().await.map(|_| ())
    }

    /// The application permissions (app roles) the access token carries, read from its
    /// `roles` claim; `None` when the token is not a JWT whose claims can be read (the token is
    /// never printed).
    pub async fn granted_roles(&self) -> Result<Option<Vec<String>>, GraphError> {
        let token = self.inner.auth.token().await?;
        Ok(roles_claim(token.expose()))
    }

    /// A mailbox's concurrency limit and request budget.
    fn limits(&self, mailbox: &str) -> MailboxLimits {
        let opts = &self.inner.options;
        let mut map = self.inner.mailboxes.lock().expect("mailbox limits lock");
        map.entry(mailbox.to_ascii_lowercase())
            .or_insert_with(|| {
                (
                    Arc::new(Semaphore::new(opts.mailbox_concurrency)),
                    Arc::new(RequestBudget::new(opts.mailbox_requests, opts.mailbox_window)),
                )
            })
            .clone()
    }

    fn redact(&self, e: GraphError, token: Option<&str>) -> GraphError {
        let mut secrets = vec![self.inner.secret.expose()];
        if let Some(t) = token {
            secrets.push(t);
        }
        e.redacted(&secrets)
    }

    /// Sends `req` on behalf of `mailbox` with retries as described in the module docs; a
    /// non-2xx answer becomes [`GraphError::Api`].
    pub async fn send(&self, mailbox: &str, req: &GraphRequest) -> Result<GraphResponse, GraphError> {
        self.send_weighted(mailbox, req, 1).await
    }

    /// [`Self::send`] for a request that counts as `weight` requests against the mailbox's
    /// concurrency limit and request budget (a `$batch` of several).
    async fn send_weighted(&self, mailbox: &str, req: &GraphRequest, weight: u32) -> Result<GraphResponse, GraphError> {
        endpoints::check_same_origin(req.operation, &self.inner.base, req.url.as_str())?;
        let weight = weight.clamp(1, self.inner.options.mailbox_concurrency.max(1) as u32);
        let opts = &self.inner.options;
        let (semaphore, budget) = self.limits(mailbox);
        let mut attempt: u32 = 0;
        let mut waited = Duration::ZERO;
        let mut reauthenticated = false;
        let mut transport_retries: u32 = 0;
        loop {
            attempt += 1;
            let token = self.inner.auth.token().await?;
            let request_id = uuid::Uuid::new_v4().to_string();
            // Within the mailbox's budget (counted as throttling: it is Exchange's limit).
            let now = std::time::Instant::now();
            let pace = (0..weight).map(|_| budget.reserve(now)).max().unwrap_or_default();
            if !pace.is_zero() {
                tracing::debug!(
                    mailbox,
                    wait_ms = pace.as_millis() as u64,
                    "pacing: the mailbox's request budget is spent"
                );
                self.inner.throttled_ms.fetch_add(pace.as_millis() as u64, Ordering::Relaxed);
                tokio::time::sleep(pace).await;
            }
            let outcome = {
                let _permit = semaphore.acquire_many(weight).await.expect("mailbox semaphores are never closed");
                // One of the connection's slots, taken after the mailbox's so that a request
                // waiting for its mailbox holds none.
                let _slot = self.inner.in_flight.acquire().await.expect("the semaphore is never closed");
                self.inner.requests.fetch_add(1, Ordering::Relaxed);
                attempt_once(&self.inner.http, req, Some(token.expose()), Some(&request_id)).await
            };
            let (status, headers, body) = match outcome {
                Ok(answer) => answer,
                Err(failure) => {
                    let error = self.redact(failure.error, Some(token.expose()));
                    let allowed = failure.never_sent
                        || match req.retry {
                            TransportRetry::Idempotent => true,
                            TransportRetry::Once => transport_retries == 0,
                            TransportRetry::Never => false,
                        };
                    let wait = backoff(attempt);
                    if failure.body_error
                        || !allowed
                        || attempt >= opts.max_attempts
                        || waited.saturating_add(wait) > opts.max_retry_wait
                    {
                        return Err(error);
                    }
                    tracing::debug!(operation = req.operation, attempt, "no answer ({error}); retrying in {wait:?}");
                    transport_retries += 1;
                    waited += wait;
                    tokio::time::sleep(wait).await;
                    continue;
                }
            };
            if (200..300).contains(&status) {
                return Ok(GraphResponse { status, headers, body });
            }
            let error = self.redact(
                api_error(req.operation, status, &headers, &body, self.inner.clock.now()),
                Some(token.expose()),
            );
            match status {
                401 if !reauthenticated => {
                    tracing::debug!(operation = req.operation, "Graph rejected the access token; fetching a new one");
                    reauthenticated = true;
                    attempt -= 1;
                    self.inner.auth.invalidate(&token).await;
                    continue;
                }
                429 | 503 => {
                    let retry_after = match &error {
                        GraphError::Api { retry_after, .. } => *retry_after,
                        _ => None,
                    };
                    let wait = retry_after.unwrap_or_else(|| backoff(attempt));
                    if attempt >= opts.max_attempts || waited.saturating_add(wait) > opts.max_retry_wait {
                        tracing::info!(
                            operation = req.operation,
                            attempt,
                            "throttled; giving up after {waited:?} of waiting"
                        );
                        return Err(error);
                    }
                    tracing::debug!(operation = req.operation, attempt, "throttled (HTTP {status}); waiting {wait:?}");
                    self.inner.throttled_ms.fetch_add(wait.as_millis() as u64, Ordering::Relaxed);
                    waited += wait;
                    tokio::time::sleep(wait).await;
                }
                _ => return Err(error),
            }
        }
    }

    /// Sends `reqs`, all on behalf of `mailbox`, as JSON batches of up to 20 (a single request
    /// goes alone), and answers each as [`Self::send`] would have: inner requests that were
    /// throttled (429, 503) go again in a later batch after their `Retry-After`, within the
    /// same attempt and wait budgets. A batch counts as up to four requests against the
    /// mailbox's concurrency limit, since Graph runs four of its requests at a time. When a
    /// batch gets no usable answer, each of its requests fails with that error: some may have
    /// been applied, as with a request sent alone that got no answer.
    pub async fn send_batch(&self, mailbox: &str, reqs: &[GraphRequest]) -> Vec<Result<GraphResponse, GraphError>> {
        let opts = &self.inner.options;
        let mut out: Vec<Option<Result<GraphResponse, GraphError>>> = vec![None; reqs.len()];
        let starts: Vec<usize> = (0..reqs.len()).step_by(batch::MAX_REQUESTS).collect();
        for start in starts {
            let mut pending: Vec<usize> = (start..reqs.len().min(start + batch::MAX_REQUESTS)).collect();
            let mut attempt: u32 = 0;
            let mut waited = Duration::ZERO;
            while !pending.is_empty() {
                attempt += 1;
                if let [only] = pending[..] {
                    out[only] = Some(self.send(mailbox, &reqs[only]).await);
                    break;
                }
                let items: Vec<GraphRequest> = pending.iter().map(|&i| reqs[i].clone()).collect();
                let weight = items.len().min(batch::PARALLEL) as u32;
                let answers = match batch::request(&self.inner.base, &items) {
                    Ok(b) => match self.send_weighted(mailbox, &b, weight).await {
                        Ok(r) => batch::parse(&r.body, items.len()),
                        Err(e) => Err(e),
                    },
                    Err(e) => Err(e),
                };
                let answers = match answers {
                    Ok(a) => a,
                    Err(e) => {
                        for &i in &pending {
                            out[i] = Some(Err(e.clone()));
                        }
                        break;
                    }
                };
                let now = self.inner.clock.now();
                let mut again = Vec::new();
                let mut wait = Duration::ZERO;
                for (&i, a) in pending.iter().zip(answers) {
                    if (200..300).contains(&a.status) {
                        out[i] = Some(Ok(GraphResponse { status: a.status, headers: a.headers, body: a.body }));
                        continue;
                    }
                    let error = self.redact(api_error(reqs[i].operation, a.status, &a.headers, &a.body, now), None);
                    if matches!(a.status, 429 | 503) && attempt < opts.max_attempts {
                        let after = match &error {
                            GraphError::Api { retry_after, .. } => *retry_after,
                            _ => None,
                        };
                        wait = wait.max(after.unwrap_or_else(|| backoff(attempt)));
                        again.push(i);
                    }
                    out[i] = Some(Err(error));
                }
                if again.is_empty() || waited.saturating_add(wait) > opts.max_retry_wait {
                    break; // the throttled ones keep their 429 as their answer
                }
                tracing::debug!(
                    mailbox,
                    attempt,
                    throttled = again.len(),
                    "batch requests throttled; waiting {wait:?}"
                );
                self.inner.throttled_ms.fetch_add(wait.as_millis() as u64, Ordering::Relaxed);
                waited += wait;
                tokio::time::sleep(wait).await;
                pending = again;
            }
        }
        out.into_iter()
            .map(|o| {
                o.unwrap_or_else(|| {
                    Err(GraphError::Decode { operation: "JSON batch", message: "no answer was read".into() })
                })
            })
            .collect()
    }

    /// `GET /users/{email}`.
    pub async fn user(&self, email: &str) -> Result<types::User, GraphError> {
        let r = self.send(email, &user_get::request(&self.inner.base, email)).await?;
        user_get::parse(&r.body)
    }

    /// `GET /users/{email}/calendars`, all pages (at most [`MAX_PAGES`]).
    pub async fn calendars(&self, email: &str) -> Result<Vec<types::Calendar>, GraphError> {
        let mut req = calendar_list::request(&self.inner.base, email);
        let mut all = Vec::new();
        for _ in 0..MAX_PAGES {
            let page = calendar_list::parse(&self.send(email, &req).await?.body)?;
            all.extend(page.value);
            match page.next_link {
                Some(next) => {
                    req = calendar_list::request_next(endpoints::check_same_origin(
                        "list calendars",
                        &self.inner.base,
                        &next,
                    )?)
                }
                None => return Ok(all),
            }
        }
        Err(too_many_pages("list calendars"))
    }

    /// Every page of a places listing (room lists, rooms), at most [`MAX_PAGES`].
    async fn places(&self, first: GraphRequest) -> Result<Vec<types::Place>, GraphError> {
        let mut req = first;
        let mut all = Vec::new();
        for _ in 0..MAX_PAGES {
            // Places are the directory's, not a mailbox's: one key for the concurrency limit.
            let page = place_list::parse(&self.send("places", &req).await?.body)?;
            all.extend(page.value);
            match page.next_link {
                Some(next) => {
                    req =
                        place_list::request_next(endpoints::check_same_origin("list places", &self.inner.base, &next)?)
                }
                None => return Ok(all),
            }
        }
        Err(too_many_pages("list places"))
    }

    /// `GET /places/microsoft.graph.roomlist`.
    pub async fn room_lists(&self) -> Result<Vec<types::Place>, GraphError> {
        self.places(place_list::room_lists(&self.inner.base)).await
    }

    /// `GET /places/{list}/microsoft.graph.roomlist/rooms`.
    pub async fn rooms_of(&self, room_list: &str) -> Result<Vec<types::Place>, GraphError> {
        self.places(place_list::rooms_of(&self.inner.base, room_list)).await
    }

    /// `GET /places/microsoft.graph.room`.
    pub async fn rooms(&self) -> Result<Vec<types::Place>, GraphError> {
        self.places(place_list::rooms(&self.inner.base)).await
    }

    /// `GET /users/{email}/events/{id}` with the provenance property.
    pub async fn get_event(&self, email: &str, id: &str) -> Result<types::Event, GraphError> {
        let r = self.send(email, &event_get::request(&self.inner.base, email, id)).await?;
        event_get::parse(&r.body)
    }

    /// `POST /users/{email}/calendar/events`.
    pub async fn create_event(&self, email: &str, event: &types::Event) -> Result<types::Event, GraphError> {
        let r = self.send(email, &event_create::request(&self.inner.base, email, event)).await?;
        event_create::parse(&r.body)
    }

    /// `PATCH /users/{email}/events/{id}` with `If-Match: if_match`; refused, without sending
    /// anything, when `if_match` is empty.
    pub async fn update_event(
        &self,
        email: &str,
        id: &str,
        if_match: &str,
        event: &types::Event,
    ) -> Result<types::Event, GraphError> {
        let r = self.send(email, &event_update::request(&self.inner.base, email, id, if_match, event)?).await?;
        event_update::parse(&r.body)
    }

    /// `DELETE /users/{email}/events/{id}`.
    pub async fn delete_event(&self, email: &str, id: &str) -> Result<(), GraphError> {
        let r = self.send(email, &event_delete::request(&self.inner.base, email, id)).await?;
        event_delete::parse(r.status)
    }

    /// `POST /subscriptions`: change notifications for the mailbox's events. Graph validates
    /// `notification_url` before it answers.
    pub async fn create_subscription(
        &self,
        email: &str,
        notification_url: &str,
        client_state: &str,
        expires: DateTime<Utc>,
    ) -> Result<types::Subscription, GraphError> {
        let body = subscription_create::body(email, notification_url, client_state, expires);
        let r = self.send(email, &subscription_create::request(&self.inner.base, &body)).await?;
        subscription_create::parse(&r.body)
    }

    /// `PATCH /subscriptions/{id}`: a new expiration.
    pub async fn renew_subscription(
        &self,
        email: &str,
        id: &str,
        expires: DateTime<Utc>,
    ) -> Result<types::Subscription, GraphError> {
        let r = self.send(email, &subscription_update::request(&self.inner.base, id, expires)).await?;
        subscription_update::parse(&r.body)
    }

    /// `DELETE /subscriptions/{id}`.
    pub async fn delete_subscription(&self, email: &str, id: &str) -> Result<(), GraphError> {
        let r = self.send(email, &subscription_delete::request(&self.inner.base, id)).await?;
        subscription_delete::parse(r.status)
    }

    /// `POST /users/{email}/events/{id}/decline`: the mailbox declines a meeting it was invited
    /// to, telling the organizer.
    pub async fn decline_event(&self, email: &str, id: &str, comment: &str) -> Result<(), GraphError> {
        let r = self.send(email, &event_decline::request(&self.inner.base, email, id, comment)).await?;
        event_decline::parse(r.status)
    }

    /// `GET /users/{email}/calendarView` over `[start, end)`, all pages.
    pub async fn calendar_view(
        &self,
        email: &str,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
    ) -> Result<Vec<types::Event>, GraphError> {
        let mut req = calendar_view::request(&self.inner.base, email, start, end, self.inner.options.page_size);
        let mut all = Vec::new();
        for _ in 0..MAX_PAGES {
            let page = calendar_view::parse(&self.send(email, &req).await?.body)?;
            all.extend(page.value);
            match page.next_link {
                Some(next) => {
                    req = calendar_view::request_next(endpoints::check_same_origin(
                        "list calendarView",
                        &self.inner.base,
                        &next,
                    )?)
                }
                None => return Ok(all),
            }
        }
        Err(too_many_pages("list calendarView"))
    }

    /// One page of `calendarView/delta`: the first of a round over `[start, end)` without a
    /// link, else the page at `link` (a saved nextLink or deltaLink).
    pub async fn delta(
        &self,
        email: &str,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
        link: Option<&str>,
    ) -> Result<calendar_view_delta::DeltaPage, GraphError> {
        self.delta_then(email, start, end, link, |page| page).await
    }

    /// [`delta`](Self::delta), with `then` applied to the page off the runtime's workers, on a
    /// thread for blocking work, together with the parsing. A full page is up to 1,000 events:
    /// reading and converting it takes milliseconds, which would hold up the worker's other
    /// tasks (requests whose answers wait to be read, holding their slots; a commit waiting
    /// for its next statement, holding the store's write turn).
    pub async fn delta_then<T: Send + 'static>(
        &self,
        email: &str,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
        link: Option<&str>,
        then: impl FnOnce(calendar_view_delta::DeltaPage) -> T + Send + 'static,
    ) -> Result<T, GraphError> {
        let size = self.inner.options.page_size;
        let req = match link {
            None => calendar_view_delta::request_initial(&self.inner.base, email, start, end, size),
            Some(link) => calendar_view_delta::request_link(&self.inner.base, link, size)?,
        };
        let r = self.send(email, &req).await?;
        let base = self.inner.base.clone();
        match tokio::task::spawn_blocking(move || calendar_view_delta::parse(&base, &r.body).map(then)).await {
            Ok(page) => page,
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            Err(e) => Err(GraphError::Decode {
                operation: calendar_view_delta::OPERATION,
                message: format!("the page was not read: {e}"),
            }),
        }
    }

    /// `POST /users/{email}/calendar/getSchedule`: free/busy of `schedules` over
    /// `[start, end)`, in `interval_minutes` slots, answered in UTC.
    pub async fn get_schedule(
        &self,
        email: &str,
        schedules: &[String],
        start: DateTime<Utc>,
        end: DateTime<Utc>,
        interval_minutes: u32,
    ) -> Result<Vec<types::ScheduleInformation>, GraphError> {
        let req = calendar_get_schedule::request(&self.inner.base, email, schedules, start, end, interval_minutes);
        let r = self.send(email, &req).await?;
        calendar_get_schedule::parse(&r.body)
    }
}

/// Backoff without `Retry-After`: 1, 2, 4, 8, 16, 32, 32 … seconds.
/// The most pages a listing follows before it gives up: a server that keeps answering with
/// `@odata.nextLink` must not keep calbridge busy forever.
pub const MAX_PAGES: usize = 10_000;

fn too_many_pages(operation: &'static str) -> GraphError {
    GraphError::Refused {
        operation,
        message: format!("Graph kept sending @odata.nextLink after {MAX_PAGES} pages; the listing was abandoned"),
    }
}

pub fn backoff(attempt: u32) -> Duration {
    Duration::from_secs(1u64 << attempt.saturating_sub(1).min(5))
}

/// The longest `Retry-After` taken as it is; longer ones (up to `u64::MAX` seconds, or a
/// date in year 9999) are cut to it, so no wait, sum of waits or deadline can overflow.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(24 * 60 * 60);

/// The `roles` claim of a JWT access token, without verifying it (Graph does that).
fn roles_claim(token: &str) -> Option<Vec<String>> {
    use base64::Engine as _;
    let payload = token.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload.trim_end_matches('=')).ok()?;
    let claims: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    let roles = claims.get("roles")?.as_array()?;
    Some(roles.iter().filter_map(|r| r.as_str().map(str::to_string)).collect())
}

/// `Retry-After`: delay-seconds or an HTTP date (relative to `now`; a past date is 0), at
/// most [`MAX_RETRY_AFTER`].
pub fn parse_retry_after(value: &str, now: DateTime<Utc>) -> Option<Duration> {
    let v = value.trim();
    let wait = if let Ok(secs) = v.parse::<u64>() {
        Duration::from_secs(secs)
    } else if let Ok(secs) = v.parse::<f64>() {
        // Negative, NaN and infinite values are no delay; huge ones are capped below.
        match Duration::try_from_secs_f64(secs) {
            Ok(d) => d,
            Err(_) if secs.is_finite() && secs > 0.0 => MAX_RETRY_AFTER,
            Err(_) => return None,
        }
    } else {
        let at = DateTime::parse_from_rfc2822(v).ok()?.with_timezone(&Utc);
        at.signed_duration_since(now).to_std().unwrap_or(Duration::ZERO)
    };
    Some(wait.min(MAX_RETRY_AFTER))
}

/// A non-2xx answer as [`GraphError::Api`].
pub(crate) fn api_error(
    operation: &'static str,
    status: u16,
    headers: &HeaderMap,
    body: &[u8],
    now: DateTime<Utc>,
) -> GraphError {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_string);
    let (code, message) = match serde_json::from_slice::<ODataError>(body) {
        Ok(e) => ((!e.error.code.is_empty()).then_some(e.error.code), e.error.message),
        Err(_) if body.is_empty() => (None, reason(status).to_string()),
        Err(_) => (None, snippet(body)),
    };
    GraphError::Api {
        operation,
        status,
        code,
        message,
        retry_after: header("retry-after").and_then(|v| parse_retry_after(&v, now)),
        request_id: header("request-id").or_else(|| header("client-request-id")),
    }
}

fn reason(status: u16) -> &'static str {
    reqwest::StatusCode::from_u16(status).ok().and_then(|s| s.canonical_reason()).unwrap_or("no reason given")
}

/// Why one attempt got no usable answer.
pub(crate) struct Failure {
    pub error: GraphError,
    /// The request provably never left (connect failure): safe to retry any request.
    pub never_sent: bool,
    /// The answer started but its body broke off.
    pub body_error: bool,
}

/// The message of a reqwest error and its sources, for a [`GraphError`]. reqwest names the
/// request's URL in its message; the URL, with `$deltatoken`/`$skiptoken` state tokens in its
/// query, must not reach error messages and logs, so it is taken out, and any query of `url`
/// a source still quotes is masked.
fn transport_message(e: reqwest::Error, url: &Url) -> String {
    let msg = error_chain(&e.without_url());
    match url.query().filter(|q| !q.is_empty()) {
        Some(q) => msg.replace(q, "…"),
        None => msg,
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut msg = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let s_msg = s.to_string();
        if !msg.contains(&s_msg) {
            msg.push_str(": ");
            msg.push_str(&s_msg);
        }
        source = s.source();
    }
    msg
}

/// Sends `req` once and reads the whole answer.
pub(crate) async fn attempt_once(
    http: &reqwest::Client,
    req: &GraphRequest,
    bearer: Option<&str>,
    request_id: Option<&str>,
) -> Result<(u16, HeaderMap, Vec<u8>), Failure> {
    let mut b = http.request(req.method.clone(), req.url.clone()).header("Accept", "application/json");
    for (name, value) in &req.headers {
        b = b.header(*name, value.as_str());
    }
    if let Some(token) = bearer {
        b = b.bearer_auth(token);
    }
    if let Some(id) = request_id {
        b = b.header("client-request-id", id);
    }
    if let Some(body) = &req.body {
        b = b.body(body.clone());
    }
    let resp = b.send().await.map_err(|e| Failure {
        never_sent: e.is_connect(),
        body_error: false,
        error: GraphError::Transport {
            operation: req.operation,
            url: without_query(&req.url),
            message: transport_message(e, &req.url),
        },
    })?;
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let body = resp.bytes().await.map_err(|e| Failure {
        never_sent: false,
        body_error: true,
        error: GraphError::Body { operation: req.operation, message: transport_message(e, &req.url) },
    })?;
    Ok((status, headers, body.to_vec()))
}

/// [`attempt_once`], for callers that do not retry (the token request).
pub(crate) async fn execute(
    http: &reqwest::Client,
    req: &GraphRequest,
    bearer: Option<&str>,
) -> Result<(u16, HeaderMap, Vec<u8>), GraphError> {
    attempt_once(http, req, bearer, None).await.map_err(|f| f.error)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_request_budget_lets_a_burst_through_then_paces() {
        let b = RequestBudget::new(4, Duration::from_secs(1));
        let t0 = std::time::Instant::now();
        for _ in 0..4 {
            assert_eq!(b.reserve(t0), Duration::ZERO, "a burst of the whole budget goes at once");
        }
        assert_eq!(b.reserve(t0), Duration::from_millis(250), "the fifth waits one interval");
        assert_eq!(b.reserve(t0), Duration::from_millis(500));
        // After a quiet second, the budget is whole again.
        let later = t0 + Duration::from_secs(3);
        for _ in 0..4 {
            assert_eq!(b.reserve(later), Duration::ZERO);
        }
        let graph = GraphOptions::default();
        assert_eq!((graph.mailbox_requests, graph.mailbox_window), (10_000, Duration::from_secs(600)));
    }
    use chrono::TimeZone;

    #[test]
    fn retry_after_seconds_or_http_date() {
        let now = Utc.with_ymd_and_hms(2026, 3, 1, 12, 0, 0).unwrap();
        assert_eq!(parse_retry_after("7", now), Some(Duration::from_secs(7)));
        assert_eq!(parse_retry_after(" 0 ", now), Some(Duration::ZERO));
        assert_eq!(parse_retry_after("Sun, 01 Mar 2026 12:00:30 GMT", now), Some(Duration::from_secs(30)));
        assert_eq!(parse_retry_after("Sun, 01 Mar 2026 11:00:00 GMT", now), Some(Duration::ZERO));
        assert_eq!(parse_retry_after("soon", now), None);
        assert_eq!(parse_retry_after("1.5", now), Some(Duration::from_millis(1500)));
        // Absurd values from a server are capped (or ignored), never a panic or an overflow.
        assert_eq!(parse_retry_after("18446744073709551615", now), Some(MAX_RETRY_AFTER));
        assert_eq!(parse_retry_after("1e300", now), Some(MAX_RETRY_AFTER));
        assert_eq!(parse_retry_after("-1", now), None);
        assert_eq!(parse_retry_after("-0.5", now), None);
        assert_eq!(parse_retry_after("NaN", now), None);
        assert_eq!(parse_retry_after("inf", now), None);
        assert_eq!(parse_retry_after("Fri, 31 Dec 9999 23:59:59 GMT", now), Some(MAX_RETRY_AFTER));
    }

    #[test]
    fn backoff_steps() {
        let steps: Vec<u64> = (1..=8).map(|a| backoff(a).as_secs()).collect();
        assert_eq!(steps, vec![1, 2, 4, 8, 16, 32, 32, 32]);
    }

    #[test]
    fn api_errors_carry_code_message_retry_after_and_request_id() {
        let mut h = HeaderMap::new();
        h.insert("retry-after", "3".parse().unwrap());
        h.insert("request-id", "rid-1".parse().unwrap());
        let body = br#"{"error":{"code":"ApplicationThrottled","message":"Application is over its MailboxConcurrency limit."}}"#;
        let e = api_error("get event", 429, &h, body, Utc::now());
        assert_eq!(
            e,
            GraphError::Api {
                operation: "get event",
                status: 429,
                code: Some("ApplicationThrottled".into()),
                message: "Application is over its MailboxConcurrency limit.".into(),
                retry_after: Some(Duration::from_secs(3)),
                request_id: Some("rid-1".into()),
            }
        );
        let e = api_error("get event", 502, &HeaderMap::new(), b"", Utc::now());
        assert!(e.to_string().contains("HTTP 502: Bad Gateway"), "{e}");
    }

    /// A delta link to `addr` carrying a state token.
    fn delta_link_request(addr: std::net::SocketAddr) -> GraphRequest {
        let base = Url::parse(&format!("http://{addr}")).unwrap();
        let link = format!("http://{addr}/v1.0/users/a@contoso.com/calendarView/delta?$deltatoken=SECRETISH");
        calendar_view_delta::request_link(&base, &link, 10).unwrap()
    }

    fn assert_no_state_token(e: &GraphError) {
        for text in [e.to_string(), format!("{e:?}"), format!("{:?}", e.classify())] {
            assert!(!text.contains("SECRETISH"), "{text}");
        }
    }

    #[tokio::test]
    async fn transport_errors_never_show_the_state_token() {
        use tokio::io::AsyncWriteExt;
        let http = reqwest::Client::builder().timeout(Duration::from_secs(10)).build().unwrap();

        // Nobody listens: connection refused.
        let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = closed.local_addr().unwrap();
        drop(closed);
        let Err(f) = attempt_once(&http, &delta_link_request(addr), None, None).await else {
            panic!("a closed port answered")
        };
        assert!(matches!(&f.error, GraphError::Transport { url, .. } if url.ends_with("/calendarView/delta")));
        assert!(f.error.to_string().contains("/calendarView/delta"), "{}", f.error);
        assert_no_state_token(&f.error);

        // The connection is accepted and closed without an answer; then one whose body
        // breaks off.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let (sock, _) = listener.accept().await.unwrap();
            drop(sock);
            let (mut sock, _) = listener.accept().await.unwrap();
            let mut buf = [0u8; 4096];
            let _ = tokio::io::AsyncReadExt::read(&mut sock, &mut buf).await;
            let partial =
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 1000\r\n\r\n{\"value\":[";
            let _ = sock.write_all(partial.as_bytes()).await;
            let _ = sock.shutdown().await;
        });
        let Err(f) = attempt_once(&http, &delta_link_request(addr), None, None).await else {
            panic!("a dropped connection answered")
        };
        assert!(matches!(f.error, GraphError::Transport { .. }), "{}", f.error);
        assert_no_state_token(&f.error);
        let Err(f) = attempt_once(&http, &delta_link_request(addr), None, None).await else {
            panic!("a broken body was read")
        };
        assert!(matches!(f.error, GraphError::Body { .. }), "{}", f.error);
        assert_no_state_token(&f.error);
    }

    #[test]
    fn settings_are_validated_with_the_fix() {
        let mut s = GraphSettings {
            tenant_id: "t".into(),
            client_id: "c".into(),
            authority_url: "https://login.microsoftonline.com".into(),
            graph_url: "https://graph.microsoft.com".into(),
        };
        assert!(GraphClient::new(&s, Secret::new("x"), GraphOptions::default()).is_ok());
        let e = GraphClient::new(&s, Secret::new(""), GraphOptions::default()).unwrap_err();
        assert!(e.to_string().contains("client secret is empty"), "{e}");
        s.graph_url = "graph.microsoft.com".into();
        let e = GraphClient::new(&s, Secret::new("x"), GraphOptions::default()).unwrap_err();
        assert!(e.to_string().contains("graph_url"), "{e}");
    }
}
