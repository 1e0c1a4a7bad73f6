//! GetFolder — <https://learn.microsoft.com/exchange/client-developer/web-service-reference/getfolder-operation>
//!
//! Reads folders by id or distinguished name (`calendar`, optionally in another mailbox):
//! calbridge uses it to check that a mailbox exists and may be read, and to learn its
//! calendar's folder id.

use super::super::envelope::expect_operation;
use super::super::types::{Folder, FolderRef, Shape};
use super::super::xml::{Node, NodeExt, WireError, XmlWriter, NS_TYPES};
use super::{parse_messages, write_messages, Message};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request {
    pub folder_shape: Shape,
    pub folder_ids: Vec<FolderRef>,
}

impl Request {
    pub fn write(&self, w: &mut XmlWriter) {
        w.open("m:GetFolder", &[]);
        self.folder_shape.write(w, "m:FolderShape");
        w.open("m:FolderIds", &[]);
        for f in &self.folder_ids {
            f.write(w);
        }
        w.close("m:FolderIds").close("m:GetFolder");
    }

    pub fn parse(body: Node<'_, '_>) -> Result<Self, WireError> {
        expect_operation(body, "GetFolder")?;
        Ok(Request {
            folder_shape: Shape::parse(
                body.m("FolderShape").ok_or_else(|| WireError::missing("GetFolder/FolderShape"))?,
            )?,
            folder_ids: FolderRef::parse_all(
                body.m("FolderIds").ok_or_else(|| WireError::missing("GetFolder/FolderIds"))?,
            )?,
        })
    }
}

pub type Response = Vec<Message<Vec<Folder>>>;

pub fn write_response(w: &mut XmlWriter, r: &Response) {
    write_messages(w, "GetFolder", r, &[], |w, folders| {
        w.open("m:Folders", &[]);
        for f in folders {
            f.write(w);
        }
        w.close("m:Folders");
    });
}

pub fn parse_response(body: Node<'_, '_>) -> Result<Response, WireError> {
    parse_messages(body, "GetFolder", |m| {
        m.m("Folders")
            .map(|f| f.elements().filter(|e| e.tag_name().namespace() == Some(NS_TYPES)).map(Folder::parse).collect())
            .transpose()
            .map(Option::unwrap_or_default)
    })
}
