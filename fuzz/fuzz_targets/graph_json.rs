//! Arbitrary bytes as a Microsoft Graph answer, read by each of calbridge-graph's parsers:
//! a calendarView delta page (its links checked against the Graph host), a calendarView page,
//! an event (and its conversion to calbridge's model, as a delta item and as a confirmation),
//! a calendar list, a place list, getSchedule (each item converted), a user, the token
//! endpoint's answer (as a success and as an error), and the bytes as a `Retry-After` value.
//! Errors are fine; a panic, a hang or unbounded memory is a bug.
#![no_main]

use calbridge_graph::client::parse_retry_after;
use calbridge_graph::convert;
use calbridge_graph::endpoints::{
    calendar_get_schedule, calendar_list, calendar_view, calendar_view_delta, event_get, place_list, token, user_get,
};
use calbridge_graph::types::Event;
use chrono::{TimeZone, Utc};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let base = url::Url::parse("https://graph.microsoft.com").expect("a URL");
    if let Ok(page) = calendar_view_delta::parse(&base, data) {
        page.events.iter().for_each(event);
    }
    if let Ok(page) = calendar_view::parse(data) {
        page.value.iter().for_each(event);
    }
    if let Ok(ev) = event_get::parse(data) {
        event(&ev);
    }
    let _ = calendar_list::parse(data);
    let _ = place_list::parse(data);
    if let Ok(schedules) = calendar_get_schedule::parse(data) {
        for s in &schedules {
            s.schedule_items.iter().flatten().for_each(|i| drop(convert::schedule_item(i)));
        }
    }
    let _ = user_get::parse(data);
    let _ = token::parse(200, data);
    let _ = token::parse(400, data);
    if let Ok(text) = std::str::from_utf8(data) {
        let now = Utc.with_ymd_and_hms(2026, 11, 23, 9, 0, 0).single().expect("a valid instant");
        let _ = parse_retry_after(text, now);
    }
});

/// An event as the remote reads it: a delta item, and a confirmation of what was sent.
fn event(ev: &Event) {
    let _ = convert::remote_change(ev);
    if let Ok(data) = convert::event_data(ev) {
        let _ = convert::confirmed(ev, &data);
        // What calbridge would write back must be writable.
        let _ = convert::to_wire(&data);
    }
    let _ = convert::version(ev);
    let _ = convert::provenance(ev);
}
