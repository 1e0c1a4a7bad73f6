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
