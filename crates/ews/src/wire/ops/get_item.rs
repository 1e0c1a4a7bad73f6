//! GetItem — <https://learn.microsoft.com/exchange/client-developer/web-service-reference/getitem-operation-calendar-item>
//!
//! Reads items by id with an item shape: calbridge asks for the calendar fields it maps and
//! its provenance extended property.

use super::super::envelope::expect_operation;
use super::super::types::{Item, ItemRef, Shape};
use super::super::xml::{Node, NodeExt, WireError, XmlWriter};
use super::{parse_messages, write_messages, Message};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request {
    pub item_shape: Shape,
    pub item_ids: Vec<ItemRef>,
}

impl Request {
    pub fn write(&self, w: &mut XmlWriter) {
        w.open("m:GetItem", &[]);
        self.item_shape.write(w, "m:ItemShape");
        w.open("m:ItemIds", &[]);
        for id in &self.item_ids {
            id.write(w);
        }
        w.close("m:ItemIds").close("m:GetItem");
    }

    pub fn parse(body: Node<'_, '_>) -> Result<Self, WireError> {
        expect_operation(body, "GetItem")?;
        Ok(Request {
            item_shape: Shape::parse(body.m("ItemShape").ok_or_else(|| WireError::missing("GetItem/ItemShape"))?)?,
            item_ids: ItemRef::parse_all(body.m("ItemIds").ok_or_else(|| WireError::missing("GetItem/ItemIds"))?)?,
        })
    }
}

/// One message per requested id, each with the item (or an error such as `ErrorItemNotFound`).
pub type Response = Vec<Message<Vec<Item>>>;

pub fn write_response(w: &mut XmlWriter, r: &Response) {
    write_messages(w, "GetItem", r, &["m:Items"], write_items);
}

pub fn parse_response(body: Node<'_, '_>) -> Result<Response, WireError> {
    parse_messages(body, "GetItem", parse_items)
}

/// `<m:Items>…</m:Items>` (shared by GetItem, CreateItem, UpdateItem answers).
pub(crate) fn write_items(w: &mut XmlWriter, items: &Vec<Item>) {
    w.open("m:Items", &[]);
    for i in items {
        i.write(w);
    }
    w.close("m:Items");
}

pub(crate) fn parse_items(msg: Node<'_, '_>) -> Result<Vec<Item>, WireError> {
    msg.m("Items").map(Item::parse_all).transpose().map(Option::unwrap_or_default)
}
