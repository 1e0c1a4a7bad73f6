//! ResolveNames — <https://learn.microsoft.com/exchange/client-developer/web-service-reference/resolvenames>
//!
//! Ambiguous name resolution over the organisation's directory (every mailbox: people,
//! rooms, equipment): an entry (`smtp:` prefix allowed) that is an address matches that
//! mailbox alone; otherwise it matches mailboxes whose address's local part or display
//! name, or a word of it, starts with the entry (case-insensitive). One match succeeds;
//! several are the `ErrorNameResolutionMultipleResults` warning with every match (at most
//! 100); none is the `ErrorNameResolutionNoResults` error. Contact folders are empty in the
//! simulator, so every `SearchScope` reads the directory.

use super::{schema_fault, Ctx, SoapFault};
use crate::ews_wire::envelope::{ResponseClass, Status};
use crate::ews_wire::ops::resolve_names::{self, Resolution, ResolutionSet};
use crate::ews_wire::ops::Message;
use crate::ews_wire::types::EmailAddress;
use crate::ews_wire::xml::{Node, XmlWriter};
use crate::state::Mailbox;

const MAX_RESULTS: usize = 100;

fn matches(m: &Mailbox, entry: &str) -> bool {
    let local = m.key.split('@').next().unwrap_or_default();
    let name = m.name.to_lowercase();
    local.starts_with(entry) || name.starts_with(entry) || name.split_whitespace().any(|w| w.starts_with(entry))
}

pub(crate) fn handle(ctx: &Ctx, body: Node<'_, '_>, w: &mut XmlWriter) -> Result<(), SoapFault> {
    let req = resolve_names::Request::parse(body).map_err(schema_fault)?;
    let raw = req.unresolved_entry.trim();
    let entry = raw.strip_prefix("smtp:").or_else(|| raw.strip_prefix("SMTP:")).unwrap_or(raw).to_lowercase();
    let state = ctx.sim.inner.state.lock().unwrap();
    let found: Vec<&Mailbox> = if entry.is_empty() {
        vec![]
    } else if entry.contains('@') {
        state.mailboxes.iter().filter(|m| m.key == entry).collect()
    } else {
        state.mailboxes.iter().filter(|m| matches(m, &entry)).collect()
    };
    let resolutions: Vec<Resolution> = found
        .iter()
        .take(MAX_RESULTS)
        .map(|m| Resolution {
            mailbox: EmailAddress::smtp(Some(&m.name), &m.email),
            contact_display_name: req.return_full_contact_data.then(|| m.name.clone()),
        })
        .collect();
    let set = ResolutionSet {
        total_items_in_view: resolutions.len() as u32,
        includes_last_item_in_range: found.len() <= MAX_RESULTS,
        resolutions,
    };
    let message = match found.len() {
        0 => Message::error("ErrorNameResolutionNoResults", "No results were found."),
        1 => Message::ok(set),
        _ => Message {
            status: Status {
                class: ResponseClass::Warning,
                code: "ErrorNameResolutionMultipleResults".into(),
                text: Some("Multiple results were found.".into()),
                values: vec![],
            },
            payload: Some(set),
        },
    };
    resolve_names::write_response(w, &vec![message]);
    Ok(())
}
