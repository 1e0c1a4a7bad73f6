//! Scenarios: the organisation a simulator starts with, as TOML.
//!
//! ```toml
//! name = "Example"
//! time_zone = "W. Europe Standard Time"   # the organisation's zone (working hours, generator)
//! token_lifetime_secs = 3599
//! mailbox_concurrency = 4
//!
//! [tenant]
//! id = "8f0c7e2a-5d0e-4d1f-9a43-1c2b3d4e5f60"
//! domain = "example.org"
//!
//! [[apps]]
//! client_id = "..."
//! client_secret = "..."
//! roles = ["Calendars.ReadWrite", "User.Read.All"]
//!
//! [[mailboxes]]
//! email = "room1@example.org"
//! name = "Room 1 (12 seats)"
//! kind = "room"                 # person (default), room, equipment
//! auto_accept = true            # rooms/equipment: calendar processing
//! allow_conflicts = false
//! booking_window_days = 180
//! max_duration_minutes = 1440
//! add_organizer_to_subject = false  # the room's copy is titled with the organizer's name
//! delete_subject = false            # the room's copy drops the meeting's subject
//!
//! [[room_lists]]               # optional: EWS GetRoomLists/GetRooms (default: one list of all rooms)
//! email = "rooms-north@example.org"
//! name = "Training centre North"
//! rooms = ["room1@example.org"]
//!
//! [[events]]
//! mailbox = "ann@example.org"
//! subject = "Planning"
//! start = "2026-11-23T09:00:00+01:00"
//! end = "2026-11-23T10:00:00+01:00"
//! time_zone = "W. Europe Standard Time"
//! attendees = ["room1@example.org", { address = "bob@example.org", type = "optional" }]
//! recurrence = { pattern = "weekly", interval = 1, days_of_week = ["monday"], count = 10 }
//!
//! [generate]                    # optional: a deterministic organisation
//! seed = 7
//! anchor = "today"              # or "2026-11-23"
//! people = 0                    # extra generated mailboxes, besides those listed
//! rooms = 0
//! equipment = 0
//! events_per_mailbox = 40       # personal events per person
//! meetings = 500                # meetings with rooms, organised by `organizer`
//! organizer = "scheduler@example.org"
//! days_back = 30
//! days_ahead = 120
//! recurring_fraction = 0.1
//! ```

use std::path::Path;

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

use crate::error::SimError;

/// The bundled sample organisation (Contoso Learning Centre); see `scenarios/demo.toml`.
pub const DEMO_TOML: &str = include_str!("../scenarios/demo.toml");

/// A parsed, validated scenario.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    #[serde(default)]
    pub name: Option<String>,
    /// The organisation's time zone (IANA or Windows name): working hours and generated events.
    #[serde(default = "default_zone")]
    pub time_zone: String,
    pub tenant: TenantSpec,
    #[serde(default)]
    pub apps: Vec<AppSpec>,
    /// Accounts that sign in to EWS (`/EWS/Exchange.asmx`) with Basic authentication.
    #[serde(default)]
    pub ews_accounts: Vec<EwsAccountSpec>,
    /// Lifetime of issued access tokens (`expires_in`).
    #[serde(default = "default_token_lifetime")]
    pub token_lifetime_secs: u64,
    /// Concurrent in-flight Graph requests allowed per mailbox before 429.
    #[serde(default = "default_concurrency")]
    pub mailbox_concurrency: usize,
    /// Seconds a 429 for the concurrency limit asks the client to wait (`Retry-After`).
    #[serde(default = "default_retry_after")]
    pub throttle_retry_after_secs: u64,
    /// How long a delta/skip token stays valid.
    #[serde(default = "default_delta_lifetime")]
    pub delta_token_lifetime_secs: u64,
    /// Whether `/_sim/*` (fault injection, stats) is served.
    #[serde(default = "default_true")]
    pub sim_control: bool,
    #[serde(default)]
    pub mailboxes: Vec<MailboxSpec>,
    /// Room lists (distribution groups of rooms) for EWS GetRoomLists and GetRooms. Without
    /// any, the simulator offers one list, `allrooms@{domain}`, of every room.
    #[serde(default)]
    pub room_lists: Vec<RoomListSpec>,
    #[serde(default)]
    pub events: Vec<EventSpec>,
    #[serde(default)]
    pub generate: Option<GenerateSpec>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TenantSpec {
    /// The tenant (directory) id, a GUID.
    pub id: String,
    /// The tenant's primary domain, e.g. `contoso.example`.
    pub domain: String,
    /// Display name of the organisation.
    #[serde(default)]
    pub name: Option<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AppSpec {
    pub client_id: String,
    pub client_secret: String,
    #[serde(default)]
    pub name: Option<String>,
    /// Application permissions granted (app roles): `Calendars.ReadWrite`, `Calendars.Read`,
    /// `User.Read.All`, ...
    #[serde(default = "default_roles")]
    pub roles: Vec<String>,
    /// An application access policy: when set, only these mailboxes may be accessed.
    #[serde(default)]
    pub mailbox_scope: Option<Vec<String>>,
}

/// An EWS sign-in (a service account or a person's own account).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EwsAccountSpec {
    /// The user name as typed at sign-in: `svc-calbridge`, `CONTOSO\\svc-calbridge` or a UPN.
    pub username: String,
    pub password: String,
    /// The account's own mailbox, if it has one.
    #[serde(default)]
    pub mailbox: Option<String>,
    /// The ApplicationImpersonation role: may act as any mailbox with `ExchangeImpersonation`.
    #[serde(default)]
    pub impersonation: bool,
    /// FullAccess to every mailbox (delegate access without impersonation).
    #[serde(default)]
    pub full_access: bool,
}

/// A room list: a distribution group whose members are rooms.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoomListSpec {
    pub email: String,
    pub name: String,
    /// Addresses of room mailboxes (`kind = "room"` in `[[mailboxes]]`).
    #[serde(default)]
    pub rooms: Vec<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum MailboxKind {
    #[default]
    Person,
    Room,
    Equipment,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MailboxSpec {
    pub email: String,
    pub name: String,
    #[serde(default)]
    pub kind: MailboxKind,
    #[serde(default)]
    pub job_title: Option<String>,
    #[serde(default)]
    pub office_location: Option<String>,
    /// The mailbox's time zone (working hours); defaults to the scenario's.
    #[serde(default)]
    pub time_zone: Option<String>,
    /// Seats (rooms).
    #[serde(default)]
    pub capacity: Option<u32>,
    /// Rooms/equipment: accept requests automatically (else they stay tentative, unanswered).
    #[serde(default = "default_true")]
    pub auto_accept: bool,
    /// Rooms/equipment: accept requests that overlap an existing booking.
    #[serde(default)]
    pub allow_conflicts: bool,
    /// Rooms/equipment: how far ahead a booking may start.
    #[serde(default = "default_booking_window")]
    pub booking_window_days: u32,
    /// Rooms/equipment: the longest accepted booking.
    #[serde(default = "default_max_duration")]
    pub max_duration_minutes: u32,
    /// Rooms/equipment (Set-CalendarProcessing AddOrganizerToSubject): the copy in the
    /// resource's calendar carries the organizer's name before (or, with `delete_subject`,
    /// instead of) the subject. Exchange's default is true; the simulator's is false, so
    /// scenarios show subjects unless they ask for Exchange's rewriting.
    #[serde(default)]
    pub add_organizer_to_subject: bool,
    /// Rooms/equipment (Set-CalendarProcessing DeleteSubject): the copy drops the subject.
    #[serde(default)]
    pub delete_subject: bool,
}

/// An attendee: an address, or a table with `address`, optional `name` and `type`
/// (`required`, `optional`, `resource`; rooms/equipment default to `resource`).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(untagged)]
pub enum AttendeeSpec {
    Address(String),
    Full {
        address: String,
        #[serde(default)]
        name: Option<String>,
        #[serde(default, rename = "type")]
        kind: Option<String>,
    },
}

impl AttendeeSpec {
    pub fn address(&self) -> &str {
        match self {
            AttendeeSpec::Address(a) => a,
            AttendeeSpec::Full { address, .. } => address,
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecurrenceSpec {
    /// `daily` or `weekly` (also `absoluteMonthly`).
    pub pattern: String,
    #[serde(default = "default_interval")]
    pub interval: u32,
    /// For weekly: `monday`, ...; defaults to the start's weekday.
    #[serde(default)]
    pub days_of_week: Vec<String>,
    /// Number of occurrences (a numbered range)...
    #[serde(default)]
    pub count: Option<u32>,
    /// ...or the last date (an endDate range); neither means noEnd.
    #[serde(default)]
    pub until: Option<NaiveDate>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventSpec {
    /// The mailbox whose calendar holds the event (its organizer).
    pub mailbox: String,
    pub subject: String,
    /// RFC 3339 instants.
    pub start: DateTime<chrono::FixedOffset>,
    pub end: DateTime<chrono::FixedOffset>,
    /// The zone the event was created in (`originalStartTimeZone`); default: the mailbox's.
    #[serde(default)]
    pub time_zone: Option<String>,
    /// `free`, `tentative`, `busy` (default), `oof`, `workingElsewhere`.
    #[serde(default)]
    pub show_as: Option<String>,
    /// `normal` (default), `personal`, `private`, `confidential`.
    #[serde(default)]
    pub sensitivity: Option<String>,
    #[serde(default)]
    pub location: Option<String>,
    #[serde(default)]
    pub body: Option<String>,
    #[serde(default)]
    pub is_all_day: bool,
    #[serde(default)]
    pub categories: Vec<String>,
    #[serde(default)]
    pub attendees: Vec<AttendeeSpec>,
    #[serde(default)]
    pub recurrence: Option<RecurrenceSpec>,
    #[serde(default)]
    pub transaction_id: Option<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GenerateSpec {
    #[serde(default)]
    pub seed: u64,
    /// `today` (the real clock's date, resolved when the simulator is made) or `YYYY-MM-DD`.
    #[serde(default = "default_anchor")]
    pub anchor: String,
    #[serde(default)]
    pub people: usize,
    #[serde(default)]
    pub rooms: usize,
    #[serde(default)]
    pub equipment: usize,
    #[serde(default = "default_events_per_mailbox")]
    pub events_per_mailbox: usize,
    #[serde(default)]
    pub meetings: usize,
    /// Organizer of the generated meetings; default: a generated person per meeting.
    #[serde(default)]
    pub organizer: Option<String>,
    #[serde(default = "default_days_back")]
    pub days_back: i64,
    #[serde(default = "default_days_ahead")]
    pub days_ahead: i64,
    #[serde(default = "default_recurring_fraction")]
    pub recurring_fraction: f64,
}

fn default_zone() -> String {
    "UTC".into()
}
fn default_token_lifetime() -> u64 {
    3599
}
fn default_concurrency() -> usize {
    4
}
fn default_retry_after() -> u64 {
    1
}
fn default_delta_lifetime() -> u64 {
    7 * 24 * 3600
}
fn default_true() -> bool {
    true
}
fn default_roles() -> Vec<String> {
    vec!["Calendars.ReadWrite".into(), "User.Read.All".into()]
}
fn default_booking_window() -> u32 {
    180
}
fn default_max_duration() -> u32 {
    1440
}
fn default_interval() -> u32 {
    1
}
fn default_anchor() -> String {
    "today".into()
}
fn default_events_per_mailbox() -> usize {
    20
}
fn default_days_back() -> i64 {
    30
}
fn default_days_ahead() -> i64 {
    120
}
fn default_recurring_fraction() -> f64 {
    0.1
}

impl Scenario {
    /// Parses and validates a scenario. Errors name the key and what to fix.
    pub fn from_toml(text: &str) -> Result<Scenario, SimError> {
        let scenario: Scenario = toml::from_str(text).map_err(|e| {
            let key = e.span().map(|s| format!("at {}..{}", s.start, s.end)).unwrap_or_else(|| "(document)".into());
            SimError::scenario(key, e.message().to_string())
        })?;
        scenario.validate()?;
        Ok(scenario)
    }

    /// Reads and parses a scenario file.
    pub fn load(path: &Path) -> Result<Scenario, SimError> {
        let text = std::fs::read_to_string(path).map_err(|source| SimError::Io { path: path.to_path_buf(), source })?;
        Scenario::from_toml(&text).map_err(|e| match e {
            SimError::Scenario { key, message } => {
                SimError::Scenario { key: format!("{}: {key}", path.display()), message }
            }
            other => other,
        })
    }

    /// The bundled sample organisation: Contoso Learning Centre (tenant `contoso.example`,
    /// secret `demo-secret-change-me`), 22 rooms, 5 equipment mailboxes, 52 people, a
    /// `scheduler@contoso.example` organizer, ~3,000 events around today.
    pub fn demo() -> Scenario {
        Scenario::from_toml(DEMO_TOML).expect("the bundled demo scenario is valid")
    }

    /// A generated organisation for benchmarks (`calbridge sim --generate-mailboxes N
    /// --generate-events M`): the demo's tenant, app and EWS service account, `people` person
    /// mailboxes with `events_per_mailbox` single events each (no series, no meetings), from 28
    /// days before today to 120 days after, and nothing else.
    pub fn bench(people: usize, events_per_mailbox: usize) -> Scenario {
        let mut s = Scenario::demo();
        s.name = Some(format!("calbridge bench: {people} mailboxes x {events_per_mailbox} events"));
        s.mailboxes.clear();
        s.room_lists.clear();
        s.events.clear();
        s.generate = Some(GenerateSpec {
            seed: 2026,
            anchor: "today".into(),
            people,
            rooms: 0,
            equipment: 0,
            events_per_mailbox,
            meetings: 0,
            organizer: None,
            days_back: 28,
            days_ahead: 120,
            recurring_fraction: 0.0,
        });
        s
    }

    /// The anchor date of `[generate]`, resolving `today` with the real clock.
    pub fn anchor_date(&self) -> Option<NaiveDate> {
        let g = self.generate.as_ref()?;
        if g.anchor.eq_ignore_ascii_case("today") {
            Some(Utc::now().date_naive())
        } else {
            NaiveDate::parse_from_str(&g.anchor, "%Y-%m-%d").ok()
        }
    }

    fn validate(&self) -> Result<(), SimError> {
        uuid::Uuid::parse_str(&self.tenant.id).map_err(|_| {
            SimError::scenario(
                "tenant.id",
                format!("'{}' is not a GUID; use e.g. 8f0c7e2a-5d0e-4d1f-9a43-1c2b3d4e5f60", self.tenant.id),
            )
        })?;
        if self.tenant.domain.trim().is_empty() || !self.tenant.domain.contains('.') {
            return Err(SimError::scenario("tenant.domain", "must be a domain name such as contoso.example"));
        }
        if self.apps.is_empty() {
            return Err(SimError::scenario("apps", "at least one [[apps]] entry (client_id, client_secret) is needed"));
        }
        for (i, app) in self.apps.iter().enumerate() {
            if app.client_id.trim().is_empty() || app.client_secret.is_empty() {
                return Err(SimError::scenario(format!("apps[{i}]"), "client_id and client_secret must not be empty"));
            }
        }
        if crate::tz::resolve(&self.time_zone).is_none() {
            return Err(SimError::scenario("time_zone", format!("unknown time zone '{}'; use an IANA name (Europe/Berlin) or a Windows name (W. Europe Standard Time)", self.time_zone)));
        }
        if self.mailbox_concurrency == 0 {
            return Err(SimError::scenario("mailbox_concurrency", "must be at least 1"));
        }
        let mut seen = std::collections::BTreeSet::new();
        for (i, m) in self.mailboxes.iter().enumerate() {
            let email = m.email.to_ascii_lowercase();
            if !email.contains('@') {
                return Err(SimError::scenario(
                    format!("mailboxes[{i}].email"),
                    format!("'{}' is not an e-mail address", m.email),
                ));
            }
            if !seen.insert(email) {
                return Err(SimError::scenario(
                    format!("mailboxes[{i}].email"),
                    format!("'{}' is listed twice", m.email),
                ));
            }
            if let Some(tz) = &m.time_zone {
                if crate::tz::resolve(tz).is_none() {
                    return Err(SimError::scenario(
                        format!("mailboxes[{i}].time_zone"),
                        format!("unknown time zone '{tz}'"),
                    ));
                }
            }
        }
        for (i, list) in self.room_lists.iter().enumerate() {
            if !list.email.contains('@') || seen.contains(&list.email.to_ascii_lowercase()) {
                return Err(SimError::scenario(
                    format!("room_lists[{i}].email"),
                    format!("'{}' must be an e-mail address that is not a mailbox's", list.email),
                ));
            }
            for room in &list.rooms {
                let is_room =
                    self.mailboxes.iter().any(|m| m.email.eq_ignore_ascii_case(room) && m.kind == MailboxKind::Room);
                if !is_room {
                    return Err(SimError::scenario(
                        format!("room_lists[{i}].rooms"),
                        format!("'{room}' is not a room of [[mailboxes]] (kind = \"room\")"),
                    ));
                }
            }
        }
        for (i, e) in self.events.iter().enumerate() {
            if !seen.contains(&e.mailbox.to_ascii_lowercase()) {
                return Err(SimError::scenario(
                    format!("events[{i}].mailbox"),
                    format!("'{}' is not one of [[mailboxes]]", e.mailbox),
                ));
            }
            if e.end < e.start {
                return Err(SimError::scenario(format!("events[{i}].end"), "ends before it starts"));
            }
            if let Some(tz) = &e.time_zone {
                if crate::tz::resolve(tz).is_none() {
                    return Err(SimError::scenario(
                        format!("events[{i}].time_zone"),
                        format!("unknown time zone '{tz}'"),
                    ));
                }
            }
            if let Some(r) = &e.recurrence {
                if !["daily", "weekly", "absolutemonthly"].contains(&r.pattern.to_ascii_lowercase().as_str()) {
                    return Err(SimError::scenario(
                        format!("events[{i}].recurrence.pattern"),
                        format!("'{}': use daily, weekly or absoluteMonthly", r.pattern),
                    ));
                }
                for d in &r.days_of_week {
                    if crate::recurrence::weekday(d).is_none() {
                        return Err(SimError::scenario(
                            format!("events[{i}].recurrence.days_of_week"),
                            format!("'{d}' is not a day name"),
                        ));
                    }
                }
            }
        }
        if let Some(g) = &self.generate {
            if !g.anchor.eq_ignore_ascii_case("today") && NaiveDate::parse_from_str(&g.anchor, "%Y-%m-%d").is_err() {
                return Err(SimError::scenario(
                    "generate.anchor",
                    format!("'{}': use \"today\" or a date like 2026-11-23", g.anchor),
                ));
            }
            if let Some(o) = &g.organizer {
                if !seen.contains(&o.to_ascii_lowercase()) {
                    return Err(SimError::scenario("generate.organizer", format!("'{o}' is not one of [[mailboxes]]")));
                }
            }
            if !(0.0..=1.0).contains(&g.recurring_fraction) {
                return Err(SimError::scenario("generate.recurring_fraction", "must be between 0 and 1"));
            }
        }
        Ok(())
    }
}
