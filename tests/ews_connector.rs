//! The EWS connection test (`EwsConnector::diagnose`) against the simulator: a passing
//! diagnosis, and failing ones whose hints name the fix — a wrong password, an account
//! without the ApplicationImpersonation role, a mailbox that does not exist; and its change
//! notifications (`Remote::watch`): streaming within the budget, pull beyond it, lost and
//! dropped subscriptions.

use calbridge_core::connector::{CheckResult, Connector, Probe};
use calbridge_core::model::*;
use calbridge_ews::{EwsConnector, EwsOptions};
use calbridge_tests::{Protocol, World};

fn probes() -> Vec<Probe> {
    vec![
        Probe { email: "ann@fabrikam.example".into(), kind: CalendarKind::Person },
        Probe { email: "room1@fabrikam.example".into(), kind: CalendarKind::Room },
        Probe { email: "projector1@fabrikam.example".into(), kind: CalendarKind::Equipment },
    ]
}

fn with_account(w: &World, username: &str) -> Connection {
    let mut c = w.connection.clone();
    if let ConnectionSettings::Ews(s) = &mut c.settings {
        s.username = username.into();
    }
    c
}

#[tokio::test]
async fn a_working_connection_passes_every_check() {
    let w = World::on(Protocol::Ews).await;
    let account = w.sim.ews_accounts().into_iter().find(|a| a.impersonation).unwrap();
    let checks = EwsConnector::new(EwsOptions::default())
        .diagnose(&w.connection, Secret::new(&account.password), &probes())
        .await;
    let names: Vec<&str> = checks.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["settings", "credentials", "mailbox.person", "mailbox.room", "mailbox.equipment"]);
    assert!(checks.iter().all(|c| c.result == CheckResult::Pass && c.hint.is_none()), "{checks:#?}");
    assert!(
        checks[3].detail.contains("room1@fabrikam.example") && checks[3].detail.contains("impersonation"),
        "{checks:#?}"
    );
}

#[tokio::test]
async fn a_wrong_password_fails_at_sign_in_and_skips_the_mailboxes() {
    let w = World::on(Protocol::Ews).await;
    let checks = EwsConnector::new(EwsOptions::default())
        .diagnose(&w.connection, Secret::new("not-the-password"), &probes())
        .await;
    let creds = checks.iter().find(|c| c.name == "credentials").unwrap();
    assert_eq!(creds.result, CheckResult::Fail);
    assert!(creds.detail.contains("401"), "{creds:?}");
    assert!(creds.hint.as_deref().unwrap().contains("password"), "{creds:?}");
    assert!(checks.iter().filter(|c| c.name.starts_with("mailbox.")).all(|c| c.result == CheckResult::Skip));
    assert!(!format!("{checks:?}").contains("not-the-password"), "the secret never appears");
}

#[tokio::test]
async fn missing_rights_and_mailboxes_are_named_with_the_fix() {
    let w = World::on(Protocol::Ews).await;
    let helpdesk = w.sim.ews_accounts().into_iter().find(|a| !a.impersonation).unwrap();
    let conn = with_account(&w, &helpdesk.username);
    let mut probes = probes();
    probes.push(Probe { email: "nobody@fabrikam.example".into(), kind: CalendarKind::Room });
    let checks =
        EwsConnector::new(EwsOptions::default()).diagnose(&conn, Secret::new(&helpdesk.password), &probes).await;
    assert_eq!(checks.iter().find(|c| c.name == "credentials").unwrap().result, CheckResult::Pass, "{checks:#?}");
    let person = checks.iter().find(|c| c.name == "mailbox.person").unwrap();
    assert_eq!(person.result, CheckResult::Fail);
    assert!(person.hint.as_deref().unwrap().contains("ApplicationImpersonation"), "{person:?}");

    let w = World::on(Protocol::Ews).await;
    let account = w.sim.ews_accounts().into_iter().find(|a| a.impersonation).unwrap();
    let checks =
        EwsConnector::new(EwsOptions::default()).diagnose(&w.connection, Secret::new(&account.password), &probes).await;
    let nobody = checks.iter().find(|c| c.detail.contains("nobody@")).unwrap();
    assert_eq!(nobody.result, CheckResult::Fail, "{checks:#?}");
    assert!(nobody.hint.as_deref().unwrap().contains("no such mailbox"), "{nobody:?}");
}

fn with_test_mailbox(c: &Connection, mailbox: &str) -> Connection {
    let mut c = c.clone();
    if let ConnectionSettings::Ews(s) = &mut c.settings {
        s.test_mailbox = Some(mailbox.into());
    }
    c
}

/// A connection with a test mailbox and nothing linked yet: the test opens that mailbox first,
/// passing for one that exists and failing, with the fix, for one that does not or that the
/// account may not open.
#[tokio::test]
async fn the_test_mailbox_is_checked_first_before_anything_is_linked() {
    let w = World::on(Protocol::Ews).await;
    let account = w.sim.ews_accounts().into_iter().find(|a| a.impersonation).unwrap();
    let connector = EwsConnector::new(EwsOptions::default());

    let checks = connector
        .diagnose(
            &with_test_mailbox(&w.connection, "room1@fabrikam.example"),
            Secret::new(&account.password),
            &probes(),
        )
        .await;
    let names: Vec<&str> = checks.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(
        names,
        ["settings", "credentials", "mailbox.test", "mailbox.person", "mailbox.room", "mailbox.equipment"]
    );
    assert!(checks.iter().all(|c| c.result == CheckResult::Pass), "{checks:#?}");
    assert!(checks[2].detail.contains("room1@fabrikam.example") && checks[2].detail.contains("impersonation"));

    let checks = connector
        .diagnose(&with_test_mailbox(&w.connection, "nobody@fabrikam.example"), Secret::new(&account.password), &[])
        .await;
    let test = checks.iter().find(|c| c.name == "mailbox.test").expect("checked with nothing linked");
    assert_eq!(test.result, CheckResult::Fail, "{checks:#?}");
    assert!(test.detail.contains("nobody@fabrikam.example"), "{test:?}");
    let hint = test.hint.as_deref().unwrap();
    assert!(hint.contains("test_mailbox") && hint.contains("ApplicationImpersonation"), "{hint}");

    let helpdesk = w.sim.ews_accounts().into_iter().find(|a| !a.impersonation).unwrap();
    let mut conn = with_test_mailbox(&with_account(&w, &helpdesk.username), "ann@fabrikam.example");
    let checks = connector.diagnose(&conn, Secret::new(&helpdesk.password), &[]).await;
    let test = checks.iter().find(|c| c.name == "mailbox.test").unwrap();
    assert_eq!(test.result, CheckResult::Fail, "{checks:#?}");
    assert!(test.hint.as_deref().unwrap().contains("ApplicationImpersonation"), "{test:?}");

    if let ConnectionSettings::Ews(s) = &mut conn.settings {
        s.test_mailbox = Some("nobody@fabrikam.example".into());
        s.impersonation = false;
    }
    let checks = connector.diagnose(&conn, Secret::new(&helpdesk.password), &[]).await;
    let test = checks.iter().find(|c| c.name == "mailbox.test").unwrap();
    assert_eq!(test.result, CheckResult::Fail, "{checks:#?}");
    assert!(test.hint.as_deref().unwrap().contains("Full Access"), "{test:?}");
}

/// Waits (up to 15 s) for the watch's events until `done` holds for what was seen so far.
async fn watch_until(
    watch: &mut Box<dyn calbridge_core::remote::Watch>,
    seen: &mut Vec<calbridge_core::remote::WatchEvent>,
    what: &str,
    done: impl Fn(&[calbridge_core::remote::WatchEvent]) -> bool,
) {
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(15);
    while !done(seen) {
        match tokio::time::timeout_at(deadline, watch.next()).await {
            Ok(Some(e)) => seen.push(e),
            Ok(None) => panic!("the watch ended before {what}"),
            Err(_) => panic!("timed out waiting until {what}: {seen:?}"),
        }
    }
}

fn in_mode(seen: &[calbridge_core::remote::WatchEvent], mode: calbridge_core::remote::WatchMode) -> usize {
    use calbridge_core::remote::WatchEvent;
    seen.iter()
        .filter_map(|e| match e {
            WatchEvent::Mode { mode: m, mailboxes } if *m == mode => Some(mailboxes.len()),
            _ => None,
        })
        .sum()
}

fn changed(seen: &[calbridge_core::remote::WatchEvent], mailbox: &str) -> bool {
    use calbridge_core::remote::WatchEvent;
    seen.iter().any(|e| matches!(e, WatchEvent::Changed(m) if m.iter().any(|x| x == mailbox)))
}

/// One streaming connection carries many mailboxes; the per-server streaming budget holds, and
/// what it cannot carry is watched with pull subscriptions; lost events and dropped
/// subscriptions are reported as changes and subscribed again.
#[tokio::test]
async fn a_watch_streams_many_mailboxes_over_one_connection_within_the_budget() {
    use calbridge_core::remote::{WatchMode, WatchOptions};
    let w = World::on(Protocol::Ews).await;
    let mailboxes: Vec<String> =
        ["ann", "bob", "room1", "room2", "projector1"].iter().map(|m| format!("{m}@fabrikam.example")).collect();
    let options = WatchOptions {
        streaming_connections: 1,
        pull_interval: std::time::Duration::from_millis(200),
        ..WatchOptions::default()
    };
    let mut watch = w.remote.watch(mailboxes.clone(), options.clone()).await.unwrap();
    let mut seen = Vec::new();
    // Streamed, and reported changed once (whatever happened before the subscriptions).
    watch_until(&mut watch, &mut seen, "all five are streamed", |s| {
        in_mode(s, WatchMode::Streaming) == 5 && changed(s, "ann@fabrikam.example")
    })
    .await;
    let subs = w.sim.ews_subscriptions();
    assert_eq!((subs.len(), subs.iter().all(|s| s.streaming)), (5, true), "{subs:?}");
    for _ in 0..100 {
        if w.sim.ews_open_streams() == 1 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(w.sim.ews_open_streams(), 1, "one connection for the five");

    seen.clear();
    let bob = "bob@fabrikam.example";
    let start = chrono::Utc::now() + chrono::Duration::days(2);
    w.sim
        .outlook()
        .create_event(bob, calbridge_sim::NewEvent::new("Hello", start, start + chrono::Duration::hours(1)))
        .unwrap();
    watch_until(&mut watch, &mut seen, "Bob's change is reported", |s| changed(s, bob)).await;
    assert!(!changed(&seen, "ann@fabrikam.example"), "only Bob changed: {seen:?}");

    // The budget is spent: a second watch on the same server pulls.
    let mut second = w.remote.watch(vec!["scheduler@fabrikam.example".into()], options).await.unwrap();
    let mut seen2 = Vec::new();
    watch_until(&mut second, &mut seen2, "the second watch pulls", |s| in_mode(s, WatchMode::Pull) == 1).await;
    assert_eq!(w.sim.ews_open_streams(), 1, "still one streaming connection");

    // Lost events, then a dropped subscription: each reported as a change, subscribed again.
    seen.clear();
    assert_eq!(w.sim.ews_miss_events(bob), 1);
    watch_until(&mut watch, &mut seen, "Bob's lost events are reported", |s| changed(s, bob)).await;
    seen.clear();
    assert_eq!(w.sim.ews_drop_subscriptions(bob), 1);
    watch_until(&mut watch, &mut seen, "Bob's dropped subscription is reported", |s| changed(s, bob)).await;
    for _ in 0..100 {
        if w.sim.ews_subscriptions().iter().any(|s| s.mailbox == bob && s.streaming) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(w.sim.ews_subscriptions().iter().any(|s| s.mailbox == bob && s.streaming), "Bob is subscribed again");
    seen.clear();
    w.sim
        .outlook()
        .create_event(bob, calbridge_sim::NewEvent::new("Again", start, start + chrono::Duration::hours(1)))
        .unwrap();
    watch_until(&mut watch, &mut seen, "Bob's next change is reported", |s| changed(s, bob)).await;
}
