//! What both backends share: how values become columns and back, and the messages of the
//! rules the trait sets, so SQLite and PostgreSQL say the same thing for the same breach.

use calbridge_core::model::{EventData, EventId, SeriesKind, ShowAs};
use calbridge_core::store::{BusyTime, SealedSecret, StoreError};
use chrono::{DateTime, Utc};

use crate::error::corrupt;

/// An instant as microseconds since the Unix epoch, for the range columns.
pub(crate) fn micros(t: DateTime<Utc>) -> i64 {
    // Floor to microseconds; the exact instant lives in the event's JSON.
    t.timestamp_micros()
}

pub(crate) fn us_to_time(us: i64, what: impl FnOnce() -> String) -> Result<DateTime<Utc>, StoreError> {
    DateTime::from_timestamp_micros(us).ok_or_else(|| corrupt(what(), format!("instant {us} out of range")))
}

/// The `busy_as` column: the event's show-as when it can claim time, `None` when it cannot (a
/// cancelled event, a series master: a series claims time through its instances). The
/// policy's other tests (free, working elsewhere) run on the value when availability is read.
pub(crate) fn busy_as(data: &EventData) -> Option<&'static str> {
    if data.cancelled || data.series.kind == SeriesKind::Master {
        return None;
    }
    Some(show_as_name(data.show_as))
}

/// A show-as as its serde name, the name `busy_as` holds.
pub(crate) fn show_as_name(show_as: ShowAs) -> &'static str {
    match show_as {
        ShowAs::Free => "free",
        ShowAs::Tentative => "tentative",
        ShowAs::Busy => "busy",
        ShowAs::Oof => "oof",
        ShowAs::WorkingElsewhere => "workingElsewhere",
        ShowAs::Unknown => "unknown",
    }
}

/// Events longer than this (a day, in µs) are "long": an index of their own finds them, so a
/// busy-times query reads the rest by start from one day before its range, not from the
/// beginning of the calendar.
pub(crate) const LONG_EVENT_US: i64 = 86_400_000_000;

/// The two halves of a busy-times query over `[from, to)`: events starting from one day
/// before `from` (any overlapping event that starts earlier is long), and long events starting
/// earlier, from their partial index (`events_long`, migration 7).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum BusyArm {
    Short,
    Long,
}

impl BusyArm {
    /// The arm's own condition; the long one repeats the partial index's, literally, so the
    /// database may use that index.
    pub fn condition(self) -> &'static str {
        match self {
            BusyArm::Short => "TRUE",
            BusyArm::Long => "end_us - start_us > 86400000000",
        }
    }
}

/// A row of a busy-times query: calendar, start and end in µs, `busy_as`.
pub(crate) fn busy_time_from_row(
    calendar_id: i64,
    start_us: i64,
    end_us: i64,
    busy_as: &str,
) -> Result<BusyTime, StoreError> {
    let what = || format!("a busy time of calendar {calendar_id}");
    Ok(BusyTime {
        calendar_id,
        start: us_to_time(start_us, what)?,
        end: us_to_time(end_us, what)?,
        show_as: parse_show_as(busy_as, what)?,
    })
}

/// The show-as a `busy_as` column holds.
fn parse_show_as(name: &str, what: impl FnOnce() -> String) -> Result<ShowAs, StoreError> {
    Ok(match name {
        "free" => ShowAs::Free,
        "tentative" => ShowAs::Tentative,
        "busy" => ShowAs::Busy,
        "oof" => ShowAs::Oof,
        "workingElsewhere" => ShowAs::WorkingElsewhere,
        "unknown" => ShowAs::Unknown,
        _ => return Err(corrupt(what(), format!("unknown show-as `{name}`"))),
    })
}

pub(crate) fn to_json<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_string(value).expect("calbridge-core types serialise to JSON")
}

pub(crate) fn sealed_from_json(json: &str, what: impl FnOnce() -> String) -> Result<SealedSecret, StoreError> {
    serde_json::from_str(json).map_err(|e| corrupt(what(), e))
}

pub(crate) fn normalise_email(email: &str) -> String {
    email.trim().to_lowercase()
}

pub(crate) fn read_only(id: &EventId) -> StoreError {
    StoreError::Conflict(format!(
        "event {id} came from Exchange and is read-only in calbridge; change it in Outlook/Exchange \
         and the next sync brings the change here"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn busy_as_names_are_the_serde_names_the_migration_reads() {
        for show_as in
            [ShowAs::Free, ShowAs::Tentative, ShowAs::Busy, ShowAs::Oof, ShowAs::WorkingElsewhere, ShowAs::Unknown]
        {
            let json = serde_json::to_value(show_as).unwrap();
            assert_eq!(json.as_str(), Some(show_as_name(show_as)));
            assert_eq!(parse_show_as(show_as_name(show_as), String::new).unwrap(), show_as);
        }
        let err = parse_show_as("Busy", || "a busy time".into()).unwrap_err().to_string();
        assert!(err.contains("unknown show-as `Busy`"), "{err}");
        let t = DateTime::from_timestamp(1_700_000_000, 0).unwrap();
        let mut d = EventData::new("x", t, t);
        d.show_as = ShowAs::Oof;
        assert_eq!(busy_as(&d), Some("oof"));
        d.cancelled = true;
        assert_eq!(busy_as(&d), None, "a cancelled event claims no time");
        d.cancelled = false;
        d.series.kind = SeriesKind::Master;
        assert_eq!(busy_as(&d), None, "a series claims time through its instances");
        assert!(parse_show_as("sleeping", || "event e".into()).is_err());
    }

    #[test]
    fn micros_floor_and_keep_order() {
        let t = DateTime::from_timestamp(1_700_000_000, 999_999_999).unwrap();
        assert_eq!(micros(t), 1_700_000_000_999_999);
        let before_epoch = DateTime::from_timestamp(-1, 500).unwrap();
        assert_eq!(micros(before_epoch), -1_000_000);
    }
}
