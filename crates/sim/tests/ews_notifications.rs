//! The simulator's EWS notifications over HTTP: pull subscriptions read with GetEvents,
//! streaming ones read over a held-open, chunked GetStreamingEvents answer made of several
//! envelopes, their lifetimes, and the controls calbridge's fallbacks are tested with
//! (streaming refused, subscriptions refused, a dropped subscription, lost events). Every
//! answer validates against Microsoft's schema.

mod common;

use std::time::Duration;

use calbridge_ews::testing::assert_valid;
use calbridge_ews::wire::envelope::{self, ConnectingSid, Fault, RequestHeader};
use calbridge_ews::wire::ops::get_streaming_events::{next_envelope, StreamMessage};
use calbridge_ews::wire::ops::{get_events, get_streaming_events, subscribe, unsubscribe};
use calbridge_ews::wire::types::FolderRef;
use calbridge_ews::wire::xml::{parse, Limits, Node, WireError, XmlWriter};
use calbridge_sim::NewEvent;
use common::{at, ews_env as env, Env};

const ANN: &str = "ann@test.example";

fn as_ann() -> RequestHeader {
    let mut h = RequestHeader::new("Exchange2016");
    h.impersonation = Some(ConnectingSid::PrimarySmtpAddress(ANN.into()));
    h
}

fn request(env: &Env, user: &str, password: &str, body: impl FnOnce(&mut XmlWriter)) -> reqwest::RequestBuilder {
    let header = if user == "svc-calbridge" { as_ann() } else { RequestHeader::new("Exchange2016") };
    env.http
        .post(format!("{}/EWS/Exchange.asmx", env.run.base_url))
        .basic_auth(user, Some(password))
        .header("Content-Type", "text/xml; charset=utf-8")
        .body(envelope::request(&header, body))
}

/// Posts as the service account impersonating Ann; the answer, validated and parsed.
async fn call<T>(
    env: &Env,
    what: &str,
    write: impl FnOnce(&mut XmlWriter),
    read: impl Fn(Node<'_, '_>) -> Result<T, WireError>,
) -> T {
    let resp = request(env, "svc-calbridge", "svc-password", write).send().await.unwrap();
    let text = resp.text().await.unwrap();
    assert_valid(what, &text);
    let doc = parse(&text, Limits::default()).unwrap();
    read(envelope::split(&doc).unwrap().body).unwrap_or_else(|e| panic!("{what}: {e}\n{text}"))
}

async fn subscribe(env: &Env, kind: subscribe::Kind) -> subscribe::Response {
    let req = subscribe::Request::calendar(kind, FolderRef::calendar(None));
    call(env, "Subscribe answer", |w| req.write(w), subscribe::parse_response).await
}

async fn get_events(env: &Env, id: &str, watermark: &str) -> get_events::Response {
    let req = get_events::Request { subscription_id: id.into(), watermark: watermark.into() };
    call(env, "GetEvents answer", |w| req.write(w), get_events::parse_response).await
}

fn kinds(n: &get_events::Notification) -> Vec<&str> {
    n.events.iter().map(|e| e.kind.as_str()).collect()
}

#[tokio::test]
async fn pull_subscriptions_return_the_calendars_events_since_a_watermark() {
    let env = env().await;
    let r = subscribe(&env, subscribe::Kind::Pull { timeout_minutes: 10 }).await;
    let made = r[0].payload.clone().unwrap();
    let (id, start) = (made.subscription_id, made.watermark.expect("a pull subscription has a watermark"));

    // Nothing yet: one status event at the same watermark.
    let n = get_events(&env, &id, &start).await[0].payload.clone().unwrap();
    assert_eq!((kinds(&n), n.more_events), (vec!["StatusEvent"], Some(false)));

    // Created, modified, deleted: each an event about the item, with its own watermark.
    let outlook = env.sim.outlook();
    let kept = outlook.create_event(ANN, NewEvent::new("Kept", at(1, 9), at(1, 10))).unwrap();
    let gone = outlook.create_event(ANN, NewEvent::new("Gone", at(1, 11), at(1, 12))).unwrap();
    outlook.update_event(ANN, &kept, serde_json::json!({"subject": "Kept, renamed"})).unwrap();
    outlook.delete_event(ANN, &gone).unwrap();
    let n = get_events(&env, &id, &start).await[0].payload.clone().unwrap();
    assert_eq!(kinds(&n), ["ModifiedEvent", "DeletedEvent", "ModifiedEvent", "DeletedEvent"]);
    assert!(n.events.iter().all(|e| e.item_id.is_some() && e.parent_folder_id.is_some()));
    let next = n.last_watermark().unwrap().to_string();
    assert_ne!(next, start);
    let n = get_events(&env, &id, &next).await[0].payload.clone().unwrap();
    assert_eq!(kinds(&n), ["StatusEvent"], "nothing after the last watermark");

    // A fresh item shows as created; more than 50 changes come in pages.
    for i in 0..55 {
        outlook.create_event(ANN, NewEvent::new(format!("Many {i}"), at(2, 9), at(2, 10))).unwrap();
    }
    let n = get_events(&env, &id, &next).await[0].payload.clone().unwrap();
    assert_eq!((n.events.len(), n.more_events, n.events[0].kind.as_str()), (50, Some(true), "CreatedEvent"));
    let n = get_events(&env, &id, n.last_watermark().unwrap()).await[0].payload.clone().unwrap();
    assert_eq!((n.events.len(), n.more_events), (5, Some(false)));

    // A forged watermark; another account; a streaming subscription read this way.
    let r = get_events(&env, &id, "bm90IGEgd2F0ZXJtYXJr").await;
    assert_eq!(r[0].status.code, "ErrorInvalidWatermark");
    let req = get_events::Request { subscription_id: id.clone(), watermark: next.clone() };
    let text = request(&env, "ann", "ann-password", |w| req.write(w)).send().await.unwrap().text().await.unwrap();
    assert!(text.contains("ErrorSubscriptionAccessDenied"), "{text}");
    let streaming = subscribe(&env, subscribe::Kind::Streaming).await[0].payload.clone().unwrap();
    assert_eq!(streaming.watermark, None);
    assert_eq!(get_events(&env, &streaming.subscription_id, &next).await[0].status.code, "ErrorInvalidSubscription");

    // Unsubscribed: gone.
    let req = unsubscribe::Request { subscription_id: id.clone() };
    let r = call(&env, "Unsubscribe answer", |w| req.write(w), unsubscribe::parse_response).await;
    assert!(r[0].status.is_success());
    assert_eq!(get_events(&env, &id, &next).await[0].status.code, "ErrorSubscriptionNotFound");
    let r = call(&env, "Unsubscribe answer", |w| req.write(w), unsubscribe::parse_response).await;
    assert_eq!(r[0].status.code, "ErrorSubscriptionNotFound");
}

#[tokio::test]
async fn a_pull_subscription_lapses_after_its_timeout_without_get_events() {
    let env = env().await;
    let made = subscribe(&env, subscribe::Kind::Pull { timeout_minutes: 2 }).await[0].payload.clone().unwrap();
    let w = made.watermark.unwrap();
    // A "minute" of 500 ms: the subscription lapses a second after its last read. Read
    // within that, again and again (without the slower schema check): it stays.
    env.sim.ews_notification_minute(Duration::from_millis(500));
    let req = get_events::Request { subscription_id: made.subscription_id.clone(), watermark: w.clone() };
    for _ in 0..5 {
        tokio::time::sleep(Duration::from_millis(250)).await;
        let text = request(&env, "svc-calbridge", "svc-password", |w| req.write(w)).send().await.unwrap();
        let text = text.text().await.unwrap();
        assert!(text.contains("NoError"), "{text}");
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(get_events(&env, &made.subscription_id, &w).await[0].status.code, "ErrorExpiredSubscription");
    assert_eq!(get_events(&env, &made.subscription_id, &w).await[0].status.code, "ErrorSubscriptionNotFound");
}

/// Reads a streaming answer envelope by envelope.
struct Stream {
    resp: reqwest::Response,
    buffer: String,
}

impl Stream {
    async fn open(env: &Env, ids: &[&str], minutes: u32) -> Stream {
        let req = get_streaming_events::Request {
            subscription_ids: ids.iter().map(|s| s.to_string()).collect(),
            connection_timeout: minutes,
        };
        let resp = request(env, "svc-calbridge", "svc-password", |w| req.write(w)).send().await.unwrap();
        assert_eq!(resp.status(), 200);
        Stream { resp, buffer: String::new() }
    }

    /// The next envelope's message, validated; `None` when the answer ended.
    async fn next(&mut self) -> Option<StreamMessage> {
        loop {
            if let Some(n) = next_envelope(&self.buffer) {
                let text: String = self.buffer.drain(..n).collect();
                assert_valid("a streamed envelope", text.trim());
                let doc = parse(text.trim(), Limits::default()).unwrap();
                let mut r = get_streaming_events::parse_response(envelope::split(&doc).unwrap().body).unwrap();
                assert_eq!(r.len(), 1, "{text}");
                return r.pop();
            }
            let chunk =
                tokio::time::timeout(Duration::from_secs(10), self.resp.chunk()).await.expect("a chunk in time");
            match chunk.unwrap() {
                Some(c) => self.buffer.push_str(std::str::from_utf8(&c).unwrap()),
                None => {
                    assert!(self.buffer.trim().is_empty(), "a partial envelope at the end: {}", self.buffer);
                    return None;
                }
            }
        }
    }
}

#[tokio::test]
async fn a_streaming_connection_delivers_events_as_they_happen_then_closes() {
    let env = env().await;
    env.sim.ews_notification_minute(Duration::from_millis(400));
    let id = subscribe(&env, subscribe::Kind::Streaming).await[0].payload.clone().unwrap().subscription_id;
    let mut stream = Stream::open(&env, &[&id], 3).await;
    let first = stream.next().await.unwrap();
    assert_eq!(first.connection_status.as_deref(), Some("OK"), "a keep-alive at once");

    env.sim.outlook().create_event(ANN, NewEvent::new("Streamed", at(1, 9), at(1, 10))).unwrap();
    let m = loop {
        let m = stream.next().await.expect("the notification before the end");
        if !m.notifications.is_empty() {
            break m;
        }
    };
    assert_eq!(m.notifications[0].subscription_id, id);
    assert_eq!(kinds(&m.notifications[0]), ["CreatedEvent"]);
    assert!(env.sim.ews_subscriptions().iter().any(|s| s.id == id && s.streaming && s.mailbox == ANN));

    // Keep-alives, then Closed after the connection timeout; then the answer ends.
    let mut statuses = Vec::new();
    while let Some(m) = stream.next().await {
        assert!(m.status.is_success());
        statuses.push(m.connection_status.unwrap());
    }
    assert_eq!(statuses.last().map(String::as_str), Some("Closed"));
    assert!(statuses.iter().filter(|s| *s == "OK").count() >= 1, "{statuses:?}");
    // The subscription outlives its connection.
    let mut again = Stream::open(&env, &[&id], 1).await;
    assert_eq!(again.next().await.unwrap().connection_status.as_deref(), Some("OK"));
}

#[tokio::test]
async fn dropped_and_unknown_subscriptions_are_named_in_the_stream() {
    let env = env().await;
    let a = subscribe(&env, subscribe::Kind::Streaming).await[0].payload.clone().unwrap().subscription_id;
    let b = subscribe(&env, subscribe::Kind::Streaming).await[0].payload.clone().unwrap().subscription_id;
    // Unknown at the start: an error answer at once, naming it.
    let mut s = Stream::open(&env, &[&a, "bm8gc3VjaCBzdWJzY3JpcHRpb24="], 1).await;
    let m = s.next().await.unwrap();
    assert_eq!(m.status.code, "ErrorSubscriptionNotFound");
    assert_eq!(m.error_subscription_ids, ["bm8gc3VjaCBzdWJzY3JpcHRpb24="]);
    assert!(s.next().await.is_none());

    // Dropped while streaming (a mailbox move): the stream names both and ends.
    let mut s = Stream::open(&env, &[&a, &b], 30).await;
    assert_eq!(s.next().await.unwrap().connection_status.as_deref(), Some("OK"));
    assert_eq!(env.sim.ews_drop_subscriptions(ANN), 2);
    let m = s.next().await.unwrap();
    assert_eq!(m.status.code, "ErrorSubscriptionNotFound");
    assert_eq!(m.error_subscription_ids.len(), 2);
    assert!(s.next().await.is_none());

    // Lost events: the next read says so, and the subscription is over.
    let c = subscribe(&env, subscribe::Kind::Streaming).await[0].payload.clone().unwrap().subscription_id;
    let mut s = Stream::open(&env, &[&c], 30).await;
    assert!(s.next().await.unwrap().status.is_success());
    assert_eq!(env.sim.ews_miss_events(ANN), 1);
    let m = s.next().await.unwrap();
    assert_eq!((m.status.code.as_str(), m.error_subscription_ids.clone()), ("ErrorMissedNotificationEvents", vec![c]));
    assert!(env.sim.ews_subscriptions().is_empty());
}

#[tokio::test]
async fn streaming_or_all_subscriptions_can_be_refused() {
    let env = env().await;
    env.sim.ews_refuse_streaming(true);
    let req = subscribe::Request::calendar(subscribe::Kind::Streaming, FolderRef::calendar(None));
    let resp = request(&env, "svc-calbridge", "svc-password", |w| req.write(w)).send().await.unwrap();
    assert_eq!(resp.status(), 500);
    let text = resp.text().await.unwrap();
    let doc = parse(&text, Limits::default()).unwrap();
    let fault = Fault::parse(envelope::split(&doc).unwrap().body).expect("a SOAP fault");
    assert_eq!(fault.response_code.as_deref(), Some("ErrorInvalidRequest"));
    // Pull still works.
    assert!(subscribe(&env, subscribe::Kind::Pull { timeout_minutes: 5 }).await[0].status.is_success());

    env.sim.ews_refuse_streaming(false);
    env.sim.ews_refuse_subscriptions(true);
    for kind in [subscribe::Kind::Streaming, subscribe::Kind::Pull { timeout_minutes: 5 }] {
        assert_eq!(subscribe(&env, kind).await[0].status.code, "ErrorInvalidSubscriptionRequest");
    }
}

#[tokio::test]
async fn the_control_surface_sets_the_ews_notification_controls() {
    let env = env().await;
    subscribe(&env, subscribe::Kind::Streaming).await;
    let url = format!("{}/_sim/ews-notifications", env.run.base_url);
    let r = env.http.post(&url).json(&serde_json::json!({"refuse_streaming": true})).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let listed: serde_json::Value = r.json().await.unwrap();
    assert_eq!(listed[0]["mailbox"], ANN);
    assert_eq!(subscribe(&env, subscribe::Kind::Pull { timeout_minutes: 1 }).await.len(), 1);
    let r = env.http.post(&url).json(&serde_json::json!({"drop_mailbox": ANN})).send().await.unwrap();
    assert_eq!(r.json::<serde_json::Value>().await.unwrap(), serde_json::json!([]));
    let r = env.http.post(&url).json(&serde_json::json!({"bogus": 1})).send().await.unwrap();
    assert_eq!(r.status(), 400);
}
