//! Get user (`GET /users/{id | userPrincipalName}`) and list users (`GET /users`) — https://learn.microsoft.com/graph/api/user-get?view=graph-rest-1.0

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{json, Map, Value};

use super::Ctx;
use crate::http::{encode, json_response, metadata};
use crate::scenario::MailboxKind;
use crate::state::{ApiError, Mailbox};

fn user_json(m: &Mailbox) -> Map<String, Value> {
    let (given, surname) = match (m.kind, m.name.split_once(' ')) {
        (MailboxKind::Person, Some((g, s))) => (json!(g), json!(s)),
        _ => (Value::Null, Value::Null),
    };
    let v = json!({
        "businessPhones": [],
        "displayName": m.name,
        "givenName": given,
        "jobTitle": m.job_title,
        "mail": m.email,
        "mobilePhone": null,
        "officeLocation": m.office_location,
        "preferredLanguage": "en-GB",
        "surname": surname,
        "userPrincipalName": m.email,
        "id": m.id,
    });
    match v {
        Value::Object(o) => o,
        _ => Map::new(),
    }
}

fn select(ctx: &Ctx) -> Option<Vec<String>> {
    ctx.q("$select").map(|s| s.split(',').map(|p| p.trim().to_string()).filter(|p| !p.is_empty()).collect())
}

fn apply_select(mut o: Map<String, Value>, sel: &Option<Vec<String>>) -> Map<String, Value> {
    if let Some(sel) = sel {
        o.retain(|k, _| sel.iter().any(|s| s.eq_ignore_ascii_case(k)));
    }
    o
}

pub async fn handler(ctx: Ctx) -> Response {
    let user = ctx.param("user").to_string();
    let found = ctx.sim.inner.state.lock().unwrap().mailbox(&user).cloned();
    let Some(m) = found else {
        return ApiError::new(
            404,
            "Request_ResourceNotFound",
            format!(
                "Resource '{user}' does not exist or one of its queried reference-property objects are not present."
            ),
        )
        .into_response();
    };
    let sel = select(&ctx);
    let context = match &sel {
        Some(s) => format!("{}#users({})/$entity", metadata(&ctx.base), s.join(",")),
        None => format!("{}#users/$entity", metadata(&ctx.base)),
    };
    let mut out = Map::new();
    out.insert("@odata.context".into(), Value::String(context));
    out.extend(apply_select(user_json(&m), &sel));
    json_response(StatusCode::OK, &Value::Object(out))
}

pub async fn list(ctx: Ctx) -> Response {
    let mailboxes = ctx.sim.inner.state.lock().unwrap().mailboxes.clone();
    let top: usize = ctx.q("$top").and_then(|t| t.parse().ok()).filter(|t| *t > 0).unwrap_or(100).min(999);
    let skip: usize = ctx.q("$skiptoken").and_then(|t| t.parse().ok()).unwrap_or(0);
    let sel = select(&ctx);
    let value: Vec<Value> =
        mailboxes.iter().skip(skip).take(top).map(|m| Value::Object(apply_select(user_json(m), &sel))).collect();
    let mut body = json!({"@odata.context": format!("{}#users", metadata(&ctx.base)), "value": value});
    if skip + top < mailboxes.len() {
        let mut link = format!("{}/v1.0/users?$top={top}&$skiptoken={}", ctx.base, skip + top);
        if let Some(s) = ctx.q("$select") {
            link.push_str(&format!("&$select={}", encode(s)));
        }
        body["@odata.nextLink"] = Value::String(link);
    }
    json_response(StatusCode::OK, &body)
}
