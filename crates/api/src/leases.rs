//! Several workers on one database: each `calbridge serve` process claims a fair share of the
//! calendars with leases (`Store::claim_leases`: a heartbeat every third of the lease's
//! lifetime renews its own, gives up what is beyond its share, and claims what nobody holds
//! or what a stopped worker left), and syncs only those. Its commits are fenced
//! (`Store::commit_fenced`): once a calendar has passed to another worker, a late commit of
//! the old holder writes nothing. A worker that stops cleanly releases its leases at once; one
//! that is killed loses them when they expire, within one lease lifetime.
//!
//! With leases on, a sync asked of a worker for a calendar another worker holds (a "sync now"
//! through the API, a change notification, a host application's write) is passed to the
//! holder through the store (`Store::request_sync`); each worker takes the requests for its
//! calendars every [`FORWARD_POLL`] ([`run_forwarded`]) and syncs them. A "sync now" waits for
//! the holder's run and answers with it. Only held calendars get change-notification
//! subscriptions from this worker.

use std::time::Duration;

use chrono::Utc;

use crate::ApiState;

/// Whether this worker may sync a calendar.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SyncRight {
    /// No leases: this process syncs every calendar.
    Alone,
    /// This worker holds the calendar's lease; commits are fenced with it.
    Held(calbridge_core::store::Lease),
    /// Another worker holds it (or nobody, until a worker claims it).
    Elsewhere,
}

/// Claims and renews this worker's calendars for ever (the caller aborts it on shutdown).
/// Without `lease_ttl` it returns at once: the process syncs every calendar.
pub async fn run_leases(state: ApiState) {
    let Some(ttl) = state.config().lease_ttl else { return };
    let chrono_ttl = chrono::Duration::from_std(ttl).unwrap_or(chrono::Duration::seconds(30));
    let mut last_ok = Utc::now();
    loop {
        let now = Utc::now();
        match state.store().claim_leases(&state.config().worker_id, now, chrono_ttl, usize::MAX).await {
            Ok(leases) => {
                tracing::debug!(worker = %state.config().worker_id, calendars = leases.len(), "leases renewed");
                state.set_leases(leases);
                last_ok = now;
            }
            Err(e) => {
                tracing::warn!(worker = %state.config().worker_id, "leases could not be renewed: {e}");
                if now - last_ok >= chrono_ttl {
                    // They have expired by now: another worker may hold them.
                    state.set_leases(Vec::new());
                }
            }
        }
        tokio::time::sleep((ttl / 3).max(Duration::from_millis(100))).await;
    }
}

/// How often a worker takes the syncs other workers asked of it.
pub const FORWARD_POLL: Duration = Duration::from_millis(500);

/// Takes the sync requests for this worker's calendars (see the module header) every
/// [`FORWARD_POLL`] and queues them, for ever. Without `lease_ttl` it returns at once.
pub async fn run_forwarded(state: ApiState) {
    if state.config().lease_ttl.is_none() {
        return;
    }
    loop {
        match state.store().take_sync_requests(&state.config().worker_id, Utc::now()).await {
            Ok(calendars) => {
                for calendar in calendars {
                    tracing::debug!(worker = %state.config().worker_id, calendar, "a sync asked by another worker");
                    state.sync_queue().push(calendar);
                }
            }
            Err(e) => tracing::warn!("syncs asked by other workers could not be read: {e}"),
        }
        tokio::time::sleep(FORWARD_POLL).await;
    }
}

/// Gives this worker's calendars up (a clean shutdown).
pub async fn release(state: &ApiState) {
    if state.config().lease_ttl.is_none() {
        return;
    }
    state.set_leases(Vec::new());
    if let Err(e) = state.store().release_leases(&state.config().worker_id, Utc::now()).await {
        tracing::warn!("leases could not be released (they expire on their own): {e}");
    }
}
