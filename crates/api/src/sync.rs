//! Running syncs for the API and the periodic loop: one run per calendar at a time (a lock per
//! calendar), each recorded as the calendar's `SyncStatus` with an actionable hint, counted in
//! the metrics, and, when Exchange refused the connection's credentials, reported with a
//! `connection.failed` webhook message (at most one per connection and hour).

use std::sync::Arc;
use std::time::Duration;

use calbridge_core::model::{Calendar, Connection};
use calbridge_core::store::SyncStatus;
use calbridge_engine::limit::CALENDARS_PER_SLOT;
use calbridge_engine::CalendarReport;
use chrono::Utc;
use tokio::sync::Semaphore;

use crate::error::{ApiError, ApiResult};
use crate::leases::SyncRight;
use crate::ApiState;

/// Splits an engine error into what failed and what to do.
pub fn error_and_hint(error: &str) -> (String, Option<String>) {
    if let Some((what, fix)) = error.split_once(" Fix: ") {
        return (what.trim_end_matches('.').to_string(), Some(fix.to_string()));
    }
    let e = error.to_ascii_lowercase();
    let hint = if e.contains("throttling") || e.contains("temporary failure") {
        "none needed if it is rare: calbridge retries at the next run; if it persists, check Exchange's health and \
         lower the connection's max_threads"
    } else if e.contains("no secret") {
        "set the connection's secret (PUT /connections/{id} with `secret`)"
    } else if e.contains("database") || e.contains("store failed") {
        "check the database file (disk space, permissions)"
    } else {
        "run the connection test (POST /connections/{id}/test) for a diagnosis"
    };
    (error.to_string(), Some(hint.to_string()))
}

fn status_of(report: &CalendarReport) -> SyncStatus {
    let (state, error, hint) = match (&report.error, &report.paused) {
        (Some(e), _) => {
            let (e, h) = error_and_hint(e);
            ("failed", Some(e), h)
        }
        (None, Some(p)) => (
            "paused",
            Some(p.clone()),
            Some(
                "check the deletions in Exchange; if they are real, raise sync.delete_guard_min or \
                  sync.delete_guard_fraction and sync again"
                    .to_string(),
            ),
        ),
        (None, None) => ("ok", None, None),
    };
    SyncStatus {
        calendar_id: report.calendar_id,
        last_run: Utc::now(),
        state: state.into(),
        error,
        hint,
        pulled: report.pulled.total(),
        pushed: report.pushed.total(),
        duration_ms: report.duration.as_millis() as u64,
        throttled_ms: report.throttled_wait.as_millis() as u64,
    }
}

async fn record(state: &ApiState, conn: &Connection, report: &CalendarReport) -> ApiResult<SyncStatus> {
    let status = status_of(report);
    state.metrics().sync_run(
        &status.state,
        report.error.as_deref(),
        status.pulled,
        status.pushed,
        report.throttled_wait,
    );
    if let Some(e) = &report.error {
        tracing::warn!(mailbox = %report.email, "sync failed: {e}");
        if crate::metrics::error_class(e) == "auth" {
            let hour = Utc::now().format("%Y%m%d%H");
            let data = serde_json::json!({
                "connection_id": conn.id,
                "name": conn.name,
                "calendar_id": report.calendar_id,
                "email": report.email,
                "error": status.error,
                "hint": status.hint,
            });
            let id = format!("msg_connection_failed_{}_{hour}", conn.id);
            let note = crate::webhooks::message_with_id(id, "connection.failed", data, Utc::now());
            state.store().enqueue(&state.subscribed(vec![note])).await?;
            state.outbox_changed();
        }
    }
    state.store().set_sync_status(&status).await?;
    Ok(status)
}

/// Syncs one calendar now and records the outcome. Waits while another run of the same
/// calendar is in progress.
pub async fn sync_calendar(state: &ApiState, calendar_id: i64) -> ApiResult<SyncStatus> {
    if state.sync_right(calendar_id) == SyncRight::Elsewhere {
        return forward(state, calendar_id).await;
    }
    let lock = state.calendar_lock(calendar_id);
    let _guard = lock.lock().await;
    // Read after the lock: a disconnect may have removed it meanwhile.
    let cal: Calendar = state
        .store()
        .calendar(calendar_id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("calendar {calendar_id}")))?;
    let conn = state
        .store()
        .connection(cal.connection_id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("connection {}", cal.connection_id)))?;
    let now = Utc::now();
    let engine = match state.sync_right(calendar_id) {
        SyncRight::Alone => state.engine().clone(),
        SyncRight::Held(lease) => state.engine().with_lease(lease, now),
        // Passed to another worker while this one waited for the lock.
        SyncRight::Elsewhere => return forward(state, calendar_id).await,
    };
    let started = std::time::Instant::now();
    let mut report = match state.remote(&conn).await {
        Ok(remote) => {
            let waited = remote.throttled_wait();
            let mut r = engine.verify_and_sync(remote.as_ref(), cal.clone(), now).await;
            // Waits inside the adapter's own retries, which the engine does not see (the
            // adapter is shared by the connection's syncs: its waits during this run).
            r.throttled_wait += remote.throttled_wait().saturating_sub(waited);
            r
        }
        Err(e) => {
            let mut r = CalendarReport::new(&cal);
            r.error = Some(e.detail);
            r
        }
    };
    report.duration = started.elapsed();
    tracing::debug!(
        worker = %state.config().worker_id,
        mailbox = %cal.email,
        pulled = report.pulled.total(),
        pushed = report.pushed.total(),
        ok = report.error.is_none(),
        "calendar synced"
    );
    // The sync may have queued messages with its changes.
    state.outbox_changed();
    record(state, &conn, &report).await
}

/// A calendar another worker holds: asks its holder to sync it (`Store::request_sync`; the
/// holder takes such requests every [`crate::leases::FORWARD_POLL`]) and waits, up to a lease's
/// lifetime, for the run to be recorded, then answers with it. Run times are compared as the
/// holder recorded them, so the workers' clocks need not agree.
async fn forward(state: &ApiState, calendar_id: i64) -> ApiResult<SyncStatus> {
    let before = state.store().sync_status(calendar_id).await?.map(|s| s.last_run);
    state.store().request_sync(calendar_id, Utc::now()).await?;
    let wait = state.config().lease_ttl.unwrap_or(Duration::from_secs(30)).max(Duration::from_secs(5));
    let deadline = std::time::Instant::now() + wait;
    loop {
        if let Some(status) = state.store().sync_status(calendar_id).await? {
            if Some(status.last_run) != before {
                return Ok(status);
            }
        }
        if std::time::Instant::now() >= deadline {
            return Err(ApiError::conflict(format!(
                "calendar {calendar_id} is synced by another calbridge worker sharing this database (worker {} does \
                 not hold it); that worker was asked to sync it now but has not recorded a run within {} s. It \
                 syncs it at its next run; see GET /calendars/{calendar_id}/sync",
                state.config().worker_id,
                wait.as_secs()
            )));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Syncs every calendar of a connection, with at most its `max_threads` requests in flight.
pub async fn sync_connection(state: &ApiState, conn: &Connection) -> ApiResult<Vec<SyncStatus>> {
    sync_calendars_of(state, conn, |_| true).await
}

/// Syncs the calendars of a connection that `due` picks, with at most `max_threads` requests in
/// flight.
async fn sync_calendars_of(
    state: &ApiState,
    conn: &Connection,
    due: impl Fn(&Calendar) -> bool,
) -> ApiResult<Vec<SyncStatus>> {
    let calendars: Vec<Calendar> =
        state.store().calendars(Some(conn.id)).await?.into_iter().filter(|c| due(c)).collect();
    // The connection's adapter keeps its requests in flight to `max_threads`; four times as
    // many calendars at once, so that calendars' reading and storing overlap others' requests.
    let limit = Arc::new(Semaphore::new(conn.max_threads.max(1) as usize * CALENDARS_PER_SLOT));
    let mut tasks = tokio::task::JoinSet::new();
    for cal in calendars {
        let (state, limit) = (state.clone(), limit.clone());
        tasks.spawn(async move {
            let _permit = limit.acquire_owned().await.expect("never closed");
            sync_calendar(&state, cal.id).await
        });
    }
    let mut out = Vec::new();
    while let Some(joined) = tasks.join_next().await {
        match joined {
            Ok(Ok(s)) => out.push(s),
            // Unlinked while waiting: nothing to report.
            Ok(Err(e)) if e.status == axum::http::StatusCode::NOT_FOUND => {}
            Ok(Err(e)) => return Err(e),
            Err(e) => return Err(ApiError::internal(format!("a sync task failed: {e}"))),
        }
    }
    out.sort_by_key(|s| s.calendar_id);
    Ok(out)
}

/// Syncs every connection, then waits `interval`, for ever (the caller aborts it on shutdown).
/// A calendar with a live change-notification subscription (Graph) or a streaming or pull EWS
/// watch is only reconciled, when its last run is older than `reconcile_interval`:
/// notifications bring its changes meanwhile.
pub async fn run_periodic(state: ApiState, interval: Duration) {
    loop {
        let held = state.store().subscriptions().await.unwrap_or_default();
        let statuses = state.store().sync_statuses().await.unwrap_or_default();
        let reconcile = chrono::Duration::from_std(state.config().reconcile_interval).unwrap_or(chrono::Duration::MAX);
        let now = Utc::now();
        let due = |cal: &Calendar| {
            if state.sync_right(cal.id) == SyncRight::Elsewhere {
                return false; // another worker's
            }
            if !crate::notifications::is_live(&held, cal.id) && !crate::notifications::is_watched(&state, cal.id) {
                return true;
            }
            statuses.iter().find(|s| s.calendar_id == cal.id).is_none_or(|s| now - s.last_run >= reconcile)
        };
        match state.store().connections().await {
            Ok(conns) => {
                for c in conns {
                    if let Err(e) = sync_calendars_of(&state, &c, due).await {
                        tracing::warn!(connection = %c.name, "periodic sync failed: {}", e.detail);
                    }
                }
            }
            Err(e) => tracing::warn!("periodic sync cannot list connections: {e}"),
        }
        tokio::time::sleep(interval).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_with_a_fix_are_split_and_others_get_a_hint() {
        let (e, h) = error_and_hint("authentication or permission failure: bad secret. Fix: paste the Value");
        assert_eq!(e, "authentication or permission failure: bad secret");
        assert_eq!(h.as_deref(), Some("paste the Value"));
        let (_, h) = error_and_hint("temporary failure talking to Exchange: reset");
        assert!(h.unwrap().contains("retries"));
    }
}
