//! GetEvents — <https://learn.microsoft.com/exchange/client-developer/web-service-reference/getevents-operation>
//!
//! Reads a pull subscription's events since a `Watermark`: one `Notification` with the
//! `PreviousWatermark`, `MoreEvents` (true: call again at once with the last watermark) and
//! the events, each with its own `Watermark`; with nothing new, a single `StatusEvent`. Each
//! call keeps the subscription alive for its `Timeout` again. A subscription that lapsed or
//! was removed is `ErrorSubscriptionNotFound` (or `ErrorExpiredSubscription`); events Exchange
//! could no longer keep are `ErrorMissedNotificationEvents`: subscribe again and resync.
//!
//! [`Notification`] and [`Event`] are also what `GetStreamingEvents` delivers.

use super::super::envelope::expect_operation;
use super::super::types::ItemId;
use super::super::xml::{parse_bool, Node, NodeExt, WireError, XmlWriter, NS_TYPES};
use super::{parse_messages, write_messages, Message};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request {
    pub subscription_id: String,
    pub watermark: String,
}

impl Request {
    pub fn write(&self, w: &mut XmlWriter) {
        w.open("m:GetEvents", &[]);
        w.leaf("m:SubscriptionId", &self.subscription_id).leaf("m:Watermark", &self.watermark);
        w.close("m:GetEvents");
    }

    pub fn parse(body: Node<'_, '_>) -> Result<Self, WireError> {
        expect_operation(body, "GetEvents")?;
        let text = |name: &str| {
            body.m_text(name)
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .ok_or_else(|| WireError::missing(format!("GetEvents/{name}")))
        };
        Ok(Request { subscription_id: text("SubscriptionId")?, watermark: text("Watermark")? })
    }
}

/// The element names of the event kinds (`NotificationType`'s choice).
pub const EVENT_KINDS: [&str; 8] = [
    "CopiedEvent",
    "CreatedEvent",
    "DeletedEvent",
    "ModifiedEvent",
    "MovedEvent",
    "NewMailEvent",
    "StatusEvent",
    "FreeBusyChangedEvent",
];

/// One event of a notification.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Event {
    /// The element name: `CreatedEvent`, `ModifiedEvent`, `StatusEvent`, …
    pub kind: String,
    pub watermark: Option<String>,
    /// Every kind but `StatusEvent`.
    pub time_stamp: Option<String>,
    /// The item the event is about (or, for folder events, `folder_id`).
    pub item_id: Option<ItemId>,
    pub folder_id: Option<ItemId>,
    pub parent_folder_id: Option<ItemId>,
    /// Moved and copied events: where it was.
    pub old_item_id: Option<ItemId>,
    pub old_folder_id: Option<ItemId>,
    pub old_parent_folder_id: Option<ItemId>,
    /// Modified events of folders.
    pub unread_count: Option<i32>,
}

impl Event {
    /// A keep-alive or "nothing new" event.
    pub fn is_status(&self) -> bool {
        self.kind == "StatusEvent"
    }

    fn write(&self, w: &mut XmlWriter) {
        let element = format!("t:{}", self.kind);
        w.open(&element, &[]);
        w.leaf_opt("t:Watermark", self.watermark.as_deref());
        if !self.is_status() {
            w.leaf("t:TimeStamp", self.time_stamp.as_deref().unwrap_or("1970-01-01T00:00:00Z"));
            match (&self.folder_id, &self.item_id) {
                (Some(f), _) => f.write(w, "t:FolderId"),
                (None, Some(i)) => i.write(w, "t:ItemId"),
                (None, None) => {}
            }
            if let Some(p) = &self.parent_folder_id {
                p.write(w, "t:ParentFolderId");
            }
            if self.kind == "ModifiedEvent" {
                w.num_opt("t:UnreadCount", self.unread_count);
            }
            if matches!(self.kind.as_str(), "MovedEvent" | "CopiedEvent") {
                match (&self.old_folder_id, &self.old_item_id) {
                    (Some(f), _) => f.write(w, "t:OldFolderId"),
                    (None, Some(i)) => i.write(w, "t:OldItemId"),
                    (None, None) => {}
                }
                if let Some(p) = &self.old_parent_folder_id {
                    p.write(w, "t:OldParentFolderId");
                }
            }
        }
        w.close(&element);
    }

    fn parse(node: Node<'_, '_>) -> Result<Self, WireError> {
        let id = |name: &str| node.t(name).map(ItemId::parse).transpose();
        Ok(Event {
            kind: node.local().to_string(),
            watermark: node.t_text("Watermark").map(|s| s.trim().to_string()),
            time_stamp: node.t_text("TimeStamp").map(|s| s.trim().to_string()),
            item_id: id("ItemId")?,
            folder_id: id("FolderId")?,
            parent_folder_id: id("ParentFolderId")?,
            old_item_id: id("OldItemId")?,
            old_folder_id: id("OldFolderId")?,
            old_parent_folder_id: id("OldParentFolderId")?,
            unread_count: node.t_text("UnreadCount").and_then(|s| s.trim().parse().ok()),
        })
    }
}

/// `t:Notification`: the events of one subscription.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Notification {
    pub subscription_id: String,
    pub previous_watermark: Option<String>,
    pub more_events: Option<bool>,
    pub events: Vec<Event>,
}

impl Notification {
    /// The watermark to continue from: the last event's, else the previous one.
    pub fn last_watermark(&self) -> Option<&str> {
        self.events.iter().rev().find_map(|e| e.watermark.as_deref()).or(self.previous_watermark.as_deref())
    }

    /// Whether any event is a change (not a `StatusEvent`).
    pub fn has_changes(&self) -> bool {
        self.events.iter().any(|e| !e.is_status())
    }

    pub fn write(&self, w: &mut XmlWriter, element: &str) {
        w.open(element, &[]);
        w.leaf("t:SubscriptionId", &self.subscription_id);
        w.leaf_opt("t:PreviousWatermark", self.previous_watermark.as_deref());
        w.bool_opt("t:MoreEvents", self.more_events);
        for e in &self.events {
            e.write(w);
        }
        w.close(element);
    }

    pub fn parse(node: Node<'_, '_>) -> Result<Self, WireError> {
        let events = node
            .elements()
            .filter(|e| e.tag_name().namespace() == Some(NS_TYPES) && EVENT_KINDS.contains(&e.local()))
            .map(Event::parse)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Notification {
            subscription_id: node
                .t_text("SubscriptionId")
                .map(|s| s.trim().to_string())
                .ok_or_else(|| WireError::missing("Notification/SubscriptionId"))?,
            previous_watermark: node.t_text("PreviousWatermark").map(|s| s.trim().to_string()),
            more_events: node.t_text("MoreEvents").map(|v| parse_bool("MoreEvents", v)).transpose()?,
            events,
        })
    }
}

pub type Response = Vec<Message<Notification>>;

pub fn write_response(w: &mut XmlWriter, r: &Response) {
    write_messages(w, "GetEvents", r, &[], |w, n| n.write(w, "m:Notification"));
}

pub fn parse_response(body: Node<'_, '_>) -> Result<Response, WireError> {
    parse_messages(body, "GetEvents", |m| {
        m.m("Notification").map(Notification::parse).unwrap_or_else(|| Ok(Notification::default()))
    })
}
