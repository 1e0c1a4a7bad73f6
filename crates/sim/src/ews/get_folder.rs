//! GetFolder — <https://learn.microsoft.com/exchange/client-developer/web-service-reference/getfolder-operation>
//!
//! The `calendar` folder (by distinguished id, optionally in another mailbox, or by folder
//! id) of a mailbox this request may open; other distinguished folders (`root`,
//! `msgfolderroot`, `inbox`) answer with an empty folder of their kind.

use super::convert::ews_id;
use super::{schema_fault, Ctx, SoapFault};
use crate::ews_wire::ops::{get_folder, Message};
use crate::ews_wire::types::{Folder, FolderRef, ItemId};
use crate::ews_wire::xml::{Node, XmlWriter};

pub(crate) fn handle(ctx: &Ctx, body: Node<'_, '_>, w: &mut XmlWriter) -> Result<(), SoapFault> {
    let req = get_folder::Request::parse(body).map_err(schema_fault)?;
    let messages: get_folder::Response = req
        .folder_ids
        .iter()
        .map(|f| match ctx.mailbox_for(f) {
            Ok(mb) => {
                let name = match f {
                    FolderRef::Distinguished { id, .. } => id.as_str(),
                    FolderRef::Id(_) => "calendar",
                };
                let count = ctx.sim.inner.state.lock().unwrap().events.get(&mb.key).map(|e| e.len()).unwrap_or(0);
                let folder = match name {
                    "calendar" => Folder {
                        element: "CalendarFolder".into(),
                        folder_id: Some(ItemId::new(ews_id(&mb.calendar_id), Some(format!("AgAAA{}", count)))),
                        folder_class: Some("IPF.Appointment".into()),
                        display_name: Some("Calendar".into()),
                        total_count: Some(count as i32),
                        child_folder_count: Some(0),
                        ..Default::default()
                    },
                    other => Folder {
                        element: "Folder".into(),
                        folder_id: Some(ItemId::new(ews_id(&format!("{}{other}", mb.calendar_id)), None)),
                        display_name: Some(other.to_string()),
                        total_count: Some(0),
                        child_folder_count: Some(0),
                        ..Default::default()
                    },
                };
                Message::ok(vec![folder])
            }
            Err((code, text)) => Message::error(code, text),
        })
        .collect();
    get_folder::write_response(w, &messages);
    Ok(())
}
