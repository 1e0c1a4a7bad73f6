//! [`SqliteStore`]: the [`Store`] on an embedded SQLite file (or in memory, for tests).

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use calbridge_core::hash::ContentHash;
use calbridge_core::model::{
    Calendar, CalendarId, CalendarKind, Connection, ConnectionId, ConnectionSettings, Event, EventData, EventId,
    LinkState, Origin, Site, SiteId,
};
use calbridge_core::store::{
    AdminAccount, ApiKey, BusyTime, Delivery, DeliveryCounts, DeliveryOutcome, Lease, NewAdmin, NewApiKey, NewCalendar,
    NewConnection, NewWebhook, Notification, NotificationSubscription, Scope, SealedSecret, SecretOwner, Store,
    StoreError, SyncStatus, Webhook, WriteStats,
};
use calbridge_core::sync::{Cursor, CursorUpdate, Snapshot, SyncRecord, Write};
use chrono::{DateTime, Utc};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteRow, SqliteSynchronous};
use sqlx::{QueryBuilder, Row, Sqlite, SqlitePool, Transaction};

use crate::commit;
use crate::common::{
    busy_as, busy_time_from_row, micros, normalise_email, read_only, sealed_from_json, to_json, us_to_time, BusyArm,
    LONG_EVENT_US,
};
use crate::error::{corrupt, Context};
use crate::migrate;

/// How long a writer waits for another writer's lock before giving up.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);
/// Connections in the pool of a file database. SQLite has one writer at a time; more readers
/// only help concurrent reads (availability queries while a sync commits).
const FILE_POOL_SIZE: u32 = 4;
/// How long the checkpointer lets writes gather after the first one before it copies them from
/// the write-ahead log into the database: a page written by many commits is copied once.
const CHECKPOINT_PAUSE: Duration = Duration::from_millis(250);
/// How often the checkpointer runs without being woken, for writes made outside a write
/// transaction (single statements).
const CHECKPOINT_EVERY: Duration = Duration::from_secs(30);
/// How long a checkpoint, in the write turn, waits for readers to leave the write-ahead log.
const CHECKPOINT_READERS_WAIT: Duration = Duration::from_millis(100);

type Tx = Transaction<'static, Sqlite>;

const CONNECTION_COLUMNS: &str = "id, name, settings, default_organizer, max_threads";
const CALENDAR_COLUMNS: &str = "id, email, kind, display_name, connection_id, site_id, busy_only, link_state";
const EVENT_COLUMNS: &str = "id, calendar_id, origin, data, version, deleted";
const RECORD_COLUMNS: &str = "local_id, calendar_id, remote_id, remote_version, remote_hash, local_version, local_hash";

/// The [`Store`] on SQLite. Cheap to share behind an `Arc`; all methods take `&self`.
#[derive(Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
    /// This process's turn to write: one write transaction at a time, handed on in order.
    /// SQLite has one writer anyway; without the turn, writers that find the lock taken
    /// poll for it with growing sleeps (the busy timeout), which leaves the lock idle between
    /// them. The busy timeout still covers writers in other processes.
    write_turn: Arc<tokio::sync::Mutex<()>>,
    /// Wakes the checkpointer after a write transaction (a file database; see
    /// [`checkpoint_in_background`]). `None` when SQLite checkpoints by itself.
    checkpoint: Option<tokio::sync::mpsc::Sender<()>>,
    /// The pool as the checkpointer reaches it: it holds only a weak reference, so that the
    /// pool closes when the store's last clone is dropped, as it would without a checkpointer
    /// (its last connection then copies the log into the file and deletes it).
    _pool_for_checkpoints: Option<Arc<SqlitePool>>,
    /// Where the database is, for error messages ("/var/lib/calbridge/calbridge.db").
    location: String,
}

impl fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqliteStore").field("location", &self.location).finish_non_exhaustive()
    }
}

/// Where a `sqlite:` URL or a plain path points.
#[derive(Debug, PartialEq, Eq)]
enum Target {
    Memory,
    File(String),
}

fn parse_target(url_or_path: &str) -> Result<(Target, SqliteConnectOptions), StoreError> {
    let trimmed = url_or_path.trim();
    if trimmed.is_empty() {
        return Err(StoreError::Database(
            "no SQLite database given: use sqlite://PATH, sqlite:PATH, sqlite::memory: or a plain file path".into(),
        ));
    }
    if let Some(rest) = trimmed.strip_prefix("sqlite:") {
        let rest_path = rest.strip_prefix("//").unwrap_or(rest);
        let memory = rest_path == ":memory:" || rest_path.starts_with(":memory:?") || rest_path.contains("mode=memory");
        if !memory && rest_path.split('?').next().unwrap_or("").is_empty() {
            return Err(StoreError::Database(format!(
                "the SQLite URL `{trimmed}` names no file: use sqlite://PATH (e.g. sqlite://calbridge.db) or sqlite::memory:"
            )));
        }
        let options = SqliteConnectOptions::from_str(trimmed)
            .map_err(|e| StoreError::Database(format!("the SQLite URL `{trimmed}` is not valid: {e}")))?;
        let target = if memory { Target::Memory } else { Target::File(options.get_filename().display().to_string()) };
        Ok((target, options))
    } else {
        Ok((Target::File(trimmed.to_string()), SqliteConnectOptions::new().filename(trimmed)))
    }
}

impl SqliteStore {
    /// A commit, checking first (when given) that the lease still holds.
    async fn commit_checked(
        &self,
        calendar_id: CalendarId,
        writes: &[Write],
        cursor: &CursorUpdate,
        fence: Option<(&Lease, DateTime<Utc>)>,
    ) -> Result<WriteStats, StoreError> {
        let what = format!("commit {} writes for calendar {calendar_id}", writes.len());
        let json = commit::EventJson::of(writes);
        let mut tx = self.write_tx(&what).await?;
        require_calendar(&mut tx, calendar_id).await?;
        if let Some((lease, now)) = fence {
            check_lease(&mut tx, calendar_id, lease, now).await?;
        }
        // Any error returns early and drops `tx`, which rolls everything back.
        let mut stats = apply_writes(&mut tx, calendar_id, writes, &json).await?;
        stats.cursors += update_cursor(&mut tx, calendar_id, cursor).await?;
        commit_tx(tx, &what).await?;
        Ok(stats)
    }

    /// Opens (creating it if missing) and migrates the database at `url_or_path`:
    /// `sqlite://PATH`, `sqlite:PATH`, a plain path, or `sqlite::memory:` (a private in-memory
    /// database, gone when the store is dropped).
    pub async fn open(url_or_path: &str) -> Result<Self, StoreError> {
        let (target, options) = parse_target(url_or_path)?;
        let options = options.create_if_missing(true).foreign_keys(true).busy_timeout(BUSY_TIMEOUT);
        // Checkpoints leave the writer's path when a runtime can run the checkpointer.
        let background = matches!(target, Target::File(_)) && tokio::runtime::Handle::try_current().is_ok();
        let options = if background { options.pragma("wal_autocheckpoint", "0") } else { options };
        let (options, pool_options, location) = match target {
            // One connection, never recycled: an in-memory database lives exactly as long as its
            // only connection.
            Target::Memory => (
                options,
                SqlitePoolOptions::new().max_connections(1).min_connections(1).idle_timeout(None).max_lifetime(None),
                "the in-memory SQLite database".to_string(),
            ),
            Target::File(path) => (
                options.journal_mode(SqliteJournalMode::Wal).synchronous(SqliteSynchronous::Normal),
                SqlitePoolOptions::new().max_connections(FILE_POOL_SIZE),
                format!("the SQLite database at {path}"),
            ),
        };
        let pool = pool_options.connect_with(options).await.map_err(|e| {
            StoreError::Database(format!(
                "could not open {location}: {e}; check that the directory exists and is writable"
            ))
        })?;
        let write_turn = Arc::new(tokio::sync::Mutex::new(()));
        let (checkpoint, pool_for_checkpoints) = if background {
            let (wake, woken) = tokio::sync::mpsc::channel(1);
            let shared = Arc::new(pool.clone());
            tokio::spawn(checkpoint_in_background(
                Arc::downgrade(&shared),
                write_turn.clone(),
                woken,
                location.clone(),
            ));
            (Some(wake), Some(shared))
        } else {
            (None, None)
        };
        let store = SqliteStore { pool, location, write_turn, checkpoint, _pool_for_checkpoints: pool_for_checkpoints };
        store.migrate().await?;
        Ok(store)
    }

    async fn migrate(&self) -> Result<(), StoreError> {
        let migrator = migrate::migrator()
            .await
            .map_err(|e| StoreError::Database(format!("could not load the embedded migrations: {e}")))?;
        migrator.run(&self.pool).await.map_err(|e| migrate::failure(e, &self.location))
    }

    /// The highest schema migration applied to the database.
    pub async fn schema_version(&self) -> Result<i64, StoreError> {
        let row = sqlx::query("SELECT COALESCE(MAX(version), 0) AS v FROM _sqlx_migrations WHERE success")
            .fetch_one(&self.pool)
            .await
            .context(|| format!("could not read the schema version of {}", self.location))?;
        Ok(row.get("v"))
    }

    /// How many migrations the database has recorded as applied.
    pub async fn applied_migrations(&self) -> Result<i64, StoreError> {
        let row = sqlx::query("SELECT COUNT(*) AS n FROM _sqlx_migrations")
            .fetch_one(&self.pool)
            .await
            .context(|| format!("could not read the migrations of {}", self.location))?;
        Ok(row.get("n"))
    }

    /// Where the database is, in words ("the SQLite database at PATH").
    pub fn location(&self) -> &str {
        &self.location
    }

    /// Waits for running queries and closes every connection (and so the file).
    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// A write transaction. `BEGIN IMMEDIATE` takes SQLite's write lock up front, so a
    /// transaction that reads before it writes can wait for the lock (busy timeout) instead of
    /// failing when it upgrades.
    async fn write_tx(&self, what: &str) -> Result<WriteTx, StoreError> {
        let turn = self.write_turn.clone().lock_owned().await;
        let tx = self
            .pool
            .begin_with("BEGIN IMMEDIATE")
            .await
            .context(|| format!("could not start a transaction to {what}"))?;
        Ok(WriteTx { tx, _turn: turn, checkpoint: self.checkpoint.clone() })
    }

    async fn read_tx(&self, what: &str) -> Result<Tx, StoreError> {
        self.pool.begin().await.context(|| format!("could not start a transaction to {what}"))
    }
}

async fn commit_tx(tx: WriteTx, what: &str) -> Result<(), StoreError> {
    tx.tx.commit().await.context(|| format!("could not commit the transaction to {what}"))?;
    if let Some(wake) = &tx.checkpoint {
        // Full: the checkpointer is already woken and will see this write too.
        let _ = wake.try_send(());
    }
    Ok(())
}

/// Copies committed pages from the write-ahead log into the database file in the background,
/// so that no writer does it while holding SQLite's single write lock. (By default SQLite has
/// the commit that takes the log past 1,000 pages do it; in a sync of many calendars that was a
/// quarter of the writer's time, and every writer waited for it.) Runs until the store's last
/// clone is dropped, holding the pool only while it checkpoints; closing the database (its
/// last connection) copies whatever is left and deletes the log.
async fn checkpoint_in_background(
    pool: std::sync::Weak<SqlitePool>,
    write_turn: Arc<tokio::sync::Mutex<()>>,
    mut woken: tokio::sync::mpsc::Receiver<()>,
    location: String,
) {
    let mut every = tokio::time::interval(CHECKPOINT_EVERY);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            wake = woken.recv() => {
                if wake.is_none() {
                    return;
                }
                tokio::time::sleep(CHECKPOINT_PAUSE).await;
                while woken.try_recv().is_ok() {}
            }
            _ = every.tick() => {}
        }
        let Some(pool) = pool.upgrade() else { return };
        if pool.is_closed() {
            return;
        }
        if let Err(e) = checkpoint(&pool, &write_turn).await {
            if !pool.is_closed() {
                tracing::warn!("could not checkpoint the write-ahead log of {location}: {e}");
            }
        }
    }
}

/// One checkpoint. Most of the log is copied (`PASSIVE`) while writers go on. What they added
/// meanwhile is copied in this process's write turn (`RESTART`), which also waits, at most
/// [`CHECKPOINT_READERS_WAIT`], for readers to leave the log, so that the next writer starts
/// the log over from its beginning: a log that is never complete with no reader in it only
/// grows.
async fn checkpoint(pool: &SqlitePool, write_turn: &tokio::sync::Mutex<()>) -> Result<(), sqlx::Error> {
    let mut conn = pool.acquire().await?;
    let (_, frames, _) = wal_checkpoint(&mut conn, "PASSIVE").await?;
    if frames <= 0 {
        return Ok(());
    }
    let _turn = write_turn.lock().await;
    let set_wait = |wait: Duration| format!("PRAGMA busy_timeout = {}", wait.as_millis());
    sqlx::query(&set_wait(CHECKPOINT_READERS_WAIT)).execute(&mut *conn).await?;
    let restarted = wal_checkpoint(&mut conn, "RESTART").await;
    if sqlx::query(&set_wait(BUSY_TIMEOUT)).execute(&mut *conn).await.is_err() {
        // Not back in the pool with the short wait.
        conn.close_on_drop();
    }
    restarted.map(drop)
}

/// `PRAGMA wal_checkpoint(MODE)`: (busy, frames in the log, frames copied).
async fn wal_checkpoint(conn: &mut sqlx::SqliteConnection, mode: &str) -> Result<(i64, i64, i64), sqlx::Error> {
    // `fetch_all`: the statement runs to its end, so the connection keeps no read open.
    let rows: Vec<(i64, i64, i64)> = sqlx::query_as(&format!("PRAGMA wal_checkpoint({mode})")).fetch_all(conn).await?;
    Ok(rows.first().copied().unwrap_or((0, 0, 0)))
}

/// A write transaction holding the process's turn to write until it ends (committed, or
/// dropped and so rolled back).
struct WriteTx {
    tx: Tx,
    _turn: tokio::sync::OwnedMutexGuard<()>,
    checkpoint: Option<tokio::sync::mpsc::Sender<()>>,
}

impl std::ops::Deref for WriteTx {
    type Target = Tx;
    fn deref(&self) -> &Tx {
        &self.tx
    }
}

impl std::ops::DerefMut for WriteTx {
    fn deref_mut(&mut self) -> &mut Tx {
        &mut self.tx
    }
}

// --- row mapping ---------------------------------------------------------------------------

fn connection_from_row(row: &SqliteRow) -> Result<Connection, StoreError> {
    let id: i64 = row.get("id");
    let settings: String = row.get("settings");
    let settings: ConnectionSettings =
        serde_json::from_str(&settings).map_err(|e| corrupt(format!("the settings of connection {id}"), e))?;
    let max_threads: i64 = row.get("max_threads");
    Ok(Connection {
        id,
        name: row.get("name"),
        settings,
        default_organizer: row.get("default_organizer"),
        max_threads: u32::try_from(max_threads)
            .map_err(|e| corrupt(format!("max_threads {max_threads} of connection {id}"), e))?,
    })
}

fn site_from_row(row: &SqliteRow) -> Site {
    Site { id: row.get("id"), name: row.get("name"), connection_id: row.get("connection_id") }
}

fn calendar_from_row(row: &SqliteRow) -> Result<Calendar, StoreError> {
    let id: i64 = row.get("id");
    let kind: String = row.get("kind");
    let link: String = row.get("link_state");
    Ok(Calendar {
        id,
        email: row.get("email"),
        kind: CalendarKind::parse(&kind)
            .ok_or_else(|| corrupt(format!("the kind `{kind}` of calendar {id}"), "unknown kind"))?,
        display_name: row.get("display_name"),
        connection_id: row.get("connection_id"),
        site_id: row.get("site_id"),
        busy_only: row.get("busy_only"),
        link: serde_json::from_str(&link).map_err(|e| corrupt(format!("the link state of calendar {id}"), e))?,
    })
}

fn event_from_row(row: &SqliteRow) -> Result<Event, StoreError> {
    let id: String = row.get("id");
    let origin: String = row.get("origin");
    let data: String = row.get("data");
    Ok(Event {
        calendar_id: row.get("calendar_id"),
        origin: Origin::parse(&origin)
            .ok_or_else(|| corrupt(format!("the origin `{origin}` of event {id}"), "unknown origin"))?,
        data: serde_json::from_str(&data).map_err(|e| corrupt(format!("the content of event {id}"), e))?,
        version: row.get("version"),
        deleted: row.get("deleted"),
        id: EventId(id),
    })
}

fn record_from_row(row: &SqliteRow) -> SyncRecord {
    SyncRecord {
        local_id: EventId(row.get("local_id")),
        calendar_id: row.get("calendar_id"),
        remote_id: row.get("remote_id"),
        remote_version: row.get("remote_version"),
        remote_hash: ContentHash(row.get("remote_hash")),
        local_version: row.get("local_version"),
        local_hash: ContentHash(row.get("local_hash")),
    }
}

// --- queries shared by several operations, inside a transaction ------------------------------

async fn event_in(tx: &mut Tx, id: &EventId) -> Result<Option<Event>, StoreError> {
    let row = sqlx::query(&format!("SELECT {EVENT_COLUMNS} FROM events WHERE id = ?"))
        .bind(id.as_str())
        .fetch_optional(&mut **tx)
        .await
        .context(|| format!("could not read event {id}"))?;
    row.as_ref().map(event_from_row).transpose()
}

async fn require_calendar(tx: &mut Tx, id: CalendarId) -> Result<(), StoreError> {
    let found = sqlx::query("SELECT 1 FROM calendars WHERE id = ?")
        .bind(id)
        .fetch_optional(&mut **tx)
        .await
        .context(|| format!("could not look up calendar {id}"))?;
    match found {
        Some(_) => Ok(()),
        None => Err(StoreError::NotFound { what: format!("calendar {id}") }),
    }
}

async fn require_connection(tx: &mut Tx, id: ConnectionId) -> Result<(), StoreError> {
    let found = sqlx::query("SELECT 1 FROM connections WHERE id = ?")
        .bind(id)
        .fetch_optional(&mut **tx)
        .await
        .context(|| format!("could not look up connection {id}"))?;
    match found {
        Some(_) => Ok(()),
        None => Err(StoreError::NotFound { what: format!("connection {id}") }),
    }
}

async fn insert_event(tx: &mut Tx, e: &Event) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO events (id, calendar_id, origin, data, start_us, end_us, version, deleted, busy_as) \
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(e.id.as_str())
    .bind(e.calendar_id)
    .bind(e.origin.as_str())
    .bind(to_json(&e.data))
    .bind(micros(e.data.start))
    .bind(micros(e.data.end))
    .bind(e.version)
    .bind(e.deleted)
    .bind(busy_as(&e.data))
    .execute(&mut **tx)
    .await
    .context(|| format!("could not insert event {}", e.id))?;
    Ok(())
}

/// Replaces an event's row (its id and calendar stay).
async fn replace_event(tx: &mut Tx, e: &Event, json: &str) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE events SET origin = ?, data = ?, start_us = ?, end_us = ?, version = ?, deleted = ?, busy_as = ? \
         WHERE id = ?",
    )
    .bind(e.origin.as_str())
    .bind(json)
    .bind(micros(e.data.start))
    .bind(micros(e.data.end))
    .bind(e.version)
    .bind(e.deleted)
    .bind(busy_as(&e.data))
    .bind(e.id.as_str())
    .execute(&mut **tx)
    .await
    .context(|| format!("could not update event {}", e.id))?;
    Ok(())
}

// --- commit --------------------------------------------------------------------------------

/// Applies a commit's writes: reads the rows they touch, plans in memory (`commit::plan`, the
/// checks and counts of applying them one by one), and sends the difference in multi-row
/// statements.
async fn apply_writes(
    tx: &mut Tx,
    calendar_id: CalendarId,
    writes: &[Write],
    json: &commit::EventJson<'_>,
) -> Result<WriteStats, StoreError> {
    let keys = commit::Keys::of(writes);
    let mut events = Vec::with_capacity(keys.event_ids.len());
    for ids in keys.event_ids.chunks(commit::CHUNK) {
        let mut q = QueryBuilder::<Sqlite>::new(format!("SELECT {EVENT_COLUMNS} FROM events WHERE id IN ("));
        push_list(&mut q, ids);
        for row in q
            .build()
            .fetch_all(&mut **tx)
            .await
            .context(|| format!("could not read the events of calendar {calendar_id}"))?
        {
            events.push(event_from_row(&row)?);
        }
    }
    let mut records = Vec::with_capacity(keys.record_ids.len());
    let by_local = keys.record_ids.chunks(commit::CHUNK).map(|ids| (ids, false));
    let by_remote = keys.remote_ids.chunks(commit::CHUNK).map(|ids| (ids, true));
    for (ids, remote) in by_local.chain(by_remote) {
        let mut q = QueryBuilder::<Sqlite>::new(format!("SELECT {RECORD_COLUMNS} FROM sync_records WHERE "));
        if remote {
            q.push("calendar_id = ").push_bind(calendar_id).push(" AND remote_id IN (");
        } else {
            q.push("local_id IN (");
        }
        push_list(&mut q, ids);
        let rows = q
            .build()
            .fetch_all(&mut **tx)
            .await
            .context(|| format!("could not read the sync records of calendar {calendar_id}"))?;
        records.extend(rows.iter().map(record_from_row));
    }
    records.sort_unstable_by(|a, b| a.local_id.cmp(&b.local_id));
    records.dedup_by(|a, b| a.local_id == b.local_id);
    let plan = commit::plan(calendar_id, writes, events, records)?;

    for (table, key, ids) in [("events", "id", &plan.delete_events), ("sync_records", "local_id", &plan.delete_records)]
    {
        for ids in ids.chunks(commit::CHUNK) {
            let mut q = QueryBuilder::<Sqlite>::new(format!("DELETE FROM {table} WHERE calendar_id = "));
            q.push_bind(calendar_id).push(format!(" AND {key} IN ("));
            push_list(&mut q, ids);
            q.build()
                .execute(&mut **tx)
                .await
                .context(|| format!("could not delete from {table} of calendar {calendar_id}"))?;
        }
    }
    for e in &plan.update_events {
        replace_event(tx, e, &json.get(e)).await?;
    }
    for r in &plan.update_records {
        sqlx::query(
            "UPDATE sync_records SET remote_version = ?, remote_hash = ?, local_version = ?, local_hash = ? \
             WHERE local_id = ?",
        )
        .bind(&r.remote_version)
        .bind(&r.remote_hash.0)
        .bind(r.local_version)
        .bind(&r.local_hash.0)
        .bind(r.local_id.as_str())
        .execute(&mut **tx)
        .await
        .context(|| format!("could not write the sync record of event {}", r.local_id))?;
    }
    for chunk in plan.insert_events.chunks(commit::CHUNK) {
        let mut q = QueryBuilder::<Sqlite>::new(
            "INSERT INTO events (id, calendar_id, origin, data, start_us, end_us, version, deleted, busy_as) ",
        );
        q.push_values(chunk, |mut b, e| {
            b.push_bind(e.id.as_str())
                .push_bind(e.calendar_id)
                .push_bind(e.origin.as_str())
                .push_bind(json.get(e))
                .push_bind(micros(e.data.start))
                .push_bind(micros(e.data.end))
                .push_bind(e.version)
                .push_bind(e.deleted)
                .push_bind(busy_as(&e.data));
        });
        q.build()
            .execute(&mut **tx)
            .await
            .context(|| format!("could not insert events into calendar {calendar_id}"))?;
    }
    for chunk in plan.insert_records.chunks(commit::CHUNK) {
        let mut q = QueryBuilder::<Sqlite>::new(
            "INSERT INTO sync_records (local_id, calendar_id, remote_id, remote_version, remote_hash, local_version, \
             local_hash) ",
        );
        q.push_values(chunk, |mut b, r| {
            b.push_bind(r.local_id.as_str())
                .push_bind(r.calendar_id)
                .push_bind(&r.remote_id)
                .push_bind(&r.remote_version)
                .push_bind(&r.remote_hash.0)
                .push_bind(r.local_version)
                .push_bind(&r.local_hash.0);
        });
        q.build()
            .execute(&mut **tx)
            .await
            .context(|| format!("could not write sync records of calendar {calendar_id}"))?;
    }
    let notify: Vec<Notification> = plan.notifications.iter().map(|n| (*n).clone()).collect();
    insert_notifications(tx, &notify).await?;
    Ok(plan.stats)
}

/// The rest of an `IN (` list: one bound value per id, then `)`.
fn push_list<'a>(q: &mut QueryBuilder<'a, Sqlite>, ids: &[&'a str]) {
    let mut list = q.separated(", ");
    for id in ids {
        list.push_bind(*id);
    }
    q.push(")");
}

/// The busy times of `ids` over `[from, to)` (see `Store::busy_times`), unordered, in two
/// queries (short events by start, long ones by their own index), each with one row per
/// calendar (sqlx hands rows over one by one, so thousands of rows cost more than the
/// query), its times as `start,end,busy_as;...`.
async fn busy_times_of(
    pool: &SqlitePool,
    ids: &[CalendarId],
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<Vec<BusyTime>, StoreError> {
    let mut out = Vec::new();
    // One query per arm: each reads one index in calendar order, so SQLite groups the rows as
    // they come, without sorting them first (a UNION ALL of the two would need a sort).
    for arm in [BusyArm::Short, BusyArm::Long] {
        let mut q = QueryBuilder::<Sqlite>::new(
            "SELECT calendar_id, group_concat(start_us || ',' || end_us || ',' || busy_as, ';') FROM events ",
        );
        // The long arm names its index: without statistics SQLite would prefer the main one,
        // and read the calendar from its first event.
        q.push(if arm == BusyArm::Long { "INDEXED BY events_long " } else { "" });
        q.push("WHERE calendar_id IN (");
        let mut list = q.separated(", ");
        for id in ids {
            list.push_bind(*id);
        }
        q.push(") AND ").push(arm.condition());
        q.push(" AND start_us < ").push_bind(micros(to));
        q.push(" AND start_us ").push(if arm == BusyArm::Short { ">= " } else { "< " });
        q.push_bind(micros(from) - LONG_EVENT_US);
        q.push(" AND end_us > ").push_bind(micros(from));
        q.push(" AND deleted = 0 AND busy_as IS NOT NULL GROUP BY calendar_id");
        let rows = q
            .build()
            .fetch_all(pool)
            .await
            .context(|| format!("could not read the busy times of {} calendars from {from} to {to}", ids.len()))?;
        for row in &rows {
            let calendar_id: i64 = row.get(0);
            let times: String = row.get(1);
            for time in times.split(';') {
                let mut parts = time.splitn(3, ',');
                let mut number = || parts.next().and_then(|n| n.parse::<i64>().ok());
                let (Some(start), Some(end)) = (number(), number()) else {
                    return Err(corrupt(format!("a busy time of calendar {calendar_id}"), format!("`{time}`")));
                };
                out.push(busy_time_from_row(calendar_id, start, end, parts.next().unwrap_or_default())?);
            }
        }
    }
    Ok(out)
}

async fn update_cursor(tx: &mut Tx, calendar_id: CalendarId, update: &CursorUpdate) -> Result<u64, StoreError> {
    match update {
        CursorUpdate::Keep => Ok(0),
        CursorUpdate::Set(Cursor(cursor)) => {
            let stored: Option<String> = sqlx::query("SELECT cursor FROM cursors WHERE calendar_id = ?")
                .bind(calendar_id)
                .fetch_optional(&mut **tx)
                .await
                .context(|| format!("could not read the cursor of calendar {calendar_id}"))?
                .map(|row| row.get("cursor"));
            if stored.as_deref() == Some(cursor.as_str()) {
                return Ok(0);
            }
            sqlx::query(
                "INSERT INTO cursors (calendar_id, cursor) VALUES (?, ?) \
                 ON CONFLICT (calendar_id) DO UPDATE SET cursor = excluded.cursor",
            )
            .bind(calendar_id)
            .bind(cursor)
            .execute(&mut **tx)
            .await
            .context(|| format!("could not save the cursor of calendar {calendar_id}"))?;
            Ok(1)
        }
        CursorUpdate::Clear => Ok(sqlx::query("DELETE FROM cursors WHERE calendar_id = ?")
            .bind(calendar_id)
            .execute(&mut **tx)
            .await
            .context(|| format!("could not clear the cursor of calendar {calendar_id}"))?
            .rows_affected()),
    }
}

fn api_key_from_row(row: &SqliteRow) -> Result<ApiKey, StoreError> {
    let id: i64 = row.get("id");
    let scope: String = row.get("scope");
    Ok(ApiKey {
        id,
        name: row.get("name"),
        scope: Scope::parse(&scope).ok_or_else(|| corrupt(format!("the scope of API key {id}"), "unknown scope"))?,
        prefix: row.get("prefix"),
        created_at: us_to_time(row.get("created_us"), || format!("the creation time of API key {id}"))?,
    })
}

fn lease_from_row(row: &SqliteRow) -> Result<Lease, StoreError> {
    let calendar_id: i64 = row.get("calendar_id");
    Ok(Lease {
        calendar_id,
        holder: row.get("holder"),
        fence: row.get("fence"),
        expires_at: us_to_time(row.get("expires_us"), || format!("the lease of calendar {calendar_id}"))?,
    })
}

/// `Conflict` unless `lease` is the calendar's current, unexpired lease.
async fn check_lease(
    tx: &mut Tx,
    calendar_id: CalendarId,
    lease: &Lease,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    let row = sqlx::query("SELECT calendar_id, holder, fence, expires_us FROM leases WHERE calendar_id = ?")
        .bind(calendar_id)
        .fetch_optional(&mut **tx)
        .await
        .context(|| format!("could not read the lease of calendar {calendar_id}"))?;
    let current = row.as_ref().map(lease_from_row).transpose()?;
    match current {
        Some(c) if c.holder == lease.holder && c.fence == lease.fence && c.expires_at > now => Ok(()),
        _ => Err(StoreError::Conflict(format!(
            "worker {} no longer holds the lease of calendar {calendar_id} (fence {}): another worker took it over or \
             it expired, so nothing was written; the calendar's new holder syncs it",
            lease.holder, lease.fence
        ))),
    }
}

fn subscription_from_row(row: &SqliteRow) -> Result<NotificationSubscription, StoreError> {
    let id: String = row.get("id");
    Ok(NotificationSubscription {
        calendar_id: row.get("calendar_id"),
        client_state_hash: row.get("client_state_hash"),
        expires_at: us_to_time(row.get("expires_us"), || format!("the expiration of subscription {id}"))?,
        id,
    })
}

fn admin_from_row(row: &SqliteRow) -> Result<AdminAccount, StoreError> {
    let id: i64 = row.get("id");
    Ok(AdminAccount {
        id,
        username: row.get("username"),
        password_hash: row.get("password_hash"),
        created_at: us_to_time(row.get("created_us"), || format!("the creation time of administrator {id}"))?,
        updated_at: us_to_time(row.get("updated_us"), || format!("the change time of administrator {id}"))?,
    })
}

fn webhook_from_row(row: &SqliteRow) -> Result<Webhook, StoreError> {
    let id: String = row.get("id");
    let events: String = row.get("events");
    Ok(Webhook {
        events: serde_json::from_str(&events).map_err(|e| corrupt(format!("the events of webhook {id}"), e))?,
        url: row.get("url"),
        description: row.get("description"),
        created_at: us_to_time(row.get("created_us"), || format!("the creation time of webhook {id}"))?,
        id,
    })
}

/// Queues messages and, for each, one delivery per endpoint subscribed to its type. A message
/// id already queued is left as it is (a retried change).
async fn insert_notifications(tx: &mut Tx, notify: &[Notification]) -> Result<(), StoreError> {
    for n in notify {
        let what = || format!("could not queue webhook message {} ({})", n.id, n.event_type);
        let inserted = sqlx::query(
            "INSERT INTO outbox (id, event_type, payload, created_us) VALUES (?, ?, ?, ?) ON CONFLICT (id) DO NOTHING",
        )
        .bind(&n.id)
        .bind(&n.event_type)
        .bind(&n.payload)
        .bind(micros(n.created_at))
        .execute(&mut **tx)
        .await
        .context(what)?
        .rows_affected();
        if inserted == 0 {
            continue;
        }
        sqlx::query(
            "INSERT INTO deliveries (message_id, webhook_id, next_attempt_us) \
             SELECT ?1, w.id, ?2 FROM webhooks w \
             WHERE EXISTS (SELECT 1 FROM json_each(w.events) WHERE json_each.value = ?3)",
        )
        .bind(&n.id)
        .bind(micros(n.created_at))
        .bind(&n.event_type)
        .execute(&mut **tx)
        .await
        .context(what)?;
    }
    Ok(())
}

#[async_trait]
impl Store for SqliteStore {
    // --- connections -------------------------------------------------------------------

    async fn upsert_connection(&self, c: NewConnection) -> Result<Connection, StoreError> {
        let name = c.name.trim();
        if name.is_empty() {
            return Err(StoreError::Conflict("a connection needs a name".into()));
        }
        let row = sqlx::query(&format!(
            "INSERT INTO connections (name, kind, settings, default_organizer, max_threads) VALUES (?, ?, ?, ?, ?) \
             ON CONFLICT (name) DO UPDATE SET kind = excluded.kind, settings = excluded.settings, \
             default_organizer = excluded.default_organizer, max_threads = excluded.max_threads \
             RETURNING {CONNECTION_COLUMNS}"
        ))
        .bind(name)
        .bind(c.settings.kind())
        .bind(to_json(&c.settings))
        .bind(&c.default_organizer)
        .bind(i64::from(c.max_threads))
        .fetch_one(&self.pool)
        .await
        .context(|| format!("could not save connection `{name}`"))?;
        connection_from_row(&row)
    }

    async fn connection(&self, id: ConnectionId) -> Result<Option<Connection>, StoreError> {
        let row = sqlx::query(&format!("SELECT {CONNECTION_COLUMNS} FROM connections WHERE id = ?"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .context(|| format!("could not read connection {id}"))?;
        row.as_ref().map(connection_from_row).transpose()
    }

    async fn connection_by_name(&self, name: &str) -> Result<Option<Connection>, StoreError> {
        let row = sqlx::query(&format!("SELECT {CONNECTION_COLUMNS} FROM connections WHERE name = ?"))
            .bind(name.trim())
            .fetch_optional(&self.pool)
            .await
            .context(|| format!("could not read connection `{name}`"))?;
        row.as_ref().map(connection_from_row).transpose()
    }

    async fn connections(&self) -> Result<Vec<Connection>, StoreError> {
        let rows = sqlx::query(&format!("SELECT {CONNECTION_COLUMNS} FROM connections ORDER BY name"))
            .fetch_all(&self.pool)
            .await
            .context(|| "could not list connections".into())?;
        rows.iter().map(connection_from_row).collect()
    }

    async fn delete_connection(&self, id: ConnectionId) -> Result<(), StoreError> {
        let what = format!("delete connection {id}");
        let mut tx = self.write_tx(&what).await?;
        require_connection(&mut tx, id).await?;
        // Explicit, child first; the foreign keys' ON DELETE clauses are the safety net.
        let calendars = "SELECT id FROM calendars WHERE connection_id = ?1";
        for sql in [
            format!("DELETE FROM cursors WHERE calendar_id IN ({calendars})"),
            format!("DELETE FROM sync_records WHERE calendar_id IN ({calendars})"),
            format!("DELETE FROM events WHERE calendar_id IN ({calendars})"),
            format!("DELETE FROM sync_status WHERE calendar_id IN ({calendars})"),
            "DELETE FROM calendars WHERE connection_id = ?1".to_string(),
            // Calendars of other connections may sit in this connection's sites.
            "UPDATE calendars SET site_id = NULL WHERE site_id IN (SELECT id FROM sites WHERE connection_id = ?1)"
                .to_string(),
            "DELETE FROM sites WHERE connection_id = ?1".to_string(),
            "DELETE FROM connections WHERE id = ?1".to_string(),
        ] {
            sqlx::query(&sql).bind(id).execute(&mut **tx).await.context(|| format!("could not {what}"))?;
        }
        commit_tx(tx, &what).await
    }

    // --- sites -------------------------------------------------------------------------

    async fn upsert_site(&self, name: &str, connection_id: ConnectionId) -> Result<Site, StoreError> {
        let name = name.trim();
        if name.is_empty() {
            return Err(StoreError::Conflict("a site needs a name".into()));
        }
        let what = format!("save site `{name}`");
        let mut tx = self.write_tx(&what).await?;
        require_connection(&mut tx, connection_id).await?;
        let row = sqlx::query(
            "INSERT INTO sites (name, connection_id) VALUES (?, ?) \
             ON CONFLICT (name) DO UPDATE SET connection_id = excluded.connection_id \
             RETURNING id, name, connection_id",
        )
        .bind(name)
        .bind(connection_id)
        .fetch_one(&mut **tx)
        .await
        .context(|| format!("could not {what}"))?;
        let site = site_from_row(&row);
        commit_tx(tx, &what).await?;
        Ok(site)
    }

    async fn sites(&self) -> Result<Vec<Site>, StoreError> {
        let rows = sqlx::query("SELECT id, name, connection_id FROM sites ORDER BY name")
            .fetch_all(&self.pool)
            .await
            .context(|| "could not list sites".into())?;
        Ok(rows.iter().map(site_from_row).collect())
    }

    // --- calendars ---------------------------------------------------------------------

    async fn upsert_calendar(&self, c: NewCalendar) -> Result<Calendar, StoreError> {
        let email = normalise_email(&c.email);
        if email.is_empty() {
            return Err(StoreError::Conflict("a calendar link needs the mailbox's e-mail address".into()));
        }
        let what = format!("link calendar {email}");
        let mut tx = self.write_tx(&what).await?;
        require_connection(&mut tx, c.connection_id).await?;
        if let Some(site) = c.site_id {
            let found = sqlx::query("SELECT 1 FROM sites WHERE id = ?")
                .bind(site)
                .fetch_optional(&mut **tx)
                .await
                .context(|| format!("could not look up site {site}"))?;
            if found.is_none() {
                return Err(StoreError::NotFound { what: format!("site {site}") });
            }
        }
        let row = sqlx::query(&format!(
            "INSERT INTO calendars (email, kind, display_name, connection_id, site_id, busy_only, link_state) \
             VALUES (?, ?, ?, ?, ?, ?, ?) \
             ON CONFLICT (email) DO UPDATE SET kind = excluded.kind, display_name = excluded.display_name, \
             site_id = excluded.site_id, busy_only = excluded.busy_only, \
             link_state = CASE WHEN calendars.connection_id = excluded.connection_id \
                          THEN calendars.link_state ELSE excluded.link_state END, \
             connection_id = excluded.connection_id \
             RETURNING {CALENDAR_COLUMNS}"
        ))
        .bind(&email)
        .bind(c.kind.as_str())
        .bind(&c.display_name)
        .bind(c.connection_id)
        .bind(c.site_id)
        .bind(c.busy_only)
        .bind(to_json(&LinkState::Unverified))
        .fetch_one(&mut **tx)
        .await
        .context(|| format!("could not {what}"))?;
        let calendar = calendar_from_row(&row)?;
        commit_tx(tx, &what).await?;
        Ok(calendar)
    }

    async fn calendar(&self, id: CalendarId) -> Result<Option<Calendar>, StoreError> {
        let row = sqlx::query(&format!("SELECT {CALENDAR_COLUMNS} FROM calendars WHERE id = ?"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .context(|| format!("could not read calendar {id}"))?;
        row.as_ref().map(calendar_from_row).transpose()
    }

    async fn calendar_by_email(&self, email: &str) -> Result<Option<Calendar>, StoreError> {
        let email = normalise_email(email);
        let row = sqlx::query(&format!("SELECT {CALENDAR_COLUMNS} FROM calendars WHERE email = ?"))
            .bind(&email)
            .fetch_optional(&self.pool)
            .await
            .context(|| format!("could not read calendar {email}"))?;
        row.as_ref().map(calendar_from_row).transpose()
    }

    async fn calendars(&self, connection: Option<ConnectionId>) -> Result<Vec<Calendar>, StoreError> {
        let rows = match connection {
            Some(id) => {
                sqlx::query(&format!("SELECT {CALENDAR_COLUMNS} FROM calendars WHERE connection_id = ? ORDER BY email"))
                    .bind(id)
                    .fetch_all(&self.pool)
                    .await
                    .context(|| format!("could not list the calendars of connection {id}"))?
            }
            None => sqlx::query(&format!("SELECT {CALENDAR_COLUMNS} FROM calendars ORDER BY email"))
                .fetch_all(&self.pool)
                .await
                .context(|| "could not list calendars".into())?,
        };
        rows.iter().map(calendar_from_row).collect()
    }

    async fn calendars_by_id(&self, ids: &[CalendarId]) -> Result<Vec<Calendar>, StoreError> {
        let mut out = Vec::with_capacity(ids.len());
        for ids in ids.chunks(commit::CHUNK) {
            let mut q = QueryBuilder::<Sqlite>::new(format!("SELECT {CALENDAR_COLUMNS} FROM calendars WHERE id IN ("));
            let mut list = q.separated(", ");
            for id in ids {
                list.push_bind(*id);
            }
            q.push(")");
            let rows =
                q.build().fetch_all(&self.pool).await.context(|| format!("could not read {} calendars", ids.len()))?;
            for row in &rows {
                out.push(calendar_from_row(row)?);
            }
        }
        out.sort_unstable_by_key(|c| c.id);
        out.dedup_by_key(|c| c.id);
        Ok(out)
    }

    async fn set_link_state(&self, id: CalendarId, state: &LinkState) -> Result<(), StoreError> {
        let changed = sqlx::query("UPDATE calendars SET link_state = ? WHERE id = ?")
            .bind(to_json(state))
            .bind(id)
            .execute(&self.pool)
            .await
            .context(|| format!("could not save the link state of calendar {id}"))?
            .rows_affected();
        if changed == 0 {
            return Err(StoreError::NotFound { what: format!("calendar {id}") });
        }
        Ok(())
    }

    // --- events, the host application's side --------------------------------------------

    async fn create_local_event(
        &self,
        calendar_id: CalendarId,
        id: &EventId,
        data: &EventData,
    ) -> Result<Event, StoreError> {
        self.create_local_event_notify(calendar_id, id, data, &[]).await
    }

    async fn update_local_event(
        &self,
        id: &EventId,
        data: &EventData,
        expected_version: Option<i64>,
    ) -> Result<Event, StoreError> {
        self.update_local_event_notify(id, data, expected_version, &[]).await
    }

    async fn delete_local_event(&self, id: &EventId) -> Result<(), StoreError> {
        self.delete_local_event_notify(id, &[]).await
    }

    async fn create_local_event_notify(
        &self,
        calendar_id: CalendarId,
        id: &EventId,
        data: &EventData,
        notify: &[Notification],
    ) -> Result<Event, StoreError> {
        if id.as_str().is_empty() {
            return Err(StoreError::Conflict("an event needs an id".into()));
        }
        let what = format!("create event {id}");
        let mut tx = self.write_tx(&what).await?;
        require_calendar(&mut tx, calendar_id).await?;
        if let Some(existing) = event_in(&mut tx, id).await? {
            let same = existing.calendar_id == calendar_id
                && existing.origin == Origin::Local
                && !existing.deleted
                && existing.data == *data;
            if same {
                return Ok(existing); // an idempotent retry
            }
            return Err(StoreError::Conflict(format!(
                "event {id} already exists (calendar {}, version {}) with other content; a retry must send \
                 the same content, and a new event needs a new id",
                existing.calendar_id, existing.version
            )));
        }
        let event = Event {
            id: id.clone(),
            calendar_id,
            origin: Origin::Local,
            data: data.clone(),
            version: 1,
            deleted: false,
        };
        insert_event(&mut tx, &event).await?;
        insert_notifications(&mut tx, notify).await?;
        commit_tx(tx, &what).await?;
        Ok(event)
    }

    async fn update_local_event_notify(
        &self,
        id: &EventId,
        data: &EventData,
        expected_version: Option<i64>,
        notify: &[Notification],
    ) -> Result<Event, StoreError> {
        let what = format!("update event {id}");
        let mut tx = self.write_tx(&what).await?;
        let Some(stored) = event_in(&mut tx, id).await? else {
            return Err(StoreError::NotFound { what: format!("event {id}") });
        };
        if stored.origin == Origin::Exchange {
            return Err(read_only(id));
        }
        if stored.deleted {
            return Err(StoreError::Conflict(format!(
                "event {id} was deleted (the deletion is waiting to be sent to Exchange) and can no longer be changed"
            )));
        }
        if let Some(expected) = expected_version {
            if expected != stored.version {
                return Err(StoreError::Conflict(format!(
                    "event {id} is at version {}, not the expected version {expected}; someone changed it \
                     meanwhile: read it again and reapply the change",
                    stored.version
                )));
            }
        }
        let event = Event { data: data.clone(), version: stored.version + 1, ..stored };
        replace_event(&mut tx, &event, &to_json(&event.data)).await?;
        insert_notifications(&mut tx, notify).await?;
        commit_tx(tx, &what).await?;
        Ok(event)
    }

    async fn delete_local_event_notify(&self, id: &EventId, notify: &[Notification]) -> Result<(), StoreError> {
        let what = format!("delete event {id}");
        let mut tx = self.write_tx(&what).await?;
        let Some(stored) = event_in(&mut tx, id).await? else {
            return Err(StoreError::NotFound { what: format!("event {id}") });
        };
        if stored.origin == Origin::Exchange {
            return Err(read_only(id));
        }
        if stored.deleted {
            return Ok(()); // already a tombstone: a repeated delete
        }
        // Always a tombstone: even without a sync record the create may have reached
        // Exchange with its confirmation lost; the next pull links it and the push deletes it
        // (or, when Exchange never had it, the push drops the tombstone).
        let tombstone = Event { deleted: true, version: stored.version + 1, ..stored };
        replace_event(&mut tx, &tombstone, &to_json(&tombstone.data)).await?;
        insert_notifications(&mut tx, notify).await?;
        commit_tx(tx, &what).await
    }

    async fn event(&self, id: &EventId) -> Result<Option<Event>, StoreError> {
        let row = sqlx::query(&format!("SELECT {EVENT_COLUMNS} FROM events WHERE id = ?"))
            .bind(id.as_str())
            .fetch_optional(&self.pool)
            .await
            .context(|| format!("could not read event {id}"))?;
        row.as_ref().map(event_from_row).transpose()
    }

    async fn events_in_range(
        &self,
        calendar_id: CalendarId,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<Event>, StoreError> {
        if from >= to {
            return Ok(Vec::new()); // `[from, to)` is empty: nothing overlaps it
        }
        // The columns hold instants floored to microseconds, and flooring keeps order, so this
        // selects a superset of the overlapping events; the exact test runs on the JSON below.
        let rows = sqlx::query(&format!(
            "SELECT {EVENT_COLUMNS} FROM events \
             WHERE calendar_id = ? AND deleted = 0 AND start_us <= ? AND end_us >= ? \
             ORDER BY start_us, id"
        ))
        .bind(calendar_id)
        .bind(micros(to))
        .bind(micros(from))
        .fetch_all(&self.pool)
        .await
        .context(|| format!("could not read the events of calendar {calendar_id} from {from} to {to}"))?;
        let mut events = rows
            .iter()
            .map(event_from_row)
            .filter(|e| e.as_ref().map_or(true, |e| e.data.overlaps(from, to)))
            .collect::<Result<Vec<_>, _>>()?;
        events.sort_by(|a, b| a.data.start.cmp(&b.data.start).then_with(|| a.id.cmp(&b.id)));
        Ok(events)
    }

    async fn busy_times(
        &self,
        calendars: &[CalendarId],
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<BusyTime>, StoreError> {
        if from >= to || calendars.is_empty() {
            return Ok(Vec::new());
        }
        let mut out = Vec::new();
        for ids in calendars.chunks(commit::CHUNK) {
            out.extend(busy_times_of(&self.pool, ids, from, to).await?);
        }
        out.sort_unstable_by_key(|b| (b.calendar_id, b.start, b.end));
        Ok(out)
    }

    async fn remote_id(&self, id: &EventId) -> Result<Option<String>, StoreError> {
        let row = sqlx::query("SELECT remote_id FROM sync_records WHERE local_id = ?")
            .bind(id.as_str())
            .fetch_optional(&self.pool)
            .await
            .context(|| format!("could not read the remote id of event {id}"))?;
        Ok(row.map(|r| r.get("remote_id")))
    }

    // --- connections through the API ----------------------------------------------------------

    async fn create_connection(&self, c: NewConnection) -> Result<Connection, StoreError> {
        let name = c.name.trim();
        if name.is_empty() {
            return Err(StoreError::Invalid("a connection needs a name".into()));
        }
        let row = sqlx::query(&format!(
            "INSERT INTO connections (name, kind, settings, default_organizer, max_threads) VALUES (?, ?, ?, ?, ?) \
             RETURNING {CONNECTION_COLUMNS}"
        ))
        .bind(name)
        .bind(c.settings.kind())
        .bind(to_json(&c.settings))
        .bind(&c.default_organizer)
        .bind(i64::from(c.max_threads))
        .fetch_one(&self.pool)
        .await
        .map_err(|e| match e {
            sqlx::Error::Database(d) if d.is_unique_violation() => StoreError::Conflict(format!(
                "a connection named `{name}` already exists; choose another name or update that connection"
            )),
            e => crate::error::classify(e, format!("could not create connection `{name}`")),
        })?;
        connection_from_row(&row)
    }

    async fn update_connection(&self, id: ConnectionId, c: NewConnection) -> Result<Connection, StoreError> {
        let name = c.name.trim();
        if name.is_empty() {
            return Err(StoreError::Invalid("a connection needs a name".into()));
        }
        let row = sqlx::query(&format!(
            "UPDATE connections SET name = ?, kind = ?, settings = ?, default_organizer = ?, max_threads = ? \
             WHERE id = ? RETURNING {CONNECTION_COLUMNS}"
        ))
        .bind(name)
        .bind(c.settings.kind())
        .bind(to_json(&c.settings))
        .bind(&c.default_organizer)
        .bind(i64::from(c.max_threads))
        .bind(id)
        .fetch_optional(&self.pool)
        .await
        .map_err(|e| match e {
            sqlx::Error::Database(d) if d.is_unique_violation() => {
                StoreError::Conflict(format!("another connection is already named `{name}`; choose another name"))
            }
            e => crate::error::classify(e, format!("could not update connection {id}")),
        })?;
        match row {
            Some(row) => connection_from_row(&row),
            None => Err(StoreError::NotFound { what: format!("connection {id}") }),
        }
    }

    // --- sealed secrets ------------------------------------------------------------------

    async fn put_secret(&self, owner: &SecretOwner, sealed: &SealedSecret) -> Result<(), StoreError> {
        let json = to_json(sealed);
        let changed = match owner {
            SecretOwner::Connection(id) => sqlx::query("UPDATE connections SET secret = ? WHERE id = ?")
                .bind(&json)
                .bind(id)
                .execute(&self.pool)
                .await
                .context(|| format!("could not save the secret of connection {id}"))?,
            SecretOwner::Webhook(id) => sqlx::query("UPDATE webhooks SET secret = ? WHERE id = ?")
                .bind(&json)
                .bind(id)
                .execute(&self.pool)
                .await
                .context(|| format!("could not save the secret of webhook {id}"))?,
        }
        .rows_affected();
        if changed == 0 {
            return Err(StoreError::NotFound {
                what: match owner {
                    SecretOwner::Connection(id) => format!("connection {id}"),
                    SecretOwner::Webhook(id) => format!("webhook {id}"),
                },
            });
        }
        Ok(())
    }

    async fn secret(&self, owner: &SecretOwner) -> Result<Option<SealedSecret>, StoreError> {
        let (sql, what) = match owner {
            SecretOwner::Connection(id) => ("SELECT secret FROM connections WHERE id = ?", format!("connection {id}")),
            SecretOwner::Webhook(id) => ("SELECT secret FROM webhooks WHERE id = ?", format!("webhook {id}")),
        };
        let q = sqlx::query(sql);
        let q = match owner {
            SecretOwner::Connection(id) => q.bind(*id),
            SecretOwner::Webhook(id) => q.bind(id.clone()),
        };
        let row = q.fetch_optional(&self.pool).await.context(|| format!("could not read the secret of {what}"))?;
        let Some(row) = row else { return Ok(None) };
        let json: Option<String> = row.get("secret");
        json.map(|j| sealed_from_json(&j, || format!("the secret of {what}"))).transpose()
    }

    async fn secrets(&self) -> Result<Vec<(SecretOwner, SealedSecret)>, StoreError> {
        let mut out = Vec::new();
        for row in sqlx::query("SELECT id, secret FROM connections WHERE secret IS NOT NULL ORDER BY id")
            .fetch_all(&self.pool)
            .await
            .context(|| "could not list the connections' secrets".into())?
        {
            let id: i64 = row.get("id");
            let json: String = row.get("secret");
            out.push((
                SecretOwner::Connection(id),
                sealed_from_json(&json, || format!("the secret of connection {id}"))?,
            ));
        }
        for row in sqlx::query("SELECT id, secret FROM webhooks ORDER BY id")
            .fetch_all(&self.pool)
            .await
            .context(|| "could not list the webhooks' secrets".into())?
        {
            let id: String = row.get("id");
            let json: String = row.get("secret");
            let sealed = sealed_from_json(&json, || format!("the secret of webhook {id}"))?;
            out.push((SecretOwner::Webhook(id), sealed));
        }
        Ok(out)
    }

    // --- API keys ------------------------------------------------------------------------

    async fn create_api_key(&self, k: NewApiKey) -> Result<ApiKey, StoreError> {
        if k.name.trim().is_empty() {
            return Err(StoreError::Invalid("an API key needs a name (who or what uses it)".into()));
        }
        let row = sqlx::query(
            "INSERT INTO api_keys (name, scope, hash, prefix, created_us) VALUES (?, ?, ?, ?, ?) \
             RETURNING id, name, scope, prefix, created_us",
        )
        .bind(k.name.trim())
        .bind(k.scope.as_str())
        .bind(&k.hash)
        .bind(&k.prefix)
        .bind(micros(k.created_at))
        .fetch_one(&self.pool)
        .await
        .context(|| format!("could not create API key `{}`", k.name))?;
        api_key_from_row(&row)
    }

    async fn api_key_by_hash(&self, hash: &str) -> Result<Option<ApiKey>, StoreError> {
        let row = sqlx::query("SELECT id, name, scope, prefix, created_us FROM api_keys WHERE hash = ?")
            .bind(hash)
            .fetch_optional(&self.pool)
            .await
            .context(|| "could not look up an API key".into())?;
        row.as_ref().map(api_key_from_row).transpose()
    }

    async fn api_keys(&self) -> Result<Vec<ApiKey>, StoreError> {
        sqlx::query("SELECT id, name, scope, prefix, created_us FROM api_keys ORDER BY id")
            .fetch_all(&self.pool)
            .await
            .context(|| "could not list API keys".into())?
            .iter()
            .map(api_key_from_row)
            .collect()
    }

    async fn delete_api_key(&self, id: i64) -> Result<(), StoreError> {
        let changed = sqlx::query("DELETE FROM api_keys WHERE id = ?")
            .bind(id)
            .execute(&self.pool)
            .await
            .context(|| format!("could not delete API key {id}"))?
            .rows_affected();
        if changed == 0 {
            return Err(StoreError::NotFound { what: format!("API key {id}") });
        }
        Ok(())
    }

    // --- webhooks and the outbox ---------------------------------------------------------

    async fn create_webhook(&self, w: NewWebhook) -> Result<Webhook, StoreError> {
        let row = sqlx::query(
            "INSERT INTO webhooks (id, url, events, description, secret, created_us) VALUES (?, ?, ?, ?, ?, ?) \
             RETURNING id, url, events, description, created_us",
        )
        .bind(&w.id)
        .bind(&w.url)
        .bind(to_json(&w.events))
        .bind(&w.description)
        .bind(to_json(&w.secret))
        .bind(micros(w.created_at))
        .fetch_one(&self.pool)
        .await
        .context(|| format!("could not create webhook {}", w.id))?;
        webhook_from_row(&row)
    }

    async fn webhook(&self, id: &str) -> Result<Option<Webhook>, StoreError> {
        let row = sqlx::query("SELECT id, url, events, description, created_us FROM webhooks WHERE id = ?")
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .context(|| format!("could not read webhook {id}"))?;
        row.as_ref().map(webhook_from_row).transpose()
    }

    async fn webhooks(&self) -> Result<Vec<Webhook>, StoreError> {
        sqlx::query("SELECT id, url, events, description, created_us FROM webhooks ORDER BY created_us, id")
            .fetch_all(&self.pool)
            .await
            .context(|| "could not list webhooks".into())?
            .iter()
            .map(webhook_from_row)
            .collect()
    }

    async fn delete_webhook(&self, id: &str) -> Result<(), StoreError> {
        let what = format!("delete webhook {id}");
        let mut tx = self.write_tx(&what).await?;
        sqlx::query("DELETE FROM deliveries WHERE webhook_id = ?")
            .bind(id)
            .execute(&mut **tx)
            .await
            .context(|| format!("could not {what}"))?;
        let changed = sqlx::query("DELETE FROM webhooks WHERE id = ?")
            .bind(id)
            .execute(&mut **tx)
            .await
            .context(|| format!("could not {what}"))?
            .rows_affected();
        if changed == 0 {
            return Err(StoreError::NotFound { what: format!("webhook {id}") });
        }
        commit_tx(tx, &what).await
    }

    async fn enqueue(&self, notify: &[Notification]) -> Result<(), StoreError> {
        let what = format!("queue {} webhook message(s)", notify.len());
        let mut tx = self.write_tx(&what).await?;
        insert_notifications(&mut tx, notify).await?;
        commit_tx(tx, &what).await
    }

    async fn due_deliveries(&self, now: DateTime<Utc>, limit: u32) -> Result<Vec<Delivery>, StoreError> {
        let rows = sqlx::query(
            "SELECT d.id, d.message_id, d.attempts, o.event_type, o.payload, w.id AS webhook_id, w.url, w.secret \
             FROM deliveries d JOIN outbox o ON o.id = d.message_id JOIN webhooks w ON w.id = d.webhook_id \
             WHERE d.state = 'pending' AND d.next_attempt_us <= ? ORDER BY d.next_attempt_us, d.id LIMIT ?",
        )
        .bind(micros(now))
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .context(|| "could not read the due webhook deliveries".into())?;
        rows.iter()
            .map(|row| {
                let id: i64 = row.get("id");
                let secret: String = row.get("secret");
                let attempts: i64 = row.get("attempts");
                Ok(Delivery {
                    id,
                    message_id: row.get("message_id"),
                    event_type: row.get("event_type"),
                    payload: row.get("payload"),
                    webhook_id: row.get("webhook_id"),
                    url: row.get("url"),
                    secret: sealed_from_json(&secret, || format!("the secret of the webhook of delivery {id}"))?,
                    attempts: u32::try_from(attempts).unwrap_or(u32::MAX),
                })
            })
            .collect()
    }

    async fn record_delivery(&self, id: i64, outcome: &DeliveryOutcome) -> Result<(), StoreError> {
        let q = match outcome {
            DeliveryOutcome::Delivered { at } => sqlx::query(
                "UPDATE deliveries SET state = 'delivered', attempts = attempts + 1, delivered_us = ?, last_error = NULL \
                 WHERE id = ?",
            )
            .bind(micros(*at)),
            DeliveryOutcome::Retry { next_attempt, error } => sqlx::query(
                "UPDATE deliveries SET attempts = attempts + 1, next_attempt_us = ?, last_error = ? WHERE id = ?",
            )
            .bind(micros(*next_attempt))
            .bind(error.clone()),
            DeliveryOutcome::Failed { error } => sqlx::query(
                "UPDATE deliveries SET state = 'failed', attempts = attempts + 1, last_error = ? WHERE id = ?",
            )
            .bind(error.clone()),
        };
        let changed = q
            .bind(id)
            .execute(&self.pool)
            .await
            .context(|| format!("could not record an attempt of delivery {id}"))?
            .rows_affected();
        if changed == 0 {
            return Err(StoreError::NotFound { what: format!("delivery {id}") });
        }
        Ok(())
    }

    async fn delivery_counts(&self) -> Result<DeliveryCounts, StoreError> {
        let rows = sqlx::query("SELECT state, COUNT(*) AS n FROM deliveries GROUP BY state")
            .fetch_all(&self.pool)
            .await
            .context(|| "could not count webhook deliveries".into())?;
        let mut c = DeliveryCounts::default();
        for row in rows {
            let state: String = row.get("state");
            let n: i64 = row.get("n");
            let n = u64::try_from(n).unwrap_or(0);
            match state.as_str() {
                "pending" => c.pending = n,
                "delivered" => c.delivered = n,
                _ => c.failed += n,
            }
        }
        Ok(c)
    }

    async fn prune_deliveries(&self, before: DateTime<Utc>) -> Result<u64, StoreError> {
        let what = "prune ended webhook deliveries";
        let mut tx = self.write_tx(what).await?;
        // A failed delivery keeps the time of its last planned attempt; a delivered one its
        // delivery time.
        let gone = sqlx::query(
            "DELETE FROM deliveries WHERE (state = 'delivered' AND delivered_us < ?1) \
             OR (state = 'failed' AND next_attempt_us < ?1)",
        )
        .bind(micros(before))
        .execute(&mut **tx)
        .await
        .context(|| format!("could not {what}"))?
        .rows_affected();
        sqlx::query(
            "DELETE FROM outbox WHERE created_us < ? AND NOT EXISTS (SELECT 1 FROM deliveries d WHERE d.message_id = outbox.id)",
        )
        .bind(micros(before))
        .execute(&mut **tx)
        .await
        .context(|| format!("could not {what}"))?;
        commit_tx(tx, what).await?;
        Ok(gone)
    }

    // --- sync status ---------------------------------------------------------------------

    async fn set_sync_status(&self, status: &SyncStatus) -> Result<(), StoreError> {
        let id = status.calendar_id;
        sqlx::query(
            "INSERT INTO sync_status (calendar_id, status) SELECT id, ?2 FROM calendars WHERE id = ?1 \
             ON CONFLICT (calendar_id) DO UPDATE SET status = excluded.status",
        )
        .bind(id)
        .bind(to_json(status))
        .execute(&self.pool)
        .await
        .context(|| format!("could not save the sync status of calendar {id}"))?;
        Ok(())
    }

    async fn sync_status(&self, calendar_id: CalendarId) -> Result<Option<SyncStatus>, StoreError> {
        let row = sqlx::query("SELECT status FROM sync_status WHERE calendar_id = ?")
            .bind(calendar_id)
            .fetch_optional(&self.pool)
            .await
            .context(|| format!("could not read the sync status of calendar {calendar_id}"))?;
        row.map(|r| {
            let json: String = r.get("status");
            serde_json::from_str(&json).map_err(|e| corrupt(format!("the sync status of calendar {calendar_id}"), e))
        })
        .transpose()
    }

    async fn sync_statuses(&self) -> Result<Vec<SyncStatus>, StoreError> {
        sqlx::query("SELECT calendar_id, status FROM sync_status ORDER BY calendar_id")
            .fetch_all(&self.pool)
            .await
            .context(|| "could not list sync statuses".into())?
            .iter()
            .map(|r| {
                let id: i64 = r.get("calendar_id");
                let json: String = r.get("status");
                serde_json::from_str(&json).map_err(|e| corrupt(format!("the sync status of calendar {id}"), e))
            })
            .collect()
    }

    // --- unlinking -----------------------------------------------------------------------

    async fn delete_site(&self, id: SiteId) -> Result<(), StoreError> {
        let what = format!("delete site {id}");
        let mut tx = self.write_tx(&what).await?;
        sqlx::query("UPDATE calendars SET site_id = NULL WHERE site_id = ?")
            .bind(id)
            .execute(&mut **tx)
            .await
            .context(|| format!("could not {what}"))?;
        let changed = sqlx::query("DELETE FROM sites WHERE id = ?")
            .bind(id)
            .execute(&mut **tx)
            .await
            .context(|| format!("could not {what}"))?
            .rows_affected();
        if changed == 0 {
            return Err(StoreError::NotFound { what: format!("site {id}") });
        }
        commit_tx(tx, &what).await
    }

    async fn delete_calendar(&self, id: CalendarId) -> Result<(), StoreError> {
        let what = format!("unlink calendar {id}");
        let mut tx = self.write_tx(&what).await?;
        require_calendar(&mut tx, id).await?;
        // Explicit, child first; the foreign keys' ON DELETE clauses are the safety net.
        for sql in [
            "DELETE FROM cursors WHERE calendar_id = ?",
            "DELETE FROM sync_records WHERE calendar_id = ?",
            "DELETE FROM events WHERE calendar_id = ?",
            "DELETE FROM subscriptions WHERE calendar_id = ?",
            "DELETE FROM sync_status WHERE calendar_id = ?",
            "DELETE FROM calendars WHERE id = ?",
        ] {
            sqlx::query(sql).bind(id).execute(&mut **tx).await.context(|| format!("could not {what}"))?;
        }
        commit_tx(tx, &what).await
    }

    // --- sync state ----------------------------------------------------------------------

    async fn has_local_changes(&self, calendar_id: CalendarId) -> Result<bool, StoreError> {
        let row = sqlx::query(
            "SELECT EXISTS (SELECT 1 FROM events e LEFT JOIN sync_records r ON r.local_id = e.id \
             WHERE e.calendar_id = ? AND e.origin = 'local' \
             AND (e.deleted <> 0 OR r.local_id IS NULL OR r.local_version <> e.version)) AS pending",
        )
        .bind(calendar_id)
        .fetch_one(&self.pool)
        .await
        .context(|| format!("could not read whether calendar {calendar_id} has local changes"))?;
        Ok(row.get::<bool, _>("pending"))
    }

    async fn snapshot(&self, calendar_id: CalendarId) -> Result<Snapshot, StoreError> {
        let what = format!("read the sync state of calendar {calendar_id}");
        // One read transaction: events and records from the same moment.
        let mut tx = self.read_tx(&what).await?;
        require_calendar(&mut tx, calendar_id).await?;
        let events = sqlx::query(&format!("SELECT {EVENT_COLUMNS} FROM events WHERE calendar_id = ?"))
            .bind(calendar_id)
            .fetch_all(&mut *tx)
            .await
            .context(|| format!("could not {what}"))?
            .iter()
            .map(event_from_row)
            .collect::<Result<Vec<_>, _>>()?;
        let records = sqlx::query(&format!("SELECT {RECORD_COLUMNS} FROM sync_records WHERE calendar_id = ?"))
            .bind(calendar_id)
            .fetch_all(&mut *tx)
            .await
            .context(|| format!("could not {what}"))?
            .iter()
            .map(record_from_row)
            .collect();
        tx.commit().await.context(|| format!("could not end the read transaction to {what}"))?;
        Ok(Snapshot::new(events, records))
    }

    async fn cursor(&self, calendar_id: CalendarId) -> Result<Option<Cursor>, StoreError> {
        let row = sqlx::query("SELECT cursor FROM cursors WHERE calendar_id = ?")
            .bind(calendar_id)
            .fetch_optional(&self.pool)
            .await
            .context(|| format!("could not read the cursor of calendar {calendar_id}"))?;
        Ok(row.map(|r| Cursor(r.get("cursor"))))
    }

    async fn commit(
        &self,
        calendar_id: CalendarId,
        writes: &[Write],
        cursor: &CursorUpdate,
    ) -> Result<WriteStats, StoreError> {
        self.commit_checked(calendar_id, writes, cursor, None).await
    }

    async fn commit_fenced(
        &self,
        calendar_id: CalendarId,
        writes: &[Write],
        cursor: &CursorUpdate,
        lease: &Lease,
        now: DateTime<Utc>,
    ) -> Result<WriteStats, StoreError> {
        self.commit_checked(calendar_id, writes, cursor, Some((lease, now))).await
    }

    // --- administrators of the admin web UI ------------------------------------------------

    async fn upsert_admin(&self, a: NewAdmin) -> Result<AdminAccount, StoreError> {
        let username = a.username.trim().to_lowercase();
        if username.is_empty() || username.chars().any(char::is_control) {
            return Err(StoreError::Invalid("an administrator needs a user name without control characters".into()));
        }
        if a.password_hash.is_empty() {
            return Err(StoreError::Invalid("an administrator needs a password hash".into()));
        }
        let row = sqlx::query(
            "INSERT INTO admins (username, password_hash, created_us, updated_us) VALUES (?, ?, ?, ?) \
             ON CONFLICT (username) DO UPDATE SET password_hash = excluded.password_hash, \
             updated_us = excluded.updated_us \
             RETURNING id, username, password_hash, created_us, updated_us",
        )
        .bind(&username)
        .bind(&a.password_hash)
        .bind(micros(a.now))
        .bind(micros(a.now))
        .fetch_one(&self.pool)
        .await
        .context(|| format!("could not store administrator `{username}`"))?;
        admin_from_row(&row)
    }

    async fn admin_by_username(&self, username: &str) -> Result<Option<AdminAccount>, StoreError> {
        let row =
            sqlx::query("SELECT id, username, password_hash, created_us, updated_us FROM admins WHERE username = ?")
                .bind(username.trim().to_lowercase())
                .fetch_optional(&self.pool)
                .await
                .context(|| "could not look up an administrator".into())?;
        row.as_ref().map(admin_from_row).transpose()
    }

    // --- change-notification subscriptions ------------------------------------------------

    async fn put_subscription(&self, s: &NotificationSubscription) -> Result<(), StoreError> {
        let what = format!("record subscription {} of calendar {}", s.id, s.calendar_id);
        let mut tx = self.write_tx(&what).await?;
        require_calendar(&mut tx, s.calendar_id).await?;
        sqlx::query("DELETE FROM subscriptions WHERE calendar_id = ? OR id = ?")
            .bind(s.calendar_id)
            .bind(&s.id)
            .execute(&mut **tx)
            .await
            .context(|| format!("could not {what}"))?;
        sqlx::query("INSERT INTO subscriptions (id, calendar_id, client_state_hash, expires_us) VALUES (?, ?, ?, ?)")
            .bind(&s.id)
            .bind(s.calendar_id)
            .bind(&s.client_state_hash)
            .bind(micros(s.expires_at))
            .execute(&mut **tx)
            .await
            .context(|| format!("could not {what}"))?;
        commit_tx(tx, &what).await
    }

    async fn subscription(&self, id: &str) -> Result<Option<NotificationSubscription>, StoreError> {
        let row = sqlx::query("SELECT id, calendar_id, client_state_hash, expires_us FROM subscriptions WHERE id = ?")
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .context(|| format!("could not read subscription {id}"))?;
        row.as_ref().map(subscription_from_row).transpose()
    }

    async fn subscriptions(&self) -> Result<Vec<NotificationSubscription>, StoreError> {
        sqlx::query("SELECT id, calendar_id, client_state_hash, expires_us FROM subscriptions ORDER BY calendar_id")
            .fetch_all(&self.pool)
            .await
            .context(|| "could not list the subscriptions".into())?
            .iter()
            .map(subscription_from_row)
            .collect()
    }

    async fn delete_subscription(&self, id: &str) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM subscriptions WHERE id = ?")
            .bind(id)
            .execute(&self.pool)
            .await
            .context(|| format!("could not forget subscription {id}"))?;
        Ok(())
    }

    // --- leases ----------------------------------------------------------------------------

    async fn claim_leases(
        &self,
        holder: &str,
        now: DateTime<Utc>,
        ttl: chrono::Duration,
        max: usize,
    ) -> Result<Vec<Lease>, StoreError> {
        let what = format!("claim calendars for worker {holder}");
        let (now_us, until_us) = (micros(now), micros(now + ttl));
        let mut tx = self.write_tx(&what).await?;
        let q = |e: sqlx::Error| crate::error::classify(e, format!("could not {what}"));
        // Renew what is still ours.
        sqlx::query("UPDATE leases SET expires_us = ? WHERE holder = ? AND expires_us > ?")
            .bind(until_us)
            .bind(holder)
            .bind(now_us)
            .execute(&mut **tx)
            .await
            .map_err(q)?;
        // The fair share: the calendars divided by the workers seen within a lease's
        // lifetime, this one included.
        sqlx::query(
            "INSERT INTO workers (holder, seen_us) VALUES (?, ?) \
             ON CONFLICT (holder) DO UPDATE SET seen_us = excluded.seen_us",
        )
        .bind(holder)
        .bind(now_us)
        .execute(&mut **tx)
        .await
        .map_err(q)?;
        let others: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM workers WHERE seen_us > ? AND holder <> ?")
            .bind(micros(now - ttl))
            .bind(holder)
            .fetch_one(&mut **tx)
            .await
            .map_err(q)?;
        let total: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM calendars").fetch_one(&mut **tx).await.map_err(q)?;
        let workers = others as usize + 1;
        let share = (total as usize).div_ceil(workers).min(max);
        let mine: Vec<i64> = sqlx::query_scalar(
            "SELECT calendar_id FROM leases WHERE holder = ? AND expires_us > ? ORDER BY calendar_id",
        )
        .bind(holder)
        .bind(now_us)
        .fetch_all(&mut **tx)
        .await
        .map_err(q)?;
        // More than the share: give the rest up now, for the others to claim.
        for id in mine.iter().skip(share) {
            sqlx::query("UPDATE leases SET expires_us = ? WHERE calendar_id = ? AND holder = ?")
                .bind(now_us)
                .bind(id)
                .bind(holder)
                .execute(&mut **tx)
                .await
                .map_err(q)?;
        }
        let wanted = share.saturating_sub(mine.len());
        if wanted > 0 {
            let free: Vec<i64> = sqlx::query_scalar(
                "SELECT c.id FROM calendars c LEFT JOIN leases l ON l.calendar_id = c.id \
                 WHERE l.calendar_id IS NULL OR l.expires_us <= ? ORDER BY c.id LIMIT ?",
            )
            .bind(now_us)
            .bind(wanted as i64)
            .fetch_all(&mut **tx)
            .await
            .map_err(q)?;
            for id in free {
                // A new claim: the fencing number grows, so the last holder cannot commit.
                sqlx::query(
                    "INSERT INTO leases (calendar_id, holder, fence, expires_us) VALUES (?, ?, 1, ?) \
                     ON CONFLICT (calendar_id) DO UPDATE SET holder = excluded.holder, fence = leases.fence + 1, \
                     expires_us = excluded.expires_us",
                )
                .bind(id)
                .bind(holder)
                .bind(until_us)
                .execute(&mut **tx)
                .await
                .map_err(q)?;
            }
        }
        let rows = sqlx::query(
            "SELECT calendar_id, holder, fence, expires_us FROM leases WHERE holder = ? AND expires_us > ? \
             ORDER BY calendar_id",
        )
        .bind(holder)
        .bind(now_us)
        .fetch_all(&mut **tx)
        .await
        .map_err(q)?;
        let leases = rows.iter().map(lease_from_row).collect::<Result<Vec<_>, _>>()?;
        commit_tx(tx, &what).await?;
        Ok(leases)
    }

    async fn release_leases(&self, holder: &str, now: DateTime<Utc>) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM workers WHERE holder = ?")
            .bind(holder)
            .execute(&self.pool)
            .await
            .context(|| format!("could not sign off worker {holder}"))?;
        sqlx::query("UPDATE leases SET expires_us = ?1 WHERE holder = ?2 AND expires_us > ?1")
            .bind(micros(now))
            .bind(holder)
            .execute(&self.pool)
            .await
            .context(|| format!("could not release the leases of worker {holder}"))?;
        Ok(())
    }

    async fn request_sync(&self, calendar_id: CalendarId, at: DateTime<Utc>) -> Result<(), StoreError> {
        let what = format!("ask for a sync of calendar {calendar_id}");
        let mut tx = self.write_tx(&what).await?;
        require_calendar(&mut tx, calendar_id).await?;
        sqlx::query(
            "INSERT INTO sync_requests (calendar_id, requested_us) VALUES (?1, ?2) ON CONFLICT (calendar_id) DO UPDATE SET requested_us = max(requested_us, ?2)",
        )
        .bind(calendar_id)
        .bind(micros(at))
        .execute(&mut **tx)
        .await
        .context(|| format!("could not {what}"))?;
        commit_tx(tx, &what).await
    }

    async fn take_sync_requests(&self, holder: &str, now: DateTime<Utc>) -> Result<Vec<CalendarId>, StoreError> {
        let rows = sqlx::query(
            "DELETE FROM sync_requests WHERE calendar_id IN (SELECT calendar_id FROM leases WHERE holder = ?1 AND expires_us > ?2) RETURNING calendar_id",
        )
        .bind(holder)
        .bind(micros(now))
        .fetch_all(&self.pool)
        .await
        .context(|| format!("could not take the sync requests of worker {holder}"))?;
        let mut ids: Vec<CalendarId> = rows.iter().map(|r| r.get::<i64, _>(0)).collect();
        ids.sort_unstable();
        Ok(ids)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_and_paths_are_parsed() {
        assert_eq!(parse_target("sqlite::memory:").unwrap().0, Target::Memory);
        assert_eq!(parse_target("sqlite://:memory:").unwrap().0, Target::Memory);
        assert_eq!(parse_target("sqlite://data/cb.db").unwrap().0, Target::File("data/cb.db".into()));
        assert_eq!(parse_target("sqlite:cb.db").unwrap().0, Target::File("cb.db".into()));
        assert_eq!(parse_target("sqlite:///var/lib/cb.db").unwrap().0, Target::File("/var/lib/cb.db".into()));
        assert_eq!(parse_target("/var/lib/cb.db").unwrap().0, Target::File("/var/lib/cb.db".into()));
        for bad in ["", "  ", "sqlite://", "sqlite:"] {
            let err = parse_target(bad).unwrap_err().to_string();
            assert!(err.contains("sqlite://"), "{bad:?}: {err}");
        }
    }
}
