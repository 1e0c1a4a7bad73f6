//! Delete subscription — <https://learn.microsoft.com/graph/api/subscription-delete>
//!
//! `DELETE /v1.0/subscriptions/{id}`; Graph answers `204 No Content`.

use reqwest::Method;
use url::Url;

use super::{graph_path, GraphRequest, TransportRetry};
use crate::error::GraphError;

pub fn request(base: &Url, id: &str) -> GraphRequest {
    let url = graph_path(base, &["v1.0", "subscriptions", id]);
    GraphRequest::new("delete subscription", Method::DELETE, url, TransportRetry::Idempotent)
}

pub fn parse(status: u16) -> Result<(), GraphError> {
    super::no_content("delete subscription", status)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::{example, graph_base};

    #[test]
    fn request_and_parse() {
        let r = request(&graph_base(), "7f105c7d");
        assert_eq!(r.method, Method::DELETE);
        assert_eq!(r.url.as_str(), "https://graph.microsoft.com/v1.0/subscriptions/7f105c7d");
        assert_eq!(parse(204), Ok(()));
        let Some(req) = example("change-notifications-delivery-webhooks/04-request.http") else { return };
        assert_eq!(req.method(), "DELETE");
    }
}
