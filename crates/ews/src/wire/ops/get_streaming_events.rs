//! GetStreamingEvents — <https://learn.microsoft.com/exchange/client-developer/web-service-reference/getstreamingevents-operation>
//!
//! Opens a connection that delivers the events of one or more streaming subscriptions
//! (`SubscriptionIds`, at most 200 per connection) as they happen, for `ConnectionTimeout`
//! minutes (1–30). The HTTP answer is chunked and made of several complete SOAP envelopes one
//! after another, each a `GetStreamingEventsResponse`: notifications when events happen,
//! `ConnectionStatus` `OK` as a keep-alive in between, and finally `ConnectionStatus`
//! `Closed` (then the client opens a new connection). Subscriptions Exchange no longer has
//! come back as an error message (`ErrorSubscriptionNotFound`, …) listing them in
//! `ErrorSubscriptionIds`; events it could not keep are `ErrorMissedNotificationEvents`.
//! See "How to: Stream notifications about mailbox events by using EWS in Exchange".
//! [`next_envelope`] cuts such a stream into envelopes.

use super::super::envelope::{expect_operation, response_messages, Status};
use super::super::xml::{parse_num, Node, NodeExt, WireError, XmlWriter, NS_TYPES};
use super::get_events::Notification;

/// The most subscriptions one connection may carry.
pub const MAX_SUBSCRIPTIONS: usize = 200;
/// The longest `ConnectionTimeout`, in minutes.
pub const MAX_CONNECTION_TIMEOUT: u32 = 30;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request {
    pub subscription_ids: Vec<String>,
    /// Minutes, 1–30.
    pub connection_timeout: u32,
}

impl Request {
    pub fn write(&self, w: &mut XmlWriter) {
        w.open("m:GetStreamingEvents", &[]).open("m:SubscriptionIds", &[]);
        for id in &self.subscription_ids {
            w.leaf("t:SubscriptionId", id);
        }
        w.close("m:SubscriptionIds");
        w.leaf("m:ConnectionTimeout", &self.connection_timeout.to_string());
        w.close("m:GetStreamingEvents");
    }

    pub fn parse(body: Node<'_, '_>) -> Result<Self, WireError> {
        expect_operation(body, "GetStreamingEvents")?;
        let ids: Vec<String> = body
            .m("SubscriptionIds")
            .map(|l| {
                // Doc examples write the ids in either namespace.
                l.elements()
                    .filter(|e| e.local() == "SubscriptionId")
                    .map(|e| e.text_or_empty().trim().to_string())
                    .filter(|s| !s.is_empty())
                    .collect()
            })
            .unwrap_or_default();
        if ids.is_empty() {
            return Err(WireError::missing("GetStreamingEvents/SubscriptionIds/SubscriptionId"));
        }
        let t = body
            .m_text("ConnectionTimeout")
            .map(str::trim)
            .ok_or_else(|| WireError::missing("GetStreamingEvents/ConnectionTimeout"))?;
        let connection_timeout: u32 = parse_num("ConnectionTimeout", t)?;
        if !(1..=MAX_CONNECTION_TIMEOUT).contains(&connection_timeout) {
            return Err(WireError::invalid("ConnectionTimeout (1 to 30 minutes)", t));
        }
        Ok(Request { subscription_ids: ids, connection_timeout })
    }
}

/// One `GetStreamingEventsResponseMessage`. Unlike other operations, an error message still
/// carries content (`ErrorSubscriptionIds`, `ConnectionStatus`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StreamMessage {
    pub status: Status,
    pub notifications: Vec<Notification>,
    /// The subscriptions the error is about.
    pub error_subscription_ids: Vec<String>,
    /// `OK` (keep-alive) or `Closed` (the server ends the connection).
    pub connection_status: Option<String>,
}

impl StreamMessage {
    /// A keep-alive: `ConnectionStatus` `OK`.
    pub fn keep_alive() -> Self {
        StreamMessage {
            status: Status::ok(),
            notifications: vec![],
            error_subscription_ids: vec![],
            connection_status: Some("OK".into()),
        }
    }

    /// The last envelope of a connection: `ConnectionStatus` `Closed`.
    pub fn closed() -> Self {
        StreamMessage { connection_status: Some("Closed".into()), ..StreamMessage::keep_alive() }
    }

    pub fn is_closed(&self) -> bool {
        self.connection_status.as_deref() == Some("Closed")
    }
}

pub type Response = Vec<StreamMessage>;

pub fn write_response(w: &mut XmlWriter, r: &Response) {
    w.open("m:GetStreamingEventsResponse", &[]).open("m:ResponseMessages", &[]);
    for m in r {
        m.status.open(w, "m:GetStreamingEventsResponseMessage");
        if !m.notifications.is_empty() {
            w.open("m:Notifications", &[]);
            for n in &m.notifications {
                n.write(w, "t:Notification");
            }
            w.close("m:Notifications");
        }
        if !m.error_subscription_ids.is_empty() {
            w.open("m:ErrorSubscriptionIds", &[]);
            for id in &m.error_subscription_ids {
                w.leaf("t:SubscriptionId", id);
            }
            w.close("m:ErrorSubscriptionIds");
        }
        w.leaf_opt("m:ConnectionStatus", m.connection_status.as_deref());
        w.close("m:GetStreamingEventsResponseMessage");
    }
    w.close("m:ResponseMessages").close("m:GetStreamingEventsResponse");
}

pub fn parse_response(body: Node<'_, '_>) -> Result<Response, WireError> {
    response_messages(body, "GetStreamingEvents")?
        .into_iter()
        .map(|m| {
            let notifications = m
                .m("Notifications")
                .map(|l| l.children_named(NS_TYPES, "Notification").map(Notification::parse).collect())
                .transpose()?
                .unwrap_or_default();
            let error_subscription_ids = m
                .m("ErrorSubscriptionIds")
                .map(|l| {
                    l.children_named(NS_TYPES, "SubscriptionId").map(|e| e.text_or_empty().trim().to_string()).collect()
                })
                .unwrap_or_default();
            Ok(StreamMessage {
                status: Status::parse(m)?,
                notifications,
                error_subscription_ids,
                connection_status: m.m_text("ConnectionStatus").map(|s| s.trim().to_string()),
            })
        })
        .collect()
}

/// The length of the first complete SOAP envelope at the start of `buffer` (leading
/// whitespace and an XML declaration included), or `None` while it is still incomplete. A
/// streaming answer is a series of envelopes; each ends with its root element's closing tag,
/// `</…Envelope>` with any prefix (or none).
pub fn next_envelope(buffer: &str) -> Option<usize> {
    let mut from = 0;
    while let Some(pos) = buffer[from..].find("Envelope") {
        let start = from + pos;
        let end = start + "Envelope".len();
        from = end;
        // Preceded by `</` or `</prefix:`.
        let Some(lt) = buffer[..start].rfind('<') else { continue };
        let tag = &buffer[lt..start];
        let prefix = tag.strip_prefix("</").map(|p| p.strip_suffix(':').unwrap_or(p));
        let closing = match prefix {
            Some("") => tag == "</",
            Some(p) => tag.ends_with(':') && p.chars().all(|c| c.is_alphanumeric() || "_-.".contains(c)),
            None => false,
        };
        if !closing {
            continue;
        }
        let rest = &buffer[end..];
        let gt = rest.find('>')?;
        if rest[..gt].trim().is_empty() {
            return Some(end + gt + 1);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelopes_are_cut_one_after_another() {
        let a = r#"<?xml version="1.0"?><s:Envelope xmlns:s="x"><s:Body/></s:Envelope>"#;
        let b = r#"<Envelope xmlns="x"><Body><EnvelopeThing/></Body></Envelope >"#;
        let both = format!("{a}\r\n{b}");
        let n = next_envelope(&both).unwrap();
        assert_eq!(&both[..n], a);
        let rest = &both[n..];
        assert_eq!(next_envelope(rest), Some(rest.len()));
        assert_eq!(next_envelope(&a[..a.len() - 3]), None, "incomplete");
        assert_eq!(next_envelope(""), None);
    }
}
