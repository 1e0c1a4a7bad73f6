//! One file per endpoint; each opens with the operation and Microsoft's documentation page.
//! [`Ctx`] gathers what every handler needs from the request.

pub mod batch;
pub mod calendar_get_schedule;
pub mod calendar_list;
pub mod calendar_view;
pub mod calendar_view_delta;
pub mod event_create;
pub mod event_decline;
pub mod event_delete;
pub mod event_get;
pub mod event_list;
pub mod event_update;
pub mod openid;
pub mod place_list;
pub mod subscription;
pub mod token;
pub mod user_get;

use std::collections::HashMap;

use axum::extract::{FromRequestParts, Path};
use axum::http::request::Parts;
use axum::http::{HeaderMap, Uri};
use axum::response::Response;

use crate::http::{base_url, parse_prefer, query, query_pairs, Prefer, Scheme};
use crate::state::{ApiError, Mailbox};
use crate::Simulator;

/// The request as a handler sees it.
pub struct Ctx {
    pub sim: Simulator,
    /// `scheme://host:port` as the client addressed us.
    pub base: String,
    pub prefer: Prefer,
    pub query: Vec<(String, String)>,
    pub uri: Uri,
    pub headers: HeaderMap,
    pub params: HashMap<String, String>,
    /// The calling app's client id (empty before authentication).
    pub app_id: String,
}

impl FromRequestParts<Simulator> for Ctx {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &Simulator) -> Result<Self, Self::Rejection> {
        let params =
            Path::<HashMap<String, String>>::from_request_parts(parts, state).await.map(|p| p.0).unwrap_or_default();
        Ok(Ctx {
            sim: state.clone(),
            base: base_url(&parts.headers, parts.extensions.get::<Scheme>()),
            prefer: parse_prefer(&parts.headers),
            query: query_pairs(&parts.uri),
            uri: parts.uri.clone(),
            headers: parts.headers.clone(),
            params,
            app_id: parts.extensions.get::<crate::http::AppContext>().map(|a| a.app_id.clone()).unwrap_or_default(),
        })
    }
}

impl Ctx {
    pub fn param(&self, name: &str) -> &str {
        self.params.get(name).map(String::as_str).unwrap_or_default()
    }

    pub fn q(&self, name: &str) -> Option<&str> {
        query(&self.query, name)
    }

    /// The mailbox of `/users/{user}`, checking `/calendars/{cal}` when present.
    pub fn mailbox(&self) -> Result<Mailbox, ApiError> {
        let mb = crate::http::mailbox(&self.sim, self.param("user"))?;
        if let Some(cal) = self.params.get("cal") {
            if *cal != mb.calendar_id {
                return Err(ApiError::item_not_found());
            }
        }
        Ok(mb)
    }

    /// `{base}/v1.0/$metadata#users('{user}')`, the prefix of event contexts.
    pub fn user_context(&self) -> String {
        format!("{}#users('{}')", crate::http::metadata(&self.base), self.param("user"))
    }

    pub fn app_id(&self) -> String {
        self.app_id.clone()
    }

    pub fn if_match(&self) -> Option<String> {
        self.headers.get("if-match").and_then(|v| v.to_str().ok()).map(String::from)
    }
}
