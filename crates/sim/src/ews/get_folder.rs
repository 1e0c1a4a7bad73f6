//! GetFolder — <https://learn.microsoft.com/exchange/client-developer/web-service-reference/getfolder-operation>
//!
//! The distinguished folders a client walks to reach the calendar — `root` (the top of the
//! mailbox), `msgfolderroot` (the top of the visible folder tree), `calendar` — and the
//! other well-known folders of a mailbox (`inbox`, `drafts`, …, always empty), by
//! distinguished id (optionally in another mailbox) or by folder id, in a mailbox this
//! request may open. The folder shape picks the properties: `IdOnly` gives the id and the
//! `AdditionalProperties` asked for, `Default` adds the name and counts, `AllProperties`
//! everything the simulator knows (class, parent, rights, permissions, distinguished id).

use super::convert::ews_id;
use super::{schema_fault, Ctx, SoapFault};
use crate::ews_wire::ops::{get_folder, Message};
use crate::ews_wire::types::{EffectiveRights, Folder, ItemId, Permission, PropertyPath, Shape};
use crate::ews_wire::xml::{Node, XmlWriter};
use crate::ids;
use crate::state::Mailbox;

/// A well-known folder: its distinguished name, element, class, display name and parent.
pub(crate) struct KnownFolder {
    pub name: &'static str,
    element: &'static str,
    class: Option<&'static str>,
    display_name: &'static str,
    parent: Option<&'static str>,
}

const fn known(
    name: &'static str,
    element: &'static str,
    class: Option<&'static str>,
    display_name: &'static str,
    parent: Option<&'static str>,
) -> KnownFolder {
    KnownFolder { name, element, class, display_name, parent }
}

/// The folders every simulated mailbox has. Only the calendar holds items.
pub(crate) const KNOWN_FOLDERS: &[KnownFolder] = &[
    known("root", "Folder", None, "", None),
    known("msgfolderroot", "Folder", Some("IPF.Note"), "Top of Information Store", Some("root")),
    known("calendar", "CalendarFolder", Some("IPF.Appointment"), "Calendar", Some("msgfolderroot")),
    known("inbox", "Folder", Some("IPF.Note"), "Inbox", Some("msgfolderroot")),
    known("drafts", "Folder", Some("IPF.Note"), "Drafts", Some("msgfolderroot")),
    known("sentitems", "Folder", Some("IPF.Note"), "Sent Items", Some("msgfolderroot")),
    known("deleteditems", "Folder", Some("IPF.Note"), "Deleted Items", Some("msgfolderroot")),
    known("contacts", "ContactsFolder", Some("IPF.Contact"), "Contacts", Some("msgfolderroot")),
    known("tasks", "TasksFolder", Some("IPF.Task"), "Tasks", Some("msgfolderroot")),
];

/// The well-known folder named `name` (case-insensitive).
pub(crate) fn known_folder(name: &str) -> Option<&'static KnownFolder> {
    KNOWN_FOLDERS.iter().find(|k| k.name.eq_ignore_ascii_case(name))
}

/// The well-known folder of `mailbox` whose (EWS) id is `id`.
pub(crate) fn folder_by_id(mailbox: &Mailbox, graph_id: &str) -> Option<&'static KnownFolder> {
    KNOWN_FOLDERS.iter().find(|k| ids::folder_id(&mailbox.guid, k.name) == graph_id)
}

const DEFAULT_FIELDS: &[&str] =
    &["folder:FolderId", "folder:DisplayName", "folder:TotalCount", "folder:ChildFolderCount", "folder:UnreadCount"];

/// The folder properties a shape selects (`None`: all of them).
fn wanted(shape: &Shape) -> Option<Vec<String>> {
    let extra = shape.additional_properties.iter().filter_map(|p| match p {
        PropertyPath::Field(u) => Some(u.clone()),
        _ => None,
    });
    match shape.base_shape.as_str() {
        "AllProperties" => None,
        "Default" => Some(DEFAULT_FIELDS.iter().map(|s| s.to_string()).chain(extra).collect()),
        _ => Some(extra.collect()),
    }
}

/// `folder` of `mailbox` as the shape wants it.
pub(crate) fn render(folder: &KnownFolder, mailbox: &Mailbox, item_count: usize, shape: &Shape) -> Folder {
    let fields = wanted(shape);
    let has = |uri: &str| fields.as_ref().is_none_or(|f| f.iter().any(|x| x == uri));
    let id = ids::folder_id(&mailbox.guid, folder.name);
    let is_calendar = folder.name == "calendar";
    let count = if is_calendar { item_count } else { 0 };
    let children = KNOWN_FOLDERS.iter().filter(|k| k.parent == Some(folder.name)).count();
    // The calendar's change key moves with its contents; the others never change.
    let change_key = Some(if is_calendar { format!("AgAAAA{count}") } else { "AQAAAA==".to_string() });
    let permissions = if is_calendar {
        vec![
            Permission {
                distinguished_user: Some("Default".into()),
                level: "FreeBusyTimeOnly".into(),
                ..Default::default()
            },
            Permission { distinguished_user: Some("Anonymous".into()), level: "None".into(), ..Default::default() },
        ]
    } else {
        vec![
            Permission { distinguished_user: Some("Default".into()), level: "None".into(), ..Default::default() },
            Permission { distinguished_user: Some("Anonymous".into()), level: "None".into(), ..Default::default() },
        ]
    };
    Folder {
        element: folder.element.into(),
        folder_id: Some(ItemId::new(ews_id(&id), change_key)),
        parent_folder_id: folder
            .parent
            .filter(|_| has("folder:ParentFolderId"))
            .map(|p| ItemId::new(ews_id(&ids::folder_id(&mailbox.guid, p)), Some("AQAAAA==".into()))),
        folder_class: folder.class.filter(|_| has("folder:FolderClass")).map(str::to_string),
        display_name: has("folder:DisplayName").then(|| folder.display_name.to_string()),
        total_count: has("folder:TotalCount").then_some(count as i32),
        child_folder_count: has("folder:ChildFolderCount").then_some(children as i32),
        effective_rights: has("folder:EffectiveRights").then(EffectiveRights::full),
        distinguished_folder_id: has("folder:DistinguishedFolderId").then(|| folder.name.to_string()),
        permissions: (has("folder:PermissionSet") && folder.name != "root").then_some(permissions),
        unread_count: (has("folder:UnreadCount") && folder.element == "Folder").then_some(0),
    }
}

pub(crate) fn handle(ctx: &Ctx, body: Node<'_, '_>, w: &mut XmlWriter) -> Result<(), SoapFault> {
    let req = get_folder::Request::parse(body).map_err(schema_fault)?;
    let messages: get_folder::Response = req
        .folder_ids
        .iter()
        .map(|f| match ctx.folder_for(f) {
            Ok((mb, folder)) => {
                let count = ctx.sim.inner.state.lock().unwrap().events.get(&mb.key).map(|e| e.len()).unwrap_or(0);
                Message::ok(vec![render(folder, &mb, count, &req.folder_shape)])
            }
            Err((code, text)) => Message::error(code, text),
        })
        .collect();
    get_folder::write_response(w, &messages);
    Ok(())
}
