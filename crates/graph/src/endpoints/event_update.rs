//! Update event — <https://learn.microsoft.com/graph/api/event-update>
//!
//! `PATCH /v1.0/users/{email}/events/{id}` with `If-Match: <@odata.etag>` and the changed
//! properties; Graph answers `200 OK` with the updated event, or `412 Precondition Failed`
//! when the event changed since that version.

use reqwest::Method;
use url::Url;

use super::{graph_path, parse_json, prefer_event_reads, GraphRequest, TransportRetry};
use crate::error::GraphError;
use crate::types::Event;

pub fn request(base: &Url, email: &str, id: &str, if_match: &str, event: &Event) -> GraphRequest {
    let url = graph_path(base, &["v1.0", "users", email, "events", id]);
    let r = GraphRequest::new("update event", Method::PATCH, url, TransportRetry::Never);
    let r = if if_match.is_empty() { r } else { r.header("If-Match", if_match) };
    prefer_event_reads(r).json_body(event)
}

pub fn parse(body: &[u8]) -> Result<Event, GraphError> {
    parse_json("update event", body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::{as_me_path, example, graph_base};

    #[test]
    fn request_from_the_documented_example() {
        let Some(doc) = example("event-update/01-request.http") else { return };
        let event: Event = serde_json::from_str(&doc.body).expect("the documented body is an event");
        let r = request(&graph_base(), "a@contoso.com", "{id}", "W/\"abc==\"", &event);
        assert_eq!(r.method.as_str(), doc.method());
        assert_eq!(as_me_path(&r.url, "a@contoso.com"), "/v1.0/me/events/%7Bid%7D");
        assert_eq!(doc.path(), "/v1.0/me/events/{id}");
        assert_eq!(r.header_values("If-Match"), vec!["W/\"abc==\""]);
        assert_eq!(r.header_values("Content-Type"), vec!["application/json"]);
        assert_eq!(r.retry, TransportRetry::Never);
        let sent = r.body_json().unwrap();
        assert_eq!(sent["categories"], serde_json::json!(["Red category"]));
        assert_eq!(sent["reminderMinutesBeforeStart"], 99);
        assert_eq!(sent["originalStartTimeZone"], "originalStartTimeZone-value");
    }

    #[test]
    fn parses_the_documented_response() {
        let Some(doc) = example("event-update/01-response.http") else { return };
        assert_eq!(doc.status(), 200);
        let e = parse(doc.body.as_bytes()).unwrap();
        assert_eq!(e.reminder_minutes_before_start, Some(99));
        assert_eq!(e.is_online_meeting, Some(true));
        assert_eq!(e.response_status.unwrap().time.as_deref(), Some("datetime-value"));
    }
}
