//! A series' instances within a window, as Exchange shows them.
//!
//! calbridge keeps one shape for recurring events over both protocols: the *instances* of a
//! series (its occurrences and its exceptions) within the sync window, each with its
//! master's remote id and its original start, and never the master itself. Graph's
//! `calendarView/delta` gives instances directly; EWS gives the master (its `Recurrence`, its
//! `ModifiedOccurrences` and `DeletedOccurrences`), which [`occurrences`] expands:
//!
//! - occurrence dates come from the rule ([`Recurrence::dates`]), in the series' own zone, at
//!   the master's local start time, so an occurrence keeps its wall-clock time across DST
//!   changes; a timed occurrence lasts as long as the first, an all-day one the same number
//!   of days (midnight to midnight in the zone);
//! - each occurrence has an index, its 1-based position among the rule's dates (deleted
//!   occurrences count, as EWS's `InstanceIndex` does), and an original start;
//! - occurrences whose original start is cancelled or modified are left out: the caller adds
//!   the modified ones (exceptions), which it reads as items of their own.

use std::collections::HashSet;

use chrono::{DateTime, Duration, NaiveTime, Utc};

use crate::model::{EventData, Series, SeriesKind};
use crate::recurrence::local_to_utc;

/// The most instances one series yields in a window (a daily series over the default window
/// has about 400).
pub const MAX_INSTANCES: usize = 5_000;

/// One occurrence of a series.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Occurrence {
    /// 1-based position among the rule's dates (EWS `InstanceIndex`).
    pub index: u32,
    /// When the rule puts it (its identity in the series).
    pub original_start: DateTime<Utc>,
    /// The master's content at the occurrence's times, as `SeriesKind::Occurrence` of
    /// `master_id`.
    pub data: EventData,
}

/// The index (1-based position among the rule's dates) of the occurrence the rule puts at
/// `original_start`, if it does.
pub fn index_of(master: &EventData, original_start: DateTime<Utc>) -> Option<u32> {
    let from = original_start - Duration::seconds(1);
    let to = original_start + Duration::seconds(1);
    occurrences("", master, from, to, &HashSet::new())
        .into_iter()
        .find(|o| o.original_start == original_start)
        .map(|o| o.index)
}

/// The occurrences of the series `master` (a `SeriesKind::Master` with its rule; its
/// `start`/`end` are the first occurrence's) overlapping `[from, to)`, except those whose
/// original start is in `skip` (cancelled or modified). A master without a rule has none.
pub fn occurrences(
    master_id: &str,
    master: &EventData,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    skip: &HashSet<DateTime<Utc>>,
) -> Vec<Occurrence> {
    let Some(rule) = master.series.recurrence.as_deref() else { return Vec::new() };
    let tz = crate::zones::resolve(&master.time_zone).unwrap_or(chrono_tz::UTC);
    let local_start = master.start.with_timezone(&tz).naive_local();
    let local_end = master.end.with_timezone(&tz).naive_local();
    let start_time = if master.all_day { NaiveTime::MIN } else { local_start.time() };
    let days = (local_end.date() - local_start.date()).num_days().max(1);
    let duration = master.end - master.start;
    // Local dates two days past `to` cover any zone's offset.
    let until = (to + Duration::days(2)).date_naive();
    let mut out = Vec::new();
    for (i, date) in rule.dates(until, usize::MAX).into_iter().enumerate() {
        let Some(start) = local_to_utc(&tz, date.and_time(start_time)) else { continue };
        if start >= to {
            break;
        }
        let end = if master.all_day {
            local_to_utc(&tz, (date + Duration::days(days)).and_time(NaiveTime::MIN)).unwrap_or(start + duration)
        } else {
            start + duration
        };
        let overlaps = end > from || (end == start && start >= from);
        if !overlaps || skip.contains(&start) {
            continue;
        }
        let mut data = master.clone();
        data.start = start;
        data.end = end;
        data.series = Series {
            kind: SeriesKind::Occurrence,
            master_id: Some(master_id.to_string()),
            original_start: Some(start),
            recurrence: None,
        };
        out.push(Occurrence { index: i as u32 + 1, original_start: start, data });
        if out.len() >= MAX_INSTANCES {
            break;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::recurrence::{Pattern, Range, Recurrence};
    use chrono::{NaiveDate, TimeZone, Weekday};

    fn weekly(start: NaiveDate, days: Vec<Weekday>, count: u32) -> Recurrence {
        Recurrence {
            pattern: Pattern::Weekly { interval: 1, days, first_day_of_week: Weekday::Mon },
            start_date: start,
            range: Range::Numbered { count },
        }
    }

    fn master(start: DateTime<Utc>, end: DateTime<Utc>, zone: &str, rule: Recurrence) -> EventData {
        let mut d = EventData::new("Lab", start, end);
        d.time_zone = zone.into();
        d.series = Series::master(rule);
        d
    }

    #[test]
    fn occurrences_keep_their_wall_clock_time_across_dst() {
        // Mondays 09:00 in Zurich from 16 March 2026; DST starts on 29 March.
        let start = Utc.with_ymd_and_hms(2026, 3, 16, 8, 0, 0).unwrap();
        let rule = weekly(NaiveDate::from_ymd_opt(2026, 3, 16).unwrap(), vec![Weekday::Mon], 4);
        let m = master(start, start + Duration::hours(1), "Europe/Zurich", rule);
        let all = occurrences("M", &m, start - Duration::days(1), start + Duration::days(60), &HashSet::new());
        let hours: Vec<u32> = all.iter().map(|o| chrono::Timelike::hour(&o.data.start)).collect();
        assert_eq!(hours, [8, 8, 7, 7], "09:00 local is 08:00 UTC before the change and 07:00 after");
        assert_eq!(all.iter().map(|o| o.index).collect::<Vec<_>>(), [1, 2, 3, 4]);
        assert!(all.iter().all(|o| o.data.end - o.data.start == Duration::hours(1)));
        assert_eq!(all[2].data.series.master_id.as_deref(), Some("M"));
        assert_eq!(all[2].data.series.kind, SeriesKind::Occurrence);
        assert_eq!(all[2].data.series.original_start, Some(all[2].data.start));
    }

    #[test]
    fn the_window_and_skipped_occurrences_are_respected_and_indexes_kept() {
        let start = Utc.with_ymd_and_hms(2026, 1, 5, 9, 0, 0).unwrap();
        let rule = weekly(start.date_naive(), vec![Weekday::Mon], 10);
        let m = master(start, start + Duration::hours(1), "UTC", rule);
        let skip: HashSet<_> = [start + Duration::weeks(4)].into();
        let from = start + Duration::weeks(3);
        let all = occurrences("M", &m, from, start + Duration::weeks(6), &skip);
        assert_eq!(all.iter().map(|o| o.index).collect::<Vec<_>>(), [4, 6], "the 5th is skipped");
        assert_eq!(index_of(&m, start + Duration::weeks(4)), Some(5));
        assert_eq!(index_of(&m, start + Duration::weeks(4) + Duration::hours(1)), None, "not a date of the rule");
        assert_eq!(index_of(&m, start + Duration::weeks(10)), None, "past the 10th");
    }

    #[test]
    fn all_day_occurrences_keep_their_dates_in_their_zone() {
        // An all-day series on Sundays in Auckland: midnight to midnight local, whatever UTC
        // says. New Zealand leaves DST on Sunday 5 April 2026, a 25-hour day.
        let tz: chrono_tz::Tz = "Pacific/Auckland".parse().unwrap();
        let day = NaiveDate::from_ymd_opt(2026, 3, 29).unwrap();
        let midnight = |d: NaiveDate| tz.from_local_datetime(&d.and_time(NaiveTime::MIN)).unwrap().with_timezone(&Utc);
        let mut m = master(
            midnight(day),
            midnight(day + Duration::days(1)),
            "Pacific/Auckland",
            weekly(day, vec![Weekday::Sun], 3),
        );
        m.all_day = true;
        let all = occurrences(
            "M",
            &m,
            midnight(day) - Duration::days(1),
            midnight(day) + Duration::days(30),
            &HashSet::new(),
        );
        assert_eq!(all.len(), 3);
        for (k, o) in all.iter().enumerate() {
            assert_eq!(o.data.start, midnight(day + Duration::weeks(k as i64)));
            assert_eq!(o.data.end, midnight(day + Duration::weeks(k as i64) + Duration::days(1)));
        }
        let lengths: Vec<i64> = all.iter().map(|o| (o.data.end - o.data.start).num_hours()).collect();
        assert_eq!(lengths, [24, 25, 24]);
    }

    #[test]
    fn a_master_without_a_rule_has_no_occurrences() {
        let start = Utc.with_ymd_and_hms(2026, 1, 5, 9, 0, 0).unwrap();
        let m = EventData::new("x", start, start + Duration::hours(1));
        assert!(occurrences("M", &m, start, start + Duration::days(9), &HashSet::new()).is_empty());
    }
}
