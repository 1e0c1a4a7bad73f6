//! One file per Graph endpoint (and one for the token endpoint). Each has a `request`
//! function that builds the [`GraphRequest`] (method, URL, headers, body) and a `parse`
//! function that reads the answer's body, so tests can check both without a server. The
//! client adds what every request carries (`Authorization`, `client-request-id`) and handles
//! error statuses before `parse` is called.

use std::fmt;

use reqwest::Method;
use serde::de::DeserializeOwned;
use url::Url;

use crate::error::GraphError;

pub mod batch;
pub mod calendar_get_schedule;
pub mod calendar_list;
pub mod calendar_view;
pub mod calendar_view_delta;
pub mod event_create;
pub mod event_decline;
pub mod event_delete;
pub mod event_get;
pub mod event_update;
pub mod notification;
pub mod place_list;
pub mod subscription_create;
pub mod subscription_delete;
pub mod subscription_update;
pub mod token;
pub mod user_get;

/// `Prefer: outlook.timezone="UTC"`: start/end of events in UTC.
pub const PREFER_UTC: &str = "outlook.timezone=\"UTC\"";
/// `Prefer: outlook.body-content-type="text"`: event bodies as plain text, not HTML.
pub const PREFER_TEXT_BODY: &str = "outlook.body-content-type=\"text\"";

/// `$expand` value that returns calbridge's provenance property with an event:
/// `singleValueExtendedProperties($filter=id eq '<PROVENANCE_PROPERTY_ID>')`.
pub fn provenance_expand() -> String {
    format!("singleValueExtendedProperties($filter=id eq '{}')", crate::types::PROVENANCE_PROPERTY_ID)
}

/// Adds the `Prefer` headers of every event read: start/end in UTC, bodies as text.
pub(crate) fn prefer_event_reads(r: GraphRequest) -> GraphRequest {
    r.header("Prefer", PREFER_UTC).header("Prefer", PREFER_TEXT_BODY)
}

/// Whether the client may send a request again after a transport failure (no answer).
/// Throttling answers (429/503) are always retried: Graph did not process the request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TransportRetry {
    /// Never: the request may have been processed (PATCH, a POST without idempotency key).
    Never,
    /// Once: a create carrying a `transactionId`, which Graph deduplicates.
    Once,
    /// Up to the configured number of attempts: idempotent requests (GET, DELETE).
    Idempotent,
}

/// An HTTP request to Graph or the identity platform, ready to send but for the bearer token
/// and the `client-request-id`.
#[derive(Clone, PartialEq, Eq)]
pub struct GraphRequest {
    /// What the request does, for error messages ("calendarView delta").
    pub operation: &'static str,
    pub method: Method,
    pub url: Url,
    /// Headers, in order; a name may repeat (`Prefer`).
    pub headers: Vec<(&'static str, String)>,
    pub body: Option<Vec<u8>>,
    pub retry: TransportRetry,
    /// The body holds a credential (the token request): never printed.
    pub sensitive: bool,
}

impl GraphRequest {
    pub(crate) fn new(operation: &'static str, method: Method, url: Url, retry: TransportRetry) -> Self {
        GraphRequest { operation, method, url, headers: Vec::new(), body: None, retry, sensitive: false }
    }

    pub(crate) fn header(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }

    pub(crate) fn json_body<T: serde::Serialize>(mut self, body: &T) -> Self {
        self.body = Some(serde_json::to_vec(body).expect("wire types serialise"));
        self.header("Content-Type", "application/json")
    }

    /// All values of a header (case-insensitive name).
    pub fn header_values(&self, name: &str) -> Vec<&str> {
        self.headers.iter().filter(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str()).collect()
    }

    /// The body as JSON (tests and logs).
    pub fn body_json(&self) -> Option<serde_json::Value> {
        self.body.as_ref().and_then(|b| serde_json::from_slice(b).ok())
    }
}

impl fmt::Debug for GraphRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let body = match (&self.body, self.sensitive) {
            (None, _) => "none".to_string(),
            (Some(b), true) => format!("<{} bytes, redacted>", b.len()),
            (Some(b), false) => String::from_utf8_lossy(b).into_owned(),
        };
        f.debug_struct("GraphRequest")
            .field("operation", &self.operation)
            .field("method", &self.method)
            .field("url", &self.url.as_str())
            .field("headers", &self.headers)
            .field("body", &body)
            .field("retry", &self.retry)
            .finish()
    }
}

/// `{graph_url}/{segments...}`: each segment percent-encoded as a path segment, so an
/// e-mail address or an event id can never change the path.
pub fn graph_path(base: &Url, segments: &[&str]) -> Url {
    let mut url = base.clone();
    url.set_query(None);
    url.set_fragment(None);
    {
        let mut path = url.path_segments_mut().expect("graph_url is an http(s) URL");
        path.pop_if_empty();
        path.extend(segments);
    }
    url
}

/// Sets an OData query (`$select`, `$expand`, `startDateTime`, ...). Values are
/// percent-encoded the way Graph's documentation writes them: spaces as `%20` (never `+`),
/// while `$ ( ) = , :` stay readable (`'` becomes `%27`, as the URL standard wants).
pub fn set_query(url: &mut Url, pairs: &[(&str, &str)]) {
    if pairs.is_empty() {
        url.set_query(None);
        return;
    }
    let q: Vec<String> = pairs.iter().map(|(k, v)| format!("{}={}", encode_query(k), encode_query(v))).collect();
    url.set_query(Some(&q.join("&")));
}

fn encode_query(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        let keep = b.is_ascii_alphanumeric() || b"-._~$()',=:/@!*;".contains(&b);
        if keep {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Parses a JSON answer body leniently (unknown properties are ignored).
/// The answer of an operation without a body (204, 202): any 2xx is success; the body, if
/// any, is ignored.
pub(crate) fn no_content(operation: &'static str, status: u16) -> Result<(), GraphError> {
    if (200..300).contains(&status) {
        Ok(())
    } else {
        Err(GraphError::Decode { operation, message: format!("unexpected status {status}") })
    }
}

pub(crate) fn parse_json<T: DeserializeOwned>(operation: &'static str, body: &[u8]) -> Result<T, GraphError> {
    serde_json::from_slice(body)
        .map_err(|e| GraphError::Decode { operation, message: format!("{e} (body starts with {:?})", snippet(body)) })
}

/// The first characters of a body, for error messages.
pub(crate) fn snippet(body: &[u8]) -> String {
    let s = String::from_utf8_lossy(body);
    let s = s.trim();
    match s.char_indices().nth(300) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_string(),
    }
}

/// The scheme, host and port of a URL, as compared by the foreign-host check.
pub fn origin(url: &Url) -> String {
    url.origin().ascii_serialization()
}

/// Checks that `link` (a nextLink, a deltaLink, a saved cursor) points at the same origin as
/// `base`, so the bearer token never goes anywhere else.
/// Errors name the link without its query, which holds the state token.
pub fn check_same_origin(operation: &'static str, base: &Url, link: &str) -> Result<Url, GraphError> {
    let url = Url::parse(link).map_err(|e| GraphError::Decode {
        operation,
        message: format!("the link {:?} is not a URL: {e}", link.split(['?', '#']).next().unwrap_or_default()),
    })?;
    if origin(&url) != origin(base) {
        return Err(GraphError::ForeignHost {
            operation,
            url: without_query(&url),
            host: origin(&url),
            expected: origin(base),
        });
    }
    Ok(url)
}

/// A URL for messages and logs, without its query and fragment: state tokens
/// (`$deltatoken`, `$skiptoken`) are long, say nothing to a person and must not be logged.
pub(crate) fn without_query(url: &Url) -> String {
    let mut u = url.clone();
    u.set_query(None);
    u.set_fragment(None);
    u.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_segments_are_encoded_and_base_paths_kept() {
        let base = Url::parse("http://127.0.0.1:8080/graph/").unwrap();
        let u = graph_path(&base, &["v1.0", "users", "a/b@c.com", "events", "AA=="]);
        assert_eq!(u.as_str(), "http://127.0.0.1:8080/graph/v1.0/users/a%2Fb@c.com/events/AA==");
        let base = Url::parse("https://graph.microsoft.com").unwrap();
        assert_eq!(graph_path(&base, &["v1.0", "me"]).as_str(), "https://graph.microsoft.com/v1.0/me");
    }

    #[test]
    fn query_uses_percent_20_not_plus() {
        let mut u = Url::parse("https://graph.microsoft.com/v1.0/me/events/1").unwrap();
        set_query(&mut u, &[("$expand", "singleValueExtendedProperties($filter=id eq 'String {x} Name y')")]);
        assert_eq!(
            u.as_str(),
            "https://graph.microsoft.com/v1.0/me/events/1?$expand=singleValueExtendedProperties($filter=id%20eq%20%27String%20%7Bx%7D%20Name%20y%27)"
        );
    }

    #[test]
    fn foreign_origin_is_refused() {
        let base = Url::parse("https://graph.microsoft.com").unwrap();
        assert!(check_same_origin("x", &base, "https://graph.microsoft.com/v1.0/me/calendarView/delta?$skiptoken=a")
            .is_ok());
        for bad in [
            "https://evil.example.com/v1.0/x",
            "http://graph.microsoft.com/v1.0/x",
            "https://graph.microsoft.com:444/x",
        ] {
            assert!(matches!(check_same_origin("x", &base, bad), Err(GraphError::ForeignHost { .. })), "{bad}");
        }
        // The state token in a refused link stays out of the message.
        let e = check_same_origin("x", &base, "https://evil.example.com/v1.0/x?$deltatoken=SECRETISH").unwrap_err();
        let m = e.to_string();
        assert!(m.contains("https://evil.example.com/v1.0/x") && !m.contains("SECRETISH"), "{m}");
        let e = check_same_origin("x", &base, "not a url?$skiptoken=SECRETISH").unwrap_err();
        assert!(matches!(e, GraphError::Decode { .. }) && !e.to_string().contains("SECRETISH"), "{e}");
    }

    #[test]
    fn sensitive_bodies_are_not_printed() {
        let mut r =
            GraphRequest::new("token request", Method::POST, Url::parse("https://x/").unwrap(), TransportRetry::Never);
        r.body = Some(b"client_secret=hunter2".to_vec());
        r.sensitive = true;
        assert!(!format!("{r:?}").contains("hunter2"));
    }
}
