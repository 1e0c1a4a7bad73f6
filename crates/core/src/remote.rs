//! The `Remote` seam: what the engine needs from an Exchange protocol adapter.
//!
//! Implemented by `calbridge-graph` (and `calbridge-ews`). Every adapter classifies its
//! protocol's errors once, into [`RemoteError`]; the engine only ever sees the class.
//!
//! Change notifications come in two styles, and an adapter offers at most one:
//! - **push** ([`Remote::pushes_notifications`], Graph): Exchange POSTs to an endpoint of
//!   calbridge's, so calbridge needs a public URL; it subscribes, renews and unsubscribes
//!   per calendar ([`Remote::subscribe`], [`Remote::renew`], [`Remote::unsubscribe`]).
//! - **pull** ([`Remote::watches_notifications`], EWS): calbridge opens the connections itself
//!   and reads the notifications ([`Remote::watch`]); no public URL. A [`Watch`] covers many
//!   mailboxes, keeps its subscriptions itself, and reports which mailboxes changed and in
//!   which [`WatchMode`] each is watched.

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::sync::{ChangePage, Confirmed, Cursor, PushChange, RemoteItem, Window};

/// A mailbox as Exchange knows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MailboxInfo {
    pub email: String,
    pub display_name: String,
}

/// A calendar folder of a mailbox.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RemoteCalendar {
    pub id: String,
    pub name: String,
    pub is_default: bool,
}

/// A room as the organisation's directory lists it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoomInfo {
    pub email: String,
    pub name: String,
    /// The room list (a building, a site) it belongs to, by display name.
    pub room_list: Option<String>,
    /// Seats, when the directory says.
    pub capacity: Option<u32>,
}

/// The classes of failure the engine distinguishes.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RemoteError {
    /// Exchange asked us to slow down; wait `retry_after` (or a backoff) and retry.
    #[error("Exchange is throttling requests{}", retry_after.map(|d| format!(" (retry after {} ms)", d.as_millis())).unwrap_or_default())]
    Throttled { retry_after: Option<Duration> },
    /// The sync cursor is no longer valid; re-list everything and reconcile.
    #[error("the sync cursor has expired or is unknown to Exchange; a full re-listing is needed")]
    CursorExpired,
    /// The item changed in Exchange since we read it.
    #[error("the item changed in Exchange since calbridge last read it")]
    VersionConflict,
    /// The item or mailbox does not exist (any more).
    #[error("not found in Exchange: {0}")]
    NotFound(String),
    /// Credentials or permissions are wrong; retrying will not help. `hint` names the fix.
    #[error("authentication or permission failure: {}. Fix: {hint}", message.trim_end_matches('.'))]
    Auth { message: String, hint: String },
    /// A network failure or a server error; retrying may help.
    #[error("temporary failure talking to Exchange: {0}")]
    Transient(String),
    /// Exchange refused the request as invalid; retrying will not help.
    #[error("Exchange refused the request: {0}")]
    Permanent(String),
}

impl RemoteError {
    /// Whether a retry of the same request can succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(self, RemoteError::Throttled { .. } | RemoteError::Transient(_))
    }
}

/// An Exchange protocol adapter, bound to one connection.
#[async_trait]
pub trait Remote: Send + Sync {
    /// Checks that the mailbox exists and that calbridge may read it, with its display name.
    async fn mailbox(&self, email: &str) -> Result<MailboxInfo, RemoteError>;

    /// Checks that the mailbox exists and that calbridge may read its calendar, and nothing
    /// more: a link's verification, which needs no display name. By default [`Remote::mailbox`];
    /// an adapter whose `mailbox` takes more than one request overrides it.
    async fn verify_mailbox(&self, email: &str) -> Result<(), RemoteError> {
        self.mailbox(email).await.map(|_| ())
    }

    /// The mailbox's calendar folders.
    async fn list_calendars(&self, email: &str) -> Result<Vec<RemoteCalendar>, RemoteError>;

    /// One page of changes to the mailbox's default calendar within `window`. Without a
    /// cursor, a full listing starts (every item in the window arrives as an upsert).
    async fn changes(&self, email: &str, window: &Window, cursor: Option<&Cursor>) -> Result<ChangePage, RemoteError>;

    /// Reads items by id; ids that no longer exist are left out.
    async fn fetch(&self, email: &str, ids: &[String]) -> Result<Vec<RemoteItem>, RemoteError>;

    /// Applies one change. `Ok(None)` for a delete; `NotFound` for a delete means it is gone.
    async fn push(&self, email: &str, change: &PushChange) -> Result<Option<Confirmed>, RemoteError>;

    /// Applies several changes to independent events of one mailbox, answering each as
    /// [`Remote::push`] would, in order. Adapters that can carry several changes in one round
    /// trip (Graph's JSON batching) override it. The default pushes them one by one and stops
    /// after the first failure that is not about that change alone (throttling given up on,
    /// a transport or permission failure): the answers are then fewer than the changes, and
    /// the rest were not sent.
    async fn push_many(&self, email: &str, changes: &[PushChange]) -> Vec<Result<Option<Confirmed>, RemoteError>> {
        let mut answers = Vec::with_capacity(changes.len());
        for change in changes {
            let answer = self.push(email, change).await;
            let stop = matches!(
                &answer,
                Err(e) if !matches!(e, RemoteError::VersionConflict | RemoteError::NotFound(_) | RemoteError::Permanent(_))
            );
            answers.push(answer);
            if stop {
                break;
            }
        }
        answers
    }

    /// The mailbox declines a meeting it was invited to (a room releasing a booking): the
    /// organizer is told and the meeting leaves this mailbox's calendar; the organizer's meeting
    /// stays. `NotFound` when the item is gone; `Permanent` when the mailbox organises it.
    async fn decline(&self, email: &str, remote_id: &str, comment: &str) -> Result<(), RemoteError>;

    /// The organisation's rooms (EWS GetRoomLists/GetRooms, Graph `places`), each once, with
    /// the first room list it appears in.
    async fn rooms(&self) -> Result<Vec<RoomInfo>, RemoteError>;

    /// Whether Exchange can push change notifications to an HTTP endpoint over this protocol
    /// (Graph subscriptions); without, calbridge polls.
    fn pushes_notifications(&self) -> bool {
        false
    }

    /// Asks Exchange to POST a notification to `notification_url` for every change to the
    /// mailbox's events until `expires`, echoing `client_state` so the receiver can tell
    /// Exchange's notifications from forgeries.
    async fn subscribe(
        &self,
        email: &str,
        notification_url: &str,
        client_state: &str,
        expires: DateTime<Utc>,
    ) -> Result<RemoteSubscription, RemoteError> {
        let _ = (email, notification_url, client_state, expires);
        Err(RemoteError::Permanent("this protocol has no change-notification subscriptions; calbridge polls".into()))
    }

    /// Extends a subscription; `NotFound` when Exchange no longer has it.
    async fn renew(&self, email: &str, id: &str, expires: DateTime<Utc>) -> Result<DateTime<Utc>, RemoteError> {
        let _ = (email, id, expires);
        Err(RemoteError::Permanent("this protocol has no change-notification subscriptions".into()))
    }

    /// Ends a subscription (gone already is fine).
    async fn unsubscribe(&self, email: &str, id: &str) -> Result<(), RemoteError> {
        let _ = (email, id);
        Ok(())
    }

    /// Whether calbridge can read change notifications over connections it opens itself (EWS
    /// streaming and pull subscriptions); see [`Remote::watch`].
    fn watches_notifications(&self) -> bool {
        false
    }

    /// Starts watching the default calendars of `mailboxes` for changes, for as long as the
    /// returned [`Watch`] is kept (dropping it ends the watch). Its events say which
    /// mailboxes changed (or may have: events were lost, a connection broke) and how each is
    /// watched; a mailbox reported in [`WatchMode::Polling`] is not watched, and calbridge's
    /// scheduled sync covers it.
    async fn watch(&self, mailboxes: Vec<String>, options: WatchOptions) -> Result<Box<dyn Watch>, RemoteError> {
        let _ = (mailboxes, options);
        Err(RemoteError::Permanent(
            "this protocol has no notifications calbridge can read itself; calbridge polls".into(),
        ))
    }

    /// Time this adapter has waited so far because Exchange throttled it, inside its own
    /// retries (which the engine does not see). It only grows: a caller measures a run's waits
    /// as the difference before and after it.
    fn throttled_wait(&self) -> Duration {
        Duration::ZERO
    }
}

/// A change-notification subscription as Exchange made it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RemoteSubscription {
    pub id: String,
    pub expires: DateTime<Utc>,
}

/// How a watched mailbox learns of changes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WatchMode {
    /// Exchange streams notifications over a connection calbridge holds open.
    Streaming,
    /// calbridge asks Exchange for notifications at an interval.
    Pull,
    /// Not watched (Exchange refused the subscriptions): the scheduled sync polls it.
    Polling,
}

impl WatchMode {
    pub fn as_str(self) -> &'static str {
        match self {
            WatchMode::Streaming => "streaming",
            WatchMode::Pull => "pull",
            WatchMode::Polling => "polling",
        }
    }
}

/// What a [`Watch`] reports.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WatchEvent {
    /// These mailboxes' calendars changed, or may have (lost events, a subscription made
    /// again, a connection that broke): sync them. Duplicates are harmless.
    Changed(Vec<String>),
    /// These mailboxes are now watched in `mode`.
    Mode { mode: WatchMode, mailboxes: Vec<String> },
}

/// A running watch over mailboxes' calendars (see [`Remote::watch`]).
#[async_trait]
pub trait Watch: Send {
    /// The next event; `None` once the watch has ended.
    async fn next(&mut self) -> Option<WatchEvent>;
}

/// How a watch behaves.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WatchOptions {
    /// How often pull subscriptions are read, when streaming is refused.
    pub pull_interval: Duration,
    /// The most long-lived streaming connections one watch may hold to a server; mailboxes
    /// beyond what they carry use pull subscriptions.
    pub streaming_connections: usize,
    /// How long until a watch tries again what Exchange refused (streaming, subscriptions).
    pub retry_refused: Duration,
}

impl Default for WatchOptions {
    fn default() -> Self {
        WatchOptions {
            pull_interval: Duration::from_secs(15),
            streaming_connections: 2,
            retry_refused: Duration::from_secs(900),
        }
    }
}
