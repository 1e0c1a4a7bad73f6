//! # calbridge-tests — the end-to-end harness
//!
//! Every end-to-end test gets a fresh world: the Exchange simulator serving real HTTP on
//! 127.0.0.1:0, a fresh SQLite file in a temporary directory, the real Graph client and the
//! real engine, wired as the `calbridge` binary wires them. Nothing of calbridge is mocked;
//! tests act on Exchange as a person in Outlook would, through the simulator's `outlook()`.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use chrono::Utc;

use calbridge_core::model::*;
use calbridge_core::remote::{MailboxInfo, Remote, RemoteCalendar, RemoteError};
use calbridge_core::store::{NewCalendar, NewConnection, Store};
use calbridge_core::sync::{ChangePage, Confirmed, Cursor, PushChange, RemoteItem, Window};
use calbridge_engine::{CalendarReport, Engine, EngineConfig};
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

/// One test's world.
pub struct World {
    pub sim: Simulator,
    pub running: RunningSim,
    pub store: Arc<dyn Store>,
    pub engine: Engine,
    pub client: GraphClient,
    pub remote: Arc<dyn Remote>,
    pub connection: Connection,
    pub dir: PathBuf,
}

impl World {
    pub async fn new() -> World {
        World::with(SCENARIO, GraphOptions::default(), None).await
    }

    /// A world on `scenario`, with client `options`, and optionally a wrong client secret.
    pub async fn with(scenario: &str, options: GraphOptions, secret_override: Option<&str>) -> World {
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
                max_threads: 4,
            })
            .await
            .unwrap();
        let secret = Secret::new(secret_override.unwrap_or(&creds.client_secret));
        let options = GraphOptions { installation_id: INSTALLATION.into(), ..options };
        let client = GraphClient::new(&settings, secret, options).expect("client");
        let remote: Arc<dyn Remote> = Arc::new(GraphRemote::new(client.clone()));
        let engine = Engine::new(store.clone(), EngineConfig::new(INSTALLATION));
        World { sim, running, store, engine, client, remote, connection, dir }
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

    /// Syncs and fails the test on an error or a pause.
    pub async fn sync_ok(&self, cal: &Calendar) -> CalendarReport {
        let r = self.sync(cal).await;
        assert!(
            r.error.is_none() && r.paused.is_none(),
            "sync of {} failed: {:?} / {:?}",
            cal.email,
            r.error,
            r.paused
        );
        r
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
}
