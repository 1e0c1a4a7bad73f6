//! The only bridge between Graph's wire types ([`crate::types`]) and calbridge's domain
//! ([`calbridge_core`]).
//!
//! Reading (`types::Event` → [`RemoteItem`] / [`EventData`]):
//! - `start`/`end` are `dateTimeTimeZone`s: a local `dateTime` (`2026-11-23T09:00:00.0000000`)
//!   in `timeZone`. The client asks for UTC, but any IANA or Windows zone is resolved. An
//!   all-day event's days are floating: Graph writes them as midnight in whatever zone it was
//!   asked for, so they are placed at midnight in the event's own zone (`originalStartTimeZone`).
//! - `originalStartTimeZone` → `time_zone`; `showAs`, `sensitivity`, attendees' `type` and
//!   `status.response` map to the core enums, unknown strings to a default (never a panic);
//!   `type` + `seriesMasterId` + `originalStart` → [`Series`].
//! - `body.content` as text (an HTML body, when Graph ignored the text preference, is reduced
//!   to its text); `location.displayName`; `@odata.etag` (else `W/"changeKey"`) → version.
//! - provenance: the `singleValueExtendedProperties` entry with id
//!   [`PROVENANCE_PROPERTY_ID`], or else `transactionId` if it decodes, because delta
//!   responses do not expand extended properties and calbridge writes the tag into both.
//!
//! Writing ([`EventData`] + [`Provenance`] → `types::Event`): UTC `dateTime`s with
//! `timeZone: "UTC"` (all-day events: midnight dates in the event's zone, as Graph requires),
//! subject, text body, location, attendees, `showAs`, `sensitivity`, `isAllDay`, and for a
//! create the provenance as `transactionId` and as the extended property.

use chrono::{DateTime, Datelike, NaiveDate, NaiveDateTime, NaiveTime, Offset, TimeZone, Timelike, Utc};
use chrono_tz::Tz;

use calbridge_core::model::{
    Attendee, AttendeeRole, EventData, Person, ResponseStatus, Sensitivity, Series, SeriesKind, ShowAs,
};
use calbridge_core::sync::{Confirmed, Provenance, RemoteChange, RemoteItem};

use crate::types::{self, DateTimeTimeZone, PROVENANCE_PROPERTY_ID};
use crate::zones;

/// Why a wire event could not become a domain value.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ConvertError {
    #[error("the event has no id")]
    MissingId,
    #[error("the event {id:?} has no {field}")]
    MissingField { id: String, field: &'static str },
    #[error("{value:?} is not a date-time Graph writes (expected 2026-11-23T09:00:00.0000000)")]
    BadDateTime { value: String },
    #[error("the time zone {0:?} is unknown (neither IANA nor a Windows zone name)")]
    UnknownTimeZone(String),
}

/// A delta item: `@removed` → [`RemoteChange::Removed`], anything else → an upsert.
pub fn remote_change(ev: &types::Event) -> Result<RemoteChange, ConvertError> {
    if ev.removed.is_some() {
        let remote_id = ev.id.clone().filter(|i| !i.is_empty()).ok_or(ConvertError::MissingId)?;
        return Ok(RemoteChange::Removed { remote_id });
    }
    Ok(RemoteChange::Upsert(remote_item(ev)?))
}

/// An event as Exchange reported it.
pub fn remote_item(ev: &types::Event) -> Result<RemoteItem, ConvertError> {
    let remote_id = ev.id.clone().filter(|i| !i.is_empty()).ok_or(ConvertError::MissingId)?;
    Ok(RemoteItem { version: version(ev), data: event_data(ev)?, provenance: provenance(ev), remote_id })
}

/// Exchange's confirmation of a create or update. `sent` is what calbridge asked for; it
/// stands in for the content only if the answer's content cannot be read.
pub fn confirmed(ev: &types::Event, sent: &EventData) -> Result<Confirmed, ConvertError> {
    let remote_id = ev.id.clone().filter(|i| !i.is_empty()).ok_or(ConvertError::MissingId)?;
    let data = match event_data(ev) {
        Ok(d) => d,
        Err(e) => {
            tracing::warn!(event = %remote_id, "the confirmed event could not be read ({e}); keeping what was sent");
            sent.clone()
        }
    };
    Ok(Confirmed { remote_id, version: version(ev), data })
}

/// `@odata.etag`, else `W/"{changeKey}"`, else empty.
pub fn version(ev: &types::Event) -> String {
    if let Some(e) = ev.odata_etag.as_ref().filter(|e| !e.is_empty()) {
        return e.clone();
    }
    match ev.change_key.as_ref().filter(|c| !c.is_empty()) {
        Some(ck) => format!("W/\"{ck}\""),
        None => String::new(),
    }
}

/// calbridge's tag: the extended property, or else a `transactionId` that decodes.
pub fn provenance(ev: &types::Event) -> Option<Provenance> {
    let from_property = ev
        .single_value_extended_properties
        .iter()
        .flatten()
        .find(|p| p.id.eq_ignore_ascii_case(PROVENANCE_PROPERTY_ID))
        .and_then(|p| p.value.as_deref())
        .and_then(Provenance::decode);
    from_property.or_else(|| ev.transaction_id.as_deref().and_then(Provenance::decode))
}

/// The content of a wire event.
pub fn event_data(ev: &types::Event) -> Result<EventData, ConvertError> {
    let id = ev.id.clone().unwrap_or_default();
    let start = ev.start.as_ref().ok_or_else(|| ConvertError::MissingField { id: id.clone(), field: "start" })?;
    let end = ev.end.as_ref().ok_or_else(|| ConvertError::MissingField { id: id.clone(), field: "end" })?;
    let all_day = ev.is_all_day.unwrap_or(false);
    let time_zone = ev
        .original_start_time_zone
        .clone()
        .filter(|z| !z.trim().is_empty())
        .or_else(|| start.time_zone.clone().filter(|z| !z.trim().is_empty()))
        .unwrap_or_else(|| "UTC".to_string());
    let (start_utc, end_utc) = if all_day {
        (all_day_bound(start, &time_zone)?, all_day_bound(end, &time_zone)?)
    } else {
        (to_utc(start)?, to_utc(end)?)
    };
    let body = match &ev.body {
        Some(b) => {
            let content = b.content.as_deref().unwrap_or("");
            if b.content_type.as_deref().is_some_and(|t| t.eq_ignore_ascii_case("html")) {
                html_to_text(content)
            } else {
                normalize_text(content)
            }
        }
        None => String::new(),
    };
    Ok(EventData {
        subject: ev.subject.clone().unwrap_or_default(),
        body,
        location: ev.location.as_ref().and_then(|l| l.display_name.clone()).unwrap_or_default(),
        start: start_utc,
        end: end_utc,
        time_zone,
        all_day,
        show_as: ev.show_as.as_deref().map(show_as).unwrap_or(ShowAs::Busy),
        sensitivity: ev.sensitivity.as_deref().map(sensitivity).unwrap_or(Sensitivity::Normal),
        organizer: ev
            .organizer
            .as_ref()
            .and_then(|o| o.email_address.as_ref())
            .map(|a| Person { email: a.address.clone().unwrap_or_default(), name: a.name.clone().unwrap_or_default() }),
        attendees: ev.attendees.iter().flatten().filter_map(attendee).collect(),
        series: series(ev, start_utc),
        cancelled: ev.is_cancelled.unwrap_or(false),
    })
}

fn attendee(a: &types::Attendee) -> Option<Attendee> {
    let addr = a.email_address.as_ref()?;
    if addr.address.as_deref().unwrap_or("").is_empty() && addr.name.as_deref().unwrap_or("").is_empty() {
        return None;
    }
    Some(Attendee {
        email: addr.address.clone().unwrap_or_default(),
        name: addr.name.clone().unwrap_or_default(),
        role: a.kind.as_deref().map(attendee_role).unwrap_or(AttendeeRole::Required),
        response: a.status.as_ref().and_then(|s| s.response.as_deref()).map(response).unwrap_or(ResponseStatus::None),
    })
}

fn series(ev: &types::Event, start: DateTime<Utc>) -> Series {
    let master_id = ev.series_master_id.clone().filter(|m| !m.is_empty());
    let original_start = ev.original_start.as_deref().and_then(parse_offset_date_time);
    let kind = match ev.kind.as_deref().map(str::to_ascii_lowercase).as_deref() {
        Some("seriesmaster") => SeriesKind::Master,
        Some("occurrence") => SeriesKind::Occurrence,
        Some("exception") => SeriesKind::Exception,
        Some("singleinstance") => SeriesKind::Single,
        _ if master_id.is_some() => SeriesKind::Occurrence,
        _ => SeriesKind::Single,
    };
    match kind {
        SeriesKind::Single => Series::single(),
        SeriesKind::Master => {
            let recurrence = ev.recurrence.as_ref().and_then(|r| match crate::recurrence::from_wire(r) {
                Ok(rule) => Some(Box::new(rule)),
                Err(e) => {
                    tracing::warn!(id = ?ev.id, "the series' recurrence cannot be read ({e}); keeping the series without it");
                    None
                }
            });
            Series { kind, master_id: None, original_start: None, recurrence }
        }
        // An unmodified occurrence starts where it was meant to.
        SeriesKind::Occurrence => {
            Series { kind, master_id, original_start: original_start.or(Some(start)), recurrence: None }
        }
        SeriesKind::Exception => Series { kind, master_id, original_start, recurrence: None },
    }
}

/// `showAs`; unknown strings → [`ShowAs::Unknown`].
pub fn show_as(s: &str) -> ShowAs {
    match s.to_ascii_lowercase().as_str() {
        "free" => ShowAs::Free,
        "tentative" => ShowAs::Tentative,
        "busy" => ShowAs::Busy,
        "oof" => ShowAs::Oof,
        "workingelsewhere" => ShowAs::WorkingElsewhere,
        _ => ShowAs::Unknown,
    }
}

pub fn show_as_wire(s: ShowAs) -> &'static str {
    match s {
        ShowAs::Free => "free",
        ShowAs::Tentative => "tentative",
        ShowAs::Busy => "busy",
        ShowAs::Oof => "oof",
        ShowAs::WorkingElsewhere => "workingElsewhere",
        ShowAs::Unknown => "unknown",
    }
}

/// `sensitivity`; unknown strings → [`Sensitivity::Normal`].
pub fn sensitivity(s: &str) -> Sensitivity {
    match s.to_ascii_lowercase().as_str() {
        "personal" => Sensitivity::Personal,
        "private" => Sensitivity::Private,
        "confidential" => Sensitivity::Confidential,
        _ => Sensitivity::Normal,
    }
}

pub fn sensitivity_wire(s: Sensitivity) -> &'static str {
    match s {
        Sensitivity::Normal => "normal",
        Sensitivity::Personal => "personal",
        Sensitivity::Private => "private",
        Sensitivity::Confidential => "confidential",
    }
}

/// Attendee `type`; unknown strings → [`AttendeeRole::Required`].
pub fn attendee_role(s: &str) -> AttendeeRole {
    match s.to_ascii_lowercase().as_str() {
        "optional" => AttendeeRole::Optional,
        "resource" => AttendeeRole::Resource,
        _ => AttendeeRole::Required,
    }
}

pub fn attendee_role_wire(r: AttendeeRole) -> &'static str {
    match r {
        AttendeeRole::Required => "required",
        AttendeeRole::Optional => "optional",
        AttendeeRole::Resource => "resource",
    }
}

/// `status.response`; unknown or empty strings → [`ResponseStatus::None`].
pub fn response(s: &str) -> ResponseStatus {
    match s.to_ascii_lowercase().as_str() {
        "organizer" => ResponseStatus::Organizer,
        "tentativelyaccepted" => ResponseStatus::TentativelyAccepted,
        "accepted" => ResponseStatus::Accepted,
        "declined" => ResponseStatus::Declined,
        "notresponded" => ResponseStatus::NotResponded,
        _ => ResponseStatus::None,
    }
}

/// The years a date-time may have (Exchange's own range is narrower). Beyond them chrono's
/// arithmetic overflows (a panic), so such values are [`ConvertError::BadDateTime`].
const YEARS: std::ops::RangeInclusive<i32> = 1..=9999;

/// A `dateTime` as Graph writes it: local, no offset, up to 7 fractional digits. An offset or
/// `Z`, if present, is honoured (and `timeZone` then ignored). Years outside [`YEARS`] are
/// refused.
fn parse_local(value: &str) -> Result<Result<NaiveDateTime, DateTime<Utc>>, ConvertError> {
    let v = value.trim();
    let bad = || ConvertError::BadDateTime { value: value.to_string() };
    if let Some(t) = parse_plain(v) {
        return if YEARS.contains(&t.year()) { Ok(Ok(t)) } else { Err(bad()) };
    }
    if let Ok(t) = DateTime::parse_from_rfc3339(v) {
        let t = t.with_timezone(&Utc);
        return if YEARS.contains(&t.year()) { Ok(Err(t)) } else { Err(bad()) };
    }
    let local = ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M:%S%.f"]
        .iter()
        .find_map(|f| NaiveDateTime::parse_from_str(v, f).ok())
        .or_else(|| NaiveDate::parse_from_str(v, "%Y-%m-%d").ok().map(|d| d.and_time(NaiveTime::MIN)));
    match local {
        Some(t) if YEARS.contains(&t.year()) => Ok(Ok(t)),
        _ => Err(bad()),
    }
}

/// `YYYY-MM-DDTHH:MM:SS` with an optional fraction of one to nine digits, the form Graph
/// writes every `dateTime` in (`2026-03-01T09:00:00.0000000`), read without a format string
/// (the same value chrono's `%Y-%m-%dT%H:%M:%S%.f` reads). `None` for anything else, which
/// [`parse_local`] then reads with its formats.
fn parse_plain(v: &str) -> Option<NaiveDateTime> {
    let b = v.as_bytes();
    if b.len() < 19 || b[4] != b'-' || b[7] != b'-' || b[10] != b'T' || b[13] != b':' || b[16] != b':' {
        return None;
    }
    let number =
        |digits: &[u8]| digits.iter().try_fold(0u32, |n, &c| c.is_ascii_digit().then(|| n * 10 + u32::from(c - b'0')));
    let nanos = match &b[19..] {
        [] => 0,
        [b'.', digits @ ..] if (1..=9).contains(&digits.len()) => number(digits)? * 10u32.pow(9 - digits.len() as u32),
        _ => return None,
    };
    NaiveDate::from_ymd_opt(number(&b[0..4])? as i32, number(&b[5..7])?, number(&b[8..10])?)?.and_hms_nano_opt(
        number(&b[11..13])?,
        number(&b[14..16])?,
        number(&b[17..19])?,
        nanos,
    )
}

/// A local date-time in a zone, as an instant. A time that occurs twice (clocks going back)
/// is the earlier; one that does not occur (clocks going forward) is moved past the gap.
/// `None` if there is no such instant (or it is outside [`YEARS`]).
fn localize(tz: Tz, t: NaiveDateTime) -> Option<DateTime<Utc>> {
    tz.from_local_datetime(&t)
        .earliest()
        .or_else(|| tz.from_local_datetime(&t.checked_add_signed(chrono::Duration::hours(1))?).earliest())
        .map(|t| t.with_timezone(&Utc))
        .filter(|t| YEARS.contains(&t.year()))
}

/// A `dateTimeTimeZone` as an instant.
pub fn to_utc(dt: &DateTimeTimeZone) -> Result<DateTime<Utc>, ConvertError> {
    match parse_local(&dt.date_time)? {
        Err(instant) => Ok(instant),
        Ok(local) => {
            let zone = dt.time_zone.as_deref().unwrap_or("UTC");
            let tz = zones::resolve(zone).ok_or_else(|| ConvertError::UnknownTimeZone(zone.to_string()))?;
            localize(tz, local).ok_or_else(|| ConvertError::BadDateTime { value: dt.date_time.clone() })
        }
    }
}

/// A bound of an all-day event. Graph writes the day as midnight in the zone it was asked
/// for; the day is placed at midnight in the event's own zone. A value that is not midnight
/// (a server that converted the instant) is taken as the instant it names.
fn all_day_bound(dt: &DateTimeTimeZone, event_zone: &str) -> Result<DateTime<Utc>, ConvertError> {
    match parse_local(&dt.date_time)? {
        Ok(local) if local.time() == NaiveTime::MIN => {
            let tz = zones::resolve(event_zone)
                .or_else(|| dt.time_zone.as_deref().and_then(zones::resolve))
                .unwrap_or(Tz::UTC);
            localize(tz, local).ok_or_else(|| ConvertError::BadDateTime { value: dt.date_time.clone() })
        }
        _ => to_utc(dt),
    }
}

/// A `DateTimeOffset` (`originalStart`, `2019-04-15T20:30:00Z`).
fn parse_offset_date_time(s: &str) -> Option<DateTime<Utc>> {
    match parse_local(s).ok()? {
        Err(instant) => Some(instant),
        Ok(naive) => Some(naive.and_utc()),
    }
}

/// An instant as a UTC `dateTimeTimeZone`.
pub fn utc_date_time(t: DateTime<Utc>) -> DateTimeTimeZone {
    DateTimeTimeZone { date_time: t.format("%Y-%m-%dT%H:%M:%S").to_string(), time_zone: Some("UTC".into()) }
}

/// An all-day bound as Graph requires it: midnight of the day in the event's zone, written
/// in that zone (UTC if the zone is unknown).
/// An instant as local time in the event's own zone, so Exchange records the zone the event
/// was made in (`originalStartTimeZone`); UTC when the zone is unknown.
fn zoned_date_time(t: DateTime<Utc>, zone: &str) -> DateTimeTimeZone {
    match zones::resolve(zone).and_then(|tz| Some((tz, local_time(t, tz)?))) {
        Some((_, local)) if !zone.eq_ignore_ascii_case("utc") => DateTimeTimeZone {
            date_time: local.format("%Y-%m-%dT%H:%M:%S").to_string(),
            time_zone: Some(zone.to_string()),
        },
        _ => utc_date_time(t),
    }
}

/// `t` as wall-clock time in `tz`; `None` where that leaves chrono's range (chrono's own
/// `naive_local` panics there).
fn local_time(t: DateTime<Utc>, tz: Tz) -> Option<NaiveDateTime> {
    let offset = tz.offset_from_utc_datetime(&t.naive_utc()).fix();
    t.naive_utc().checked_add_signed(chrono::Duration::seconds(offset.local_minus_utc().into()))
}

fn all_day_date_time(t: DateTime<Utc>, zone: &str) -> DateTimeTimeZone {
    match zones::resolve(zone).and_then(|tz| local_time(t, tz)) {
        Some(local) => {
            let day = if local.time() == NaiveTime::MIN || local.hour() < 12 {
                local.date()
            } else {
                // Not midnight: round to the nearest day boundary.
                local.date().succ_opt().unwrap_or(local.date())
            };
            DateTimeTimeZone {
                date_time: format!("{}T00:00:00", day.format("%Y-%m-%d")),
                time_zone: Some(zone.to_string()),
            }
        }
        None => DateTimeTimeZone {
            date_time: format!("{}T00:00:00", t.date_naive().format("%Y-%m-%d")),
            time_zone: Some("UTC".into()),
        },
    }
}

/// The wire event for an update (`PATCH`): the whole content calbridge owns.
pub fn to_wire(data: &EventData) -> types::Event {
    let (start, end) = if data.all_day {
        (all_day_date_time(data.start, &data.time_zone), all_day_date_time(data.end, &data.time_zone))
    } else {
        (zoned_date_time(data.start, &data.time_zone), zoned_date_time(data.end, &data.time_zone))
    };
    types::Event {
        subject: Some(data.subject.clone()),
        body: Some(types::ItemBody { content_type: Some("text".into()), content: Some(data.body.clone()) }),
        start: Some(start),
        end: Some(end),
        location: Some(types::Location { display_name: Some(data.location.clone()), ..Default::default() }),
        attendees: Some(
            data.attendees
                .iter()
                .map(|a| types::Attendee {
                    kind: Some(attendee_role_wire(a.role).into()),
                    status: None,
                    email_address: Some(types::EmailAddress {
                        name: (!a.name.is_empty()).then(|| a.name.clone()),
                        address: Some(a.email.clone()),
                    }),
                })
                .collect(),
        ),
        show_as: Some(show_as_wire(data.show_as).into()),
        sensitivity: Some(sensitivity_wire(data.sensitivity).into()),
        is_all_day: Some(data.all_day),
        recurrence: match (&data.series.kind, &data.series.recurrence) {
            (SeriesKind::Master, Some(rule)) => Some(crate::recurrence::to_wire(rule, &data.time_zone)),
            _ => None,
        },
        ..Default::default()
    }
}

/// The wire event for a create (`POST`): [`to_wire`] plus the provenance tag, as
/// `transactionId` (Graph's idempotency key, and visible in delta) and as the extended
/// property.
pub fn to_wire_create(data: &EventData, provenance: &Provenance) -> types::Event {
    let tag = provenance.encode();
    types::Event {
        transaction_id: Some(tag.clone()),
        single_value_extended_properties: Some(vec![types::SingleValueLegacyExtendedProperty {
            id: PROVENANCE_PROPERTY_ID.to_string(),
            value: Some(tag),
        }]),
        ..to_wire(data)
    }
}

/// A getSchedule item as (start, end, free/busy status).
pub fn schedule_item(item: &types::ScheduleItem) -> Result<(DateTime<Utc>, DateTime<Utc>, ShowAs), ConvertError> {
    let missing = |field| ConvertError::MissingField { id: "scheduleItem".into(), field };
    let start = to_utc(item.start.as_ref().ok_or_else(|| missing("start"))?)?;
    let end = to_utc(item.end.as_ref().ok_or_else(|| missing("end"))?)?;
    Ok((start, end, item.status.as_deref().map(show_as).unwrap_or(ShowAs::Busy)))
}

/// Text: `\r\n` → `\n`, trailing whitespace dropped.
fn normalize_text(s: &str) -> String {
    s.replace("\r\n", "\n").trim_end().to_string()
}

/// The text of an HTML body: `<head>`, `<style>` and `<script>` dropped, comments and tags
/// removed (block ends and `<br>` become line breaks), common entities decoded, whitespace
/// collapsed.
///
/// Any input is accepted (a body comes from the network): the text is only ever cut right
/// before or after an ASCII `<`, `>`, `&` or `;`, or at a char boundary, never inside a
/// multi-byte character. A `<` that does not open a tag (`a < b`, `<é`) is text, as in a
/// browser; a tag that never closes ends the text.
pub fn html_to_text(html: &str) -> String {
    let mut out = String::with_capacity(html.len());
    let mut rest = html;
    loop {
        let mut chars = rest.chars();
        let Some(c) = chars.next() else { break };
        if let Some(after) = rest.strip_prefix("<!--") {
            rest = after.split_once("-->").map_or("", |(_, r)| r);
        } else if let Some(after) = rest.strip_prefix('<').filter(|a| opens_tag(a)) {
            let (tag, remaining) = after.split_once('>').unwrap_or((after, ""));
            let closing = tag.starts_with('/');
            let name = tag
                .trim_start_matches('/')
                .chars()
                .take_while(char::is_ascii_alphanumeric)
                .map(|c| c.to_ascii_lowercase())
                .collect::<String>();
            if !closing && matches!(name.as_str(), "head" | "style" | "script") {
                rest = after_closing_tag(remaining, &name);
                continue;
            }
            if matches!(name.as_str(), "br" | "p" | "div" | "tr" | "li" | "h1" | "h2" | "h3" | "h4" | "table") {
                out.push('\n');
            }
            rest = remaining;
        } else if let Some((decoded, remaining)) = entity(rest) {
            out.push(decoded);
            rest = remaining;
        } else {
            out.push(c);
            rest = chars.as_str();
        }
    }
    let mut lines: Vec<String> = Vec::new();
    for line in out.replace("\r\n", "\n").split('\n') {
        let collapsed = line.split_whitespace().collect::<Vec<_>>().join(" ");
        if collapsed.is_empty() && lines.last().is_none_or(|l| l.is_empty()) {
            continue;
        }
        lines.push(collapsed);
    }
    while lines.last().is_some_and(|l| l.is_empty()) {
        lines.pop();
    }
    lines.join("\n")
}

/// Whether the text after a `<` starts a tag (`<p`, `</p`, `<!DOCTYPE`, `<?xml`); anything
/// else is a literal `<`.
fn opens_tag(after: &str) -> bool {
    after.chars().next().is_some_and(|c| c.is_ascii_alphabetic() || matches!(c, '/' | '!' | '?'))
}

/// What follows `</{name}…>` in `s` (ASCII case-insensitive), or `""` if it never closes.
fn after_closing_tag<'a>(s: &'a str, name: &str) -> &'a str {
    let close = format!("</{name}");
    for (i, _) in s.match_indices('<') {
        let matches = s.as_bytes().get(i..i + close.len()).is_some_and(|b| b.eq_ignore_ascii_case(close.as_bytes()));
        if matches {
            // `i` is the index of an ASCII `<`, so a char boundary.
            return s.get(i..).and_then(|t| t.split_once('>')).map_or("", |(_, r)| r);
        }
    }
    ""
}

/// A character entity at the start of `s` (`&amp;`, `&#233;`, `&#xE9;`) and what follows
/// it; `None` if `s` does not start with one calbridge knows.
fn entity(s: &str) -> Option<(char, &str)> {
    let after = s.strip_prefix('&')?;
    // Entity names calbridge decodes are short; `;` is ASCII, so the split is on a boundary.
    let semi = after.bytes().take(10).position(|b| b == b';')?;
    let (name, remaining) = (after.get(..semi)?, after.get(semi + 1..)?);
    let c = match name {
        "nbsp" => ' ',
        "amp" => '&',
        "lt" => '<',
        "gt" => '>',
        "quot" => '"',
        "apos" | "#39" => '\'',
        n => {
            let code = match n.strip_prefix("#x").or_else(|| n.strip_prefix("#X")) {
                Some(hex) => u32::from_str_radix(hex, 16).ok()?,
                None => n.strip_prefix('#')?.parse().ok()?,
            };
            char::from_u32(code)?
        }
    };
    Some((c, remaining))
}

#[cfg(test)]
mod tests {
    /// The fast reading of Graph's date-times agrees with chrono's format, and leaves every
    /// other form to it.
    #[test]
    fn plain_date_times_read_as_chrono_reads_them() {
        let chrono = |v: &str| NaiveDateTime::parse_from_str(v, "%Y-%m-%dT%H:%M:%S%.f").ok();
        for v in [
            "2026-03-01T09:00:00",
            "2026-03-01T09:00:00.0000000",
            "2026-03-01T23:59:59.9999999",
            "2024-02-29T12:30:15.5",
            "2026-12-31T00:00:00.123456789",
            "0001-01-01T00:00:00.0",
            "9999-12-31T23:59:59.999999999",
        ] {
            assert_eq!(parse_plain(v), chrono(v), "{v}");
            assert!(parse_plain(v).is_some(), "{v}");
        }
        for v in [
            "2026-02-30T09:00:00",
            "2026-13-01T09:00:00",
            "2026-03-01T24:00:00",
            "2026-03-01T09:60:00",
            "2026-03-01T09:00:00.",
            "2026-03-01T09:00:00.1234567890",
            "2026-03-01T09:00:00Z",
            "2026-03-01T09:00:00+01:00",
            "2026-03-01 09:00:00",
            "2026-3-01T09:00:00",
            "+2026-03-01T09:00:00",
            "2026-03-01T09:00",
            "2026-03-01T0a:00:00",
        ] {
            assert_eq!(parse_plain(v), None, "{v}");
        }
        // What the fast path leaves is still read by the formats.
        assert!(parse_local("2026-03-01T09:00").unwrap().is_ok());
        assert!(parse_local("2026-03-01T09:00:00Z").unwrap().is_err());
        assert!(parse_local("0000-03-01T09:00:00").is_err(), "year 0 is outside the years allowed");
    }

    use super::*;

    #[test]
    fn a_series_master_reads_and_writes_its_rule() {
        let ev: types::Event = serde_json::from_value(serde_json::json!({
            "id": "AAMkMaster",
            "type": "seriesMaster",
            "subject": "Weekly lab",
            "start": {"dateTime": "2026-12-07T09:00:00.0000000", "timeZone": "UTC"},
            "end": {"dateTime": "2026-12-07T10:00:00.0000000", "timeZone": "UTC"},
            "recurrence": {
                "pattern": {"type": "weekly", "interval": 1, "daysOfWeek": ["monday"], "firstDayOfWeek": "monday"},
                "range": {"type": "numbered", "startDate": "2026-12-07", "numberOfOccurrences": 5}
            }
        }))
        .unwrap();
        let data = event_data(&ev).unwrap();
        assert_eq!(data.series.kind, SeriesKind::Master);
        let rule = data.series.recurrence.clone().expect("the rule is read");
        assert_eq!(rule.range, calbridge_core::recurrence::Range::Numbered { count: 5 });
        let wire = to_wire(&data);
        assert_eq!(crate::recurrence::from_wire(wire.recurrence.as_ref().unwrap()).unwrap(), *rule);
        // A single event never sends a recurrence.
        assert!(to_wire(&EventData::new("x", data.start, data.end)).recurrence.is_none());
    }
    use crate::test_support::example;
    use calbridge_core::model::EventId;

    fn wire(json: &str) -> types::Event {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn dates_with_seven_fractional_digits_and_any_zone() {
        let utc = DateTimeTimeZone { date_time: "2026-11-23T09:00:00.0000000".into(), time_zone: Some("UTC".into()) };
        assert_eq!(to_utc(&utc).unwrap(), Utc.with_ymd_and_hms(2026, 11, 23, 9, 0, 0).unwrap());
        let berlin = DateTimeTimeZone {
            date_time: "2026-07-01T09:00:00.0000000".into(),
            time_zone: Some("Europe/Berlin".into()),
        };
        assert_eq!(to_utc(&berlin).unwrap(), Utc.with_ymd_and_hms(2026, 7, 1, 7, 0, 0).unwrap());
        let pacific = DateTimeTimeZone {
            date_time: "2017-04-15T11:00:00.0000000".into(),
            time_zone: Some("Pacific Standard Time".into()),
        };
        assert_eq!(to_utc(&pacific).unwrap(), Utc.with_ymd_and_hms(2017, 4, 15, 18, 0, 0).unwrap());
        let no_fraction = DateTimeTimeZone { date_time: "2026-01-01T00:00:00".into(), time_zone: None };
        assert_eq!(to_utc(&no_fraction).unwrap(), Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap());
        let offset = DateTimeTimeZone { date_time: "2026-01-01T10:00:00+02:00".into(), time_zone: Some("x".into()) };
        assert_eq!(to_utc(&offset).unwrap(), Utc.with_ymd_and_hms(2026, 1, 1, 8, 0, 0).unwrap());
        // In the spring-forward gap: moved past it. In the autumn overlap: the earlier.
        let gap = DateTimeTimeZone { date_time: "2026-03-29T02:30:00".into(), time_zone: Some("Europe/Berlin".into()) };
        assert_eq!(to_utc(&gap).unwrap(), Utc.with_ymd_and_hms(2026, 3, 29, 1, 30, 0).unwrap());
        let fold =
            DateTimeTimeZone { date_time: "2026-10-25T02:30:00".into(), time_zone: Some("Europe/Berlin".into()) };
        assert_eq!(to_utc(&fold).unwrap(), Utc.with_ymd_and_hms(2026, 10, 25, 0, 30, 0).unwrap());
        let bad = DateTimeTimeZone { date_time: "datetime-value".into(), time_zone: Some("UTC".into()) };
        assert!(matches!(to_utc(&bad), Err(ConvertError::BadDateTime { .. })));
        let unknown =
            DateTimeTimeZone { date_time: "2026-01-01T00:00:00".into(), time_zone: Some("Mars/Olympus".into()) };
        assert!(matches!(to_utc(&unknown), Err(ConvertError::UnknownTimeZone(_))));
    }

    #[test]
    fn enums_never_panic_on_unknown_strings() {
        assert_eq!(show_as("workingElsewhere"), ShowAs::WorkingElsewhere);
        assert_eq!(show_as("busyy"), ShowAs::Unknown);
        assert_eq!(sensitivity("secret"), Sensitivity::Normal);
        assert_eq!(attendee_role("Required"), AttendeeRole::Required);
        assert_eq!(attendee_role("chair"), AttendeeRole::Required);
        assert_eq!(response("tentativelyAccepted"), ResponseStatus::TentativelyAccepted);
        assert_eq!(response("response-value"), ResponseStatus::None);
        assert_eq!(response(""), ResponseStatus::None);
    }

    #[test]
    fn provenance_from_the_property_or_the_transaction_id() {
        let with_property = wire(
            r#"{"id":"A","transactionId":"calbridge:other:x",
                "singleValueExtendedProperties":[{"id":"String {00020329-0000-0000-c000-000000000046} Name calbridgeProvenance","value":"calbridge:inst-1:ev-1"}]}"#,
        );
        assert_eq!(
            provenance(&with_property),
            Some(Provenance { installation: "inst-1".into(), local_id: EventId::new("ev-1") })
        );
        let from_delta = wire(r#"{"id":"A","transactionId":"calbridge:inst-1:ev-2"}"#);
        assert_eq!(provenance(&from_delta).unwrap().local_id, EventId::new("ev-2"));
        let foreign = wire(r#"{"id":"A","transactionId":"7E163156-7762-4BEB-A1C6-729EA81755A7"}"#);
        assert_eq!(provenance(&foreign), None);
    }

    #[test]
    fn version_is_the_etag_or_the_change_key() {
        assert_eq!(version(&wire(r#"{"@odata.etag":"W/\"abc\"","changeKey":"def"}"#)), "W/\"abc\"");
        assert_eq!(version(&wire(r#"{"changeKey":"def"}"#)), "W/\"def\"");
    }

    #[test]
    fn series_identity() {
        let occ = wire(
            r#"{"id":"o1","type":"occurrence","seriesMasterId":"M","start":{"dateTime":"2019-04-08T20:30:00.0000000","timeZone":"UTC"},"end":{"dateTime":"2019-04-08T21:00:00.0000000","timeZone":"UTC"}}"#,
        );
        let s = event_data(&occ).unwrap().series;
        assert_eq!(s.kind, SeriesKind::Occurrence);
        assert_eq!(s.master_id.as_deref(), Some("M"));
        assert_eq!(s.original_start, Some(Utc.with_ymd_and_hms(2019, 4, 8, 20, 30, 0).unwrap()));
        let exc = wire(
            r#"{"id":"e1","type":"exception","seriesMasterId":"M","originalStart":"2019-04-15T20:30:00Z","start":{"dateTime":"2019-04-16T20:30:00.0000000","timeZone":"UTC"},"end":{"dateTime":"2019-04-16T21:00:00.0000000","timeZone":"UTC"}}"#,
        );
        let s = event_data(&exc).unwrap().series;
        assert_eq!(s.kind, SeriesKind::Exception);
        assert_eq!(s.original_start, Some(Utc.with_ymd_and_hms(2019, 4, 15, 20, 30, 0).unwrap()));
    }

    #[test]
    fn all_day_events_are_days_in_their_own_zone() {
        // Read with Prefer UTC: midnight "UTC" is the floating day; it is midnight in Berlin.
        let ev = wire(
            r#"{"id":"d","isAllDay":true,"originalStartTimeZone":"W. Europe Standard Time",
                "start":{"dateTime":"2026-07-01T00:00:00.0000000","timeZone":"UTC"},
                "end":{"dateTime":"2026-07-02T00:00:00.0000000","timeZone":"UTC"}}"#,
        );
        let d = event_data(&ev).unwrap();
        assert!(d.all_day);
        assert_eq!(d.start, Utc.with_ymd_and_hms(2026, 6, 30, 22, 0, 0).unwrap());
        assert_eq!(d.end, Utc.with_ymd_and_hms(2026, 7, 1, 22, 0, 0).unwrap());
        assert_eq!(d.time_zone, "W. Europe Standard Time");
        // Written back: midnight dates in that zone.
        let w = to_wire(&d);
        assert_eq!(
            w.start,
            Some(DateTimeTimeZone {
                date_time: "2026-07-01T00:00:00".into(),
                time_zone: Some("W. Europe Standard Time".into())
            })
        );
        assert_eq!(w.end.as_ref().unwrap().date_time, "2026-07-02T00:00:00");
        // Graph echoes the zone it was given as originalStartTimeZone; the days come back.
        let echoed = types::Event {
            id: Some("d".into()),
            original_start_time_zone: Some("W. Europe Standard Time".into()),
            ..w
        };
        let back = event_data(&echoed).unwrap();
        assert_eq!((back.start, back.end), (d.start, d.end));
    }

    #[test]
    fn html_bodies_become_text() {
        assert_eq!(
            html_to_text("<html><head><meta http-equiv=\"Content-Type\"><style>p{}</style></head><body>Does late morning work for you?</body></html>"),
            "Does late morning work for you?"
        );
        assert_eq!(
            html_to_text("<html>\r\n<head>\r\n</head>\r\n<body>\r\nLet's kick-start &amp; plan!<br>Line&nbsp;2\r\n</body>\r\n</html>\r\n"),
            "Let's kick-start & plan!\nLine 2"
        );
        assert_eq!(html_to_text("a &unknown; b & c &#233;"), "a &unknown; b & c é");
    }

    #[test]
    fn html_to_text_takes_any_body_without_panicking() {
        // Bodies that ended a scan inside a multi-byte character.
        assert_eq!(html_to_text("‹é"), "‹é");
        assert_eq!(html_to_text("<é"), "<é");
        assert_eq!(html_to_text("Preis <€5"), "Preis <€5");
        assert_eq!(html_to_text("&é"), "&é");
        assert_eq!(html_to_text("&#x;é"), "&#x;é");
        // A tag that never closes ends the text; a lone `<` or `&` is text.
        assert_eq!(html_to_text("before<p class=\"é"), "before");
        assert_eq!(html_to_text("x<"), "x<");
        assert_eq!(html_to_text("1 < 2 &lt; 3 & 4"), "1 < 2 < 3 & 4");
        assert_eq!(html_to_text("<style>p{}"), "");
        assert_eq!(html_to_text("<script>x</scrïpt>é"), "");
        assert_eq!(html_to_text("<SCRIPT>x</Script >after"), "after");
        assert_eq!(html_to_text("<!-- a > b -->text<!-- unterminated é"), "text");
        assert_eq!(html_to_text(""), "");
        assert_eq!(html_to_text("<"), "<");
        assert_eq!(html_to_text("&"), "&");
        // Multi-byte text and entities survive.
        assert_eq!(
            html_to_text("<p>Grüße aus Köln — 東京 ‹ok› 🎉</p><p>zweite&nbsp;Zeile &#x1F389;&#233;&eacute;</p>"),
            "Grüße aus Köln — 東京 ‹ok› 🎉\n\nzweite Zeile 🎉é&eacute;"
        );
        // Entities that are no characters stay as written.
        assert_eq!(
            html_to_text("&#xD800; &#1114112; &#99999999999; &#xZZ;"),
            "&#xD800; &#1114112; &#99999999999; &#xZZ;"
        );
        // Through a whole event, too.
        let ev = wire(
            r#"{"id":"h","body":{"contentType":"html","content":"<b>é‹<é"},
                "start":{"dateTime":"2026-01-01T09:00:00","timeZone":"UTC"},
                "end":{"dateTime":"2026-01-01T10:00:00","timeZone":"UTC"}}"#,
        );
        assert_eq!(event_data(&ev).unwrap().body, "é‹<é");
    }

    #[test]
    fn html_to_text_never_panics_on_generated_bodies() {
        // Every string of up to 3 pieces, then 600 longer ones from a fixed-seed generator.
        const PIECES: &[&str] = &[
            "<", ">", "&", ";", "é", "‹", "<p", "</", "<style>", "</style", "<!--", "-->", "&#x", "&#", "&amp;", "a",
            " ", "\r\n", "/", "!", "🎉",
        ];
        let check = |s: &str| {
            let text = html_to_text(s);
            assert!(!text.ends_with('\n') && !text.contains("\r\n"), "{s:?} -> {text:?}");
        };
        for a in PIECES {
            check(a);
            for b in PIECES {
                check(&format!("{a}{b}"));
                for c in PIECES {
                    check(&format!("{a}{b}{c}"));
                }
            }
        }
        let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut next = || {
            state = state.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
            (state >> 33) as usize
        };
        for _ in 0..600 {
            let len = next() % 40;
            let s: String = (0..len).map(|_| PIECES[next() % PIECES.len()]).collect();
            check(&s);
        }
    }

    #[test]
    fn absurd_dates_are_errors_not_panics() {
        // `+262142-12-31T23:30:00` in `Etc/GMT+12` overflowed chrono's range (a panic).
        let values =
            ["+262142-12-31T23:30:00", "-262143-01-01T00:30:00", "-262144-01-01T00:30:00", "+10000-01-01T00:00:00"];
        for value in values.into_iter().chain(["0000-01-01T00:00:00", "0000-12-31T23:00:00+00:00"]) {
            for zone in ["UTC", "Etc/GMT+12", "Etc/GMT-14", "Pacific/Kiritimati"] {
                let dt = DateTimeTimeZone { date_time: value.into(), time_zone: Some(zone.into()) };
                assert!(matches!(to_utc(&dt), Err(ConvertError::BadDateTime { .. })), "{value} {zone}");
                let ev = types::Event {
                    id: Some("x".into()),
                    is_all_day: Some(true),
                    original_start_time_zone: Some(zone.into()),
                    start: Some(dt.clone()),
                    end: Some(dt),
                    original_start: Some(value.into()),
                    ..Default::default()
                };
                assert!(remote_item(&ev).is_err(), "{value} {zone}");
            }
        }
        // At the edges of the accepted years: an instant or an error, whatever the zone.
        let dt = |v: &str, z: &str| DateTimeTimeZone { date_time: v.into(), time_zone: Some(z.into()) };
        assert!(to_utc(&dt("9999-12-31T12:00:00", "Etc/GMT-14")).is_ok());
        assert!(to_utc(&dt("9999-12-31T23:00:00", "Etc/GMT+12")).is_err());
        assert!(to_utc(&dt("0001-01-01T12:00:00", "Etc/GMT+12")).is_ok());
        assert!(to_utc(&dt("0001-01-01T00:00:00", "Etc/GMT-14")).is_err());
        // Writing never panics either, even for instants at the ends of chrono's range
        // (whose wall-clock time in a zone does not exist): those are written in UTC.
        for t in
            [DateTime::<Utc>::MAX_UTC, DateTime::<Utc>::MIN_UTC, Utc.with_ymd_and_hms(9999, 12, 31, 23, 0, 0).unwrap()]
        {
            for zone in ["Etc/GMT+12", "Etc/GMT-14", "Europe/Berlin", "UTC"] {
                let mut d = EventData::new("x", t, t);
                d.time_zone = zone.into();
                assert!(to_wire(&d).start.is_some());
                d.all_day = true;
                assert!(to_wire(&d).start.is_some());
            }
        }
        let mut d = EventData::new("x", DateTime::<Utc>::MAX_UTC, DateTime::<Utc>::MAX_UTC);
        d.time_zone = "Etc/GMT-14".into();
        assert_eq!(to_wire(&d).start.unwrap().time_zone.as_deref(), Some("UTC"));
    }

    fn sample() -> EventData {
        let s = Utc.with_ymd_and_hms(2026, 11, 23, 9, 0, 0).unwrap();
        let mut d = EventData::new("Class: Rust basics", s, s + chrono::Duration::hours(2));
        d.body = "Bring a laptop".into();
        d.location = "Room 101".into();
        d.time_zone = "Europe/Berlin".into();
        d.show_as = ShowAs::Tentative;
        d.sensitivity = Sensitivity::Private;
        d.attendees = vec![
            Attendee {
                email: "ann@contoso.com".into(),
                name: "Ann".into(),
                role: AttendeeRole::Required,
                response: ResponseStatus::None,
            },
            Attendee {
                email: "room101@contoso.com".into(),
                name: "Room 101".into(),
                role: AttendeeRole::Resource,
                response: ResponseStatus::None,
            },
        ];
        d
    }

    #[test]
    fn create_body_carries_provenance_twice() {
        let p = Provenance { installation: "inst-1".into(), local_id: EventId::new("0b6c3d3e") };
        let w = to_wire_create(&sample(), &p);
        insta::assert_json_snapshot!("create_body", w);
        let back = serde_json::to_value(&w).unwrap();
        assert_eq!(back["transactionId"], "calbridge:inst-1:0b6c3d3e");
        // Sent in the event's own zone, so Exchange keeps it (09:00 UTC is 10:00 in Berlin).
        assert_eq!(back["start"], serde_json::json!({"dateTime": "2026-11-23T10:00:00", "timeZone": "Europe/Berlin"}));
        assert_eq!(back["attendees"][1]["type"], "resource");
        // Read back as Graph would answer it (plus Graph's own fields), the content survives.
        let mut answered = w.clone();
        answered.id = Some("AAMk1".into());
        answered.odata_etag = Some("W/\"v1\"".into());
        let item = remote_item(&answered).unwrap();
        assert_eq!(item.provenance, Some(p));
        assert_eq!(item.data, sample());
    }

    #[test]
    fn documented_create_response_as_core_values() {
        let Some(doc) = example("user-post-events/01-response.http") else { return };
        let ev: types::Event = serde_json::from_str(&doc.body).unwrap();
        let item = remote_item(&ev).unwrap();
        assert_eq!(item.data.start, Utc.with_ymd_and_hms(2017, 4, 15, 18, 0, 0).unwrap());
        assert_eq!(item.data.body, "Does late morning work for you?");
        insta::assert_debug_snapshot!("user_post_events_01_response", item);
    }

    #[test]
    fn documented_instances_as_core_values() {
        let Some(doc) = example("event-list-instances/01-response.http") else { return };
        let c: types::Collection<types::Event> = serde_json::from_str(&doc.body).unwrap();
        let items: Vec<RemoteItem> = c.value.iter().map(|e| remote_item(e).unwrap()).collect();
        insta::assert_json_snapshot!("event_list_instances_01_response", items);
    }

    #[test]
    fn documented_delta_round_as_core_values() {
        let Some(doc) = example("delta-query-events/04-response.http") else { return };
        let c: types::Collection<types::Event> = serde_json::from_str(&doc.body).unwrap();
        let changes: Vec<RemoteChange> = c.value.iter().map(|e| remote_change(e).unwrap()).collect();
        assert!(matches!(&changes[0], RemoteChange::Removed { remote_id } if remote_id.starts_with("AAMkADk0MGFk")));
        insta::assert_json_snapshot!("delta_query_events_04_response", changes);
    }

    #[test]
    fn documented_event_get_as_core_values() {
        let Some(doc) = example("event-get/02-response.http") else { return };
        let ev: types::Event = serde_json::from_str(&doc.body).unwrap();
        let data = event_data(&ev).unwrap();
        assert!(data.body.starts_with("New Product Regulations Strategy Online Touchpoint Meeting"));
        assert_eq!(data.attendees.len(), 2);
        insta::assert_debug_snapshot!("event_get_02_response", data);
    }

    #[test]
    fn placeholder_items_are_errors_not_panics() {
        let Some(doc) = example("event-delta/01-response.http") else { return };
        let c: types::Collection<types::Event> = serde_json::from_str(&doc.body).unwrap();
        assert_eq!(remote_change(&c.value[0]), Err(ConvertError::MissingId));
        let no_dates = wire(r#"{"id":"x"}"#);
        assert!(matches!(remote_item(&no_dates), Err(ConvertError::MissingField { field: "start", .. })));
    }

    #[test]
    fn schedule_items() {
        let Some(doc) = example("calendar-getschedule/01-response.http") else { return };
        let c: types::Collection<types::ScheduleInformation> = serde_json::from_str(&doc.body).unwrap();
        let item = &c.value[0].schedule_items.as_ref().unwrap()[0];
        let (s, e, st) = schedule_item(item).unwrap();
        // 12:00-14:00 Pacific Daylight Time on 2019-03-15.
        assert_eq!(s, Utc.with_ymd_and_hms(2019, 3, 15, 19, 0, 0).unwrap());
        assert_eq!(e, Utc.with_ymd_and_hms(2019, 3, 15, 21, 0, 0).unwrap());
        assert_eq!(st, ShowAs::Busy);
    }
}
