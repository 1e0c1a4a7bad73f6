//! [`EwsConnector`]: EWS adapters for stored connections, and the connection test.
//!
//! The test runs, in order, stopping at the first failure that makes the rest meaningless:
//! - `settings`: the URL, version, account and CA file make a client;
//! - `token` (oauth2): the identity platform issues an app token for EWS;
//! - `credentials` (basic, ntlm): the server accepts the service account (GetRoomLists, an
//!   operation any signed-in account may call);
//! - `mailbox.test`, when the connection names a `test_mailbox`: its calendar opens, so a new
//!   connection can be tested before anything is linked;
//! - `mailbox.<kind>` per probe (person, room, equipment, the default organizer): the
//!   mailbox's calendar opens — by impersonation or delegation, as configured. A refusal
//!   names the role or right to grant.

use std::sync::Arc;

use async_trait::async_trait;

use calbridge_core::connector::{Check, Connector, Probe};
use calbridge_core::model::{Connection, ConnectionSettings, EwsAuth, EwsSettings, Secret};
use calbridge_core::remote::{Remote, RemoteError};

use crate::client::{EwsClient, EwsOptions};
use crate::error::EwsError;
use crate::oauth::EwsTokens;
use crate::remote::EwsRemote;
use crate::transport::TokenSource;

/// Builds EWS clients; `options` apply to every connection.
#[derive(Clone, Debug, Default)]
pub struct EwsConnector {
    pub options: EwsOptions,
}

impl EwsConnector {
    pub fn new(options: EwsOptions) -> Self {
        EwsConnector { options }
    }

    /// A client for `settings` (with a token source for oauth2).
    pub fn client(&self, settings: &EwsSettings, secret: Secret) -> Result<EwsClient, EwsError> {
        let tokens: Option<Arc<dyn TokenSource>> = match settings.auth {
            EwsAuth::Oauth2 => Some(EwsTokens::new(settings, secret.clone())?),
            _ => None,
        };
        EwsClient::new(settings, secret, tokens, self.options.clone())
    }
}

fn settings_of(connection: &Connection) -> Result<&EwsSettings, RemoteError> {
    match &connection.settings {
        ConnectionSettings::Ews(s) => Ok(s),
        other => Err(RemoteError::Permanent(format!(
            "connection {:?} is of kind {}, not ews",
            connection.name,
            other.kind()
        ))),
    }
}

fn hint_of(e: &RemoteError) -> String {
    match e {
        RemoteError::Auth { hint, .. } => hint.clone(),
        RemoteError::NotFound(_) => {
            "no such mailbox in the organisation: check the address (its primary SMTP address)".into()
        }
        RemoteError::Transient(_) => {
            "the server did not answer: check the EWS url, DNS, the firewall, and that the server's certificate is \
             trusted (ca_file for an internal CA)"
                .into()
        }
        RemoteError::Throttled { .. } => "the server is throttling calbridge: try again in a few minutes".into(),
        _ => "see the detail for what Exchange answered".into(),
    }
}

#[async_trait]
impl Connector for EwsConnector {
    fn kind(&self) -> &'static str {
        "ews"
    }

    fn remote(&self, connection: &Connection, secret: Secret) -> Result<Arc<dyn Remote>, RemoteError> {
        let settings = settings_of(connection)?;
        let options = EwsOptions { max_in_flight: connection.max_threads.max(1) as usize, ..self.options.clone() };
        let client = EwsConnector::new(options).client(settings, secret).map_err(|e| e.classify())?;
        Ok(Arc::new(EwsRemote::new(client)))
    }

    async fn diagnose(&self, connection: &Connection, secret: Secret, probes: &[Probe]) -> Vec<Check> {
        let mut checks = Vec::new();
        let settings = match settings_of(connection) {
            Ok(s) => s,
            Err(e) => {
                checks.push(Check::fail("settings", e.to_string(), "create the connection with kind ews"));
                return checks;
            }
        };
        let tokens = match settings.auth {
            EwsAuth::Oauth2 => match EwsTokens::new(settings, secret.clone()) {
                Ok(t) => Some(t),
                Err(e) => {
                    checks.push(Check::fail("settings", e.to_string(), "fix the setting the message names"));
                    return checks;
                }
            },
            _ => None,
        };
        let client = match EwsClient::new(
            settings,
            secret,
            tokens.clone().map(|t| t as Arc<dyn TokenSource>),
            self.options.clone(),
        ) {
            Ok(c) => c,
            Err(e) => {
                checks.push(Check::fail("settings", e.to_string(), "fix the setting the message names"));
                return checks;
            }
        };
        checks.push(Check::pass(
            "settings",
            format!("{} with {} authentication, version {}", settings.url, settings.auth.as_str(), settings.version),
        ));
        let signed_in = match &tokens {
            Some(t) => match t.token().await {
                Ok(_) => {
                    checks.push(Check::pass("token", "the identity platform issued an app token for EWS"));
                    true
                }
                Err(e) => {
                    let e = e.classify();
                    checks.push(Check::fail("token", e.to_string(), hint_of(&e)));
                    false
                }
            },
            None => match client.room_lists().await {
                Err(e @ (EwsError::Unauthorized { .. } | EwsError::Transport { .. } | EwsError::Config { .. })) => {
                    let c = e.classify();
                    checks.push(Check::fail("credentials", c.to_string(), hint_of(&c)));
                    false
                }
                // Signed in; whatever else the server said about room lists does not matter here.
                _ => {
                    checks.push(Check::pass("credentials", format!("signed in as {}", settings.username.trim())));
                    true
                }
            },
        };
        let test = settings.test_mailbox.as_deref().map(str::trim).filter(|m| !m.is_empty());
        let mailboxes = test
            .map(|m| ("mailbox.test".to_string(), m))
            .into_iter()
            .chain(probes.iter().map(|p| (format!("mailbox.{}", p.kind.as_str()), p.email.as_str())));
        for (name, email) in mailboxes {
            if !signed_in {
                checks.push(Check::skip(name, format!("{email}: not checked, signing in failed")));
                continue;
            }
            let check = match open_calendar(&client, settings, email).await {
                Ok(detail) => Check::pass(name, detail),
                Err(c) if name == "mailbox.test" => {
                    let hint = test_mailbox_hint(&c, settings);
                    Check::fail(name, format!("{email}: {c}"), hint)
                }
                Err(c) => Check::fail(name, format!("{email}: {c}"), hint_of(&c)),
            };
            checks.push(check);
        }
        checks
    }
}

/// Opens the mailbox's calendar as the connection is configured to (impersonation or
/// delegation) and says what it found.
async fn open_calendar(client: &EwsClient, settings: &EwsSettings, email: &str) -> Result<String, RemoteError> {
    let how = if settings.impersonation { "by impersonation" } else { "by delegation" };
    let folder = client.calendar(email).await.map_err(|e| e.classify())?;
    Ok(format!(
        "opened the calendar of {email} {how}{}",
        folder.total_count.map(|n| format!(" ({n} items)")).unwrap_or_default()
    ))
}

/// The fix for a test mailbox that did not open: the setting itself, or the right the service
/// account lacks.
fn test_mailbox_hint(e: &RemoteError, settings: &EwsSettings) -> String {
    let right = if settings.impersonation {
        "the service account holds the ApplicationImpersonation role over it"
    } else {
        "the service account has Full Access to it (or set impersonation and grant the ApplicationImpersonation role)"
    };
    match e {
        RemoteError::NotFound(_) => format!(
            "no such mailbox in the organisation: set test_mailbox to the primary SMTP address of a mailbox that exists \
             and that calbridge may open ({right})"
        ),
        _ => hint_of(e),
    }
}
