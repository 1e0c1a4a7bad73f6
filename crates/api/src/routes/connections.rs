//! `/connections`: Exchange connections. The secret is write-only: sealed under the master key
//! on the way in, never part of an answer.

use axum::extract::State;
use axum::http::StatusCode;
use calbridge_core::connector::{Check as DiagCheck, Probe};
use calbridge_core::model::{
    CalendarKind, Connection, ConnectionSettings, EwsAuth, EwsSettings, GraphSettings as CoreGraph, Origin,
    EWS_DEFAULT_MAX_CONNECTIONS,
};
use calbridge_core::store::{NewConnection, SecretOwner};
use calbridge_core::sync::PushChange;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::auth::{AdminScope, Authorized, ReadScope, WriteScope};
use crate::dto::{CheckView, ConnectionInput, ConnectionView, Diagnosis, Settings, DEFAULT_AUTHORITY, DEFAULT_GRAPH};
use crate::error::{ApiError, ApiResult};
use crate::extract::{Check, Json, Path, Query};
use crate::routes::validate;
use crate::ApiState;

/// The URLs a connection sends requests to.
pub fn urls_of(s: &ConnectionSettings) -> Vec<String> {
    match s {
        ConnectionSettings::Graph(g) => vec![g.authority_url.clone(), g.graph_url.clone()],
        ConnectionSettings::Ews(e) if e.auth == EwsAuth::Oauth2 => vec![e.url.clone(), e.authority_url.clone()],
        ConnectionSettings::Ews(e) => vec![e.url.clone()],
    }
}

async fn view(state: &ApiState, c: Connection) -> ApiResult<ConnectionView> {
    let secret_set = state.connection_secret(&c).await.map(|s| s.is_some()).unwrap_or(true);
    Ok(ConnectionView {
        id: c.id,
        settings: Settings::from_core(&c.settings),
        name: c.name,
        default_organizer: c.default_organizer,
        max_threads: c.max_threads,
        secret_set,
    })
}

pub(crate) async fn find(state: &ApiState, id: i64) -> ApiResult<Connection> {
    state.store().connection(id).await?.ok_or_else(|| ApiError::not_found(format!("connection {id}")))
}

/// A tenant or client id of an app registration: `missing` says why an empty one is wrong.
fn directory_id(check: &mut Check, field: &str, v: &str, missing: &str) {
    if v.trim().is_empty() {
        check.fail(field, format!("{missing}; copy it from the app registration's Overview page"));
    } else if v.len() > 256 || v.chars().any(|c| c.is_whitespace() || c.is_control() || c == '/') {
        check.fail(field, "is not an id or a domain; copy it from the app registration's Overview page");
    }
}

fn validate_input(state: &ApiState, input: &ConnectionInput, create: bool) -> ApiResult<NewConnection> {
    let mut check = Check::default();
    validate::name(&mut check, "/name", &input.name);
    let settings = match &input.settings {
        Settings::Graph { tenant_id, client_id, authority_url, graph_url } => {
            directory_id(&mut check, "/settings/tenant_id", tenant_id, "must not be empty");
            directory_id(&mut check, "/settings/client_id", client_id, "must not be empty");
            let authority = authority_url.clone().unwrap_or_else(|| DEFAULT_AUTHORITY.into());
            let graph = graph_url.clone().unwrap_or_else(|| DEFAULT_GRAPH.into());
            validate::http_url(&mut check, state, "/settings/authority_url", &authority);
            validate::http_url(&mut check, state, "/settings/graph_url", &graph);
            ConnectionSettings::Graph(CoreGraph {
                tenant_id: tenant_id.trim().into(),
                client_id: client_id.trim().into(),
                authority_url: authority.trim().trim_end_matches('/').into(),
                graph_url: graph.trim().trim_end_matches('/').into(),
            })
        }
        Settings::Ews {
            url,
            auth,
            version,
            username,
            impersonation,
            tenant_id,
            client_id,
            authority_url,
            max_connections,
            test_mailbox,
        } => {
            let auth = auth.map(|a| a.to_core()).unwrap_or(EwsAuth::Ntlm);
            validate::http_url(&mut check, state, "/settings/url", url);
            if let Ok(u) = url::Url::parse(url.trim()) {
                let loopback = match u.host() {
                    Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
                    Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
                    Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
                    None => false,
                };
                if u.scheme() == "http" && !loopback {
                    check.fail(
                        "/settings/url",
                        "must be https: Basic and NTLM would send the password (or its hash) in the clear; plain http \
                         is accepted for loopback addresses only",
                    );
                }
            }
            let username = username.clone().unwrap_or_default();
            let (mut tenant, mut client, mut authority) = (String::new(), String::new(), String::new());
            match auth {
                EwsAuth::Basic | EwsAuth::Ntlm => {
                    if username.trim().is_empty() {
                        check.fail(
                            "/settings/username",
                            "is required for basic and ntlm: the service account, DOMAIN\\user or user@domain",
                        );
                    } else if username.len() > 256 || username.chars().any(char::is_control) {
                        check.fail("/settings/username", "is not an account name; use DOMAIN\\user or user@domain");
                    }
                    for (field, v) in [
                        ("/settings/tenant_id", tenant_id),
                        ("/settings/client_id", client_id),
                        ("/settings/authority_url", authority_url),
                    ] {
                        if v.is_some() {
                            check.fail(field, "belongs to auth oauth2 only; remove it");
                        }
                    }
                }
                EwsAuth::Oauth2 => {
                    for (field, v) in [("/settings/tenant_id", tenant_id), ("/settings/client_id", client_id)] {
                        directory_id(&mut check, field, v.as_deref().unwrap_or(""), "is required for auth oauth2");
                    }
                    if !username.trim().is_empty() {
                        check.fail("/settings/username", "is not used with auth oauth2 (the app signs in); remove it");
                    }
                    tenant = tenant_id.clone().unwrap_or_default().trim().into();
                    client = client_id.clone().unwrap_or_default().trim().into();
                    let a = authority_url.clone().unwrap_or_else(|| DEFAULT_AUTHORITY.into());
                    validate::http_url(&mut check, state, "/settings/authority_url", &a);
                    authority = a.trim().trim_end_matches('/').into();
                }
            }
            let max = max_connections.unwrap_or(EWS_DEFAULT_MAX_CONNECTIONS);
            check.require((1..=256).contains(&max), "/settings/max_connections", "must be 1 to 256 (default 27)");
            if let Some(m) = test_mailbox {
                validate::email(&mut check, "/settings/test_mailbox", m);
            }
            ConnectionSettings::Ews(EwsSettings {
                url: url.trim().into(),
                version: version.map(|v| v.as_str()).unwrap_or("Exchange2016").into(),
                auth,
                username: if auth == EwsAuth::Oauth2 { String::new() } else { username.trim().into() },
                impersonation: impersonation.unwrap_or(true),
                tenant_id: tenant,
                client_id: client,
                authority_url: authority,
                max_connections: max,
                ca_file: None,
                test_mailbox: test_mailbox.as_deref().map(|m| m.trim().to_ascii_lowercase()),
            })
        }
    };
    match &input.secret {
        None if create => check.fail(
            "/secret",
            "is required when creating a connection (the client secret's Value, or the EWS service account's password)",
        ),
        Some(s) if s.expose().trim().is_empty() => check.fail("/secret", "must not be empty"),
        Some(s) if s.expose().chars().count() > 1024 => check.fail("/secret", "is longer than 1024 characters"),
        _ => {}
    }
    if let Some(o) = &input.default_organizer {
        validate::email(&mut check, "/default_organizer", o);
    }
    let max_threads = input.max_threads.unwrap_or(4);
    check.require((1..=64).contains(&max_threads), "/max_threads", "must be 1 to 64 (default 4)");
    check.finish()?;
    Ok(NewConnection {
        name: input.name.trim().into(),
        settings,
        default_organizer: input.default_organizer.as_ref().map(|o| o.trim().to_ascii_lowercase()),
        max_threads,
    })
}

/// List the connections.
#[utoipa::path(get, path = "/connections", tag = "connections",
    responses((status = 200, description = "Every connection, by name", body = [ConnectionView])))]
pub async fn list(
    State(state): State<ApiState>,
    _auth: Authorized<ReadScope>,
) -> ApiResult<axum::Json<Vec<ConnectionView>>> {
    let mut out = Vec::new();
    for c in state.store().connections().await? {
        out.push(view(&state, c).await?);
    }
    Ok(axum::Json(out))
}

/// Create a connection (admin). The secret is sealed and never returned.
#[utoipa::path(post, path = "/connections", tag = "connections", request_body = ConnectionInput,
    responses((status = 201, description = "Created", body = ConnectionView)))]
pub async fn create(
    State(state): State<ApiState>,
    _auth: Authorized<AdminScope>,
    Json(input): Json<ConnectionInput>,
) -> ApiResult<(StatusCode, axum::Json<ConnectionView>)> {
    let new = validate_input(&state, &input, true)?;
    state.connector(new.settings.kind())?;
    let c = state.store().create_connection(new).await?;
    if let Some(secret) = &input.secret {
        let owner = SecretOwner::Connection(c.id);
        if let Err(e) = state.store().put_secret(&owner, &state.master_key().seal(&owner, secret)).await {
            let _ = state.store().delete_connection(c.id).await;
            return Err(e.into());
        }
    }
    Ok((StatusCode::CREATED, axum::Json(view(&state, c).await?)))
}

/// Read a connection.
#[utoipa::path(get, path = "/connections/{id}", tag = "connections", params(("id" = i64, Path)),
    responses((status = 200, description = "The connection", body = ConnectionView)))]
pub async fn read(
    State(state): State<ApiState>,
    _auth: Authorized<ReadScope>,
    Path(id): Path<i64>,
) -> ApiResult<axum::Json<ConnectionView>> {
    let c = find(&state, id).await?;
    Ok(axum::Json(view(&state, c).await?))
}

/// Replace a connection (admin). Without `secret`, the stored secret is kept.
#[utoipa::path(put, path = "/connections/{id}", tag = "connections", params(("id" = i64, Path)),
    request_body = ConnectionInput,
    responses((status = 200, description = "Replaced", body = ConnectionView)))]
pub async fn replace(
    State(state): State<ApiState>,
    _auth: Authorized<AdminScope>,
    Path(id): Path<i64>,
    Json(input): Json<ConnectionInput>,
) -> ApiResult<axum::Json<ConnectionView>> {
    find(&state, id).await?;
    let new = validate_input(&state, &input, false)?;
    state.connector(new.settings.kind())?;
    let c = state.store().update_connection(id, new).await?;
    if let Some(secret) = &input.secret {
        let owner = SecretOwner::Connection(c.id);
        state.store().put_secret(&owner, &state.master_key().seal(&owner, secret)).await?;
    }
    Ok(axum::Json(view(&state, c).await?))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct DeleteQuery {
    /// Also delete from Exchange the events calbridge created there (default false).
    #[serde(default)]
    pub remove_from_exchange: bool,
}

/// What a disconnect did.
#[derive(Debug, Serialize, ToSchema)]
pub struct Disconnected {
    pub connection_id: i64,
    /// Calendars unlinked.
    pub calendars: u64,
    /// Events removed from the local store.
    pub events_removed: u64,
    /// Events calbridge created that were deleted in Exchange.
    pub deleted_in_exchange: u64,
}

/// Disconnect (admin): stop the connection's sync, remove its calendars and the events it
/// pulled, and, with `remove_from_exchange=true`, delete in Exchange the events calbridge
/// created there.
#[utoipa::path(delete, path = "/connections/{id}", tag = "connections", params(("id" = i64, Path), DeleteQuery),
    responses((status = 200, description = "Disconnected", body = Disconnected)))]
pub async fn delete(
    State(state): State<ApiState>,
    _auth: Authorized<AdminScope>,
    Path(id): Path<i64>,
    Query(q): Query<DeleteQuery>,
) -> ApiResult<axum::Json<Disconnected>> {
    let c = find(&state, id).await?;
    let remote = if q.remove_from_exchange { Some(state.remote(&c).await?) } else { None };
    let calendars = state.store().calendars(Some(c.id)).await?;
    // Wait for running syncs of the connection's calendars, and keep new ones out.
    let locks: Vec<_> = calendars.iter().map(|cal| state.calendar_lock(cal.id)).collect();
    let mut guards = Vec::new();
    for l in &locks {
        guards.push(l.lock().await);
    }
    let mut out = Disconnected {
        connection_id: c.id,
        calendars: calendars.len() as u64,
        events_removed: 0,
        deleted_in_exchange: 0,
    };
    for cal in &calendars {
        let snap = state.store().snapshot(cal.id).await?;
        out.events_removed += snap.events.values().filter(|e| !e.deleted).count() as u64;
        let Some(remote) = &remote else { continue };
        for (local_id, record) in &snap.records {
            if snap.events.get(local_id).is_some_and(|e| e.origin == Origin::Local) {
                let change = PushChange::Delete { remote_id: record.remote_id.clone() };
                match remote.push(&cal.email, &change).await {
                    Ok(_) => out.deleted_in_exchange += 1,
                    Err(calbridge_core::remote::RemoteError::NotFound(_)) => {}
                    Err(e) => {
                        return Err(ApiError::bad_gateway(format!(
                            "deleting the events calbridge created in {} failed: {e}; nothing was disconnected, \
                             retry later or disconnect without remove_from_exchange",
                            cal.email
                        )))
                    }
                }
            }
        }
    }
    state.store().delete_connection(c.id).await?;
    drop(guards);
    Ok(axum::Json(out))
}

/// What to import rooms into.
#[derive(Clone, Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RoomImportInput {
    /// Put every imported room in this site (of the same connection) instead of one site per
    /// room list.
    #[serde(default, deserialize_with = "crate::int::opt")]
    #[schema(minimum = 1)]
    pub site_id: Option<i64>,
}

/// What an import did.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct RoomImportView {
    pub connection_id: i64,
    /// Rooms linked now (their calendars start `pending` and are verified by the first sync).
    pub linked: Vec<String>,
    /// Rooms that were linked already (left as they are).
    pub existing: Vec<String>,
    /// Sites made for room lists.
    pub sites_created: Vec<String>,
}

/// Import the organisation's rooms (write): every room Exchange lists (EWS GetRoomLists and
/// GetRooms, Graph `places`, which needs `Place.Read.All`) is linked as a room calendar of
/// the connection, each room list as a site. Importing again links only new rooms.
#[utoipa::path(post, path = "/connections/{id}/rooms/import", tag = "connections", params(("id" = i64, Path)),
    request_body = RoomImportInput,
    responses((status = 200, description = "What was linked", body = RoomImportView)))]
pub async fn import_rooms(
    State(state): State<ApiState>,
    _auth: Authorized<WriteScope>,
    Path(id): Path<i64>,
    Json(input): Json<RoomImportInput>,
) -> ApiResult<axum::Json<RoomImportView>> {
    let c = find(&state, id).await?;
    if let Some(site) = input.site_id {
        let known = state.store().sites().await?.into_iter().find(|s| s.id == site);
        match known {
            None => return Err(ApiError::field("/site_id", format!("no site {site}; list them with GET /sites"))),
            Some(s) if s.connection_id != c.id => {
                return Err(ApiError::field(
                    "/site_id",
                    format!(
                        "site {site} belongs to connection {}, not {}; pick a site of this connection",
                        s.connection_id, c.id
                    ),
                ))
            }
            Some(_) => {}
        }
    }
    let remote = state.remote(&c).await?;
    let report = calbridge_engine::rooms::import_rooms(state.store().as_ref(), remote.as_ref(), &c, input.site_id)
        .await
        .map_err(|e| match e {
            calbridge_engine::rooms::ImportError::Store(e) => e.into(),
            calbridge_engine::rooms::ImportError::Remote(e) => {
                ApiError::conflict(format!("connection {} could not list its rooms: {e}", c.name))
            }
        })?;
    Ok(axum::Json(RoomImportView {
        connection_id: c.id,
        linked: report.linked,
        existing: report.existing,
        sites_created: report.sites_created,
    }))
}

/// The mailboxes a test probes: the default organizer, and one linked calendar per kind.
async fn probes(state: &ApiState, c: &Connection) -> ApiResult<Vec<Probe>> {
    let mut out: Vec<Probe> = Vec::new();
    if let Some(o) = &c.default_organizer {
        out.push(Probe { email: o.clone(), kind: CalendarKind::Person });
    }
    for cal in state.store().calendars(Some(c.id)).await? {
        if !out.iter().any(|p| p.kind == cal.kind) {
            out.push(Probe { email: cal.email.clone(), kind: cal.kind });
        }
    }
    Ok(out)
}

/// Test a connection (write): credentials, permissions, and access to a mailbox of each linked
/// kind. Every check has a result, a detail and, when it did not pass, a hint naming the fix.
#[utoipa::path(post, path = "/connections/{id}/test", tag = "connections", params(("id" = i64, Path)),
    responses((status = 200, description = "The diagnosis (`ok` false when a check failed)", body = Diagnosis)))]
pub async fn test(
    State(state): State<ApiState>,
    _auth: Authorized<WriteScope>,
    Path(id): Path<i64>,
) -> ApiResult<axum::Json<Diagnosis>> {
    let c = find(&state, id).await?;
    let connector = state.connector(c.settings.kind())?;
    let checks: Vec<DiagCheck> = match (state.connection_secret(&c).await, state.check_connection_hosts(&c)) {
        (_, Err(e)) => vec![DiagCheck::fail("settings", e.detail, "point the connection at an allowed host")],
        (Err(e), _) => {
            vec![DiagCheck::fail("secret", e.detail, format!("set the secret again with PUT /connections/{}", c.id))]
        }
        (Ok(None), _) => vec![DiagCheck::fail(
            "secret",
            "no secret is stored for this connection",
            format!("set it with PUT /connections/{} including `secret`", c.id),
        )],
        (Ok(Some(secret)), _) => connector.diagnose(&c, secret, &probes(&state, &c).await?).await,
    };
    let ok = checks.iter().all(|c| c.result != calbridge_core::connector::CheckResult::Fail);
    Ok(axum::Json(Diagnosis { connection_id: c.id, ok, checks: checks.into_iter().map(CheckView::from).collect() }))
}
