//! Unsubscribe — <https://learn.microsoft.com/exchange/client-developer/web-service-reference/unsubscribe-operation>
//!
//! Ends a pull or streaming subscription. A subscription Exchange no longer has is
//! `ErrorSubscriptionNotFound` (calbridge treats that as done).

use super::super::envelope::expect_operation;
use super::super::xml::{Node, NodeExt, WireError, XmlWriter};
use super::{parse_messages, write_messages, Message};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request {
    pub subscription_id: String,
}

impl Request {
    pub fn write(&self, w: &mut XmlWriter) {
        w.open("m:Unsubscribe", &[]).leaf("m:SubscriptionId", &self.subscription_id).close("m:Unsubscribe");
    }

    pub fn parse(body: Node<'_, '_>) -> Result<Self, WireError> {
        expect_operation(body, "Unsubscribe")?;
        let id = body
            .m_text("SubscriptionId")
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .ok_or_else(|| WireError::missing("Unsubscribe/SubscriptionId"))?;
        Ok(Request { subscription_id: id })
    }
}

pub type Response = Vec<Message<()>>;

pub fn write_response(w: &mut XmlWriter, r: &Response) {
    write_messages(w, "Unsubscribe", r, &[], |_, _| {});
}

pub fn parse_response(body: Node<'_, '_>) -> Result<Response, WireError> {
    parse_messages(body, "Unsubscribe", |_| Ok(()))
}
