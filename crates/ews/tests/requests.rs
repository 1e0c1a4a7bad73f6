//! The requests calbridge builds with its wire types validate against Microsoft's schema,
//! including the envelope headers (impersonation, time-zone context) and the shapes of a
//! meeting with attendees, a room and calbridge's provenance property.

use calbridge_ews::testing::assert_valid;
use calbridge_ews::wire::envelope::{self, ConnectingSid, RequestHeader};
use calbridge_ews::wire::ops::*;
use calbridge_ews::wire::types::*;
use calbridge_ews::wire::xml::{parse, Limits};

fn provenance_uri() -> ExtendedFieldUri {
    ExtendedFieldUri {
        property_set_id: Some("00020329-0000-0000-C000-000000000046".into()),
        property_name: Some("calbridgeProvenance".into()),
        property_type: "String".into(),
        ..Default::default()
    }
}

fn header() -> RequestHeader {
    let mut h = RequestHeader::new("Exchange2016");
    h.impersonation = Some(ConnectingSid::PrimarySmtpAddress("room-2.14@contoso.com".into()));
    h.time_zone = Some("UTC".into());
    h
}

fn meeting() -> Item {
    Item {
        subject: Some("Safety training".into()),
        body: Some(Body { body_type: "Text".into(), text: "Bring your badge.".into() }),
        sensitivity: Some("Normal".into()),
        extended_properties: vec![ExtendedProperty {
            uri: provenance_uri(),
            value: Some("calbridge:acme:7f1c".into()),
            values: None,
        }],
        start: Some("2026-12-07T09:00:00Z".into()),
        end: Some("2026-12-07T10:30:00Z".into()),
        is_all_day_event: Some(false),
        legacy_free_busy_status: Some("Busy".into()),
        location: Some("Room 2.14".into()),
        required_attendees: Some(vec![Attendee {
            mailbox: EmailAddress::smtp(Some("Ann Lee"), "ann@contoso.com"),
            ..Default::default()
        }]),
        optional_attendees: Some(vec![Attendee {
            mailbox: EmailAddress::smtp(None, "learner@contoso.com"),
            ..Default::default()
        }]),
        resources: Some(vec![Attendee {
            mailbox: EmailAddress::smtp(None, "room-2.14@contoso.com"),
            ..Default::default()
        }]),
        recurrence: Some(Recurrence {
            pattern: RecurrencePattern::AbsoluteMonthly { interval: 1, day_of_month: 31 },
            range: RecurrenceRange::EndDate { start_date: "2026-12-31".into(), end_date: "2027-12-31".into() },
        }),
        start_time_zone: Some(TimeZoneRef::id("W. Europe Standard Time")),
        end_time_zone: Some(TimeZoneRef::id("W. Europe Standard Time")),
        ..Item::calendar()
    }
}

fn shape() -> Shape {
    Shape {
        base_shape: "IdOnly".into(),
        body_type: Some("Text".into()),
        additional_properties: FIELD_URIS
            .iter()
            .filter(|u| u.starts_with("item:") || u.starts_with("calendar:"))
            .map(|u| PropertyPath::field(u))
            .chain([PropertyPath::Extended(provenance_uri())])
            .collect(),
    }
}

/// Builds, validates and re-reads one request.
fn check<T: PartialEq + std::fmt::Debug>(
    name: &str,
    write: impl Fn(&mut calbridge_ews::wire::xml::XmlWriter),
    parse_back: impl Fn(roxmltree::Node<'_, '_>) -> T,
    expected: &T,
) {
    let xml = envelope::request(&header(), write);
    assert_valid(name, &xml);
    let doc = parse(&xml, Limits::default()).unwrap();
    let env = envelope::split(&doc).unwrap();
    assert_eq!(RequestHeader::parse(env.header).unwrap(), header(), "{name}");
    assert_eq!(&parse_back(env.body), expected, "{name}: what the simulator reads back");
}

#[test]
fn calbridges_requests_validate_and_read_back() {
    let folder = FolderRef::calendar(Some("room-2.14@contoso.com"));
    let r = find_item::Request {
        traversal: "Shallow".into(),
        item_shape: shape(),
        view: Some(find_item::View::Calendar {
            start_date: "2026-11-30T00:00:00Z".into(),
            end_date: "2027-12-06T00:00:00Z".into(),
            max_entries_returned: Some(1000),
        }),
        parent_folder_ids: vec![folder.clone()],
    };
    check("FindItem", |w| r.write(w), |b| find_item::Request::parse(b).unwrap(), &r);

    let r = sync_folder_items::Request {
        item_shape: Shape::id_only(),
        sync_folder_id: folder.clone(),
        sync_state: Some("H4sIAAAAAAAEAO29B2AcSZY==".into()),
        max_changes_returned: sync_folder_items::MAX_CHANGES,
        sync_scope: Some("NormalItems".into()),
    };
    check("SyncFolderItems", |w| r.write(w), |b| sync_folder_items::Request::parse(b).unwrap(), &r);

    let r = get_item::Request { item_shape: shape(), item_ids: vec![ItemRef::Item(ItemId::new("AAMkAD=", None))] };
    check("GetItem", |w| r.write(w), |b| get_item::Request::parse(b).unwrap(), &r);

    let r = create_item::Request {
        send_meeting_invitations: Some("SendToAllAndSaveCopy".into()),
        message_disposition: None,
        saved_item_folder_id: Some(FolderRef::calendar(Some("scheduler@contoso.com"))),
        items: vec![meeting()],
    };
    check("CreateItem", |w| r.write(w), |b| create_item::Request::parse(b).unwrap(), &r);
    let xml = envelope::request(&header(), |w| r.write(w));
    let doc = parse(&xml, Limits::default()).unwrap();
    let body = envelope::split(&doc).unwrap().body;
    assert_eq!(decline_item::Request::parse(body).unwrap(), None, "an ordinary CreateItem is not a decline");

    let r = decline_item::Request {
        message_disposition: "SendAndSaveCopy".into(),
        body: Some(Body { body_type: "Text".into(), text: "This booking was released.".into() }),
        reference_item_id: ItemId::new("AAMkAD=", Some("DwAAABYA".into())),
    };
    check("CreateItem (DeclineItem)", |w| r.write(w), |b| decline_item::Request::parse(b).unwrap().unwrap(), &r);

    let m = meeting();
    let updates = ["item:Subject", "calendar:Start", "calendar:End", "calendar:Location", "calendar:Resources"]
        .iter()
        .map(|u| update_item::FieldUpdate::Set { path: PropertyPath::field(u), item: m.project(&[u], false) })
        .chain([
            update_item::FieldUpdate::Set {
                path: PropertyPath::Extended(provenance_uri()),
                item: Item { extended_properties: m.extended_properties.clone(), ..Item::calendar() },
            },
            update_item::FieldUpdate::Delete { path: PropertyPath::field("calendar:OptionalAttendees") },
        ])
        .collect();
    let r = update_item::Request {
        conflict_resolution: "NeverOverwrite".into(),
        message_disposition: Some("SaveOnly".into()),
        send_meeting_invitations_or_cancellations: Some("SendToChangedAndSaveCopy".into()),
        item_changes: vec![update_item::ItemChange {
            item_id: ItemRef::Item(ItemId::new("AAMkAD=", Some("DwAAABYA".into()))),
            updates,
        }],
    };
    check("UpdateItem", |w| r.write(w), |b| update_item::Request::parse(b).unwrap(), &r);

    let r = delete_item::Request {
        delete_type: "MoveToDeletedItems".into(),
        send_meeting_cancellations: Some("SendToAllAndSaveCopy".into()),
        affected_task_occurrences: None,
        item_ids: vec![
            ItemRef::Item(ItemId::new("AAMkAD=", Some("DwAAABYA".into()))),
            ItemRef::Occurrence { recurring_master_id: "AAMkAD=".into(), change_key: None, instance_index: 3 },
        ],
    };
    check("DeleteItem", |w| r.write(w), |b| delete_item::Request::parse(b).unwrap(), &r);

    let r = get_user_availability::Request {
        utc_time_zone: true,
        mailboxes: vec![
            get_user_availability::MailboxData {
                address: "ann@contoso.com".into(),
                attendee_type: "Required".into(),
                exclude_conflicts: Some(false),
            },
            get_user_availability::MailboxData {
                address: "room-2.14@contoso.com".into(),
                attendee_type: "Room".into(),
                exclude_conflicts: None,
            },
        ],
        start_time: "2026-12-07T00:00:00".into(),
        end_time: "2026-12-14T00:00:00".into(),
        merged_free_busy_interval_in_minutes: Some(15),
        requested_view: "Detailed".into(),
    };
    check("GetUserAvailability", |w| r.write(w), |b| get_user_availability::Request::parse(b).unwrap(), &r);

    let r = get_folder::Request { folder_shape: Shape::id_only(), folder_ids: vec![folder] };
    check("GetFolder", |w| r.write(w), |b| get_folder::Request::parse(b).unwrap(), &r);

    let r = resolve_names::Request {
        return_full_contact_data: false,
        search_scope: Some("ActiveDirectory".into()),
        unresolved_entry: "room-2.14@contoso.com".into(),
    };
    check("ResolveNames", |w| r.write(w), |b| resolve_names::Request::parse(b).unwrap(), &r);

    check(
        "GetRoomLists",
        |w| get_room_lists::Request.write(w),
        |b| get_room_lists::Request::parse(b).unwrap(),
        &get_room_lists::Request,
    );
    let r = get_rooms::Request { room_list: "bldg1rooms@contoso.com".into() };
    check("GetRooms", |w| r.write(w), |b| get_rooms::Request::parse(b).unwrap(), &r);

    let r = convert_id::Request {
        destination_format: "HexEntryId".into(),
        source_ids: vec![convert_id::AlternateId {
            format: "EwsId".into(),
            id: "AAMkAD+/=".into(),
            mailbox: "ann@contoso.com".into(),
        }],
    };
    check("ConvertId", |w| r.write(w), |b| convert_id::Request::parse(b).unwrap(), &r);

    // Change notifications on the calendar: streaming and pull subscriptions, reading
    // them, and ending one.
    let folder = FolderRef::calendar(Some("room-2.14@contoso.com"));
    for kind in [subscribe::Kind::Streaming, subscribe::Kind::Pull { timeout_minutes: 30 }] {
        let r = subscribe::Request::calendar(kind, folder.clone());
        check("Subscribe", |w| r.write(w), |b| subscribe::Request::parse(b).unwrap(), &r);
    }
    let mut r =
        subscribe::Request::calendar(subscribe::Kind::Pull { timeout_minutes: 1440 }, FolderRef::calendar(None));
    r.watermark = Some("AAAAAHgGAAAAAAAAAQ==".into());
    check("Subscribe with a watermark", |w| r.write(w), |b| subscribe::Request::parse(b).unwrap(), &r);
    let r = get_streaming_events::Request {
        subscription_ids: vec!["JgBibjFwcjAz=".into(), "f6bc657d-dde1".into()],
        connection_timeout: 30,
    };
    check("GetStreamingEvents", |w| r.write(w), |b| get_streaming_events::Request::parse(b).unwrap(), &r);
    let r = get_events::Request { subscription_id: "f6bc657d".into(), watermark: "AAAAAMAGAAAAAAAAAQ==".into() };
    check("GetEvents", |w| r.write(w), |b| get_events::Request::parse(b).unwrap(), &r);
    let r = unsubscribe::Request { subscription_id: "f6bc657d".into() };
    check("Unsubscribe", |w| r.write(w), |b| unsubscribe::Request::parse(b).unwrap(), &r);
}
