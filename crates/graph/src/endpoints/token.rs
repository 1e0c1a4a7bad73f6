//! Client credentials token request — <https://learn.microsoft.com/entra/identity-platform/v2-oauth2-client-creds-grant-flow#get-a-token>
//!
//! `POST {authority_url}/{tenant}/oauth2/v2.0/token` with a form body
//! `grant_type=client_credentials&client_id=…&client_secret=…&scope=https://graph.microsoft.com/.default`.
//! The answer is a [`TokenResponse`] or, on failure, a [`TokenError`] whose
//! `error_description` starts with the AADSTS code.

use calbridge_core::Secret;
use reqwest::Method;
use url::Url;

use super::{graph_path, parse_json, snippet, GraphRequest, TransportRetry};
use crate::error::{aadsts_code, GraphError};
use crate::types::{TokenError, TokenResponse};

/// The scope of an app-only token for Microsoft Graph (global cloud).
pub const GRAPH_SCOPE: &str = "https://graph.microsoft.com/.default";

/// The `.default` scope for the Graph at `graph_url`: national clouds
/// (`graph.microsoft.us`, `dod-graph.microsoft.us`, `microsoftgraph.chinacloudapi.cn`) have
/// their own; anything else (the global cloud, a simulator) uses [`GRAPH_SCOPE`].
pub fn scope_for(graph_url: &Url) -> String {
    match graph_url.host_str() {
        Some(h) if h.ends_with(".microsoft.us") || h.ends_with(".chinacloudapi.cn") => {
            format!("https://{h}/.default")
        }
        _ => GRAPH_SCOPE.to_string(),
    }
}

/// Builds the token request. The body holds the secret, so the request is marked sensitive.
pub fn request(authority: &Url, tenant: &str, client_id: &str, secret: &Secret, scope: &str) -> GraphRequest {
    let url = graph_path(authority, &[tenant, "oauth2", "v2.0", "token"]);
    let body = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("grant_type", "client_credentials")
        .append_pair("client_id", client_id)
        .append_pair("client_secret", secret.expose())
        .append_pair("scope", scope)
        .finish();
    let mut r = GraphRequest::new("token request", Method::POST, url, TransportRetry::Idempotent)
        .header("Content-Type", "application/x-www-form-urlencoded")
        .header("Accept", "application/json");
    r.body = Some(body.into_bytes());
    r.sensitive = true;
    r
}

/// Parses the token endpoint's answer: a token on 2xx, [`GraphError::Token`] otherwise.
pub fn parse(status: u16, body: &[u8]) -> Result<TokenResponse, GraphError> {
    if (200..300).contains(&status) {
        let t: TokenResponse = parse_json("token request", body)?;
        if t.access_token.is_empty() {
            return Err(GraphError::Decode {
                operation: "token request",
                message: "the answer has no access_token".into(),
            });
        }
        return Ok(t);
    }
    match serde_json::from_slice::<TokenError>(body) {
        Ok(e) => Err(GraphError::Token {
            status,
            aadsts: aadsts_code(&e.error_codes, &e.error_description),
            error: e.error,
            error_description: first_line(&e.error_description),
        }),
        Err(_) => Err(GraphError::Token {
            status,
            error: format!("http_{status}"),
            aadsts: None,
            error_description: format!("the answer was not an OAuth2 error: {:?}", snippet(body)),
        }),
    }
}

/// AADSTS descriptions continue with `\r\nTrace ID: … Correlation ID: … Timestamp: …`
/// (on the same line, from some servers); the part before is what a person needs.
fn first_line(s: &str) -> String {
    let line = s.lines().next().unwrap_or("");
    let line = line.find(" Trace ID:").map_or(line, |i| &line[..i]);
    line.trim().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_is_a_client_credentials_form_post() {
        let authority = Url::parse("https://login.microsoftonline.com").unwrap();
        let r = request(&authority, "contoso.onmicrosoft.com", "client-1", &Secret::new("s3cr3t~x"), GRAPH_SCOPE);
        assert_eq!(r.method, Method::POST);
        assert_eq!(r.url.as_str(), "https://login.microsoftonline.com/contoso.onmicrosoft.com/oauth2/v2.0/token");
        assert_eq!(r.header_values("content-type"), vec!["application/x-www-form-urlencoded"]);
        let body = String::from_utf8(r.body.clone().unwrap()).unwrap();
        let pairs: Vec<(String, String)> = url::form_urlencoded::parse(body.as_bytes()).into_owned().collect();
        assert_eq!(
            pairs,
            vec![
                ("grant_type".into(), "client_credentials".into()),
                ("client_id".into(), "client-1".into()),
                ("client_secret".into(), "s3cr3t~x".into()),
                ("scope".into(), "https://graph.microsoft.com/.default".into()),
            ]
        );
        assert!(r.sensitive);
        assert!(!format!("{r:?}").contains("s3cr3t"));
    }

    #[test]
    fn national_clouds_get_their_own_scope() {
        assert_eq!(scope_for(&Url::parse("https://graph.microsoft.com").unwrap()), GRAPH_SCOPE);
        assert_eq!(scope_for(&Url::parse("http://127.0.0.1:4000").unwrap()), GRAPH_SCOPE);
        assert_eq!(
            scope_for(&Url::parse("https://graph.microsoft.us").unwrap()),
            "https://graph.microsoft.us/.default"
        );
    }

    #[test]
    fn parses_a_token() {
        let body = br#"{"token_type":"Bearer","expires_in":3599,"ext_expires_in":3599,"access_token":"eyJ0eXAi"}"#;
        let t = parse(200, body).unwrap();
        assert_eq!(t.expires_in, 3599);
        assert_eq!(t.access_token, "eyJ0eXAi");
    }

    #[test]
    fn parses_an_aadsts_error() {
        // The shape the identity platform documents for a failed client credentials request.
        let body = br#"{
          "error": "invalid_client",
          "error_description": "AADSTS7000215: Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app '00000000-0000-0000-0000-000000000001'.\r\nTrace ID: 0000aaaa-11bb-cccc-dd22-eeeeee333333\r\nCorrelation ID: aaaa0000-bb11-2222-33cc-444444dddddd\r\nTimestamp: 2026-05-01 12:00:00Z",
          "error_codes": [7000215],
          "timestamp": "2026-05-01 12:00:00Z",
          "trace_id": "0000aaaa-11bb-cccc-dd22-eeeeee333333",
          "correlation_id": "aaaa0000-bb11-2222-33cc-444444dddddd",
          "error_uri": "https://login.microsoftonline.com/error?code=7000215"
        }"#;
        match parse(401, body) {
            Err(GraphError::Token { status, error, aadsts, error_description }) => {
                assert_eq!(status, 401);
                assert_eq!(error, "invalid_client");
                assert_eq!(aadsts, Some(7000215));
                assert!(error_description.starts_with("AADSTS7000215: Invalid client secret provided."));
                assert!(!error_description.contains("Trace ID"));
            }
            other => panic!("{other:?}"),
        }
        let same_line = br#"{"error":"invalid_request","error_description":"AADSTS90002: Tenant 'nope' not found. Trace ID: 1 Correlation ID: 2"}"#;
        match parse(400, same_line) {
            Err(GraphError::Token { aadsts: Some(90002), error_description, .. }) => {
                assert_eq!(error_description, "AADSTS90002: Tenant 'nope' not found.");
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(parse(502, b"<html>bad gateway</html>"), Err(GraphError::Token { status: 502, .. })));
        assert!(matches!(parse(200, b"{}"), Err(GraphError::Decode { .. })));
    }
}
