//! event: delta (`GET /users/{id}/calendarView/delta?startDateTime=…&endDateTime=…`) — https://learn.microsoft.com/graph/api/event-delta?view=graph-rest-1.0
//!
//! The first round lists every instance in the range, page by page (`Prefer:
//! odata.maxpagesize`, default 100) with `@odata.nextLink` carrying `$skiptoken`; its last
//! page carries `@odata.deltaLink` with `$deltatoken`. Following the deltaLink later returns
//! what changed since: created/updated instances in the range in full, deleted ones (and
//! ones changed outside the range) as `{"@odata.type":…,"id":…,"@removed":{"reason":"deleted"}}`.
//! Query parameters live in the opaque tokens; a token that is unknown, malformed, from
//! another simulator, from before `expire_delta_tokens`, or expired is 410 `syncStateNotFound`.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use serde::Serialize;

use super::calendar_view::range;
use super::Ctx;
use crate::delta::{self, ShownItem, SyncToken};
use crate::http::{encode, json_response, metadata};
use crate::state::{ApiError, RenderOpts};

fn gone() -> ApiError {
    ApiError::new(
        410,
        "syncStateNotFound",
        "The sync state generation is not found or it has expired. Start a full synchronization (a request without a token).",
    )
}

/// A page of a delta round, serialized straight from its items.
#[derive(Serialize)]
struct DeltaPage {
    #[serde(rename = "@odata.context")]
    context: String,
    value: Vec<ShownItem>,
    #[serde(rename = "@odata.nextLink", skip_serializing_if = "Option::is_none")]
    next_link: Option<String>,
    #[serde(rename = "@odata.deltaLink", skip_serializing_if = "Option::is_none")]
    delta_link: Option<String>,
}

pub async fn handler(ctx: Ctx) -> Response {
    match delta_page(&ctx) {
        Ok(r) => r,
        Err(e) => e.into_response(),
    }
}

fn delta_page(ctx: &Ctx) -> Result<Response, ApiError> {
    let mb = ctx.mailbox()?;
    let inner = &ctx.sim.inner;
    let key = &inner.signing_key;
    let now = Utc::now().timestamp();
    let epoch = inner.faults.epoch();
    let lifetime = inner.scenario.delta_token_lifetime_secs;
    let decode = |text: &str| {
        delta::decode(key, text, &inner.instance_id, epoch, now, lifetime).filter(|t| t.mb == mb.key).ok_or_else(gone)
    };
    let state = inner.state.lock().unwrap();
    let token = if let Some(text) = ctx.q("$deltatoken") {
        let t = decode(text)?;
        if t.after.is_some() {
            return Err(gone());
        }
        SyncToken { full: false, from: t.to, to: state.current_seq(&mb.key), after: None, iat: now, ..t }
    } else if let Some(text) = ctx.q("$skiptoken") {
        decode(text)?
    } else {
        let (from, to) = range(ctx)?;
        SyncToken {
            i: inner.instance_id.clone(),
            ep: epoch,
            mb: mb.key.clone(),
            s: from.timestamp(),
            e: to.timestamp(),
            full: true,
            from: 0,
            to: state.current_seq(&mb.key),
            after: None,
            iat: now,
        }
    };
    let size = ctx.prefer.max_page_size.unwrap_or(100).min(1000);
    let opts = RenderOpts {
        zone: ctx.prefer.zone(),
        body_text: ctx.prefer.body_text,
        select: None,
        expand_props: None,
        odata_type: true,
    };
    let (items, next) = delta::page(&state, &token, size, &opts);
    // Render outside the lock, so that concurrent requests render in parallel.
    drop(state);
    let link_base = format!("{}{}", ctx.base, ctx.uri.path());
    let mut body = DeltaPage {
        context: format!("{}#Collection(event)", metadata(&ctx.base)),
        value: items.into_iter().map(|item| item.render(&opts)).collect(),
        next_link: None,
        delta_link: None,
    };
    match next {
        Some(cursor) => {
            let skip = SyncToken { after: Some(cursor), iat: now, ..token };
            body.next_link = Some(format!("{link_base}?$skiptoken={}", encode(&delta::encode(key, &skip))));
        }
        None => {
            let next_round = SyncToken { full: false, from: token.to, after: None, iat: now, ..token };
            body.delta_link = Some(format!("{link_base}?$deltatoken={}", encode(&delta::encode(key, &next_round))));
        }
    }
    let mut resp = json_response(StatusCode::OK, &body);
    ctx.prefer.apply_headers(&mut resp);
    Ok(resp)
}
