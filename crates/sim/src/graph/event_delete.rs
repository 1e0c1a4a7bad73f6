//! Delete event (`DELETE /users/{id}/events/{id}`) — https://learn.microsoft.com/graph/api/event-delete?view=graph-rest-1.0
//!
//! 204 No Content; an unknown id is 404 `ErrorItemNotFound`. Deleting an occurrence cancels
//! it; deleting an organizer's meeting removes the attendees' copies.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use chrono::Utc;

use super::Ctx;
use crate::booking;
use crate::state::ApiError;

pub async fn handler(ctx: Ctx) -> Response {
    match delete(&ctx) {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => e.into_response(),
    }
}

fn delete(ctx: &Ctx) -> Result<(), ApiError> {
    let mb = ctx.mailbox()?;
    let id = ctx.param("id");
    let now = Utc::now();
    let mut state = ctx.sim.inner.state.lock().unwrap();
    let was_copy =
        state.resolve_id(&mb.key, id).and_then(|(m, _)| state.event(&mb.key, &m)).is_some_and(|e| e.origin.is_some());
    let (master, _) = state.delete_event(&mb.key, id, ctx.if_match().as_deref(), now)?;
    if !was_copy {
        booking::sync_meeting(&mut state, &mb.key, &master, false, now);
    }
    Ok(())
}
