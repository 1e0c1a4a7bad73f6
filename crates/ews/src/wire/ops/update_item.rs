//! UpdateItem — <https://learn.microsoft.com/exchange/client-developer/web-service-reference/updateitem-operation>
//!
//! Changes fields of items named by `ItemId` (with the `ChangeKey` last read), one
//! `SetItemField` / `AppendToItemField` / `DeleteItemField` per field. `ConflictResolution`
//! `NeverOverwrite` with a stale change key fails with `ErrorIrresolvableConflict`;
//! `SendMeetingInvitationsOrCancellations` decides whether attendees hear of it.

use super::super::envelope::expect_operation;
use super::super::types::{Item, ItemRef, PropertyPath};
use super::super::xml::{Node, NodeExt, WireError, XmlWriter, NS_TYPES};
use super::get_item::{parse_items, write_items};
use super::{parse_messages, write_messages, Message};

/// One field change.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FieldUpdate {
    /// Sets the field `path` to its value in `item` (which carries only that field).
    Set {
        path: PropertyPath,
        item: Item,
    },
    Append {
        path: PropertyPath,
        item: Item,
    },
    Delete {
        path: PropertyPath,
    },
}

impl FieldUpdate {
    pub fn path(&self) -> &PropertyPath {
        match self {
            FieldUpdate::Set { path, .. } | FieldUpdate::Append { path, .. } | FieldUpdate::Delete { path } => path,
        }
    }
}

/// `t:ItemChange`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ItemChange {
    pub item_id: ItemRef,
    pub updates: Vec<FieldUpdate>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request {
    /// `NeverOverwrite`, `AutoResolve`, `AlwaysOverwrite`.
    pub conflict_resolution: String,
    pub message_disposition: Option<String>,
    /// `SendToNone`, `SendOnlyToAll`, `SendOnlyToChanged`, `SendToAllAndSaveCopy`, `SendToChangedAndSaveCopy`.
    pub send_meeting_invitations_or_cancellations: Option<String>,
    pub item_changes: Vec<ItemChange>,
}

impl Request {
    pub fn write(&self, w: &mut XmlWriter) {
        let mut a = vec![];
        if let Some(d) = &self.message_disposition {
            a.push(("MessageDisposition", d.as_str()));
        }
        a.push(("ConflictResolution", self.conflict_resolution.as_str()));
        if let Some(s) = &self.send_meeting_invitations_or_cancellations {
            a.push(("SendMeetingInvitationsOrCancellations", s.as_str()));
        }
        w.open("m:UpdateItem", &a).open("m:ItemChanges", &[]);
        for c in &self.item_changes {
            w.open("t:ItemChange", &[]);
            c.item_id.write(w);
            w.open("t:Updates", &[]);
            for u in &c.updates {
                let (el, item) = match u {
                    FieldUpdate::Set { item, .. } => ("t:SetItemField", Some(item)),
                    FieldUpdate::Append { item, .. } => ("t:AppendToItemField", Some(item)),
                    FieldUpdate::Delete { .. } => ("t:DeleteItemField", None),
                };
                w.open(el, &[]);
                u.path().write(w);
                if let Some(i) = item {
                    i.write(w);
                }
                w.close(el);
            }
            w.close("t:Updates").close("t:ItemChange");
        }
        w.close("m:ItemChanges").close("m:UpdateItem");
    }

    pub fn parse(body: Node<'_, '_>) -> Result<Self, WireError> {
        expect_operation(body, "UpdateItem")?;
        let changes = body.m("ItemChanges").ok_or_else(|| WireError::missing("UpdateItem/ItemChanges"))?;
        let mut item_changes = Vec::new();
        for c in changes.children_named(NS_TYPES, "ItemChange") {
            let item_id =
                c.elements().find_map(ItemRef::parse).ok_or_else(|| WireError::missing("ItemChange/ItemId"))??;
            let mut updates = Vec::new();
            for u in c.t("Updates").ok_or_else(|| WireError::missing("ItemChange/Updates"))?.elements() {
                let path = u
                    .elements()
                    .find_map(PropertyPath::parse)
                    .ok_or_else(|| WireError::missing(format!("{}'s FieldURI", u.local())))??;
                let item = || -> Result<Item, WireError> {
                    let node = u
                        .elements()
                        .find(|e| e.tag_name().namespace() == Some(NS_TYPES) && PropertyPath::parse(*e).is_none())
                        .ok_or_else(|| WireError::missing(format!("{}'s item", u.local())))?;
                    Item::parse(node)
                };
                updates.push(match u.local() {
                    "SetItemField" => FieldUpdate::Set { path, item: item()? },
                    "AppendToItemField" => FieldUpdate::Append { path, item: item()? },
                    "DeleteItemField" => FieldUpdate::Delete { path },
                    other => return Err(WireError::invalid("item change", other)),
                });
            }
            item_changes.push(ItemChange { item_id, updates });
        }
        Ok(Request {
            conflict_resolution: body.attribute("ConflictResolution").unwrap_or("AutoResolve").to_string(),
            message_disposition: body.attribute("MessageDisposition").map(str::to_string),
            send_meeting_invitations_or_cancellations: body
                .attribute("SendMeetingInvitationsOrCancellations")
                .map(str::to_string),
            item_changes,
        })
    }
}

/// One message per change: the item's id with its new change key.
pub type Response = Vec<Message<Vec<Item>>>;

pub fn write_response(w: &mut XmlWriter, r: &Response) {
    write_messages(w, "UpdateItem", r, &["m:Items"], |w, items| {
        write_items(w, items);
        w.open("m:ConflictResults", &[]).leaf("t:Count", "0").close("m:ConflictResults");
    });
}

pub fn parse_response(body: Node<'_, '_>) -> Result<Response, WireError> {
    parse_messages(body, "UpdateItem", parse_items)
}
