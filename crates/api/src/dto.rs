//! The API's resources as they travel: inputs (unknown fields refused) and views. They mirror
//! calbridge-core's model without exposing it, so the wire format is stable and documented in
//! the OpenAPI schema; conversions live beside each type.

use calbridge_core::connector::{Check, CheckResult};
use calbridge_core::model as m;
use calbridge_core::store::{SyncStatus, Webhook};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// An SMTP address (`name@domain`).
#[derive(Clone, Debug, Deserialize, ToSchema)]
#[serde(transparent)]
#[schema(pattern = r#"^[^@\s\x00-\x1f\x7f-\x9f<>",;]+@[^@\s\x00-\x1f\x7f-\x9f<>",;.][^@\s\x00-\x1f\x7f-\x9f<>",;]*$"#)]
pub struct Email(pub String);

// --- connections ---------------------------------------------------------------------------

/// How calbridge reaches Exchange, by kind.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
pub enum Settings {
    /// Exchange Online over Microsoft Graph (application permissions, client credentials).
    Graph {
        /// Directory (tenant) id or a verified domain.
        #[schema(pattern = r"^[^\s\x00-\x1f\x7f-\x9f/]{1,256}$")]
        tenant_id: String,
        /// The app registration's Application (client) ID.
        #[schema(pattern = r"^[^\s\x00-\x1f\x7f-\x9f/]{1,256}$")]
        client_id: String,
        /// Identity platform base URL; default `https://login.microsoftonline.com`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        #[schema(format = "uri", max_length = 2048)]
        authority_url: Option<String>,
        /// Microsoft Graph base URL; default `https://graph.microsoft.com`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        #[schema(format = "uri", max_length = 2048)]
        graph_url: Option<String>,
    },
    /// Exchange Server (or Exchange Online) over EWS. The secret is the service account's
    /// password (`basic`, `ntlm`) or the app's client secret (`oauth2`).
    Ews {
        /// The EWS endpoint, `https://mail.contoso.com/EWS/Exchange.asmx` (no autodiscover).
        #[schema(format = "uri", max_length = 2048)]
        url: String,
        /// How calbridge signs in; default `ntlm`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        auth: Option<EwsAuthInput>,
        /// The `RequestServerVersion` sent; default `Exchange2016`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        version: Option<EwsVersion>,
        /// The service account for `basic` and `ntlm`: `DOMAIN\user` or `user@domain`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        #[schema(min_length = 1, max_length = 256, pattern = r"^[^\x00-\x1f\x7f-\x9f]*\S[^\x00-\x1f\x7f-\x9f]*$")]
        username: Option<String>,
        /// Act as each mailbox with `ExchangeImpersonation` (the ApplicationImpersonation
        /// role); default `true`. `false` opens mailboxes by delegation (Full Access).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        impersonation: Option<bool>,
        /// For `oauth2`: directory (tenant) id or a verified domain.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        #[schema(pattern = r"^[^\s\x00-\x1f\x7f-\x9f/]{1,256}$")]
        tenant_id: Option<String>,
        /// For `oauth2`: the app registration's Application (client) ID.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        #[schema(pattern = r"^[^\s\x00-\x1f\x7f-\x9f/]{1,256}$")]
        client_id: Option<String>,
        /// For `oauth2`: the identity platform; default `https://login.microsoftonline.com`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        #[schema(format = "uri", max_length = 2048)]
        authority_url: Option<String>,
        /// Requests in flight to this EWS server at once (1-256, default 27, Exchange's
        /// EWSMaxConcurrency), shared by every connection to it.
        #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "crate::int::opt")]
        #[schema(minimum = 1, maximum = 256)]
        max_connections: Option<u32>,
        /// A mailbox the connection test opens first (its primary SMTP address), so the
        /// connection can be tested before any calendar is linked; none by default.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        #[schema(
            max_length = 254,
            pattern = r#"^[^@\s\x00-\x1f\x7f-\x9f<>",;]+@[^@\s\x00-\x1f\x7f-\x9f<>",;.][^@\s\x00-\x1f\x7f-\x9f<>",;]*$"#
        )]
        test_mailbox: Option<String>,
    },
}

/// How an EWS connection signs in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum EwsAuthInput {
    Basic,
    Ntlm,
    Oauth2,
}

impl EwsAuthInput {
    pub fn to_core(self) -> m::EwsAuth {
        match self {
            EwsAuthInput::Basic => m::EwsAuth::Basic,
            EwsAuthInput::Ntlm => m::EwsAuth::Ntlm,
            EwsAuthInput::Oauth2 => m::EwsAuth::Oauth2,
        }
    }
    pub fn from_core(a: m::EwsAuth) -> Self {
        match a {
            m::EwsAuth::Basic => EwsAuthInput::Basic,
            m::EwsAuth::Ntlm => EwsAuthInput::Ntlm,
            m::EwsAuth::Oauth2 => EwsAuthInput::Oauth2,
        }
    }
}

/// The EWS versions calbridge speaks (`RequestServerVersion`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub enum EwsVersion {
    Exchange2010,
    #[serde(rename = "Exchange2010_SP1")]
    Exchange2010Sp1,
    #[serde(rename = "Exchange2010_SP2")]
    Exchange2010Sp2,
    Exchange2013,
    #[serde(rename = "Exchange2013_SP1")]
    Exchange2013Sp1,
    Exchange2016,
}

impl EwsVersion {
    pub const ALL: [EwsVersion; 6] = [
        EwsVersion::Exchange2010,
        EwsVersion::Exchange2010Sp1,
        EwsVersion::Exchange2010Sp2,
        EwsVersion::Exchange2013,
        EwsVersion::Exchange2013Sp1,
        EwsVersion::Exchange2016,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EwsVersion::Exchange2010 => "Exchange2010",
            EwsVersion::Exchange2010Sp1 => "Exchange2010_SP1",
            EwsVersion::Exchange2010Sp2 => "Exchange2010_SP2",
            EwsVersion::Exchange2013 => "Exchange2013",
            EwsVersion::Exchange2013Sp1 => "Exchange2013_SP1",
            EwsVersion::Exchange2016 => "Exchange2016",
        }
    }
}

pub const DEFAULT_AUTHORITY: &str = "https://login.microsoftonline.com";
pub const DEFAULT_GRAPH: &str = "https://graph.microsoft.com";

impl Settings {
    pub fn from_core(s: &m::ConnectionSettings) -> Settings {
        match s {
            m::ConnectionSettings::Graph(g) => Settings::Graph {
                tenant_id: g.tenant_id.clone(),
                client_id: g.client_id.clone(),
                authority_url: Some(g.authority_url.clone()),
                graph_url: Some(g.graph_url.clone()),
            },
            m::ConnectionSettings::Ews(e) => {
                let oauth = e.auth == m::EwsAuth::Oauth2;
                let some = |v: &str| (!v.is_empty()).then(|| v.to_string());
                Settings::Ews {
                    url: e.url.clone(),
                    auth: Some(EwsAuthInput::from_core(e.auth)),
                    version: EwsVersion::ALL.into_iter().find(|v| v.as_str() == e.version),
                    username: some(&e.username),
                    impersonation: Some(e.impersonation),
                    tenant_id: some(&e.tenant_id).filter(|_| oauth),
                    client_id: some(&e.client_id).filter(|_| oauth),
                    authority_url: some(&e.authority_url).filter(|_| oauth),
                    max_connections: Some(e.max_connections),
                    test_mailbox: e.test_mailbox.clone(),
                }
            }
        }
    }
}

/// A connection to create or replace.
#[derive(Clone, Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConnectionInput {
    /// Unique name, 1-100 characters.
    #[schema(
        min_length = 1,
        max_length = 100,
        pattern = r"^[^\x00-\x1f\x7f-\x9f]*[^\s\x00-\x1f\x7f-\x9f][^\x00-\x1f\x7f-\x9f]*$"
    )]
    pub name: String,
    pub settings: Settings,
    /// The client secret's Value (Graph) or the password (EWS). Write-only: never returned.
    /// Required on create; on replace, omit it to keep the stored one.
    #[schema(write_only, value_type = Option<String>, min_length = 1, max_length = 1024, pattern = r"\S")]
    #[serde(default)]
    pub secret: Option<m::Secret>,
    /// The account that organises the meetings calbridge creates.
    #[serde(default)]
    #[schema(
        max_length = 254,
        pattern = r#"^[^@\s\x00-\x1f\x7f-\x9f<>",;]+@[^@\s\x00-\x1f\x7f-\x9f<>",;.][^@\s\x00-\x1f\x7f-\x9f<>",;]*$"#
    )]
    pub default_organizer: Option<String>,
    /// At most this many requests of the connection in flight to Exchange at once (1-64,
    /// default 4); up to four times as many calendars sync at once.
    #[serde(default, deserialize_with = "crate::int::opt")]
    #[schema(minimum = 1, maximum = 64)]
    pub max_threads: Option<u32>,
}

/// A connection. Its secret is never shown: `secret_set` says whether one is stored.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct ConnectionView {
    pub id: i64,
    pub name: String,
    pub settings: Settings,
    pub default_organizer: Option<String>,
    pub max_threads: u32,
    pub secret_set: bool,
}

/// One step of a connection test.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct CheckView {
    /// `settings`, `token`, `permissions`, `mailbox.room`, `calendar.person`, ...
    pub name: String,
    /// `pass`, `fail` or `skip`.
    pub result: String,
    /// What was checked and what Exchange answered.
    pub detail: String,
    /// What to do when it did not pass.
    pub hint: Option<String>,
}

impl From<Check> for CheckView {
    fn from(c: Check) -> Self {
        let result = match c.result {
            CheckResult::Pass => "pass",
            CheckResult::Fail => "fail",
            CheckResult::Skip => "skip",
        };
        CheckView { name: c.name, result: result.into(), detail: c.detail, hint: c.hint }
    }
}

/// A connection test's diagnosis.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct Diagnosis {
    pub connection_id: i64,
    /// Whether no check failed.
    pub ok: bool,
    pub checks: Vec<CheckView>,
}

// --- sites ---------------------------------------------------------------------------------

#[derive(Clone, Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SiteInput {
    /// Unique name, 1-100 characters ("Training centre North").
    #[schema(
        min_length = 1,
        max_length = 100,
        pattern = r"^[^\x00-\x1f\x7f-\x9f]*[^\s\x00-\x1f\x7f-\x9f][^\x00-\x1f\x7f-\x9f]*$"
    )]
    pub name: String,
    /// The connection the site's calendars use.
    #[serde(deserialize_with = "crate::int::one")]
    pub connection_id: i64,
}

#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct SiteView {
    pub id: i64,
    pub name: String,
    pub connection_id: i64,
}

impl From<m::Site> for SiteView {
    fn from(s: m::Site) -> Self {
        SiteView { id: s.id, name: s.name, connection_id: s.connection_id }
    }
}

// --- calendars -----------------------------------------------------------------------------

/// What a linked mailbox is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Person,
    Room,
    Equipment,
}

impl From<Kind> for m::CalendarKind {
    fn from(k: Kind) -> Self {
        match k {
            Kind::Person => m::CalendarKind::Person,
            Kind::Room => m::CalendarKind::Room,
            Kind::Equipment => m::CalendarKind::Equipment,
        }
    }
}

impl From<m::CalendarKind> for Kind {
    fn from(k: m::CalendarKind) -> Self {
        match k {
            m::CalendarKind::Person => Kind::Person,
            m::CalendarKind::Room => Kind::Room,
            m::CalendarKind::Equipment => Kind::Equipment,
        }
    }
}

/// A mailbox to link: to a site (inheriting its connection) or to a connection.
#[derive(Clone, Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CalendarInput {
    /// The mailbox's primary SMTP address.
    #[schema(
        max_length = 254,
        pattern = r#"^[^@\s\x00-\x1f\x7f-\x9f<>",;]+@[^@\s\x00-\x1f\x7f-\x9f<>",;.][^@\s\x00-\x1f\x7f-\x9f<>",;]*$"#
    )]
    pub email: String,
    pub kind: Kind,
    /// Display name (default: the address).
    #[serde(default)]
    #[schema(
        min_length = 1,
        max_length = 100,
        pattern = r"^[^\x00-\x1f\x7f-\x9f]*[^\s\x00-\x1f\x7f-\x9f][^\x00-\x1f\x7f-\x9f]*$"
    )]
    pub display_name: Option<String>,
    #[serde(default, deserialize_with = "crate::int::opt")]
    pub site_id: Option<i64>,
    #[serde(default, deserialize_with = "crate::int::opt")]
    pub connection_id: Option<i64>,
    /// Show this calendar's Exchange events as "Busy" only.
    #[serde(default)]
    pub busy_only: bool,
}

/// Whether the link was checked against Exchange.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct Verification {
    /// `unverified`, `verified` or `failed`.
    pub state: String,
    /// Why it failed and what to do.
    pub error: Option<String>,
}

impl From<&m::LinkState> for Verification {
    fn from(l: &m::LinkState) -> Self {
        match l {
            m::LinkState::Unverified => Verification { state: "unverified".into(), error: None },
            m::LinkState::Verified => Verification { state: "verified".into(), error: None },
            m::LinkState::Failed { error } => Verification { state: "failed".into(), error: Some(error.clone()) },
        }
    }
}

#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct CalendarView {
    pub id: i64,
    pub email: String,
    pub kind: Kind,
    pub display_name: String,
    pub connection_id: i64,
    pub site_id: Option<i64>,
    pub busy_only: bool,
    pub verification: Verification,
    /// The last sync run, once there was one.
    pub sync: Option<SyncStatusView>,
}

impl CalendarView {
    pub fn new(c: &m::Calendar, status: Option<SyncStatus>) -> Self {
        CalendarView {
            id: c.id,
            email: c.email.clone(),
            kind: c.kind.into(),
            display_name: c.display_name.clone(),
            connection_id: c.connection_id,
            site_id: c.site_id,
            busy_only: c.busy_only,
            verification: (&c.link).into(),
            sync: status.map(SyncStatusView::from),
        }
    }
}

// --- sync ----------------------------------------------------------------------------------

/// The last sync run of a calendar.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct SyncStatusView {
    pub calendar_id: i64,
    pub last_run: DateTime<Utc>,
    /// `ok`, `failed` or `paused`.
    pub state: String,
    pub error: Option<String>,
    /// What to do about the error.
    pub hint: Option<String>,
    pub pulled: u64,
    pub pushed: u64,
    pub duration_ms: u64,
    /// Time the run spent waiting because Exchange throttled it (its budgets: `Retry-After`,
    /// `BackOffMilliseconds`); 0 when it was not throttled.
    pub throttled_ms: u64,
}

impl From<SyncStatus> for SyncStatusView {
    fn from(s: SyncStatus) -> Self {
        SyncStatusView {
            calendar_id: s.calendar_id,
            last_run: s.last_run,
            state: s.state,
            error: s.error,
            hint: s.hint,
            pulled: s.pulled,
            pushed: s.pushed,
            duration_ms: s.duration_ms,
            throttled_ms: s.throttled_ms,
        }
    }
}

// --- events --------------------------------------------------------------------------------

/// Free/busy status.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema, Default)]
#[serde(rename_all = "camelCase")]
pub enum ShowAs {
    Free,
    Tentative,
    #[default]
    Busy,
    Oof,
    WorkingElsewhere,
    Unknown,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema, Default)]
#[serde(rename_all = "camelCase")]
pub enum Sensitivity {
    #[default]
    Normal,
    Personal,
    Private,
    Confidential,
}

macro_rules! mirror {
    ($api:ident, $core:path, [$($v:ident),*]) => {
        impl From<$api> for $core {
            fn from(v: $api) -> Self { match v { $($api::$v => <$core>::$v),* } }
        }
        impl From<$core> for $api {
            fn from(v: $core) -> Self { match v { $(<$core>::$v => $api::$v),* } }
        }
    };
}

mirror!(ShowAs, m::ShowAs, [Free, Tentative, Busy, Oof, WorkingElsewhere, Unknown]);
mirror!(Sensitivity, m::Sensitivity, [Normal, Personal, Private, Confidential]);

/// An attendee's role.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub enum Role {
    Required,
    Optional,
    /// A room or a piece of equipment.
    Resource,
}
mirror!(Role, m::AttendeeRole, [Required, Optional, Resource]);

/// An attendee's answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub enum Response {
    None,
    Organizer,
    TentativelyAccepted,
    Accepted,
    Declined,
    NotResponded,
}
mirror!(Response, m::ResponseStatus, [None, Organizer, TentativelyAccepted, Accepted, Declined, NotResponded]);

/// A person invited to a local event.
#[derive(Clone, Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AttendeeInput {
    #[schema(
        max_length = 254,
        pattern = r#"^[^@\s\x00-\x1f\x7f-\x9f<>",;]+@[^@\s\x00-\x1f\x7f-\x9f<>",;.][^@\s\x00-\x1f\x7f-\x9f<>",;]*$"#
    )]
    pub email: String,
    #[serde(default)]
    #[schema(max_length = 255)]
    pub name: Option<String>,
    /// Optional rather than required.
    #[serde(default)]
    pub optional: bool,
}

/// A local event to create or replace.
#[derive(Clone, Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EventInput {
    /// On create: your own id for the event (1-128 characters of `A-Za-z0-9._-`), so a retried
    /// create is recognised; default a new time-ordered UUID (version 7). Not allowed on replace.
    #[serde(default)]
    #[schema(pattern = r"^[A-Za-z0-9._-]{1,128}$")]
    pub id: Option<String>,
    /// On replace: fail with 409 unless the stored version is this one.
    #[serde(default, deserialize_with = "crate::int::opt")]
    pub expected_version: Option<i64>,
    #[schema(max_length = 255)]
    pub subject: String,
    #[serde(default)]
    #[schema(max_length = 32000)]
    pub body: String,
    /// Default: the rooms' names.
    #[serde(default)]
    #[schema(max_length = 255)]
    pub location: String,
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    /// IANA or Windows zone name the event was made in (default `UTC`).
    #[serde(default)]
    #[schema(max_length = 64, pattern = r"^[^\x00-\x1f\x7f-\x9f]*[^\s\x00-\x1f\x7f-\x9f][^\x00-\x1f\x7f-\x9f]*$")]
    pub time_zone: Option<String>,
    #[serde(default)]
    pub all_day: bool,
    #[serde(default)]
    pub show_as: ShowAs,
    #[serde(default)]
    pub sensitivity: Sensitivity,
    /// People invited (instructors, learners).
    #[serde(default)]
    #[schema(max_items = 500)]
    pub attendees: Vec<AttendeeInput>,
    /// Rooms booked, by e-mail address (at most 25); Exchange accepts or declines each.
    #[serde(default)]
    #[schema(max_items = 25, inline)]
    pub rooms: Vec<Email>,
    /// Equipment booked, by e-mail address (at most 25).
    #[serde(default)]
    #[schema(max_items = 25, inline)]
    pub equipment: Vec<Email>,
    /// Makes the event a recurring series: an RFC 5545 `RRULE` value such as
    /// `FREQ=WEEKLY;BYDAY=MO,WE;COUNT=10`, in the event's `time_zone`, starting with the
    /// event's `start` (which must be a date of the rule). Only rules Exchange can hold are
    /// accepted. Its occurrences come back from Exchange at the next sync as events of their
    /// own (`{id}@{original start}`), which can be changed or deleted one by one.
    #[serde(default)]
    #[schema(max_length = 500)]
    pub recurrence: Option<String>,
}

/// How a class session invites its learners.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum LearnerInvites {
    /// Learners are optional attendees of the session's meeting, beside the instructors.
    #[default]
    WithSession,
    /// Each learner gets an invitation of their own (same time, place and subject, no rooms or
    /// equipment), so learners see neither each other nor the instructors' meeting.
    Separately,
}

/// A class session: one meeting organised by the connection's default organizer, with the
/// instructors as required attendees, the learners (with the meeting or invited separately)
/// and rooms and equipment as resources.
#[derive(Clone, Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SessionInput {
    /// On create: your own id for the session (1-100 characters of `A-Za-z0-9._-`), so a
    /// retried create is recognised; default a new time-ordered UUID (version 7). Not allowed on
    /// replace.
    #[serde(default)]
    #[schema(pattern = r"^[A-Za-z0-9._-]{1,100}$")]
    pub id: Option<String>,
    /// On replace: fail with 409 unless the session's meeting is at this version.
    #[serde(default, deserialize_with = "crate::int::opt")]
    pub expected_version: Option<i64>,
    /// The connection whose default organizer organises the session (or give `site_id`).
    #[serde(default, deserialize_with = "crate::int::opt")]
    pub connection_id: Option<i64>,
    /// The site (training centre) whose connection organises the session.
    #[serde(default, deserialize_with = "crate::int::opt")]
    pub site_id: Option<i64>,
    #[schema(max_length = 255)]
    pub subject: String,
    #[serde(default)]
    #[schema(max_length = 32000)]
    pub body: String,
    /// Default: the rooms' names.
    #[serde(default)]
    #[schema(max_length = 255)]
    pub location: String,
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    /// IANA or Windows zone name the session is held in (default `UTC`).
    #[serde(default)]
    #[schema(max_length = 64, pattern = r"^[^\x00-\x1f\x7f-\x9f]*[^\s\x00-\x1f\x7f-\x9f][^\x00-\x1f\x7f-\x9f]*$")]
    pub time_zone: Option<String>,
    /// Instructors, by e-mail address: required attendees (1 to 50).
    #[schema(min_items = 1, max_items = 50, inline)]
    pub instructors: Vec<Email>,
    /// Learners, by e-mail address (at most 400).
    #[serde(default)]
    #[schema(max_items = 400, inline)]
    pub learners: Vec<Email>,
    /// How the learners are invited; default the server's `scheduling.learners`.
    #[serde(default)]
    pub learners_invited: Option<LearnerInvites>,
    /// Rooms booked, by e-mail address (at most 25).
    #[serde(default)]
    #[schema(max_items = 25, inline)]
    pub rooms: Vec<Email>,
    /// Equipment booked, by e-mail address (at most 25).
    #[serde(default)]
    #[schema(max_items = 25, inline)]
    pub equipment: Vec<Email>,
}

/// A class session as stored: its meeting in the organizer's calendar and, when learners are
/// invited separately, their own invitations.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct SessionView {
    pub id: String,
    /// The organizer's address (the connection's default organizer).
    pub organizer: String,
    /// The organizer's calendar, which holds the session's events.
    pub calendar_id: i64,
    pub learners_invited: LearnerInvites,
    /// The session's meeting: instructors, rooms, equipment (and learners, with the session).
    pub event: EventView,
    /// One invitation per learner, when learners are invited separately.
    pub invitations: Vec<EventView>,
}

#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct PersonView {
    pub email: String,
    pub name: String,
}

#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct AttendeeView {
    pub email: String,
    pub name: String,
    pub role: Role,
    pub response: Response,
}

/// An event as the store holds it (masked when the calendar is "busy only" or the event
/// private).
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct EventView {
    pub id: String,
    pub calendar_id: i64,
    /// `local` (made through calbridge) or `exchange` (pulled; read-only).
    pub origin: String,
    pub read_only: bool,
    pub version: i64,
    pub subject: String,
    pub body: String,
    pub location: String,
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    pub time_zone: String,
    pub all_day: bool,
    pub show_as: ShowAs,
    pub sensitivity: Sensitivity,
    pub organizer: Option<PersonView>,
    pub attendees: Vec<AttendeeView>,
    /// `single`, `master`, `occurrence` or `exception`. A series made in Exchange appears as
    /// its instances (occurrences and exceptions) within the sync window.
    pub series: String,
    /// For an occurrence or exception: Exchange's id of its series, the same for every
    /// instance of it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub series_master_id: Option<String>,
    /// For an occurrence or exception: when the series' rule puts it (an exception may have
    /// moved elsewhere).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub original_start: Option<DateTime<Utc>>,
    /// A series master's rule as an RFC 5545 `RRULE` value (`FREQ=WEEKLY;BYDAY=MO,WE;COUNT=10`),
    /// starting on `recurrence_start`; absent on other events.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recurrence: Option<String>,
    /// The date the series starts on, in its zone.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recurrence_start: Option<chrono::NaiveDate>,
    pub cancelled: bool,
}

impl From<&m::Event> for EventView {
    fn from(e: &m::Event) -> Self {
        let d = &e.data;
        EventView {
            id: e.id.0.clone(),
            calendar_id: e.calendar_id,
            origin: e.origin.as_str().into(),
            read_only: e.origin == m::Origin::Exchange,
            version: e.version,
            subject: d.subject.clone(),
            body: d.body.clone(),
            location: d.location.clone(),
            start: d.start,
            end: d.end,
            time_zone: d.time_zone.clone(),
            all_day: d.all_day,
            show_as: d.show_as.into(),
            sensitivity: d.sensitivity.into(),
            organizer: d.organizer.as_ref().map(|p| PersonView { email: p.email.clone(), name: p.name.clone() }),
            attendees: d
                .attendees
                .iter()
                .map(|a| AttendeeView {
                    email: a.email.clone(),
                    name: a.name.clone(),
                    role: a.role.into(),
                    response: a.response.into(),
                })
                .collect(),
            series: match d.series.kind {
                m::SeriesKind::Single => "single",
                m::SeriesKind::Master => "master",
                m::SeriesKind::Occurrence => "occurrence",
                m::SeriesKind::Exception => "exception",
            }
            .into(),
            series_master_id: d.series.master_id.clone(),
            original_start: d.series.original_start,
            recurrence: d.series.recurrence.as_ref().map(|r| r.to_rrule()),
            recurrence_start: d.series.recurrence.as_ref().map(|r| r.start_date),
            cancelled: d.cancelled,
        }
    }
}

/// A time range query: `[from, to)`.
#[derive(Clone, Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct RangeQuery {
    /// Start (RFC 3339, e.g. `2026-12-01T00:00:00Z`).
    pub from: DateTime<Utc>,
    /// End, exclusive; after `from`, at most 400 days later.
    pub to: DateTime<Utc>,
}

// --- availability --------------------------------------------------------------------------

#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct Interval {
    #[serde(serialize_with = "instant")]
    pub start: DateTime<Utc>,
    #[serde(serialize_with = "instant")]
    pub end: DateTime<Utc>,
}

/// An instant as chrono serializes it (RFC 3339 in UTC, `2026-12-07T09:00:00Z`), written
/// directly when it falls on a whole second of the years 0 to 9999: an availability answer
/// holds tens of thousands of instants, and chrono's general formatting was most of its time.
fn instant<S: serde::Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
    use chrono::{Datelike, Timelike};
    if t.nanosecond() != 0 || !(0..=9999).contains(&t.year()) {
        return t.serialize(s);
    }
    let mut text = *b"0000-00-00T00:00:00Z";
    let mut put = |at: usize, width: usize, mut n: u32| {
        for i in (at..at + width).rev() {
            text[i] = b'0' + (n % 10) as u8;
            n /= 10;
        }
    };
    put(0, 4, t.year() as u32);
    put(5, 2, t.month());
    put(8, 2, t.day());
    put(11, 2, t.hour());
    put(14, 2, t.minute());
    put(17, 2, t.second());
    s.serialize_str(std::str::from_utf8(&text).expect("ASCII digits"))
}

#[derive(Clone, Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AvailabilityInput {
    /// Calendar ids (1-1000), all read together from the store (not one by one).
    #[schema(min_items = 1, max_items = 1000)]
    #[serde(deserialize_with = "crate::int::vec")]
    pub calendars: Vec<i64>,
    pub from: DateTime<Utc>,
    /// After `from`, at most 400 days later.
    pub to: DateTime<Utc>,
}

#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct CalendarBusy {
    pub calendar_id: i64,
    pub email: String,
    pub busy: Vec<Interval>,
}

#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct Availability {
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    pub calendars: Vec<CalendarBusy>,
    /// Busy intervals of all calendars together, merged.
    pub merged: Vec<Interval>,
}

#[derive(Clone, Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FreeSlotsInput {
    /// Calendar ids of the people who must all be free (0-100).
    #[schema(max_items = 100)]
    #[serde(deserialize_with = "crate::int::vec")]
    pub participants: Vec<i64>,
    /// Candidate rooms (calendar ids, 0-100): a slot is offered when at least one is free.
    #[serde(default, deserialize_with = "crate::int::vec")]
    #[schema(max_items = 100)]
    pub rooms: Vec<i64>,
    /// Length of the meeting, 5-1440 minutes.
    #[schema(minimum = 5, maximum = 1440)]
    #[serde(deserialize_with = "crate::int::one")]
    pub duration_minutes: u32,
    pub from: DateTime<Utc>,
    /// After `from`, at most 93 days later.
    pub to: DateTime<Utc>,
    /// Slots start on multiples of this many minutes after `from` (5-1440, default 30).
    #[serde(default, deserialize_with = "crate::int::opt")]
    #[schema(minimum = 5, maximum = 1440)]
    pub step_minutes: Option<u32>,
    /// At most this many slots (1-500, default 20).
    #[serde(default, deserialize_with = "crate::int::opt")]
    #[schema(minimum = 1, maximum = 500)]
    pub limit: Option<u32>,
}

#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct FreeSlot {
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    /// The candidate rooms free for the whole slot (empty when no rooms were asked for).
    pub rooms: Vec<i64>,
}

#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct FreeSlots {
    pub slots: Vec<FreeSlot>,
}

// --- webhooks ------------------------------------------------------------------------------

#[derive(Clone, Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WebhookInput {
    /// Where to POST messages (http or https).
    #[schema(format = "uri", max_length = 2048)]
    pub url: String,
    /// Message types to receive (at least one): `event.created`, `event.updated`,
    /// `event.deleted`, `booking.accepted`, `booking.declined`, `connection.failed`.
    #[schema(min_items = 1, max_items = 6, inline)]
    pub events: Vec<MessageType>,
    #[serde(default)]
    #[schema(max_length = 500)]
    pub description: String,
}

/// A webhook message type.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub enum MessageType {
    #[serde(rename = "event.created")]
    EventCreated,
    #[serde(rename = "event.updated")]
    EventUpdated,
    #[serde(rename = "event.deleted")]
    EventDeleted,
    #[serde(rename = "booking.accepted")]
    BookingAccepted,
    #[serde(rename = "booking.declined")]
    BookingDeclined,
    #[serde(rename = "connection.failed")]
    ConnectionFailed,
}

impl MessageType {
    pub fn as_str(self) -> &'static str {
        match self {
            MessageType::EventCreated => "event.created",
            MessageType::EventUpdated => "event.updated",
            MessageType::EventDeleted => "event.deleted",
            MessageType::BookingAccepted => "booking.accepted",
            MessageType::BookingDeclined => "booking.declined",
            MessageType::ConnectionFailed => "connection.failed",
        }
    }
}

#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct WebhookView {
    pub id: String,
    pub url: String,
    pub events: Vec<String>,
    pub description: String,
    pub created_at: DateTime<Utc>,
}

impl From<Webhook> for WebhookView {
    fn from(w: Webhook) -> Self {
        WebhookView { id: w.id, url: w.url, events: w.events, description: w.description, created_at: w.created_at }
    }
}

/// A new endpoint with its signing secret, shown this once.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct WebhookCreated {
    #[serde(flatten)]
    pub webhook: WebhookView,
    /// `whsec_<base64>`: verify each message's `webhook-signature` with it (Standard
    /// Webhooks). Shown only now.
    pub secret: String,
}

#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct Health {
    /// `ok`.
    pub status: String,
    pub version: String,
}

#[cfg(test)]
mod instant_tests {
    use super::*;
    use chrono::{Datelike, TimeZone};

    #[test]
    fn intervals_serialize_their_instants_exactly_as_chrono_does() {
        let mut instants = vec![
            Utc.with_ymd_and_hms(2026, 12, 7, 9, 0, 0).unwrap(),
            Utc.with_ymd_and_hms(0, 1, 1, 0, 0, 0).unwrap(),
            Utc.with_ymd_and_hms(999, 2, 3, 4, 5, 6).unwrap(),
            Utc.with_ymd_and_hms(9999, 12, 31, 23, 59, 59).unwrap(),
            Utc.with_ymd_and_hms(10000, 1, 1, 0, 0, 0).unwrap(),
            Utc.with_ymd_and_hms(-1, 6, 30, 12, 0, 0).unwrap(),
            Utc.with_ymd_and_hms(2026, 3, 29, 1, 0, 0).unwrap() + chrono::Duration::milliseconds(250),
            Utc.with_ymd_and_hms(2026, 3, 29, 1, 0, 0).unwrap() + chrono::Duration::nanoseconds(1),
        ];
        // Every hour of a leap year, on odd minutes and seconds.
        let mut t = Utc.with_ymd_and_hms(2028, 1, 1, 0, 7, 13).unwrap();
        while t.year() == 2028 {
            instants.push(t);
            t += chrono::Duration::seconds(3_600 + 61);
        }
        for t in instants {
            let ours = serde_json::to_value(Interval { start: t, end: t }).unwrap();
            let chrono = serde_json::to_value(t).unwrap();
            assert_eq!(ours["start"], chrono, "{t:?}");
            assert_eq!(ours["end"], chrono, "{t:?}");
        }
    }
}
