//! JSON batching (`POST /v1.0/$batch`): each inner request is a Graph request of its own
//! (token, roles, the mailbox's concurrency limit, faults), answered by id in one 200.

mod common;

use common::*;
use serde_json::{json, Value};

fn by_id(answer: &Value) -> std::collections::HashMap<String, Value> {
    answer["responses"].as_array().unwrap().iter().map(|r| (r["id"].as_str().unwrap().to_string(), r.clone())).collect()
}

#[tokio::test]
async fn a_batch_creates_reads_and_fails_item_by_item() {
    let env = Env::new().await;
    let before = env.sim.stats();
    let start = at(1, 9);
    let batch = json!({"requests": [
        {"id": "1", "method": "POST", "url": "/users/ann@test.example/events",
         "headers": {"Content-Type": "application/json"},
         "body": {"subject": "Batched", "start": graph_time(start), "end": graph_time(start + chrono::Duration::hours(1))}},
        {"id": "2", "method": "GET", "url": "/users/bob@test.example"},
        {"id": "3", "method": "GET", "url": "users/nobody@test.example/events/AAMkNope"},
        {"id": "4", "dependsOn": ["3"], "method": "DELETE", "url": "/users/ann@test.example/events/AAMkNope"},
    ]});
    let resp = env.post("/$batch", &batch).send().await.unwrap();
    assert_eq!(resp.status(), 200, "the outer status is 200 whatever the inner ones");
    let answer: Value = resp.json().await.unwrap();
    let r = by_id(&answer);
    assert_eq!(r.len(), 4);
    assert_eq!(r["1"]["status"], 201);
    assert_eq!(r["1"]["body"]["subject"], "Batched");
    assert!(r["1"]["headers"]["Content-Type"].as_str().unwrap().starts_with("application/json"));
    assert_eq!(r["2"]["status"], 200);
    assert_eq!(r["2"]["body"]["mail"], "bob@test.example");
    assert_eq!(r["3"]["status"], 404);
    assert_eq!(r["4"]["status"], 424, "a request whose dependency failed is not run");
    // The event exists, as if created alone.
    let id = r["1"]["body"]["id"].as_str().unwrap();
    let (status, ev) = env.get_json(&format!("/users/ann@test.example/events/{id}")).await;
    assert_eq!((status, ev["subject"].as_str()), (200, Some("Batched")));
    // One HTTP request; four operations.
    let after = env.sim.stats();
    assert_eq!(after.requests_total - before.requests_total, 2, "the batch and the read above");
    assert_eq!(after.batched_requests - before.batched_requests, 3, "the failed dependency never ran");
    assert_eq!(after.by_route["batch"], 1);
    assert_eq!(after.by_route["event_create"], before.by_route.get("event_create").copied().unwrap_or(0) + 1);
}

#[tokio::test]
async fn inner_requests_are_throttled_one_by_one() {
    let env = Env::new().await;
    // The next two Graph requests answer 429: two of the batch's four.
    env.sim.faults().throttle_next(2, 3);
    let reads: Vec<Value> = (1..=4)
        .map(|i| json!({"id": i.to_string(), "method": "GET", "url": "/users/ann@test.example/calendar"}))
        .collect();
    let resp = env.post("/$batch", &json!({"requests": reads})).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let answer: Value = resp.json().await.unwrap();
    let statuses: Vec<u64> = by_id(&answer).values().map(|r| r["status"].as_u64().unwrap()).collect();
    assert_eq!(statuses.iter().filter(|s| **s == 429).count(), 2, "{answer}");
    assert_eq!(statuses.iter().filter(|s| **s == 200).count(), 2, "{answer}");
    let throttled = by_id(&answer).into_values().find(|r| r["status"] == 429).unwrap();
    assert_eq!(throttled["headers"]["Retry-After"], "3");
}

#[tokio::test]
async fn a_malformed_batch_is_refused_whole() {
    let env = Env::new().await;
    let too_many: Vec<Value> =
        (1..=21).map(|i| json!({"id": i.to_string(), "method": "GET", "url": "/users"})).collect();
    let resp = env.post("/$batch", &json!({"requests": too_many})).send().await.unwrap();
    assert_eq!(resp.status(), 400);
    let body: Value = resp.json().await.unwrap();
    assert!(body["error"]["message"].as_str().unwrap().contains("limit of 20"), "{body}");
    let no_token = env
        .http
        .post(env.url("/$batch"))
        .json(&json!({"requests": [{"id": "1", "method": "GET", "url": "/users"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(no_token.status(), 401);
}

#[tokio::test]
async fn microsofts_example_batch_is_answered_by_id() {
    let env = Env::new().await;
    let Some(text) = protocol_file("graph/examples/json-batching/01-request.http") else { return };
    let json_start = text.find('{').expect("the example has a JSON body");
    let example: Value = serde_json::from_str(&text[json_start..]).unwrap();
    let ids: Vec<String> =
        example["requests"].as_array().unwrap().iter().map(|r| r["id"].as_str().unwrap().to_string()).collect();
    let resp = env.post("/$batch", &example).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let answer: Value = resp.json().await.unwrap();
    let mut got: Vec<String> = by_id(&answer).into_keys().collect();
    got.sort();
    let mut want = ids.clone();
    want.sort();
    assert_eq!(got, want, "one answer per request of Microsoft's example");
}
