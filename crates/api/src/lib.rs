//! # calbridge-api — the host application's interface
//!
//! An axum [`router`] over an [`ApiState`], served by [`serve`] on any listener until a
//! shutdown future completes (tests bind 127.0.0.1:0). Nothing here decides sync: handlers
//! validate input, call the `Store`, the `Engine` or a `Connector`, and render the result.
//!
//! ## Resources (`routes/`)
//!
//! | path | what |
//! |---|---|
//! | `/connections`, `/connections/{id}` | CRUD; the secret is write-only, sealed at rest (engine's `secrets`), never echoed; `DELETE ?remove_from_exchange=true` also deletes the events calbridge created in Exchange |
//! | `/connections/{id}/test` | the connection's [`Connector`](calbridge_core::connector::Connector) diagnosis: every check with result, detail and a hint naming the fix |
//! | `/connections/{id}/rooms/import` | room discovery: every room Exchange lists linked as a calendar, room lists as sites |
//! | `/sites`, `/sites/{id}` | groups of calendars on one connection |
//! | `/calendars`, `/calendars/{id}`, `…/verify` | mailbox links (person, room, equipment), verified against Exchange (`Remote::mailbox`) |
//! | `/calendars/{id}/events`, `/events/{id}` | events by range; local events created, replaced, deleted; Exchange's are read-only (409) |
//! | `/availability`, `/availability/free-slots` | merged busy intervals; free slots for participants, optionally with a free room |
//! | `/calendars/{id}/sync`, `/connections/{id}/sync`, `/sync/status` | run a sync now; the last run per calendar with error and hint |
//! | `/webhooks`, `/webhooks/{id}` | endpoints with their `whsec_` secret (shown once) |
//! | `/healthz`, `/metrics`, `/openapi.json` | liveness (no key), Prometheus text, the OpenAPI document generated from the handlers (utoipa) |
//! | `/ui/`, `/ui/login`, `/ui/session`, `/ui/logout` | the admin console (`console.rs`, files in `ui/`): static pages that call this API with a session cookie; not part of the OpenAPI document |
//!
//! ## Cross-cutting rules
//!
//! - **Auth** (`auth.rs`): `Authorization: Bearer cbk_…`, looked up by SHA-256; scopes read <
//!   write < admin; 401 without or with a wrong key, 403 when the scope is too small. Each
//!   handler names its scope in its signature (`Authorized<WriteScope>`), checked before the
//!   path, query or body is read. Only `/healthz` is open (the Exchange notification endpoint
//!   will be too), and the console's static files and sign-in. The console's session cookie
//!   counts as the admin scope, with a CSRF token required on every change (`console.rs`).
//! - **Errors** (`error.rs`, `extract.rs`): every failure is RFC 9457 problem details
//!   (`application/problem+json`) whose `detail` says what to do; bodies refuse unknown fields;
//!   malformed JSON is 400, a wrong media type 415, a well-formed but invalid value 422 naming
//!   the field; bad path ids 400. Store failures are 503, Exchange failures 502; a 500 is a bug.
//! - **Secrets**: connection secrets and webhook signing secrets are sealed with the master
//!   key before they reach the store and opened only to talk to Exchange or to sign; no view
//!   type has a field for them.
//! - **Outbound hosts**: when [`ApiConfig::outbound_hosts`] is set, connection URLs and webhook
//!   URLs must name one of those hosts (checked on input and again before every request).
//! - **Webhooks** (`webhooks.rs`): a local event change and its messages are written in one
//!   store transaction (`*_notify`), so a message exists exactly when its change does. The
//!   delivery worker signs each message (Standard Webhooks: `webhook-id`,
//!   `webhook-timestamp`, `webhook-signature: v1,<base64 HMAC-SHA256>`), retries failures
//!   with exponential backoff and gives up after `webhook_max_attempts`; delivery is
//!   at-least-once, the message id is the receiver's deduplication key.
//! - **Sync** (`sync.rs`): triggers and the periodic loop run the same per-calendar path,
//!   one run per calendar at a time, and record a `SyncStatus` with an actionable hint.
//! - **Change notifications** (`notifications.rs`): Graph's arrive at `/notifications/graph`
//!   (with a public URL); EWS connections are watched over connections calbridge opens
//!   (streaming, else pull, else polling). Both queue a calendar's sync; calendars notified
//!   either way are only reconciled every `reconcile_interval`.
//! - **Connection kinds**: the API serves the kinds it is given connectors for
//!   ([`ApiState::new`]). A new kind (EWS) is its connector in the binary's list, a variant of
//!   `dto::Settings` with its arms in `Settings::from_core`, `routes/connections.rs`'s
//!   `validate_input` and `urls_of` (the compiler points at each).
//! - **Metrics** (`metrics.rs`): a hand-written Prometheus text exporter over a few atomic
//!   counters — the handful of series calbridge exports does not justify a metrics framework.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use calbridge_core::connector::Connector;
use calbridge_core::model::{CalendarId, Connection, Secret};
use calbridge_core::policy::FreeBusyPolicy;
use calbridge_core::remote::Remote;
use calbridge_core::store::{SecretOwner, Store};
use calbridge_engine::secrets::MasterKey;
use calbridge_engine::Engine;

pub mod auth;
pub mod console;
pub mod dto;
pub mod error;
pub mod extract;
mod int;
pub mod leases;
pub mod metrics;
pub mod notifications;
pub mod openapi;
mod routes;
pub mod sync;
pub mod webhooks;

pub use routes::availability::MAX_CALENDARS as MAX_AVAILABILITY_CALENDARS;

use error::ApiError;

/// How the API behaves.
#[derive(Clone, Debug)]
pub struct ApiConfig {
    /// When set, the only hosts calbridge sends requests to for connections and webhooks.
    pub outbound_hosts: Option<Vec<String>>,
    /// Which events block time.
    pub policy: FreeBusyPolicy,
    /// Attempts per webhook message and endpoint before it is marked failed.
    pub webhook_max_attempts: u32,
    /// The first retry's delay; each further one doubles, up to six hours.
    pub webhook_retry_base: Duration,
    /// Timeout of one webhook request.
    pub webhook_timeout: Duration,
    /// Deleting a booking made in Exchange from a room or equipment calendar declines it in
    /// the resource's name (otherwise such events are read-only). Off by default.
    pub decline_on_delete: bool,
    /// How class sessions invite their learners unless a request says otherwise.
    pub learners: dto::LearnerInvites,
    /// The scheduled sync's interval, shown by the console (`None`: syncs run on request).
    pub sync_interval: Option<Duration>,
    /// The base URL at which Exchange reaches this server (`https://calbridge.contoso.com`):
    /// when set, calbridge subscribes to change notifications of the calendars of connections
    /// that support them (Graph), at `{public_url}/notifications/graph`. `None`: it polls.
    pub public_url: Option<String>,
    /// How often calendars with live notifications are reconciled all the same (a full check
    /// that catches anything missed); the others sync every `sync_interval`.
    pub reconcile_interval: Duration,
    /// How often subscriptions are checked: made where missing, renewed before they expire
    /// (and which calendars EWS connections watch).
    pub subscription_check: Duration,
    /// EWS connections' change notifications (streaming, else pull, else polling), which need
    /// no public URL. Off unless set (`calbridge serve` turns it on by default).
    pub ews_notifications: bool,
    /// How often EWS pull subscriptions are read when the server refuses streaming.
    pub ews_pull_interval: Duration,
    /// The most long-lived EWS streaming connections per Exchange server and connection (each
    /// carries up to 200 mailboxes; never more than a quarter of `max_connections`).
    pub ews_streaming_connections: usize,
    /// This process's name among the workers sharing the store.
    pub worker_id: String,
    /// With several workers on one database: how long a calendar's lease lasts without a
    /// heartbeat (renewed every third of it). `None`: this process syncs every calendar.
    pub lease_ttl: Option<Duration>,
}

impl Default for ApiConfig {
    fn default() -> Self {
        ApiConfig {
            outbound_hosts: None,
            policy: FreeBusyPolicy::default(),
            webhook_max_attempts: 12,
            webhook_retry_base: Duration::from_secs(10),
            webhook_timeout: Duration::from_secs(10),
            decline_on_delete: false,
            learners: dto::LearnerInvites::default(),
            sync_interval: None,
            public_url: None,
            reconcile_interval: Duration::from_secs(3600),
            subscription_check: Duration::from_secs(60),
            ews_notifications: false,
            ews_pull_interval: Duration::from_secs(15),
            ews_streaming_connections: 2,
            worker_id: "calbridge".into(),
            lease_ttl: None,
        }
    }
}

/// Everything a handler needs. Cheap to clone.
#[derive(Clone)]
pub struct ApiState {
    inner: Arc<Inner>,
}

struct Inner {
    store: Arc<dyn Store>,
    engine: Engine,
    connectors: Vec<Arc<dyn Connector>>,
    master_key: MasterKey,
    config: ApiConfig,
    metrics: metrics::Metrics,
    /// Secrets of connections configured outside the API (the configuration file and its
    /// environment), by connection name; a sealed secret in the store wins.
    fallback_secrets: HashMap<String, Secret>,
    calendar_locks: Mutex<HashMap<CalendarId, Arc<tokio::sync::Mutex<()>>>>,
    outbox: tokio::sync::Notify,
    http: reqwest::Client,
    subscriptions: webhooks::Subscriptions,
    sessions: console::Sessions,
    /// Calendars a notification asked to sync, and the wake-ups of their worker and of the
    /// subscription keeper.
    sync_queue: notifications::SyncQueue,
    /// The calendars this worker holds (with `lease_ttl`), by id.
    leases: Mutex<HashMap<CalendarId, calbridge_core::store::Lease>>,
    /// Each connection's adapter, with a digest of the settings and secret it was made with:
    /// syncs share its token, its connections and its per-mailbox budgets.
    remotes: Mutex<HashMap<i64, KeptRemote>>,
    /// How calendars of EWS connections learn of changes (see `notifications`).
    watch_modes: Mutex<HashMap<CalendarId, calbridge_core::remote::WatchMode>>,
}

/// A connection's adapter and the digest of the settings and secret it was made with.
type KeptRemote = (String, Arc<dyn Remote>);

impl ApiState {
    /// `connectors` holds one connector per connection kind (`graph`, `ews`, ...).
    pub fn new(
        engine: Engine,
        connectors: Vec<Arc<dyn Connector>>,
        master_key: MasterKey,
        config: ApiConfig,
    ) -> ApiState {
        // The API's engine reports what a sync changes as webhook messages.
        let subscriptions = webhooks::Subscriptions::default();
        let notifier =
            Arc::new(webhooks::EventNotifier { policy: config.policy, subscriptions: subscriptions.clone() });
        let engine = Engine::new(
            engine.store().clone(),
            calbridge_engine::EngineConfig { notifier: Some(notifier), ..engine.config().clone() },
        );
        let http = reqwest::Client::builder()
            .timeout(config.webhook_timeout)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("calbridge-webhooks/", env!("CARGO_PKG_VERSION")))
            .build()
            .expect("the HTTP client builds");
        ApiState {
            inner: Arc::new(Inner {
                store: engine.store().clone(),
                engine,
                connectors,
                master_key,
                config,
                metrics: metrics::Metrics::default(),
                fallback_secrets: HashMap::new(),
                calendar_locks: Mutex::new(HashMap::new()),
                outbox: tokio::sync::Notify::new(),
                http,
                subscriptions,
                sessions: console::Sessions::default(),
                sync_queue: notifications::SyncQueue::default(),
                leases: Mutex::new(HashMap::new()),
                remotes: Mutex::new(HashMap::new()),
                watch_modes: Mutex::new(HashMap::new()),
            }),
        }
    }

    /// Adds secrets of connections configured outside the API, by connection name.
    pub fn with_fallback_secrets(self, secrets: HashMap<String, Secret>) -> ApiState {
        let mut inner = Arc::try_unwrap(self.inner).unwrap_or_else(|_| panic!("with_fallback_secrets before sharing"));
        inner.fallback_secrets = secrets;
        ApiState { inner: Arc::new(inner) }
    }

    pub fn store(&self) -> &Arc<dyn Store> {
        &self.inner.store
    }
    pub fn engine(&self) -> &Engine {
        &self.inner.engine
    }
    pub fn master_key(&self) -> &MasterKey {
        &self.inner.master_key
    }
    /// Whether this process may sync `calendar`: always without leases; with them, while it
    /// holds the calendar's lease (then the lease to commit under).
    pub fn sync_right(&self, calendar: CalendarId) -> leases::SyncRight {
        if self.inner.config.lease_ttl.is_none() {
            return leases::SyncRight::Alone;
        }
        match self.inner.leases.lock().expect("lease lock").get(&calendar) {
            Some(l) => leases::SyncRight::Held(l.clone()),
            None => leases::SyncRight::Elsewhere,
        }
    }

    /// Replaces the set of calendars this worker holds.
    pub(crate) fn set_leases(&self, leases: Vec<calbridge_core::store::Lease>) {
        *self.inner.leases.lock().expect("lease lock") = leases.into_iter().map(|l| (l.calendar_id, l)).collect();
    }

    /// How calendars of EWS connections learn of changes, by calendar.
    pub(crate) fn watch_modes(
        &self,
    ) -> std::sync::MutexGuard<'_, HashMap<CalendarId, calbridge_core::remote::WatchMode>> {
        self.inner.watch_modes.lock().expect("watch modes")
    }

    pub(crate) fn sync_queue(&self) -> &notifications::SyncQueue {
        &self.inner.sync_queue
    }
    pub fn config(&self) -> &ApiConfig {
        &self.inner.config
    }
    pub fn metrics(&self) -> &metrics::Metrics {
        &self.inner.metrics
    }
    /// The admin console's sessions.
    pub fn sessions(&self) -> &console::Sessions {
        &self.inner.sessions
    }
    pub(crate) fn http(&self) -> &reqwest::Client {
        &self.inner.http
    }

    /// The messages someone subscribes to, of `notes`.
    pub fn subscribed(
        &self,
        notes: Vec<calbridge_core::store::Notification>,
    ) -> Vec<calbridge_core::store::Notification> {
        self.inner.subscriptions.filter(notes)
    }

    /// Reads which message types the registered endpoints subscribe to.
    pub async fn refresh_subscriptions(&self) -> Result<(), calbridge_core::store::StoreError> {
        let hooks = self.store().webhooks().await?;
        self.inner.subscriptions.set(hooks.into_iter().flat_map(|w| w.events));
        Ok(())
    }

    /// Wakes the webhook worker: messages were queued.
    pub fn outbox_changed(&self) {
        self.inner.outbox.notify_one();
    }

    pub(crate) async fn outbox_wait(&self, poll: Duration) {
        let _ = tokio::time::timeout(poll, self.inner.outbox.notified()).await;
    }

    pub(crate) fn calendar_lock(&self, id: CalendarId) -> Arc<tokio::sync::Mutex<()>> {
        self.inner.calendar_locks.lock().expect("calendar locks").entry(id).or_default().clone()
    }

    /// The connection kinds this server can serve.
    pub fn kinds(&self) -> Vec<&'static str> {
        self.inner.connectors.iter().map(|c| c.kind()).collect()
    }

    pub fn connector(&self, kind: &str) -> Result<Arc<dyn Connector>, ApiError> {
        self.inner.connectors.iter().find(|c| c.kind() == kind).cloned().ok_or_else(|| {
            ApiError::conflict(format!(
                "this calbridge has no connector for connections of kind {kind}; it serves: {}",
                self.kinds().join(", ")
            ))
        })
    }

    /// Whether `host` may be sent requests (see [`ApiConfig::outbound_hosts`]).
    pub fn host_allowed(&self, host: &str) -> bool {
        match &self.inner.config.outbound_hosts {
            None => true,
            Some(hosts) => hosts.iter().any(|h| h.eq_ignore_ascii_case(host)),
        }
    }

    /// The connection's secret: the sealed one in the store, else one configured outside the
    /// API. `None` when there is none.
    pub async fn connection_secret(&self, c: &Connection) -> Result<Option<Secret>, ApiError> {
        match self.store().secret(&SecretOwner::Connection(c.id)).await? {
            Some(sealed) => match self.master_key().open(&SecretOwner::Connection(c.id), &sealed) {
                Ok(s) => Ok(Some(s)),
                Err(e) => Err(ApiError::conflict(e.to_string())),
            },
            None => Ok(self.inner.fallback_secrets.get(&c.name).cloned()),
        }
    }

    /// The connection's secret, or a 409 that says how to set one.
    pub async fn require_secret(&self, c: &Connection) -> Result<Secret, ApiError> {
        self.connection_secret(c).await?.ok_or_else(|| {
            ApiError::conflict(format!(
                "connection {} has no secret stored. Fix: replace it with PUT /connections/{} including `secret`",
                c.name, c.id
            ))
        })
    }

    /// An adapter for the connection.
    ///
    /// The adapter is kept and shared by every sync of the connection (one token, one pool of
    /// connections, one set of per-mailbox budgets, at most `max_threads` requests in flight)
    /// until the connection's settings or secret change.
    pub async fn remote(&self, c: &Connection) -> Result<Arc<dyn Remote>, ApiError> {
        let secret = self.require_secret(c).await?;
        self.check_connection_hosts(c)?;
        let settings = serde_json::to_string(&c.settings).unwrap_or_default();
        let digest = auth::hash_token(&format!("{}\n{}\n{settings}\n{}", c.max_threads, c.name, secret.expose()));
        if let Some((d, remote)) = self.inner.remotes.lock().expect("remotes lock").get(&c.id) {
            if *d == digest {
                return Ok(remote.clone());
            }
        }
        let remote = self
            .connector(c.settings.kind())?
            .remote(c, secret)
            .map_err(|e| ApiError::conflict(format!("connection {} cannot be used: {e}", c.name)))?;
        self.inner.remotes.lock().expect("remotes lock").insert(c.id, (digest, remote.clone()));
        Ok(remote)
    }

    pub(crate) fn check_connection_hosts(&self, c: &Connection) -> Result<(), ApiError> {
        for url in routes::connections::urls_of(&c.settings) {
            let host = url::Url::parse(&url).ok().and_then(|u| u.host_str().map(str::to_string)).unwrap_or_default();
            if !self.host_allowed(&host) {
                return Err(ApiError::conflict(format!(
                    "connection {} points at {url}, whose host is not among the allowed outbound hosts; change the URL \
                     or the server's allowed hosts",
                    c.name
                )));
            }
        }
        Ok(())
    }
}

/// The whole HTTP surface.
pub fn router(state: ApiState) -> Router {
    routes::router(state)
}

/// Serves the API on `listener` until `shutdown` completes, then finishes the requests in
/// flight.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: ApiState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    state.refresh_subscriptions().await.map_err(std::io::Error::other)?;
    axum::serve(listener, router(state)).with_graceful_shutdown(shutdown).await
}
