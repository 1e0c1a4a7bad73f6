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
//! - **EWS** ([`run_ews_notifications`]). EWS notifications are read by calbridge over
//!   connections it opens (no public URL): per EWS connection, one `Remote::watch` over the
//!   mailboxes of the calendars this worker may sync, kept in step with the links and leases
//!   every `subscription_check`. The adapter streams (one long-lived connection per 200
//!   mailboxes, within a small per-server budget), falls back to pull subscriptions when
//!   streaming is refused and to the scheduled sync when subscriptions are; each reported
//!   change queues its calendar. The mode of each connection is logged (info) when it changes
//!   and counted in `calbridge_ews_watched_calendars{mode}`.
//!
//! Calendars with a live subscription (or a streaming or pull EWS watch) are still reconciled every
//! `ApiConfig::reconcile_interval` (hourly by default) to catch anything a notification
//! missed; the others sync every `sync_interval` (see [`crate::sync::run_periodic`]).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use calbridge_core::connector::NotificationSignal;
use calbridge_core::model::CalendarId;
use calbridge_core::remote::{RemoteError, WatchEvent, WatchMode, WatchOptions};
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

/// A running EWS watch: what it covers and the task that reads it.
struct Watching {
    connection: calbridge_core::model::Connection,
    /// Mailbox (lower case) → its calendars.
    calendars: BTreeMap<String, Vec<CalendarId>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Watching {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Keeps one EWS watch per EWS connection over the calendars this worker may sync, for ever
/// (the caller aborts it on shutdown); returns at once unless `ApiConfig::ews_notifications`.
pub async fn run_ews_notifications(state: ApiState) {
    if !state.config().ews_notifications {
        return;
    }
    let mut running: BTreeMap<i64, Watching> = BTreeMap::new();
    loop {
        if let Err(e) = keep_ews_watches(&state, &mut running).await {
            tracing::warn!("EWS change notifications could not be checked: {e}");
        }
        tokio::time::sleep(state.config().subscription_check).await;
    }
}

async fn keep_ews_watches(
    state: &ApiState,
    running: &mut BTreeMap<i64, Watching>,
) -> Result<(), calbridge_core::store::StoreError> {
    let connections = state.store().connections().await?;
    let mut seen = BTreeSet::new();
    for conn in connections {
        let Ok(remote) = state.remote(&conn).await else { continue };
        if !remote.watches_notifications() {
            continue;
        }
        let mut calendars: BTreeMap<String, Vec<CalendarId>> = BTreeMap::new();
        for cal in state.store().calendars(Some(conn.id)).await? {
            if state.sync_right(cal.id) != crate::leases::SyncRight::Elsewhere {
                calendars.entry(cal.email.to_ascii_lowercase()).or_default().push(cal.id);
            }
        }
        if calendars.is_empty() {
            continue;
        }
        seen.insert(conn.id);
        if running.get(&conn.id).is_some_and(|w| w.calendars == calendars && w.connection == conn) {
            continue;
        }
        if let Some(old) = running.remove(&conn.id) {
            forget_modes(state, &old);
        }
        let options = WatchOptions {
            pull_interval: state.config().ews_pull_interval,
            streaming_connections: state.config().ews_streaming_connections,
            ..WatchOptions::default()
        };
        match remote.watch(calendars.keys().cloned().collect(), options).await {
            Ok(watch) => {
                let task = tokio::spawn(read_watch(state.clone(), conn.name.clone(), calendars.clone(), watch));
                running.insert(conn.id, Watching { connection: conn, calendars, task });
            }
            Err(e) => tracing::warn!(connection = %conn.name, "EWS change notifications could not start: {e}"),
        }
    }
    let gone: Vec<i64> = running.keys().filter(|id| !seen.contains(id)).copied().collect();
    for id in gone {
        if let Some(old) = running.remove(&id) {
            forget_modes(state, &old);
        }
    }
    publish_modes(state);
    Ok(())
}

fn forget_modes(state: &ApiState, w: &Watching) {
    let mut modes = state.watch_modes();
    for id in w.calendars.values().flatten() {
        modes.remove(id);
    }
}

fn publish_modes(state: &ApiState) {
    let mut counts: BTreeMap<&'static str, u64> = BTreeMap::new();
    for m in state.watch_modes().values() {
        *counts.entry(m.as_str()).or_default() += 1;
    }
    state.metrics().set_watched(counts);
}

/// Acts on one watch's events: changes queue their calendars; modes are recorded, and
/// logged when a connection's mix of modes changes.
async fn read_watch(
    state: ApiState,
    connection: String,
    calendars: BTreeMap<String, Vec<CalendarId>>,
    mut watch: Box<dyn calbridge_core::remote::Watch>,
) {
    let mut by_mailbox: BTreeMap<String, WatchMode> = BTreeMap::new();
    let mut logged: Option<BTreeMap<WatchMode, usize>> = None;
    while let Some(event) = watch.next().await {
        match event {
            WatchEvent::Changed(mailboxes) => {
                let mut n = 0;
                for m in mailboxes {
                    for id in calendars.get(&m.to_ascii_lowercase()).into_iter().flatten() {
                        state.sync_queue().push(*id);
                        n += 1;
                    }
                }
                state.metrics().ews_changes(n);
            }
            WatchEvent::Mode { mode, mailboxes } => {
                {
                    let mut modes = state.watch_modes();
                    for m in mailboxes {
                        let m = m.to_ascii_lowercase();
                        for id in calendars.get(&m).into_iter().flatten() {
                            modes.insert(*id, mode);
                        }
                        by_mailbox.insert(m, mode);
                    }
                }
                publish_modes(&state);
                let mut mix: BTreeMap<WatchMode, usize> = BTreeMap::new();
                for m in by_mailbox.values() {
                    *mix.entry(*m).or_default() += 1;
                }
                if logged.as_ref() != Some(&mix) {
                    let text: Vec<String> =
                        mix.iter().map(|(m, n)| format!("{} ({n} mailboxes)", m.as_str())).collect();
                    tracing::info!(connection = %connection, "EWS change notifications: {}", text.join(", "));
                    logged = Some(mix);
                }
            }
        }
    }
    // The watch ended: its calendars are polled until a new one starts.
    let mut modes = state.watch_modes();
    for id in calendars.values().flatten() {
        modes.remove(id);
    }
}

/// Whether a calendar learns of changes from an EWS watch (streaming or pull).
pub fn is_watched(state: &ApiState, calendar: CalendarId) -> bool {
    state.watch_modes().get(&calendar).is_some_and(|m| *m != WatchMode::Polling)
}
