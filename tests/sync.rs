//! End-to-end: the engine syncing with the simulator on 127.0.0.1 and an SQLite file, over
//! Microsoft Graph and over EWS. Each test names the sync rule it proves (docs/sync-spec.md);
//! `both!(test)` runs a test body once per protocol (`test::graph`, `test::ews`), so the engine
//! is shown to behave the same over either. Protocol-specific behaviour (Graph's 429 and
//! token errors, EWS's ErrorServerBusy and sign-in failures) has tests of its own.

use std::collections::HashSet;
use std::time::Instant;

use chrono::{Duration, Utc};
use serde_json::json;

use calbridge_core::model::*;
use calbridge_core::store::StoreError;
use calbridge_ews::client::EwsOptions;
use calbridge_graph::client::GraphOptions;
use calbridge_sim::NewEvent;
use calbridge_tests::{both, weekly_series, FailingAfter, Hooked, Protocol, World, INSTALLATION, SCENARIO};

const ANN: &str = "ann@fabrikam.example";
const ORGANIZER: &str = "scheduler@fabrikam.example";
const ROOM1: &str = "room1@fabrikam.example";
const PROJECTOR: &str = "projector1@fabrikam.example";

fn at(days: i64, hour: u32) -> chrono::DateTime<Utc> {
    let today = Utc::now().date_naive().and_hms_opt(0, 0, 0).unwrap().and_utc();
    today + Duration::days(days) + Duration::hours(hour as i64)
}

fn outlook_event(w: &World, mailbox: &str, subject: &str, days: i64, hour: u32) -> String {
    w.sim
        .outlook()
        .create_event(mailbox, NewEvent::new(subject, at(days, hour), at(days, hour + 1)))
        .expect("outlook create")
}

fn local_data(subject: &str, days: i64, hour: u32) -> EventData {
    EventData::new(subject, at(days, hour), at(days, hour + 1))
}

/// Pages of 7 changes, so 20 events take several.
const SMALL_PAGES: Option<u32> = Some(7);

/// R12, R1: the first sync lists the window across pages; the second writes nothing.
async fn first_sync_pulls_the_window_and_the_second_is_idle(p: Protocol) {
    let w = World::on_with(p, SMALL_PAGES, None).await;
    for i in 0..20 {
        outlook_event(&w, ANN, &format!("Meeting {i}"), i - 5, 9);
    }
    outlook_event(&w, ANN, "Too far ahead", 500, 9);
    outlook_event(&w, ANN, "Too far back", -90, 9);
    let cal = w.link(ANN, CalendarKind::Person).await;

    let first = w.sync_ok(&cal).await;
    assert!(first.full_listing);
    assert_eq!(first.pulled.created, 20, "{first:?}");
    let local = w.local(&cal).await;
    assert_eq!(local.len(), 20);
    assert!(local.iter().all(|e| e.origin == Origin::Exchange));
    assert!(!local.iter().any(|e| e.data.subject.starts_with("Too far")), "events outside the window stay out");
    assert!(first.requests >= 3, "20 events in pages of 7 take several pages: {first:?}");

    let second = w.sync_ok(&cal).await;
    assert_eq!(second.writes.total(), 0, "an idle sync writes nothing: {second:?}");
    assert_eq!(second.pulled.total() + second.pushed.total(), 0);
    assert!(!second.full_listing, "the second sync continues from the stored cursor");
    assert_eq!(second.requests, 1, "an idle sync asks Exchange once, and nothing more: {second:?}");
}

/// R5: changes made in Outlook arrive through delta pages: created, updated, `@removed`.
async fn delta_paging_and_removed_reach_the_store(p: Protocol) {
    let w = World::on_with(p, SMALL_PAGES, None).await;
    let ids: Vec<String> = (0..10).map(|i| outlook_event(&w, ANN, &format!("Standup {i}"), i, 8)).collect();
    let cal = w.link(ANN, CalendarKind::Person).await;
    w.sync_ok(&cal).await;

    let o = w.sim.outlook();
    for i in 0..9 {
        outlook_event(&w, ANN, &format!("New {i}"), 3, 13);
    }
    o.update_event(ANN, &ids[0], json!({"subject": "Standup 0 (moved)"})).unwrap();
    o.update_event(ANN, &ids[1], json!({"location": {"displayName": "Room 1"}})).unwrap();
    o.delete_event(ANN, &ids[2]).unwrap();
    o.delete_event(ANN, &ids[3]).unwrap();

    let r = w.sync_ok(&cal).await;
    assert!(!r.full_listing);
    assert_eq!((r.pulled.created, r.pulled.updated, r.pulled.deleted), (9, 2, 2), "{r:?}");
    let local = w.local(&cal).await;
    assert_eq!(local.len(), 17);
    let subjects: HashSet<&str> = local.iter().map(|e| e.data.subject.as_str()).collect();
    assert!(subjects.contains("Standup 0 (moved)"));
    assert!(!subjects.contains("Standup 2") && !subjects.contains("Standup 3"));
    assert!(local.iter().any(|e| e.data.location == "Room 1"));
    assert_eq!(w.sync_ok(&cal).await.writes.total(), 0);
}

/// R6: an expired delta token (410 syncStateNotFound) leads to a full re-listing that neither
/// loses nor duplicates, and keeps the local ids of what it already knew.
async fn expired_cursor_relists_without_loss_or_duplicates(p: Protocol) {
    let w = World::on_with(p, SMALL_PAGES, None).await;
    let ids: Vec<String> = (0..12).map(|i| outlook_event(&w, ANN, &format!("Class {i}"), i, 10)).collect();
    let cal = w.link(ANN, CalendarKind::Person).await;
    w.sync_ok(&cal).await;
    // An event of ours, pushed and confirmed.
    w.store.create_local_event(cal.id, &EventId::new("ours-1"), &local_data("Ours", 2, 15)).await.unwrap();
    w.sync_ok(&cal).await;
    let before: Vec<EventId> = w.local(&cal).await.into_iter().map(|e| e.id).collect();

    let o = w.sim.outlook();
    o.delete_event(ANN, &ids[0]).unwrap();
    o.update_event(ANN, &ids[1], json!({"subject": "Class 1 (renamed)"})).unwrap();
    outlook_event(&w, ANN, "Added while the token expired", 4, 16);
    w.sim.faults().expire_delta_tokens();

    let r = w.sync_ok(&cal).await;
    assert!(r.relisted, "the 410 must lead to a re-listing: {r:?}");
    assert_eq!((r.pulled.created, r.pulled.updated, r.pulled.deleted), (1, 1, 1), "{r:?}");
    let local = w.local(&cal).await;
    assert_eq!(local.len(), 13, "12 - 1 + 1 + ours");
    // Nothing duplicated: remote ids unique and equal to Exchange's instances.
    let snap = w.store.snapshot(cal.id).await.unwrap();
    let remote_ids: HashSet<&String> = snap.records.values().map(|r| &r.remote_id).collect();
    assert_eq!(remote_ids.len(), 13);
    let in_exchange = w.sim.outlook().list_instances(ANN, at(-30, 0), at(366, 0)).unwrap();
    assert_eq!(in_exchange.len(), 13);
    // Known events kept their local ids (no delete-all / create-all).
    let kept = local.iter().filter(|e| before.contains(&e.id)).count();
    assert_eq!(kept, 12, "11 surviving Exchange events and ours keep their ids");
    assert!(local.iter().any(|e| e.id.as_str() == "ours-1" && e.origin == Origin::Local));
    assert_eq!(w.sync_ok(&cal).await.writes.total(), 0);
}

/// R8: throttling is waited out and the request retried, and the sync succeeds: Graph's 429
/// with `Retry-After: 1`, EWS's ErrorServerBusy with `BackOffMilliseconds` 1000.
async fn throttling_is_waited_out_and_retried(p: Protocol) {
    let w = World::on(p).await;
    for i in 0..5 {
        outlook_event(&w, ANN, &format!("Busy {i}"), i, 9);
    }
    let cal = w.link(ANN, CalendarKind::Person).await;
    if let Some(graph) = &w.graph {
        // The token first, so the throttled answers are Graph's, not the token endpoint's.
        graph.authenticate().await.unwrap();
    }
    w.sim.faults().throttle_next(2, 1);
    let started = Instant::now();
    let r = w.sync_ok(&cal).await;
    let waited = started.elapsed();
    assert_eq!(r.pulled.created, 5);
    assert!(w.sim.stats().throttled_429 >= 2, "the simulator throttled twice: {:?}", w.sim.stats());
    assert!(waited >= std::time::Duration::from_millis(1900), "two 1 s back-offs are waited out, waited {waited:?}");
}

/// R4: a create whose response was lost is not duplicated when retried.
async fn lost_create_response_is_not_duplicated_on_retry(p: Protocol) {
    let w = World::on(p).await;
    let cal = w.link(ORGANIZER, CalendarKind::Person).await;
    w.sync_ok(&cal).await;
    w.store.create_local_event(cal.id, &EventId::new("lost-1"), &local_data("Budget review", 3, 11)).await.unwrap();
    // The create is applied but its answer is lost. Over Graph, so is the answer to the
    // client's own retry (Exchange de-duplicates it by transactionId); over EWS the client
    // does not repeat a CreateItem that may have gone through. Either way the push fails.
    let lost = match p {
        Protocol::Graph => 2,
        Protocol::Ews => 1,
    };
    w.sim.faults().drop_responses_after_apply(lost);
    let first = w.sync(&cal).await;
    assert_eq!(w.sim.stats().dropped_responses, lost as u64, "the fault fired");
    assert!(first.error.is_some(), "the push could not be confirmed: {first:?}");
    assert!(w.store.remote_id(&EventId::new("lost-1")).await.unwrap().is_none(), "nothing recorded unconfirmed");
    // The next sync's pull finds the tagged event and links it instead of creating another.
    let second = w.sync_ok(&cal).await;
    assert_eq!(second.pulled.linked, 1, "{second:?}");
    assert_eq!(second.pushed.created, 0, "{second:?}");
    w.sync_ok(&cal).await;
    let copies: Vec<_> = w
        .sim
        .outlook()
        .list_events(ORGANIZER)
        .unwrap()
        .into_iter()
        .filter(|e| e.subject.as_deref() == Some("Budget review"))
        .collect();
    assert_eq!(copies.len(), 1, "exactly one event in Exchange; first {first:?} second {second:?}");
    let remote_id = w.store.remote_id(&EventId::new("lost-1")).await.unwrap().expect("linked");
    assert_eq!(Some(w.graph_id(&remote_id)), copies[0].id);
    assert_eq!(w.local(&cal).await.len(), 1, "no duplicate locally either");
}

/// R21: a sync's changes to many events take a few requests, not one each: JSON batches over
/// Graph, one CreateItem / UpdateItem / DeleteItem (after one GetItem) over EWS.
async fn changes_to_many_events_travel_together(p: Protocol) {
    let w = World::on(p).await;
    let cal = w.link(ORGANIZER, CalendarKind::Person).await;
    w.sync_ok(&cal).await;
    let ids: Vec<EventId> = (0..25).map(|i| EventId::new(format!("many-{i:02}"))).collect();
    for (i, id) in ids.iter().enumerate() {
        let data = local_data(&format!("Many {i:02}"), 1 + i as i64 / 8, 8 + i as u32 % 8);
        w.store.create_local_event(cal.id, id, &data).await.unwrap();
    }
    let before = w.requests();
    let created = w.sync_ok(&cal).await;
    let sent = w.requests() - before;
    assert_eq!(created.pushed.created, 25, "{created:?}");
    assert!(sent <= 4, "25 creates in a few requests, not one each: {sent}");
    // Exchange lists calbridge's own creates as changes once.
    w.sync_ok(&cal).await;

    for id in &ids[..10] {
        let ev = w.store.event(id).await.unwrap().unwrap();
        let mut data = ev.data.clone();
        data.subject = format!("{} (moved)", data.subject);
        w.store.update_local_event(id, &data, Some(ev.version)).await.unwrap();
    }
    for id in &ids[20..] {
        w.store.delete_local_event(id).await.unwrap();
    }
    let before = w.requests();
    let changed = w.sync_ok(&cal).await;
    let sent = w.requests() - before;
    assert_eq!((changed.pushed.updated, changed.pushed.deleted), (10, 5), "{changed:?}");
    assert!(sent <= 5, "15 changes in a few requests, not one each: {sent}");
    let mut subjects: Vec<String> =
        w.sim.outlook().list_events(ORGANIZER).unwrap().into_iter().filter_map(|e| e.subject).collect();
    subjects.retain(|s| s.starts_with("Many"));
    subjects.sort();
    assert_eq!(subjects.len(), 20, "{subjects:?}");
    assert_eq!(subjects.iter().filter(|s| s.ends_with("(moved)")).count(), 10, "{subjects:?}");
    let idle = w.sync_ok(&cal).await;
    assert_eq!(idle.pushed.total() + idle.pulled.total(), 0, "{idle:?}");
}

/// R21: over Graph, changes to independent events travel in JSON batches of up to 20; an
/// inner request that is throttled goes again alone in a later batch; a batch whose answer is
/// lost after its changes were applied duplicates nothing.
#[tokio::test]
async fn graph_pushes_travel_in_json_batches() {
    let w = World::on(Protocol::Graph).await;
    let cal = w.link(ORGANIZER, CalendarKind::Person).await;
    w.sync_ok(&cal).await;
    let subjects = |prefix: &str| -> Vec<String> {
        let mut s: Vec<String> = w
            .sim
            .outlook()
            .list_events(ORGANIZER)
            .unwrap()
            .into_iter()
            .filter_map(|e| e.subject)
            .filter(|s| s.starts_with(prefix))
            .collect();
        s.sort();
        s
    };
    for i in 0..25 {
        let id = EventId::new(format!("batched-{i:02}"));
        w.store
            .create_local_event(cal.id, &id, &local_data(&format!("Batched {i:02}"), 1 + i / 8, 8 + i as u32 % 8))
            .await
            .unwrap();
    }
    // Three of the first batch's creates are throttled (the faults are set once the pull is
    // done) and go again.
    let sim = w.sim.clone();
    let throttling = Hooked::new(w.remote.clone())
        .after_first_changes(Box::new(move || Box::pin(async move { sim.faults().throttle_next(3, 1) })));
    let before = w.sim.stats();
    let report = w.engine.sync_calendar(&throttling, &cal, Utc::now()).await;
    assert!(report.error.is_none(), "{report:?}");
    let after = w.sim.stats();
    assert_eq!(report.pushed.created, 25, "{report:?}");
    let route = |s: &calbridge_sim::SimStats, k: &str| s.by_route.get(k).copied().unwrap_or(0);
    assert_eq!(route(&after, "event_create") - route(&before, "event_create"), 28, "25 creates, 3 of them twice");
    assert_eq!(after.throttled_429 - before.throttled_429, 3);
    // 20 + 5 in two batches, then the 3 throttled ones in a third; nothing alone.
    assert_eq!(route(&after, "batch") - route(&before, "batch"), 3, "{after:?}");
    assert_eq!(after.batched_requests - before.batched_requests, 28);
    assert_eq!(subjects("Batched").len(), 25, "each event once in Exchange");
    for e in w.local(&cal).await {
        assert!(w.store.remote_id(&e.id).await.unwrap().is_some(), "every create confirmed and recorded: {e:?}");
    }
    let idle = w.sync_ok(&cal).await;
    assert_eq!(idle.pushed.total() + idle.pulled.total(), 0, "{idle:?}");

    // Updates and deletes batch too; a lost batch answer (the changes were applied) is
    // reconciled by the next pull, with no duplicate and nothing lost.
    for i in 0..6 {
        let id = EventId::new(format!("lost-batch-{i}"));
        w.store.create_local_event(cal.id, &id, &local_data(&format!("Lost batch {i}"), 2, 8 + i)).await.unwrap();
    }
    // The batch's answer is lost, and so is the answer to the client's one retry (Exchange
    // de-duplicates the creates by transactionId): the push fails.
    let dropped = w.sim.stats().dropped_responses;
    w.sim.faults().drop_responses_after_apply(100);
    let first = w.sync(&cal).await;
    w.sim.faults().drop_responses_after_apply(0);
    assert!(w.sim.stats().dropped_responses - dropped >= 2, "the batch and its retry were applied, unanswered");
    assert!(first.error.is_some(), "the batch could not be confirmed: {first:?}");
    let second = w.sync_ok(&cal).await;
    w.sync_ok(&cal).await;
    assert_eq!(subjects("Lost batch").len(), 6, "each once in Exchange; first {first:?} second {second:?}");
    let mine: Vec<Event> =
        w.local(&cal).await.into_iter().filter(|e| e.data.subject.starts_with("Lost batch")).collect();
    assert_eq!(mine.len(), 6, "no duplicate locally");
    for e in mine {
        assert!(w.store.remote_id(&e.id).await.unwrap().is_some(), "linked after the pull: {e:?}");
    }
}

/// R8: a connection's sync has at most `max_threads` requests in flight, however many
/// calendars it works on at once.
async fn a_connection_keeps_to_max_threads_requests_in_flight(p: Protocol) {
    // The adapter built for a connection with max_threads 2 (as its connector builds it).
    let w = match p {
        Protocol::Graph => {
            World::with(SCENARIO, GraphOptions { max_in_flight: 2, ..GraphOptions::default() }, None).await
        }
        Protocol::Ews => {
            let options = EwsOptions { max_in_flight: 2, ..EwsOptions::default() };
            World::ews_with(SCENARIO, EwsAuth::Ntlm, options, None).await
        }
    };
    assert_eq!(w.connection.max_threads, 2);
    let mailboxes = ["scheduler@fabrikam.example", ANN, "bob@fabrikam.example", ROOM1, "room2@fabrikam.example"];
    for (i, email) in mailboxes.iter().enumerate() {
        outlook_event(&w, email, &format!("Planning {i}"), 2, 9);
        w.link(email, if email.starts_with("room") { CalendarKind::Room } else { CalendarKind::Person }).await;
    }
    // Every request waits, so that the four calendars synced together would overlap at
    // Exchange if nothing held them back.
    w.sim.faults().set_latency(std::time::Duration::from_millis(30));
    w.sim.reset_most_in_flight();
    let reports = w
        .engine
        .sync_connection(&w.connection, w.remote.clone(), Utc::now(), std::sync::Arc::new(|_| {}))
        .await
        .unwrap();
    assert_eq!(reports.len(), mailboxes.len());
    assert!(reports.iter().all(|r| r.error.is_none() && r.pulled.created == 1), "{reports:?}");
    let most = w.sim.stats().most_in_flight;
    assert!(most <= 2, "at most max_threads requests at Exchange at once, saw {most}");
    assert_eq!(most, 2, "calendars are synced concurrently");
}
both!(a_connection_keeps_to_max_threads_requests_in_flight);

/// R14: token failures carry Entra's AADSTS code and the fix, never the secret.
#[tokio::test]
async fn token_errors_are_reported_clearly() {
    let wrong = "definitely-not-the-secret-42";
    let w = World::with(SCENARIO, GraphOptions::default(), Some(wrong)).await;
    w.link(ANN, CalendarKind::Person).await;
    let reports = w
        .engine
        .sync_connection(&w.connection, w.remote.clone(), Utc::now(), std::sync::Arc::new(|_| {}))
        .await
        .unwrap();
    let err = reports[0].error.clone().expect("a wrong secret fails");
    assert!(err.contains("AADSTS7000215"), "{err}");
    assert!(err.to_lowercase().contains("secret"), "the message names the secret as the cause: {err}");
    assert!(err.contains("Fix") || err.contains("fix"), "the message names the fix: {err}");
    assert!(!err.contains(wrong), "the secret must never appear: {err}");
    let cal = w.store.calendar_by_email(ANN).await.unwrap().unwrap();
    assert!(matches!(cal.link, LinkState::Failed { .. }), "the link shows the failure: {:?}", cal.link);
}

/// R3: events from Exchange are read-only in calbridge.
async fn exchange_events_are_read_only_locally(p: Protocol) {
    let w = World::on(p).await;
    outlook_event(&w, ANN, "Dentist", 2, 9);
    let cal = w.link(ANN, CalendarKind::Person).await;
    w.sync_ok(&cal).await;
    let ev = w.local(&cal).await.pop().unwrap();
    let err = w.store.update_local_event(&ev.id, &local_data("Hijacked", 2, 9), None).await.unwrap_err();
    assert!(matches!(err, StoreError::Conflict(_)), "{err:?}");
    assert!(w.store.delete_local_event(&ev.id).await.is_err());
}

/// R3, R4: local creates, edits and deletes reach Exchange, once.
async fn local_edits_and_deletes_are_pushed(p: Protocol) {
    let w = World::on(p).await;
    let cal = w.link(ANN, CalendarKind::Person).await;
    w.sync_ok(&cal).await;
    let id = EventId::new("course-42");
    w.store.create_local_event(cal.id, &id, &local_data("Course 42", 5, 9)).await.unwrap();
    let r = w.sync_ok(&cal).await;
    assert_eq!(r.pushed.created, 1);
    let remote_id = w.store.remote_id(&id).await.unwrap().unwrap();
    assert_eq!(w.sim.outlook().get_event(ANN, &w.graph_id(&remote_id)).unwrap().subject.as_deref(), Some("Course 42"));

    let mut d = local_data("Course 42 (room changed)", 5, 10);
    d.location = "Room 2".into();
    w.store.update_local_event(&id, &d, Some(1)).await.unwrap();
    let r = w.sync_ok(&cal).await;
    assert_eq!(r.pushed.updated, 1, "{r:?}");
    let there = w.sim.outlook().get_event(ANN, &w.graph_id(&remote_id)).unwrap();
    assert_eq!(there.subject.as_deref(), Some("Course 42 (room changed)"));
    assert_eq!(there.location.and_then(|l| l.display_name).as_deref(), Some("Room 2"));
    // Our own update coming back through delta is not a change (only the cursor moves on).
    let echo = w.sync_ok(&cal).await;
    assert_eq!((echo.pulled.total(), echo.writes.events, echo.writes.records), (0, 0, 0), "{echo:?}");
    assert_eq!(w.sync_ok(&cal).await.writes.total(), 0);

    w.store.delete_local_event(&id).await.unwrap();
    let r = w.sync_ok(&cal).await;
    assert_eq!(r.pushed.deleted, 1);
    assert!(w.sim.outlook().get_event(ANN, &w.graph_id(&remote_id)).is_err(), "deleted in Exchange");
    assert!(w.store.event(&id).await.unwrap().is_none(), "the tombstone is gone");
}

/// R9: what calbridge creates carries the provenance tag; the transactionId de-duplicates.
#[tokio::test]
async fn created_events_carry_provenance() {
    let w = World::new().await;
    let cal = w.link(ANN, CalendarKind::Person).await;
    let id = EventId::new("prov-1");
    w.store.create_local_event(cal.id, &id, &local_data("Tagged", 1, 14)).await.unwrap();
    w.sync_ok(&cal).await;
    let remote_id = w.store.remote_id(&id).await.unwrap().unwrap();
    let ev = w.sim.outlook().get_event(ANN, &w.graph_id(&remote_id)).unwrap();
    let expected = format!("calbridge:{INSTALLATION}:prov-1");
    assert_eq!(ev.transaction_id.as_deref(), Some(expected.as_str()));
    let props = ev.single_value_extended_properties.unwrap_or_default();
    assert!(
        props
            .iter()
            .any(|p| p.id == calbridge_graph::types::PROVENANCE_PROPERTY_ID
                && p.value.as_deref() == Some(expected.as_str())),
        "the extended property carries the tag: {props:?}"
    );
    // Events people made in Outlook carry none.
    let theirs = outlook_event(&w, ANN, "Theirs", 1, 16);
    assert!(w.sim.outlook().get_event(ANN, &theirs).unwrap().transaction_id.is_none());
}

/// R13: a room booked as a resource answers; a conflicting booking is declined, not doubled.
async fn room_booking_is_accepted_and_a_conflict_is_declined(p: Protocol) {
    let w = World::on(p).await;
    let org = w.link(ORGANIZER, CalendarKind::Person).await;
    let room = w.link(ROOM1, CalendarKind::Room).await;
    w.sync_ok(&org).await;
    w.sync_ok(&room).await;
    let resource = |email: &str| Attendee {
        email: email.into(),
        name: email.into(),
        role: AttendeeRole::Resource,
        response: ResponseStatus::None,
    };
    let mut first = local_data("Workshop A", 7, 9);
    first.attendees = vec![resource(ROOM1), resource(PROJECTOR)];
    let mut second = local_data("Workshop B", 7, 9);
    second.start = first.start + Duration::minutes(30);
    second.end = first.end + Duration::minutes(30);
    second.attendees = vec![resource(ROOM1)];
    w.store.create_local_event(org.id, &EventId::new("ws-a"), &first).await.unwrap();
    let a = w.sync_ok(&org).await;
    assert_eq!(a.pushed.created, 1);
    w.store.create_local_event(org.id, &EventId::new("ws-b"), &second).await.unwrap();
    w.sync_ok(&org).await;
    // The answers arrive with the next pull.
    w.sync_ok(&org).await;
    let a = w.store.event(&EventId::new("ws-a")).await.unwrap().unwrap();
    let b = w.store.event(&EventId::new("ws-b")).await.unwrap().unwrap();
    assert_eq!(
        BookingState::from_response(a.data.resource_response(ROOM1).unwrap()),
        BookingState::Accepted,
        "{:?}",
        a.data.attendees
    );
    assert_eq!(BookingState::from_response(a.data.resource_response(PROJECTOR).unwrap()), BookingState::Accepted);
    assert_eq!(
        BookingState::from_response(b.data.resource_response(ROOM1).unwrap()),
        BookingState::Declined,
        "{:?}",
        b.data.attendees
    );
    // The room's calendar holds the accepted booking only.
    w.sync_ok(&room).await;
    let in_room: Vec<String> = w
        .local(&room)
        .await
        .into_iter()
        .filter(|e| !e.data.cancelled && e.data.show_as != ShowAs::Free)
        .map(|e| e.data.subject)
        .collect();
    assert_eq!(in_room.iter().filter(|s| s.contains("Workshop")).count(), 1, "{in_room:?}");
    assert!(in_room[0].contains("Workshop A") || in_room.iter().any(|s| s.contains("Workshop A")), "{in_room:?}");
}

/// R13: rooms decide by their calendar-processing settings: a booking longer than
/// MaximumDurationInMinutes (24 hours by default) or starting beyond BookingWindowInDays (180)
/// is declined; one within both is accepted.
async fn room_rules_decline_too_long_and_too_far_bookings(p: Protocol) {
    let w = World::on(p).await;
    let org = w.link(ORGANIZER, CalendarKind::Person).await;
    w.sync_ok(&org).await;
    let resource = Attendee {
        email: ROOM1.into(),
        name: "Room 1".into(),
        role: AttendeeRole::Resource,
        response: ResponseStatus::None,
    };
    let mut ok = local_data("Within the rules", 20, 9);
    ok.attendees = vec![resource.clone()];
    let mut long = local_data("Two-day retreat", 30, 9);
    long.end = long.start + Duration::hours(26);
    long.attendees = vec![resource.clone()];
    let mut far = local_data("Next year's kickoff", 200, 9);
    far.attendees = vec![resource];
    for (id, d) in [("rule-ok", &ok), ("rule-long", &long), ("rule-far", &far)] {
        w.store.create_local_event(org.id, &EventId::new(id), d).await.unwrap();
    }
    w.sync_ok(&org).await;
    w.sync_ok(&org).await;
    let state = |id: &str| {
        let store = w.store.clone();
        let id = EventId::new(id);
        async move {
            let ev = store.event(&id).await.unwrap().unwrap();
            BookingState::from_response(ev.data.resource_response(ROOM1).unwrap())
        }
    };
    assert_eq!(state("rule-ok").await, BookingState::Accepted);
    assert_eq!(state("rule-long").await, BookingState::Declined, "longer than the room's maximum duration");
    assert_eq!(state("rule-far").await, BookingState::Declined, "beyond the room's booking window");
}

/// R7: a mailbox that suddenly loses most of its events pauses instead of deleting, even when
/// the deletions arrive spread over many small delta pages.
async fn mass_deletion_pauses_the_calendar(p: Protocol) {
    let w = World::on_with(p, SMALL_PAGES, None).await;
    let ids: Vec<String> =
        (0..40).map(|i| outlook_event(&w, ANN, &format!("Lesson {i}"), i % 20, 8 + (i as u32 % 8))).collect();
    let cal = w.link(ANN, CalendarKind::Person).await;
    w.sync_ok(&cal).await;
    for id in &ids[..35] {
        w.sim.outlook().delete_event(ANN, id).unwrap();
    }
    let r = w.sync(&cal).await;
    let why = r.paused.clone().expect("deleting 35 of 40 at once must pause");
    assert!(why.contains("35") && why.contains("paused"), "{why}");
    assert_eq!(w.local(&cal).await.len(), 40, "nothing was deleted");
    assert!(w.store.cursor(cal.id).await.unwrap().is_none(), "the cursor is cleared so the next run re-checks");
}

/// R3, H4: an event calbridge created and someone moved out of the window in Outlook is
/// reported by delta as removed; calbridge checks with Exchange and keeps it.
async fn an_event_of_ours_moved_out_of_the_window_is_kept(p: Protocol) {
    let w = World::on(p).await;
    let cal = w.link(ANN, CalendarKind::Person).await;
    w.sync_ok(&cal).await;
    let id = EventId::new("far-1");
    w.store.create_local_event(cal.id, &id, &local_data("Annual review", 10, 9)).await.unwrap();
    w.sync_ok(&cal).await;
    let remote_id = w.store.remote_id(&id).await.unwrap().unwrap();
    let far = at(420, 9);
    w.sim
        .outlook()
        .update_event(
            ANN,
            &w.graph_id(&remote_id),
            json!({"start": {"dateTime": far.format("%Y-%m-%dT%H:%M:%S").to_string(), "timeZone": "UTC"},
                   "end": {"dateTime": (far + Duration::hours(1)).format("%Y-%m-%dT%H:%M:%S").to_string(), "timeZone": "UTC"}}),
        )
        .unwrap();
    let r = w.sync_ok(&cal).await;
    assert_eq!(r.pulled.deleted, 0, "{r:?}");
    let ev = w.store.event(&id).await.unwrap().expect("kept");
    assert_eq!(ev.data.start, far, "the move made in Exchange is taken: {r:?}");
    assert_eq!(w.store.remote_id(&id).await.unwrap(), Some(remote_id));
}

/// R5, R6: a re-listing interrupted after its first page starts over at the next sync and
/// still ends with the reconcile: deletions made while the cursor was lost are not missed.
async fn an_interrupted_relisting_starts_over_and_still_reconciles(p: Protocol) {
    let w = World::on_with(p, SMALL_PAGES, None).await;
    let ids: Vec<String> = (0..20).map(|i| outlook_event(&w, ANN, &format!("Seminar {i}"), i, 9)).collect();
    let cal = w.link(ANN, CalendarKind::Person).await;
    w.sync_ok(&cal).await;
    w.sim.outlook().delete_event(ANN, &ids[3]).unwrap();
    w.sim.outlook().delete_event(ANN, &ids[4]).unwrap();
    w.sim.faults().expire_delta_tokens();

    let flaky = FailingAfter::new(w.remote.clone(), 3);
    let broken = w.engine.sync_calendar(&flaky, &cal, Utc::now()).await;
    assert!(broken.error.is_some() && broken.relisted, "the listing broke off after its first page: {broken:?}");
    assert_eq!(w.local(&cal).await.len(), 20, "nothing deleted before the listing completed");

    let r = w.sync_ok(&cal).await;
    assert!(r.full_listing, "the listing starts over: {r:?}");
    assert_eq!(r.pulled.deleted, 2, "{r:?}");
    assert_eq!(w.local(&cal).await.len(), 18);
    assert_eq!(w.sync_ok(&cal).await.writes.total(), 0);
}

/// R3: a host-application edit that lands while a pull is planning is not overwritten: the
/// engine reads the calendar again, and the host's change wins and reaches Exchange.
async fn a_host_edit_during_the_pull_is_not_lost(p: Protocol) {
    let w = World::on(p).await;
    let cal = w.link(ANN, CalendarKind::Person).await;
    let id = EventId::new("race-1");
    w.store.create_local_event(cal.id, &id, &local_data("Original", 4, 10)).await.unwrap();
    w.sync_ok(&cal).await;
    let remote_id = w.store.remote_id(&id).await.unwrap().unwrap();
    w.sim.outlook().update_event(ANN, &w.graph_id(&remote_id), json!({"subject": "Outlook edit"})).unwrap();

    // While the first page of changes is being planned, the host application edits the event.
    let (store, edited) = (w.store.clone(), id.clone());
    let racing = Hooked::new(w.remote.clone()).after_first_changes(Box::new(move || {
        Box::pin(async move {
            let ev = store.event(&edited).await.unwrap().unwrap();
            let mut d = ev.data.clone();
            d.subject = "Host edit during the pull".into();
            store.update_local_event(&edited, &d, Some(ev.version)).await.unwrap();
        })
    }));
    let r = w.engine.sync_calendar(&racing, &cal, Utc::now()).await;
    assert!(r.error.is_none(), "the engine recovers from the race: {r:?}");
    assert_eq!(w.store.event(&id).await.unwrap().unwrap().data.subject, "Host edit during the pull");
    assert_eq!(
        w.sim.outlook().get_event(ANN, &w.graph_id(&remote_id)).unwrap().subject.as_deref(),
        Some("Host edit during the pull"),
        "both sides changed: the host application's edit wins"
    );
}

both!(first_sync_pulls_the_window_and_the_second_is_idle);
both!(changes_to_many_events_travel_together);
both!(delta_paging_and_removed_reach_the_store);
both!(expired_cursor_relists_without_loss_or_duplicates);
both!(exchange_events_are_read_only_locally);
both!(local_edits_and_deletes_are_pushed);
both!(room_booking_is_accepted_and_a_conflict_is_declined);
both!(mass_deletion_pauses_the_calendar);
both!(room_rules_decline_too_long_and_too_far_bookings);
both!(lost_create_response_is_not_duplicated_on_retry);
both!(throttling_is_waited_out_and_retried);
both!(an_event_of_ours_moved_out_of_the_window_is_kept);
both!(an_interrupted_relisting_starts_over_and_still_reconciles);
both!(a_host_edit_during_the_pull_is_not_lost);

/// R14 over EWS: a wrong password is a sign-in failure with the fix, never the password.
#[tokio::test]
async fn ews_sign_in_errors_are_reported_clearly() {
    let wrong = "definitely-not-the-password-42";
    let w = World::on_with(Protocol::Ews, None, Some(wrong)).await;
    w.link(ANN, CalendarKind::Person).await;
    let reports = w
        .engine
        .sync_connection(&w.connection, w.remote.clone(), Utc::now(), std::sync::Arc::new(|_| {}))
        .await
        .unwrap();
    let err = reports[0].error.clone().expect("a wrong password fails");
    assert!(err.contains("401"), "{err}");
    assert!(err.contains("Fix") && err.contains("password"), "the message names the fix: {err}");
    assert!(!err.contains(wrong), "the password must never appear: {err}");
    let cal = w.store.calendar_by_email(ANN).await.unwrap().unwrap();
    assert!(matches!(cal.link, LinkState::Failed { .. }), "the link shows the failure: {:?}", cal.link);
}

/// R9 over EWS: the provenance tag is the same MAPI property Graph reads, so an event
/// calbridge created over EWS is recognised over Graph (and the other way round).
#[tokio::test]
async fn ews_created_events_carry_the_provenance_graph_reads() {
    let w = World::on(Protocol::Ews).await;
    let cal = w.link(ANN, CalendarKind::Person).await;
    let id = EventId::new("prov-ews-1");
    w.store.create_local_event(cal.id, &id, &local_data("Tagged over EWS", 1, 14)).await.unwrap();
    w.sync_ok(&cal).await;
    let remote_id = w.store.remote_id(&id).await.unwrap().unwrap();
    let ev = w.sim.outlook().get_event(ANN, &w.graph_id(&remote_id)).unwrap();
    let expected = format!("calbridge:{INSTALLATION}:prov-ews-1");
    let props = ev.single_value_extended_properties.clone().unwrap_or_default();
    assert!(
        props.iter().any(|p| p.id.eq_ignore_ascii_case(calbridge_graph::types::PROVENANCE_PROPERTY_ID)
            && p.value.as_deref() == Some(expected.as_str())),
        "the extended property carries the tag: {props:?}"
    );
    // Read by the Graph adapter, it is calbridge's own event.
    let as_graph: calbridge_graph::types::Event = serde_json::from_value(serde_json::to_value(&ev).unwrap()).unwrap();
    let item = calbridge_graph::convert::remote_item(&as_graph).unwrap();
    assert_eq!(item.provenance.map(|p| p.local_id), Some(id));
}

/// R2, R3: an update sent with a stale version (Graph 412, EWS ErrorIrresolvableConflict) is
/// not forced through: it is deferred, the next pull brings Exchange's state, and the
/// conflict policy decides — the host application's edit wins and reaches Exchange.
async fn a_stale_version_is_refused_then_resolved(p: Protocol) {
    let w = World::on(p).await;
    let cal = w.link(ANN, CalendarKind::Person).await;
    let id = EventId::new("stale-1");
    w.store.create_local_event(cal.id, &id, &local_data("Seminar", 5, 10)).await.unwrap();
    w.sync_ok(&cal).await;
    let remote_id = w.store.remote_id(&id).await.unwrap().unwrap();
    let ev = w.store.event(&id).await.unwrap().unwrap();
    let mut d = ev.data.clone();
    d.subject = "Seminar (host edit)".into();
    w.store.update_local_event(&id, &d, Some(ev.version)).await.unwrap();

    // Right before the update leaves, someone moves the meeting to another hall in Outlook.
    let (sim, graph_id) = (w.sim.clone(), w.graph_id(&remote_id));
    let racing = Hooked::new(w.remote.clone()).before_first_update(Box::new(move || {
        Box::pin(async move {
            sim.outlook().update_event(ANN, &graph_id, json!({"location": {"displayName": "Hall B"}})).unwrap();
        })
    }));
    let first = w.engine.sync_calendar(&racing, &cal, Utc::now()).await;
    assert_eq!(first.deferred, 1, "the stale update is refused and deferred: {first:?}");
    assert_eq!(
        w.sim.outlook().get_event(ANN, &w.graph_id(&remote_id)).unwrap().subject.as_deref(),
        Some("Seminar"),
        "nothing was forced over the Outlook edit"
    );
    let second = w.sync_ok(&cal).await;
    let there = w.sim.outlook().get_event(ANN, &w.graph_id(&remote_id)).unwrap();
    assert_eq!(there.subject.as_deref(), Some("Seminar (host edit)"), "the host application's edit wins");
    assert_eq!(w.store.event(&id).await.unwrap().unwrap().data.subject, "Seminar (host edit)");
    // The next pull sees calbridge's own update (the cursor moves past it), then all is quiet.
    let third = w.sync_ok(&cal).await;
    assert_eq!((third.pulled.total(), third.pushed.total()), (0, 0), "{second:?} {third:?}");
    assert_eq!(third.writes.events + third.writes.records, 0, "{third:?}");
    assert_eq!(w.sync_ok(&cal).await.writes.total(), 0);
}

both!(a_stale_version_is_refused_then_resolved);

/// EWS sign-in: NTLM authenticates a connection once, and later requests ride on it.
#[tokio::test]
async fn ews_ntlm_signs_in_once_per_connection() {
    let w = World::on(Protocol::Ews).await;
    for i in 0..12 {
        outlook_event(&w, ANN, &format!("Tutorial {i}"), i, 11);
    }
    let cal = w.link(ANN, CalendarKind::Person).await;
    w.sync_ok(&cal).await;
    w.sync_ok(&cal).await;
    let ews = w.ews.as_ref().unwrap();
    assert!(ews.requests() >= 6, "listing, reads and the idle sync: {}", ews.requests());
    assert!(
        ews.handshakes() >= 1 && ews.handshakes() <= 2,
        "{} handshakes for {} requests",
        ews.handshakes(),
        ews.requests()
    );
}

/// EWS with Basic and with OAuth2 (Exchange Online's app tokens, always impersonating): the
/// same sync works whichever way the connection signs in.
#[tokio::test]
async fn ews_basic_and_oauth2_connections_sync_too() {
    for auth in [EwsAuth::Basic, EwsAuth::Oauth2] {
        let options = calbridge_ews::EwsOptions::default();
        let w = World::ews_with(SCENARIO, auth, options, None).await;
        outlook_event(&w, ANN, "Signed in", 1, 9);
        let cal = w.link(ANN, CalendarKind::Person).await;
        let r = w.sync_ok(&cal).await;
        assert_eq!(r.pulled.created, 1, "{auth:?}: {r:?}");
        w.store
            .create_local_event(cal.id, &EventId::new(format!("auth-{}", auth.as_str())), &local_data("Pushed", 2, 9))
            .await
            .unwrap();
        assert_eq!(w.sync_ok(&cal).await.pushed.created, 1, "{auth:?}");
    }
}

/// Room discovery (EWS GetRoomLists/GetRooms, Graph places): one call links every room as a
/// calendar, each room list as a site; importing again links nothing twice.
async fn rooms_are_imported_from_exchange_with_their_lists(p: Protocol) {
    let w = World::on(p).await;
    let first =
        calbridge_engine::rooms::import_rooms(w.store.as_ref(), w.remote.as_ref(), &w.connection, None).await.unwrap();
    let mut linked = first.linked.clone();
    linked.sort();
    assert_eq!(linked, [ROOM1, "room2@fabrikam.example"], "{first:?}");
    assert_eq!(first.sites_created, ["All rooms"], "the simulator's one room list becomes a site");
    let room = w.store.calendar_by_email(ROOM1).await.unwrap().unwrap();
    assert_eq!((room.kind, room.display_name.as_str()), (CalendarKind::Room, "Room 1 (12 seats)"));
    let site = w.store.sites().await.unwrap().into_iter().find(|s| s.name == "All rooms").unwrap();
    assert_eq!(room.site_id, Some(site.id));
    // The imported room syncs like any calendar.
    w.sync_ok(&room).await;
    let again =
        calbridge_engine::rooms::import_rooms(w.store.as_ref(), w.remote.as_ref(), &w.connection, None).await.unwrap();
    assert!(again.linked.is_empty() && again.sites_created.is_empty(), "{again:?}");
    assert_eq!(again.existing.len(), 2);
}

both!(rooms_are_imported_from_exchange_with_their_lists);

/// Room mailboxes that rewrite subjects (AddOrganizerToSubject, DeleteSubject): the room's
/// calendar shows the organizer's name, the host application's event keeps its subject in
/// calbridge and in the organizer's Exchange calendar, and syncing again changes nothing —
/// no update loop between the two.
async fn a_room_that_rewrites_subjects_causes_no_update_loop(p: Protocol) {
    const HALL: &str = "hall@fabrikam.example";
    let scenario = format!(
        "{SCENARIO}\n[[mailboxes]]\nemail = \"{HALL}\"\nname = \"Great Hall\"\nkind = \"room\"\nadd_organizer_to_subject = true\ndelete_subject = true\n"
    );
    let w = match p {
        Protocol::Graph => World::with(&scenario, calbridge_graph::client::GraphOptions::default(), None).await,
        Protocol::Ews => World::ews_with(&scenario, EwsAuth::Ntlm, calbridge_ews::EwsOptions::default(), None).await,
    };
    let org = w.link(ORGANIZER, CalendarKind::Person).await;
    let hall = w.link(HALL, CalendarKind::Room).await;
    let mut data = local_data("Board meeting", 6, 14);
    data.attendees = vec![Attendee {
        email: HALL.into(),
        name: "Great Hall".into(),
        role: AttendeeRole::Resource,
        response: ResponseStatus::None,
    }];
    let id = EventId::new("board-1");
    w.store.create_local_event(org.id, &id, &data).await.unwrap();
    for cal in [&org, &hall, &org, &hall] {
        w.sync_ok(cal).await;
    }
    let copy = w.local(&hall).await;
    assert_eq!(copy.len(), 1, "{copy:?}");
    assert_eq!(copy[0].data.subject, "Fabrikam Scheduler", "the room titles its copy with the organizer");
    let ours = w.store.event(&id).await.unwrap().unwrap();
    assert_eq!(ours.data.subject, "Board meeting");
    assert_eq!(BookingState::from_response(ours.data.resource_response(HALL).unwrap()), BookingState::Accepted);
    let remote_id = w.store.remote_id(&id).await.unwrap().unwrap();
    let in_exchange = w.sim.outlook().get_event(ORGANIZER, &w.graph_id(&remote_id)).unwrap();
    assert_eq!(in_exchange.subject.as_deref(), Some("Board meeting"), "the organizer's meeting keeps its subject");
    for cal in [&org, &hall] {
        let r = w.sync_ok(cal).await;
        assert_eq!((r.pushed.total(), r.pulled.total(), r.writes.total()), (0, 0, 0), "idle: {r:?}");
    }
}

both!(a_room_that_rewrites_subjects_causes_no_update_loop);

/// Class sessions over EWS: only a key change (date, time, time zone, location) re-sends the
/// meeting; any other change — a new agenda in the body — updates the organizer's meeting
/// silently, leaving attendees' copies as they were.
#[tokio::test]
async fn ews_only_key_changes_resend_the_meeting() {
    let w = World::on(Protocol::Ews).await;
    let org = w.link(ORGANIZER, CalendarKind::Person).await;
    let mut data = local_data("Excel level 2", 8, 9);
    data.body = "Agenda v1".into();
    data.attendees = vec![Attendee {
        email: ANN.into(),
        name: "Ann Lee".into(),
        role: AttendeeRole::Required,
        response: ResponseStatus::None,
    }];
    let id = EventId::new("class-1");
    w.store.create_local_event(org.id, &id, &data).await.unwrap();
    w.sync_ok(&org).await;
    let anns_copy = || {
        w.sim.outlook().list_events(ANN).unwrap().into_iter().find(|e| e.subject.as_deref() == Some("Excel level 2"))
    };
    let body = |e: &calbridge_sim::wire::Event| e.body.as_ref().and_then(|b| b.content.clone()).unwrap_or_default();
    assert!(body(&anns_copy().expect("Ann is invited")).contains("Agenda v1"));

    let ev = w.store.event(&id).await.unwrap().unwrap();
    let mut silent = ev.data.clone();
    silent.body = "Agenda v2".into();
    w.store.update_local_event(&id, &silent, Some(ev.version)).await.unwrap();
    assert_eq!(w.sync_ok(&org).await.pushed.updated, 1);
    let remote_id = w.store.remote_id(&id).await.unwrap().unwrap();
    let organizers = w.sim.outlook().get_event(ORGANIZER, &w.graph_id(&remote_id)).unwrap();
    assert!(body(&organizers).contains("Agenda v2"), "the organizer's meeting is updated");
    assert!(body(&anns_copy().unwrap()).contains("Agenda v1"), "but no update went out for a body change");

    let ev = w.store.event(&id).await.unwrap().unwrap();
    let mut moved = ev.data.clone();
    moved.start += Duration::hours(2);
    moved.end += Duration::hours(2);
    w.store.update_local_event(&id, &moved, Some(ev.version)).await.unwrap();
    assert_eq!(w.sync_ok(&org).await.pushed.updated, 1);
    let copy = anns_copy().unwrap();
    assert!(body(&copy).contains("Agenda v2"), "a new time re-sends the meeting, with its current agenda");
    let start = copy.start.as_ref().map(|s| s.date_time.clone()).unwrap_or_default();
    assert!(start.starts_with(&moved.start.format("%Y-%m-%dT%H:%M").to_string()), "{start} vs {}", moved.start);
}

/// A series arrives as its instances over both protocols (EWS expands the master it is given):
/// each occurrence with its master's id and original start. An occurrence deleted in Outlook
/// goes at the next (incremental) sync, a changed one is updated in place, and cancelling the
/// series removes every instance.
async fn series_arrive_as_their_instances(p: Protocol) {
    let w = World::on(p).await;
    let start = at(1, 9);
    let series_id = w.sim.outlook().create_event(ANN, weekly_series("Weekly lab", start, 1, 6)).unwrap();
    let cal = w.link(ANN, CalendarKind::Person).await;
    w.sync_ok(&cal).await;
    let labs = |events: Vec<Event>| -> Vec<Event> {
        let mut v: Vec<Event> = events.into_iter().filter(|e| e.data.subject.starts_with("Weekly lab")).collect();
        v.sort_by_key(|e| e.data.start);
        v
    };
    let pulled = labs(w.local(&cal).await);
    assert_eq!(pulled.len(), 6, "six occurrences, no master: {pulled:?}");
    let master_id = pulled[0].data.series.master_id.clone().expect("the master's id");
    for (k, e) in pulled.iter().enumerate() {
        assert_eq!(e.data.series.kind, SeriesKind::Occurrence);
        assert_eq!(e.data.series.master_id.as_deref(), Some(master_id.as_str()));
        assert_eq!(e.data.start, start + Duration::weeks(k as i64));
        assert_eq!(e.data.series.original_start, Some(e.data.start));
    }

    let instances = w.sim.outlook().list_instances(ANN, start, start + Duration::weeks(7)).unwrap();
    w.sim.outlook().delete_event(ANN, instances[1].id.as_deref().unwrap()).unwrap();
    w.sim
        .outlook()
        .update_event(ANN, instances[3].id.as_deref().unwrap(), json!({"subject": "Weekly lab (guest talk)"}))
        .unwrap();
    let r = w.sync_ok(&cal).await;
    assert!(!r.full_listing, "an incremental sync");
    let after = labs(w.local(&cal).await);
    assert_eq!(after.len(), 5, "the deleted occurrence is gone: {after:?}");
    assert!(after.iter().all(|e| e.data.start != start + Duration::weeks(1)));
    let talk = after.iter().find(|e| e.data.start == start + Duration::weeks(3)).unwrap();
    assert_eq!((talk.data.subject.as_str(), talk.data.series.kind), ("Weekly lab (guest talk)", SeriesKind::Exception));
    let same = pulled.iter().find(|e| e.data.start == talk.data.start).unwrap();
    assert_eq!(talk.id, same.id, "the changed occurrence is updated in place, not replaced");
    assert_eq!(w.sync_ok(&cal).await.writes.total(), 0, "then idle");

    w.sim.outlook().delete_event(ANN, &series_id).unwrap();
    w.sync_ok(&cal).await;
    assert!(labs(w.local(&cal).await).is_empty(), "cancelling the series removes its instances");
}
both!(series_arrive_as_their_instances);
