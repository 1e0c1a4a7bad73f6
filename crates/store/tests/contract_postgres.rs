//! The Store contract against PostgreSQL, each case on a fresh database, and what only
//! PostgreSQL has: migrations on a shared server, several pools (workers) writing the same rows,
//! passwords in URLs.
//!
//! The server comes from `CALBRIDGE_TEST_POSTGRES` (default
//! `postgres://postgres@127.0.0.1:5432/postgres`); the user must be allowed to create
//! databases. Each test creates `calbridge_test_*` databases and drops them when it ends. With
//! no server there, the tests say so and pass, except in CI (`CI` set), where they fail.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use calbridge_core::model::{
    CalendarKind, ConnectionSettings, Event, EventData, EventId, GraphSettings, LinkState, Origin,
};
use calbridge_core::store::{NewCalendar, NewConnection, Store, StoreError};
use calbridge_core::sync::{Cursor, CursorUpdate, Write};
use calbridge_store::migrate::SCHEMA_VERSION;
use calbridge_store::{contract, open_store, PostgresStore};
use chrono::{TimeZone, Utc};
use sqlx::{Connection, PgConnection};

const DEFAULT_SERVER: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// The test server, and the databases made on it, dropped when this is dropped (also when a
/// test fails).
struct Server {
    url: String,
    databases: Mutex<Vec<String>>,
}

impl Server {
    /// The server to test against, or `None` (after saying why) when there is none outside CI.
    async fn get() -> Option<Server> {
        let url = std::env::var("CALBRIDGE_TEST_POSTGRES").unwrap_or_else(|_| DEFAULT_SERVER.to_string());
        let attempt = tokio::time::timeout(Duration::from_secs(10), PgConnection::connect(&url)).await;
        let problem = match attempt {
            Ok(Ok(conn)) => {
                let _ = conn.close().await;
                return Some(Server { url, databases: Mutex::new(Vec::new()) });
            }
            Ok(Err(e)) => e.to_string(),
            Err(_) => "no answer within 10 s".to_string(),
        };
        let shown = hide_password(&url);
        if std::env::var_os("CI").is_some() {
            panic!(
                "no PostgreSQL at {shown} ({problem}). CI needs one: `bash .ci/run` installs and starts it; by hand, \
                 install Debian's `postgresql`, allow trust auth for 127.0.0.1 in pg_hba.conf, run \
                 `pg_ctlcluster --skip-systemctl-redirect <version> main start`, or point CALBRIDGE_TEST_POSTGRES \
                 at a server whose user may create databases"
            );
        }
        eprintln!("skipped: no PostgreSQL at {shown} ({problem}), set CALBRIDGE_TEST_POSTGRES");
        None
    }

    /// Creates a fresh, empty database and returns its URL.
    async fn fresh_database(&self, label: &str) -> String {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_nanos();
        let name =
            format!("calbridge_test_{label}_{}_{}_{nanos}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed));
        let mut conn = PgConnection::connect(&self.url).await.expect("connect to the test server");
        sqlx::query(&format!("CREATE DATABASE {name}")).execute(&mut conn).await.expect("create a test database");
        conn.close().await.ok();
        self.databases.lock().unwrap().push(name.clone());
        with_database(&self.url, &name)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let names = std::mem::take(&mut *self.databases.lock().unwrap());
        if names.is_empty() {
            return;
        }
        let url = self.url.clone();
        // A runtime of its own: this may run while the test's runtime is unwinding.
        let dropped = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            rt.block_on(async move {
                let mut conn = PgConnection::connect(&url).await?;
                for name in names {
                    sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).execute(&mut conn).await?;
                }
                conn.close().await
            })
        })
        .join();
        if let Ok(Err(e)) = dropped {
            eprintln!("could not drop the test databases: {e}");
        }
    }
}

/// `url` naming database `name` instead of its own.
fn with_database(url: &str, name: &str) -> String {
    let (scheme, rest) = url.split_once("://").expect("a postgres:// URL");
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    let query = tail.find('?').map(|q| &tail[q..]).unwrap_or("");
    format!("{scheme}://{authority}/{name}{query}")
}

fn hide_password(url: &str) -> String {
    match url.split_once("://").and_then(|(s, rest)| Some((s, rest.split_once('@')?))) {
        Some((scheme, (userinfo, host))) if userinfo.contains(':') => {
            format!("{scheme}://{}:***@{host}", userinfo.split(':').next().unwrap_or(""))
        }
        _ => url.to_string(),
    }
}

macro_rules! server_or_skip {
    () => {
        match Server::get().await {
            Some(server) => server,
            None => return,
        }
    };
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_meets_the_store_contract() {
    let server = server_or_skip!();
    let started = Instant::now();
    contract::run_all(|| async {
        let url = server.fresh_database("contract").await;
        Arc::new(PostgresStore::open(&url).await.expect("open a fresh PostgreSQL database")) as Arc<dyn Store>
    })
    .await;
    eprintln!(
        "store contract on PostgreSQL: {} cases in {:.1} s, each on a fresh database",
        contract::CASES.len(),
        started.elapsed().as_secs_f64()
    );
}

fn graph() -> ConnectionSettings {
    ConnectionSettings::Graph(GraphSettings {
        tenant_id: "contoso.onmicrosoft.com".into(),
        client_id: "client".into(),
        authority_url: "https://login.microsoftonline.com".into(),
        graph_url: "https://graph.microsoft.com".into(),
    })
}

async fn seed(store: &dyn Store) -> (i64, EventData) {
    let c = store
        .upsert_connection(NewConnection {
            name: "contoso".into(),
            settings: graph(),
            default_organizer: None,
            max_threads: 2,
        })
        .await
        .unwrap();
    let cal = store
        .upsert_calendar(NewCalendar {
            email: "Anna@Contoso.com".into(),
            kind: CalendarKind::Person,
            display_name: "Anna".into(),
            connection_id: c.id,
            site_id: None,
            busy_only: false,
        })
        .await
        .unwrap();
    store.set_link_state(cal.id, &LinkState::Verified).await.unwrap();
    let start = Utc.with_ymd_and_hms(2026, 3, 2, 9, 0, 0).unwrap();
    let data = EventData::new("Class", start, start + chrono::Duration::hours(1));
    store.create_local_event(cal.id, &EventId::new("e1"), &data).await.unwrap();
    store.commit(cal.id, &[], &CursorUpdate::Set(Cursor("delta-1".into()))).await.unwrap();
    (cal.id, data)
}

#[tokio::test]
async fn a_reopened_database_keeps_its_data_and_migrates_once() {
    let server = server_or_skip!();
    let url = server.fresh_database("reopen").await;

    let store = PostgresStore::open(&url).await.unwrap();
    assert_eq!(store.schema_version().await.unwrap(), SCHEMA_VERSION);
    let migrations = store.applied_migrations().await.unwrap();
    assert_eq!(migrations, SCHEMA_VERSION, "one row per migration");
    let (cal_id, data) = seed(&store).await;
    store.close().await;

    let postgresql = url.replacen("postgres://", "postgresql://", 1);
    for form in [url.clone(), postgresql] {
        let store = PostgresStore::open(&form).await.unwrap_or_else(|e| panic!("re-open {form}: {e}"));
        assert_eq!(store.schema_version().await.unwrap(), SCHEMA_VERSION, "{form}");
        assert_eq!(store.applied_migrations().await.unwrap(), migrations, "{form}: no migration ran twice");
        let cal = store.calendar(cal_id).await.unwrap().expect("the calendar survives a re-open");
        assert_eq!(cal.email, "anna@contoso.com");
        assert_eq!(cal.link, LinkState::Verified);
        let ev = store.event(&EventId::new("e1")).await.unwrap().expect("the event survives a re-open");
        assert_eq!(ev.data, data);
        assert_eq!(store.cursor(cal_id).await.unwrap(), Some(Cursor("delta-1".into())));
        assert_eq!(store.connections().await.unwrap().len(), 1);
        store.close().await;
    }

    // Through open_store, as the binary opens it, and by several workers starting at once:
    // sqlx's migrator takes an advisory lock, so nothing is applied twice.
    let opened = open_at_once(&url, 4).await;
    for store in &opened {
        assert_eq!(store.connections().await.unwrap().len(), 1);
    }
    let store = PostgresStore::open(&url).await.unwrap();
    assert_eq!(store.applied_migrations().await.unwrap(), migrations);
    store.close().await;
}

/// Opens `n` stores on `url` at once.
async fn open_at_once(url: &str, n: usize) -> Vec<Arc<dyn Store>> {
    let tasks: Vec<_> = (0..n)
        .map(|_| {
            let url = url.to_string();
            tokio::spawn(async move { open_store(&url).await })
        })
        .collect();
    let mut stores = Vec::new();
    for task in tasks {
        stores.push(task.await.unwrap().unwrap_or_else(|e| panic!("open_store: {e}")));
    }
    stores
}

#[tokio::test]
async fn a_database_from_a_newer_calbridge_is_refused_not_damaged() {
    let server = server_or_skip!();
    let url = server.fresh_database("newer").await;
    let store = PostgresStore::open(&url).await.unwrap();
    seed(&store).await;
    store.close().await;

    // Pretend a newer calbridge applied migration 9999.
    let mut conn = PgConnection::connect(&url).await.unwrap();
    sqlx::query(
        "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
         VALUES (9999, 'future', TRUE, '\\x00'::bytea, 0)",
    )
    .execute(&mut conn)
    .await
    .unwrap();
    match PostgresStore::open(&url).await {
        Err(StoreError::Database(m)) => {
            assert!(m.contains("newer calbridge") && m.contains("9999"), "{m}");
            assert!(m.contains("PostgreSQL database `calbridge_test_newer"), "the message names the database: {m}");
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM _sqlx_migrations").fetch_one(&mut conn).await.unwrap();
    assert_eq!(n, SCHEMA_VERSION + 1, "the refusal applied nothing");
    let events: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM events").fetch_one(&mut conn).await.unwrap();
    assert_eq!(events, 1, "the refusal changed no data");
    // The advisory lock the refused migrator held went with its connections.
    sqlx::query("DELETE FROM _sqlx_migrations WHERE version = 9999").execute(&mut conn).await.unwrap();
    conn.close().await.unwrap();
    let store = tokio::time::timeout(Duration::from_secs(30), PostgresStore::open(&url))
        .await
        .expect("the migration lock is free again")
        .unwrap();
    assert_eq!(store.event(&EventId::new("e1")).await.unwrap().map(|e| e.version), Some(1));
    store.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writers_from_two_pools_lose_no_update() {
    let server = server_or_skip!();
    let url = server.fresh_database("concurrent").await;
    // Two pools on one database: two workers.
    let a: Arc<dyn Store> = Arc::new(PostgresStore::open(&url).await.unwrap());
    let b: Arc<dyn Store> = Arc::new(PostgresStore::open(&url).await.unwrap());
    let (cal_id, data) = seed(a.as_ref()).await;

    const TASKS: usize = 8;
    const ROUNDS: usize = 10;
    let mut tasks = Vec::new();
    for t in 0..TASKS {
        let store = if t % 2 == 0 { a.clone() } else { b.clone() };
        let data = data.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..ROUNDS {
                // Every writer bumps the same event without a version check: each bump must
                // read the version the previous one wrote.
                let mut changed = data.clone();
                changed.subject = format!("t{t}-{i}");
                store.update_local_event(&EventId::new("e1"), &changed, None).await.unwrap();
                // The same create from every writer: one event, every retry answered.
                let same = EventId::new(format!("same-{i}"));
                let created = store.create_local_event(cal_id, &same, &data).await.unwrap();
                assert_eq!(created.version, 1);
                // Each writer's own event, edited with the version it read.
                let own = EventId::new(format!("t{t}-{i}"));
                store.create_local_event(cal_id, &own, &data).await.unwrap();
                store.update_local_event(&own, &changed, Some(1)).await.unwrap();
                // Commits of the same calendar: a pulled event each, and the cursor.
                let pulled = Event {
                    id: EventId::new(format!("x-t{t}-{i}")),
                    calendar_id: cal_id,
                    origin: Origin::Exchange,
                    data: data.clone(),
                    version: 1,
                    deleted: false,
                };
                let cursor = CursorUpdate::Set(Cursor(format!("t{t}-{i}")));
                let stats = store.commit(cal_id, &[Write::PutEvent(pulled)], &cursor).await.unwrap();
                assert_eq!(stats.events, 1);
            }
        }));
    }
    for task in tasks {
        task.await.expect("a writer failed");
    }

    let bumped = a.event(&EventId::new("e1")).await.unwrap().unwrap();
    assert_eq!(bumped.version, 1 + (TASKS * ROUNDS) as i64, "every update counted, none lost");
    let snap = b.snapshot(cal_id).await.unwrap();
    assert_eq!(snap.events.len(), 1 + ROUNDS + 2 * TASKS * ROUNDS);
    assert!(snap.events.values().filter(|e| e.id.as_str().starts_with('t')).all(|e| e.version == 2));
    assert!(snap.events.values().filter(|e| e.id.as_str().starts_with("same-")).all(|e| e.version == 1));
    let cursor = a.cursor(cal_id).await.unwrap().expect("a cursor");
    assert!(cursor.0.starts_with('t'), "{cursor:?}");
}

#[tokio::test]
async fn the_password_never_appears_in_an_error() {
    // No server needed: nothing listens on port 1.
    for url in [
        "postgres://calbridge:s3cret-pw@127.0.0.1:1/calbridge",
        "postgresql://calbridge:s3cret-pw@127.0.0.1:1/calbridge?sslmode=disable",
        "postgres://calbridge:s3cret%2Dpw@127.0.0.1:1/calbridge",
        "postgres://calbridge:s3cret-pw@127.0.0.1:notaport/calbridge",
        "postgres://calbridge:s3cret-pw@127.0.0.1:1/calbridge?sslmode=nonsense",
    ] {
        let m = open_store(url).await.err().unwrap_or_else(|| panic!("{url} opened")).to_string();
        assert!(!m.contains("s3cret"), "the password leaked into: {m}");
        assert!(m.contains("PostgreSQL"), "{m}");
    }
    let m = open_store("postgres://calbridge:s3cret-pw@127.0.0.1:1/calbridge").await.err().unwrap().to_string();
    assert!(m.contains("could not connect to the PostgreSQL database `calbridge` on 127.0.0.1:1"), "{m}");
    assert!(m.contains("check that PostgreSQL runs there"), "{m}");
    let m = open_store("postgres://calbridge:s3cret-pw@127.0.0.1:notaport/cb").await.err().unwrap().to_string();
    assert!(m.contains("postgres://calbridge:***@127.0.0.1:notaport/cb") && m.contains("not valid"), "{m}");

    // A real server refusing the user, or missing the database.
    let Some(server) = Server::get().await else { return };
    let wrong_user = format!("postgres://calbridge_no_such_user:s3cret-pw@{}/postgres", host_part(&server.url));
    let m = open_store(&wrong_user).await.err().expect("an unknown user is refused").to_string();
    assert!(!m.contains("s3cret"), "{m}");
    assert!(m.contains("calbridge_no_such_user"), "{m}");
    let missing = with_database(&server.url, "calbridge_no_such_database");
    let m = open_store(&missing).await.err().expect("a missing database is refused").to_string();
    assert!(m.contains("calbridge_no_such_database") && m.contains("CREATE DATABASE"), "{m}");
}

/// The `host:port` of `url`, without user info.
fn host_part(url: &str) -> &str {
    let rest = url.split_once("://").map(|(_, r)| r).unwrap_or(url);
    let authority = rest.split(['/', '?']).next().unwrap_or("");
    authority.rsplit_once('@').map(|(_, host)| host).unwrap_or(authority)
}

/// Migration 7 fills `busy_as` for the events stored before it, from their JSON, with what
/// calbridge writes for new ones (the same cases as SQLite's).
#[tokio::test]
async fn migration_7_fills_busy_times_from_stored_events() {
    let server = server_or_skip!();
    let url = server.fresh_database("busy").await;
    let mut conn = PgConnection::connect(&url).await.unwrap();
    for (version, _, sql) in calbridge_store::migrate::POSTGRES_MIGRATIONS.iter().filter(|m| m.0 < 7) {
        sqlx::raw_sql(sql).execute(&mut conn).await.unwrap_or_else(|e| panic!("migration {version}: {e}"));
    }
    sqlx::raw_sql(
        "INSERT INTO connections (id, name, kind, settings, max_threads) OVERRIDING SYSTEM VALUE \
         VALUES (1, 'c', 'graph', '{}', 1); \
         INSERT INTO calendars (id, email, kind, display_name, connection_id) OVERRIDING SYSTEM VALUE \
         VALUES (1, 'a@b.c', 'person', 'A', 1);",
    )
    .execute(&mut conn)
    .await
    .unwrap();
    let cases = contract::busy_as_backfill_cases();
    for (name, data, _) in &cases {
        sqlx::query(
            "INSERT INTO events (id, calendar_id, origin, data, start_us, end_us, version) \
             VALUES ($1, 1, 'local', $2, 0, 1, 1)",
        )
        .bind(name)
        .bind(serde_json::to_string(data).unwrap())
        .execute(&mut conn)
        .await
        .unwrap();
    }
    let seven = calbridge_store::migrate::POSTGRES_MIGRATIONS.iter().find(|m| m.0 == 7).unwrap().2;
    sqlx::raw_sql(seven).execute(&mut conn).await.expect("migration 7 on stored events");
    for (name, _, want) in cases {
        let got: Option<String> = sqlx::query_scalar("SELECT busy_as FROM events WHERE id = $1")
            .bind(name)
            .fetch_one(&mut conn)
            .await
            .unwrap();
        assert_eq!(got.as_deref(), want, "{name}");
    }
    conn.close().await.ok();
}
