//! Decline event (`POST /users/{id}/events/{id}/decline`) — https://learn.microsoft.com/graph/api/event-decline?view=graph-rest-1.0
//!
//! `{"comment": "…", "sendResponse": true}`; 202 Accepted. The attendee's copy leaves its
//! calendar and the organizer's meeting records the decline; the organizer's meeting stays.
//! Declining one's own meeting is 400 `ErrorInvalidRequest`; an unknown id 404.

use axum::body::Bytes;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use chrono::Utc;

use super::event_create::json_object;
use super::Ctx;
use crate::booking;
use crate::state::ApiError;

pub async fn handler(ctx: Ctx, body: Bytes) -> Response {
    match decline(&ctx, &body) {
        Ok(()) => StatusCode::ACCEPTED.into_response(),
        Err(e) => e.into_response(),
    }
}

fn decline(ctx: &Ctx, body: &[u8]) -> Result<(), ApiError> {
    let mb = ctx.mailbox()?;
    let params = if body.is_empty() { serde_json::Map::new() } else { json_object(body)? };
    for (k, v) in &params {
        // Action parameters are matched without regard to case, as Graph does.
        match k.to_ascii_lowercase().as_str() {
            "comment" if v.is_string() || v.is_null() => {}
            "sendresponse" if v.is_boolean() => {}
            "proposednewtime" => {}
            _ => return Err(ApiError::bad_body(format!("The parameter '{k}' in the request payload is not valid."))),
        }
    }
    let mut state = ctx.sim.inner.state.lock().unwrap();
    booking::decline(&mut state, &mb.key, ctx.param("id"), Utc::now())
}
