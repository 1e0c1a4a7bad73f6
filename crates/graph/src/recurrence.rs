//! Graph's `patternedRecurrence` ↔ calbridge's [`Recurrence`].
//!
//! Graph names patterns `daily`, `weekly`, `absoluteMonthly`, `relativeMonthly`,
//! `absoluteYearly`, `relativeYearly`; days `monday`…; indexes `first`…`last`; ranges
//! `noEnd`, `endDate`, `numbered` with `YYYY-MM-DD` dates and the range's
//! `recurrenceTimeZone`. Reading is lenient about case; writing uses Graph's spelling.

use chrono::{NaiveDate, Weekday};

use calbridge_core::recurrence::{Pattern, Range, Recurrence, WeekIndex};

use crate::types::{PatternedRecurrence, RecurrencePattern, RecurrenceRange};

fn day(s: &str) -> Option<Weekday> {
    Some(match s.to_ascii_lowercase().as_str() {
        "monday" => Weekday::Mon,
        "tuesday" => Weekday::Tue,
        "wednesday" => Weekday::Wed,
        "thursday" => Weekday::Thu,
        "friday" => Weekday::Fri,
        "saturday" => Weekday::Sat,
        "sunday" => Weekday::Sun,
        _ => return None,
    })
}

fn day_name(d: Weekday) -> &'static str {
    match d {
        Weekday::Mon => "monday",
        Weekday::Tue => "tuesday",
        Weekday::Wed => "wednesday",
        Weekday::Thu => "thursday",
        Weekday::Fri => "friday",
        Weekday::Sat => "saturday",
        Weekday::Sun => "sunday",
    }
}

fn index(s: Option<&str>) -> Result<WeekIndex, String> {
    Ok(match s.unwrap_or("first").to_ascii_lowercase().as_str() {
        "first" => WeekIndex::First,
        "second" => WeekIndex::Second,
        "third" => WeekIndex::Third,
        "fourth" => WeekIndex::Fourth,
        "last" => WeekIndex::Last,
        other => return Err(format!("index {other:?}")),
    })
}

fn index_name(i: WeekIndex) -> &'static str {
    match i {
        WeekIndex::First => "first",
        WeekIndex::Second => "second",
        WeekIndex::Third => "third",
        WeekIndex::Fourth => "fourth",
        WeekIndex::Last => "last",
    }
}

fn date(what: &str, s: Option<&str>) -> Result<NaiveDate, String> {
    let s = s.ok_or_else(|| format!("{what} is missing"))?;
    NaiveDate::parse_from_str(s.get(..10).unwrap_or(s), "%Y-%m-%d").map_err(|_| format!("{what} {s:?} is not a date"))
}

/// A Graph recurrence as calbridge's rule; the reason when it cannot be read.
pub fn from_wire(r: &PatternedRecurrence) -> Result<Recurrence, String> {
    let p = r.pattern.as_ref().ok_or("the pattern is missing")?;
    let range = r.range.as_ref().ok_or("the range is missing")?;
    let interval = p.interval.unwrap_or(1).max(0) as u32;
    let days = || -> Result<Vec<Weekday>, String> {
        p.days_of_week.iter().flatten().map(|d| day(d).ok_or_else(|| format!("day {d:?}"))).collect()
    };
    let num = |v: Option<i32>, what: &str| v.filter(|n| *n > 0).map(|n| n as u32).ok_or(format!("{what} is missing"));
    let pattern = match p.kind.as_deref().unwrap_or("").to_ascii_lowercase().as_str() {
        "daily" => Pattern::Daily { interval },
        "weekly" => Pattern::Weekly {
            interval,
            days: days()?,
            first_day_of_week: p.first_day_of_week.as_deref().and_then(day).unwrap_or(Weekday::Sun),
        },
        "absolutemonthly" => Pattern::AbsoluteMonthly { interval, day_of_month: num(p.day_of_month, "dayOfMonth")? },
        "relativemonthly" => Pattern::RelativeMonthly { interval, days: days()?, index: index(p.index.as_deref())? },
        "absoluteyearly" => Pattern::AbsoluteYearly {
            interval,
            month: num(p.month, "month")?,
            day_of_month: num(p.day_of_month, "dayOfMonth")?,
        },
        "relativeyearly" => Pattern::RelativeYearly {
            interval,
            month: num(p.month, "month")?,
            days: days()?,
            index: index(p.index.as_deref())?,
        },
        other => return Err(format!("pattern type {other:?}")),
    };
    let start_date = date("startDate", range.start_date.as_deref())?;
    let range = match range.kind.as_deref().unwrap_or("noEnd").to_ascii_lowercase().as_str() {
        "noend" => Range::NoEnd,
        "enddate" => Range::EndDate { end_date: date("endDate", range.end_date.as_deref())? },
        "numbered" => Range::Numbered { count: num(range.number_of_occurrences, "numberOfOccurrences")? },
        other => return Err(format!("range type {other:?}")),
    };
    let rule = Recurrence { pattern, start_date, range };
    rule.validate().map_err(|e| e.to_string())?;
    Ok(rule)
}

/// calbridge's rule as Graph's, in the series' zone `time_zone`.
pub fn to_wire(r: &Recurrence, time_zone: &str) -> PatternedRecurrence {
    let days = |d: &[Weekday]| Some(d.iter().map(|d| day_name(*d).to_string()).collect());
    let mut p = RecurrencePattern { interval: Some(r.pattern.interval() as i32), ..Default::default() };
    match &r.pattern {
        Pattern::Daily { .. } => p.kind = Some("daily".into()),
        Pattern::Weekly { days: d, first_day_of_week, .. } => {
            p.kind = Some("weekly".into());
            p.days_of_week = days(d);
            p.first_day_of_week = Some(day_name(*first_day_of_week).into());
        }
        Pattern::AbsoluteMonthly { day_of_month, .. } => {
            p.kind = Some("absoluteMonthly".into());
            p.day_of_month = Some(*day_of_month as i32);
        }
        Pattern::RelativeMonthly { days: d, index, .. } => {
            p.kind = Some("relativeMonthly".into());
            p.days_of_week = days(d);
            p.index = Some(index_name(*index).into());
        }
        Pattern::AbsoluteYearly { month, day_of_month, .. } => {
            p.kind = Some("absoluteYearly".into());
            p.month = Some(*month as i32);
            p.day_of_month = Some(*day_of_month as i32);
        }
        Pattern::RelativeYearly { month, days: d, index, .. } => {
            p.kind = Some("relativeYearly".into());
            p.month = Some(*month as i32);
            p.days_of_week = days(d);
            p.index = Some(index_name(*index).into());
        }
    }
    let mut range = RecurrenceRange {
        start_date: Some(r.start_date.format("%Y-%m-%d").to_string()),
        recurrence_time_zone: Some(time_zone.to_string()),
        ..Default::default()
    };
    match r.range {
        Range::NoEnd => range.kind = Some("noEnd".into()),
        Range::EndDate { end_date } => {
            range.kind = Some("endDate".into());
            range.end_date = Some(end_date.format("%Y-%m-%d").to_string());
        }
        Range::Numbered { count } => {
            range.kind = Some("numbered".into());
            range.number_of_occurrences = Some(count as i32);
        }
    }
    PatternedRecurrence { pattern: Some(p), range: Some(range) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn graphs_documented_recurrence_reads_and_writes_back() {
        // The weekly example of Microsoft's "create a recurring event" page.
        let wire: PatternedRecurrence = serde_json::from_value(serde_json::json!({
            "pattern": {"type": "weekly", "interval": 1, "daysOfWeek": ["Monday"]},
            "range": {"type": "endDate", "startDate": "2017-09-04", "endDate": "2017-12-31"}
        }))
        .unwrap();
        let r = from_wire(&wire).unwrap();
        assert_eq!(
            r.pattern,
            Pattern::Weekly { interval: 1, days: vec![Weekday::Mon], first_day_of_week: Weekday::Sun }
        );
        assert_eq!(r.range, Range::EndDate { end_date: NaiveDate::from_ymd_opt(2017, 12, 31).unwrap() });
        assert_eq!(r.dates(NaiveDate::from_ymd_opt(2018, 1, 1).unwrap(), 100).len(), 17);
        assert_eq!(from_wire(&to_wire(&r, "Pacific Standard Time")).unwrap(), r);
    }

    #[test]
    fn unreadable_recurrences_say_why() {
        let wire: PatternedRecurrence = serde_json::from_value(serde_json::json!({
            "pattern": {"type": "hourly", "interval": 1},
            "range": {"type": "noEnd", "startDate": "2026-01-01"}
        }))
        .unwrap();
        assert!(from_wire(&wire).unwrap_err().contains("hourly"));
        let wire: PatternedRecurrence = serde_json::from_value(serde_json::json!({
            "pattern": {"type": "weekly", "interval": 1, "daysOfWeek": []},
            "range": {"type": "noEnd", "startDate": "2026-01-01"}
        }))
        .unwrap();
        assert!(from_wire(&wire).unwrap_err().contains("day of the week"));
    }
}
