//! Users, calendars, events (create/get/patch/delete, etags, transactionId, extended
//! properties) and calendarView.

mod common;

use calbridge_sim::wire;
use common::*;
use serde_json::{json, Value};

#[tokio::test]
async fn user_get_by_upn_and_id_with_select_and_404() {
    let env = Env::new().await;
    let (s, u) = env.get_json("/users/Ann@Test.Example").await;
    assert_eq!(s, 200);
    let user: wire::User = serde_json::from_value(u.clone()).unwrap();
    assert_eq!(user.display_name.as_deref(), Some("Ann Archer"));
    assert_eq!(user.mail.as_deref(), Some("ann@test.example"));
    assert_eq!(user.job_title.as_deref(), Some("Instructor"));
    let id = user.id.unwrap();
    let (s, by_id) = env.get_json(&format!("/users/{id}")).await;
    assert_eq!(s, 200);
    assert_eq!(by_id["userPrincipalName"], "ann@test.example");
    let (_, sel) = env.get_json("/users/ann@test.example?$select=displayName,mail").await;
    let keys: Vec<&String> = sel.as_object().unwrap().keys().filter(|k| !k.starts_with('@')).collect();
    assert_eq!(keys, vec!["displayName", "mail"]);
    assert!(sel["@odata.context"].as_str().unwrap().ends_with("$metadata#users(displayName,mail)/$entity"));
    let (s, e) = env.get_json("/users/nobody@test.example").await;
    assert_eq!(s, 404);
    assert_eq!(e["error"]["code"], "Request_ResourceNotFound");
    let (s, e) = env.get_json("/users/nobody@test.example/calendarView?startDateTime=2026-01-01T00:00:00Z&endDateTime=2026-01-02T00:00:00Z").await;
    assert_eq!(s, 404, "{e}");
    let (s, cals) = env.get_json("/users/ann@test.example/calendars").await;
    assert_eq!(s, 200);
    let cals: wire::Collection<wire::Calendar> = serde_json::from_value(cals).unwrap();
    assert_eq!(cals.value.len(), 1);
    assert_eq!(cals.value[0].is_default_calendar, Some(true));
    let (s, cal) = env.get_json("/users/ann@test.example/calendar").await;
    assert_eq!(s, 200);
    assert_eq!(cal["id"], cals.value[0].id.clone().unwrap());
    // app-only tokens cannot use /me
    let (s, _) = env.get_json("/me/events").await;
    assert_eq!(s, 400);
}

#[tokio::test]
async fn event_create_get_patch_delete_with_etags() {
    let env = Env::new().await;
    let body = json!({
        "subject": "Let's go for lunch",
        "body": {"contentType": "HTML", "content": "Does late morning work for you?"},
        "start": {"dateTime": "2030-04-15T12:00:00", "timeZone": "Pacific Standard Time"},
        "end": {"dateTime": "2030-04-15T14:00:00", "timeZone": "Pacific Standard Time"},
        "location": {"displayName": "Harry's Bar"},
        "attendees": [{"emailAddress": {"address": "samanthab@contoso.onmicrosoft.com", "name": "Samantha Booth"}, "type": "required"}],
        "singleValueExtendedProperties": [{"id": wire::PROVENANCE_PROPERTY_ID, "value": "calbridge:test:42"}]
    });
    let r = env
        .post("/users/ann@test.example/calendar/events", &body)
        .header("Prefer", "outlook.timezone=\"Pacific Standard Time\"")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let location = r.headers()["location"].to_str().unwrap().to_string();
    assert_eq!(r.headers()["preference-applied"], "outlook.timezone=\"Pacific Standard Time\"");
    let created: Value = r.json().await.unwrap();
    let ev: wire::Event = serde_json::from_value(created.clone()).unwrap();
    let id = ev.id.clone().unwrap();
    assert!(location.contains(&id), "{location}");
    assert!(id.starts_with("AAMkA"));
    assert_eq!(ev.start.as_ref().unwrap().date_time, "2030-04-15T12:00:00.0000000");
    assert_eq!(ev.start.as_ref().unwrap().time_zone.as_deref(), Some("Pacific Standard Time"));
    assert_eq!(ev.original_start_time_zone.as_deref(), Some("Pacific Standard Time"));
    assert_eq!(ev.kind.as_deref(), Some("singleInstance"));
    assert_eq!(ev.odata_etag, Some(format!("W/\"{}\"", ev.change_key.clone().unwrap())));
    assert_eq!(ev.response_status.as_ref().unwrap().response.as_deref(), Some("organizer"));
    assert_eq!(ev.attendees.as_ref().unwrap()[0].status.as_ref().unwrap().response.as_deref(), Some("none"));
    assert_eq!(ev.body_preview.as_deref(), Some("Does late morning work for you?"));
    assert!(ev.single_value_extended_properties.is_none(), "only returned when expanded");
    assert!(created["@odata.context"].as_str().unwrap().contains("/events/$entity"));

    // GET: UTC by default; extended properties only with $expand.
    let (s, got) = env.get_json(&format!("/users/ann@test.example/events/{id}")).await;
    assert_eq!(s, 200);
    assert_eq!(got["start"]["dateTime"], "2030-04-15T19:00:00.0000000");
    assert_eq!(got["start"]["timeZone"], "UTC");
    assert!(got.get("singleValueExtendedProperties").is_none());
    let filter = format!("singleValueExtendedProperties($filter=id eq '{}')", wire::PROVENANCE_PROPERTY_ID);
    let r = env
        .get(&format!("/users/ann@test.example/events/{id}"))
        .query(&[("$expand", filter.as_str())])
        .send()
        .await
        .unwrap();
    let expanded: wire::Event = r.json().await.unwrap();
    let props = expanded.single_value_extended_properties.unwrap();
    assert_eq!(props.len(), 1);
    assert_eq!(props[0].value.as_deref(), Some("calbridge:test:42"));
    let r = env
        .get(&format!("/users/ann@test.example/events/{id}"))
        .query(&[("$select", "subject,start")])
        .send()
        .await
        .unwrap();
    let sel: Value = r.json().await.unwrap();
    assert!(
        sel.get("subject").is_some()
            && sel.get("start").is_some()
            && sel.get("end").is_none()
            && sel.get("id").is_some()
    );

    // PATCH with the current etag works and bumps changeKey/etag/lastModified.
    let etag = ev.odata_etag.clone().unwrap();
    let r = env
        .patch(&format!("/users/ann@test.example/events/{id}"), &json!({"subject": "Let's go brunch"}))
        .header("If-Match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let patched: wire::Event = r.json().await.unwrap();
    assert_eq!(patched.subject.as_deref(), Some("Let's go brunch"));
    assert_ne!(patched.change_key, ev.change_key);
    assert_ne!(patched.odata_etag.as_deref(), Some(etag.as_str()));
    assert_eq!(patched.location.unwrap().display_name.as_deref(), Some("Harry's Bar"), "untouched properties stay");
    // ... and with the stale one is 412.
    let r = env
        .patch(&format!("/users/ann@test.example/events/{id}"), &json!({"subject": "Lost update"}))
        .header("If-Match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 412);
    let err: wire::ODataError = r.json().await.unwrap();
    assert_eq!(err.error.code, "ErrorIrresolvableConflict");
    // A misspelt property is rejected like Graph does.
    let r = env.patch(&format!("/users/ann@test.example/events/{id}"), &json!({"subjekt": "x"})).send().await.unwrap();
    assert_eq!(r.status(), 400);
    let r =
        env.patch(&format!("/users/ann@test.example/events/{id}"), &json!({"showAs": "busyy"})).send().await.unwrap();
    assert_eq!(r.status(), 400);
    let err: Value = r.json().await.unwrap();
    assert!(err["error"]["message"].as_str().unwrap().contains("freeBusyStatus"));

    // DELETE, then 404.
    let r = env.delete(&format!("/users/ann@test.example/events/{id}")).send().await.unwrap();
    assert_eq!(r.status(), 204);
    let r = env.delete(&format!("/users/ann@test.example/events/{id}")).send().await.unwrap();
    assert_eq!(r.status(), 404);
    let err: wire::ODataError = r.json().await.unwrap();
    assert_eq!(err.error.code, "ErrorItemNotFound");
    let (s, _) = env.get_json(&format!("/users/ann@test.example/events/{id}")).await;
    assert_eq!(s, 404);
}

#[tokio::test]
async fn transaction_id_deduplicates_creates() {
    let env = Env::new().await;
    let mut body = meeting("Idempotent", at(2, 9), at(2, 10), &[]);
    body["transactionId"] = json!("7E163156-7762-4BEB-A1C6-729EA81755A7");
    let a = env.create("bob@test.example", body.clone()).await;
    let b = env.create("bob@test.example", body.clone()).await;
    assert_eq!(a["id"], b["id"]);
    assert_eq!(a["transactionId"], "7E163156-7762-4BEB-A1C6-729EA81755A7");
    let events = env.sim.outlook().list_events("bob@test.example").unwrap();
    assert_eq!(events.len(), 1);
    // Another mailbox is another scope.
    let c = env.create("ann@test.example", body).await;
    assert_ne!(a["id"], c["id"]);
}

#[tokio::test]
async fn ids_are_deterministic_for_the_same_scenario() {
    let a = Env::new().await;
    let b = Env::new().await;
    let x = a.create("bob@test.example", meeting("x", at(1, 9), at(1, 10), &[])).await;
    let y = b.create("bob@test.example", meeting("y", at(1, 9), at(1, 10), &[])).await;
    assert_eq!(x["id"], y["id"]);
    assert_eq!(x["iCalUId"], y["iCalUId"]);
}

#[tokio::test]
async fn calendar_view_pages_sorts_and_converts_time_zones() {
    let env = Env::new().await;
    let outlook = env.sim.outlook();
    for i in 0..13 {
        outlook
            .create_event(
                "bob@test.example",
                calbridge_sim::NewEvent::new(
                    format!("E{i:02}"),
                    at(3, 8) + chrono::Duration::hours(12 - i),
                    at(3, 9) + chrono::Duration::hours(12 - i),
                ),
            )
            .unwrap();
    }
    // A weekly series with 5 occurrences.
    let mut series = meeting("Weekly", at(1, 7), at(1, 8), &[]);
    series["recurrence"] = json!({
        "pattern": {"type": "weekly", "interval": 1},
        "range": {"type": "numbered", "numberOfOccurrences": 5, "startDate": at(1, 7).format("%Y-%m-%d").to_string()}
    });
    let wd = match chrono::Datelike::weekday(&at(1, 7)) {
        chrono::Weekday::Mon => "monday",
        chrono::Weekday::Tue => "tuesday",
        chrono::Weekday::Wed => "wednesday",
        chrono::Weekday::Thu => "thursday",
        chrono::Weekday::Fri => "friday",
        chrono::Weekday::Sat => "saturday",
        chrono::Weekday::Sun => "sunday",
    };
    series["recurrence"]["pattern"]["daysOfWeek"] = json!([wd]);
    let master = env.create("bob@test.example", series).await;
    assert_eq!(master["type"], "seriesMaster");
    let start = at(0, 0).format("%Y-%m-%dT%H:%M:%SZ").to_string();
    let end = at(60, 0).format("%Y-%m-%dT%H:%M:%SZ").to_string();

    // Missing parameters.
    let (s, e) = env.get_json("/users/bob@test.example/calendarView").await;
    assert_eq!(s, 400);
    assert_eq!(e["error"]["code"], "ErrorInvalidParameter");

    let mut url = env.url(&format!("/users/bob@test.example/calendarView?startDateTime={start}&endDateTime={end}"));
    let mut all = Vec::new();
    let mut pages = 0;
    loop {
        let r = env
            .http
            .get(&url)
            .bearer_auth(&env.token)
            .header("Prefer", "outlook.timezone=\"W. Europe Standard Time\"")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(r.headers()["preference-applied"], "outlook.timezone=\"W. Europe Standard Time\"");
        let page: wire::Collection<wire::Event> = r.json().await.unwrap();
        pages += 1;
        assert!(page.value.len() <= 10);
        all.extend(page.value);
        match page.next_link {
            Some(next) => {
                assert!(next.starts_with("http://127.0.0.1:") && next.contains("$skip="), "{next}");
                url = next;
            }
            None => break,
        }
    }
    assert_eq!(pages, 2);
    assert_eq!(all.len(), 18);
    assert!(all.iter().all(|e| e.start.as_ref().unwrap().time_zone.as_deref() == Some("W. Europe Standard Time")));
    let starts: Vec<String> = all.iter().map(|e| e.start.as_ref().unwrap().date_time.clone()).collect();
    let mut sorted = starts.clone();
    sorted.sort();
    assert_eq!(starts, sorted, "sorted by start");
    let occurrences: Vec<&wire::Event> = all.iter().filter(|e| e.kind.as_deref() == Some("occurrence")).collect();
    assert_eq!(occurrences.len(), 5);
    assert!(occurrences.iter().all(|o| o.series_master_id == master["id"].as_str().map(String::from)));
    let ids: std::collections::BTreeSet<_> = occurrences.iter().map(|o| o.id.clone()).collect();
    assert_eq!(ids.len(), 5, "occurrence ids differ");
    // An occurrence can be fetched, patched into an exception and cancelled.
    let occ_id = occurrences[1].id.clone().unwrap();
    let (s, occ) = env.get_json(&format!("/users/bob@test.example/events/{occ_id}")).await;
    assert_eq!(s, 200);
    assert_eq!(occ["type"], "occurrence");
    let r = env
        .patch(&format!("/users/bob@test.example/events/{occ_id}"), &json!({"subject": "Moved"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let exc: Value = r.json().await.unwrap();
    assert_eq!(exc["type"], "exception");
    assert_eq!(exc["subject"], "Moved");
    let r = env
        .delete(&format!("/users/bob@test.example/events/{}", occurrences[2].id.clone().unwrap()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);

    // $top sets the page size; UTC without Prefer.
    let r = env
        .get(&format!("/users/bob@test.example/calendarView?startDateTime={start}&endDateTime={end}&$top=4"))
        .send()
        .await
        .unwrap();
    assert!(r.headers().get("preference-applied").is_none());
    let page: wire::Collection<wire::Event> = r.json().await.unwrap();
    assert_eq!(page.value.len(), 4);
    assert_eq!(page.value[0].start.as_ref().unwrap().time_zone.as_deref(), Some("UTC"));
    assert!(page.next_link.unwrap().contains("$top=4"));
    // Prefer: odata.maxpagesize also works.
    let r = env
        .get(&format!("/users/bob@test.example/calendarView?startDateTime={start}&endDateTime={end}"))
        .header("Prefer", "odata.maxpagesize=3")
        .send()
        .await
        .unwrap();
    let page: wire::Collection<wire::Event> = r.json().await.unwrap();
    assert_eq!(page.value.len(), 3);
    // After cancelling one occurrence there are 17 instances.
    let r = env
        .get(&format!("/users/bob@test.example/calendarView?startDateTime={start}&endDateTime={end}&$top=100"))
        .send()
        .await
        .unwrap();
    let page: wire::Collection<wire::Event> = r.json().await.unwrap();
    assert_eq!(page.value.len(), 17);
    assert!(page.value.iter().any(|e| e.kind.as_deref() == Some("exception") && e.subject.as_deref() == Some("Moved")));
}
