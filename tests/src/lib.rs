//! # calbridge-tests — the end-to-end harness
//!
//! Every end-to-end test gets a fresh world: the Exchange simulator serving real HTTP on
//! 127.0.0.1:0, a fresh SQLite file in a temporary directory, the real protocol client
//! (Microsoft Graph, or EWS signed in as a service account with impersonation) and the real
//! engine, wired as the `calbridge` binary wires them. Nothing of calbridge is mocked; tests
//! act on Exchange as a person in Outlook would, through the simulator's `outlook()`.
//!
//! [`Protocol`] picks the adapter, so one test body runs over both protocols (the `both!`
//! macro of the sync suite).

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use chrono::Utc;

use calbridge_core::model::*;
use calbridge_core::remote::{MailboxInfo, Remote, RemoteCalendar, RemoteError, RoomInfo};
use calbridge_core::store::{NewCalendar, NewConnection, Store};
use calbridge_core::sync::{ChangePage, Confirmed, Cursor, PushChange, RemoteItem, Window};
use calbridge_engine::{CalendarReport, Engine, EngineConfig};
use calbridge_ews::{EwsClient, EwsConnector, EwsOptions, EwsRemote};
use calbridge_graph::client::{GraphClient, GraphOptions};
use calbridge_graph::remote::GraphRemote;
use calbridge_sim::{RunningSim, Scenario, Simulator};

pub const INSTALLATION: &str = "e2e";

/// A small organisation: an organizer account, two people, two rooms, a projector.
pub const SCENARIO: &str = r#"
name = "Fabrikam end-to-end"
[tenant]
id = "8e1d6c2a-3b4f-4a5e-9d7c-6b5a4f3e2d1c"
domain = "fabrikam.example"
[[apps]]
client_id = "c0ffee00-1234-4abc-8def-0123456789ab"
client_secret = "e2e-client-secret-value"
roles = ["Calendars.ReadWrite", "User.Read.All", "Place.Read.All", "full_access_as_app"]
[[ews_accounts]]
username = "FABRIKAM\\svc-calbridge"
password = "e2e-ews-password-value"
impersonation = true
[[ews_accounts]]
username = "helpdesk@fabrikam.example"
password = "e2e-helpdesk-password"
[[mailboxes]]
email = "scheduler@fabrikam.example"
name = "Fabrikam Scheduler"
[[mailboxes]]
email = "ann@fabrikam.example"
name = "Ann Lee"
[[mailboxes]]
email = "bob@fabrikam.example"
name = "Bob Stone"
[[mailboxes]]
email = "room1@fabrikam.example"
name = "Room 1 (12 seats)"
kind = "room"
[[mailboxes]]
email = "room2@fabrikam.example"
name = "Room 2 (30 seats)"
kind = "room"
[[mailboxes]]
email = "projector1@fabrikam.example"
name = "Projector 1"
kind = "equipment"
"#;

static NEXT: AtomicU64 = AtomicU64::new(0);

/// Runs the test body `$name(protocol)` as two tests, `$name::graph` and `$name::ews`. The
/// calling file imports [`Protocol`].
#[macro_export]
macro_rules! both {
    ($name:ident) => {
        mod $name {
            #[tokio::test]
            async fn graph() {
                super::$name(super::Protocol::Graph).await
            }
            #[tokio::test]
            async fn ews() {
                super::$name(super::Protocol::Ews).await
            }
        }
    };
}

/// A weekly series of one-hour meetings on `start`'s weekday, `count` times, every
/// `interval` weeks, as Outlook makes it.
pub fn weekly_series(
    subject: &str,
    start: chrono::DateTime<Utc>,
    interval: i32,
    count: i32,
) -> calbridge_sim::NewEvent {
    let mut series = calbridge_sim::NewEvent::new(subject, start, start + chrono::Duration::hours(1));
    series.recurrence = Some(recurrence("weekly", interval, start.date_naive(), count));
    series
}

/// Graph's `patternedRecurrence` of a series of `kind` (`daily`, `weekly`, `absoluteMonthly`)
/// from `start`, `count` times every `interval` periods, as Outlook makes it: on `start`'s
/// weekday, or its day of the month for a monthly one; weeks start on Monday.
pub fn recurrence(
    kind: &str,
    interval: i32,
    start: chrono::NaiveDate,
    count: i32,
) -> calbridge_sim::wire::PatternedRecurrence {
    use calbridge_sim::wire::{PatternedRecurrence, RecurrencePattern, RecurrenceRange};
    let monthly = kind.to_ascii_lowercase().contains("monthly");
    PatternedRecurrence {
        pattern: Some(RecurrencePattern {
            kind: Some(kind.into()),
            interval: Some(interval),
            days_of_week: (!monthly).then(|| vec![start.format("%A").to_string().to_lowercase()]),
            day_of_month: monthly.then(|| chrono::Datelike::day(&start) as i32),
            first_day_of_week: Some("monday".into()),
            ..Default::default()
        }),
        range: Some(RecurrenceRange {
            kind: Some("numbered".into()),
            start_date: Some(start.format("%Y-%m-%d").to_string()),
            number_of_occurrences: Some(count),
            ..Default::default()
        }),
    }
}

/// The protocol a world's connection speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protocol {
    Graph,
    Ews,
}

/// One test's world.
pub struct World {
    pub sim: Simulator,
    pub running: RunningSim,
    pub store: Arc<dyn Store>,
    pub engine: Engine,
    pub protocol: Protocol,
    /// The Graph client (Graph worlds).
    pub graph: Option<GraphClient>,
    /// The EWS client (EWS worlds).
    pub ews: Option<EwsClient>,
    pub remote: Arc<dyn Remote>,
    pub connection: Connection,
    pub dir: PathBuf,
}

impl World {
    pub async fn new() -> World {
        World::with(SCENARIO, GraphOptions::default(), None).await
    }

    /// A world speaking `protocol`, with default client options.
    pub async fn on(protocol: Protocol) -> World {
        World::on_with(protocol, None, None).await
    }

    /// A world speaking `protocol`; `page_size` sets the pages of changes (Graph delta's
    /// `maxpagesize`, EWS SyncFolderItems' `MaxChangesReturned`); `secret_override` replaces
    /// the client secret or the service account's password.
    pub async fn on_with(protocol: Protocol, page_size: Option<u32>, secret_override: Option<&str>) -> World {
        match protocol {
            Protocol::Graph => {
                let options = GraphOptions { page_size: page_size.unwrap_or(100), ..GraphOptions::default() };
                World::with(SCENARIO, options, secret_override).await
            }
            Protocol::Ews => {
                // Small GetItem batches, so reading a page takes several of them.
                let options = EwsOptions {
                    sync_page_size: page_size.unwrap_or(512),
                    get_item_batch: 5,
                    max_retry_wait: std::time::Duration::from_secs(20),
                    ..EwsOptions::default()
                };
                World::ews_with(SCENARIO, EwsAuth::Ntlm, options, secret_override).await
            }
        }
    }

    /// An EWS world on `scenario`, signed in with `auth`: NTLM or Basic as the scenario's
    /// first impersonating account, OAuth2 as its first app (which must hold the
    /// `full_access_as_app` role).
    pub async fn ews_with(scenario: &str, auth: EwsAuth, options: EwsOptions, secret_override: Option<&str>) -> World {
        let (sim, running, store, dir) = World::base(scenario).await;
        let account = sim.ews_accounts().into_iter().find(|a| a.impersonation).expect("an EWS service account");
        let creds = sim.credentials();
        let oauth = auth == EwsAuth::Oauth2;
        let settings = EwsSettings {
            url: running.ews_url(),
            version: "Exchange2016".into(),
            auth,
            username: if oauth { String::new() } else { account.username.clone() },
            impersonation: true,
            tenant_id: if oauth { creds.tenant_domain.clone() } else { String::new() },
            client_id: if oauth { creds.client_id.clone() } else { String::new() },
            authority_url: if oauth { running.authority_url() } else { String::new() },
            max_connections: EWS_DEFAULT_MAX_CONNECTIONS,
            ca_file: None,
            test_mailbox: None,
        };
        let connection = store
            .upsert_connection(NewConnection {
                name: "fabrikam-onprem".into(),
                settings: ConnectionSettings::Ews(settings.clone()),
                default_organizer: Some("scheduler@fabrikam.example".into()),
                max_threads: options.max_in_flight as u32,
            })
            .await
            .unwrap();
        let own = if oauth { &creds.client_secret } else { &account.password };
        let secret = Secret::new(secret_override.unwrap_or(own));
        let options = EwsOptions { installation_id: INSTALLATION.into(), ..options };
        let client = EwsConnector::new(options).client(&settings, secret).expect("EWS client");
        let remote: Arc<dyn Remote> = Arc::new(EwsRemote::new(client.clone()));
        let engine = Engine::new(store.clone(), EngineConfig::new(INSTALLATION));
        World {
            sim,
            running,
            store,
            engine,
            protocol: Protocol::Ews,
            graph: None,
            ews: Some(client),
            remote,
            connection,
            dir,
        }
    }

    async fn base(scenario: &str) -> (Simulator, RunningSim, Arc<dyn Store>, PathBuf) {
        let sim = Simulator::new(&Scenario::from_toml(scenario).expect("scenario")).expect("simulator");
        let running = sim.start().await.expect("start simulator");
        let dir = std::env::temp_dir().join(format!(
            "calbridge-e2e-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::SeqCst)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let store = calbridge_store::open_store(&format!("sqlite://{}", dir.join("calbridge.db").display()))
            .await
            .expect("store");
        (sim, running, store, dir)
    }

    /// Requests the world's client sent to Exchange.
    pub fn requests(&self) -> u64 {
        match (&self.graph, &self.ews) {
            (Some(g), _) => g.requests(),
            (None, Some(e)) => e.requests(),
            _ => 0,
        }
    }

    /// The simulator's (Graph) id of an item calbridge knows by its remote id: EWS ids are the
    /// same ids in standard base64 (`+` and `/` where Graph has `-` and `_`).
    pub fn graph_id(&self, remote_id: &str) -> String {
        match self.protocol {
            Protocol::Graph => remote_id.to_string(),
            Protocol::Ews => remote_id.replace('+', "-").replace('/', "_"),
        }
    }

    /// A Graph world on `scenario`, with client `options`, and optionally a wrong client secret.
    pub async fn with(scenario: &str, options: GraphOptions, secret_override: Option<&str>) -> World {
        let (sim, running, store, dir) = World::base(scenario).await;
        let creds = sim.credentials();
        let settings = GraphSettings {
            tenant_id: creds.tenant_domain.clone(),
            client_id: creds.client_id.clone(),
            authority_url: running.authority_url(),
            graph_url: running.graph_url(),
        };
        let connection = store
            .upsert_connection(NewConnection {
                name: "fabrikam".into(),
                settings: ConnectionSettings::Graph(settings.clone()),
                default_organizer: Some("scheduler@fabrikam.example".into()),
                max_threads: options.max_in_flight as u32,
            })
            .await
            .unwrap();
        let secret = Secret::new(secret_override.unwrap_or(&creds.client_secret));
        let options = GraphOptions { installation_id: INSTALLATION.into(), ..options };
        let client = GraphClient::new(&settings, secret, options).expect("client");
        let remote: Arc<dyn Remote> = Arc::new(GraphRemote::new(client.clone()));
        let engine = Engine::new(store.clone(), EngineConfig::new(INSTALLATION));
        World {
            sim,
            running,
            store,
            engine,
            protocol: Protocol::Graph,
            graph: Some(client),
            ews: None,
            remote,
            connection,
            dir,
        }
    }

    pub async fn link(&self, email: &str, kind: CalendarKind) -> Calendar {
        self.store
            .upsert_calendar(NewCalendar {
                email: email.into(),
                kind,
                display_name: email.into(),
                connection_id: self.connection.id,
                site_id: None,
                busy_only: false,
            })
            .await
            .unwrap()
    }

    pub async fn sync(&self, cal: &Calendar) -> CalendarReport {
        self.engine.sync_calendar(self.remote.as_ref(), cal, Utc::now()).await
    }

    /// Syncs as if it were `now` (the window lies around it); fails the test on an error or a
    /// pause.
    pub async fn sync_at(&self, cal: &Calendar, now: chrono::DateTime<Utc>) -> CalendarReport {
        let r = self.engine.sync_calendar(self.remote.as_ref(), cal, now).await;
        assert!(
            r.error.is_none() && r.paused.is_none(),
            "sync of {} failed: {:?} / {:?}",
            cal.email,
            r.error,
            r.paused
        );
        r
    }

    /// Syncs and fails the test on an error or a pause.
    pub async fn sync_ok(&self, cal: &Calendar) -> CalendarReport {
        self.sync_at(cal, Utc::now()).await
    }

    /// Every live event of a calendar in the store.
    pub async fn local(&self, cal: &Calendar) -> Vec<Event> {
        let now = Utc::now();
        self.store
            .events_in_range(cal.id, now - chrono::Duration::days(3650), now + chrono::Duration::days(3650))
            .await
            .unwrap()
    }
}

impl Drop for World {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A `Remote` whose `changes` fails from the n-th call on, as a network outage or a crash in
/// the middle of a listing would. Everything else goes to the real adapter.
pub struct FailingAfter {
    inner: Arc<dyn Remote>,
    calls: AtomicU64,
    fail_from: u64,
}

impl FailingAfter {
    pub fn new(inner: Arc<dyn Remote>, fail_from: u64) -> Self {
        FailingAfter { inner, calls: AtomicU64::new(0), fail_from }
    }
}

#[async_trait::async_trait]
impl Remote for FailingAfter {
    async fn mailbox(&self, email: &str) -> Result<MailboxInfo, RemoteError> {
        self.inner.mailbox(email).await
    }
    async fn verify_mailbox(&self, email: &str) -> Result<(), RemoteError> {
        self.inner.verify_mailbox(email).await
    }
    async fn list_calendars(&self, email: &str) -> Result<Vec<RemoteCalendar>, RemoteError> {
        self.inner.list_calendars(email).await
    }
    async fn changes(&self, email: &str, window: &Window, cursor: Option<&Cursor>) -> Result<ChangePage, RemoteError> {
        if self.calls.fetch_add(1, Ordering::SeqCst) + 1 >= self.fail_from {
            return Err(RemoteError::Permanent("the connection broke off (test)".into()));
        }
        self.inner.changes(email, window, cursor).await
    }
    async fn fetch(&self, email: &str, ids: &[String]) -> Result<Vec<RemoteItem>, RemoteError> {
        self.inner.fetch(email, ids).await
    }
    async fn push(&self, email: &str, change: &PushChange) -> Result<Option<Confirmed>, RemoteError> {
        self.inner.push(email, change).await
    }
    async fn decline(&self, email: &str, remote_id: &str, comment: &str) -> Result<(), RemoteError> {
        self.inner.decline(email, remote_id, comment).await
    }
    async fn rooms(&self) -> Result<Vec<RoomInfo>, RemoteError> {
        self.inner.rooms().await
    }
}

/// Work a test does at one moment of a sync (an edit someone makes meanwhile).
pub type Hook = Box<dyn FnOnce() -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>> + Send>;

/// A `Remote` that runs a test's hooks once, at set moments, around the real adapter: after
/// the first page of changes arrives (the engine then plans on a calendar that changed under
/// it), or right before the first update leaves (it then carries a version Exchange no longer
/// has). Everything goes to the real adapter.
pub struct Hooked {
    inner: Arc<dyn Remote>,
    after_first_changes: std::sync::Mutex<Option<Hook>>,
    before_first_update: std::sync::Mutex<Option<Hook>>,
}

impl Hooked {
    pub fn new(inner: Arc<dyn Remote>) -> Self {
        Hooked { inner, after_first_changes: Default::default(), before_first_update: Default::default() }
    }

    pub fn after_first_changes(self, hook: Hook) -> Self {
        *self.after_first_changes.lock().unwrap() = Some(hook);
        self
    }

    pub fn before_first_update(self, hook: Hook) -> Self {
        *self.before_first_update.lock().unwrap() = Some(hook);
        self
    }
}

#[async_trait::async_trait]
impl Remote for Hooked {
    async fn mailbox(&self, email: &str) -> Result<MailboxInfo, RemoteError> {
        self.inner.mailbox(email).await
    }
    async fn verify_mailbox(&self, email: &str) -> Result<(), RemoteError> {
        self.inner.verify_mailbox(email).await
    }
    async fn list_calendars(&self, email: &str) -> Result<Vec<RemoteCalendar>, RemoteError> {
        self.inner.list_calendars(email).await
    }
    async fn changes(&self, email: &str, window: &Window, cursor: Option<&Cursor>) -> Result<ChangePage, RemoteError> {
        let page = { self.inner.changes(email, window, cursor).await };
        let hook = self.after_first_changes.lock().unwrap().take();
        if let Some(hook) = hook {
            hook().await;
        }
        page
    }
    async fn fetch(&self, email: &str, ids: &[String]) -> Result<Vec<RemoteItem>, RemoteError> {
        self.inner.fetch(email, ids).await
    }
    async fn push(&self, email: &str, change: &PushChange) -> Result<Option<Confirmed>, RemoteError> {
        if matches!(change, PushChange::Update { .. }) {
            let hook = self.before_first_update.lock().unwrap().take();
            if let Some(hook) = hook {
                hook().await;
            }
        }
        self.inner.push(email, change).await
    }
    async fn push_many(&self, email: &str, changes: &[PushChange]) -> Vec<Result<Option<Confirmed>, RemoteError>> {
        if changes.iter().any(|c| matches!(c, PushChange::Update { .. })) {
            let hook = self.before_first_update.lock().unwrap().take();
            if let Some(hook) = hook {
                hook().await;
            }
        }
        self.inner.push_many(email, changes).await
    }
    async fn decline(&self, email: &str, remote_id: &str, comment: &str) -> Result<(), RemoteError> {
        self.inner.decline(email, remote_id, comment).await
    }
    async fn rooms(&self) -> Result<Vec<RoomInfo>, RemoteError> {
        self.inner.rooms().await
    }
}
