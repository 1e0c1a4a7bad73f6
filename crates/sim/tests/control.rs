//! `/_sim` for programs driving a simulator in another process (`calbridge bench`): the
//! generated benchmark organisation, people changing events in Outlook, the subscriptions.

use calbridge_sim::{ChangedEvent, Scenario, Simulator, SubscriptionInfo};
use serde_json::json;

#[tokio::test]
async fn outlook_changes_over_http_change_random_events_of_people() {
    let sim = Simulator::new(&Scenario::bench(3, 5)).unwrap();
    let people = sim.mailboxes();
    assert_eq!(people.len(), 3, "{people:?}");
    assert!(people.iter().all(|m| m.kind == "person"));
    for m in &people {
        let events = sim.outlook().list_events(&m.email).unwrap();
        assert_eq!(events.len(), 5, "{}: single events only", m.email);
        assert!(events.iter().all(|e| e.recurrence.is_none()));
    }
    let run = sim.start().await.unwrap();
    let http = reqwest::Client::new();
    let url = format!("{}/_sim/outlook/changes", run.base_url);

    let r = http.post(&url).json(&json!({"count": 4, "seed": 9})).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let changed: Vec<ChangedEvent> = r.json().await.unwrap();
    assert_eq!(changed.len(), 4);
    for c in &changed {
        let e = sim.outlook().get_event(&c.mailbox, &c.id).unwrap();
        // A later change may have picked the same event again; its subject is one of ours.
        assert!(e.subject.as_deref().unwrap().starts_with("Changed in Outlook (9-"), "{e:?}");
        assert!(c.start < c.end);
    }
    let again: Vec<ChangedEvent> =
        http.post(&url).json(&json!({"count": 4, "seed": 9})).send().await.unwrap().json().await.unwrap();
    let ids = |v: &[ChangedEvent]| v.iter().map(|c| c.id.clone()).collect::<Vec<_>>();
    assert_eq!(ids(&again), ids(&changed), "the same seed picks the same events");

    let r = http.post(&url).json(&json!({"count": "many"})).send().await.unwrap();
    assert_eq!(r.status(), 400);
    let subs: Vec<SubscriptionInfo> =
        http.get(format!("{}/_sim/subscriptions", run.base_url)).send().await.unwrap().json().await.unwrap();
    assert!(subs.is_empty());
}
