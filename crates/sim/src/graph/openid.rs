//! OpenID Connect discovery (`GET /{tenant}/v2.0/.well-known/openid-configuration`) and MSAL's instance discovery (`GET /common/discovery/instance`) — https://learn.microsoft.com/entra/identity-platform/v2-protocols-oidc#find-your-apps-openid-configuration-document-uri
//!
//! Every endpoint points back at the simulator, as the client addressed it (Host header).

use axum::extract::Path;
use axum::http::StatusCode;
use axum::response::Response;
use serde_json::json;

use super::Ctx;
use crate::http::json_response;

pub async fn configuration(Path(tenant): Path<String>, ctx: Ctx) -> Response {
    let t = &ctx.sim.inner.scenario.tenant;
    if !(tenant.eq_ignore_ascii_case(&t.id) || tenant.eq_ignore_ascii_case(&t.domain)) {
        return super::token::unknown_tenant(&ctx.base, &tenant);
    }
    let base = &ctx.base;
    let tid = &t.id;
    json_response(
        StatusCode::OK,
        &json!({
            "token_endpoint": format!("{base}/{tid}/oauth2/v2.0/token"),
            "token_endpoint_auth_methods_supported": ["client_secret_post", "private_key_jwt", "client_secret_basic"],
            "jwks_uri": format!("{base}/{tid}/discovery/v2.0/keys"),
            "response_modes_supported": ["query", "fragment", "form_post"],
            "subject_types_supported": ["pairwise"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
            "scopes_supported": ["openid", "profile", "email", "offline_access"],
            "issuer": format!("{base}/{tid}/v2.0"),
            "request_uri_parameter_supported": false,
            "userinfo_endpoint": format!("{base}/oidc/userinfo"),
            "authorization_endpoint": format!("{base}/{tid}/oauth2/v2.0/authorize"),
            "device_authorization_endpoint": format!("{base}/{tid}/oauth2/v2.0/devicecode"),
            "http_logout_supported": true,
            "frontchannel_logout_supported": true,
            "end_session_endpoint": format!("{base}/{tid}/oauth2/v2.0/logout"),
            "claims_supported": ["sub", "iss", "cloud_instance_name", "cloud_instance_host_name", "cloud_graph_host_name", "msgraph_host", "aud", "exp", "iat", "auth_time", "acr", "nonce", "preferred_username", "name", "tid", "ver", "at_hash", "c_hash", "email"],
            "kerberos_endpoint": format!("{base}/{tid}/kerberos"),
            "tenant_region_scope": "EU",
            "cloud_instance_name": "microsoftonline.com",
            "cloud_graph_host_name": "graph.windows.net",
            "msgraph_host": "graph.microsoft.com",
            "rbac_url": "https://pas.windows.net"
        }),
    )
}

pub async fn instance_discovery(ctx: Ctx) -> Response {
    let base = &ctx.base;
    let host = base.split("://").nth(1).unwrap_or(base).to_string();
    let tenant = ctx
        .q("authorization_endpoint")
        .and_then(|a| a.split("://").nth(1))
        .and_then(|rest| rest.split('/').nth(1))
        .filter(|t| !t.is_empty())
        .unwrap_or("common")
        .to_string();
    json_response(
        StatusCode::OK,
        &json!({
            "tenant_discovery_endpoint": format!("{base}/{tenant}/v2.0/.well-known/openid-configuration"),
            "api-version": "1.1",
            "metadata": [{"preferred_network": host, "preferred_cache": host, "aliases": [host]}]
        }),
    )
}

pub async fn keys() -> Response {
    json_response(StatusCode::OK, &json!({"keys": []}))
}
