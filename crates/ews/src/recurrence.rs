//! EWS `t:Recurrence` ↔ calbridge's [`Recurrence`].
//!
//! EWS spells days `Monday`…, and in relative patterns also `Day`, `Weekday` and `WeekendDay`
//! (any day, Monday–Friday, Saturday–Sunday: one day of that set); months `January`…; indexes
//! `First`…`Last`. Its yearly patterns have no interval (every year). Range dates are
//! `xs:date`, possibly with a zone suffix, which is dropped: they are dates in the series'
//! zone.

use chrono::{NaiveDate, Weekday};

use calbridge_core::recurrence::{Pattern, Range, Recurrence, WeekIndex};

use crate::wire::types::{Recurrence as WireRecurrence, RecurrencePattern as P, RecurrenceRange as R};

const DAYS: [(&str, Weekday); 7] = [
    ("Monday", Weekday::Mon),
    ("Tuesday", Weekday::Tue),
    ("Wednesday", Weekday::Wed),
    ("Thursday", Weekday::Thu),
    ("Friday", Weekday::Fri),
    ("Saturday", Weekday::Sat),
    ("Sunday", Weekday::Sun),
];
const MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];
const WEEKDAYS: [Weekday; 5] = [Weekday::Mon, Weekday::Tue, Weekday::Wed, Weekday::Thu, Weekday::Fri];

fn days(list: &str) -> Result<Vec<Weekday>, String> {
    let mut out = Vec::new();
    for name in list.split_whitespace() {
        match name {
            "Day" => out.extend(DAYS.iter().map(|(_, d)| *d)),
            "Weekday" => out.extend(WEEKDAYS),
            "WeekendDay" => out.extend([Weekday::Sat, Weekday::Sun]),
            n => out.push(
                DAYS.iter().find(|(s, _)| s.eq_ignore_ascii_case(n)).map(|(_, d)| *d).ok_or(format!("day {n:?}"))?,
            ),
        }
    }
    out.sort_by_key(|d| d.num_days_from_monday());
    out.dedup();
    Ok(out)
}

fn day_name(d: Weekday) -> &'static str {
    DAYS.iter().find(|(_, x)| *x == d).map(|(n, _)| *n).unwrap_or("Monday")
}

/// Days as EWS writes them: the set names where a relative pattern's days are one.
fn days_text(d: &[Weekday], relative: bool) -> String {
    let mut sorted = d.to_vec();
    sorted.sort_by_key(|x| x.num_days_from_monday());
    sorted.dedup();
    if relative {
        if sorted.len() == 7 {
            return "Day".into();
        }
        if sorted == WEEKDAYS {
            return "Weekday".into();
        }
        if sorted == [Weekday::Sat, Weekday::Sun] {
            return "WeekendDay".into();
        }
    }
    sorted.iter().map(|x| day_name(*x)).collect::<Vec<_>>().join(" ")
}

fn index(s: &str) -> Result<WeekIndex, String> {
    Ok(match s {
        "First" => WeekIndex::First,
        "Second" => WeekIndex::Second,
        "Third" => WeekIndex::Third,
        "Fourth" => WeekIndex::Fourth,
        "Last" => WeekIndex::Last,
        other => return Err(format!("DayOfWeekIndex {other:?}")),
    })
}

fn index_name(i: WeekIndex) -> &'static str {
    match i {
        WeekIndex::First => "First",
        WeekIndex::Second => "Second",
        WeekIndex::Third => "Third",
        WeekIndex::Fourth => "Fourth",
        WeekIndex::Last => "Last",
    }
}

fn month(s: &str) -> Result<u32, String> {
    MONTHS.iter().position(|m| m.eq_ignore_ascii_case(s)).map(|i| i as u32 + 1).ok_or(format!("month {s:?}"))
}

fn date(what: &str, s: &str) -> Result<NaiveDate, String> {
    let s = s.trim();
    NaiveDate::parse_from_str(s.get(..10).unwrap_or(s), "%Y-%m-%d").map_err(|_| format!("{what} {s:?} is not a date"))
}

/// An EWS recurrence as calbridge's rule; the reason when it cannot be read.
pub fn from_wire(r: &WireRecurrence) -> Result<Recurrence, String> {
    let pattern = match &r.pattern {
        P::Daily { interval } => Pattern::Daily { interval: *interval },
        P::Weekly { interval, days_of_week, first_day_of_week } => Pattern::Weekly {
            interval: *interval,
            days: days(days_of_week)?,
            first_day_of_week: match first_day_of_week {
                Some(f) => days(f)?.first().copied().unwrap_or(Weekday::Sun),
                None => Weekday::Sun,
            },
        },
        P::AbsoluteMonthly { interval, day_of_month } => {
            Pattern::AbsoluteMonthly { interval: *interval, day_of_month: *day_of_month }
        }
        P::RelativeMonthly { interval, days_of_week, day_of_week_index } => Pattern::RelativeMonthly {
            interval: *interval,
            days: days(days_of_week)?,
            index: index(day_of_week_index)?,
        },
        P::AbsoluteYearly { day_of_month, month: m } => {
            Pattern::AbsoluteYearly { interval: 1, month: month(m)?, day_of_month: *day_of_month }
        }
        P::RelativeYearly { days_of_week, day_of_week_index, month: m } => Pattern::RelativeYearly {
            interval: 1,
            month: month(m)?,
            days: days(days_of_week)?,
            index: index(day_of_week_index)?,
        },
    };
    let (start_date, range) = match &r.range {
        R::NoEnd { start_date } => (date("StartDate", start_date)?, Range::NoEnd),
        R::EndDate { start_date, end_date } => {
            (date("StartDate", start_date)?, Range::EndDate { end_date: date("EndDate", end_date)? })
        }
        R::Numbered { start_date, number_of_occurrences } => {
            (date("StartDate", start_date)?, Range::Numbered { count: *number_of_occurrences })
        }
    };
    let rule = Recurrence { pattern, start_date, range };
    rule.validate().map_err(|e| e.to_string())?;
    Ok(rule)
}

/// calbridge's rule as EWS's. A yearly rule with an interval above 1 has no EWS form.
pub fn to_wire(r: &Recurrence) -> Result<WireRecurrence, String> {
    let pattern = match &r.pattern {
        Pattern::Daily { interval } => P::Daily { interval: *interval },
        Pattern::Weekly { interval, days, first_day_of_week } => P::Weekly {
            interval: *interval,
            days_of_week: days_text(days, false),
            first_day_of_week: Some(day_name(*first_day_of_week).into()),
        },
        Pattern::AbsoluteMonthly { interval, day_of_month } => {
            P::AbsoluteMonthly { interval: *interval, day_of_month: *day_of_month }
        }
        Pattern::RelativeMonthly { interval, days, index } => P::RelativeMonthly {
            interval: *interval,
            days_of_week: days_text(days, true),
            day_of_week_index: index_name(*index).into(),
        },
        Pattern::AbsoluteYearly { interval, month, day_of_month } => {
            if *interval != 1 {
                return Err(format!("EWS repeats yearly series every year, not every {interval} years"));
            }
            P::AbsoluteYearly { day_of_month: *day_of_month, month: MONTHS[(*month as usize).clamp(1, 12) - 1].into() }
        }
        Pattern::RelativeYearly { interval, month, days, index } => {
            if *interval != 1 {
                return Err(format!("EWS repeats yearly series every year, not every {interval} years"));
            }
            P::RelativeYearly {
                days_of_week: days_text(days, true),
                day_of_week_index: index_name(*index).into(),
                month: MONTHS[(*month as usize).clamp(1, 12) - 1].into(),
            }
        }
    };
    let start_date = r.start_date.format("%Y-%m-%d").to_string();
    let range = match r.range {
        Range::NoEnd => R::NoEnd { start_date },
        Range::EndDate { end_date } => R::EndDate { start_date, end_date: end_date.format("%Y-%m-%d").to_string() },
        Range::Numbered { count } => R::Numbered { start_date, number_of_occurrences: count },
    };
    Ok(WireRecurrence { pattern, range })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_names_read_as_days_and_write_back() {
        let wire = WireRecurrence {
            pattern: P::RelativeMonthly {
                interval: 1,
                days_of_week: "Weekday".into(),
                day_of_week_index: "Last".into(),
            },
            range: R::Numbered { start_date: "2026-01-01Z".into(), number_of_occurrences: 3 },
        };
        let r = from_wire(&wire).unwrap();
        assert_eq!(
            r.pattern,
            Pattern::RelativeMonthly { interval: 1, days: WEEKDAYS.to_vec(), index: WeekIndex::Last }
        );
        assert_eq!(r.start_date, NaiveDate::from_ymd_opt(2026, 1, 1).unwrap());
        let back = to_wire(&r).unwrap();
        assert_eq!(back.pattern, wire.pattern);
        assert_eq!(from_wire(&back).unwrap(), r);
    }

    #[test]
    fn yearly_series_every_other_year_have_no_ews_form() {
        let r = Recurrence {
            pattern: Pattern::AbsoluteYearly { interval: 2, month: 3, day_of_month: 1 },
            start_date: NaiveDate::from_ymd_opt(2026, 3, 1).unwrap(),
            range: Range::NoEnd,
        };
        assert!(to_wire(&r).unwrap_err().contains("every year"));
        let wire = WireRecurrence {
            pattern: P::AbsoluteYearly { day_of_month: 1, month: "Smarch".into() },
            range: R::NoEnd { start_date: "2026-03-01".into() },
        };
        assert!(from_wire(&wire).unwrap_err().contains("Smarch"));
    }
}
