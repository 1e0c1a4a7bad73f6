//! The identity platform's token endpoint, discovery, and the bearer check on Graph.

mod common;

use common::*;
use serde_json::Value;

async fn token_request(env: &Env, tenant: &str, form: &[(&str, &str)]) -> (u16, Value, String) {
    let r = env
        .http
        .post(format!("{}/{tenant}/oauth2/v2.0/token", env.run.authority_url()))
        .form(form)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let text = r.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap(), text)
}

/// (tenant, form, status, error, AADSTS code)
type Case<'a> = (&'a str, Vec<(&'a str, &'a str)>, u16, &'a str, u64);

const SCOPE: &str = "https://graph.microsoft.com/.default";

#[tokio::test]
async fn token_success_is_a_jwt_with_app_claims() {
    let env = Env::new().await;
    for tenant in [TENANT_ID, "test.example", "TEST.EXAMPLE"] {
        let (status, body, _) = token_request(
            &env,
            tenant,
            &[
                ("grant_type", "client_credentials"),
                ("client_id", CLIENT_ID),
                ("client_secret", SECRET),
                ("scope", SCOPE),
            ],
        )
        .await;
        assert_eq!(status, 200, "{body}");
        let parsed: calbridge_sim::wire::TokenResponse = serde_json::from_value(body.clone()).unwrap();
        assert_eq!(parsed.token_type, "Bearer");
        assert_eq!(parsed.expires_in, 3599);
        assert_eq!(parsed.ext_expires_in, Some(3599));
        let parts: Vec<&str> = parsed.access_token.split('.').collect();
        assert_eq!(parts.len(), 3);
        use base64::Engine;
        let claims: Value =
            serde_json::from_slice(&base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(parts[1]).unwrap())
                .unwrap();
        assert_eq!(claims["tid"], TENANT_ID);
        assert_eq!(claims["appid"], CLIENT_ID);
        assert_eq!(claims["aud"], "https://graph.microsoft.com");
        assert!(claims["roles"].as_array().unwrap().iter().any(|r| r == "Calendars.ReadWrite"));
        assert!(claims["exp"].as_i64().unwrap() > claims["iat"].as_i64().unwrap());
    }
}

#[tokio::test]
async fn token_errors_carry_aadsts_codes_and_never_the_secret() {
    let env = Env::new().await;
    let cases: Vec<Case> = vec![
        (
            "nowhere.example",
            vec![
                ("grant_type", "client_credentials"),
                ("client_id", CLIENT_ID),
                ("client_secret", SECRET),
                ("scope", SCOPE),
            ],
            400,
            "invalid_request",
            90002,
        ),
        (
            TENANT_ID,
            vec![
                ("grant_type", "client_credentials"),
                ("client_id", "99999999-0000-4000-8000-000000000000"),
                ("client_secret", SECRET),
                ("scope", SCOPE),
            ],
            400,
            "unauthorized_client",
            700016,
        ),
        (
            TENANT_ID,
            vec![
                ("grant_type", "client_credentials"),
                ("client_id", CLIENT_ID),
                ("client_secret", "wrong-secret-value"),
                ("scope", SCOPE),
            ],
            401,
            "invalid_client",
            7000215,
        ),
        (
            TENANT_ID,
            vec![
                ("grant_type", "client_credentials"),
                ("client_id", CLIENT_ID),
                ("client_secret", SECRET),
                ("scope", "https://graph.microsoft.com/Calendars.Read"),
            ],
            400,
            "invalid_scope",
            1002012,
        ),
        (
            TENANT_ID,
            vec![("grant_type", "password"), ("client_id", CLIENT_ID), ("client_secret", SECRET), ("scope", SCOPE)],
            400,
            "unsupported_grant_type",
            70003,
        ),
    ];
    for (tenant, form, status, error, code) in cases {
        let (got, body, text) = token_request(&env, tenant, &form).await;
        assert_eq!(got, status, "{text}");
        let parsed: calbridge_sim::wire::TokenError = serde_json::from_value(body).unwrap();
        assert_eq!(parsed.error, error);
        assert!(parsed.error_description.starts_with(&format!("AADSTS{code}:")), "{}", parsed.error_description);
        assert_eq!(parsed.error_codes, vec![code]);
        assert!(
            parsed.timestamp.is_some()
                && parsed.trace_id.is_some()
                && parsed.correlation_id.is_some()
                && parsed.error_uri.is_some()
        );
        assert!(!text.contains(SECRET), "the secret must never be echoed: {text}");
        assert!(!text.contains("wrong-secret-value"), "the secret must never be echoed: {text}");
    }
}

#[tokio::test]
async fn discovery_points_at_the_simulator() {
    let env = Env::new().await;
    let base = env.run.authority_url();
    let conf: Value = env
        .http
        .get(format!("{base}/test.example/v2.0/.well-known/openid-configuration"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(conf["token_endpoint"], format!("{base}/{TENANT_ID}/oauth2/v2.0/token"));
    assert!(conf["issuer"].as_str().unwrap().starts_with(&base));
    assert!(conf["authorization_endpoint"].as_str().unwrap().starts_with(&base));
    assert!(conf["jwks_uri"].as_str().unwrap().starts_with(&base));
    let inst: Value = env
        .http
        .get(format!("{base}/common/discovery/instance?api-version=1.1&authorization_endpoint={base}/{TENANT_ID}/oauth2/v2.0/authorize"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(inst["api-version"], "1.1");
    assert_eq!(inst["tenant_discovery_endpoint"], format!("{base}/{TENANT_ID}/v2.0/.well-known/openid-configuration"));
    let bad = env.http.get(format!("{base}/nowhere/v2.0/.well-known/openid-configuration")).send().await.unwrap();
    assert_eq!(bad.status(), 400);
}

#[tokio::test]
async fn graph_requires_a_valid_unexpired_token_and_roles() {
    let env = Env::new().await;
    let url = env.url("/users/ann@test.example/calendar");
    let none = env.http.get(&url).send().await.unwrap();
    assert_eq!(none.status(), 401);
    assert!(none.headers().contains_key("request-id"));
    assert!(none.headers().contains_key("client-request-id"));
    let body: calbridge_sim::wire::ODataError = none.json().await.unwrap();
    assert_eq!(body.error.code, "InvalidAuthenticationToken");
    let inner = body.error.inner_error.unwrap();
    assert!(inner["request-id"].is_string() && inner["client-request-id"].is_string() && inner["date"].is_string());

    let forged = env.http.get(&url).bearer_auth(format!("{}x", env.token)).send().await.unwrap();
    assert_eq!(forged.status(), 401);
    // A token of another simulator instance is not accepted.
    let other = Env::new().await;
    let foreign = env.http.get(&url).bearer_auth(&other.token).send().await.unwrap();
    assert_eq!(foreign.status(), 401);

    // client-request-id is echoed.
    let ok = env.get("/users/ann@test.example/calendar").header("client-request-id", "abc-123").send().await.unwrap();
    assert_eq!(ok.status(), 200);
    assert_eq!(ok.headers()["client-request-id"], "abc-123");

    // The read-only app may read calendars but neither write nor read users.
    let ro = env.fetch_token("bbbbbbbb-bbbb-4ccc-8ddd-eeeeeeeeeeee", "read-only").await;
    let r = env.http.get(&url).bearer_auth(&ro).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let w = env
        .http
        .post(env.url("/users/ann@test.example/events"))
        .bearer_auth(&ro)
        .json(&meeting("x", at(1, 9), at(1, 10), &[]))
        .send()
        .await
        .unwrap();
    assert_eq!(w.status(), 403);
    let body: Value = w.json().await.unwrap();
    assert_eq!(body["error"]["code"], "ErrorAccessDenied");
    let u = env.http.get(env.url("/users/ann@test.example")).bearer_auth(&ro).send().await.unwrap();
    assert_eq!(u.status(), 403);
}

#[tokio::test]
async fn expired_token_is_refused() {
    let toml = SCENARIO.replace("mailbox_concurrency = 4", "mailbox_concurrency = 4\ntoken_lifetime_secs = 1");
    let env = Env::with(&toml).await;
    let ok = env.get("/users/ann@test.example/calendar").send().await.unwrap();
    assert_eq!(ok.status(), 200);
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    let r = env.get("/users/ann@test.example/calendar").send().await.unwrap();
    assert_eq!(r.status(), 401);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "InvalidAuthenticationToken");
    assert!(body["error"]["message"].as_str().unwrap().contains("expired"));
}
