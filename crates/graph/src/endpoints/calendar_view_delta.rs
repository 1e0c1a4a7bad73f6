//! calendarView delta — <https://learn.microsoft.com/graph/api/event-delta>
//!
//! The first request of a round is
//! `GET /v1.0/users/{email}/calendarView/delta?startDateTime=…&endDateTime=…` with
//! `Prefer: odata.maxpagesize=N`; every later one GETs the `@odata.nextLink` (more pages in
//! this round) or `@odata.deltaLink` (the round is complete; changes from now on) as it is.
//! Deleted events arrive as `{"id": …, "@removed": {"reason": "deleted"}}`. An expired state
//! token answers `410 Gone` (`syncStateNotFound`).

use chrono::{DateTime, Utc};
use reqwest::Method;
use url::Url;

use super::calendar_view::rfc3339;
use super::{check_same_origin, graph_path, parse_json, prefer_event_reads, set_query, GraphRequest, TransportRetry};
use crate::error::GraphError;
use crate::types::{Collection, Event};

pub(crate) const OPERATION: &str = "calendarView delta";

/// Where a delta page says to go next.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DeltaNext {
    /// `@odata.nextLink`: more changes remain in this round.
    NextLink(String),
    /// `@odata.deltaLink`: the round is complete; this link asks for later changes.
    DeltaLink(String),
}

/// One page of a delta round.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeltaPage {
    pub events: Vec<Event>,
    pub next: DeltaNext,
}

/// The first request of a round, over `[start, end)`.
pub fn request_initial(
    base: &Url,
    email: &str,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
    page_size: u32,
) -> GraphRequest {
    let mut url = graph_path(base, &["v1.0", "users", email, "calendarView", "delta"]);
    set_query(&mut url, &[("startDateTime", &rfc3339(start)), ("endDateTime", &rfc3339(end))]);
    with_headers(GraphRequest::new(OPERATION, Method::GET, url, TransportRetry::Idempotent), page_size)
}

/// A later request: the saved `@odata.nextLink` or `@odata.deltaLink`, as it is, after
/// checking that it points at `base`'s host (the bearer token goes nowhere else).
pub fn request_link(base: &Url, link: &str, page_size: u32) -> Result<GraphRequest, GraphError> {
    let url = check_same_origin(OPERATION, base, link)?;
    Ok(with_headers(GraphRequest::new(OPERATION, Method::GET, url, TransportRetry::Idempotent), page_size))
}

fn with_headers(r: GraphRequest, page_size: u32) -> GraphRequest {
    prefer_event_reads(r.header("Prefer", format!("odata.maxpagesize={page_size}")))
}

/// Parses a page; it must carry a nextLink or a deltaLink on `base`'s host.
pub fn parse(base: &Url, body: &[u8]) -> Result<DeltaPage, GraphError> {
    let c: Collection<Event> = parse_json(OPERATION, body)?;
    let next = match (c.next_link, c.delta_link) {
        (Some(n), _) => {
            check_same_origin(OPERATION, base, &n)?;
            DeltaNext::NextLink(n)
        }
        (None, Some(d)) => {
            check_same_origin(OPERATION, base, &d)?;
            DeltaNext::DeltaLink(d)
        }
        (None, None) => {
            return Err(GraphError::Decode {
                operation: OPERATION,
                message: "the page has neither @odata.nextLink nor @odata.deltaLink".into(),
            })
        }
    };
    Ok(DeltaPage { events: c.value, next })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::endpoints::{PREFER_TEXT_BODY, PREFER_UTC};
    use crate::test_support::{as_me_path, example, graph_base};
    use chrono::TimeZone;

    #[test]
    fn initial_request_matches_the_documented_one() {
        let start = Utc.with_ymd_and_hms(2016, 12, 1, 0, 0, 0).unwrap();
        let end = Utc.with_ymd_and_hms(2016, 12, 30, 0, 0, 0).unwrap();
        let r = request_initial(&graph_base(), "samanthab@contoso.onmicrosoft.com", start, end, 2);
        assert_eq!(
            r.url.as_str(),
            "https://graph.microsoft.com/v1.0/users/samanthab@contoso.onmicrosoft.com/calendarView/delta?startDateTime=2016-12-01T00:00:00Z&endDateTime=2016-12-30T00:00:00Z"
        );
        assert_eq!(r.header_values("Prefer"), vec!["odata.maxpagesize=2", PREFER_UTC, PREFER_TEXT_BODY]);
        assert!(r.body.is_none());
        let Some(doc) = example("delta-query-events/01-request.http") else { return };
        assert_eq!(r.method.as_str(), doc.method());
        assert_eq!(as_me_path(&r.url, "samanthab@contoso.onmicrosoft.com"), doc.path());
        // Query names are case-insensitive in Graph; the values are the same instants.
        let ours = r.url.as_str().replace("/users/samanthab@contoso.onmicrosoft.com", "/me");
        assert_eq!(ours.to_ascii_lowercase(), doc.url().to_ascii_lowercase());
        assert_eq!(doc.header("Prefer"), Some("odata.maxpagesize=2"));
    }

    #[test]
    fn later_requests_get_the_link_as_is() {
        let Some(doc) = example("delta-query-events/02-request.http") else { return };
        let r = request_link(&graph_base(), doc.url(), 2).unwrap();
        assert_eq!(
            r.url.as_str(),
            "https://graph.microsoft.com/v1.0/me/calendarView/delta?$skiptoken=R0usmcCM996atia_s"
        );
        assert_eq!(r.method.as_str(), doc.method());
        assert_eq!(r.header_values("Prefer")[0], "odata.maxpagesize=2");
        let err = request_link(&graph_base(), "https://evil.example.com/v1.0/me/calendarView/delta?$deltatoken=x", 2);
        assert!(matches!(err, Err(GraphError::ForeignHost { .. })));
    }

    #[test]
    fn parses_a_documented_round() {
        let Some(p1) = example("delta-query-events/01-response.http") else { return };
        let page = parse(&graph_base(), p1.body.as_bytes()).unwrap();
        assert_eq!(
            page.next,
            DeltaNext::NextLink(
                "https://graph.microsoft.com/v1.0/me/calendarView/delta?$skiptoken=R0usmcCM996atia_s".into()
            )
        );
        assert_eq!(page.events.len(), 2);
        assert_eq!(page.events[0].subject.as_deref(), Some("Plan shopping list"));
        assert_eq!(page.events[0].id.as_deref(), Some("AAMkADNVxRAAA="));

        let Some(p2) = example("delta-query-events/02-response.http") else { return };
        let page = parse(&graph_base(), p2.body.as_bytes()).unwrap();
        assert!(matches!(page.next, DeltaNext::NextLink(ref l) if l.ends_with("R0usmci39OQxqJrxK4")));

        let Some(p3) = example("delta-query-events/03-response.http") else { return };
        let page = parse(&graph_base(), p3.body.as_bytes()).unwrap();
        assert_eq!(
            page.next,
            DeltaNext::DeltaLink(
                "https://graph.microsoft.com/v1.0/me/calendarView/delta?$deltatoken=R0usmcMDNGg0J1E".into()
            )
        );
        assert_eq!(page.events[0].location.as_ref().unwrap().display_name.as_deref(), Some("Home"));

        let Some(p4) = example("delta-query-events/04-response.http") else { return };
        let page = parse(&graph_base(), p4.body.as_bytes()).unwrap();
        assert_eq!(page.events.len(), 2);
        assert_eq!(page.events[0].removed.as_ref().unwrap().reason.as_deref(), Some("deleted"));
        assert_eq!(page.events[0].id.as_deref(), Some("AAMkADk0MGFkODE3LWE4MmYtNDRhOS04OGQLkRkXbBznTvAADb6ytyAAA="));
        assert!(page.events[1].removed.is_none());
        assert!(matches!(page.next, DeltaNext::DeltaLink(_)));
    }

    #[test]
    fn parses_the_placeholder_example_leniently() {
        let Some(doc) = example("event-delta/01-response.http") else { return };
        let page = parse(&graph_base(), doc.body.as_bytes()).unwrap();
        assert!(matches!(page.next, DeltaNext::NextLink(ref l) if l.contains("$skiptoken=")));
        assert_eq!(page.events[0].i_cal_u_id.as_deref(), Some("iCalUId-value"));
        assert_eq!(page.events[0].transaction_id, None);
        assert_eq!(page.events[0].id, None);
    }

    #[test]
    fn a_page_without_links_or_with_a_foreign_link_is_refused() {
        assert!(matches!(parse(&graph_base(), br#"{"value":[]}"#), Err(GraphError::Decode { .. })));
        let foreign =
            br#"{"@odata.nextLink":"https://evil.example.com/v1.0/me/calendarView/delta?$skiptoken=x","value":[]}"#;
        assert!(matches!(parse(&graph_base(), foreign), Err(GraphError::ForeignHost { .. })));
    }
}
