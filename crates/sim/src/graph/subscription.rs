//! Subscriptions (`POST/GET/PATCH/DELETE /subscriptions`) — https://learn.microsoft.com/graph/api/subscription-post-subscriptions?view=graph-rest-1.0
//!
//! Change notifications for a mailbox's events (`resource` `users/{id}/events`, or
//! `…/calendar/events`): on create, Graph first validates `notificationUrl` (and
//! `lifecycleNotificationUrl`) by POSTing `?validationToken=…` as `text/plain` and expecting
//! `200 OK` with the decoded token as the body within 10 seconds; otherwise the create is
//! `400 InvalidRequest` and no subscription exists. `expirationDateTime` must lie in the future
//! and at most 10,080 minutes ahead (Outlook resources), `clientState` at most 128 characters.
//! Notification URLs must be `https`; the simulator also takes `http` to a loopback address, so
//! tests and local development need no certificate. Delivery: see `crate::notify`.

use axum::body::Bytes;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Duration, Utc};
use serde_json::{json, Value};

use super::event_create::json_object;
use super::Ctx;
use crate::http::json_response;
use crate::state::{ApiError, SimSubscription};

/// Outlook resources: at most 10,080 minutes (under seven days).
pub const MAX_LIFETIME_MINUTES: i64 = 10_080;
const CHANGE_TYPES: [&str; 3] = ["created", "updated", "deleted"];

fn render(ctx: &Ctx, s: &SimSubscription) -> Value {
    json!({
        "@odata.context": format!("{}#subscriptions/$entity", crate::http::metadata(&ctx.base)),
        "id": s.id,
        "resource": s.resource,
        "applicationId": s.application_id,
        "changeType": s.change_type.join(","),
        "clientState": s.client_state,
        "notificationUrl": s.notification_url,
        "lifecycleNotificationUrl": s.lifecycle_notification_url,
        "expirationDateTime": crate::tz::format_instant(s.expires),
        "creatorId": s.application_id,
        "latestSupportedTlsVersion": "v1_2",
        "notificationContentType": "application/json",
    })
}

fn invalid(message: impl Into<String>) -> ApiError {
    ApiError::new(400, "InvalidRequest", message)
}

/// An `https` URL, or `http` to a loopback host.
fn check_url(field: &str, url: &str) -> Result<(), ApiError> {
    let parsed = url::Url::parse(url).map_err(|_| invalid(format!("The {field} '{url}' is not a valid URL.")))?;
    let loopback = matches!(parsed.host_str(), Some("127.0.0.1") | Some("localhost") | Some("[::1]"));
    match parsed.scheme() {
        "https" => Ok(()),
        "http" if loopback => Ok(()),
        _ => Err(invalid(format!("The {field} must be an https URL: '{url}'."))),
    }
}

fn expiration(v: Option<&Value>, now: DateTime<Utc>) -> Result<DateTime<Utc>, ApiError> {
    let text = v.and_then(Value::as_str).ok_or_else(|| invalid("expirationDateTime is required."))?;
    let t = crate::tz::parse_query_instant(text)
        .ok_or_else(|| invalid(format!("expirationDateTime '{text}' is not a date and time.")))?;
    if t <= now {
        return Err(invalid("Subscription expiration can only be in the future."));
    }
    if t > now + Duration::minutes(MAX_LIFETIME_MINUTES) {
        return Err(invalid(format!(
            "Subscription expiration exceeds the maximum of {MAX_LIFETIME_MINUTES} minutes for this resource."
        )));
    }
    Ok(t)
}

/// Graph's validation request to a notification URL.
async fn validate(url: &str) -> Result<(), ApiError> {
    let token = format!(
        "Validation: Testing client application reachability for subscription Request-Id: {}",
        uuid::Uuid::new_v4()
    );
    let failed = |why: String| {
        invalid(format!(
            "Subscription validation request failed. Notification endpoint must respond with 200 OK to validation \
             request ({why})."
        ))
    };
    let mut target = url::Url::parse(url).map_err(|e| failed(e.to_string()))?;
    target.query_pairs_mut().append_pair("validationToken", &token);
    let answer = reqwest::Client::new()
        .post(target)
        .header("Content-Type", "text/plain; charset=utf-8")
        .timeout(std::time::Duration::from_secs(10))
        .send()
        .await
        .map_err(|e| failed(e.to_string()))?;
    if answer.status() != reqwest::StatusCode::OK {
        return Err(failed(format!("it answered {}", answer.status())));
    }
    let body = answer.text().await.map_err(|e| failed(e.to_string()))?;
    if body != token {
        return Err(failed("the response must exactly match the validationToken query parameter".into()));
    }
    Ok(())
}

/// The mailbox a subscription's `resource` names (`users/{id or address}/events`).
fn resource_mailbox(ctx: &Ctx, resource: &str) -> Result<String, ApiError> {
    let segs: Vec<&str> = resource.trim_matches('/').split('/').collect();
    let user = match segs.as_slice() {
        [u, user, "events"] | [u, user, "calendar", "events"] if u.eq_ignore_ascii_case("users") => *user,
        _ => {
            return Err(invalid(format!(
                "The resource '{resource}' is not supported: subscribe to users/{{id}}/events or \
                 users/{{id}}/calendar/events."
            )))
        }
    };
    let user = user.trim_start_matches("('").trim_end_matches("')");
    crate::http::mailbox(&ctx.sim, user).map(|m| m.key)
}

pub async fn create(ctx: Ctx, body: Bytes) -> Response {
    match create_inner(&ctx, &body).await {
        Ok(v) => json_response(StatusCode::CREATED, &v),
        Err(e) => e.into_response(),
    }
}

async fn create_inner(ctx: &Ctx, body: &[u8]) -> Result<Value, ApiError> {
    let now = Utc::now();
    let b = json_object(body)?;
    let text = |k: &str| b.get(k).and_then(Value::as_str).map(str::to_string);
    let change_type: Vec<String> = text("changeType")
        .ok_or_else(|| invalid("changeType is required."))?
        .split(',')
        .map(|s| s.trim().to_string())
        .collect();
    if let Some(bad) = change_type.iter().find(|c| !CHANGE_TYPES.contains(&c.as_str())) {
        return Err(invalid(format!("'{bad}' is not a valid changeType: use created, updated or deleted.")));
    }
    let notification_url = text("notificationUrl").ok_or_else(|| invalid("notificationUrl is required."))?;
    check_url("notificationUrl", &notification_url)?;
    let lifecycle = text("lifecycleNotificationUrl");
    if let Some(l) = &lifecycle {
        check_url("lifecycleNotificationUrl", l)?;
    }
    let resource = text("resource").ok_or_else(|| invalid("resource is required."))?;
    let mailbox = resource_mailbox(ctx, &resource)?;
    let expires = expiration(b.get("expirationDateTime"), now)?;
    let client_state = text("clientState");
    if client_state.as_ref().is_some_and(|c| c.chars().count() > 128) {
        return Err(invalid("clientState must be at most 128 characters."));
    }
    validate(&notification_url).await?;
    if let Some(l) = lifecycle.as_ref().filter(|l| **l != notification_url) {
        validate(l).await?;
    }
    let sub = SimSubscription {
        id: uuid::Uuid::new_v4().to_string(),
        mailbox,
        resource,
        change_type,
        notification_url,
        lifecycle_notification_url: lifecycle,
        client_state,
        expires,
        application_id: ctx.app_id(),
    };
    let v = render(ctx, &sub);
    ctx.sim.inner.state.lock().unwrap().subscriptions.insert(sub.id.clone(), sub);
    Ok(v)
}

fn find(ctx: &Ctx) -> Result<SimSubscription, ApiError> {
    let id = ctx.param("id");
    let state = ctx.sim.inner.state.lock().unwrap();
    state.subscriptions.get(id).cloned().ok_or_else(|| {
        ApiError::new(404, "ResourceNotFound", format!("The object was not found: subscription '{id}'."))
    })
}

pub async fn get(ctx: Ctx) -> Response {
    match find(&ctx) {
        Ok(s) => json_response(StatusCode::OK, &render(&ctx, &s)),
        Err(e) => e.into_response(),
    }
}

/// Renewal: a new `expirationDateTime`.
pub async fn update(ctx: Ctx, body: Bytes) -> Response {
    let result = (|| {
        let mut sub = find(&ctx)?;
        let b = json_object(&body)?;
        sub.expires = expiration(b.get("expirationDateTime"), Utc::now())?;
        ctx.sim.inner.state.lock().unwrap().subscriptions.insert(sub.id.clone(), sub.clone());
        Ok::<_, ApiError>(render(&ctx, &sub))
    })();
    match result {
        Ok(v) => json_response(StatusCode::OK, &v),
        Err(e) => e.into_response(),
    }
}

pub async fn delete(ctx: Ctx) -> Response {
    match find(&ctx) {
        Ok(s) => {
            ctx.sim.inner.state.lock().unwrap().subscriptions.remove(&s.id);
            StatusCode::NO_CONTENT.into_response()
        }
        Err(e) => e.into_response(),
    }
}
