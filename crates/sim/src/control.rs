//! `/_sim/*`: the simulator's own control surface for other processes (no Graph token;
//! served only when the scenario's `sim_control` is on): `POST /_sim/faults`
//! ([`crate::FaultRequest`]), `POST /_sim/ews-notifications` ([`EwsNotificationControl`]:
//! refuse streaming or all EWS subscriptions, drop a mailbox's, report lost events, shorten the
//! notification minute; answers the live subscriptions), `GET /_sim/stats`
//! ([`crate::SimStats`]), `GET /_sim/health`, `GET /_sim/subscriptions` (the Graph
//! change-notification subscriptions), and `POST /_sim/outlook/changes` (people change events
//! in Outlook: [`ChangeRequest`]), which `calbridge bench` uses to play the users of a
//! simulator running in another process.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};

use crate::faults::FaultRequest;
use crate::ids::Rng;
use crate::scenario::MailboxKind;
use crate::Simulator;

pub(crate) fn router() -> Router<Simulator> {
    Router::new()
        .route("/_sim/faults", post(faults))
        .route("/_sim/ews-notifications", post(ews_notifications))
        .route("/_sim/stats", get(stats))
        .route("/_sim/health", get(|| async { "ok" }))
        .route("/_sim/subscriptions", get(subscriptions))
        .route("/_sim/outlook/changes", post(outlook_changes))
}

async fn faults(State(sim): State<Simulator>, body: axum::body::Bytes) -> Response {
    match serde_json::from_slice::<FaultRequest>(&body) {
        Ok(req) => {
            sim.faults().apply(&req);
            StatusCode::NO_CONTENT.into_response()
        }
        Err(e) => (StatusCode::BAD_REQUEST, format!("invalid fault request: {e}")).into_response(),
    }
}

async fn stats(State(sim): State<Simulator>) -> Json<crate::SimStats> {
    Json(sim.stats())
}

/// `POST /_sim/ews-notifications`: each field present is applied.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EwsNotificationControl {
    pub refuse_streaming: Option<bool>,
    pub refuse_subscriptions: Option<bool>,
    /// Drop this mailbox's subscriptions.
    pub drop_mailbox: Option<String>,
    /// Report lost events on this mailbox's subscriptions.
    pub miss_mailbox: Option<String>,
    pub minute_ms: Option<u64>,
}

async fn ews_notifications(State(sim): State<Simulator>, body: axum::body::Bytes) -> Response {
    let req: EwsNotificationControl = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => return (StatusCode::BAD_REQUEST, format!("invalid EWS notification control: {e}")).into_response(),
    };
    if let Some(on) = req.refuse_streaming {
        sim.ews_refuse_streaming(on);
    }
    if let Some(on) = req.refuse_subscriptions {
        sim.ews_refuse_subscriptions(on);
    }
    if let Some(m) = &req.drop_mailbox {
        sim.ews_drop_subscriptions(m);
    }
    if let Some(m) = &req.miss_mailbox {
        sim.ews_miss_events(m);
    }
    if let Some(ms) = req.minute_ms {
        sim.ews_notification_minute(std::time::Duration::from_millis(ms.max(1)));
    }
    Json(sim.ews_subscriptions()).into_response()
}

/// A change-notification subscription, as `GET /_sim/subscriptions` lists it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SubscriptionInfo {
    pub id: String,
    pub mailbox: String,
    pub notification_url: String,
}

async fn subscriptions(State(sim): State<Simulator>) -> Json<Vec<SubscriptionInfo>> {
    Json(
        sim.subscriptions()
            .into_iter()
            .map(|(id, mailbox, notification_url)| SubscriptionInfo { id, mailbox, notification_url })
            .collect(),
    )
}

/// Body of `POST /_sim/outlook/changes`: `count` events, picked at random (from `seed`) among
/// the events people organise in their own mailboxes, get a new subject, as if their owners
/// edited them in Outlook (change keys, the change log and change notifications follow).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChangeRequest {
    pub count: usize,
    #[serde(default)]
    pub seed: u64,
}

/// One change made by `POST /_sim/outlook/changes`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ChangedEvent {
    pub mailbox: String,
    pub id: String,
    pub subject: String,
    /// The event's start and end (UTC), to find it again.
    pub start: chrono::DateTime<chrono::Utc>,
    pub end: chrono::DateTime<chrono::Utc>,
}

async fn outlook_changes(State(sim): State<Simulator>, body: axum::body::Bytes) -> Response {
    let req = match serde_json::from_slice::<ChangeRequest>(&body) {
        Ok(r) => r,
        Err(e) => return (StatusCode::BAD_REQUEST, format!("invalid change request: {e}")).into_response(),
    };
    let picks = pick_events(&sim, &req);
    let outlook = sim.outlook();
    let mut out = Vec::with_capacity(picks.len());
    for (i, (mailbox, id, start, end)) in picks.into_iter().enumerate() {
        let subject = format!("Changed in Outlook ({}-{i})", req.seed);
        if let Err(e) = outlook.update_event(&mailbox, &id, serde_json::json!({ "subject": subject })) {
            return (StatusCode::INTERNAL_SERVER_ERROR, format!("changing {id} in {mailbox} failed: {e}"))
                .into_response();
        }
        out.push(ChangedEvent { mailbox, id, subject, start, end });
    }
    Json(out).into_response()
}

/// `(mailbox address, event id, start, end)` of `count` random events organised in people's own mailboxes
/// (single events and series masters; meeting copies are the organizer's to change).
type Pick = (String, String, chrono::DateTime<chrono::Utc>, chrono::DateTime<chrono::Utc>);

fn pick_events(sim: &Simulator, req: &ChangeRequest) -> Vec<Pick> {
    let state = sim.inner.state.lock().unwrap();
    let owned =
        |key: &str| state.events.get(key).map(|m| m.iter().filter(|(_, e)| e.origin.is_none()).count()).unwrap_or(0);
    let people: Vec<(&str, &str, usize)> = state
        .mailboxes
        .iter()
        .filter(|m| m.kind == MailboxKind::Person)
        .map(|m| (m.email.as_str(), m.key.as_str(), owned(&m.key)))
        .filter(|(_, _, n)| *n > 0)
        .collect();
    let mut rng = Rng::new(req.seed.wrapping_mul(0x9e37_79b9).wrapping_add(17));
    let mut out = Vec::with_capacity(req.count);
    if people.is_empty() {
        return out;
    }
    for _ in 0..req.count {
        let (email, key, n) = people[rng.below(people.len() as u64) as usize];
        let nth = rng.below(n as u64) as usize;
        let picked = state.events[key].iter().filter(|(_, e)| e.origin.is_none()).nth(nth);
        if let Some((id, e)) = picked {
            out.push((email.to_string(), id.clone(), e.start, e.end));
        }
    }
    out
}
