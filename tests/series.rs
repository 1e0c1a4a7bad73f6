//! Recurring series end to end, over both protocols: series made in Exchange (the simulator's
//! Outlook) are pulled into the store as their instances, occurrences and exceptions, each
//! with its master's id and original start (see `calbridge_core::series`). Over Graph the
//! instances come from `calendarView/delta`; over EWS the adapter expands the master
//! SyncFolderItems reports. Each test's result is a golden file in `snapshots/`, the same
//! file for both protocols: they must agree to the minute. The sync runs at a fixed moment,
//! so the window and the files do not move with the calendar.
//!
//! The cases are those where calendar integrations fail in the field: an occurrence deleted
//! by someone in another time zone, a series with hundreds of exceptions, an occurrence moved
//! across a DST change, a meeting organised in another zone, an all-day series, a monthly
//! series on day 31.

use chrono::{DateTime, Duration, NaiveDate, TimeZone, Utc};
use chrono_tz::Tz;
use serde_json::json;

use calbridge_core::model::{CalendarKind, Event, SeriesKind};
use calbridge_sim::NewEvent;
use calbridge_tests::{both, recurrence, Protocol, World};

const ANN: &str = "ann@fabrikam.example";
const BOB: &str = "bob@fabrikam.example";

/// The moment the syncs run: Monday 11 January 2027, noon UTC. The window reaches from 7
/// December 2026 to mid January 2028.
fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2027, 1, 11, 12, 0, 0).unwrap()
}

fn zone(name: &str) -> Tz {
    name.parse().unwrap()
}

/// `y-m-d h:00` in `tz`, as an instant.
fn local(tz: Tz, y: i32, m: u32, d: u32, h: u32) -> DateTime<Utc> {
    tz.with_ymd_and_hms(y, m, d, h, 0, 0).single().unwrap().with_timezone(&Utc)
}

/// A series in `tz` from `start` (local) for `hours`, made by `mailbox` in Outlook.
fn series(subject: &str, tz_name: &str, start: DateTime<Utc>, hours: i64, kind: &str, count: i32) -> NewEvent {
    let mut e = NewEvent::new(subject, start, start + Duration::hours(hours));
    e.time_zone = Some(tz_name.into());
    let first = start.with_timezone(&zone(tz_name)).date_naive();
    e.recurrence = Some(recurrence(kind, 1, first, count));
    e
}

/// The instances the store holds for `subject`, one line each, in `tz`: kind, local start and
/// end, the start in UTC, and an exception's original start.
fn golden(events: &[Event], subject_prefix: &str, tz: Tz) -> String {
    let mut rows: Vec<(DateTime<Utc>, String)> = events
        .iter()
        .filter(|e| e.data.subject.starts_with(subject_prefix))
        .map(|e| {
            let d = &e.data;
            let fmt = |t: DateTime<Utc>| t.with_timezone(&tz).format("%a %Y-%m-%d %H:%M").to_string();
            let kind = match d.series.kind {
                SeriesKind::Single => "single",
                SeriesKind::Master => "master",
                SeriesKind::Occurrence => "occurrence",
                SeriesKind::Exception => "exception",
            };
            let mut line = format!(
                "{kind:<10} {} -> {} ({}Z){} {}",
                fmt(d.start),
                fmt(d.end),
                d.start.format("%H:%M"),
                if d.all_day { " all-day" } else { "" },
                d.subject
            );
            if d.series.kind == SeriesKind::Exception {
                line.push_str(&format!(" [instead of {}]", d.series.original_start.map(fmt).unwrap_or_default()));
            }
            (d.start, line)
        })
        .collect();
    rows.sort();
    rows.into_iter().map(|(_, l)| l).collect::<Vec<_>>().join("\n")
}

/// Every instance of a series carries its master's id (the same for all) and an original start.
fn assert_one_series(events: &[Event], subject_prefix: &str) {
    let instances: Vec<&Event> = events.iter().filter(|e| e.data.subject.starts_with(subject_prefix)).collect();
    assert!(!instances.is_empty(), "the series' instances are pulled");
    let masters: std::collections::HashSet<_> = instances.iter().map(|e| e.data.series.master_id.clone()).collect();
    assert_eq!(masters.len(), 1, "one master id for all instances: {masters:?}");
    assert!(masters.iter().all(Option::is_some));
    assert!(instances.iter().all(|e| e.data.series.original_start.is_some() && e.data.series.recurrence.is_none()));
}

/// Pulls `mailbox`, checks the series' shape and that a second sync writes nothing, and
/// returns the golden rendering.
async fn pulled(w: &World, mailbox: &str, subject_prefix: &str, tz: Tz) -> String {
    let cal = w.link(mailbox, CalendarKind::Person).await;
    w.sync_at(&cal, now()).await;
    let again = w.sync_at(&cal, now()).await;
    assert_eq!(again.writes.total(), 0, "an idle sync writes nothing: {again:?}");
    let events = w.local(&cal).await;
    assert_one_series(&events, subject_prefix);
    golden(&events, subject_prefix, tz)
}

fn check(name: &str, value: String) {
    let mut settings = insta::Settings::clone_current();
    settings.set_prepend_module_to_snapshot(false);
    settings.bind(|| insta::assert_snapshot!(name, value));
}

/// An occurrence deleted by someone in New York from a series made in Zurich, in the weeks
/// when the United States have changed to summer time and Europe has not (the two zones are
/// five hours apart instead of six): the right occurrence goes, and only that one.
async fn an_occurrence_deleted_in_another_zone(p: Protocol) {
    let w = World::on(p).await;
    let zurich = zone("Europe/Zurich");
    let start = local(zurich, 2027, 3, 1, 9);
    let id =
        w.sim.outlook().create_event(ANN, series("Ethics seminar", "Europe/Zurich", start, 1, "weekly", 6)).unwrap();
    // Seen from New York, the seminar of 22 March is at 04:00 that morning.
    let new_york = zone("America/New_York");
    let target = local(new_york, 2027, 3, 22, 4);
    let instances = w.sim.outlook().list_instances(ANN, start, start + Duration::weeks(8)).unwrap();
    let occurrence = instances
        .iter()
        .find(|i| {
            i.start.as_ref().is_some_and(|s| s.date_time.starts_with(&target.format("%Y-%m-%dT%H:%M").to_string()))
        })
        .unwrap_or_else(|| panic!("the occurrence at {target}: {instances:?}"))
        .id
        .clone()
        .unwrap();
    assert_ne!(occurrence, id);
    w.sim.outlook().delete_event(ANN, &occurrence).unwrap();
    check("an_occurrence_deleted_in_another_zone", pulled(&w, ANN, "Ethics seminar", zurich).await);
}
both!(an_occurrence_deleted_in_another_zone);

/// A daily series of 300 days of which 200 occurrences were changed (each retitled, every
/// tenth also moved an hour later): every exception arrives in place of its occurrence.
async fn a_series_with_hundreds_of_exceptions(p: Protocol) {
    let w = World::on(p).await;
    let zurich = zone("Europe/Zurich");
    let start = local(zurich, 2027, 2, 1, 8);
    w.sim.outlook().create_event(ANN, series("Stand-up", "Europe/Zurich", start, 1, "daily", 300)).unwrap();
    let instances = w.sim.outlook().list_instances(ANN, start, start + Duration::days(301)).unwrap();
    assert_eq!(instances.len(), 300);
    for (k, inst) in instances.iter().enumerate().filter(|(k, _)| k % 3 != 0).take(200) {
        let mut patch = json!({"subject": format!("Stand-up #{k}")});
        if k % 10 == 1 {
            let s = start + Duration::days(k as i64) + Duration::hours(1);
            patch["start"] = json!({"dateTime": s.format("%Y-%m-%dT%H:%M:%S").to_string(), "timeZone": "UTC"});
            patch["end"] = json!({"dateTime": (s + Duration::hours(1)).format("%Y-%m-%dT%H:%M:%S").to_string(), "timeZone": "UTC"});
        }
        w.sim.outlook().update_event(ANN, inst.id.as_deref().unwrap(), patch).unwrap();
    }
    let out = pulled(&w, ANN, "Stand-up", zurich).await;
    assert_eq!(out.lines().filter(|l| l.starts_with("exception")).count(), 200, "{out}");
    assert_eq!(out.lines().count(), 300);
    check("a_series_with_hundreds_of_exceptions", out);
}
both!(a_series_with_hundreds_of_exceptions);

/// The occurrence of Thursday 25 March (before Europe's change to summer time on the 28th)
/// moved to Monday 29 March, after it, at the same wall-clock time: 09:00 in Zurich both
/// times, one hour apart in UTC. (It stays before the next occurrence, 1 April: Exchange
/// refuses to move an occurrence past its neighbours.)
async fn an_occurrence_moved_across_a_dst_change(p: Protocol) {
    let w = World::on(p).await;
    let zurich = zone("Europe/Zurich");
    let start = local(zurich, 2027, 3, 11, 9);
    w.sim.outlook().create_event(ANN, series("Lab", "Europe/Zurich", start, 2, "weekly", 5)).unwrap();
    let instances = w.sim.outlook().list_instances(ANN, start, start + Duration::weeks(6)).unwrap();
    let moved = local(zurich, 2027, 3, 29, 9);
    let patch = json!({
        "start": {"dateTime": "2027-03-29T09:00:00", "timeZone": "Europe/Zurich"},
        "end": {"dateTime": "2027-03-29T11:00:00", "timeZone": "Europe/Zurich"},
    });
    w.sim.outlook().update_event(ANN, instances[2].id.as_deref().unwrap(), patch).unwrap();
    let out = pulled(&w, ANN, "Lab", zurich).await;
    assert!(out.contains(&format!("({}Z)", moved.format("%H:%M"))), "{out}");
    check("an_occurrence_moved_across_a_dst_change", out);
}
both!(an_occurrence_moved_across_a_dst_change);

/// A weekly meeting Bob organises at 10:00 New York time, with Ann (in Europe) invited: Ann's
/// copy repeats at 10:00 in New York, through both DST changes (the United States' on 14
/// March, Europe's on 28 March), never at a fixed European or UTC time.
async fn a_meeting_organised_in_another_zone(p: Protocol) {
    let w = World::on(p).await;
    let new_york = zone("America/New_York");
    let start = local(new_york, 2027, 3, 1, 10);
    let mut meeting = series("Transatlantic sync", "America/New_York", start, 1, "weekly", 6);
    meeting.attendees = vec![ANN.into()];
    w.sim.outlook().create_event(BOB, meeting).unwrap();
    let out = pulled(&w, ANN, "Transatlantic sync", new_york).await;
    assert!(out.lines().all(|l| l.contains(" 10:00 -> ")), "10:00 in New York every week: {out}");
    check("a_meeting_organised_in_another_zone", out);
}
both!(a_meeting_organised_in_another_zone);

/// An all-day series (Sundays in Auckland): each occurrence covers its whole day in the
/// series' zone, including the day New Zealand leaves summer time (Sunday 4 April 2027, a
/// 25-hour day).
async fn an_all_day_recurring_event(p: Protocol) {
    let w = World::on(p).await;
    let auckland = zone("Pacific/Auckland");
    let first = local(auckland, 2027, 3, 21, 0);
    let mut e = NewEvent::new("Field day", first, local(auckland, 2027, 3, 22, 0));
    e.time_zone = Some("Pacific/Auckland".into());
    e.is_all_day = true;
    e.recurrence = Some(recurrence("weekly", 1, NaiveDate::from_ymd_opt(2027, 3, 21).unwrap(), 4));
    w.sim.outlook().create_event(ANN, e).unwrap();
    let out = pulled(&w, ANN, "Field day", auckland).await;
    assert!(out.lines().all(|l| l.contains(" 00:00 -> ") && l.contains("all-day")), "{out}");
    check("an_all_day_recurring_event", out);
}
both!(an_all_day_recurring_event);

/// A monthly series on day 31: in shorter months it falls on the month's last day, as
/// Exchange does (never skipping the month, as RFC 5545's BYMONTHDAY=31 would).
async fn a_monthly_series_on_day_31(p: Protocol) {
    let w = World::on(p).await;
    let zurich = zone("Europe/Zurich");
    let start = local(zurich, 2027, 1, 31, 14);
    w.sim
        .outlook()
        .create_event(ANN, series("Month-end close", "Europe/Zurich", start, 1, "absoluteMonthly", 12))
        .unwrap();
    let out = pulled(&w, ANN, "Month-end close", zurich).await;
    assert!(out.contains("2027-02-28 14:00") && out.contains("2027-04-30 14:00"), "{out}");
    assert_eq!(out.lines().count(), 12);
    check("a_monthly_series_on_day_31", out);
}
both!(a_monthly_series_on_day_31);
