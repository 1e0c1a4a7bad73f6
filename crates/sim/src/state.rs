//! The simulated Exchange organisation: mailboxes, their calendars' events, and each
//! mailbox's change log (a sequence number per change, the basis of `calendarView/delta`).
//!
//! Events are kept in Graph's own wire shape ([`wire::Event`]) plus what Exchange keeps beside
//! them: the UTC span, which organizer event an attendee's copy came from, and a recurring
//! series' cancelled and modified occurrences. All mutation goes through [`State`], which
//! takes `now` as an input; handlers hold the lock only while they compute.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Duration, NaiveDateTime, Utc};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use uuid::Uuid;

use crate::ids;
use crate::recurrence;
use crate::scenario::{MailboxKind, MailboxSpec};
use crate::tz;
use crate::wire;

/// `0001-01-01T00:00:00Z`: Graph's "no answer yet" time.
pub const NO_TIME: &str = "0001-01-01T00:00:00Z";

/// A Graph-shaped failure: status, `error.code`, `error.message`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApiError {
    pub status: u16,
    pub code: String,
    pub message: String,
}

impl ApiError {
    pub fn new(status: u16, code: &str, message: impl Into<String>) -> ApiError {
        ApiError { status, code: code.into(), message: message.into() }
    }
    pub fn item_not_found() -> ApiError {
        ApiError::new(404, "ErrorItemNotFound", "The specified object was not found in the store.")
    }
    pub fn bad_body(message: impl Into<String>) -> ApiError {
        ApiError::new(400, "RequestBodyRead", message)
    }
    pub fn invalid_request(message: impl Into<String>) -> ApiError {
        ApiError::new(400, "ErrorInvalidRequest", message)
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Mailbox {
    /// The directory object id (a GUID).
    pub id: String,
    pub guid: Uuid,
    pub email: String,
    /// Lower-case e-mail: the key everything is indexed by.
    pub key: String,
    pub name: String,
    pub kind: MailboxKind,
    pub job_title: Option<String>,
    pub office_location: Option<String>,
    pub time_zone: String,
    pub capacity: Option<u32>,
    pub auto_accept: bool,
    pub allow_conflicts: bool,
    pub booking_window_days: u32,
    pub max_duration_minutes: u32,
    pub add_organizer_to_subject: bool,
    pub delete_subject: bool,
    pub calendar_id: String,
}

impl Mailbox {
    pub fn from_spec(spec: &MailboxSpec, tenant_id: &str, default_zone: &str) -> Mailbox {
        let key = spec.email.to_ascii_lowercase();
        let guid = ids::guid(&[tenant_id, &key]);
        Mailbox {
            id: guid.hyphenated().to_string(),
            guid,
            email: spec.email.clone(),
            key,
            name: spec.name.clone(),
            kind: spec.kind,
            job_title: spec.job_title.clone(),
            office_location: spec.office_location.clone(),
            time_zone: spec.time_zone.clone().unwrap_or_else(|| default_zone.to_string()),
            capacity: spec.capacity,
            auto_accept: spec.auto_accept,
            allow_conflicts: spec.allow_conflicts,
            booking_window_days: spec.booking_window_days,
            max_duration_minutes: spec.max_duration_minutes,
            add_organizer_to_subject: spec.add_organizer_to_subject,
            delete_subject: spec.delete_subject,
            calendar_id: ids::calendar_id(&guid),
        }
    }

    pub fn is_resource(&self) -> bool {
        self.kind != MailboxKind::Person
    }

    pub fn recipient(&self) -> wire::EmailAddress {
        wire::EmailAddress { name: Some(self.name.clone()), address: Some(self.email.clone()), ..Default::default() }
    }
}

/// Which organizer event an attendee's (or resource's) copy belongs to.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Origin {
    pub mailbox: String,
    pub id: String,
}

/// A modified occurrence of a series (`type: exception`).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ExceptionData {
    pub event: wire::Event,
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct StoredEvent {
    /// The event as Graph shows it (start/end in the original zone).
    pub event: wire::Event,
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    #[serde(default)]
    pub origin: Option<Origin>,
    /// Original starts (Unix seconds) of deleted occurrences.
    #[serde(default)]
    pub cancelled: BTreeSet<i64>,
    /// Modified occurrences by original start (Unix seconds).
    #[serde(default)]
    pub exceptions: BTreeMap<i64, ExceptionData>,
}

/// One expanded calendar item: a single event, an occurrence or an exception.
#[derive(Clone, Debug)]
pub struct Instance<'a> {
    pub ev: &'a StoredEvent,
    pub id: String,
    pub kind: &'static str,
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    pub original_start: Option<DateTime<Utc>>,
    pub exception: Option<&'a ExceptionData>,
}

impl Instance<'_> {
    /// `showAs` of this instance.
    pub fn show_as(&self) -> &str {
        self.exception.and_then(|x| x.event.show_as.as_deref()).or(self.ev.event.show_as.as_deref()).unwrap_or("busy")
    }
}

pub fn overlaps(start: DateTime<Utc>, end: DateTime<Utc>, from: DateTime<Utc>, to: DateTime<Utc>) -> bool {
    start < to && (end > from || (start == end && start >= from))
}

impl StoredEvent {
    pub fn id(&self) -> &str {
        self.event.id.as_deref().unwrap_or_default()
    }

    pub fn is_series(&self) -> bool {
        self.event.recurrence.is_some()
    }

    /// The zone a series recurs in: the range's recurrenceTimeZone, else the start's zone.
    fn series_zone(&self) -> Tz {
        self.event
            .recurrence
            .as_ref()
            .and_then(|r| r.range.as_ref())
            .and_then(|r| r.recurrence_time_zone.as_deref())
            .and_then(tz::resolve)
            .or_else(|| self.event.original_start_time_zone.as_deref().and_then(tz::resolve))
            .unwrap_or(chrono_tz::UTC)
    }

    /// Instances overlapping `[from, to)`, ascending by start.
    pub fn instances(&self, from: DateTime<Utc>, to: DateTime<Utc>) -> Vec<Instance<'_>> {
        let Some(rec) = &self.event.recurrence else {
            if overlaps(self.start, self.end, from, to) {
                return vec![Instance {
                    ev: self,
                    id: self.id().to_string(),
                    kind: "singleInstance",
                    start: self.start,
                    end: self.end,
                    original_start: None,
                    exception: None,
                }];
            }
            return vec![];
        };
        let zone = self.series_zone();
        let first_local = tz::to_local(self.start, zone);
        let duration = self.end - self.start;
        // An all-day occurrence runs from midnight to midnight in its zone, however long
        // that day is (a DST change makes it 23 or 25 hours).
        let all_day_days = (self.event.is_all_day == Some(true))
            .then(|| (tz::to_local(self.end, zone).date() - first_local.date()).num_days().max(1));
        let until = tz::to_local(to, zone).date() + Duration::days(1);
        let mut out = Vec::new();
        for date in recurrence::occurrence_dates(rec, first_local.date(), until) {
            let original = tz::local_to_utc(zone, date.and_time(first_local.time()));
            let key = original.timestamp();
            if self.cancelled.contains(&key) {
                continue;
            }
            let (start, end, kind, exception) = match self.exceptions.get(&key) {
                Some(x) => (x.start, x.end, "exception", Some(x)),
                None => {
                    let end = match all_day_days {
                        Some(days) => {
                            tz::local_to_utc(zone, (date + Duration::days(days)).and_time(chrono::NaiveTime::MIN))
                        }
                        None => original + duration,
                    };
                    (original, end, "occurrence", None)
                }
            };
            if overlaps(start, end, from, to) {
                out.push(Instance {
                    ev: self,
                    id: ids::occurrence_id(self.id(), key),
                    kind,
                    start,
                    end,
                    original_start: Some(original),
                    exception,
                });
            }
        }
        // Exceptions moved into the window from an original date beyond it.
        for (key, x) in
            self.exceptions.range(until.and_hms_opt(0, 0, 0).map(|d| d.and_utc().timestamp()).unwrap_or(i64::MAX)..)
        {
            if !self.cancelled.contains(key) && overlaps(x.start, x.end, from, to) {
                out.push(Instance {
                    ev: self,
                    id: ids::occurrence_id(self.id(), *key),
                    kind: "exception",
                    start: x.start,
                    end: x.end,
                    original_start: DateTime::from_timestamp(*key, 0),
                    exception: Some(x),
                });
            }
        }
        out.sort_by(|a, b| a.start.cmp(&b.start).then_with(|| a.id.cmp(&b.id)));
        out
    }

    /// Every instance id over the series' first three years (used to record what a change
    /// removed); for a single event, its own id.
    pub fn instance_ids(&self) -> BTreeSet<String> {
        if !self.is_series() {
            return BTreeSet::from([self.id().to_string()]);
        }
        let from = self.start - Duration::days(1);
        let to = self.start + Duration::days(3 * 366);
        self.instances(from, to).into_iter().map(|i| i.id).collect()
    }

    /// The occurrence with this original start, if the series has one (cancelled ones excluded).
    pub fn occurrence(&self, key: i64) -> Option<Instance<'_>> {
        let original = DateTime::from_timestamp(key, 0)?;
        let span = (self.end - self.start).max(Duration::zero());
        let from = original.min(self.exceptions.get(&key).map(|x| x.start).unwrap_or(original)) - Duration::seconds(1);
        let to = original.max(self.exceptions.get(&key).map(|x| x.end).unwrap_or(original)) + span + Duration::days(1);
        self.instances(from, to).into_iter().find(|i| i.original_start.map(|o| o.timestamp()) == Some(key))
    }
}

/// One change in a mailbox: which event changed (by master/single id) and which instance ids
/// it made disappear.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct LogEntry {
    pub seq: u64,
    pub id: String,
    #[serde(default)]
    pub removed: Vec<String>,
}

/// How to show an event in a response.
#[derive(Clone, Debug, Default)]
pub struct RenderOpts {
    /// `Prefer: outlook.timezone`: the name as asked and the zone; `None` = UTC.
    pub zone: Option<(String, Tz)>,
    /// `Prefer: outlook.body-content-type="text"`.
    pub body_text: bool,
    /// `$select`: top-level property names.
    pub select: Option<Vec<String>>,
    /// `$expand=singleValueExtendedProperties($filter=id eq '...')`: the ids asked for
    /// (`Some(empty)` = all).
    pub expand_props: Option<Vec<String>>,
    /// Add `"@odata.type": "#microsoft.graph.event"` (delta responses do).
    pub odata_type: bool,
}

/// The whole organisation. Serialized as the state snapshot.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct State {
    /// Identifies this simulator's tokens (survives save/load).
    pub instance_id: String,
    /// Signs access tokens and sync-state tokens (hex).
    pub signing_key: String,
    pub mailboxes: Vec<Mailbox>,
    /// mailbox key → event id → event.
    pub events: BTreeMap<String, BTreeMap<String, StoredEvent>>,
    /// Items created so far per mailbox (the id counter).
    pub counters: BTreeMap<String, u64>,
    /// Change keys issued so far.
    pub change_counter: u64,
    /// Change log per mailbox, ascending by seq.
    pub log: BTreeMap<String, Vec<LogEntry>>,
    /// Last seq per mailbox.
    pub seq: BTreeMap<String, u64>,
    /// `mailbox key \u{1}` + transactionId → event id.
    pub transactions: BTreeMap<String, String>,
    /// Change-notification subscriptions by id.
    #[serde(default)]
    pub subscriptions: BTreeMap<String, SimSubscription>,
    /// Change notifications waiting for delivery (`crate::notify`), oldest first.
    #[serde(skip)]
    pub outgoing: Vec<Outgoing>,
}

/// A change-notification subscription on a mailbox's events.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SimSubscription {
    pub id: String,
    /// The mailbox key.
    pub mailbox: String,
    pub resource: String,
    pub change_type: Vec<String>,
    pub notification_url: String,
    pub lifecycle_notification_url: Option<String>,
    pub client_state: Option<String>,
    pub expires: DateTime<Utc>,
    pub application_id: String,
}

/// One notification to deliver: where, and the notification object.
#[derive(Clone, Debug)]
pub struct Outgoing {
    pub url: String,
    pub notification: Value,
}

pub const EVENT_PROPERTIES: &[&str] = &[
    "id",
    "categories",
    "changeKey",
    "createdDateTime",
    "lastModifiedDateTime",
    "allowNewTimeProposals",
    "attendees",
    "body",
    "bodyPreview",
    "cancelledOccurrences",
    "end",
    "hasAttachments",
    "hideAttendees",
    "iCalUId",
    "importance",
    "isAllDay",
    "isCancelled",
    "isDraft",
    "isOnlineMeeting",
    "isOrganizer",
    "isReminderOn",
    "location",
    "locations",
    "onlineMeeting",
    "onlineMeetingProvider",
    "onlineMeetingUrl",
    "organizer",
    "originalEndTimeZone",
    "originalStart",
    "originalStartTimeZone",
    "recurrence",
    "reminderMinutesBeforeStart",
    "responseRequested",
    "responseStatus",
    "sensitivity",
    "seriesMasterId",
    "showAs",
    "start",
    "subject",
    "transactionId",
    "type",
    "webLink",
    "attachments",
    "calendar",
    "exceptionOccurrences",
    "extensions",
    "instances",
    "multiValueExtendedProperties",
    "singleValueExtendedProperties",
];

const SHOW_AS: &[&str] = &["free", "tentative", "busy", "oof", "workingElsewhere", "unknown"];
const SENSITIVITY: &[&str] = &["normal", "personal", "private", "confidential"];
const IMPORTANCE: &[&str] = &["low", "normal", "high"];
const ATTENDEE_TYPE: &[&str] = &["required", "optional", "resource"];

fn enum_value(value: &str, allowed: &[&str], type_name: &str) -> Result<String, ApiError> {
    allowed.iter().find(|a| a.eq_ignore_ascii_case(value)).map(|a| a.to_string()).ok_or_else(|| {
        ApiError::bad_body(format!(
            "Cannot convert the literal '{value}' to the expected type 'microsoft.graph.{type_name}'."
        ))
    })
}

/// Checks a request body's top-level names against the event type, as Graph does.
pub fn check_event_properties(body: &Map<String, Value>) -> Result<(), ApiError> {
    for key in body.keys() {
        if key.starts_with('@') || key.contains("@odata.") {
            continue;
        }
        if !EVENT_PROPERTIES.contains(&key.as_str()) {
            return Err(ApiError::bad_body(format!(
                "The property '{key}' does not exist on type 'microsoft.graph.event'. Make sure to only use property names that are defined by the type or mark the type as open type."
            )));
        }
    }
    Ok(())
}

/// HTML as Exchange stores it.
fn html_document(inner: &str) -> String {
    format!("<html>\r\n<head>\r\n<meta http-equiv=\"Content-Type\" content=\"text/html; charset=utf-8\">\r\n</head>\r\n<body>\r\n{inner}\r\n</body>\r\n</html>\r\n")
}

fn escape_html(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// Text of an HTML body (tags removed, entities decoded, whitespace folded).
pub fn html_to_text(html: &str) -> String {
    let lower = html.to_ascii_lowercase();
    let body = match (lower.find("<body"), lower.rfind("</body>")) {
        (Some(b), Some(e)) if b < e => {
            let open_end = html[b..].find('>').map(|i| b + i + 1).unwrap_or(b);
            &html[open_end.min(e)..e]
        }
        _ => html,
    };
    let mut out = String::new();
    let mut in_tag = false;
    for c in body.chars() {
        match c {
            '<' => {
                in_tag = true;
                out.push(' ');
            }
            '>' => in_tag = false,
            _ if !in_tag => out.push(c),
            _ => {}
        }
    }
    let decoded = out
        .replace("&nbsp;", " ")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&amp;", "&");
    decoded.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Normalizes a body to Exchange's stored form (HTML document) and returns it with the preview.
fn normalize_body(body: Option<&wire::ItemBody>) -> Result<(wire::ItemBody, String), ApiError> {
    let kind = body.and_then(|b| b.content_type.as_deref()).unwrap_or("text");
    let kind = enum_value(kind, &["text", "html"], "bodyType")?;
    let content = body.and_then(|b| b.content.clone()).unwrap_or_default();
    let html = if kind == "html" {
        if content.to_ascii_lowercase().contains("<html") {
            content
        } else {
            html_document(&content)
        }
    } else if content.is_empty() {
        String::new()
    } else {
        html_document(&escape_html(&content).replace('\n', "<br>\r\n"))
    };
    let preview: String = html_to_text(&html).chars().take(255).collect();
    Ok((wire::ItemBody { content_type: Some("html".into()), content: Some(html), ..Default::default() }, preview))
}

/// Parses `start`/`end` (`dateTimeTimeZone`).
fn parse_dttz(
    v: Option<&wire::DateTimeTimeZone>,
    name: &str,
) -> Result<(DateTime<Utc>, String, NaiveDateTime), ApiError> {
    let v = v.ok_or_else(|| {
        ApiError::invalid_request(format!("Your request can't be completed. The property '{name}' is required."))
    })?;
    let zone_name = v.time_zone.clone().unwrap_or_else(|| "UTC".into());
    let zone = tz::resolve(&zone_name).ok_or_else(|| {
        ApiError::new(
            400,
            "TimeZoneNotSupportedException",
            format!("A valid TimeZone value must be specified. The following TimeZone value is not supported: '{zone_name}'."),
        )
    })?;
    let (naive, instant) = tz::parse_graph_date_time(&v.date_time).ok_or_else(|| {
        ApiError::bad_body(format!("Cannot convert the literal '{}' to the expected type 'Edm.DateTime'.", v.date_time))
    })?;
    let utc = instant.unwrap_or_else(|| tz::local_to_utc(zone, naive));
    Ok((utc, zone_name, tz::to_local(utc, zone)))
}

fn normalize_location(l: &wire::Location) -> wire::Location {
    let name = l.display_name.clone().unwrap_or_default();
    wire::Location {
        display_name: Some(name.clone()),
        location_type: Some(l.location_type.clone().unwrap_or_else(|| "default".into())),
        location_email_address: l.location_email_address.clone(),
        unique_id: if name.is_empty() { None } else { Some(l.unique_id.clone().unwrap_or(name)) },
        unique_id_type: Some(if l.unique_id.is_none() && l.display_name.as_deref().is_some_and(|n| !n.is_empty()) {
            "private".into()
        } else {
            l.unique_id_type.clone().unwrap_or_else(|| "unknown".into())
        }),
        ..Default::default()
    }
}

fn normalize_recurrence(
    rec: &wire::PatternedRecurrence,
    start_local: NaiveDateTime,
    zone_name: &str,
) -> Result<wire::PatternedRecurrence, ApiError> {
    recurrence::validate(rec).map_err(ApiError::bad_body)?;
    let mut p = rec.pattern.clone().unwrap_or_default();
    let kind = p.kind.clone().unwrap_or_default();
    p.kind = Some(
        ["daily", "weekly", "absoluteMonthly", "relativeMonthly", "absoluteYearly", "relativeYearly"]
            .iter()
            .find(|k| k.eq_ignore_ascii_case(&kind))
            .map(|k| k.to_string())
            .unwrap_or(kind),
    );
    p.interval = Some(p.interval.unwrap_or(1));
    p.month = Some(p.month.unwrap_or(0));
    p.day_of_month = Some(p.day_of_month.unwrap_or(0));
    p.days_of_week = Some(p.days_of_week.unwrap_or_default().iter().map(|d| d.to_ascii_lowercase()).collect());
    p.first_day_of_week = Some(p.first_day_of_week.map(|d| d.to_ascii_lowercase()).unwrap_or_else(|| "sunday".into()));
    p.index = Some(p.index.map(|d| d.to_ascii_lowercase()).unwrap_or_else(|| "first".into()));
    let mut r = rec.range.clone().unwrap_or_default();
    let rkind = r.kind.clone().unwrap_or_default();
    let rkind = ["endDate", "noEnd", "numbered"]
        .iter()
        .find(|k| k.eq_ignore_ascii_case(&rkind))
        .map(|k| k.to_string())
        .unwrap_or(rkind);
    r.start_date = Some(r.start_date.unwrap_or_else(|| start_local.date().format("%Y-%m-%d").to_string()));
    if rkind != "endDate" {
        r.end_date = Some("0001-01-01".into());
    }
    r.number_of_occurrences = Some(if rkind == "numbered" { r.number_of_occurrences.unwrap_or(1) } else { 0 });
    r.recurrence_time_zone = Some(r.recurrence_time_zone.unwrap_or_else(|| zone_name.to_string()));
    r.kind = Some(rkind);
    Ok(wire::PatternedRecurrence { pattern: Some(p), range: Some(r), ..Default::default() })
}

/// Fills the derived and defaulted fields of an event being written by its organizer (or
/// owner): times, body, enums, locations, attendees, recurrence. `previous` keeps attendee
/// answers of addresses that stay.
pub fn normalize_content(
    ev: &mut wire::Event,
    previous: Option<&wire::Event>,
) -> Result<(DateTime<Utc>, DateTime<Utc>), ApiError> {
    let (start, start_zone, start_local) = parse_dttz(ev.start.as_ref(), "start")?;
    let (end, end_zone, end_local) = parse_dttz(ev.end.as_ref(), "end")?;
    if end < start {
        return Err(ApiError::invalid_request("The start time of the event must be before its end time."));
    }
    ev.start = Some(wire::DateTimeTimeZone {
        date_time: tz::format_naive(start_local),
        time_zone: Some(start_zone.clone()),
        ..Default::default()
    });
    ev.end = Some(wire::DateTimeTimeZone {
        date_time: tz::format_naive(end_local),
        time_zone: Some(end_zone.clone()),
        ..Default::default()
    });
    ev.original_start_time_zone = Some(start_zone.clone());
    ev.original_end_time_zone = Some(end_zone);
    let (body, preview) = normalize_body(ev.body.as_ref())?;
    ev.body = Some(body);
    ev.body_preview = Some(preview);
    ev.subject = Some(ev.subject.clone().unwrap_or_default());
    ev.show_as = Some(enum_value(ev.show_as.as_deref().unwrap_or("busy"), SHOW_AS, "freeBusyStatus")?);
    ev.sensitivity = Some(enum_value(ev.sensitivity.as_deref().unwrap_or("normal"), SENSITIVITY, "sensitivity")?);
    ev.importance = Some(enum_value(ev.importance.as_deref().unwrap_or("normal"), IMPORTANCE, "importance")?);
    ev.categories = Some(ev.categories.clone().unwrap_or_default());
    ev.is_all_day = Some(ev.is_all_day.unwrap_or(false));
    ev.is_reminder_on = Some(ev.is_reminder_on.unwrap_or(true));
    ev.reminder_minutes_before_start = Some(ev.reminder_minutes_before_start.unwrap_or(15));
    ev.response_requested = Some(ev.response_requested.unwrap_or(true));
    ev.allow_new_time_proposals = Some(ev.allow_new_time_proposals.unwrap_or(true));
    ev.is_online_meeting = Some(ev.is_online_meeting.unwrap_or(false));
    let location = normalize_location(&ev.location.clone().unwrap_or_default());
    ev.locations = Some(match &ev.locations {
        Some(ls) if !ls.is_empty() => ls
            .iter()
            .map(|l| wire::Location {
                unique_id_type: Some(l.unique_id_type.clone().unwrap_or_else(|| "unknown".into())),
                location_type: Some(l.location_type.clone().unwrap_or_else(|| "default".into())),
                ..l.clone()
            })
            .collect(),
        _ if location.display_name.as_deref().is_some_and(|n| !n.is_empty()) => vec![wire::Location {
            display_name: location.display_name.clone(),
            location_type: Some("default".into()),
            unique_id_type: Some("unknown".into()),
            ..Default::default()
        }],
        _ => vec![],
    });
    ev.location = Some(location);
    let mut attendees = Vec::new();
    for a in ev.attendees.clone().unwrap_or_default() {
        let kind = enum_value(a.kind.as_deref().unwrap_or("required"), ATTENDEE_TYPE, "attendeeType")?;
        let address = a.email_address.as_ref().and_then(|e| e.address.clone()).unwrap_or_default();
        if address.is_empty() {
            return Err(ApiError::invalid_request("An attendee must have an email address."));
        }
        let status = previous
            .and_then(|p| p.attendees.as_ref())
            .and_then(|list| {
                list.iter().find(|old| {
                    old.email_address
                        .as_ref()
                        .and_then(|e| e.address.as_deref())
                        .is_some_and(|x| x.eq_ignore_ascii_case(&address))
                })
            })
            .and_then(|old| old.status.clone())
            .unwrap_or(wire::ResponseStatus {
                response: Some("none".into()),
                time: Some(NO_TIME.into()),
                ..Default::default()
            });
        attendees.push(wire::Attendee {
            kind: Some(kind),
            status: Some(status),
            email_address: Some(wire::EmailAddress {
                name: Some(a.email_address.as_ref().and_then(|e| e.name.clone()).unwrap_or_else(|| address.clone())),
                address: Some(address),
            }),
            ..Default::default()
        });
    }
    ev.attendees = Some(attendees);
    if let Some(rec) = ev.recurrence.clone() {
        ev.recurrence = Some(normalize_recurrence(&rec, start_local, &start_zone)?);
        ev.kind = Some("seriesMaster".into());
    } else {
        ev.kind = Some("singleInstance".into());
    }
    Ok((start, end))
}

impl State {
    pub fn new(instance_id: String, signing_key: String, mailboxes: Vec<Mailbox>) -> State {
        State {
            instance_id,
            signing_key,
            events: mailboxes.iter().map(|m| (m.key.clone(), BTreeMap::new())).collect(),
            mailboxes,
            counters: BTreeMap::new(),
            change_counter: 0,
            log: BTreeMap::new(),
            seq: BTreeMap::new(),
            transactions: BTreeMap::new(),
            subscriptions: BTreeMap::new(),
            outgoing: Vec::new(),
        }
    }

    /// A mailbox by directory id or address (case-insensitive).
    pub fn mailbox(&self, id_or_address: &str) -> Option<&Mailbox> {
        let k = id_or_address.trim().to_ascii_lowercase();
        self.mailboxes.iter().find(|m| m.key == k || m.id == k)
    }

    pub fn mailbox_by_key(&self, key: &str) -> Option<&Mailbox> {
        self.mailboxes.iter().find(|m| m.key == key)
    }

    pub fn current_seq(&self, mailbox: &str) -> u64 {
        self.seq.get(mailbox).copied().unwrap_or(0)
    }

    fn next_change_key(&mut self, mailbox: &str) -> String {
        self.change_counter += 1;
        let guid = self.mailbox_by_key(mailbox).map(|m| m.guid).unwrap_or_default();
        ids::change_key(&guid, self.change_counter)
    }

    fn next_item_id(&mut self, mailbox: &str) -> String {
        let c = self.counters.entry(mailbox.to_string()).or_insert(0);
        *c += 1;
        let c = *c;
        let guid = self.mailbox_by_key(mailbox).map(|m| m.guid).unwrap_or_default();
        ids::item_id(&guid, c)
    }

    pub fn log_change(&mut self, mailbox: &str, id: &str, removed: Vec<String>) {
        let seq = self.seq.entry(mailbox.to_string()).or_insert(0);
        *seq += 1;
        let seq = *seq;
        self.log.entry(mailbox.to_string()).or_default().push(LogEntry { seq, id: id.to_string(), removed });
        self.notify_change(mailbox, id);
    }

    /// Queues a change notification for each live subscription on `mailbox` that wants this
    /// kind of change.
    fn notify_change(&mut self, mailbox: &str, id: &str) {
        let now = Utc::now();
        let Some(user) = self.mailbox_by_key(mailbox).map(|m| m.id.clone()) else { return };
        let (change, etag) = match self.event(mailbox, id) {
            Some(e) if e.event.created_date_time == e.event.last_modified_date_time => {
                ("created", e.event.odata_etag.clone())
            }
            Some(e) => ("updated", e.event.odata_etag.clone()),
            None => ("deleted", None),
        };
        for s in self.subscriptions.values().filter(|s| s.mailbox == mailbox && s.expires > now) {
            if !s.change_type.iter().any(|c| c == change) {
                continue;
            }
            let resource = format!("Users/{user}/Events/{id}");
            let mut n = serde_json::json!({
                "subscriptionId": s.id,
                "subscriptionExpirationDateTime": tz::format_instant(s.expires),
                "changeType": change,
                "resource": resource,
                "resourceData": {
                    "@odata.type": "#Microsoft.Graph.Event",
                    "@odata.id": resource,
                    "id": id,
                },
            });
            if let Some(c) = &s.client_state {
                n["clientState"] = Value::String(c.clone());
            }
            if let Some(etag) = &etag {
                n["resourceData"]["@odata.etag"] = Value::String(etag.clone());
            }
            self.outgoing.push(Outgoing { url: s.notification_url.clone(), notification: n });
        }
    }

    /// Queues a lifecycle notification (`reauthorizationRequired`, `subscriptionRemoved`,
    /// `missed`) for a subscription; `subscriptionRemoved` also ends it.
    pub fn lifecycle_event(&mut self, subscription: &str, event: &str) -> bool {
        let Some(s) = self.subscriptions.get(subscription).cloned() else { return false };
        let mut n = serde_json::json!({
            "subscriptionId": s.id,
            "subscriptionExpirationDateTime": tz::format_instant(s.expires),
            "lifecycleEvent": event,
        });
        if let Some(c) = &s.client_state {
            n["clientState"] = Value::String(c.clone());
        }
        let url = s.lifecycle_notification_url.clone().unwrap_or(s.notification_url.clone());
        self.outgoing.push(Outgoing { url, notification: n });
        if event == "subscriptionRemoved" {
            self.subscriptions.remove(subscription);
        }
        true
    }

    /// Marks an event changed: new change key, etag and lastModifiedDateTime.
    fn touch(&mut self, mailbox: &str, id: &str, now: DateTime<Utc>) {
        let ck = self.next_change_key(mailbox);
        if let Some(ev) = self.events.get_mut(mailbox).and_then(|m| m.get_mut(id)) {
            ev.event.change_key = Some(ck.clone());
            ev.event.odata_etag = Some(format!("W/\"{ck}\""));
            ev.event.last_modified_date_time = Some(tz::format_instant(now));
        }
    }

    pub fn event(&self, mailbox: &str, id: &str) -> Option<&StoredEvent> {
        self.events.get(mailbox)?.get(id)
    }

    /// Finds an event or occurrence by id: (master/single id, original start of the occurrence).
    pub fn resolve_id(&self, mailbox: &str, id: &str) -> Option<(String, Option<i64>)> {
        if self.event(mailbox, id).is_some() {
            return Some((id.to_string(), None));
        }
        let (master, key) = ids::parse_occurrence_id(id)?;
        let ev = self.event(mailbox, &master)?;
        ev.occurrence(key)?;
        Some((master, Some(key)))
    }

    /// The mailbox holding event or occurrence `id`, with [`State::resolve_id`]'s answer: first
    /// the mailbox the id names (ids carry their mailbox's GUID), then, for an id made
    /// elsewhere, every mailbox in turn.
    pub fn locate(&self, id: &str) -> Option<(&Mailbox, (String, Option<i64>))> {
        let named = ids::mailbox_guid_of(id).and_then(|guid| self.mailboxes.iter().find(|m| m.guid == guid));
        if let Some(found) = named.and_then(|m| self.resolve_id(&m.key, id).map(|r| (m, r))) {
            return Some(found);
        }
        self.mailboxes.iter().find_map(|m| self.resolve_id(&m.key, id).map(|r| (m, r)))
    }

    /// Stores a new event in `mailbox` as its organizer. Returns the new id (or the existing
    /// one for a repeated transactionId, with `false`).
    pub fn create_event(
        &mut self,
        mailbox: &str,
        mut ev: wire::Event,
        now: DateTime<Utc>,
    ) -> Result<(String, bool), ApiError> {
        let mb = self.mailbox_by_key(mailbox).ok_or_else(ApiError::item_not_found)?.clone();
        if let Some(txn) = ev.transaction_id.clone().filter(|t| !t.is_empty()) {
            let key = format!("{mailbox}\u{1}{txn}");
            if let Some(existing) = self.transactions.get(&key) {
                if self.event(mailbox, existing).is_some() {
                    return Ok((existing.clone(), false));
                }
            }
        }
        let (start, end) = normalize_content(&mut ev, None)?;
        let id = self.next_item_id(mailbox);
        let counter = self.counters.get(mailbox).copied().unwrap_or(0);
        ev.id = Some(id.clone());
        ev.created_date_time = Some(tz::format_instant(now));
        ev.i_cal_u_id = Some(ids::ical_uid(&[&mb.id, &counter.to_string()]));
        ev.organizer = Some(wire::Recipient { email_address: Some(mb.recipient()), ..Default::default() });
        ev.is_organizer = Some(true);
        ev.is_cancelled = Some(false);
        ev.has_attachments = Some(false);
        ev.response_status = Some(wire::ResponseStatus {
            response: Some("organizer".into()),
            time: Some(NO_TIME.into()),
            ..Default::default()
        });
        ev.series_master_id = None;
        ev.original_start = None;
        ev.removed = None;
        ev.web_link = Some(web_link(&id));
        if let Some(txn) = ev.transaction_id.clone().filter(|t| !t.is_empty()) {
            self.transactions.insert(format!("{mailbox}\u{1}{txn}"), id.clone());
        }
        let stored = StoredEvent {
            event: ev,
            start,
            end,
            origin: None,
            cancelled: BTreeSet::new(),
            exceptions: BTreeMap::new(),
        };
        self.events.entry(mailbox.to_string()).or_default().insert(id.clone(), stored);
        self.touch(mailbox, &id, now);
        self.log_change(mailbox, &id, vec![]);
        Ok((id, true))
    }

    fn check_if_match(current: Option<&str>, if_match: Option<&str>) -> Result<(), ApiError> {
        let Some(want) = if_match.map(str::trim).filter(|s| !s.is_empty() && *s != "*") else {
            return Ok(());
        };
        // `want` is an etag (`W/"<changeKey>"`, or `"<changeKey>"`), or a bare changeKey;
        // `current` is the changeKey itself, which may begin with `W/` (it is base64).
        let want = want.strip_prefix("W/\"").map(|w| w.trim_end_matches('"')).unwrap_or(want).trim_matches('"');
        if current.map(str::trim) != Some(want) {
            return Err(ApiError::new(
                412,
                "ErrorIrresolvableConflict",
                "The send or update operation could not be performed because the change key passed in the request does not match the current change key for the item.",
            ));
        }
        Ok(())
    }

    /// Applies a PATCH body. Returns (master/single id, whether the time or attendees changed).
    pub fn update_event(
        &mut self,
        mailbox: &str,
        id: &str,
        patch: &Map<String, Value>,
        if_match: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<(String, bool), ApiError> {
        check_event_properties(patch)?;
        let (master_id, occurrence) = self.resolve_id(mailbox, id).ok_or_else(ApiError::item_not_found)?;
        let stored = self.event(mailbox, &master_id).ok_or_else(ApiError::item_not_found)?.clone();
        if let Some(key) = occurrence {
            let current_ck = stored
                .exceptions
                .get(&key)
                .and_then(|x| x.event.change_key.clone())
                .or(stored.event.change_key.clone());
            Self::check_if_match(current_ck.as_deref(), if_match)?;
            return self.update_occurrence(mailbox, &stored, key, patch, now).map(|_| (master_id, false));
        }
        Self::check_if_match(stored.event.change_key.as_deref(), if_match)?;
        let mut value = serde_json::to_value(&stored.event).map_err(|e| ApiError::bad_body(e.to_string()))?;
        let obj = value.as_object_mut().expect("an event is an object");
        for (k, v) in patch {
            match k.as_str() {
                "id"
                | "changeKey"
                | "createdDateTime"
                | "lastModifiedDateTime"
                | "iCalUId"
                | "organizer"
                | "isOrganizer"
                | "responseStatus"
                | "type"
                | "seriesMasterId"
                | "webLink"
                | "bodyPreview"
                | "hasAttachments"
                | "originalStart" => {}
                _ if k.starts_with('@') => {}
                _ => {
                    if v.is_null() {
                        obj.remove(k);
                    } else {
                        obj.insert(k.clone(), v.clone());
                    }
                }
            }
        }
        let mut ev: wire::Event = serde_json::from_value(value).map_err(|e| ApiError::bad_body(e.to_string()))?;
        let (start, end) = normalize_content(&mut ev, Some(&stored.event))?;
        let time_changed = start != stored.start || end != stored.end || ev.recurrence != stored.event.recurrence;
        let attendees_changed = addresses(&ev) != addresses(&stored.event);
        if let Some(txn) = ev.transaction_id.clone().filter(|t| Some(t) != stored.event.transaction_id.as_ref()) {
            self.transactions.insert(format!("{mailbox}\u{1}{txn}"), master_id.clone());
        }
        let before = stored.instance_ids();
        let mut updated = stored.clone();
        updated.event = ev;
        updated.start = start;
        updated.end = end;
        if ev_recurrence_changed(&stored, &updated) {
            updated.cancelled.clear();
            updated.exceptions.clear();
        }
        let after = updated.instance_ids();
        self.events.get_mut(mailbox).expect("mailbox exists").insert(master_id.clone(), updated);
        self.touch(mailbox, &master_id, now);
        self.log_change(mailbox, &master_id, before.difference(&after).cloned().collect());
        Ok((master_id, time_changed || attendees_changed))
    }

    fn update_occurrence(
        &mut self,
        mailbox: &str,
        master: &StoredEvent,
        key: i64,
        patch: &Map<String, Value>,
        now: DateTime<Utc>,
    ) -> Result<(), ApiError> {
        let inst = master.occurrence(key).ok_or_else(ApiError::item_not_found)?;
        let mut base = render_instance(&inst, &RenderOpts::default());
        if let Some(obj) = base.as_object_mut() {
            for (k, v) in patch {
                match k.as_str() {
                    "recurrence" => {
                        if !v.is_null() {
                            return Err(ApiError::invalid_request(
                                "An occurrence or exception cannot have a recurrence.",
                            ));
                        }
                    }
                    "id" | "changeKey" | "type" | "seriesMasterId" | "originalStart" | "iCalUId" | "organizer" => {}
                    _ if k.starts_with('@') => {}
                    _ => {
                        obj.insert(k.clone(), v.clone());
                    }
                }
            }
            obj.remove("recurrence");
        }
        let mut ev: wire::Event = serde_json::from_value(base).map_err(|e| ApiError::bad_body(e.to_string()))?;
        let (start, end) = normalize_content(&mut ev, Some(&master.event))?;
        // The occurrence may not move onto or past an adjacent occurrence's day.
        let neighbours: Vec<DateTime<Utc>> = master
            .instances(inst.start - Duration::days(400), inst.start + Duration::days(400))
            .into_iter()
            .filter(|i| i.original_start.map(|o| o.timestamp()) != Some(key))
            .map(|i| i.original_start.unwrap_or(i.start))
            .collect();
        let prev = neighbours.iter().filter(|o| o.timestamp() < key).max();
        let next = neighbours.iter().filter(|o| o.timestamp() > key).min();
        let day = |t: &DateTime<Utc>| t.date_naive();
        if prev.is_some_and(|p| day(p) >= day(&start)) || next.is_some_and(|n| day(n) <= day(&start)) {
            return Err(ApiError::new(
                400,
                "ErrorOccurrenceCrossingBoundary",
                "An occurrence cannot be moved to or beyond the date of an adjacent occurrence.",
            ));
        }
        ev.kind = Some("exception".into());
        ev.recurrence = None;
        let ck = self.next_change_key(mailbox);
        ev.change_key = Some(ck.clone());
        ev.odata_etag = Some(format!("W/\"{ck}\""));
        ev.last_modified_date_time = Some(tz::format_instant(now));
        let master_id = master.id().to_string();
        let entry =
            self.events.get_mut(mailbox).and_then(|m| m.get_mut(&master_id)).ok_or_else(ApiError::item_not_found)?;
        entry.exceptions.insert(key, ExceptionData { event: ev, start, end });
        self.touch(mailbox, &master_id, now);
        self.log_change(mailbox, &master_id, vec![]);
        Ok(())
    }

    /// Deletes an event, or cancels one occurrence of a series.
    pub fn delete_event(
        &mut self,
        mailbox: &str,
        id: &str,
        if_match: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<(String, bool), ApiError> {
        let (master_id, occurrence) = self.resolve_id(mailbox, id).ok_or_else(ApiError::item_not_found)?;
        let stored = self.event(mailbox, &master_id).ok_or_else(ApiError::item_not_found)?;
        Self::check_if_match(stored.event.change_key.as_deref(), if_match).or_else(|e| {
            // An occurrence's own etag is the master's (or its exception's).
            match occurrence.and_then(|k| stored.exceptions.get(&k)).and_then(|x| x.event.change_key.as_deref()) {
                Some(ck) => Self::check_if_match(Some(ck), if_match),
                None => Err(e),
            }
        })?;
        if let Some(key) = occurrence {
            let occ_id = ids::occurrence_id(&master_id, key);
            let entry = self
                .events
                .get_mut(mailbox)
                .and_then(|m| m.get_mut(&master_id))
                .ok_or_else(ApiError::item_not_found)?;
            entry.cancelled.insert(key);
            entry.exceptions.remove(&key);
            self.touch(mailbox, &master_id, now);
            self.log_change(mailbox, &master_id, vec![occ_id]);
            return Ok((master_id, false));
        }
        let removed_ev =
            self.events.get_mut(mailbox).and_then(|m| m.remove(&master_id)).ok_or_else(ApiError::item_not_found)?;
        let mut removed: Vec<String> = removed_ev.instance_ids().into_iter().collect();
        if !removed.contains(&master_id) {
            removed.push(master_id.clone());
        }
        self.log_change(mailbox, &master_id, removed);
        Ok((master_id, true))
    }

    /// Writes an attendee's copy of an organizer's event (create or replace), keeping the
    /// copy's id. Returns the copy id.
    pub fn upsert_copy(
        &mut self,
        mailbox: &str,
        origin: &Origin,
        source: &StoredEvent,
        show_as: &str,
        response: wire::ResponseStatus,
        now: DateTime<Utc>,
    ) -> String {
        let existing = self.find_copy(mailbox, origin);
        let id = match &existing {
            Some(id) => id.clone(),
            None => self.next_item_id(mailbox),
        };
        let before =
            existing.as_ref().and_then(|i| self.event(mailbox, i)).map(|e| e.instance_ids()).unwrap_or_default();
        let mut ev = source.event.clone();
        let created = existing
            .as_ref()
            .and_then(|i| self.event(mailbox, i))
            .and_then(|e| e.event.created_date_time.clone())
            .unwrap_or_else(|| tz::format_instant(now));
        ev.id = Some(id.clone());
        ev.created_date_time = Some(created);
        ev.is_organizer = Some(false);
        ev.response_status = Some(response);
        ev.show_as = Some(show_as.to_string());
        ev.transaction_id = None;
        ev.single_value_extended_properties = None;
        ev.web_link = Some(web_link(&id));
        // A resource's calendar processing may retitle its copy (AddOrganizerToSubject,
        // DeleteSubject); the organizer's meeting keeps its subject.
        if let Some(mb) = self.mailbox_by_key(mailbox).filter(|m| m.is_resource()) {
            let subject = if mb.delete_subject { String::new() } else { ev.subject.clone().unwrap_or_default() };
            let organizer = ev.organizer.as_ref().and_then(|o| o.email_address.as_ref()).and_then(|e| e.name.clone());
            ev.subject = Some(match (mb.add_organizer_to_subject, organizer) {
                (true, Some(name)) if subject.is_empty() => name,
                (true, Some(name)) => format!("{name} {subject}"),
                _ => subject,
            });
        }
        let mut exceptions = source.exceptions.clone();
        for x in exceptions.values_mut() {
            x.event.show_as = Some(show_as.to_string());
        }
        let copy = StoredEvent {
            event: ev,
            start: source.start,
            end: source.end,
            origin: Some(origin.clone()),
            cancelled: source.cancelled.clone(),
            exceptions,
        };
        let after = copy.instance_ids();
        self.events.entry(mailbox.to_string()).or_default().insert(id.clone(), copy);
        self.touch(mailbox, &id, now);
        self.log_change(mailbox, &id, before.difference(&after).cloned().collect());
        id
    }

    pub fn find_copy(&self, mailbox: &str, origin: &Origin) -> Option<String> {
        self.events.get(mailbox)?.iter().find(|(_, e)| e.origin.as_ref() == Some(origin)).map(|(id, _)| id.clone())
    }

    pub fn remove_copy(&mut self, mailbox: &str, origin: &Origin) {
        if let Some(id) = self.find_copy(mailbox, origin) {
            if let Some(ev) = self.events.get_mut(mailbox).and_then(|m| m.remove(&id)) {
                let mut removed: Vec<String> = ev.instance_ids().into_iter().collect();
                if !removed.contains(&id) {
                    removed.push(id.clone());
                }
                self.log_change(mailbox, &id, removed);
            }
        }
    }

    /// Sets an attendee's answer on the organizer's event; bumps its change key when it changed.
    pub fn set_attendee_response(
        &mut self,
        mailbox: &str,
        id: &str,
        address: &str,
        response: &str,
        now: DateTime<Utc>,
    ) {
        let Some(ev) = self.events.get_mut(mailbox).and_then(|m| m.get_mut(id)) else {
            return;
        };
        let mut changed = false;
        for a in ev.event.attendees.iter_mut().flatten() {
            let matches = a
                .email_address
                .as_ref()
                .and_then(|e| e.address.as_deref())
                .is_some_and(|x| x.eq_ignore_ascii_case(address));
            if matches && a.status.as_ref().and_then(|s| s.response.as_deref()) != Some(response) {
                a.status = Some(wire::ResponseStatus {
                    response: Some(response.to_string()),
                    time: Some(if response == "none" { NO_TIME.into() } else { tz::format_instant(now) }),
                    ..Default::default()
                });
                changed = true;
            }
        }
        if changed {
            self.touch(mailbox, id, now);
            self.log_change(mailbox, id, vec![]);
        }
    }

    /// All instances of a mailbox overlapping `[from, to)`, sorted by start then id.
    pub fn instances(&self, mailbox: &str, from: DateTime<Utc>, to: DateTime<Utc>) -> Vec<Instance<'_>> {
        let mut out: Vec<Instance<'_>> =
            self.events.get(mailbox).into_iter().flat_map(|m| m.values()).flat_map(|e| e.instances(from, to)).collect();
        out.sort_by(|a, b| a.start.cmp(&b.start).then_with(|| a.id.cmp(&b.id)));
        out
    }
}

fn ev_recurrence_changed(a: &StoredEvent, b: &StoredEvent) -> bool {
    a.event.recurrence != b.event.recurrence || a.start != b.start
}

fn addresses(ev: &wire::Event) -> BTreeSet<String> {
    ev.attendees
        .iter()
        .flatten()
        .filter_map(|a| a.email_address.as_ref()?.address.as_ref().map(|s| s.to_ascii_lowercase()))
        .collect()
}

pub fn web_link(id: &str) -> String {
    let encoded: String = url::form_urlencoded::byte_serialize(id.as_bytes()).collect();
    format!("https://outlook.office365.com/owa/?itemid={encoded}&exvsurl=1&path=/calendar/item")
}

fn render_time(t: DateTime<Utc>, zone: &Option<(String, Tz)>) -> wire::DateTimeTimeZone {
    match zone {
        Some((name, tz)) => wire::DateTimeTimeZone {
            date_time: tz::format_naive(tz::to_local(t, *tz)),
            time_zone: Some(name.clone()),
            ..Default::default()
        },
        None => wire::DateTimeTimeZone {
            date_time: tz::format_naive(t.naive_utc()),
            time_zone: Some("UTC".into()),
            ..Default::default()
        },
    }
}

/// An instance as Graph shows it.
pub fn render_instance(inst: &Instance<'_>, opts: &RenderOpts) -> Value {
    finish_render(instance_event(inst, opts), opts)
}

/// An instance's event before [`finish_render`]: the part that needs the state, so that a
/// caller can let go of the state's lock before the (costlier) rendering.
pub fn instance_event(inst: &Instance<'_>, opts: &RenderOpts) -> wire::Event {
    let master = &inst.ev.event;
    let mut e = match (inst.kind, inst.exception) {
        (_, Some(x)) => {
            let mut e = x.event.clone();
            e.id = Some(inst.id.clone());
            e.series_master_id = master.id.clone();
            e.i_cal_u_id = master.i_cal_u_id.clone();
            e.kind = Some("exception".into());
            e.response_status = master.response_status.clone();
            e.is_organizer = master.is_organizer;
            e.organizer = master.organizer.clone();
            e.recurrence = None;
            e.single_value_extended_properties = master.single_value_extended_properties.clone();
            e
        }
        ("occurrence", None) => {
            let mut e = master.clone();
            e.id = Some(inst.id.clone());
            e.series_master_id = master.id.clone();
            e.kind = Some("occurrence".into());
            e.recurrence = None;
            e.web_link = Some(web_link(&inst.id));
            e
        }
        _ => master.clone(),
    };
    if inst.kind != "singleInstance" && inst.kind != "seriesMaster" {
        e.original_start = inst.original_start.map(tz::format_instant);
    }
    e.start = Some(render_time(inst.start, &opts.zone));
    e.end = Some(render_time(inst.end, &opts.zone));
    e
}

/// A stored event (single or series master) as Graph shows it.
pub fn render_event(ev: &StoredEvent, opts: &RenderOpts) -> Value {
    finish_render(stored_event(ev, opts), opts)
}

/// A stored event's event before [`finish_render`].
fn stored_event(ev: &StoredEvent, opts: &RenderOpts) -> wire::Event {
    let mut e = ev.event.clone();
    e.start = Some(render_time(ev.start, &opts.zone));
    e.end = Some(render_time(ev.end, &opts.zone));
    e
}

/// A stored event (single or series master) as [`render_event`] shows it, typed: what EWS
/// turns into its own shape, with no JSON in between.
pub fn event_typed(ev: &StoredEvent, opts: &RenderOpts) -> wire::Event {
    Shown::new(stored_event(ev, opts), opts).event
}

/// An instance as [`render_instance`] shows it, typed.
pub fn instance_typed(inst: &Instance<'_>, opts: &RenderOpts) -> wire::Event {
    Shown::new(instance_event(inst, opts), opts).event
}

/// An event as Graph shows it: the extended properties and body asked for, the properties
/// Graph shows as null, `$select`.
pub fn finish_render(e: wire::Event, opts: &RenderOpts) -> Value {
    let mut v = serde_json::to_value(Shown::new(e, opts)).unwrap_or(Value::Null);
    if let (Some(select), Some(obj)) = (&opts.select, v.as_object_mut()) {
        obj.retain(|k, _| k == "id" || k.starts_with('@') || select.iter().any(|s| s.eq_ignore_ascii_case(k)));
    }
    v
}

/// An event as Graph shows it, all its properties (no `$select`): serialized straight to
/// JSON, with the properties Graph shows beside the stored ones.
#[derive(Serialize)]
pub struct Shown {
    /// `"#microsoft.graph.event"` where asked ([`RenderOpts::odata_type`]).
    #[serde(rename = "@odata.type", skip_serializing_if = "Option::is_none")]
    odata_type: Option<&'static str>,
    #[serde(flatten)]
    event: wire::Event,
    // Graph shows these as null rather than leaving them out.
    #[serde(rename = "seriesMasterId", skip_serializing_if = "Option::is_none")]
    null_series_master_id: Option<()>,
    #[serde(rename = "transactionId", skip_serializing_if = "Option::is_none")]
    null_transaction_id: Option<()>,
    #[serde(rename = "recurrence", skip_serializing_if = "Option::is_none")]
    null_recurrence: Option<()>,
    #[serde(rename = "onlineMeetingUrl")]
    online_meeting_url: (),
    #[serde(rename = "isDraft")]
    is_draft: bool,
    #[serde(rename = "hideAttendees")]
    hide_attendees: bool,
    #[serde(rename = "onlineMeeting")]
    online_meeting: (),
    #[serde(rename = "onlineMeetingProvider")]
    online_meeting_provider: &'static str,
}

impl Shown {
    /// `e` with the extended properties and the body `opts` ask for.
    pub fn new(mut e: wire::Event, opts: &RenderOpts) -> Shown {
        e.single_value_extended_properties = match &opts.expand_props {
            None => None,
            Some(wanted) => Some(
                e.single_value_extended_properties
                    .unwrap_or_default()
                    .into_iter()
                    .filter(|p| wanted.is_empty() || wanted.iter().any(|w| w.eq_ignore_ascii_case(&p.id)))
                    .collect(),
            ),
        };
        if opts.body_text {
            if let Some(b) = e.body.as_mut() {
                b.content = Some(html_to_text(b.content.as_deref().unwrap_or_default()));
                b.content_type = Some("text".into());
            }
        }
        let null_if_absent = |absent: bool| absent.then_some(());
        Shown {
            odata_type: opts.odata_type.then_some("#microsoft.graph.event"),
            null_series_master_id: null_if_absent(e.series_master_id.is_none()),
            null_transaction_id: null_if_absent(e.transaction_id.is_none()),
            null_recurrence: null_if_absent(e.recurrence.is_none()),
            event: e,
            online_meeting_url: (),
            is_draft: false,
            hide_attendees: false,
            online_meeting: (),
            online_meeting_provider: "unknown",
        }
    }
}

/// Parses `$expand=singleValueExtendedProperties($filter=id eq '...')` into the wanted ids.
pub fn parse_expand(expand: &str) -> Option<Vec<String>> {
    let lower = expand.to_ascii_lowercase();
    let pos = lower.find("singlevalueextendedproperties")?;
    let rest = &expand[pos + "singleValueExtendedProperties".len()..];
    let mut ids = Vec::new();
    let mut it = rest.split('\'');
    it.next();
    while let Some(id) = it.next() {
        ids.push(id.to_string());
        it.next();
        if it.clone().next().is_none() {
            break;
        }
    }
    Some(ids)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_show_graphs_nulls_once_and_keep_the_values_they_have() {
        let mut e = wire::Event { id: Some("AAMk1".into()), subject: Some("Review".into()), ..Default::default() };
        let opts = RenderOpts { odata_type: true, ..Default::default() };
        let text = serde_json::to_string(&Shown::new(e.clone(), &opts)).unwrap();
        assert!(text.starts_with(r##"{"@odata.type":"#microsoft.graph.event","##), "{text}");
        let v: Value = serde_json::from_str(&text).unwrap();
        for null in ["seriesMasterId", "transactionId", "recurrence", "onlineMeetingUrl", "onlineMeeting"] {
            assert_eq!(v[null], Value::Null, "{null} in {text}");
            assert_eq!(text.matches(&format!(r#""{null}":"#)).count(), 1, "{null} once in {text}");
        }
        assert_eq!((v["isDraft"].clone(), v["hideAttendees"].clone()), (Value::Bool(false), Value::Bool(false)));
        assert_eq!(v["onlineMeetingProvider"], "unknown");
        assert_eq!((v["id"].as_str(), v["subject"].as_str()), (Some("AAMk1"), Some("Review")));
        assert!(v.get("singleValueExtendedProperties").is_none(), "none unless expanded: {text}");

        // A value it has is shown once, not replaced by null; no type unless asked.
        e.series_master_id = Some("AAMk0".into());
        e.transaction_id = Some("tx-1".into());
        let text = serde_json::to_string(&Shown::new(e, &RenderOpts::default())).unwrap();
        let v: Value = serde_json::from_str(&text).unwrap();
        assert_eq!((v["seriesMasterId"].as_str(), v["transactionId"].as_str()), (Some("AAMk0"), Some("tx-1")));
        assert_eq!(text.matches(r#""seriesMasterId":"#).count(), 1, "{text}");
        assert_eq!(text.matches(r#""transactionId":"#).count(), 1, "{text}");
        assert!(v.get("@odata.type").is_none(), "{text}");
    }

    #[test]
    fn expand_filter_ids() {
        let ids = parse_expand("singleValueExtendedProperties($filter=id eq 'String {00020329-0000-0000-C000-000000000046} Name x' or id eq 'y')").unwrap();
        assert_eq!(ids, vec!["String {00020329-0000-0000-C000-000000000046} Name x".to_string(), "y".to_string()]);
        assert_eq!(parse_expand("attachments"), None);
    }

    #[test]
    fn if_match_compares_the_etag_with_a_change_key_that_begins_with_w_slash() {
        // Change keys are base64, so one may begin with "W/": the etag is then `W/"W/…"`.
        let ck = "W/Uvbp9tTsGJiRTeyXRbaAAAAAAA7g==";
        for ok in [format!("W/\"{ck}\""), format!("\"{ck}\""), ck.to_string(), "*".into(), String::new()] {
            assert!(State::check_if_match(Some(ck), Some(&ok)).is_ok(), "{ok}");
        }
        let stale = State::check_if_match(Some(ck), Some("W/\"Uvbp9tTsGJiRTeyXRbaAAAAAAA7g==\"")).unwrap_err();
        assert_eq!((stale.status, stale.code.as_str()), (412, "ErrorIrresolvableConflict"));
        assert!(State::check_if_match(Some("abc"), Some("W/\"W/abc\"")).is_err());
    }

    #[test]
    fn html_round_trip() {
        let (b, preview) = normalize_body(Some(&wire::ItemBody {
            content_type: Some("HTML".into()),
            content: Some("Does late morning work for you?".into()),
            ..Default::default()
        }))
        .unwrap();
        assert!(b.content.unwrap().starts_with("<html>"));
        assert_eq!(preview, "Does late morning work for you?");
    }
}
