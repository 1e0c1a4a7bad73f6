//! Create event — <https://learn.microsoft.com/graph/api/user-post-events>
//!
//! `POST /v1.0/users/{email}/calendar/events` with the event as JSON; Graph answers
//! `201 Created` with the event as it stored it. A `transactionId` makes the create idempotent
//! (Graph deduplicates on it), so such a create may be retried once after a transport failure.

use reqwest::Method;
use url::Url;

use super::{graph_path, parse_json, prefer_event_reads, GraphRequest, TransportRetry};
use crate::error::GraphError;
use crate::types::Event;

pub fn request(base: &Url, email: &str, event: &Event) -> GraphRequest {
    let url = graph_path(base, &["v1.0", "users", email, "calendar", "events"]);
    let retry = if event.transaction_id.as_deref().is_some_and(|t| !t.is_empty()) {
        TransportRetry::Once
    } else {
        TransportRetry::Never
    };
    prefer_event_reads(GraphRequest::new("create event", Method::POST, url, retry)).json_body(event)
}

pub fn parse(body: &[u8]) -> Result<Event, GraphError> {
    parse_json("create event", body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::endpoints::{PREFER_TEXT_BODY, PREFER_UTC};
    use crate::test_support::{example, graph_base};

    #[test]
    fn request_from_the_documented_example() {
        let Some(doc) = example("user-post-events/01-request.http") else { return };
        let event: Event = serde_json::from_str(&doc.body).expect("the documented request body is an event");
        assert_eq!(event.subject.as_deref(), Some("Let's go for lunch"));
        let r = request(&graph_base(), "danas@contoso.onmicrosoft.com", &event);
        assert_eq!(r.method.as_str(), doc.method());
        assert_eq!(
            r.url.as_str(),
            "https://graph.microsoft.com/v1.0/users/danas@contoso.onmicrosoft.com/calendar/events"
        );
        assert!(doc.path().ends_with("/events"));
        assert_eq!(r.header_values("Content-Type"), vec!["application/json"]);
        assert_eq!(r.header_values("Prefer"), vec![PREFER_UTC, PREFER_TEXT_BODY]);
        assert_eq!(r.retry, TransportRetry::Never, "no transactionId: not idempotent");
        let sent = r.body_json().unwrap();
        let documented: serde_json::Value = serde_json::from_str(&doc.body).unwrap();
        assert_eq!(sent["subject"], documented["subject"]);
        assert_eq!(sent["start"], documented["start"]);
        assert_eq!(sent["end"], documented["end"]);
        assert_eq!(sent["location"], documented["location"]);
        assert_eq!(sent["attendees"], documented["attendees"]);
        assert_eq!(sent["body"], documented["body"]);
    }

    #[test]
    fn a_create_with_transaction_id_may_be_retried_once() {
        let event = Event { transaction_id: Some("calbridge:inst:1".into()), ..Event::default() };
        assert_eq!(request(&graph_base(), "a@b.c", &event).retry, TransportRetry::Once);
    }

    #[test]
    fn parses_the_documented_responses() {
        let Some(doc) = example("user-post-events/01-response.http") else { return };
        assert_eq!(doc.status(), 201);
        let e = parse(doc.body.as_bytes()).unwrap();
        assert_eq!(e.id.as_deref(), Some("AAMkAGI1AAAt9AHjAAA="));
        assert_eq!(e.odata_etag.as_deref(), Some("W/\"ZlnW4RIAV06KYYwlrfNZvQAALfZeRQ==\""));
        assert_eq!(e.change_key.as_deref(), Some("ZlnW4RIAV06KYYwlrfNZvQAALfZeRQ=="));
        assert_eq!(e.show_as.as_deref(), Some("busy"));
        assert_eq!(e.kind.as_deref(), Some("singleInstance"));
        assert_eq!(e.start.as_ref().unwrap().date_time, "2017-04-15T11:00:00.0000000");
        assert_eq!(e.start.as_ref().unwrap().time_zone.as_deref(), Some("Pacific Standard Time"));
        assert_eq!(e.attendees.as_ref().unwrap().len(), 1);

        let Some(doc) = example("user-post-events/02-response.http") else { return };
        let e = parse(doc.body.as_bytes()).unwrap();
        assert_eq!(e.locations.as_ref().unwrap().len(), 3);
        assert_eq!(
            e.organizer.unwrap().email_address.unwrap().address.as_deref(),
            Some("AdeleV@contoso.onmicrosoft.com")
        );

        let Some(doc) = example("user-post-events/03-response.http") else { return };
        let e = parse(doc.body.as_bytes()).unwrap();
        assert_eq!(e.kind.as_deref(), Some("seriesMaster"));
        let rec = e.recurrence.unwrap();
        assert_eq!(rec.pattern.unwrap().days_of_week, Some(vec!["monday".to_string()]));
        assert_eq!(rec.range.unwrap().end_date.as_deref(), Some("2017-12-31"));
    }
}
