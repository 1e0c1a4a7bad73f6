//! Prometheus metrics, text exposition format 0.0.4, by hand: a few atomic counters and the
//! outbox's state read from the store at scrape time. calbridge exports a handful of series;
//! a metrics framework (and its registry, macros and dependencies) would be more code to
//! understand than these lines.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use calbridge_core::store::DeliveryCounts;

/// The failure classes of a sync run, for `calbridge_sync_errors_total{class}`.
pub fn error_class(error: &str) -> &'static str {
    let e = error.to_ascii_lowercase();
    if e.contains("authentication or permission failure") {
        "auth"
    } else if e.contains("throttling") {
        "throttled"
    } else if e.contains("link not verified") {
        "link"
    } else if e.contains("not found in exchange") {
        "not_found"
    } else if e.contains("temporary failure") {
        "transient"
    } else if e.contains("exchange refused the request") {
        "permanent"
    } else if e.contains("database error") || e.contains("store failed") {
        "store"
    } else if e.contains("cursor") {
        "cursor"
    } else {
        "other"
    }
}

#[derive(Default)]
pub struct Metrics {
    sync_ok: AtomicU64,
    sync_failed: AtomicU64,
    sync_paused: AtomicU64,
    pulled: AtomicU64,
    pushed: AtomicU64,
    throttled_ms: AtomicU64,
    errors: Mutex<BTreeMap<&'static str, u64>>,
    delivered: AtomicU64,
    retried: AtomicU64,
    failed: AtomicU64,
    notifications: Mutex<BTreeMap<&'static str, u64>>,
    /// Calendars of EWS connections by how they learn of changes.
    watched: Mutex<BTreeMap<&'static str, u64>>,
    /// EWS notifications that reported a calendar changed.
    ews_changes: AtomicU64,
}

/// How a webhook attempt ended, for `calbridge_webhook_deliveries_total{result}`.
#[derive(Clone, Copy, Debug)]
pub enum Attempt {
    Delivered,
    Retry,
    Failed,
}

impl Metrics {
    pub fn sync_run(&self, state: &str, error: Option<&str>, pulled: u64, pushed: u64, throttled: Duration) {
        match state {
            "ok" => &self.sync_ok,
            "paused" => &self.sync_paused,
            _ => &self.sync_failed,
        }
        .fetch_add(1, Ordering::Relaxed);
        self.pulled.fetch_add(pulled, Ordering::Relaxed);
        self.pushed.fetch_add(pushed, Ordering::Relaxed);
        self.throttled_ms.fetch_add(throttled.as_millis() as u64, Ordering::Relaxed);
        if let Some(e) = error {
            *self.errors.lock().expect("metrics lock").entry(error_class(e)).or_default() += 1;
        }
    }

    /// A change notification received: `accepted`, `rejected` (wrong clientState), `unknown`
    /// (no such subscription) or `malformed`.
    pub fn notification(&self, result: &'static str) {
        *self.notifications.lock().expect("metrics lock").entry(result).or_default() += 1;
    }

    /// The calendars of EWS connections, by notification mode (`streaming`, `pull`, `polling`).
    pub fn set_watched(&self, counts: BTreeMap<&'static str, u64>) {
        *self.watched.lock().expect("metrics lock") = counts;
    }

    /// EWS notifications reported `n` calendars changed.
    pub fn ews_changes(&self, n: u64) {
        self.ews_changes.fetch_add(n, Ordering::Relaxed);
    }

    pub fn webhook_attempt(&self, a: Attempt) {
        match a {
            Attempt::Delivered => &self.delivered,
            Attempt::Retry => &self.retried,
            Attempt::Failed => &self.failed,
        }
        .fetch_add(1, Ordering::Relaxed);
    }

    /// The exposition text; `outbox` is the deliveries by state.
    pub fn render(&self, outbox: DeliveryCounts) -> String {
        let mut out = String::new();
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let mut family = |name: &str, kind: &str, help: &str, samples: &[(&str, String)]| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
            for (labels, value) in samples {
                let _ = writeln!(out, "{name}{labels} {value}");
            }
        };
        family(
            "calbridge_sync_runs_total",
            "counter",
            "Calendar sync runs, by result.",
            &[
                ("{result=\"ok\"}", get(&self.sync_ok).to_string()),
                ("{result=\"failed\"}", get(&self.sync_failed).to_string()),
                ("{result=\"paused\"}", get(&self.sync_paused).to_string()),
            ],
        );
        let errors = self.errors.lock().expect("metrics lock").clone();
        let error_samples: Vec<(String, String)> =
            errors.iter().map(|(class, n)| (format!("{{class=\"{class}\"}}"), n.to_string())).collect();
        let error_refs: Vec<(&str, String)> = error_samples.iter().map(|(l, v)| (l.as_str(), v.clone())).collect();
        family("calbridge_sync_errors_total", "counter", "Failed sync runs, by error class.", &error_refs);
        family(
            "calbridge_sync_events_total",
            "counter",
            "Events changed by sync runs, by direction.",
            &[
                ("{direction=\"pulled\"}", get(&self.pulled).to_string()),
                ("{direction=\"pushed\"}", get(&self.pushed).to_string()),
            ],
        );
        family(
            "calbridge_sync_throttled_seconds_total",
            "counter",
            "Time sync runs spent waiting because Exchange throttled them.",
            &[("", format!("{:.3}", get(&self.throttled_ms) as f64 / 1000.0))],
        );
        family(
            "calbridge_webhook_queue_depth",
            "gauge",
            "Webhook deliveries waiting to be sent (the outbox's queue).",
            &[("", outbox.pending.to_string())],
        );
        family(
            "calbridge_webhook_deliveries",
            "gauge",
            "Webhook deliveries in the store, by state.",
            &[
                ("{state=\"pending\"}", outbox.pending.to_string()),
                ("{state=\"delivered\"}", outbox.delivered.to_string()),
                ("{state=\"failed\"}", outbox.failed.to_string()),
            ],
        );
        family(
            "calbridge_webhook_attempts_total",
            "counter",
            "Webhook delivery attempts by this process, by result.",
            &[
                ("{result=\"delivered\"}", get(&self.delivered).to_string()),
                ("{result=\"retry\"}", get(&self.retried).to_string()),
                ("{result=\"failed\"}", get(&self.failed).to_string()),
            ],
        );
        let notes = self.notifications.lock().expect("metrics lock").clone();
        let samples: Vec<(String, String)> = ["accepted", "rejected", "unknown", "malformed"]
            .iter()
            .map(|r| (format!("{{result=\"{r}\"}}"), notes.get(r).copied().unwrap_or(0).to_string()))
            .collect();
        let refs: Vec<(&str, String)> = samples.iter().map(|(l, v)| (l.as_str(), v.clone())).collect();
        family(
            "calbridge_notifications_total",
            "counter",
            "Change notifications received from Exchange, by result (rejected: a wrong clientState).",
            &refs,
        );
        let watched = self.watched.lock().expect("metrics lock").clone();
        let samples: Vec<(String, String)> = ["streaming", "pull", "polling"]
            .iter()
            .map(|m| (format!("{{mode=\"{m}\"}}"), watched.get(m).copied().unwrap_or(0).to_string()))
            .collect();
        let refs: Vec<(&str, String)> = samples.iter().map(|(l, v)| (l.as_str(), v.clone())).collect();
        family(
            "calbridge_ews_watched_calendars",
            "gauge",
            "Calendars of EWS connections by how calbridge learns of their changes (polling: by the scheduled sync).",
            &refs,
        );
        family(
            "calbridge_ews_notifications_total",
            "counter",
            "Calendar changes EWS notifications (streaming or pull) reported.",
            &[("", get(&self.ews_changes).to_string())],
        );
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_exposition_has_every_family_with_help_and_type() {
        let m = Metrics::default();
        m.sync_run("ok", None, 3, 1, Duration::from_millis(1500));
        m.sync_run("failed", Some("authentication or permission failure: x. Fix: y"), 0, 0, Duration::ZERO);
        m.webhook_attempt(Attempt::Delivered);
        let text = m.render(DeliveryCounts { pending: 2, delivered: 5, failed: 1 });
        for line in [
            "calbridge_sync_runs_total{result=\"ok\"} 1",
            "calbridge_sync_runs_total{result=\"failed\"} 1",
            "calbridge_sync_errors_total{class=\"auth\"} 1",
            "calbridge_sync_throttled_seconds_total 1.500",
            "calbridge_webhook_queue_depth 2",
            "calbridge_webhook_attempts_total{result=\"delivered\"} 1",
            "# TYPE calbridge_webhook_queue_depth gauge",
        ] {
            assert!(text.lines().any(|l| l == line), "missing {line:?} in\n{text}");
        }
    }

    #[test]
    fn errors_are_classified() {
        assert_eq!(error_class("Exchange is throttling requests"), "throttled");
        assert_eq!(error_class("link not verified: Exchange has no mailbox x"), "link");
        assert_eq!(error_class("temporary failure talking to Exchange: reset"), "transient");
        assert_eq!(error_class("something else"), "other");
    }
}
