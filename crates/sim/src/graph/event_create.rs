//! Create event (`POST /users/{id}/events`, `/users/{id}/calendar/events`) — https://learn.microsoft.com/graph/api/user-post-events?view=graph-rest-1.0
//!
//! 201 with the event and a `Location` header. A repeated `transactionId` in the same mailbox
//! returns the event created first. Attendees are processed after the response is built, so —
//! as with Exchange — the response still shows every attendee's answer as `none`.

use axum::body::Bytes;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use serde_json::{Map, Value};

use super::Ctx;
use crate::booking;
use crate::http::{json_response, render_opts};
use crate::state::{check_event_properties, render_event, ApiError};

/// Parses a JSON object body the way Graph's model binder reports problems.
pub(crate) fn json_object(body: &[u8]) -> Result<Map<String, Value>, ApiError> {
    if body.iter().all(|b| b.is_ascii_whitespace()) {
        return Err(ApiError::new(400, "BadRequest", "Empty Payload. JSON content expected."));
    }
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(o)) => Ok(o),
        Ok(_) => Err(ApiError::bad_body("The request body must be a JSON object.")),
        Err(e) => Err(ApiError::bad_body(format!("Invalid JSON. {e}"))),
    }
}

pub async fn handler(ctx: Ctx, body: Bytes) -> Response {
    match create(&ctx, &body) {
        Ok(r) => r,
        Err(e) => e.into_response(),
    }
}

fn create(ctx: &Ctx, body: &[u8]) -> Result<Response, ApiError> {
    let mb = ctx.mailbox()?;
    let obj = json_object(body)?;
    check_event_properties(&obj)?;
    let event: crate::wire::Event =
        serde_json::from_value(Value::Object(obj)).map_err(|e| ApiError::bad_body(e.to_string()))?;
    let now = Utc::now();
    let mut state = ctx.sim.inner.state.lock().unwrap();
    let has_attendees = event.attendees.as_ref().is_some_and(|a| !a.is_empty());
    let (id, created) = state.create_event(&mb.key, event, now)?;
    let mut opts = render_opts(&ctx.prefer, &[], false);
    opts.expand_props = None;
    let stored = state.event(&mb.key, &id).ok_or_else(ApiError::item_not_found)?;
    let mut value = render_event(stored, &opts);
    if created && has_attendees {
        booking::sync_meeting(&mut state, &mb.key, &id, true, now);
    }
    drop(state);
    if let Some(o) = value.as_object_mut() {
        let mut with = Map::new();
        with.insert("@odata.context".into(), Value::String(format!("{}/events/$entity", ctx.user_context())));
        with.extend(std::mem::take(o));
        *o = with;
    }
    let mut resp = json_response(StatusCode::CREATED, &value);
    let location = format!("{}/v1.0/Users('{}')/Events('{}')", ctx.base, mb.id, id);
    if let Ok(v) = HeaderValue::from_str(&location) {
        resp.headers_mut().insert(header::LOCATION, v);
    }
    if let Some(etag) = value.get("@odata.etag").and_then(Value::as_str).and_then(|e| HeaderValue::from_str(e).ok()) {
        resp.headers_mut().insert(header::ETAG, etag);
    }
    ctx.prefer.apply_headers(&mut resp);
    Ok(resp)
}
