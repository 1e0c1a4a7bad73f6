//! What every Graph response shares: the error body
//! (`{"error":{"code","message","innerError":{"date","request-id","client-request-id"}}}`),
//! request ids, `Prefer` parsing, query parameters and the base URL as the client sees it.

use axum::http::{header, HeaderMap, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use serde_json::{json, Value};

use crate::state::{ApiError, Mailbox, RenderOpts};
use crate::Simulator;

/// The ids of the request being served (Graph echoes them in headers and error bodies).
#[derive(Clone, Debug)]
pub struct RequestIds {
    pub request_id: String,
    pub client_request_id: String,
}

tokio::task_local! {
    pub static REQUEST_IDS: RequestIds;
}

/// Connection scheme, set by the serve loop (`https` for TLS connections).
#[derive(Clone, Copy, Debug)]
pub struct Scheme(pub &'static str);

/// The authenticated application (inserted by the auth middleware).
#[derive(Clone, Debug)]
pub struct AppContext {
    pub roles: Vec<String>,
    /// The calling app's client id.
    pub app_id: String,
}

pub fn current_ids() -> RequestIds {
    REQUEST_IDS.try_with(|ids| ids.clone()).unwrap_or_else(|_| {
        let id = uuid::Uuid::new_v4().to_string();
        RequestIds { request_id: id.clone(), client_request_id: id }
    })
}

/// Graph's error body for `code` and `message`.
pub fn error_body(code: &str, message: &str) -> Value {
    let ids = current_ids();
    json!({
        "error": {
            "code": code,
            "message": message,
            "innerError": {
                "date": Utc::now().format("%Y-%m-%dT%H:%M:%S").to_string(),
                "request-id": ids.request_id,
                "client-request-id": ids.client_request_id,
            }
        }
    })
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::BAD_REQUEST);
        let mut resp = json_response(status, &error_body(&self.code, &self.message));
        if self.status == 401 {
            resp.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static(
                    "Bearer realm=\"\", authorization_uri=\"https://login.microsoftonline.com/common/oauth2/authorize\", client_id=\"00000003-0000-0000-c000-000000000000\"",
                ),
            );
        }
        resp
    }
}

/// A JSON response with OData's content type.
pub fn json_response(status: StatusCode, body: &impl serde::Serialize) -> Response {
    let mut resp = (status, serde_json::to_string(body).unwrap_or_default()).into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(
            "application/json;odata.metadata=minimal;odata.streaming=true;IEEE754Compatible=false;charset=utf-8",
        ),
    );
    resp
}

/// `Prefer` header values Graph honours for calendars.
#[derive(Clone, Debug, Default)]
pub struct Prefer {
    pub timezone: Option<String>,
    pub max_page_size: Option<usize>,
    pub body_text: bool,
    pub body_html: bool,
}

pub fn parse_prefer(headers: &HeaderMap) -> Prefer {
    let mut p = Prefer::default();
    for v in headers.get_all("prefer") {
        let Ok(v) = v.to_str() else { continue };
        for item in split_prefer(v) {
            let (k, val) = match item.split_once('=') {
                Some((k, v)) => (k.trim().to_ascii_lowercase(), v.trim().trim_matches('"').to_string()),
                None => (item.trim().to_ascii_lowercase(), String::new()),
            };
            match k.as_str() {
                "outlook.timezone" => p.timezone = Some(val),
                "odata.maxpagesize" => p.max_page_size = val.parse().ok().filter(|n| *n > 0),
                "outlook.body-content-type" => {
                    p.body_text = val.eq_ignore_ascii_case("text");
                    p.body_html = val.eq_ignore_ascii_case("html");
                }
                _ => {}
            }
        }
    }
    p
}

fn split_prefer(v: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    for c in v.chars() {
        match c {
            '"' => {
                quoted = !quoted;
                cur.push(c);
            }
            ',' if !quoted => out.push(std::mem::take(&mut cur)),
            _ => cur.push(c),
        }
    }
    if !cur.trim().is_empty() {
        out.push(cur);
    }
    out
}

impl Prefer {
    /// The zone asked for, if it is one we know.
    pub fn zone(&self) -> Option<(String, chrono_tz::Tz)> {
        let name = self.timezone.as_ref()?;
        crate::tz::resolve(name).map(|z| (name.clone(), z))
    }

    /// `Preference-Applied` for what was honoured.
    pub fn applied(&self) -> Option<String> {
        let mut parts = Vec::new();
        if let Some((name, _)) = self.zone() {
            parts.push(format!("outlook.timezone=\"{name}\""));
        }
        if self.body_text {
            parts.push("outlook.body-content-type=\"text\"".to_string());
        } else if self.body_html {
            parts.push("outlook.body-content-type=\"html\"".to_string());
        }
        (!parts.is_empty()).then(|| parts.join(", "))
    }

    pub fn apply_headers(&self, resp: &mut Response) {
        if let Some(applied) = self.applied().and_then(|a| HeaderValue::from_str(&a).ok()) {
            resp.headers_mut().insert("preference-applied", applied);
        }
    }
}

/// Query parameters (percent-decoded), in order.
pub fn query_pairs(uri: &Uri) -> Vec<(String, String)> {
    url::form_urlencoded::parse(uri.query().unwrap_or("").as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

/// A query parameter by name, case-insensitive, with or without the `$` of system options.
pub fn query<'a>(pairs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    let bare = name.trim_start_matches('$');
    pairs.iter().find(|(k, _)| k.trim_start_matches('$').eq_ignore_ascii_case(bare)).map(|(_, v)| v.as_str())
}

pub fn encode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>().replace('+', "%20")
}

/// `scheme://host[:port]` as the client addressed us.
pub fn base_url(headers: &HeaderMap, scheme: Option<&Scheme>) -> String {
    let scheme = scheme.map(|s| s.0).unwrap_or("http");
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok()).unwrap_or("localhost");
    format!("{scheme}://{host}")
}

/// How the request wants events shown (`Prefer`, `$select`, `$expand`).
pub fn render_opts(prefer: &Prefer, pairs: &[(String, String)], odata_type: bool) -> RenderOpts {
    RenderOpts {
        zone: prefer.zone(),
        body_text: prefer.body_text,
        select: query(pairs, "$select")
            .map(|s| s.split(',').map(|p| p.trim().to_string()).filter(|p| !p.is_empty()).collect()),
        expand_props: query(pairs, "$expand").and_then(crate::state::parse_expand),
        odata_type,
    }
}

/// The mailbox named in a URL (`/users/{id|userPrincipalName}`), or Graph's error.
pub fn mailbox(sim: &Simulator, user: &str) -> Result<Mailbox, ApiError> {
    let state = sim.inner.state.lock().unwrap();
    state
        .mailbox(user)
        .cloned()
        .ok_or_else(|| ApiError::new(404, "ErrorInvalidUser", format!("The requested user '{user}' is invalid.")))
}

/// The `@odata.context` prefix: `{base}/v1.0/$metadata`.
pub fn metadata(base: &str) -> String {
    format!("{base}/v1.0/$metadata")
}
