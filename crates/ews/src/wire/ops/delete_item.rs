//! DeleteItem — <https://learn.microsoft.com/exchange/client-developer/web-service-reference/deleteitem-operation>
//!
//! Deletes items (`DeleteType` `HardDelete`, `SoftDelete`, `MoveToDeletedItems`);
//! `SendMeetingCancellations` (`SendToNone`, `SendOnlyToAll`, `SendToAllAndSaveCopy`) is
//! required for calendar items and tells attendees of a meeting it is cancelled.

use super::super::envelope::expect_operation;
use super::super::types::ItemRef;
use super::super::xml::{Node, NodeExt, WireError, XmlWriter};
use super::{parse_messages, write_messages, Message};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request {
    pub delete_type: String,
    pub send_meeting_cancellations: Option<String>,
    pub affected_task_occurrences: Option<String>,
    pub item_ids: Vec<ItemRef>,
}

impl Request {
    pub fn write(&self, w: &mut XmlWriter) {
        let mut a = vec![("DeleteType", self.delete_type.as_str())];
        if let Some(s) = &self.send_meeting_cancellations {
            a.push(("SendMeetingCancellations", s.as_str()));
        }
        if let Some(s) = &self.affected_task_occurrences {
            a.push(("AffectedTaskOccurrences", s.as_str()));
        }
        w.open("m:DeleteItem", &a).open("m:ItemIds", &[]);
        for id in &self.item_ids {
            id.write(w);
        }
        w.close("m:ItemIds").close("m:DeleteItem");
    }

    pub fn parse(body: Node<'_, '_>) -> Result<Self, WireError> {
        expect_operation(body, "DeleteItem")?;
        Ok(Request {
            delete_type: body
                .attribute("DeleteType")
                .ok_or_else(|| WireError::missing("DeleteItem/@DeleteType"))?
                .to_string(),
            send_meeting_cancellations: body.attribute("SendMeetingCancellations").map(str::to_string),
            affected_task_occurrences: body.attribute("AffectedTaskOccurrences").map(str::to_string),
            item_ids: ItemRef::parse_all(body.m("ItemIds").ok_or_else(|| WireError::missing("DeleteItem/ItemIds"))?)?,
        })
    }
}

/// One message per id; the payload is empty.
pub type Response = Vec<Message<()>>;

pub fn write_response(w: &mut XmlWriter, r: &Response) {
    write_messages(w, "DeleteItem", r, &[], |_, _| {});
}

pub fn parse_response(body: Node<'_, '_>) -> Result<Response, WireError> {
    parse_messages(body, "DeleteItem", |_| Ok(()))
}
