//! Microsoft's documented responses fit the wire types, and what the simulator serves uses
//! only property names Graph's CSDL defines.
//!
//! Reads `$CALBRIDGE_PROTOCOL_DIR` (default `../../../shared/protocol` from this crate);
//! when it is absent the tests print "skipped: ..." and pass.

mod common;

use std::collections::BTreeSet;
use std::path::PathBuf;

use calbridge_sim::wire;
use common::*;
use serde_json::Value;

/// The JSON body of an `NN-response.http` file (status line and headers stripped), if any.
fn body_of(text: &str) -> Option<Value> {
    let text = text.replace("\r\n", "\n");
    let body = match text.split_once("\n\n") {
        Some((head, body)) if head.starts_with("HTTP/") => body,
        _ => text.as_str(),
    };
    serde_json::from_str(body.trim()).ok()
}

#[test]
fn documented_responses_parse_into_the_wire_types() {
    let Some(dir) = protocol_dir() else { return };
    let examples = dir.join("graph/examples");
    let mut parsed = 0;
    for page in [
        "user-list-calendarview",
        "event-delta",
        "delta-query-events",
        "event-get",
        "user-post-events",
        "calendar-getschedule",
    ] {
        let mut files: Vec<PathBuf> = std::fs::read_dir(examples.join(page))
            .unwrap_or_else(|e| panic!("{page}: {e}"))
            .map(|e| e.unwrap().path())
            .filter(|p| p.to_string_lossy().ends_with("-response.http"))
            .collect();
        files.sort();
        for file in files {
            let text = std::fs::read_to_string(&file).unwrap();
            let Some(body) = body_of(&text) else {
                println!("not JSON, skipped: {}", file.display());
                continue;
            };
            let what = file.display().to_string();
            match page {
                "calendar-getschedule" => {
                    let c: wire::Collection<wire::ScheduleInformation> =
                        serde_json::from_value(body).unwrap_or_else(|e| panic!("{what}: {e}"));
                    assert!(!c.value.is_empty(), "{what}");
                    assert!(c.value.iter().all(|s| s.availability_view.is_some()), "{what}");
                }
                _ if body.get("value").is_some() => {
                    let c: wire::Collection<wire::Event> =
                        serde_json::from_value(body).unwrap_or_else(|e| panic!("{what}: {e}"));
                    assert!(!c.value.is_empty(), "{what}");
                    if page == "delta-query-events" {
                        assert!(c.next_link.is_some() ^ c.delta_link.is_some(), "{what}");
                    }
                }
                _ => {
                    let e: wire::Event = serde_json::from_value(body).unwrap_or_else(|e| panic!("{what}: {e}"));
                    assert!(e.id.is_some() || e.subject.is_some(), "{what}");
                }
            }
            parsed += 1;
        }
    }
    assert!(parsed >= 10, "only {parsed} documented responses found");
    // The removed-item shape of delta-query-events/04.
    let text = std::fs::read_to_string(examples.join("delta-query-events/04-response.http")).unwrap();
    let c: wire::Collection<wire::Event> = serde_json::from_value(body_of(&text).unwrap()).unwrap();
    assert_eq!(c.value[0].removed.as_ref().unwrap().reason.as_deref(), Some("deleted"));
}

/// Property names of an EntityType/ComplexType in the CSDL, with its base types'.
fn csdl_properties(csdl: &str, type_name: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut name = Some(type_name.to_string());
    while let Some(n) = name.take() {
        let open = ["EntityType", "ComplexType"]
            .iter()
            .find_map(|kind| csdl.find(&format!("<{kind} Name=\"{n}\"")).map(|i| (i, *kind)));
        let Some((start, kind)) = open else { break };
        let head_end = csdl[start..].find('>').unwrap() + start;
        let head = &csdl[start..head_end];
        let end = csdl[start..].find(&format!("</{kind}>")).unwrap() + start;
        for piece in csdl[head_end..end].split('<').skip(1) {
            if let Some(rest) =
                piece.strip_prefix("Property Name=\"").or_else(|| piece.strip_prefix("NavigationProperty Name=\""))
            {
                out.insert(rest.split('"').next().unwrap().to_string());
            }
        }
        name = head.split("BaseType=\"graph.").nth(1).map(|b| b.split('"').next().unwrap().to_string());
    }
    out
}

#[tokio::test]
async fn served_events_use_only_csdl_property_names() {
    let Some(dir) = protocol_dir() else { return };
    let csdl = std::fs::read_to_string(dir.join("graph/v1.0-Prod.csdl")).unwrap();
    let event_props = csdl_properties(&csdl, "event");
    assert!(event_props.contains("iCalUId") && event_props.contains("changeKey") && event_props.contains("id"));
    let env = Env::new().await;
    let mut body = meeting("Checked", at(1, 9), at(1, 10), &[("room1@test.example", "resource")]);
    body["recurrence"] = serde_json::json!({"pattern": {"type": "daily", "interval": 1}, "range": {"type": "numbered", "numberOfOccurrences": 2}});
    body["transactionId"] = serde_json::json!("t-1");
    body["singleValueExtendedProperties"] = serde_json::json!([{"id": wire::PROVENANCE_PROPERTY_ID, "value": "x"}]);
    let created = env.create("ann@test.example", body).await;
    let id = created["id"].as_str().unwrap();
    let filter = format!("singleValueExtendedProperties($filter=id eq '{}')", wire::PROVENANCE_PROPERTY_ID);
    let got: Value = env
        .get(&format!("/users/ann@test.example/events/{id}"))
        .query(&[("$expand", filter.as_str())])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let view: Value = env
        .get(&format!(
            "/users/ann@test.example/calendarView?startDateTime={}&endDateTime={}",
            at(0, 0).format("%Y-%m-%dT%H:%M:%SZ"),
            at(5, 0).format("%Y-%m-%dT%H:%M:%SZ")
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let mut samples = vec![created.clone(), got];
    samples.extend(view["value"].as_array().unwrap().iter().cloned());
    for ev in &samples {
        for key in ev.as_object().unwrap().keys() {
            if key.starts_with('@') {
                continue;
            }
            assert!(event_props.contains(key), "'{key}' is not a property of microsoft.graph.event in the CSDL");
        }
    }
    // Nested complex types too.
    let nested = [
        ("attendees", "attendee"),
        ("location", "location"),
        ("organizer", "recipient"),
        ("responseStatus", "responseStatus"),
        ("body", "itemBody"),
        ("start", "dateTimeTimeZone"),
        ("recurrence", "patternedRecurrence"),
    ];
    for (prop, type_name) in nested {
        let allowed = csdl_properties(&csdl, type_name);
        assert!(!allowed.is_empty(), "{type_name} not found in the CSDL");
        let v = &created[prop];
        let objects: Vec<&Value> = match v {
            Value::Array(a) => a.iter().collect(),
            Value::Object(_) => vec![v],
            _ => vec![],
        };
        for o in objects {
            for key in o.as_object().unwrap().keys() {
                assert!(allowed.contains(key), "'{prop}.{key}' is not a property of {type_name}");
            }
        }
    }
    let pattern = csdl_properties(&csdl, "recurrencePattern");
    for key in created["recurrence"]["pattern"].as_object().unwrap().keys() {
        assert!(pattern.contains(key), "recurrence.pattern.{key}");
    }
    let range = csdl_properties(&csdl, "recurrenceRange");
    for key in created["recurrence"]["range"].as_object().unwrap().keys() {
        assert!(range.contains(key), "recurrence.range.{key}");
    }
}
