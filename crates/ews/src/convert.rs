//! Between EWS calendar items ([`Item`]) and calbridge's model ([`EventData`]).
//!
//! Reading: times are `xs:dateTime` text; calbridge sends `TimeZoneContext` UTC, so a time
//! without an offset is UTC (Exchange writes `Z` anyway). The event's zone is
//! `StartTimeZone/@Id` (a Windows id). `LegacyFreeBusyStatus` `NoData` is unknown. The body
//! is asked for as text. Provenance is calbridge's named property in PS_PUBLIC_STRINGS, the
//! same MAPI property the Graph adapter writes, so either protocol recognises the other's
//! events.
//!
//! Writing: instants in UTC with `StartTimeZone`/`EndTimeZone` naming the event's zone (its
//! Windows id; omitted for a zone with none, when the instants alone are kept), so Outlook
//! shows the zone the host application chose.

use chrono::{DateTime, NaiveDateTime, Utc};

use calbridge_core::model::*;
use calbridge_core::sync::{Confirmed, Provenance, RemoteItem};

use crate::wire::ops::update_item::{FieldUpdate, ItemChange};
use crate::wire::types::{
    Attendee as WireAttendee, Body, EmailAddress, ExtendedFieldUri, ExtendedProperty, Item, ItemId, ItemRef,
    PropertyPath, Shape, TimeZoneRef,
};

/// PS_PUBLIC_STRINGS, the property set of calbridge's provenance property.
pub const PS_PUBLIC_STRINGS: &str = "00020329-0000-0000-C000-000000000046";
/// The name of calbridge's provenance property.
pub const PROVENANCE_NAME: &str = "calbridgeProvenance";

/// The `ExtendedFieldURI` of calbridge's provenance property.
pub fn provenance_uri() -> ExtendedFieldUri {
    ExtendedFieldUri {
        property_set_id: Some(PS_PUBLIC_STRINGS.into()),
        property_name: Some(PROVENANCE_NAME.into()),
        property_type: "String".into(),
        ..Default::default()
    }
}

/// Why an item cannot be read.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ConvertError {
    #[error("item {id:?} has no {field}")]
    MissingField { id: String, field: &'static str },
    #[error("item {id:?} has an unreadable {field} {value:?}")]
    BadValue { id: String, field: &'static str, value: String },
    #[error("{0:?} is not a calendar item")]
    NotCalendarItem(String),
}

/// The fields calbridge reads: what `GetItem` asks for.
pub fn item_shape() -> Shape {
    let mut props: Vec<PropertyPath> = [
        "item:Subject",
        "item:Body",
        "item:Sensitivity",
        "calendar:Start",
        "calendar:End",
        "calendar:OriginalStart",
        "calendar:IsAllDayEvent",
        "calendar:LegacyFreeBusyStatus",
        "calendar:Location",
        "calendar:IsCancelled",
        "calendar:CalendarItemType",
        "calendar:Organizer",
        "calendar:RequiredAttendees",
        "calendar:OptionalAttendees",
        "calendar:Resources",
        "calendar:StartTimeZone",
        "calendar:UID",
        // A series master's rule and its changed occurrences (absent on other items).
        "calendar:Recurrence",
        "calendar:ModifiedOccurrences",
        "calendar:DeletedOccurrences",
    ]
    .into_iter()
    .map(PropertyPath::field)
    .collect();
    props.push(PropertyPath::Extended(provenance_uri()));
    Shape { base_shape: "IdOnly".into(), body_type: Some("Text".into()), additional_properties: props }
}

/// The fields SyncFolderItems asks for: enough to tell whether an item is in the window.
pub fn sync_shape() -> Shape {
    Shape {
        base_shape: "IdOnly".into(),
        body_type: None,
        additional_properties: ["calendar:Start", "calendar:End", "calendar:CalendarItemType"]
            .into_iter()
            .map(PropertyPath::field)
            .collect(),
    }
}

/// An `xs:dateTime` as an instant (no offset: UTC, as the request's `TimeZoneContext` says).
pub fn parse_time(s: &str) -> Option<DateTime<Utc>> {
    let s = s.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Some(t.with_timezone(&Utc));
    }
    NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f").ok().map(|n| n.and_utc())
}

/// An instant as EWS writes it.
pub fn ews_time(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

pub fn show_as(s: &str) -> ShowAs {
    match s {
        "Free" => ShowAs::Free,
        "Tentative" => ShowAs::Tentative,
        "Busy" => ShowAs::Busy,
        "OOF" => ShowAs::Oof,
        "WorkingElsewhere" => ShowAs::WorkingElsewhere,
        _ => ShowAs::Unknown,
    }
}

pub fn show_as_wire(s: ShowAs) -> &'static str {
    match s {
        ShowAs::Free => "Free",
        ShowAs::Tentative => "Tentative",
        ShowAs::Busy => "Busy",
        ShowAs::Oof => "OOF",
        ShowAs::WorkingElsewhere => "WorkingElsewhere",
        ShowAs::Unknown => "NoData",
    }
}

pub fn sensitivity(s: &str) -> Sensitivity {
    match s {
        "Personal" => Sensitivity::Personal,
        "Private" => Sensitivity::Private,
        "Confidential" => Sensitivity::Confidential,
        _ => Sensitivity::Normal,
    }
}

pub fn sensitivity_wire(s: Sensitivity) -> &'static str {
    match s {
        Sensitivity::Normal => "Normal",
        Sensitivity::Personal => "Personal",
        Sensitivity::Private => "Private",
        Sensitivity::Confidential => "Confidential",
    }
}

pub fn response(s: &str) -> ResponseStatus {
    match s {
        "Organizer" => ResponseStatus::Organizer,
        "Tentative" => ResponseStatus::TentativelyAccepted,
        "Accept" => ResponseStatus::Accepted,
        "Decline" => ResponseStatus::Declined,
        "NoResponseReceived" => ResponseStatus::NotResponded,
        _ => ResponseStatus::None,
    }
}

/// calbridge's provenance tag, if the item carries it.
pub fn provenance(item: &Item) -> Option<Provenance> {
    item.extended(&provenance_uri()).and_then(|p| p.value.as_deref()).and_then(Provenance::decode)
}

fn person(m: &EmailAddress) -> Option<Person> {
    let email = m.email_address.clone().unwrap_or_default();
    let name = m.name.clone().unwrap_or_default();
    (!email.is_empty() || !name.is_empty()).then_some(Person { email, name })
}

/// The content of a calendar item.
pub fn event_data(item: &Item) -> Result<EventData, ConvertError> {
    let id = item.item_id.as_ref().map(|i| i.id.clone()).unwrap_or_default();
    if !item.is_calendar_item() {
        return Err(ConvertError::NotCalendarItem(item.element.clone()));
    }
    let time = |field: &'static str, v: &Option<String>| -> Result<DateTime<Utc>, ConvertError> {
        let v = v.as_deref().ok_or_else(|| ConvertError::MissingField { id: id.clone(), field })?;
        parse_time(v).ok_or_else(|| ConvertError::BadValue { id: id.clone(), field, value: v.to_string() })
    };
    let start = time("Start", &item.start)?;
    let end = time("End", &item.end)?;
    let mut attendees = Vec::new();
    for (list, role) in [
        (&item.required_attendees, AttendeeRole::Required),
        (&item.optional_attendees, AttendeeRole::Optional),
        (&item.resources, AttendeeRole::Resource),
    ] {
        for a in list.iter().flatten() {
            let Some(p) = person(&a.mailbox) else { continue };
            attendees.push(Attendee {
                email: p.email,
                name: p.name,
                role,
                response: a.response_type.as_deref().map(response).unwrap_or(ResponseStatus::None),
            });
        }
    }
    let kind = match item.calendar_item_type.as_deref() {
        Some("RecurringMaster") => SeriesKind::Master,
        Some("Occurrence") => SeriesKind::Occurrence,
        Some("Exception") => SeriesKind::Exception,
        _ => SeriesKind::Single,
    };
    let original_start = item.original_start.as_deref().and_then(parse_time);
    let series = match kind {
        SeriesKind::Single => Series::single(),
        SeriesKind::Master => {
            let recurrence = item.recurrence.as_ref().and_then(|r| match crate::recurrence::from_wire(r) {
                Ok(rule) => Some(Box::new(rule)),
                Err(e) => {
                    tracing::warn!(%id, "the series' recurrence cannot be read ({e}); keeping the series without it");
                    None
                }
            });
            Series { kind, master_id: None, original_start: None, recurrence }
        }
        SeriesKind::Occurrence => {
            Series { kind, master_id: None, original_start: original_start.or(Some(start)), recurrence: None }
        }
        SeriesKind::Exception => Series { kind, master_id: None, original_start, recurrence: None },
    };
    let body = item.body.as_ref().map(|b| {
        if b.body_type.eq_ignore_ascii_case("HTML") {
            calbridge_graph::convert::html_to_text(&b.text)
        } else {
            b.text.replace("\r\n", "\n").trim_end().to_string()
        }
    });
    Ok(EventData {
        subject: item.subject.clone().unwrap_or_default(),
        body: body.unwrap_or_default(),
        location: item.location.clone().unwrap_or_default(),
        start,
        end,
        time_zone: item
            .start_time_zone
            .as_ref()
            .and_then(|z| z.id.clone())
            .filter(|z| !z.trim().is_empty())
            .unwrap_or_else(|| "UTC".into()),
        all_day: item.is_all_day_event.unwrap_or(false),
        show_as: item.legacy_free_busy_status.as_deref().map(show_as).unwrap_or(ShowAs::Busy),
        sensitivity: item.sensitivity.as_deref().map(sensitivity).unwrap_or(Sensitivity::Normal),
        organizer: item.organizer.as_ref().and_then(person),
        attendees,
        series,
        cancelled: item.is_cancelled.unwrap_or(false),
    })
}

/// The item as the engine sees it.
pub fn remote_item(item: &Item) -> Result<RemoteItem, ConvertError> {
    let id = item
        .item_id
        .as_ref()
        .filter(|i| !i.id.is_empty())
        .ok_or(ConvertError::MissingField { id: String::new(), field: "ItemId" })?;
    Ok(RemoteItem {
        remote_id: id.id.clone(),
        version: id.change_key.clone().unwrap_or_default(),
        data: event_data(item)?,
        provenance: provenance(item),
    })
}

/// A confirmation from the item Exchange holds after a create or update.
pub fn confirmed(item: &Item) -> Result<Confirmed, ConvertError> {
    let r = remote_item(item)?;
    Ok(Confirmed { remote_id: r.remote_id, version: r.version, data: r.data })
}

fn attendees_of(data: &EventData, role: AttendeeRole) -> Option<Vec<WireAttendee>> {
    let list: Vec<WireAttendee> = data
        .attendees
        .iter()
        .filter(|a| a.role == role)
        .map(|a| WireAttendee {
            mailbox: EmailAddress {
                name: (!a.name.is_empty()).then(|| a.name.clone()),
                email_address: Some(a.email.clone()),
                routing_type: Some("SMTP".into()),
                mailbox_type: None,
            },
            response_type: None,
            last_response_time: None,
        })
        .collect();
    (!list.is_empty()).then_some(list)
}

/// The item calbridge writes for `data` (every field it owns), with the provenance tag on a
/// create.
pub fn to_item(data: &EventData, provenance: Option<&Provenance>) -> Item {
    let zone = calbridge_core::zones::windows_name(&data.time_zone).map(TimeZoneRef::id);
    Item {
        subject: Some(data.subject.clone()),
        sensitivity: Some(sensitivity_wire(data.sensitivity).into()),
        body: Some(Body { body_type: "Text".into(), text: data.body.clone() }),
        extended_properties: provenance
            .map(|p| vec![ExtendedProperty { uri: provenance_uri(), value: Some(p.encode()), values: None }])
            .unwrap_or_default(),
        start: Some(ews_time(data.start)),
        end: Some(ews_time(data.end)),
        is_all_day_event: Some(data.all_day),
        legacy_free_busy_status: Some(show_as_wire(data.show_as).into()),
        location: Some(data.location.clone()),
        required_attendees: attendees_of(data, AttendeeRole::Required),
        optional_attendees: attendees_of(data, AttendeeRole::Optional),
        resources: attendees_of(data, AttendeeRole::Resource),
        recurrence: match (&data.series.kind, &data.series.recurrence) {
            (SeriesKind::Master, Some(rule)) => crate::recurrence::to_wire(rule).ok(),
            _ => None,
        },
        start_time_zone: zone.clone(),
        end_time_zone: zone,
        ..Item::calendar()
    }
}

/// The fields an update sets (or, when empty, deletes), in `SetItemField` form.
const UPDATE_FIELDS: &[&str] = &[
    "item:Subject",
    "item:Sensitivity",
    "item:Body",
    "calendar:Start",
    "calendar:End",
    "calendar:IsAllDayEvent",
    "calendar:LegacyFreeBusyStatus",
    "calendar:Location",
    "calendar:RequiredAttendees",
    "calendar:OptionalAttendees",
    "calendar:Resources",
    "calendar:StartTimeZone",
    "calendar:EndTimeZone",
];

/// An UpdateItem change that makes the item `id` (at change key `change_key`) hold `data`.
pub fn item_change(id: &str, change_key: &str, data: &EventData) -> ItemChange {
    let full = to_item(data, None);
    let master = ["calendar:Recurrence"];
    let fields = UPDATE_FIELDS.iter().chain(master.iter().filter(|_| data.series.kind == SeriesKind::Master));
    let updates = fields
        .map(|uri| {
            let path = PropertyPath::field(uri);
            if full.has_field(uri) {
                FieldUpdate::Set { path, item: full.project(&[uri], false) }
            } else {
                FieldUpdate::Delete { path }
            }
        })
        .collect();
    ItemChange { item_id: ItemRef::Item(ItemId::new(id, Some(change_key.to_string()))), updates }
}

/// Why `data` cannot be written over EWS, if it cannot.
pub fn unwritable(data: &EventData) -> Option<String> {
    match (&data.series.kind, &data.series.recurrence) {
        (SeriesKind::Master, Some(rule)) => crate::recurrence::to_wire(rule).err(),
        _ => None,
    }
}

/// How an update reaches attendees (`SendMeetingInvitationsOrCancellations`): only a key
/// change — date, time, time zone, all-day, location — re-sends the meeting to everyone; a
/// change of attendees sends invitations and cancellations to those added or removed; any
/// other change (subject, body, …) updates silently. `before` is the item as Exchange holds it.
pub fn update_invitations(before: Option<&EventData>, after: &EventData) -> &'static str {
    let people = |d: &EventData| {
        let mut v: Vec<(String, AttendeeRole)> =
            d.attendees.iter().map(|a| (a.email.to_ascii_lowercase(), a.role)).collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    };
    let Some(b) = before else { return invitations(after) };
    if b.attendees.is_empty() && after.attendees.is_empty() {
        return "SendToNone";
    }
    let key = b.start != after.start
        || b.end != after.end
        || b.all_day != after.all_day
        || b.location != after.location
        || calbridge_core::zones::windows_name(&b.time_zone) != calbridge_core::zones::windows_name(&after.time_zone);
    if key {
        "SendToAllAndSaveCopy"
    } else if people(b) != people(after) {
        "SendToChangedAndSaveCopy"
    } else {
        "SendToNone"
    }
}

/// Whether a meeting request (or cancellation) goes out for `data`.
pub fn invitations(data: &EventData) -> &'static str {
    if data.attendees.is_empty() {
        "SendToNone"
    } else {
        "SendToAllAndSaveCopy"
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn sample() -> EventData {
        let s = Utc.with_ymd_and_hms(2026, 12, 7, 9, 0, 0).unwrap();
        let mut d = EventData::new("Class 7B", s, s + chrono::Duration::hours(2));
        d.body = "Bring the lab book.".into();
        d.location = "Room 1".into();
        d.time_zone = "Europe/Berlin".into();
        d.sensitivity = Sensitivity::Private;
        d.show_as = ShowAs::Tentative;
        d.attendees = vec![
            Attendee {
                email: "ann@contoso.com".into(),
                name: "Ann".into(),
                role: AttendeeRole::Required,
                response: ResponseStatus::None,
            },
            Attendee {
                email: "room1@contoso.com".into(),
                name: "Room 1".into(),
                role: AttendeeRole::Resource,
                response: ResponseStatus::None,
            },
        ];
        d
    }

    #[test]
    fn an_item_written_reads_back_as_the_same_content() {
        let d = sample();
        let p = Provenance { installation: "acme".into(), local_id: EventId::new("ev1") };
        let mut item = to_item(&d, Some(&p));
        item.item_id = Some(ItemId::new("AAMk1", Some("CK1".into())));
        let back = remote_item(&item).unwrap();
        assert_eq!(back.remote_id, "AAMk1");
        assert_eq!(back.version, "CK1");
        assert_eq!(back.provenance, Some(p));
        assert_eq!(back.data.time_zone, "W. Europe Standard Time");
        assert_eq!(EventData { time_zone: d.time_zone.clone(), ..back.data }, d);
    }

    #[test]
    fn a_series_master_carries_its_rule_both_ways() {
        let rule = calbridge_core::recurrence::Recurrence {
            pattern: calbridge_core::recurrence::Pattern::Weekly {
                interval: 1,
                days: vec![chrono::Weekday::Mon, chrono::Weekday::Wed],
                first_day_of_week: chrono::Weekday::Mon,
            },
            start_date: chrono::NaiveDate::from_ymd_opt(2026, 12, 7).unwrap(),
            range: calbridge_core::recurrence::Range::Numbered { count: 10 },
        };
        let mut d = sample();
        d.series = Series::master(rule.clone());
        let mut item = to_item(&d, None);
        assert!(item.recurrence.is_some());
        item.item_id = Some(ItemId::new("AAMkS", Some("CK".into())));
        item.calendar_item_type = Some("RecurringMaster".into());
        assert_eq!(remote_item(&item).unwrap().data.series.recurrence, Some(Box::new(rule)));
        let c = item_change("AAMkS", "CK", &d);
        assert!(c.updates.iter().any(|u| u.path() == &PropertyPath::field("calendar:Recurrence")));
        // Single items never touch the field.
        let c = item_change("AAMk1", "CK", &sample());
        assert!(!c.updates.iter().any(|u| u.path() == &PropertyPath::field("calendar:Recurrence")));
    }

    #[test]
    fn only_key_changes_resend_the_meeting() {
        let before = sample();
        let mut silent = before.clone();
        silent.subject = "Class 7B (room change pending)".into();
        silent.body = "New agenda".into();
        assert_eq!(update_invitations(Some(&before), &silent), "SendToNone");
        let mut moved = before.clone();
        moved.start += chrono::Duration::hours(1);
        moved.end += chrono::Duration::hours(1);
        assert_eq!(update_invitations(Some(&before), &moved), "SendToAllAndSaveCopy");
        let mut elsewhere = before.clone();
        elsewhere.location = "Room 2".into();
        assert_eq!(update_invitations(Some(&before), &elsewhere), "SendToAllAndSaveCopy");
        let mut zone = before.clone();
        zone.time_zone = "America/New_York".into();
        assert_eq!(update_invitations(Some(&before), &zone), "SendToAllAndSaveCopy");
        // The same zone under another name is no change.
        let mut same_zone = before.clone();
        same_zone.time_zone = "W. Europe Standard Time".into();
        assert_eq!(update_invitations(Some(&before), &same_zone), "SendToNone");
        let mut fewer = before.clone();
        fewer.attendees.truncate(1);
        assert_eq!(update_invitations(Some(&before), &fewer), "SendToChangedAndSaveCopy");
        // Unknown state: everyone hears of it.
        assert_eq!(update_invitations(None, &silent), "SendToAllAndSaveCopy");
        let lone = EventData::new("Focus", before.start, before.end);
        assert_eq!(update_invitations(Some(&lone), &lone), "SendToNone");
    }

    #[test]
    fn wire_values_map_to_the_model() {
        assert_eq!(show_as("OOF"), ShowAs::Oof);
        assert_eq!(show_as("NoData"), ShowAs::Unknown);
        assert_eq!(response("Accept"), ResponseStatus::Accepted);
        assert_eq!(response("Tentative"), ResponseStatus::TentativelyAccepted);
        assert_eq!(parse_time("2026-12-07T09:00:00Z"), Some(Utc.with_ymd_and_hms(2026, 12, 7, 9, 0, 0).unwrap()));
        assert_eq!(parse_time("2026-12-07T10:00:00+01:00"), Some(Utc.with_ymd_and_hms(2026, 12, 7, 9, 0, 0).unwrap()));
        assert_eq!(parse_time("2026-12-07T09:00:00"), Some(Utc.with_ymd_and_hms(2026, 12, 7, 9, 0, 0).unwrap()));
        assert_eq!(parse_time("next tuesday"), None);
    }

    #[test]
    fn unreadable_items_say_what_is_wrong() {
        let mut item = to_item(&sample(), None);
        item.item_id = Some(ItemId::new("AAMk2", None));
        item.start = Some("soon".into());
        assert_eq!(
            remote_item(&item).unwrap_err(),
            ConvertError::BadValue { id: "AAMk2".into(), field: "Start", value: "soon".into() }
        );
        item.element = "Message".into();
        assert!(matches!(remote_item(&item), Err(ConvertError::NotCalendarItem(_))));
    }

    #[test]
    fn an_update_sets_owned_fields_and_deletes_empty_lists() {
        let mut d = sample();
        d.attendees.retain(|a| a.role == AttendeeRole::Resource);
        let c = item_change("AAMk1", "CK1", &d);
        assert_eq!(c.item_id, ItemRef::Item(ItemId::new("AAMk1", Some("CK1".into()))));
        let deleted: Vec<_> =
            c.updates.iter().filter(|u| matches!(u, FieldUpdate::Delete { .. })).map(|u| u.path().clone()).collect();
        assert_eq!(
            deleted,
            vec![PropertyPath::field("calendar:RequiredAttendees"), PropertyPath::field("calendar:OptionalAttendees")]
        );
        assert_eq!(c.updates.len(), UPDATE_FIELDS.len());
    }
}
