//! Sync triggers and status.

use axum::extract::State;

use crate::auth::{Authorized, ReadScope, WriteScope};
use crate::dto::SyncStatusView;
use crate::error::{ApiError, ApiResult};
use crate::extract::Path;
use crate::routes::{calendars, connections};
use crate::ApiState;

/// Sync a calendar now (write) and answer its status. With several workers on one database,
/// the worker that holds the calendar runs the sync and this answer waits for it.
#[utoipa::path(post, path = "/calendars/{id}/sync", tag = "sync", params(("id" = i64, Path)),
    responses((status = 200, description = "The run's status (state `failed` with error and hint when it failed)", body = SyncStatusView),
        (status = 409, description = "Another worker holds the calendar and has not recorded a run within a lease's lifetime")))]
pub async fn sync_calendar(
    State(state): State<ApiState>,
    _auth: Authorized<WriteScope>,
    Path(id): Path<i64>,
) -> ApiResult<axum::Json<SyncStatusView>> {
    calendars::find(&state, id).await?;
    Ok(axum::Json(crate::sync::sync_calendar(&state, id).await?.into()))
}

/// The last sync run of a calendar.
#[utoipa::path(get, path = "/calendars/{id}/sync", tag = "sync", params(("id" = i64, Path)),
    responses((status = 200, description = "The last run", body = SyncStatusView)))]
pub async fn calendar_status(
    State(state): State<ApiState>,
    _auth: Authorized<ReadScope>,
    Path(id): Path<i64>,
) -> ApiResult<axum::Json<SyncStatusView>> {
    calendars::find(&state, id).await?;
    let s = state.store().sync_status(id).await?.ok_or_else(|| {
        ApiError::not_found(format!("a sync run of calendar {id} (it was never synced; POST /calendars/{id}/sync)"))
    })?;
    Ok(axum::Json(s.into()))
}

/// Sync every calendar of a connection now (write).
#[utoipa::path(post, path = "/connections/{id}/sync", tag = "sync", params(("id" = i64, Path)),
    responses((status = 200, description = "Each calendar's run", body = [SyncStatusView])))]
pub async fn sync_connection(
    State(state): State<ApiState>,
    _auth: Authorized<WriteScope>,
    Path(id): Path<i64>,
) -> ApiResult<axum::Json<Vec<SyncStatusView>>> {
    let c = connections::find(&state, id).await?;
    Ok(axum::Json(crate::sync::sync_connection(&state, &c).await?.into_iter().map(Into::into).collect()))
}

/// The last sync run of every calendar that was synced.
#[utoipa::path(get, path = "/sync/status", tag = "sync",
    responses((status = 200, description = "Last runs by calendar", body = [SyncStatusView])))]
pub async fn statuses(
    State(state): State<ApiState>,
    _auth: Authorized<ReadScope>,
) -> ApiResult<axum::Json<Vec<SyncStatusView>>> {
    Ok(axum::Json(state.store().sync_statuses().await?.into_iter().map(Into::into).collect()))
}
