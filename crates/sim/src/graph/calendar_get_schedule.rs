//! calendar: getSchedule (`POST /users/{id}/calendar/getSchedule`) — https://learn.microsoft.com/graph/api/calendar-getschedule?view=graph-rest-1.0
//!
//! For each address: `availabilityView` (one digit per interval: 0 free, 1 tentative, 2 busy,
//! 3 oof, 4 working elsewhere), `scheduleItems` (subject/location left out of private items),
//! and `workingHours`; an address that is not a mailbox of the tenant gets an `error`.

use axum::body::Bytes;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Duration, Utc};
use serde_json::json;

use super::Ctx;
use crate::http::json_response;
use crate::state::ApiError;
use crate::wire::{DateTimeTimeZone, FreeBusyError, GetScheduleRequest, ScheduleInformation, ScheduleItem};

fn instant(v: &DateTimeTimeZone, name: &str) -> Result<DateTime<Utc>, ApiError> {
    let zone_name = v.time_zone.clone().unwrap_or_else(|| "UTC".into());
    let zone = crate::tz::resolve(&zone_name).ok_or_else(|| {
        ApiError::new(
            400,
            "TimeZoneNotSupportedException",
            format!("A valid TimeZone value must be specified. The following TimeZone value is not supported: '{zone_name}'."),
        )
    })?;
    let (naive, exact) = crate::tz::parse_graph_date_time(&v.date_time).ok_or_else(|| {
        ApiError::bad_body(format!(
            "Cannot convert the literal '{}' to the expected type 'Edm.DateTime' ({name}).",
            v.date_time
        ))
    })?;
    Ok(exact.unwrap_or_else(|| crate::tz::local_to_utc(zone, naive)))
}

fn digit(status: &str) -> u8 {
    match status {
        "tentative" => 1,
        "busy" => 2,
        "oof" => 3,
        "workingElsewhere" => 4,
        _ => 0,
    }
}

/// Which of two overlapping statuses wins in the merged view.
fn rank(d: u8) -> u8 {
    match d {
        3 => 4,
        2 => 3,
        1 => 2,
        4 => 1,
        _ => 0,
    }
}

pub async fn handler(ctx: Ctx, body: Bytes) -> Response {
    match schedule(&ctx, &body) {
        Ok(r) => r,
        Err(e) => e.into_response(),
    }
}

fn schedule(ctx: &Ctx, body: &[u8]) -> Result<Response, ApiError> {
    ctx.mailbox()?;
    // Action parameters are case-insensitive in Graph; Microsoft's SDKs send them as declared
    // in the CSDL (`Schedules`, `StartTime`, ...).
    let obj: serde_json::Map<String, serde_json::Value> = super::event_create::json_object(body)?
        .into_iter()
        .map(|(k, v)| {
            let mut c = k.chars();
            let key = match c.next() {
                Some(f) => f.to_ascii_lowercase().to_string() + c.as_str(),
                None => k,
            };
            (key, v)
        })
        .collect();
    let req: GetScheduleRequest =
        serde_json::from_value(serde_json::Value::Object(obj)).map_err(|e| ApiError::bad_body(e.to_string()))?;
    let start = instant(&req.start_time, "startTime")?;
    let end = instant(&req.end_time, "endTime")?;
    if end <= start {
        return Err(ApiError::new(400, "ErrorInvalidParameter", "The end time must be later than the start time."));
    }
    if end - start > Duration::days(62) {
        return Err(ApiError::new(
            400,
            "ErrorInvalidParameter",
            "The requested time window exceeds the maximum of 62 days.",
        ));
    }
    let interval = req.availability_view_interval.unwrap_or(30);
    if !(5..=1440).contains(&interval) {
        return Err(ApiError::new(
            400,
            "ErrorInvalidParameter",
            "availabilityViewInterval must be between 5 and 1440 minutes.",
        ));
    }
    if req.schedules.is_empty() || req.schedules.len() > 100 {
        return Err(ApiError::new(400, "ErrorInvalidParameter", "Specify between 1 and 100 schedules."));
    }
    let zone = ctx.prefer.zone();
    let show = |t: DateTime<Utc>| match &zone {
        Some((name, z)) => DateTimeTimeZone {
            date_time: crate::tz::format_naive(crate::tz::to_local(t, *z)),
            time_zone: Some(name.clone()),
            ..Default::default()
        },
        None => DateTimeTimeZone {
            date_time: crate::tz::format_naive(t.naive_utc()),
            time_zone: Some("UTC".into()),
            ..Default::default()
        },
    };
    let step = Duration::minutes(interval as i64);
    let slots = ((end - start).num_minutes() + interval as i64 - 1) / interval as i64;
    let state = ctx.sim.inner.state.lock().unwrap();
    let mut value = Vec::new();
    for address in &req.schedules {
        let Some(mb) = state.mailbox(address) else {
            value.push(ScheduleInformation {
                schedule_id: Some(address.clone()),
                availability_view: Some(String::new()),
                schedule_items: Some(vec![]),
                error: Some(FreeBusyError {
                    message: Some(format!("The user or mailbox '{address}' could not be found.")),
                    response_code: Some("ErrorMailRecipientNotFound".into()),
                }),
                ..Default::default()
            });
            continue;
        };
        let instances = state.instances(&mb.key, start, end);
        let mut view = String::new();
        for k in 0..slots {
            let (a, b) = (start + step * k as i32, start + step * (k as i32 + 1));
            let d = instances
                .iter()
                .filter(|i| i.start < b && i.end > a)
                .map(|i| digit(i.show_as()))
                .max_by_key(|d| rank(*d))
                .unwrap_or(0);
            view.push(char::from(b'0' + d));
        }
        let items = instances
            .iter()
            .map(|i| {
                let ev = i.exception.map(|x| &x.event).unwrap_or(&i.ev.event);
                let private = matches!(ev.sensitivity.as_deref(), Some("private") | Some("confidential"));
                ScheduleItem {
                    is_private: Some(private),
                    status: Some(i.show_as().to_string()),
                    subject: if private { None } else { ev.subject.clone() },
                    location: if private {
                        None
                    } else {
                        ev.location.as_ref().and_then(|l| l.display_name.clone()).filter(|l| !l.is_empty())
                    },
                    start: Some(show(i.start)),
                    end: Some(show(i.end)),
                    ..Default::default()
                }
            })
            .collect();
        value.push(ScheduleInformation {
            schedule_id: Some(address.clone()),
            availability_view: Some(view),
            schedule_items: Some(items),
            working_hours: Some(json!({
                "daysOfWeek": ["monday", "tuesday", "wednesday", "thursday", "friday"],
                "startTime": "08:00:00.0000000",
                "endTime": "17:00:00.0000000",
                "timeZone": {"name": crate::tz::windows_name(&mb.time_zone)}
            })),
            ..Default::default()
        });
    }
    drop(state);
    let body = json!({
        "@odata.context": format!("{}#Collection(microsoft.graph.scheduleInformation)", crate::http::metadata(&ctx.base)),
        "value": value,
    });
    let mut resp = json_response(StatusCode::OK, &body);
    ctx.prefer.apply_headers(&mut resp);
    Ok(resp)
}
