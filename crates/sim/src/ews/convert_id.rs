//! ConvertId — <https://learn.microsoft.com/exchange/client-developer/web-service-reference/convertid-operation>
//!
//! The simulator's ids are opaque bytes that name their mailbox; the formats differ only in
//! how the bytes are written: `EwsId`, `EwsLegacyId`, `EntryId` and `StoreId` in standard
//! base64, `HexEntryId` in upper-case hex, `OwaId` and Exchange Online's `RestId` (Graph's
//! id) in URL-safe base64. An id that does not decode, or does not belong to the mailbox
//! named beside it, is `ErrorInvalidIdMalformed` — which is also how clients such as
//! exchangelib learn the server's version: they convert the id `DUMMY` and read the answer's
//! `ServerVersionInfo`.

use base64::engine::general_purpose::{STANDARD, URL_SAFE};
use base64::Engine;

use super::{schema_fault, Ctx, SoapFault};
use crate::ews_wire::ops::convert_id::{self, AlternateId};
use crate::ews_wire::ops::Message;
use crate::ews_wire::xml::{Node, XmlWriter};

const FORMATS: &[&str] = &["EwsId", "EwsLegacyId", "EntryId", "HexEntryId", "StoreId", "OwaId", "RestId"];

fn decode(format: &str, id: &str) -> Option<Vec<u8>> {
    let id = id.trim();
    match format {
        "HexEntryId" => {
            if !id.len().is_multiple_of(2) {
                return None;
            }
            (0..id.len() / 2).map(|i| u8::from_str_radix(id.get(2 * i..2 * i + 2)?, 16).ok()).collect()
        }
        "OwaId" | "RestId" => URL_SAFE.decode(id).ok(),
        _ => STANDARD.decode(id).or_else(|_| URL_SAFE.decode(id)).ok(),
    }
}

fn encode(format: &str, bytes: &[u8]) -> String {
    match format {
        "HexEntryId" => bytes.iter().map(|b| format!("{b:02X}")).collect(),
        "OwaId" | "RestId" => URL_SAFE.encode(bytes),
        _ => STANDARD.encode(bytes),
    }
}

fn malformed() -> Message<AlternateId> {
    Message::error("ErrorInvalidIdMalformed", "Id is malformed.")
}

fn convert(ctx: &Ctx, source: &AlternateId, destination: &str) -> Message<AlternateId> {
    if !FORMATS.contains(&source.format.as_str()) {
        return Message::error("ErrorInvalidIdMalformed", format!("The id format {} is not known.", source.format));
    }
    let Some(bytes) = decode(&source.format, &source.id) else { return malformed() };
    // Every simulator id carries its mailbox's GUID after a 4-byte header.
    let Some(mb) = ctx.sim.inner.state.lock().unwrap().mailbox(&source.mailbox).cloned() else {
        return malformed();
    };
    let guid = mb.guid.hyphenated().to_string();
    if bytes.get(4..4 + guid.len()) != Some(guid.as_bytes()) {
        return malformed();
    }
    Message::ok(AlternateId { format: destination.to_string(), id: encode(destination, &bytes), mailbox: mb.email })
}

pub(crate) fn handle(ctx: &Ctx, body: Node<'_, '_>, w: &mut XmlWriter) -> Result<(), SoapFault> {
    let req = convert_id::Request::parse(body).map_err(schema_fault)?;
    if !FORMATS.contains(&req.destination_format.as_str()) {
        return Err(SoapFault {
            code: "ErrorSchemaValidation",
            message: format!(
                "The request failed schema validation: DestinationFormat {:?} is not an id format.",
                req.destination_format
            ),
        });
    }
    let messages: convert_id::Response =
        req.source_ids.iter().map(|s| convert(ctx, s, &req.destination_format)).collect();
    convert_id::write_response(w, &messages);
    Ok(())
}
