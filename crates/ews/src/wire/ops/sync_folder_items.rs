//! SyncFolderItems — <https://learn.microsoft.com/exchange/client-developer/web-service-reference/syncfolderitems>
//!
//! Changes to a folder's items since a `SyncState` (none: every item, as creates), at most
//! `MaxChangesReturned` (1–512) a call; `IncludesLastItemInRange` false means call again with
//! the new state. A state Exchange no longer accepts is `ErrorInvalidSyncStateData`.

use super::super::envelope::expect_operation;
use super::super::types::{FolderRef, Item, ItemId, Shape};
use super::super::xml::{parse_bool, parse_num, Node, NodeExt, WireError, XmlWriter, NS_TYPES};
use super::{parse_messages, write_messages, Message};

/// The most changes one call may ask for.
pub const MAX_CHANGES: u32 = 512;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request {
    pub item_shape: Shape,
    pub sync_folder_id: FolderRef,
    pub sync_state: Option<String>,
    pub max_changes_returned: u32,
    /// `NormalItems` (default) or `NormalAndAssociatedItems`.
    pub sync_scope: Option<String>,
}

impl Request {
    pub fn write(&self, w: &mut XmlWriter) {
        w.open("m:SyncFolderItems", &[]);
        self.item_shape.write(w, "m:ItemShape");
        w.open("m:SyncFolderId", &[]);
        self.sync_folder_id.write(w);
        w.close("m:SyncFolderId");
        if let Some(s) = self.sync_state.as_deref().filter(|s| !s.is_empty()) {
            w.leaf("m:SyncState", s);
        }
        w.leaf("m:MaxChangesReturned", &self.max_changes_returned.to_string());
        w.leaf_opt("m:SyncScope", self.sync_scope.as_deref());
        w.close("m:SyncFolderItems");
    }

    pub fn parse(body: Node<'_, '_>) -> Result<Self, WireError> {
        expect_operation(body, "SyncFolderItems")?;
        let folder = body
            .m("SyncFolderId")
            .and_then(|f| f.elements().find_map(FolderRef::parse))
            .ok_or_else(|| WireError::missing("SyncFolderItems/SyncFolderId"))??;
        let max: u32 = parse_num(
            "MaxChangesReturned",
            body.m_text("MaxChangesReturned")
                .ok_or_else(|| WireError::missing("SyncFolderItems/MaxChangesReturned"))?,
        )?;
        if !(1..=MAX_CHANGES).contains(&max) {
            return Err(WireError::invalid("MaxChangesReturned (1 to 512)", max.to_string()));
        }
        Ok(Request {
            item_shape: Shape::parse(
                body.m("ItemShape").ok_or_else(|| WireError::missing("SyncFolderItems/ItemShape"))?,
            )?,
            sync_folder_id: folder,
            sync_state: body.m_text("SyncState").map(|s| s.trim().to_string()).filter(|s| !s.is_empty()),
            max_changes_returned: max,
            sync_scope: body.m_text("SyncScope").map(str::to_string),
        })
    }
}

/// One change.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Change {
    Create(Item),
    Update(Item),
    Delete(ItemId),
    ReadFlagChange { item_id: ItemId, is_read: bool },
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SyncResult {
    pub sync_state: String,
    pub includes_last_item_in_range: bool,
    pub changes: Vec<Change>,
}

pub type Response = Vec<Message<SyncResult>>;

pub fn write_response(w: &mut XmlWriter, r: &Response) {
    write_messages(w, "SyncFolderItems", r, &[], |w, s| {
        w.leaf("m:SyncState", &s.sync_state);
        w.leaf("m:IncludesLastItemInRange", if s.includes_last_item_in_range { "true" } else { "false" });
        if s.changes.is_empty() {
            w.empty("m:Changes", &[]);
            return;
        }
        w.open("m:Changes", &[]);
        for c in &s.changes {
            match c {
                Change::Create(i) => {
                    w.open("t:Create", &[]);
                    i.write(w);
                    w.close("t:Create");
                }
                Change::Update(i) => {
                    w.open("t:Update", &[]);
                    i.write(w);
                    w.close("t:Update");
                }
                Change::Delete(id) => {
                    w.open("t:Delete", &[]);
                    id.write(w, "t:ItemId");
                    w.close("t:Delete");
                }
                Change::ReadFlagChange { item_id, is_read } => {
                    w.open("t:ReadFlagChange", &[]);
                    item_id.write(w, "t:ItemId");
                    w.leaf("t:IsRead", if *is_read { "true" } else { "false" });
                    w.close("t:ReadFlagChange");
                }
            }
        }
        w.close("m:Changes");
    });
}

pub fn parse_response(body: Node<'_, '_>) -> Result<Response, WireError> {
    parse_messages(body, "SyncFolderItems", |m| {
        let mut changes = Vec::new();
        if let Some(list) = m.m("Changes") {
            for c in list.elements().filter(|c| c.tag_name().namespace() == Some(NS_TYPES)) {
                let item = || -> Result<Item, WireError> {
                    Item::parse(c.elements().next().ok_or_else(|| WireError::missing(format!("{}'s item", c.local())))?)
                };
                let id = || -> Result<ItemId, WireError> {
                    ItemId::parse(c.t("ItemId").ok_or_else(|| WireError::missing(format!("{}/ItemId", c.local())))?)
                };
                changes.push(match c.local() {
                    "Create" => Change::Create(item()?),
                    "Update" => Change::Update(item()?),
                    "Delete" => Change::Delete(id()?),
                    "ReadFlagChange" => Change::ReadFlagChange {
                        item_id: id()?,
                        is_read: c.t_text("IsRead").map(|v| parse_bool("IsRead", v)).transpose()?.unwrap_or(false),
                    },
                    other => return Err(WireError::invalid("SyncFolderItems change", other)),
                });
            }
        }
        Ok(SyncResult {
            sync_state: m.m_text("SyncState").map(|s| s.trim().to_string()).unwrap_or_default(),
            includes_last_item_in_range: m
                .m_text("IncludesLastItemInRange")
                .map(|v| parse_bool("IncludesLastItemInRange", v))
                .transpose()?
                .unwrap_or(true),
            changes,
        })
    })
}
