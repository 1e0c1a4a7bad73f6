//! Get event — <https://learn.microsoft.com/graph/api/event-get>
//!
//! `GET /v1.0/users/{email}/events/{id}?$expand=singleValueExtendedProperties($filter=id eq '…')`:
//! one event, with calbridge's provenance property when it has one.

use reqwest::Method;
use url::Url;

use super::{graph_path, parse_json, prefer_event_reads, provenance_expand, set_query, GraphRequest, TransportRetry};
use crate::error::GraphError;
use crate::types::Event;

pub fn request(base: &Url, email: &str, id: &str) -> GraphRequest {
    let mut url = graph_path(base, &["v1.0", "users", email, "events", id]);
    set_query(&mut url, &[("$expand", &provenance_expand())]);
    prefer_event_reads(GraphRequest::new("get event", Method::GET, url, TransportRetry::Idempotent))
}

pub fn parse(body: &[u8]) -> Result<Event, GraphError> {
    parse_json("get event", body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::endpoints::{PREFER_TEXT_BODY, PREFER_UTC};
    use crate::test_support::{as_me_path, example, graph_base};

    const ID: &str = "AAMkAGVmMDEzMTM4LTZmYWUtNDdkNC1hMDZiLTU1OGY5OTZhYmY4OABGAAAAAAAiQ8W967B7TKBjgx9rVEURBwAiIsqMbYjsT5e-T7KzowPTAAAAAAENAAAiIsqMbYjsT5e-T7KzowPTAAAa_WKzAAA=";

    #[test]
    fn request_matches_the_documented_path() {
        let r = request(&graph_base(), "irvins@contoso.com", ID);
        assert_eq!(r.method, Method::GET);
        assert_eq!(r.header_values("Prefer"), vec![PREFER_UTC, PREFER_TEXT_BODY]);
        assert!(r.body.is_none());
        assert_eq!(
            r.url.query(),
            Some("$expand=singleValueExtendedProperties($filter=id%20eq%20%27String%20%7B00020329-0000-0000-C000-000000000046%7D%20Name%20calbridgeProvenance%27)")
        );
        let Some(doc) = example("event-get/01-request.http") else { return };
        assert_eq!(r.method.as_str(), doc.method());
        assert_eq!(as_me_path(&r.url, "irvins@contoso.com"), doc.path());
    }

    #[test]
    fn parses_the_documented_responses() {
        for file in ["event-get/01-response.http", "event-get/02-response.http"] {
            let Some(doc) = example(file) else { return };
            assert_eq!(doc.status(), 200);
            let e = parse(doc.body.as_bytes()).unwrap();
            assert_eq!(e.id.as_deref(), Some(ID));
            assert_eq!(e.odata_etag.as_deref(), Some("W/\"IiLKjG2I7E+Xv0+ys6MD0wAEd5/kNQ==\""));
            assert_eq!(e.subject.as_deref(), Some("New Product Regulations Touchpoint"));
            assert_eq!(e.body.as_ref().unwrap().content_type.as_deref(), Some("html"));
            assert_eq!(e.start.as_ref().unwrap().date_time, "2014-11-03T17:00:00.0000000");
            assert_eq!(e.location.as_ref().unwrap().display_name.as_deref(), Some("Conf Room Rainier"));
            let att = e.attendees.as_ref().unwrap();
            assert_eq!(att.len(), 2);
            assert_eq!(
                att[1].email_address.as_ref().unwrap().address.as_deref(),
                Some("IrvinS@M365x214355.onmicrosoft.com")
            );
            assert_eq!(att[1].status.as_ref().unwrap().response.as_deref(), Some("none"));
        }
    }

    #[test]
    fn parses_extended_properties() {
        let e = parse(
            br#"{"id":"AAA=","singleValueExtendedProperties":[{"id":"String {00020329-0000-0000-c000-000000000046} Name calbridgeProvenance","value":"calbridge:i1:e1"}]}"#,
        )
        .unwrap();
        assert_eq!(e.single_value_extended_properties.unwrap()[0].value.as_deref(), Some("calbridge:i1:e1"));
    }
}
