//! calendar: getSchedule — <https://learn.microsoft.com/graph/api/calendar-getschedule>
//!
//! `POST /v1.0/users/{email}/calendar/getSchedule` with the mailboxes and a time range; Graph
//! answers free/busy (an `availabilityView` string and the busy items) for each mailbox.

use chrono::{DateTime, Utc};
use reqwest::Method;
use url::Url;

use super::{graph_path, parse_json, GraphRequest, TransportRetry, PREFER_UTC};
use crate::error::GraphError;
use crate::types::{Collection, DateTimeTimeZone, GetScheduleRequest, ScheduleInformation};

/// A UTC instant as a `dateTimeTimeZone` (`2026-11-23T09:00:00`, `UTC`).
pub fn utc_date_time(t: DateTime<Utc>) -> DateTimeTimeZone {
    DateTimeTimeZone { date_time: t.format("%Y-%m-%dT%H:%M:%S").to_string(), time_zone: Some("UTC".into()) }
}

/// `email` is the mailbox whose permissions are used; `schedules` the mailboxes asked about.
/// getSchedule reads nothing, so it is retried like a GET.
pub fn request(
    base: &Url,
    email: &str,
    schedules: &[String],
    start: DateTime<Utc>,
    end: DateTime<Utc>,
    interval_minutes: u32,
) -> GraphRequest {
    let url = graph_path(base, &["v1.0", "users", email, "calendar", "getSchedule"]);
    let body = GetScheduleRequest {
        schedules: schedules.to_vec(),
        start_time: utc_date_time(start),
        end_time: utc_date_time(end),
        availability_view_interval: Some(interval_minutes as i32),
    };
    GraphRequest::new("get schedule", Method::POST, url, TransportRetry::Idempotent)
        .header("Prefer", PREFER_UTC)
        .json_body(&body)
}

pub fn parse(body: &[u8]) -> Result<Vec<ScheduleInformation>, GraphError> {
    let c: Collection<ScheduleInformation> = parse_json("get schedule", body)?;
    Ok(c.value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::{as_me_path, example, graph_base};
    use chrono::TimeZone;

    #[test]
    fn request_matches_the_documented_one() {
        let Some(doc) = example("calendar-getschedule/01-request.http") else { return };
        let documented: GetScheduleRequest = serde_json::from_str(&doc.body).unwrap();
        // 09:00-18:00 Pacific (PDT, UTC-7, on 2019-03-15) in UTC.
        let start = Utc.with_ymd_and_hms(2019, 3, 15, 16, 0, 0).unwrap();
        let end = Utc.with_ymd_and_hms(2019, 3, 16, 1, 0, 0).unwrap();
        let r = request(&graph_base(), "adelev@contoso.onmicrosoft.com", &documented.schedules, start, end, 60);
        assert_eq!(r.method.as_str(), doc.method());
        assert_eq!(as_me_path(&r.url, "adelev@contoso.onmicrosoft.com"), doc.path());
        assert_eq!(r.header_values("Prefer"), vec![PREFER_UTC]);
        assert_eq!(r.header_values("Content-Type"), vec!["application/json"]);
        let sent: GetScheduleRequest = serde_json::from_slice(r.body.as_ref().unwrap()).unwrap();
        assert_eq!(sent.schedules, documented.schedules);
        assert_eq!(sent.availability_view_interval, documented.availability_view_interval);
        assert_eq!(
            sent.start_time,
            DateTimeTimeZone { date_time: "2019-03-15T16:00:00".into(), time_zone: Some("UTC".into()) }
        );
        assert_eq!(sent.end_time.date_time, "2019-03-16T01:00:00");
    }

    #[test]
    fn parses_the_documented_response() {
        let Some(doc) = example("calendar-getschedule/01-response.http") else { return };
        let s = parse(doc.body.as_bytes()).unwrap();
        assert_eq!(s.len(), 2);
        assert_eq!(s[0].schedule_id.as_deref(), Some("adelev@contoso.onmicrosoft.com"));
        assert_eq!(s[0].availability_view.as_deref(), Some("000220000"));
        let items = s[1].schedule_items.as_ref().unwrap();
        assert_eq!(items.len(), 5);
        assert_eq!(items[2].status.as_deref(), Some("tentative"));
        assert_eq!(items[0].start.as_ref().unwrap().time_zone.as_deref(), Some("Pacific Standard Time"));
        assert!(s[1].working_hours.is_some());
    }
}
