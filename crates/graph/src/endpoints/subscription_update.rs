//! Update subscription — <https://learn.microsoft.com/graph/api/subscription-update>
//!
//! `PATCH /v1.0/subscriptions/{id}` with a new `expirationDateTime` renews a subscription;
//! Graph answers `200 OK` with it. A subscription Graph no longer has is `404`.

use chrono::{DateTime, Utc};
use reqwest::Method;
use url::Url;

use super::{graph_path, parse_json, GraphRequest, TransportRetry};
use crate::error::GraphError;
use crate::types::Subscription;

/// Renewing twice to the same time is harmless, so a lost answer may be retried.
pub fn request(base: &Url, id: &str, expires: DateTime<Utc>) -> GraphRequest {
    let url = graph_path(base, &["v1.0", "subscriptions", id]);
    let body = Subscription {
        expiration_date_time: Some(expires.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()),
        ..Default::default()
    };
    GraphRequest::new("renew subscription", Method::PATCH, url, TransportRetry::Idempotent).json_body(&body)
}

pub fn parse(body: &[u8]) -> Result<Subscription, GraphError> {
    parse_json("renew subscription", body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::{example, graph_base};
    use chrono::TimeZone;

    #[test]
    fn request_and_parse() {
        let expires = Utc.with_ymd_and_hms(2026, 12, 12, 9, 30, 0).unwrap();
        let r = request(&graph_base(), "7f105c7d", expires);
        assert_eq!(r.method, Method::PATCH);
        assert_eq!(r.url.as_str(), "https://graph.microsoft.com/v1.0/subscriptions/7f105c7d");
        assert_eq!(r.body_json(), Some(serde_json::json!({"expirationDateTime": "2026-12-12T09:30:00.000Z"})));
        let Some(req) = example("subscription-update/01-request.http") else { return };
        assert_eq!(req.method(), "PATCH");
        let doc: serde_json::Value = serde_json::from_str(&req.body).unwrap();
        assert!(doc.get("expirationDateTime").is_some());
        let Some(resp) = example("subscription-update/01-response.http") else { return };
        let s = parse(resp.body.as_bytes()).unwrap();
        assert_eq!(s.expiration_date_time.as_deref(), Some("2016-11-22T18:23:45.9356913Z"));
    }
}
