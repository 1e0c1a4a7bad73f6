//! `/_sim/*`: the simulator's own control surface for other processes (no Graph token;
//! served only when the scenario's `sim_control` is on): `POST /_sim/faults`
//! ([`crate::FaultRequest`]), `GET /_sim/stats` ([`crate::SimStats`]), `GET /_sim/health`.

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
