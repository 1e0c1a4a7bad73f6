//! Fault injection (throttling, 5xx, dropped responses, expired sync state, latency) and
//! request statistics. Both are shared by every clone of a [`crate::Simulator`].

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

    /// Clears every pending fault (not the sync-state epoch).
    pub fn clear(&self) {
        self.throttle_next(0, 0);
        self.fail_next(0, 503);
        self.drop_responses_after_apply(0);
        self.set_latency(Duration::ZERO);
        self.duplicate_notifications(0);
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
    }
}

/// Body of `POST /_sim/faults`, e.g.
/// `{"throttle_next": {"n": 2, "retry_after_secs": 1}, "fail_next": {"n": 1, "status": 503},
/// "drop_responses_after_apply": 1, "expire_delta_tokens": true, "latency_ms": 200}`.
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
}

#[derive(Debug, Default)]
pub(crate) struct StatsCounters {
    inner: Mutex<SimStats>,
}

impl StatsCounters {
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
    pub fn notified(&self, n: u64) {
        self.inner.lock().unwrap().notifications_delivered += n;
    }
    pub fn snapshot(&self) -> SimStats {
        self.inner.lock().unwrap().clone()
    }
}
