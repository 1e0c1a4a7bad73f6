//! FindItem — <https://learn.microsoft.com/exchange/client-developer/web-service-reference/finditem-operation>
//!
//! With a `CalendarView` (StartDate/EndDate, MaxEntriesReturned) Exchange expands series into
//! their occurrences and exceptions within the range; with an `IndexedPageItemView` it pages
//! through the folder's items (masters, not occurrences) by offset.

use super::super::envelope::expect_operation;
use super::super::types::{FolderRef, Item, Shape};
use super::super::xml::{parse_bool, parse_num, Node, NodeExt, WireError, XmlWriter};
use super::{parse_messages, write_messages, Message};

/// The view of a FindItem.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum View {
    /// `t:CalendarView`: occurrences within `[start_date, end_date)` (xs:dateTime text).
    Calendar { start_date: String, end_date: String, max_entries_returned: Option<u32> },
    /// `t:IndexedPageItemView`: `max_entries_returned` items from `offset` (`Beginning` or `End`).
    IndexedPage { max_entries_returned: Option<u32>, offset: u32, base_point: String },
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request {
    /// `Shallow`, `SoftDeleted`, `Associated`.
    pub traversal: String,
    pub item_shape: Shape,
    /// `None`: no paging element, every item of the folder.
    pub view: Option<View>,
    pub parent_folder_ids: Vec<FolderRef>,
}

impl Request {
    pub fn write(&self, w: &mut XmlWriter) {
        w.open("m:FindItem", &[("Traversal", &self.traversal)]);
        self.item_shape.write(w, "m:ItemShape");
        match &self.view {
            None => {}
            Some(View::Calendar { start_date, end_date, max_entries_returned }) => {
                let max = max_entries_returned.map(|m| m.to_string());
                let mut a = vec![];
                if let Some(m) = &max {
                    a.push(("MaxEntriesReturned", m.as_str()));
                }
                a.push(("StartDate", start_date.as_str()));
                a.push(("EndDate", end_date.as_str()));
                w.empty("m:CalendarView", &a);
            }
            Some(View::IndexedPage { max_entries_returned, offset, base_point }) => {
                let (max, off) = (max_entries_returned.map(|m| m.to_string()), offset.to_string());
                let mut a = vec![];
                if let Some(m) = &max {
                    a.push(("MaxEntriesReturned", m.as_str()));
                }
                a.push(("Offset", off.as_str()));
                a.push(("BasePoint", base_point.as_str()));
                w.empty("m:IndexedPageItemView", &a);
            }
        }
        w.open("m:ParentFolderIds", &[]);
        for f in &self.parent_folder_ids {
            f.write(w);
        }
        w.close("m:ParentFolderIds").close("m:FindItem");
    }

    pub fn parse(body: Node<'_, '_>) -> Result<Self, WireError> {
        expect_operation(body, "FindItem")?;
        let max =
            |n: Node<'_, '_>| n.attribute("MaxEntriesReturned").map(|v| parse_num("MaxEntriesReturned", v)).transpose();
        let other_view = ["FractionalPageItemView", "SeekToConditionPageItemView", "ContactsView"]
            .into_iter()
            .find(|v| body.m(v).is_some());
        let view = if let Some(v) = body.m("CalendarView") {
            let req = |a: &str| {
                v.attribute(a).map(str::to_string).ok_or_else(|| WireError::missing(format!("CalendarView/@{a}")))
            };
            Some(View::Calendar {
                start_date: req("StartDate")?,
                end_date: req("EndDate")?,
                max_entries_returned: max(v)?,
            })
        } else if let Some(v) = body.m("IndexedPageItemView") {
            Some(View::IndexedPage {
                max_entries_returned: max(v)?,
                offset: parse_num("IndexedPageItemView/@Offset", v.attribute("Offset").unwrap_or("0"))?,
                base_point: v.attribute("BasePoint").unwrap_or("Beginning").to_string(),
            })
        } else if let Some(other) = other_view {
            return Err(WireError::invalid(
                "FindItem view (calbridge reads CalendarView or IndexedPageItemView)",
                other,
            ));
        } else {
            None
        };
        Ok(Request {
            traversal: body.attribute("Traversal").unwrap_or("Shallow").to_string(),
            item_shape: Shape::parse(body.m("ItemShape").ok_or_else(|| WireError::missing("FindItem/ItemShape"))?)?,
            view,
            parent_folder_ids: FolderRef::parse_all(
                body.m("ParentFolderIds").ok_or_else(|| WireError::missing("FindItem/ParentFolderIds"))?,
            )?,
        })
    }
}

/// `m:RootFolder`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RootFolder {
    pub total_items_in_view: u32,
    pub includes_last_item_in_range: bool,
    /// The offset of the next page (IndexedPageItemView).
    pub indexed_paging_offset: Option<u32>,
    pub items: Vec<Item>,
}

pub type Response = Vec<Message<RootFolder>>;

pub fn write_response(w: &mut XmlWriter, r: &Response) {
    write_messages(w, "FindItem", r, &[], |w, root| {
        let (total, last) = (root.total_items_in_view.to_string(), root.includes_last_item_in_range.to_string());
        let off = root.indexed_paging_offset.map(|o| o.to_string());
        let mut a = vec![];
        if let Some(o) = &off {
            a.push(("IndexedPagingOffset", o.as_str()));
        }
        a.push(("TotalItemsInView", total.as_str()));
        a.push(("IncludesLastItemInRange", last.as_str()));
        w.open("m:RootFolder", &a).open("t:Items", &[]);
        for i in &root.items {
            i.write(w);
        }
        w.close("t:Items").close("m:RootFolder");
    });
}

pub fn parse_response(body: Node<'_, '_>) -> Result<Response, WireError> {
    parse_messages(body, "FindItem", |m| {
        let Some(root) = m.m("RootFolder") else { return Ok(RootFolder::default()) };
        let attr = |a: &str| root.attribute(a);
        Ok(RootFolder {
            total_items_in_view: attr("TotalItemsInView")
                .map(|v| parse_num("TotalItemsInView", v))
                .transpose()?
                .unwrap_or(0),
            includes_last_item_in_range: attr("IncludesLastItemInRange")
                .map(|v| parse_bool("IncludesLastItemInRange", v))
                .transpose()?
                .unwrap_or(true),
            indexed_paging_offset: attr("IndexedPagingOffset")
                .map(|v| parse_num("IndexedPagingOffset", v))
                .transpose()?,
            items: root.t("Items").map(Item::parse_all).transpose()?.unwrap_or_default(),
        })
    })
}
