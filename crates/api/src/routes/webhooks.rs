//! `/webhooks`: the host application's endpoints. The signing secret is generated here,
//! shown once in the create answer, and kept sealed.

use axum::extract::State;
use axum::http::StatusCode;
use calbridge_core::store::{NewWebhook, SecretOwner};
use chrono::Utc;

use crate::auth::{AdminScope, Authorized, ReadScope};
use crate::dto::{WebhookCreated, WebhookInput, WebhookView};
use crate::error::{ApiError, ApiResult};
use crate::extract::{Check, Json, Path};
use crate::routes::validate;
use crate::webhooks::{new_secret, EVENT_TYPES};
use crate::ApiState;

/// List the webhook endpoints.
#[utoipa::path(get, path = "/webhooks", tag = "webhooks", responses((status = 200, description = "Endpoints", body = [WebhookView])))]
pub async fn list(
    State(state): State<ApiState>,
    _auth: Authorized<ReadScope>,
) -> ApiResult<axum::Json<Vec<WebhookView>>> {
    Ok(axum::Json(state.store().webhooks().await?.into_iter().map(WebhookView::from).collect()))
}

/// Register an endpoint (admin). The answer holds its signing secret, shown only this once.
#[utoipa::path(post, path = "/webhooks", tag = "webhooks", request_body = WebhookInput,
    responses((status = 201, description = "Registered; keep the secret", body = WebhookCreated)))]
pub async fn create(
    State(state): State<ApiState>,
    _auth: Authorized<AdminScope>,
    Json(input): Json<WebhookInput>,
) -> ApiResult<(StatusCode, axum::Json<WebhookCreated>)> {
    let mut check = Check::default();
    validate::http_url(&mut check, &state, "/url", &input.url);
    check.require(input.url.len() <= 2048, "/url", "is longer than 2048 characters");
    validate::text(&mut check, "/description", &input.description, 500);
    if input.events.is_empty() {
        check.fail("/events", format!("subscribe to at least one of: {}", EVENT_TYPES.join(", ")));
    }
    check.finish()?;
    let mut events: Vec<String> = Vec::new();
    for e in input.events {
        if !events.iter().any(|x| x == e.as_str()) {
            events.push(e.as_str().to_string());
        }
    }
    let id = format!("wh_{}", uuid::Uuid::new_v4().simple());
    let secret = new_secret();
    let sealed = state.master_key().seal(&SecretOwner::Webhook(id.clone()), &secret);
    let w = state
        .store()
        .create_webhook(NewWebhook {
            id,
            url: input.url.trim().to_string(),
            events,
            description: input.description,
            secret: sealed,
            created_at: Utc::now(),
        })
        .await?;
    state.refresh_subscriptions().await?;
    Ok((StatusCode::CREATED, axum::Json(WebhookCreated { webhook: w.into(), secret: secret.expose().to_string() })))
}

/// Read an endpoint (its secret is never shown again).
#[utoipa::path(get, path = "/webhooks/{id}", tag = "webhooks", params(("id" = String, Path)),
    responses((status = 200, description = "The endpoint", body = WebhookView)))]
pub async fn read(
    State(state): State<ApiState>,
    _auth: Authorized<ReadScope>,
    Path(id): Path<String>,
) -> ApiResult<axum::Json<WebhookView>> {
    let w = state.store().webhook(&id).await?.ok_or_else(|| ApiError::not_found(format!("webhook {id}")))?;
    Ok(axum::Json(w.into()))
}

/// Delete an endpoint (admin) and its pending deliveries.
#[utoipa::path(delete, path = "/webhooks/{id}", tag = "webhooks", params(("id" = String, Path)),
    responses((status = 204, description = "Deleted")))]
pub async fn delete(
    State(state): State<ApiState>,
    _auth: Authorized<AdminScope>,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    state.store().delete_webhook(&id).await?;
    state.refresh_subscriptions().await?;
    Ok(StatusCode::NO_CONTENT)
}
