//! Unsubscribe — <https://learn.microsoft.com/exchange/client-developer/web-service-reference/unsubscribe-operation>
//!
//! Ends a subscription of the caller's; another account's is `ErrorSubscriptionAccessDenied`,
//! an unknown or lapsed one `ErrorSubscriptionNotFound`.

use super::notifications::Unusable;
use super::{schema_fault, Ctx, SoapFault};
use crate::ews_wire::ops::unsubscribe;
use crate::ews_wire::ops::Message;
use crate::ews_wire::xml::{Node, XmlWriter};

pub(crate) fn handle(ctx: &Ctx, body: Node<'_, '_>, w: &mut XmlWriter) -> Result<(), SoapFault> {
    let req = unsubscribe::Request::parse(body).map_err(schema_fault)?;
    let registry = &ctx.sim.inner.ews_subscriptions;
    let message = match registry.usable(&req.subscription_id, &ctx.account.username) {
        Ok(_) | Err(Unusable::Missed) => {
            registry.remove(&req.subscription_id);
            Message::ok(())
        }
        Err(Unusable::Expired) => {
            let (code, text) = Unusable::NotFound.code_and_text();
            Message::error(code, text)
        }
        Err(e) => {
            let (code, text) = e.code_and_text();
            Message::error(code, text)
        }
    };
    unsubscribe::write_response(w, &vec![message]);
    Ok(())
}
