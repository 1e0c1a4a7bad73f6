//! Client credentials token request (`POST /{tenant}/oauth2/v2.0/token`) — https://learn.microsoft.com/entra/identity-platform/v2-oauth2-client-creds-grant-flow
//!
//! Success is `{"token_type":"Bearer","expires_in":…,"ext_expires_in":…,"access_token":…}`;
//! failures are Entra's JSON errors whose `error_description` starts with the AADSTS code.
//! The secret is never echoed.

use axum::body::Bytes;
use axum::extract::Path;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::Response;
use chrono::Utc;
use serde_json::json;

use super::Ctx;
use crate::http::{current_ids, json_response};
use crate::wire::{TokenError, TokenResponse};

/// An Entra error answer.
pub(crate) fn entra_error(base: &str, status: StatusCode, error: &str, code: u64, description: &str) -> Response {
    let ids = current_ids();
    let now = Utc::now();
    let body = TokenError {
        error: error.into(),
        error_description: format!(
            "AADSTS{code}: {description} Trace ID: {} Correlation ID: {} Timestamp: {}",
            ids.request_id,
            ids.client_request_id,
            now.format("%Y-%m-%d %H:%M:%SZ")
        ),
        error_codes: vec![code],
        timestamp: Some(now.format("%Y-%m-%d %H:%M:%SZ").to_string()),
        trace_id: Some(ids.request_id),
        correlation_id: Some(ids.client_request_id),
        error_uri: Some(format!("{base}/error?code={code}")),
        ..Default::default()
    };
    let mut resp = json_response(status, &serde_json::to_value(body).unwrap_or_default());
    no_store(&mut resp);
    resp
}

fn no_store(resp: &mut Response) {
    let h = resp.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store, no-cache"));
    h.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json; charset=utf-8"));
}

pub(crate) fn unknown_tenant(base: &str, tenant: &str) -> Response {
    entra_error(
        base,
        StatusCode::BAD_REQUEST,
        "invalid_request",
        90002,
        &format!("Tenant '{tenant}' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud. Check with your subscription administrator, this may happen if there are no active subscriptions for the tenant."),
    )
}

pub async fn handler(Path(tenant): Path<String>, ctx: Ctx, body: Bytes) -> Response {
    let scenario = &ctx.sim.inner.scenario;
    let base = &ctx.base;
    let t = &scenario.tenant;
    if !(tenant.eq_ignore_ascii_case(&t.id) || tenant.eq_ignore_ascii_case(&t.domain)) {
        return unknown_tenant(base, &tenant);
    }
    let form: Vec<(String, String)> =
        url::form_urlencoded::parse(&body).map(|(k, v)| (k.into_owned(), v.into_owned())).collect();
    let field = |name: &str| form.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str());
    let grant = field("grant_type").unwrap_or_default();
    if grant.is_empty() {
        return entra_error(
            base,
            StatusCode::BAD_REQUEST,
            "invalid_request",
            900144,
            "The request body must contain the following parameter: 'grant_type'.",
        );
    }
    if grant != "client_credentials" {
        return entra_error(
            base,
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            70003,
            &format!("The app requested an unsupported grant type '{grant}'."),
        );
    }
    let Some(client_id) = field("client_id").filter(|c| !c.is_empty()) else {
        return entra_error(
            base,
            StatusCode::BAD_REQUEST,
            "invalid_request",
            900144,
            "The request body must contain the following parameter: 'client_id'.",
        );
    };
    let Some(scope) = field("scope").filter(|s| !s.trim().is_empty()) else {
        return entra_error(
            base,
            StatusCode::BAD_REQUEST,
            "invalid_request",
            900144,
            "The request body must contain the following parameter: 'scope'.",
        );
    };
    let scopes: Vec<&str> = scope.split_whitespace().collect();
    if scopes.len() != 1 || !scopes[0].ends_with("/.default") {
        return entra_error(
            base,
            StatusCode::BAD_REQUEST,
            "invalid_scope",
            1002012,
            &format!("The provided value for scope {scope} is not valid. Client credential flows must have a scope value with /.default suffixed to the resource identifier (application ID URI)."),
        );
    }
    let directory = t.name.clone().unwrap_or_else(|| t.domain.clone());
    let Some(app) = scenario.apps.iter().find(|a| a.client_id.eq_ignore_ascii_case(client_id)) else {
        return entra_error(
            base,
            StatusCode::BAD_REQUEST,
            "unauthorized_client",
            700016,
            &format!("Application with identifier '{client_id}' was not found in the directory '{directory}'. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant. You may have sent your authentication request to the wrong tenant."),
        );
    };
    let Some(secret) = field("client_secret").filter(|s| !s.is_empty()) else {
        return entra_error(
            base,
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            7000216,
            "'client_assertion', 'client_secret' or 'request' is required for the 'client_credentials' grant type.",
        );
    };
    if secret != app.client_secret {
        return entra_error(
            base,
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            7000215,
            &format!("Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app '{}'.", app.client_id),
        );
    }
    let now = Utc::now().timestamp();
    let lifetime = scenario.token_lifetime_secs;
    let resource = scopes[0].trim_end_matches("/.default");
    let sp = crate::ids::guid(&[&t.id, &app.client_id, "service-principal"]).to_string();
    let claims = json!({
        "aud": resource,
        "iss": format!("https://sts.windows.net/{}/", t.id),
        "iat": now,
        "nbf": now,
        "exp": now + lifetime as i64,
        "aio": "calbridge-sim",
        "app_displayname": app.name.clone().unwrap_or_else(|| "calbridge".into()),
        "appid": app.client_id,
        "appidacr": "1",
        "idp": format!("https://sts.windows.net/{}/", t.id),
        "idtyp": "app",
        "oid": sp,
        "roles": app.roles,
        "sub": sp,
        "tenant_region_scope": "EU",
        "tid": t.id,
        "uti": crate::ids::b64url(&uuid::Uuid::new_v4().into_bytes()),
        "ver": "1.0",
    });
    let token = crate::auth::mint(&ctx.sim.inner.signing_key, &claims);
    let body = TokenResponse {
        token_type: "Bearer".into(),
        expires_in: lifetime,
        ext_expires_in: Some(lifetime),
        access_token: token,
        ..Default::default()
    };
    let mut resp = json_response(StatusCode::OK, &serde_json::to_value(body).unwrap_or_default());
    no_store(&mut resp);
    resp
}
