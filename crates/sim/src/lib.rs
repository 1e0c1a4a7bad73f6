//! # calbridge-sim — an Exchange stand-in: Microsoft Graph, EWS and the token endpoint
//!
//! A faithful, offline simulator of what calbridge talks to in Exchange: the identity
//! platform's client-credentials token endpoint (with Entra's AADSTS errors and the
//! OpenID/instance discovery MSAL needs), the Microsoft Graph v1.0 calendar surface (users,
//! calendars, events, `calendarView`, `calendarView/delta`, `getSchedule`) and Exchange Web
//! Services on the same mailboxes (Basic, NTLM and OAuth sign-in; the calendar operations,
//! the directory and free/busy). It is seeded from a [`Scenario`] (TOML), and powers
//! calbridge's tests, demo and benchmarks; Microsoft's own SDKs (msal, azure-identity,
//! msgraph-sdk) and Python's exchangelib work against it unchanged.
//!
//! ## Architecture
//!
//! ```text
//! scenario.rs, generate.rs   TOML → Scenario (+ a deterministic generated organisation)
//! state.rs                   mailboxes, events (Graph wire shape), change log per mailbox
//! booking.rs                 meeting copies in attendee mailboxes; room/equipment processing
//! recurrence.rs, tz.rs, ids.rs   series expansion, zones (IANA/Windows), Exchange-shaped ids
//! auth.rs                    JWT-shaped access tokens (HS256 with the simulator's key)
//! ntlm.rs                    NTLM's server side: challenge messages, NTLMv2 verification
//! delta.rs                   opaque, signed sync-state tokens; delta pages from the change log
//! faults.rs                  fault injection (the next n requests, or a seeded random mode
//!                            drawing a fault per request) and request statistics
//! http.rs                    Graph error bodies, request ids, Prefer, query and base URL
//! server.rs, tls.rs          the router, middleware (faults, auth, throttling), serve loop, TLS
//! graph/*.rs                 one file per endpoint, each opening with Microsoft's doc link
//! ews/*.rs                   the EWS face (/EWS/Exchange.asmx): Basic, NTLM (per connection)
//!                            and Bearer sign-in, impersonation, GetFolder, FindItem, GetItem,
//!                            CreateItem, UpdateItem, DeleteItem, SyncFolderItems, ConvertId,
//!                            ResolveNames, GetRoomLists, GetRooms, GetUserAvailability,
//!                            GetServerTimeZones, Subscribe, GetStreamingEvents (streamed),
//!                            GetEvents, Unsubscribe, on the same mailboxes and change log
//! ews/notifications.rs       EWS pull and streaming subscriptions, their lifetimes and controls
//! control.rs                 /_sim/*: fault injection, EWS notification controls, statistics,
//!                            subscriptions and Outlook-like changes for other processes
//!                            (`calbridge bench`)
//! outlook.rs                 acting as a person in Outlook (for tests)
//! ```
//!
//! ## URL layout (one base URL serves both the identity platform and Graph)
//!
//! ```text
//! POST /{tenant id|domain}/oauth2/v2.0/token                  client credentials
//! GET  /{tenant}/v2.0/.well-known/openid-configuration         OIDC discovery (MSAL)
//! GET  /common/discovery/instance, /{tenant}/discovery/v2.0/keys
//! GET  /v1.0/users, /v1.0/users/{id|upn}                       ($select)
//! GET  /v1.0/users/{u}/calendars, /calendar, /calendars/{cal}
//! GET|POST /v1.0/users/{u}[/calendar|/calendars/{cal}]/events
//! GET|PATCH|DELETE /v1.0/users/{u}[/calendar|/calendars/{cal}]/events/{id}
//! GET  /v1.0/users/{u}[/calendar|/calendars/{cal}]/calendarView[/delta]
//! POST /v1.0/users/{u}/calendar/getSchedule
//! POST /v1.0/$batch                                             JSON batching (≤ 20, 4 at a time)
//! POST /EWS/Exchange.asmx                                      EWS (scenario `[[ews_accounts]]`)
//! POST /_sim/faults, GET /_sim/stats, GET /_sim/health         (scenario `sim_control`)
//! GET /_sim/subscriptions, POST /_sim/outlook/changes
//! ```
//!
//! Every `/v1.0` request passes, in order: the random mode's fault (when on: 429, 503, a
//! reset connection, an expired sync state, a concurrent edit by a person), injected 5xx,
//! injected 429, the bearer token (401 `InvalidAuthenticationToken`), the app's roles (403),
//! the mailbox concurrency limit
//! (429 `ApplicationThrottled` with `Retry-After`), injected latency, the handler, and for
//! event mutations an injected dropped response (the change is applied, the connection is
//! closed without an answer; the random mode's lost response too).
//!
//! Design rules: the simulator never depends on calbridge-core (it must not share calbridge's
//! domain bugs); it uses Graph's wire types only, compiled in from
//! `crates/graph/src/types.rs` as [`wire`] (a crate dependency on calbridge-graph would pull
//! calbridge-core in). Identifiers are deterministic (the same scenario and anchor date give
//! the same ids); the real clock is read only at the edges: HTTP handlers, [`Outlook`], and
//! `anchor = "today"` when a scenario is loaded. Seeding uses the anchor date as "now". State is one `Mutex` (never held across an `.await`); a snapshot of it
//! (`save_state`/`load_state`) keeps delta tokens valid.

// Struct literals of wire types end in `..Default::default()` even when every field is given,
// so that fields added to crates/graph/src/types.rs later do not break this crate.
#![allow(clippy::needless_update)]

/// Graph's wire types: `crates/graph/src/types.rs`, compiled into this crate (its lints are
/// the graph crate's business).
#[path = "../../graph/src/types.rs"]
#[allow(clippy::all)]
pub mod wire;

/// EWS's wire types: `crates/ews/src/wire`, compiled into this crate (calbridge-ews as a
/// crate will depend on calbridge-core).
#[path = "../../ews/src/wire/mod.rs"]
#[allow(clippy::all)]
pub mod ews_wire;

mod auth;
mod booking;
mod control;
mod delta;
mod error;
mod ews;
mod faults;
mod generate;
mod graph;
mod http;
mod ids;
mod notify;
mod ntlm;
mod outlook;
mod recurrence;
mod scenario;
mod server;
mod state;
mod tls;
mod tz;

use std::collections::HashMap;
use std::future::Future;
use std::path::Path;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, NaiveTime, TimeZone, Utc};
use serde::{Deserialize, Serialize};

pub use control::{ChangeRequest, ChangedEvent, SubscriptionInfo};
pub use error::SimError;
pub use faults::{FailFault, FaultKind, FaultRequest, Faults, RandomFault, SimStats, ThrottleFault};
pub use outlook::{NewEvent, Outlook};
pub use scenario::{
    AppSpec, AttendeeSpec, EventSpec, EwsAccountSpec, GenerateSpec, MailboxKind, MailboxSpec, RecurrenceSpec,
    RoomListSpec, Scenario, TenantSpec, DEMO_TOML,
};
pub use server::RunningSim;
pub use tls::SimTls;

use faults::StatsCounters;
use state::{Mailbox, State};

/// A mailbox as [`Simulator::mailboxes`] lists it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MailboxInfo {
    pub email: String,
    pub name: String,
    /// `person`, `room` or `equipment`.
    pub kind: String,
    pub job_title: Option<String>,
    pub capacity: Option<u32>,
}

/// The first app's credentials and the tenant, for configuring a client.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SimCredentials {
    pub tenant_id: String,
    pub tenant_domain: String,
    pub client_id: String,
    pub client_secret: String,
}

/// An EWS subscription the simulator holds.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct EwsSubscriptionInfo {
    pub id: String,
    /// The mailbox's address.
    pub mailbox: String,
    /// Streaming (else pull).
    pub streaming: bool,
}

/// A simulated Exchange Online organisation. Cheap to clone (an `Arc` inside).
#[derive(Clone)]
pub struct Simulator {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    /// Settings (tenant, apps, limits); its events/generate were consumed at creation.
    pub scenario: Scenario,
    pub state: Mutex<State>,
    pub faults: Faults,
    pub stats: StatsCounters,
    pub inflight: Mutex<HashMap<String, usize>>,
    /// EWS pull and streaming subscriptions, and their controls.
    pub ews_subscriptions: ews::notifications::Registry,
    pub signing_key: Vec<u8>,
    pub instance_id: String,
}

#[derive(Serialize, Deserialize)]
struct Snapshot {
    format: String,
    scenario: Scenario,
    delta_epoch: u64,
    state: State,
}

const SNAPSHOT_FORMAT: &str = "calbridge-sim-state/1";

fn random_hex(bytes: usize) -> String {
    let mut out = String::new();
    while out.len() < bytes * 2 {
        out.push_str(&uuid::Uuid::new_v4().simple().to_string());
    }
    out.truncate(bytes * 2);
    out
}

fn hex_decode(s: &str) -> Vec<u8> {
    (0..s.len() / 2).filter_map(|i| u8::from_str_radix(&s[2 * i..2 * i + 2], 16).ok()).collect()
}

impl Simulator {
    /// Builds the organisation of a scenario: mailboxes (listed and generated) and events
    /// (listed and generated), with meeting copies and room decisions already processed.
    pub fn new(scenario: &Scenario) -> Result<Simulator, SimError> {
        let mut specs = scenario.mailboxes.clone();
        let anchor = scenario.anchor_date();
        if let Some(g) = &scenario.generate {
            let extra = generate::mailboxes(g, &scenario.tenant.domain, &specs);
            specs.extend(extra);
        }
        let mailboxes: Vec<Mailbox> =
            specs.iter().map(|m| Mailbox::from_spec(m, &scenario.tenant.id, &scenario.time_zone)).collect();
        let mut state = State::new(uuid::Uuid::new_v4().to_string(), random_hex(32), mailboxes);
        let mut events = scenario.events.clone();
        if let (Some(g), Some(anchor)) = (&scenario.generate, anchor) {
            let zone = tz::resolve(&scenario.time_zone).unwrap_or(chrono_tz::UTC);
            events.extend(generate::events(g, anchor, &scenario.time_zone, zone, &specs));
        }
        // "Now" while seeding: the anchor date (so the same anchor gives the same content).
        let seed_now: DateTime<Utc> = match anchor {
            Some(a) => Utc.from_utc_datetime(&a.and_time(NaiveTime::MIN)),
            None => Utc.from_utc_datetime(&Utc::now().date_naive().and_time(NaiveTime::MIN)),
        };
        for (i, spec) in events.iter().enumerate() {
            let key = spec.mailbox.to_ascii_lowercase();
            let ev = outlook::spec_to_wire(spec, &state)
                .map_err(|e| SimError::scenario(format!("events[{i}]"), e.message))?;
            let (id, _) = state
                .create_event(&key, ev, seed_now)
                .map_err(|e| SimError::scenario(format!("events[{i}]"), e.message))?;
            if !spec.attendees.is_empty() {
                booking::sync_meeting(&mut state, &key, &id, true, seed_now);
            }
        }
        let mut settings = scenario.clone();
        settings.events.clear();
        settings.generate = None;
        settings.mailboxes = specs;
        Ok(Simulator::from_parts(settings, state, 0))
    }

    fn from_parts(scenario: Scenario, state: State, epoch: u64) -> Simulator {
        let signing_key = hex_decode(&state.signing_key);
        let instance_id = state.instance_id.clone();
        let faults = Faults::default();
        faults.delta_epoch.store(epoch, std::sync::atomic::Ordering::SeqCst);
        Simulator {
            inner: Arc::new(Inner {
                scenario,
                state: Mutex::new(state),
                faults,
                stats: StatsCounters::default(),
                inflight: Mutex::new(HashMap::new()),
                ews_subscriptions: Default::default(),
                signing_key,
                instance_id,
            }),
        }
    }

    /// The whole HTTP surface: token endpoint, discovery, Graph v1.0, `/_sim`.
    pub fn router(&self) -> axum::Router {
        server::router(self.clone())
    }

    /// Serves plain HTTP on `listener` until `shutdown` completes.
    pub async fn serve(
        &self,
        listener: tokio::net::TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        server::serve(self.clone(), listener, None, shutdown).await
    }

    /// Serves HTTPS (and plain HTTP, told apart by the first byte) on `listener`.
    pub async fn serve_tls(
        &self,
        listener: tokio::net::TcpListener,
        tls: &SimTls,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let config = tls.server_config().map_err(std::io::Error::other)?;
        server::serve(self.clone(), listener, Some(config), shutdown).await
    }

    /// Binds 127.0.0.1:0 and serves plain HTTP in a background task.
    pub async fn start(&self) -> std::io::Result<RunningSim> {
        server::start(self.clone(), None).await
    }

    /// Binds 127.0.0.1:0 and serves HTTPS with `tls` (plain HTTP works on the same port).
    pub async fn start_tls(&self, tls: &SimTls) -> std::io::Result<RunningSim> {
        server::start(self.clone(), Some(tls.clone())).await
    }

    /// Writes a JSON snapshot: settings, mailboxes, events, change logs, token keys and the
    /// sync-state epoch. A simulator loaded from it accepts the tokens this one issued.
    pub fn save_state(&self, path: &Path) -> Result<(), SimError> {
        let snapshot = Snapshot {
            format: SNAPSHOT_FORMAT.into(),
            scenario: self.inner.scenario.clone(),
            delta_epoch: self.inner.faults.epoch(),
            state: self.inner.state.lock().unwrap().clone(),
        };
        let text = serde_json::to_vec(&snapshot)
            .map_err(|e| SimError::Snapshot { path: path.to_path_buf(), message: e.to_string() })?;
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, text)
            .and_then(|_| std::fs::rename(&tmp, path))
            .map_err(|source| SimError::Io { path: path.to_path_buf(), source })
    }

    /// Loads a snapshot written by [`Simulator::save_state`].
    pub fn load_state(path: &Path) -> Result<Simulator, SimError> {
        let text = std::fs::read(path).map_err(|source| SimError::Io { path: path.to_path_buf(), source })?;
        let snapshot: Snapshot = serde_json::from_slice(&text).map_err(|e| SimError::Snapshot {
            path: path.to_path_buf(),
            message: format!("{e} (is this a calbridge simulator state file?)"),
        })?;
        if snapshot.format != SNAPSHOT_FORMAT {
            return Err(SimError::Snapshot {
                path: path.to_path_buf(),
                message: format!("format '{}' is not '{SNAPSHOT_FORMAT}'", snapshot.format),
            });
        }
        Ok(Simulator::from_parts(snapshot.scenario, snapshot.state, snapshot.delta_epoch))
    }

    /// Tenant and the first app's client id and secret.
    pub fn credentials(&self) -> SimCredentials {
        let s = &self.inner.scenario;
        let app = &s.apps[0];
        SimCredentials {
            tenant_id: s.tenant.id.clone(),
            tenant_domain: s.tenant.domain.clone(),
            client_id: app.client_id.clone(),
            client_secret: app.client_secret.clone(),
        }
    }

    /// The scenario's EWS sign-ins (service accounts and people's own accounts).
    pub fn ews_accounts(&self) -> Vec<EwsAccountSpec> {
        self.inner.scenario.ews_accounts.clone()
    }

    /// Fault injection.
    /// The change-notification subscriptions: (id, mailbox address, notification URL).
    pub fn subscriptions(&self) -> Vec<(String, String, String)> {
        let state = self.inner.state.lock().unwrap();
        state
            .subscriptions
            .values()
            .map(|s| {
                let email = state.mailbox_by_key(&s.mailbox).map(|m| m.email.clone()).unwrap_or_default();
                (s.id.clone(), email, s.notification_url.clone())
            })
            .collect()
    }

    /// Sends a lifecycle notification (`reauthorizationRequired`, `subscriptionRemoved`,
    /// `missed`) for a subscription, as Graph does; `subscriptionRemoved` also ends it.
    /// `false` for an unknown subscription.
    pub fn lifecycle_event(&self, subscription: &str, event: &str) -> bool {
        self.inner.state.lock().unwrap().lifecycle_event(subscription, event)
    }

    /// EWS streaming subscriptions are refused (as by Exchange 2007, which has none):
    /// Subscribe with `StreamingSubscriptionRequest` and GetStreamingEvents answer the
    /// `ErrorInvalidRequest` fault. Pull subscriptions still work.
    pub fn ews_refuse_streaming(&self, on: bool) {
        self.inner.ews_subscriptions.set_refuse_streaming(on);
    }

    /// Every EWS Subscribe is refused (`ErrorInvalidSubscriptionRequest`).
    pub fn ews_refuse_subscriptions(&self, on: bool) {
        self.inner.ews_subscriptions.set_refuse_all(on);
    }

    /// The live EWS subscriptions.
    pub fn ews_subscriptions(&self) -> Vec<EwsSubscriptionInfo> {
        let state = self.inner.state.lock().unwrap();
        self.inner
            .ews_subscriptions
            .list()
            .into_iter()
            .map(|(id, key, streaming)| EwsSubscriptionInfo {
                id,
                mailbox: state.mailbox_by_key(&key).map(|m| m.email.clone()).unwrap_or(key),
                streaming,
            })
            .collect()
    }

    /// Drops every EWS subscription on a mailbox, as Exchange does when it moves the mailbox
    /// or restarts: their next use is `ErrorSubscriptionNotFound`. The number dropped.
    pub fn ews_drop_subscriptions(&self, mailbox: &str) -> usize {
        self.inner.ews_subscriptions.drop_mailbox(&mailbox.trim().to_ascii_lowercase())
    }

    /// The next read of a mailbox's EWS subscriptions reports lost events
    /// (`ErrorMissedNotificationEvents`) and ends them. The number marked.
    pub fn ews_miss_events(&self, mailbox: &str) -> usize {
        self.inner.ews_subscriptions.miss_mailbox(&mailbox.trim().to_ascii_lowercase())
    }

    /// GetStreamingEvents connections being streamed now.
    pub fn ews_open_streams(&self) -> usize {
        self.inner.ews_subscriptions.open_streams.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// How long the simulator's EWS notification "minute" lasts (60 s; shorter in tests):
    /// `ConnectionTimeout`, the keep-alive interval, and subscription lifetimes count in it.
    pub fn ews_notification_minute(&self, minute: std::time::Duration) {
        self.inner.ews_subscriptions.set_minute(minute);
    }

    pub fn faults(&self) -> &Faults {
        &self.inner.faults
    }

    /// Requests served so far.
    pub fn stats(&self) -> SimStats {
        self.inner.stats.snapshot()
    }

    /// Starts [`SimStats::most_in_flight`] over, from the requests being answered now.
    pub fn reset_most_in_flight(&self) {
        self.inner.stats.reset_most_in_flight();
    }

    /// Act as a person in Outlook: change mailboxes directly, as Exchange users would.
    pub fn outlook(&self) -> Outlook {
        Outlook::new(self.clone())
    }

    /// Every mailbox of the organisation, in scenario order, as a directory would list it.
    pub fn mailboxes(&self) -> Vec<MailboxInfo> {
        let state = self.inner.state.lock().unwrap();
        state
            .mailboxes
            .iter()
            .map(|m| MailboxInfo {
                email: m.email.clone(),
                name: m.name.clone(),
                kind: match m.kind {
                    MailboxKind::Person => "person",
                    MailboxKind::Room => "room",
                    MailboxKind::Equipment => "equipment",
                }
                .to_string(),
                job_title: m.job_title.clone(),
                capacity: m.capacity,
            })
            .collect()
    }

    /// The organizer account of generated meetings (`generate.organizer`), if the scenario
    /// names one: the natural default organizer of a connection to this organisation.
    pub fn organizer(&self) -> Option<String> {
        self.inner.scenario.generate.as_ref().and_then(|g| g.organizer.clone())
    }

    /// The addresses of all mailboxes, in scenario order.
    pub fn mailbox_addresses(&self) -> Vec<String> {
        self.inner.state.lock().unwrap().mailboxes.iter().map(|m| m.email.clone()).collect()
    }

    /// What a client needs to connect to this simulator served at `base` (`http(s)://host:port`),
    /// as the one JSON line `calbridge sim --json` and the `sim-server` example print: the
    /// Graph, token and EWS addresses, the app's credentials, the impersonating EWS account and
    /// the CA certificate file (over TLS), and every mailbox.
    pub fn connection_info(&self, base: &str, ca_cert_file: Option<String>) -> serde_json::Value {
        let creds = self.credentials();
        let account = self.ews_accounts().into_iter().find(|a| a.impersonation);
        serde_json::json!({
            "base_url": base,
            "authority_url": base,
            "graph_url": base,
            "ews_url": format!("{base}/EWS/Exchange.asmx"),
            "tenant_id": creds.tenant_id,
            "tenant_domain": creds.tenant_domain,
            "client_id": creds.client_id,
            "client_secret": creds.client_secret,
            "ews_username": account.as_ref().map(|a| a.username.clone()),
            "ews_password": account.as_ref().map(|a| a.password.clone()),
            "ca_cert_file": ca_cert_file,
            "mailboxes": self.mailbox_addresses(),
        })
    }
}

/// Completes when this process's standard input reaches its end (the parent that started the
/// simulator closed it or exited), so a simulator run as a child stops with its parent.
pub async fn stdin_closed() {
    use tokio::io::AsyncReadExt;
    let mut stdin = tokio::io::stdin();
    let mut buf = [0u8; 256];
    while let Ok(n) = stdin.read(&mut buf).await {
        if n == 0 {
            break;
        }
    }
}
