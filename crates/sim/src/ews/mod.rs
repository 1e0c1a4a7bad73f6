//! The EWS face: `POST /EWS/Exchange.asmx`, on the same mailboxes and events as the Graph
//! face. One file per operation, each opening with Microsoft's page; the wire types are
//! calbridge-ews's `wire` module compiled in ([`crate::ews_wire`]).
//!
//! Every request passes, in order: sign-in ([`auth`]: Basic or NTLM against the scenario's
//! `[[ews_accounts]]`, or a Bearer token of the simulator's own; 401 with `WWW-Authenticate`
//! otherwise), injected faults (`fail_next`: that HTTP status; `throttle_next`: the
//! `ErrorServerBusy` fault with `BackOffMilliseconds`, HTTP 500, as Exchange throttles),
//! injected latency, the XML limits (no DTD, 8 MiB, a million nodes, 128 levels deep), the SOAP envelope,
//! `ExchangeImpersonation` (the account needs the impersonation role, else the
//! `ErrorImpersonateUserDenied` fault; an app token needs it always), the random mode's fault
//! (`Faults::set_random`, drawn once the operation is known), and the operation.
//! Errors an operation reports per item are response messages with `ResponseClass="Error"`;
//! errors of the whole request are SOAP faults with HTTP 500, as Exchange writes them.

pub(crate) mod auth;
pub(crate) mod convert;
mod convert_id;
mod create_item;
mod decline_item;
mod delete_item;
mod find_item;
mod get_events;
mod get_folder;
mod get_item;
pub(crate) mod get_room_lists;
mod get_rooms;
mod get_server_time_zones;
mod get_streaming_events;
mod get_user_availability;
pub(crate) mod notifications;
mod resolve_names;
mod series;
mod subscribe;
mod sync_folder_items;
mod unsubscribe;
mod update_item;

use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

pub use auth::Connection;

use crate::ews_wire::envelope::{self, ConnectingSid, Fault, RequestHeader, ServerVersionInfo};
use crate::ews_wire::types::FolderRef;
use crate::ews_wire::xml::{self, Limits, XmlWriter};
use crate::faults::{FaultKind, RequestClass};
use crate::scenario::EwsAccountSpec;
use crate::state::Mailbox;
use crate::Simulator;
use auth::{Principal, SignIn};
use get_folder::KnownFolder;

/// What a request may see: who signed in, and as whom it acts.
pub(crate) struct Ctx {
    pub sim: Simulator,
    /// The signed-in account's rights (an app token: impersonation only).
    pub account: EwsAccountSpec,
    /// The impersonated mailbox (`ExchangeImpersonation`), already checked.
    pub acting_as: Option<Mailbox>,
}

/// An error of one item or folder: `(ResponseCode, MessageText)`.
pub(crate) type ItemError = (&'static str, String);

impl Ctx {
    /// The mailbox a folder reference points at, if this request may open it.
    pub fn mailbox_for(&self, folder: &FolderRef) -> Result<Mailbox, ItemError> {
        self.folder_for(folder).map(|(mb, _)| mb)
    }

    /// The mailbox and the well-known folder a folder reference points at, if this request
    /// may open it.
    pub fn folder_for(&self, folder: &FolderRef) -> Result<(Mailbox, &'static KnownFolder), ItemError> {
        let not_found = || ("ErrorFolderNotFound", "The specified folder could not be found in the store.".to_string());
        let state = self.sim.inner.state.lock().unwrap();
        let (target, known) = match folder {
            FolderRef::Distinguished { id, mailbox, .. } => {
                let known = get_folder::known_folder(id).ok_or_else(not_found)?;
                let target = match (mailbox, &self.acting_as, &self.account.mailbox) {
                    (Some(address), _, _) => state.mailbox(address).cloned().ok_or((
                        "ErrorNonExistentMailbox",
                        format!("No mailbox with such guid or address exists: {address}."),
                    ))?,
                    (None, Some(m), _) => m.clone(),
                    (None, None, Some(own)) => state
                        .mailbox(own)
                        .cloned()
                        .ok_or(("ErrorNonExistentMailbox", "The account's own mailbox does not exist.".to_string()))?,
                    (None, None, None) => {
                        return Err((
                            "ErrorMissingEmailAddress",
                            "When making a request as an account that does not have a mailbox, you must specify the mailbox primary SMTP address for any distinguished folder Ids.".into(),
                        ))
                    }
                };
                (target, known)
            }
            FolderRef::Id(id) => {
                let graph = convert::graph_id(&id.id);
                state
                    .mailboxes
                    .iter()
                    .find_map(|m| get_folder::folder_by_id(m, &graph).map(|k| (m.clone(), k)))
                    .ok_or_else(not_found)?
            }
        };
        drop(state);
        self.check_access(&target)?;
        Ok((target, known))
    }

    /// Whether this request may open `target`: as the impersonated user, as its owner, or
    /// with FullAccess.
    pub fn check_access(&self, target: &Mailbox) -> Result<(), ItemError> {
        let own = self.account.mailbox.as_deref().is_some_and(|m| m.eq_ignore_ascii_case(&target.email));
        let impersonated = self.acting_as.as_ref().is_some_and(|m| m.key == target.key);
        if own || impersonated || self.account.full_access {
            Ok(())
        } else {
            Err(("ErrorAccessDenied", "Access is denied. Check credentials and try again.".into()))
        }
    }
}

fn xml_response(status: StatusCode, xml: String) -> Response {
    let mut resp = (status, xml).into_response();
    resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/xml; charset=utf-8"));
    resp
}

/// Exchange's throttling answer: HTTP 500, the `ErrorServerBusy` fault, and how long to
/// back off in `MessageXml`.
pub(crate) fn server_busy(back_off_ms: u64) -> Response {
    fault("ErrorServerBusy", "The server cannot service this request right now. Try again later.", Some(back_off_ms))
}

/// An injected server failure: a 500 is Exchange's internal-error fault; other statuses
/// (502, 503, 504) come from the front end, with a plain body.
fn server_error(status: u16) -> Response {
    if status == 500 {
        return fault("ErrorInternalServerError", "An internal server error occurred. The operation failed.", None);
    }
    let code = StatusCode::from_u16(status).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
    (code, code.canonical_reason().unwrap_or("Service Unavailable").to_string()).into_response()
}

/// A SOAP fault, HTTP 500.
pub(crate) fn fault(code: &str, message: &str, back_off_ms: Option<u64>) -> Response {
    let f = Fault {
        fault_code: String::new(),
        fault_string: message.to_string(),
        response_code: Some(code.to_string()),
        message: Some(message.to_string()),
        back_off_ms,
    };
    xml_response(StatusCode::INTERNAL_SERVER_ERROR, f.to_xml())
}

/// `POST /EWS/Exchange.asmx`.
pub(crate) async fn handler(State(sim): State<Simulator>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let headers = parts.headers;
    let connection = parts.extensions.get::<Connection>().cloned();
    // Read the body first: an NTLM leg's 401 must leave the connection ready for the next.
    let body: Bytes = match axum::body::to_bytes(body, 9 * 1024 * 1024).await {
        Ok(b) => b,
        Err(_) => {
            return schema_fault(xml::WireError::TooLarge { size: 9 * 1024 * 1024, limit: 8 * 1024 * 1024 })
                .into_response()
        }
    };
    let principal = match auth::sign_in(&sim, &headers, connection.as_ref()) {
        SignIn::Ok(p) => p,
        SignIn::Respond(resp) => return resp,
        SignIn::Denied(reason) => return auth::unauthorized(&sim, &headers, reason),
    };
    let faults = &sim.inner.faults;
    if let Some(status) = faults.take_fail() {
        sim.inner.stats.failed();
        return server_error(status);
    }
    if let Some(secs) = faults.take_throttle() {
        sim.inner.stats.throttled();
        return server_busy(secs.saturating_mul(1000));
    }
    let _in_flight = sim.inner.stats.enter();
    let latency = faults.latency();
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    let account = principal.as_account();
    let limits = Limits { max_bytes: 8 * 1024 * 1024, max_nodes: 1_000_000, max_depth: 128 };
    let text = match xml::decode(&body, limits) {
        Ok(t) => t,
        Err(e) => return schema_fault(e).into_response(),
    };
    let doc = match xml::parse(text, limits) {
        Ok(d) => d,
        Err(e) => return schema_fault(e).into_response(),
    };
    let env = match envelope::split(&doc) {
        Ok(e) => e,
        Err(e) => return schema_fault(e).into_response(),
    };
    let header = match RequestHeader::parse(env.header) {
        Ok(h) => h,
        Err(e) => return schema_fault(e).into_response(),
    };
    let acting_as = match &header.impersonation {
        None if matches!(principal, Principal::App { .. }) => {
            return fault(
                "ErrorInvalidExchangeImpersonationHeaderData",
                "ExchangeImpersonation SOAP header must be present for this type of OAuth token.",
                None,
            )
        }
        None => None,
        Some(sid) => {
            if !account.impersonation {
                return fault(
                    "ErrorImpersonateUserDenied",
                    "The account does not have permission to impersonate the requested user.",
                    None,
                );
            }
            let address = match sid {
                ConnectingSid::PrimarySmtpAddress(a)
                | ConnectingSid::SmtpAddress(a)
                | ConnectingSid::PrincipalName(a) => a,
                ConnectingSid::Sid(_) => {
                    return fault(
                        "ErrorImpersonationFailed",
                        "Impersonation by SID is not supported by the simulator.",
                        None,
                    )
                }
            };
            match sim.inner.state.lock().unwrap().mailbox(address).cloned() {
                Some(m) => Some(m),
                None => {
                    return fault(
                        "ErrorNonExistentMailbox",
                        &format!("No mailbox with such guid or address exists: {address}."),
                        None,
                    )
                }
            }
        }
    };
    let ctx = Ctx { sim: sim.clone(), account, acting_as };
    let mut w = XmlWriter::new();
    let operation = env.body.tag_name().name();
    let mutating = matches!(operation, "CreateItem" | "UpdateItem" | "DeleteItem");
    // The random mode's fault, once the operation is known and before it is applied.
    let class = RequestClass {
        mutating,
        edits_item: matches!(operation, "UpdateItem" | "DeleteItem"),
        sync: operation == "SyncFolderItems",
    };
    let random = faults.draw(class);
    match random {
        Some(FaultKind::Throttle) => {
            sim.inner.stats.throttled();
            sim.inner.stats.fault(FaultKind::Throttle);
            return server_busy(faults.random_retry_after().saturating_mul(1000));
        }
        Some(FaultKind::Unavailable) => {
            sim.inner.stats.failed();
            sim.inner.stats.fault(FaultKind::Unavailable);
            return server_error(503);
        }
        Some(FaultKind::Reset) => {
            sim.inner.stats.fault(FaultKind::Reset);
            return crate::server::abort_response();
        }
        Some(FaultKind::ExpiredSyncState) => {
            faults.expire_delta_tokens();
            sim.inner.stats.fault(FaultKind::ExpiredSyncState);
        }
        Some(FaultKind::Conflict) => {
            let mailbox = ctx.acting_as.as_ref().map(|m| m.email.clone()).or_else(|| ctx.account.mailbox.clone());
            let item = env.body.descendants().find(|n| n.has_tag_name((xml::NS_TYPES, "ItemId")));
            if let (Some(mailbox), Some(id)) = (mailbox, item.and_then(|n| n.attribute("Id"))) {
                if crate::server::concurrent_edit(&sim, &mailbox, &convert::graph_id(id)) {
                    sim.inner.stats.fault(FaultKind::Conflict);
                }
            }
        }
        Some(FaultKind::LostResponse | FaultKind::DuplicateNotifications) | None => {}
    }
    if operation == "GetStreamingEvents" {
        // The one answer that is streamed: held open, an envelope at a time.
        return get_streaming_events::respond(&ctx, env.body).unwrap_or_else(SoapFault::into_response);
    }
    let outcome = match operation {
        "GetFolder" => get_folder::handle(&ctx, env.body, &mut w),
        "FindItem" => find_item::handle(&ctx, env.body, &mut w),
        "GetItem" => get_item::handle(&ctx, env.body, &mut w),
        "CreateItem" => create_item::handle(&ctx, env.body, &mut w),
        "DeleteItem" => delete_item::handle(&ctx, env.body, &mut w),
        "SyncFolderItems" => sync_folder_items::handle(&ctx, env.body, &mut w),
        "UpdateItem" => update_item::handle(&ctx, env.body, &mut w),
        "ConvertId" => convert_id::handle(&ctx, env.body, &mut w),
        "ResolveNames" => resolve_names::handle(&ctx, env.body, &mut w),
        "GetRoomLists" => get_room_lists::handle(&ctx, env.body, &mut w),
        "GetRooms" => get_rooms::handle(&ctx, env.body, &mut w),
        "GetUserAvailabilityRequest" => get_user_availability::handle(&ctx, env.body, &mut w),
        "GetServerTimeZones" => get_server_time_zones::handle(&ctx, env.body, &mut w),
        "Subscribe" => subscribe::handle(&ctx, env.body, &mut w),
        "GetEvents" => get_events::handle(&ctx, env.body, &mut w),
        "Unsubscribe" => unsubscribe::handle(&ctx, env.body, &mut w),
        // Not ErrorInvalidRequest: clients read that as a wrong server version and retry.
        other => Err(SoapFault {
            code: "ErrorInvalidOperation",
            message: format!("The operation {other} is not supported by the simulator."),
        }),
    };
    match outcome {
        // The change is applied, the answer lost (fault injection), as over Graph.
        Ok(()) if mutating && random == Some(FaultKind::LostResponse) => {
            sim.inner.stats.dropped();
            sim.inner.stats.fault(FaultKind::LostResponse);
            crate::server::abort_response()
        }
        Ok(()) if mutating && faults.take_drop() => {
            sim.inner.stats.dropped();
            crate::server::abort_response()
        }
        Ok(()) => {
            let body_xml = w.finish();
            xml_response(
                StatusCode::OK,
                envelope::response(&ServerVersionInfo::exchange2019(), |w| {
                    w.raw(&body_xml);
                }),
            )
        }
        Err(f) => f.into_response(),
    }
}

/// A failure of a whole request, answered as a SOAP fault.
#[derive(Debug)]
pub(crate) struct SoapFault {
    pub code: &'static str,
    pub message: String,
}

impl SoapFault {
    fn into_response(self) -> Response {
        fault(self.code, &self.message, None)
    }
}

/// A request that did not parse (XML, envelope or operation): the fault Exchange gives.
pub(crate) fn schema_fault(e: xml::WireError) -> SoapFault {
    SoapFault { code: "ErrorSchemaValidation", message: format!("The request failed schema validation: {e}") }
}
