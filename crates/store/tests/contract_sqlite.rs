//! The Store contract against SQLite (a file and in memory), and what only SQLite has:
//! opening, re-opening and migrating files, URL forms, concurrent writers.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use calbridge_core::model::{CalendarKind, ConnectionSettings, EventData, EventId, GraphSettings, LinkState};
use calbridge_core::store::{NewCalendar, NewConnection, Store, StoreError};
use calbridge_core::sync::{Cursor, CursorUpdate};
use calbridge_store::migrate::SCHEMA_VERSION;
use calbridge_store::{contract, open_store, SqliteStore};
use chrono::{TimeZone, Utc};

/// A fresh directory under the system temp dir, removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new(label: &str) -> Self {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_nanos();
        let dir = std::env::temp_dir().join(format!("calbridge-store-{label}-{}-{n}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
    fn file(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_file_meets_the_store_contract() {
    let dir = TempDir::new("contract");
    let next = AtomicU32::new(0);
    contract::run_all(|| {
        let path = dir.file(&format!("case-{}.db", next.fetch_add(1, Ordering::Relaxed)));
        async move {
            let url = format!("sqlite://{}", path.display());
            Arc::new(SqliteStore::open(&url).await.expect("open a fresh SQLite file")) as Arc<dyn Store>
        }
    })
    .await;
}

#[tokio::test]
async fn sqlite_in_memory_meets_the_store_contract() {
    contract::run_all(|| async {
        Arc::new(SqliteStore::open("sqlite::memory:").await.expect("open an in-memory store")) as Arc<dyn Store>
    })
    .await;
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
async fn a_reopened_file_keeps_its_data_and_migrates_once() {
    let dir = TempDir::new("reopen");
    let path = dir.file("calbridge.db");
    let url = format!("sqlite://{}", path.display());

    let store = SqliteStore::open(&url).await.unwrap();
    assert_eq!(store.schema_version().await.unwrap(), SCHEMA_VERSION);
    let migrations = store.applied_migrations().await.unwrap();
    assert!(migrations >= 1);
    let (cal_id, data) = seed(&store).await;
    store.close().await;
    drop(store);
    assert!(path.exists(), "the database file was created");
    {
        use sqlx::Connection;
        let mut conn = sqlx::SqliteConnection::connect(&url).await.unwrap();
        let mode: String = sqlx::query_scalar("PRAGMA journal_mode").fetch_one(&mut conn).await.unwrap();
        assert_eq!(mode, "wal", "file databases run in WAL mode");
        conn.close().await.unwrap();
    }

    for form in [url.clone(), format!("sqlite:{}", path.display()), path.display().to_string()] {
        let store = SqliteStore::open(&form).await.unwrap_or_else(|e| panic!("re-open {form}: {e}"));
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
}

#[tokio::test]
async fn a_file_from_a_newer_calbridge_is_refused_not_damaged() {
    let dir = TempDir::new("newer");
    let url = format!("sqlite://{}", dir.file("calbridge.db").display());
    let store = SqliteStore::open(&url).await.unwrap();
    seed(&store).await;
    store.close().await;
    drop(store);

    // Pretend a newer calbridge applied migration 9999.
    {
        use sqlx::Connection;
        let mut conn = sqlx::SqliteConnection::connect(&url).await.unwrap();
        sqlx::query(
            "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
             VALUES (9999, 'future', 1, x'00', 0)",
        )
        .execute(&mut conn)
        .await
        .unwrap();
        conn.close().await.unwrap();
    }
    match SqliteStore::open(&url).await {
        Err(StoreError::Database(m)) => {
            assert!(m.contains("newer calbridge") && m.contains("9999"), "{m}")
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[tokio::test]
async fn open_store_picks_the_backend_from_the_url() {
    let dir = TempDir::new("open-store");
    for url in [
        format!("sqlite://{}", dir.file("a.db").display()),
        format!("sqlite:{}", dir.file("b.db").display()),
        dir.file("c.db").display().to_string(),
        "sqlite::memory:".to_string(),
    ] {
        let store = open_store(&url).await.unwrap_or_else(|e| panic!("open_store({url}): {e}"));
        assert!(store.connections().await.unwrap().is_empty(), "{url}");
    }
    assert!(dir.file("a.db").exists() && dir.file("b.db").exists() && dir.file("c.db").exists());

    let m = open_store("mysql://root:pw@h/db").await.err().expect("refused").to_string();
    assert!(m.contains("mysql:") && m.contains("sqlite://PATH") && m.contains("sqlite::memory:"), "{m}");
    assert!(m.contains("postgres://"), "the message names every accepted form: {m}");
    assert!(!m.contains("pw@"), "{m}");
    let m = open_store("  ").await.err().expect("refused").to_string();
    assert!(m.contains("sqlite://PATH"), "{m}");
}

#[tokio::test]
async fn a_missing_directory_is_reported_with_the_fix() {
    let dir = TempDir::new("missing");
    let path = dir.file("no/such/dir/calbridge.db");
    match SqliteStore::open(&format!("sqlite://{}", path.display())).await {
        Err(StoreError::Database(m)) => {
            assert!(m.contains("could not open the SQLite database at"), "{m}");
            assert!(m.contains(&path.display().to_string()), "{m}");
            assert!(m.contains("check that the directory exists and is writable"), "{m}");
        }
        other => panic!("expected a database error, got {other:?}"),
    }
}

#[tokio::test]
async fn in_memory_stores_are_private_and_survive_idle_time() {
    let a = SqliteStore::open("sqlite::memory:").await.unwrap();
    let b = SqliteStore::open("sqlite::memory:").await.unwrap();
    seed(&a).await;
    assert_eq!(a.connections().await.unwrap().len(), 1);
    assert!(b.connections().await.unwrap().is_empty(), "each in-memory store is its own database");
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    assert_eq!(a.connections().await.unwrap().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writers_on_one_file_all_succeed() {
    let dir = TempDir::new("concurrent");
    let store: Arc<dyn Store> =
        Arc::new(SqliteStore::open(&format!("sqlite://{}", dir.file("c.db").display())).await.unwrap());
    let (cal_id, data) = seed(store.as_ref()).await;
    let mut tasks = Vec::new();
    for t in 0..8 {
        let store = store.clone();
        let data = data.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..10 {
                let id = EventId::new(format!("t{t}-{i}"));
                store.create_local_event(cal_id, &id, &data).await.unwrap();
                store.update_local_event(&id, &data, Some(1)).await.unwrap();
                let cursor = CursorUpdate::Set(Cursor(format!("t{t}-{i}")));
                store.commit(cal_id, &[], &cursor).await.unwrap();
            }
        }));
    }
    for task in tasks {
        task.await.expect("a writer failed");
    }
    let snap = store.snapshot(cal_id).await.unwrap();
    assert_eq!(snap.events.len(), 1 + 8 * 10);
    assert!(snap.events.values().filter(|e| e.id.as_str() != "e1").all(|e| e.version == 2));
}

/// Migration 7 fills `busy_as` for the events stored before it, from their JSON, with what
/// calbridge writes for new ones.
#[tokio::test]
async fn migration_7_fills_busy_times_from_stored_events() {
    use sqlx::Connection;
    let mut conn = sqlx::SqliteConnection::connect("sqlite::memory:").await.unwrap();
    for (version, _, sql) in calbridge_store::migrate::MIGRATIONS.iter().filter(|m| m.0 < 7) {
        sqlx::raw_sql(sql).execute(&mut conn).await.unwrap_or_else(|e| panic!("migration {version}: {e}"));
    }
    sqlx::raw_sql(
        "INSERT INTO connections (id, name, kind, settings, max_threads) VALUES (1, 'c', 'graph', '{}', 1); \
         INSERT INTO calendars (id, email, kind, display_name, connection_id) VALUES (1, 'a@b.c', 'person', 'A', 1);",
    )
    .execute(&mut conn)
    .await
    .unwrap();
    let cases = contract::busy_as_backfill_cases();
    for (name, data, _) in &cases {
        sqlx::query(
            "INSERT INTO events (id, calendar_id, origin, data, start_us, end_us, version) VALUES (?, 1, 'local', ?, 0, 1, 1)",
        )
        .bind(name)
        .bind(serde_json::to_string(data).unwrap())
        .execute(&mut conn)
        .await
        .unwrap();
    }
    let seven = calbridge_store::migrate::MIGRATIONS.iter().find(|m| m.0 == 7).unwrap().2;
    sqlx::raw_sql(seven).execute(&mut conn).await.expect("migration 7 on stored events");
    for (name, _, want) in cases {
        let got: Option<String> = sqlx::query_scalar("SELECT busy_as FROM events WHERE id = ?")
            .bind(name)
            .fetch_one(&mut conn)
            .await
            .unwrap();
        assert_eq!(got.as_deref(), want, "{name}");
    }
}

/// The write-ahead log is copied into the database file in the background, without waiting
/// for SQLite's default of 1,000 pages in the log (which a commit would copy while holding
/// the write lock), and it starts over once copied instead of growing with every write.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_write_ahead_log_is_copied_in_the_background_and_starts_over() {
    use calbridge_core::model::{Event, Origin};
    use calbridge_core::sync::Write;
    let dir = TempDir::new("checkpoint");
    let (db, wal) = (dir.file("c.db"), dir.file("c.db-wal"));
    let store = SqliteStore::open(&format!("sqlite://{}", db.display())).await.unwrap();
    let (cal_id, data) = seed(&store).await;
    let size = |p: &PathBuf| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
    let body = "x".repeat(2_000);
    let mut wal_sizes = Vec::new();
    for round in 0..4 {
        // About 1 MB a round: some 250 pages, well below 1,000.
        let writes: Vec<Write> = (0..400)
            .map(|i| {
                Write::PutEvent(Event {
                    id: EventId::new(format!("r{round}-{i:03}")),
                    calendar_id: cal_id,
                    origin: Origin::Local,
                    data: EventData { body: body.clone(), ..data.clone() },
                    version: 1,
                    deleted: false,
                })
            })
            .collect();
        let db_before = size(&db);
        store.commit(cal_id, &writes, &CursorUpdate::Keep).await.unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while size(&db) < db_before + 800_000 {
            assert!(
                std::time::Instant::now() < deadline,
                "round {round}: the log was not copied into the database file (file {} bytes, log {} bytes)",
                size(&db),
                size(&wal)
            );
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        wal_sizes.push(size(&wal));
    }
    let first = wal_sizes[0];
    assert!(first > 0, "the log was written");
    assert!(
        wal_sizes.iter().all(|s| *s <= 2 * first),
        "the log grew with every round instead of starting over: {wal_sizes:?} bytes"
    );
    assert_eq!(store.snapshot(cal_id).await.unwrap().events.len(), 1 + 4 * 400);
    store.close().await;
}
