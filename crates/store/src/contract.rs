//! The `Store` contract: one suite, run against every implementation.
//!
//! Each case is a public async function taking a fresh, empty store and panicking when the
//! store breaks the contract. [`run_all`] runs every case, each on a store of its own, and
//! fails naming the cases that failed. An implementation's test:
//!
//! ```no_run
//! # async fn example() {
//! use std::sync::Arc;
//! use calbridge_core::store::Store;
//! use calbridge_store::{contract, SqliteStore};
//!
//! // In a #[tokio::test]:
//! contract::run_all(|| async {
//!     Arc::new(SqliteStore::open("sqlite::memory:").await.unwrap()) as Arc<dyn Store>
//! })
//! .await;
//! # }
//! ```
//!
//! The suite is the specification of what the trait's doc comments leave open: identical
//! writes are no-ops that count zero, a commit's writes stay inside its calendar, a stale event
//! version is a conflict that rolls the whole commit back.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use calbridge_core::hash::content_hash;
use calbridge_core::model::{
    Calendar, CalendarKind, Connection, ConnectionSettings, Event, EventData, EventId, GraphSettings, LinkState,
    Origin, SeriesKind, ShowAs,
};
use calbridge_core::planner;
use calbridge_core::store::{
    DeliveryCounts, DeliveryOutcome, Lease, NewAdmin, NewApiKey, NewCalendar, NewConnection, NewWebhook, Notification,
    NotificationSubscription, Scope, SealedSecret, SecretOwner, Store, StoreError, SyncStatus, Webhook, WriteStats,
};
use calbridge_core::sync::{Cursor, CursorUpdate, SyncRecord, Window, Write};
use chrono::{DateTime, Duration, TimeZone, Utc};

/// One contract case: takes a fresh store, panics on a breach.
pub type Case = fn(Arc<dyn Store>) -> Pin<Box<dyn Future<Output = ()> + Send>>;

macro_rules! cases {
    ($($name:ident),* $(,)?) => {
        /// Every case of the contract, by name.
        pub const CASES: &[(&str, Case)] = &[$((stringify!($name), |store| Box::pin($name(store)))),*];
    };
}

cases![
    connection_upsert_get_and_list,
    connection_delete_cascades,
    site_upsert_moves_between_connections,
    calendar_upsert_lower_cases_and_keeps_link_state,
    local_event_create_is_idempotent,
    local_event_update_checks_origin_and_version,
    local_event_delete_tombstone_or_removal,
    events_in_range_overlap_and_order,
    busy_times_of_many_calendars_in_one_read,
    commit_put_event_versions,
    commit_records_and_remote_ids,
    commit_is_all_or_nothing,
    commit_identical_recommit_writes_nothing,
    commit_large_pages_in_order,
    snapshot_contents,
    local_changes_are_told_without_the_snapshot,
    cursor_set_keep_clear,
    connection_create_and_update_by_id,
    secrets_are_kept_per_owner,
    api_keys_by_hash,
    local_writes_queue_their_messages,
    commit_notify_is_atomic,
    deliveries_retry_deliver_and_fail,
    sync_status_per_calendar,
    sync_status_keeps_throttling_waits,
    site_delete_keeps_its_calendars,
    calendar_delete_removes_its_state,
    deliveries_are_pruned_once_ended,
    admins_by_name_with_password_replaced,
    subscriptions_one_per_calendar,
    leases_share_out_calendars_and_fence_stale_workers,
    concurrent_claims_never_share_a_calendar,
    sync_requests_reach_the_holder_once,
];

/// Runs every case, each on a store from `make` (which must return a fresh, empty store), and
/// panics naming the cases that failed. Must run inside a Tokio runtime.
pub async fn run_all<F, Fut>(make: F)
where
    F: Fn() -> Fut,
    Fut: Future<Output = Arc<dyn Store>>,
{
    let mut failed = Vec::new();
    for (name, case) in CASES {
        let store = make().await;
        // A task of its own, so a failing case is reported and the others still run.
        match tokio::spawn(case(store)).await {
            Ok(()) => eprintln!("store contract: {name} ... ok"),
            Err(e) => {
                eprintln!("store contract: {name} ... FAILED ({e})");
                failed.push(*name);
            }
        }
    }
    assert!(failed.is_empty(), "{} of {} store contract cases failed: {failed:?}", failed.len(), CASES.len());
}

// --- fixtures ---------------------------------------------------------------------------

/// Event contents of every kind the `busy_as` back-fill of migration 7 must tell apart, with
/// the value it must give each.
pub fn busy_as_backfill_cases() -> Vec<(&'static str, EventData, Option<&'static str>)> {
    let t = at(9, 0);
    let with = |f: &dyn Fn(&mut EventData)| {
        let mut d = EventData::new("x", t, t + Duration::hours(1));
        f(&mut d);
        d
    };
    vec![
        ("busy", with(&|_| {}), Some("busy")),
        ("free", with(&|d| d.show_as = ShowAs::Free), Some("free")),
        ("elsewhere", with(&|d| d.show_as = ShowAs::WorkingElsewhere), Some("workingElsewhere")),
        (
            "oof-occurrence",
            with(&|d| {
                d.show_as = ShowAs::Oof;
                d.series.kind = SeriesKind::Occurrence;
            }),
            Some("oof"),
        ),
        ("cancelled", with(&|d| d.cancelled = true), None),
        ("master", with(&|d| d.series.kind = SeriesKind::Master), None),
    ]
}

/// 2 March 2026, `h:m` UTC.
fn at(h: u32, m: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 2, h, m, 0).unwrap()
}

fn data(subject: &str, start: DateTime<Utc>, end: DateTime<Utc>) -> EventData {
    EventData::new(subject, start, end)
}

fn id(s: &str) -> EventId {
    EventId::new(s)
}

fn settings(tenant: &str) -> ConnectionSettings {
    ConnectionSettings::Graph(GraphSettings {
        tenant_id: tenant.into(),
        client_id: "00000000-0000-0000-0000-000000000001".into(),
        authority_url: "https://login.microsoftonline.com".into(),
        graph_url: "https://graph.microsoft.com".into(),
    })
}

fn new_connection(name: &str) -> NewConnection {
    NewConnection {
        name: name.into(),
        settings: settings(&format!("{name}.onmicrosoft.com")),
        default_organizer: Some(format!("organizer@{name}.example")),
        max_threads: 4,
    }
}

async fn connection(store: &Arc<dyn Store>, name: &str) -> Connection {
    store.upsert_connection(new_connection(name)).await.expect("upsert_connection")
}

fn new_calendar(email: &str, connection: &Connection) -> NewCalendar {
    NewCalendar {
        email: email.into(),
        kind: CalendarKind::Person,
        display_name: email.split('@').next().unwrap_or(email).into(),
        connection_id: connection.id,
        site_id: None,
        busy_only: false,
    }
}

async fn calendar(store: &Arc<dyn Store>, email: &str, connection: &Connection) -> Calendar {
    store.upsert_calendar(new_calendar(email, connection)).await.expect("upsert_calendar")
}

/// A connection with one calendar.
async fn setup(store: &Arc<dyn Store>) -> (Connection, Calendar) {
    let c = connection(store, "contoso").await;
    let cal = calendar(store, "anna@contoso.example", &c).await;
    (c, cal)
}

fn exchange_event(calendar: &Calendar, event_id: &str, d: EventData, version: i64) -> Event {
    Event { id: id(event_id), calendar_id: calendar.id, origin: Origin::Exchange, data: d, version, deleted: false }
}

fn record(calendar: &Calendar, event: &Event, remote_id: &str, remote_version: &str) -> SyncRecord {
    SyncRecord {
        calendar_id: calendar.id,
        local_id: event.id.clone(),
        remote_id: remote_id.into(),
        remote_version: remote_version.into(),
        remote_hash: content_hash(&event.data),
        local_version: event.version,
        local_hash: content_hash(&event.data),
    }
}

/// Commits an Exchange event with its sync record, as a pull does.
async fn pulled(store: &Arc<dyn Store>, calendar: &Calendar, event_id: &str, d: EventData, remote_id: &str) -> Event {
    let ev = exchange_event(calendar, event_id, d, 1);
    let writes = [Write::PutEvent(ev.clone()), Write::PutRecord(record(calendar, &ev, remote_id, "ck-1"))];
    store.commit(calendar.id, &writes, &CursorUpdate::Keep).await.expect("commit a pulled event");
    ev
}

/// Records that a local event reached Exchange, as a confirmed push does.
async fn pushed(store: &Arc<dyn Store>, calendar: &Calendar, event: &Event, remote_id: &str) {
    let writes = [Write::PutRecord(record(calendar, event, remote_id, "ck-1"))];
    store.commit(calendar.id, &writes, &CursorUpdate::Keep).await.expect("commit a push confirmation");
}

fn stats(events: u64, records: u64, cursors: u64) -> WriteStats {
    WriteStats { events, records, cursors }
}

/// Asserts a `Conflict` whose message contains every one of `needles`; returns the message.
#[track_caller]
fn expect_conflict<T: std::fmt::Debug>(result: Result<T, StoreError>, needles: &[&str]) -> String {
    match result {
        Err(StoreError::Conflict(message)) => {
            for needle in needles {
                assert!(
                    message.to_lowercase().contains(&needle.to_lowercase()),
                    "the conflict message should mention `{needle}`: {message}"
                );
            }
            message
        }
        other => panic!("expected a conflict mentioning {needles:?}, got {other:?}"),
    }
}

#[track_caller]
fn expect_not_found<T: std::fmt::Debug>(result: Result<T, StoreError>) {
    match result {
        Err(StoreError::NotFound { .. }) => {}
        other => panic!("expected NotFound, got {other:?}"),
    }
}

async fn ids_in_range(
    store: &Arc<dyn Store>,
    calendar: &Calendar,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Vec<String> {
    store.events_in_range(calendar.id, from, to).await.expect("events_in_range").into_iter().map(|e| e.id.0).collect()
}

// --- connections and sites -------------------------------------------------------------------

/// Connections are created, found by id and name, updated by name, listed by name.
pub async fn connection_upsert_get_and_list(store: Arc<dyn Store>) {
    let zeta = connection(&store, "zeta").await;
    assert!(zeta.id > 0);
    assert_eq!(zeta.name, "zeta");
    assert_eq!(zeta.settings, settings("zeta.onmicrosoft.com"));
    assert_eq!(zeta.default_organizer.as_deref(), Some("organizer@zeta.example"));
    assert_eq!(zeta.max_threads, 4);
    assert_eq!(store.connection(zeta.id).await.unwrap(), Some(zeta.clone()));
    assert_eq!(store.connection_by_name("zeta").await.unwrap(), Some(zeta.clone()));

    // The same name updates the same row.
    let changed = NewConnection {
        name: "zeta".into(),
        settings: settings("other-tenant"),
        default_organizer: None,
        max_threads: 9,
    };
    let updated = store.upsert_connection(changed).await.unwrap();
    assert_eq!(updated.id, zeta.id, "an upsert by name keeps the id");
    assert_eq!(updated.settings, settings("other-tenant"));
    assert_eq!(updated.default_organizer, None);
    assert_eq!(updated.max_threads, 9);
    assert_eq!(store.connection(zeta.id).await.unwrap(), Some(updated.clone()));

    let alpha = connection(&store, "alpha").await;
    assert_ne!(alpha.id, zeta.id);
    let names: Vec<String> = store.connections().await.unwrap().into_iter().map(|c| c.name).collect();
    assert_eq!(names, ["alpha", "zeta"], "connections are listed by name");

    assert_eq!(store.connection(alpha.id + zeta.id + 1000).await.unwrap(), None);
    assert_eq!(store.connection_by_name("nobody").await.unwrap(), None);
}

/// Deleting a connection removes its sites, calendars, events, sync records and cursors, and
/// nothing of other connections.
pub async fn connection_delete_cascades(store: Arc<dyn Store>) {
    let doomed = connection(&store, "doomed").await;
    let kept = connection(&store, "kept").await;
    let site = store.upsert_site("Doomed HQ", doomed.id).await.unwrap();
    let kept_site = store.upsert_site("Kept HQ", kept.id).await.unwrap();
    let mut in_site = new_calendar("room@doomed.example", &doomed);
    in_site.site_id = Some(site.id);
    in_site.kind = CalendarKind::Room;
    let room = store.upsert_calendar(in_site).await.unwrap();
    let anna = calendar(&store, "anna@doomed.example", &doomed).await;
    // A calendar of the other connection placed in the doomed connection's site.
    let mut stray = new_calendar("bob@kept.example", &kept);
    stray.site_id = Some(site.id);
    let bob = store.upsert_calendar(stray).await.unwrap();

    let local = store.create_local_event(anna.id, &id("local-1"), &data("Class", at(9, 0), at(10, 0))).await.unwrap();
    pushed(&store, &anna, &local, "AAMk-local-1").await;
    pulled(&store, &room, "pulled-1", data("Meeting", at(11, 0), at(12, 0)), "AAMk-pulled-1").await;
    store.commit(room.id, &[], &CursorUpdate::Set(Cursor("delta-1".into()))).await.unwrap();
    let bobs = store.create_local_event(bob.id, &id("bob-1"), &data("1:1", at(9, 0), at(10, 0))).await.unwrap();
    pushed(&store, &bob, &bobs, "AAMk-bob-1").await;
    store.commit(bob.id, &[], &CursorUpdate::Set(Cursor("delta-bob".into()))).await.unwrap();

    store.delete_connection(doomed.id).await.unwrap();

    assert_eq!(store.connection(doomed.id).await.unwrap(), None);
    assert_eq!(store.connection_by_name("doomed").await.unwrap(), None);
    let sites: Vec<String> = store.sites().await.unwrap().into_iter().map(|s| s.name).collect();
    assert_eq!(sites, ["Kept HQ"]);
    assert_eq!(store.calendar(room.id).await.unwrap(), None);
    assert_eq!(store.calendar_by_email("anna@doomed.example").await.unwrap(), None);
    assert_eq!(store.event(&id("local-1")).await.unwrap(), None);
    assert_eq!(store.event(&id("pulled-1")).await.unwrap(), None);
    assert_eq!(store.remote_id(&id("local-1")).await.unwrap(), None);
    assert_eq!(store.remote_id(&id("pulled-1")).await.unwrap(), None);
    assert_eq!(store.cursor(room.id).await.unwrap(), None);

    // The other connection keeps everything; its calendar merely leaves the deleted site.
    assert_eq!(store.connection(kept.id).await.unwrap(), Some(kept.clone()));
    let bob_now = store.calendar(bob.id).await.unwrap().expect("the other connection's calendar stays");
    assert_eq!(bob_now.site_id, None);
    assert_eq!(store.event(&id("bob-1")).await.unwrap(), Some(bobs));
    assert_eq!(store.remote_id(&id("bob-1")).await.unwrap().as_deref(), Some("AAMk-bob-1"));
    assert_eq!(store.cursor(bob.id).await.unwrap(), Some(Cursor("delta-bob".into())));
    assert_eq!(store.calendars(None).await.unwrap(), vec![bob_now]);
    assert_eq!(store.sites().await.unwrap(), vec![kept_site]);

    // Nothing is left behind: the names, addresses and event ids can be used again.
    let again = connection(&store, "doomed").await;
    let anna_again = calendar(&store, "anna@doomed.example", &again).await;
    assert_eq!(anna_again.link, LinkState::Unverified);
    let recreated =
        store.create_local_event(anna_again.id, &id("local-1"), &data("Other", at(13, 0), at(14, 0))).await.unwrap();
    assert_eq!(recreated.version, 1);

    expect_not_found(store.delete_connection(doomed.id).await);
}

/// Sites are created by name, moved to another connection by name, listed by name.
pub async fn site_upsert_moves_between_connections(store: Arc<dyn Store>) {
    let a = connection(&store, "a").await;
    let b = connection(&store, "b").await;
    let zurich = store.upsert_site("Zurich", a.id).await.unwrap();
    assert_eq!((zurich.name.as_str(), zurich.connection_id), ("Zurich", a.id));
    let berlin = store.upsert_site("Berlin", a.id).await.unwrap();
    assert_ne!(berlin.id, zurich.id);

    let moved = store.upsert_site("Zurich", b.id).await.unwrap();
    assert_eq!(moved.id, zurich.id, "an upsert by name keeps the id");
    assert_eq!(moved.connection_id, b.id);
    assert_eq!(store.sites().await.unwrap(), vec![berlin, moved], "sites are listed by name");

    expect_not_found(store.upsert_site("Paris", a.id + b.id + 1000).await);
    assert_eq!(store.sites().await.unwrap().len(), 2);
}

/// Calendar links: e-mail lower-cased and matched case-insensitively; an update keeps the
/// link state unless the connection changes.
pub async fn calendar_upsert_lower_cases_and_keeps_link_state(store: Arc<dyn Store>) {
    let a = connection(&store, "a").await;
    let b = connection(&store, "b").await;
    let site = store.upsert_site("HQ", a.id).await.unwrap();
    let mut room = new_calendar("Room.1@Contoso.COM", &a);
    room.kind = CalendarKind::Room;
    room.site_id = Some(site.id);
    room.busy_only = true;
    let cal = store.upsert_calendar(room.clone()).await.unwrap();
    assert_eq!(cal.email, "room.1@contoso.com");
    assert_eq!(cal.kind, CalendarKind::Room);
    assert_eq!(cal.site_id, Some(site.id));
    assert!(cal.busy_only);
    assert_eq!(cal.link, LinkState::Unverified);
    assert_eq!(store.calendar(cal.id).await.unwrap(), Some(cal.clone()));
    assert_eq!(store.calendar_by_email("ROOM.1@contoso.com").await.unwrap(), Some(cal.clone()));

    store.set_link_state(cal.id, &LinkState::Verified).await.unwrap();
    room.email = "room.1@CONTOSO.com".into();
    room.display_name = "Room One".into();
    room.busy_only = false;
    let same = store.upsert_calendar(room.clone()).await.unwrap();
    assert_eq!(same.id, cal.id, "the same address in another case is the same link");
    assert_eq!(same.display_name, "Room One");
    assert!(!same.busy_only);
    assert_eq!(same.link, LinkState::Verified, "the link state survives an update on the same connection");

    let failed = LinkState::Failed { error: "mailbox not found; check the address".into() };
    store.set_link_state(cal.id, &failed).await.unwrap();
    assert_eq!(store.calendar(cal.id).await.unwrap().unwrap().link, failed);

    room.connection_id = b.id;
    room.site_id = None;
    let moved = store.upsert_calendar(room).await.unwrap();
    assert_eq!(moved.id, cal.id);
    assert_eq!(moved.connection_id, b.id);
    assert_eq!(moved.site_id, None);
    assert_eq!(moved.link, LinkState::Unverified, "a new connection must verify the link again");

    let zed = calendar(&store, "Zed@Contoso.com", &a).await;
    let bert = calendar(&store, "bert@contoso.com", &a).await;
    let all: Vec<String> = store.calendars(None).await.unwrap().into_iter().map(|c| c.email).collect();
    assert_eq!(all, ["bert@contoso.com", "room.1@contoso.com", "zed@contoso.com"], "ordered by address");
    assert_eq!(store.calendars(Some(a.id)).await.unwrap(), vec![bert, zed]);
    assert_eq!(store.calendars(Some(b.id)).await.unwrap(), vec![moved]);

    expect_not_found(store.set_link_state(cal.id + 1000, &LinkState::Verified).await);
    expect_not_found(
        store.upsert_calendar(new_calendar("x@contoso.com", &Connection { id: a.id + b.id + 1000, ..a.clone() })).await,
    );
    let mut bad_site = new_calendar("y@contoso.com", &a);
    bad_site.site_id = Some(site.id + 1000);
    expect_not_found(store.upsert_calendar(bad_site).await);
    assert_eq!(store.calendars(None).await.unwrap().len(), 3, "failed upserts leave nothing behind");
}

// --- local events ----------------------------------------------------------------------------

/// A local event starts at version 1; creating it again with the same content returns it,
/// with other content (or in another calendar) is a conflict.
pub async fn local_event_create_is_idempotent(store: Arc<dyn Store>) {
    let (c, cal) = setup(&store).await;
    let other = calendar(&store, "bob@contoso.example", &c).await;
    let d = data("Class", at(9, 0), at(10, 0));
    let ev = store.create_local_event(cal.id, &id("e1"), &d).await.unwrap();
    assert_eq!(
        ev,
        Event { id: id("e1"), calendar_id: cal.id, origin: Origin::Local, data: d.clone(), version: 1, deleted: false }
    );
    assert_eq!(store.event(&id("e1")).await.unwrap(), Some(ev.clone()));

    let retry = store.create_local_event(cal.id, &id("e1"), &d).await.unwrap();
    assert_eq!(retry, ev, "a retry returns the existing event");
    assert_eq!(ids_in_range(&store, &cal, at(0, 0), at(23, 0)).await, ["e1"], "a retry creates nothing");

    let mut changed = d.clone();
    changed.subject = "Another class".into();
    expect_conflict(store.create_local_event(cal.id, &id("e1"), &changed).await, &["e1"]);
    expect_conflict(store.create_local_event(other.id, &id("e1"), &d).await, &["e1"]);
    assert_eq!(store.event(&id("e1")).await.unwrap(), Some(ev), "a refused create changes nothing");
    assert!(ids_in_range(&store, &other, at(0, 0), at(23, 0)).await.is_empty());

    expect_not_found(store.create_local_event(cal.id + other.id + 1000, &id("e2"), &d).await);
    assert_eq!(store.event(&id("e2")).await.unwrap(), None);
}

/// Updates bump the version, honour `expected_version`, and refuse Exchange events and
/// tombstones.
pub async fn local_event_update_checks_origin_and_version(store: Arc<dyn Store>) {
    let (_, cal) = setup(&store).await;
    store.create_local_event(cal.id, &id("e1"), &data("Class", at(9, 0), at(10, 0))).await.unwrap();

    let v2 = data("Class (moved)", at(10, 0), at(11, 0));
    let ev = store.update_local_event(&id("e1"), &v2, Some(1)).await.unwrap();
    assert_eq!((ev.version, &ev.data, ev.origin, ev.deleted), (2, &v2, Origin::Local, false));
    assert_eq!(store.event(&id("e1")).await.unwrap(), Some(ev.clone()));

    let stale = data("Lost update", at(12, 0), at(13, 0));
    expect_conflict(store.update_local_event(&id("e1"), &stale, Some(1)).await, &["e1", "1", "2"]);
    assert_eq!(store.event(&id("e1")).await.unwrap(), Some(ev), "a refused update changes nothing");

    let v3 = data("Class (again)", at(14, 0), at(15, 0));
    let ev = store.update_local_event(&id("e1"), &v3, None).await.unwrap();
    assert_eq!(ev.version, 3);
    assert_eq!(ids_in_range(&store, &cal, at(14, 0), at(15, 0)).await, ["e1"], "the range index follows the update");
    assert!(ids_in_range(&store, &cal, at(9, 0), at(11, 0)).await.is_empty());

    let from_exchange = pulled(&store, &cal, "x1", data("Outlook meeting", at(9, 0), at(10, 0)), "AAMk-x1").await;
    expect_conflict(store.update_local_event(&id("x1"), &v2, None).await, &["read-only", "Exchange"]);
    assert_eq!(store.event(&id("x1")).await.unwrap(), Some(from_exchange));

    expect_not_found(store.update_local_event(&id("missing"), &v2, None).await);

    pushed(&store, &cal, &ev, "AAMk-e1").await;
    store.delete_local_event(&id("e1")).await.unwrap();
    expect_conflict(store.update_local_event(&id("e1"), &v2, None).await, &["e1", "deleted"]);
}

/// Deleting a local event always leaves a tombstone (version bumped) for the push: even one
/// without a sync record, whose create may have reached Exchange with its confirmation lost.
/// Tombstones are not live. Exchange events are read-only.
pub async fn local_event_delete_tombstone_or_removal(store: Arc<dyn Store>) {
    let (_, cal) = setup(&store).await;
    store.create_local_event(cal.id, &id("never-pushed"), &data("Draft", at(9, 0), at(10, 0))).await.unwrap();
    store.delete_local_event(&id("never-pushed")).await.unwrap();
    let t = store.event(&id("never-pushed")).await.unwrap().expect("a tombstone, even without a sync record");
    assert!(t.deleted);
    assert_eq!(t.version, 2);
    assert!(store.events_in_range(cal.id, at(0, 0), at(23, 0)).await.unwrap().is_empty(), "tombstones are not live");

    let synced = store.create_local_event(cal.id, &id("synced"), &data("Class", at(9, 0), at(10, 0))).await.unwrap();
    pushed(&store, &cal, &synced, "AAMk-synced").await;
    store.delete_local_event(&id("synced")).await.unwrap();
    let tombstone = store.event(&id("synced")).await.unwrap().expect("a tombstone stays until the deletion is pushed");
    assert!(tombstone.deleted);
    assert_eq!(tombstone.version, 2);
    assert_eq!(tombstone.data, synced.data);
    store.delete_local_event(&id("synced")).await.expect("deleting a tombstone again is a no-op");
    assert_eq!(store.event(&id("synced")).await.unwrap(), Some(tombstone.clone()));
    assert_eq!(store.remote_id(&id("synced")).await.unwrap().as_deref(), Some("AAMk-synced"));
    assert!(ids_in_range(&store, &cal, at(0, 0), at(23, 0)).await.is_empty(), "tombstones are not live");
    let snap = store.snapshot(cal.id).await.unwrap();
    assert_eq!(snap.events.get(&id("synced")), Some(&tombstone));
    assert!(snap.records.contains_key(&id("synced")));

    let pulled_event = pulled(&store, &cal, "x1", data("Outlook meeting", at(11, 0), at(12, 0)), "AAMk-x1").await;
    expect_conflict(store.delete_local_event(&id("x1")).await, &["read-only", "Exchange"]);
    assert_eq!(store.event(&id("x1")).await.unwrap(), Some(pulled_event));

    expect_not_found(store.delete_local_event(&id("missing")).await);
}

/// `events_in_range`: live events of one calendar overlapping `[from, to)`, by start then id,
/// exact to the nanosecond; an empty or inverted range holds nothing.
pub async fn events_in_range_overlap_and_order(store: Arc<dyn Store>) {
    let (c, cal) = setup(&store).await;
    let other = calendar(&store, "bob@contoso.example", &c).await;
    let create = |cal_id, name: &'static str, start, end| {
        let store = store.clone();
        async move { store.create_local_event(cal_id, &id(name), &data(name, start, end)).await.unwrap() }
    };
    create(cal.id, "ends-at-from", at(8, 0), at(9, 0)).await;
    create(cal.id, "b-inside", at(9, 0), at(10, 0)).await;
    create(cal.id, "a-inside", at(9, 0), at(9, 30)).await;
    create(cal.id, "starts-at-to", at(10, 0), at(11, 0)).await;
    create(cal.id, "spans", at(7, 0), at(12, 0)).await;
    create(cal.id, "late-start", at(9, 45), at(9, 50)).await;
    create(other.id, "other-calendar", at(9, 0), at(10, 0)).await;
    let gone = create(cal.id, "tombstone", at(9, 0), at(10, 0)).await;
    pushed(&store, &cal, &gone, "AAMk-t").await;
    store.delete_local_event(&id("tombstone")).await.unwrap();
    pulled(&store, &cal, "from-exchange", data("x", at(9, 15), at(9, 20)), "AAMk-x").await;

    assert_eq!(
        ids_in_range(&store, &cal, at(9, 0), at(10, 0)).await,
        ["spans", "a-inside", "b-inside", "from-exchange", "late-start"],
        "half-open overlap, ordered by start then id, Exchange events included"
    );
    assert_eq!(ids_in_range(&store, &cal, at(11, 30), at(13, 0)).await, ["spans"]);
    assert!(ids_in_range(&store, &cal, at(13, 0), at(14, 0)).await.is_empty());
    assert!(ids_in_range(&store, &cal, at(10, 0), at(9, 0)).await.is_empty(), "an inverted range is empty");
    assert!(ids_in_range(&store, &cal, at(9, 10), at(9, 10)).await.is_empty(), "an empty range is empty");
    assert_eq!(ids_in_range(&store, &other, at(0, 0), at(23, 0)).await, ["other-calendar"]);

    // Sub-second precision: boundaries are exact, not rounded.
    let start = at(20, 0) + Duration::nanoseconds(250_000_500);
    create(cal.id, "precise", start, start + Duration::minutes(5)).await;
    assert!(ids_in_range(&store, &cal, at(19, 0), start).await.is_empty(), "an event starting at `to` is outside");
    assert_eq!(ids_in_range(&store, &cal, at(19, 0), start + Duration::nanoseconds(1)).await, ["precise"]);
    let end = start + Duration::minutes(5);
    assert!(ids_in_range(&store, &cal, end, at(21, 0)).await.is_empty(), "an event ending at `from` is outside");
    assert_eq!(ids_in_range(&store, &cal, end - Duration::nanoseconds(1), at(21, 0)).await, ["precise"]);
    let events = store.events_in_range(cal.id, at(19, 0), at(21, 0)).await.unwrap();
    assert_eq!(events[0].data.start, start, "instants round-trip exactly");
}

/// `busy_times` reads the claims on time of several calendars at once: live events overlapping
/// the half-open range, free ones included (the policy decides), cancelled events, series
/// masters and tombstones left out; by calendar, then start. `calendars_by_id` finds the
/// existing calendars among ids, by id.
pub async fn busy_times_of_many_calendars_in_one_read(store: Arc<dyn Store>) {
    let (c, anna) = setup(&store).await;
    let bob = calendar(&store, "bob@contoso.example", &c).await;
    let carol = calendar(&store, "carol@contoso.example", &c).await;
    let with = |subject: &str, start, end, f: &dyn Fn(&mut EventData)| {
        let mut d = data(subject, start, end);
        f(&mut d);
        d
    };
    store.create_local_event(anna.id, &id("a-busy"), &data("Busy", at(9, 0), at(10, 0))).await.unwrap();
    let free = with("Free", at(8, 0), at(8, 30), &|d| d.show_as = ShowAs::Free);
    store.create_local_event(anna.id, &id("a-free"), &free).await.unwrap();
    let oof = with("Away", at(7, 0), at(12, 0), &|d| d.show_as = ShowAs::Oof);
    pulled(&store, &bob, "b-oof", oof, "AAMk-b-oof").await;
    let cancelled = with("Off", at(9, 0), at(10, 0), &|d| d.cancelled = true);
    pulled(&store, &bob, "b-cancelled", cancelled.clone(), "AAMk-b-c").await;
    let master = with("Weekly", at(9, 0), at(10, 0), &|d| d.series.kind = SeriesKind::Master);
    pulled(&store, &bob, "b-master", master, "AAMk-b-m").await;
    let gone = store.create_local_event(bob.id, &id("b-gone"), &data("Gone", at(9, 0), at(10, 0))).await.unwrap();
    pushed(&store, &bob, &gone, "AAMk-b-gone").await;
    store.delete_local_event(&id("b-gone")).await.unwrap();
    store.create_local_event(bob.id, &id("b-late"), &data("Late", at(10, 0), at(11, 0))).await.unwrap();
    store.create_local_event(carol.id, &id("c-busy"), &data("Not asked", at(9, 0), at(10, 0))).await.unwrap();
    // Long events (over a day) starting well before the range: one covers it, one ended before.
    let holiday =
        with("Holiday", at(0, 0) - Duration::days(10), at(0, 0) + Duration::days(3), &|d| d.show_as = ShowAs::Oof);
    store.create_local_event(anna.id, &id("a-holiday"), &holiday).await.unwrap();
    let over = data("Conference", at(0, 0) - Duration::days(10), at(0, 0) - Duration::days(2));
    store.create_local_event(anna.id, &id("a-over"), &over).await.unwrap();

    let busy = store.busy_times(&[bob.id, anna.id], at(8, 0), at(10, 0)).await.unwrap();
    let got: Vec<(i64, DateTime<Utc>, DateTime<Utc>, ShowAs)> =
        busy.iter().map(|b| (b.calendar_id, b.start, b.end, b.show_as)).collect();
    let mut want = vec![
        (anna.id, at(0, 0) - Duration::days(10), at(0, 0) + Duration::days(3), ShowAs::Oof),
        (anna.id, at(8, 0), at(8, 30), ShowAs::Free),
        (anna.id, at(9, 0), at(10, 0), ShowAs::Busy),
        (bob.id, at(7, 0), at(12, 0), ShowAs::Oof),
    ];
    want.sort_by_key(|w| (w.0, w.1, w.2));
    assert_eq!(got, want, "b-late starts at `to`; a-over ended; cancelled, master, tombstone and carol are left out");
    assert!(store.busy_times(&[anna.id], at(10, 0), at(8, 0)).await.unwrap().is_empty(), "an inverted range");
    assert!(store.busy_times(&[], at(8, 0), at(10, 0)).await.unwrap().is_empty(), "no calendars");

    // A change of content moves the claim with it: cancelled no more, then busy elsewhere.
    let back = Event {
        version: 2,
        data: data("On again", at(13, 0), at(14, 0)),
        ..exchange_event(&bob, "b-cancelled", cancelled, 1)
    };
    store.commit(bob.id, &[Write::PutEvent(back)], &CursorUpdate::Keep).await.unwrap();
    let busy = store.busy_times(&[bob.id], at(12, 0), at(15, 0)).await.unwrap();
    assert_eq!(busy.iter().map(|b| (b.start, b.show_as)).collect::<Vec<_>>(), [(at(13, 0), ShowAs::Busy)]);
    store
        .update_local_event(
            &id("a-busy"),
            &with("Tentative", at(9, 0), at(10, 0), &|d| d.show_as = ShowAs::Tentative),
            Some(1),
        )
        .await
        .unwrap();
    let busy = store.busy_times(&[anna.id], at(9, 0), at(10, 0)).await.unwrap();
    assert_eq!(busy.iter().map(|b| b.show_as).collect::<Vec<_>>(), [ShowAs::Oof, ShowAs::Tentative], "holiday, then");

    let found = store.calendars_by_id(&[carol.id, 9_999, anna.id, anna.id]).await.unwrap();
    let mut want = vec![anna.id, carol.id];
    want.sort();
    assert_eq!(found.iter().map(|c| c.id).collect::<Vec<_>>(), want, "existing ones, each once, by id");
    assert_eq!(found.iter().find(|c| c.id == carol.id).map(|c| c.email.as_str()), Some("carol@contoso.example"));
    assert!(store.calendars_by_id(&[]).await.unwrap().is_empty());
}

// --- commit ----------------------------------------------------------------------------------

/// `PutEvent` inserts, replaces only a lower stored version, treats an identical row as a
/// no-op, and refuses anything else; `RemoveEvent` removes the event with its record.
pub async fn commit_put_event_versions(store: Arc<dyn Store>) {
    let (c, cal) = setup(&store).await;
    let keep = CursorUpdate::Keep;
    let v1 = exchange_event(&cal, "x1", data("Meeting", at(9, 0), at(10, 0)), 1);
    assert_eq!(store.commit(cal.id, &[Write::PutEvent(v1.clone())], &keep).await.unwrap(), stats(1, 0, 0));
    assert_eq!(store.event(&id("x1")).await.unwrap(), Some(v1.clone()));

    let v2 = Event { version: 2, data: data("Meeting (moved)", at(11, 0), at(12, 0)), ..v1.clone() };
    assert_eq!(store.commit(cal.id, &[Write::PutEvent(v2.clone())], &keep).await.unwrap(), stats(1, 0, 0));
    assert_eq!(store.event(&id("x1")).await.unwrap(), Some(v2.clone()));
    assert_eq!(ids_in_range(&store, &cal, at(11, 0), at(12, 0)).await, ["x1"]);

    assert_eq!(store.commit(cal.id, &[Write::PutEvent(v2.clone())], &keep).await.unwrap(), stats(0, 0, 0));

    let same_version = Event { data: data("Other", at(9, 0), at(10, 0)), ..v2.clone() };
    expect_conflict(store.commit(cal.id, &[Write::PutEvent(same_version)], &keep).await, &["x1", "2"]);
    expect_conflict(store.commit(cal.id, &[Write::PutEvent(v1.clone())], &keep).await, &["x1", "1", "2"]);
    assert_eq!(store.event(&id("x1")).await.unwrap(), Some(v2.clone()));

    // A commit's writes stay inside its calendar.
    let other = calendar(&store, "bob@contoso.example", &c).await;
    let foreign = exchange_event(&other, "y1", data("Elsewhere", at(9, 0), at(10, 0)), 1);
    expect_conflict(store.commit(cal.id, &[Write::PutEvent(foreign)], &keep).await, &["y1"]);
    let moved = Event { calendar_id: other.id, version: 3, ..v2.clone() };
    expect_conflict(store.commit(other.id, &[Write::PutEvent(moved)], &keep).await, &["x1"]);
    assert_eq!(store.event(&id("y1")).await.unwrap(), None);
    assert_eq!(store.event(&id("x1")).await.unwrap(), Some(v2.clone()));

    store.commit(cal.id, &[Write::PutRecord(record(&cal, &v2, "AAMk-x1", "ck-2"))], &keep).await.unwrap();
    assert_eq!(store.commit(other.id, &[Write::RemoveEvent(id("x1"))], &keep).await.unwrap(), stats(0, 0, 0));
    assert!(store.event(&id("x1")).await.unwrap().is_some(), "a commit cannot remove another calendar's event");
    assert_eq!(store.commit(cal.id, &[Write::RemoveEvent(id("x1"))], &keep).await.unwrap(), stats(1, 1, 0));
    assert_eq!(store.event(&id("x1")).await.unwrap(), None);
    assert_eq!(store.remote_id(&id("x1")).await.unwrap(), None, "the record goes with the event");
    assert_eq!(store.commit(cal.id, &[Write::RemoveEvent(id("x1"))], &keep).await.unwrap(), stats(0, 0, 0));

    expect_not_found(store.commit(cal.id + other.id + 1000, &[], &CursorUpdate::Set(Cursor("c".into()))).await);
}

/// `PutRecord` upserts by local id; one remote item links to one event per calendar;
/// `RemoveRecord` removes only the record.
pub async fn commit_records_and_remote_ids(store: Arc<dyn Store>) {
    let (_, cal) = setup(&store).await;
    let keep = CursorUpdate::Keep;
    let a = store.create_local_event(cal.id, &id("a"), &data("A", at(9, 0), at(10, 0))).await.unwrap();
    let b = store.create_local_event(cal.id, &id("b"), &data("B", at(11, 0), at(12, 0))).await.unwrap();
    assert_eq!(store.remote_id(&id("a")).await.unwrap(), None);

    let rec_a = record(&cal, &a, "AAMk-a", "ck-1");
    assert_eq!(store.commit(cal.id, &[Write::PutRecord(rec_a.clone())], &keep).await.unwrap(), stats(0, 1, 0));
    assert_eq!(store.remote_id(&id("a")).await.unwrap().as_deref(), Some("AAMk-a"));
    assert_eq!(store.snapshot(cal.id).await.unwrap().records.get(&id("a")), Some(&rec_a));

    let rec_a2 = SyncRecord { remote_version: "ck-2".into(), local_version: 7, ..rec_a.clone() };
    assert_eq!(store.commit(cal.id, &[Write::PutRecord(rec_a2.clone())], &keep).await.unwrap(), stats(0, 1, 0));
    assert_eq!(store.snapshot(cal.id).await.unwrap().records.get(&id("a")), Some(&rec_a2));

    let steal = record(&cal, &b, "AAMk-a", "ck-1");
    expect_conflict(store.commit(cal.id, &[Write::PutRecord(steal)], &keep).await, &["AAMk-a"]);
    assert_eq!(store.remote_id(&id("b")).await.unwrap(), None);

    // Re-pointing a record at another remote item frees the old one.
    let rec_a3 = SyncRecord { remote_id: "AAMk-a-new".into(), ..rec_a2.clone() };
    let rec_b = record(&cal, &b, "AAMk-a", "ck-9");
    let stats_ = store.commit(cal.id, &[Write::PutRecord(rec_a3), Write::PutRecord(rec_b)], &keep).await.unwrap();
    assert_eq!(stats_, stats(0, 2, 0));
    assert_eq!(store.remote_id(&id("a")).await.unwrap().as_deref(), Some("AAMk-a-new"));
    assert_eq!(store.remote_id(&id("b")).await.unwrap().as_deref(), Some("AAMk-a"));

    assert_eq!(store.commit(cal.id, &[Write::RemoveRecord(id("a"))], &keep).await.unwrap(), stats(0, 1, 0));
    assert_eq!(store.remote_id(&id("a")).await.unwrap(), None);
    assert!(store.event(&id("a")).await.unwrap().is_some(), "RemoveRecord keeps the event");
    assert_eq!(store.commit(cal.id, &[Write::RemoveRecord(id("a"))], &keep).await.unwrap(), stats(0, 0, 0));
}

/// A commit is one transaction: a failing write rolls back the writes before it and the
/// cursor.
pub async fn commit_is_all_or_nothing(store: Arc<dyn Store>) {
    let (_, cal) = setup(&store).await;
    store.commit(cal.id, &[], &CursorUpdate::Set(Cursor("page-1".into()))).await.unwrap();
    let settled = pulled(&store, &cal, "settled", data("Settled", at(8, 0), at(9, 0)), "AAMk-settled").await;
    let bumped = Event { version: 5, ..settled.clone() };
    store.commit(cal.id, &[Write::PutEvent(bumped.clone())], &CursorUpdate::Keep).await.unwrap();

    let fresh = exchange_event(&cal, "fresh", data("Fresh", at(10, 0), at(11, 0)), 1);
    let writes = [
        Write::PutEvent(fresh.clone()),
        Write::PutRecord(record(&cal, &fresh, "AAMk-fresh", "ck-1")),
        Write::RemoveRecord(id("settled")),
        // Stale: the store has version 5.
        Write::PutEvent(Event { version: 3, data: data("Stale", at(8, 0), at(9, 0)), ..settled.clone() }),
    ];
    let message =
        expect_conflict(store.commit(cal.id, &writes, &CursorUpdate::Set(Cursor("page-2".into()))).await, &["settled"]);
    assert!(message.contains('5') && message.contains('3'), "the conflict names both versions: {message}");

    assert_eq!(store.event(&id("fresh")).await.unwrap(), None, "earlier writes are rolled back");
    assert_eq!(store.remote_id(&id("fresh")).await.unwrap(), None);
    assert_eq!(store.remote_id(&id("settled")).await.unwrap().as_deref(), Some("AAMk-settled"));
    assert_eq!(store.event(&id("settled")).await.unwrap(), Some(bumped));
    assert_eq!(store.cursor(cal.id).await.unwrap(), Some(Cursor("page-1".into())), "the cursor is rolled back");

    // The store is still usable, and the same page without the stale write goes through.
    let stats_ = store.commit(cal.id, &writes[..3], &CursorUpdate::Set(Cursor("page-2".into()))).await.unwrap();
    assert_eq!(stats_, stats(1, 2, 1));
    assert_eq!(store.cursor(cal.id).await.unwrap(), Some(Cursor("page-2".into())));
    assert_eq!(store.event(&id("fresh")).await.unwrap(), Some(fresh));
}

/// Committing the same page twice (a retry, or an idle sync) writes nothing and says so.
pub async fn commit_identical_recommit_writes_nothing(store: Arc<dyn Store>) {
    let (_, cal) = setup(&store).await;
    let a = exchange_event(&cal, "a", data("A", at(9, 0), at(10, 0)), 1);
    let b = exchange_event(&cal, "b", data("B", at(10, 0), at(11, 0)), 1);
    let writes = vec![
        Write::PutEvent(a.clone()),
        Write::PutRecord(record(&cal, &a, "AAMk-a", "ck-1")),
        Write::PutEvent(b.clone()),
        Write::PutRecord(record(&cal, &b, "AAMk-b", "ck-1")),
    ];
    let cursor = CursorUpdate::Set(Cursor("delta-1".into()));
    assert_eq!(store.commit(cal.id, &writes, &cursor).await.unwrap(), stats(2, 2, 1));
    let before = store.snapshot(cal.id).await.unwrap();

    let again = store.commit(cal.id, &writes, &cursor).await.unwrap();
    assert_eq!(again, stats(0, 0, 0));
    assert_eq!(again.total(), 0, "an idle sync reports zero writes");
    assert_eq!(store.commit(cal.id, &[], &CursorUpdate::Keep).await.unwrap().total(), 0);
    let after = store.snapshot(cal.id).await.unwrap();
    assert_eq!(after.events, before.events);
    assert_eq!(after.records, before.records);

    // One field of one record differs: exactly one row changes.
    let changed =
        vec![Write::PutRecord(SyncRecord { remote_version: "ck-2".into(), ..record(&cal, &a, "AAMk-a", "ck-1") })];
    assert_eq!(store.commit(cal.id, &changed, &cursor).await.unwrap(), stats(0, 1, 0));
}

/// A page of more writes than a backend sends in one statement commits whole, and writes to
/// the same rows within one commit take effect in order (the last one wins; a row written then
/// removed is gone; a removed row written again is back).
pub async fn commit_large_pages_in_order(store: Arc<dyn Store>) {
    let (_, cal) = setup(&store).await;
    let keep = CursorUpdate::Keep;
    let n = 1_234;
    let events: Vec<Event> = (0..n)
        .map(|i| exchange_event(&cal, &format!("p{i:04}"), data(&format!("Page {i}"), at(9, 0), at(10, 0)), 1))
        .collect();
    let mut writes = Vec::new();
    for (i, e) in events.iter().enumerate() {
        writes.push(Write::PutEvent(e.clone()));
        writes.push(Write::PutRecord(record(&cal, e, &format!("AAMk-p{i:04}"), "ck-1")));
    }
    let cursor = CursorUpdate::Set(Cursor("after-the-page".into()));
    assert_eq!(store.commit(cal.id, &writes, &cursor).await.unwrap(), stats(n, n, 1));
    let snap = store.snapshot(cal.id).await.unwrap();
    assert_eq!((snap.events.len(), snap.records.len()), (n as usize, n as usize));
    assert_eq!(snap.events.get(&id("p1233")), Some(&events[1233]));
    assert_eq!(snap.records.get(&id("p0777")).map(|r| r.remote_id.as_str()), Some("AAMk-p0777"));
    assert_eq!(store.commit(cal.id, &writes, &cursor).await.unwrap(), stats(0, 0, 0), "a replay writes nothing");

    // In one commit: p0000 updated twice, p0001 removed, p0002 removed then written again,
    // a new event written then removed, and p0003's remote item handed to p0004 after p0003
    // lets go of it.
    let v2 = Event { version: 2, data: data("Twice", at(11, 0), at(12, 0)), ..events[0].clone() };
    let v3 = Event { version: 3, data: data("Thrice", at(13, 0), at(14, 0)), ..events[0].clone() };
    let passing = exchange_event(&cal, "passing", data("Passing", at(9, 0), at(10, 0)), 1);
    let writes = vec![
        Write::PutEvent(v2),
        Write::PutEvent(v3.clone()),
        Write::RemoveEvent(id("p0001")),
        Write::RemoveEvent(id("p0002")),
        Write::PutEvent(events[2].clone()),
        Write::PutRecord(record(&cal, &events[2], "AAMk-p0002", "ck-2")),
        Write::PutEvent(passing.clone()),
        Write::PutRecord(record(&cal, &passing, "AAMk-passing", "ck-1")),
        Write::RemoveEvent(id("passing")),
        Write::PutRecord(record(&cal, &events[3], "AAMk-p0003-moved", "ck-2")),
        Write::PutRecord(record(&cal, &events[4], "AAMk-p0003", "ck-2")),
    ];
    // Counted write by write: p0000 twice, p0001, p0002 out and in, passing in and out; the
    // records of p0001, p0002 (out and in), passing (in and out), p0003 and p0004.
    assert_eq!(store.commit(cal.id, &writes, &keep).await.unwrap(), stats(7, 7, 0));
    let snap = store.snapshot(cal.id).await.unwrap();
    assert_eq!(snap.events.len(), n as usize - 1);
    assert_eq!(snap.events.get(&id("p0000")), Some(&v3));
    assert!(!snap.events.contains_key(&id("p0001")) && !snap.records.contains_key(&id("p0001")));
    assert_eq!(snap.events.get(&id("p0002")), Some(&events[2]));
    assert_eq!(snap.records.get(&id("p0002")).map(|r| r.remote_version.as_str()), Some("ck-2"));
    assert!(!snap.events.contains_key(&id("passing")) && !snap.records.contains_key(&id("passing")));
    assert_eq!(store.remote_id(&id("p0003")).await.unwrap().as_deref(), Some("AAMk-p0003-moved"));
    assert_eq!(store.remote_id(&id("p0004")).await.unwrap().as_deref(), Some("AAMk-p0003"));
    assert_eq!(ids_in_range(&store, &cal, at(13, 0), at(14, 0)).await, ["p0000"], "the range columns follow");
}

/// A snapshot holds every event of the calendar (tombstones too) and its sync records, and
/// nothing of other calendars.
pub async fn snapshot_contents(store: Arc<dyn Store>) {
    let (c, cal) = setup(&store).await;
    let other = calendar(&store, "bob@contoso.example", &c).await;
    let empty = store.snapshot(cal.id).await.unwrap();
    assert!(empty.events.is_empty() && empty.records.is_empty() && empty.by_remote.is_empty());

    let unsynced = store.create_local_event(cal.id, &id("unsynced"), &data("U", at(9, 0), at(10, 0))).await.unwrap();
    let gone = store.create_local_event(cal.id, &id("gone"), &data("G", at(10, 0), at(11, 0))).await.unwrap();
    pushed(&store, &cal, &gone, "AAMk-gone").await;
    store.delete_local_event(&id("gone")).await.unwrap();
    let pulled_event = pulled(&store, &cal, "pulled", data("P", at(12, 0), at(13, 0)), "AAMk-pulled").await;
    pulled(&store, &other, "elsewhere", data("E", at(12, 0), at(13, 0)), "AAMk-elsewhere").await;

    let snap = store.snapshot(cal.id).await.unwrap();
    let mut ids: Vec<&str> = snap.events.keys().map(|k| k.as_str()).collect();
    ids.sort();
    assert_eq!(ids, ["gone", "pulled", "unsynced"]);
    assert_eq!(snap.events[&id("unsynced")], unsynced);
    assert_eq!(snap.events[&id("pulled")], pulled_event);
    assert!(snap.events[&id("gone")].deleted);
    let mut records: Vec<&str> = snap.records.keys().map(|k| k.as_str()).collect();
    records.sort();
    assert_eq!(records, ["gone", "pulled"]);
    assert_eq!(snap.records[&id("pulled")], record(&cal, &pulled_event, "AAMk-pulled", "ck-1"));
    assert_eq!(snap.by_remote.get("AAMk-gone"), Some(&id("gone")));
    assert_eq!(snap.by_remote.get("AAMk-pulled"), Some(&id("pulled")));
    assert_eq!(snap.by_remote.get("AAMk-elsewhere"), None);

    expect_not_found(store.snapshot(cal.id + other.id + 1000).await);
}

/// `has_local_changes`: true exactly while a local event is new, changed since its record,
/// or deleted; Exchange's events and other calendars never count.
pub async fn local_changes_are_told_without_the_snapshot(store: Arc<dyn Store>) {
    let (c, cal) = setup(&store).await;
    let other = calendar(&store, "room1@contoso.example", &c).await;
    assert!(!store.has_local_changes(cal.id).await.unwrap(), "an empty calendar");
    pulled(&store, &cal, "x1", data("Outlook meeting", at(11, 0), at(12, 0)), "AAMk-x1").await;
    assert!(!store.has_local_changes(cal.id).await.unwrap(), "Exchange's events are never pushed");

    let ev = store.create_local_event(cal.id, &id("course"), &data("Course", at(9, 0), at(10, 0))).await.unwrap();
    assert!(store.has_local_changes(cal.id).await.unwrap(), "a new local event");
    assert!(!store.has_local_changes(other.id).await.unwrap(), "another calendar's change is not this one's");
    pushed(&store, &cal, &ev, "AAMk-course").await;
    assert!(!store.has_local_changes(cal.id).await.unwrap(), "pushed: its record has its version");

    let changed = store
        .update_local_event(&id("course"), &data("Course (moved)", at(13, 0), at(14, 0)), Some(ev.version))
        .await
        .unwrap();
    assert!(store.has_local_changes(cal.id).await.unwrap(), "changed since its record");
    pushed(&store, &cal, &changed, "AAMk-course").await;
    assert!(!store.has_local_changes(cal.id).await.unwrap());

    store.delete_local_event(&id("course")).await.unwrap();
    assert!(store.has_local_changes(cal.id).await.unwrap(), "a deletion to push");
    let snap = store.snapshot(cal.id).await.unwrap();
    assert!(!planner::plan_push(&snap, &Window::around(at(0, 0), 30, 30)).is_empty(), "the planner agrees");
}

/// Cursors: set, kept, changed, cleared; writing the stored value again counts zero.
pub async fn cursor_set_keep_clear(store: Arc<dyn Store>) {
    let (c, cal) = setup(&store).await;
    let other = calendar(&store, "bob@contoso.example", &c).await;
    let set = |s: &str| CursorUpdate::Set(Cursor(s.into()));
    assert_eq!(store.cursor(cal.id).await.unwrap(), None);

    assert_eq!(store.commit(cal.id, &[], &set("c1")).await.unwrap(), stats(0, 0, 1));
    assert_eq!(store.cursor(cal.id).await.unwrap(), Some(Cursor("c1".into())));
    assert_eq!(store.commit(cal.id, &[], &set("c1")).await.unwrap(), stats(0, 0, 0));
    assert_eq!(store.commit(cal.id, &[], &CursorUpdate::Keep).await.unwrap(), stats(0, 0, 0));
    assert_eq!(store.cursor(cal.id).await.unwrap(), Some(Cursor("c1".into())));
    assert_eq!(store.cursor(other.id).await.unwrap(), None, "cursors are per calendar");

    assert_eq!(store.commit(cal.id, &[], &set("c2")).await.unwrap(), stats(0, 0, 1));
    assert_eq!(store.cursor(cal.id).await.unwrap(), Some(Cursor("c2".into())));

    assert_eq!(store.commit(cal.id, &[], &CursorUpdate::Clear).await.unwrap(), stats(0, 0, 1));
    assert_eq!(store.cursor(cal.id).await.unwrap(), None);
    assert_eq!(store.commit(cal.id, &[], &CursorUpdate::Clear).await.unwrap(), stats(0, 0, 0));
}

// --- the API's state: connections by id, secrets, keys, webhooks, outbox, sync status -------

fn sealed(key_id: &str, text: &str) -> SealedSecret {
    SealedSecret { key_id: key_id.into(), nonce: "bm9uY2U=".into(), ciphertext: text.into() }
}

fn note(msg: &str, event_type: &str) -> Notification {
    Notification {
        id: msg.into(),
        event_type: event_type.into(),
        created_at: at(7, 0),
        payload: format!(r#"{{"type":"{event_type}","data":{{}}}}"#),
    }
}

async fn webhook(store: &Arc<dyn Store>, wid: &str, events: &[&str]) -> Webhook {
    store
        .create_webhook(NewWebhook {
            id: wid.into(),
            url: format!("http://127.0.0.1:9/{wid}"),
            events: events.iter().map(|e| e.to_string()).collect(),
            description: String::new(),
            secret: sealed("k1", wid),
            created_at: at(6, 0),
        })
        .await
        .expect("create_webhook")
}

/// `create_connection` refuses a name in use; `update_connection` renames and changes by id.
pub async fn connection_create_and_update_by_id(store: Arc<dyn Store>) {
    let a = store.create_connection(new_connection("alpha")).await.unwrap();
    expect_conflict(store.create_connection(new_connection("alpha")).await, &["alpha"]);
    let b = store.create_connection(new_connection("beta")).await.unwrap();
    let renamed = store.update_connection(a.id, NewConnection { max_threads: 2, ..new_connection("gamma") }).await;
    let renamed = renamed.unwrap();
    assert_eq!((renamed.id, renamed.name.as_str(), renamed.max_threads), (a.id, "gamma", 2));
    assert_eq!(store.connection_by_name("alpha").await.unwrap(), None);
    expect_conflict(store.update_connection(b.id, new_connection("gamma")).await, &["gamma"]);
    expect_not_found(store.update_connection(a.id + 100, new_connection("delta")).await);
    assert!(matches!(store.create_connection(new_connection(" ")).await, Err(StoreError::Invalid(_))));
}

/// Sealed secrets are kept per owner, listed for rotation, replaced, and go with their owner.
pub async fn secrets_are_kept_per_owner(store: Arc<dyn Store>) {
    let (c, _) = setup(&store).await;
    let owner = SecretOwner::Connection(c.id);
    assert_eq!(store.secret(&owner).await.unwrap(), None);
    store.put_secret(&owner, &sealed("k1", "AAAA")).await.unwrap();
    assert_eq!(store.secret(&owner).await.unwrap(), Some(sealed("k1", "AAAA")));
    webhook(&store, "wh_1", &["event.created"]).await;
    let all = store.secrets().await.unwrap();
    assert_eq!(all.len(), 2, "{all:?}");
    assert!(all.contains(&(SecretOwner::Webhook("wh_1".into()), sealed("k1", "wh_1"))));
    store.put_secret(&owner, &sealed("k2", "BBBB")).await.unwrap();
    assert_eq!(store.secret(&owner).await.unwrap().unwrap().key_id, "k2");
    expect_not_found(store.put_secret(&SecretOwner::Connection(c.id + 100), &sealed("k1", "x")).await);
    store.delete_connection(c.id).await.unwrap();
    assert_eq!(store.secret(&owner).await.unwrap(), None);
    assert_eq!(store.secrets().await.unwrap().len(), 1);
}

/// API keys are found by hash only, listed and deleted.
pub async fn api_keys_by_hash(store: Arc<dyn Store>) {
    let new = |name: &str, scope, hash: &str| NewApiKey {
        name: name.into(),
        scope,
        hash: hash.into(),
        prefix: "cb_abcd".into(),
        created_at: at(9, 0),
    };
    let k = store.create_api_key(new("lms", Scope::Write, "h1")).await.unwrap();
    assert_eq!((k.name.as_str(), k.scope, k.created_at), ("lms", Scope::Write, at(9, 0)));
    assert_eq!(store.api_key_by_hash("h1").await.unwrap(), Some(k.clone()));
    assert_eq!(store.api_key_by_hash("h2").await.unwrap(), None);
    expect_conflict(store.create_api_key(new("again", Scope::Read, "h1")).await, &[]);
    store.create_api_key(new("ops", Scope::Admin, "h2")).await.unwrap();
    assert_eq!(store.api_keys().await.unwrap().len(), 2);
    store.delete_api_key(k.id).await.unwrap();
    assert_eq!(store.api_key_by_hash("h1").await.unwrap(), None);
    expect_not_found(store.delete_api_key(k.id).await);
}

/// A local write queues its messages in the same transaction, one delivery per subscribed
/// endpoint; a failed write queues nothing; a repeated message id is queued once.
pub async fn local_writes_queue_their_messages(store: Arc<dyn Store>) {
    let (_, cal) = setup(&store).await;
    webhook(&store, "wh_all", &["event.created", "event.updated", "event.deleted"]).await;
    webhook(&store, "wh_created", &["event.created"]).await;
    let d = data("Class", at(9, 0), at(10, 0));
    store.create_local_event_notify(cal.id, &id("e1"), &d, &[note("msg_1", "event.created")]).await.unwrap();
    let due = store.due_deliveries(at(23, 0), 10).await.unwrap();
    let mut to: Vec<&str> = due.iter().map(|d| d.webhook_id.as_str()).collect();
    to.sort();
    assert_eq!(to, ["wh_all", "wh_created"]);
    assert!(due.iter().all(|d| d.message_id == "msg_1" && d.event_type == "event.created" && d.attempts == 0));

    let d2 = data("Class (moved)", at(11, 0), at(12, 0));
    store.update_local_event_notify(&id("e1"), &d2, Some(1), &[note("msg_2", "event.updated")]).await.unwrap();
    // A stale version fails, and its message is not queued.
    let stale = store.update_local_event_notify(&id("e1"), &d, Some(1), &[note("msg_3", "event.updated")]).await;
    expect_conflict(stale, &["version"]);
    store.delete_local_event_notify(&id("e1"), &[note("msg_4", "event.deleted")]).await.unwrap();
    store.enqueue(&[note("msg_4", "event.deleted")]).await.unwrap();
    let due = store.due_deliveries(at(23, 0), 10).await.unwrap();
    let msgs: Vec<&str> = due.iter().map(|d| d.message_id.as_str()).collect();
    assert_eq!(msgs.len(), 4, "{msgs:?}");
    assert!(!msgs.contains(&"msg_3"), "{msgs:?}");
    assert_eq!(msgs.iter().filter(|m| **m == "msg_4").count(), 1, "{msgs:?}");
    assert_eq!(store.delivery_counts().await.unwrap(), DeliveryCounts { pending: 4, delivered: 0, failed: 0 });
}

/// Commits queue `Notify` writes atomically with the rest of the commit.
pub async fn commit_notify_is_atomic(store: Arc<dyn Store>) {
    let (_, cal) = setup(&store).await;
    webhook(&store, "wh", &["event.created"]).await;
    let ev = exchange_event(&cal, "x1", data("From Outlook", at(9, 0), at(10, 0)), 1);
    let writes = [Write::PutEvent(ev.clone()), Write::Notify(note("msg_x1", "event.created"))];
    store.commit(cal.id, &writes, &CursorUpdate::Keep).await.unwrap();
    assert_eq!(store.delivery_counts().await.unwrap().pending, 1);
    // A failing commit (stale version) leaves no message behind.
    let stale = [Write::Notify(note("msg_x2", "event.created")), Write::PutEvent(ev.clone())];
    let failed = store.commit(cal.id, &stale, &CursorUpdate::Keep).await;
    assert!(failed.is_ok(), "an identical event is a no-op: {failed:?}");
    let stale = [Write::Notify(note("msg_x3", "event.created")), Write::PutEvent(Event { version: 0, ..ev })];
    expect_conflict(store.commit(cal.id, &stale, &CursorUpdate::Keep).await, &["x1"]);
    let msgs: Vec<String> =
        store.due_deliveries(at(23, 0), 10).await.unwrap().into_iter().map(|d| d.message_id).collect();
    assert_eq!(msgs, ["msg_x1", "msg_x2"]);
}

/// Attempts are recorded: a retry waits until its time, delivered and failed leave the queue,
/// deleting an endpoint drops its deliveries.
pub async fn deliveries_retry_deliver_and_fail(store: Arc<dyn Store>) {
    webhook(&store, "wh", &["connection.failed"]).await;
    store.enqueue(&[note("m1", "connection.failed"), note("m2", "connection.failed")]).await.unwrap();
    store.enqueue(&[note("m3", "event.created")]).await.unwrap(); // nobody subscribed
    let due = store.due_deliveries(at(7, 0), 10).await.unwrap();
    assert_eq!(due.len(), 2);
    assert_eq!(store.due_deliveries(at(6, 59), 10).await.unwrap().len(), 0, "not due before the message");
    assert_eq!(store.due_deliveries(at(7, 0), 1).await.unwrap().len(), 1, "the limit holds");
    let (d1, d2) = (&due[0], &due[1]);
    store
        .record_delivery(d1.id, &DeliveryOutcome::Retry { next_attempt: at(8, 0), error: "HTTP 500".into() })
        .await
        .unwrap();
    store.record_delivery(d2.id, &DeliveryOutcome::Delivered { at: at(7, 1) }).await.unwrap();
    assert_eq!(store.due_deliveries(at(7, 30), 10).await.unwrap().len(), 0);
    let again = store.due_deliveries(at(8, 0), 10).await.unwrap();
    assert_eq!((again.len(), again[0].attempts), (1, 1));
    store.record_delivery(d1.id, &DeliveryOutcome::Failed { error: "HTTP 500".into() }).await.unwrap();
    assert_eq!(store.delivery_counts().await.unwrap(), DeliveryCounts { pending: 0, delivered: 1, failed: 1 });
    expect_not_found(store.record_delivery(999_999, &DeliveryOutcome::Delivered { at: at(9, 0) }).await);
    store.enqueue(&[note("m4", "connection.failed")]).await.unwrap();
    store.delete_webhook("wh").await.unwrap();
    assert_eq!(store.due_deliveries(at(23, 0), 10).await.unwrap().len(), 0);
    assert_eq!(store.webhook("wh").await.unwrap(), None);
    expect_not_found(store.delete_webhook("wh").await);
}

/// The last sync run per calendar is replaced by the next and goes with the calendar.
pub async fn sync_status_per_calendar(store: Arc<dyn Store>) {
    let (c, cal) = setup(&store).await;
    assert_eq!(store.sync_status(cal.id).await.unwrap(), None);
    let mut s = SyncStatus {
        calendar_id: cal.id,
        last_run: at(9, 0),
        state: "failed".into(),
        error: Some("authentication failed".into()),
        hint: Some("paste the secret's Value".into()),
        pulled: 0,
        pushed: 0,
        duration_ms: 12,
        throttled_ms: 0,
    };
    store.set_sync_status(&s).await.unwrap();
    s.state = "ok".into();
    s.error = None;
    store.set_sync_status(&s).await.unwrap();
    assert_eq!(store.sync_status(cal.id).await.unwrap(), Some(s.clone()));
    assert_eq!(store.sync_statuses().await.unwrap(), vec![s]);
    store.delete_connection(c.id).await.unwrap();
    assert_eq!(store.sync_statuses().await.unwrap(), vec![]);
}

/// The time a run waited on Exchange's throttling is kept with the status and replaced by
/// the next run's.
pub async fn sync_status_keeps_throttling_waits(store: Arc<dyn Store>) {
    let (_, cal) = setup(&store).await;
    let mut s = SyncStatus {
        calendar_id: cal.id,
        last_run: at(9, 0),
        state: "ok".into(),
        error: None,
        hint: None,
        pulled: 5,
        pushed: 0,
        duration_ms: 2_140,
        throttled_ms: 2_000,
    };
    store.set_sync_status(&s).await.unwrap();
    assert_eq!(store.sync_status(cal.id).await.unwrap().map(|s| s.throttled_ms), Some(2_000));
    assert_eq!(store.sync_statuses().await.unwrap(), vec![s.clone()]);
    s.last_run = at(10, 0);
    s.throttled_ms = 0;
    store.set_sync_status(&s).await.unwrap();
    assert_eq!(store.sync_status(cal.id).await.unwrap(), Some(s), "the next run's wait replaces it");
}

/// Deleting a site keeps its calendars linked, without a site; an unknown site is not found.
pub async fn site_delete_keeps_its_calendars(store: Arc<dyn Store>) {
    let c = connection(&store, "a").await;
    let site = store.upsert_site("North", c.id).await.unwrap();
    let other = store.upsert_site("South", c.id).await.unwrap();
    let cal = store.upsert_calendar(NewCalendar { site_id: Some(site.id), ..new_calendar("r@a.example", &c) }).await;
    let cal = cal.unwrap();
    store.delete_site(site.id).await.unwrap();
    assert_eq!(store.sites().await.unwrap(), vec![other]);
    let kept = store.calendar(cal.id).await.unwrap().expect("the calendar stays linked");
    assert_eq!(kept.site_id, None);
    expect_not_found(store.delete_site(site.id).await);
}

/// Unlinking a calendar removes its events, records, cursor and sync status, and nothing of
/// other calendars.
pub async fn calendar_delete_removes_its_state(store: Arc<dyn Store>) {
    let (c, cal) = setup(&store).await;
    let keep = calendar(&store, "bob@contoso.example", &c).await;
    let ev = pulled(&store, &cal, "e1", data("Pulled", at(9, 0), at(10, 0)), "AAMk1").await;
    let kept = pulled(&store, &keep, "e2", data("Other", at(9, 0), at(10, 0)), "AAMk2").await;
    store.create_local_event(cal.id, &id("l1"), &data("Local", at(11, 0), at(12, 0))).await.unwrap();
    store.commit(cal.id, &[], &CursorUpdate::Set(Cursor("c1".into()))).await.unwrap();
    let status = SyncStatus {
        calendar_id: cal.id,
        last_run: at(8, 0),
        state: "ok".into(),
        error: None,
        hint: None,
        pulled: 1,
        pushed: 0,
        duration_ms: 5,
        throttled_ms: 0,
    };
    store.set_sync_status(&status).await.unwrap();

    store.delete_calendar(cal.id).await.unwrap();
    assert_eq!(store.calendar(cal.id).await.unwrap(), None);
    assert_eq!(store.event(&ev.id).await.unwrap(), None);
    assert_eq!(store.event(&id("l1")).await.unwrap(), None);
    assert_eq!(store.remote_id(&ev.id).await.unwrap(), None);
    assert_eq!(store.cursor(cal.id).await.unwrap(), None);
    assert_eq!(store.sync_status(cal.id).await.unwrap(), None);
    assert_eq!(store.event(&kept.id).await.unwrap(), Some(kept));
    expect_not_found(store.delete_calendar(cal.id).await);
}

/// Deliveries that ended before the cut-off are forgotten with their messages; pending ones
/// stay. A pruned message's id can be queued again.
pub async fn deliveries_are_pruned_once_ended(store: Arc<dyn Store>) {
    webhook(&store, "wh", &["connection.failed"]).await;
    let notes = [note("m1", "connection.failed"), note("m2", "connection.failed"), note("m3", "connection.failed")];
    store.enqueue(&notes).await.unwrap();
    let due = store.due_deliveries(at(7, 0), 10).await.unwrap();
    assert_eq!(due.len(), 3);
    store.record_delivery(due[0].id, &DeliveryOutcome::Delivered { at: at(7, 1) }).await.unwrap();
    store.record_delivery(due[1].id, &DeliveryOutcome::Failed { error: "HTTP 410".into() }).await.unwrap();
    assert_eq!(store.prune_deliveries(at(7, 0)).await.unwrap(), 0, "nothing ended before 07:00");
    assert_eq!(store.prune_deliveries(at(12, 0)).await.unwrap(), 2);
    assert_eq!(store.delivery_counts().await.unwrap(), DeliveryCounts { pending: 1, delivered: 0, failed: 0 });
    let left: Vec<String> =
        store.due_deliveries(at(12, 0), 10).await.unwrap().into_iter().map(|d| d.message_id).collect();
    assert_eq!(left, [due[2].message_id.clone()]);
    store.enqueue(&[note(&due[0].message_id, "connection.failed")]).await.unwrap();
    assert_eq!(store.due_deliveries(at(12, 0), 10).await.unwrap().len(), 2, "the pruned message id is new again");
    store.enqueue(&[note(&due[2].message_id, "connection.failed")]).await.unwrap();
    assert_eq!(store.due_deliveries(at(12, 0), 10).await.unwrap().len(), 2, "a pending message is not queued twice");
}

/// Administrators are found by user name, case-insensitively; storing one again replaces its
/// password hash and keeps its id and creation time.
pub async fn admins_by_name_with_password_replaced(store: Arc<dyn Store>) {
    let new = |name: &str, hash: &str, now| NewAdmin { username: name.into(), password_hash: hash.into(), now };
    assert_eq!(store.admin_by_username("ops").await.unwrap(), None);
    let a = store.upsert_admin(new(" Ops ", "$argon2id$one", at(9, 0))).await.unwrap();
    assert_eq!((a.username.as_str(), a.password_hash.as_str()), ("ops", "$argon2id$one"));
    assert_eq!((a.created_at, a.updated_at), (at(9, 0), at(9, 0)));
    assert_eq!(store.admin_by_username("OPS").await.unwrap(), Some(a.clone()));
    let b = store.upsert_admin(new("ops", "$argon2id$two", at(10, 0))).await.unwrap();
    assert_eq!((b.id, b.created_at, b.updated_at), (a.id, at(9, 0), at(10, 0)));
    assert_eq!(store.admin_by_username("ops").await.unwrap().unwrap().password_hash, "$argon2id$two");
    let c = store.upsert_admin(new("second", "$argon2id$three", at(11, 0))).await.unwrap();
    assert_ne!(c.id, a.id);
    assert!(matches!(store.upsert_admin(new("  ", "h", at(9, 0))).await, Err(StoreError::Invalid(_))));
    assert!(matches!(store.upsert_admin(new("x", "", at(9, 0))).await, Err(StoreError::Invalid(_))));
}

/// A calendar has at most one subscription: recording another replaces it; a subscription is
/// found by its id and listed; forgetting one twice is fine; unlinking the calendar forgets
/// its subscription; a calendar that does not exist has none.
pub async fn subscriptions_one_per_calendar(store: Arc<dyn Store>) {
    let (c, cal) = setup(&store).await;
    let other = calendar(&store, "room1@contoso.example", &c).await;
    let sub = |id: &str, calendar_id, h| NotificationSubscription {
        calendar_id,
        id: id.into(),
        client_state_hash: "ab".repeat(32),
        expires_at: at(h, 0),
    };
    assert!(store.subscriptions().await.unwrap().is_empty());
    store.put_subscription(&sub("s1", cal.id, 9)).await.unwrap();
    store.put_subscription(&sub("s2", other.id, 10)).await.unwrap();
    assert_eq!(store.subscription("s1").await.unwrap(), Some(sub("s1", cal.id, 9)));
    store.put_subscription(&sub("s3", cal.id, 11)).await.unwrap();
    assert_eq!(store.subscription("s1").await.unwrap(), None, "replaced");
    let all = store.subscriptions().await.unwrap();
    assert_eq!(all, vec![sub("s3", cal.id, 11), sub("s2", other.id, 10)]);
    store.delete_subscription("s2").await.unwrap();
    store.delete_subscription("s2").await.unwrap();
    assert_eq!(store.subscriptions().await.unwrap(), vec![sub("s3", cal.id, 11)]);
    store.delete_calendar(cal.id).await.unwrap();
    assert!(store.subscriptions().await.unwrap().is_empty(), "unlinking forgets the subscription");
    assert!(store.put_subscription(&sub("s4", cal.id, 9)).await.is_err(), "no such calendar");
}

/// `first` and `n` more calendars (rooms) of `c`, by id.
async fn with_rooms(store: &Arc<dyn Store>, c: &Connection, first: i64, n: usize) -> Vec<i64> {
    let mut ids = vec![first];
    for i in 1..=n {
        ids.push(calendar(store, &format!("room{i}@contoso.example"), c).await.id);
    }
    ids
}

/// Calendar ids a set of leases covers.
fn held(leases: &[Lease]) -> Vec<i64> {
    leases.iter().map(|l| l.calendar_id).collect()
}

/// Workers share the calendars out: a lone worker holds them all; a second one gets half once
/// the first gives up what is beyond its share; a worker that stops heartbeating loses its
/// calendars to the other within one lease lifetime, each with a higher fencing number, and
/// can no longer commit; a clean shutdown frees its calendars at once.
pub async fn leases_share_out_calendars_and_fence_stale_workers(store: Arc<dyn Store>) {
    let (c, first) = setup(&store).await;
    let cals = with_rooms(&store, &c, first.id, 3).await;
    let ttl = Duration::seconds(30);
    let a = store.claim_leases("worker-a", at(9, 0), ttl, 100).await.unwrap();
    assert_eq!(held(&a), cals, "a lone worker holds every calendar");
    assert!(a.iter().all(|l| l.holder == "worker-a" && l.expires_at == at(9, 0) + ttl));
    let b = store.claim_leases("worker-b", at(9, 0) + Duration::seconds(1), ttl, 100).await.unwrap();
    assert!(b.is_empty(), "nothing is free yet: {b:?}");
    let a = store.claim_leases("worker-a", at(9, 0) + Duration::seconds(10), ttl, 100).await.unwrap();
    assert_eq!(a.len(), 2, "a gives up what is beyond its share: {a:?}");
    let b = store.claim_leases("worker-b", at(9, 0) + Duration::seconds(11), ttl, 100).await.unwrap();
    assert_eq!(b.len(), 2, "b takes the rest: {b:?}");
    let mut all: Vec<i64> = held(&a).into_iter().chain(held(&b)).collect();
    all.sort();
    assert_eq!(all, cals, "every calendar held exactly once");

    // a stops heartbeating: after its leases expire, b takes them over, fenced anew.
    let later = at(9, 0) + Duration::seconds(45);
    let b2 = store.claim_leases("worker-b", later, ttl, 100).await.unwrap();
    assert_eq!(held(&b2), cals, "b holds everything once a is gone");
    let stale = a[0].clone();
    let taken = b2.iter().find(|l| l.calendar_id == stale.calendar_id).unwrap();
    assert!(taken.fence > stale.fence, "a new claim raises the fencing number");
    let w = Write::PutEvent(exchange_event(&first, "fenced", data("x", at(10, 0), at(11, 0)), 1));
    let cal_of_stale = stale.calendar_id;
    let refused = store.commit_fenced(cal_of_stale, std::slice::from_ref(&w), &CursorUpdate::Keep, &stale, later).await;
    assert!(matches!(&refused, Err(StoreError::Conflict(m)) if m.contains("lease")), "{refused:?}");
    assert!(store.event(&id("fenced")).await.unwrap().is_none(), "nothing written");
    if cal_of_stale == first.id {
        let ok = store.commit_fenced(first.id, &[w], &CursorUpdate::Keep, taken, later).await.unwrap();
        assert_eq!(ok.events, 1, "the holder commits");
    }
    // An expired lease of the holder itself is refused too.
    let expired = store.commit_fenced(taken.calendar_id, &[], &CursorUpdate::Keep, taken, later + ttl + ttl).await;
    assert!(expired.is_err(), "an expired lease cannot commit");

    // A clean shutdown frees everything at once.
    store.release_leases("worker-b", later).await.unwrap();
    let c2 = store.claim_leases("worker-c", later + Duration::seconds(1), ttl, 100).await.unwrap();
    assert_eq!(held(&c2), cals);
    let capped = store.claim_leases("worker-c", later + Duration::seconds(2), ttl, 3).await.unwrap();
    assert_eq!(capped.len(), 3, "never more than `max`");
}

/// Workers claiming at the same moment never hold the same calendar.
pub async fn concurrent_claims_never_share_a_calendar(store: Arc<dyn Store>) {
    let (c, first) = setup(&store).await;
    let cals = with_rooms(&store, &c, first.id, 11).await;
    let ttl = Duration::seconds(30);
    let claims = (0..4).map(|w| {
        let store = store.clone();
        tokio::spawn(async move { store.claim_leases(&format!("worker-{w}"), at(9, 0), ttl, 100).await.unwrap() })
    });
    let mut seen: Vec<i64> = Vec::new();
    for c in claims {
        seen.extend(held(&c.await.unwrap()));
    }
    let before = seen.len();
    seen.sort();
    seen.dedup();
    assert_eq!(seen.len(), before, "a calendar held twice: {seen:?}");
    assert!(!seen.is_empty() && seen.iter().all(|id| cals.contains(id)), "claims are of these calendars: {seen:?}");
}

/// A sync asked of a worker that does not hold the calendar reaches its holder, once.
pub async fn sync_requests_reach_the_holder_once(store: Arc<dyn Store>) {
    let (c, first) = setup(&store).await;
    let cals = with_rooms(&store, &c, first.id, 1).await;
    let ttl = Duration::seconds(30);
    let sec = |n: i64| at(9, 0) + Duration::seconds(n);
    let a = store.claim_leases("worker-a", at(9, 0), ttl, 100).await.unwrap();
    assert_eq!(held(&a), cals);
    let (mine, other) = (cals[0], cals[1]);
    store.request_sync(mine, sec(1)).await.unwrap();
    store.request_sync(mine, sec(2)).await.unwrap();
    assert!(store.take_sync_requests("worker-b", sec(3)).await.unwrap().is_empty(), "b holds nothing");
    assert_eq!(store.take_sync_requests("worker-a", sec(3)).await.unwrap(), vec![mine], "asked twice, served once");
    assert!(store.take_sync_requests("worker-a", sec(4)).await.unwrap().is_empty(), "taken already");
    // A request for a calendar whose lease expired waits for the next holder.
    store.request_sync(other, sec(5)).await.unwrap();
    let late = sec(31);
    assert!(store.take_sync_requests("worker-a", late).await.unwrap().is_empty(), "a's lease has expired");
    let b = store.claim_leases("worker-b", late, ttl, 100).await.unwrap();
    assert_eq!(held(&b), cals);
    assert_eq!(store.take_sync_requests("worker-b", late).await.unwrap(), vec![other]);
    let unknown = store.request_sync(9_999, sec(6)).await;
    assert!(matches!(unknown, Err(StoreError::NotFound { .. })), "{unknown:?}");
    // Unlinking a calendar drops its request.
    store.request_sync(mine, sec(7)).await.unwrap();
    store.delete_calendar(mine).await.unwrap();
    assert!(store.take_sync_requests("worker-b", late).await.unwrap().is_empty());
}
