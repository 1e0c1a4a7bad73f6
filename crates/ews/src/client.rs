//! [`EwsClient`]: EWS operations for one connection, over a [`Transport`].
//!
//! Every request carries `RequestServerVersion` (the connection's version), a
//! `TimeZoneContext` of UTC (so times without an offset mean UTC both ways) and, when the
//! connection impersonates, `ExchangeImpersonation` with the mailbox's SMTP address together
//! with `X-AnchorMailbox` (Exchange routes the request to the mailbox's server; without the
//! header, impersonated requests in a multi-server organisation are proxied and throttled
//! harder). Without impersonation, folders name the mailbox (`DistinguishedFolderId/Mailbox`).
//!
//! Per attempt:
//! - `ErrorServerBusy` (a SOAP fault with HTTP 500, or a response message) and HTTP 503: wait
//!   `BackOffMilliseconds` (without it 1, 2, 4 … s) and try again, up to `max_attempts` and
//!   `max_retry_wait` in all; then the error surfaces as `Throttled`. The server refused the
//!   request before doing anything, so this is safe for every operation.
//! - no answer: tried again when the request provably never left (connect failure), and for
//!   reading operations; a create, update or delete that may have been processed is not
//!   repeated here (the engine finds a create that went through by its provenance property).
//! - every other answer is returned: response-message errors as [`EwsError::Response`].

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use calbridge_core::model::{EwsAuth, EwsSettings};
use calbridge_core::Secret;

use crate::error::{EwsError, MAX_BACK_OFF};
use crate::transport::{Answer, Credentials, TokenSource, Transport, TransportOptions};
use crate::wire::envelope::{self, ConnectingSid, Fault, RequestHeader, Status};
use crate::wire::ops::{
    create_item, decline_item, delete_item, get_events, get_folder, get_item, get_room_lists, get_rooms,
    get_streaming_events, get_user_availability, resolve_names, subscribe, sync_folder_items, unsubscribe, update_item,
    Message,
};
use crate::wire::types::{Body, EmailAddress, Folder, FolderRef, Item, ItemId, ItemRef, Shape};
use crate::wire::xml::{self, Limits, Node, WireError, XmlWriter};

/// Tuning of an [`EwsClient`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EwsOptions {
    /// Attempts per request, the first included, when the server is busy (or, if safe, silent).
    pub max_attempts: u32,
    /// The most a request waits in all for back-off before the error surfaces.
    pub max_retry_wait: Duration,
    /// Timeout of one request, connect to last byte (NTLM handshake included).
    pub request_timeout: Duration,
    /// `MaxChangesReturned` of SyncFolderItems (1–512).
    pub sync_page_size: u32,
    /// Item ids per GetItem request.
    pub get_item_batch: usize,
    /// This installation's id (in the `User-Agent`).
    pub installation_id: String,
    /// Requests the client has in flight at once over all its mailboxes: the connection's
    /// `max_threads`. A slot is held from sending a request to the last byte of its answer
    /// (an NTLM handshake's requests included); reading the answer happens after it is given
    /// back. Streaming subscriptions take none: they have their own budget.
    pub max_in_flight: usize,
}

impl Default for EwsOptions {
    fn default() -> Self {
        EwsOptions {
            max_attempts: 5,
            max_retry_wait: Duration::from_secs(120),
            request_timeout: Duration::from_secs(100),
            sync_page_size: 512,
            get_item_batch: 50,
            installation_id: String::new(),
            max_in_flight: 4,
        }
    }
}

/// Which answers mean "the server is busy", per response type.
pub trait MaybeBusy {
    /// `Some(back-off)` when a message of the answer is `ErrorServerBusy`.
    fn busy(&self) -> Option<Option<Duration>>;
}

fn busy_status(s: &Status) -> Option<Option<Duration>> {
    (s.code == "ErrorServerBusy").then(|| s.back_off_ms().map(Duration::from_millis))
}

impl<T> MaybeBusy for Vec<Message<T>> {
    fn busy(&self) -> Option<Option<Duration>> {
        self.iter().find_map(|m| busy_status(&m.status))
    }
}
impl MaybeBusy for get_room_lists::Response {
    fn busy(&self) -> Option<Option<Duration>> {
        busy_status(&self.status)
    }
}
impl MaybeBusy for get_rooms::Response {
    fn busy(&self) -> Option<Option<Duration>> {
        busy_status(&self.status)
    }
}
impl MaybeBusy for get_user_availability::Response {
    fn busy(&self) -> Option<Option<Duration>> {
        self.iter().find_map(|r| busy_status(&r.status))
    }
}

/// The first message's payload, or its error.
pub fn single<T>(operation: &'static str, messages: Vec<Message<T>>) -> Result<T, EwsError> {
    let m = messages.into_iter().next().ok_or_else(|| EwsError::Decode {
        operation,
        source: WireError::missing(format!("{operation}ResponseMessage")),
    })?;
    message_result(operation, m)
}

/// A message's payload, or its error.
pub fn message_result<T>(operation: &'static str, m: Message<T>) -> Result<T, EwsError> {
    if !m.status.is_success() {
        return Err(EwsError::Response {
            operation,
            back_off: m.status.back_off_ms().map(Duration::from_millis),
            code: m.status.code,
            text: m.status.text,
        });
    }
    m.payload
        .ok_or_else(|| EwsError::Decode { operation, source: WireError::missing(format!("{operation}'s payload")) })
}

struct Inner {
    transport: Transport,
    settings: EwsSettings,
    options: EwsOptions,
    /// Milliseconds waited on `ErrorServerBusy` back-offs so far.
    throttled_ms: AtomicU64,
}

/// An EWS client for one connection. Cheap to clone.
#[derive(Clone)]
pub struct EwsClient {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for EwsClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EwsClient").field("transport", &self.inner.transport).finish()
    }
}

impl EwsClient {
    /// A client for `settings`; `secret` is the service account's password (basic, ntlm) or
    /// the app's client secret (oauth2, where `tokens` must be given).
    pub fn new(
        settings: &EwsSettings,
        secret: Secret,
        tokens: Option<Arc<dyn TokenSource>>,
        options: EwsOptions,
    ) -> Result<EwsClient, EwsError> {
        let bad = |m: &str| EwsError::Config { message: m.to_string() };
        let credentials = match settings.auth {
            EwsAuth::Basic | EwsAuth::Ntlm if settings.username.trim().is_empty() => {
                return Err(bad("username is empty: set the service account (user, DOMAIN\\user or user@domain)"))
            }
            EwsAuth::Basic => Credentials::Basic { username: settings.username.trim().to_string(), password: secret },
            EwsAuth::Ntlm => Credentials::ntlm(settings.username.trim(), secret),
            EwsAuth::Oauth2 => Credentials::Bearer(
                tokens.ok_or_else(|| bad("auth oauth2 needs a token source (tenant_id, client_id, client secret)"))?,
            ),
        };
        if settings.version.trim().is_empty() {
            return Err(bad("version is empty: set the EWS version, e.g. Exchange2016 or Exchange2013_SP1"));
        }
        if !(1..=sync_folder_items::MAX_CHANGES).contains(&options.sync_page_size) {
            return Err(bad("the SyncFolderItems page size must be between 1 and 512"));
        }
        let user_agent = if options.installation_id.is_empty() {
            format!("calbridge/{}", env!("CARGO_PKG_VERSION"))
        } else {
            format!("calbridge/{} ({})", env!("CARGO_PKG_VERSION"), options.installation_id)
        };
        let transport = Transport::new(
            &settings.url,
            credentials,
            TransportOptions {
                max_connections: settings.max_connections,
                max_in_flight: options.max_in_flight.max(1),
                request_timeout: options.request_timeout,
                max_body_bytes: Limits::default().max_bytes,
                user_agent,
                ca_file: settings.ca_file.clone(),
            },
        )?;
        Ok(EwsClient {
            inner: Arc::new(Inner { transport, settings: settings.clone(), options, throttled_ms: AtomicU64::new(0) }),
        })
    }

    pub fn settings(&self) -> &EwsSettings {
        &self.inner.settings
    }

    pub fn options(&self) -> &EwsOptions {
        &self.inner.options
    }

    /// Time this client (and its clones) waited on the server's `ErrorServerBusy` back-offs.
    pub fn throttled_wait(&self) -> Duration {
        Duration::from_millis(self.inner.throttled_ms.load(Ordering::Relaxed))
    }

    /// HTTP requests sent so far (NTLM handshake legs included).
    pub fn requests(&self) -> u64 {
        self.inner.transport.requests()
    }

    /// NTLM handshakes run so far (one per connection signed in).
    pub fn handshakes(&self) -> u64 {
        self.inner.transport.handshakes()
    }

    fn header(&self, mailbox: Option<&str>) -> RequestHeader {
        let mut h = RequestHeader::new(self.inner.settings.version.trim());
        if self.inner.settings.impersonation {
            h.impersonation = mailbox.map(|m| ConnectingSid::PrimarySmtpAddress(m.to_string()));
        }
        h.time_zone = Some("UTC".into());
        h
    }

    /// The calendar folder of `mailbox` as requests name it.
    pub fn calendar_folder(&self, mailbox: &str) -> FolderRef {
        if self.inner.settings.impersonation {
            FolderRef::calendar(None)
        } else {
            FolderRef::calendar(Some(mailbox))
        }
    }

    /// One operation with retries for busy servers (and, where safe, silent ones).
    async fn call<R: MaybeBusy + Send + 'static>(
        &self,
        operation: &'static str,
        mailbox: Option<&str>,
        idempotent: bool,
        write: impl Fn(&mut XmlWriter),
        parse: impl Fn(Node<'_, '_>) -> Result<R, WireError> + Copy + Send + 'static,
    ) -> Result<R, EwsError> {
        let opts = &self.inner.options;
        let xml = envelope::request(&self.header(mailbox), &write);
        let mut waited = Duration::ZERO;
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            let result = match self.inner.transport.send(xml.clone(), mailbox).await {
                Ok(answer) => read_answer_off_workers(operation, answer, parse).await.and_then(|r| match r.busy() {
                    Some(back_off) => Err(EwsError::Response {
                        operation,
                        code: "ErrorServerBusy".into(),
                        text: Some("The server cannot service this request right now.".into()),
                        back_off,
                    }),
                    None => Ok(r),
                }),
                Err(e) => Err(e),
            };
            let e = match result {
                Ok(r) => return Ok(r),
                Err(e) => e,
            };
            let retry_in = if e.is_busy() {
                Some(e.back_off().unwrap_or_else(|| Duration::from_secs(1 << (attempt - 1).min(6))))
            } else if let EwsError::Transport { sent, .. } = &e {
                (!sent || idempotent).then(|| Duration::from_millis(250 * (1 << (attempt - 1).min(5))))
            } else {
                None
            };
            match retry_in {
                Some(d) if attempt < opts.max_attempts && d <= MAX_BACK_OFF && waited + d <= opts.max_retry_wait => {
                    tracing::debug!(operation, attempt, wait_ms = d.as_millis() as u64, "EWS: {e}; trying again");
                    if e.is_busy() {
                        self.inner.throttled_ms.fetch_add(d.as_millis() as u64, Ordering::Relaxed);
                    }
                    tokio::time::sleep(d).await;
                    waited += d;
                }
                _ => return Err(e),
            }
        }
    }

    pub async fn get_folder(
        &self,
        mailbox: &str,
        folders: Vec<FolderRef>,
        shape: Shape,
    ) -> Result<Vec<Message<Vec<Folder>>>, EwsError> {
        let req = get_folder::Request { folder_shape: shape, folder_ids: folders };
        self.call("GetFolder", Some(mailbox), true, |w| req.write(w), get_folder::parse_response).await
    }

    /// The calendar folder of `mailbox` (checks that the mailbox exists and may be opened).
    pub async fn calendar(&self, mailbox: &str) -> Result<Folder, EwsError> {
        let mut shape = Shape::id_only();
        shape.additional_properties = vec![
            crate::wire::types::PropertyPath::field("folder:DisplayName"),
            crate::wire::types::PropertyPath::field("folder:TotalCount"),
        ];
        let msgs = self.get_folder(mailbox, vec![self.calendar_folder(mailbox)], shape).await?;
        let folders = single("GetFolder", msgs)?;
        folders.into_iter().next().ok_or_else(|| EwsError::Decode {
            operation: "GetFolder",
            source: WireError::missing("GetFolder's folder"),
        })
    }

    pub async fn sync_folder_items(
        &self,
        mailbox: &str,
        state: Option<&str>,
        shape: Shape,
    ) -> Result<sync_folder_items::SyncResult, EwsError> {
        let req = sync_folder_items::Request {
            item_shape: shape,
            sync_folder_id: self.calendar_folder(mailbox),
            sync_state: state.map(str::to_string),
            max_changes_returned: self.inner.options.sync_page_size,
            sync_scope: None,
        };
        let msgs = self
            .call("SyncFolderItems", Some(mailbox), true, |w| req.write(w), sync_folder_items::parse_response)
            .await?;
        single("SyncFolderItems", msgs)
    }

    /// Items by id, one message per id (in order), in batches of `get_item_batch`.
    pub async fn get_items(
        &self,
        mailbox: &str,
        ids: &[ItemRef],
        shape: &Shape,
    ) -> Result<Vec<Message<Vec<Item>>>, EwsError> {
        let mut out = Vec::with_capacity(ids.len());
        for chunk in ids.chunks(self.inner.options.get_item_batch.max(1)) {
            let req = get_item::Request { item_shape: shape.clone(), item_ids: chunk.to_vec() };
            let msgs = self.call("GetItem", Some(mailbox), true, |w| req.write(w), get_item::parse_response).await?;
            if msgs.len() != chunk.len() {
                return Err(EwsError::Decode {
                    operation: "GetItem",
                    source: WireError::invalid(
                        "the number of GetItemResponseMessages",
                        format!("{} for {} ids", msgs.len(), chunk.len()),
                    ),
                });
            }
            out.extend(msgs);
        }
        Ok(out)
    }

    pub async fn create_item(&self, mailbox: &str, item: Item, send: &str) -> Result<Item, EwsError> {
        one(self.create_items(mailbox, vec![item], send).await?)
    }

    /// CreateItem of several items in one request: each item's answer (the new id and change
    /// key), in order. An error for the whole request (no answer, a fault) is the outer one.
    pub async fn create_items(
        &self,
        mailbox: &str,
        items: Vec<Item>,
        send: &str,
    ) -> Result<Vec<Result<Item, EwsError>>, EwsError> {
        let count = items.len();
        let req = create_item::Request {
            send_meeting_invitations: Some(send.to_string()),
            message_disposition: None,
            saved_item_folder_id: Some(self.calendar_folder(mailbox)),
            items,
        };
        let msgs = self.call("CreateItem", Some(mailbox), false, |w| req.write(w), create_item::parse_response).await?;
        each("CreateItem", msgs, count, |items| first_item("CreateItem", items))
    }

    pub async fn update_item(
        &self,
        mailbox: &str,
        change: update_item::ItemChange,
        send: &str,
    ) -> Result<Item, EwsError> {
        one(self.update_items(mailbox, vec![change], send).await?)
    }

    /// UpdateItem of several items in one request (`NeverOverwrite`: each with the change key
    /// last read): each item's answer (its new change key), in order.
    pub async fn update_items(
        &self,
        mailbox: &str,
        changes: Vec<update_item::ItemChange>,
        send: &str,
    ) -> Result<Vec<Result<Item, EwsError>>, EwsError> {
        let count = changes.len();
        let req = update_item::Request {
            conflict_resolution: "NeverOverwrite".into(),
            message_disposition: Some("SaveOnly".into()),
            send_meeting_invitations_or_cancellations: Some(send.to_string()),
            item_changes: changes,
        };
        let msgs = self.call("UpdateItem", Some(mailbox), false, |w| req.write(w), update_item::parse_response).await?;
        each("UpdateItem", msgs, count, |items| first_item("UpdateItem", items))
    }

    pub async fn delete_item(&self, mailbox: &str, id: ItemRef, send: &str) -> Result<(), EwsError> {
        one(self.delete_items(mailbox, vec![id], send).await?)
    }

    /// DeleteItem of several items in one request: each item's answer, in order.
    pub async fn delete_items(
        &self,
        mailbox: &str,
        ids: Vec<ItemRef>,
        send: &str,
    ) -> Result<Vec<Result<(), EwsError>>, EwsError> {
        let count = ids.len();
        let req = delete_item::Request {
            delete_type: "MoveToDeletedItems".into(),
            send_meeting_cancellations: Some(send.to_string()),
            affected_task_occurrences: None,
            item_ids: ids,
        };
        let msgs = self.call("DeleteItem", Some(mailbox), false, |w| req.write(w), delete_item::parse_response).await?;
        each("DeleteItem", msgs, count, Ok)
    }

    /// The mailbox declines the meeting `id` it holds (DeclineItem, sent to the organizer).
    pub async fn decline_item(&self, mailbox: &str, id: &str, comment: &str) -> Result<(), EwsError> {
        let req = decline_item::Request {
            message_disposition: "SendAndSaveCopy".into(),
            body: (!comment.is_empty()).then(|| Body { body_type: "Text".into(), text: comment.to_string() }),
            reference_item_id: ItemId::new(id, None),
        };
        let msgs =
            self.call("CreateItem", Some(mailbox), false, |w| req.write(w), decline_item::parse_response).await?;
        single("CreateItem", msgs)
    }

    /// Directory entries matching `name` (an address or a name).
    pub async fn resolve_names(&self, name: &str) -> Result<Vec<resolve_names::Resolution>, EwsError> {
        let req = resolve_names::Request {
            return_full_contact_data: false,
            search_scope: Some("ActiveDirectory".into()),
            unresolved_entry: name.to_string(),
        };
        let msgs = self.call("ResolveNames", None, true, |w| req.write(w), resolve_names::parse_response).await?;
        match single("ResolveNames", msgs) {
            Ok(set) => Ok(set.resolutions),
            Err(e) if e.code() == Some("ErrorNameResolutionNoResults") => Ok(vec![]),
            Err(e) => Err(e),
        }
    }

    /// The organisation's room lists.
    pub async fn room_lists(&self) -> Result<Vec<EmailAddress>, EwsError> {
        let r = self
            .call("GetRoomLists", None, true, |w| get_room_lists::Request.write(w), get_room_lists::parse_response)
            .await?;
        status_result("GetRoomLists", &r.status)?;
        Ok(r.room_lists)
    }

    /// The rooms of a room list.
    pub async fn rooms(&self, room_list: &str) -> Result<Vec<EmailAddress>, EwsError> {
        let req = get_rooms::Request { room_list: room_list.to_string() };
        let r = self.call("GetRooms", None, true, |w| req.write(w), get_rooms::parse_response).await?;
        status_result("GetRooms", &r.status)?;
        Ok(r.rooms)
    }

    /// Free/busy of `mailboxes` over `[start, end)` (UTC `xs:dateTime` text), one answer per
    /// mailbox in order.
    pub async fn availability(
        &self,
        mailboxes: &[String],
        start: &str,
        end: &str,
    ) -> Result<get_user_availability::Response, EwsError> {
        let req = get_user_availability::Request {
            utc_time_zone: true,
            mailboxes: mailboxes
                .iter()
                .map(|m| get_user_availability::MailboxData {
                    address: m.clone(),
                    attendee_type: "Required".into(),
                    exclude_conflicts: Some(false),
                })
                .collect(),
            start_time: start.to_string(),
            end_time: end.to_string(),
            merged_free_busy_interval_in_minutes: None,
            requested_view: "FreeBusy".into(),
        };
        self.call("GetUserAvailability", None, true, |w| req.write(w), get_user_availability::parse_response).await
    }
}

impl EwsClient {
    /// Subscribes to changes of `mailbox`'s calendar (streaming or pull). Not retried when
    /// the request may have been processed: a lost subscription lapses on its own.
    pub async fn subscribe(&self, mailbox: &str, kind: subscribe::Kind) -> Result<subscribe::Subscribed, EwsError> {
        let req = subscribe::Request::calendar(kind, self.calendar_folder(mailbox));
        let msgs = self.call("Subscribe", Some(mailbox), false, |w| req.write(w), subscribe::parse_response).await?;
        single("Subscribe", msgs)
    }

    /// A pull subscription's events since `watermark`.
    pub async fn get_events(
        &self,
        mailbox: &str,
        subscription_id: &str,
        watermark: &str,
    ) -> Result<get_events::Notification, EwsError> {
        let req = get_events::Request { subscription_id: subscription_id.into(), watermark: watermark.into() };
        let msgs = self.call("GetEvents", Some(mailbox), true, |w| req.write(w), get_events::parse_response).await?;
        single("GetEvents", msgs)
    }

    /// Ends a subscription; one Exchange no longer has is fine.
    pub async fn unsubscribe(&self, mailbox: &str, subscription_id: &str) -> Result<(), EwsError> {
        let req = unsubscribe::Request { subscription_id: subscription_id.into() };
        let msgs = self.call("Unsubscribe", Some(mailbox), true, |w| req.write(w), unsubscribe::parse_response).await?;
        match single("Unsubscribe", msgs) {
            Err(e) if e.code() == Some("ErrorSubscriptionNotFound") => Ok(()),
            other => other,
        }
    }

    /// Opens a GetStreamingEvents connection for `subscription_ids` (made as `anchor`'s, or
    /// on its server), for `minutes` (1–30). The envelopes arrive through the returned
    /// stream; an answer that is not a stream (a fault) is its error.
    pub async fn open_stream(
        &self,
        anchor: &str,
        subscription_ids: Vec<String>,
        minutes: u32,
    ) -> Result<crate::streaming::EnvelopeStream, EwsError> {
        let req = get_streaming_events::Request { subscription_ids, connection_timeout: minutes.clamp(1, 30) };
        let xml = envelope::request(&self.header(Some(anchor)), |w| req.write(w));
        match self.inner.transport.open_stream(xml, Some(anchor)).await? {
            crate::transport::StreamAnswer::Streaming(s) => Ok(crate::streaming::EnvelopeStream::new(s)),
            crate::transport::StreamAnswer::Complete(answer) => {
                // A fault or an error answer: read it as the operation's response.
                let msgs = read_answer("GetStreamingEvents", &answer, &get_streaming_events::parse_response)?;
                Ok(crate::streaming::EnvelopeStream::finished(msgs))
            }
        }
    }

    /// The origin requests go to and its connection limit (for the streaming budget).
    pub fn server(&self) -> (String, u32) {
        (self.inner.transport.origin(), self.inner.transport.max_connections())
    }
}

fn status_result(operation: &'static str, s: &Status) -> Result<(), EwsError> {
    if s.is_success() {
        Ok(())
    } else {
        Err(EwsError::Response {
            operation,
            code: s.code.clone(),
            text: s.text.clone(),
            back_off: s.back_off_ms().map(Duration::from_millis),
        })
    }
}

/// One answer per request item: EWS answers each item of a request with a response message of
/// its own, in order; a different count makes the whole answer unreadable.
fn each<T, U>(
    operation: &'static str,
    messages: Vec<Message<T>>,
    count: usize,
    payload: impl Fn(T) -> Result<U, EwsError>,
) -> Result<Vec<Result<U, EwsError>>, EwsError> {
    if messages.len() != count {
        return Err(EwsError::Decode {
            operation,
            source: WireError::missing(format!(
                "{count} {operation}ResponseMessage elements (one per item; there were {})",
                messages.len()
            )),
        });
    }
    Ok(messages.into_iter().map(|m| message_result(operation, m).and_then(&payload)).collect())
}

/// The only answer of a request for one item.
fn one<U>(mut answers: Vec<Result<U, EwsError>>) -> Result<U, EwsError> {
    answers.pop().expect("one answer per item, checked by `each`")
}

fn first_item(operation: &'static str, items: Vec<Item>) -> Result<Item, EwsError> {
    items.into_iter().next().ok_or_else(|| EwsError::Decode { operation, source: WireError::missing("the item") })
}

/// An HTTP answer as the operation's response, or the error it carries.
/// [`read_answer`]; a large answer (a page of items) on a thread for blocking work: reading
/// hundreds of items takes milliseconds, which would hold up the runtime worker's other tasks
/// (answers waiting to be read, holding their request slots; a commit waiting for its next
/// statement, holding the store's write turn).
async fn read_answer_off_workers<R: Send + 'static>(
    operation: &'static str,
    answer: Answer,
    parse: impl Fn(Node<'_, '_>) -> Result<R, WireError> + Send + 'static,
) -> Result<R, EwsError> {
    if answer.body.len() < READ_INLINE_BELOW {
        return read_answer(operation, &answer, &parse);
    }
    match tokio::task::spawn_blocking(move || read_answer(operation, &answer, &parse)).await {
        Ok(read) => read,
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        Err(e) => {
            Err(EwsError::Decode { operation, source: WireError::invalid("the answer", format!("not read: {e}")) })
        }
    }
}

/// Answers shorter than this (bytes) are read where they arrive.
const READ_INLINE_BELOW: usize = 64 * 1024;

fn read_answer<R>(
    operation: &'static str,
    answer: &Answer,
    parse: &impl Fn(Node<'_, '_>) -> Result<R, WireError>,
) -> Result<R, EwsError> {
    let decode = |source| EwsError::Decode { operation, source };
    let looks_like_xml =
        answer.headers.get(hyper::header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).is_none_or(|t| t.contains("xml"));
    if answer.status != 200 && !(answer.status == 500 && looks_like_xml) {
        return Err(EwsError::Http { status: answer.status, snippet: snippet(&answer.body) });
    }
    let text = xml::decode(&answer.body, Limits::default()).map_err(decode)?;
    let doc = match xml::parse(text, Limits::default()) {
        Ok(d) => d,
        Err(e) if answer.status == 500 => {
            tracing::debug!(operation, "an HTTP 500 that is not XML: {e}");
            return Err(EwsError::Http { status: 500, snippet: snippet(&answer.body) });
        }
        Err(e) => return Err(decode(e)),
    };
    let env = envelope::split(&doc).map_err(decode)?;
    if let Some(fault) = Fault::parse(env.body) {
        return Err(EwsError::Fault { fault });
    }
    if answer.status != 200 {
        return Err(EwsError::Http { status: answer.status, snippet: snippet(&answer.body) });
    }
    parse(env.body).map_err(decode)
}

/// The start of a non-EWS answer, for the error message (one line, at most 160 characters).
fn snippet(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(&body[..body.len().min(600)]);
    let line: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    let mut s: String = line.chars().take(160).collect();
    if line.chars().count() > 160 {
        s.push('…');
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::ops::get_item;

    fn answer(status: u16, body: String) -> Answer {
        let mut headers = hyper::HeaderMap::new();
        headers.insert(hyper::header::CONTENT_TYPE, hyper::header::HeaderValue::from_static("text/xml; charset=utf-8"));
        Answer { status, headers, body: body.into() }
    }

    #[test]
    fn an_answer_with_a_dtd_or_too_deep_is_refused_with_a_clear_error() {
        let envelope = |inner: &str| {
            format!(
                r#"<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body>{inner}</s:Body></s:Envelope>"#
            )
        };
        let bomb = format!(
            r#"<!DOCTYPE s:Envelope [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;"><!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;">]>{}"#,
            envelope("&c;")
        );
        let xxe = format!(r#"<!DOCTYPE s:Envelope [<!ENTITY x SYSTEM "file:///etc/passwd">]>{}"#, envelope("&x;"));
        for body in [bomb, xxe] {
            let e = read_answer("GetItem", &answer(200, body), &get_item::parse_response).unwrap_err();
            assert!(matches!(e, EwsError::Decode { operation: "GetItem", source: WireError::Dtd }), "{e:?}");
            assert_eq!(
                e.to_string(),
                "the EWS answer to GetItem could not be read: the XML contains a document type declaration (DTD), \
                 which EWS never sends; refused"
            );
        }
        let deep = envelope(&format!("{}{}", "<a>".repeat(500), "</a>".repeat(500)));
        let e = read_answer("GetItem", &answer(200, deep), &get_item::parse_response).unwrap_err();
        assert!(matches!(e, EwsError::Decode { source: WireError::TooDeep { limit: 128 }, .. }), "{e:?}");
        // As a permanent error: retrying would get the same answer.
        assert!(matches!(e.classify(), calbridge_core::remote::RemoteError::Permanent(_)));
    }
}
