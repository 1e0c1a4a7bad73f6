//! One file per EWS operation. Each opens with the operation and Microsoft's page, and
//! offers, for its request and its response, a Rust type with `write` (build the XML) and
//! `parse` (read it): calbridge's client writes requests and parses responses, the simulator
//! parses requests and writes responses, both with these types.

pub mod convert_id;
pub mod create_item;
pub mod decline_item;
pub mod delete_item;
pub mod find_item;
pub mod get_events;
pub mod get_folder;
pub mod get_item;
pub mod get_room_lists;
pub mod get_rooms;
pub mod get_streaming_events;
pub mod get_user_availability;
pub mod resolve_names;
pub mod subscribe;
pub mod sync_folder_items;
pub mod unsubscribe;
pub mod update_item;

use super::envelope::{response_messages, Status};
use super::xml::{Node, WireError, XmlWriter};

/// One response message: its status and, when it succeeded, its payload.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message<T> {
    pub status: Status,
    pub payload: Option<T>,
}

impl<T> Message<T> {
    pub fn ok(payload: T) -> Self {
        Message { status: Status::ok(), payload: Some(payload) }
    }
    pub fn error(code: &str, text: impl Into<String>) -> Self {
        Message { status: Status::error(code, text), payload: None }
    }
}

/// Writes `<m:{op}Response><m:ResponseMessages><m:{op}ResponseMessage …>…` for the common
/// shape of EWS answers; `on_error` lists the (empty) elements an error message still needs.
pub(crate) fn write_messages<T>(
    w: &mut XmlWriter,
    operation: &str,
    messages: &[Message<T>],
    on_error: &[&str],
    payload: impl Fn(&mut XmlWriter, &T),
) {
    let outer = format!("m:{operation}Response");
    let element = format!("m:{operation}ResponseMessage");
    w.open(&outer, &[]).open("m:ResponseMessages", &[]);
    for m in messages {
        m.status.open(w, &element);
        match &m.payload {
            Some(p) => payload(w, p),
            // Elements the schema requires even in an error message (`m:Items`).
            None => {
                for e in on_error {
                    w.empty(e, &[]);
                }
            }
        }
        w.close(&element);
    }
    w.close("m:ResponseMessages").close(&outer);
}

/// Reads the common shape of EWS answers; `payload` runs on successful (and warning)
/// messages.
pub(crate) fn parse_messages<T>(
    body: Node<'_, '_>,
    operation: &str,
    payload: impl Fn(Node<'_, '_>) -> Result<T, WireError>,
) -> Result<Vec<Message<T>>, WireError> {
    response_messages(body, operation)?
        .into_iter()
        .map(|m| {
            let status = Status::parse(m)?;
            let payload = if status.is_success() { Some(payload(m)?) } else { None };
            Ok(Message { status, payload })
        })
        .collect()
}
