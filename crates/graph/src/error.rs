//! `GraphError`, everything that can go wrong talking to Microsoft Graph and the identity
//! platform, and its classification into the engine's [`RemoteError`] classes.
//!
//! Every message says what failed, why (Graph's `code` and `message`, or the `AADSTS` code
//! and `error_description`) and what to do. Messages never contain the client secret or the
//! access token: the client redacts both from anything a server sent back before it lands in
//! an error.

use std::time::Duration;

use calbridge_core::remote::RemoteError;

/// A failed Graph or token operation.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum GraphError {
    /// Graph answered with an error status (`{"error": {"code": ..., "message": ...}}`).
    #[error(
        "{operation} failed: Microsoft Graph answered HTTP {status}{}: {message}{}. Fix: {}",
        code.as_deref().map(|c| format!(" {c}")).unwrap_or_default(),
        request_id.as_deref().map(|r| format!(" (request-id {r})")).unwrap_or_default(),
        api_hint(*status, code.as_deref())
    )]
    Api {
        operation: &'static str,
        status: u16,
        /// Graph's error `code` (`ErrorItemNotFound`, `syncStateNotFound`, ...), when the
        /// body carried one.
        code: Option<String>,
        /// Graph's error `message`, or the start of the body when it was not Graph JSON.
        message: String,
        /// `Retry-After` of a 429/503, when Graph sent one.
        retry_after: Option<Duration>,
        /// Graph's `request-id` response header, for Microsoft support.
        request_id: Option<String>,
    },

    /// The identity platform refused to issue an access token.
    #[error(
        "getting an access token failed: the identity platform answered HTTP {status} {error}: {error_description}. Fix: {}",
        token_hint(*aadsts, error)
    )]
    Token {
        status: u16,
        /// OAuth2 `error`: `invalid_client`, `unauthorized_client`, `invalid_scope`, ...
        error: String,
        /// The AADSTS code (`7000215` for `AADSTS7000215`), from `error_codes` or the
        /// description.
        aadsts: Option<u64>,
        error_description: String,
    },

    /// The request could not be sent or no answer arrived (DNS, connect, TLS, timeout).
    #[error("{operation} failed: no answer from {url}: {message}. Fix: check that the URL is right and reachable from this machine (proxy, firewall, DNS); calbridge retries later")]
    Transport { operation: &'static str, url: String, message: String },

    /// The answer's body could not be read to the end.
    #[error("{operation} failed: the answer from Microsoft Graph broke off while it was read: {message}. Fix: none needed if it is rare, calbridge retries later; check the network otherwise")]
    Body { operation: &'static str, message: String },

    /// The answer was not what the documented API returns.
    #[error("{operation} failed: the answer could not be understood: {message}. Fix: check that graph_url points at Microsoft Graph (or the calbridge simulator); report it if it does")]
    Decode { operation: &'static str, message: String },

    /// A URL Graph handed back (`@odata.nextLink`, `@odata.deltaLink`) or a saved cursor points
    /// at another host than the configured `graph_url`. calbridge never sends the token there.
    #[error("{operation} refused: the link {url} points at {host}, not at the configured graph_url {expected}; the access token is never sent elsewhere. Fix: check graph_url; clear the mailbox's sync cursor if it was saved under another graph_url")]
    ForeignHost { operation: &'static str, url: String, host: String, expected: String },

    /// The connection's settings cannot be used.
    #[error("the Graph connection settings are invalid: {message}")]
    Config { message: String },

    /// calbridge refused to send a request that could do harm (an update without a version
    /// would overwrite whatever Exchange holds). Nothing was sent.
    #[error("{operation} refused: {message}")]
    Refused { operation: &'static str, message: String },
}

impl GraphError {
    /// The HTTP status Graph or the identity platform answered, if any.
    pub fn status(&self) -> Option<u16> {
        match self {
            GraphError::Api { status, .. } | GraphError::Token { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// Graph's error `code`, if any.
    pub fn code(&self) -> Option<&str> {
        match self {
            GraphError::Api { code, .. } => code.as_deref(),
            GraphError::Token { error, .. } => Some(error),
            _ => None,
        }
    }

    /// The one classification of this error for the engine (see the table in the crate docs).
    pub fn classify(&self) -> RemoteError {
        match self {
            GraphError::Token { status, error, aadsts, .. } => {
                if *status == 429 {
                    RemoteError::Throttled { retry_after: None }
                } else if *status >= 500 {
                    RemoteError::Transient(self.to_string())
                } else {
                    RemoteError::Auth {
                        message: format!("getting an access token failed: {}", self.short_token_message()),
                        hint: token_hint(*aadsts, error),
                    }
                }
            }
            GraphError::Api { status, code, retry_after, .. } => {
                let code = code.as_deref().unwrap_or("");
                let is = |c: &str| code.eq_ignore_ascii_case(c);
                if *status == 410
                    || is("syncStateNotFound")
                    || is("resyncRequired")
                    || is("syncStateInvalid")
                    || is("fullSyncRequired")
                {
                    RemoteError::CursorExpired
                } else if *status == 429 || *status == 503 {
                    RemoteError::Throttled { retry_after: *retry_after }
                } else if *status == 412 || is("ErrorIrresolvableConflict") {
                    RemoteError::VersionConflict
                } else if *status == 404 || is("ErrorItemNotFound") || is("MailboxNotEnabledForRESTAPI") {
                    RemoteError::NotFound(self.to_string())
                } else if *status == 401 || *status == 403 {
                    RemoteError::Auth { message: self.without_fix(), hint: api_hint(*status, Some(code)).to_string() }
                } else if *status >= 500 || *status == 408 {
                    RemoteError::Transient(self.to_string())
                } else {
                    RemoteError::Permanent(self.to_string())
                }
            }
            GraphError::Transport { .. } | GraphError::Body { .. } => RemoteError::Transient(self.to_string()),
            GraphError::Decode { .. }
            | GraphError::ForeignHost { .. }
            | GraphError::Config { .. }
            | GraphError::Refused { .. } => RemoteError::Permanent(self.to_string()),
        }
    }

    fn short_token_message(&self) -> String {
        match self {
            GraphError::Token { status, error, error_description, .. } => {
                format!("the identity platform answered HTTP {status} {error}: {error_description}")
            }
            other => other.to_string(),
        }
    }

    /// The message without the trailing "Fix: ..." (for `RemoteError::Auth`, which carries the
    /// hint separately).
    fn without_fix(&self) -> String {
        let s = self.to_string();
        match s.rfind(". Fix: ") {
            Some(i) => s[..i].to_string(),
            None => s,
        }
    }
}

impl GraphError {
    /// The same error with every occurrence of `secrets` (the client secret, the access
    /// token) in what a server sent back replaced by `***`.
    pub(crate) fn redacted(self, secrets: &[&str]) -> GraphError {
        let r = |s: String| redact(&s, secrets);
        match self {
            GraphError::Api { operation, status, code, message, retry_after, request_id } => {
                GraphError::Api { operation, status, code: code.map(r), message: r(message), retry_after, request_id }
            }
            GraphError::Token { status, error, aadsts, error_description } => {
                GraphError::Token { status, error: r(error), aadsts, error_description: r(error_description) }
            }
            GraphError::Transport { operation, url, message } => {
                GraphError::Transport { operation, url: r(url), message: r(message) }
            }
            GraphError::Body { operation, message } => GraphError::Body { operation, message: r(message) },
            GraphError::Decode { operation, message } => GraphError::Decode { operation, message: r(message) },
            GraphError::ForeignHost { operation, url, host, expected } => {
                GraphError::ForeignHost { operation, url: r(url), host, expected }
            }
            GraphError::Config { message } => GraphError::Config { message: r(message) },
            GraphError::Refused { operation, message } => GraphError::Refused { operation, message: r(message) },
        }
    }
}

/// `s` with each of `secrets` (those of at least 4 characters) replaced by `***`.
pub(crate) fn redact(s: &str, secrets: &[&str]) -> String {
    let mut out = s.to_string();
    for secret in secrets {
        if secret.len() >= 4 && out.contains(secret) {
            out = out.replace(secret, "***");
        }
    }
    out
}

impl From<GraphError> for RemoteError {
    fn from(e: GraphError) -> Self {
        e.classify()
    }
}

/// What to do about a Graph error status / code.
pub fn api_hint(status: u16, code: Option<&str>) -> &'static str {
    let code = code.unwrap_or("");
    let is = |c: &str| code.eq_ignore_ascii_case(c);
    if status == 410
        || is("syncStateNotFound")
        || is("resyncRequired")
        || is("syncStateInvalid")
        || is("fullSyncRequired")
    {
        return "none needed: the sync cursor expired, calbridge re-lists the window and reconciles";
    }
    if is("MailboxNotEnabledForRESTAPI") {
        return "the mailbox is inactive, soft-deleted, hosted on premises or has no Exchange Online licence; \
                license it in Exchange Online, or link it through an EWS connection if it is on premises";
    }
    if is("Authorization_RequestDenied") {
        return "the app may not read the directory: grant the application permission User.Read.All with admin \
                consent, or rely on the calendar check (Calendars.ReadWrite)";
    }
    if is("ErrorAccessDenied") || status == 403 {
        return "grant the app registration the Microsoft Graph application permission Calendars.ReadWrite with \
                admin consent (API permissions page), or check the Exchange application access policy \
                (Get-ApplicationAccessPolicy) that limits the app to certain mailboxes";
    }
    match status {
        401 => {
            "the access token was rejected: check that tenant_id is the tenant that holds the mailboxes and that \
             graph_url and authority_url belong to the same cloud"
        }
        404 => {
            "check the mailbox's SMTP address (the user may not exist, or have no Exchange Online mailbox); \
             for an item, it was deleted in Exchange"
        }
        412 | 409 => "none needed: the event changed in Exchange since calbridge read it; the next pull brings it",
        429 | 503 => {
            "Microsoft Graph is throttling this app or mailbox; calbridge waits as told and retries. If it persists, \
             lower the connection's max threads or sync less often"
        }
        408 | 500..=599 => "a temporary Microsoft Graph failure; calbridge retries later",
        _ => "Graph refused the request as invalid; if the data looks right, report it as a calbridge bug with the request id",
    }
}

/// What to do about a token endpoint error.
pub fn token_hint(aadsts: Option<u64>, error: &str) -> String {
    let hint = match aadsts {
        Some(7000215) => {
            "the client secret is wrong: paste the secret's Value (not its Secret ID) from the app registration's \
             Certificates & secrets page"
        }
        Some(7000222) => {
            "the client secret has expired: create a new one on the app registration's Certificates & secrets page \
             and paste its Value"
        }
        Some(7000218) | Some(900144) => "the client secret is missing: set the connection's client secret",
        Some(700016) => {
            "the client id was not found in the tenant: copy the Application (client) ID from the app registration's \
             Overview page, and check that tenant_id is the tenant where the app is registered (or that the app was \
             consented to in it)"
        }
        Some(90002) | Some(900023) | Some(90023) => {
            "the tenant id or domain is wrong: use the Directory (tenant) ID from the app registration's Overview \
             page, or a verified domain of the tenant"
        }
        Some(1002012) | Some(70011) => {
            "the scope is invalid: it must end in /.default (https://graph.microsoft.com/.default)"
        }
        Some(7000112) => "the application is disabled: enable it in Enterprise applications",
        Some(53003) => {
            "a Conditional Access policy blocked the app: exclude the app's service principal from the policy"
        }
        Some(500011) => "Microsoft Graph is not available in this tenant or cloud: check authority_url and graph_url",
        Some(700024) | Some(700027) => "the client credential is invalid: use a client secret of this app registration",
        _ => match error {
            "invalid_scope" => "the scope is invalid: it must end in /.default (https://graph.microsoft.com/.default)",
            "invalid_client" => {
                "the client credentials were refused: check the client id and paste the secret's Value (not its \
                 Secret ID)"
            }
            "unauthorized_client" => {
                "the app is not allowed to use client credentials in this tenant: check the client id and tenant id"
            }
            _ => "check the connection's tenant id, client id and client secret against the app registration",
        },
    };
    hint.to_string()
}

/// The AADSTS code of a token error: the first of `error_codes`, or the number after
/// `AADSTS` in the description.
pub fn aadsts_code(error_codes: &[u64], description: &str) -> Option<u64> {
    if let Some(c) = error_codes.first() {
        return Some(*c);
    }
    let (_, after) = description.split_once("AADSTS")?;
    let digits: String = after.chars().take_while(|c| c.is_ascii_digit()).collect();
    digits.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn api(status: u16, code: &str) -> GraphError {
        GraphError::Api {
            operation: "test",
            status,
            code: (!code.is_empty()).then(|| code.to_string()),
            message: "m".into(),
            retry_after: None,
            request_id: None,
        }
    }

    #[test]
    fn classification_table() {
        assert_eq!(api(429, "").classify(), RemoteError::Throttled { retry_after: None });
        let t = GraphError::Api {
            operation: "x",
            status: 503,
            code: None,
            message: String::new(),
            retry_after: Some(Duration::from_secs(7)),
            request_id: None,
        };
        assert_eq!(t.classify(), RemoteError::Throttled { retry_after: Some(Duration::from_secs(7)) });
        assert_eq!(api(410, "").classify(), RemoteError::CursorExpired);
        assert_eq!(api(400, "syncStateNotFound").classify(), RemoteError::CursorExpired);
        assert_eq!(api(400, "resyncRequired").classify(), RemoteError::CursorExpired);
        assert_eq!(api(412, "").classify(), RemoteError::VersionConflict);
        assert_eq!(api(409, "ErrorIrresolvableConflict").classify(), RemoteError::VersionConflict);
        assert!(matches!(api(404, "").classify(), RemoteError::NotFound(_)));
        assert!(matches!(api(400, "ErrorItemNotFound").classify(), RemoteError::NotFound(_)));
        assert!(matches!(api(401, "InvalidAuthenticationToken").classify(), RemoteError::Auth { .. }));
        match api(403, "ErrorAccessDenied").classify() {
            RemoteError::Auth { hint, message } => {
                assert!(hint.contains("Calendars.ReadWrite") && hint.contains("admin consent"), "{hint}");
                assert!(hint.contains("application access policy"), "{hint}");
                assert!(!message.contains("Fix:"), "{message}");
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(api(500, "").classify(), RemoteError::Transient(_)));
        assert!(matches!(api(502, "").classify(), RemoteError::Transient(_)));
        assert!(matches!(api(400, "ErrorInvalidRequest").classify(), RemoteError::Permanent(_)));
        assert!(matches!(api(400, "ErrorOccurrenceCrossingBoundary").classify(), RemoteError::Permanent(_)));
        let transport = GraphError::Transport { operation: "x", url: "u".into(), message: "refused".into() };
        assert!(matches!(transport.classify(), RemoteError::Transient(_)));
        let body = GraphError::Body { operation: "x", message: "eof".into() };
        assert!(matches!(body.classify(), RemoteError::Transient(_)));
    }

    fn token(aadsts: u64, error: &str) -> GraphError {
        GraphError::Token {
            status: 401,
            error: error.into(),
            aadsts: Some(aadsts),
            error_description: format!("AADSTS{aadsts}: something"),
        }
    }

    #[test]
    fn token_errors_are_auth_with_a_hint_naming_the_fix() {
        let hint = |e: GraphError| match e.classify() {
            RemoteError::Auth { hint, .. } => hint,
            other => panic!("{other:?}"),
        };
        assert!(hint(token(7000215, "invalid_client")).contains("Value (not its Secret ID)"));
        assert!(hint(token(700016, "unauthorized_client")).contains("client id was not found in the tenant"));
        assert!(hint(token(90002, "invalid_request")).contains("tenant id or domain is wrong"));
        assert!(hint(token(1002012, "invalid_scope")).contains("/.default"));
        let no_code = GraphError::Token {
            status: 400,
            error: "invalid_scope".into(),
            aadsts: None,
            error_description: String::new(),
        };
        assert!(hint(no_code).contains("/.default"));
        let server = GraphError::Token {
            status: 503,
            error: "temporarily_unavailable".into(),
            aadsts: None,
            error_description: String::new(),
        };
        assert!(matches!(server.classify(), RemoteError::Transient(_)));
        let msg = token(7000215, "invalid_client").to_string();
        assert!(msg.contains("AADSTS7000215") && msg.contains("Fix: the client secret is wrong"), "{msg}");
    }

    #[test]
    fn aadsts_code_from_codes_or_description() {
        assert_eq!(aadsts_code(&[7000215], ""), Some(7000215));
        assert_eq!(aadsts_code(&[], "AADSTS90002: Tenant 'x' not found."), Some(90002));
        assert_eq!(aadsts_code(&[], "no code"), None);
    }
}
