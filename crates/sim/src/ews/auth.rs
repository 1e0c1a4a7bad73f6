//! Signing in to the EWS face, as Exchange's IIS front end does it.
//!
//! * `Basic`: a scenario `[[ews_accounts]]` user name (`user`, `DOMAIN\user` or the
//!   account's UPN / mailbox address) and its password, on every request.
//! * `NTLM`: the three-leg handshake of [`crate::ntlm`]. NTLM authenticates the TCP
//!   connection, not a request: after the AUTHENTICATE leg, later requests on the same
//!   connection carry no `Authorization` header and are served as that account (IIS's
//!   default: `authPersistSingleRequest` is off). The serve loop gives each connection a
//!   [`Connection`].
//! * `Bearer`: the simulator's own access tokens for the resource
//!   `https://outlook.office365.com` (as Exchange Online's EWS). An app token has no mailbox
//!   of its own: it needs the `full_access_as_app` role and acts on a mailbox only through
//!   `ExchangeImpersonation`.
//!
//! Anything else is a 401 offering `Basic realm="…"`, `NTLM` and, when an app of the scenario
//! has the EWS role, `Bearer`. No password, hash or token is ever logged.

use std::sync::{Arc, Mutex};

use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;

use crate::ntlm;
use crate::scenario::EwsAccountSpec;
use crate::Simulator;

/// The audience of access tokens for Exchange Online's EWS.
pub const EWS_AUDIENCE: &str = "https://outlook.office365.com";

/// The application role Exchange Online requires of app-only EWS tokens.
pub const EWS_APP_ROLES: &[&str] = &["full_access_as_app", "EWS.AccessAsApp"];

/// Where a connection's NTLM handshake stands.
#[derive(Debug, Default)]
enum NtlmState {
    #[default]
    None,
    /// The CHALLENGE was sent; the AUTHENTICATE must answer this challenge.
    Challenged([u8; 8]),
    /// The connection is signed in as this `[[ews_accounts]]` user name.
    Authenticated(String),
}

/// Per-connection state, shared by the requests of one TCP connection.
#[derive(Clone, Debug, Default)]
pub struct Connection(Arc<Mutex<NtlmState>>);

/// Who a request runs as.
#[derive(Clone, Debug)]
pub(crate) enum Principal {
    Account(EwsAccountSpec),
    /// An application with an access token (client id, roles).
    App {
        client_id: String,
    },
}

impl Principal {
    /// The rights of the principal, as an account (an app impersonates, nothing else).
    pub fn as_account(&self) -> EwsAccountSpec {
        match self {
            Principal::Account(a) => a.clone(),
            Principal::App { client_id } => EwsAccountSpec {
                username: client_id.clone(),
                password: String::new(),
                mailbox: None,
                impersonation: true,
                full_access: false,
            },
        }
    }
}

/// The outcome of looking at a request's credentials.
pub(crate) enum SignIn {
    Ok(Principal),
    /// An answer to send as is (the NTLM CHALLENGE leg).
    Respond(Response),
    /// Not signed in: a 401 with every challenge (and a reason, for Bearer).
    Denied(Option<&'static str>),
}

fn plain(user: &str) -> String {
    user.rsplit('\\').next().unwrap_or(user).to_ascii_lowercase()
}

/// The account a sign-in name means: `user`, `DOMAIN\user`, `user@domain` (the UPN, with the
/// tenant's domain) or the account's mailbox address.
fn account_named<'a>(sim: &'a Simulator, name: &str) -> Option<&'a EwsAccountSpec> {
    let scenario = &sim.inner.scenario;
    let wanted = plain(name);
    scenario.ews_accounts.iter().find(|a| {
        let own = plain(&a.username);
        own == wanted
            || format!("{own}@{}", scenario.tenant.domain.to_ascii_lowercase()) == wanted
            || a.mailbox.as_deref().is_some_and(|m| m.eq_ignore_ascii_case(&wanted))
    })
}

fn basic(sim: &Simulator, credentials: &str) -> Option<EwsAccountSpec> {
    let decoded = String::from_utf8(STANDARD.decode(credentials.trim()).ok()?).ok()?;
    let (user, password) = decoded.split_once(':')?;
    account_named(sim, user).filter(|a| a.password == password).cloned()
}

/// The NetBIOS name of the tenant's domain (`contoso.example` → `CONTOSO`).
fn netbios(domain: &str) -> String {
    domain.split('.').next().unwrap_or(domain).to_ascii_uppercase().chars().take(15).collect()
}

fn challenge_response(sim: &Simulator, token: &[u8]) -> Result<(Response, [u8; 8]), ntlm::NtlmError> {
    let client_flags = ntlm::parse_negotiate(token)?;
    let mut server_challenge = [0u8; 8];
    server_challenge.copy_from_slice(&uuid::Uuid::new_v4().as_bytes()[..8]);
    let domain = sim.inner.scenario.tenant.domain.to_ascii_lowercase();
    let target = ntlm::Target {
        nb_domain: netbios(&domain),
        nb_computer: "EXCH01".into(),
        dns_domain: domain.clone(),
        dns_computer: format!("exch01.{domain}"),
    };
    let message = ntlm::challenge(
        ntlm::challenge_flags(client_flags),
        server_challenge,
        &target,
        ntlm::filetime(chrono::Utc::now().timestamp()),
    );
    let mut resp = (StatusCode::UNAUTHORIZED, "").into_response();
    if let Ok(v) = HeaderValue::from_str(&format!("NTLM {}", STANDARD.encode(message))) {
        resp.headers_mut().insert(header::WWW_AUTHENTICATE, v);
    }
    Ok((resp, server_challenge))
}

fn ntlm_leg(sim: &Simulator, conn: Option<&Connection>, token: &str) -> SignIn {
    let Some(conn) = conn else {
        // Served without a connection of its own (a bare router): NTLM cannot work.
        return SignIn::Denied(None);
    };
    let Ok(bytes) = STANDARD.decode(token.trim()) else {
        return SignIn::Denied(None);
    };
    let mut state = conn.0.lock().unwrap();
    match ntlm::kind(&bytes) {
        Ok(1) => match challenge_response(sim, &bytes) {
            Ok((resp, challenge)) => {
                *state = NtlmState::Challenged(challenge);
                SignIn::Respond(resp)
            }
            Err(e) => {
                tracing::debug!("NTLM negotiate refused: {e}");
                *state = NtlmState::None;
                SignIn::Denied(None)
            }
        },
        Ok(3) => {
            let NtlmState::Challenged(challenge) = std::mem::take(&mut *state) else {
                return SignIn::Denied(None);
            };
            let auth = match ntlm::parse_authenticate(&bytes) {
                Ok(a) => a,
                Err(e) => {
                    tracing::debug!("NTLM authenticate refused: {e}");
                    return SignIn::Denied(None);
                }
            };
            let name =
                if auth.domain.is_empty() { auth.user.clone() } else { format!("{}\\{}", auth.domain, auth.user) };
            let Some(account) = account_named(sim, &name) else {
                tracing::debug!("NTLM sign-in for an unknown account");
                return SignIn::Denied(None);
            };
            match ntlm::verify(&auth, &account.password, &challenge) {
                Ok(true) => {
                    *state = NtlmState::Authenticated(account.username.clone());
                    SignIn::Ok(Principal::Account(account.clone()))
                }
                Ok(false) => {
                    tracing::debug!("NTLM sign-in with a wrong password");
                    SignIn::Denied(None)
                }
                Err(e) => {
                    tracing::debug!("NTLM authenticate refused: {e}");
                    SignIn::Denied(None)
                }
            }
        }
        _ => {
            *state = NtlmState::None;
            SignIn::Denied(None)
        }
    }
}

fn bearer(sim: &Simulator, token: &str) -> SignIn {
    let tenant = &sim.inner.scenario.tenant.id;
    let claims = match crate::auth::verify(&sim.inner.signing_key, token, tenant, chrono::Utc::now().timestamp()) {
        Ok(c) => c,
        Err(problem) => return SignIn::Denied(Some(problem.message())),
    };
    if claims["aud"].as_str().map(|a| a.trim_end_matches('/')) != Some(EWS_AUDIENCE) {
        return SignIn::Denied(Some(
            "The audience claim value is invalid: the token is not for https://outlook.office365.com.",
        ));
    }
    let roles: Vec<&str> = claims["roles"].as_array().into_iter().flatten().filter_map(|r| r.as_str()).collect();
    if !roles.iter().any(|r| EWS_APP_ROLES.iter().any(|w| w.eq_ignore_ascii_case(r))) {
        return SignIn::Denied(Some("The token contains no permissions, or permissions can not be understood."));
    }
    SignIn::Ok(Principal::App { client_id: claims["appid"].as_str().unwrap_or_default().to_string() })
}

/// Who signed in to this request (or on this connection).
pub(crate) fn sign_in(sim: &Simulator, headers: &HeaderMap, conn: Option<&Connection>) -> SignIn {
    let value = headers.get(header::AUTHORIZATION).and_then(|h| h.to_str().ok()).map(str::trim);
    let Some(value) = value.filter(|v| !v.is_empty()) else {
        // No credentials: an NTLM-authenticated connection carries on as its account.
        if let Some(conn) = conn {
            if let NtlmState::Authenticated(user) = &*conn.0.lock().unwrap() {
                if let Some(account) = sim.inner.scenario.ews_accounts.iter().find(|a| &a.username == user) {
                    return SignIn::Ok(Principal::Account(account.clone()));
                }
            }
        }
        return SignIn::Denied(None);
    };
    let (scheme, rest) = value.split_once(' ').unwrap_or((value, ""));
    match scheme.to_ascii_lowercase().as_str() {
        "basic" => match basic(sim, rest) {
            Some(a) => SignIn::Ok(Principal::Account(a)),
            None => SignIn::Denied(None),
        },
        "ntlm" => ntlm_leg(sim, conn, rest),
        "bearer" => bearer(sim, rest),
        _ => SignIn::Denied(None),
    }
}

/// Whether OAuth is configured for EWS: some app of the scenario has the EWS role.
fn oauth_configured(sim: &Simulator) -> bool {
    sim.inner
        .scenario
        .apps
        .iter()
        .flat_map(|a| &a.roles)
        .any(|r| EWS_APP_ROLES.iter().any(|w| w.eq_ignore_ascii_case(r)))
}

/// 401 with every way in: Basic (with the host as realm), NTLM, and Bearer when OAuth is
/// configured (or a token was refused: then with the reason, as Exchange Online says it).
pub(crate) fn unauthorized(sim: &Simulator, headers: &HeaderMap, reason: Option<&str>) -> Response {
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok()).unwrap_or("localhost");
    let host = host.split(':').next().unwrap_or(host).replace('"', "");
    let mut resp =
        (StatusCode::UNAUTHORIZED, "401 - Unauthorized: Access is denied due to invalid credentials.").into_response();
    let h = resp.headers_mut();
    for v in [format!("Basic realm=\"{host}\""), "NTLM".to_string()] {
        if let Ok(v) = HeaderValue::from_str(&v) {
            h.append(header::WWW_AUTHENTICATE, v);
        }
    }
    if reason.is_none() && !oauth_configured(sim) {
        return resp;
    }
    let h = resp.headers_mut();
    let bearer = match reason {
        None => "Bearer client_id=\"00000002-0000-0ff1-ce00-000000000000\", token_types=\"app_asserted_user_v1 service_asserted_app_v1\"".to_string(),
        Some(r) => format!("Bearer client_id=\"00000002-0000-0ff1-ce00-000000000000\", error=\"invalid_token\", error_description=\"{}\"", r.replace(['"', '\n'], " ")),
    };
    if let Ok(v) = HeaderValue::from_str(&bearer) {
        h.append(header::WWW_AUTHENTICATE, v);
    }
    if let Some(r) = reason {
        if let Ok(v) = HeaderValue::from_str(&format!(
            "2000008;reason=\"{}\";error_category=\"invalid_token\"",
            r.replace(['"', '\n'], " ")
        )) {
            h.insert("x-ms-diagnostics", v);
        }
    }
    resp
}
