//! List calendarView — <https://learn.microsoft.com/graph/api/user-list-calendarview>
//!
//! `GET /v1.0/users/{email}/calendarView?startDateTime=…&endDateTime=…&$top=N&$expand=…`:
//! the occurrences, exceptions and single instances in a time range of the default calendar,
//! expanded (no series masters). Pages continue at `@odata.nextLink`.

use chrono::{DateTime, SecondsFormat, Utc};
use reqwest::Method;
use url::Url;

use super::{graph_path, parse_json, prefer_event_reads, provenance_expand, set_query, GraphRequest, TransportRetry};
use crate::error::GraphError;
use crate::types::{Collection, Event};

/// `startDateTime`/`endDateTime` as Graph wants them: RFC 3339 in UTC, `2026-01-01T00:00:00Z`.
pub fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

pub fn request(base: &Url, email: &str, start: DateTime<Utc>, end: DateTime<Utc>, page_size: u32) -> GraphRequest {
    let mut url = graph_path(base, &["v1.0", "users", email, "calendarView"]);
    set_query(
        &mut url,
        &[
            ("startDateTime", &rfc3339(start)),
            ("endDateTime", &rfc3339(end)),
            ("$top", &page_size.to_string()),
            ("$expand", &provenance_expand()),
        ],
    );
    prefer_event_reads(GraphRequest::new("list calendarView", Method::GET, url, TransportRetry::Idempotent))
}

/// The next page (a validated `@odata.nextLink`).
pub fn request_next(next_link: Url) -> GraphRequest {
    prefer_event_reads(GraphRequest::new("list calendarView", Method::GET, next_link, TransportRetry::Idempotent))
}

pub fn parse(body: &[u8]) -> Result<Collection<Event>, GraphError> {
    parse_json("list calendarView", body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::{as_me_path, example, graph_base};
    use chrono::TimeZone;

    #[test]
    fn request_matches_the_documented_one() {
        let start = Utc.with_ymd_and_hms(2020, 1, 2, 3, 0, 0).unwrap();
        let end = Utc.with_ymd_and_hms(2020, 1, 3, 3, 0, 0).unwrap();
        let r = request(&graph_base(), "a@contoso.com", start, end, 50);
        assert_eq!(r.method, Method::GET);
        let q: Vec<(String, String)> = r.url.query_pairs().into_owned().collect();
        assert_eq!(q[0], ("startDateTime".into(), "2020-01-02T03:00:00Z".into()));
        assert_eq!(q[1], ("endDateTime".into(), "2020-01-03T03:00:00Z".into()));
        assert_eq!(q[2], ("$top".into(), "50".into()));
        assert!(q[3].1.starts_with("singleValueExtendedProperties($filter=id eq 'String {00020329"));
        assert_eq!(r.header_values("Prefer").len(), 2);
        let Some(doc) = example("user-list-calendarview/01-request.http") else { return };
        assert_eq!(r.method.as_str(), doc.method());
        assert_eq!(as_me_path(&r.url, "a@contoso.com"), doc.path());
        // The documented values carry an offset; Graph reads them as instants, and so do we.
        assert!(doc.url().contains("startDateTime=2020-01-01T19:00:00-08:00"));
        let documented = DateTime::parse_from_rfc3339("2020-01-01T19:00:00-08:00").unwrap().with_timezone(&Utc);
        assert_eq!(rfc3339(documented), "2020-01-02T03:00:00Z");
    }

    #[test]
    fn parses_the_documented_response() {
        let Some(doc) = example("user-list-calendarview/01-response.http") else { return };
        let c = parse(doc.body.as_bytes()).unwrap();
        assert_eq!(c.value.len(), 1);
        assert_eq!(c.value[0].original_start_time_zone.as_deref(), Some("Pacific Standard Time"));
        assert_eq!(c.value[0].response_status.as_ref().unwrap().response.as_deref(), Some("accepted"));
        assert_eq!(c.value[0].reminder_minutes_before_start, Some(15));
        assert!(c.next_link.is_none() && c.delta_link.is_none());
    }

    #[test]
    fn parses_the_documented_instances_list() {
        // event-list-instances has the same collection shape, with occurrences and exceptions.
        let Some(doc) = example("event-list-instances/01-response.http") else { return };
        let c = parse(doc.body.as_bytes()).unwrap();
        assert_eq!(c.value.len(), 4);
        assert_eq!(c.value[0].kind.as_deref(), Some("exception"));
        assert_eq!(c.value[1].kind.as_deref(), Some("occurrence"));
        assert_eq!(c.value[1].series_master_id.as_deref(), Some("AAMkAGUzYRgWAAA="));
    }
}
