//! Expanding `microsoft.graph.patternedRecurrence` into occurrence dates: daily, weekly,
//! absolute/relative monthly and yearly patterns; endDate, numbered and noEnd ranges.

use chrono::{Datelike, Duration, NaiveDate, Weekday};

use crate::wire::PatternedRecurrence;

/// Hard stop for runaway series (e.g. daily with noEnd over a huge window).
const MAX_OCCURRENCES: usize = 5000;

pub fn weekday(name: &str) -> Option<Weekday> {
    match name.to_ascii_lowercase().as_str() {
        "sunday" => Some(Weekday::Sun),
        "monday" => Some(Weekday::Mon),
        "tuesday" => Some(Weekday::Tue),
        "wednesday" => Some(Weekday::Wed),
        "thursday" => Some(Weekday::Thu),
        "friday" => Some(Weekday::Fri),
        "saturday" => Some(Weekday::Sat),
        _ => None,
    }
}

pub fn weekday_name(d: Weekday) -> &'static str {
    match d {
        Weekday::Sun => "sunday",
        Weekday::Mon => "monday",
        Weekday::Tue => "tuesday",
        Weekday::Wed => "wednesday",
        Weekday::Thu => "thursday",
        Weekday::Fri => "friday",
        Weekday::Sat => "saturday",
    }
}

const PATTERNS: &[&str] =
    &["daily", "weekly", "absoluteMonthly", "relativeMonthly", "absoluteYearly", "relativeYearly"];
const RANGES: &[&str] = &["endDate", "noEnd", "numbered"];

/// Checks a recurrence the way Graph's model binder would; the error is Graph's message.
pub fn validate(rec: &PatternedRecurrence) -> Result<(), String> {
    let pattern = rec.pattern.as_ref().ok_or("The recurrence pattern is required.")?;
    let kind = pattern.kind.as_deref().unwrap_or("");
    if !PATTERNS.iter().any(|p| p.eq_ignore_ascii_case(kind)) {
        return Err(format!(
            "Cannot convert the literal '{kind}' to the expected type 'microsoft.graph.recurrencePatternType'."
        ));
    }
    if pattern.interval.unwrap_or(1) < 1 {
        return Err("The recurrence pattern's interval must be at least 1.".into());
    }
    for d in pattern.days_of_week.iter().flatten() {
        if weekday(d).is_none() {
            return Err(format!("Cannot convert the literal '{d}' to the expected type 'microsoft.graph.dayOfWeek'."));
        }
    }
    let needs_days = ["weekly", "relativeMonthly", "relativeYearly"].iter().any(|p| p.eq_ignore_ascii_case(kind));
    if needs_days && pattern.days_of_week.as_ref().is_none_or(|d| d.is_empty()) {
        return Err(format!("The '{kind}' recurrence pattern requires daysOfWeek."));
    }
    let range = rec.range.as_ref().ok_or("The recurrence range is required.")?;
    let rkind = range.kind.as_deref().unwrap_or("");
    if !RANGES.iter().any(|p| p.eq_ignore_ascii_case(rkind)) {
        return Err(format!(
            "Cannot convert the literal '{rkind}' to the expected type 'microsoft.graph.recurrenceRangeType'."
        ));
    }
    if let Some(s) = &range.start_date {
        NaiveDate::parse_from_str(s, "%Y-%m-%d")
            .map_err(|_| format!("The recurrence range startDate '{s}' is not a valid Edm.Date."))?;
    }
    if rkind.eq_ignore_ascii_case("endDate") {
        let e = range.end_date.as_deref().ok_or("The recurrence range type endDate requires endDate.")?;
        NaiveDate::parse_from_str(e, "%Y-%m-%d")
            .map_err(|_| format!("The recurrence range endDate '{e}' is not a valid Edm.Date."))?;
    }
    if rkind.eq_ignore_ascii_case("numbered") && range.number_of_occurrences.unwrap_or(0) < 1 {
        return Err("The recurrence range type numbered requires numberOfOccurrences.".into());
    }
    Ok(())
}

fn nth_weekday_of_month(year: i32, month: u32, days: &[Weekday], index: &str) -> Option<NaiveDate> {
    let first = NaiveDate::from_ymd_opt(year, month, 1)?;
    let last = if month == 12 {
        NaiveDate::from_ymd_opt(year + 1, 1, 1)?
    } else {
        NaiveDate::from_ymd_opt(year, month + 1, 1)?
    } - Duration::days(1);
    let matching: Vec<NaiveDate> =
        first.iter_days().take_while(|d| *d <= last).filter(|d| days.contains(&d.weekday())).collect();
    let i = match index.to_ascii_lowercase().as_str() {
        "second" => 1,
        "third" => 2,
        "fourth" => 3,
        "last" => return matching.last().copied(),
        _ => 0,
    };
    matching.get(i).copied()
}

fn add_months(year: i32, month0: u32, add: u32) -> (i32, u32) {
    let total = year * 12 + month0 as i32 + add as i32;
    (total.div_euclid(12), total.rem_euclid(12) as u32 + 1)
}

/// The dates of a series, ascending, from the range's start up to and including `until`
/// (and within the range's own end or count).
pub fn occurrence_dates(rec: &PatternedRecurrence, series_start: NaiveDate, until: NaiveDate) -> Vec<NaiveDate> {
    let Some(pattern) = rec.pattern.as_ref() else {
        return vec![series_start];
    };
    let range = rec.range.clone().unwrap_or_default();
    let start =
        range.start_date.as_deref().and_then(|s| NaiveDate::parse_from_str(s, "%Y-%m-%d").ok()).unwrap_or(series_start);
    let rkind = range.kind.as_deref().unwrap_or("noEnd").to_ascii_lowercase();
    let end_date = if rkind == "enddate" {
        range.end_date.as_deref().and_then(|s| NaiveDate::parse_from_str(s, "%Y-%m-%d").ok())
    } else {
        None
    };
    let count = if rkind == "numbered" { Some(range.number_of_occurrences.unwrap_or(1).max(1) as usize) } else { None };
    let last = match end_date {
        Some(e) if e < until => e,
        _ => until,
    };
    let interval = pattern.interval.unwrap_or(1).max(1) as u32;
    let mut days: Vec<Weekday> = pattern.days_of_week.iter().flatten().filter_map(|d| weekday(d)).collect();
    let kind = pattern.kind.as_deref().unwrap_or("daily").to_ascii_lowercase();
    let mut out = Vec::new();
    let limit = count.unwrap_or(MAX_OCCURRENCES).min(MAX_OCCURRENCES);
    let push = |d: NaiveDate, out: &mut Vec<NaiveDate>| -> bool {
        if d < start {
            return true;
        }
        if d > last || out.len() >= limit {
            return false;
        }
        out.push(d);
        true
    };
    match kind.as_str() {
        "weekly" => {
            let first_day = pattern.first_day_of_week.as_deref().and_then(weekday).unwrap_or(Weekday::Sun);
            if days.is_empty() {
                days.push(start.weekday());
            }
            let offset = |d: Weekday| (7 + d.num_days_from_sunday() - first_day.num_days_from_sunday()) % 7;
            days.sort_by_key(|d| offset(*d));
            let week0 = start - Duration::days(offset(start.weekday()) as i64);
            let mut week = week0;
            'weeks: loop {
                for d in &days {
                    let date = week + Duration::days(offset(*d) as i64);
                    if !push(date, &mut out) {
                        break 'weeks;
                    }
                }
                week += Duration::weeks(interval as i64);
                if week > last {
                    break;
                }
            }
        }
        "absolutemonthly" | "relativemonthly" | "absoluteyearly" | "relativeyearly" => {
            let yearly = kind.ends_with("yearly");
            let step = if yearly { 12 * interval } else { interval };
            let mut k = 0u32;
            loop {
                let (y, m) = if yearly {
                    let month = pattern.month.unwrap_or(start.month() as i32).clamp(1, 12) as u32;
                    (start.year() + (k * interval) as i32, month)
                } else {
                    add_months(start.year(), start.month0(), k * step)
                };
                let date = if kind.starts_with("absolute") {
                    // Exchange takes a day past the month's end as the month's last day (the
                    // 31st is 28 or 29 February, 30 April, ...), never skipping the month.
                    let dom = pattern.day_of_month.unwrap_or(start.day() as i32).clamp(1, 31) as u32;
                    (28..=dom)
                        .rev()
                        .find_map(|d| NaiveDate::from_ymd_opt(y, m, d))
                        .or(NaiveDate::from_ymd_opt(y, m, dom))
                } else {
                    nth_weekday_of_month(y, m, &days, pattern.index.as_deref().unwrap_or("first"))
                };
                if let Some(date) = date {
                    if !push(date, &mut out) {
                        break;
                    }
                }
                k += 1;
                if NaiveDate::from_ymd_opt(y, m, 1).is_none_or(|d| d > last) || k > 100_000 {
                    break;
                }
            }
        }
        _ => {
            let mut date = start;
            while push(date, &mut out) {
                date += Duration::days(interval as i64);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{RecurrencePattern, RecurrenceRange};

    fn rec(kind: &str, days: &[&str], range: &str, end: Option<&str>, n: Option<i32>) -> PatternedRecurrence {
        PatternedRecurrence {
            pattern: Some(RecurrencePattern {
                kind: Some(kind.into()),
                interval: Some(1),
                days_of_week: Some(days.iter().map(|s| s.to_string()).collect()),
                ..Default::default()
            }),
            range: Some(RecurrenceRange {
                kind: Some(range.into()),
                start_date: Some("2017-09-04".into()),
                end_date: end.map(String::from),
                number_of_occurrences: n,
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn weekly_until_end_date() {
        let r = rec("weekly", &["Monday"], "endDate", Some("2017-12-31"), None);
        assert!(validate(&r).is_ok());
        let d0 = NaiveDate::from_ymd_opt(2017, 9, 4).unwrap();
        let dates = occurrence_dates(&r, d0, NaiveDate::from_ymd_opt(2018, 6, 1).unwrap());
        assert_eq!(dates.len(), 17);
        assert!(dates.iter().all(|d| d.weekday() == Weekday::Mon));
    }

    #[test]
    fn day_31_falls_back_to_the_months_last_day() {
        let mut r = rec("absoluteMonthly", &[], "numbered", None, Some(4));
        r.pattern.as_mut().unwrap().day_of_month = Some(31);
        r.range.as_mut().unwrap().start_date = Some("2027-01-31".into());
        let d0 = NaiveDate::from_ymd_opt(2027, 1, 31).unwrap();
        let dates = occurrence_dates(&r, d0, NaiveDate::from_ymd_opt(2030, 1, 1).unwrap());
        let ymd = |y, m, d| NaiveDate::from_ymd_opt(y, m, d).unwrap();
        assert_eq!(dates, [ymd(2027, 1, 31), ymd(2027, 2, 28), ymd(2027, 3, 31), ymd(2027, 4, 30)]);
    }

    #[test]
    fn numbered_daily_and_bad_literal() {
        let r = rec("daily", &[], "numbered", None, Some(3));
        let d0 = NaiveDate::from_ymd_opt(2017, 9, 4).unwrap();
        assert_eq!(occurrence_dates(&r, d0, NaiveDate::from_ymd_opt(2030, 1, 1).unwrap()).len(), 3);
        assert!(validate(&rec("weeklyy", &["monday"], "noEnd", None, None)).is_err());
    }
}
