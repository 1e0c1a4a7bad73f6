//! Configuration: a TOML file plus environment variables, validated once, with errors that
//! name the key and the fix. The README's configuration reference documents every key.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde::Deserialize;

use calbridge_core::model::{
    CalendarKind, ConnectionSettings, EwsAuth, EwsSettings, GraphSettings, Secret, EWS_DEFAULT_MAX_CONNECTIONS,
};
use calbridge_core::planner::DeleteGuard;
use calbridge_core::policy::FreeBusyPolicy;

pub const DEFAULT_CONFIG: &str = "calbridge.toml";
pub const DEFAULT_STORE: &str = "sqlite://calbridge.db";
pub const DEFAULT_AUTHORITY: &str = "https://login.microsoftonline.com";
pub const DEFAULT_GRAPH: &str = "https://graph.microsoft.com";
pub const DEFAULT_EWS_VERSION: &str = "Exchange2016";
/// The `RequestServerVersion` values calbridge accepts for `version`.
pub const EWS_VERSIONS: &[&str] =
    &["Exchange2010", "Exchange2010_SP1", "Exchange2010_SP2", "Exchange2013", "Exchange2013_SP1", "Exchange2016"];

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    installation_id: Option<String>,
    store: Option<String>,
    #[serde(default)]
    sync: RawSync,
    #[serde(default)]
    connections: Vec<RawConnection>,
    #[serde(default)]
    sites: Vec<RawSite>,
    #[serde(default)]
    calendars: Vec<RawCalendar>,
    #[serde(default)]
    serve: RawServe,
    #[serde(default)]
    scheduling: RawScheduling,
}

/// `[scheduling]`: how sessions and bookings behave in Exchange.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawScheduling {
    learners: Option<String>,
    decline_on_delete: Option<bool>,
}

/// The `[scheduling]` table, validated.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SchedulingConfig {
    /// Learners of class sessions are invited separately (else with the session's meeting).
    pub learners_separately: bool,
    /// Deleting a booking made in Exchange from a resource calendar declines it.
    pub decline_on_delete: bool,
}

/// `[serve]`: the API server. Flags and environment variables win over the file.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawServe {
    listen: Option<String>,
    sync_interval_secs: Option<u64>,
    outbound_hosts: Option<Vec<String>>,
    webhook_max_attempts: Option<u32>,
    webhook_retry_secs: Option<u64>,
    master_key_file: Option<PathBuf>,
    public_url: Option<String>,
    reconcile_interval_secs: Option<u64>,
    lease_secs: Option<u64>,
    ews_notifications: Option<bool>,
    ews_pull_interval_secs: Option<u64>,
    ews_streaming_connections: Option<usize>,
}

/// The `[serve]` table, as given (unset keys take the flags' defaults).
#[derive(Debug, Clone, Default)]
pub struct ServeConfig {
    pub listen: Option<String>,
    pub sync_interval_secs: Option<u64>,
    pub outbound_hosts: Option<Vec<String>>,
    pub webhook_max_attempts: Option<u32>,
    pub webhook_retry_secs: Option<u64>,
    /// A file holding the master key (base64), when `CALBRIDGE_MASTER_KEY` is not set.
    pub master_key_file: Option<PathBuf>,
    /// The base URL Exchange reaches this server at (change notifications).
    pub public_url: Option<String>,
    /// Seconds between reconciles of calendars with change notifications.
    pub reconcile_interval_secs: Option<u64>,
    /// Seconds a worker's lease on a calendar lasts (PostgreSQL stores).
    pub lease_secs: Option<u64>,
    /// EWS change notifications (streaming, pull, polling); on unless false.
    pub ews_notifications: Option<bool>,
    /// Seconds between reads of EWS pull subscriptions.
    pub ews_pull_interval_secs: Option<u64>,
    /// Long-lived EWS streaming connections per server and connection (0: pull only).
    pub ews_streaming_connections: Option<usize>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawSync {
    window_past_days: Option<u32>,
    window_future_days: Option<u32>,
    working_elsewhere_blocks: Option<bool>,
    delete_guard_min: Option<usize>,
    delete_guard_fraction: Option<f64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConnection {
    name: String,
    kind: String,
    tenant_id: Option<String>,
    client_id: Option<String>,
    client_secret: Option<Secret>,
    client_secret_env: Option<String>,
    authority_url: Option<String>,
    graph_url: Option<String>,
    url: Option<String>,
    version: Option<String>,
    auth: Option<String>,
    username: Option<String>,
    password: Option<Secret>,
    password_env: Option<String>,
    impersonation: Option<bool>,
    max_connections: Option<u32>,
    ca_file: Option<String>,
    test_mailbox: Option<String>,
    default_organizer: Option<String>,
    max_threads: Option<u32>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSite {
    name: String,
    connection: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCalendar {
    email: String,
    kind: String,
    name: Option<String>,
    site: Option<String>,
    connection: Option<String>,
    #[serde(default)]
    busy_only: bool,
}

/// A validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub installation_id: String,
    pub store: String,
    pub sync: SyncConfig,
    pub connections: Vec<ConnectionConfig>,
    pub sites: Vec<SiteConfig>,
    pub calendars: Vec<CalendarConfig>,
    pub serve: ServeConfig,
    pub scheduling: SchedulingConfig,
    /// Where it was read from, if from a file.
    pub source: Option<PathBuf>,
}

#[derive(Debug, Clone)]
pub struct SyncConfig {
    pub window_past_days: u32,
    pub window_future_days: u32,
    pub policy: FreeBusyPolicy,
    pub delete_guard: DeleteGuard,
}

#[derive(Debug, Clone)]
pub struct ConnectionConfig {
    pub name: String,
    pub settings: ConnectionSettings,
    /// The client secret, or the error that says how to provide it.
    pub secret: Result<Secret, String>,
    pub default_organizer: Option<String>,
    pub max_threads: u32,
}

#[derive(Debug, Clone)]
pub struct SiteConfig {
    pub name: String,
    pub connection: String,
}

#[derive(Debug, Clone)]
pub struct CalendarConfig {
    pub email: String,
    pub kind: CalendarKind,
    pub name: String,
    pub site: Option<String>,
    pub connection: String,
    pub busy_only: bool,
}

/// Reads the environment through a function, so tests need not touch the process's.
pub type Env<'a> = &'a dyn Fn(&str) -> Option<String>;

pub fn process_env(key: &str) -> Option<String> {
    std::env::var(key).ok().filter(|v| !v.is_empty())
}

impl Config {
    /// Loads `path` (or `CALBRIDGE_CONFIG`, or `./calbridge.toml` if it exists; otherwise an
    /// empty configuration), then applies the environment.
    pub fn load(path: Option<&Path>, env: Env) -> Result<Config> {
        let chosen: Option<PathBuf> = match path {
            Some(p) => Some(p.to_path_buf()),
            None => match env("CALBRIDGE_CONFIG") {
                Some(p) => Some(PathBuf::from(p)),
                None => Some(PathBuf::from(DEFAULT_CONFIG)).filter(|p| p.exists()),
            },
        };
        let (text, source) = match &chosen {
            Some(p) => (
                std::fs::read_to_string(p).with_context(|| {
                    format!(
                        "cannot read the configuration file {}: check the path (--config or CALBRIDGE_CONFIG)",
                        p.display()
                    )
                })?,
                Some(p.clone()),
            ),
            None => (String::new(), None),
        };
        let mut cfg = Config::parse(&text, env)?;
        cfg.source = source;
        Ok(cfg)
    }

    /// Parses and validates configuration text, then applies the environment.
    pub fn parse(text: &str, env: Env) -> Result<Config> {
        let raw: RawConfig = toml::from_str(text).map_err(|e| {
            // Only the message and the position: the offending line may hold a secret.
            let at = e
                .span()
                .map(|span| {
                    let before = &text[..span.start.min(text.len())];
                    format!(" at line {}, column {}", before.matches('\n').count() + 1, before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1)
                })
                .unwrap_or_default();
            anyhow::anyhow!(
                "configuration error{at}: {}\nFix: see the configuration reference in the README for the accepted keys and their types",
                e.message().trim_end()
            )
        })?;
        let installation_id =
            env("CALBRIDGE_INSTALLATION_ID").or(raw.installation_id).unwrap_or_else(|| "calbridge".into());
        if installation_id.is_empty() || installation_id.contains(':') || installation_id.len() > 64 {
            bail!(
                "configuration error at installation_id: {installation_id:?} is not usable. \
                 Fix: use 1-64 characters without ':' (it tags every event calbridge creates in Exchange)"
            );
        }
        let store = env("CALBRIDGE_STORE").or(raw.store).unwrap_or_else(|| DEFAULT_STORE.into());
        let sync = SyncConfig {
            window_past_days: raw.sync.window_past_days.unwrap_or(30),
            window_future_days: raw.sync.window_future_days.unwrap_or(365),
            policy: FreeBusyPolicy { working_elsewhere_blocks: raw.sync.working_elsewhere_blocks.unwrap_or(false) },
            delete_guard: DeleteGuard {
                min_count: raw.sync.delete_guard_min.unwrap_or(20),
                max_fraction: raw.sync.delete_guard_fraction.unwrap_or(0.5),
            },
        };
        if sync.window_future_days == 0 || sync.window_future_days > 3650 {
            bail!(
                "configuration error at sync.window_future_days: {} is out of range. Fix: use 1 to 3650 (default 365)",
                sync.window_future_days
            );
        }
        if sync.window_past_days > 3650 {
            bail!(
                "configuration error at sync.window_past_days: {} is out of range. Fix: use 0 to 3650 (default 30)",
                sync.window_past_days
            );
        }
        if !(0.0..=1.0).contains(&sync.delete_guard.max_fraction) {
            bail!(
                "configuration error at sync.delete_guard_fraction: {} is not a fraction. Fix: use a number from 0.0 to 1.0 (default 0.5)",
                sync.delete_guard.max_fraction
            );
        }

        let mut names = HashSet::new();
        let mut connections = Vec::new();
        for (i, c) in raw.connections.into_iter().enumerate() {
            let at = |key: &str| format!("connections[{i}] ({}).{key}", c.name);
            if c.name.trim().is_empty() {
                bail!("configuration error at connections[{i}].name: empty. Fix: give every connection a unique name");
            }
            if !names.insert(c.name.clone()) {
                bail!("configuration error at connections[{i}].name: {:?} is used twice. Fix: connection names must be unique", c.name);
            }
            let need = |v: Option<String>, key: &str, example: &str| -> Result<String> {
                match v.filter(|s| !s.trim().is_empty()) {
                    Some(s) => Ok(s.trim().to_string()),
                    None => {
                        bail!("configuration error at {}: missing. Fix: set it, for example {key} = {example}", at(key))
                    }
                }
            };
            let url = |v: Option<String>, key: &str, default: &str| -> Result<String> {
                let u = v.unwrap_or_else(|| default.into()).trim().trim_end_matches('/').to_string();
                if !(u.starts_with("https://") || u.starts_with("http://")) {
                    bail!(
                        "configuration error at {}: {u:?} is not a URL. Fix: use an https:// URL (default {default})",
                        at(key)
                    );
                }
                Ok(u)
            };
            let env_key = |own: &Option<String>| own.clone().unwrap_or_else(|| secret_env_name(&c.name));
            // Checked when the connection is used: reading the store needs no secret.
            let secret_from =
                |env_key: String, inline: Option<Secret>, key: &str, what: &str| match (env(&env_key), inline) {
                    (Some(v), _) => Ok(Secret::new(v)),
                    (None, Some(v)) if !v.is_empty() => Ok(v),
                    _ => Err(format!(
                        "configuration error at {}: no {what}. Fix: set the environment variable {env_key}, \
                     or {key} in the file (keep the file private)",
                        at(key)
                    )),
                };
            let ews_only = [
                ("url", c.url.is_some()),
                ("version", c.version.is_some()),
                ("auth", c.auth.is_some()),
                ("username", c.username.is_some()),
                ("password", c.password.is_some()),
                ("password_env", c.password_env.is_some()),
                ("impersonation", c.impersonation.is_some()),
                ("max_connections", c.max_connections.is_some()),
                ("ca_file", c.ca_file.is_some()),
                ("test_mailbox", c.test_mailbox.is_some()),
            ];
            let (settings, secret) = match c.kind.as_str() {
                "graph" => {
                    if let Some((key, _)) = ews_only.iter().find(|(_, set)| *set) {
                        bail!(
                            "configuration error at {}: only EWS connections have it. Fix: remove it, or use kind = \"ews\"",
                            at(key)
                        );
                    }
                    let tenant_id = need(
                        c.tenant_id.clone(),
                        "tenant_id",
                        "\"contoso.onmicrosoft.com\" (the directory id or a verified domain)",
                    )?;
                    let client_id = need(
                        c.client_id.clone(),
                        "client_id",
                        "\"00000000-0000-0000-0000-000000000000\" (the app registration's Application (client) ID)",
                    )?;
                    let settings = ConnectionSettings::Graph(GraphSettings {
                        tenant_id,
                        client_id,
                        authority_url: url(c.authority_url.clone(), "authority_url", DEFAULT_AUTHORITY)?,
                        graph_url: url(c.graph_url.clone(), "graph_url", DEFAULT_GRAPH)?,
                    });
                    let secret =
                        secret_from(env_key(&c.client_secret_env), c.client_secret.clone(), "client_secret", "client secret");
                    (settings, secret)
                }
                "ews" => {
                    if c.graph_url.is_some() {
                        bail!("configuration error at {}: EWS connections have url instead. Fix: remove graph_url", at("graph_url"));
                    }
                    let ews_url = url(
                        Some(need(c.url.clone(), "url", "\"https://mail.contoso.com/EWS/Exchange.asmx\"")?),
                        "url",
                        "https://mail.contoso.com/EWS/Exchange.asmx",
                    )?;
                    let auth = match c.auth.as_deref().map(str::trim).unwrap_or("ntlm") {
                        "basic" => EwsAuth::Basic,
                        "ntlm" => EwsAuth::Ntlm,
                        "oauth2" => EwsAuth::Oauth2,
                        other => bail!(
                            "configuration error at {}: {other:?} is not an EWS authentication method. \
                             Fix: use \"ntlm\" (default, Exchange Server), \"basic\" or \"oauth2\" (Exchange Online)",
                            at("auth")
                        ),
                    };
                    let version = c.version.clone().map(|v| v.trim().to_string()).unwrap_or_else(|| DEFAULT_EWS_VERSION.into());
                    if !EWS_VERSIONS.contains(&version.as_str()) {
                        bail!(
                            "configuration error at {}: {version:?} is not an EWS version calbridge speaks. Fix: use one of {} \
                             (Exchange2013_SP1 for Exchange 2013, Exchange2016 for 2016, 2019 and Subscription Edition)",
                            at("version"),
                            EWS_VERSIONS.join(", ")
                        );
                    }
                    let max_connections = c.max_connections.unwrap_or(EWS_DEFAULT_MAX_CONNECTIONS);
                    if max_connections == 0 || max_connections > 256 {
                        bail!(
                            "configuration error at {}: {max_connections} is out of range. Fix: use 1 to 256 (default 27, Exchange's EWSMaxConcurrency)",
                            at("max_connections")
                        );
                    }
                    let (username, tenant_id, client_id, secret) = match auth {
                        EwsAuth::Basic | EwsAuth::Ntlm => (
                            need(c.username.clone(), "username", "\"CONTOSO\\\\svc-calbridge\" (the service account)")?,
                            String::new(),
                            String::new(),
                            secret_from(env_key(&c.password_env), c.password.clone(), "password", "password"),
                        ),
                        EwsAuth::Oauth2 => (
                            String::new(),
                            need(c.tenant_id.clone(), "tenant_id", "\"contoso.onmicrosoft.com\"")?,
                            need(c.client_id.clone(), "client_id", "\"00000000-0000-0000-0000-000000000000\"")?,
                            secret_from(env_key(&c.client_secret_env), c.client_secret.clone(), "client_secret", "client secret"),
                        ),
                    };
                    let test_mailbox = match c.test_mailbox.as_deref().map(str::trim) {
                        None | Some("") => None,
                        Some(m) if is_address(m) => Some(m.to_ascii_lowercase()),
                        Some(m) => bail!(
                            "configuration error at {}: {m:?} is not an e-mail address. Fix: use the primary SMTP \
                             address of a mailbox the service account may open (name@domain), or remove the key",
                            at("test_mailbox")
                        ),
                    };
                    let settings = ConnectionSettings::Ews(EwsSettings {
                        url: ews_url,
                        version,
                        auth,
                        username,
                        impersonation: c.impersonation.unwrap_or(true),
                        tenant_id,
                        client_id,
                        authority_url: match auth {
                            EwsAuth::Oauth2 => url(c.authority_url.clone(), "authority_url", DEFAULT_AUTHORITY)?,
                            _ => String::new(),
                        },
                        max_connections,
                        ca_file: c.ca_file.clone().filter(|f| !f.trim().is_empty()),
                        test_mailbox,
                    });
                    (settings, secret)
                }
                other => bail!(
                    "configuration error at {}: {other:?} is not a known kind. Fix: use kind = \"graph\" (Exchange Online over \
                     Microsoft Graph) or kind = \"ews\" (Exchange Server, or Exchange Online, over EWS)",
                    at("kind")
                ),
            };
            let max_threads = c.max_threads.unwrap_or(4);
            if max_threads == 0 || max_threads > 64 {
                bail!(
                    "configuration error at {}: {max_threads} is out of range. Fix: use 1 to 64 (default 4)",
                    at("max_threads")
                );
            }
            connections.push(ConnectionConfig {
                settings,
                name: c.name,
                secret,
                default_organizer: c.default_organizer.map(|s| s.to_ascii_lowercase()),
                max_threads,
            });
        }

        let mut sites = Vec::new();
        for (i, s) in raw.sites.into_iter().enumerate() {
            if !names.contains(&s.connection) {
                bail!(
                    "configuration error at sites[{i}] ({}).connection: no connection named {:?}. Fix: use one of: {}",
                    s.name,
                    s.connection,
                    list(&names)
                );
            }
            sites.push(SiteConfig { name: s.name, connection: s.connection });
        }

        let mut emails = HashSet::new();
        let mut calendars = Vec::new();
        for (i, c) in raw.calendars.into_iter().enumerate() {
            let email = c.email.trim().to_ascii_lowercase();
            let at = |key: &str| format!("calendars[{i}] ({email}).{key}");
            if !email.contains('@') || email.starts_with('@') || email.ends_with('@') {
                bail!("configuration error at calendars[{i}].email: {:?} is not an e-mail address. Fix: use the mailbox's primary SMTP address", c.email);
            }
            if !emails.insert(email.clone()) {
                bail!("configuration error at {}: linked twice. Fix: list each mailbox once", at("email"));
            }
            let Some(kind) = CalendarKind::parse(&c.kind) else {
                bail!(
                    "configuration error at {}: {:?} is not a kind. Fix: use \"person\", \"room\" or \"equipment\"",
                    at("kind"),
                    c.kind
                );
            };
            let connection = match (&c.site, &c.connection) {
                (Some(site), conn) => {
                    let Some(s) = sites.iter().find(|s| &s.name == site) else {
                        bail!("configuration error at {}: no site named {site:?}. Fix: add it under [[sites]] or correct the name", at("site"));
                    };
                    if let Some(conn) = conn {
                        if conn != &s.connection {
                            bail!(
                                "configuration error at {}: {conn:?} differs from the site's connection {:?}. Fix: a calendar in a site uses the site's connection; remove `connection`",
                                at("connection"),
                                s.connection
                            );
                        }
                    }
                    s.connection.clone()
                }
                (None, Some(conn)) => {
                    if !names.contains(conn) {
                        bail!("configuration error at {}: no connection named {conn:?}. Fix: use one of: {}", at("connection"), list(&names));
                    }
                    conn.clone()
                }
                (None, None) => bail!(
                    "configuration error at calendars[{i}] ({email}): no site and no connection. Fix: set site = \"...\" or connection = \"...\""
                ),
            };
            calendars.push(CalendarConfig {
                name: c.name.unwrap_or_else(|| email.clone()),
                email,
                kind,
                site: c.site,
                connection,
                busy_only: c.busy_only,
            });
        }
        let serve = ServeConfig {
            listen: raw.serve.listen,
            sync_interval_secs: raw.serve.sync_interval_secs,
            outbound_hosts: raw.serve.outbound_hosts,
            webhook_max_attempts: raw.serve.webhook_max_attempts,
            webhook_retry_secs: raw.serve.webhook_retry_secs,
            master_key_file: raw.serve.master_key_file,
            public_url: raw.serve.public_url,
            reconcile_interval_secs: raw.serve.reconcile_interval_secs,
            lease_secs: raw.serve.lease_secs,
            ews_notifications: raw.serve.ews_notifications,
            ews_pull_interval_secs: raw.serve.ews_pull_interval_secs,
            ews_streaming_connections: raw.serve.ews_streaming_connections,
        };
        if serve.ews_pull_interval_secs == Some(0) {
            bail!("configuration error at serve.ews_pull_interval_secs: 0. Fix: use 1 or more (default 15)");
        }
        if serve.webhook_max_attempts == Some(0) {
            bail!("configuration error at serve.webhook_max_attempts: 0. Fix: use 1 or more (default 12)");
        }
        let learners_separately = match raw.scheduling.learners.as_deref().map(str::trim) {
            None | Some("with_session") => false,
            Some("separately") => true,
            Some(other) => bail!(
                "configuration error at scheduling.learners: {other:?}. Fix: use \"with_session\" (learners are \
                 optional attendees of the session's meeting, the default) or \"separately\" (an invitation each)"
            ),
        };
        let scheduling = SchedulingConfig {
            learners_separately,
            decline_on_delete: raw.scheduling.decline_on_delete.unwrap_or(false),
        };
        Ok(Config { installation_id, store, sync, connections, sites, calendars, serve, scheduling, source: None })
    }
}

/// `CALBRIDGE_<NAME>_CLIENT_SECRET`, the name upper-cased with non-alphanumerics as `_`.
/// Whether `v` looks like an SMTP address: one `@` between a non-empty local part and a domain,
/// no spaces or characters that separate addresses.
fn is_address(v: &str) -> bool {
    v.len() <= 254
        && !v.chars().any(|c| c.is_whitespace() || c.is_control() || matches!(c, '<' | '>' | '"' | ',' | ';'))
        && matches!(v.split_once('@'), Some((local, domain))
            if !local.is_empty() && !domain.is_empty() && !domain.contains('@') && !domain.starts_with('.'))
}

pub fn secret_env_name(connection: &str) -> String {
    let name: String =
        connection.chars().map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_uppercase() } else { '_' }).collect();
    format!("CALBRIDGE_{name}_CLIENT_SECRET")
}

fn list(names: &HashSet<String>) -> String {
    let mut v: Vec<&String> = names.iter().collect();
    v.sort();
    if v.is_empty() {
        "(none configured)".into()
    } else {
        v.into_iter().map(|s| format!("{s:?}")).collect::<Vec<_>>().join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_env(_: &str) -> Option<String> {
        None
    }

    const GOOD: &str = r#"
installation_id = "acme-lms"
store = "sqlite://x.db"
[sync]
window_past_days = 7
[[connections]]
name = "contoso"
kind = "graph"
tenant_id = "contoso.example"
client_id = "11111111-2222-3333-4444-555555555555"
client_secret = "s3cret"
default_organizer = "Scheduler@Contoso.example"
[[sites]]
name = "North"
connection = "contoso"
[[calendars]]
email = "Room1@Contoso.example"
kind = "room"
site = "North"
[[calendars]]
email = "ann@contoso.example"
kind = "person"
connection = "contoso"
busy_only = true
"#;

    #[test]
    fn a_good_file_parses_with_defaults_and_normalised_addresses() {
        let c = Config::parse(GOOD, &no_env).unwrap();
        assert_eq!(c.installation_id, "acme-lms");
        assert_eq!(c.sync.window_past_days, 7);
        assert_eq!(c.sync.window_future_days, 365);
        assert_eq!(c.calendars[0].email, "room1@contoso.example");
        assert_eq!(c.calendars[0].connection, "contoso");
        assert_eq!(c.connections[0].default_organizer.as_deref(), Some("scheduler@contoso.example"));
        let ConnectionSettings::Graph(g) = &c.connections[0].settings else { panic!("a graph connection") };
        assert_eq!(g.authority_url, DEFAULT_AUTHORITY);
        assert_eq!(c.connections[0].secret.as_ref().unwrap().expose(), "s3cret");
        assert!(!format!("{:?}", c).contains("s3cret"), "secrets must not appear in Debug output");
    }

    #[test]
    fn environment_overrides_store_and_secret() {
        let env = |k: &str| match k {
            "CALBRIDGE_STORE" => Some("sqlite://other.db".to_string()),
            "CALBRIDGE_CONTOSO_CLIENT_SECRET" => Some("from-env".to_string()),
            _ => None,
        };
        let c = Config::parse(GOOD, &env).unwrap();
        assert_eq!(c.store, "sqlite://other.db");
        assert_eq!(c.connections[0].secret.as_ref().unwrap().expose(), "from-env");
    }

    #[test]
    fn errors_name_the_key_and_the_fix() {
        let bad = GOOD.replace("tenant_id = \"contoso.example\"\n", "");
        let e = Config::parse(&bad, &no_env).unwrap_err().to_string();
        assert!(e.contains("connections[0] (contoso).tenant_id") && e.contains("Fix:"), "{e}");

        let bad = GOOD.replace("kind = \"room\"", "kind = \"hall\"");
        let e = Config::parse(&bad, &no_env).unwrap_err().to_string();
        assert!(e.contains("calendars[0] (room1@contoso.example).kind") && e.contains("\"room\""), "{e}");

        let bad = GOOD.replace("client_secret = \"s3cret\"\n", "");
        let c = Config::parse(&bad, &no_env).expect("a missing secret is reported when the connection is used");
        let e = c.connections[0].secret.clone().unwrap_err();
        assert!(
            e.contains("connections[0] (contoso).client_secret") && e.contains("CALBRIDGE_CONTOSO_CLIENT_SECRET"),
            "{e}"
        );

        let bad = GOOD.replace("[sync]", "[sync]\nwindow_futur_days = 3");
        let e = Config::parse(&bad, &no_env).unwrap_err().to_string();
        assert!(e.contains("window_futur_days"), "{e}");

        let bad = GOOD.replace("site = \"North\"", "site = \"South\"");
        let e = Config::parse(&bad, &no_env).unwrap_err().to_string();
        assert!(e.contains("no site named \"South\""), "{e}");

        let bad = format!("{GOOD}\n[scheduling]\nlearners = \"apart\"\n");
        let e = Config::parse(&bad, &no_env).unwrap_err().to_string();
        assert!(e.contains("scheduling.learners") && e.contains("\"separately\""), "{e}");
    }

    #[test]
    fn scheduling_options_default_off_and_parse() {
        assert_eq!(Config::parse(GOOD, &no_env).unwrap().scheduling, SchedulingConfig::default());
        let on = format!("{GOOD}\n[scheduling]\nlearners = \"separately\"\ndecline_on_delete = true\n");
        let c = Config::parse(&on, &no_env).unwrap();
        assert_eq!(c.scheduling, SchedulingConfig { learners_separately: true, decline_on_delete: true });
    }

    #[test]
    fn syntax_errors_give_the_position_but_not_the_line() {
        let bad = GOOD.replace("client_secret = \"s3cret\"", "client_secret = \"s3cret");
        let e = Config::parse(&bad, &no_env).unwrap_err().to_string();
        assert!(e.contains("line 11"), "{e}");
        assert!(!e.contains("s3cret"), "a syntax error must not quote the secret: {e}");
    }

    const EWS: &str = r#"
[[connections]]
name = "fabrikam-onprem"
kind = "ews"
url = "https://mail.fabrikam.example/EWS/Exchange.asmx"
username = "FABRIKAM\\svc-calbridge"
password = "pa55"
"#;

    #[test]
    fn an_ews_connection_parses_with_defaults() {
        let c = Config::parse(EWS, &no_env).unwrap();
        let ConnectionSettings::Ews(e) = &c.connections[0].settings else { panic!("an ews connection") };
        assert_eq!(e.url, "https://mail.fabrikam.example/EWS/Exchange.asmx");
        assert_eq!(
            (e.auth, e.version.as_str(), e.impersonation, e.max_connections),
            (EwsAuth::Ntlm, "Exchange2016", true, 27)
        );
        assert_eq!(e.username, "FABRIKAM\\svc-calbridge");
        assert_eq!(c.connections[0].secret.as_ref().unwrap().expose(), "pa55");
        let env = |k: &str| (k == "CALBRIDGE_FABRIKAM_ONPREM_CLIENT_SECRET").then(|| "from-env".to_string());
        assert_eq!(Config::parse(EWS, &env).unwrap().connections[0].secret.as_ref().unwrap().expose(), "from-env");
    }

    #[test]
    fn ews_errors_name_the_key_and_the_fix() {
        let e = Config::parse(&EWS.replace("kind = \"ews\"", "kind = \"ews\"\nauth = \"kerberos\""), &no_env)
            .unwrap_err()
            .to_string();
        assert!(e.contains("connections[0] (fabrikam-onprem).auth") && e.contains("\"ntlm\""), "{e}");
        let e = Config::parse(&EWS.replace("kind = \"ews\"", "kind = \"ews\"\nversion = \"Exchange2019\""), &no_env)
            .unwrap_err()
            .to_string();
        assert!(e.contains(".version") && e.contains("Exchange2016"), "{e}");
        let e = Config::parse(&EWS.replace("username = \"FABRIKAM\\\\svc-calbridge\"\n", ""), &no_env)
            .unwrap_err()
            .to_string();
        assert!(e.contains(".username: missing"), "{e}");
        let e = Config::parse(&EWS.replace("kind = \"ews\"", "kind = \"graph\""), &no_env).unwrap_err().to_string();
        assert!(e.contains(".url: only EWS connections have it"), "{e}");
        let e = Config::parse(&EWS.replace("https://mail", "ftp://mail"), &no_env).unwrap_err().to_string();
        assert!(e.contains(".url") && !e.contains("pa55"), "{e}");
    }

    #[test]
    fn an_ews_test_mailbox_is_an_address_and_ews_only() {
        let c = Config::parse(
            &EWS.replace("password = ", "test_mailbox = \" Ann@Fabrikam.example \"\npassword = "),
            &no_env,
        )
        .unwrap();
        let ConnectionSettings::Ews(e) = &c.connections[0].settings else { panic!("an ews connection") };
        assert_eq!(e.test_mailbox.as_deref(), Some("ann@fabrikam.example"));
        let ConnectionSettings::Ews(e) = &Config::parse(EWS, &no_env).unwrap().connections[0].settings else {
            panic!("an ews connection")
        };
        assert_eq!(e.test_mailbox, None, "optional");
        for bad in ["ann", "ann@", "ann smith@fabrikam.example", "a@b@c"] {
            let text = EWS.replace("password = ", &format!("test_mailbox = {bad:?}\npassword = "));
            let e = Config::parse(&text, &no_env).unwrap_err().to_string();
            assert!(
                e.contains("connections[0] (fabrikam-onprem).test_mailbox") && e.contains("name@domain"),
                "{bad}: {e}"
            );
        }
        let graph = GOOD.replace("kind = \"graph\"", "kind = \"graph\"\ntest_mailbox = \"a@b.example\"");
        let e = Config::parse(&graph, &no_env).unwrap_err().to_string();
        assert!(e.contains(".test_mailbox: only EWS connections have it"), "{e}");
    }

    #[test]
    fn the_serve_table_is_read_and_checked() {
        let text = format!(
            "{GOOD}\n[serve]\nlisten = \"0.0.0.0:9000\"\nsync_interval_secs = 60\noutbound_hosts = [\"graph.microsoft.com\"]\nmaster_key_file = \"/etc/calbridge/key\"\n"
        );
        let c = Config::parse(&text, &no_env).unwrap();
        assert_eq!(c.serve.listen.as_deref(), Some("0.0.0.0:9000"));
        assert_eq!(c.serve.sync_interval_secs, Some(60));
        assert_eq!(c.serve.outbound_hosts, Some(vec!["graph.microsoft.com".to_string()]));
        assert_eq!(c.serve.master_key_file, Some(PathBuf::from("/etc/calbridge/key")));
        let e = Config::parse(&format!("{GOOD}\n[serve]\nmaster_key = \"x\"\n"), &no_env).unwrap_err().to_string();
        assert!(e.contains("master_key"), "the key itself never goes in the file: {e}");
    }

    #[test]
    fn secrets_never_appear_in_errors() {
        let bad = GOOD.replace("kind = \"graph\"", "kind = \"grpah\"");
        let e = Config::parse(&bad, &no_env).unwrap_err().to_string();
        assert!(!e.contains("s3cret"), "{e}");
    }
}
