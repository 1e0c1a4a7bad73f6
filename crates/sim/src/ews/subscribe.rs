//! Subscribe — <https://learn.microsoft.com/exchange/client-developer/web-service-reference/subscribe-operation>
//!
//! Streaming and pull subscriptions on one mailbox's calendar folder (see
//! [`super::notifications`] for their lifetimes). One folder per subscription, the calendar,
//! as calbridge asks; other folders are `ErrorInvalidSubscriptionRequest`. Push
//! subscriptions are not simulated (`ErrorInvalidSubscriptionRequest`). With streaming
//! refused (as Exchange 2007 does, which has no streaming), a streaming request is
//! `ErrorInvalidRequest`; with subscriptions refused, every request is
//! `ErrorInvalidSubscriptionRequest`.

use super::{schema_fault, Ctx, SoapFault};
use crate::ews_wire::ops::subscribe::{self, Kind, Subscribed};
use crate::ews_wire::ops::Message;
use crate::ews_wire::xml::{Node, XmlWriter};

pub(crate) fn handle(ctx: &Ctx, body: Node<'_, '_>, w: &mut XmlWriter) -> Result<(), SoapFault> {
    let req = subscribe::Request::parse(body).map_err(schema_fault)?;
    let registry = &ctx.sim.inner.ews_subscriptions;
    if matches!(req.kind, Kind::Streaming) && registry.refuses_streaming() {
        // Exchange 2007 has no streaming notifications.
        return Err(SoapFault {
            code: "ErrorInvalidRequest",
            message: "The request is invalid: streaming subscriptions are not supported by this server version.".into(),
        });
    }
    let message = subscribe(ctx, &req);
    subscribe::write_response(w, &vec![message]);
    Ok(())
}

fn subscribe(ctx: &Ctx, req: &subscribe::Request) -> Message<Subscribed> {
    let registry = &ctx.sim.inner.ews_subscriptions;
    let invalid = |text: &str| Message::error("ErrorInvalidSubscriptionRequest", text);
    if registry.refuses_all() {
        return invalid("Subscriptions are not available on this server.");
    }
    let timeout = match req.kind {
        Kind::Streaming => 0,
        Kind::Pull { timeout_minutes } => timeout_minutes,
        Kind::Push { .. } => return invalid("Push subscriptions are not supported by the simulator."),
    };
    let [folder] = req.folder_ids.as_slice() else {
        return invalid("The simulator subscribes to exactly one folder, a calendar.");
    };
    let (mb, known) = match ctx.folder_for(folder) {
        Ok(x) => x,
        Err((code, text)) => return Message::error(code, text),
    };
    if known.name != "calendar" {
        return invalid("The simulator only raises events of calendar folders.");
    }
    let seq = match (&req.watermark, &req.kind) {
        (Some(w), Kind::Pull { .. }) => match super::notifications::read_watermark(w) {
            Some(s) => s,
            None => return Message::error("ErrorInvalidWatermark", "The watermark is invalid."),
        },
        _ => ctx.sim.inner.state.lock().unwrap().current_seq(&mb.key),
    };
    let s = registry.add(&mb.key, matches!(req.kind, Kind::Streaming), timeout, &ctx.account.username, seq);
    let watermark = (!s.streaming).then(|| super::notifications::watermark(seq));
    Message::ok(Subscribed { subscription_id: s.id, watermark })
}
