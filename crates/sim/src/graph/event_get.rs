//! Get event (`GET /users/{id}/events/{id}`) — https://learn.microsoft.com/graph/api/event-get?view=graph-rest-1.0
//!
//! Honours `$select`, `$expand=singleValueExtendedProperties($filter=id eq '…')` (extended
//! properties are only returned when expanded), `Prefer: outlook.timezone` and
//! `Prefer: outlook.body-content-type`. Occurrence ids resolve to their occurrence.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value};

use super::Ctx;
use crate::http::{json_response, render_opts};
use crate::state::{render_event, render_instance, ApiError};

/// Renders one event or occurrence of a mailbox as the request wants it.
pub(crate) fn render_one(ctx: &Ctx, mailbox: &str, id: &str) -> Result<Value, ApiError> {
    let state = ctx.sim.inner.state.lock().unwrap();
    let (master, occurrence) = state.resolve_id(mailbox, id).ok_or_else(ApiError::item_not_found)?;
    let ev = state.event(mailbox, &master).ok_or_else(ApiError::item_not_found)?;
    let opts = render_opts(&ctx.prefer, &ctx.query, false);
    let mut value = match occurrence {
        Some(k) => render_instance(&ev.occurrence(k).ok_or_else(ApiError::item_not_found)?, &opts),
        None => render_event(ev, &opts),
    };
    if let Some(o) = value.as_object_mut() {
        let mut with = Map::new();
        let select = ctx.q("$select").map(|s| format!("({s})")).unwrap_or_default();
        with.insert("@odata.context".into(), Value::String(format!("{}/events{select}/$entity", ctx.user_context())));
        with.extend(std::mem::take(o));
        *o = with;
    }
    Ok(value)
}

pub async fn handler(ctx: Ctx) -> Response {
    let result = ctx.mailbox().and_then(|mb| render_one(&ctx, &mb.key, ctx.param("id")));
    match result {
        Ok(v) => {
            let mut resp = json_response(StatusCode::OK, &v);
            ctx.prefer.apply_headers(&mut resp);
            resp
        }
        Err(e) => e.into_response(),
    }
}
