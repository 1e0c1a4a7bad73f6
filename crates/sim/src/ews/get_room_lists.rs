//! GetRoomLists — <https://learn.microsoft.com/exchange/client-developer/web-service-reference/getroomlists-operation>
//!
//! The scenario's `[[room_lists]]`; without any, one list of every room mailbox,
//! `allrooms@{domain}` ("All rooms"). Lists are distribution groups (`PublicDL`).

use super::{schema_fault, Ctx, SoapFault};
use crate::ews_wire::envelope::Status;
use crate::ews_wire::ops::get_room_lists;
use crate::ews_wire::types::EmailAddress;
use crate::ews_wire::xml::{Node, XmlWriter};
use crate::scenario::{MailboxKind, RoomListSpec};
use crate::Simulator;

/// The organisation's room lists, as configured or derived.
pub(crate) fn room_lists(sim: &Simulator) -> Vec<RoomListSpec> {
    let scenario = &sim.inner.scenario;
    if !scenario.room_lists.is_empty() {
        return scenario.room_lists.clone();
    }
    let rooms: Vec<String> =
        scenario.mailboxes.iter().filter(|m| m.kind == MailboxKind::Room).map(|m| m.email.clone()).collect();
    if rooms.is_empty() {
        return vec![];
    }
    vec![RoomListSpec { email: format!("allrooms@{}", scenario.tenant.domain), name: "All rooms".into(), rooms }]
}

pub(crate) fn handle(ctx: &Ctx, body: Node<'_, '_>, w: &mut XmlWriter) -> Result<(), SoapFault> {
    get_room_lists::Request::parse(body).map_err(schema_fault)?;
    let lists = room_lists(&ctx.sim)
        .into_iter()
        .map(|l| EmailAddress {
            name: Some(l.name),
            email_address: Some(l.email),
            routing_type: Some("SMTP".into()),
            mailbox_type: Some("PublicDL".into()),
        })
        .collect();
    get_room_lists::write_response(w, &get_room_lists::Response { status: Status::ok(), room_lists: lists });
    Ok(())
}
