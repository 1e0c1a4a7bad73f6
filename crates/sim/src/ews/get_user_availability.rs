//! GetUserAvailability — <https://learn.microsoft.com/exchange/client-developer/web-service-reference/getuseravailability-operation>
//!
//! Free/busy of people, rooms and equipment from the shared state: one `CalendarEvent` per
//! instance (single, occurrence, exception) overlapping the window, its `BusyType` the
//! item's `LegacyFreeBusyStatus` (Free, Tentative, Busy, OOF, WorkingElsewhere). Times are
//! read and written in the request's `t:TimeZone` (a bias and, optionally, standard and
//! daylight transitions, as Windows describes a zone), without an offset, as Exchange does.
//! `Detailed` views add subject and location (withheld for private items) when the caller
//! may open the mailbox; otherwise the view is downgraded to `FreeBusy`, as Exchange's
//! default calendar permission (FreeBusyTimeOnly) does. `*Merged` views add the merged
//! free/busy string: one digit per `MergedFreeBusyIntervalInMinutes` (0 free, 1 tentative,
//! 2 busy, 3 out of office, 4 working elsewhere), the busiest status of the interval. An
//! unknown address is `ErrorMailRecipientNotFound` for that mailbox alone; a window that ends
//! before it starts is `ErrorInvalidTimeInterval`, one longer than 62 days
//! `ErrorTimeIntervalTooBig`.

use chrono::{DateTime, Datelike, Duration, NaiveDate, NaiveDateTime, NaiveTime, Utc, Weekday};

use super::convert::free_busy;
use super::{Ctx, SoapFault};
use crate::ews_wire::envelope::Status;
use crate::ews_wire::ops::get_user_availability::{self, CalendarEvent, FreeBusyResponse};
use crate::ews_wire::xml::{Node, NodeExt, XmlWriter};

/// One transition of a legacy `t:TimeZone` (`t:StandardTime` / `t:DaylightTime`).
#[derive(Clone, Copy, Debug, Default)]
struct Transition {
    bias: i64,
    time: NaiveTime,
    /// 1–4, or 5 for the last such weekday of the month.
    day_order: u32,
    month: u32,
    weekday: Option<Weekday>,
}

/// A legacy `t:TimeZone`: UTC = local + bias (minutes), plus the daylight rule.
#[derive(Clone, Copy, Debug, Default)]
struct LegacyZone {
    bias: i64,
    standard: Option<Transition>,
    daylight: Option<Transition>,
}

fn weekday(s: &str) -> Option<Weekday> {
    crate::recurrence::weekday(s)
}

fn transition(node: Option<Node<'_, '_>>) -> Option<Transition> {
    let n = node?;
    let num = |name: &str| n.t_text(name).and_then(|v| v.trim().parse::<i64>().ok());
    Some(Transition {
        bias: num("Bias").unwrap_or(0),
        time: n
            .t_text("Time")
            .and_then(|t| NaiveTime::parse_from_str(t.trim(), "%H:%M:%S").ok())
            .unwrap_or(NaiveTime::MIN),
        day_order: num("DayOrder").unwrap_or(1).clamp(1, 5) as u32,
        month: num("Month").unwrap_or(0).clamp(0, 12) as u32,
        weekday: n.t_text("DayOfWeek").and_then(weekday),
    })
}

impl LegacyZone {
    fn parse(body: Node<'_, '_>) -> LegacyZone {
        let Some(tz) = body.t("TimeZone") else { return LegacyZone::default() };
        let standard = transition(tz.t("StandardTime"));
        let daylight = transition(tz.t("DaylightTime"));
        let has_dst =
            matches!((standard, daylight), (Some(s), Some(d)) if s.month != 0 && d.month != 0 && s.bias != d.bias);
        LegacyZone {
            bias: tz.t_text("Bias").and_then(|v| v.trim().parse().ok()).unwrap_or(0),
            standard: if has_dst { standard } else { standard.map(|s| Transition { month: 0, ..s }) },
            daylight: if has_dst { daylight } else { None },
        }
    }

    /// The local instant of a transition in `year`.
    fn at(t: &Transition, year: i32) -> Option<NaiveDateTime> {
        let wd = t.weekday?;
        let first = NaiveDate::from_ymd_opt(year, t.month, 1)?;
        let offset = (7 + wd.num_days_from_sunday() - first.weekday().num_days_from_sunday()) % 7;
        let mut day = first + Duration::days(offset as i64 + 7 * (t.day_order as i64 - 1));
        while day.month() != t.month {
            day -= Duration::days(7);
        }
        Some(day.and_time(t.time))
    }

    /// Minutes to add to UTC for local time at local wall-clock `local`.
    fn offset_at_local(self, local: NaiveDateTime) -> i64 {
        let standard_bias = self.standard.map(|s| s.bias).unwrap_or(0);
        let (Some(s), Some(d)) = (self.standard, self.daylight) else { return -(self.bias + standard_bias) };
        let year = local.year();
        let (Some(dst_start), Some(dst_end)) = (Self::at(&d, year), Self::at(&s, year)) else {
            return -(self.bias + standard_bias);
        };
        let in_dst = if dst_start < dst_end {
            local >= dst_start && local < dst_end
        } else {
            local >= dst_start || local < dst_end
        };
        -(self.bias + if in_dst { d.bias } else { s.bias })
    }

    fn utc_of(self, local: NaiveDateTime) -> DateTime<Utc> {
        (local - Duration::minutes(self.offset_at_local(local))).and_utc()
    }

    fn local_of(self, t: DateTime<Utc>) -> NaiveDateTime {
        // The offset of the local time the standard offset gives (exact away from the
        // transition hour itself).
        let guess = t.naive_utc() + Duration::minutes(-(self.bias + self.standard.map(|s| s.bias).unwrap_or(0)));
        t.naive_utc() + Duration::minutes(self.offset_at_local(guess))
    }
}

fn parse_local(what: &str, s: &str, zone: &LegacyZone) -> Result<DateTime<Utc>, SoapFault> {
    let s = s.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Ok(t.with_timezone(&Utc));
    }
    NaiveDateTime::parse_from_str(s.trim_end_matches('Z'), "%Y-%m-%dT%H:%M:%S%.f").map(|n| zone.utc_of(n)).map_err(
        |_| SoapFault {
            code: "ErrorSchemaValidation",
            message: format!("The request failed schema validation: {what} {s:?} is not an xs:dateTime."),
        },
    )
}

fn digit(busy_type: &str) -> u8 {
    match busy_type {
        "Tentative" => 1,
        "Busy" => 2,
        "OOF" => 3,
        "WorkingElsewhere" => 4,
        _ => 0,
    }
}

pub(crate) fn handle(ctx: &Ctx, body: Node<'_, '_>, w: &mut XmlWriter) -> Result<(), SoapFault> {
    let req = get_user_availability::Request::parse(body).map_err(super::schema_fault)?;
    let zone = LegacyZone::parse(body);
    let from = parse_local("StartTime", &req.start_time, &zone)?;
    let to = parse_local("EndTime", &req.end_time, &zone)?;
    if to <= from {
        return Err(SoapFault {
            code: "ErrorInvalidTimeInterval",
            message: "The time window's end must be after its start.".into(),
        });
    }
    if to - from > Duration::days(62) {
        return Err(SoapFault {
            code: "ErrorTimeIntervalTooBig",
            message: "The time window may span at most 62 days.".into(),
        });
    }
    let view = req.requested_view.as_str();
    let merged = view.ends_with("Merged");
    let interval = req.merged_free_busy_interval_in_minutes.unwrap_or(30).clamp(5, 1440) as i64;
    let local = |t: DateTime<Utc>| zone.local_of(t).format("%Y-%m-%dT%H:%M:%S").to_string();
    let mut answers = Vec::new();
    for m in &req.mailboxes {
        let mb = ctx.sim.inner.state.lock().unwrap().mailbox(&m.address).cloned();
        let Some(mb) = mb else {
            answers.push(FreeBusyResponse {
                status: Status::error(
                    "ErrorMailRecipientNotFound",
                    format!("Unable to resolve e-mail address {} to an Active Directory object.", m.address),
                ),
                view_type: None,
                merged_free_busy: None,
                events: vec![],
            });
            continue;
        };
        let detailed = view.starts_with("Detailed") && ctx.check_access(&mb).is_ok();
        let state = ctx.sim.inner.state.lock().unwrap();
        let instances = state.instances(&mb.key, from, to);
        let events: Vec<CalendarEvent> = instances
            .iter()
            .map(|i| {
                let ev = i.exception.map(|x| &x.event).unwrap_or(&i.ev.event);
                let private = ev.sensitivity.as_deref().is_some_and(|s| s == "private" || s == "confidential");
                let show = detailed && !private;
                CalendarEvent {
                    start_time: local(i.start),
                    end_time: local(i.end),
                    busy_type: free_busy(i.show_as()).to_string(),
                    subject: show.then(|| ev.subject.clone().unwrap_or_default()),
                    location: show
                        .then(|| ev.location.as_ref().and_then(|l| l.display_name.clone()).unwrap_or_default()),
                }
            })
            .collect();
        let merged_free_busy = merged.then(|| {
            let mut out = String::new();
            let mut slot = from;
            while slot < to {
                let end = (slot + Duration::minutes(interval)).min(to);
                let worst = instances
                    .iter()
                    .filter(|i| i.start < end && i.end > slot)
                    .map(|i| digit(free_busy(i.show_as())))
                    .max()
                    .unwrap_or(0);
                out.push(char::from(b'0' + worst));
                slot = end;
            }
            out
        });
        let view_type = match (detailed, merged) {
            (true, true) => "DetailedMerged",
            (true, false) => "Detailed",
            (false, true) => "FreeBusyMerged",
            (false, false) => "FreeBusy",
        };
        answers.push(FreeBusyResponse {
            status: Status::ok(),
            view_type: Some(view_type.into()),
            merged_free_busy,
            events,
        });
    }
    get_user_availability::write_response(w, &answers);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_windows_zone_with_daylight_saving_converts_both_ways() {
        // W. Europe Standard Time as Windows writes it: UTC+1, UTC+2 from the last Sunday of
        // March 02:00 to the last Sunday of October 03:00.
        let xml = r#"<m:R xmlns:m="http://schemas.microsoft.com/exchange/services/2006/messages" xmlns:t="http://schemas.microsoft.com/exchange/services/2006/types"><t:TimeZone><t:Bias>-60</t:Bias><t:StandardTime><t:Bias>0</t:Bias><t:Time>03:00:00</t:Time><t:DayOrder>5</t:DayOrder><t:Month>10</t:Month><t:DayOfWeek>Sunday</t:DayOfWeek></t:StandardTime><t:DaylightTime><t:Bias>-60</t:Bias><t:Time>02:00:00</t:Time><t:DayOrder>5</t:DayOrder><t:Month>3</t:Month><t:DayOfWeek>Sunday</t:DayOfWeek></t:DaylightTime></t:TimeZone></m:R>"#;
        let doc = roxmltree::Document::parse(xml).unwrap();
        let zone = LegacyZone::parse(doc.root_element());
        let local = |s: &str| NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M").unwrap();
        let utc = |s: &str| local(s).and_utc();
        assert_eq!(zone.utc_of(local("2026-12-07T09:00")), utc("2026-12-07T08:00"));
        assert_eq!(zone.utc_of(local("2026-07-07T09:00")), utc("2026-07-07T07:00"));
        // 2026's transitions: March 29th and October 25th.
        assert_eq!(zone.utc_of(local("2026-03-29T01:30")), utc("2026-03-29T00:30"));
        assert_eq!(zone.utc_of(local("2026-03-29T03:30")), utc("2026-03-29T01:30"));
        assert_eq!(zone.local_of(utc("2026-10-25T12:00")), local("2026-10-25T13:00"));
        assert_eq!(zone.local_of(utc("2026-07-07T07:00")), local("2026-07-07T09:00"));
        // No zone at all: UTC.
        let doc = roxmltree::Document::parse("<r/>").unwrap();
        let none = LegacyZone::parse(doc.root_element());
        assert_eq!(none.utc_of(local("2026-07-07T09:00")), utc("2026-07-07T09:00"));
    }
}
