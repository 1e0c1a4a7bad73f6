//! GetRoomLists — <https://learn.microsoft.com/exchange/client-developer/web-service-reference/getroomlists-operation>
//!
//! The organisation's room lists (distribution groups of rooms). The answer is a single
//! message: `m:GetRoomListsResponse` itself carries `ResponseClass` and `ResponseCode`.

use super::super::envelope::{expect_operation, Status};
use super::super::types::EmailAddress;
use super::super::xml::{Node, NodeExt, WireError, XmlWriter, NS_MESSAGES, NS_TYPES};

/// The request has no parameters.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Request;

impl Request {
    pub fn write(&self, w: &mut XmlWriter) {
        w.empty("m:GetRoomLists", &[]);
    }
    pub fn parse(body: Node<'_, '_>) -> Result<Self, WireError> {
        expect_operation(body, "GetRoomLists").map(|_| Request)
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Response {
    pub status: Status,
    pub room_lists: Vec<EmailAddress>,
}

pub fn write_response(w: &mut XmlWriter, r: &Response) {
    r.status.open(w, "m:GetRoomListsResponse");
    w.open("m:RoomLists", &[]);
    for a in &r.room_lists {
        a.write(w, "t:Address");
    }
    w.close("m:RoomLists").close("m:GetRoomListsResponse");
}

pub fn parse_response(body: Node<'_, '_>) -> Result<Response, WireError> {
    if !body.is(NS_MESSAGES, "GetRoomListsResponse") {
        return Err(WireError::Unexpected { expected: "m:GetRoomListsResponse".into(), found: body.local().into() });
    }
    Ok(Response {
        status: Status::parse(body)?,
        room_lists: body
            .m("RoomLists")
            .map(|l| l.children_named(NS_TYPES, "Address").map(EmailAddress::parse).collect())
            .unwrap_or_default(),
    })
}
