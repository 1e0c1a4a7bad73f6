//! List calendars (`GET /users/{id}/calendars`) and get a calendar (`GET /users/{id}/calendar`, `/calendars/{id}`) — https://learn.microsoft.com/graph/api/user-list-calendars?view=graph-rest-1.0

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};

use super::Ctx;
use crate::http::json_response;
use crate::state::Mailbox;

fn calendar_json(m: &Mailbox) -> Value {
    let calendar = crate::wire::Calendar {
        id: Some(m.calendar_id.clone()),
        name: Some("Calendar".into()),
        color: Some("auto".into()),
        change_key: Some(crate::ids::change_key(&m.guid, 0)),
        can_share: Some(true),
        can_view_private_items: Some(true),
        can_edit: Some(true),
        is_default_calendar: Some(true),
        owner: Some(m.recipient()),
        ..Default::default()
    };
    let mut v = serde_json::to_value(calendar).unwrap_or_default();
    if let Some(o) = v.as_object_mut() {
        o.insert("hexColor".into(), json!(""));
        o.insert("isRemovable".into(), json!(false));
        o.insert("isTallyingResponses".into(), json!(true));
        o.insert("allowedOnlineMeetingProviders".into(), json!(["teamsForBusiness"]));
        o.insert("defaultOnlineMeetingProvider".into(), json!("teamsForBusiness"));
    }
    v
}

pub async fn list(ctx: Ctx) -> Response {
    match ctx.mailbox() {
        Ok(m) => json_response(
            StatusCode::OK,
            &json!({"@odata.context": format!("{}/calendars", ctx.user_context()), "value": [calendar_json(&m)]}),
        ),
        Err(e) => e.into_response(),
    }
}

fn single(ctx: &Ctx, context: String) -> Response {
    match ctx.mailbox() {
        Ok(m) => {
            let mut v = calendar_json(&m);
            if let Some(o) = v.as_object_mut() {
                let mut with = serde_json::Map::new();
                with.insert("@odata.context".into(), Value::String(context));
                with.extend(std::mem::take(o));
                *o = with;
            }
            json_response(StatusCode::OK, &v)
        }
        Err(e) => e.into_response(),
    }
}

pub async fn default_calendar(ctx: Ctx) -> Response {
    let context = format!("{}/calendar/$entity", ctx.user_context());
    single(&ctx, context)
}

pub async fn one(ctx: Ctx) -> Response {
    let context = format!("{}/calendars/$entity", ctx.user_context());
    single(&ctx, context)
}
