//! The `Store` seam: calbridge's persistent state.
//!
//! Implemented by `calbridge-store` (SQLite, and PostgreSQL behind the same trait). One contract
//! test suite runs against every implementation. Writes that belong together (the effects of a
//! change page and its cursor) go through [`Store::commit`], in one transaction.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::model::*;
use crate::sync::{Cursor, CursorUpdate, Snapshot, Write};

/// Store failures.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A referenced row does not exist.
    #[error("{what} not found")]
    NotFound { what: String },
    /// The write would break a rule (a name in use, a stale version, a read-only event).
    #[error("{0}")]
    Conflict(String),
    /// The database could not be opened, migrated or queried.
    #[error("database error: {0}")]
    Database(String),
}

/// A connection to create or update (matched by name).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewConnection {
    pub name: String,
    pub settings: ConnectionSettings,
    pub default_organizer: Option<String>,
    pub max_threads: u32,
}

/// A calendar link to create or update (matched by e-mail address).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewCalendar {
    pub email: String,
    pub kind: CalendarKind,
    pub display_name: String,
    pub connection_id: ConnectionId,
    pub site_id: Option<SiteId>,
    pub busy_only: bool,
}

/// How many rows a commit changed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WriteStats {
    pub events: u64,
    pub records: u64,
    pub cursors: u64,
}

impl WriteStats {
    pub fn total(&self) -> u64 {
        self.events + self.records + self.cursors
    }
    pub fn add(&mut self, other: WriteStats) {
        self.events += other.events;
        self.records += other.records;
        self.cursors += other.cursors;
    }
}

#[async_trait]
pub trait Store: Send + Sync {
    // --- connections -------------------------------------------------------------------
    /// Creates the connection, or updates the one with the same name.
    async fn upsert_connection(&self, c: NewConnection) -> Result<Connection, StoreError>;
    async fn connection(&self, id: ConnectionId) -> Result<Option<Connection>, StoreError>;
    async fn connection_by_name(&self, name: &str) -> Result<Option<Connection>, StoreError>;
    async fn connections(&self) -> Result<Vec<Connection>, StoreError>;
    /// Deletes the connection with its sites, calendars, events and sync state.
    async fn delete_connection(&self, id: ConnectionId) -> Result<(), StoreError>;

    // --- sites -------------------------------------------------------------------------
    /// Creates the site, or moves the one with the same name to `connection_id`.
    async fn upsert_site(&self, name: &str, connection_id: ConnectionId) -> Result<Site, StoreError>;
    async fn sites(&self) -> Result<Vec<Site>, StoreError>;

    // --- calendars ---------------------------------------------------------------------
    /// Links a mailbox, or updates the link with the same e-mail address. The link state is
    /// kept unless the connection changes.
    async fn upsert_calendar(&self, c: NewCalendar) -> Result<Calendar, StoreError>;
    async fn calendar(&self, id: CalendarId) -> Result<Option<Calendar>, StoreError>;
    async fn calendar_by_email(&self, email: &str) -> Result<Option<Calendar>, StoreError>;
    /// All calendars, or those of one connection; ordered by e-mail address.
    async fn calendars(&self, connection: Option<ConnectionId>) -> Result<Vec<Calendar>, StoreError>;
    async fn set_link_state(&self, id: CalendarId, state: &LinkState) -> Result<(), StoreError>;

    // --- events, the host application's side --------------------------------------------
    /// Creates a local event (origin local, version 1). Creating an id that exists is a
    /// conflict unless the content is identical (an idempotent retry).
    async fn create_local_event(
        &self,
        calendar_id: CalendarId,
        id: &EventId,
        data: &EventData,
    ) -> Result<Event, StoreError>;
    /// Replaces a local event's content and increments its version. Events from Exchange are
    /// read-only; `expected_version`, when given, must match.
    async fn update_local_event(
        &self,
        id: &EventId,
        data: &EventData,
        expected_version: Option<i64>,
    ) -> Result<Event, StoreError>;
    /// Deletes a local event, leaving a tombstone (version incremented) that the next sync
    /// pushes as a deletion, or drops if Exchange never had the event. Always a tombstone:
    /// a create whose confirmation was lost may exist in Exchange, and only the next pull can
    /// tell. Events from Exchange are read-only.
    async fn delete_local_event(&self, id: &EventId) -> Result<(), StoreError>;
    async fn event(&self, id: &EventId) -> Result<Option<Event>, StoreError>;
    /// Live (not deleted) events of a calendar overlapping `[from, to)`, ordered by start.
    async fn events_in_range(
        &self,
        calendar_id: CalendarId,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<Event>, StoreError>;
    /// Remote id of a synced event, if it reached Exchange.
    async fn remote_id(&self, id: &EventId) -> Result<Option<String>, StoreError>;

    // --- sync state ----------------------------------------------------------------------
    /// Every event (tombstones included) and sync record of a calendar.
    async fn snapshot(&self, calendar_id: CalendarId) -> Result<Snapshot, StoreError>;
    async fn cursor(&self, calendar_id: CalendarId) -> Result<Option<Cursor>, StoreError>;
    /// Applies `writes` and the cursor update in one transaction; all or nothing.
    async fn commit(
        &self,
        calendar_id: CalendarId,
        writes: &[Write],
        cursor: &CursorUpdate,
    ) -> Result<WriteStats, StoreError>;
}
