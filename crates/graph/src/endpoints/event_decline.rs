//! Decline event — <https://learn.microsoft.com/graph/api/event-decline>
//!
//! `POST /v1.0/users/{email}/events/{id}/decline` with `{"comment": "…", "sendResponse": true}`;
//! Graph answers `202 Accepted` with no body. The mailbox (an attendee, such as a room) declines
//! the meeting: the organizer receives the answer and the meeting leaves the attendee's
//! calendar, while the organizer's meeting stays. An organizer cannot decline its own meeting
//! (`400 ErrorInvalidRequest`).

use reqwest::Method;
use serde::Serialize;
use url::Url;

use super::{graph_path, GraphRequest, TransportRetry};
use crate::error::GraphError;

/// The action's parameters (the CSDL's `decline` bound to `graph.event`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Body {
    pub comment: String,
    pub send_response: bool,
}

/// Declining twice has the same effect as once, so a request that went unanswered may be sent
/// again.
pub fn request(base: &Url, email: &str, id: &str, comment: &str) -> GraphRequest {
    let url = graph_path(base, &["v1.0", "users", email, "events", id, "decline"]);
    GraphRequest::new("decline event", Method::POST, url, TransportRetry::Idempotent)
        .json_body(&Body { comment: comment.to_string(), send_response: true })
}

/// A 2xx answer (normally 202) means declined; the body, if any, is ignored.
pub fn parse(status: u16) -> Result<(), GraphError> {
    super::no_content("decline event", status)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::graph_base;

    #[test]
    fn request_and_parse() {
        let r = request(&graph_base(), "room1@contoso.com", "AAMkAD=", "Released by the booking system");
        assert_eq!(r.method, Method::POST);
        assert_eq!(r.url.as_str(), "https://graph.microsoft.com/v1.0/users/room1@contoso.com/events/AAMkAD=/decline");
        assert_eq!(
            r.body_json(),
            Some(serde_json::json!({"comment": "Released by the booking system", "sendResponse": true}))
        );
        assert_eq!(r.header_values("Content-Type"), ["application/json"]);
        assert_eq!(parse(202), Ok(()));
        assert!(parse(400).is_err());
    }

    /// The parameters are those Microsoft's metadata declares for `decline` on an event.
    #[test]
    fn parameters_match_the_metadata() {
        let Some(csdl) = crate::test_support::csdl() else { return };
        let action = csdl
            .split("<Action Name=\"decline\" IsBound=\"true\">")
            .skip(1)
            .map(|s| s.split("</Action>").next().unwrap_or_default())
            .find(|a| a.contains("Type=\"graph.event\""))
            .expect("the metadata declares decline on graph.event");
        for p in ["Comment", "SendResponse"] {
            assert!(action.contains(&format!("Name=\"{p}\"")), "decline takes {p}: {action}");
        }
    }
}
