//! The `Store` seam: calbridge's persistent state.
//!
//! Implemented by `calbridge-store` (SQLite, and PostgreSQL behind the same trait). One contract
//! test suite runs against every implementation. Writes that belong together (the effects of a
//! change page and its cursor) go through [`Store::commit`], in one transaction.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use serde::{Deserialize, Serialize};

use crate::model::*;
use crate::sync::{Cursor, CursorUpdate, Snapshot, Write};

/// One event's claim on a calendar's time, as availability reads it: see [`Store::busy_times`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BusyTime {
    pub calendar_id: CalendarId,
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    pub show_as: ShowAs,
}

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
    /// The input cannot be stored as it is (an empty name, a bad address); the message says
    /// what to change.
    #[error("{0}")]
    Invalid(String),
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

/// A secret encrypted at rest with an authenticated cipher under the master key `key_id`.
/// The store keeps it opaque; `calbridge-engine`'s `secrets` module seals and opens it.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SealedSecret {
    /// Which master key sealed it (so keys can be rotated).
    pub key_id: String,
    /// The nonce, base64.
    pub nonce: String,
    /// Ciphertext and tag, base64.
    pub ciphertext: String,
}

impl std::fmt::Debug for SealedSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SealedSecret(key {})", self.key_id)
    }
}

/// Who a sealed secret belongs to.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum SecretOwner {
    /// A connection's client secret or password.
    Connection(ConnectionId),
    /// A webhook endpoint's signing secret.
    Webhook(String),
}

impl SecretOwner {
    /// Bound into the cipher as associated data, so a sealed value moved to another row
    /// does not open.
    pub fn aad(&self) -> String {
        match self {
            SecretOwner::Connection(id) => format!("calbridge:connection:{id}"),
            SecretOwner::Webhook(id) => format!("calbridge:webhook:{id}"),
        }
    }
}

/// What an API key may do. Each scope includes the ones before it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    /// Read everything except secrets (which are never readable).
    Read,
    /// Also: events, calendar links, sync triggers.
    Write,
    /// Also: connections, sites, webhooks, disconnecting.
    Admin,
}

impl Scope {
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Read => "read",
            Scope::Write => "write",
            Scope::Admin => "admin",
        }
    }
    pub fn parse(s: &str) -> Option<Scope> {
        match s {
            "read" => Some(Scope::Read),
            "write" => Some(Scope::Write),
            "admin" => Some(Scope::Admin),
            _ => None,
        }
    }
}

/// A stored API key: only the hash of the token is kept.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApiKey {
    pub id: i64,
    pub name: String,
    pub scope: Scope,
    /// The token's first characters, to recognise it in a list.
    pub prefix: String,
    pub created_at: DateTime<Utc>,
}

/// An API key to store.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewApiKey {
    pub name: String,
    pub scope: Scope,
    /// Hex SHA-256 of the whole token.
    pub hash: String,
    pub prefix: String,
    pub created_at: DateTime<Utc>,
}

/// A webhook message for the outbox. Delivered to every endpoint subscribed to its type.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Notification {
    /// Unique message id (`msg_...`), the receivers' deduplication key (`webhook-id`).
    pub id: String,
    /// `event.created`, `event.updated`, `event.deleted`, `booking.accepted`,
    /// `booking.declined`, `connection.failed`.
    pub event_type: String,
    pub created_at: DateTime<Utc>,
    /// The JSON body sent (`{"type", "timestamp", "data"}`).
    pub payload: String,
}

/// A registered webhook endpoint.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Webhook {
    pub id: String,
    pub url: String,
    pub events: Vec<String>,
    pub description: String,
    pub created_at: DateTime<Utc>,
}

/// A webhook endpoint to store, with its signing secret sealed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewWebhook {
    pub id: String,
    pub url: String,
    pub events: Vec<String>,
    pub description: String,
    pub secret: SealedSecret,
    pub created_at: DateTime<Utc>,
}

/// One message due for one endpoint.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Delivery {
    pub id: i64,
    pub message_id: String,
    pub event_type: String,
    pub payload: String,
    pub webhook_id: String,
    pub url: String,
    pub secret: SealedSecret,
    /// Attempts made so far.
    pub attempts: u32,
}

/// How an attempt went.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DeliveryOutcome {
    /// The endpoint answered 2xx.
    Delivered { at: DateTime<Utc> },
    /// Try again at `next_attempt`.
    Retry { next_attempt: DateTime<Utc>, error: String },
    /// Out of attempts.
    Failed { error: String },
}

/// Deliveries by state, for the metrics and the API.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DeliveryCounts {
    pub pending: u64,
    pub delivered: u64,
    pub failed: u64,
}

/// The last sync run of a calendar.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncStatus {
    pub calendar_id: CalendarId,
    pub last_run: DateTime<Utc>,
    /// `ok`, `failed` or `paused`.
    pub state: String,
    /// What went wrong, when it did.
    pub error: Option<String>,
    /// What to do about it.
    pub hint: Option<String>,
    pub pulled: u64,
    pub pushed: u64,
    pub duration_ms: u64,
    /// Time the run spent waiting because Exchange throttled it (`Retry-After`,
    /// `BackOffMilliseconds`). Statuses stored before it was recorded read as 0.
    #[serde(default)]
    pub throttled_ms: u64,
}

/// An administrator of the admin web UI. Only a slow, salted hash of the password is kept.
#[derive(Clone, PartialEq, Eq)]
pub struct AdminAccount {
    pub id: i64,
    /// Lower-cased.
    pub username: String,
    /// A PHC string (`$argon2id$...`), made and checked by the API's `console` module.
    pub password_hash: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl std::fmt::Debug for AdminAccount {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "AdminAccount({} {})", self.id, self.username)
    }
}

/// A worker's claim on a calendar (several `serve` processes on one database divide the
/// calendars this way). While it holds (until `expires_at`), only `holder` syncs the calendar;
/// every new claim of a calendar gets a higher `fence`, which the holder passes to
/// [`Store::commit_fenced`], so a worker whose lease went to another cannot commit.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lease {
    pub calendar_id: CalendarId,
    pub holder: String,
    pub fence: i64,
    pub expires_at: DateTime<Utc>,
}

/// A change-notification subscription calbridge holds for a calendar (one per calendar).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NotificationSubscription {
    pub calendar_id: CalendarId,
    /// Exchange's id of the subscription.
    pub id: String,
    /// SHA-256 (hex) of the `clientState` Exchange echoes in every notification; the value
    /// itself is not kept.
    pub client_state_hash: String,
    pub expires_at: DateTime<Utc>,
}

impl std::fmt::Debug for NotificationSubscription {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "NotificationSubscription({} for calendar {} until {})", self.id, self.calendar_id, self.expires_at)
    }
}

/// An administrator to create, or whose password to replace (matched by user name).
#[derive(Clone, PartialEq, Eq)]
pub struct NewAdmin {
    pub username: String,
    pub password_hash: String,
    pub now: DateTime<Utc>,
}

impl std::fmt::Debug for NewAdmin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "NewAdmin({})", self.username)
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
    /// The calendars among `ids` (those that exist), ordered by id, in one read.
    async fn calendars_by_id(&self, ids: &[CalendarId]) -> Result<Vec<Calendar>, StoreError>;
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
    /// The time claimed in `calendars` over `[from, to)`, in a fixed number of queries however
    /// many calendars: every live event overlapping the range that is neither cancelled nor a
    /// series master (a series claims time through its instances), by calendar, then start.
    /// Instants are whole microseconds; no content is read.
    async fn busy_times(
        &self,
        calendars: &[CalendarId],
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<BusyTime>, StoreError>;
    /// Remote id of a synced event, if it reached Exchange.
    async fn remote_id(&self, id: &EventId) -> Result<Option<String>, StoreError>;

    // --- sync state ----------------------------------------------------------------------
    /// Every event (tombstones included) and sync record of a calendar.
    async fn snapshot(&self, calendar_id: CalendarId) -> Result<Snapshot, StoreError>;
    /// Whether the calendar may have local changes to push: an event the host application
    /// made that is deleted, has no sync record, or whose version is not its record's. When
    /// `false`, [`crate::planner::plan_push`] over the calendar's snapshot plans nothing, so a
    /// sync that Exchange reports idle need not read the snapshot at all.
    async fn has_local_changes(&self, calendar_id: CalendarId) -> Result<bool, StoreError>;
    async fn cursor(&self, calendar_id: CalendarId) -> Result<Option<Cursor>, StoreError>;
    /// Applies `writes` and the cursor update in one transaction; all or nothing.
    async fn commit(
        &self,
        calendar_id: CalendarId,
        writes: &[Write],
        cursor: &CursorUpdate,
    ) -> Result<WriteStats, StoreError>;

    // --- connections through the API ----------------------------------------------------------
    /// Creates a connection; a name in use is a conflict.
    async fn create_connection(&self, c: NewConnection) -> Result<Connection, StoreError>;
    /// Replaces a connection's name, settings, organizer and limit.
    async fn update_connection(&self, id: ConnectionId, c: NewConnection) -> Result<Connection, StoreError>;

    // --- sealed secrets ------------------------------------------------------------------
    /// Stores (or replaces) the owner's sealed secret. The owner must exist.
    async fn put_secret(&self, owner: &SecretOwner, sealed: &SealedSecret) -> Result<(), StoreError>;
    async fn secret(&self, owner: &SecretOwner) -> Result<Option<SealedSecret>, StoreError>;
    /// Every sealed secret, for key rotation.
    async fn secrets(&self) -> Result<Vec<(SecretOwner, SealedSecret)>, StoreError>;

    // --- API keys ------------------------------------------------------------------------
    async fn create_api_key(&self, k: NewApiKey) -> Result<ApiKey, StoreError>;
    /// The key whose token hashes to `hash`.
    async fn api_key_by_hash(&self, hash: &str) -> Result<Option<ApiKey>, StoreError>;
    async fn api_keys(&self) -> Result<Vec<ApiKey>, StoreError>;
    async fn delete_api_key(&self, id: i64) -> Result<(), StoreError>;

    // --- local events with their webhook messages ------------------------------------------
    /// [`Store::create_local_event`], queueing `notify` in the same transaction.
    async fn create_local_event_notify(
        &self,
        calendar_id: CalendarId,
        id: &EventId,
        data: &EventData,
        notify: &[Notification],
    ) -> Result<Event, StoreError>;
    /// [`Store::update_local_event`], queueing `notify` in the same transaction.
    async fn update_local_event_notify(
        &self,
        id: &EventId,
        data: &EventData,
        expected_version: Option<i64>,
        notify: &[Notification],
    ) -> Result<Event, StoreError>;
    /// [`Store::delete_local_event`], queueing `notify` in the same transaction.
    async fn delete_local_event_notify(&self, id: &EventId, notify: &[Notification]) -> Result<(), StoreError>;

    // --- webhooks and the outbox ---------------------------------------------------------
    async fn create_webhook(&self, w: NewWebhook) -> Result<Webhook, StoreError>;
    async fn webhook(&self, id: &str) -> Result<Option<Webhook>, StoreError>;
    async fn webhooks(&self) -> Result<Vec<Webhook>, StoreError>;
    /// Deletes the endpoint and its pending deliveries.
    async fn delete_webhook(&self, id: &str) -> Result<(), StoreError>;
    /// Queues messages that report no stored change (`connection.failed`). A message id that
    /// is already queued is skipped.
    async fn enqueue(&self, notify: &[Notification]) -> Result<(), StoreError>;
    /// Pending deliveries whose next attempt is due at `now`, oldest first.
    async fn due_deliveries(&self, now: DateTime<Utc>, limit: u32) -> Result<Vec<Delivery>, StoreError>;
    /// Records an attempt (the attempt counter goes up by one).
    async fn record_delivery(&self, id: i64, outcome: &DeliveryOutcome) -> Result<(), StoreError>;
    async fn delivery_counts(&self) -> Result<DeliveryCounts, StoreError>;
    /// Forgets deliveries that ended (delivered or failed) before `before`, and messages left
    /// with no delivery; pending ones stay. Returns how many deliveries went.
    async fn prune_deliveries(&self, before: DateTime<Utc>) -> Result<u64, StoreError>;

    // --- sync status ---------------------------------------------------------------------
    async fn set_sync_status(&self, status: &SyncStatus) -> Result<(), StoreError>;
    async fn sync_status(&self, calendar_id: CalendarId) -> Result<Option<SyncStatus>, StoreError>;
    async fn sync_statuses(&self) -> Result<Vec<SyncStatus>, StoreError>;

    // --- unlinking -----------------------------------------------------------------------
    /// Deletes a site; its calendars stay linked, without a site.
    async fn delete_site(&self, id: SiteId) -> Result<(), StoreError>;
    /// Unlinks a calendar: deletes it with its events, sync records, cursor and sync status.
    async fn delete_calendar(&self, id: CalendarId) -> Result<(), StoreError>;

    // --- administrators of the admin web UI ------------------------------------------------
    /// Creates the administrator, or replaces the password hash of the one with the same user
    /// name (compared lower-cased; `created_at` stays, `updated_at` becomes `now`).
    async fn upsert_admin(&self, a: NewAdmin) -> Result<AdminAccount, StoreError>;
    /// The administrator with this user name (compared lower-cased).
    async fn admin_by_username(&self, username: &str) -> Result<Option<AdminAccount>, StoreError>;

    // --- change-notification subscriptions ------------------------------------------------
    /// Records a calendar's subscription, replacing the one it had. The calendar must exist.
    async fn put_subscription(&self, s: &NotificationSubscription) -> Result<(), StoreError>;
    async fn subscription(&self, id: &str) -> Result<Option<NotificationSubscription>, StoreError>;
    /// Every subscription, by calendar.
    async fn subscriptions(&self) -> Result<Vec<NotificationSubscription>, StoreError>;
    /// Forgets a subscription (gone already is fine). Unlinking a calendar forgets its own.
    async fn delete_subscription(&self, id: &str) -> Result<(), StoreError>;

    // --- leases: several workers on one database ---------------------------------------------
    /// One heartbeat of worker `holder`: renews the leases it holds (to `now + ttl`), gives up
    /// those beyond its fair share (the calendars divided by the workers holding leases, itself
    /// included, at most `max`), and claims calendars nobody holds or whose lease expired, up
    /// to that share. Returns every lease `holder` holds afterwards, by calendar. Workers
    /// claiming at the same time never get the same calendar.
    async fn claim_leases(
        &self,
        holder: &str,
        now: DateTime<Utc>,
        ttl: chrono::Duration,
        max: usize,
    ) -> Result<Vec<Lease>, StoreError>;
    /// Gives up every lease of `holder` (a clean shutdown), so others may claim at once.
    async fn release_leases(&self, holder: &str, now: DateTime<Utc>) -> Result<(), StoreError>;
    /// [`Store::commit`], but only while `holder` holds the calendar's lease with `fence`
    /// (unexpired at `now`); otherwise `Conflict` naming the lost lease, and nothing is written.
    async fn commit_fenced(
        &self,
        calendar_id: CalendarId,
        writes: &[Write],
        cursor: &CursorUpdate,
        lease: &Lease,
        now: DateTime<Utc>,
    ) -> Result<WriteStats, StoreError>;
    /// Asks whichever worker holds the calendar's lease to sync it now (a "sync now", or a
    /// change notification, that reached a worker which does not hold it). A calendar has at
    /// most one request, however often it is asked; `NotFound` for an unknown calendar.
    async fn request_sync(&self, calendar_id: CalendarId, at: DateTime<Utc>) -> Result<(), StoreError>;
    /// Takes the sync requests of the calendars `holder` holds, unexpired at `now`: returns
    /// them and removes them, so each is served once. Requests for calendars nobody holds
    /// wait for their next holder.
    async fn take_sync_requests(&self, holder: &str, now: DateTime<Utc>) -> Result<Vec<CalendarId>, StoreError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_status_stored_before_throttling_waits_were_recorded_reads_as_zero() {
        let old = r#"{"calendar_id":7,"last_run":"2026-03-02T09:00:00Z","state":"ok","error":null,"hint":null,
                      "pulled":3,"pushed":1,"duration_ms":40}"#;
        let s: SyncStatus = serde_json::from_str(old).unwrap();
        assert_eq!((s.calendar_id, s.pulled, s.throttled_ms), (7, 3, 0));
        let again: SyncStatus = serde_json::from_str(&serde_json::to_string(&s).unwrap()).unwrap();
        assert_eq!(again, s);
    }
}
