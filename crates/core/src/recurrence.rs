//! Recurring series, protocol-neutral: a pattern, the date the series starts and a range —
//! the shape Exchange gives a series (Graph `patternedRecurrence`, EWS `Recurrence`), mapped to
//! RFC 5545 `RRULE` for the host application.
//!
//! ## Patterns
//!
//! | pattern | occurs on | RRULE |
//! |---|---|---|
//! | `Daily { interval }` | every `interval` days from the start date | `FREQ=DAILY;INTERVAL=n` |
//! | `Weekly { interval, days, first_day_of_week }` | the `days` of every `interval`-th week, weeks starting on `first_day_of_week` | `FREQ=WEEKLY;INTERVAL=n;BYDAY=…;WKST=…` |
//! | `AbsoluteMonthly { interval, day_of_month }` | that day of every `interval`-th month; past the month's end, its last day | `FREQ=MONTHLY;BYMONTHDAY=d` (d ≤ 28) or `BYMONTHDAY=28,…,d;BYSETPOS=-1` |
//! | `RelativeMonthly { interval, days, index }` | the first…fourth or last of `days` in every `interval`-th month | `FREQ=MONTHLY;BYDAY=…;BYSETPOS=1…4/-1` |
//! | `AbsoluteYearly { interval, month, day_of_month }` | that date every `interval` years (the month's last day if shorter) | `FREQ=YEARLY;BYMONTH=m;BYMONTHDAY=…` |
//! | `RelativeYearly { interval, month, days, index }` | the first…last of `days` in `month` | `FREQ=YEARLY;BYMONTH=m;BYDAY=…;BYSETPOS=…` |
//!
//! Several `days` with an index mean one day of that set (the first weekday, the last weekend
//! day), as in Exchange's `Weekday` and `WeekendDay`: RRULE's `BYSETPOS` over the set.
//!
//! ## Where Exchange differs from RFC 5545
//!
//! - **The first occurrence.** Exchange starts a series on the first date *on or after* its
//!   start date that matches the pattern (a weekly Monday/Wednesday series created on a
//!   Tuesday first occurs on Wednesday). RFC 5545 leaves a `DTSTART` that does not match the
//!   rule undefined (and many implementations count it as an extra first instance); calbridge
//!   writes `DTSTART` as the first real occurrence, so both readings agree.
//! - **Day 29, 30 or 31.** Exchange moves such a monthly (or yearly) day to the last day of a
//!   shorter month; RFC 5545's `BYMONTHDAY=31` skips the month instead. calbridge writes
//!   `BYMONTHDAY=28,29,30,31;BYSETPOS=-1`, which means exactly Exchange's rule.
//! - **The end date** is a date in the series' zone and includes its day; RRULE's `UNTIL` is
//!   written as the end of that day, in the event's local (floating) time.
//!
//! Expansion ([`Recurrence::dates`], [`Recurrence::occurrences`]) works on local dates in the
//! series' own time zone, so an occurrence keeps its wall-clock time across DST changes; a
//! time that does not exist on a day (the spring-forward gap) moves forward by the gap, and an
//! ambiguous one (fall back) is the earlier instant, as Exchange does.

use chrono::{DateTime, Datelike, Duration, NaiveDate, NaiveDateTime, NaiveTime, TimeZone, Utc, Weekday};
use serde::{Deserialize, Serialize};

/// Which one of the matching days in a month.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum WeekIndex {
    First,
    Second,
    Third,
    Fourth,
    Last,
}

impl WeekIndex {
    pub const ALL: [WeekIndex; 5] =
        [WeekIndex::First, WeekIndex::Second, WeekIndex::Third, WeekIndex::Fourth, WeekIndex::Last];

    fn setpos(self) -> i32 {
        match self {
            WeekIndex::First => 1,
            WeekIndex::Second => 2,
            WeekIndex::Third => 3,
            WeekIndex::Fourth => 4,
            WeekIndex::Last => -1,
        }
    }
}

/// How a series repeats.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum Pattern {
    Daily {
        interval: u32,
    },
    #[serde(rename_all = "camelCase")]
    Weekly {
        interval: u32,
        days: Vec<Weekday>,
        first_day_of_week: Weekday,
    },
    #[serde(rename_all = "camelCase")]
    AbsoluteMonthly {
        interval: u32,
        day_of_month: u32,
    },
    #[serde(rename_all = "camelCase")]
    RelativeMonthly {
        interval: u32,
        days: Vec<Weekday>,
        index: WeekIndex,
    },
    #[serde(rename_all = "camelCase")]
    AbsoluteYearly {
        interval: u32,
        month: u32,
        day_of_month: u32,
    },
    #[serde(rename_all = "camelCase")]
    RelativeYearly {
        interval: u32,
        month: u32,
        days: Vec<Weekday>,
        index: WeekIndex,
    },
}

impl Pattern {
    pub fn interval(&self) -> u32 {
        match self {
            Pattern::Daily { interval }
            | Pattern::Weekly { interval, .. }
            | Pattern::AbsoluteMonthly { interval, .. }
            | Pattern::RelativeMonthly { interval, .. }
            | Pattern::AbsoluteYearly { interval, .. }
            | Pattern::RelativeYearly { interval, .. } => *interval,
        }
    }
}

/// When a series ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum Range {
    NoEnd,
    /// The last day an occurrence may fall on (inclusive), in the series' zone.
    EndDate {
        end_date: NaiveDate,
    },
    /// This many occurrences.
    #[serde(rename_all = "camelCase")]
    Numbered {
        count: u32,
    },
}

/// A recurring series' rule.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Recurrence {
    pub pattern: Pattern,
    /// The series starts on this date (its first occurrence is the first matching date on or
    /// after it), in the series' zone.
    pub start_date: NaiveDate,
    pub range: Range,
}

/// Why a rule cannot be used.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RecurrenceError {
    #[error("the interval must be 1 to 999, not {0}")]
    Interval(u32),
    #[error("a {0} pattern needs at least one day of the week")]
    NoDays(&'static str),
    #[error("day of month {0} is out of range (1 to 31)")]
    DayOfMonth(u32),
    #[error("month {0} is out of range (1 to 12)")]
    Month(u32),
    #[error("the end date {end} is before the start date {start}")]
    EndBeforeStart { start: NaiveDate, end: NaiveDate },
    #[error("a numbered range needs 1 to 999 occurrences, not {0}")]
    Count(u32),
    #[error("the RRULE is not one calbridge can map to Exchange: {0}")]
    Rrule(String),
}

fn days_in_month(year: i32, month: u32) -> u32 {
    let (ny, nm) = if month == 12 { (year + 1, 1) } else { (year, month + 1) };
    NaiveDate::from_ymd_opt(ny, nm, 1).and_then(|d| d.pred_opt()).map(|d| d.day()).unwrap_or(28)
}

/// `day` of the month, or the month's last day when it is shorter.
fn clamped(year: i32, month: u32, day: u32) -> Option<NaiveDate> {
    NaiveDate::from_ymd_opt(year, month, day.min(days_in_month(year, month)))
}

/// The `index`-th of the dates in the month that fall on one of `days`.
fn relative(year: i32, month: u32, days: &[Weekday], index: WeekIndex) -> Option<NaiveDate> {
    let n = days_in_month(year, month);
    let matching: Vec<NaiveDate> = (1..=n)
        .filter_map(|d| NaiveDate::from_ymd_opt(year, month, d))
        .filter(|d| days.contains(&d.weekday()))
        .collect();
    match index {
        WeekIndex::Last => matching.last().copied(),
        i => matching.get(i.setpos() as usize - 1).copied(),
    }
}

fn add_months(year: i32, month: u32, months: i64) -> (i32, u32) {
    let total = year as i64 * 12 + (month as i64 - 1) + months;
    ((total.div_euclid(12)) as i32, (total.rem_euclid(12) + 1) as u32)
}

fn rrule_day(d: Weekday) -> &'static str {
    match d {
        Weekday::Mon => "MO",
        Weekday::Tue => "TU",
        Weekday::Wed => "WE",
        Weekday::Thu => "TH",
        Weekday::Fri => "FR",
        Weekday::Sat => "SA",
        Weekday::Sun => "SU",
    }
}

fn parse_rrule_day(s: &str) -> Option<Weekday> {
    Some(match s {
        "MO" => Weekday::Mon,
        "TU" => Weekday::Tue,
        "WE" => Weekday::Wed,
        "TH" => Weekday::Thu,
        "FR" => Weekday::Fri,
        "SA" => Weekday::Sat,
        "SU" => Weekday::Sun,
        _ => return None,
    })
}

/// Days in calendar order from `first` (Monday-first by default).
fn sorted_days(days: &[Weekday], first: Weekday) -> Vec<Weekday> {
    let mut v: Vec<Weekday> = days.to_vec();
    v.sort_by_key(|d| (d.num_days_from_monday() + 7 - first.num_days_from_monday()) % 7);
    v.dedup();
    v
}

impl Recurrence {
    /// The same rule with its days of the week in order (Monday first), each once: days are
    /// a set, so two rules are the same rule exactly when their normal forms are equal.
    pub fn normalized(mut self) -> Recurrence {
        match &mut self.pattern {
            Pattern::Weekly { days, .. }
            | Pattern::RelativeMonthly { days, .. }
            | Pattern::RelativeYearly { days, .. } => *days = sorted_days(days, Weekday::Mon),
            _ => {}
        }
        self
    }

    /// Checks the rule's numbers; a rule that passes always has occurrences.
    pub fn validate(&self) -> Result<(), RecurrenceError> {
        let interval = self.pattern.interval();
        if !(1..=999).contains(&interval) {
            return Err(RecurrenceError::Interval(interval));
        }
        match &self.pattern {
            Pattern::Daily { .. } => {}
            Pattern::Weekly { days, .. } if days.is_empty() => return Err(RecurrenceError::NoDays("weekly")),
            Pattern::RelativeMonthly { days, .. } if days.is_empty() => {
                return Err(RecurrenceError::NoDays("relative monthly"))
            }
            Pattern::RelativeYearly { days, .. } if days.is_empty() => {
                return Err(RecurrenceError::NoDays("relative yearly"))
            }
            Pattern::Weekly { .. } | Pattern::RelativeMonthly { .. } => {}
            Pattern::AbsoluteMonthly { day_of_month, .. } if !(1..=31).contains(day_of_month) => {
                return Err(RecurrenceError::DayOfMonth(*day_of_month))
            }
            Pattern::AbsoluteMonthly { .. } => {}
            Pattern::AbsoluteYearly { month, day_of_month, .. } => {
                if !(1..=12).contains(month) {
                    return Err(RecurrenceError::Month(*month));
                }
                if !(1..=31).contains(day_of_month) {
                    return Err(RecurrenceError::DayOfMonth(*day_of_month));
                }
            }
            Pattern::RelativeYearly { month, .. } if !(1..=12).contains(month) => {
                return Err(RecurrenceError::Month(*month))
            }
            Pattern::RelativeYearly { .. } => {}
        }
        match self.range {
            Range::EndDate { end_date } if end_date < self.start_date => {
                Err(RecurrenceError::EndBeforeStart { start: self.start_date, end: end_date })
            }
            Range::Numbered { count } if !(1..=999).contains(&count) => Err(RecurrenceError::Count(count)),
            _ => Ok(()),
        }
    }

    /// The dates of period `k` (the k-th day, week, month or year counted from the start), in
    /// order; some may fall before the start date.
    fn period(&self, k: i64) -> Vec<NaiveDate> {
        let start = self.start_date;
        let interval = self.pattern.interval() as i64;
        match &self.pattern {
            Pattern::Daily { .. } => start.checked_add_signed(Duration::days(k * interval)).into_iter().collect(),
            Pattern::Weekly { days, first_day_of_week, .. } => {
                let back = (start.weekday().num_days_from_monday() + 7 - first_day_of_week.num_days_from_monday()) % 7;
                let Some(week) = start.checked_sub_signed(Duration::days(back as i64)) else { return vec![] };
                let Some(week) = week.checked_add_signed(Duration::weeks(k * interval)) else { return vec![] };
                sorted_days(days, *first_day_of_week)
                    .into_iter()
                    .filter_map(|d| {
                        let off = (d.num_days_from_monday() + 7 - first_day_of_week.num_days_from_monday()) % 7;
                        week.checked_add_signed(Duration::days(off as i64))
                    })
                    .collect()
            }
            Pattern::AbsoluteMonthly { day_of_month, .. } => {
                let (y, m) = add_months(start.year(), start.month(), k * interval);
                clamped(y, m, *day_of_month).into_iter().collect()
            }
            Pattern::RelativeMonthly { days, index, .. } => {
                let (y, m) = add_months(start.year(), start.month(), k * interval);
                relative(y, m, days, *index).into_iter().collect()
            }
            Pattern::AbsoluteYearly { month, day_of_month, .. } => {
                let y = start.year() as i64 + k * interval;
                i32::try_from(y).ok().and_then(|y| clamped(y, *month, *day_of_month)).into_iter().collect()
            }
            Pattern::RelativeYearly { month, days, index, .. } => {
                let y = start.year() as i64 + k * interval;
                i32::try_from(y).ok().and_then(|y| relative(y, *month, days, *index)).into_iter().collect()
            }
        }
    }

    /// The occurrence dates, in order, up to `until` (inclusive) and at most `limit` of them.
    /// An invalid rule has none.
    pub fn dates(&self, until: NaiveDate, limit: usize) -> Vec<NaiveDate> {
        let mut out = Vec::new();
        if self.validate().is_err() {
            return out;
        }
        let last = match self.range {
            Range::EndDate { end_date } => end_date.min(until),
            _ => until,
        };
        let max = match self.range {
            Range::Numbered { count } => limit.min(count as usize),
            _ => limit,
        };
        let mut k = 0i64;
        // Every valid pattern has a date in each period, so periods past `last` end the loop.
        'periods: loop {
            let dates = self.period(k);
            if dates.is_empty() {
                break;
            }
            let mut past = true;
            for d in dates {
                if d > last {
                    continue;
                }
                past = false;
                if d < self.start_date {
                    continue;
                }
                out.push(d);
                if out.len() >= max {
                    break 'periods;
                }
            }
            if past {
                break;
            }
            k += 1;
        }
        out
    }

    /// The occurrences overlapping `[from, to)` of a series whose first occurrence starts at
    /// `start_time` (local, in `tz`) and lasts `duration`: each `(start, end)` in UTC, with the
    /// occurrence's local date (its identity in the series). At most `limit`.
    pub fn occurrences<Z: TimeZone>(
        &self,
        start_time: NaiveTime,
        duration: Duration,
        tz: &Z,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        limit: usize,
    ) -> Vec<(NaiveDate, DateTime<Utc>, DateTime<Utc>)> {
        // Local dates a day either side cover any zone's offset.
        let until = (to + Duration::days(2)).date_naive();
        let mut out = Vec::new();
        for date in self.dates(until, usize::MAX) {
            let Some(start) = local_to_utc(tz, date.and_time(start_time)) else { continue };
            let end = start + duration;
            if start >= to {
                break;
            }
            if end > from || (duration.is_zero() && start >= from) {
                out.push((date, start, end));
                if out.len() >= limit {
                    break;
                }
            }
        }
        out
    }

    /// The rule as an RFC 5545 `RRULE` value (without `DTSTART`).
    pub fn to_rrule(&self) -> String {
        let days = |d: &[Weekday], first: Weekday| {
            sorted_days(d, first).into_iter().map(rrule_day).collect::<Vec<_>>().join(",")
        };
        let by_month_day = |d: u32| {
            if d <= 28 {
                format!("BYMONTHDAY={d}")
            } else {
                let list: Vec<String> = (28..=d).map(|x| x.to_string()).collect();
                format!("BYMONTHDAY={};BYSETPOS=-1", list.join(","))
            }
        };
        let interval = self.pattern.interval();
        let mut parts = match &self.pattern {
            Pattern::Daily { .. } => vec!["FREQ=DAILY".to_string()],
            Pattern::Weekly { days: d, first_day_of_week, .. } => vec![
                "FREQ=WEEKLY".into(),
                format!("BYDAY={}", days(d, Weekday::Mon)),
                format!("WKST={}", rrule_day(*first_day_of_week)),
            ],
            Pattern::AbsoluteMonthly { day_of_month, .. } => vec!["FREQ=MONTHLY".into(), by_month_day(*day_of_month)],
            Pattern::RelativeMonthly { days: d, index, .. } => vec![
                "FREQ=MONTHLY".into(),
                format!("BYDAY={}", days(d, Weekday::Mon)),
                format!("BYSETPOS={}", index.setpos()),
            ],
            Pattern::AbsoluteYearly { month, day_of_month, .. } => {
                vec!["FREQ=YEARLY".into(), format!("BYMONTH={month}"), by_month_day(*day_of_month)]
            }
            Pattern::RelativeYearly { month, days: d, index, .. } => vec![
                "FREQ=YEARLY".into(),
                format!("BYMONTH={month}"),
                format!("BYDAY={}", days(d, Weekday::Mon)),
                format!("BYSETPOS={}", index.setpos()),
            ],
        };
        if interval != 1 {
            parts.insert(1, format!("INTERVAL={interval}"));
        }
        match self.range {
            Range::NoEnd => {}
            Range::EndDate { end_date } => parts.push(format!("UNTIL={}T235959", end_date.format("%Y%m%d"))),
            Range::Numbered { count } => parts.push(format!("COUNT={count}")),
        }
        parts.join(";")
    }

    /// Reads an `RRULE` value of the forms [`Recurrence::to_rrule`] writes (and the plain
    /// `BYMONTHDAY=d` / `BYDAY=2MO` spellings), for a series starting on `start_date`. Rules
    /// Exchange cannot hold (`FREQ=HOURLY`, `BYWEEKNO`, several months, …) are refused with the
    /// part that does not fit.
    pub fn from_rrule(rule: &str, start_date: NaiveDate) -> Result<Recurrence, RecurrenceError> {
        let bad = |m: String| RecurrenceError::Rrule(m);
        let rule = rule.trim().strip_prefix("RRULE:").unwrap_or(rule.trim());
        let mut freq = None;
        let (mut interval, mut days, mut setpos, mut month_days, mut month, mut wkst) =
            // RFC 5545's default week start is Monday.
            (1u32, Vec::new(), None::<i32>, Vec::<u32>::new(), None::<u32>, Weekday::Mon);
        let mut range = Range::NoEnd;
        for part in rule.split(';').filter(|p| !p.is_empty()) {
            let (k, v) = part.split_once('=').ok_or_else(|| bad(format!("{part:?} is not NAME=VALUE")))?;
            match k.to_ascii_uppercase().as_str() {
                "FREQ" => freq = Some(v.to_ascii_uppercase()),
                "INTERVAL" => interval = v.parse().map_err(|_| bad(format!("INTERVAL={v}")))?,
                "COUNT" => range = Range::Numbered { count: v.parse().map_err(|_| bad(format!("COUNT={v}")))? },
                "UNTIL" => {
                    let date = NaiveDate::parse_from_str(v.get(..8).unwrap_or(v), "%Y%m%d")
                        .map_err(|_| bad(format!("UNTIL={v}")))?;
                    range = Range::EndDate { end_date: date };
                }
                "WKST" => wkst = parse_rrule_day(v).ok_or_else(|| bad(format!("WKST={v}")))?,
                "BYMONTH" => month = Some(v.parse().map_err(|_| bad(format!("BYMONTH={v} (one month only)")))?),
                "BYSETPOS" => setpos = Some(v.parse().map_err(|_| bad(format!("BYSETPOS={v} (one position only)")))?),
                "BYMONTHDAY" => {
                    for d in v.split(',') {
                        month_days.push(d.parse().map_err(|_| bad(format!("BYMONTHDAY={v}")))?);
                    }
                }
                "BYDAY" => {
                    for d in v.split(',') {
                        let split = d.len().saturating_sub(2);
                        let (n, name) = d.split_at(split);
                        let day = parse_rrule_day(name).ok_or_else(|| bad(format!("BYDAY={v}")))?;
                        if !n.is_empty() {
                            let n: i32 = n.parse().map_err(|_| bad(format!("BYDAY={v}")))?;
                            if setpos.is_some_and(|s| s != n) {
                                return Err(bad(format!("BYDAY={v} mixes positions")));
                            }
                            setpos = Some(n);
                        }
                        days.push(day);
                    }
                }
                other => return Err(bad(format!("{other} has no equivalent in Exchange"))),
            }
        }
        let index = |p: Option<i32>| -> Result<WeekIndex, RecurrenceError> {
            match p {
                Some(1) => Ok(WeekIndex::First),
                Some(2) => Ok(WeekIndex::Second),
                Some(3) => Ok(WeekIndex::Third),
                Some(4) => Ok(WeekIndex::Fourth),
                Some(-1) => Ok(WeekIndex::Last),
                other => Err(bad(format!("position {other:?}: Exchange knows first to fourth and last"))),
            }
        };
        // BYMONTHDAY=d, or 28..d with BYSETPOS=-1 (the last of them: d or the month's end).
        let month_day = |list: &[u32], setpos: Option<i32>| -> Result<u32, RecurrenceError> {
            match (list, setpos) {
                ([d], None) => Ok(*d),
                (l, Some(-1)) if !l.is_empty() && l.windows(2).all(|w| w[1] == w[0] + 1) && l[0] == 28 => {
                    Ok(*l.last().unwrap())
                }
                _ => Err(bad(format!("BYMONTHDAY={list:?}: Exchange repeats on one day of the month"))),
            }
        };
        let pattern = match freq.as_deref() {
            Some("DAILY") => Pattern::Daily { interval },
            Some("WEEKLY") => {
                if days.is_empty() {
                    days.push(start_date.weekday());
                }
                Pattern::Weekly { interval, days, first_day_of_week: wkst }
            }
            Some("MONTHLY") if !days.is_empty() => Pattern::RelativeMonthly { interval, days, index: index(setpos)? },
            Some("MONTHLY") => Pattern::AbsoluteMonthly {
                interval,
                day_of_month: if month_days.is_empty() { start_date.day() } else { month_day(&month_days, setpos)? },
            },
            Some("YEARLY") => {
                let month = month.unwrap_or(start_date.month());
                if days.is_empty() {
                    Pattern::AbsoluteYearly {
                        interval,
                        month,
                        day_of_month: if month_days.is_empty() {
                            start_date.day()
                        } else {
                            month_day(&month_days, setpos)?
                        },
                    }
                } else {
                    Pattern::RelativeYearly { interval, month, days, index: index(setpos)? }
                }
            }
            Some(f) => return Err(bad(format!("FREQ={f}: Exchange repeats daily, weekly, monthly or yearly"))),
            None => return Err(bad("FREQ is missing".into())),
        };
        let r = Recurrence { pattern, start_date, range }.normalized();
        r.validate()?;
        Ok(r)
    }
}

/// Local wall time in `tz` as an instant: in a DST gap moved forward by the gap, in an
/// overlap the earlier instant.
pub fn local_to_utc<Z: TimeZone>(tz: &Z, local: NaiveDateTime) -> Option<DateTime<Utc>> {
    use chrono::LocalResult;
    match tz.from_local_datetime(&local) {
        LocalResult::Single(t) => Some(t.with_timezone(&Utc)),
        LocalResult::Ambiguous(a, b) => Some(a.with_timezone(&Utc).min(b.with_timezone(&Utc))),
        LocalResult::None => {
            // The gap: the offset before it, applied to the wall time, lands after the gap.
            let before = local - Duration::hours(3);
            let offset = tz.offset_from_local_datetime(&before).earliest()?;
            let shifted = tz.from_utc_datetime(&(local - chrono::offset::Offset::fix(&offset)));
            Some(shifted.with_timezone(&Utc))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(y: i32, m: u32, day: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, day).unwrap()
    }

    fn rec(pattern: Pattern, start: NaiveDate, range: Range) -> Recurrence {
        Recurrence { pattern, start_date: start, range }
    }

    #[test]
    fn a_weekly_series_starts_on_the_first_matching_day() {
        // Created on a Tuesday for Mondays and Wednesdays: first on Wednesday.
        let r = rec(
            Pattern::Weekly { interval: 1, days: vec![Weekday::Wed, Weekday::Mon], first_day_of_week: Weekday::Sun },
            d(2026, 12, 1),
            Range::Numbered { count: 4 },
        );
        assert_eq!(r.dates(d(2030, 1, 1), 100), vec![d(2026, 12, 2), d(2026, 12, 7), d(2026, 12, 9), d(2026, 12, 14)]);
        assert_eq!(r.to_rrule(), "FREQ=WEEKLY;BYDAY=MO,WE;WKST=SU;COUNT=4");
    }

    #[test]
    fn day_31_means_the_last_day_of_shorter_months() {
        let r = rec(
            Pattern::AbsoluteMonthly { interval: 1, day_of_month: 31 },
            d(2027, 1, 31),
            Range::Numbered { count: 4 },
        );
        assert_eq!(r.dates(d(2030, 1, 1), 100), vec![d(2027, 1, 31), d(2027, 2, 28), d(2027, 3, 31), d(2027, 4, 30)]);
        assert_eq!(r.to_rrule(), "FREQ=MONTHLY;BYMONTHDAY=28,29,30,31;BYSETPOS=-1;COUNT=4");
        assert_eq!(Recurrence::from_rrule(&r.to_rrule(), r.start_date).unwrap(), r);
    }

    #[test]
    fn relative_patterns_pick_one_day_of_the_set() {
        // The last weekday of each month.
        let weekdays = vec![Weekday::Mon, Weekday::Tue, Weekday::Wed, Weekday::Thu, Weekday::Fri];
        let r = rec(
            Pattern::RelativeMonthly { interval: 1, days: weekdays, index: WeekIndex::Last },
            d(2026, 1, 1),
            Range::EndDate { end_date: d(2026, 5, 31) },
        );
        assert_eq!(
            r.dates(d(2030, 1, 1), 100),
            vec![d(2026, 1, 30), d(2026, 2, 27), d(2026, 3, 31), d(2026, 4, 30), d(2026, 5, 29)]
        );
        // The fourth Thursday of November.
        let r = rec(
            Pattern::RelativeYearly { interval: 1, month: 11, days: vec![Weekday::Thu], index: WeekIndex::Fourth },
            d(2026, 1, 1),
            Range::Numbered { count: 2 },
        );
        assert_eq!(r.dates(d(2030, 1, 1), 100), vec![d(2026, 11, 26), d(2027, 11, 25)]);
        assert_eq!(Recurrence::from_rrule("FREQ=YEARLY;BYMONTH=11;BYDAY=4TH;COUNT=2", d(2026, 1, 1)).unwrap(), r);
    }

    #[test]
    fn occurrences_keep_their_wall_clock_time_across_dst() {
        let tz = chrono_tz::Europe::Berlin;
        let r = rec(Pattern::Daily { interval: 1 }, d(2026, 3, 28), Range::Numbered { count: 3 });
        let from = Utc.with_ymd_and_hms(2026, 3, 1, 0, 0, 0).unwrap();
        let to = Utc.with_ymd_and_hms(2026, 4, 1, 0, 0, 0).unwrap();
        let occ = r.occurrences(NaiveTime::from_hms_opt(9, 0, 0).unwrap(), Duration::hours(1), &tz, from, to, 10);
        let starts: Vec<_> = occ.iter().map(|(_, s, _)| s.format("%m-%d %H:%M").to_string()).collect();
        // 09:00 CET is 08:00 UTC; after the change on 29 March, 09:00 CEST is 07:00 UTC.
        assert_eq!(starts, ["03-28 08:00", "03-29 07:00", "03-30 07:00"]);
        // 02:30 does not exist on 29 March in Berlin: it moves forward by the gap.
        let gap = local_to_utc(&tz, d(2026, 3, 29).and_hms_opt(2, 30, 0).unwrap()).unwrap();
        assert_eq!(gap, Utc.with_ymd_and_hms(2026, 3, 29, 1, 30, 0).unwrap());
    }

    #[test]
    fn invalid_rules_are_refused_with_the_reason() {
        let r = rec(
            Pattern::Weekly { interval: 1, days: vec![], first_day_of_week: Weekday::Mon },
            d(2026, 1, 1),
            Range::NoEnd,
        );
        assert_eq!(r.validate(), Err(RecurrenceError::NoDays("weekly")));
        assert!(r.dates(d(2027, 1, 1), 10).is_empty());
        let r = rec(Pattern::Daily { interval: 0 }, d(2026, 1, 1), Range::NoEnd);
        assert_eq!(r.validate(), Err(RecurrenceError::Interval(0)));
        let e = Recurrence::from_rrule("FREQ=HOURLY;INTERVAL=2", d(2026, 1, 1)).unwrap_err();
        assert!(e.to_string().contains("HOURLY"), "{e}");
        let e = Recurrence::from_rrule("FREQ=MONTHLY;BYMONTHDAY=1,15", d(2026, 1, 1)).unwrap_err();
        assert!(e.to_string().contains("one day of the month"), "{e}");
    }
}
