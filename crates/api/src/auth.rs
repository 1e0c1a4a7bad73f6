//! API keys: `Authorization: Bearer cbk_...`. The store keeps only the SHA-256 of a key (hex)
//! and its first characters, to recognise it in a list. A key has a scope: `read` (every GET),
//! `write` (also events, calendar links, sync triggers), `admin` (also connections, sites,
//! webhooks). A request without a key or with an unknown key is answered 401, one whose key's
//! scope is too small 403. A request without the header but with the admin console's session
//! cookie is the admin scope (see `console`).

use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use calbridge_core::store::{ApiKey, NewApiKey, Scope, Store, StoreError};
use sha2::{Digest, Sha256};

use crate::error::ApiError;
use crate::ApiState;

/// The prefix of every API key.
pub const KEY_PREFIX: &str = "cbk_";

/// `n` random bytes from the operating system.
pub fn random_bytes<const N: usize>() -> [u8; N] {
    let mut buf = [0u8; N];
    getrandom::getrandom(&mut buf).expect("the operating system's random source is available");
    buf
}

/// Hex SHA-256 of a token: what the store keeps.
pub fn hash_token(token: &str) -> String {
    Sha256::digest(token.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}

/// A new API key: the token (shown once) and what to store.
pub fn new_key(name: &str, scope: Scope, now: chrono::DateTime<chrono::Utc>) -> (String, NewApiKey) {
    let token: String =
        format!("{KEY_PREFIX}{}", random_bytes::<32>().iter().map(|b| format!("{b:02x}")).collect::<String>());
    let key = NewApiKey {
        name: name.to_string(),
        scope,
        hash: hash_token(&token),
        prefix: token[..KEY_PREFIX.len() + 6].to_string(),
        created_at: now,
    };
    (token, key)
}

/// Creates a key in the store; returns the token (shown once) and the stored key.
pub async fn create_key(store: &dyn Store, name: &str, scope: Scope) -> Result<(String, ApiKey), StoreError> {
    let (token, new) = new_key(name, scope, chrono::Utc::now());
    let key = store.create_api_key(new).await?;
    Ok((token, key))
}

/// The authenticated caller of a request.
#[derive(Clone, Debug)]
pub struct Caller {
    pub key: ApiKey,
}

impl Caller {
    /// Fails with 403 unless the caller's scope includes `needed`.
    pub fn require(&self, needed: Scope) -> Result<(), ApiError> {
        if self.key.scope >= needed {
            Ok(())
        } else {
            Err(ApiError::forbidden(format!(
                "the API key `{}` has the scope {}, and this operation needs {}. Fix: use a key with that scope \
                 (calbridge apikey create --scope {} --name ...)",
                self.key.name,
                self.key.scope.as_str(),
                needed.as_str(),
                needed.as_str()
            )))
        }
    }
}

/// A scope an operation needs, as a type: [`Authorized`] checks it before any other part of
/// the request is read, so a key with too small a scope learns nothing about the input.
pub trait Needs: Send + Sync {
    const SCOPE: Scope;
}

/// Every GET.
pub struct ReadScope;
/// Events, calendar links, sync triggers, connection tests.
pub struct WriteScope;
/// Connections, sites, webhooks.
pub struct AdminScope;

impl Needs for ReadScope {
    const SCOPE: Scope = Scope::Read;
}
impl Needs for WriteScope {
    const SCOPE: Scope = Scope::Write;
}
impl Needs for AdminScope {
    const SCOPE: Scope = Scope::Admin;
}

/// A caller whose key has the scope `N`: 401 without a valid key, 403 when the scope is too
/// small.
pub struct Authorized<N: Needs>(pub Caller, std::marker::PhantomData<N>);

impl<N: Needs> FromRequestParts<ApiState> for Authorized<N> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &ApiState) -> Result<Self, ApiError> {
        let caller = Caller::from_request_parts(parts, state).await?;
        caller.require(N::SCOPE)?;
        Ok(Authorized(caller, std::marker::PhantomData))
    }
}

impl FromRequestParts<ApiState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &ApiState) -> Result<Self, ApiError> {
        let missing = || {
            ApiError::unauthorized(
                "this operation needs an API key: send the header Authorization: Bearer cbk_... \
                 (create a key with `calbridge apikey create --scope read|write|admin --name NAME`)",
            )
        };
        if parts.headers.get(AUTHORIZATION).is_none() {
            // The admin console: its session cookie (with the CSRF token on changes) is the
            // admin scope.
            if let Some(s) = crate::console::session_of(state, &parts.method, &parts.headers)? {
                let key = ApiKey {
                    id: 0,
                    name: format!("console:{}", s.username),
                    scope: Scope::Admin,
                    prefix: "session".into(),
                    created_at: chrono::Utc::now(),
                };
                return Ok(Caller { key });
            }
        }
        let header = parts.headers.get(AUTHORIZATION).ok_or_else(missing)?;
        let value = header.to_str().map_err(|_| missing())?.trim();
        let token = value
            .strip_prefix("Bearer ")
            .or_else(|| value.strip_prefix("bearer "))
            .map(str::trim)
            .ok_or_else(missing)?;
        let unknown = || {
            ApiError::unauthorized(
                "the API key is not valid (unknown, deleted or mistyped). Fix: check the key, or create a new one with \
                 `calbridge apikey create`",
            )
        };
        if !token.starts_with(KEY_PREFIX) {
            return Err(unknown());
        }
        match state.store().api_key_by_hash(&hash_token(token)).await {
            Ok(Some(key)) => Ok(Caller { key }),
            Ok(None) => Err(unknown()),
            Err(e) => Err(e.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_random_prefixed_and_stored_as_hashes() {
        let now = chrono::Utc::now();
        let (a, ka) = new_key("lms", Scope::Write, now);
        let (b, _) = new_key("lms", Scope::Write, now);
        assert_ne!(a, b);
        assert!(a.starts_with("cbk_") && a.len() == 4 + 64, "{a}");
        assert_eq!(ka.hash, hash_token(&a));
        assert!(!ka.hash.contains(&a[4..]), "the hash does not contain the token");
        assert!(a.starts_with(&ka.prefix) && ka.prefix.len() == 10);
    }

    #[test]
    fn scopes_include_the_smaller_ones() {
        let caller = |scope| Caller {
            key: ApiKey { id: 1, name: "k".into(), scope, prefix: "cbk_x".into(), created_at: chrono::Utc::now() },
        };
        assert!(caller(Scope::Admin).require(Scope::Write).is_ok());
        assert!(caller(Scope::Write).require(Scope::Read).is_ok());
        let e = caller(Scope::Read).require(Scope::Write).unwrap_err();
        assert_eq!(e.status, axum::http::StatusCode::FORBIDDEN);
        assert!(e.detail.contains("--scope write"), "{}", e.detail);
    }
}
