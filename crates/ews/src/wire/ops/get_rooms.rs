//! GetRooms — <https://learn.microsoft.com/exchange/client-developer/web-service-reference/getrooms-operation>
//!
//! The rooms of one room list (by the list's address). A single-message answer like
//! GetRoomLists; an unknown list is `ErrorNameResolutionNoResults`.

use super::super::envelope::{expect_operation, Status};
use super::super::types::EmailAddress;
use super::super::xml::{Node, NodeExt, WireError, XmlWriter, NS_MESSAGES, NS_TYPES};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request {
    pub room_list: String,
}

impl Request {
    pub fn write(&self, w: &mut XmlWriter) {
        w.open("m:GetRooms", &[]).open("m:RoomList", &[]).leaf("t:EmailAddress", &self.room_list);
        w.close("m:RoomList").close("m:GetRooms");
    }
    pub fn parse(body: Node<'_, '_>) -> Result<Self, WireError> {
        expect_operation(body, "GetRooms")?;
        let list = body.m("RoomList").ok_or_else(|| WireError::missing("GetRooms/RoomList"))?;
        Ok(Request {
            room_list: list
                .t_text("EmailAddress")
                .map(|s| s.trim().to_string())
                .ok_or_else(|| WireError::missing("GetRooms/RoomList/EmailAddress"))?,
        })
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Response {
    pub status: Status,
    pub rooms: Vec<EmailAddress>,
}

pub fn write_response(w: &mut XmlWriter, r: &Response) {
    r.status.open(w, "m:GetRoomsResponse");
    if r.status.is_success() {
        w.open("m:Rooms", &[]);
        for a in &r.rooms {
            w.open("t:Room", &[]);
            a.write(w, "t:Id");
            w.close("t:Room");
        }
        w.close("m:Rooms");
    }
    w.close("m:GetRoomsResponse");
}

pub fn parse_response(body: Node<'_, '_>) -> Result<Response, WireError> {
    if !body.is(NS_MESSAGES, "GetRoomsResponse") {
        return Err(WireError::Unexpected { expected: "m:GetRoomsResponse".into(), found: body.local().into() });
    }
    Ok(Response {
        status: Status::parse(body)?,
        rooms: body
            .m("Rooms")
            .map(|l| l.children_named(NS_TYPES, "Room").filter_map(|r| r.t("Id")).map(EmailAddress::parse).collect())
            .unwrap_or_default(),
    })
}
