//! The EWS connection test (`EwsConnector::diagnose`) against the simulator: a passing
//! diagnosis, and failing ones whose hints name the fix — a wrong password, an account
//! without the ApplicationImpersonation role, a mailbox that does not exist.

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
