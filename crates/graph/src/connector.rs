//! [`GraphConnector`]: calbridge-core's [`Connector`] for `graph` connections.
//!
//! `remote` builds a [`GraphRemote`] for a stored connection. `diagnose` runs the connection
//! test, each step a [`Check`]:
//!
//! 1. `settings`: the client can be built (ids present, URLs valid).
//! 2. `token`: the identity platform issues an app-only token; a refusal carries the AADSTS
//!    hint (wrong secret Value, expired secret, unknown client id, wrong tenant).
//! 3. `permissions`: the token's `roles` claim holds `Calendars.ReadWrite` (needed to push);
//!    `Calendars.Read` alone, or nothing, names the permission to grant with admin consent.
//! 4. per probe mailbox (one per linked kind, and the default organizer): `mailbox.{kind}`
//!    (`GET /users/{email}`: the mailbox exists; without `User.Read.All` this is skipped and
//!    the calendar check decides) and `calendar.{kind}` (`GET /users/{email}/calendars`: the
//!    app may read it; 403 names `Calendars.ReadWrite` and the application access policy, 404
//!    the address).
//!
//! After a failed token check the rest is skipped: nothing else can pass without a token.

use std::sync::Arc;

use async_trait::async_trait;
use calbridge_core::connector::{Check, CheckResult, Connector, InboundNotification, NotificationSignal, Probe};
use calbridge_core::model::{Connection, ConnectionSettings, Secret};
use calbridge_core::remote::{Remote, RemoteError};

use crate::client::{GraphClient, GraphOptions};
use crate::error::{api_hint, token_hint, GraphError};
use crate::remote::GraphRemote;

/// The permission calbridge needs to read and write calendars.
pub const CALENDARS_PERMISSION: &str = "Calendars.ReadWrite";

/// Builds and diagnoses Graph connections with the same client options.
#[derive(Clone, Debug, Default)]
pub struct GraphConnector {
    options: GraphOptions,
}

impl GraphConnector {
    pub fn new(options: GraphOptions) -> Self {
        GraphConnector { options }
    }

    fn client(&self, connection: &Connection, secret: Secret) -> Result<GraphClient, GraphError> {
        match &connection.settings {
            ConnectionSettings::Graph(g) => GraphClient::new(
                g,
                secret,
                GraphOptions { max_in_flight: connection.max_threads.max(1) as usize, ..self.options.clone() },
            ),
            #[allow(unreachable_patterns)]
            other => Err(GraphError::Config {
                message: format!("connection {} is of kind {}, not graph", connection.name, other.kind()),
            }),
        }
    }
}

/// What to do when Exchange refuses access to a mailbox.
fn access_denied_hint(email: &str) -> String {
    format!(
        "grant the app registration the Microsoft Graph application permission {CALENDARS_PERMISSION} with admin \
         consent, and if an application access policy limits the app, add {email} to its group \
         (New-ApplicationAccessPolicy / Test-ApplicationAccessPolicy)"
    )
}

fn hint_of(e: &GraphError) -> String {
    match e {
        GraphError::Token { aadsts, error, .. } => token_hint(*aadsts, error),
        GraphError::Api { status, code, .. } => api_hint(*status, code.as_deref()).to_string(),
        GraphError::Config { .. } => "correct the connection's settings".to_string(),
        _ => "check that authority_url and graph_url are right and reachable from this machine".to_string(),
    }
}

#[async_trait]
impl Connector for GraphConnector {
    fn kind(&self) -> &'static str {
        "graph"
    }

    fn read_notifications(&self, body: &[u8]) -> Option<Result<Vec<InboundNotification>, String>> {
        use crate::endpoints::notification::{parse, Signal};
        Some(parse(body).map_err(|e| e.to_string()).map(|batch| {
            batch
                .value
                .into_iter()
                .map(|n| InboundNotification {
                    signal: match n.signal() {
                        Signal::Reauthorize => NotificationSignal::Reauthorize,
                        Signal::Removed => NotificationSignal::Removed,
                        Signal::Changed | Signal::Missed | Signal::Other(_) => NotificationSignal::Changed,
                    },
                    subscription_id: n.subscription_id,
                    client_state: n.client_state,
                })
                .collect()
        }))
    }

    fn remote(&self, connection: &Connection, secret: Secret) -> Result<Arc<dyn Remote>, RemoteError> {
        let client = self.client(connection, secret).map_err(|e| e.classify())?;
        Ok(Arc::new(GraphRemote::new(client)))
    }

    async fn diagnose(&self, connection: &Connection, secret: Secret, probes: &[Probe]) -> Vec<Check> {
        let mut checks = Vec::new();
        let client = match self.client(connection, secret) {
            Ok(c) => {
                checks.push(Check::pass("settings", "tenant id, client id, client secret and URLs are usable"));
                c
            }
            Err(e) => {
                checks.push(Check::fail("settings", e.to_string(), hint_of(&e)));
                checks.push(Check::skip("token", "not run: the settings are not usable"));
                return checks;
            }
        };
        let roles = match client.granted_roles().await {
            Ok(roles) => {
                checks.push(Check::pass(
                    "token",
                    format!(
                        "the identity platform issued an app-only token for client {}",
                        client.settings().client_id
                    ),
                ));
                roles
            }
            Err(e) => {
                checks.push(Check::fail("token", e.to_string(), hint_of(&e)));
                checks.push(Check::skip("permissions", "not run: no access token"));
                for p in probes {
                    checks.push(Check::skip(format!("mailbox.{}", p.kind.as_str()), "not run: no access token"));
                }
                return checks;
            }
        };
        let has = |r: &str| roles.as_ref().is_some_and(|rs| rs.iter().any(|x| x.eq_ignore_ascii_case(r)));
        checks.push(match &roles {
            None => Check::skip("permissions", "the access token's permissions cannot be read; the mailbox checks decide"),
            Some(_) if has(CALENDARS_PERMISSION) => {
                Check::pass("permissions", format!("the token carries the application permission {CALENDARS_PERMISSION}"))
            }
            Some(rs) => Check::fail(
                "permissions",
                format!(
                    "the token carries the application permissions [{}] but not {CALENDARS_PERMISSION}",
                    rs.join(", ")
                ),
                format!(
                    "add the Microsoft Graph application permission {CALENDARS_PERMISSION} (not a delegated one) to the \
                     app registration and grant admin consent on its API permissions page"
                ),
            ),
        });
        if probes.is_empty() {
            checks.push(Check::skip(
                "mailboxes",
                "no mailbox to probe: link a calendar (or set a default organizer) and test again",
            ));
        }
        for p in probes {
            let kind = p.kind.as_str();
            match client.user(&p.email).await {
                Ok(u) => checks.push(Check::pass(
                    format!("mailbox.{kind}"),
                    format!("{} exists ({})", p.email, u.display_name.unwrap_or_default()),
                )),
                Err(e) if e.status() == Some(403) && e.code() == Some("Authorization_RequestDenied") => {
                    checks.push(Check::skip(
                        format!("mailbox.{kind}"),
                        "the app may not read the directory (no User.Read.All); the calendar check decides",
                    ))
                }
                Err(e) if e.status() == Some(404) => {
                    checks.push(Check::fail(
                        format!("mailbox.{kind}"),
                        format!("Exchange has no mailbox {}: {e}", p.email),
                        format!(
                            "check the address {} (it must be the mailbox's primary SMTP address) and that the {kind} \
                             mailbox exists in this tenant",
                            p.email
                        ),
                    ));
                    continue;
                }
                Err(e) if e.status() == Some(403) => {
                    checks.push(Check::fail(
                        format!("mailbox.{kind}"),
                        format!("Exchange refused access to the mailbox {}: {e}", p.email),
                        access_denied_hint(&p.email),
                    ));
                    continue;
                }
                Err(e) => {
                    checks.push(Check::fail(format!("mailbox.{kind}"), e.to_string(), hint_of(&e)));
                    continue;
                }
            }
            match client.calendars(&p.email).await {
                Ok(cals) => checks.push(Check::pass(
                    format!("calendar.{kind}"),
                    format!("calbridge may read the calendars of {} ({} found)", p.email, cals.len()),
                )),
                Err(e) if e.status() == Some(403) => checks.push(Check::fail(
                    format!("calendar.{kind}"),
                    format!("Exchange refused access to the calendar of {}: {e}", p.email),
                    access_denied_hint(&p.email),
                )),
                Err(e) => checks.push(Check::fail(format!("calendar.{kind}"), e.to_string(), hint_of(&e))),
            }
        }
        checks
    }
}

/// Whether every check passed or was skipped.
pub fn all_passed(checks: &[Check]) -> bool {
    checks.iter().all(|c| c.result != CheckResult::Fail)
}
