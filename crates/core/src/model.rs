//! The domain model: what calbridge knows about connections, calendars and events.

use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// A secret (client secret, password). Its `Debug` and `Display` never show the value, so it
/// cannot leak into logs or error messages by accident.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }
    /// The value, for the one place that must send it (a token request).
    pub fn expose(&self) -> &str {
        &self.0
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// Store-assigned row id of a connection.
pub type ConnectionId = i64;
/// Store-assigned row id of a site.
pub type SiteId = i64;
/// Store-assigned row id of a calendar.
pub type CalendarId = i64;

/// The local id of an event: chosen by calbridge (a UUID) when it creates the event, so it can
/// be used as an idempotency key before the store or Exchange ever saw the event. calbridge's
/// own ids are time-ordered UUIDs (version 7), so that the store's indexes of them grow at one
/// end instead of at random places (a first sync of 500,000 events writes far fewer pages).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct EventId(pub String);

impl EventId {
    pub fn new(id: impl Into<String>) -> Self {
        EventId(id.into())
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for EventId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// How calbridge reaches an Exchange organisation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum ConnectionSettings {
    /// Exchange Online over Microsoft Graph, application permissions (client credentials).
    Graph(GraphSettings),
    /// Exchange Server 2013–2019 and Subscription Edition (or Exchange Online) over EWS.
    Ews(EwsSettings),
}

impl ConnectionSettings {
    pub fn kind(&self) -> &'static str {
        match self {
            ConnectionSettings::Graph(_) => "graph",
            ConnectionSettings::Ews(_) => "ews",
        }
    }
}

/// How an EWS connection signs in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EwsAuth {
    /// HTTP Basic with the service account's password (over TLS only, in production).
    Basic,
    /// NTLMv2 with the service account's password; it authenticates a TCP connection,
    /// which calbridge then keeps.
    Ntlm,
    /// OAuth2 client credentials (Exchange Online): an app token for
    /// `https://outlook.office365.com/.default`; the secret is the client secret.
    Oauth2,
}

impl EwsAuth {
    pub fn as_str(self) -> &'static str {
        match self {
            EwsAuth::Basic => "basic",
            EwsAuth::Ntlm => "ntlm",
            EwsAuth::Oauth2 => "oauth2",
        }
    }
}

/// Exchange's default `EWSMaxConcurrency`: concurrent connections a caller may hold open to
/// one EWS server.
pub const EWS_DEFAULT_MAX_CONNECTIONS: u32 = 27;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EwsSettings {
    /// The EWS endpoint, `https://mail.contoso.com/EWS/Exchange.asmx` (no autodiscover).
    pub url: String,
    /// `RequestServerVersion`: `Exchange2013_SP1`, `Exchange2016`, ...
    pub version: String,
    pub auth: EwsAuth,
    /// The service account for `basic` and `ntlm`: `user`, `DOMAIN\user` or `user@domain`.
    #[serde(default)]
    pub username: String,
    /// Act as each linked mailbox through `ExchangeImpersonation` (the service account holds
    /// the ApplicationImpersonation role). When false, calbridge opens the mailboxes by
    /// delegation (Full Access or calendar folder permissions).
    pub impersonation: bool,
    /// For `oauth2`: directory (tenant) id or verified domain.
    #[serde(default)]
    pub tenant_id: String,
    /// For `oauth2`: application (client) id.
    #[serde(default)]
    pub client_id: String,
    /// For `oauth2`: the identity platform, `https://login.microsoftonline.com` by default.
    #[serde(default)]
    pub authority_url: String,
    /// Concurrent connections to this EWS server, shared by every connection to it.
    pub max_connections: u32,
    /// A PEM file of CA certificates to trust besides the public roots (an on-premises PKI).
    #[serde(default)]
    pub ca_file: Option<String>,
    /// A mailbox the connection test opens first (SMTP address, lower-cased), so a new
    /// connection can be tested before any calendar is linked.
    #[serde(default)]
    pub test_mailbox: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GraphSettings {
    /// Directory (tenant) id or a verified domain of the tenant.
    pub tenant_id: String,
    /// Application (client) id of the app registration.
    pub client_id: String,
    /// Base URL of the identity platform, `https://login.microsoftonline.com` by default.
    pub authority_url: String,
    /// Base URL of Microsoft Graph, `https://graph.microsoft.com` by default.
    pub graph_url: String,
}

/// A named connection to one Exchange organisation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Connection {
    pub id: ConnectionId,
    /// Unique, human-chosen name ("contoso-online").
    pub name: String,
    pub settings: ConnectionSettings,
    /// The account that organises meetings calbridge creates (class sessions, bookings).
    pub default_organizer: Option<String>,
    /// The connection's own concurrency limit ("max threads").
    pub max_threads: u32,
}

/// A group of calendars (a training centre, a building), linked to one connection.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Site {
    pub id: SiteId,
    pub name: String,
    pub connection_id: ConnectionId,
}

/// What a linked mailbox is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CalendarKind {
    Person,
    Room,
    Equipment,
}

impl CalendarKind {
    pub fn as_str(self) -> &'static str {
        match self {
            CalendarKind::Person => "person",
            CalendarKind::Room => "room",
            CalendarKind::Equipment => "equipment",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "person" => Some(CalendarKind::Person),
            "room" => Some(CalendarKind::Room),
            "equipment" => Some(CalendarKind::Equipment),
            _ => None,
        }
    }
    /// Rooms and equipment are booked as resource attendees.
    pub fn is_resource(self) -> bool {
        !matches!(self, CalendarKind::Person)
    }
}

/// Whether a link was checked against Exchange.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "lowercase")]
pub enum LinkState {
    /// Not checked yet.
    Unverified,
    /// Exchange knows the mailbox and calbridge may read its calendar.
    Verified,
    /// The last check failed; the message says why and what to do.
    Failed { error: String },
}

/// A mailbox linked to calbridge by its SMTP address.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Calendar {
    pub id: CalendarId,
    /// SMTP address, lower-cased.
    pub email: String,
    pub kind: CalendarKind,
    pub display_name: String,
    pub connection_id: ConnectionId,
    pub site_id: Option<SiteId>,
    /// Privacy option: show this calendar's Exchange events as "Busy" only.
    pub busy_only: bool,
    pub link: LinkState,
}

/// Where an event was born.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Origin {
    /// Created in the business application, pushed to Exchange by calbridge.
    Local,
    /// Created in Exchange (Outlook, a room display, ...), pulled by calbridge. Read-only.
    Exchange,
}

impl Origin {
    pub fn as_str(self) -> &'static str {
        match self {
            Origin::Local => "local",
            Origin::Exchange => "exchange",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "local" => Some(Origin::Local),
            "exchange" => Some(Origin::Exchange),
            _ => None,
        }
    }
}

/// Exchange's free/busy status of an event (Graph `showAs`, EWS `LegacyFreeBusyStatus`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum ShowAs {
    Free,
    Tentative,
    Busy,
    Oof,
    WorkingElsewhere,
    Unknown,
}

/// Exchange's sensitivity of an event.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Sensitivity {
    Normal,
    Personal,
    Private,
    Confidential,
}

/// An attendee's role in a meeting.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum AttendeeRole {
    Required,
    Optional,
    /// A room or a piece of equipment, booked through its mailbox.
    Resource,
}

/// An attendee's answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum ResponseStatus {
    None,
    Organizer,
    TentativelyAccepted,
    Accepted,
    Declined,
    NotResponded,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Person {
    pub email: String,
    pub name: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Attendee {
    pub email: String,
    pub name: String,
    pub role: AttendeeRole,
    pub response: ResponseStatus,
}

/// Where an event sits in a recurring series.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum SeriesKind {
    /// Not part of a series.
    Single,
    /// The series itself (pattern and range).
    Master,
    /// An unmodified occurrence of a series.
    Occurrence,
    /// A modified occurrence of a series.
    Exception,
}

/// The identity of an event within a series, as Exchange gives it.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Series {
    pub kind: SeriesKind,
    /// The remote id of the series master, for occurrences and exceptions.
    pub master_id: Option<String>,
    /// The occurrence's original start, for occurrences and exceptions.
    pub original_start: Option<DateTime<Utc>>,
    /// The rule, for a master (in the event's zone; its first occurrence is the event's own
    /// start and end). Left out of the serialised form when absent, so content hashes of
    /// single events stay what they were.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recurrence: Option<Box<crate::recurrence::Recurrence>>,
}

impl Series {
    pub fn single() -> Self {
        Series { kind: SeriesKind::Single, master_id: None, original_start: None, recurrence: None }
    }

    /// A series master repeating by `rule`.
    pub fn master(rule: crate::recurrence::Recurrence) -> Self {
        Series { kind: SeriesKind::Master, master_id: None, original_start: None, recurrence: Some(Box::new(rule)) }
    }
}

/// The content of an event: everything both sides compare. Identity and bookkeeping
/// (ids, versions, origin) live outside it, so two sides hold equal content exactly when their
/// `EventData` are equal.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct EventData {
    pub subject: String,
    pub body: String,
    pub location: String,
    /// Start instant. For an all-day event: midnight of the first day in `time_zone`.
    pub start: DateTime<Utc>,
    /// End instant (exclusive). For an all-day event: midnight after the last day.
    pub end: DateTime<Utc>,
    /// The zone the event was made in (IANA name or Windows name, as Exchange gave it).
    pub time_zone: String,
    pub all_day: bool,
    pub show_as: ShowAs,
    pub sensitivity: Sensitivity,
    pub organizer: Option<Person>,
    pub attendees: Vec<Attendee>,
    pub series: Series,
    /// Cancelled by its organizer (still shown by Exchange until removed).
    pub cancelled: bool,
}

impl EventData {
    /// A plain busy event, handy for tests and for callers filling the rest in.
    pub fn new(subject: impl Into<String>, start: DateTime<Utc>, end: DateTime<Utc>) -> Self {
        EventData {
            subject: subject.into(),
            body: String::new(),
            location: String::new(),
            start,
            end,
            time_zone: "UTC".into(),
            all_day: false,
            show_as: ShowAs::Busy,
            sensitivity: Sensitivity::Normal,
            organizer: None,
            attendees: Vec::new(),
            series: Series::single(),
            cancelled: false,
        }
    }

    /// Does this event overlap `[from, to)`?
    pub fn overlaps(&self, from: DateTime<Utc>, to: DateTime<Utc>) -> bool {
        self.start < to && self.end > from
    }

    /// The response of a resource attendee (room or equipment), if it is one.
    pub fn resource_response(&self, email: &str) -> Option<ResponseStatus> {
        self.attendees
            .iter()
            .find(|a| a.role == AttendeeRole::Resource && a.email.eq_ignore_ascii_case(email))
            .map(|a| a.response)
    }
}

/// An event as calbridge stores it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    pub id: EventId,
    pub calendar_id: CalendarId,
    pub origin: Origin,
    pub data: EventData,
    /// Local version, incremented by every local write of the content.
    pub version: i64,
    /// A local deletion not yet pushed to Exchange (a tombstone).
    pub deleted: bool,
}

/// A calendar booking's state, derived from the resource mailbox's answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BookingState {
    Pending,
    Accepted,
    Declined,
}

impl BookingState {
    pub fn from_response(r: ResponseStatus) -> Self {
        match r {
            ResponseStatus::Accepted | ResponseStatus::Organizer => BookingState::Accepted,
            ResponseStatus::Declined => BookingState::Declined,
            _ => BookingState::Pending,
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            BookingState::Pending => "pending",
            BookingState::Accepted => "accepted",
            BookingState::Declined => "declined",
        }
    }
}
