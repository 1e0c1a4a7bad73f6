//! Change-notification subscriptions: Graph's validation handshake before a subscription
//! exists, the limits on its lifetime, renewal and deletion, and the notifications a change
//! sends to the subscriber (with its clientState).

mod common;

use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::{Query, State};
use chrono::{Duration, Utc};
use common::*;
use serde_json::{json, Value};

type Seen = Arc<Mutex<Vec<Value>>>;

#[derive(serde::Deserialize)]
struct Token {
    #[serde(rename = "validationToken")]
    validation_token: Option<String>,
}

/// A notification endpoint on 127.0.0.1:0 that echoes validation tokens (or, when `echo` is
/// false, answers them wrongly) and records every notification batch.
async fn endpoint(echo: bool) -> (String, Seen) {
    let seen: Seen = Arc::default();
    let app = axum::Router::new()
        .route(
            "/hook",
            axum::routing::post(
                |State((seen, echo)): State<(Seen, bool)>, Query(q): Query<Token>, body: Bytes| async move {
                    if let Some(t) = q.validation_token {
                        return if echo { t } else { "nope".into() };
                    }
                    seen.lock().unwrap().push(serde_json::from_slice(&body).unwrap());
                    String::new()
                },
            ),
        )
        .with_state((seen.clone(), echo));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, seen)
}

fn body(url: &str, minutes: i64) -> Value {
    json!({
        "changeType": "created,updated,deleted",
        "notificationUrl": url,
        "resource": "users/ann@test.example/events",
        "expirationDateTime": (Utc::now() + Duration::minutes(minutes)).to_rfc3339(),
        "clientState": "s3cret-state",
    })
}

#[tokio::test]
async fn a_validated_subscription_notifies_its_changes() {
    let env = Env::new().await;
    let (url, seen) = endpoint(true).await;
    let r = env.post("/subscriptions", &body(&url, 60)).send().await.unwrap();
    assert_eq!(r.status(), 201);
    let sub: Value = r.json().await.unwrap();
    let id = sub["id"].as_str().unwrap().to_string();
    assert_eq!(sub["resource"], "users/ann@test.example/events");

    let created = env
        .create(
            "ann@test.example",
            json!({"subject": "Hello", "start": graph_time(at(1, 9)), "end": graph_time(at(1, 10))}),
        )
        .await;
    for _ in 0..100 {
        if !seen.lock().unwrap().is_empty() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let batches = seen.lock().unwrap().clone();
    let n = &batches.first().expect("a notification arrived")["value"][0];
    assert_eq!(n["subscriptionId"], id.as_str());
    assert_eq!(n["clientState"], "s3cret-state");
    assert_eq!(n["changeType"], "created");
    assert_eq!(n["resourceData"]["id"], created["id"]);
    assert!(n["tenantId"].is_string());

    let renewed = env
        .patch(
            &format!("/subscriptions/{id}"),
            &json!({"expirationDateTime": (Utc::now() + Duration::days(2)).to_rfc3339()}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(renewed.status(), 200);
    assert_eq!(env.delete(&format!("/subscriptions/{id}")).send().await.unwrap().status(), 204);
    assert_eq!(env.get(&format!("/subscriptions/{id}")).send().await.unwrap().status(), 404);
}

#[tokio::test]
async fn subscriptions_are_refused_without_validation_or_beyond_their_limits() {
    let env = Env::new().await;
    let (bad_url, _) = endpoint(false).await;
    let r = env.post("/subscriptions", &body(&bad_url, 60)).send().await.unwrap();
    assert_eq!(r.status(), 400);
    let e: Value = r.json().await.unwrap();
    assert!(e["error"]["message"].as_str().unwrap().contains("validation"), "{e}");
    assert!(env.sim.subscriptions().is_empty(), "no subscription without validation");

    let (url, _) = endpoint(true).await;
    let too_long = env.post("/subscriptions", &body(&url, 10_081)).send().await.unwrap();
    assert_eq!(too_long.status(), 400);
    let past = env.post("/subscriptions", &body(&url, -5)).send().await.unwrap();
    assert_eq!(past.status(), 400);
    let plain = env.post("/subscriptions", &body("http://calbridge.example/hook", 60)).send().await.unwrap();
    assert_eq!(plain.status(), 400, "http only on loopback");
}
