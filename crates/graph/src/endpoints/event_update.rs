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

/// The PATCH, always conditional: without a version (`if_match` empty) it would overwrite
/// whatever Exchange holds, so it is refused ([`GraphError::Refused`]) and nothing is sent.
pub fn request(base: &Url, email: &str, id: &str, if_match: &str, event: &Event) -> Result<GraphRequest, GraphError> {
    if if_match.trim().is_empty() {
        return Err(GraphError::Refused {
            operation: "update event",
            message: format!(
                "refusing to update without a version: calbridge has no version (ETag) of the event {id:?}, \
                 and an update without If-Match could overwrite changes made in Exchange. Fix: none needed \
                 if it passes, a later pull reads the event's version; if it persists, Exchange sends this \
                 event without @odata.etag or changeKey: report it"
            ),
        });
    }
    let url = graph_path(base, &["v1.0", "users", email, "events", id]);
    let r = GraphRequest::new("update event", Method::PATCH, url, TransportRetry::Never).header("If-Match", if_match);
    Ok(prefer_event_reads(r).json_body(event))
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
        let r = request(&graph_base(), "a@contoso.com", "{id}", "W/\"abc==\"", &event).unwrap();
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
    fn an_update_without_a_version_is_refused() {
        let event = Event { subject: Some("x".into()), ..Event::default() };
        for if_match in ["", "  "] {
            let e = request(&graph_base(), "a@contoso.com", "AAMk1", if_match, &event).unwrap_err();
            assert!(matches!(e, GraphError::Refused { operation: "update event", .. }), "{e:?}");
            assert!(e.to_string().contains("refusing to update without a version"), "{e}");
            assert!(matches!(e.classify(), calbridge_core::remote::RemoteError::Permanent(_)));
        }
        let r = request(&graph_base(), "a@contoso.com", "AAMk1", "W/\"1\"", &event).unwrap();
        assert_eq!(r.header_values("If-Match"), vec!["W/\"1\""]);
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
