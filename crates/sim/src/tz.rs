//! Time zones and Graph's date-time formats: IANA names (via chrono-tz), `UTC`, and the
//! Windows names Exchange uses for the common zones.

use chrono::{DateTime, LocalResult, NaiveDateTime, TimeZone, Utc};
use chrono_tz::Tz;

/// Windows time zone names (as Exchange reports them) and the IANA zone each stands for.
const WINDOWS_ZONES: &[(&str, &str)] = &[
    ("UTC", "UTC"),
    ("Coordinated Universal Time", "UTC"),
    ("tzone://Microsoft/Utc", "UTC"),
    ("GMT Standard Time", "Europe/London"),
    ("Greenwich Standard Time", "Atlantic/Reykjavik"),
    ("W. Europe Standard Time", "Europe/Berlin"),
    ("Romance Standard Time", "Europe/Paris"),
    ("Central Europe Standard Time", "Europe/Budapest"),
    ("Central European Standard Time", "Europe/Warsaw"),
    ("E. Europe Standard Time", "Europe/Chisinau"),
    ("FLE Standard Time", "Europe/Kyiv"),
    ("GTB Standard Time", "Europe/Bucharest"),
    ("Russian Standard Time", "Europe/Moscow"),
    ("Turkey Standard Time", "Europe/Istanbul"),
    ("Israel Standard Time", "Asia/Jerusalem"),
    ("South Africa Standard Time", "Africa/Johannesburg"),
    ("Egypt Standard Time", "Africa/Cairo"),
    ("Arabian Standard Time", "Asia/Dubai"),
    ("India Standard Time", "Asia/Kolkata"),
    ("China Standard Time", "Asia/Shanghai"),
    ("Singapore Standard Time", "Asia/Singapore"),
    ("Tokyo Standard Time", "Asia/Tokyo"),
    ("Korea Standard Time", "Asia/Seoul"),
    ("AUS Eastern Standard Time", "Australia/Sydney"),
    ("W. Australia Standard Time", "Australia/Perth"),
    ("New Zealand Standard Time", "Pacific/Auckland"),
    ("Hawaiian Standard Time", "Pacific/Honolulu"),
    ("Alaskan Standard Time", "America/Anchorage"),
    ("Pacific Standard Time", "America/Los_Angeles"),
    ("US Mountain Standard Time", "America/Phoenix"),
    ("Mountain Standard Time", "America/Denver"),
    ("Central Standard Time", "America/Chicago"),
    ("Canada Central Standard Time", "America/Regina"),
    ("Eastern Standard Time", "America/New_York"),
    ("Atlantic Standard Time", "America/Halifax"),
    ("SA Pacific Standard Time", "America/Bogota"),
    ("E. South America Standard Time", "America/Sao_Paulo"),
    ("Argentina Standard Time", "America/Argentina/Buenos_Aires"),
];

/// The Windows zone ids the simulator knows (what EWS GetServerTimeZones lists).
pub fn windows_ids() -> impl Iterator<Item = &'static str> {
    WINDOWS_ZONES.iter().map(|(w, _)| *w).filter(|w| !w.contains("://") && *w != "Coordinated Universal Time")
}

/// Resolves a Graph `timeZone` value (IANA or Windows name, case-insensitive) to a zone.
pub fn resolve(name: &str) -> Option<Tz> {
    let name = name.trim();
    if name.is_empty() {
        return None;
    }
    if let Some((_, iana)) = WINDOWS_ZONES.iter().find(|(w, _)| w.eq_ignore_ascii_case(name)) {
        return iana.parse().ok();
    }
    if let Ok(tz) = name.parse::<Tz>() {
        return Some(tz);
    }
    // chrono-tz is case-sensitive; try a case-insensitive match over its table.
    chrono_tz::TZ_VARIANTS.iter().find(|tz| tz.name().eq_ignore_ascii_case(name)).copied()
}

/// The Windows name for an IANA zone, when it is one of the common ones (for `workingHours`).
pub fn windows_name(name: &str) -> String {
    if WINDOWS_ZONES.iter().any(|(w, _)| w.eq_ignore_ascii_case(name)) {
        return name.to_string();
    }
    WINDOWS_ZONES
        .iter()
        .find(|(w, iana)| iana.eq_ignore_ascii_case(name) && !w.contains("Universal") && !w.contains("://"))
        .map(|(w, _)| w.to_string())
        .unwrap_or_else(|| name.to_string())
}

/// Local wall time in `tz` to an instant. In a DST gap the wall time is moved forward by the
/// gap (as Exchange does); in an overlap the earlier instant is taken.
pub fn local_to_utc(tz: Tz, local: NaiveDateTime) -> DateTime<Utc> {
    match tz.from_local_datetime(&local) {
        LocalResult::Single(t) => t.with_timezone(&Utc),
        LocalResult::Ambiguous(a, _) => a.with_timezone(&Utc),
        LocalResult::None => {
            let shifted = local + chrono::Duration::hours(1);
            match tz.from_local_datetime(&shifted) {
                LocalResult::Single(t) | LocalResult::Ambiguous(t, _) => t.with_timezone(&Utc),
                LocalResult::None => Utc.from_utc_datetime(&local),
            }
        }
    }
}

/// Parses Graph's `dateTime` (no offset, optional fraction), or RFC 3339 with an offset.
/// Returns the wall time and, when an offset was given, the instant.
pub fn parse_graph_date_time(s: &str) -> Option<(NaiveDateTime, Option<DateTime<Utc>>)> {
    let s = s.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Some((t.naive_local(), Some(t.with_timezone(&Utc))));
    }
    for fmt in ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M:%S%.f"] {
        if let Ok(t) = NaiveDateTime::parse_from_str(s, fmt) {
            return Some((t, None));
        }
    }
    if let Ok(d) = chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d") {
        return Some((d.and_hms_opt(0, 0, 0)?, None));
    }
    None
}

/// Parses a query-string instant (`startDateTime`): with an offset it is honoured, without one
/// it is UTC. A `+` turned into a space by form decoding is put back.
pub fn parse_query_instant(s: &str) -> Option<DateTime<Utc>> {
    let fixed = s.trim().replace(' ', "+");
    let (naive, instant) = parse_graph_date_time(&fixed)?;
    Some(instant.unwrap_or_else(|| Utc.from_utc_datetime(&naive)))
}

/// Graph's wall-time format with 7 fractional digits: `2017-04-15T11:00:00.0000000`.
pub fn format_naive(t: NaiveDateTime) -> String {
    use chrono::Timelike;
    let mut out = String::with_capacity(27);
    push_seconds(&mut out, t);
    out.push('.');
    push_digits(&mut out, (t.nanosecond() % 1_000_000_000 / 100) as i64, 7);
    out
}

/// `t` as chrono's `%Y-%m-%dT%H:%M:%S` writes it, without going through a format string (the
/// simulator writes several for every event it serves, and chrono's formatting was a fifth of
/// its work for a page of items).
pub fn push_seconds(out: &mut String, t: NaiveDateTime) {
    use chrono::{Datelike, Timelike};
    if !(0..=9999).contains(&t.year()) {
        out.push_str(&t.format("%Y-%m-%dT%H:%M:%S").to_string());
        return;
    }
    push_digits(out, t.year() as i64, 4);
    out.push('-');
    push_digits(out, t.month() as i64, 2);
    out.push('-');
    push_digits(out, t.day() as i64, 2);
    out.push('T');
    push_digits(out, t.hour() as i64, 2);
    out.push(':');
    push_digits(out, t.minute() as i64, 2);
    out.push(':');
    // A leap second is second 60, as chrono writes it.
    push_digits(out, (t.second() + t.nanosecond() / 1_000_000_000) as i64, 2);
}

/// `n` (not negative) in `width` digits, zero-padded.
fn push_digits(out: &mut String, n: i64, width: u32) {
    let mut div = 10i64.pow(width - 1);
    while div > 0 {
        out.push(char::from(b'0' + ((n / div) % 10) as u8));
        div /= 10;
    }
}

/// An instant as Graph's `DateTimeOffset` with 7 fractional digits and `Z`.
pub fn format_instant(t: DateTime<Utc>) -> String {
    format!("{}Z", format_naive(t.naive_utc()))
}

/// An instant as wall time in `tz`.
pub fn to_local(t: DateTime<Utc>, tz: Tz) -> NaiveDateTime {
    t.with_timezone(&tz).naive_local()
}

#[cfg(test)]
mod tests {
    #[test]
    fn date_times_are_written_as_chrono_writes_them() {
        use chrono::{Duration, NaiveDate, Timelike};
        let start = NaiveDate::from_ymd_opt(2024, 1, 1).unwrap().and_hms_opt(0, 0, 0).unwrap();
        let mut samples: Vec<NaiveDateTime> =
            (0..24 * 400).map(|h| start + Duration::hours(h) + Duration::seconds(h * 37 % 60)).collect();
        samples.extend([
            NaiveDate::from_ymd_opt(1, 1, 1).unwrap().and_hms_opt(0, 0, 0).unwrap(),
            NaiveDate::from_ymd_opt(9999, 12, 31).unwrap().and_hms_nano_opt(23, 59, 59, 999_999_999).unwrap(),
            NaiveDate::from_ymd_opt(10000, 1, 1).unwrap().and_hms_opt(0, 0, 0).unwrap(),
            NaiveDate::from_ymd_opt(-1, 6, 1).unwrap().and_hms_opt(12, 0, 0).unwrap(),
            NaiveDate::from_ymd_opt(2016, 12, 31).unwrap().and_hms_nano_opt(23, 59, 59, 1_500_000_000).unwrap(),
            start.with_nanosecond(123_456_789).unwrap(),
        ]);
        for t in samples {
            let chrono = format!("{}.{:07}", t.format("%Y-%m-%dT%H:%M:%S"), t.nanosecond() % 1_000_000_000 / 100);
            assert_eq!(format_naive(t), chrono, "{t:?}");
            let utc = Utc.from_utc_datetime(&t);
            assert_eq!(crate::ews::convert::ews_time(utc), utc.format("%Y-%m-%dT%H:%M:%SZ").to_string(), "{t:?}");
        }
    }

    use super::*;

    #[test]
    fn windows_and_iana_names_resolve() {
        assert_eq!(resolve("Pacific Standard Time"), Some(chrono_tz::America::Los_Angeles));
        assert_eq!(resolve("w. europe standard time"), Some(chrono_tz::Europe::Berlin));
        assert_eq!(resolve("Europe/Paris"), Some(chrono_tz::Europe::Paris));
        assert_eq!(resolve("europe/paris"), Some(chrono_tz::Europe::Paris));
        assert_eq!(resolve("UTC"), Some(chrono_tz::UTC));
        assert_eq!(resolve("Mars/Olympus"), None);
        assert_eq!(windows_name("Europe/London"), "GMT Standard Time");
    }

    #[test]
    fn formats_have_seven_digits() {
        let t = parse_query_instant("2020-01-01T19:00:00-08:00").unwrap();
        assert_eq!(format_instant(t), "2020-01-02T03:00:00.0000000Z");
        assert_eq!(
            parse_query_instant("2020-01-01T19:00:00 01:00").unwrap(),
            parse_query_instant("2020-01-01T18:00:00Z").unwrap()
        );
    }
}
