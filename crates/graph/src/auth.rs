//! App-only access tokens (OAuth2 client credentials), cached in memory.
//!
//! [`TokenProvider`] asks `POST {authority_url}/{tenant}/oauth2/v2.0/token` for a token for
//! the `.default` scope and keeps it. Clones share one cache. A token is renewed early, when
//! less than `min(5 minutes, 10% of its lifetime)` remains, so a request never leaves with a
//! token that expires on the way. Renewal is single-flight: the cache is a
//! `tokio::sync::Mutex`, held while the one token request runs, so concurrent callers wait
//! for it instead of each asking. If an early renewal fails transiently while the cached
//! token is still valid, the cached token is used. Time comes from a [`Clock`], so tests
//! control it.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use calbridge_core::Secret;
use chrono::{DateTime, Duration, Utc};
use tokio::sync::Mutex as AsyncMutex;
use url::Url;

use crate::client::execute;
use crate::endpoints::token;
use crate::error::GraphError;

/// Where "now" comes from.
pub trait Clock: Send + Sync {
    fn now(&self) -> DateTime<Utc>;
}

/// The system's clock.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// A clock tests set and advance.
#[derive(Debug)]
pub struct ManualClock(Mutex<DateTime<Utc>>);

impl ManualClock {
    pub fn new(now: DateTime<Utc>) -> Self {
        ManualClock(Mutex::new(now))
    }
    pub fn set(&self, now: DateTime<Utc>) {
        *self.0.lock().expect("clock lock") = now;
    }
    pub fn advance(&self, by: Duration) {
        *self.0.lock().expect("clock lock") += by;
    }
}

impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        *self.0.lock().expect("clock lock")
    }
}

/// An access token and its lifetime. `Debug` never shows the token.
#[derive(Clone, PartialEq, Eq)]
pub struct AccessToken {
    value: Secret,
    pub acquired_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

impl AccessToken {
    pub fn new(value: impl Into<String>, acquired_at: DateTime<Utc>, expires_at: DateTime<Utc>) -> Self {
        AccessToken { value: Secret::new(value), acquired_at, expires_at }
    }

    /// The token, for the one place that sends it (the `Authorization` header).
    pub fn expose(&self) -> &str {
        self.value.expose()
    }

    /// Whether to renew it at `now`: less than `min(5 min, 10% of its lifetime)` remains.
    pub fn needs_refresh(&self, now: DateTime<Utc>) -> bool {
        now >= self.expires_at - refresh_margin(self.expires_at - self.acquired_at)
    }

    /// Whether it can still be sent at `now` (with 30 s to spare).
    pub fn is_valid(&self, now: DateTime<Utc>) -> bool {
        now + Duration::seconds(30) < self.expires_at
    }
}

impl fmt::Debug for AccessToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AccessToken")
            .field("value", &"***")
            .field("acquired_at", &self.acquired_at)
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

/// The longest lifetime a token is kept for, whatever its `expires_in` says.
pub const MAX_TOKEN_LIFETIME_SECS: u64 = 24 * 60 * 60;

/// How long before expiry a token is renewed: `min(5 minutes, 10% of its lifetime)`.
pub fn refresh_margin(lifetime: Duration) -> Duration {
    let tenth = lifetime / 10;
    tenth.min(Duration::minutes(5)).max(Duration::zero())
}

/// Fetches and caches app-only tokens for one connection. Cheap to clone; clones share the
/// cache.
#[derive(Clone)]
pub struct TokenProvider {
    http: reqwest::Client,
    authority: Url,
    tenant: String,
    client_id: String,
    secret: Secret,
    scope: String,
    clock: Arc<dyn Clock>,
    cache: Arc<AsyncMutex<Option<AccessToken>>>,
    fetches: Arc<AtomicU64>,
}

impl fmt::Debug for TokenProvider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenProvider")
            .field("authority", &self.authority.as_str())
            .field("tenant", &self.tenant)
            .field("client_id", &self.client_id)
            .field("scope", &self.scope)
            .field("fetches", &self.fetches())
            .finish()
    }
}

impl TokenProvider {
    pub fn new(
        http: reqwest::Client,
        authority: Url,
        tenant: impl Into<String>,
        client_id: impl Into<String>,
        secret: Secret,
        scope: impl Into<String>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        TokenProvider {
            http,
            authority,
            tenant: tenant.into(),
            client_id: client_id.into(),
            secret,
            scope: scope.into(),
            clock,
            cache: Arc::new(AsyncMutex::new(None)),
            fetches: Arc::new(AtomicU64::new(0)),
        }
    }

    /// How many token requests were sent.
    pub fn fetches(&self) -> u64 {
        self.fetches.load(Ordering::Relaxed)
    }

    /// A token that is not due for renewal, from the cache or a new one.
    pub async fn token(&self) -> Result<AccessToken, GraphError> {
        let mut cached = self.cache.lock().await;
        let now = self.clock.now();
        if let Some(t) = cached.as_ref() {
            if !t.needs_refresh(now) {
                return Ok(t.clone());
            }
        }
        match self.fetch().await {
            Ok(t) => {
                *cached = Some(t.clone());
                Ok(t)
            }
            Err(e) => match cached.as_ref() {
                Some(t) if t.is_valid(self.clock.now()) && e.classify().is_retryable() => {
                    tracing::warn!("renewing the access token failed ({e}); using the current one until it expires");
                    Ok(t.clone())
                }
                _ => Err(e),
            },
        }
    }

    /// Forgets `used` (Graph rejected it), so the next [`TokenProvider::token`] fetches a new
    /// one. A token renewed meanwhile by another caller is kept.
    pub async fn invalidate(&self, used: &AccessToken) {
        let mut cached = self.cache.lock().await;
        if cached.as_ref() == Some(used) {
            *cached = None;
        }
    }

    async fn fetch(&self) -> Result<AccessToken, GraphError> {
        let req = token::request(&self.authority, &self.tenant, &self.client_id, &self.secret, &self.scope);
        let sent_at = self.clock.now();
        self.fetches.fetch_add(1, Ordering::Relaxed);
        let redact = |e: GraphError| e.redacted(&[self.secret.expose()]);
        let (status, _headers, body) = execute(&self.http, &req, None).await.map_err(redact)?;
        let t = token::parse(status, &body).map_err(redact)?;
        // A lifetime the identity platform would never give (it gives about an hour) is cut to
        // a day: `expires_in` is a server's number, and chrono's date arithmetic panics on
        // overflow.
        let lifetime = Duration::seconds(t.expires_in.min(MAX_TOKEN_LIFETIME_SECS) as i64);
        tracing::debug!(tenant = %self.tenant, expires_in = t.expires_in, "got an access token");
        Ok(AccessToken::new(t.access_token, sent_at, sent_at + lifetime))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn renewed_five_minutes_or_ten_percent_before_expiry() {
        let t0 = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
        let hour = AccessToken::new("x", t0, t0 + Duration::hours(1));
        assert!(!hour.needs_refresh(t0 + Duration::minutes(54)));
        assert!(!hour.needs_refresh(t0 + Duration::seconds(3299)));
        assert!(hour.needs_refresh(t0 + Duration::seconds(3300)));
        // A short-lived token (a simulator's 60 s) is renewed in its last 6 s, not always.
        let short = AccessToken::new("x", t0, t0 + Duration::seconds(60));
        assert!(!short.needs_refresh(t0 + Duration::seconds(53)));
        assert!(short.needs_refresh(t0 + Duration::seconds(54)));
        assert_eq!(refresh_margin(Duration::hours(24)), Duration::minutes(5));
        assert!(!format!("{hour:?}").contains("\"x\""));
    }
}
