//! List places (`GET /places/microsoft.graph.room`, `GET /places/microsoft.graph.roomlist`,
//! `GET /places/{roomlist}/microsoft.graph.roomlist/rooms`) — https://learn.microsoft.com/graph/api/place-list?view=graph-rest-1.0
//!
//! Rooms are the scenario's room mailboxes; room lists are the same lists EWS's GetRoomLists
//! serves (the scenario's `[[room_lists]]`, else one list of every room). Needs the
//! `Place.Read.All` application permission. An address that is no room list is 404.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};

use super::Ctx;
use crate::http::{json_response, metadata};
use crate::scenario::MailboxKind;
use crate::state::{ApiError, Mailbox};

fn room_json(m: &Mailbox) -> Value {
    json!({
        "id": m.guid.hyphenated().to_string().to_ascii_uppercase(),
        "emailAddress": m.email,
        "displayName": m.name,
        "address": null,
        "geoCoordinates": null,
        "phone": null,
        "nickname": m.name,
        "label": null,
        "capacity": m.capacity,
        "building": m.office_location,
        "floorNumber": null,
        "isManaged": true,
        "isWheelchairAccessible": false,
        "bookingType": "standard",
        "tags": [],
        "audioDeviceName": null,
        "videoDeviceName": null,
        "displayDevice": null
    })
}

fn rooms_of<'a>(mailboxes: impl Iterator<Item = &'a Mailbox>) -> Vec<Value> {
    mailboxes.filter(|m| m.kind == MailboxKind::Room).map(room_json).collect()
}

/// `GET /places/microsoft.graph.room`: every room.
pub async fn rooms(ctx: Ctx) -> Response {
    let state = ctx.sim.inner.state.lock().unwrap();
    let value = rooms_of(state.mailboxes.iter());
    json_response(
        StatusCode::OK,
        &json!({"@odata.context": format!("{}#places/microsoft.graph.room", metadata(&ctx.base)), "value": value}),
    )
}

/// `GET /places/microsoft.graph.roomlist`: the room lists.
pub async fn room_lists(ctx: Ctx) -> Response {
    let lists = crate::ews::get_room_lists::room_lists(&ctx.sim);
    let value: Vec<Value> = lists
        .iter()
        .map(|l| {
            json!({
                "id": crate::ids::guid(&["roomlist", &l.email.to_ascii_lowercase()]).hyphenated().to_string().to_ascii_uppercase(),
                "displayName": l.name,
                "address": null,
                "geocoordinates": null,
                "phone": null,
                "emailAddress": l.email,
            })
        })
        .collect();
    json_response(
        StatusCode::OK,
        &json!({"@odata.context": format!("{}#places/microsoft.graph.roomList", metadata(&ctx.base)), "value": value}),
    )
}

/// `GET /places/{roomlist}/microsoft.graph.roomlist/rooms`: the rooms of one list.
pub async fn list_rooms(ctx: Ctx) -> Response {
    let wanted = ctx.param("place").to_string();
    let Some(list) =
        crate::ews::get_room_lists::room_lists(&ctx.sim).into_iter().find(|l| l.email.eq_ignore_ascii_case(&wanted))
    else {
        return ApiError::new(404, "ErrorItemNotFound", format!("The room list '{wanted}' was not found."))
            .into_response();
    };
    let state = ctx.sim.inner.state.lock().unwrap();
    let value = rooms_of(list.rooms.iter().filter_map(|r| state.mailbox(r)));
    json_response(
        StatusCode::OK,
        &json!({
            "@odata.context": format!("{}#places('{}')/microsoft.graph.roomList/rooms", metadata(&ctx.base), crate::http::encode(&list.email)),
            "value": value
        }),
    )
}
