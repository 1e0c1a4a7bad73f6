//! Every request calbridge's EWS client sends, and every answer the simulator gives it,
//! validates against Microsoft's schema: a recording relay on 127.0.0.1 sits between the real
//! client and the simulator while the engine runs a full sync cycle (listing in pages, reads,
//! a meeting with a room created, updated and cancelled), the adapter checks a mailbox,
//! room lists, free/busy and names, and its change notifications are watched (a streaming
//! connection, cut into its envelopes; then pull subscriptions read with GetEvents).
//!
//! Needs `../shared/protocol` (or `CALBRIDGE_PROTOCOL_DIR`) and xmllint; outside CI the
//! validation is skipped with a note when they are missing.

use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::{Duration, Utc};

use calbridge_core::model::*;
use calbridge_core::remote::{Remote, WatchEvent, WatchMode, WatchOptions};
use calbridge_ews::testing::assert_valid;
use calbridge_ews::wire::ops::get_streaming_events::next_envelope;
use calbridge_ews::{EwsConnector, EwsOptions, EwsRemote};
use calbridge_sim::NewEvent;
use calbridge_tests::{Protocol, World, INSTALLATION};

const ANN: &str = "ann@fabrikam.example";
const ORGANIZER: &str = "scheduler@fabrikam.example";
const ROOM1: &str = "room1@fabrikam.example";
const ROOM2: &str = "room2@fabrikam.example";

#[derive(Clone)]
struct Relay {
    target: String,
    http: reqwest::Client,
    seen: Arc<Mutex<Vec<(String, String)>>>,
}

async fn relay(State(r): State<Relay>, headers: HeaderMap, body: Bytes) -> Response {
    let mut req = r.http.post(&r.target).body(body.clone());
    for name in ["authorization", "content-type", "x-anchormailbox", "user-agent"] {
        if let Some(v) = headers.get(name) {
            req = req.header(name, v.clone());
        }
    }
    let resp = match req.send().await {
        Ok(resp) => resp,
        Err(e) => return (StatusCode::BAD_GATEWAY, e.to_string()).into_response(),
    };
    let status = StatusCode::from_u16(resp.status().as_u16()).unwrap();
    let content_type = resp.headers().get("content-type").cloned();
    let answer = resp.text().await.unwrap_or_default();
    r.seen.lock().unwrap().push((String::from_utf8_lossy(&body).into_owned(), answer.clone()));
    let mut out = (status, answer).into_response();
    if let Some(ct) = content_type {
        out.headers_mut().insert("content-type", ct);
    }
    out
}

fn operation(xml: &str) -> String {
    let doc = roxmltree::Document::parse(xml).unwrap();
    let body = doc.descendants().find(|n| n.tag_name().name() == "Body").unwrap();
    body.children().find(|n| n.is_element()).map(|n| n.tag_name().name().to_string()).unwrap_or_default()
}

#[tokio::test]
async fn every_request_and_answer_of_a_sync_cycle_validates() {
    let w = World::on(Protocol::Ews).await;
    let seen = Arc::new(Mutex::new(Vec::new()));
    let state = Relay { target: w.running.ews_url(), http: reqwest::Client::new(), seen: seen.clone() };
    let app = axum::Router::new().route("/EWS/Exchange.asmx", axum::routing::post(relay)).with_state(state);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let ConnectionSettings::Ews(mut settings) = w.connection.settings.clone() else { panic!("an EWS world") };
    settings.url = format!("http://{addr}/EWS/Exchange.asmx");
    // NTLM signs in a connection, which a relay cannot pass on: Basic through the relay (NTLM
    // itself is exercised by the sync suite, which talks to the simulator directly).
    settings.auth = EwsAuth::Basic;
    let account = w.sim.ews_accounts().into_iter().find(|a| a.impersonation).unwrap();
    let options =
        EwsOptions { sync_page_size: 4, get_item_batch: 3, installation_id: INSTALLATION.into(), ..Default::default() };
    let client = EwsConnector::new(options).client(&settings, Secret::new(&account.password)).unwrap();
    let remote = EwsRemote::new(client.clone());

    let day = Utc::now().date_naive().and_hms_opt(9, 0, 0).unwrap().and_utc() + Duration::days(2);
    for i in 0..9 {
        let s = day + Duration::days(i);
        w.sim.outlook().create_event(ANN, NewEvent::new(format!("Lecture {i}"), s, s + Duration::hours(1))).unwrap();
    }
    let ann = w.link(ANN, CalendarKind::Person).await;
    let org = w.link(ORGANIZER, CalendarKind::Person).await;
    let now = Utc::now();
    assert!(w.engine.sync_calendar(&remote, &ann, now).await.ok());
    assert!(w.engine.sync_calendar(&remote, &org, now).await.ok());

    let mut data = EventData::new("Lab session", day + Duration::hours(4), day + Duration::hours(6));
    data.body = "Goggles & gloves <required>.".into();
    data.location = "Room 1".into();
    data.time_zone = "Europe/Berlin".into();
    data.attendees = vec![
        Attendee {
            email: ANN.into(),
            name: "Ann Lee".into(),
            role: AttendeeRole::Required,
            response: ResponseStatus::None,
        },
        Attendee {
            email: ROOM1.into(),
            name: "Room 1".into(),
            role: AttendeeRole::Resource,
            response: ResponseStatus::None,
        },
    ];
    let id = EventId::new("lab-1");
    w.store.create_local_event(org.id, &id, &data).await.unwrap();
    assert!(w.engine.sync_calendar(&remote, &org, now).await.ok());
    let ev = w.store.event(&id).await.unwrap().unwrap();
    data.subject = "Lab session (moved)".into();
    data.attendees.retain(|a| a.role == AttendeeRole::Resource);
    w.store.update_local_event(&id, &data, Some(ev.version)).await.unwrap();
    assert!(w.engine.sync_calendar(&remote, &org, now).await.ok());
    w.store.delete_local_event(&id).await.unwrap();
    assert!(w.engine.sync_calendar(&remote, &org, now).await.ok());

    // A room declines a booking made in Outlook (DeclineItem).
    let s = day + Duration::hours(1);
    w.sim
        .outlook()
        .create_event(ANN, NewEvent::new("Stand-up", s, s + Duration::hours(1)).with_attendees(&[ROOM2]))
        .unwrap();
    let room2 = w.link(ROOM2, CalendarKind::Room).await;
    assert!(w.engine.sync_calendar(&remote, &room2, now).await.ok());
    let snap = w.store.snapshot(room2.id).await.unwrap();
    let booking = snap.events.values().find(|e| e.data.start == s).expect("the room's booking is pulled");
    remote.decline(ROOM2, &snap.records[&booking.id].remote_id, "Released").await.unwrap();

    remote.mailbox(ANN).await.unwrap();
    remote.list_calendars(ROOM1).await.unwrap();
    let _ = client.room_lists().await;
    let _ = client.rooms("rooms@fabrikam.example").await;
    let _ = client.resolve_names("ann").await;
    let _ = client
        .availability(&[ANN.to_string(), ROOM1.to_string()], "2026-12-07T00:00:00Z", "2026-12-08T00:00:00Z")
        .await;

    // Change notifications. The relay passes a stream on only once it ended, so the
    // simulator's minute is shortened (a 30-minute connection lasts 0.6 s).
    w.sim.ews_notification_minute(std::time::Duration::from_millis(20));
    let options = WatchOptions { pull_interval: std::time::Duration::from_millis(100), ..WatchOptions::default() };
    for refuse_streaming in [false, true] {
        w.sim.ews_refuse_streaming(refuse_streaming);
        let mut watch = remote.watch(vec![ANN.into()], options.clone()).await.unwrap();
        let mode = if refuse_streaming { WatchMode::Pull } else { WatchMode::Streaming };
        let mut changes = 0;
        let s = day + Duration::hours(20);
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(15);
        while changes < 2 {
            match tokio::time::timeout_at(deadline, watch.next()).await.expect("the watch reports in time") {
                Some(WatchEvent::Mode { mode: m, .. }) => {
                    assert_eq!(m, mode);
                    w.sim.outlook().create_event(ANN, NewEvent::new("Notified", s, s + Duration::hours(1))).unwrap();
                }
                Some(WatchEvent::Changed(_)) => changes += 1,
                None => panic!("the watch ended"),
            }
        }
        drop(watch);
    }
    tokio::time::sleep(std::time::Duration::from_millis(300)).await; // the unsubscribes

    let seen = seen.lock().unwrap().clone();
    let mut ops: Vec<String> = seen.iter().map(|(req, _)| operation(req)).collect();
    ops.sort();
    ops.dedup();
    for op in [
        "CreateItem",
        "DeleteItem",
        "GetFolder",
        "GetItem",
        "GetRoomLists",
        "GetRooms",
        "GetUserAvailabilityRequest",
        "ResolveNames",
        "SyncFolderItems",
        "UpdateItem",
        "Subscribe",
        "GetStreamingEvents",
        "GetEvents",
        "Unsubscribe",
    ] {
        assert!(ops.iter().any(|o| o == op), "the cycle sends {op}: {ops:?}");
    }
    assert!(seen.iter().any(|(req, _)| req.contains("DeclineItem")), "the cycle declines a booking");
    let mut answers = 0;
    for (req, resp) in &seen {
        assert_valid(&format!("request {}", operation(req)), req);
        // Faults (an operation the simulator lacks, say) are SOAP's, not EWS's schema.
        if resp.contains(":Fault>") {
            continue;
        }
        // A streamed answer is several envelopes, one after another.
        let mut rest = resp.as_str();
        while let Some(n) = next_envelope(rest) {
            assert_valid(&format!("answer to {}", operation(req)), rest[..n].trim());
            rest = &rest[n..];
        }
        assert!(rest.trim().is_empty(), "answer to {}: trailing text {rest:?}", operation(req));
        answers += 1;
    }
    assert!(answers >= 10, "most answers are EWS messages: {answers} of {}", seen.len());
}
