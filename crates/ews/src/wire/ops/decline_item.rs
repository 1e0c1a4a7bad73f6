//! DeclineItem — <https://learn.microsoft.com/exchange/client-developer/web-service-reference/declineitem>
//!
//! Not an operation of its own: a `CreateItem` whose item is the response object
//! `t:DeclineItem`, naming the meeting request or calendar item it answers with
//! `t:ReferenceItemId`. `MessageDisposition="SendAndSaveCopy"` sends the answer to the
//! organizer; the meeting leaves the declining mailbox's calendar. The answer is a
//! `CreateItemResponse` whose `m:Items` is empty (or holds the sent response message).

use super::super::envelope::expect_operation;
use super::super::types::{Body, ItemId};
use super::super::xml::{Node, NodeExt, WireError, XmlWriter, NS_TYPES};
use super::{parse_messages, write_messages, Message};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request {
    /// `SendAndSaveCopy` (tell the organizer), `SendOnly` or `SaveOnly`.
    pub message_disposition: String,
    /// A note to the organizer.
    pub body: Option<Body>,
    /// The meeting being declined, in the declining mailbox.
    pub reference_item_id: ItemId,
}

impl Request {
    pub fn write(&self, w: &mut XmlWriter) {
        w.open("m:CreateItem", &[("MessageDisposition", self.message_disposition.as_str())]);
        w.open("m:Items", &[]).open("t:DeclineItem", &[]);
        if let Some(b) = &self.body {
            w.leaf_with("t:Body", &[("BodyType", &b.body_type)], &b.text);
        }
        self.reference_item_id.write(w, "t:ReferenceItemId");
        w.close("t:DeclineItem").close("m:Items").close("m:CreateItem");
    }

    /// Reads a CreateItem that declines; `Ok(None)` when its items are not a `t:DeclineItem`
    /// (an ordinary CreateItem).
    pub fn parse(body: Node<'_, '_>) -> Result<Option<Self>, WireError> {
        expect_operation(body, "CreateItem")?;
        let Some(decline) = body
            .m("Items")
            .and_then(|items| items.elements().find(|e| e.tag_name().namespace() == Some(NS_TYPES)))
            .filter(|e| e.tag_name().name() == "DeclineItem")
        else {
            return Ok(None);
        };
        let reference =
            decline.t("ReferenceItemId").ok_or_else(|| WireError::missing("DeclineItem/ReferenceItemId"))?;
        Ok(Some(Request {
            message_disposition: body.attribute("MessageDisposition").unwrap_or("SaveOnly").to_string(),
            body: decline.t("Body").map(|n| Body {
                body_type: n.attribute("BodyType").unwrap_or("Text").to_string(),
                text: n.text().unwrap_or_default().to_string(),
            }),
            reference_item_id: ItemId::parse(reference)?,
        }))
    }
}

/// One message; its `m:Items` is empty.
pub type Response = Vec<Message<()>>;

pub fn write_response(w: &mut XmlWriter, r: &Response) {
    write_messages(w, "CreateItem", r, &["m:Items"], |w, _| {
        w.empty("m:Items", &[]);
    });
}

pub fn parse_response(body: Node<'_, '_>) -> Result<Response, WireError> {
    parse_messages(body, "CreateItem", |_| Ok(()))
}
