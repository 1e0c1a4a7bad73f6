//! Outbound webhooks, the Standard Webhooks way.
//!
//! A message ([`Notification`]) is `{"type", "timestamp", "data"}`, with an id `msg_…` that
//! the receiver uses to deduplicate (delivery is at-least-once). Each endpoint has a signing
//! secret `whsec_<base64 of 32 random bytes>`; a delivery is a POST with the headers
//! `webhook-id`, `webhook-timestamp` (Unix seconds) and
//! `webhook-signature: v1,<base64 of HMAC-SHA256(key, "{id}.{timestamp}.{body}")>`.
//!
//! The worker ([`run_worker`]) takes due deliveries from the store, sends them, and records
//! each attempt: 2xx is delivered; anything else is retried after `base · 2^attempts` (at most
//! six hours) until `webhook_max_attempts`, then failed. It wakes when a message is queued and
//! otherwise polls every second. Ended deliveries are kept a week, then forgotten.

use std::time::Duration;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use calbridge_core::model::Secret;
use calbridge_core::store::{Delivery, DeliveryOutcome, Notification, SecretOwner};
use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use sha2::Sha256;

use calbridge_core::model::{AttendeeRole, Calendar, Event, Origin, ResponseStatus};
use calbridge_core::policy::{present, FreeBusyPolicy};
use calbridge_engine::Notifier;

use crate::metrics::Attempt;
use crate::ApiState;

/// The message types an endpoint can subscribe to.
pub const EVENT_TYPES: &[&str] =
    &["event.created", "event.updated", "event.deleted", "booking.accepted", "booking.declined", "connection.failed"];

/// The JSON body of a message.
pub fn body(event_type: &str, at: DateTime<Utc>, data: &serde_json::Value) -> String {
    serde_json::json!({
        "type": event_type,
        "timestamp": at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        "data": data,
    })
    .to_string()
}

/// A new message with a fresh id.
pub fn message(event_type: &str, data: serde_json::Value, now: DateTime<Utc>) -> Notification {
    message_with_id(format!("msg_{}", uuid::Uuid::new_v4().simple()), event_type, data, now)
}

/// A message with a chosen id (queuing an id twice sends it once).
pub fn message_with_id(id: String, event_type: &str, data: serde_json::Value, now: DateTime<Utc>) -> Notification {
    Notification { id, event_type: event_type.into(), created_at: now, payload: body(event_type, now, &data) }
}

/// A new signing secret: `whsec_` and base64 of 32 random bytes.
pub fn new_secret() -> Secret {
    Secret::new(format!("whsec_{}", B64.encode(crate::auth::random_bytes::<32>())))
}

/// The key bytes of a `whsec_` secret.
pub fn key_of(secret: &Secret) -> Option<Vec<u8>> {
    B64.decode(secret.expose().strip_prefix("whsec_")?).ok()
}

/// `v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">`.
pub fn sign(key: &[u8], id: &str, timestamp: i64, body: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes keys of any length");
    mac.update(format!("{id}.{timestamp}.{body}").as_bytes());
    format!("v1,{}", B64.encode(mac.finalize().into_bytes()))
}

/// When the attempt after `attempts` failed ones is due.
pub fn backoff(base: Duration, attempts: u32) -> Duration {
    let cap = Duration::from_secs(6 * 3600);
    base.checked_mul(1u32 << attempts.min(20)).unwrap_or(cap).min(cap)
}

/// The messages a sync's changes produce (the API's own changes queue theirs in the handlers):
/// - an Exchange event that arrives, changes or goes: `event.created`, `event.updated`,
///   `event.deleted` (as a reader may see it: masked for "busy only" calendars);
/// - a room or equipment mailbox answering a local event's booking: `booking.accepted` or
///   `booking.declined`, one per resource whose answer changed;
/// - a local event deleted in Exchange: `event.deleted`.
///
/// Events the free/busy policy hides (Free, cancelled) produce nothing.
pub struct EventNotifier {
    pub policy: FreeBusyPolicy,
    pub subscriptions: Subscriptions,
}

/// The message types some endpoint subscribes to. Messages nobody subscribes to are not
/// queued, so the outbox holds only what will be delivered.
#[derive(Clone, Default)]
pub struct Subscriptions(std::sync::Arc<std::sync::RwLock<std::collections::HashSet<String>>>);

impl Subscriptions {
    pub fn wants(&self, event_type: &str) -> bool {
        self.0.read().expect("subscriptions lock").contains(event_type)
    }
    pub fn set(&self, types: impl IntoIterator<Item = String>) {
        *self.0.write().expect("subscriptions lock") = types.into_iter().collect();
    }
    /// Keeps only the messages someone subscribes to.
    pub fn filter(&self, mut notes: Vec<Notification>) -> Vec<Notification> {
        notes.retain(|n| self.wants(&n.event_type));
        notes
    }
}

impl Notifier for EventNotifier {
    fn notify(&self, cal: &Calendar, before: Option<&Event>, after: Option<&Event>) -> Vec<Notification> {
        self.subscriptions.filter(self.messages(cal, before, after))
    }
}

impl EventNotifier {
    fn messages(&self, cal: &Calendar, before: Option<&Event>, after: Option<&Event>) -> Vec<Notification> {
        let now = Utc::now();
        let view =
            |e: &Event| serde_json::to_value(crate::dto::EventView::from(&present(cal, e))).expect("views serialise");
        let shown = |e: &Event| !e.deleted && self.policy.visible(&e.data);
        let gone = |e: &Event| serde_json::json!({"id": e.id.as_str(), "calendar_id": cal.id});
        match (before, after) {
            (None, Some(e)) if e.origin == Origin::Exchange && shown(e) => vec![message("event.created", view(e), now)],
            (Some(b), Some(e)) if e.origin == Origin::Exchange && b.data != e.data => match (shown(b), shown(e)) {
                (_, true) => vec![message("event.updated", view(e), now)],
                (true, false) => vec![message("event.deleted", gone(e), now)],
                (false, false) => vec![],
            },
            (Some(b), None) if !b.deleted && shown(b) => vec![message("event.deleted", gone(b), now)],
            (Some(b), Some(e)) if e.origin == Origin::Local => {
                let mut out = Vec::new();
                for a in e.data.attendees.iter().filter(|a| a.role == AttendeeRole::Resource) {
                    let was = b.data.resource_response(&a.email);
                    let kind = match a.response {
                        ResponseStatus::Accepted => "booking.accepted",
                        ResponseStatus::Declined => "booking.declined",
                        _ => continue,
                    };
                    if was != Some(a.response) {
                        let data = serde_json::json!({"resource": a.email, "response": kind.trim_start_matches("booking."), "event": view(e)});
                        out.push(message(kind, data, now));
                    }
                }
                out
            }
            _ => vec![],
        }
    }
}

async fn attempt(state: &ApiState, d: &Delivery, now: DateTime<Utc>) -> Result<(), String> {
    let host = url::Url::parse(&d.url).ok().and_then(|u| u.host_str().map(str::to_string)).unwrap_or_default();
    if !state.host_allowed(&host) {
        return Err(format!("the host {host} is not among the allowed outbound hosts"));
    }
    let secret =
        state.master_key().open(&SecretOwner::Webhook(d.webhook_id.clone()), &d.secret).map_err(|e| e.to_string())?;
    let key = key_of(&secret).ok_or("the stored signing secret is not a whsec_ secret")?;
    let ts = now.timestamp();
    let res = state
        .http()
        .post(&d.url)
        .header("content-type", "application/json")
        .header("webhook-id", &d.message_id)
        .header("webhook-timestamp", ts.to_string())
        .header("webhook-signature", sign(&key, &d.message_id, ts, &d.payload))
        .body(d.payload.clone())
        .send()
        .await
        .map_err(|e| format!("no answer from the endpoint: {}", e.without_url()))?;
    if res.status().is_success() {
        Ok(())
    } else {
        Err(format!("the endpoint answered HTTP {}", res.status().as_u16()))
    }
}

/// Sends every delivery due at `now` once; returns how many were attempted.
pub async fn deliver_due(state: &ApiState, now: DateTime<Utc>) -> Result<usize, calbridge_core::store::StoreError> {
    let due = state.store().due_deliveries(now, 50).await?;
    let cfg = state.config();
    for d in &due {
        let outcome = match attempt(state, d, now).await {
            Ok(()) => {
                state.metrics().webhook_attempt(Attempt::Delivered);
                DeliveryOutcome::Delivered { at: Utc::now() }
            }
            Err(error) if d.attempts + 1 >= cfg.webhook_max_attempts => {
                tracing::warn!(webhook = %d.webhook_id, message = %d.message_id, "giving up on a delivery: {error}");
                state.metrics().webhook_attempt(Attempt::Failed);
                DeliveryOutcome::Failed { error }
            }
            Err(error) => {
                tracing::info!(webhook = %d.webhook_id, message = %d.message_id, "delivery failed, retrying later: {error}");
                state.metrics().webhook_attempt(Attempt::Retry);
                let wait = backoff(cfg.webhook_retry_base, d.attempts);
                let next_attempt = now + chrono::Duration::from_std(wait).unwrap_or(chrono::Duration::hours(6));
                DeliveryOutcome::Retry { next_attempt, error }
            }
        };
        state.store().record_delivery(d.id, &outcome).await?;
    }
    Ok(due.len())
}

/// How long ended deliveries are kept (for the metrics and for looking into failures).
pub const KEEP_ENDED: chrono::Duration = chrono::Duration::days(7);

/// Delivers for ever (the caller aborts it on shutdown); once an hour, forgets deliveries that
/// ended more than [`KEEP_ENDED`] ago.
pub async fn run_worker(state: ApiState) {
    let mut pruned_at: Option<DateTime<Utc>> = None;
    loop {
        let now = Utc::now();
        if pruned_at.is_none_or(|t| now - t > chrono::Duration::hours(1)) {
            match state.store().prune_deliveries(now - KEEP_ENDED).await {
                Ok(n) if n > 0 => tracing::info!("forgot {n} webhook deliveries that ended over a week ago"),
                Ok(_) => {}
                Err(e) => tracing::warn!("pruning webhook deliveries: {e}"),
            }
            pruned_at = Some(now);
        }
        match deliver_due(&state, Utc::now()).await {
            Ok(n) if n > 0 => continue,
            Ok(_) => {}
            Err(e) => tracing::warn!("webhook delivery: {e}"),
        }
        state.outbox_wait(Duration::from_secs(1)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_follow_standard_webhooks() {
        // The Standard Webhooks specification's own example.
        let secret = Secret::new("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw");
        let key = key_of(&secret).unwrap();
        let body = r#"{"test": 2432232314}"#;
        assert_eq!(
            sign(&key, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
    }

    #[test]
    fn secrets_are_fresh_and_backoff_doubles_up_to_a_cap() {
        let (a, b) = (new_secret(), new_secret());
        assert_ne!(a, b);
        assert_eq!(key_of(&a).unwrap().len(), 32);
        let base = Duration::from_secs(10);
        assert_eq!(backoff(base, 0), Duration::from_secs(10));
        assert_eq!(backoff(base, 3), Duration::from_secs(80));
        assert_eq!(backoff(base, 40), Duration::from_secs(6 * 3600));
    }

    #[test]
    fn messages_carry_type_timestamp_and_data() {
        let n = message("event.created", serde_json::json!({"id": "e1"}), Utc::now());
        assert!(n.id.starts_with("msg_"));
        let v: serde_json::Value = serde_json::from_str(&n.payload).unwrap();
        assert_eq!((v["type"].as_str(), v["data"]["id"].as_str()), (Some("event.created"), Some("e1")));
    }

    fn calendar() -> Calendar {
        Calendar {
            id: 7,
            email: "room1@example.org".into(),
            kind: calbridge_core::model::CalendarKind::Room,
            display_name: "Room 1".into(),
            connection_id: 1,
            site_id: None,
            busy_only: true,
            link: calbridge_core::model::LinkState::Verified,
        }
    }

    fn event(origin: Origin, subject: &str, room: ResponseStatus) -> Event {
        let t = chrono::DateTime::from_timestamp(1_800_000_000, 0).unwrap();
        let mut data = calbridge_core::model::EventData::new(subject, t, t + chrono::Duration::hours(1));
        data.attendees.push(calbridge_core::model::Attendee {
            email: "room1@example.org".into(),
            name: "Room 1".into(),
            role: AttendeeRole::Resource,
            response: room,
        });
        Event {
            id: calbridge_core::model::EventId::new("e1"),
            calendar_id: 7,
            origin,
            data,
            version: 1,
            deleted: false,
        }
    }

    fn notifier(types: &[&str]) -> EventNotifier {
        let subscriptions = Subscriptions::default();
        subscriptions.set(types.iter().map(|t| t.to_string()));
        EventNotifier { policy: FreeBusyPolicy::default(), subscriptions }
    }

    fn types(notes: &[Notification]) -> Vec<&str> {
        notes.iter().map(|n| n.event_type.as_str()).collect()
    }

    #[test]
    fn sync_changes_become_the_subscribed_messages() {
        let n = notifier(EVENT_TYPES);
        let cal = calendar();
        let theirs = event(Origin::Exchange, "Salary review", ResponseStatus::None);
        let created = n.notify(&cal, None, Some(&theirs));
        assert_eq!(types(&created), ["event.created"]);
        assert!(!created[0].payload.contains("Salary review"), "a busy-only calendar's event is masked");
        let moved = Event {
            data: calbridge_core::model::EventData { location: "B".into(), ..theirs.data.clone() },
            ..theirs.clone()
        };
        assert_eq!(types(&n.notify(&cal, Some(&theirs), Some(&moved))), ["event.updated"]);
        assert!(n.notify(&cal, Some(&theirs), Some(&theirs)).is_empty(), "no change, no message");
        assert_eq!(types(&n.notify(&cal, Some(&theirs), None)), ["event.deleted"]);

        let ours = event(Origin::Local, "Class", ResponseStatus::None);
        let accepted = event(Origin::Local, "Class", ResponseStatus::Accepted);
        let declined = event(Origin::Local, "Class", ResponseStatus::Declined);
        assert_eq!(types(&n.notify(&cal, Some(&ours), Some(&accepted))), ["booking.accepted"]);
        assert_eq!(types(&n.notify(&cal, Some(&accepted), Some(&declined))), ["booking.declined"]);
        assert!(n.notify(&cal, Some(&accepted), Some(&accepted)).is_empty());
        let tombstone = Event { deleted: true, ..ours.clone() };
        assert!(n.notify(&cal, Some(&tombstone), None).is_empty(), "the API reported the deletion already");
    }

    #[test]
    fn nothing_is_queued_that_nobody_subscribed_to() {
        let n = notifier(&["booking.accepted"]);
        let cal = calendar();
        assert!(n.notify(&cal, None, Some(&event(Origin::Exchange, "x", ResponseStatus::None))).is_empty());
        let (ours, accepted) = (
            event(Origin::Local, "Class", ResponseStatus::None),
            event(Origin::Local, "Class", ResponseStatus::Accepted),
        );
        assert_eq!(types(&n.notify(&cal, Some(&ours), Some(&accepted))), ["booking.accepted"]);
        assert!(notifier(&[]).notify(&cal, Some(&ours), Some(&accepted)).is_empty());
    }
}
