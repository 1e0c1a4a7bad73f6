//! calendarView/delta: initial round across pages, incremental rounds with upserts and
//! `@removed`, 410 syncStateNotFound, and tokens surviving save/load.

mod common;

use std::collections::BTreeMap;

use calbridge_sim::{NewEvent, Simulator};
use common::*;
use serde_json::{json, Value};

fn by_id(items: &[Value]) -> BTreeMap<String, Value> {
    items.iter().map(|v| (v["id"].as_str().unwrap().to_string(), v.clone())).collect()
}

fn first_url(days: i64) -> String {
    format!(
        "/users/ann@test.example/calendarView/delta?startDateTime={}&endDateTime={}",
        at(-1, 0).format("%Y-%m-%dT%H:%M:%SZ"),
        at(days, 0).format("%Y-%m-%dT%H:%M:%SZ")
    )
}

#[tokio::test]
async fn initial_round_then_changes_then_removed() {
    let env = Env::new().await;
    let outlook = env.sim.outlook();
    let mut ids = Vec::new();
    for i in 0..7 {
        ids.push(
            outlook.create_event("ann@test.example", NewEvent::new(format!("E{i}"), at(i, 9), at(i, 10))).unwrap(),
        );
    }
    // Outside the range: not listed.
    outlook.create_event("ann@test.example", NewEvent::new("Far", at(200, 9), at(200, 10))).unwrap();

    let (items, delta_link, pages) = env.delta_round(&first_url(30), 3).await;
    assert_eq!(pages, 3);
    assert_eq!(items.len(), 7);
    assert!(items.iter().all(|v| v["@odata.type"] == "#microsoft.graph.event" && v.get("@removed").is_none()));
    let parsed: Vec<calbridge_sim::wire::Event> =
        items.iter().map(|v| serde_json::from_value(v.clone()).unwrap()).collect();
    assert!(parsed.iter().all(|e| e.change_key.is_some() && e.odata_etag.is_some()));

    // An idle round is empty.
    let r = env.get(&delta_link).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["value"].as_array().unwrap().len(), 0);
    let delta_link = body["@odata.deltaLink"].as_str().unwrap().to_string();

    // Changes in Outlook: create, update, delete, move out of range.
    let new_id = outlook.create_event("ann@test.example", NewEvent::new("New", at(5, 14), at(5, 15))).unwrap();
    outlook.update_event("ann@test.example", &ids[1], json!({"subject": "Renamed"})).unwrap();
    outlook.delete_event("ann@test.example", &ids[2]).unwrap();
    outlook
        .update_event(
            "ann@test.example",
            &ids[3],
            json!({"start": graph_time(at(300, 9)), "end": graph_time(at(300, 10))}),
        )
        .unwrap();

    let (items, next_delta, _) = env.delta_round(&delta_link, 2).await;
    let got = by_id(&items);
    assert_eq!(got.len(), 4, "{items:#?}");
    assert_eq!(got[&new_id]["subject"], "New");
    assert_eq!(got[&ids[1]]["subject"], "Renamed");
    assert_eq!(got[&ids[2]]["@removed"]["reason"], "deleted");
    assert_eq!(got[&ids[3]]["@removed"]["reason"], "deleted");
    let removed: calbridge_sim::wire::Event = serde_json::from_value(got[&ids[2]].clone()).unwrap();
    assert_eq!(removed.removed.unwrap().reason.as_deref(), Some("deleted"));

    // Over Graph too: a created and a deleted event show up in the next round.
    let created = env.create("ann@test.example", meeting("Via Graph", at(2, 11), at(2, 12), &[])).await;
    let (items, _, _) = env.delta_round(&next_delta, 100).await;
    let got = by_id(&items);
    assert_eq!(got.len(), 1);
    assert!(got.contains_key(created["id"].as_str().unwrap()));
}

#[tokio::test]
async fn bad_or_expired_tokens_are_410_sync_state_not_found() {
    let env = Env::new().await;
    env.sim.outlook().create_event("ann@test.example", NewEvent::new("A", at(1, 9), at(1, 10))).unwrap();
    let (_, delta_link, _) = env.delta_round(&first_url(10), 10).await;
    let base = delta_link.split("$deltatoken=").next().unwrap().to_string();
    for bad in ["garbage", "eyJ4IjoxfQ.AAAA", ""] {
        let r = env.get(&format!("{base}$deltatoken={bad}")).send().await.unwrap();
        assert_eq!(r.status(), 410, "{bad}");
        let body: calbridge_sim::wire::ODataError = r.json().await.unwrap();
        assert_eq!(body.error.code, "syncStateNotFound");
    }
    // A token of another simulator (same scenario) is refused.
    let other = Env::new().await;
    let (_, other_link, _) = other.delta_round(&first_url(10), 10).await;
    let token = other_link.split("$deltatoken=").nth(1).unwrap();
    let r = env.get(&format!("{base}$deltatoken={token}")).send().await.unwrap();
    assert_eq!(r.status(), 410);
    // A token for another mailbox is refused.
    let r = env.get(&delta_link.replace("/users/ann@test.example/", "/users/bob@test.example/")).send().await.unwrap();
    assert_eq!(r.status(), 410);
    // Still valid, then expired by fault injection (skip tokens too).
    assert_eq!(env.get(&delta_link).send().await.unwrap().status(), 200);
    for i in 0..3 {
        env.sim
            .outlook()
            .create_event("ann@test.example", NewEvent::new(format!("B{i}"), at(2, 9 + i), at(2, 10 + i)))
            .unwrap();
    }
    let r = env.get(&first_url(10)).header("Prefer", "odata.maxpagesize=1").send().await.unwrap();
    let first: Value = r.json().await.unwrap();
    let skip_link = first["@odata.nextLink"].as_str().unwrap().to_string();
    env.sim.faults().expire_delta_tokens();
    assert_eq!(env.get(&delta_link).send().await.unwrap().status(), 410);
    assert_eq!(env.get(&skip_link).send().await.unwrap().status(), 410);
    // A fresh round works again.
    let (items, _, _) = env.delta_round(&first_url(10), 10).await;
    assert_eq!(items.len(), 4);
}

#[tokio::test]
async fn delta_link_survives_save_and_load() {
    let env = Env::new().await;
    let outlook = env.sim.outlook();
    let keep = outlook.create_event("ann@test.example", NewEvent::new("Keep", at(1, 9), at(1, 10))).unwrap();
    let gone = outlook.create_event("ann@test.example", NewEvent::new("Gone", at(2, 9), at(2, 10))).unwrap();
    let (items, delta_link, _) = env.delta_round(&first_url(10), 10).await;
    assert_eq!(items.len(), 2);
    let dir = std::env::temp_dir().join(format!("calbridge-sim-test-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("state.sim.json");
    env.sim.save_state(&path).unwrap();
    let token = env.token.clone();
    env.run.stop().await;

    let loaded = Simulator::load_state(&path).unwrap();
    loaded.outlook().delete_event("ann@test.example", &gone).unwrap();
    loaded.outlook().update_event("ann@test.example", &keep, json!({"subject": "Kept"})).unwrap();
    let mut env2 = Env::serve(loaded).await;
    // The old access token is still valid too (same signing key).
    env2.token = token;
    let port_old = delta_link.split(':').nth(2).unwrap().split('/').next().unwrap().to_string();
    let port_new = env2.run.addr.port().to_string();
    let link = delta_link.replace(&format!(":{port_old}/"), &format!(":{port_new}/"));
    let (items, _, _) = env2.delta_round(&link, 10).await;
    let got = by_id(&items);
    assert_eq!(got.len(), 2, "{items:#?}");
    assert_eq!(got[&keep]["subject"], "Kept");
    assert!(got[&gone].get("@removed").is_some());
    // The same ids keep being issued after a reload (the counters are saved).
    let next =
        env2.sim.outlook().create_event("ann@test.example", NewEvent::new("After", at(3, 9), at(3, 10))).unwrap();
    assert_ne!(next, keep);
    assert_ne!(next, gone);
    std::fs::remove_dir_all(&dir).ok();
}

#[tokio::test]
async fn recurring_series_delta_reports_occurrences() {
    let env = Env::new().await;
    let mut body = meeting("Daily standup", at(1, 8), at(1, 9), &[]);
    body["recurrence"] = json!({
        "pattern": {"type": "daily", "interval": 1},
        "range": {"type": "numbered", "numberOfOccurrences": 4, "startDate": at(1, 8).format("%Y-%m-%d").to_string()}
    });
    let master = env.create("ann@test.example", body).await;
    let (items, link, _) = env.delta_round(&first_url(10), 10).await;
    assert_eq!(items.len(), 4);
    assert!(items.iter().all(|i| i["type"] == "occurrence" && i["seriesMasterId"] == master["id"]));
    // Shorten the series: the dropped occurrences are reported removed.
    let r = env
        .patch(
            &format!("/users/ann@test.example/events/{}", master["id"].as_str().unwrap()),
            &json!({"recurrence": {"pattern": {"type": "daily", "interval": 1}, "range": {"type": "numbered", "numberOfOccurrences": 2, "startDate": at(1, 8).format("%Y-%m-%d").to_string()}}}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let (items, _, _) = env.delta_round(&link, 10).await;
    let removed = items.iter().filter(|i| i.get("@removed").is_some()).count();
    let upserted = items.iter().filter(|i| i["type"] == "occurrence").count();
    assert_eq!((upserted, removed), (2, 2), "{items:#?}");
}
