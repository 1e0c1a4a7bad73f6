//! Change notifications: Exchange tells calbridge when a calendar changed, so changes arrive
//! in seconds instead of at the next scheduled sync.
//!
//! - **Subscriptions** ([`run_subscriptions`]). With a public URL configured
//!   (`ApiConfig::public_url`), calbridge keeps one subscription per linked calendar of every
//!   connection whose protocol pushes notifications (Graph): made where missing (Graph first
//!   validates the URL: [`receive`] echoes its `validationToken`), renewed when less than a
//!   third of its lifetime is left, made anew when Exchange lost it. Each has its own random
//!   `clientState`; the store keeps only its SHA-256.
//! - **The endpoint** ([`receive`], `POST /notifications/graph`, the one route without an API
//!   key). Every notification must name a subscription calbridge holds and carry its
//!   `clientState`; others are dropped and counted (`calbridge_notifications_total`). It
//!   answers `202` at once, after queueing the work: Graph wants an answer within 3 seconds.
//! - **The queue** ([`SyncQueue`], [`run_sync_queue`]). A change queues its calendar for a
//!   sync; a calendar queued many times (Graph delivers at least once, in no promised order,
//!   and in batches) syncs once. A sync reads Exchange's changes since its cursor, so a
//!   duplicated or reordered notification is harmless. Lifecycle notifications:
//!   `reauthorizationRequired` renews now, `subscriptionRemoved` subscribes again and syncs,
//!   `missed` syncs.
//!
//! Calendars with a live subscription are still reconciled every
//! `ApiConfig::reconcile_interval` (hourly by default) to catch anything a notification
//! missed; the others sync every `sync_interval` (see [`crate::sync::run_periodic`]).

use std::collections::BTreeSet;
use std::sync::Mutex;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use calbridge_core::connector::NotificationSignal;
use calbridge_core::model::CalendarId;
use calbridge_core::remote::RemoteError;
use calbridge_core::store::NotificationSubscription;
use chrono::Utc;
use tokio::sync::Notify;

use crate::auth::hash_token;
use crate::ApiState;

/// The path Exchange POSTs Graph change notifications to.
pub const GRAPH_PATH: &str = "/notifications/graph";
/// How long a subscription is asked for (Graph allows Outlook events just under seven days).
pub const LIFETIME: chrono::Duration = chrono::Duration::days(3);

/// Calendars waiting for a notification-triggered sync, and the wake-ups.
#[derive(Default)]
pub struct SyncQueue {
    pending: Mutex<BTreeSet<CalendarId>>,
    work: Notify,
    keeper: Notify,
}

impl SyncQueue {
    /// Queues a calendar (once, however often it is asked).
    pub fn push(&self, calendar: CalendarId) {
        self.pending.lock().expect("queue lock").insert(calendar);
        self.work.notify_one();
    }

    fn take(&self) -> Vec<CalendarId> {
        std::mem::take(&mut *self.pending.lock().expect("queue lock")).into_iter().collect()
    }

    /// Wakes the subscription keeper (a subscription must be renewed or made now).
    pub fn wake_keeper(&self) {
        self.keeper.notify_one();
    }
}

/// `{public_url}/notifications/graph`.
pub fn notification_url(public_url: &str) -> String {
    format!("{}{GRAPH_PATH}", public_url.trim_end_matches('/'))
}

fn text(status: StatusCode, body: String) -> Response {
    (status, [(header::CONTENT_TYPE, "text/plain; charset=utf-8")], body).into_response()
}

/// `POST /notifications/graph`: Graph's validation request (echo `validationToken`), or a
/// batch of notifications (each checked against its subscription's `clientState`, then
/// queued; `202 Accepted`). Never needs an API key; never says why a notification was
/// dropped.
pub async fn receive(State(state): State<ApiState>, uri: Uri, body: Bytes) -> Response {
    let token = uri.query().and_then(|q| {
        url::form_urlencoded::parse(q.as_bytes()).find(|(k, _)| k == "validationToken").map(|(_, v)| v.into_owned())
    });
    if let Some(token) = token {
        // The decoded token, as text, within 10 seconds: that is the whole handshake.
        return text(StatusCode::OK, token);
    }
    let parsed = state.connector("graph").ok().and_then(|c| c.read_notifications(&body));
    let batch = match parsed {
        Some(Ok(b)) => b,
        Some(Err(e)) => {
            state.metrics().notification("malformed");
            tracing::warn!("a notification body could not be read: {e}");
            return text(StatusCode::BAD_REQUEST, "not a change notification collection".into());
        }
        None => return text(StatusCode::NOT_FOUND, "this server takes no Graph notifications".into()),
    };
    for n in &batch {
        let Some(id) = n.subscription_id.as_deref() else {
            state.metrics().notification("unknown");
            continue;
        };
        let sub = match state.store().subscription(id).await {
            Ok(Some(s)) => s,
            Ok(None) => {
                state.metrics().notification("unknown");
                tracing::debug!(subscription = id, "a notification for a subscription calbridge does not hold");
                continue;
            }
            Err(e) => {
                // Not persisted: Graph retries on 5xx.
                tracing::warn!("notifications cannot be checked: {e}");
                return text(StatusCode::SERVICE_UNAVAILABLE, "try again".into());
            }
        };
        let given = hash_token(n.client_state.as_deref().unwrap_or_default());
        if !constant_time_eq(given.as_bytes(), sub.client_state_hash.as_bytes()) {
            state.metrics().notification("rejected");
            tracing::warn!(subscription = id, "a notification with a wrong clientState was dropped");
            continue;
        }
        state.metrics().notification("accepted");
        match n.signal {
            NotificationSignal::Changed => state.sync_queue().push(sub.calendar_id),
            NotificationSignal::Reauthorize => {
                // Due now: the keeper renews it.
                let due = NotificationSubscription { expires_at: Utc::now() + chrono::Duration::seconds(30), ..sub };
                let _ = state.store().put_subscription(&due).await;
                state.sync_queue().wake_keeper();
            }
            NotificationSignal::Removed => {
                let _ = state.store().delete_subscription(&sub.id).await;
                state.sync_queue().wake_keeper();
                state.sync_queue().push(sub.calendar_id);
            }
        }
    }
    StatusCode::ACCEPTED.into_response()
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Syncs the calendars notifications queued, for ever (the caller aborts it on shutdown). At
/// most four at a time; each calendar's runs are serialised by its lock.
pub async fn run_sync_queue(state: ApiState) {
    let limit = std::sync::Arc::new(tokio::sync::Semaphore::new(4));
    loop {
        state.sync_queue().work.notified().await;
        for calendar in state.sync_queue().take() {
            if state.sync_right(calendar) == crate::leases::SyncRight::Elsewhere {
                // Another worker's calendar: its holder syncs it (without this one waiting).
                if let Err(e) = state.store().request_sync(calendar, Utc::now()).await {
                    tracing::debug!(calendar, "a notified sync could not be passed on: {e}");
                }
                continue;
            }
            let permit = limit.clone().acquire_owned().await.expect("semaphore never closes");
            let state = state.clone();
            tokio::spawn(async move {
                let _permit = permit;
                if let Err(e) = crate::sync::sync_calendar(&state, calendar).await {
                    tracing::debug!(calendar, "a notified sync did not run: {}", e.detail);
                }
            });
        }
    }
}

/// A fresh `clientState`: 32 random bytes, base64url.
fn client_state() -> String {
    let mut bytes = [0u8; 32];
    bytes[..16].copy_from_slice(uuid::Uuid::new_v4().as_bytes());
    bytes[16..].copy_from_slice(uuid::Uuid::new_v4().as_bytes());
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// Keeps the subscriptions (see the module header) while a public URL is configured, for
/// ever; checks every `subscription_check`, or at once when woken.
pub async fn run_subscriptions(state: ApiState) {
    let Some(public) = state.config().public_url.clone() else { return };
    let url = notification_url(&public);
    loop {
        if let Err(e) = keep_subscriptions(&state, &url).await {
            tracing::warn!("change-notification subscriptions could not be checked: {e}");
        }
        tokio::select! {
            _ = tokio::time::sleep(state.config().subscription_check) => {}
            _ = state.sync_queue().keeper.notified() => {}
        }
    }
}

/// One pass: every calendar of a connection that pushes notifications has a live
/// subscription afterwards, unless Exchange refused (logged; tried again next pass).
pub async fn keep_subscriptions(state: &ApiState, url: &str) -> Result<(), calbridge_core::store::StoreError> {
    let held = state.store().subscriptions().await?;
    let now = Utc::now();
    for conn in state.store().connections().await? {
        let Ok(remote) = state.remote(&conn).await else { continue };
        if !remote.pushes_notifications() {
            continue;
        }
        for cal in state.store().calendars(Some(conn.id)).await? {
            if state.sync_right(cal.id) == crate::leases::SyncRight::Elsewhere {
                continue; // its holder keeps its subscription
            }
            let current = held.iter().find(|s| s.calendar_id == cal.id);
            if let Some(s) = current {
                let left = s.expires_at - now;
                if left > LIFETIME / 3 {
                    continue;
                }
                if left > chrono::Duration::zero() {
                    match remote.renew(&cal.email, &s.id, now + LIFETIME).await {
                        Ok(expires) => {
                            let renewed = NotificationSubscription { expires_at: expires, ..s.clone() };
                            state.store().put_subscription(&renewed).await?;
                            continue;
                        }
                        Err(RemoteError::NotFound(_)) => {}
                        Err(e) => {
                            tracing::warn!(mailbox = %cal.email, "a subscription could not be renewed: {e}");
                            continue;
                        }
                    }
                }
                let _ = remote.unsubscribe(&cal.email, &s.id).await;
                state.store().delete_subscription(&s.id).await?;
            }
            let secret = client_state();
            match remote.subscribe(&cal.email, url, &secret, now + LIFETIME).await {
                Ok(made) => {
                    let sub = NotificationSubscription {
                        calendar_id: cal.id,
                        id: made.id,
                        client_state_hash: hash_token(&secret),
                        expires_at: made.expires,
                    };
                    state.store().put_subscription(&sub).await?;
                    // Whatever changed before the subscription existed.
                    state.sync_queue().push(cal.id);
                    tracing::info!(mailbox = %cal.email, "subscribed to change notifications");
                }
                Err(e) => tracing::warn!(mailbox = %cal.email, "could not subscribe to change notifications: {e}"),
            }
        }
    }
    Ok(())
}

/// Whether a calendar has a subscription that has not expired.
pub fn is_live(held: &[NotificationSubscription], calendar: CalendarId) -> bool {
    held.iter().any(|s| s.calendar_id == calendar && s.expires_at > Utc::now())
}
