//! List calendarView (`GET /users/{id}/calendarView?startDateTime=…&endDateTime=…`) — https://learn.microsoft.com/graph/api/user-list-calendarview?view=graph-rest-1.0
//!
//! The instances (single events, occurrences, exceptions) overlapping the range, sorted by
//! start, paged with an absolute `@odata.nextLink` carrying `$skip` (page size 10, or `$top`,
//! or `Prefer: odata.maxpagesize`). The range honours the offsets in its values (none = UTC);
//! `Prefer: outlook.timezone` only changes how start/end are shown, and is echoed in
//! `Preference-Applied`.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use serde_json::{json, Value};

use super::Ctx;
use crate::http::{encode, json_response, render_opts};
use crate::state::{render_instance, ApiError};

/// The range of a calendarView request, or Graph's error.
pub(crate) fn range(ctx: &Ctx) -> Result<(DateTime<Utc>, DateTime<Utc>), ApiError> {
    let missing = || {
        ApiError::new(
            400,
            "ErrorInvalidParameter",
            "This request requires a time window specified by the query string parameters StartDateTime and EndDateTime.",
        )
    };
    let start = ctx.q("startDateTime").ok_or_else(missing)?;
    let end = ctx.q("endDateTime").ok_or_else(missing)?;
    let parse = |name: &str, v: &str| {
        crate::tz::parse_query_instant(v).ok_or_else(|| {
            ApiError::new(400, "ErrorInvalidParameter", format!("The value '{v}' of parameter '{name}' is invalid."))
        })
    };
    let (s, e) = (parse("StartDateTime", start)?, parse("EndDateTime", end)?);
    if e < s {
        return Err(ApiError::new(
            400,
            "ErrorInvalidParameter",
            "The parameter 'EndDateTime' must be later than 'StartDateTime'.",
        ));
    }
    Ok((s, e))
}

/// `$top`/`Prefer: odata.maxpagesize`/default.
pub(crate) fn page_size(ctx: &Ctx, default: usize) -> usize {
    ctx.q("$top")
        .and_then(|t| t.parse::<usize>().ok())
        .filter(|t| *t > 0)
        .or(ctx.prefer.max_page_size)
        .unwrap_or(default)
        .min(1000)
}

/// The absolute link to the next page: this request with `$top` and `$skip` replaced.
pub(crate) fn next_link(ctx: &Ctx, top: usize, skip: usize) -> String {
    let mut parts: Vec<String> = ctx
        .query
        .iter()
        .filter(|(k, _)| {
            let k = k.trim_start_matches('$');
            !k.eq_ignore_ascii_case("skip") && !k.eq_ignore_ascii_case("top")
        })
        .map(|(k, v)| format!("{}={}", k, encode(v)))
        .collect();
    parts.push(format!("$top={top}"));
    parts.push(format!("$skip={skip}"));
    format!("{}{}?{}", ctx.base, ctx.uri.path(), parts.join("&"))
}

pub async fn handler(ctx: Ctx) -> Response {
    match list(&ctx) {
        Ok(r) => r,
        Err(e) => e.into_response(),
    }
}

fn list(ctx: &Ctx) -> Result<Response, ApiError> {
    let mb = ctx.mailbox()?;
    let (from, to) = range(ctx)?;
    let top = page_size(ctx, 10);
    let skip: usize = ctx.q("$skip").and_then(|s| s.parse().ok()).unwrap_or(0);
    let opts = render_opts(&ctx.prefer, &ctx.query, false);
    let (value, total) = {
        let state = ctx.sim.inner.state.lock().unwrap();
        let all = state.instances(&mb.key, from, to);
        let value: Vec<Value> = all.iter().skip(skip).take(top).map(|i| render_instance(i, &opts)).collect();
        (value, all.len())
    };
    let mut body = json!({
        "@odata.context": format!("{}/calendarView", ctx.user_context()),
        "value": value,
    });
    if skip + top < total {
        body["@odata.nextLink"] = Value::String(next_link(ctx, top, skip + top));
    }
    let mut resp = json_response(StatusCode::OK, &body);
    ctx.prefer.apply_headers(&mut resp);
    Ok(resp)
}
