//! The `Remote` seam: what the engine needs from an Exchange protocol adapter.
//!
//! Implemented by `calbridge-graph` (and `calbridge-ews`). Every adapter classifies its
//! protocol's errors once, into [`RemoteError`]; the engine only ever sees the class.

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
    /// Checks that the mailbox exists and that calbridge may read it.
    async fn mailbox(&self, email: &str) -> Result<MailboxInfo, RemoteError>;

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
