//! Microsoft's documented EWS examples (`shared/protocol/ews/examples`), read with
//! calbridge's wire types: every request and response example of the operations calbridge
//! uses parses, what is read is asserted for the examples that matter, and what our types
//! write back from them validates against Microsoft's schema.

use calbridge_ews::testing::{ews_dir, examples, fix_soap_namespace, validate};
use calbridge_ews::wire::envelope::{self, Fault, RequestHeader, ServerVersionInfo};
use calbridge_ews::wire::ops::*;
use calbridge_ews::wire::xml::{parse, Limits, WireError};

/// Examples that are not what a server or client would send, with the documentation bug
/// that makes them so; each must fail with a clear error, not parse into something wrong.
const DOC_BUGS: &[(&str, &str)] = &[
    (
        "FindItem/05-request-how-to-delete-appointments-and-cancel-meetings-by-using-ews-in-exchange.xml",
        "the messages namespace has a trailing space",
    ),
    ("Subscribe/07-request-subscribe-operation.xml", "the Subscribe element has no namespace"),
];

/// Requests that use features calbridge does not read (other FindItem views); their parse
/// must say so.
const UNSUPPORTED: &[(&str, &str)] = &[
    ("FindItem/29-request-contactsview.xml", "calbridge reads CalendarView or IndexedPageItemView"),
    ("FindItem/33-request-fractionalpageitemview.xml", "calbridge reads CalendarView or IndexedPageItemView"),
];

/// Examples whose values the schema rejects (kept verbatim by the parser, so the re-written
/// envelope cannot validate either).
const INVALID_VALUES: &[(&str, &str)] = &[(
    "GetUserAvailability/06-request-getuseravailabilityrequest.xml",
    "EndTime 2006-02-30T23:59:59: there is no February 30th",
)];

/// Version values of doc examples that are typos (`Exchange207_SP1`): kept verbatim by the
/// parser, so the re-written envelope cannot validate.
const BAD_VERSIONS: &[&str] = &["Exchange207_SP1"];

fn with_envelope<T>(
    name: &str,
    raw: &str,
    f: impl FnOnce(RequestHeader, roxmltree::Node<'_, '_>) -> T,
) -> Result<T, WireError> {
    let xml = fix_soap_namespace(raw);
    let doc = parse(&xml, Limits::default()).map_err(|e| {
        eprintln!("{name}: {e}");
        e
    })?;
    let env = envelope::split(&doc)?;
    let header = RequestHeader::parse(env.header)?;
    Ok(f(header, env.body))
}

macro_rules! request_roundtrip {
    ($ews:expr, $op:literal, $module:ident, $failures:ident, $count:ident) => {
        for (file, raw) in examples(&$ews, $op, "request") {
            let name = format!("{}/{}", $op, file);
            let result = with_envelope(&name, &raw, |header, body| {
                $module::Request::parse(body).map(|req| {
                    let xml = envelope::request(&header, |w| req.write(w));
                    if !BAD_VERSIONS.contains(&header.version.as_str())
                        && !INVALID_VALUES.iter().any(|(f, _)| *f == name)
                    {
                        if let Err(e) = validate(&name, &xml) {
                            $failures
                                .push(format!("{name}: rewritten request invalid: {}", e.lines().next().unwrap_or("")));
                        }
                    }
                    req
                })
            })
            .and_then(|r| r);
            $count += 1;
            check(&name, result.map(|_| ()), &mut $failures);
        }
    };
}

macro_rules! response_roundtrip {
    ($ews:expr, $op:literal, $module:ident, $failures:ident, $count:ident) => {
        for (file, raw) in examples(&$ews, $op, "response") {
            let name = format!("{}/{}", $op, file);
            let result = with_envelope(&name, &raw, |_, body| {
                $module::parse_response(body).map(|resp| {
                    let xml =
                        envelope::response(&ServerVersionInfo::exchange2019(), |w| $module::write_response(w, &resp));
                    if let Err(e) = validate(&name, &xml) {
                        $failures
                            .push(format!("{name}: rewritten response invalid: {}", e.lines().next().unwrap_or("")));
                    }
                    resp
                })
            })
            .and_then(|r| r);
            $count += 1;
            check(&name, result.map(|_| ()), &mut $failures);
        }
    };
}

fn check(name: &str, result: Result<(), WireError>, failures: &mut Vec<String>) {
    let bug = DOC_BUGS.iter().chain(UNSUPPORTED).find(|(f, _)| *f == name);
    match (result, bug) {
        (Ok(()), None) => {}
        (Ok(()), Some((_, why))) => failures.push(format!("{name}: expected to be refused ({why}) but parsed")),
        (Err(e), Some((_, why))) => {
            let msg = e.to_string();
            assert!(!msg.is_empty(), "{name}: refused without a message");
            if UNSUPPORTED.iter().any(|(f, _)| *f == name) {
                assert!(msg.contains(why), "{name}: the error should name {why}: {msg}");
            }
        }
        (Err(e), None) => failures.push(format!("{name}: {e}")),
    }
}

#[test]
fn every_example_of_the_operations_calbridge_uses_parses_and_rewrites_valid() {
    let Some(ews) = ews_dir("every_example_of_the_operations_calbridge_uses_parses_and_rewrites_valid") else { return };
    let mut failures = Vec::new();
    let mut count = 0;
    request_roundtrip!(ews, "FindItem", find_item, failures, count);
    response_roundtrip!(ews, "FindItem", find_item, failures, count);
    request_roundtrip!(ews, "GetItem", get_item, failures, count);
    response_roundtrip!(ews, "GetItem", get_item, failures, count);
    request_roundtrip!(ews, "SyncFolderItems", sync_folder_items, failures, count);
    response_roundtrip!(ews, "SyncFolderItems", sync_folder_items, failures, count);
    request_roundtrip!(ews, "CreateItem", create_item, failures, count);
    response_roundtrip!(ews, "CreateItem", create_item, failures, count);
    request_roundtrip!(ews, "UpdateItem", update_item, failures, count);
    response_roundtrip!(ews, "UpdateItem", update_item, failures, count);
    request_roundtrip!(ews, "DeleteItem", delete_item, failures, count);
    response_roundtrip!(ews, "DeleteItem", delete_item, failures, count);
    request_roundtrip!(ews, "GetFolder", get_folder, failures, count);
    response_roundtrip!(ews, "GetFolder", get_folder, failures, count);
    request_roundtrip!(ews, "ResolveNames", resolve_names, failures, count);
    response_roundtrip!(ews, "ResolveNames", resolve_names, failures, count);
    request_roundtrip!(ews, "GetUserAvailability", get_user_availability, failures, count);
    response_roundtrip!(ews, "GetUserAvailability", get_user_availability, failures, count);
    request_roundtrip!(ews, "GetRoomLists", get_room_lists, failures, count);
    response_roundtrip!(ews, "GetRoomLists", get_room_lists, failures, count);
    request_roundtrip!(ews, "GetRooms", get_rooms, failures, count);
    response_roundtrip!(ews, "GetRooms", get_rooms, failures, count);
    request_roundtrip!(ews, "ConvertId", convert_id, failures, count);
    response_roundtrip!(ews, "ConvertId", convert_id, failures, count);
    request_roundtrip!(ews, "Subscribe", subscribe, failures, count);
    response_roundtrip!(ews, "Subscribe", subscribe, failures, count);
    request_roundtrip!(ews, "GetStreamingEvents", get_streaming_events, failures, count);
    response_roundtrip!(ews, "GetStreamingEvents", get_streaming_events, failures, count);
    request_roundtrip!(ews, "GetEvents", get_events, failures, count);
    response_roundtrip!(ews, "GetEvents", get_events, failures, count);
    request_roundtrip!(ews, "Unsubscribe", unsubscribe, failures, count);
    response_roundtrip!(ews, "Unsubscribe", unsubscribe, failures, count);
    assert!(count > 150, "only {count} examples were found");
    assert!(failures.is_empty(), "{} of {count} examples failed:\n{}", failures.len(), failures.join("\n"));
}

#[test]
fn faults_are_read_with_their_back_off() {
    let Some(ews) = ews_dir("faults_are_read_with_their_back_off") else { return };
    let raw = std::fs::read_to_string(ews.join("examples/Faults/ErrorServerBusy-exchangelib.xml")).unwrap();
    let xml = fix_soap_namespace(&raw);
    let doc = parse(&xml, Limits::default()).unwrap();
    let fault = Fault::parse(envelope::split(&doc).unwrap().body).expect("a soap:Fault");
    assert_eq!(fault.response_code.as_deref(), Some("ErrorServerBusy"));
    assert_eq!(fault.back_off_ms, Some(297749));
    for (file, raw) in examples(&ews, "Faults", "response") {
        let xml = fix_soap_namespace(&raw);
        let doc = parse(&xml, Limits::default()).unwrap();
        let fault = Fault::parse(envelope::split(&doc).unwrap().body).unwrap_or_else(|| panic!("{file}: not a fault"));
        assert!(!fault.fault_string.is_empty(), "{file}: {fault:?}");
    }
}

/// Parses one example response with `parse`.
fn read<T>(op: &str, file_prefix: &str, parse: impl Fn(roxmltree::Node<'_, '_>) -> Result<T, WireError>) -> Option<T> {
    let ews = ews_dir("documented_values_are_read")?;
    let (_, raw) = examples(&ews, op, "response")
        .into_iter()
        .find(|(f, _)| f.starts_with(file_prefix))
        .unwrap_or_else(|| panic!("{op}/{file_prefix}* is missing"));
    let xml = fix_soap_namespace(&raw);
    let doc = parse_doc(&xml);
    let body = envelope::split(&doc).unwrap().body;
    Some(parse(body).unwrap_or_else(|e| panic!("{op}/{file_prefix}: {e}")))
}

fn parse_doc(xml: &str) -> roxmltree::Document<'_> {
    parse(xml, Limits::default()).unwrap()
}

#[test]
fn documented_values_are_read() {
    use calbridge_ews::wire::types::{RecurrencePattern, RecurrenceRange};

    // FindItem with a CalendarView: five appointments, with ids, subjects and UTC times.
    let Some(r) = read("FindItem", "10-", find_item::parse_response) else { return };
    let root = r[0].payload.as_ref().unwrap();
    assert_eq!((root.total_items_in_view, root.includes_last_item_in_range, root.items.len()), (33, false, 5));
    let first = &root.items[0];
    assert_eq!(first.subject.as_deref(), Some("Contoso devs team meeting"));
    assert_eq!(first.item_id.as_ref().map(|i| (i.id.as_str(), i.change_key.as_deref())), Some(("AAMk", Some("DwAA"))));
    assert_eq!(
        (first.start.as_deref(), first.end.as_deref()),
        (Some("2013-08-21T19:30:00Z"), Some("2013-08-21T20:00:00Z"))
    );

    // SyncFolderItems: the state, the last-item flag and five creates.
    let r = read("SyncFolderItems", "02-", sync_folder_items::parse_response).unwrap();
    let s = r[0].payload.as_ref().unwrap();
    assert_eq!((s.sync_state.as_str(), s.includes_last_item_in_range, s.changes.len()), ("H4sIAAA==", true, 5));
    assert!(
        matches!(&s.changes[0], sync_folder_items::Change::Create(i) if i.item_id.as_ref().unwrap().id == "q04QAAAA==")
    );

    // GetItem of a recurring master: the weekly pattern, its range and its occurrences.
    let r = read("GetItem", "05-", get_item::parse_response).unwrap();
    let master = &r[0].payload.as_ref().unwrap()[0];
    assert_eq!(master.subject.as_deref(), Some("Weekly Update Meeting"));
    let rec = master.recurrence.as_ref().unwrap();
    assert_eq!(
        rec.pattern,
        RecurrencePattern::Weekly { interval: 1, days_of_week: "Saturday".into(), first_day_of_week: None }
    );
    assert!(matches!(&rec.range, RecurrenceRange::Numbered { number_of_occurrences: 10, .. }));
    assert_eq!(master.first_occurrence.as_ref().map(|o| o.start.as_str()), Some("2014-03-08T21:21:00Z"));
    assert_eq!(master.last_occurrence.as_ref().map(|o| o.original_start.as_str()), Some("2014-05-10T20:21:00Z"));

    // CreateItem: the new item's id and change key.
    let r = read("CreateItem", "43-", create_item::parse_response).unwrap();
    let id = r[0].payload.as_ref().unwrap()[0].item_id.clone().unwrap();
    assert_eq!((id.id.as_str(), id.change_key.as_deref()), ("AAAlAFV", Some("DwAAABYA")));

    // DeleteItem of an item that is gone: an error message with its code.
    let r = read("DeleteItem", "12-", delete_item::parse_response).unwrap();
    assert!(!r[0].status.is_success());
    assert_eq!(r[0].status.code, "ErrorItemNotFound");

    // ResolveNames: the resolved mailbox.
    let r = read("ResolveNames", "07-", resolve_names::parse_response).unwrap();
    let set = r[0].payload.as_ref().unwrap();
    assert_eq!(set.resolutions[0].mailbox.email_address.as_deref(), Some("User2@example.com"));

    // GetRoomLists and GetRooms.
    let r = read("GetRoomLists", "02-", get_room_lists::parse_response).unwrap();
    assert!(r.status.is_success());
    let lists: Vec<_> = r.room_lists.iter().filter_map(|a| a.email_address.as_deref()).collect();
    assert_eq!(lists, ["bldg1rooms@contoso.com", "bldg2rooms@contoso.com", "bldg3rooms@contoso.com"]);
    assert_eq!(r.room_lists[0].mailbox_type.as_deref(), Some("PublicDL"));
    let r = read("GetRooms", "03-", get_rooms::parse_response).unwrap();
    let rooms: Vec<_> = r.rooms.iter().filter_map(|a| a.email_address.as_deref()).collect();
    assert_eq!(&rooms[..2], ["Room01@contoso.com", "Room02@contoso.com"]);

    // GetUserAvailability: two mailboxes, their busy intervals.
    let r = read("GetUserAvailability", "02-", get_user_availability::parse_response).unwrap();
    assert_eq!(r.len(), 2);
    assert_eq!(r[0].view_type.as_deref(), Some("FreeBusy"));
    let busy: Vec<_> =
        r[0].events.iter().map(|e| (e.start_time.as_str(), e.end_time.as_str(), e.busy_type.as_str())).collect();
    assert_eq!(busy[1], ("2014-02-13T11:00:00", "2014-02-13T12:00:00", "Busy"));

    // ConvertId: the converted id, its format and mailbox.
    let r = read("ConvertId", "02-", convert_id::parse_response).unwrap();
    let a = r[0].payload.as_ref().unwrap();
    assert_eq!((a.format.as_str(), a.id.as_str(), a.mailbox.as_str()), ("OwaId", "RgAAAAAS2%2", "user@example.com"));
}

/// Requests of one operation's examples, parsed.
fn requests<T>(op: &str, parse: impl Fn(roxmltree::Node<'_, '_>) -> Result<T, WireError>) -> Option<Vec<(String, T)>> {
    let ews = ews_dir("notification_examples_are_read")?;
    let out = examples(&ews, op, "request")
        .into_iter()
        .filter(|(f, _)| !DOC_BUGS.iter().any(|(b, _)| *b == format!("{op}/{f}")))
        .map(|(f, raw)| {
            let t =
                with_envelope(&f, &raw, |_, body| parse(body)).and_then(|r| r).unwrap_or_else(|e| panic!("{f}: {e}"));
            (f, t)
        })
        .collect();
    Some(out)
}

#[test]
fn notification_examples_are_read() {
    // Subscribe: a pull request with its timeout, a streaming one, and the answers.
    let Some(subs) = requests("Subscribe", subscribe::Request::parse) else { return };
    let pull = &subs.iter().find(|(f, _)| f.starts_with("01-")).unwrap().1;
    assert_eq!(pull.kind, subscribe::Kind::Pull { timeout_minutes: 5 });
    assert_eq!(pull.event_types.len(), 6);
    assert!(
        matches!(&pull.folder_ids[0], calbridge_ews::wire::types::FolderRef::Distinguished { id, .. } if id == "inbox")
    );
    let streaming = &subs.iter().find(|(f, _)| f.starts_with("02-")).unwrap().1;
    assert_eq!(streaming.kind, subscribe::Kind::Streaming);
    assert!(streaming.event_types.iter().any(|e| e == "FreeBusyChangedEvent"));
    let r = read("Subscribe", "03-", subscribe::parse_response).unwrap();
    let made = r[0].payload.as_ref().unwrap();
    assert!(made.subscription_id.starts_with("JgBibjFwcjAzbWIy"), "{made:?}");
    assert_eq!(made.watermark, None, "a streaming subscription has no watermark");
    let r = read("Subscribe", "05-", subscribe::parse_response).unwrap();
    let made = r[0].payload.as_ref().unwrap();
    assert_eq!(
        (made.subscription_id.as_str(), made.watermark.as_deref()),
        ("39ea5d0f-f062-455e-a1e9-89c0304390f4", Some("AAAAAHgGAAAAAAAAAQ=="))
    );
    let r = read("Subscribe", "06-", subscribe::parse_response).unwrap();
    assert_eq!(r[0].status.code, "ErrorSubscriptionDelegateAccessNotSupported");

    // GetStreamingEvents: the ids and the connection timeout; the closing envelope.
    let reqs = requests("GetStreamingEvents", get_streaming_events::Request::parse).unwrap();
    let first = &reqs.iter().find(|(f, _)| f.starts_with("02-")).unwrap().1;
    assert_eq!(first.subscription_ids, ["f6bc657d-dde1-4f94-952d-143b95d6483d"]);
    assert_eq!(first.connection_timeout, 30);
    let r = read("GetStreamingEvents", "90-", get_streaming_events::parse_response).unwrap();
    assert!(r[0].status.is_success() && r[0].is_closed(), "{r:?}");
    assert!(r[0].notifications.is_empty());

    // GetEvents: the subscription and watermark asked for; two events with their watermarks.
    let reqs = requests("GetEvents", get_events::Request::parse).unwrap();
    let first = &reqs.iter().find(|(f, _)| f.starts_with("02-")).unwrap().1;
    assert_eq!(
        (first.subscription_id.as_str(), first.watermark.as_str()),
        ("f6bc657d-dde1-4f94-952d-143b95d6483d", "AAAAAMAGAAAAAAAAAQ==")
    );
    let r = read("GetEvents", "03-", get_events::parse_response).unwrap();
    let n = r[0].payload.as_ref().unwrap();
    assert_eq!(n.subscription_id, "f6bc657d-dde1-4f94-952d-143b95d6483d");
    assert_eq!((n.previous_watermark.as_deref(), n.more_events), (Some("AAAAAMAGAAAAAAAAAQ=="), Some(false)));
    assert_eq!(n.events.len(), 2);
    assert_eq!(n.events[0].kind, "NewMailEvent");
    assert_eq!(n.events[0].item_id.as_ref().map(|i| i.id.as_str()), Some("AQApAHR"));
    assert_eq!(n.events[1].time_stamp.as_deref(), Some("2006-08-22T01:00:50Z"));
    assert_eq!(n.last_watermark(), Some("AAAAAOQGAAAAAAAAAQ=="));
    assert!(n.has_changes());
    let r = read("GetEvents", "04-", get_events::parse_response).unwrap();
    assert_eq!(r[0].status.code, "ErrorSubscriptionAccessDenied");

    // Unsubscribe: the id; done, or not found.
    let reqs = requests("Unsubscribe", unsubscribe::Request::parse).unwrap();
    assert_eq!(reqs[0].1.subscription_id, "e6fbf5c1-7e26-4bc6-a5f2-882063d5e34e");
    assert!(read("Unsubscribe", "02-", unsubscribe::parse_response).unwrap()[0].status.is_success());
    assert_eq!(
        read("Unsubscribe", "03-", unsubscribe::parse_response).unwrap()[0].status.code,
        "ErrorSubscriptionNotFound"
    );
}
