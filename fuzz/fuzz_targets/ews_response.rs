//! Arbitrary bytes as an EWS answer, read the way calbridge's client reads one: decoded and
//! parsed within the limits, split into the SOAP envelope, the fault read, the header's
//! `ServerVersionInfo` read, then every operation's response parser on the body, and each
//! calendar item found converted to calbridge's model. Errors are fine; a panic, a hang or
//! unbounded memory is a bug.
#![no_main]

use calbridge_ews::convert;
use calbridge_ews::wire::envelope::{self, Fault, ServerVersionInfo};
use calbridge_ews::wire::ops::{
    convert_id, create_item, decline_item, delete_item, find_item, get_events, get_folder, get_item, get_room_lists,
    get_rooms, get_streaming_events, get_user_availability, resolve_names, subscribe, sync_folder_items, unsubscribe,
    update_item,
};
use calbridge_ews::wire::types::Item;
use calbridge_ews::wire::xml::{self, Limits, NodeExt, NS_TYPES};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let limits = Limits::default();
    // A streamed answer is cut into envelopes before each is read.
    if let Ok(s) = std::str::from_utf8(data) {
        let _ = get_streaming_events::next_envelope(s);
    }
    let Ok(text) = xml::decode(data, limits) else { return };
    let Ok(doc) = xml::parse(text, limits) else { return };
    let Ok(env) = envelope::split(&doc) else { return };
    if let Some(header) = env.header {
        if let Some(info) = header.t("ServerVersionInfo") {
            let _ = ServerVersionInfo::parse(info);
        }
    }
    if Fault::parse(env.body).is_some() {
        return;
    }
    let body = env.body;
    let _ = convert_id::parse_response(body);
    let _ = create_item::parse_response(body);
    let _ = decline_item::parse_response(body);
    let _ = delete_item::parse_response(body);
    let _ = find_item::parse_response(body);
    let _ = get_folder::parse_response(body);
    let _ = get_item::parse_response(body);
    let _ = get_room_lists::parse_response(body);
    let _ = get_rooms::parse_response(body);
    let _ = get_user_availability::parse_response(body);
    let _ = resolve_names::parse_response(body);
    let _ = update_item::parse_response(body);
    let _ = sync_folder_items::parse_response(body);
    let _ = subscribe::parse_response(body);
    let _ = get_streaming_events::parse_response(body);
    let _ = get_events::parse_response(body);
    let _ = unsubscribe::parse_response(body);
    // Every item, wherever it appears, read and converted to calbridge's model as the remote
    // does with what it pulled (the parsers above stop at a message's first error; this
    // reaches the items after it too).
    for node in doc.descendants().filter(|n| n.is_element() && n.tag_name().namespace() == Some(NS_TYPES)) {
        if matches!(node.local(), "CalendarItem" | "Item" | "MeetingRequest") {
            if let Ok(item) = Item::parse(node) {
                let _ = convert::remote_item(&item);
                let _ = convert::confirmed(&item);
            }
        }
    }
});
