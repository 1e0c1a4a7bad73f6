//! CreateItem — <https://learn.microsoft.com/exchange/client-developer/web-service-reference/createitem-operation-calendar-item>
//!
//! Creates calendar items in a folder. `SendMeetingInvitations` (`SendToNone`,
//! `SendOnlyToAll`, `SendToAllAndSaveCopy`) decides whether attendees and resources are
//! invited; it is required when the items are calendar items.

use super::super::envelope::expect_operation;
use super::super::types::{FolderRef, Item};
use super::super::xml::{Node, NodeExt, WireError, XmlWriter};
use super::get_item::{parse_items, write_items};
use super::{parse_messages, write_messages, Message};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request {
    pub send_meeting_invitations: Option<String>,
    /// `SaveOnly`, `SendOnly`, `SendAndSaveCopy` (messages only).
    pub message_disposition: Option<String>,
    pub saved_item_folder_id: Option<FolderRef>,
    pub items: Vec<Item>,
}

impl Request {
    pub fn write(&self, w: &mut XmlWriter) {
        let mut a = vec![];
        if let Some(d) = &self.message_disposition {
            a.push(("MessageDisposition", d.as_str()));
        }
        if let Some(s) = &self.send_meeting_invitations {
            a.push(("SendMeetingInvitations", s.as_str()));
        }
        w.open("m:CreateItem", &a);
        if let Some(f) = &self.saved_item_folder_id {
            w.open("m:SavedItemFolderId", &[]);
            f.write(w);
            w.close("m:SavedItemFolderId");
        }
        w.open("m:Items", &[]);
        for i in &self.items {
            i.write(w);
        }
        w.close("m:Items").close("m:CreateItem");
    }

    pub fn parse(body: Node<'_, '_>) -> Result<Self, WireError> {
        expect_operation(body, "CreateItem")?;
        Ok(Request {
            send_meeting_invitations: body.attribute("SendMeetingInvitations").map(str::to_string),
            message_disposition: body.attribute("MessageDisposition").map(str::to_string),
            saved_item_folder_id: body
                .m("SavedItemFolderId")
                .and_then(|f| f.elements().find_map(FolderRef::parse))
                .transpose()?,
            items: Item::parse_all(body.m("Items").ok_or_else(|| WireError::missing("CreateItem/Items"))?)?,
        })
    }
}

/// One message per item: the new item's id and change key.
pub type Response = Vec<Message<Vec<Item>>>;

pub fn write_response(w: &mut XmlWriter, r: &Response) {
    write_messages(w, "CreateItem", r, &["m:Items"], write_items);
}

pub fn parse_response(body: Node<'_, '_>) -> Result<Response, WireError> {
    parse_messages(body, "CreateItem", parse_items)
}
