//! The simulator keeps events in Graph's shape (`state.rs`); its EWS face shows them as EWS
//! calendar items. One store, two faces: an item has the same id (Graph writes it URL-safe,
//! EWS in standard base64, as Exchange does), the same change key and the same content.

use chrono::{DateTime, Utc};

use crate::ews_wire::types::{Attendee, Body, EmailAddress, ExtendedFieldUri, ExtendedProperty, Item, ItemId};
use crate::wire;

/// Graph (REST) id → EWS id: the same bytes, standard base64.
pub fn ews_id(graph_id: &str) -> String {
    graph_id.replace('-', "+").replace('_', "/")
}

/// EWS id → Graph (REST) id.
pub fn graph_id(ews_id: &str) -> String {
    ews_id.trim().replace('+', "-").replace('/', "_")
}

pub fn ews_time(t: DateTime<Utc>) -> String {
    let mut out = String::with_capacity(20);
    crate::tz::push_seconds(&mut out, t.naive_utc());
    out.push('Z');
    out
}

fn title(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_ascii_uppercase().to_string() + c.as_str(),
        None => String::new(),
    }
}

pub fn free_busy(show_as: &str) -> &'static str {
    match show_as {
        "free" => "Free",
        "tentative" => "Tentative",
        "oof" => "OOF",
        "workingElsewhere" => "WorkingElsewhere",
        "unknown" => "NoData",
        _ => "Busy",
    }
}

pub fn response_type(graph: Option<&str>) -> &'static str {
    match graph.unwrap_or("none") {
        "organizer" => "Organizer",
        "accepted" => "Accept",
        "tentativelyAccepted" => "Tentative",
        "declined" => "Decline",
        "notResponded" => "NoResponseReceived",
        _ => "Unknown",
    }
}

fn mailbox(r: &wire::Recipient) -> EmailAddress {
    let e = r.email_address.as_ref();
    EmailAddress::smtp(e.and_then(|e| e.name.as_deref()), e.and_then(|e| e.address.as_deref()).unwrap_or_default())
}

/// Graph's `String {guid} Name X` extended property id → EWS `ExtendedFieldURI`.
fn extended(p: &wire::SingleValueLegacyExtendedProperty) -> Option<ExtendedProperty> {
    let mut parts = p.id.splitn(4, ' ');
    let (ty, set, kind, name) = (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    if !kind.eq_ignore_ascii_case("Name") {
        return None;
    }
    Some(ExtendedProperty {
        uri: ExtendedFieldUri {
            property_set_id: Some(set.trim_matches(['{', '}']).to_string()),
            property_name: Some(name.to_string()),
            property_type: ty.to_string(),
            ..Default::default()
        },
        value: p.value.clone(),
        values: None,
    })
}

/// A Graph event as the simulator shows it (an instance: single, occurrence, exception or
/// master; [`crate::state::event_typed`], [`crate::state::instance_typed`]) as an EWS
/// `t:CalendarItem` with every field the simulator knows. `text_body`: `BodyType` Text.
pub fn calendar_item(
    ev: wire::Event,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
    folder_id: &str,
    text_body: bool,
) -> Item {
    let kind = ev.kind.as_deref().unwrap_or("singleInstance");
    let attendees = ev.attendees.clone().unwrap_or_default();
    let of_type = |t: &str| -> Option<Vec<Attendee>> {
        let list: Vec<Attendee> = attendees
            .iter()
            .filter(|a| a.kind.as_deref().unwrap_or("required") == t)
            .map(|a| Attendee {
                mailbox: EmailAddress::smtp(
                    a.email_address.as_ref().and_then(|e| e.name.as_deref()),
                    a.email_address.as_ref().and_then(|e| e.address.as_deref()).unwrap_or_default(),
                ),
                response_type: Some(response_type(a.status.as_ref().and_then(|s| s.response.as_deref())).into()),
                last_response_time: None,
            })
            .collect();
        (!list.is_empty()).then_some(list)
    };
    let body = ev.body.as_ref().map(|b| {
        let html = b.content.clone().unwrap_or_default();
        let is_html = b.content_type.as_deref().is_some_and(|t| t.eq_ignore_ascii_case("html"));
        if text_body && is_html {
            Body { body_type: "Text".into(), text: crate::state::html_to_text(&html) }
        } else {
            Body { body_type: if is_html { "HTML".into() } else { "Text".into() }, text: html }
        }
    });
    let zone = ev.original_start_time_zone.as_deref().map(crate::tz::windows_name);
    Item {
        item_id: ev.id.as_deref().map(|id| ItemId::new(ews_id(id), ev.change_key.clone())),
        parent_folder_id: Some(ItemId::new(ews_id(folder_id), None)),
        item_class: Some("IPM.Appointment".into()),
        subject: Some(ev.subject.clone().unwrap_or_default()),
        sensitivity: Some(title(ev.sensitivity.as_deref().unwrap_or("normal"))),
        body,
        categories: ev.categories.clone().filter(|c| !c.is_empty()),
        importance: Some(title(ev.importance.as_deref().unwrap_or("normal"))),
        date_time_created: ev.created_date_time.as_deref().and_then(reformat),
        reminder_is_set: ev.is_reminder_on,
        reminder_minutes_before_start: ev.reminder_minutes_before_start,
        has_attachments: Some(ev.has_attachments.unwrap_or(false)),
        extended_properties: ev.single_value_extended_properties.iter().flatten().filter_map(extended).collect(),
        last_modified_time: ev.last_modified_date_time.as_deref().and_then(reformat),
        uid: ev.i_cal_u_id.clone(),
        start: Some(ews_time(start)),
        end: Some(ews_time(end)),
        original_start: ev.original_start.as_deref().and_then(reformat),
        is_all_day_event: Some(ev.is_all_day.unwrap_or(false)),
        legacy_free_busy_status: Some(free_busy(ev.show_as.as_deref().unwrap_or("busy")).into()),
        location: Some(ev.location.as_ref().and_then(|l| l.display_name.clone()).unwrap_or_default()),
        is_meeting: Some(!attendees.is_empty()),
        is_cancelled: Some(ev.is_cancelled.unwrap_or(false)),
        is_recurring: Some(kind != "singleInstance"),
        meeting_request_was_sent: Some(!attendees.is_empty() && ev.is_organizer.unwrap_or(false)),
        is_response_requested: ev.response_requested,
        calendar_item_type: Some(
            match kind {
                "occurrence" => "Occurrence",
                "exception" => "Exception",
                "seriesMaster" => "RecurringMaster",
                _ => "Single",
            }
            .into(),
        ),
        my_response_type: Some(response_type(ev.response_status.as_ref().and_then(|r| r.response.as_deref())).into()),
        organizer: ev.organizer.as_ref().map(mailbox),
        required_attendees: of_type("required"),
        optional_attendees: of_type("optional"),
        resources: of_type("resource"),
        start_time_zone: zone.clone().map(crate::ews_wire::types::TimeZoneRef::id),
        end_time_zone: zone.map(crate::ews_wire::types::TimeZoneRef::id),
        is_online_meeting: Some(ev.is_online_meeting.unwrap_or(false)),
        is_organizer: ev.is_organizer,
        ..Item::calendar()
    }
}

/// Graph's `2026-12-07T09:00:00.0000000Z` → EWS's `2026-12-07T09:00:00Z`.
fn reformat(s: &str) -> Option<String> {
    crate::tz::parse_query_instant(s).map(ews_time).or_else(|| Some(s.to_string()))
}

/// `2026-12-07T09:00:00Z` (or with an offset) → Graph's `{dateTime, timeZone: "UTC"}`; a time
/// without offset is read in `zone` (a Windows or IANA name), else UTC.
fn graph_time(what: &'static str, s: &str, zone: Option<&str>) -> Result<serde_json::Value, super::ItemError> {
    let s = s.trim();
    let utc = match DateTime::parse_from_rfc3339(s) {
        Ok(t) => t.with_timezone(&Utc),
        Err(_) => {
            let naive = chrono::NaiveDateTime::parse_from_str(s.trim_end_matches('Z'), "%Y-%m-%dT%H:%M:%S%.f")
                .map_err(|_| ("ErrorInvalidRequest", format!("{what} {s:?} is not an xs:dateTime.")))?;
            let tz = zone.and_then(crate::tz::resolve).unwrap_or(chrono_tz::UTC);
            crate::tz::local_to_utc(tz, naive)
        }
    };
    // In the item's own zone, as Exchange keeps it (Graph's `originalStartTimeZone` is the
    // zone of `start`).
    match zone.and_then(|z| crate::tz::resolve(z).map(|tz| (z, tz))) {
        Some((name, tz)) => {
            let local = utc.with_timezone(&tz).naive_local();
            Ok(serde_json::json!({"dateTime": local.format("%Y-%m-%dT%H:%M:%S").to_string(), "timeZone": name}))
        }
        None => Ok(serde_json::json!({"dateTime": utc.format("%Y-%m-%dT%H:%M:%S").to_string(), "timeZone": "UTC"})),
    }
}

fn graph_show_as(status: &str) -> &'static str {
    match status {
        "Free" => "free",
        "Tentative" => "tentative",
        "OOF" => "oof",
        "WorkingElsewhere" => "workingElsewhere",
        "NoData" => "unknown",
        _ => "busy",
    }
}

/// An EWS calendar item from a CreateItem as the Graph event the store keeps.
pub fn graph_event(item: &Item) -> Result<wire::Event, super::ItemError> {
    let zone = item.start_time_zone.as_ref().and_then(|z| z.id.clone());
    let start = item.start.as_deref().ok_or(("ErrorInvalidRequest", "A calendar item needs a Start.".to_string()))?;
    let end = item.end.as_deref().ok_or(("ErrorInvalidRequest", "A calendar item needs an End.".to_string()))?;
    let attendees: Vec<serde_json::Value> = [("required", &item.required_attendees), ("optional", &item.optional_attendees), ("resource", &item.resources)]
        .into_iter()
        .flat_map(|(kind, list)| {
            list.iter().flatten().map(move |a| {
                serde_json::json!({
                    "type": kind,
                    "emailAddress": {"address": a.mailbox.email_address.clone().unwrap_or_default(), "name": a.mailbox.name.clone().unwrap_or_default()},
                })
            })
        })
        .collect();
    let props: Vec<serde_json::Value> = item
        .extended_properties
        .iter()
        .filter_map(|p| {
            let set = p.uri.property_set_id.as_deref()?;
            let name = p.uri.property_name.as_deref()?;
            Some(serde_json::json!({"id": format!("{} {{{set}}} Name {name}", p.uri.property_type), "value": p.value.clone().unwrap_or_default()}))
        })
        .collect();
    let mut v = serde_json::json!({
        "subject": item.subject.clone().unwrap_or_default(),
        "start": graph_time("Start", start, zone.as_deref())?,
        "end": graph_time("End", end, zone.as_deref())?,
        "isAllDay": item.is_all_day_event.unwrap_or(false),
        "showAs": graph_show_as(item.legacy_free_busy_status.as_deref().unwrap_or("Busy")),
        "sensitivity": item.sensitivity.as_deref().unwrap_or("Normal").to_ascii_lowercase(),
        "location": {"displayName": item.location.clone().unwrap_or_default()},
        "attendees": attendees,
    });
    let o = v.as_object_mut().expect("an object");
    if let Some(b) = &item.body {
        let kind = if b.body_type.eq_ignore_ascii_case("HTML") { "html" } else { "text" };
        o.insert("body".into(), serde_json::json!({"contentType": kind, "content": b.text}));
    }
    if let Some(c) = &item.categories {
        o.insert("categories".into(), serde_json::json!(c));
    }
    if let Some(z) = &zone {
        o.insert("originalStartTimeZone".into(), serde_json::json!(z));
        o.insert("originalEndTimeZone".into(), serde_json::json!(z));
    }
    if !props.is_empty() {
        o.insert("singleValueExtendedProperties".into(), serde_json::json!(props));
    }
    if let Some(r) = &item.recurrence {
        o.insert("recurrence".into(), super::series::graph_recurrence(r, zone.as_deref()));
    }
    serde_json::from_value(v).map_err(|e| ("ErrorInvalidRequest", format!("The item could not be stored: {e}.")))
}
