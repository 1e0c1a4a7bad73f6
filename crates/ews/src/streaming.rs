//! EWS change notifications, read by calbridge itself (an outbound connection: no public URL
//! is needed, unlike Graph's): [`EwsWatch`], the EWS side of `Remote::watch`.
//!
//! A watch splits its mailboxes into groups of at most 200 (Exchange's limit of subscriptions
//! per streaming connection) and, per group:
//! 1. **streaming**: a streaming subscription per mailbox's calendar, and one long-lived
//!    GetStreamingEvents connection carrying them all, opened again at once when Exchange
//!    closes it (`ConnectionStatus` `Closed`, after `ConnectionTimeout`). Every notification
//!    with a change reports its mailbox changed. Streaming connections are budgeted per server
//!    ([`crate::transport::streaming_budget`]: `WatchOptions::streaming_connections`, at most a
//!    quarter of the connection limit), so they cannot starve sync requests; groups beyond the
//!    budget use pull subscriptions, as do groups the server refuses a connection
//!    (`ErrorExceededConnectionCount`: Exchange Server allows an account 3 open streaming
//!    connections by default, `HangingConnectionLimit`; Exchange Online 10).
//! 2. **pull**, when the server refuses streaming (Exchange 2007 answers `ErrorInvalidRequest`
//!    or a schema fault) or the budget is spent: a pull subscription per mailbox, read with
//!    GetEvents every `WatchOptions::pull_interval`. Streaming is tried again after
//!    `WatchOptions::retry_refused`.
//! 3. **polling**, when subscriptions are refused altogether: the mailboxes are reported in
//!    `WatchMode::Polling` (calbridge's scheduled sync covers them) and subscribing is tried
//!    again after `retry_refused`.
//!
//! A subscription Exchange lost (`ErrorSubscriptionNotFound`, `ErrorExpiredSubscription`,
//! `ErrorInvalidSubscription`) is made again, and lost events (`ErrorMissedNotificationEvents`)
//! or a connection that broke (rather than closing) report the mailboxes changed, so a sync
//! catches up: the sync reads SyncFolderItems since its cursor, so a duplicated or needless
//! report costs one cheap request.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use calbridge_core::remote::{Watch, WatchEvent, WatchMode, WatchOptions};
use tokio::sync::{mpsc, Semaphore};

use crate::client::EwsClient;
use crate::error::EwsError;
use crate::transport::Streamed;
use crate::wire::envelope::{self, Fault};
use crate::wire::ops::get_streaming_events::{self, next_envelope, StreamMessage, MAX_SUBSCRIPTIONS};
use crate::wire::ops::subscribe::Kind;
use crate::wire::xml::{self, Limits, WireError};

/// `ConnectionTimeout` of a streaming connection, in minutes (Exchange's maximum).
pub const CONNECTION_MINUTES: u32 = 30;

/// The envelopes of a GetStreamingEvents answer, one message at a time.
pub struct EnvelopeStream {
    body: Option<Streamed>,
    buffer: Vec<u8>,
    queued: VecDeque<StreamMessage>,
}

impl EnvelopeStream {
    pub(crate) fn new(body: Streamed) -> Self {
        EnvelopeStream { body: Some(body), buffer: Vec::new(), queued: VecDeque::new() }
    }

    /// An answer that came whole (an error answer).
    pub(crate) fn finished(messages: Vec<StreamMessage>) -> Self {
        EnvelopeStream { body: None, buffer: Vec::new(), queued: messages.into() }
    }

    /// The next message; `Ok(None)` when the server ended the answer. Waits at most `idle` for
    /// the next piece of it.
    pub async fn next(&mut self, idle: Duration) -> Result<Option<StreamMessage>, EwsError> {
        loop {
            if let Some(m) = self.queued.pop_front() {
                return Ok(Some(m));
            }
            let text = match std::str::from_utf8(&self.buffer) {
                Ok(t) => t,
                Err(e) => std::str::from_utf8(&self.buffer[..e.valid_up_to()]).unwrap_or_default(),
            };
            if let Some(n) = next_envelope(text) {
                let messages = read_envelope(&text[..n])?;
                self.buffer.drain(..n);
                self.queued.extend(messages);
                continue;
            }
            let Some(body) = self.body.as_mut() else { return Ok(None) };
            let broke = |message: String| EwsError::Transport { url: String::new(), message, sent: true };
            match tokio::time::timeout(idle, body.chunk()).await {
                Err(_) => return Err(broke(format!("the notification stream was silent for {} s", idle.as_secs()))),
                Ok(Err(e)) => return Err(broke(format!("the notification stream broke: {e}"))),
                Ok(Ok(Some(bytes))) => {
                    if self.buffer.len() + bytes.len() > Limits::default().max_bytes {
                        return Err(broke("a streamed envelope exceeded the size limit".into()));
                    }
                    self.buffer.extend_from_slice(&bytes);
                }
                Ok(Ok(None)) => {
                    self.body = None;
                    if !String::from_utf8_lossy(&self.buffer).trim().is_empty() {
                        return Err(broke("the notification stream ended inside an envelope".into()));
                    }
                }
            }
        }
    }
}

fn read_envelope(text: &str) -> Result<Vec<StreamMessage>, EwsError> {
    let decode = |source: WireError| EwsError::Decode { operation: "GetStreamingEvents", source };
    let doc = xml::parse(text.trim(), Limits::default()).map_err(decode)?;
    let env = envelope::split(&doc).map_err(decode)?;
    if let Some(fault) = Fault::parse(env.body) {
        return Err(EwsError::Fault { fault });
    }
    get_streaming_events::parse_response(env.body).map_err(decode)
}

/// Answers that mean "this server has no streaming notifications".
fn streaming_refused(e: &EwsError) -> bool {
    matches!(e, EwsError::Http { status: 400 | 501, .. })
        || e.code().is_some_and(|c| {
            matches!(
                c,
                "ErrorInvalidRequest" | "ErrorSchemaValidation" | "ErrorInvalidServerVersion" | "ErrorInvalidOperation"
            )
        })
}

/// Answers that mean "no subscriptions here" (for this mailbox, or at all).
fn subscriptions_refused(e: &EwsError) -> bool {
    streaming_refused(e)
        || e.code().is_some_and(|c| {
            matches!(
                c,
                "ErrorInvalidSubscriptionRequest"
                    | "ErrorSubscriptionDelegateAccessNotSupported"
                    | "ErrorSubscriptionAccessDenied"
            )
        })
}

/// Codes that mean the subscription is gone or its events were lost: subscribe again, resync.
fn lost(code: &str) -> bool {
    matches!(
        code,
        "ErrorSubscriptionNotFound"
            | "ErrorExpiredSubscription"
            | "ErrorInvalidSubscription"
            | "ErrorMissedNotificationEvents"
            | "ErrorSubscriptionUnsubscribed"
            | "ErrorInvalidWatermark"
    )
}

/// A running EWS watch (see the module header). Dropping it stops it and ends its
/// subscriptions (in the background, best effort: those it misses lapse on their own).
pub struct EwsWatch {
    rx: mpsc::UnboundedReceiver<WatchEvent>,
    task: tokio::task::JoinHandle<()>,
    ctx: Arc<Ctx>,
}

impl Drop for EwsWatch {
    fn drop(&mut self) {
        self.task.abort();
        let held = std::mem::take(&mut *self.ctx.held.lock().expect("watch state"));
        if held.is_empty() {
            return;
        }
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            let client = self.ctx.client.clone();
            rt.spawn(async move {
                for (id, mailbox) in held {
                    if let Err(e) = client.unsubscribe(&mailbox, &id).await {
                        tracing::debug!(mailbox = %mailbox, "EWS: a subscription could not be ended: {e}");
                    }
                }
            });
        }
    }
}

#[async_trait::async_trait]
impl Watch for EwsWatch {
    async fn next(&mut self) -> Option<WatchEvent> {
        self.rx.recv().await
    }
}

struct Ctx {
    client: EwsClient,
    options: WatchOptions,
    budget: Arc<Semaphore>,
    /// When the server last refused streaming.
    streaming_refused: Mutex<Option<Instant>>,
    /// The subscriptions made and not known to be gone: id → mailbox.
    held: Mutex<BTreeMap<String, String>>,
    tx: mpsc::UnboundedSender<WatchEvent>,
}

impl Ctx {
    fn changed(&self, mailboxes: Vec<String>) {
        if !mailboxes.is_empty() {
            let _ = self.tx.send(WatchEvent::Changed(mailboxes));
        }
    }
    fn mode(&self, mode: WatchMode, mailboxes: Vec<String>) {
        if !mailboxes.is_empty() {
            let _ = self.tx.send(WatchEvent::Mode { mode, mailboxes });
        }
    }
    fn hold(&self, id: &str, mailbox: &str) {
        self.held.lock().expect("watch state").insert(id.to_string(), mailbox.to_string());
    }
    fn release(&self, id: &str) {
        self.held.lock().expect("watch state").remove(id);
    }
    fn streaming_refused_recently(&self) -> bool {
        self.streaming_refused.lock().expect("watch state").is_some_and(|t| t.elapsed() < self.options.retry_refused)
    }
}

/// Starts watching `mailboxes` (see the module header).
pub fn watch(client: EwsClient, mailboxes: Vec<String>, options: WatchOptions) -> EwsWatch {
    let (tx, rx) = mpsc::unbounded_channel();
    let (origin, max) = client.server();
    let budget = crate::transport::streaming_budget(&origin, options.streaming_connections, max);
    let ctx = Arc::new(Ctx {
        client,
        options,
        budget,
        streaming_refused: Mutex::new(None),
        held: Mutex::new(BTreeMap::new()),
        tx,
    });
    let running = ctx.clone();
    let task = tokio::spawn(async move {
        let ctx = running;
        let mut groups = tokio::task::JoinSet::new();
        for group in mailboxes.chunks(MAX_SUBSCRIPTIONS) {
            groups.spawn(run_group(ctx.clone(), group.to_vec()));
        }
        while groups.join_next().await.is_some() {}
    });
    EwsWatch { rx, task, ctx }
}

/// How a mode ended.
enum End {
    /// The server has no streaming: fall back to pull.
    StreamingRefused,
    /// The server refused every subscription of the group: poll.
    SubscriptionsRefused,
    /// Time to try streaming again.
    Retry,
}

async fn run_group(ctx: Arc<Ctx>, group: Vec<String>) {
    loop {
        let mut end = End::Retry;
        if !ctx.streaming_refused_recently() {
            if let Ok(permit) = ctx.budget.clone().try_acquire_owned() {
                end = streaming(&ctx, &group).await;
                drop(permit);
                if matches!(end, End::StreamingRefused) {
                    *ctx.streaming_refused.lock().expect("watch state") = Some(Instant::now());
                }
            }
        }
        if !matches!(end, End::SubscriptionsRefused) {
            end = pull(&ctx, &group).await;
        }
        if matches!(end, End::SubscriptionsRefused) {
            ctx.mode(WatchMode::Polling, group.clone());
            tokio::time::sleep(ctx.options.retry_refused).await;
        }
    }
}

/// Subscribes each mailbox; those refused are reported as polled. `Err` when the server
/// refuses this kind of subscription altogether.
async fn subscribe_all(
    ctx: &Ctx,
    group: &[String],
    kind: &Kind,
) -> Result<BTreeMap<String, (String, Option<String>)>, End> {
    let mut made = BTreeMap::new();
    let mut refused = Vec::new();
    for mailbox in group {
        match ctx.client.subscribe(mailbox, kind.clone()).await {
            Ok(s) => {
                ctx.hold(&s.subscription_id, mailbox);
                made.insert(mailbox.clone(), (s.subscription_id, s.watermark));
            }
            Err(e) if matches!(kind, Kind::Streaming) && streaming_refused(&e) => {
                tracing::info!("EWS: the server refuses streaming notifications ({e}); using pull subscriptions");
                return Err(End::StreamingRefused);
            }
            Err(e) => {
                tracing::warn!(mailbox = %mailbox, "EWS: could not subscribe to change notifications: {e}");
                if subscriptions_refused(&e) && made.is_empty() && mailbox == &group[0] {
                    return Err(End::SubscriptionsRefused);
                }
                refused.push(mailbox.clone());
            }
        }
    }
    if made.is_empty() {
        return Err(End::SubscriptionsRefused);
    }
    ctx.mode(WatchMode::Polling, refused);
    Ok(made)
}

async fn streaming(ctx: &Ctx, group: &[String]) -> End {
    let subs = match subscribe_all(ctx, group, &Kind::Streaming).await {
        Ok(s) => s,
        Err(end) => return end,
    };
    // id → mailbox.
    let mut ids: BTreeMap<String, String> = subs.into_iter().map(|(m, (id, _))| (id, m)).collect();
    let everyone = |ids: &BTreeMap<String, String>| ids.values().cloned().collect::<Vec<_>>();
    ctx.mode(WatchMode::Streaming, everyone(&ids));
    // Whatever changed before the subscriptions existed.
    ctx.changed(everyone(&ids));
    let idle = Duration::from_secs(u64::from(CONNECTION_MINUTES) * 60 + 60);
    let mut backoff = Duration::from_secs(1);
    let mut broke = false;
    let end = 'conn: loop {
        if ids.is_empty() {
            break End::Retry;
        }
        let anchor = ids.values().next().cloned().unwrap_or_default();
        let mut stream = match ctx.client.open_stream(&anchor, ids.keys().cloned().collect(), CONNECTION_MINUTES).await
        {
            Ok(s) => s,
            Err(e) if streaming_refused(&e) => break 'conn End::StreamingRefused,
            Err(e) if e.code() == Some("ErrorExceededConnectionCount") => {
                // The account's streaming connections are spent (HangingConnectionLimit).
                tracing::warn!("EWS: {e}; using pull subscriptions for these mailboxes for now");
                break 'conn End::Retry;
            }
            Err(e) => {
                tracing::warn!(
                    "EWS: the notification stream could not be opened: {e}; trying again in {} s",
                    backoff.as_secs()
                );
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(60));
                broke = true;
                continue;
            }
        };
        let mut lost_ids: Vec<String> = Vec::new();
        let mut closed = false;
        loop {
            match stream.next(idle).await {
                Ok(Some(m)) if !m.status.is_success() => {
                    if lost(&m.status.code) {
                        let named = if m.error_subscription_ids.is_empty() {
                            ids.keys().cloned().collect()
                        } else {
                            m.error_subscription_ids.clone()
                        };
                        lost_ids.extend(named);
                    } else if m.status.code == "ErrorInvalidRequest" {
                        break 'conn End::StreamingRefused;
                    } else {
                        tracing::warn!("EWS: the notification stream reported {}", m.status.code);
                        broke = true;
                    }
                }
                Ok(Some(m)) => {
                    if broke {
                        // Connected again after a break: events may have been missed.
                        ctx.changed(everyone(&ids));
                        broke = false;
                    }
                    backoff = Duration::from_secs(1);
                    let changed: Vec<String> = m
                        .notifications
                        .iter()
                        .filter(|n| n.has_changes())
                        .filter_map(|n| ids.get(&n.subscription_id).cloned())
                        .collect();
                    ctx.changed(changed);
                    if m.is_closed() {
                        closed = true;
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    tracing::warn!("EWS: {e}; connecting again");
                    broke = true;
                    break;
                }
            }
        }
        if !lost_ids.is_empty() {
            // Subscribe those mailboxes again and catch up on what they missed.
            for id in &lost_ids {
                ctx.release(id);
            }
            let mailboxes: Vec<String> = lost_ids.iter().filter_map(|id| ids.remove(id)).collect();
            let mut again = Vec::new();
            for mailbox in &mailboxes {
                match ctx.client.subscribe(mailbox, Kind::Streaming).await {
                    Ok(s) => {
                        ctx.hold(&s.subscription_id, mailbox);
                        ids.insert(s.subscription_id, mailbox.clone());
                        again.push(mailbox.clone());
                    }
                    Err(e) if streaming_refused(&e) => break 'conn End::StreamingRefused,
                    Err(e) => {
                        tracing::warn!(mailbox = %mailbox, "EWS: could not subscribe again: {e}");
                        ctx.mode(WatchMode::Polling, vec![mailbox.clone()]);
                    }
                }
            }
            tracing::info!(count = again.len(), "EWS: lost subscriptions were made again");
            ctx.changed(mailboxes);
        } else if !closed {
            broke = true;
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(60));
        }
    };
    // Falling back: end the streaming subscriptions rather than leave them to lapse.
    for (id, mailbox) in &ids {
        let _ = ctx.client.unsubscribe(mailbox, id).await;
        ctx.release(id);
    }
    end
}

async fn pull(ctx: &Ctx, group: &[String]) -> End {
    // Long enough to survive a few missed reads.
    let timeout_minutes = ((ctx.options.pull_interval.as_secs() * 4).div_ceil(60)).clamp(5, 1440) as u32;
    let kind = Kind::Pull { timeout_minutes };
    let mut subs = match subscribe_all(ctx, group, &kind).await {
        Ok(s) => s,
        Err(End::StreamingRefused) => return End::SubscriptionsRefused,
        Err(end) => return end,
    };
    ctx.mode(WatchMode::Pull, subs.keys().cloned().collect());
    ctx.changed(subs.keys().cloned().collect());
    let started = Instant::now();
    loop {
        tokio::time::sleep(ctx.options.pull_interval).await;
        if started.elapsed() >= ctx.options.retry_refused {
            for (mailbox, (id, _)) in &subs {
                let _ = ctx.client.unsubscribe(mailbox, id).await;
                ctx.release(id);
            }
            return End::Retry;
        }
        let mut changed = Vec::new();
        let mut again = Vec::new();
        for (mailbox, (id, watermark)) in subs.iter_mut() {
            while let Some(w) = watermark.clone() {
                match ctx.client.get_events(mailbox, id, &w).await {
                    Ok(n) => {
                        if n.has_changes() && !changed.contains(mailbox) {
                            changed.push(mailbox.clone());
                        }
                        *watermark = n.last_watermark().map(str::to_string).or(Some(w));
                        if n.more_events != Some(true) {
                            break;
                        }
                    }
                    Err(e) if e.code().is_some_and(lost) => {
                        ctx.release(id);
                        again.push(mailbox.clone());
                        break;
                    }
                    Err(e) => {
                        tracing::debug!(mailbox = %mailbox, "EWS: GetEvents failed: {e}");
                        break;
                    }
                }
            }
        }
        for mailbox in again {
            match ctx.client.subscribe(&mailbox, kind.clone()).await {
                Ok(s) => {
                    ctx.hold(&s.subscription_id, &mailbox);
                    subs.insert(mailbox.clone(), (s.subscription_id, s.watermark));
                }
                Err(e) => {
                    tracing::warn!(mailbox = %mailbox, "EWS: could not subscribe again: {e}");
                    subs.remove(&mailbox);
                    ctx.mode(WatchMode::Polling, vec![mailbox.clone()]);
                }
            }
            if !changed.contains(&mailbox) {
                changed.push(mailbox);
            }
        }
        ctx.changed(changed);
        if subs.is_empty() {
            return End::SubscriptionsRefused;
        }
    }
}
