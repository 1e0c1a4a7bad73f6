//! Delete event — <https://learn.microsoft.com/graph/api/event-delete>
//!
//! `DELETE /v1.0/users/{email}/events/{id}`; Graph answers `204 No Content`. For a meeting the
//! organizer deletes, Graph sends cancellations to the attendees.

use reqwest::Method;
use url::Url;

use super::{graph_path, GraphRequest, TransportRetry};
use crate::error::GraphError;

pub fn request(base: &Url, email: &str, id: &str) -> GraphRequest {
    let url = graph_path(base, &["v1.0", "users", email, "events", id]);
    GraphRequest::new("delete event", Method::DELETE, url, TransportRetry::Idempotent)
}

/// A 2xx answer (normally 204) means deleted; the body, if any, is ignored.
pub fn parse(status: u16) -> Result<(), GraphError> {
    super::no_content("delete event", status)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::{as_me_path, example, graph_base};

    #[test]
    fn request_and_parse() {
        let r = request(&graph_base(), "a@contoso.com", "AAMkAD=");
        assert_eq!(r.method, Method::DELETE);
        assert_eq!(r.url.as_str(), "https://graph.microsoft.com/v1.0/users/a@contoso.com/events/AAMkAD=");
        assert!(r.body.is_none());
        assert_eq!(r.retry, TransportRetry::Idempotent);
        let Some(req) = example("event-delete/01-request.http") else { return };
        assert_eq!(r.method.as_str(), req.method());
        assert_eq!(
            as_me_path(&request(&graph_base(), "a@contoso.com", "{id}").url, "a@contoso.com"),
            "/v1.0/me/events/%7Bid%7D"
        );
        let Some(resp) = example("event-delete/01-response.http") else { return };
        assert_eq!(resp.status(), 204);
        assert!(resp.body.is_empty());
        assert_eq!(parse(resp.status()), Ok(()));
        assert!(parse(200).is_ok());
    }
}
