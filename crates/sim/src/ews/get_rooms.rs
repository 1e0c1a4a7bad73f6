//! GetRooms — <https://learn.microsoft.com/exchange/client-developer/web-service-reference/getrooms-operation>
//!
//! The rooms of one room list (see [`super::get_room_lists`]), with their display names; an
//! address that is no room list is `ErrorNameResolutionNoResults`.

use super::get_room_lists::room_lists;
use super::{schema_fault, Ctx, SoapFault};
use crate::ews_wire::envelope::Status;
use crate::ews_wire::ops::get_rooms;
use crate::ews_wire::types::EmailAddress;
use crate::ews_wire::xml::{Node, XmlWriter};

pub(crate) fn handle(ctx: &Ctx, body: Node<'_, '_>, w: &mut XmlWriter) -> Result<(), SoapFault> {
    let req = get_rooms::Request::parse(body).map_err(schema_fault)?;
    let list = room_lists(&ctx.sim).into_iter().find(|l| l.email.eq_ignore_ascii_case(&req.room_list));
    let response = match list {
        None => get_rooms::Response {
            status: Status::error("ErrorNameResolutionNoResults", "No results were found."),
            rooms: vec![],
        },
        Some(list) => {
            let state = ctx.sim.inner.state.lock().unwrap();
            let rooms = list
                .rooms
                .iter()
                .filter_map(|r| state.mailbox(r))
                .map(|m| EmailAddress::smtp(Some(&m.name), &m.email))
                .collect();
            get_rooms::Response { status: Status::ok(), rooms }
        }
    };
    get_rooms::write_response(w, &response);
    Ok(())
}
