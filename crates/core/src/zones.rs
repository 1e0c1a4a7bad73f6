//! Time-zone names as Exchange writes them — IANA (`Europe/Berlin`), Windows
//! (`W. Europe Standard Time`) or Graph's `tzone://Microsoft/Utc` — resolved to a
//! [`chrono_tz::Tz`], and any zone named by its Windows id for EWS.
//!
//! The Windows ↔ IANA mapping is CLDR's `windowsZones` (every Windows zone, and every IANA
//! zone of every territory), from the `windows-timezones` crate. An IANA name CLDR lists under
//! another spelling (`Asia/Kolkata`, CLDR's `Asia/Calcutta`) gets the Windows zone whose rules
//! it follows: the same UTC offsets at every sampled instant of 2020–2035.

use std::str::FromStr;
use std::sync::OnceLock;

use chrono::{Offset, TimeZone, Utc};
use chrono_tz::Tz;
use windows_timezones::WindowsTimezone;

/// Every Windows zone id, in CLDR's order.
pub fn windows_zones() -> &'static [WindowsTimezone] {
    static ALL: OnceLock<Vec<WindowsTimezone>> = OnceLock::new();
    ALL.get_or_init(|| {
        // The crate has no iterator without its `strum` feature: walk CLDR's ids through
        // the IANA zones chrono-tz knows; each maps to its Windows zone.
        let mut v: Vec<WindowsTimezone> = Vec::new();
        for tz in chrono_tz::TZ_VARIANTS {
            if let Ok(w) = WindowsTimezone::try_from(tz) {
                if !v.contains(&w) {
                    v.push(w);
                }
            }
        }
        v
    })
}

fn is_utc(name: &str) -> bool {
    ["UTC", "Etc/UTC", "tzone://Microsoft/Utc", "Coordinated Universal Time", "GMT", "Etc/GMT", "Z"]
        .iter()
        .any(|u| u.eq_ignore_ascii_case(name))
}

/// Resolves a zone name Exchange may write. `None` for a name nobody knows (including
/// `tzone://Microsoft/Custom`, whose rules only the event itself carries).
pub fn resolve(name: &str) -> Option<Tz> {
    let name = name.trim();
    if name.is_empty() || is_utc(name) {
        return Some(Tz::UTC);
    }
    if let Ok(tz) = Tz::from_str(name) {
        return Some(tz);
    }
    windows(name).map(Tz::from)
}

/// A Windows zone id, matched as Windows spells it or case-insensitively.
fn windows(name: &str) -> Option<WindowsTimezone> {
    WindowsTimezone::from_str(name)
        .ok()
        .or_else(|| windows_zones().iter().copied().find(|w| w.name().eq_ignore_ascii_case(name)))
}

/// Whether two zones have had the same offset at every sampled instant (every 10 days of
/// 2020–2035, which catches every DST rule).
fn same_rules(a: Tz, b: Tz) -> bool {
    let start = Utc.with_ymd_and_hms(2020, 1, 1, 0, 0, 0).unwrap();
    (0..(16 * 365 / 10)).all(|i| {
        let t = start + chrono::Duration::days(i * 10);
        a.offset_from_utc_datetime(&t.naive_utc()).fix() == b.offset_from_utc_datetime(&t.naive_utc()).fix()
    })
}

/// The Windows zone id for a zone name: a Windows id as Windows spells it, an IANA name
/// through CLDR (or, for a spelling CLDR does not list, the Windows zone with the same
/// rules), UTC as `UTC`. `None` for a name that resolves to no zone.
pub fn windows_name(name: &str) -> Option<&'static str> {
    let name = name.trim();
    if name.is_empty() || is_utc(name) {
        return Some("UTC");
    }
    if let Some(w) = windows(name) {
        return Some(w.name());
    }
    let tz = Tz::from_str(name).ok()?;
    if let Ok(w) = WindowsTimezone::try_from(tz) {
        return Some(w.name());
    }
    windows_zones().iter().find(|w| same_rules(Tz::from(**w), tz)).map(|w| w.name())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_windows_zone_resolves_and_maps_back_to_itself() {
        let all = windows_zones();
        assert!(all.len() >= 135, "CLDR lists about 140 Windows zones, found {}", all.len());
        for w in all {
            let tz = resolve(w.name()).unwrap_or_else(|| panic!("{} resolves", w.name()));
            assert_eq!(windows_name(tz.name()), Some(w.name()), "{} -> {}", w.name(), tz.name());
            assert_eq!(windows_name(&w.name().to_ascii_lowercase()), Some(w.name()));
        }
    }

    #[test]
    fn names_exchange_writes() {
        assert_eq!(resolve("UTC"), Some(Tz::UTC));
        assert_eq!(resolve("tzone://Microsoft/Utc"), Some(Tz::UTC));
        assert_eq!(resolve("Europe/Berlin"), Some(Tz::Europe__Berlin));
        assert_eq!(resolve("W. Europe Standard Time"), Some(Tz::Europe__Berlin));
        assert_eq!(resolve("pacific standard time"), Some(Tz::America__Los_Angeles));
        assert_eq!(resolve("originalStartTimeZone-value"), None);
        assert_eq!(resolve("tzone://Microsoft/Custom"), None);
    }

    #[test]
    fn iana_zones_of_every_territory_get_their_windows_zone() {
        assert_eq!(windows_name("Europe/Paris"), Some("Romance Standard Time"));
        assert_eq!(windows_name("Europe/Berlin"), Some("W. Europe Standard Time"));
        assert_eq!(windows_name("America/Toronto"), Some("Eastern Standard Time"));
        assert_eq!(windows_name("Australia/Sydney"), Some("AUS Eastern Standard Time"));
        // CLDR spells it Asia/Calcutta; the canonical IANA name follows the same rules.
        assert_eq!(windows_name("Asia/Kolkata"), Some("India Standard Time"));
        assert_eq!(windows_name("Mars/Olympus"), None);
        // Every IANA zone chrono-tz knows has a Windows zone.
        let missing: Vec<&str> =
            chrono_tz::TZ_VARIANTS.iter().map(|t| t.name()).filter(|n| windows_name(n).is_none()).collect();
        assert!(missing.len() <= 2, "IANA zones without a Windows zone: {missing:?}");
    }
}
