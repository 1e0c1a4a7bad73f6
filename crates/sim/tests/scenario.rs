//! Scenarios: the bundled demo, determinism, and validation errors that name the key.

use calbridge_sim::{Scenario, SimError, Simulator};

#[test]
fn demo_is_a_training_centre_of_the_promised_size() {
    let demo = Scenario::demo();
    assert_eq!(demo.tenant.domain, "contoso.example");
    assert_eq!(demo.apps[0].client_secret, "demo-secret-change-me");
    let sim = Simulator::new(&demo).unwrap();
    let addresses = sim.mailbox_addresses();
    let rooms = demo.mailboxes.iter().filter(|m| m.kind == calbridge_sim::MailboxKind::Room).count();
    let equipment = demo.mailboxes.iter().filter(|m| m.kind == calbridge_sim::MailboxKind::Equipment).count();
    let people = demo.mailboxes.iter().filter(|m| m.kind == calbridge_sim::MailboxKind::Person).count();
    assert_eq!((rooms, equipment, people), (22, 5, 53), "52 people and the scheduler");
    assert!(addresses.contains(&"scheduler@contoso.example".to_string()));
    assert!(demo.mailboxes.iter().any(|m| m.name.contains("seats")));
    let o = sim.outlook();
    let organised: usize = addresses
        .iter()
        .map(|a| o.list_events(a).unwrap().iter().filter(|e| e.is_organizer == Some(true)).count())
        .sum();
    assert!((2500..=3500).contains(&organised), "{organised} events");
    let all: Vec<_> = addresses.iter().flat_map(|a| o.list_events(a).unwrap()).collect();
    let recurring = all.iter().filter(|e| e.recurrence.is_some() && e.is_organizer == Some(true)).count();
    assert!(recurring * 100 / organised >= 5 && recurring * 100 / organised <= 15, "{recurring} recurring");
    for show in ["tentative", "oof", "free", "busy"] {
        assert!(all.iter().any(|e| e.show_as.as_deref() == Some(show)), "{show}");
    }
    assert!(all.iter().any(|e| e.sensitivity.as_deref() == Some("private")));
    let room_answers: Vec<String> = all
        .iter()
        .flat_map(|e| e.attendees.clone().unwrap_or_default())
        .filter(|a| a.kind.as_deref() == Some("resource"))
        .filter_map(|a| a.status.and_then(|s| s.response))
        .collect();
    assert!(room_answers.iter().any(|r| r == "accepted"));
}

#[test]
fn same_scenario_same_ids() {
    let a = Simulator::new(&Scenario::demo()).unwrap();
    let b = Simulator::new(&Scenario::demo()).unwrap();
    let x = a.outlook().list_events("amelia.hughes@contoso.example").unwrap();
    let y = b.outlook().list_events("amelia.hughes@contoso.example").unwrap();
    assert!(!x.is_empty());
    assert_eq!(x, y);
}

#[test]
fn errors_name_the_key() {
    let base = calbridge_sim::DEMO_TOML;
    let bad_tenant = base.replace("id = \"5d2b9c4e-7f1a-4c3b-9e8d-1a2b3c4d5e6f\"", "id = \"not-a-guid\"");
    match Scenario::from_toml(&bad_tenant) {
        Err(SimError::Scenario { key, .. }) => assert_eq!(key, "tenant.id"),
        other => panic!("{other:?}"),
    }
    let bad_event = format!(
        "{base}\n[[events]]\nmailbox = \"nobody@contoso.example\"\nsubject = \"x\"\nstart = \"2026-01-01T09:00:00Z\"\nend = \"2026-01-01T10:00:00Z\"\n"
    );
    match Scenario::from_toml(&bad_event) {
        Err(SimError::Scenario { key, message }) => {
            assert_eq!(key, "events[0].mailbox");
            assert!(message.contains("nobody@contoso.example"));
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(Scenario::from_toml("tenant = 3"), Err(SimError::Scenario { .. })));
}

#[test]
fn fixed_anchor_scenarios_are_reproducible() {
    let toml = calbridge_sim::DEMO_TOML.replace("anchor = \"today\"", "anchor = \"2026-11-23\"");
    let s = Scenario::from_toml(&toml).unwrap();
    let a = Simulator::new(&s).unwrap();
    let b = Simulator::new(&s).unwrap();
    let ea = a.outlook().list_events("room201@contoso.example").unwrap();
    assert_eq!(ea, b.outlook().list_events("room201@contoso.example").unwrap());
    assert!(ea.iter().all(|e| e.created_date_time.as_deref().is_some_and(|c| c.starts_with("2026-11-23"))));
}
