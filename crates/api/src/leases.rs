//! Several workers on one database: each `calbridge serve` process claims a fair share of the
//! calendars with leases (`Store::claim_leases`: a heartbeat every third of the lease's
//! lifetime renews its own, gives up what is beyond its share, and claims what nobody holds
//! or what a stopped worker left), and syncs only those. Its commits are fenced
//! (`Store::commit_fenced`): once a calendar has passed to another worker, a late commit of
//! the old holder writes nothing. A worker that stops cleanly releases its leases at once; one
//! that is killed loses them when they expire, within one lease lifetime.
//!
//! With leases on, a sync asked for a calendar another worker holds is refused (409, naming
//! the holder's role), a notification for one is left to its holder's scheduled run, and only
//! held calendars get change-notification subscriptions from this worker.

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
