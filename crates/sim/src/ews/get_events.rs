//! GetEvents — <https://learn.microsoft.com/exchange/client-developer/web-service-reference/getevents-operation>
//!
//! A pull subscription's events after the given watermark, from the mailbox's change log: at
//! most 50 (`MoreEvents` true when others follow), or a single `StatusEvent` when nothing
//! happened. Each call keeps the subscription alive for its `Timeout` again. A streaming
//! subscription cannot be read this way (`ErrorInvalidSubscription`); a watermark this
//! simulator did not issue, or from the future, is `ErrorInvalidWatermark`.

use std::time::Instant;

use super::notifications::{events_since, notification, read_watermark, Unusable};
use super::{schema_fault, Ctx, SoapFault};
use crate::ews_wire::ops::get_events::{self, Notification};
use crate::ews_wire::ops::Message;
use crate::ews_wire::xml::{Node, XmlWriter};

pub(crate) fn handle(ctx: &Ctx, body: Node<'_, '_>, w: &mut XmlWriter) -> Result<(), SoapFault> {
    let req = get_events::Request::parse(body).map_err(schema_fault)?;
    let message = read(ctx, &req);
    get_events::write_response(w, &vec![message]);
    Ok(())
}

fn read(ctx: &Ctx, req: &get_events::Request) -> Message<Notification> {
    let registry = &ctx.sim.inner.ews_subscriptions;
    let sub = match registry.usable(&req.subscription_id, &ctx.account.username) {
        Ok(s) => s,
        Err(e) => {
            let (code, text) = e.code_and_text();
            debug_assert!(e != Unusable::Missed || code == "ErrorMissedNotificationEvents");
            return Message::error(code, text);
        }
    };
    if sub.streaming {
        return Message::error(
            "ErrorInvalidSubscription",
            "The subscription is a streaming subscription; read it with GetStreamingEvents.",
        );
    }
    let state = ctx.sim.inner.state.lock().unwrap();
    let after = match read_watermark(&req.watermark).filter(|s| *s <= state.current_seq(&sub.mailbox)) {
        Some(s) => s,
        None => return Message::error("ErrorInvalidWatermark", "The watermark is invalid."),
    };
    let (events, last, more) = events_since(&state, &sub.mailbox, after);
    drop(state);
    registry.update(&sub.id, |s| {
        s.last_activity = Instant::now();
        s.seq = last;
    });
    Message::ok(notification(&sub.id, after, events, more))
}
