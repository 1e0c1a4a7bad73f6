//! List events (`GET /users/{id}/events`) — https://learn.microsoft.com/graph/api/user-list-events?view=graph-rest-1.0
//!
//! Single events and series masters (not expanded), paged with `$top`/`$skip` (default 10).

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};

use super::calendar_view::{next_link, page_size};
use super::Ctx;
use crate::http::{json_response, render_opts};
use crate::state::{render_event, ApiError};

pub async fn handler(ctx: Ctx) -> Response {
    match list(&ctx) {
        Ok(r) => r,
        Err(e) => e.into_response(),
    }
}

fn list(ctx: &Ctx) -> Result<Response, ApiError> {
    let mb = ctx.mailbox()?;
    let top = page_size(ctx, 10);
    let skip: usize = ctx.q("$skip").and_then(|s| s.parse().ok()).unwrap_or(0);
    let opts = render_opts(&ctx.prefer, &ctx.query, false);
    let (value, total) = {
        let state = ctx.sim.inner.state.lock().unwrap();
        let mut events: Vec<_> = state.events.get(&mb.key).into_iter().flat_map(|m| m.values()).collect();
        events.sort_by(|a, b| a.start.cmp(&b.start).then_with(|| a.id().cmp(b.id())));
        let value: Vec<Value> = events.iter().skip(skip).take(top).map(|e| render_event(e, &opts)).collect();
        (value, events.len())
    };
    let mut body = json!({"@odata.context": format!("{}/events", ctx.user_context()), "value": value});
    if skip + top < total {
        body["@odata.nextLink"] = Value::String(next_link(ctx, top, skip + top));
    }
    let mut resp = json_response(StatusCode::OK, &body);
    ctx.prefer.apply_headers(&mut resp);
    Ok(resp)
}
