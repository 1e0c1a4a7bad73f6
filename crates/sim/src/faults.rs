//! Fault injection (throttling, 5xx, dropped responses, expired sync state, latency) and
//! request statistics. Both are shared by every clone of a [`crate::Simulator`].
//!
//! Two modes: "the next n requests" ([`Faults::throttle_next`], [`Faults::fail_next`], ...),
//! and a seeded random mode ([`Faults::set_random`]) in which every Graph and EWS request
//! independently meets one of the [`FaultKind`]s with a given probability. Every fault the
//! random mode injects is counted by kind in [`SimStats::faults`].

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Faults to inject into the next Graph and EWS requests (EWS requests count once signed
/// in). Also reachable as `POST /_sim/faults` with a [`FaultRequest`] body.
#[derive(Debug, Default)]
pub struct Faults {
    throttle: Mutex<(u32, u64)>,
    fail: Mutex<(u32, u16)>,
    drop_after_apply: Mutex<u32>,
    latency_ms: AtomicU64,
    /// Sync-state epoch: tokens issued in an older epoch answer 410.
    pub(crate) delta_epoch: AtomicU64,
    /// Change-notification batches still to be delivered twice (the second time reversed).
    duplicate_notifications: Mutex<u32>,
    /// The seeded random mode, when on.
    random: Mutex<Option<RandomFaults>>,
}

/// A fault the random mode can inject ([`Faults::set_random`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FaultKind {
    /// Graph: 429 `ApplicationThrottled` with `Retry-After`; EWS: the `ErrorServerBusy` fault
    /// with `BackOffMilliseconds` (HTTP 500).
    Throttle,
    /// HTTP 503 (Graph's `ServiceNotAvailable` body; EWS's front end answer).
    Unavailable,
    /// The TCP connection is closed without any answer, before the request is applied.
    Reset,
    /// A change (Graph POST/PATCH/DELETE, EWS CreateItem/UpdateItem/DeleteItem) is applied,
    /// then the connection is closed without an answer.
    LostResponse,
    /// Every delta token and EWS `SyncState` issued so far is refused from now on (Graph 410
    /// `syncStateNotFound`, EWS `ErrorInvalidSyncStateData`); drawn for sync requests only.
    ExpiredSyncState,
    /// A person changes the item in Outlook just before an update or delete of it is handled,
    /// so the request meets a stale `@odata.etag`/`ChangeKey` for real.
    Conflict,
    /// A batch of change notifications is delivered twice, the second time in reverse order.
    DuplicateNotifications,
}

impl FaultKind {
    /// Every kind, in the order of their weights in [`FaultKind::weight`].
    pub const ALL: [FaultKind; 7] = [
        FaultKind::Throttle,
        FaultKind::Unavailable,
        FaultKind::Reset,
        FaultKind::LostResponse,
        FaultKind::ExpiredSyncState,
        FaultKind::Conflict,
        FaultKind::DuplicateNotifications,
    ];

    /// The name used in statistics (`throttle`, `unavailable`, `reset`, `lost_response`,
    /// `expired_sync_state`, `conflict`, `duplicate_notifications`).
    pub fn as_str(self) -> &'static str {
        match self {
            FaultKind::Throttle => "throttle",
            FaultKind::Unavailable => "unavailable",
            FaultKind::Reset => "reset",
            FaultKind::LostResponse => "lost_response",
            FaultKind::ExpiredSyncState => "expired_sync_state",
            FaultKind::Conflict => "conflict",
            FaultKind::DuplicateNotifications => "duplicate_notifications",
        }
    }

    /// Relative weight among the kinds a request can meet. Throttling and outages are the
    /// common faults; an expired sync state is rare, because each one makes every calendar
    /// list its window again.
    fn weight(self) -> u64 {
        match self {
            FaultKind::Throttle => 4,
            FaultKind::Unavailable => 3,
            FaultKind::Reset => 3,
            FaultKind::LostResponse => 3,
            FaultKind::ExpiredSyncState => 1,
            FaultKind::Conflict => 4,
            FaultKind::DuplicateNotifications => 1,
        }
    }
}

/// What a request is, for the random mode: which faults it can meet.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct RequestClass {
    /// It changes an item (Graph POST/PATCH/DELETE of an event, EWS Create/Update/DeleteItem).
    pub mutating: bool,
    /// It changes or deletes an existing item (Graph PATCH/DELETE, EWS UpdateItem/DeleteItem).
    pub edits_item: bool,
    /// It reads changes since a sync state (Graph `calendarView/delta`, EWS SyncFolderItems).
    pub sync: bool,
}

impl RequestClass {
    fn can_meet(self, kind: FaultKind) -> bool {
        match kind {
            FaultKind::Throttle | FaultKind::Unavailable | FaultKind::Reset => true,
            FaultKind::LostResponse => self.mutating,
            FaultKind::ExpiredSyncState => self.sync,
            FaultKind::Conflict => self.edits_item,
            FaultKind::DuplicateNotifications => false,
        }
    }
}

/// The random mode's settings and generator.
#[derive(Debug)]
struct RandomFaults {
    /// Probability, per request (and per notification batch), of a fault.
    rate: f64,
    /// `Retry-After` (EWS: `BackOffMilliseconds` / 1000) of an injected throttle.
    retry_after_secs: u64,
    rng: SplitMix64,
}

/// SplitMix64: small, fast and fixed by its seed (the simulator has no randomness crate).
#[derive(Debug)]
struct SplitMix64(u64);

impl SplitMix64 {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

impl Faults {
    /// The next `n` requests are throttled: Graph answers 429 with
    /// `Retry-After: retry_after_secs`; EWS answers HTTP 500 with the `ErrorServerBusy` fault
    /// and `BackOffMilliseconds` of the same wait.
    pub fn throttle_next(&self, n: u32, retry_after_secs: u64) {
        *self.throttle.lock().unwrap() = (n, retry_after_secs);
    }

    /// The next `n` mutating event requests (POST/PATCH/DELETE) are applied, then the
    /// connection is aborted before a response is sent.
    pub fn drop_responses_after_apply(&self, n: u32) {
        *self.drop_after_apply.lock().unwrap() = n;
    }

    /// Every delta/skip token issued so far answers 410 `syncStateNotFound` from now on.
    pub fn expire_delta_tokens(&self) {
        self.delta_epoch.fetch_add(1, Ordering::SeqCst);
    }

    /// The next `n` requests answer `status` (a 5xx): Graph with its error body, EWS with
    /// Exchange's internal-error fault (500) or the front end's plain answer (502–504).
    pub fn fail_next(&self, n: u32, status: u16) {
        *self.fail.lock().unwrap() = (n, status);
    }

    /// Every Graph and EWS request waits this long before it is handled (a Graph request while
    /// holding its mailbox concurrency slot). Zero turns it off.
    pub fn set_latency(&self, latency: Duration) {
        self.latency_ms.store(latency.as_millis() as u64, Ordering::SeqCst);
    }

    /// Clears every pending fault and turns the random mode off (not the sync-state epoch).
    pub fn clear(&self) {
        self.throttle_next(0, 0);
        self.fail_next(0, 503);
        self.drop_responses_after_apply(0);
        self.set_latency(Duration::ZERO);
        self.duplicate_notifications(0);
        self.stop_random();
    }

    /// The seeded random mode: each Graph request (each request inside a `$batch` too) and
    /// each EWS request (once signed in), and each batch of change notifications, independently meets a fault with probability `rate` (0 to
    /// 1). The kind is drawn, by weight, among those the request can meet (see
    /// [`FaultKind`]): a lost response only for changes, a conflict only for an update or
    /// delete of an item, an expired sync state only for a delta / SyncFolderItems request.
    /// The same seed gives the same sequence of draws; which request meets which draw
    /// depends on the order requests arrive in. Throttles ask to wait `retry_after_secs`.
    pub fn set_random(&self, rate: f64, seed: u64, retry_after_secs: u64) {
        *self.random.lock().unwrap() =
            Some(RandomFaults { rate: rate.clamp(0.0, 1.0), retry_after_secs, rng: SplitMix64(seed) });
    }

    /// Turns the random mode off.
    pub fn stop_random(&self) {
        *self.random.lock().unwrap() = None;
    }

    /// Draws the random mode's fault for one request, if any (counted by the caller once the
    /// fault is applied, with [`StatsCounters::fault`]).
    pub(crate) fn draw(&self, class: RequestClass) -> Option<FaultKind> {
        let mut guard = self.random.lock().unwrap();
        let r = guard.as_mut()?;
        if r.rng.next_f64() >= r.rate {
            return None;
        }
        let kinds: Vec<FaultKind> = FaultKind::ALL.into_iter().filter(|k| class.can_meet(*k)).collect();
        let total: u64 = kinds.iter().map(|k| k.weight()).sum();
        let mut pick = r.rng.next_u64() % total.max(1);
        for k in kinds {
            if pick < k.weight() {
                return Some(k);
            }
            pick -= k.weight();
        }
        None
    }

    /// The `Retry-After` of the random mode's throttles (1 s when it is off).
    pub(crate) fn random_retry_after(&self) -> u64 {
        self.random.lock().unwrap().as_ref().map_or(1, |r| r.retry_after_secs)
    }

    /// Whether the random mode duplicates (and reverses) the next notification batch.
    pub(crate) fn draw_duplicate_notification(&self) -> bool {
        let mut guard = self.random.lock().unwrap();
        match guard.as_mut() {
            Some(r) => r.rng.next_f64() < r.rate,
            None => false,
        }
    }

    pub(crate) fn take_throttle(&self) -> Option<u64> {
        let mut t = self.throttle.lock().unwrap();
        if t.0 > 0 {
            t.0 -= 1;
            Some(t.1)
        } else {
            None
        }
    }

    pub(crate) fn take_fail(&self) -> Option<u16> {
        let mut f = self.fail.lock().unwrap();
        if f.0 > 0 {
            f.0 -= 1;
            Some(f.1)
        } else {
            None
        }
    }

    pub(crate) fn take_drop(&self) -> bool {
        let mut d = self.drop_after_apply.lock().unwrap();
        if *d > 0 {
            *d -= 1;
            true
        } else {
            false
        }
    }

    pub(crate) fn latency(&self) -> Duration {
        Duration::from_millis(self.latency_ms.load(Ordering::SeqCst))
    }

    pub(crate) fn epoch(&self) -> u64 {
        self.delta_epoch.load(Ordering::SeqCst)
    }

    /// The next `n` batches of change notifications are delivered twice, the second time in
    /// reverse order (Graph delivers at least once, in no promised order).
    pub fn duplicate_notifications(&self, n: u32) {
        *self.duplicate_notifications.lock().unwrap() = n;
    }

    pub(crate) fn take_duplicate_notification(&self) -> bool {
        let mut n = self.duplicate_notifications.lock().unwrap();
        if *n > 0 {
            *n -= 1;
            true
        } else {
            false
        }
    }

    /// Applies a `POST /_sim/faults` body.
    pub fn apply(&self, req: &FaultRequest) {
        if let Some(t) = &req.throttle_next {
            self.throttle_next(t.n, t.retry_after_secs);
        }
        if let Some(n) = req.drop_responses_after_apply {
            self.drop_responses_after_apply(n);
        }
        if req.expire_delta_tokens {
            self.expire_delta_tokens();
        }
        if let Some(f) = &req.fail_next {
            self.fail_next(f.n, f.status);
        }
        if let Some(ms) = req.latency_ms {
            self.set_latency(Duration::from_millis(ms));
        }
        if let Some(n) = req.duplicate_notifications {
            self.duplicate_notifications(n);
        }
        if req.clear {
            self.clear();
        }
        if let Some(r) = &req.random {
            if r.rate > 0.0 {
                self.set_random(r.rate, r.seed, r.retry_after_secs);
            } else {
                self.stop_random();
            }
        }
    }
}

/// Body of `POST /_sim/faults`, e.g.
/// `{"throttle_next": {"n": 2, "retry_after_secs": 1}, "fail_next": {"n": 1, "status": 503},
/// "drop_responses_after_apply": 1, "expire_delta_tokens": true, "latency_ms": 200}`, or the
/// random mode: `{"random": {"rate": 0.1, "seed": 42}}` (`"rate": 0` turns it off; `clear`
/// does too, and is applied first).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaultRequest {
    #[serde(default)]
    pub throttle_next: Option<ThrottleFault>,
    #[serde(default)]
    pub drop_responses_after_apply: Option<u32>,
    #[serde(default)]
    pub expire_delta_tokens: bool,
    #[serde(default)]
    pub fail_next: Option<FailFault>,
    #[serde(default)]
    pub latency_ms: Option<u64>,
    #[serde(default)]
    pub duplicate_notifications: Option<u32>,
    #[serde(default)]
    pub clear: bool,
    #[serde(default)]
    pub random: Option<RandomFault>,
}

/// The random mode of `POST /_sim/faults` ([`Faults::set_random`]).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RandomFault {
    /// Probability of a fault per request, 0 to 1.
    pub rate: f64,
    #[serde(default)]
    pub seed: u64,
    #[serde(default = "one")]
    pub retry_after_secs: u64,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ThrottleFault {
    pub n: u32,
    #[serde(default = "one")]
    pub retry_after_secs: u64,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct FailFault {
    pub n: u32,
    #[serde(default = "service_unavailable")]
    pub status: u16,
}

fn one() -> u64 {
    1
}
fn service_unavailable() -> u16 {
    503
}

/// Requests served, as returned by [`crate::Simulator::stats`] and `GET /_sim/stats`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SimStats {
    /// Every HTTP request answered (token, discovery, Graph, `/_sim`); a `$batch` counts once.
    pub requests_total: u64,
    /// Operations per route kind: `token`, `openid_configuration`, `instance_discovery`,
    /// `user_get`, `calendar_list`, `calendar_get`, `event_create`, `event_get`,
    /// `event_update`, `event_delete`, `event_list`, `calendar_view`, `calendar_view_delta`,
    /// `get_schedule`, `batch`, `sim`, `other`. The requests inside a `$batch` count here
    /// under their own kind too (Graph throttles each of them), but not in `requests_total`.
    pub by_route: BTreeMap<String, u64>,
    /// Requests carried inside `$batch` requests.
    #[serde(default)]
    pub batched_requests: u64,
    /// Throttled answers: Graph's 429s (concurrency limit and injected throttling) and EWS's
    /// `ErrorServerBusy` faults.
    pub throttled_429: u64,
    /// Injected 5xx answers.
    pub failed_5xx: u64,
    /// Mutations applied whose response was dropped.
    pub dropped_responses: u64,
    /// Change notifications delivered (acknowledged with 2xx).
    #[serde(default)]
    pub notifications_delivered: u64,
    /// Faults the random mode injected, by kind ([`FaultKind::as_str`]).
    #[serde(default)]
    pub faults: BTreeMap<String, u64>,
    /// The most Graph and EWS requests that were being answered at once (from the end of the
    /// sign-in and throttling checks to the answer; streaming answers count until their
    /// stream starts), since the start or [`crate::Simulator::reset_most_in_flight`].
    #[serde(default)]
    pub most_in_flight: u64,
}

#[derive(Debug, Default)]
pub(crate) struct StatsCounters {
    inner: Mutex<SimStats>,
    in_flight: AtomicU64,
    most_in_flight: AtomicU64,
}

/// A request being answered, counted in [`SimStats::most_in_flight`] until dropped.
pub(crate) struct InFlight<'a>(&'a AtomicU64);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl StatsCounters {
    /// A Graph or EWS request starts being answered.
    pub fn enter(&self) -> InFlight<'_> {
        let now = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        self.most_in_flight.fetch_max(now, Ordering::SeqCst);
        InFlight(&self.in_flight)
    }
    /// Starts [`SimStats::most_in_flight`] over from the requests in flight now.
    pub fn reset_most_in_flight(&self) {
        self.most_in_flight.store(self.in_flight.load(Ordering::SeqCst), Ordering::SeqCst);
    }
    pub fn request(&self, route: &str) {
        let mut s = self.inner.lock().unwrap();
        s.requests_total += 1;
        *s.by_route.entry(route.to_string()).or_insert(0) += 1;
    }
    /// A request inside a `$batch`: an operation, not an HTTP request of its own.
    pub fn batched(&self, route: &str) {
        let mut s = self.inner.lock().unwrap();
        s.batched_requests += 1;
        *s.by_route.entry(route.to_string()).or_insert(0) += 1;
    }
    pub fn throttled(&self) {
        self.inner.lock().unwrap().throttled_429 += 1;
    }
    pub fn failed(&self) {
        self.inner.lock().unwrap().failed_5xx += 1;
    }
    pub fn dropped(&self) {
        self.inner.lock().unwrap().dropped_responses += 1;
    }
    pub fn fault(&self, kind: FaultKind) {
        *self.inner.lock().unwrap().faults.entry(kind.as_str().to_string()).or_insert(0) += 1;
    }
    pub fn notified(&self, n: u64) {
        self.inner.lock().unwrap().notifications_delivered += n;
    }
    pub fn snapshot(&self) -> SimStats {
        let mut s = self.inner.lock().unwrap().clone();
        s.most_in_flight = self.most_in_flight.load(Ordering::SeqCst);
        s
    }
}
