//! Meetings: attendee copies, room/equipment processing (accept, conflict, window, duration),
//! answers on the organizer's event, cancellation; and getSchedule.

mod common;

use calbridge_sim::wire;
use common::*;
use serde_json::{json, Value};

fn response_of(ev: &Value, address: &str) -> String {
    ev["attendees"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["emailAddress"]["address"].as_str().unwrap().eq_ignore_ascii_case(address))
        .map(|a| a["status"]["response"].as_str().unwrap().to_string())
        .unwrap()
}

#[tokio::test]
async fn room_accepts_then_declines_a_conflict_and_copies_follow() {
    let env = Env::new().await;
    let first = env
        .create(
            "ann@test.example",
            meeting(
                "Course A",
                at(3, 9),
                at(3, 11),
                &[("room1@test.example", "resource"), ("bob@test.example", "required")],
            ),
        )
        .await;
    // The POST answer itself still shows `none`, as Exchange's does.
    assert_eq!(response_of(&first, "room1@test.example"), "none");
    let id = first["id"].as_str().unwrap();
    let (_, now) = env.get_json(&format!("/users/ann@test.example/events/{id}")).await;
    assert_eq!(response_of(&now, "room1@test.example"), "accepted");
    assert_eq!(response_of(&now, "bob@test.example"), "none");
    assert_ne!(now["changeKey"], first["changeKey"], "the answer bumps the organizer's changeKey");

    // The room and Bob have copies with the same iCalUId.
    let room = env.sim.outlook().list_events("room1@test.example").unwrap();
    assert_eq!(room.len(), 1);
    assert_eq!(room[0].i_cal_u_id, first["iCalUId"].as_str().map(String::from));
    assert_eq!(room[0].show_as.as_deref(), Some("busy"));
    let bob = env.sim.outlook().list_events("bob@test.example").unwrap();
    assert_eq!(bob.len(), 1);
    assert_eq!(bob[0].response_status.as_ref().unwrap().response.as_deref(), Some("notResponded"));
    assert_eq!(bob[0].is_organizer, Some(false));

    // An overlapping request for the same room is declined; no copy.
    let second = env
        .create("bob@test.example", meeting("Course B", at(3, 10), at(3, 12), &[("room1@test.example", "resource")]))
        .await;
    let (_, second) = env.get_json(&format!("/users/bob@test.example/events/{}", second["id"].as_str().unwrap())).await;
    assert_eq!(response_of(&second, "room1@test.example"), "declined");
    assert_eq!(env.sim.outlook().list_events("room1@test.example").unwrap().len(), 1);

    // Moving the first meeting away frees the room (copy moves, still accepted).
    let r = env
        .patch(
            &format!("/users/ann@test.example/events/{id}"),
            &json!({"start": graph_time(at(4, 9)), "end": graph_time(at(4, 10))}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let (_, moved) = env.get_json(&format!("/users/ann@test.example/events/{id}")).await;
    assert_eq!(response_of(&moved, "room1@test.example"), "accepted");
    let room = env.sim.outlook().list_events("room1@test.example").unwrap();
    assert_eq!(room.len(), 1);
    assert!(room[0].start.as_ref().unwrap().date_time.starts_with(&at(4, 9).format("%Y-%m-%dT09:00:00").to_string()));

    // Deleting the organizer's event removes every copy.
    assert_eq!(env.delete(&format!("/users/ann@test.example/events/{id}")).send().await.unwrap().status(), 204);
    assert!(env.sim.outlook().list_events("room1@test.example").unwrap().is_empty());
    assert!(env
        .sim
        .outlook()
        .list_events("bob@test.example")
        .unwrap()
        .iter()
        .all(|e| e.subject.as_deref() != Some("Course A")));
}

#[tokio::test]
async fn resources_decline_too_long_and_beyond_the_window_and_manual_rooms_stay_pending() {
    let env = Env::new().await;
    let long = env
        .create("ann@test.example", meeting("Workshop", at(5, 8), at(5, 12), &[("projector@test.example", "resource")]))
        .await;
    let far = env
        .create("ann@test.example", meeting("Far away", at(60, 9), at(60, 10), &[("room2@test.example", "resource")]))
        .await;
    let manual = env
        .create("ann@test.example", meeting("Manual", at(6, 9), at(6, 10), &[("manual-room@test.example", "resource")]))
        .await;
    let ok = env
        .create("ann@test.example", meeting("Short", at(7, 9), at(7, 10), &[("projector@test.example", "resource")]))
        .await;
    let get = |id: &Value| format!("/users/ann@test.example/events/{}", id["id"].as_str().unwrap());
    assert_eq!(response_of(&env.get_json(&get(&long)).await.1, "projector@test.example"), "declined");
    assert_eq!(response_of(&env.get_json(&get(&far)).await.1, "room2@test.example"), "declined");
    assert_eq!(response_of(&env.get_json(&get(&manual)).await.1, "manual-room@test.example"), "none");
    assert_eq!(response_of(&env.get_json(&get(&ok)).await.1, "projector@test.example"), "accepted");
    let pending = env.sim.outlook().list_events("manual-room@test.example").unwrap();
    assert_eq!(pending.len(), 1);
    assert_eq!(pending[0].show_as.as_deref(), Some("tentative"));
}

#[tokio::test]
async fn attendee_answer_in_outlook_reaches_the_organizer() {
    let env = Env::new().await;
    let m = env
        .create("ann@test.example", meeting("Sync", at(2, 13), at(2, 14), &[("bob@test.example", "required")]))
        .await;
    let copy = env.sim.outlook().list_events("bob@test.example").unwrap().remove(0);
    env.sim.outlook().respond("bob@test.example", copy.id.as_deref().unwrap(), "tentativelyAccepted").unwrap();
    let (_, ev) = env.get_json(&format!("/users/ann@test.example/events/{}", m["id"].as_str().unwrap())).await;
    assert_eq!(response_of(&ev, "bob@test.example"), "tentativelyAccepted");
}

#[tokio::test]
async fn get_schedule_reports_availability_items_and_unknown_addresses() {
    let env = Env::new().await;
    let o = env.sim.outlook();
    o.create_event("ann@test.example", calbridge_sim::NewEvent::new("Busy thing", at(2, 10), at(2, 11))).unwrap();
    o.create_event(
        "ann@test.example",
        calbridge_sim::NewEvent::new("Maybe", at(2, 12), at(2, 13)).with_show_as("tentative"),
    )
    .unwrap();
    let mut private = calbridge_sim::NewEvent::new("Secret", at(2, 14), at(2, 15)).with_show_as("oof");
    private.sensitivity = Some("private".into());
    private.location = Some("Clinic".into());
    o.create_event("ann@test.example", private).unwrap();
    let body = json!({
        "schedules": ["ann@test.example", "room1@test.example", "nobody@elsewhere.example"],
        "startTime": {"dateTime": at(2, 9).format("%Y-%m-%dT%H:%M:%S").to_string(), "timeZone": "UTC"},
        "endTime": {"dateTime": at(2, 16).format("%Y-%m-%dT%H:%M:%S").to_string(), "timeZone": "UTC"},
        "availabilityViewInterval": 60
    });
    let r = env.post("/users/ann@test.example/calendar/getSchedule", &body).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let page: wire::Collection<wire::ScheduleInformation> = r.json().await.unwrap();
    assert_eq!(page.value.len(), 3);
    let ann = &page.value[0];
    assert_eq!(ann.schedule_id.as_deref(), Some("ann@test.example"));
    assert_eq!(ann.availability_view.as_deref(), Some("0201030"));
    let items = ann.schedule_items.as_ref().unwrap();
    assert_eq!(items.len(), 3);
    assert_eq!(items[0].subject.as_deref(), Some("Busy thing"));
    assert_eq!(items[2].is_private, Some(true));
    assert_eq!(items[2].subject, None);
    assert_eq!(items[2].location, None);
    assert_eq!(items[2].status.as_deref(), Some("oof"));
    assert!(ann.working_hours.as_ref().unwrap()["daysOfWeek"].is_array());
    assert_eq!(page.value[1].availability_view.as_deref(), Some("0000000"));
    let unknown = &page.value[2];
    assert!(unknown.error.as_ref().unwrap().response_code.is_some());
}
