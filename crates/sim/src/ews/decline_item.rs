//! DeclineItem — <https://learn.microsoft.com/exchange/client-developer/web-service-reference/declineitem>
//!
//! A CreateItem whose item is `t:DeclineItem`: the mailbox holding the referenced meeting (a
//! person or a resource) declines it. Its copy leaves its calendar and the organizer's meeting
//! records the answer; the organizer's meeting stays. An organizer cannot decline its own
//! meeting (`ErrorInvalidRequest`).

use chrono::Utc;

use super::series::graph_item_id;
use super::Ctx;
use crate::booking;
use crate::ews_wire::ops::{decline_item, Message};
use crate::ews_wire::types::ItemRef;
use crate::ews_wire::xml::XmlWriter;

pub(crate) fn handle(ctx: &Ctx, req: &decline_item::Request, w: &mut XmlWriter) {
    let message = decline(ctx, req).map(Message::ok).unwrap_or_else(|(code, text)| Message::error(code, text));
    decline_item::write_response(w, &vec![message]);
}

fn decline(ctx: &Ctx, req: &decline_item::Request) -> Result<(), (&'static str, String)> {
    let mut state = ctx.sim.inner.state.lock().unwrap();
    let gid = graph_item_id(&state, &ItemRef::Item(req.reference_item_id.clone()))?;
    let mb = state
        .locate(&gid)
        .map(|(m, _)| m.clone())
        .ok_or(("ErrorItemNotFound", "The specified object was not found in the store.".to_string()))?;
    ctx.check_access(&mb)?;
    booking::decline(&mut state, &mb.key, &gid, Utc::now()).map_err(|e| match e.status {
        404 => ("ErrorItemNotFound", e.message),
        _ => ("ErrorInvalidRequest", e.message),
    })
}
