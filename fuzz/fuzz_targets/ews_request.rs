//! Arbitrary bytes as an EWS request, read the way the simulator reads one from an untrusted
//! client: decoded and parsed within its limits, split into the SOAP envelope, the request
//! header (version, impersonation, time zone) read, then every operation's request parser on
//! the body. The simulator compiles these same wire files (`calbridge_sim::ews_wire`), so the
//! target uses them through calbridge-ews and needs no HTTP server. Errors are fine; a panic, a
//! hang or unbounded memory is a bug.
#![no_main]

use calbridge_ews::wire::envelope::{self, RequestHeader};
use calbridge_ews::wire::ops::{
    convert_id, create_item, decline_item, delete_item, find_item, get_events, get_folder, get_item, get_room_lists,
    get_rooms, get_streaming_events, get_user_availability, resolve_names, subscribe, sync_folder_items, unsubscribe,
    update_item,
};
use calbridge_ews::wire::xml::{self, Limits};
use libfuzzer_sys::fuzz_target;

/// The simulator's limits (crates/sim/src/ews/mod.rs).
const SIM_LIMITS: Limits = Limits { max_bytes: 8 * 1024 * 1024, max_nodes: 1_000_000, max_depth: 128 };

fuzz_target!(|data: &[u8]| {
    let Ok(text) = xml::decode(data, SIM_LIMITS) else { return };
    let Ok(doc) = xml::parse(text, SIM_LIMITS) else { return };
    let Ok(env) = envelope::split(&doc) else { return };
    let _ = RequestHeader::parse(env.header);
    let body = env.body;
    let _ = convert_id::Request::parse(body);
    let _ = create_item::Request::parse(body);
    let _ = decline_item::Request::parse(body);
    let _ = delete_item::Request::parse(body);
    let _ = find_item::Request::parse(body);
    let _ = get_folder::Request::parse(body);
    let _ = get_item::Request::parse(body);
    let _ = get_room_lists::Request::parse(body);
    let _ = get_rooms::Request::parse(body);
    let _ = get_user_availability::Request::parse(body);
    let _ = resolve_names::Request::parse(body);
    let _ = sync_folder_items::Request::parse(body);
    let _ = update_item::Request::parse(body);
    let _ = subscribe::Request::parse(body);
    let _ = get_streaming_events::Request::parse(body);
    let _ = get_events::Request::parse(body);
    let _ = unsubscribe::Request::parse(body);
});
