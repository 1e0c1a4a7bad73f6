//! [`PostgresStore`]: the [`Store`] on a PostgreSQL database, shared by several workers.
//!
//! The same tables and the same rules as [`crate::SqliteStore`]; what differs is how writers
//! serialize. SQLite has one writer at a time (`BEGIN IMMEDIATE`); PostgreSQL runs writers
//! side by side in `READ COMMITTED`, so every transaction that reads before it writes locks
//! what it read:
//!
//! - a commit, and the creation of a local event, lock their calendar's row
//!   (`FOR NO KEY UPDATE`): writers of one calendar queue behind each other, and the rows they
//!   are about to insert (an event, a record, a cursor) cannot appear meanwhile; foreign-key
//!   checks of other calendars' writes do not wait for it;
//! - a change of one event (update, delete, a commit's `PutEvent`) locks the event's row
//!   (`FOR UPDATE`), so a host-application edit and a sync writing the same event never lose
//!   one another's update: the second re-reads the first's version after the wait;
//! - a write that needs a parent to exist (a site's or a calendar's connection, a calendar's
//!   site) holds it with `FOR KEY SHARE`, so a concurrent delete waits instead of leaving a
//!   dangling row; deletes lock the parent `FOR UPDATE` first and children after, always in
//!   that order (connection, calendars, then their rows), so they do not deadlock with commits;
//! - upserts by name or address are single `INSERT ... ON CONFLICT` statements, atomic as they
//!   are; a snapshot reads in one `REPEATABLE READ, READ ONLY` transaction, so its events and
//!   records come from the same moment.

use std::fmt;
use std::str::FromStr;
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
use sqlx::postgres::{PgConnectOptions, PgPoolOptions, PgRow};
use sqlx::{Connection as _, PgConnection, PgPool, Postgres, QueryBuilder, Row, Transaction};

use crate::commit;
use crate::common::{
    busy_as, busy_time_from_row, micros, normalise_email, read_only, sealed_from_json, to_json, us_to_time, BusyArm,
    LONG_EVENT_US,
};
use crate::error::{classify, corrupt, Context};
use crate::migrate;

/// Connections per store (per worker process). Each transaction holds one; PostgreSQL's
/// default limit of 100 connections leaves room for several workers.
const POOL_SIZE: u32 = 8;
/// How long opening the store waits for the server's first answer.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long an operation waits for a free connection of the pool before it fails.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(30);

type Tx = Transaction<'static, Postgres>;

// JSON columns are `jsonb` (or `text`, for an event's content); both are read as text, so the
// row mapping decodes them with serde like SQLite's.
const CONNECTION_COLUMNS: &str = "id, name, settings::text AS settings, default_organizer, max_threads";
const CALENDAR_COLUMNS: &str =
    "id, email, kind, display_name, connection_id, site_id, busy_only, link_state::text AS link_state";
const EVENT_COLUMNS: &str = "id, calendar_id, origin, data, version, deleted";
const RECORD_COLUMNS: &str = "local_id, calendar_id, remote_id, remote_version, remote_hash, local_version, local_hash";
const WEBHOOK_COLUMNS: &str = "id, url, events::text AS events, description, created_us";

/// The [`Store`] on PostgreSQL. Cheap to share behind an `Arc`; all methods take `&self`.
#[derive(Clone)]
pub struct PostgresStore {
    pool: PgPool,
    /// Which database, for error messages ("the PostgreSQL database `calbridge` on
    /// db.internal:5432 as user calbridge"); never the password.
    location: String,
}

impl fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostgresStore").field("location", &self.location).finish_non_exhaustive()
    }
}

/// The password part of a `postgres://user:password@host/db` URL, as written.
fn url_password(url: &str) -> Option<&str> {
    let rest = url.split_once("://")?.1;
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let (userinfo, _) = authority.rsplit_once('@')?;
    let (_, password) = userinfo.split_once(':')?;
    (!password.is_empty()).then_some(password)
}

/// `url` with its password replaced by `***`, for messages.
pub(crate) fn redact(url: &str) -> String {
    match url_password(url) {
        Some(password) => {
            // The password is the text between the first `:` after `user` and the last `@` of
            // the authority; replace exactly that span.
            let start = password.as_ptr() as usize - url.as_ptr() as usize;
            format!("{}***{}", &url[..start], &url[start + password.len()..])
        }
        None => url.to_string(),
    }
}

/// Decodes `%XX` escapes (a password in a URL may be percent-encoded).
fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let (Some(h), Some(l)) = (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Removes every trace of the URL's password (and of `PGPASSWORD`) from `message`.
fn scrub(message: String, url: &str) -> String {
    let mut secrets: Vec<String> = Vec::new();
    if let Some(p) = url_password(url) {
        secrets.push(p.to_string());
        secrets.push(percent_decode(p));
    }
    if let Ok(p) = std::env::var("PGPASSWORD") {
        secrets.push(p);
    }
    secrets.retain(|s| !s.is_empty());
    // The longest first, so a password that contains another is removed whole.
    secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
    secrets.iter().fold(message, |m, s| m.replace(s.as_str(), "***"))
}

impl PostgresStore {
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
        // One writer per calendar at a time: the page's events, records and cursor are ours
        // until the transaction ends.
        require_calendar(&mut tx, calendar_id, Hold::Writer).await?;
        if let Some((lease, now)) = fence {
            check_lease(&mut tx, calendar_id, lease, now).await?;
        }
        // Any error returns early and drops `tx`, which rolls everything back.
        let mut stats = apply_writes(&mut tx, calendar_id, writes, &json).await?;
        stats.cursors += update_cursor(&mut tx, calendar_id, cursor).await?;
        commit_tx(tx, &what).await?;
        Ok(stats)
    }

    /// Connects to and migrates the database a `postgres://` (or `postgresql://`) URL names:
    /// `postgres://USER:PASSWORD@HOST:PORT/DATABASE`. Without a password in the URL, the
    /// standard `PGPASSWORD` environment variable is used; the database must exist.
    pub async fn open(url: &str) -> Result<Self, StoreError> {
        let url = url.trim();
        let options = PgConnectOptions::from_str(url).map_err(|e| {
            StoreError::Database(scrub(
                format!(
                    "the PostgreSQL URL `{}` is not valid: {e}; use postgres://USER:PASSWORD@HOST:PORT/DATABASE",
                    redact(url)
                ),
                url,
            ))
        })?;
        let location = describe(&options);
        let failed = |e: sqlx::Error| {
            let message = match classify(e, format!("could not connect to {location}")) {
                StoreError::Database(m) => format!(
                    "{m}; check that PostgreSQL runs there, that the database exists, and the user and password \
                     (in the URL or PGPASSWORD)"
                ),
                other => other.to_string(),
            };
            StoreError::Database(scrub(message, url))
        };
        // One connection first, to fail fast with the server's own reason (a pool would retry
        // until its acquire timeout), and to migrate before any operation runs.
        let mut conn = tokio::time::timeout(CONNECT_TIMEOUT, PgConnection::connect_with(&options))
            .await
            .map_err(|_| {
                StoreError::Database(format!(
                    "could not connect to {location}: no answer within {} s; check that PostgreSQL runs there \
                     and that no firewall drops the connection",
                    CONNECT_TIMEOUT.as_secs()
                ))
            })?
            .map_err(failed)?;
        let migrated = migrate(&mut conn, &location).await;
        // Closing the connection also releases the migrator's advisory lock if it failed.
        let _ = conn.close().await;
        migrated?;
        let pool =
            PgPoolOptions::new().max_connections(POOL_SIZE).acquire_timeout(ACQUIRE_TIMEOUT).connect_lazy_with(options);
        Ok(PostgresStore { pool, location })
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

    /// Which database this is, in words (never the password).
    pub fn location(&self) -> &str {
        &self.location
    }

    /// Waits for running queries and closes every connection.
    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// A write transaction (`READ COMMITTED`); the operations lock the rows they read.
    async fn write_tx(&self, what: &str) -> Result<Tx, StoreError> {
        self.pool.begin().await.context(|| format!("could not start a transaction to {what}"))
    }

    /// A read transaction whose statements all see the same moment.
    async fn snapshot_tx(&self, what: &str) -> Result<Tx, StoreError> {
        self.pool
            .begin_with("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            .await
            .context(|| format!("could not start a transaction to {what}"))
    }
}

async fn migrate(conn: &mut PgConnection, location: &str) -> Result<(), StoreError> {
    let migrator = migrate::postgres_migrator()
        .await
        .map_err(|e| StoreError::Database(format!("could not load the embedded migrations: {e}")))?;
    // sqlx's PostgreSQL migrator holds an advisory lock while it runs, so workers starting
    // together apply each migration once. `run_direct` is what `run` does after acquiring a
    // connection; called on a connection directly it keeps this future `Send`.
    migrator.run_direct(conn).await.map_err(|e| migrate::failure(e, location))
}

/// "the PostgreSQL database `calbridge` on db.internal:5432 as user calbridge".
fn describe(options: &PgConnectOptions) -> String {
    let database = options.get_database().unwrap_or(options.get_username());
    let server = match options.get_socket() {
        Some(socket) => format!("the socket {}", socket.display()),
        None => format!("{}:{}", options.get_host(), options.get_port()),
    };
    format!("the PostgreSQL database `{database}` on {server} as user {}", options.get_username())
}

async fn commit_tx(tx: Tx, what: &str) -> Result<(), StoreError> {
    tx.commit().await.context(|| format!("could not commit the transaction to {what}"))
}

// --- row mapping ---------------------------------------------------------------------------

fn connection_from_row(row: &PgRow) -> Result<Connection, StoreError> {
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

fn site_from_row(row: &PgRow) -> Site {
    Site { id: row.get("id"), name: row.get("name"), connection_id: row.get("connection_id") }
}

fn calendar_from_row(row: &PgRow) -> Result<Calendar, StoreError> {
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

fn event_from_row(row: &PgRow) -> Result<Event, StoreError> {
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

fn record_from_row(row: &PgRow) -> SyncRecord {
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

fn api_key_from_row(row: &PgRow) -> Result<ApiKey, StoreError> {
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

fn lease_from_row(row: &PgRow) -> Result<Lease, StoreError> {
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
    let row = sqlx::query("SELECT calendar_id, holder, fence, expires_us FROM leases WHERE calendar_id = $1 FOR SHARE")
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

fn subscription_from_row(row: &PgRow) -> Result<NotificationSubscription, StoreError> {
    let id: String = row.get("id");
    Ok(NotificationSubscription {
        calendar_id: row.get("calendar_id"),
        client_state_hash: row.get("client_state_hash"),
        expires_at: us_to_time(row.get("expires_us"), || format!("the expiration of subscription {id}"))?,
        id,
    })
}

fn admin_from_row(row: &PgRow) -> Result<AdminAccount, StoreError> {
    let id: i64 = row.get("id");
    Ok(AdminAccount {
        id,
        username: row.get("username"),
        password_hash: row.get("password_hash"),
        created_at: us_to_time(row.get("created_us"), || format!("the creation time of administrator {id}"))?,
        updated_at: us_to_time(row.get("updated_us"), || format!("the change time of administrator {id}"))?,
    })
}

fn webhook_from_row(row: &PgRow) -> Result<Webhook, StoreError> {
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

// --- locks and queries shared by several operations, inside a transaction --------------------

/// Reads an event and locks its row until the transaction ends.
async fn lock_event(tx: &mut Tx, id: &EventId) -> Result<Option<Event>, StoreError> {
    let row = sqlx::query(&format!("SELECT {EVENT_COLUMNS} FROM events WHERE id = $1 FOR UPDATE"))
        .bind(id.as_str())
        .fetch_optional(&mut **tx)
        .await
        .context(|| format!("could not read event {id}"))?;
    row.as_ref().map(event_from_row).transpose()
}

/// How strongly a transaction holds a row it found.
#[derive(Clone, Copy)]
enum Hold {
    /// The row stays (no delete, no key change) until the transaction ends.
    KeyShare,
    /// Only this transaction writes below the row (a calendar's events, records, cursor).
    Writer,
    /// The row is about to be deleted.
    Delete,
}

impl Hold {
    fn clause(self) -> &'static str {
        match self {
            Hold::KeyShare => "FOR KEY SHARE",
            Hold::Writer => "FOR NO KEY UPDATE",
            Hold::Delete => "FOR UPDATE",
        }
    }
}

/// Fails with `NotFound` unless the row `table.id = id` exists, and holds it as `hold` says.
async fn require(tx: &mut Tx, table: &str, noun: &str, id: i64, hold: Hold) -> Result<(), StoreError> {
    let found = sqlx::query(&format!("SELECT 1 FROM {table} WHERE id = $1 {}", hold.clause()))
        .bind(id)
        .fetch_optional(&mut **tx)
        .await
        .context(|| format!("could not look up {noun} {id}"))?;
    match found {
        Some(_) => Ok(()),
        None => Err(StoreError::NotFound { what: format!("{noun} {id}") }),
    }
}

async fn require_calendar(tx: &mut Tx, id: CalendarId, hold: Hold) -> Result<(), StoreError> {
    require(tx, "calendars", "calendar", id, hold).await
}

async fn require_connection(tx: &mut Tx, id: ConnectionId, hold: Hold) -> Result<(), StoreError> {
    require(tx, "connections", "connection", id, hold).await
}

async fn insert_event(tx: &mut Tx, e: &Event) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO events (id, calendar_id, origin, data, start_us, end_us, version, deleted, busy_as) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
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
        "UPDATE events SET origin = $1, data = $2, start_us = $3, end_us = $4, version = $5, deleted = $6, \
         busy_as = $7 WHERE id = $8",
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

// --- commit (the calendar's row is held as `Hold::Writer`) -----------------------------------

/// Applies a commit's writes: reads the rows they touch, plans in memory (`commit::plan`, the
/// checks and counts of applying them one by one), and sends the difference in multi-row
/// statements. The rows read are locked until the transaction ends.
async fn apply_writes(
    tx: &mut Tx,
    calendar_id: CalendarId,
    writes: &[Write],
    json: &commit::EventJson<'_>,
) -> Result<WriteStats, StoreError> {
    let keys = commit::Keys::of(writes);
    let mut events = Vec::with_capacity(keys.event_ids.len());
    for ids in keys.event_ids.chunks(commit::CHUNK) {
        let mut q = QueryBuilder::<Postgres>::new(format!("SELECT {EVENT_COLUMNS} FROM events WHERE id IN ("));
        push_list(&mut q, ids);
        // Locked until the commit ends: a host-application write to one of these events waits
        // for this commit, or this commit reads what it wrote.
        q.push(" FOR UPDATE");
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
        let mut q = QueryBuilder::<Postgres>::new(format!("SELECT {RECORD_COLUMNS} FROM sync_records WHERE "));
        if remote {
            q.push("calendar_id = ").push_bind(calendar_id).push(" AND remote_id IN (");
        } else {
            q.push("local_id IN (");
        }
        push_list(&mut q, ids);
        q.push(" FOR UPDATE");
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
            let mut q = QueryBuilder::<Postgres>::new(format!("DELETE FROM {table} WHERE calendar_id = "));
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
            "UPDATE sync_records SET remote_version = $1, remote_hash = $2, local_version = $3, local_hash = $4 \
             WHERE local_id = $5",
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
        let mut q = QueryBuilder::<Postgres>::new(
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
        let mut q = QueryBuilder::<Postgres>::new(
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
fn push_list<'a>(q: &mut QueryBuilder<'a, Postgres>, ids: &[&'a str]) {
    let mut list = q.separated(", ");
    for id in ids {
        list.push_bind(*id);
    }
    q.push(")");
}

async fn update_cursor(tx: &mut Tx, calendar_id: CalendarId, update: &CursorUpdate) -> Result<u64, StoreError> {
    match update {
        CursorUpdate::Keep => Ok(0),
        CursorUpdate::Set(Cursor(cursor)) => {
            let stored: Option<String> = sqlx::query("SELECT cursor FROM cursors WHERE calendar_id = $1 FOR UPDATE")
                .bind(calendar_id)
                .fetch_optional(&mut **tx)
                .await
                .context(|| format!("could not read the cursor of calendar {calendar_id}"))?
                .map(|row| row.get("cursor"));
            if stored.as_deref() == Some(cursor.as_str()) {
                return Ok(0);
            }
            sqlx::query(
                "INSERT INTO cursors (calendar_id, cursor) VALUES ($1, $2) \
                 ON CONFLICT (calendar_id) DO UPDATE SET cursor = excluded.cursor",
            )
            .bind(calendar_id)
            .bind(cursor)
            .execute(&mut **tx)
            .await
            .context(|| format!("could not save the cursor of calendar {calendar_id}"))?;
            Ok(1)
        }
        CursorUpdate::Clear => Ok(sqlx::query("DELETE FROM cursors WHERE calendar_id = $1")
            .bind(calendar_id)
            .execute(&mut **tx)
            .await
            .context(|| format!("could not clear the cursor of calendar {calendar_id}"))?
            .rows_affected()),
    }
}

/// Queues messages and, for each, one delivery per endpoint subscribed to its type. A message
/// id already queued is left as it is (a retried change); one being queued by another
/// transaction right now is waited for, then left as it is. The endpoints are held with
/// `FOR KEY SHARE`: one being deleted meanwhile is waited for and then skipped, instead of
/// failing the write on its foreign key.
async fn insert_notifications(tx: &mut Tx, notify: &[Notification]) -> Result<(), StoreError> {
    for n in notify {
        let what = || format!("could not queue webhook message {} ({})", n.id, n.event_type);
        let inserted = sqlx::query(
            "INSERT INTO outbox (id, event_type, payload, created_us) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (id) DO NOTHING",
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
             SELECT $1, w.id, $2 FROM webhooks w WHERE w.events @> jsonb_build_array($3::text) \
             FOR KEY SHARE OF w",
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
impl Store for PostgresStore {
    // --- connections -------------------------------------------------------------------

    async fn upsert_connection(&self, c: NewConnection) -> Result<Connection, StoreError> {
        let name = c.name.trim();
        if name.is_empty() {
            return Err(StoreError::Conflict("a connection needs a name".into()));
        }
        let row = sqlx::query(&format!(
            "INSERT INTO connections (name, kind, settings, default_organizer, max_threads) \
             VALUES ($1, $2, $3::jsonb, $4, $5) \
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
        let row = sqlx::query(&format!("SELECT {CONNECTION_COLUMNS} FROM connections WHERE id = $1"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .context(|| format!("could not read connection {id}"))?;
        row.as_ref().map(connection_from_row).transpose()
    }

    async fn connection_by_name(&self, name: &str) -> Result<Option<Connection>, StoreError> {
        let row = sqlx::query(&format!("SELECT {CONNECTION_COLUMNS} FROM connections WHERE name = $1"))
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
        // Parent first, then its calendars, in id order: the order commits lock in too.
        require_connection(&mut tx, id, Hold::Delete).await?;
        sqlx::query("SELECT id FROM calendars WHERE connection_id = $1 ORDER BY id FOR UPDATE")
            .bind(id)
            .fetch_all(&mut *tx)
            .await
            .context(|| format!("could not {what}"))?;
        // Explicit, child first; the foreign keys' ON DELETE clauses are the safety net.
        let calendars = "SELECT id FROM calendars WHERE connection_id = $1";
        for sql in [
            format!("DELETE FROM cursors WHERE calendar_id IN ({calendars})"),
            format!("DELETE FROM sync_records WHERE calendar_id IN ({calendars})"),
            format!("DELETE FROM events WHERE calendar_id IN ({calendars})"),
            format!("DELETE FROM sync_status WHERE calendar_id IN ({calendars})"),
            "DELETE FROM calendars WHERE connection_id = $1".to_string(),
            // Calendars of other connections may sit in this connection's sites.
            "UPDATE calendars SET site_id = NULL WHERE site_id IN (SELECT id FROM sites WHERE connection_id = $1)"
                .to_string(),
            "DELETE FROM sites WHERE connection_id = $1".to_string(),
            "DELETE FROM connections WHERE id = $1".to_string(),
        ] {
            sqlx::query(&sql).bind(id).execute(&mut *tx).await.context(|| format!("could not {what}"))?;
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
        require_connection(&mut tx, connection_id, Hold::KeyShare).await?;
        let row = sqlx::query(
            "INSERT INTO sites (name, connection_id) VALUES ($1, $2) \
             ON CONFLICT (name) DO UPDATE SET connection_id = excluded.connection_id \
             RETURNING id, name, connection_id",
        )
        .bind(name)
        .bind(connection_id)
        .fetch_one(&mut *tx)
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
        require_connection(&mut tx, c.connection_id, Hold::KeyShare).await?;
        if let Some(site) = c.site_id {
            require(&mut tx, "sites", "site", site, Hold::KeyShare).await?;
        }
        let row = sqlx::query(&format!(
            "INSERT INTO calendars (email, kind, display_name, connection_id, site_id, busy_only, link_state) \
             VALUES ($1, $2, $3, $4, $5, $6, $7::jsonb) \
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
        .fetch_one(&mut *tx)
        .await
        .context(|| format!("could not {what}"))?;
        let calendar = calendar_from_row(&row)?;
        commit_tx(tx, &what).await?;
        Ok(calendar)
    }

    async fn calendar(&self, id: CalendarId) -> Result<Option<Calendar>, StoreError> {
        let row = sqlx::query(&format!("SELECT {CALENDAR_COLUMNS} FROM calendars WHERE id = $1"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .context(|| format!("could not read calendar {id}"))?;
        row.as_ref().map(calendar_from_row).transpose()
    }

    async fn calendar_by_email(&self, email: &str) -> Result<Option<Calendar>, StoreError> {
        let email = normalise_email(email);
        let row = sqlx::query(&format!("SELECT {CALENDAR_COLUMNS} FROM calendars WHERE email = $1"))
            .bind(&email)
            .fetch_optional(&self.pool)
            .await
            .context(|| format!("could not read calendar {email}"))?;
        row.as_ref().map(calendar_from_row).transpose()
    }

    async fn calendars(&self, connection: Option<ConnectionId>) -> Result<Vec<Calendar>, StoreError> {
        let rows = match connection {
            Some(id) => sqlx::query(&format!(
                "SELECT {CALENDAR_COLUMNS} FROM calendars WHERE connection_id = $1 ORDER BY email"
            ))
            .bind(id)
            .fetch_all(&self.pool)
            .await
            .context(|| format!("could not list the calendars of connection {id}"))?,
            None => sqlx::query(&format!("SELECT {CALENDAR_COLUMNS} FROM calendars ORDER BY email"))
                .fetch_all(&self.pool)
                .await
                .context(|| "could not list calendars".into())?,
        };
        rows.iter().map(calendar_from_row).collect()
    }

    async fn calendars_by_id(&self, ids: &[CalendarId]) -> Result<Vec<Calendar>, StoreError> {
        let rows = sqlx::query(&format!("SELECT {CALENDAR_COLUMNS} FROM calendars WHERE id = ANY($1) ORDER BY id"))
            .bind(ids)
            .fetch_all(&self.pool)
            .await
            .context(|| format!("could not read {} calendars", ids.len()))?;
        rows.iter().map(calendar_from_row).collect()
    }

    async fn set_link_state(&self, id: CalendarId, state: &LinkState) -> Result<(), StoreError> {
        let changed = sqlx::query("UPDATE calendars SET link_state = $1::jsonb WHERE id = $2")
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
        // The calendar's writers queue here, so a concurrent retry of this create waits and
        // then finds the event instead of failing on its key.
        require_calendar(&mut tx, calendar_id, Hold::Writer).await?;
        if let Some(existing) = lock_event(&mut tx, id).await? {
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
        let Some(stored) = lock_event(&mut tx, id).await? else {
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
        let Some(stored) = lock_event(&mut tx, id).await? else {
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
        let row = sqlx::query(&format!("SELECT {EVENT_COLUMNS} FROM events WHERE id = $1"))
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
             WHERE calendar_id = $1 AND NOT deleted AND start_us <= $2 AND end_us >= $3 \
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
        if from >= to {
            return Ok(Vec::new());
        }
        // Two arms (see `BusyArm`): events starting from a day before `from`, and long events
        // starting earlier, from their partial index.
        let arm = |arm: BusyArm| {
            let start = if arm == BusyArm::Short { ">=" } else { "<" };
            format!(
                "SELECT calendar_id, start_us, end_us, busy_as FROM events WHERE calendar_id = ANY($1) AND {} \
                 AND start_us < $2 AND start_us {start} $3 AND end_us > $4 AND NOT deleted AND busy_as IS NOT NULL",
                arm.condition()
            )
        };
        let sql =
            format!("{} UNION ALL {} ORDER BY calendar_id, start_us, end_us", arm(BusyArm::Short), arm(BusyArm::Long));
        let rows = sqlx::query(&sql)
            .bind(calendars)
            .bind(micros(to))
            .bind(micros(from) - LONG_EVENT_US)
            .bind(micros(from))
            .fetch_all(&self.pool)
            .await
            .context(|| {
                format!("could not read the busy times of {} calendars from {from} to {to}", calendars.len())
            })?;
        rows.iter().map(|row| busy_time_from_row(row.get(0), row.get(1), row.get(2), row.get::<&str, _>(3))).collect()
    }

    async fn remote_id(&self, id: &EventId) -> Result<Option<String>, StoreError> {
        let row = sqlx::query("SELECT remote_id FROM sync_records WHERE local_id = $1")
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
            "INSERT INTO connections (name, kind, settings, default_organizer, max_threads) \
             VALUES ($1, $2, $3::jsonb, $4, $5) RETURNING {CONNECTION_COLUMNS}"
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
            e => classify(e, format!("could not create connection `{name}`")),
        })?;
        connection_from_row(&row)
    }

    async fn update_connection(&self, id: ConnectionId, c: NewConnection) -> Result<Connection, StoreError> {
        let name = c.name.trim();
        if name.is_empty() {
            return Err(StoreError::Invalid("a connection needs a name".into()));
        }
        let row = sqlx::query(&format!(
            "UPDATE connections SET name = $1, kind = $2, settings = $3::jsonb, default_organizer = $4, \
             max_threads = $5 WHERE id = $6 RETURNING {CONNECTION_COLUMNS}"
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
            e => classify(e, format!("could not update connection {id}")),
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
            SecretOwner::Connection(id) => sqlx::query("UPDATE connections SET secret = $1::jsonb WHERE id = $2")
                .bind(&json)
                .bind(id)
                .execute(&self.pool)
                .await
                .context(|| format!("could not save the secret of connection {id}"))?,
            SecretOwner::Webhook(id) => sqlx::query("UPDATE webhooks SET secret = $1::jsonb WHERE id = $2")
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
        let (q, what) = match owner {
            SecretOwner::Connection(id) => (
                sqlx::query("SELECT secret::text AS secret FROM connections WHERE id = $1").bind(*id),
                format!("connection {id}"),
            ),
            SecretOwner::Webhook(id) => (
                sqlx::query("SELECT secret::text AS secret FROM webhooks WHERE id = $1").bind(id.clone()),
                format!("webhook {id}"),
            ),
        };
        let row = q.fetch_optional(&self.pool).await.context(|| format!("could not read the secret of {what}"))?;
        let Some(row) = row else { return Ok(None) };
        let json: Option<String> = row.get("secret");
        json.map(|j| sealed_from_json(&j, || format!("the secret of {what}"))).transpose()
    }

    async fn secrets(&self) -> Result<Vec<(SecretOwner, SealedSecret)>, StoreError> {
        let mut out = Vec::new();
        for row in
            sqlx::query("SELECT id, secret::text AS secret FROM connections WHERE secret IS NOT NULL ORDER BY id")
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
        for row in sqlx::query("SELECT id, secret::text AS secret FROM webhooks ORDER BY id")
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
            "INSERT INTO api_keys (name, scope, hash, prefix, created_us) VALUES ($1, $2, $3, $4, $5) \
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
        let row = sqlx::query("SELECT id, name, scope, prefix, created_us FROM api_keys WHERE hash = $1")
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
        let changed = sqlx::query("DELETE FROM api_keys WHERE id = $1")
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
        let row = sqlx::query(&format!(
            "INSERT INTO webhooks (id, url, events, description, secret, created_us) \
             VALUES ($1, $2, $3::jsonb, $4, $5::jsonb, $6) RETURNING {WEBHOOK_COLUMNS}"
        ))
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
        let row = sqlx::query(&format!("SELECT {WEBHOOK_COLUMNS} FROM webhooks WHERE id = $1"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .context(|| format!("could not read webhook {id}"))?;
        row.as_ref().map(webhook_from_row).transpose()
    }

    async fn webhooks(&self) -> Result<Vec<Webhook>, StoreError> {
        sqlx::query(&format!("SELECT {WEBHOOK_COLUMNS} FROM webhooks ORDER BY created_us, id"))
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
        let found = sqlx::query("SELECT 1 FROM webhooks WHERE id = $1 FOR UPDATE")
            .bind(id)
            .fetch_optional(&mut *tx)
            .await
            .context(|| format!("could not {what}"))?;
        if found.is_none() {
            return Err(StoreError::NotFound { what: format!("webhook {id}") });
        }
        for sql in ["DELETE FROM deliveries WHERE webhook_id = $1", "DELETE FROM webhooks WHERE id = $1"] {
            sqlx::query(sql).bind(id).execute(&mut *tx).await.context(|| format!("could not {what}"))?;
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
            "SELECT d.id, d.message_id, d.attempts, o.event_type, o.payload, w.id AS webhook_id, w.url, \
             w.secret::text AS secret \
             FROM deliveries d JOIN outbox o ON o.id = d.message_id JOIN webhooks w ON w.id = d.webhook_id \
             WHERE d.state = 'pending' AND d.next_attempt_us <= $1 ORDER BY d.next_attempt_us, d.id LIMIT $2",
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
        // One statement each: the attempt counter goes up atomically.
        let q = match outcome {
            DeliveryOutcome::Delivered { at } => sqlx::query(
                "UPDATE deliveries SET state = 'delivered', attempts = attempts + 1, delivered_us = $1, \
                 last_error = NULL WHERE id = $2",
            )
            .bind(micros(*at)),
            DeliveryOutcome::Retry { next_attempt, error } => sqlx::query(
                "UPDATE deliveries SET attempts = attempts + 1, next_attempt_us = $1, last_error = $2 WHERE id = $3",
            )
            .bind(micros(*next_attempt))
            .bind(error.clone()),
            DeliveryOutcome::Failed { error } => sqlx::query(
                "UPDATE deliveries SET state = 'failed', attempts = attempts + 1, last_error = $1 WHERE id = $2",
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
            "DELETE FROM deliveries WHERE (state = 'delivered' AND delivered_us < $1) \
             OR (state = 'failed' AND next_attempt_us < $1)",
        )
        .bind(micros(before))
        .execute(&mut *tx)
        .await
        .context(|| format!("could not {what}"))?
        .rows_affected();
        sqlx::query(
            "DELETE FROM outbox WHERE created_us < $1 \
             AND NOT EXISTS (SELECT 1 FROM deliveries d WHERE d.message_id = outbox.id)",
        )
        .bind(micros(before))
        .execute(&mut *tx)
        .await
        .context(|| format!("could not {what}"))?;
        commit_tx(tx, what).await?;
        Ok(gone)
    }

    // --- sync status ---------------------------------------------------------------------

    async fn set_sync_status(&self, status: &SyncStatus) -> Result<(), StoreError> {
        let id = status.calendar_id;
        sqlx::query(
            "INSERT INTO sync_status (calendar_id, status) SELECT id, $2::jsonb FROM calendars WHERE id = $1 \
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
        let row = sqlx::query("SELECT status::text AS status FROM sync_status WHERE calendar_id = $1")
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
        sqlx::query("SELECT calendar_id, status::text AS status FROM sync_status ORDER BY calendar_id")
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
        require(&mut tx, "sites", "site", id, Hold::Delete).await?;
        for sql in ["UPDATE calendars SET site_id = NULL WHERE site_id = $1", "DELETE FROM sites WHERE id = $1"] {
            sqlx::query(sql).bind(id).execute(&mut *tx).await.context(|| format!("could not {what}"))?;
        }
        commit_tx(tx, &what).await
    }

    async fn delete_calendar(&self, id: CalendarId) -> Result<(), StoreError> {
        let what = format!("unlink calendar {id}");
        let mut tx = self.write_tx(&what).await?;
        require_calendar(&mut tx, id, Hold::Delete).await?;
        // Explicit, child first; the foreign keys' ON DELETE clauses are the safety net.
        for sql in [
            "DELETE FROM cursors WHERE calendar_id = $1",
            "DELETE FROM sync_records WHERE calendar_id = $1",
            "DELETE FROM events WHERE calendar_id = $1",
            "DELETE FROM subscriptions WHERE calendar_id = $1",
            "DELETE FROM sync_status WHERE calendar_id = $1",
            "DELETE FROM calendars WHERE id = $1",
        ] {
            sqlx::query(sql).bind(id).execute(&mut *tx).await.context(|| format!("could not {what}"))?;
        }
        commit_tx(tx, &what).await
    }

    // --- sync state ----------------------------------------------------------------------

    async fn has_local_changes(&self, calendar_id: CalendarId) -> Result<bool, StoreError> {
        let row = sqlx::query(
            "SELECT EXISTS (SELECT 1 FROM events e LEFT JOIN sync_records r ON r.local_id = e.id \
             WHERE e.calendar_id = $1 AND e.origin = 'local' \
             AND (e.deleted OR r.local_id IS NULL OR r.local_version <> e.version)) AS pending",
        )
        .bind(calendar_id)
        .fetch_one(&self.pool)
        .await
        .context(|| format!("could not read whether calendar {calendar_id} has local changes"))?;
        Ok(row.get::<bool, _>("pending"))
    }

    async fn snapshot(&self, calendar_id: CalendarId) -> Result<Snapshot, StoreError> {
        let what = format!("read the sync state of calendar {calendar_id}");
        // One repeatable-read transaction: events and records from the same moment.
        let mut tx = self.snapshot_tx(&what).await?;
        let found = sqlx::query("SELECT 1 FROM calendars WHERE id = $1")
            .bind(calendar_id)
            .fetch_optional(&mut *tx)
            .await
            .context(|| format!("could not {what}"))?;
        if found.is_none() {
            return Err(StoreError::NotFound { what: format!("calendar {calendar_id}") });
        }
        let events = sqlx::query(&format!("SELECT {EVENT_COLUMNS} FROM events WHERE calendar_id = $1"))
            .bind(calendar_id)
            .fetch_all(&mut *tx)
            .await
            .context(|| format!("could not {what}"))?
            .iter()
            .map(event_from_row)
            .collect::<Result<Vec<_>, _>>()?;
        let records = sqlx::query(&format!("SELECT {RECORD_COLUMNS} FROM sync_records WHERE calendar_id = $1"))
            .bind(calendar_id)
            .fetch_all(&mut *tx)
            .await
            .context(|| format!("could not {what}"))?
            .iter()
            .map(record_from_row)
            .collect();
        commit_tx(tx, &what).await?;
        Ok(Snapshot::new(events, records))
    }

    async fn cursor(&self, calendar_id: CalendarId) -> Result<Option<Cursor>, StoreError> {
        let row = sqlx::query("SELECT cursor FROM cursors WHERE calendar_id = $1")
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
            "INSERT INTO admins (username, password_hash, created_us, updated_us) VALUES ($1, $2, $3, $4) \
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
            sqlx::query("SELECT id, username, password_hash, created_us, updated_us FROM admins WHERE username = $1")
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
        require_calendar(&mut tx, s.calendar_id, Hold::Writer).await?;
        sqlx::query("DELETE FROM subscriptions WHERE calendar_id = $1 OR id = $2")
            .bind(s.calendar_id)
            .bind(&s.id)
            .execute(&mut *tx)
            .await
            .context(|| format!("could not {what}"))?;
        sqlx::query(
            "INSERT INTO subscriptions (id, calendar_id, client_state_hash, expires_us) VALUES ($1, $2, $3, $4)",
        )
        .bind(&s.id)
        .bind(s.calendar_id)
        .bind(&s.client_state_hash)
        .bind(micros(s.expires_at))
        .execute(&mut *tx)
        .await
        .context(|| format!("could not {what}"))?;
        commit_tx(tx, &what).await
    }

    async fn subscription(&self, id: &str) -> Result<Option<NotificationSubscription>, StoreError> {
        let row = sqlx::query("SELECT id, calendar_id, client_state_hash, expires_us FROM subscriptions WHERE id = $1")
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
        sqlx::query("DELETE FROM subscriptions WHERE id = $1")
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
        sqlx::query("UPDATE leases SET expires_us = $1 WHERE holder = $2 AND expires_us > $3")
            .bind(until_us)
            .bind(holder)
            .bind(now_us)
            .execute(&mut *tx)
            .await
            .map_err(q)?;
        // The fair share: the calendars divided by the workers seen within a lease's
        // lifetime, this one included.
        sqlx::query(
            "INSERT INTO workers (holder, seen_us) VALUES ($1, $2) \
             ON CONFLICT (holder) DO UPDATE SET seen_us = excluded.seen_us",
        )
        .bind(holder)
        .bind(now_us)
        .execute(&mut *tx)
        .await
        .map_err(q)?;
        let others: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM workers WHERE seen_us > $1 AND holder <> $2")
            .bind(micros(now - ttl))
            .bind(holder)
            .fetch_one(&mut *tx)
            .await
            .map_err(q)?;
        let total: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM calendars").fetch_one(&mut *tx).await.map_err(q)?;
        let workers = others as usize + 1;
        let share = (total as usize).div_ceil(workers).min(max);
        let mine: Vec<i64> = sqlx::query_scalar(
            "SELECT calendar_id FROM leases WHERE holder = $1 AND expires_us > $2 ORDER BY calendar_id",
        )
        .bind(holder)
        .bind(now_us)
        .fetch_all(&mut *tx)
        .await
        .map_err(q)?;
        // More than the share: give the rest up now, for the others to claim.
        for id in mine.iter().skip(share) {
            sqlx::query("UPDATE leases SET expires_us = $1 WHERE calendar_id = $2 AND holder = $3")
                .bind(now_us)
                .bind(id)
                .bind(holder)
                .execute(&mut *tx)
                .await
                .map_err(q)?;
        }
        let wanted = share.saturating_sub(mine.len());
        if wanted > 0 {
            let free: Vec<i64> = sqlx::query_scalar(
                "SELECT c.id FROM calendars c LEFT JOIN leases l ON l.calendar_id = c.id \
                 WHERE l.calendar_id IS NULL OR l.expires_us <= $1 ORDER BY c.id LIMIT $2 FOR UPDATE OF c SKIP LOCKED",
            )
            .bind(now_us)
            .bind(wanted as i64)
            .fetch_all(&mut *tx)
            .await
            .map_err(q)?;
            for id in free {
                // A new claim: the fencing number grows, so the last holder cannot commit.
                sqlx::query(
                    "INSERT INTO leases (calendar_id, holder, fence, expires_us) VALUES ($1, $2, 1, $3) \
                     ON CONFLICT (calendar_id) DO UPDATE SET holder = excluded.holder, fence = leases.fence + 1, \
                     expires_us = excluded.expires_us",
                )
                .bind(id)
                .bind(holder)
                .bind(until_us)
                .execute(&mut *tx)
                .await
                .map_err(q)?;
            }
        }
        let rows = sqlx::query(
            "SELECT calendar_id, holder, fence, expires_us FROM leases WHERE holder = $1 AND expires_us > $2 \
             ORDER BY calendar_id",
        )
        .bind(holder)
        .bind(now_us)
        .fetch_all(&mut *tx)
        .await
        .map_err(q)?;
        let leases = rows.iter().map(lease_from_row).collect::<Result<Vec<_>, _>>()?;
        commit_tx(tx, &what).await?;
        Ok(leases)
    }

    async fn release_leases(&self, holder: &str, now: DateTime<Utc>) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM workers WHERE holder = $1")
            .bind(holder)
            .execute(&self.pool)
            .await
            .context(|| format!("could not sign off worker {holder}"))?;
        sqlx::query("UPDATE leases SET expires_us = $1 WHERE holder = $2 AND expires_us > $1")
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
        require_calendar(&mut tx, calendar_id, Hold::Writer).await?;
        sqlx::query(
            "INSERT INTO sync_requests (calendar_id, requested_us) VALUES ($1, $2) ON CONFLICT (calendar_id) DO UPDATE SET requested_us = GREATEST(sync_requests.requested_us, $2)",
        )
        .bind(calendar_id)
        .bind(micros(at))
        .execute(&mut *tx)
        .await
        .context(|| format!("could not {what}"))?;
        commit_tx(tx, &what).await
    }

    async fn take_sync_requests(&self, holder: &str, now: DateTime<Utc>) -> Result<Vec<CalendarId>, StoreError> {
        let rows = sqlx::query(
            "DELETE FROM sync_requests WHERE calendar_id IN (SELECT calendar_id FROM leases WHERE holder = $1 AND expires_us > $2) RETURNING calendar_id",
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
    fn passwords_are_found_and_hidden() {
        let url = "postgres://calbridge:s3cr%40t:x@db.internal:5432/calbridge?sslmode=prefer";
        assert_eq!(url_password(url), Some("s3cr%40t:x"));
        assert_eq!(redact(url), "postgres://calbridge:***@db.internal:5432/calbridge?sslmode=prefer");
        assert_eq!(url_password("postgres://calbridge@db/cb"), None);
        assert_eq!(url_password("postgres://db/cb"), None);
        assert_eq!(url_password("postgresql://u:@db/cb"), None);
        assert_eq!(redact("postgres://db/a@b"), "postgres://db/a@b", "an @ in the path is no user info");
        assert_eq!(percent_decode("s3cr%40t%2"), "s3cr@t%2");
        let m = scrub("login as calbridge with s3cr@t:x failed".into(), url);
        assert!(!m.contains("s3cr"), "{m}");
    }

    #[test]
    fn the_location_names_no_password() {
        let options = PgConnectOptions::from_str("postgres://calbridge:s3cret@db.internal:6432/cb").unwrap();
        let location = describe(&options);
        assert_eq!(location, "the PostgreSQL database `cb` on db.internal:6432 as user calbridge");
    }
}
