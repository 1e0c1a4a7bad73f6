//! `/sites` and `/calendars`: mailbox links, grouped in sites, verified against Exchange.

use axum::extract::State;
use axum::http::StatusCode;
use calbridge_core::model::{Calendar, LinkState};
use calbridge_core::store::NewCalendar;
use serde::Deserialize;
use utoipa::IntoParams;

use crate::auth::{AdminScope, Authorized, ReadScope, WriteScope};
use crate::dto::{CalendarInput, CalendarView, SiteInput, SiteView};
use crate::error::{ApiError, ApiResult};
use crate::extract::{Check, Json, Path, Query};
use crate::routes::{connections, validate};
use crate::ApiState;

// --- sites ---------------------------------------------------------------------------------

/// List the sites.
#[utoipa::path(get, path = "/sites", tag = "sites", responses((status = 200, description = "Every site, by name", body = [SiteView])))]
pub async fn list_sites(
    State(state): State<ApiState>,
    _auth: Authorized<ReadScope>,
) -> ApiResult<axum::Json<Vec<SiteView>>> {
    Ok(axum::Json(state.store().sites().await?.into_iter().map(SiteView::from).collect()))
}

/// Create a site on a connection (admin).
#[utoipa::path(post, path = "/sites", tag = "sites", request_body = SiteInput,
    responses((status = 201, description = "Created", body = SiteView)))]
pub async fn create_site(
    State(state): State<ApiState>,
    _auth: Authorized<AdminScope>,
    Json(input): Json<SiteInput>,
) -> ApiResult<(StatusCode, axum::Json<SiteView>)> {
    let mut check = Check::default();
    validate::name(&mut check, "/name", &input.name);
    check.finish()?;
    connections::find(&state, input.connection_id).await?;
    let name = input.name.trim();
    if state.store().sites().await?.iter().any(|s| s.name == name) {
        return Err(ApiError::conflict(format!("a site named {name:?} exists already; choose another name")));
    }
    let site = state.store().upsert_site(name, input.connection_id).await?;
    Ok((StatusCode::CREATED, axum::Json(site.into())))
}

async fn find_site(state: &ApiState, id: i64) -> ApiResult<calbridge_core::model::Site> {
    state
        .store()
        .sites()
        .await?
        .into_iter()
        .find(|s| s.id == id)
        .ok_or_else(|| ApiError::not_found(format!("site {id}")))
}

/// Read a site.
#[utoipa::path(get, path = "/sites/{id}", tag = "sites", params(("id" = i64, Path)),
    responses((status = 200, description = "The site", body = SiteView)))]
pub async fn read_site(
    State(state): State<ApiState>,
    _auth: Authorized<ReadScope>,
    Path(id): Path<i64>,
) -> ApiResult<axum::Json<SiteView>> {
    Ok(axum::Json(find_site(&state, id).await?.into()))
}

/// Delete a site (admin); its calendars stay linked, without a site.
#[utoipa::path(delete, path = "/sites/{id}", tag = "sites", params(("id" = i64, Path)),
    responses((status = 204, description = "Deleted")))]
pub async fn delete_site(
    State(state): State<ApiState>,
    _auth: Authorized<AdminScope>,
    Path(id): Path<i64>,
) -> ApiResult<StatusCode> {
    state.store().delete_site(id).await?;
    Ok(StatusCode::NO_CONTENT)
}

// --- calendars -----------------------------------------------------------------------------

pub(crate) async fn find(state: &ApiState, id: i64) -> ApiResult<Calendar> {
    state.store().calendar(id).await?.ok_or_else(|| ApiError::not_found(format!("calendar {id}")))
}

pub(crate) async fn view(state: &ApiState, c: &Calendar) -> ApiResult<CalendarView> {
    Ok(CalendarView::new(c, state.store().sync_status(c.id).await?))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct CalendarQuery {
    /// Only the calendars of this connection.
    pub connection_id: Option<i64>,
    /// Only the calendars of this site.
    pub site_id: Option<i64>,
}

/// List the linked calendars.
#[utoipa::path(get, path = "/calendars", tag = "calendars", params(CalendarQuery),
    responses((status = 200, description = "Linked calendars, by address", body = [CalendarView])))]
pub async fn list(
    State(state): State<ApiState>,
    _auth: Authorized<ReadScope>,
    Query(q): Query<CalendarQuery>,
) -> ApiResult<axum::Json<Vec<CalendarView>>> {
    let statuses = state.store().sync_statuses().await?;
    let out = state
        .store()
        .calendars(q.connection_id)
        .await?
        .into_iter()
        .filter(|c| q.site_id.is_none() || c.site_id == q.site_id)
        .map(|c| {
            let s = statuses.iter().find(|s| s.calendar_id == c.id).cloned();
            CalendarView::new(&c, s)
        })
        .collect();
    Ok(axum::Json(out))
}

/// Verifies a calendar's mailbox against Exchange and stores the outcome. A connection
/// without a usable secret leaves the link unverified with the reason.
pub(crate) async fn verify_calendar(state: &ApiState, c: &Calendar) -> ApiResult<Calendar> {
    let conn = connections::find(state, c.connection_id).await?;
    let state_after = match state.remote(&conn).await {
        Ok(remote) => state.engine().verify_link(remote.as_ref(), c).await?,
        Err(e) => {
            let s = LinkState::Failed { error: format!("cannot check the mailbox: {}", e.detail) };
            state.store().set_link_state(c.id, &s).await?;
            s
        }
    };
    Ok(Calendar { link: state_after, ..c.clone() })
}

/// Link a mailbox (write) to a site (inheriting its connection) or a connection, and verify
/// it against Exchange. A failed verification is not an error: the link shows it.
#[utoipa::path(post, path = "/calendars", tag = "calendars", request_body = CalendarInput,
    responses((status = 201, description = "Linked (see `verification`)", body = CalendarView)))]
pub async fn link(
    State(state): State<ApiState>,
    _auth: Authorized<WriteScope>,
    Json(input): Json<CalendarInput>,
) -> ApiResult<(StatusCode, axum::Json<CalendarView>)> {
    let (email, new) = new_calendar(&state, input).await?;
    if let Some(existing) = state.store().calendar_by_email(&email).await? {
        return Err(ApiError::conflict(format!(
            "{email} is linked already as calendar {}; unlink it first (DELETE /calendars/{}) to link it again",
            existing.id, existing.id
        )));
    }
    let c = state.store().upsert_calendar(new).await?;
    let c = verify_calendar(&state, &c).await?;
    Ok((StatusCode::CREATED, axum::Json(view(&state, &c).await?)))
}

/// Validates a link and resolves its connection.
async fn new_calendar(state: &ApiState, input: CalendarInput) -> ApiResult<(String, NewCalendar)> {
    let mut check = Check::default();
    validate::email(&mut check, "/email", &input.email);
    if let Some(n) = &input.display_name {
        validate::name(&mut check, "/display_name", n);
    }
    if input.site_id.is_none() && input.connection_id.is_none() {
        check.fail("/site_id", "give site_id or connection_id: the calendar belongs to a site or a connection");
    }
    check.finish()?;
    let connection_id = match (input.site_id, input.connection_id) {
        (Some(site), conn) => {
            let s = find_site(state, site).await?;
            if conn.is_some_and(|c| c != s.connection_id) {
                return Err(ApiError::field(
                    "/connection_id",
                    format!("site {} uses connection {}; omit connection_id or use that one", s.id, s.connection_id),
                ));
            }
            s.connection_id
        }
        (None, Some(conn)) => connections::find(state, conn).await?.id,
        (None, None) => unreachable!("checked above"),
    };
    let email = input.email.trim().to_ascii_lowercase();
    let new = NewCalendar {
        display_name: input.display_name.map(|n| n.trim().to_string()).unwrap_or_else(|| email.clone()),
        email: email.clone(),
        kind: input.kind.into(),
        connection_id,
        site_id: input.site_id,
        busy_only: input.busy_only,
    };
    Ok((email, new))
}

/// Change a calendar link (write): kind, display name, busy-only, site or connection (omit both
/// to keep them). The address stays; a link moved to another connection is verified again.
#[utoipa::path(put, path = "/calendars/{id}", tag = "calendars", params(("id" = i64, Path)), request_body = CalendarInput,
    responses((status = 200, description = "Changed (see `verification`)", body = CalendarView)))]
pub async fn replace(
    State(state): State<ApiState>,
    _auth: Authorized<WriteScope>,
    Path(id): Path<i64>,
    Json(input): Json<CalendarInput>,
) -> ApiResult<axum::Json<CalendarView>> {
    let existing = find(&state, id).await?;
    // Without a site or a connection, the link stays where it is.
    let input = if input.site_id.is_none() && input.connection_id.is_none() {
        CalendarInput { site_id: existing.site_id, connection_id: Some(existing.connection_id), ..input }
    } else {
        input
    };
    let (email, new) = new_calendar(&state, input).await?;
    if email != existing.email {
        return Err(ApiError::field(
            "/email",
            format!("a link's address cannot change ({}); unlink it and link the new address", existing.email),
        ));
    }
    let lock = state.calendar_lock(id);
    let _guard = lock.lock().await;
    let c = state.store().upsert_calendar(new).await?;
    let c = if c.connection_id != existing.connection_id { verify_calendar(&state, &c).await? } else { c };
    Ok(axum::Json(view(&state, &c).await?))
}

/// Read a calendar link with its verification and last sync.
#[utoipa::path(get, path = "/calendars/{id}", tag = "calendars", params(("id" = i64, Path)),
    responses((status = 200, description = "The calendar", body = CalendarView)))]
pub async fn read(
    State(state): State<ApiState>,
    _auth: Authorized<ReadScope>,
    Path(id): Path<i64>,
) -> ApiResult<axum::Json<CalendarView>> {
    let c = find(&state, id).await?;
    Ok(axum::Json(view(&state, &c).await?))
}

/// Verify a calendar's mailbox against Exchange again (write).
#[utoipa::path(post, path = "/calendars/{id}/verify", tag = "calendars", params(("id" = i64, Path)),
    responses((status = 200, description = "Verified or failed (see `verification`)", body = CalendarView)))]
pub async fn verify(
    State(state): State<ApiState>,
    _auth: Authorized<WriteScope>,
    Path(id): Path<i64>,
) -> ApiResult<axum::Json<CalendarView>> {
    let c = find(&state, id).await?;
    let c = verify_calendar(&state, &c).await?;
    Ok(axum::Json(view(&state, &c).await?))
}

/// Unlink a calendar (write): its events leave calbridge's store; Exchange keeps them.
#[utoipa::path(delete, path = "/calendars/{id}", tag = "calendars", params(("id" = i64, Path)),
    responses((status = 204, description = "Unlinked")))]
pub async fn unlink(
    State(state): State<ApiState>,
    _auth: Authorized<WriteScope>,
    Path(id): Path<i64>,
) -> ApiResult<StatusCode> {
    find(&state, id).await?;
    let lock = state.calendar_lock(id);
    let _guard = lock.lock().await;
    state.store().delete_calendar(id).await?;
    Ok(StatusCode::NO_CONTENT)
}
