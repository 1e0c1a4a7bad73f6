//! `/_sim/*`: the simulator's own control surface for other processes (no Graph token;
//! served only when the scenario's `sim_control` is on): `POST /_sim/faults`
//! ([`crate::FaultRequest`]), `POST /_sim/ews-notifications` ([`EwsNotificationControl`]:
//! refuse streaming or all EWS subscriptions, drop a mailbox's, report lost events, shorten the
//! notification minute; answers the live subscriptions), `GET /_sim/stats`
//! ([`crate::SimStats`]), `GET /_sim/health`.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};

use crate::faults::FaultRequest;
use crate::Simulator;

pub(crate) fn router() -> Router<Simulator> {
    Router::new()
        .route("/_sim/faults", post(faults))
        .route("/_sim/ews-notifications", post(ews_notifications))
        .route("/_sim/stats", get(stats))
        .route("/_sim/health", get(|| async { "ok" }))
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
