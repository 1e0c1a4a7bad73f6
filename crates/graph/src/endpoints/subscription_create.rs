//! Create subscription — <https://learn.microsoft.com/graph/api/subscription-post-subscriptions>
//!
//! `POST /v1.0/subscriptions` with the resource (`users/{email}/events`), the change types,
//! the notification URLs, the expiration and the `clientState` Graph echoes in every
//! notification; Graph answers `201 Created` with the subscription. Before answering, Graph
//! validates the notification URLs (`?validationToken=…`, echoed as text/plain within 10 s);
//! a failed validation is `400`.

use chrono::{DateTime, Utc};
use reqwest::Method;
use url::Url;

use super::{graph_path, parse_json, GraphRequest, TransportRetry};
use crate::error::GraphError;
use crate::types::Subscription;

/// What calbridge subscribes to: every change to a mailbox's events.
pub fn body(email: &str, notification_url: &str, client_state: &str, expires: DateTime<Utc>) -> Subscription {
    Subscription {
        change_type: Some("created,updated,deleted".into()),
        notification_url: Some(notification_url.to_string()),
        lifecycle_notification_url: Some(notification_url.to_string()),
        resource: Some(format!("users/{email}/events")),
        expiration_date_time: Some(expires.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()),
        client_state: Some(client_state.to_string()),
        id: None,
    }
}

/// Never resent after a lost answer: a second create would make a second subscription (the
/// first expires unused).
pub fn request(base: &Url, body: &Subscription) -> GraphRequest {
    let url = graph_path(base, &["v1.0", "subscriptions"]);
    let mut r = GraphRequest::new("create subscription", Method::POST, url, TransportRetry::Never).json_body(body);
    // The body holds the clientState, which authenticates notifications: never printed.
    r.sensitive = true;
    r
}

pub fn parse(body: &[u8]) -> Result<Subscription, GraphError> {
    parse_json("create subscription", body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::{example, graph_base};
    use chrono::TimeZone;

    #[test]
    fn request_and_parse() {
        let expires = Utc.with_ymd_and_hms(2026, 12, 10, 9, 30, 0).unwrap();
        let b = body("room1@contoso.com", "https://calbridge.contoso.com/notifications/graph", "s3cret", expires);
        let r = request(&graph_base(), &b);
        assert_eq!(r.method, Method::POST);
        assert_eq!(r.url.as_str(), "https://graph.microsoft.com/v1.0/subscriptions");
        assert_eq!(r.retry, TransportRetry::Never);
        assert!(r.sensitive, "the clientState is never logged");
        assert!(!format!("{r:?}").contains("s3cret"));
        let json = r.body_json().unwrap();
        assert_eq!(json["resource"], "users/room1@contoso.com/events");
        assert_eq!(json["changeType"], "created,updated,deleted");
        assert_eq!(json["expirationDateTime"], "2026-12-10T09:30:00.000Z");
        assert_eq!(json["clientState"], "s3cret");
        assert_eq!(json["lifecycleNotificationUrl"], json["notificationUrl"]);
        assert!(json.get("id").is_none());
        // The properties Microsoft's example sends, spelled the same.
        let Some(req) = example("change-notifications-lifecycle-events/01-request.http") else { return };
        let doc: serde_json::Value = serde_json::from_str(&req.body).unwrap();
        for key in [
            "changeType",
            "notificationUrl",
            "lifecycleNotificationUrl",
            "resource",
            "expirationDateTime",
            "clientState",
        ] {
            assert!(doc.get(key).is_some() && json.get(key).is_some(), "{key}");
        }
        let Some(resp) = example("subscription-post-subscriptions/01-response.http") else { return };
        assert_eq!(resp.status(), 201);
        let s = parse(resp.body.as_bytes()).unwrap();
        assert_eq!(s.id.as_deref(), Some("7f105c7d-2dc5-4530-97cd-4e7ae6534c07"));
        assert_eq!(s.expiration_date_time.as_deref(), Some("2016-11-20T18:23:45.9356913Z"));
        assert_eq!(s.client_state.as_deref(), Some("secretClientValue"));
    }
}
