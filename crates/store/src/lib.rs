//! # calbridge-store — calbridge's persistent state
//!
//! This crate implements the [`Store`] seam that `calbridge-core` defines: connections, sites,
//! calendar links, events (the host application's and those pulled from Exchange), the
//! per-event sync records that are the base of the three-way comparison, and the change-stream
//! cursors. The engine, the API and the CLI see only `Arc<dyn Store>`; [`open_store`] picks the
//! implementation from a database URL.
//!
//! ## Implementations
//!
//! - [`SqliteStore`] — the default: one embedded SQLite file (`sqlite://calbridge.db`, a plain
//!   path) in WAL mode with foreign keys on and a busy timeout, behind a small pool (readers run
//!   beside the single writer); or `sqlite::memory:` on one connection, for tests.
//! - [`PostgresStore`] — for several worker processes sharing one database
//!   (`postgres://USER:PASSWORD@HOST:PORT/DATABASE` or `postgresql://...`; without a password in
//!   the URL, the standard `PGPASSWORD` variable gives it). A pool of a few connections per
//!   process; the database must exist and the user must be allowed to create tables in it.
//!   Messages name the database, server and user, never the password.
//!
//! ## Tables (`migrations/0001_initial.sql`, `migrations/postgres/0001_initial.sql`)
//!
//! | table          | key                         | holds                                                     |
//! |----------------|-----------------------------|-----------------------------------------------------------|
//! | `connections`  | `id`; `name` unique         | kind, settings (JSON), default organizer, max threads     |
//! | `sites`        | `id`; `name` unique         | the connection it belongs to                              |
//! | `calendars`    | `id`; `email` unique        | lower-cased address, kind, connection, site, busy-only, link state (JSON) |
//! | `events`       | `id` (calbridge's UUID)     | calendar, origin, content (JSON), start/end in µs for range queries, version, deleted |
//! | `sync_records` | `local_id`; (`calendar_id`, `remote_id`) unique | remote id and version, both sides' content hashes, local version |
//! | `cursors`      | `calendar_id`               | the opaque delta / sync-state position                    |
//! | `subscriptions`| `id`; `calendar_id` unique  | a calendar's change-notification subscription: SHA-256 of its clientState, expiry |
//! | `leases`       | `calendar_id`               | which worker syncs the calendar, until when, and its fencing number (only grows) |
//! | `workers`      | `holder`                    | when each worker last claimed (who shares the calendars)  |
//!
//! Every child row references its parent with `ON DELETE CASCADE`, and
//! [`Store::delete_connection`] also deletes child-first explicitly, so a connection leaves
//! nothing behind. `events` is indexed by (`calendar_id`, `start_us`, `end_us`), with `deleted`
//! and `busy_as` (the event's show-as when it claims time; migration 7) carried in the index,
//! and events longer than a day have a partial index of their own: [`Store::busy_times`] reads
//! the claims of hundreds of calendars from the indexes alone, the others by start from a day
//! before the range and the long ones from theirs, without decoding any content. The JSON
//! columns hold the serde form of the `calbridge-core` types, so the store never re-models the
//! domain; the microsecond columns only pre-select, and the exact overlap test runs on the
//! decoded instants. PostgreSQL has the same tables with its own types: `BIGINT` identity
//! columns, `BOOLEAN` flags, `jsonb` for calbridge's own JSON (settings, link states, secrets,
//! subscriptions, sync status) and `text` where the exact text matters (an event's content, a
//! webhook payload that is signed byte for byte); instants stay microsecond `BIGINT`s, and
//! names, addresses and ids use the `C` collation, so both backends sort alike.
//!
//! ## Migrations
//!
//! The SQL files are embedded with `include_str!` and applied by sqlx's own migrator (without
//! its `macros` feature; see [`migrate`]), which records each applied version and checksum in
//! `_sqlx_migrations`: opening an existing database applies only what is new, and one written
//! by a newer calbridge is refused rather than damaged. Each backend has its own files with the
//! same versions. On PostgreSQL the migrator holds an advisory lock while it runs, so workers
//! starting together apply each migration once.
//!
//! ## Transactions
//!
//! - SQLite: every operation that reads before it writes runs in one `BEGIN IMMEDIATE`
//!   transaction, so it holds SQLite's write lock from the start and concurrent writers queue
//!   (busy timeout) instead of failing on a lock upgrade.
//! - PostgreSQL: writers run side by side in `READ COMMITTED` transactions that lock what they
//!   read before writing. A commit, and the creation of a local event, lock their calendar's
//!   row (`SELECT ... FOR NO KEY UPDATE`), so one calendar's writers queue and the rows they
//!   insert (event, record, cursor) cannot appear meanwhile; a change of one event locks the
//!   event's row (`FOR UPDATE`), so a host-application edit and a sync never lose one another's
//!   update; a write below a parent holds the parent with `FOR KEY SHARE`, and deletes lock
//!   parent before children, in the same order as commits. Upserts by name or address are
//!   single `INSERT ... ON CONFLICT` statements.
//! - [`Store::commit`] applies a page's writes and its cursor in one transaction. It reads the
//!   rows the writes touch in a few `IN (...)` queries, applies the writes in order to that
//!   copy in memory (`commit::plan`, shared by both backends) and sends the difference as
//!   multi-row statements: a page of 500 new events costs a handful of statements, not five
//!   per event. The outcome is that of applying the writes one by one: the first
//!   failing write returns the error and the transaction rolls back — earlier writes and the
//!   cursor included. A `PutEvent` replaces a stored event only when the stored version is
//!   lower (a host-application edit that raced the sync is a conflict, never overwritten); a
//!   record's remote id is linked to one event per calendar; and a commit writes only inside
//!   its own calendar.
//! - The host application's writes follow the trait: Exchange events are read-only, an
//!   `expected_version` must match, deleting a synced event leaves a tombstone (version
//!   bumped) for the push, re-creating an event with identical content is an idempotent retry.
//! - Identical writes are no-ops: a `PutEvent` or `PutRecord` equal to the stored row, or a
//!   cursor equal to the stored one, changes nothing and counts zero in [`WriteStats`], so a
//!   retried commit is harmless and an idle sync reports zero writes.
//! - Snapshots read events and records in one transaction (`REPEATABLE READ` on PostgreSQL), so
//!   they come from the same moment.
//! - Leases: [`Store::claim_leases`] runs in one write transaction (on PostgreSQL the free
//!   calendars are picked `FOR UPDATE OF c SKIP LOCKED`, so workers claiming at once never get
//!   the same one); every new claim of a calendar raises its fencing number, and
//!   [`Store::commit_fenced`] checks the holder, the fence and the expiry inside the commit's
//!   own transaction, so a worker that lost its lease writes nothing.
//!
//! ## Contract
//!
//! [`contract`] is the trait's executable specification: one async function per behaviour and
//! [`contract::run_all`] to run them all against a store factory. `tests/contract_sqlite.rs`
//! runs it against a SQLite file and against `sqlite::memory:`, and `tests/contract_postgres.rs`
//! runs the very same suite against PostgreSQL, each case on a fresh database (the server from
//! `CALBRIDGE_TEST_POSTGRES`). The module is always compiled (it is small), so other crates'
//! test doubles of `Store` can be held to the same contract.
//!
//! [`Store`]: calbridge_core::store::Store
//! [`Store::commit`]: calbridge_core::store::Store::commit
//! [`Store::busy_times`]: calbridge_core::store::Store::busy_times
//! [`Store::claim_leases`]: calbridge_core::store::Store::claim_leases
//! [`Store::commit_fenced`]: calbridge_core::store::Store::commit_fenced
//! [`Store::delete_connection`]: calbridge_core::store::Store::delete_connection
//! [`WriteStats`]: calbridge_core::store::WriteStats

use std::sync::Arc;

use calbridge_core::store::{Store, StoreError};

mod commit;
mod common;
pub mod contract;
mod error;
pub mod migrate;
mod postgres;
mod sqlite;

pub use postgres::PostgresStore;
pub use sqlite::SqliteStore;

/// The accepted database URL forms, for error messages.
const ACCEPTED: &str =
    "sqlite://PATH, sqlite:PATH, sqlite::memory:, a plain file path, or postgres://USER:PASSWORD@HOST/DATABASE";

/// Opens the store a database URL names: SQLite for `sqlite:` URLs and plain paths,
/// PostgreSQL for `postgres://` and `postgresql://` URLs. Messages never carry the password.
pub async fn open_store(url: &str) -> Result<Arc<dyn Store>, StoreError> {
    let trimmed = url.trim();
    if trimmed.starts_with("sqlite:") {
        return Ok(Arc::new(SqliteStore::open(trimmed).await?));
    }
    // Name only the scheme: a URL may carry a password.
    match scheme(trimmed) {
        Some(s) if s.eq_ignore_ascii_case("postgres") || s.eq_ignore_ascii_case("postgresql") => {
            Ok(Arc::new(PostgresStore::open(trimmed).await?))
        }
        Some(s) => Err(StoreError::Database(format!("unsupported database URL scheme `{s}:`; use {ACCEPTED}"))),
        None if trimmed.is_empty() => Err(StoreError::Database(format!("no database URL given; use {ACCEPTED}"))),
        None => Ok(Arc::new(SqliteStore::open(trimmed).await?)),
    }
}

/// `url` with the password of its user info (`scheme://user:password@host/...`) replaced by
/// `***`, for showing a store URL in a message or a log; other text is returned as it is.
pub fn redact_url(url: &str) -> String {
    postgres::redact(url)
}

/// The scheme of `s` if it looks like a URL (`name:` with a name of two or more characters, so
/// a Windows drive letter such as `C:\data\cb.db` stays a path).
fn scheme(s: &str) -> Option<&str> {
    let (name, _) = s.split_once(':')?;
    let valid = name.len() >= 2
        && name.starts_with(|c: char| c.is_ascii_alphabetic())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
    valid.then_some(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schemes_are_told_from_paths() {
        assert_eq!(scheme("postgres://u:p@h/db"), Some("postgres"));
        assert_eq!(scheme("mysql://h/db"), Some("mysql"));
        assert_eq!(scheme("C:\\data\\cb.db"), None);
        assert_eq!(scheme("/var/lib/cb.db"), None);
        assert_eq!(scheme("./cb.db"), None);
        assert_eq!(scheme("cb.db"), None);
    }

    #[test]
    fn store_urls_are_shown_without_password() {
        assert_eq!(redact_url("postgres://cb:s3cret@db/cb"), "postgres://cb:***@db/cb");
        assert_eq!(redact_url("postgresql://cb@db/cb"), "postgresql://cb@db/cb");
        assert_eq!(redact_url("sqlite://calbridge.db"), "sqlite://calbridge.db");
        assert_eq!(redact_url("C:\\data\\cb.db"), "C:\\data\\cb.db");
    }
}
