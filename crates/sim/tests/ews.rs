//! The simulator's EWS face over HTTP: Basic, NTLM and Bearer sign-in, impersonation rights,
//! and every operation (GetFolder, FindItem, GetItem, CreateItem, UpdateItem, DeleteItem,
//! SyncFolderItems, ConvertId, ResolveNames, GetRoomLists, GetRooms, GetUserAvailability) on
//! the same events the Graph face serves; every answer validates against Microsoft's schema.

mod common;

use calbridge_ews::testing::assert_valid;
use calbridge_ews::wire::envelope::{self, ConnectingSid, Fault, RequestHeader};
use calbridge_ews::wire::ops::{find_item, get_folder, get_item};
use calbridge_ews::wire::types::{FolderRef, ItemRef, PropertyPath, Shape};
use calbridge_ews::wire::xml::{parse, Limits, XmlWriter};
use calbridge_sim::NewEvent;
use common::{at, ews_env as env, Env, EWS_ACCOUNTS as ACCOUNTS, SCENARIO};

/// Posts a request; returns the HTTP status and the answer's text.
async fn post(
    env: &Env,
    user: &str,
    password: &str,
    header: &RequestHeader,
    body: impl FnOnce(&mut XmlWriter),
) -> (u16, String) {
    let xml = envelope::request(header, body);
    let resp = env
        .http
        .post(format!("{}/EWS/Exchange.asmx", env.run.base_url))
        .basic_auth(user, Some(password))
        .header("Content-Type", "text/xml; charset=utf-8")
        .body(xml)
        .send()
        .await
        .unwrap();
    (resp.status().as_u16(), resp.text().await.unwrap())
}

fn shape() -> Shape {
    Shape {
        base_shape: "IdOnly".into(),
        body_type: Some("Text".into()),
        additional_properties: [
            "item:Subject",
            "calendar:Start",
            "calendar:End",
            "calendar:LegacyFreeBusyStatus",
            "calendar:Organizer",
            "calendar:RequiredAttendees",
            "calendar:Resources",
            "calendar:CalendarItemType",
            "calendar:UID",
        ]
        .iter()
        .map(|u| PropertyPath::field(u))
        .collect(),
    }
}

#[tokio::test]
async fn find_and_get_show_the_graph_faces_events_and_validate() {
    let env = env().await;
    let (start, end) = (at(1, 9), at(1, 10));
    let graph_id = env
        .sim
        .outlook()
        .create_event(
            "ann@test.example",
            NewEvent::new("Safety training", start, end).with_attendees(&["bob@test.example", "room1@test.example"]),
        )
        .unwrap();

    // As the service account, impersonating Ann.
    let mut header = RequestHeader::new("Exchange2016");
    header.impersonation = Some(ConnectingSid::PrimarySmtpAddress("ann@test.example".into()));
    let folders = get_folder::Request { folder_shape: Shape::id_only(), folder_ids: vec![FolderRef::calendar(None)] };
    let (status, text) = post(&env, "svc-calbridge", "svc-password", &header, |w| folders.write(w)).await;
    assert_eq!(status, 200, "{text}");
    assert_valid("GetFolder answer", &text);
    let doc = parse(&text, Limits::default()).unwrap();
    let r = get_folder::parse_response(envelope::split(&doc).unwrap().body).unwrap();
    let folder = &r[0].payload.as_ref().unwrap()[0];
    assert_eq!(folder.element, "CalendarFolder");

    let find = find_item::Request {
        traversal: "Shallow".into(),
        item_shape: shape(),
        view: Some(find_item::View::Calendar {
            start_date: (start - chrono::Duration::days(1)).format("%Y-%m-%dT%H:%M:%SZ").to_string(),
            end_date: (end + chrono::Duration::days(1)).format("%Y-%m-%dT%H:%M:%SZ").to_string(),
            max_entries_returned: Some(100),
        }),
        parent_folder_ids: vec![FolderRef::Id(folder.folder_id.clone().unwrap())],
    };
    let (status, text) = post(&env, "svc-calbridge", "svc-password", &header, |w| find.write(w)).await;
    assert_eq!(status, 200, "{text}");
    assert_valid("FindItem answer", &text);
    let doc = parse(&text, Limits::default()).unwrap();
    let r = find_item::parse_response(envelope::split(&doc).unwrap().body).unwrap();
    let root = r[0].payload.as_ref().unwrap();
    assert_eq!((root.total_items_in_view, root.includes_last_item_in_range), (1, true));
    let item = &root.items[0];
    assert_eq!(item.subject.as_deref(), Some("Safety training"));
    assert_eq!(item.start.as_deref(), Some(start.format("%Y-%m-%dT%H:%M:%SZ").to_string().as_str()));
    assert_eq!(item.calendar_item_type.as_deref(), Some("Single"));
    assert_eq!(item.body, None, "the shape did not ask for the body");
    let id = item.item_id.clone().unwrap();
    // The same item over both faces: the EWS id is the Graph id in standard base64.
    assert_eq!(id.id.replace('+', "-").replace('/', "_"), graph_id);
    let graph = env.sim.outlook().get_event("ann@test.example", &graph_id).unwrap();
    assert_eq!(id.change_key, graph.change_key);
    let resources = item.resources.as_ref().unwrap();
    assert_eq!(resources[0].mailbox.email_address.as_deref(), Some("room1@test.example"));
    assert_eq!(resources[0].response_type.as_deref(), Some("Accept"), "the room auto-accepted");

    // Ann herself reads it with GetItem, plus one id that does not exist.
    let get = get_item::Request {
        item_shape: Shape {
            base_shape: "AllProperties".into(),
            body_type: Some("Text".into()),
            additional_properties: vec![],
        },
        item_ids: vec![
            ItemRef::Item(id.clone()),
            ItemRef::Item(calbridge_ews::wire::types::ItemId::new("AAMkAGone=", None)),
        ],
    };
    let (status, text) =
        post(&env, "ann", "ann-password", &RequestHeader::new("Exchange2013_SP1"), |w| get.write(w)).await;
    assert_eq!(status, 200, "{text}");
    assert_valid("GetItem answer", &text);
    let doc = parse(&text, Limits::default()).unwrap();
    let r = get_item::parse_response(envelope::split(&doc).unwrap().body).unwrap();
    let full = &r[0].payload.as_ref().unwrap()[0];
    assert_eq!(full.organizer.as_ref().and_then(|o| o.email_address.as_deref()), Some("ann@test.example"));
    assert_eq!(full.required_attendees.as_ref().unwrap()[0].mailbox.email_address.as_deref(), Some("bob@test.example"));
    assert_eq!(full.my_response_type.as_deref(), Some("Organizer"));
    assert_eq!(r[1].status.code, "ErrorItemNotFound");
}

#[tokio::test]
async fn sign_in_and_rights_are_enforced_as_exchange_does() {
    let env = env().await;
    let folders = get_folder::Request {
        folder_shape: Shape::id_only(),
        folder_ids: vec![FolderRef::calendar(Some("bob@test.example"))],
    };

    // A wrong password: 401 with a Basic challenge.
    let (status, _) =
        post(&env, "svc-calbridge", "wrong", &RequestHeader::new("Exchange2016"), |w| folders.write(w)).await;
    assert_eq!(status, 401);

    // Ann may not open Bob's calendar (no FullAccess): an error message, not a fault.
    let (status, text) =
        post(&env, "ann", "ann-password", &RequestHeader::new("Exchange2016"), |w| folders.write(w)).await;
    assert_eq!(status, 200, "{text}");
    assert_valid("GetFolder error answer", &text);
    let doc = parse(&text, Limits::default()).unwrap();
    let r = get_folder::parse_response(envelope::split(&doc).unwrap().body).unwrap();
    assert_eq!(r[0].status.code, "ErrorAccessDenied");

    // Ann has no impersonation role: the fault Exchange sends, HTTP 500.
    let mut header = RequestHeader::new("Exchange2016");
    header.impersonation = Some(ConnectingSid::PrimarySmtpAddress("bob@test.example".into()));
    let (status, text) = post(&env, "ann", "ann-password", &header, |w| folders.write(w)).await;
    assert_eq!(status, 500);
    let doc = parse(&text, Limits::default()).unwrap();
    let f = Fault::parse(envelope::split(&doc).unwrap().body).unwrap();
    assert_eq!(f.response_code.as_deref(), Some("ErrorImpersonateUserDenied"));

    // An unknown mailbox, impersonated by the service account.
    header.impersonation = Some(ConnectingSid::PrimarySmtpAddress("nobody@test.example".into()));
    let (status, text) = post(&env, "svc-calbridge", "svc-password", &header, |w| folders.write(w)).await;
    assert_eq!(status, 500);
    assert!(text.contains("ErrorNonExistentMailbox"), "{text}");
}

/// Posts raw bytes as the service account; returns the HTTP status and the answer's text.
async fn post_raw(env: &Env, body: impl Into<reqwest::Body>) -> (u16, String) {
    let resp = env
        .http
        .post(format!("{}/EWS/Exchange.asmx", env.run.base_url))
        .basic_auth("svc-calbridge", Some("svc-password"))
        .header("Content-Type", "text/xml; charset=utf-8")
        .body(body)
        .send()
        .await
        .unwrap();
    (resp.status().as_u16(), resp.text().await.unwrap())
}

#[tokio::test]
async fn hostile_xml_is_refused_with_a_schema_fault_before_anything_is_expanded() {
    let env = env().await;
    let envelope = |doctype: &str, inner: &str| {
        format!(
            r#"<?xml version="1.0" encoding="utf-8"?>{doctype}<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/" xmlns:m="http://schemas.microsoft.com/exchange/services/2006/messages"><s:Body>{inner}</s:Body></s:Envelope>"#
        )
    };
    let lol = |n: usize| {
        let refs = format!("&lol{};", n - 1).repeat(10);
        format!(r#"<!ENTITY lol{n} "{refs}">"#)
    };
    let levels: String = (1..10).map(lol).collect();
    let billion_laughs = envelope(
        &format!(r#"<!DOCTYPE s:Envelope [<!ENTITY lol0 "lol">{levels}]>"#),
        "<m:GetRoomLists>&lol9;</m:GetRoomLists>",
    );
    let xxe = envelope(
        r#"<!DOCTYPE s:Envelope [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>"#,
        "<m:ResolveNames><m:UnresolvedEntry>&xxe;</m:UnresolvedEntry></m:ResolveNames>",
    );
    let internal_subset = envelope(r#"<!DOCTYPE s:Envelope [<!ELEMENT s:Envelope ANY>]>"#, "<m:GetRoomLists/>");
    let dtd = "the XML contains a document type declaration (DTD), which EWS never sends; refused";
    let deep = envelope("", &format!("<m:GetRoomLists>{}{}</m:GetRoomLists>", "<a>".repeat(5000), "</a>".repeat(5000)));
    // Over the simulator's 8 MiB: a valid request padded with whitespace.
    let oversize = envelope("", &format!("<m:GetRoomLists/>{}", " ".repeat(8 * 1024 * 1024)));
    let cases = [
        ("billion laughs", billion_laughs, dtd),
        ("external entity (XXE)", xxe, dtd),
        ("DOCTYPE with an internal subset", internal_subset, dtd),
        ("deep nesting", deep, "the XML nests elements more than 128 levels deep; refused"),
        ("oversize", oversize, "the XML is larger than the 8388608-byte limit"),
    ];
    for (name, body, why) in cases {
        let (status, text) = post_raw(&env, body).await;
        assert_eq!(status, 500, "{name}: {text}");
        let doc = parse(&text, Limits::default()).unwrap();
        let fault = Fault::parse(envelope::split(&doc).unwrap().body).unwrap();
        assert_eq!(fault.response_code.as_deref(), Some("ErrorSchemaValidation"), "{name}");
        let message = fault.message.unwrap_or_default();
        assert!(message.contains(why), "{name}: {message}");
        assert!(!text.contains("root:") && !text.contains("lollol"), "{name}: nothing was expanded: {text}");
    }
    // The same request without the hostile part is answered.
    let (status, text) = post_raw(&env, envelope("", "<m:GetRoomLists/>")).await;
    assert_eq!(status, 200, "{text}");
}

#[tokio::test]
async fn a_meeting_created_over_ews_books_the_room_shows_over_graph_and_deletes() {
    use calbridge_ews::wire::ops::{create_item, delete_item};
    use calbridge_ews::wire::types::{Attendee, EmailAddress, ExtendedFieldUri, ExtendedProperty, Item, TimeZoneRef};
    let env = env().await;
    let (start, end) = (at(2, 13), at(2, 14));
    let provenance = ExtendedFieldUri {
        property_set_id: Some("00020329-0000-0000-C000-000000000046".into()),
        property_name: Some("calbridgeProvenance".into()),
        property_type: "String".into(),
        ..Default::default()
    };
    let local = |t: chrono::DateTime<chrono::Utc>| {
        let berlin = t.with_timezone(&chrono_tz::Europe::Berlin);
        berlin.format("%Y-%m-%dT%H:%M:%S").to_string()
    };
    let item = Item {
        subject: Some("Class: First aid".into()),
        extended_properties: vec![ExtendedProperty {
            uri: provenance.clone(),
            value: Some("calbridge:e2e:1".into()),
            values: None,
        }],
        // Wall-clock times in the item's own zone, as Outlook sends them.
        start: Some(local(start)),
        end: Some(local(end)),
        location: Some("Room 1".into()),
        required_attendees: Some(vec![Attendee {
            mailbox: EmailAddress::smtp(None, "bob@test.example"),
            ..Default::default()
        }]),
        resources: Some(vec![Attendee {
            mailbox: EmailAddress::smtp(None, "room1@test.example"),
            ..Default::default()
        }]),
        start_time_zone: Some(TimeZoneRef::id("W. Europe Standard Time")),
        end_time_zone: Some(TimeZoneRef::id("W. Europe Standard Time")),
        ..Item::calendar()
    };
    let create = create_item::Request {
        send_meeting_invitations: Some("SendToAllAndSaveCopy".into()),
        message_disposition: None,
        saved_item_folder_id: Some(FolderRef::calendar(Some("ann@test.example"))),
        items: vec![item],
    };
    let mut header = RequestHeader::new("Exchange2016");
    header.impersonation = Some(ConnectingSid::PrimarySmtpAddress("ann@test.example".into()));
    let (status, text) = post(&env, "svc-calbridge", "svc-password", &header, |w| create.write(w)).await;
    assert_eq!(status, 200, "{text}");
    assert_valid("CreateItem answer", &text);
    let doc = parse(&text, Limits::default()).unwrap();
    let r = create_item::parse_response(envelope::split(&doc).unwrap().body).unwrap();
    let id = r[0].payload.as_ref().unwrap()[0].item_id.clone().unwrap();
    assert!(id.change_key.is_some());

    // Over Graph: the same event, at the same instant, with the room's answer.
    let graph_id = id.id.replace('+', "-").replace('/', "_");
    let ev = env.sim.outlook().get_event("ann@test.example", &graph_id).unwrap();
    assert_eq!(ev.subject.as_deref(), Some("Class: First aid"));
    let room = ev.attendees.iter().flatten().find(|a| a.kind.as_deref() == Some("resource")).unwrap();
    assert_eq!(room.status.as_ref().and_then(|s| s.response.as_deref()), Some("accepted"));
    // And over EWS, the start is the UTC instant of the Berlin wall-clock time.
    let get = get_item::Request {
        item_shape: Shape {
            base_shape: "IdOnly".into(),
            body_type: None,
            additional_properties: vec![
                PropertyPath::field("calendar:Start"),
                PropertyPath::Extended(provenance.clone()),
            ],
        },
        item_ids: vec![ItemRef::Item(id.clone())],
    };
    let (_, text) = post(&env, "svc-calbridge", "svc-password", &header, |w| get.write(w)).await;
    let doc = parse(&text, Limits::default()).unwrap();
    let r = get_item::parse_response(envelope::split(&doc).unwrap().body).unwrap();
    let back = &r[0].payload.as_ref().unwrap()[0];
    assert_eq!(back.start.as_deref(), Some(start.format("%Y-%m-%dT%H:%M:%SZ").to_string().as_str()));
    assert_eq!(back.extended(&provenance).and_then(|p| p.value.as_deref()), Some("calbridge:e2e:1"));
    assert_eq!(back.subject, None, "only the fields asked for");

    // A second booking of the same room at the same time is declined, never double-booked.
    let (status, text) = post(&env, "svc-calbridge", "svc-password", &header, |w| create.write(w)).await;
    assert_eq!(status, 200, "{text}");
    let doc = parse(&text, Limits::default()).unwrap();
    let r = create_item::parse_response(envelope::split(&doc).unwrap().body).unwrap();
    let second = r[0].payload.as_ref().unwrap()[0].item_id.clone().unwrap().id.replace('+', "-").replace('/', "_");
    let ev2 = env.sim.outlook().get_event("ann@test.example", &second).unwrap();
    let room2 = ev2.attendees.iter().flatten().find(|a| a.kind.as_deref() == Some("resource")).unwrap();
    assert_eq!(room2.status.as_ref().and_then(|s| s.response.as_deref()), Some("declined"));

    // Deleting cancels it: gone from Ann's calendar and the room's.
    let delete = delete_item::Request {
        delete_type: "MoveToDeletedItems".into(),
        send_meeting_cancellations: Some("SendToAllAndSaveCopy".into()),
        affected_task_occurrences: None,
        item_ids: vec![ItemRef::Item(id.clone())],
    };
    let (status, text) = post(&env, "svc-calbridge", "svc-password", &header, |w| delete.write(w)).await;
    assert_eq!(status, 200, "{text}");
    assert_valid("DeleteItem answer", &text);
    assert!(env.sim.outlook().get_event("ann@test.example", &graph_id).is_err());
    let room_events = env.sim.outlook().list_events("room1@test.example").unwrap();
    // The declined second booking never entered the room's calendar; the first one left it.
    assert_eq!(
        room_events.iter().filter(|e| e.subject.as_deref() == Some("Class: First aid")).count(),
        0,
        "the room's copy is gone: {room_events:?}"
    );
    // Deleting again: ErrorItemNotFound.
    let (_, text) = post(&env, "svc-calbridge", "svc-password", &header, |w| delete.write(w)).await;
    assert!(text.contains("ErrorItemNotFound"), "{text}");
}

#[tokio::test]
async fn sync_folder_items_lists_then_reports_each_change_once() {
    use calbridge_ews::wire::ops::sync_folder_items::{self, Change};
    let env = env().await;
    let outlook = env.sim.outlook();
    let ids: Vec<String> = (0..3)
        .map(|i| {
            outlook
                .create_event("bob@test.example", NewEvent::new(format!("Item {i}"), at(3, 8 + i), at(3, 9 + i)))
                .unwrap()
        })
        .collect();
    let mut header = RequestHeader::new("Exchange2016");
    header.impersonation = Some(ConnectingSid::PrimarySmtpAddress("bob@test.example".into()));
    let call = |state: Option<String>, max: u32| {
        let header = header.clone();
        let env = &env;
        async move {
            let req = sync_folder_items::Request {
                item_shape: Shape {
                    base_shape: "IdOnly".into(),
                    body_type: None,
                    additional_properties: vec![PropertyPath::field("item:Subject")],
                },
                sync_folder_id: FolderRef::calendar(None),
                sync_state: state,
                max_changes_returned: max,
                sync_scope: None,
            };
            let (status, text) = post(env, "svc-calbridge", "svc-password", &header, |w| req.write(w)).await;
            assert_eq!(status, 200, "{text}");
            assert_valid("SyncFolderItems answer", &text);
            let doc = parse(&text, Limits::default()).unwrap();
            let mut r = sync_folder_items::parse_response(envelope::split(&doc).unwrap().body).unwrap();
            r.remove(0)
        }
    };
    let graph = |c: &Change| match c {
        Change::Create(i) | Change::Update(i) => i.item_id.as_ref().unwrap().id.replace('+', "-").replace('/', "_"),
        Change::Delete(id) => id.id.replace('+', "-").replace('/', "_"),
        Change::ReadFlagChange { item_id, .. } => item_id.id.clone(),
    };

    // The first listing, in two pages of at most two.
    let p1 = call(None, 2).await.payload.unwrap();
    assert_eq!((p1.changes.len(), p1.includes_last_item_in_range), (2, false));
    let p2 = call(Some(p1.sync_state.clone()), 2).await.payload.unwrap();
    assert_eq!((p2.changes.len(), p2.includes_last_item_in_range), (1, true));
    let mut listed: Vec<String> = p1.changes.iter().chain(&p2.changes).map(graph).collect();
    listed.sort();
    let mut expected = ids.clone();
    expected.sort();
    assert_eq!(listed, expected);
    assert!(p1.changes.iter().all(|c| matches!(c, Change::Create(i) if i.subject.is_some())));

    // Idle: nothing.
    let idle = call(Some(p2.sync_state.clone()), 512).await.payload.unwrap();
    assert!(idle.changes.is_empty() && idle.includes_last_item_in_range);

    // One update (twice), one delete, one create: three changes, each once.
    outlook.update_event("bob@test.example", &ids[0], serde_json::json!({"subject": "Item 0 moved"})).unwrap();
    outlook.update_event("bob@test.example", &ids[0], serde_json::json!({"subject": "Item 0 moved again"})).unwrap();
    outlook.delete_event("bob@test.example", &ids[1]).unwrap();
    let new = outlook.create_event("bob@test.example", NewEvent::new("New", at(4, 8), at(4, 9))).unwrap();
    // A create and delete between two syncs is no change at all.
    let fleeting = outlook.create_event("bob@test.example", NewEvent::new("Fleeting", at(4, 10), at(4, 11))).unwrap();
    outlook.delete_event("bob@test.example", &fleeting).unwrap();
    let r = call(Some(idle.sync_state.clone()), 512).await.payload.unwrap();
    let seen: Vec<(String, &str)> = r
        .changes
        .iter()
        .map(|c| {
            (
                graph(c),
                match c {
                    Change::Create(_) => "create",
                    Change::Update(_) => "update",
                    _ => "delete",
                },
            )
        })
        .collect();
    assert_eq!(seen, vec![(ids[0].clone(), "update"), (ids[1].clone(), "delete"), (new.clone(), "create")]);
    assert!(matches!(&r.changes[0], Change::Update(i) if i.subject.as_deref() == Some("Item 0 moved again")));

    // A state that was tampered with: ErrorInvalidSyncStateData, as Exchange says it.
    let mut bad = r.sync_state.clone();
    bad.insert(3, 'x');
    let m = call(Some(bad), 512).await;
    assert_eq!(m.status.code, "ErrorInvalidSyncStateData");
}

#[tokio::test]
async fn update_item_checks_the_change_key_and_shows_over_graph() {
    use calbridge_ews::wire::ops::update_item::{self, FieldUpdate, ItemChange};
    use calbridge_ews::wire::types::{Item, ItemId};
    let env = env().await;
    let graph_id =
        env.sim.outlook().create_event("ann@test.example", NewEvent::new("Draft", at(5, 9), at(5, 10))).unwrap();
    let before = env.sim.outlook().get_event("ann@test.example", &graph_id).unwrap();
    let ews_id = graph_id.replace('-', "+").replace('_', "/");
    let update = |ck: Option<String>| update_item::Request {
        conflict_resolution: "NeverOverwrite".into(),
        message_disposition: Some("SaveOnly".into()),
        send_meeting_invitations_or_cancellations: Some("SendToChangedAndSaveCopy".into()),
        item_changes: vec![ItemChange {
            item_id: ItemRef::Item(ItemId::new(ews_id.clone(), ck)),
            updates: vec![FieldUpdate::Set {
                path: PropertyPath::field("item:Subject"),
                item: Item { subject: Some("Final".into()), ..Item::calendar() },
            }],
        }],
    };
    let mut header = RequestHeader::new("Exchange2016");
    header.impersonation = Some(ConnectingSid::PrimarySmtpAddress("ann@test.example".into()));
    let stale = update(Some("CQAAABYAAAAstale".into()));
    let (_, text) = post(&env, "svc-calbridge", "svc-password", &header, |w| stale.write(w)).await;
    assert_valid("UpdateItem conflict answer", &text);
    assert!(text.contains("ErrorIrresolvableConflict"), "{text}");
    assert_eq!(env.sim.outlook().get_event("ann@test.example", &graph_id).unwrap().subject.as_deref(), Some("Draft"));

    let fresh = update(before.change_key.clone());
    let (status, text) = post(&env, "svc-calbridge", "svc-password", &header, |w| fresh.write(w)).await;
    assert_eq!(status, 200, "{text}");
    assert_valid("UpdateItem answer", &text);
    let doc = parse(&text, Limits::default()).unwrap();
    let r = update_item::parse_response(envelope::split(&doc).unwrap().body).unwrap();
    let new_ck = r[0].payload.as_ref().unwrap()[0].item_id.clone().unwrap().change_key;
    let after = env.sim.outlook().get_event("ann@test.example", &graph_id).unwrap();
    assert_eq!(after.subject.as_deref(), Some("Final"));
    assert_eq!(new_ck, after.change_key);
    assert_ne!(new_ck, before.change_key);
    assert_eq!((after.start, after.end), (before.start, before.end), "only the subject changed");
}

/// Posts a request and parses the answer's body element with `parse`, after validating it.
async fn call<T>(
    env: &Env,
    what: &str,
    header: &RequestHeader,
    body: impl FnOnce(&mut XmlWriter),
    parse: impl Fn(calbridge_ews::wire::xml::Node<'_, '_>) -> Result<T, calbridge_ews::wire::xml::WireError>,
) -> T {
    let (status, text) = post(env, "svc-calbridge", "svc-password", header, body).await;
    assert_eq!(status, 200, "{what}: {text}");
    assert_valid(what, &text);
    let doc = parse_doc(&text);
    parse(envelope::split(&doc).unwrap().body).unwrap()
}

fn parse_doc(text: &str) -> calbridge_ews::wire::xml::Document<'_> {
    parse(text, Limits::default()).unwrap()
}

fn impersonating(address: &str) -> RequestHeader {
    let mut header = RequestHeader::new("Exchange2016");
    header.impersonation = Some(ConnectingSid::PrimarySmtpAddress(address.into()));
    header
}

#[tokio::test]
async fn convert_id_answers_the_version_probe_and_converts_real_ids() {
    use calbridge_ews::wire::ops::convert_id::{self, AlternateId};
    let env = env().await;
    let graph_id =
        env.sim.outlook().create_event("ann@test.example", NewEvent::new("Review", at(1, 9), at(1, 10))).unwrap();
    let ews_id = graph_id.replace('-', "+").replace('_', "/");
    let header = RequestHeader::new("Exchange2016");

    // exchangelib's probe: the id DUMMY is malformed, and the header says which server this is.
    let probe = convert_id::Request {
        destination_format: "EntryId".into(),
        source_ids: vec![AlternateId { format: "EwsId".into(), id: "DUMMY".into(), mailbox: "DUMMY".into() }],
    };
    let (status, text) = post(&env, "svc-calbridge", "svc-password", &header, |w| probe.write(w)).await;
    assert_eq!(status, 200, "{text}");
    assert_valid("ConvertId probe answer", &text);
    let doc = parse_doc(&text);
    let env_parts = envelope::split(&doc).unwrap();
    let info = env_parts.header.unwrap().first_element_child().unwrap();
    assert_eq!(info.attribute("MajorVersion"), Some("15"));
    let r = convert_id::parse_response(env_parts.body).unwrap();
    assert_eq!(r[0].status.code, "ErrorInvalidIdMalformed");

    // A real id: to hex and back, and to Graph's (REST) id.
    let to = |format: &str, from: AlternateId| convert_id::Request {
        destination_format: format.into(),
        source_ids: vec![from],
    };
    let ews = AlternateId { format: "EwsId".into(), id: ews_id.clone(), mailbox: "ann@test.example".into() };
    let req = to("HexEntryId", ews.clone());
    let hex = call(&env, "ConvertId answer", &header, |w| req.write(w), convert_id::parse_response).await;
    let hex = hex[0].payload.clone().unwrap();
    assert_eq!(hex.format, "HexEntryId");
    assert!(hex.id.chars().all(|c| c.is_ascii_hexdigit()));
    let req = to("EwsId", hex);
    let back = call(&env, "ConvertId answer", &header, |w| req.write(w), convert_id::parse_response).await;
    assert_eq!(back[0].payload.as_ref().unwrap().id, ews_id);
    // RestId is Exchange Online's (not in the 2013 SP1 schema): not validated.
    let req = to("RestId", ews.clone());
    let (_, text) = post(&env, "svc-calbridge", "svc-password", &header, |w| req.write(w)).await;
    let doc = parse_doc(&text);
    let rest = convert_id::parse_response(envelope::split(&doc).unwrap().body).unwrap();
    assert_eq!(rest[0].payload.as_ref().unwrap().id, graph_id);
    // The id with another mailbox beside it is malformed.
    let req = to("EntryId", AlternateId { mailbox: "bob@test.example".into(), ..ews });
    let wrong = call(&env, "ConvertId answer", &header, |w| req.write(w), convert_id::parse_response).await;
    assert_eq!(wrong[0].status.code, "ErrorInvalidIdMalformed");
}

#[tokio::test]
async fn get_folder_walks_from_root_to_the_calendar_with_the_properties_clients_ask() {
    let env = env().await;
    env.sim.outlook().create_event("ann@test.example", NewEvent::new("One", at(1, 9), at(1, 10))).unwrap();
    let header = impersonating("ann@test.example");
    let shape = Shape {
        base_shape: "IdOnly".into(),
        body_type: None,
        additional_properties: [
            "folder:ParentFolderId",
            "folder:FolderClass",
            "folder:DisplayName",
            "folder:TotalCount",
            "folder:ChildFolderCount",
            "folder:UnreadCount",
            "folder:EffectiveRights",
            "folder:PermissionSet",
            "folder:DistinguishedFolderId",
        ]
        .iter()
        .map(|u| PropertyPath::field(u))
        .collect(),
    };
    let distinguished = |id: &str| FolderRef::Distinguished {
        id: id.into(),
        change_key: None,
        mailbox: Some("ann@test.example".into()),
    };
    let req = get_folder::Request {
        folder_shape: shape.clone(),
        folder_ids: vec![
            distinguished("root"),
            distinguished("msgfolderroot"),
            distinguished("calendar"),
            distinguished("journal"),
        ],
    };
    let r = call(&env, "GetFolder answer", &header, |w| req.write(w), get_folder::parse_response).await;
    let folder = |i: usize| r[i].payload.as_ref().unwrap()[0].clone();
    let (root, top, calendar) = (folder(0), folder(1), folder(2));
    assert_eq!(root.distinguished_folder_id.as_deref(), Some("root"));
    assert_eq!(root.parent_folder_id, None);
    assert_eq!(top.parent_folder_id.as_ref().map(|p| &p.id), root.folder_id.as_ref().map(|f| &f.id));
    assert_eq!(calendar.parent_folder_id.as_ref().map(|p| &p.id), top.folder_id.as_ref().map(|f| &f.id));
    assert_eq!(calendar.element, "CalendarFolder");
    assert_eq!(calendar.folder_class.as_deref(), Some("IPF.Appointment"));
    assert_eq!(calendar.total_count, Some(1));
    assert_eq!(calendar.unread_count, None, "calendar folders have no unread count");
    assert!(calendar.effective_rights.as_ref().is_some_and(|r| r.read && r.create_contents && r.delete));
    let default =
        calendar.permissions.as_ref().unwrap().iter().find(|p| p.distinguished_user.as_deref() == Some("Default"));
    assert_eq!(default.map(|p| p.level.as_str()), Some("FreeBusyTimeOnly"));
    assert_eq!(top.unread_count, Some(0));
    assert!(top.child_folder_count.unwrap() >= 1);
    assert_eq!(r[3].status.code, "ErrorFolderNotFound", "the simulator has no journal");

    // By folder id: the same folder; IdOnly without extras is just the id.
    let req = get_folder::Request {
        folder_shape: Shape::id_only(),
        folder_ids: vec![FolderRef::Id(root.folder_id.clone().unwrap())],
    };
    let r = call(&env, "GetFolder answer", &header, |w| req.write(w), get_folder::parse_response).await;
    let again = &r[0].payload.as_ref().unwrap()[0];
    assert_eq!(again.folder_id, root.folder_id);
    assert_eq!((again.display_name.as_ref(), again.effective_rights.as_ref()), (None, None));
}

#[tokio::test]
async fn resolve_names_searches_the_directory() {
    use calbridge_ews::wire::ops::resolve_names;
    let env = env().await;
    let header = RequestHeader::new("Exchange2016");
    let resolve = |entry: &str| resolve_names::Request {
        return_full_contact_data: true,
        search_scope: Some("ActiveDirectory".into()),
        unresolved_entry: entry.into(),
    };
    let req = resolve("ann");
    let r = call(&env, "ResolveNames answer", &header, |w| req.write(w), resolve_names::parse_response).await;
    let set = r[0].payload.as_ref().unwrap();
    assert_eq!(r[0].status.code, "NoError");
    assert_eq!(set.resolutions[0].mailbox.email_address.as_deref(), Some("ann@test.example"));
    assert_eq!(set.resolutions[0].contact_display_name.as_deref(), Some("Ann Archer"));

    let req = resolve("SMTP:bob@test.example");
    let r = call(&env, "ResolveNames answer", &header, |w| req.write(w), resolve_names::parse_response).await;
    assert_eq!(r[0].payload.as_ref().unwrap().resolutions[0].mailbox.name.as_deref(), Some("Bob Baker"));

    let req = resolve("room");
    let r = call(&env, "ResolveNames answer", &header, |w| req.write(w), resolve_names::parse_response).await;
    assert_eq!(r[0].status.code, "ErrorNameResolutionMultipleResults");
    let found: Vec<_> =
        r[0].payload.as_ref().unwrap().resolutions.iter().filter_map(|x| x.mailbox.email_address.clone()).collect();
    assert_eq!(found, vec!["room1@test.example", "room2@test.example", "manual-room@test.example"]);

    let req = resolve("nobody");
    let r = call(&env, "ResolveNames answer", &header, |w| req.write(w), resolve_names::parse_response).await;
    assert_eq!(r[0].status.code, "ErrorNameResolutionNoResults");
    assert!(r[0].payload.is_none());
}

#[tokio::test]
async fn room_lists_come_from_the_scenario_or_from_the_rooms() {
    use calbridge_ews::wire::ops::{get_room_lists, get_rooms};
    let header = RequestHeader::new("Exchange2016");
    // Without [[room_lists]]: one list of every room.
    let env = env().await;
    let lists = call(
        &env,
        "GetRoomLists answer",
        &header,
        |w| get_room_lists::Request.write(w),
        get_room_lists::parse_response,
    )
    .await;
    assert_eq!(lists.room_lists.len(), 1);
    assert_eq!(lists.room_lists[0].email_address.as_deref(), Some("allrooms@test.example"));
    let req = get_rooms::Request { room_list: "allrooms@test.example".into() };
    let rooms = call(&env, "GetRooms answer", &header, |w| req.write(w), get_rooms::parse_response).await;
    let addresses: Vec<_> = rooms.rooms.iter().filter_map(|r| r.email_address.clone()).collect();
    assert_eq!(addresses, vec!["room1@test.example", "room2@test.example", "manual-room@test.example"]);
    assert_eq!(rooms.rooms[0].name.as_deref(), Some("Room 1 (12 seats)"));
    let req = get_rooms::Request { room_list: "nolist@test.example".into() };
    let none = call(&env, "GetRooms error answer", &header, |w| req.write(w), get_rooms::parse_response).await;
    assert_eq!(none.status.code, "ErrorNameResolutionNoResults");

    // With [[room_lists]].
    let lists_toml = r#"
[[room_lists]]
email = "north@test.example"
name = "North wing"
rooms = ["room2@test.example"]
"#;
    let env = Env::with(&format!("{SCENARIO}{ACCOUNTS}{lists_toml}")).await;
    let lists = call(
        &env,
        "GetRoomLists answer",
        &header,
        |w| get_room_lists::Request.write(w),
        get_room_lists::parse_response,
    )
    .await;
    assert_eq!(lists.room_lists[0].name.as_deref(), Some("North wing"));
    let req = get_rooms::Request { room_list: "NORTH@test.example".into() };
    let rooms = call(&env, "GetRooms answer", &header, |w| req.write(w), get_rooms::parse_response).await;
    assert_eq!(
        rooms.rooms.iter().filter_map(|r| r.email_address.as_deref()).collect::<Vec<_>>(),
        vec!["room2@test.example"]
    );

    // A list naming a person is refused when the scenario loads.
    let bad = lists_toml.replace("room2@", "ann@");
    let err = calbridge_sim::Scenario::from_toml(&format!("{SCENARIO}{bad}")).unwrap_err().to_string();
    assert!(err.contains("room_lists[0].rooms"), "{err}");
}

#[tokio::test]
async fn availability_reports_busy_types_details_and_the_merged_string() {
    use calbridge_ews::wire::ops::get_user_availability::{self, MailboxData};
    let env = env().await;
    let outlook = env.sim.outlook();
    let day = at(2, 0);
    let hour = |h: i64| day + chrono::Duration::hours(h);
    outlook.create_event("bob@test.example", NewEvent::new("Busy one", hour(9), hour(10))).unwrap();
    outlook
        .create_event("bob@test.example", NewEvent::new("Maybe", hour(11), hour(12)).with_show_as("tentative"))
        .unwrap();
    outlook.create_event("bob@test.example", NewEvent::new("Away", hour(13), hour(14)).with_show_as("oof")).unwrap();
    let mut private = NewEvent::new("Doctor", hour(15), hour(16));
    private.sensitivity = Some("private".into());
    outlook.create_event("bob@test.example", private).unwrap();
    let fmt = |t: chrono::DateTime<chrono::Utc>| t.format("%Y-%m-%dT%H:%M:%S").to_string();
    let req = |view: &str| get_user_availability::Request {
        utc_time_zone: true,
        mailboxes: vec![
            MailboxData {
                address: "bob@test.example".into(),
                attendee_type: "Required".into(),
                exclude_conflicts: Some(false),
            },
            MailboxData {
                address: "nobody@test.example".into(),
                attendee_type: "Required".into(),
                exclude_conflicts: None,
            },
        ],
        start_time: fmt(hour(8)),
        end_time: fmt(hour(17)),
        merged_free_busy_interval_in_minutes: Some(60),
        requested_view: view.into(),
    };
    // The service account impersonates Bob: details.
    let r = req("DetailedMerged");
    let answer = call(
        &env,
        "GetUserAvailability answer",
        &impersonating("bob@test.example"),
        |w| r.write(w),
        get_user_availability::parse_response,
    )
    .await;
    let bob = &answer[0];
    assert_eq!(bob.view_type.as_deref(), Some("DetailedMerged"));
    assert_eq!(bob.merged_free_busy.as_deref(), Some("020103020"));
    let kinds: Vec<_> = bob.events.iter().map(|e| e.busy_type.as_str()).collect();
    assert_eq!(kinds, vec!["Busy", "Tentative", "OOF", "Busy"]);
    assert_eq!(bob.events[0].start_time, fmt(hour(9)));
    assert_eq!(bob.events[0].subject.as_deref(), Some("Busy one"));
    assert_eq!(bob.events[3].subject, None, "a private item's subject is withheld");
    assert_eq!(answer[1].status.code, "ErrorMailRecipientNotFound");
    // Time windows Exchange refuses: longer than 62 days, or ending before they start.
    let mut long = req("FreeBusy");
    long.end_time = fmt(hour(8) + chrono::Duration::days(63));
    let (status, text) =
        post(&env, "svc-calbridge", "svc-password", &impersonating("bob@test.example"), |w| long.write(w)).await;
    assert_eq!(status, 500);
    assert!(text.contains("ErrorTimeIntervalTooBig"), "{text}");
    long.end_time = fmt(hour(7));
    let (_, text) =
        post(&env, "svc-calbridge", "svc-password", &impersonating("bob@test.example"), |w| long.write(w)).await;
    assert!(text.contains("ErrorInvalidTimeInterval"), "{text}");

    // Ann may not open Bob's calendar: free/busy only.
    let r = req("Detailed");
    let header = RequestHeader::new("Exchange2016");
    let xml = envelope::request(&header, |w| r.write(w));
    let resp = env
        .http
        .post(format!("{}/EWS/Exchange.asmx", env.run.base_url))
        .basic_auth("ann", Some("ann-password"))
        .body(xml)
        .send()
        .await
        .unwrap();
    let text = resp.text().await.unwrap();
    assert_valid("GetUserAvailability answer", &text);
    let doc = parse_doc(&text);
    let answer = get_user_availability::parse_response(envelope::split(&doc).unwrap().body).unwrap();
    assert_eq!(answer[0].view_type.as_deref(), Some("FreeBusy"));
    assert!(answer[0].events.iter().all(|e| e.subject.is_none()));
    assert_eq!(answer[0].merged_free_busy, None);
}

/// A bare HTTP/1.1 connection, so a test controls which requests share a TCP connection.
struct RawConnection {
    stream: tokio::io::BufReader<tokio::net::TcpStream>,
}

struct RawResponse {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl RawResponse {
    fn header_values(&self, name: &str) -> Vec<&str> {
        self.headers.iter().filter(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str()).collect()
    }
}

impl RawConnection {
    async fn open(env: &Env) -> RawConnection {
        let stream = tokio::net::TcpStream::connect(env.run.addr).await.unwrap();
        RawConnection { stream: tokio::io::BufReader::new(stream) }
    }

    async fn post(&mut self, authorization: Option<&str>, body: &str) -> RawResponse {
        use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt};
        let auth = authorization.map(|a| format!("Authorization: {a}\r\n")).unwrap_or_default();
        let request = format!(
            "POST /EWS/Exchange.asmx HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: text/xml; charset=utf-8\r\n{auth}Content-Length: {}\r\n\r\n{body}",
            body.len()
        );
        self.stream.get_mut().write_all(request.as_bytes()).await.unwrap();
        let mut line = String::new();
        self.stream.read_line(&mut line).await.unwrap();
        let status: u16 = line.split_whitespace().nth(1).expect("a status line").parse().unwrap();
        let mut headers = Vec::new();
        loop {
            line.clear();
            self.stream.read_line(&mut line).await.unwrap();
            let l = line.trim_end();
            if l.is_empty() {
                break;
            }
            let (k, v) = l.split_once(':').unwrap();
            headers.push((k.trim().to_string(), v.trim().to_string()));
        }
        let len: usize = headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
            .map(|(_, v)| v.parse().unwrap())
            .unwrap_or(0);
        let mut body = vec![0u8; len];
        self.stream.read_exact(&mut body).await.unwrap();
        RawResponse { status, headers, body: String::from_utf8(body).unwrap() }
    }
}

/// A minimal NTLMv2 client (MS-NLMP), written independently of the simulator's verifier.
mod ntlm_client {
    use hmac::{Hmac, Mac};
    use md4::{Digest, Md4};

    fn utf16(s: &str) -> Vec<u8> {
        s.encode_utf16().flat_map(|u| u.to_le_bytes()).collect()
    }

    fn hmac_md5(key: &[u8], data: &[u8]) -> Vec<u8> {
        let mut mac = Hmac::<md5::Md5>::new_from_slice(key).unwrap();
        mac.update(data);
        mac.finalize().into_bytes().to_vec()
    }

    const FLAGS: u32 = 0x0000_0001 | 0x0000_0200 | 0x0008_0000 | 0x0080_0000 | 0x2000_0000 | 0x0000_0004;

    pub fn negotiate() -> String {
        let mut m = b"NTLMSSP\0".to_vec();
        m.extend(1u32.to_le_bytes());
        m.extend(FLAGS.to_le_bytes());
        m.extend([0u8; 16]);
        base64::Engine::encode(&base64::engine::general_purpose::STANDARD, m)
    }

    /// The AUTHENTICATE message answering the CHALLENGE in a `WWW-Authenticate: NTLM …` value.
    pub fn authenticate(header: &str, domain: &str, user: &str, password: &str) -> String {
        use base64::Engine;
        let challenge = base64::engine::general_purpose::STANDARD
            .decode(header.strip_prefix("NTLM ").expect("an NTLM challenge"))
            .unwrap();
        assert_eq!(&challenge[..8], b"NTLMSSP\0");
        assert_eq!(u32::from_le_bytes(challenge[8..12].try_into().unwrap()), 2);
        let server_challenge = &challenge[24..32];
        let info_len = u16::from_le_bytes([challenge[40], challenge[41]]) as usize;
        let info_at = u32::from_le_bytes(challenge[44..48].try_into().unwrap()) as usize;
        let info = &challenge[info_at..info_at + info_len];
        // The timestamp pair (MsvAvTimestamp, 7) must be there: NTLMv2 with a MIC needs it.
        let mut timestamp = None;
        let mut i = 0;
        while i + 4 <= info.len() {
            let (id, len) =
                (u16::from_le_bytes([info[i], info[i + 1]]), u16::from_le_bytes([info[i + 2], info[i + 3]]) as usize);
            if id == 7 {
                timestamp = Some(info[i + 4..i + 4 + len].to_vec());
            }
            i += 4 + len;
        }
        let mut blob = vec![1, 1, 0, 0, 0, 0, 0, 0];
        blob.extend(timestamp.expect("the challenge carries a timestamp"));
        blob.extend([0x5a; 8]);
        blob.extend([0; 4]);
        blob.extend(info);
        blob.extend([0; 4]);
        let key = hmac_md5(&Md4::digest(utf16(password)), &utf16(&format!("{}{domain}", user.to_uppercase())));
        let mut nt = hmac_md5(&key, &[server_challenge, &blob].concat());
        nt.extend(&blob);
        let (d, u, ws) = (utf16(domain), utf16(user), utf16("TESTHOST"));
        let lm = vec![0u8; 24];
        let mut m = b"NTLMSSP\0".to_vec();
        m.extend(3u32.to_le_bytes());
        let mut offset = 64usize;
        let mut payload: Vec<u8> = Vec::new();
        for part in [&lm, &nt, &d, &u, &ws, &Vec::new()] {
            m.extend((part.len() as u16).to_le_bytes());
            m.extend((part.len() as u16).to_le_bytes());
            m.extend((offset as u32).to_le_bytes());
            offset += part.len();
            payload.extend(part.iter());
        }
        m.extend(FLAGS.to_le_bytes());
        m.extend(payload);
        base64::engine::general_purpose::STANDARD.encode(m)
    }
}

#[tokio::test]
async fn ntlm_signs_in_a_connection_which_then_carries_on_without_credentials() {
    let env = env().await;
    let folders = get_folder::Request {
        folder_shape: Shape::id_only(),
        folder_ids: vec![FolderRef::calendar(Some("ann@test.example"))],
    };
    let body = envelope::request(&impersonating("ann@test.example"), |w| folders.write(w));

    // No credentials: 401 offering Basic and NTLM (no app has the EWS role: no Bearer).
    let mut conn = RawConnection::open(&env).await;
    let r = conn.post(None, &body).await;
    assert_eq!(r.status, 401);
    assert_eq!(r.header_values("www-authenticate"), vec!["Basic realm=\"127.0.0.1\"", "NTLM"]);

    // The handshake on the same connection: NEGOTIATE → CHALLENGE → AUTHENTICATE.
    let r = conn.post(Some(&format!("NTLM {}", ntlm_client::negotiate())), &body).await;
    assert_eq!(r.status, 401);
    let challenge = r.header_values("www-authenticate")[0].to_string();
    let auth = ntlm_client::authenticate(&challenge, "TEST", "svc-calbridge", "svc-password");
    let r = conn.post(Some(&format!("NTLM {auth}")), &body).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_valid("GetFolder answer over NTLM", &r.body);
    // The connection stays signed in: no credentials, no new handshake.
    let r = conn.post(None, &body).await;
    assert_eq!(r.status, 200, "{}", r.body);
    // Another connection is not.
    let mut other = RawConnection::open(&env).await;
    assert_eq!(other.post(None, &body).await.status, 401);

    // A UPN with no domain works; a wrong password does not, and replaying is no good.
    let r = other.post(Some(&format!("NTLM {}", ntlm_client::negotiate())), &body).await;
    let challenge = r.header_values("www-authenticate")[0].to_string();
    let wrong = ntlm_client::authenticate(&challenge, "TEST", "svc-calbridge", "not-the-password");
    assert_eq!(other.post(Some(&format!("NTLM {wrong}")), &body).await.status, 401);
    assert_eq!(other.post(None, &body).await.status, 401);
    let r = other.post(Some(&format!("NTLM {}", ntlm_client::negotiate())), &body).await;
    let challenge = r.header_values("www-authenticate")[0].to_string();
    let upn = ntlm_client::authenticate(&challenge, "", "svc-calbridge@test.example", "svc-password");
    assert_eq!(other.post(Some(&format!("NTLM {upn}")), &body).await.status, 200);
    let mut third = RawConnection::open(&env).await;
    let r = third.post(Some(&format!("NTLM {}", ntlm_client::negotiate())), &body).await;
    assert_eq!(r.status, 401);
    assert_eq!(third.post(Some(&format!("NTLM {upn}")), &body).await.status, 401, "an answer to another challenge");
}

#[tokio::test]
async fn bearer_tokens_for_exchange_online_act_on_mailboxes_only_by_impersonation() {
    let apps = r#"
[[apps]]
client_id = "cccccccc-bbbb-4ccc-8ddd-eeeeeeeeeeee"
client_secret = "ews-app-secret"
roles = ["full_access_as_app"]
"#;
    let env = Env::with(&format!("{SCENARIO}{apps}{ACCOUNTS}")).await;
    let token = |client: &'static str, secret: &'static str, scope: &'static str| {
        let env = &env;
        async move {
            let resp = env
                .http
                .post(format!("{}/{}/oauth2/v2.0/token", env.run.base_url, common::TENANT_ID))
                .form(&[
                    ("grant_type", "client_credentials"),
                    ("client_id", client),
                    ("client_secret", secret),
                    ("scope", scope),
                ])
                .send()
                .await
                .unwrap();
            resp.json::<serde_json::Value>().await.unwrap()["access_token"].as_str().unwrap().to_string()
        }
    };
    let ews_token =
        token("cccccccc-bbbb-4ccc-8ddd-eeeeeeeeeeee", "ews-app-secret", "https://outlook.office365.com/.default").await;
    let folders = get_folder::Request { folder_shape: Shape::id_only(), folder_ids: vec![FolderRef::calendar(None)] };
    let send = |token: String, header: RequestHeader| {
        let env = &env;
        let xml = envelope::request(&header, |w| folders.write(w));
        async move {
            let resp = env
                .http
                .post(format!("{}/EWS/Exchange.asmx", env.run.base_url))
                .bearer_auth(token)
                .header("Content-Type", "text/xml; charset=utf-8")
                .body(xml)
                .send()
                .await
                .unwrap();
            let diagnostics = resp.headers().get("x-ms-diagnostics").map(|v| v.to_str().unwrap().to_string());
            (resp.status().as_u16(), diagnostics, resp.text().await.unwrap())
        }
    };
    // With OAuth configured, a request without credentials is offered Bearer too.
    let resp = env.http.post(format!("{}/EWS/Exchange.asmx", env.run.base_url)).body("<x/>").send().await.unwrap();
    let offered: Vec<_> =
        resp.headers().get_all("www-authenticate").iter().map(|v| v.to_str().unwrap().to_string()).collect();
    assert!(offered.len() == 3 && offered[2].starts_with("Bearer "), "{offered:?}");
    let (status, _, text) = send(ews_token.clone(), impersonating("bob@test.example")).await;
    assert_eq!(status, 200, "{text}");
    assert_valid("GetFolder answer with a token", &text);
    // Without impersonation an app token has no mailbox: Exchange Online's fault.
    let (status, _, text) = send(ews_token, RequestHeader::new("Exchange2016")).await;
    assert_eq!(status, 500);
    assert!(text.contains("ErrorInvalidExchangeImpersonationHeaderData"), "{text}");
    // A Graph token is for another audience; an app without the EWS role has no permission.
    let graph_token = token(common::CLIENT_ID, common::SECRET, "https://graph.microsoft.com/.default").await;
    let (status, diagnostics, _) = send(graph_token, impersonating("bob@test.example")).await;
    assert_eq!(status, 401);
    assert!(diagnostics.unwrap().contains("audience"));
    let no_role = token(common::CLIENT_ID, common::SECRET, "https://outlook.office365.com/.default").await;
    let (status, diagnostics, _) = send(no_role, impersonating("bob@test.example")).await;
    assert_eq!(status, 401);
    assert!(diagnostics.unwrap().contains("no permissions"));
}

#[tokio::test]
async fn throttling_answers_server_busy_with_the_back_off_as_exchange_does() {
    let env = env().await;
    let folders = get_folder::Request { folder_shape: Shape::id_only(), folder_ids: vec![FolderRef::calendar(None)] };
    let header = impersonating("ann@test.example");
    env.sim.faults().throttle_next(1, 3);
    // A request that does not sign in is refused before it counts.
    let (status, _) = post(&env, "svc-calbridge", "wrong", &header, |w| folders.write(w)).await;
    assert_eq!(status, 401);
    let (status, text) = post(&env, "svc-calbridge", "svc-password", &header, |w| folders.write(w)).await;
    assert_eq!(status, 500);
    let doc = parse_doc(&text);
    let fault = Fault::parse(envelope::split(&doc).unwrap().body).unwrap();
    assert_eq!((fault.response_code.as_deref(), fault.back_off_ms), (Some("ErrorServerBusy"), Some(3000)));
    assert_eq!(fault.fault_code, "a:ErrorServerBusy");
    // Only that one; the next is served.
    let (status, _) = post(&env, "svc-calbridge", "svc-password", &header, |w| folders.write(w)).await;
    assert_eq!(status, 200);
    assert_eq!(env.sim.stats().throttled_429, 1);
    // Injected failures: a 500 is Exchange's fault, a 503 the front end's.
    env.sim.faults().fail_next(1, 503);
    let (status, _) = post(&env, "svc-calbridge", "svc-password", &header, |w| folders.write(w)).await;
    assert_eq!(status, 503);
    env.sim.faults().fail_next(1, 500);
    let (status, text) = post(&env, "svc-calbridge", "svc-password", &header, |w| folders.write(w)).await;
    assert_eq!(status, 500);
    assert!(text.contains("ErrorInternalServerError"), "{text}");
}

#[tokio::test]
async fn recurring_series_expand_in_a_calendar_view_and_show_their_pattern_on_the_master() {
    use calbridge_ews::wire::ops::create_item;
    use calbridge_ews::wire::types::{Item, Recurrence, RecurrencePattern, RecurrenceRange};
    let env = env().await;
    let outlook = env.sim.outlook();
    let (start, end) = (at(7, 9), at(7, 10));
    let mut weekly = NewEvent::new("Weekly class", start, end);
    weekly.recurrence = Some(
        serde_json::from_value(serde_json::json!({
            "pattern": {"type": "weekly", "interval": 1, "daysOfWeek": [start.format("%A").to_string().to_lowercase()]},
            "range": {"type": "numbered", "startDate": start.format("%Y-%m-%d").to_string(), "numberOfOccurrences": 4},
        }))
        .unwrap(),
    );
    let master = outlook.create_event("ann@test.example", weekly).unwrap();
    let week = chrono::Duration::weeks(1);
    let instances = outlook.list_instances("ann@test.example", start - week, start + week * 5).unwrap();
    assert_eq!(instances.len(), 4);
    // The second occurrence moves an hour later; the third is cancelled.
    let moved = instances[1].id.clone().unwrap();
    outlook
        .update_event(
            "ann@test.example",
            &moved,
            serde_json::json!({"start": common::graph_time(start + week + chrono::Duration::hours(1)), "end": common::graph_time(end + week + chrono::Duration::hours(1))}),
        )
        .unwrap();
    outlook.delete_event("ann@test.example", instances[2].id.as_ref().unwrap()).unwrap();

    let header = impersonating("ann@test.example");
    let find = find_item::Request {
        traversal: "Shallow".into(),
        item_shape: shape(),
        view: Some(find_item::View::Calendar {
            start_date: (start - week).format("%Y-%m-%dT%H:%M:%SZ").to_string(),
            end_date: (start + week * 5).format("%Y-%m-%dT%H:%M:%SZ").to_string(),
            max_entries_returned: None,
        }),
        parent_folder_ids: vec![FolderRef::calendar(None)],
    };
    let r = call(&env, "FindItem answer", &header, |w| find.write(w), find_item::parse_response).await;
    let kinds: Vec<_> =
        r[0].payload.as_ref().unwrap().items.iter().map(|i| i.calendar_item_type.clone().unwrap()).collect();
    assert_eq!(kinds, vec!["Occurrence", "Exception", "Occurrence"]);

    let get = get_item::Request {
        item_shape: Shape { base_shape: "AllProperties".into(), body_type: None, additional_properties: vec![] },
        item_ids: vec![ItemRef::Item(calbridge_ews::wire::types::ItemId::new(
            master.replace('-', "+").replace('_', "/"),
            None,
        ))],
    };
    let r = call(&env, "GetItem answer", &header, |w| get.write(w), get_item::parse_response).await;
    let m = &r[0].payload.as_ref().unwrap()[0];
    assert_eq!(m.calendar_item_type.as_deref(), Some("RecurringMaster"));
    let rec = m.recurrence.as_ref().unwrap();
    assert!(matches!(&rec.pattern, RecurrencePattern::Weekly { interval: 1, .. }));
    assert!(matches!(&rec.range, RecurrenceRange::Numbered { number_of_occurrences: 4, .. }));
    let ews = |t: chrono::DateTime<chrono::Utc>| t.format("%Y-%m-%dT%H:%M:%SZ").to_string();
    assert_eq!(m.first_occurrence.as_ref().map(|o| o.start.clone()), Some(ews(start)));
    assert_eq!(m.last_occurrence.as_ref().map(|o| o.start.clone()), Some(ews(start + week * 3)));
    let modified = m.modified_occurrences.as_ref().unwrap();
    assert_eq!((modified.len(), modified[0].original_start.clone()), (1, ews(start + week)));
    assert_eq!(modified[0].start, ews(start + week + chrono::Duration::hours(1)));
    assert_eq!(m.deleted_occurrences.as_deref(), Some(&[ews(start + week * 2)][..]));
    // By index (1-based, counting the cancelled one) and back to the series.
    let master_ews = master.replace('-', "+").replace('_', "/");
    let by_index = |i: u32| get_item::Request {
        item_shape: shape(),
        item_ids: vec![ItemRef::Occurrence {
            recurring_master_id: master_ews.clone(),
            change_key: None,
            instance_index: i,
        }],
    };
    let req = by_index(1);
    let r = call(&env, "GetItem answer", &header, |w| req.write(w), get_item::parse_response).await;
    let first = r[0].payload.as_ref().unwrap()[0].clone();
    assert_eq!((first.calendar_item_type.as_deref(), first.start.clone()), (Some("Occurrence"), Some(ews(start))));
    let req = by_index(2);
    let r = call(&env, "GetItem answer", &header, |w| req.write(w), get_item::parse_response).await;
    assert_eq!(r[0].payload.as_ref().unwrap()[0].calendar_item_type.as_deref(), Some("Exception"));
    for (i, code) in [
        (3, "ErrorCalendarOccurrenceIsDeletedFromRecurrence"),
        (5, "ErrorCalendarOccurrenceIndexIsOutOfRecurrenceRange"),
    ] {
        let req = by_index(i);
        let (_, text) = post(&env, "svc-calbridge", "svc-password", &header, |w| req.write(w)).await;
        assert_valid("GetItem error answer", &text);
        assert!(text.contains(code), "{i}: {text}");
    }
    let req = get_item::Request {
        item_shape: shape(),
        item_ids: vec![ItemRef::RecurringMaster { occurrence_id: first.item_id.clone().unwrap().id, change_key: None }],
    };
    let r = call(&env, "GetItem answer", &header, |w| req.write(w), get_item::parse_response).await;
    assert_eq!(r[0].payload.as_ref().unwrap()[0].calendar_item_type.as_deref(), Some("RecurringMaster"));

    // The exception's own id reads the exception.
    let get = get_item::Request { item_shape: shape(), item_ids: vec![ItemRef::Item(modified[0].item_id.clone())] };
    let r = call(&env, "GetItem answer", &header, |w| get.write(w), get_item::parse_response).await;
    assert_eq!(r[0].payload.as_ref().unwrap()[0].calendar_item_type.as_deref(), Some("Exception"));

    // The fourth occurrence renamed by index becomes an exception; the first deleted by index
    // is cancelled.
    use calbridge_ews::wire::ops::{delete_item, update_item};
    let occurrence =
        |i: u32| ItemRef::Occurrence { recurring_master_id: master_ews.clone(), change_key: None, instance_index: i };
    let rename = update_item::Request {
        conflict_resolution: "AutoResolve".into(),
        message_disposition: Some("SaveOnly".into()),
        send_meeting_invitations_or_cancellations: Some("SendToNone".into()),
        item_changes: vec![update_item::ItemChange {
            item_id: occurrence(4),
            updates: vec![update_item::FieldUpdate::Set {
                path: PropertyPath::field("item:Subject"),
                item: Item { subject: Some("Weekly class: the last one".into()), ..Item::calendar() },
            }],
        }],
    };
    let r = call(&env, "UpdateItem answer", &header, |w| rename.write(w), update_item::parse_response).await;
    let renamed = r[0].payload.as_ref().unwrap()[0].item_id.clone().unwrap();
    let delete = delete_item::Request {
        delete_type: "HardDelete".into(),
        send_meeting_cancellations: Some("SendToNone".into()),
        affected_task_occurrences: Some("AllOccurrences".into()),
        item_ids: vec![occurrence(1)],
    };
    let r = call(&env, "DeleteItem answer", &header, |w| delete.write(w), delete_item::parse_response).await;
    assert_eq!(r[0].status.code, "NoError");
    let left = outlook.list_instances("ann@test.example", start - week, start + week * 5).unwrap();
    let seen: Vec<_> = left.iter().map(|e| (e.kind.clone().unwrap(), e.subject.clone().unwrap())).collect();
    assert_eq!(
        seen,
        vec![
            ("exception".to_string(), "Weekly class".to_string()),
            ("exception".to_string(), "Weekly class: the last one".to_string())
        ]
    );
    assert_eq!(renamed.id.replace('+', "-").replace('/', "_"), left[1].id.clone().unwrap());
    assert_eq!(renamed.change_key, left[1].change_key);

    // A daily series created over EWS recurs over Graph too.
    let item = Item {
        subject: Some("Daily stand-up".into()),
        start: Some(ews(at(20, 8))),
        end: Some(ews(at(20, 8) + chrono::Duration::minutes(15))),
        recurrence: Some(Recurrence {
            pattern: RecurrencePattern::Daily { interval: 1 },
            range: RecurrenceRange::Numbered {
                start_date: at(20, 8).format("%Y-%m-%d").to_string(),
                number_of_occurrences: 3,
            },
        }),
        ..Item::calendar()
    };
    let create = create_item::Request {
        send_meeting_invitations: Some("SendToNone".into()),
        message_disposition: None,
        saved_item_folder_id: None,
        items: vec![item],
    };
    let r = call(&env, "CreateItem answer", &header, |w| create.write(w), create_item::parse_response).await;
    assert_eq!(r[0].status.code, "NoError");
    let graph = outlook.list_instances("ann@test.example", at(19, 0), at(25, 0)).unwrap();
    let standups: Vec<_> = graph.iter().filter(|e| e.subject.as_deref() == Some("Daily stand-up")).collect();
    assert_eq!(standups.len(), 3);
    assert!(standups.iter().all(|e| e.kind.as_deref() == Some("occurrence")));
}

#[tokio::test]
async fn server_time_zones_describe_the_yearly_rule_clients_send_back_for_free_busy() {
    let env = env().await;
    let header = RequestHeader::new("Exchange2016");
    let ask = |ids: &'static [&'static str], full: &'static str| {
        move |w: &mut XmlWriter| {
            w.open("m:GetServerTimeZones", &[("ReturnFullTimeZoneData", full)]).open("m:Ids", &[]);
            for id in ids {
                w.leaf("t:Id", id);
            }
            w.close("m:Ids").close("m:GetServerTimeZones");
        }
    };
    let (status, text) =
        post(&env, "svc-calbridge", "svc-password", &header, ask(&["W. Europe Standard Time", "UTC"], "true")).await;
    assert_eq!(status, 200, "{text}");
    assert_valid("GetServerTimeZones answer", &text);
    let doc = parse_doc(&text);
    let defs: Vec<_> = doc.descendants().filter(|n| n.has_tag_name("TimeZoneDefinition")).collect();
    assert_eq!(defs.len(), 2);
    let text_of = |n: roxmltree::Node<'_, '_>, name: &str| {
        n.descendants()
            .filter(|c| c.has_tag_name(name))
            .map(|c| c.text().unwrap_or_default().to_string())
            .collect::<Vec<_>>()
    };
    let periods: Vec<_> = defs[0]
        .descendants()
        .filter(|n| n.has_tag_name("Period"))
        .map(|p| p.attribute("Bias").unwrap().to_string())
        .collect();
    assert_eq!(periods, vec!["-PT60M", "-PT120M"]);
    assert_eq!(text_of(defs[0], "Month"), vec!["3", "10"]);
    assert_eq!(text_of(defs[0], "Occurrence"), vec!["-1", "-1"]);
    assert_eq!(text_of(defs[0], "TimeOffset"), vec!["PT2H0M", "PT3H0M"]);
    assert_eq!(text_of(defs[1], "RecurringDayTransition"), Vec::<String>::new(), "UTC has no daylight saving");

    let (_, text) = post(&env, "svc-calbridge", "svc-password", &header, ask(&["Mars Standard Time"], "false")).await;
    assert_valid("GetServerTimeZones error answer", &text);
    assert!(text.contains("ErrorTimeZone"), "{text}");
}

/// exchangelib's own requests, as it sent them in a session against the simulator (see
/// `tests/exchangelib/README.md`), with `{{PLACEHOLDERS}}` for what differs between runs.
const EXCHANGELIB_REQUESTS: &[(&str, &str)] = &[
    ("00-ConvertId", include_str!("exchangelib/00-ConvertId.xml")),
    ("01-GetFolder", include_str!("exchangelib/01-GetFolder.xml")),
    ("02-GetFolder", include_str!("exchangelib/02-GetFolder.xml")),
    ("03-FindItem", include_str!("exchangelib/03-FindItem.xml")),
    ("04-GetItem", include_str!("exchangelib/04-GetItem.xml")),
    ("05-CreateItem", include_str!("exchangelib/05-CreateItem.xml")),
    ("06-GetItem", include_str!("exchangelib/06-GetItem.xml")),
    ("07-UpdateItem", include_str!("exchangelib/07-UpdateItem.xml")),
    ("08-SyncFolderItems", include_str!("exchangelib/08-SyncFolderItems.xml")),
    ("09-DeleteItem", include_str!("exchangelib/09-DeleteItem.xml")),
    ("10-ResolveNames", include_str!("exchangelib/10-ResolveNames.xml")),
    ("11-GetRoomLists", include_str!("exchangelib/11-GetRoomLists.xml")),
    ("12-GetRooms", include_str!("exchangelib/12-GetRooms.xml")),
    ("13-GetServerTimeZones", include_str!("exchangelib/13-GetServerTimeZones.xml")),
    ("14-GetUserAvailabilityRequest", include_str!("exchangelib/14-GetUserAvailabilityRequest.xml")),
];

#[tokio::test]
async fn exchangelibs_requests_replayed_are_answered_and_every_answer_validates() {
    use chrono::TimeZone;
    use std::collections::BTreeMap;
    let env = env().await;
    // The session's CalendarView covers 2027-01-04 to 2027-01-11; its meeting is on the 5th.
    let day = |d: u32, h: u32| chrono::Utc.with_ymd_and_hms(2027, 1, d, h, 0, 0).unwrap();
    let planning =
        env.sim.outlook().create_event("ann@test.example", NewEvent::new("Planning", day(6, 9), day(6, 10))).unwrap();
    let planning_ck = env.sim.outlook().get_event("ann@test.example", &planning).unwrap().change_key.unwrap();
    let mut vars: BTreeMap<&str, String> = BTreeMap::from([
        ("ORGANIZER", "ann@test.example".to_string()),
        ("ROOM", "room1@test.example".to_string()),
        ("ROOM_LIST", "allrooms@test.example".to_string()),
        ("VIEW_ITEM_ID", planning.replace('-', "+").replace('_', "/")),
        ("CHANGE_KEY", planning_ck),
    ]);
    let attr = |text: &str, element: &str, name: &str| -> Option<String> {
        let doc = parse_doc(text);
        let node = doc.descendants().find(|n| n.has_tag_name(element))?;
        node.attribute(name).map(str::to_string)
    };
    let leaf = |text: &str, element: &str| -> Option<String> {
        let doc = parse_doc(text);
        let node = doc.descendants().find(|n| n.has_tag_name(element))?;
        Some(node.text().unwrap_or_default().to_string())
    };
    let replay = |name: &str, template: &str, vars: &BTreeMap<&str, String>| {
        let mut xml = template.to_string();
        for (k, v) in vars {
            xml = xml.replace(&format!("{{{{{k}}}}}"), v);
        }
        assert!(!xml.contains("{{"), "{name}: a placeholder is left: {xml}");
        let env = &env;
        let name = name.to_string();
        async move {
            let resp = env
                .http
                .post(format!("{}/EWS/Exchange.asmx", env.run.base_url))
                .basic_auth("svc-calbridge", Some("svc-password"))
                .header("Content-Type", "text/xml; charset=utf-8")
                .body(xml)
                .send()
                .await
                .unwrap();
            let status = resp.status().as_u16();
            let text = resp.text().await.unwrap();
            assert_eq!(status, 200, "{name}: {text}");
            assert_valid(&format!("{name} answer"), &text);
            let errors = text.matches("ResponseClass=\"Error\"").count();
            assert_eq!(errors, usize::from(name == "00-ConvertId"), "{name}: {text}");
            text
        }
    };
    for (name, template) in EXCHANGELIB_REQUESTS {
        let text = replay(name, template, &vars).await;
        match *name {
            "00-ConvertId" => assert!(text.contains("ErrorInvalidIdMalformed")),
            // A view is FindItem for the ids, then GetItem for the fields.
            "03-FindItem" => assert!(text.contains(&vars["VIEW_ITEM_ID"]), "{text}"),
            "04-GetItem" => assert!(text.contains("<t:Subject>Planning</t:Subject>"), "{text}"),
            "05-CreateItem" => {
                vars.insert("ITEM_ID", attr(&text, "ItemId", "Id").unwrap());
                vars.insert("CHANGE_KEY", attr(&text, "ItemId", "ChangeKey").unwrap());
            }
            "06-GetItem" => {
                assert!(text.contains("<t:ResponseType>Accept</t:ResponseType>"), "the room accepts: {text}");
                vars.insert("UID", leaf(&text, "UID").unwrap());
            }
            "07-UpdateItem" => {
                let ck = attr(&text, "ItemId", "ChangeKey").unwrap();
                assert_ne!(Some(&ck), vars.get("CHANGE_KEY"));
                vars.insert("CHANGE_KEY", ck);
                let ev = env
                    .sim
                    .outlook()
                    .get_event("ann@test.example", &vars["ITEM_ID"].replace('+', "-").replace('/', "_"));
                assert_eq!(ev.unwrap().subject.as_deref(), Some("Replayed session (moved)"));
            }
            "08-SyncFolderItems" => {
                // The listing, then (the same request with the state it gave) nothing new.
                assert!(text.contains("<t:Subject>Replayed session (moved)</t:Subject>"), "{text}");
                let state = leaf(&text, "SyncState").unwrap();
                let again = template.replace(
                    "<m:MaxChangesReturned>",
                    &format!("<m:SyncState>{state}</m:SyncState><m:MaxChangesReturned>"),
                );
                let text = replay("08-SyncFolderItems with a state", &again, &vars).await;
                assert!(text.contains("<m:Changes />"), "{text}");
            }
            "09-DeleteItem" => {
                assert!(env
                    .sim
                    .outlook()
                    .get_event("ann@test.example", &vars["ITEM_ID"].replace('+', "-").replace('/', "_"))
                    .is_err())
            }
            "12-GetRooms" => assert!(text.contains("room1@test.example")),
            "14-GetUserAvailabilityRequest" => assert!(text.contains("<t:MergedFreeBusy>"), "{text}"),
            _ => {}
        }
    }
}

#[tokio::test]
async fn an_operation_the_simulator_lacks_is_refused_without_blaming_the_version() {
    let env = env().await;
    let (status, text) = post(&env, "svc-calbridge", "svc-password", &RequestHeader::new("Exchange2016"), |w| {
        w.empty("m:GetInboxRules", &[]);
    })
    .await;
    assert_eq!(status, 500);
    let doc = parse_doc(&text);
    let fault = Fault::parse(envelope::split(&doc).unwrap().body).unwrap();
    assert_eq!(fault.response_code.as_deref(), Some("ErrorInvalidOperation"), "{text}");
}
