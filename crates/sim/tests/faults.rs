//! Throttling (mailbox concurrency and injected), injected 5xx, dropped responses, the
//! `/_sim` control surface and statistics.

mod common;

use std::time::Duration;

use common::*;
use serde_json::{json, Value};

#[tokio::test]
async fn concurrency_limit_answers_429_with_retry_after() {
    let env = Env::new().await;
    env.sim.faults().set_latency(Duration::from_millis(400));
    let url = "/users/ann@test.example/calendar";
    let requests = (0..6).map(|_| env.get(url).send());
    let responses = futures_join(requests).await;
    let statuses: Vec<u16> = responses.iter().map(|r| r.status().as_u16()).collect();
    let throttled: Vec<&reqwest::Response> = responses.iter().filter(|r| r.status() == 429).collect();
    assert_eq!(statuses.iter().filter(|s| **s == 200).count(), 4, "{statuses:?}");
    assert_eq!(throttled.len(), 2, "{statuses:?}");
    assert_eq!(throttled[0].headers()["retry-after"], "1");
    env.sim.faults().set_latency(Duration::ZERO);
    let mut last = None;
    for r in responses {
        if r.status() == 429 {
            last = Some(r.json::<Value>().await.unwrap());
        }
    }
    let body = last.unwrap();
    assert_eq!(body["error"]["code"], "ApplicationThrottled");
    assert_eq!(body["error"]["message"], "Application is over its MailboxConcurrency limit.");
    assert_eq!(env.sim.stats().throttled_429, 2);
    // Slots are released: a later request succeeds.
    assert_eq!(env.get(url).send().await.unwrap().status(), 200);
}

async fn futures_join<F: std::future::Future<Output = reqwest::Result<reqwest::Response>> + Send + 'static>(
    fs: impl Iterator<Item = F>,
) -> Vec<reqwest::Response> {
    let handles: Vec<_> = fs.map(tokio::spawn).collect();
    let mut out = Vec::new();
    for h in handles {
        out.push(h.await.unwrap().unwrap());
    }
    out
}

#[tokio::test]
async fn throttle_next_and_fail_next() {
    let env = Env::new().await;
    env.sim.faults().throttle_next(2, 7);
    for _ in 0..2 {
        let r = env.get("/users/ann@test.example/calendar").send().await.unwrap();
        assert_eq!(r.status(), 429);
        assert_eq!(r.headers()["retry-after"], "7");
    }
    assert_eq!(env.get("/users/ann@test.example/calendar").send().await.unwrap().status(), 200);
    env.sim.faults().fail_next(1, 503);
    let r = env.get("/users/ann@test.example/calendar").send().await.unwrap();
    assert_eq!(r.status(), 503);
    let body: calbridge_sim::wire::ODataError = r.json().await.unwrap();
    assert!(!body.error.code.is_empty());
    assert_eq!(env.get("/users/ann@test.example/calendar").send().await.unwrap().status(), 200);
    // The token endpoint is not a Graph request.
    env.sim.faults().throttle_next(1, 1);
    let _ = env.fetch_token(CLIENT_ID, SECRET).await;
    assert_eq!(env.get("/users/ann@test.example/calendar").send().await.unwrap().status(), 429);
    let stats = env.sim.stats();
    assert_eq!(stats.throttled_429, 3);
    assert_eq!(stats.failed_5xx, 1);
    assert!(stats.by_route["calendar_get"] >= 6);
    assert!(stats.by_route["token"] >= 2);
}

#[tokio::test]
async fn dropped_response_still_applies_the_change() {
    let env = Env::new().await;
    env.sim.faults().drop_responses_after_apply(1);
    let mut body = meeting("Dropped", at(2, 9), at(2, 10), &[]);
    body["transactionId"] = json!("retry-me-1");
    let r = env.post("/users/ann@test.example/events", &body).send().await;
    let failed = match r {
        Err(_) => true,
        Ok(resp) => resp.bytes().await.is_err(),
    };
    assert!(failed, "the client must not see success");
    let events = env.sim.outlook().list_events("ann@test.example").unwrap();
    assert_eq!(events.len(), 1, "the change was applied");
    // The retry with the same transactionId returns the same event.
    let again = env.create("ann@test.example", body).await;
    assert_eq!(again["id"].as_str(), events[0].id.as_deref());
    assert_eq!(env.sim.outlook().list_events("ann@test.example").unwrap().len(), 1);
    assert_eq!(env.sim.stats().dropped_responses, 1);
    // PATCH and DELETE too.
    let id = again["id"].as_str().unwrap().to_string();
    env.sim.faults().drop_responses_after_apply(1);
    assert!(env
        .patch(&format!("/users/ann@test.example/events/{id}"), &json!({"subject": "Changed"}))
        .send()
        .await
        .is_err());
    assert_eq!(env.sim.outlook().get_event("ann@test.example", &id).unwrap().subject.as_deref(), Some("Changed"));
    env.sim.faults().drop_responses_after_apply(1);
    assert!(env.delete(&format!("/users/ann@test.example/events/{id}")).send().await.is_err());
    assert!(env.sim.outlook().list_events("ann@test.example").unwrap().is_empty());
}

#[tokio::test]
async fn sim_control_over_http() {
    let env = Env::new().await;
    let base = env.run.base_url.clone();
    let r = env
        .http
        .post(format!("{base}/_sim/faults"))
        .json(&json!({"throttle_next": {"n": 1, "retry_after_secs": 3}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    let r = env.get("/users/ann@test.example/calendar").send().await.unwrap();
    assert_eq!(r.status(), 429);
    assert_eq!(r.headers()["retry-after"], "3");
    let stats: calbridge_sim::SimStats =
        env.http.get(format!("{base}/_sim/stats")).send().await.unwrap().json().await.unwrap();
    assert_eq!(stats.throttled_429, 1);
    let r = env.http.post(format!("{base}/_sim/faults")).json(&json!({"bogus": 1})).send().await.unwrap();
    assert_eq!(r.status(), 400);
    // Disabled by the scenario: not served.
    let off =
        Env::with(&SCENARIO.replace("mailbox_concurrency = 4", "mailbox_concurrency = 4\nsim_control = false")).await;
    let r = off.http.get(format!("{}/_sim/stats", off.run.base_url)).send().await.unwrap();
    assert_eq!(r.status(), 404);
}

/// One Graph request of the random-mode tests: what came back (`status`, or 0 when the
/// connection closed without an answer).
async fn outcome(r: reqwest::Result<reqwest::Response>) -> (u16, Value) {
    match r {
        Err(_) => (0, Value::Null),
        Ok(resp) => {
            let status = resp.status().as_u16();
            match resp.bytes().await {
                Err(_) => (0, Value::Null),
                Ok(b) => (status, serde_json::from_slice(&b).unwrap_or(Value::Null)),
            }
        }
    }
}

/// A mixed workload: reads, delta rounds, creates, conditional updates and deletes. Returns
/// each request's status (0: closed without an answer).
async fn workload(env: &Env, rounds: usize) -> Vec<u16> {
    let ann = "ann@test.example";
    let mut statuses = Vec::new();
    let mut delta = format!(
        "/users/{ann}/calendarView/delta?startDateTime={}&endDateTime={}",
        "2020-01-01T00:00:00Z", "2040-01-01T00:00:00Z"
    );
    for i in 0..rounds {
        let (s, body) = outcome(env.get(&delta).send().await).await;
        statuses.push(s);
        if let Some(link) = body["@odata.deltaLink"].as_str() {
            delta = link.split("/v1.0").nth(1).unwrap_or(&delta).to_string();
        } else if s == 410 {
            delta = format!(
                "/users/{ann}/calendarView/delta?startDateTime={}&endDateTime={}",
                "2020-01-01T00:00:00Z", "2040-01-01T00:00:00Z"
            );
        }
        let (s, _) = outcome(
            env.post(&format!("/users/{ann}/events"), &meeting(&format!("e{i}"), at(3, 9), at(3, 10), &[]))
                .send()
                .await,
        )
        .await;
        statuses.push(s);
        let id = env
            .sim
            .outlook()
            .create_event(ann, calbridge_sim::NewEvent::new(format!("o{i}"), at(4, 9), at(4, 10)))
            .unwrap();
        let etag = env.sim.outlook().get_event(ann, &id).unwrap().odata_etag.unwrap_or_default();
        let (s, _) = outcome(
            env.patch(&format!("/users/{ann}/events/{id}"), &json!({"subject": format!("p{i}")}))
                .header("If-Match", etag)
                .send()
                .await,
        )
        .await;
        statuses.push(s);
        let (s, _) = outcome(env.delete(&format!("/users/{ann}/events/{id}")).send().await).await;
        statuses.push(s);
    }
    statuses
}

#[tokio::test]
async fn the_random_mode_draws_every_kind_counts_them_and_repeats_with_its_seed() {
    let mut runs = Vec::new();
    for _ in 0..2 {
        let env = Env::new().await;
        let r = env
            .http
            .post(format!("{}/_sim/faults", env.run.base_url))
            .json(&json!({"random": {"rate": 0.3, "seed": 20261207, "retry_after_secs": 2}}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 204);
        let statuses = workload(&env, 120).await;
        let stats = env.sim.stats();
        for kind in ["throttle", "unavailable", "reset", "lost_response", "expired_sync_state", "conflict"] {
            assert!(stats.faults.get(kind).copied().unwrap_or(0) > 0, "no {kind} among {:?}", stats.faults);
        }
        let injected: u64 = stats.faults.values().sum();
        let requests = statuses.len() as f64;
        assert!(
            (injected as f64) > 0.15 * requests && (injected as f64) < 0.45 * requests,
            "about 30% of {requests} requests should meet a fault: {:?}",
            stats.faults
        );
        // What each kind looks like to the client.
        assert_eq!(stats.throttled_429, stats.faults["throttle"]);
        assert_eq!(statuses.iter().filter(|s| **s == 429).count() as u64, stats.faults["throttle"]);
        assert_eq!(statuses.iter().filter(|s| **s == 503).count() as u64, stats.faults["unavailable"]);
        assert_eq!(
            statuses.iter().filter(|s| **s == 0).count() as u64,
            stats.faults["reset"] + stats.faults["lost_response"]
        );
        // A conflict is a real edit before the request: a conditional PATCH meets 412 (a
        // DELETE, unconditional here, goes through); without one, no PATCH is refused.
        let refused = statuses.iter().filter(|s| **s == 412).count() as u64;
        assert!(refused > 0 && refused <= stats.faults["conflict"], "{refused} 412s, {:?}", stats.faults);
        // Stopped: nothing more is injected.
        env.sim.faults().clear();
        let clean = workload(&env, 5).await;
        assert!(clean.iter().all(|s| matches!(s, 200 | 201 | 204)), "{clean:?}");
        assert_eq!(env.sim.stats().faults, stats.faults);
        runs.push((statuses, stats.faults));
    }
    assert_eq!(runs[0], runs[1], "the same seed and the same requests give the same faults");
}

#[tokio::test]
async fn a_random_conflict_is_a_real_edit_and_a_lost_response_is_applied() {
    let env = Env::new().await;
    let ann = "ann@test.example";
    // Every request meets a fault; PATCHes meet one of the five that apply to them.
    env.sim.faults().set_random(1.0, 3, 1);
    let mut seen = std::collections::BTreeSet::new();
    for i in 0..40 {
        let id =
            env.sim.outlook().create_event(ann, calbridge_sim::NewEvent::new("before", at(5, 9), at(5, 10))).unwrap();
        let before = env.sim.outlook().get_event(ann, &id).unwrap();
        let counted = env.sim.stats().faults;
        let (status, body) = outcome(
            env.patch(&format!("/users/{ann}/events/{id}"), &json!({"subject": format!("after {i}")}))
                .header("If-Match", before.odata_etag.clone().unwrap())
                .send()
                .await,
        )
        .await;
        let now = env.sim.stats().faults;
        let kind =
            now.iter().find(|(k, n)| counted.get(*k).copied().unwrap_or(0) < **n).map(|(k, _)| k.clone()).unwrap();
        let after = env.sim.outlook().get_event(ann, &id).unwrap();
        match kind.as_str() {
            "conflict" => {
                assert_eq!(status, 412, "{body}");
                assert_eq!(body["error"]["code"], "ErrorIrresolvableConflict");
                assert_eq!(after.subject.as_deref(), Some("before"), "the stale update is refused");
                assert_ne!(after.change_key, before.change_key, "a person changed the event");
            }
            "lost_response" => {
                assert_eq!(status, 0);
                assert_eq!(after.subject, Some(format!("after {i}")), "applied, then the answer was lost");
            }
            "reset" | "throttle" | "unavailable" => {
                assert!(matches!(status, 0 | 429 | 503), "{kind}: {status}");
                assert_eq!(after.subject.as_deref(), Some("before"), "{kind}: not applied");
                assert_eq!(after.change_key, before.change_key);
            }
            other => panic!("a PATCH cannot meet {other}"),
        }
        seen.insert(kind);
    }
    assert_eq!(seen.len(), 5, "every kind a PATCH can meet: {seen:?}");
}

#[tokio::test]
async fn a_random_conflict_over_ews_meets_the_stale_change_key() {
    use calbridge_ews::wire::envelope::{self, ConnectingSid, RequestHeader};
    use calbridge_ews::wire::ops::update_item::{self, FieldUpdate, ItemChange};
    use calbridge_ews::wire::types::{Item, ItemId, ItemRef, PropertyPath};
    let env = Env::with(&format!(
        "{SCENARIO}\n[[ews_accounts]]\nusername = \"svc\"\npassword = \"svc-password\"\nimpersonation = true\n"
    ))
    .await;
    let ann = "ann@test.example";
    env.sim.faults().set_random(1.0, 11, 1);
    let mut header = RequestHeader::new("Exchange2016");
    header.impersonation = Some(ConnectingSid::PrimarySmtpAddress(ann.into()));
    let mut conflicts = 0;
    for _ in 0..30 {
        let graph_id =
            env.sim.outlook().create_event(ann, calbridge_sim::NewEvent::new("before", at(5, 9), at(5, 10))).unwrap();
        let before = env.sim.outlook().get_event(ann, &graph_id).unwrap();
        let request = update_item::Request {
            conflict_resolution: "NeverOverwrite".into(),
            message_disposition: Some("SaveOnly".into()),
            send_meeting_invitations_or_cancellations: Some("SendToNone".into()),
            item_changes: vec![ItemChange {
                item_id: ItemRef::Item(ItemId::new(
                    graph_id.replace('-', "+").replace('_', "/"),
                    before.change_key.clone(),
                )),
                updates: vec![FieldUpdate::Set {
                    path: PropertyPath::field("item:Subject"),
                    item: Item { subject: Some("after".into()), ..Item::calendar() },
                }],
            }],
        };
        let counted = env.sim.stats().faults.get("conflict").copied().unwrap_or(0);
        let xml = envelope::request(&header, |w| request.write(w));
        let r = env
            .http
            .post(format!("{}/EWS/Exchange.asmx", env.run.base_url))
            .basic_auth("svc", Some("svc-password"))
            .header("Content-Type", "text/xml; charset=utf-8")
            .body(xml)
            .send()
            .await;
        let text = match r {
            Ok(resp) => resp.text().await.unwrap_or_default(),
            Err(_) => String::new(),
        };
        if env.sim.stats().faults.get("conflict").copied().unwrap_or(0) > counted {
            conflicts += 1;
            assert!(text.contains("ErrorIrresolvableConflict"), "{text}");
            let after = env.sim.outlook().get_event(ann, &graph_id).unwrap();
            assert_eq!(after.subject.as_deref(), Some("before"));
            assert_ne!(after.change_key, before.change_key);
        }
    }
    assert!(conflicts > 0, "no conflict drawn in 30 updates at rate 1");
    let stats = env.sim.stats();
    assert!(stats.faults.keys().all(|k| k != "expired_sync_state"), "an UpdateItem cannot meet {:?}", stats.faults);
}
