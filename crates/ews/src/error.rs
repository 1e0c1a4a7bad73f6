//! [`EwsError`]: everything that can go wrong talking to an EWS server, classified once into
//! the engine's [`RemoteError`] by [`EwsError::classify`], with a hint that names the fix
//! where Exchange's answer tells what is missing (a role, a mailbox right, an auth method).

use std::time::Duration;

use calbridge_core::remote::RemoteError;

use crate::wire::envelope::Fault;
use crate::wire::xml::WireError;

/// The longest back-off calbridge accepts from a server before it reports throttling
/// instead of waiting.
pub const MAX_BACK_OFF: Duration = Duration::from_secs(300);

#[derive(Debug, thiserror::Error)]
pub enum EwsError {
    /// The connection's settings cannot work (a bad URL, an unreadable CA file).
    #[error("the EWS connection is misconfigured: {message}")]
    Config { message: String },
    /// No answer: connect, TLS, reset or timeout. `sent`: the request may have reached the
    /// server (so a create or update must not simply be repeated).
    #[error("no answer from the EWS server at {url}: {message}")]
    Transport { url: String, message: String, sent: bool },
    /// The server refused the credentials (HTTP 401).
    #[error("the EWS server refused the credentials ({auth} authentication, HTTP 401){}", offered_text(offered))]
    Unauthorized { auth: &'static str, offered: Vec<String> },
    /// An HTTP status without a SOAP answer (403, 404, 503, a proxy's page, ...).
    #[error("the EWS server answered HTTP {status}{}", snippet_text(snippet))]
    Http { status: u16, snippet: String },
    /// A SOAP fault (HTTP 500): `ErrorServerBusy`, `ErrorSchemaValidation`,
    /// `ErrorInvalidServerVersion`, ...
    #[error("the EWS server answered with a SOAP fault {}: {}", code_of(fault), fault.fault_string)]
    Fault { fault: Fault },
    /// A response message with `ResponseClass="Error"`.
    #[error("EWS {operation} failed with {code}{}", text.as_deref().map(|t| format!(": {t}")).unwrap_or_default())]
    Response { operation: &'static str, code: String, text: Option<String>, back_off: Option<Duration> },
    /// The answer is not the EWS XML that was asked for.
    #[error("the EWS answer to {operation} could not be read: {source}")]
    Decode {
        operation: &'static str,
        #[source]
        source: WireError,
    },
    /// The OAuth2 token could not be obtained.
    #[error("{0}")]
    Token(String),
    /// Getting a token failed; already classified by the identity-platform client.
    #[error("{0}")]
    TokenClassified(RemoteError),
}

fn offered_text(offered: &[String]) -> String {
    if offered.is_empty() {
        String::new()
    } else {
        format!("; it offers {}", offered.join(", "))
    }
}

fn snippet_text(s: &str) -> String {
    if s.is_empty() {
        String::new()
    } else {
        format!(": {s}")
    }
}

fn code_of(f: &Fault) -> &str {
    f.response_code.as_deref().unwrap_or(&f.fault_code)
}

/// Response codes that mean "try again later".
const BUSY: &[&str] = &["ErrorServerBusy", "ErrorTooManyObjectsOpened", "ErrorExceededConnectionCount"];
/// Response codes that mean "a temporary failure on the server's side".
const TRANSIENT: &[&str] = &[
    "ErrorInternalServerTransientError",
    "ErrorMailboxMoveInProgress",
    "ErrorMailboxStoreUnavailable",
    "ErrorTimeoutExpired",
    "ErrorConnectionFailed",
    "ErrorBatchProcessingStopped",
    "ErrorInternalServerError",
];

impl EwsError {
    /// The EWS response code, when the server named one.
    pub fn code(&self) -> Option<&str> {
        match self {
            EwsError::Fault { fault } => fault.response_code.as_deref(),
            EwsError::Response { code, .. } => Some(code),
            _ => None,
        }
    }

    /// How long the server asked calbridge to back off (`BackOffMilliseconds`).
    pub fn back_off(&self) -> Option<Duration> {
        match self {
            EwsError::Fault { fault } => fault.back_off_ms.map(Duration::from_millis),
            EwsError::Response { back_off, .. } => *back_off,
            _ => None,
        }
    }

    /// Whether the server asked calbridge to slow down.
    pub fn is_busy(&self) -> bool {
        matches!(self, EwsError::Http { status: 503, .. }) || self.code().is_some_and(|c| BUSY.contains(&c))
    }

    /// The class the engine acts on.
    pub fn classify(&self) -> RemoteError {
        if self.is_busy() {
            return RemoteError::Throttled { retry_after: self.back_off() };
        }
        match self {
            EwsError::Config { .. } => RemoteError::Permanent(self.to_string()),
            EwsError::Transport { .. } => RemoteError::Transient(self.to_string()),
            EwsError::Unauthorized { auth, .. } => {
                RemoteError::Auth { message: self.to_string(), hint: unauthorized_hint(auth).to_string() }
            }
            EwsError::Http { status, .. } => match status {
                403 => RemoteError::Auth {
                    message: self.to_string(),
                    hint: "the service account may not use EWS: check that EWS is enabled for it \
                           (Set-CASMailbox -EwsEnabled $true) and that no EWS application policy blocks calbridge"
                        .into(),
                },
                404 => RemoteError::Permanent(format!("{self}. Fix: check the EWS URL; it ends in /EWS/Exchange.asmx")),
                s if *s >= 500 || *s == 408 || *s == 429 => RemoteError::Transient(self.to_string()),
                _ => RemoteError::Permanent(self.to_string()),
            },
            EwsError::Decode { .. } => RemoteError::Permanent(self.to_string()),
            EwsError::Token(_) => RemoteError::Auth {
                message: self.to_string(),
                hint: "check the tenant id, client id and client secret of the app registration".into(),
            },
            EwsError::TokenClassified(e) => e.clone(),
            EwsError::Fault { .. } | EwsError::Response { .. } => {
                let code = self.code().unwrap_or("");
                match code {
                    "ErrorInvalidSyncStateData" | "ErrorInvalidSyncState" => RemoteError::CursorExpired,
                    "ErrorIrresolvableConflict" | "ErrorChangeKeyRequiredForWriteOperations" => {
                        RemoteError::VersionConflict
                    }
                    "ErrorItemNotFound" | "ErrorCalendarOccurrenceIsDeletedFromRecurrence" => {
                        RemoteError::NotFound(self.to_string())
                    }
                    "ErrorNonExistentMailbox" | "ErrorInvalidSmtpAddress" | "ErrorMailRecipientNotFound" => {
                        RemoteError::NotFound(self.to_string())
                    }
                    c if access_hint(c).is_some() => RemoteError::Auth {
                        message: self.to_string(),
                        hint: access_hint(c).unwrap_or_default().to_string(),
                    },
                    c if TRANSIENT.contains(&c) => RemoteError::Transient(self.to_string()),
                    _ => RemoteError::Permanent(self.to_string()),
                }
            }
        }
    }
}

/// What to do about an HTTP 401, per authentication method.
pub fn unauthorized_hint(auth: &str) -> &'static str {
    match auth {
        "basic" => {
            "check the service account's user name and password, and that Basic authentication is enabled \
             on the EWS virtual directory (Set-WebServicesVirtualDirectory -BasicAuthentication $true)"
        }
        "ntlm" => {
            "check the service account's user name (DOMAIN\\user or user@domain) and password, and that \
             Windows authentication (NTLM) is enabled on the EWS virtual directory \
             (Set-WebServicesVirtualDirectory -WindowsAuthentication $true)"
        }
        _ => {
            "the access token was refused: give the app registration the Office 365 Exchange Online \
             application permission full_access_as_app and grant admin consent"
        }
    }
}

/// What to do about a response code that means a missing right.
pub fn access_hint(code: &str) -> Option<&'static str> {
    Some(match code {
        "ErrorImpersonateUserDenied" | "ErrorImpersonationDenied" => {
            "give the service account the ApplicationImpersonation role \
             (New-ManagementRoleAssignment -Role ApplicationImpersonation -User <service account>, \
             optionally with a management scope for the linked mailboxes), or turn impersonation off \
             and grant Full Access to each mailbox"
        }
        "ErrorAccessDenied" | "ErrorFolderNotFound" => {
            "grant the service account access to the mailbox (Add-MailboxPermission -Identity <mailbox> \
             -User <service account> -AccessRights FullAccess), or use impersonation"
        }
        "ErrorInvalidServerVersion" => {
            "the server does not speak the configured EWS version: set version to one it supports \
             (Exchange2013_SP1 for Exchange 2013, Exchange2016 for 2016 and later)"
        }
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn response(code: &str) -> EwsError {
        EwsError::Response { operation: "GetItem", code: code.into(), text: None, back_off: None }
    }

    #[test]
    fn response_codes_map_to_the_engines_classes() {
        assert_eq!(response("ErrorInvalidSyncStateData").classify(), RemoteError::CursorExpired);
        assert_eq!(response("ErrorIrresolvableConflict").classify(), RemoteError::VersionConflict);
        assert!(matches!(response("ErrorItemNotFound").classify(), RemoteError::NotFound(_)));
        assert!(matches!(response("ErrorMailboxMoveInProgress").classify(), RemoteError::Transient(_)));
        assert!(matches!(response("ErrorInvalidPropertySet").classify(), RemoteError::Permanent(_)));
        match response("ErrorImpersonateUserDenied").classify() {
            RemoteError::Auth { hint, .. } => assert!(hint.contains("ApplicationImpersonation"), "{hint}"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn server_busy_carries_the_back_off() {
        let fault = Fault {
            fault_code: "a:ErrorServerBusy".into(),
            fault_string: "The server cannot service this request right now.".into(),
            response_code: Some("ErrorServerBusy".into()),
            message: None,
            back_off_ms: Some(2500),
        };
        let e = EwsError::Fault { fault };
        assert!(e.is_busy());
        assert_eq!(e.classify(), RemoteError::Throttled { retry_after: Some(Duration::from_millis(2500)) });
        assert!(e.to_string().contains("ErrorServerBusy"), "{e}");
    }

    #[test]
    fn unauthorized_names_the_fix_for_its_method() {
        let e = EwsError::Unauthorized { auth: "ntlm", offered: vec!["NTLM".into(), "Negotiate".into()] };
        match e.classify() {
            RemoteError::Auth { message, hint } => {
                assert!(message.contains("offers NTLM, Negotiate"), "{message}");
                assert!(hint.contains("WindowsAuthentication"), "{hint}");
            }
            other => panic!("{other:?}"),
        }
    }
}
