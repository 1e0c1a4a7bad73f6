//! Subscribe — <https://learn.microsoft.com/exchange/client-developer/web-service-reference/subscribe-operation>
//!
//! Asks Exchange to record events (`CreatedEvent`, `ModifiedEvent`, `DeletedEvent`,
//! `MovedEvent`, `CopiedEvent`, …) of folders (`FolderIds`, here the mailbox's `calendar`)
//! for one of three deliveries: a **streaming** subscription (`StreamingSubscriptionRequest`,
//! Exchange 2010 SP1 and later; read over a long-lived `GetStreamingEvents` connection; it
//! lives 30 minutes after its last connection), a **pull** subscription
//! (`PullSubscriptionRequest`; read with `GetEvents`; it lapses `Timeout` minutes, 1–1440,
//! after the last `GetEvents`) or a **push** one (`PushSubscriptionRequest`; Exchange POSTs
//! to a URL; calbridge does not use it). The answer is the `SubscriptionId` and, for pull and
//! push, the starting `Watermark`. A server that has no streaming (Exchange 2007) refuses the
//! streaming request (`ErrorInvalidRequest`, or a schema fault).

use super::super::envelope::expect_operation;
use super::super::types::FolderRef;
use super::super::xml::{parse_bool, parse_num, Node, NodeExt, WireError, XmlWriter, NS_MESSAGES, NS_TYPES};
use super::{parse_messages, write_messages, Message};

/// The event types calbridge subscribes to: every change to a calendar item.
pub const CALENDAR_EVENTS: [&str; 5] = ["CreatedEvent", "ModifiedEvent", "DeletedEvent", "MovedEvent", "CopiedEvent"];

/// The longest pull-subscription timeout Exchange accepts, in minutes.
pub const MAX_TIMEOUT_MINUTES: u32 = 1440;

/// How the events are delivered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Kind {
    /// `StreamingSubscriptionRequest`.
    Streaming,
    /// `PullSubscriptionRequest` with its `Timeout` in minutes (1–1440).
    Pull { timeout_minutes: u32 },
    /// `PushSubscriptionRequest`: `StatusFrequency` in minutes and the `URL` Exchange posts to.
    Push { status_frequency: u32, url: String },
}

impl Kind {
    fn element(&self) -> &'static str {
        match self {
            Kind::Streaming => "StreamingSubscriptionRequest",
            Kind::Pull { .. } => "PullSubscriptionRequest",
            Kind::Push { .. } => "PushSubscriptionRequest",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request {
    pub kind: Kind,
    pub folder_ids: Vec<FolderRef>,
    /// `EventType` values, verbatim (`CreatedEvent`, …).
    pub event_types: Vec<String>,
    /// Pull and push only: resume from this watermark.
    pub watermark: Option<String>,
    /// `@SubscribeToAllFolders`.
    pub subscribe_to_all_folders: Option<bool>,
}

impl Request {
    /// A subscription of the calendar folder `folder` to every change of its items.
    pub fn calendar(kind: Kind, folder: FolderRef) -> Self {
        Request {
            kind,
            folder_ids: vec![folder],
            event_types: CALENDAR_EVENTS.iter().map(|s| s.to_string()).collect(),
            watermark: None,
            subscribe_to_all_folders: None,
        }
    }

    pub fn write(&self, w: &mut XmlWriter) {
        w.open("m:Subscribe", &[]);
        let element = format!("m:{}", self.kind.element());
        let all = self.subscribe_to_all_folders.map(|b| if b { "true" } else { "false" });
        match all {
            Some(a) => w.open(&element, &[("SubscribeToAllFolders", a)]),
            None => w.open(&element, &[]),
        };
        if !self.folder_ids.is_empty() {
            w.open("t:FolderIds", &[]);
            for f in &self.folder_ids {
                f.write(w);
            }
            w.close("t:FolderIds");
        }
        w.open("t:EventTypes", &[]);
        for e in &self.event_types {
            w.leaf("t:EventType", e);
        }
        w.close("t:EventTypes");
        if !matches!(self.kind, Kind::Streaming) {
            w.leaf_opt("t:Watermark", self.watermark.as_deref());
        }
        match &self.kind {
            Kind::Streaming => {}
            Kind::Pull { timeout_minutes } => {
                w.leaf("t:Timeout", &timeout_minutes.to_string());
            }
            Kind::Push { status_frequency, url } => {
                w.leaf("t:StatusFrequency", &status_frequency.to_string());
                w.leaf("t:URL", url);
            }
        }
        w.close(&element);
        w.close("m:Subscribe");
    }

    pub fn parse(body: Node<'_, '_>) -> Result<Self, WireError> {
        expect_operation(body, "Subscribe")?;
        let request = body
            .elements()
            .find(|e| e.tag_name().namespace() == Some(NS_MESSAGES))
            .ok_or_else(|| WireError::missing("Subscribe's PullSubscriptionRequest or StreamingSubscriptionRequest"))?;
        let text = |name: &str| request.t_text(name).map(|s| s.trim().to_string());
        let kind = match request.local() {
            "StreamingSubscriptionRequest" => Kind::Streaming,
            "PullSubscriptionRequest" => {
                let t = text("Timeout").ok_or_else(|| WireError::missing("PullSubscriptionRequest/Timeout"))?;
                let timeout_minutes: u32 = parse_num("Timeout", &t)?;
                if !(1..=MAX_TIMEOUT_MINUTES).contains(&timeout_minutes) {
                    return Err(WireError::invalid("Timeout (1 to 1440 minutes)", t));
                }
                Kind::Pull { timeout_minutes }
            }
            "PushSubscriptionRequest" => Kind::Push {
                status_frequency: parse_num(
                    "StatusFrequency",
                    &text("StatusFrequency")
                        .ok_or_else(|| WireError::missing("PushSubscriptionRequest/StatusFrequency"))?,
                )?,
                url: text("URL").ok_or_else(|| WireError::missing("PushSubscriptionRequest/URL"))?,
            },
            other => return Err(WireError::invalid("Subscribe request", other)),
        };
        let event_types: Vec<String> = request
            .t("EventTypes")
            .map(|l| l.children_named(NS_TYPES, "EventType").map(|e| e.text_or_empty().trim().to_string()).collect())
            .unwrap_or_default();
        if event_types.is_empty() {
            return Err(WireError::missing(format!("{}/EventTypes/EventType", request.local())));
        }
        Ok(Request {
            kind,
            folder_ids: request.t("FolderIds").map(FolderRef::parse_all).transpose()?.unwrap_or_default(),
            event_types,
            watermark: text("Watermark").filter(|w| !w.is_empty()),
            subscribe_to_all_folders: request
                .attribute("SubscribeToAllFolders")
                .map(|v| parse_bool("SubscribeToAllFolders", v))
                .transpose()?,
        })
    }
}

/// A subscription as Exchange made it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Subscribed {
    pub subscription_id: String,
    /// Pull and push: where `GetEvents` starts.
    pub watermark: Option<String>,
}

pub type Response = Vec<Message<Subscribed>>;

pub fn write_response(w: &mut XmlWriter, r: &Response) {
    write_messages(w, "Subscribe", r, &[], |w, s| {
        w.leaf("m:SubscriptionId", &s.subscription_id);
        w.leaf_opt("m:Watermark", s.watermark.as_deref());
    });
}

pub fn parse_response(body: Node<'_, '_>) -> Result<Response, WireError> {
    parse_messages(body, "Subscribe", |m| {
        Ok(Subscribed {
            subscription_id: m
                .m_text("SubscriptionId")
                .map(|s| s.trim().to_string())
                .ok_or_else(|| WireError::missing("SubscribeResponseMessage/SubscriptionId"))?,
            watermark: m.m_text("Watermark").map(|s| s.trim().to_string()),
        })
    })
}
