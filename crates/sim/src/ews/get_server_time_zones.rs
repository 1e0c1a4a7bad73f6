//! GetServerTimeZones — <https://learn.microsoft.com/exchange/client-developer/web-service-reference/getservertimezones>
//!
//! The zones the server knows, by Windows id (all of the simulator's table when `m:Ids` is
//! absent). With `ReturnFullTimeZoneData`, each definition carries its periods (`Standard`
//! and, for zones with daylight saving, `Daylight`, each with its bias: UTC − local), one
//! transitions group with the yearly rule (`RecurringDayTransition`: month, weekday, the
//! week of the month, -1 for the last, and the local time of the change) and a transition
//! to that group. The rule is read from the zone database for the current year. Clients use
//! it to describe a zone to GetUserAvailability (exchangelib's `get_free_busy_info` asks for
//! it first). calbridge's own client does not call this operation, so it has no wire type:
//! the request and the answer are read and written here.

use chrono::{DateTime, Datelike, Duration, NaiveDate, Offset, TimeZone, Timelike, Utc};
use chrono_tz::{OffsetComponents, Tz};

use super::{Ctx, SoapFault};
use crate::ews_wire::envelope::Status;
use crate::ews_wire::xml::{parse_bool, Node, NodeExt, XmlWriter, NS_MESSAGES, NS_TYPES};
use crate::tz;

/// A change between standard and daylight time in one year.
struct Change {
    to_daylight: bool,
    /// Local wall-clock time of the change, in the offset before it.
    local: chrono::NaiveDateTime,
}

/// UTC offset in minutes at `t`, and whether daylight saving is in effect.
fn offset(zone: Tz, t: DateTime<Utc>) -> (i64, bool) {
    let o = zone.offset_from_utc_datetime(&t.naive_utc());
    (o.fix().local_minus_utc() as i64 / 60, !o.dst_offset().is_zero())
}

/// The standard offset (minutes), the daylight offset if the zone has one in `year`, and the
/// year's changes.
fn rules(zone: Tz, year: i32) -> (i64, Option<i64>, Vec<Change>) {
    let start = Utc.with_ymd_and_hms(year, 1, 1, 0, 0, 0).single().unwrap_or_else(Utc::now);
    let mut standard = None;
    let mut daylight = None;
    let mut changes = Vec::new();
    let mut prev = offset(zone, start);
    for day in 1..=366 {
        let t = start + Duration::days(day);
        let now = offset(zone, t);
        if now.1 {
            daylight.get_or_insert(now.0);
        } else {
            standard.get_or_insert(now.0);
        }
        if now.1 != prev.1 {
            // Narrow the change down to the minute.
            let (mut lo, mut hi) = (t - Duration::days(1), t);
            while hi - lo > Duration::minutes(1) {
                let mid = lo + (hi - lo) / 2;
                if offset(zone, mid).1 == prev.1 {
                    lo = mid;
                } else {
                    hi = mid;
                }
            }
            changes.push(Change { to_daylight: now.1, local: hi.naive_utc() + Duration::minutes(prev.0) });
        }
        prev = now;
    }
    let standard = standard.unwrap_or(prev.0);
    (standard, daylight.filter(|_| !changes.is_empty()), changes)
}

/// `xs:duration` of a bias in minutes (`-PT60M`, `PT300M`, `PT0M`).
fn bias(minutes: i64) -> String {
    if minutes < 0 {
        format!("-PT{}M", -minutes)
    } else {
        format!("PT{minutes}M")
    }
}

fn display_name(id: &str, standard: i64) -> String {
    let sign = if standard < 0 { '-' } else { '+' };
    format!("(UTC{sign}{:02}:{:02}) {id}", standard.abs() / 60, standard.abs() % 60)
}

fn days_in_month(year: i32, month: u32) -> u32 {
    let next =
        if month == 12 { NaiveDate::from_ymd_opt(year + 1, 1, 1) } else { NaiveDate::from_ymd_opt(year, month + 1, 1) };
    next.and_then(|n| n.pred_opt()).map(|d| d.day()).unwrap_or(28)
}

fn write_definition(w: &mut XmlWriter, id: &str, zone: Tz, full: bool, year: i32) {
    let (standard, daylight, changes) = rules(zone, year);
    let name = display_name(id, standard);
    if !full {
        w.empty("t:TimeZoneDefinition", &[("Id", id), ("Name", &name)]);
        return;
    }
    let rule = |kind: &str| format!("trule:Microsoft/Registry/{id}/{year}-{kind}");
    w.open("t:TimeZoneDefinition", &[("Id", id), ("Name", &name)]);
    w.open("t:Periods", &[]);
    w.empty("t:Period", &[("Bias", &bias(-standard)), ("Name", "Standard"), ("Id", &rule("Standard"))]);
    if let Some(d) = daylight {
        w.empty("t:Period", &[("Bias", &bias(-d)), ("Name", "Daylight"), ("Id", &rule("Daylight"))]);
    }
    w.close("t:Periods");
    w.open("t:TransitionsGroups", &[]).open("t:TransitionsGroup", &[("Id", "0")]);
    if daylight.is_none() {
        w.open("t:Transition", &[]).leaf_with("t:To", &[("Kind", "Period")], &rule("Standard")).close("t:Transition");
    }
    for c in changes.iter().filter(|_| daylight.is_some()) {
        let date = c.local.date();
        let week = (date.day() - 1) / 7 + 1;
        let occurrence = if date.day() + 7 > days_in_month(date.year(), date.month()) { -1 } else { week as i64 };
        let weekday = crate::recurrence::weekday_name(date.weekday());
        let time = c.local.time();
        let offset = format!("PT{}H{}M", time.hour(), time.minute());
        w.open("t:RecurringDayTransition", &[]);
        w.leaf_with("t:To", &[("Kind", "Period")], &rule(if c.to_daylight { "Daylight" } else { "Standard" }));
        w.leaf("t:TimeOffset", &offset).leaf("t:Month", &date.month().to_string());
        let mut day = weekday.to_string();
        day[..1].make_ascii_uppercase();
        w.leaf("t:DayOfWeek", &day).leaf("t:Occurrence", &occurrence.to_string());
        w.close("t:RecurringDayTransition");
    }
    w.close("t:TransitionsGroup").close("t:TransitionsGroups");
    w.open("t:Transitions", &[]).open("t:Transition", &[]).leaf_with("t:To", &[("Kind", "Group")], "0");
    w.close("t:Transition").close("t:Transitions");
    w.close("t:TimeZoneDefinition");
}

pub(crate) fn handle(_ctx: &Ctx, body: Node<'_, '_>, w: &mut XmlWriter) -> Result<(), SoapFault> {
    if !body.is(NS_MESSAGES, "GetServerTimeZones") {
        return Err(super::schema_fault(crate::ews_wire::xml::WireError::missing("m:GetServerTimeZones")));
    }
    let full = parse_bool("ReturnFullTimeZoneData", body.attribute("ReturnFullTimeZoneData").unwrap_or("true"))
        .map_err(super::schema_fault)?;
    let ids: Vec<String> = match body.m("Ids") {
        Some(ids) => ids.children_named(NS_TYPES, "Id").map(|i| i.text_or_empty().trim().to_string()).collect(),
        None => tz::windows_ids().map(str::to_string).collect(),
    };
    let zones: Vec<(String, Option<Tz>)> = ids.into_iter().map(|id| (id.clone(), tz::resolve(&id))).collect();
    let year = Utc::now().year();
    w.open("m:GetServerTimeZonesResponse", &[]).open("m:ResponseMessages", &[]);
    match zones.iter().find(|(_, z)| z.is_none()) {
        Some((unknown, _)) => {
            Status::error("ErrorTimeZone", format!("The time zone {unknown:?} is not known to the server."))
                .open(w, "m:GetServerTimeZonesResponseMessage");
            w.empty("m:TimeZoneDefinitions", &[]);
        }
        None => {
            Status::ok().open(w, "m:GetServerTimeZonesResponseMessage");
            w.open("m:TimeZoneDefinitions", &[]);
            for (id, zone) in &zones {
                write_definition(w, id, zone.expect("all known"), full, year);
            }
            w.close("m:TimeZoneDefinitions");
        }
    }
    w.close("m:GetServerTimeZonesResponseMessage").close("m:ResponseMessages").close("m:GetServerTimeZonesResponse");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rule_of_a_european_zone_and_of_utc() {
        let berlin: Tz = "Europe/Berlin".parse().unwrap();
        let (standard, daylight, changes) = rules(berlin, 2026);
        assert_eq!((standard, daylight), (60, Some(120)));
        let local: Vec<String> = changes.iter().map(|c| c.local.format("%Y-%m-%d %H:%M").to_string()).collect();
        assert_eq!(local, vec!["2026-03-29 02:00", "2026-10-25 03:00"]);
        assert!(changes[0].to_daylight && !changes[1].to_daylight);
        let (standard, daylight, changes) = rules(chrono_tz::UTC, 2026);
        assert_eq!((standard, daylight, changes.len()), (0, None, 0));
        // Southern hemisphere: daylight saving spans the new year.
        let (standard, daylight, changes) = rules("America/Sao_Paulo".parse().unwrap(), 2026);
        assert_eq!((standard, daylight, changes.len()), (-180, None, 0), "Brazil dropped daylight saving in 2019");
        let (standard, daylight, _) = rules("Australia/Sydney".parse().unwrap(), 2026);
        assert_eq!((standard, daylight), (600, Some(660)));
        assert_eq!((bias(-60), bias(300), bias(0)), ("-PT60M".to_string(), "PT300M".to_string(), "PT0M".to_string()));
    }
}
