//! Delivering change notifications, as Graph does: the notifications a change queued
//! (`State::outgoing`) are POSTed in batches (`{"value": [...]}`, each with the subscription's
//! `clientState` and the tenant id) to their subscription's `notificationUrl`. An endpoint that
//! does not answer 2xx within 3 seconds is tried again, a few times, with growing pauses;
//! then the batch is dropped (Graph keeps trying for up to 4 hours). With
//! [`crate::Faults::duplicate_notifications`], the next batches are delivered twice, the
//! second time in reverse order, as Graph may; in the random mode
//! ([`crate::Faults::set_random`]) each batch is, with the mode's probability.

use std::time::Duration;

use serde_json::{json, Value};

use crate::Simulator;

const ATTEMPTS: u32 = 4;

/// Runs until the task is aborted (when the simulator stops).
pub(crate) async fn deliver(sim: Simulator) {
    let http = reqwest::Client::builder().timeout(Duration::from_secs(3)).build().expect("an HTTP client");
    let tenant = sim.inner.scenario.tenant.id.clone();
    loop {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let batch = std::mem::take(&mut sim.inner.state.lock().unwrap().outgoing);
        if batch.is_empty() {
            continue;
        }
        // One POST per URL, the notifications in the order they happened.
        let mut by_url: Vec<(String, Vec<Value>)> = Vec::new();
        for o in batch {
            let mut n = o.notification;
            n["tenantId"] = Value::String(tenant.clone());
            match by_url.iter_mut().find(|(u, _)| *u == o.url) {
                Some((_, list)) => list.push(n),
                None => by_url.push((o.url, vec![n])),
            }
        }
        for (url, list) in by_url {
            let random = sim.inner.faults.draw_duplicate_notification();
            if random {
                sim.inner.stats.fault(crate::faults::FaultKind::DuplicateNotifications);
            }
            let twice = random || sim.inner.faults.take_duplicate_notification();
            post(&sim, &http, &url, &list).await;
            if twice {
                let reversed: Vec<Value> = list.into_iter().rev().collect();
                post(&sim, &http, &url, &reversed).await;
            }
        }
    }
}

async fn post(sim: &Simulator, http: &reqwest::Client, url: &str, list: &[Value]) {
    let body = json!({ "value": list });
    for attempt in 0..ATTEMPTS {
        if attempt > 0 {
            tokio::time::sleep(Duration::from_millis(200 * 2u64.pow(attempt))).await;
        }
        match http.post(url).json(&body).send().await {
            Ok(r) if r.status().is_success() => {
                sim.inner.stats.notified(list.len() as u64);
                return;
            }
            Ok(r) => tracing::warn!(url, status = %r.status(), attempt, "notification endpoint refused a delivery"),
            Err(e) => tracing::warn!(url, attempt, "notification delivery failed: {e}"),
        }
    }
    tracing::warn!(url, count = list.len(), "dropping change notifications after {ATTEMPTS} attempts");
}
