//! Update event (`PATCH /users/{id}/events/{id}`) — https://learn.microsoft.com/graph/api/event-update?view=graph-rest-1.0
//!
//! Only the properties in the body change. `If-Match` with a stale `@odata.etag` is
//! 412 `ErrorIrresolvableConflict`. Every update bumps `changeKey`, `@odata.etag` and
//! `lastModifiedDateTime`. Patching an occurrence makes it an exception. When the organizer
//! moves a meeting, attendee copies follow and resources decide again.

use axum::body::Bytes;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use chrono::Utc;

use super::event_create::json_object;
use super::event_get::render_one;
use super::Ctx;
use crate::booking;
use crate::http::json_response;
use crate::state::ApiError;

pub async fn handler(ctx: Ctx, body: Bytes) -> Response {
    match update(&ctx, &body) {
        Ok(r) => r,
        Err(e) => e.into_response(),
    }
}

fn update(ctx: &Ctx, body: &[u8]) -> Result<Response, ApiError> {
    let mb = ctx.mailbox()?;
    let patch = json_object(body)?;
    let id = ctx.param("id").to_string();
    let now = Utc::now();
    {
        let mut state = ctx.sim.inner.state.lock().unwrap();
        let (master, reprocess) = state.update_event(&mb.key, &id, &patch, ctx.if_match().as_deref(), now)?;
        if state.event(&mb.key, &master).is_some_and(|e| e.origin.is_none()) {
            booking::sync_meeting(&mut state, &mb.key, &master, reprocess, now);
        }
    }
    let value = render_one(ctx, &mb.key, &id)?;
    let mut resp = json_response(StatusCode::OK, &value);
    ctx.prefer.apply_headers(&mut resp);
    Ok(resp)
}
