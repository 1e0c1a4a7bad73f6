//! `/healthz` (no key), `/openapi.json`, `/metrics`.

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;

use crate::auth::{Authorized, ReadScope};
use crate::dto::Health;
use crate::error::ApiResult;
use crate::ApiState;

/// Liveness: answers without a key.
#[utoipa::path(get, path = "/healthz", tag = "system", security(()),
    responses((status = 200, description = "The server is up", body = Health)))]
pub async fn healthz() -> axum::Json<Health> {
    axum::Json(Health { status: "ok".into(), version: env!("CARGO_PKG_VERSION").into() })
}

/// This document.
#[utoipa::path(get, path = "/openapi.json", tag = "system",
    responses((status = 200, description = "The OpenAPI 3.1 document", content_type = "application/json", body = Object)))]
pub async fn openapi(_auth: Authorized<ReadScope>) -> ApiResult<impl IntoResponse> {
    Ok(([(header::CONTENT_TYPE, "application/json")], crate::openapi::json()))
}

/// Prometheus metrics (text exposition format).
#[utoipa::path(get, path = "/metrics", tag = "system",
    responses((status = 200, description = "Metrics", content_type = "text/plain", body = String)))]
pub async fn metrics(State(state): State<ApiState>, _auth: Authorized<ReadScope>) -> ApiResult<impl IntoResponse> {
    let counts = state.store().delivery_counts().await?;
    Ok(([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], state.metrics().render(counts)))
}
