//! OAuth2 for EWS in Exchange Online: app-only tokens (client credentials) for
//! `https://outlook.office365.com/.default`, from the identity platform's token endpoint —
//! the same flow, cache and renewal as the Graph adapter's ([`TokenProvider`]), with EWS's
//! scope. The app needs the Office 365 Exchange Online permission `full_access_as_app`, and
//! EWS requires `ExchangeImpersonation` on every request made with an app token.

use std::sync::{Arc, Mutex};

use calbridge_core::model::EwsSettings;
use calbridge_core::Secret;
use calbridge_graph::auth::{AccessToken, SystemClock, TokenProvider};

use crate::error::EwsError;
use crate::transport::TokenSource;

/// The scope of an app-only token for EWS in Exchange Online.
pub const EWS_SCOPE: &str = "https://outlook.office365.com/.default";
/// The identity platform.
pub const DEFAULT_AUTHORITY: &str = "https://login.microsoftonline.com";

/// Tokens for one app registration.
pub struct EwsTokens {
    provider: TokenProvider,
    last: Mutex<Option<AccessToken>>,
}

impl EwsTokens {
    pub fn new(settings: &EwsSettings, secret: Secret) -> Result<Arc<EwsTokens>, EwsError> {
        let bad = |m: String| EwsError::Config { message: m };
        if settings.tenant_id.trim().is_empty() || settings.client_id.trim().is_empty() {
            return Err(bad("auth oauth2 needs tenant_id and client_id (the app registration)".into()));
        }
        let authority =
            if settings.authority_url.trim().is_empty() { DEFAULT_AUTHORITY } else { settings.authority_url.trim() };
        let authority =
            url::Url::parse(authority).map_err(|e| bad(format!("authority_url {authority:?} is not a URL: {e}")))?;
        let http = reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(30))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| bad(format!("cannot set up the HTTP client for tokens: {e}")))?;
        // The simulator (and a national cloud) issue tokens for their own EWS host; the
        // audience is what Exchange Online checks.
        let provider = TokenProvider::new(
            http,
            authority,
            settings.tenant_id.trim(),
            settings.client_id.trim(),
            secret,
            EWS_SCOPE,
            Arc::new(SystemClock),
        );
        Ok(Arc::new(EwsTokens { provider, last: Mutex::new(None) }))
    }

    /// Token requests sent.
    pub fn fetches(&self) -> u64 {
        self.provider.fetches()
    }
}

#[async_trait::async_trait]
impl TokenSource for EwsTokens {
    async fn token(&self) -> Result<String, EwsError> {
        let t = self.provider.token().await.map_err(|e| EwsError::TokenClassified(e.classify()))?;
        let value = t.expose().to_string();
        *self.last.lock().expect("last token") = Some(t);
        Ok(value)
    }

    async fn invalidate(&self, token: &str) {
        let last = self.last.lock().expect("last token").clone();
        if let Some(t) = last.filter(|t| t.expose() == token) {
            self.provider.invalidate(&t).await;
        }
    }
}
