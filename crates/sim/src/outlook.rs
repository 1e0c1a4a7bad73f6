//! Acting as a person in Outlook: create, change, answer and delete events in a mailbox
//! directly (no token, no HTTP), as Exchange's own users would, so tests can make changes
//! "on the Exchange side" and watch calbridge notice them. Meeting processing (attendee
//! copies, room decisions) happens exactly as for Graph requests.

use chrono::{DateTime, Datelike, Utc};
use serde_json::Value;

use crate::booking;
use crate::error::SimError;
use crate::scenario::{AttendeeSpec, EventSpec};
use crate::state::{render_event, render_instance, ApiError, RenderOpts, State};
use crate::tz;
use crate::wire;
use crate::Simulator;

/// A handle for acting in mailboxes directly; see [`Simulator::outlook`].
#[derive(Clone)]
pub struct Outlook {
    sim: Simulator,
}

/// A simple event to create with [`Outlook::create_event`].
#[derive(Clone, Debug)]
pub struct NewEvent {
    pub subject: String,
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    /// Zone it is created in (`originalStartTimeZone`); default UTC.
    pub time_zone: Option<String>,
    /// `busy` (default), `free`, `tentative`, `oof`, `workingElsewhere`.
    pub show_as: Option<String>,
    /// `normal` (default), `private`, ...
    pub sensitivity: Option<String>,
    pub location: Option<String>,
    pub body: Option<String>,
    /// Addresses; rooms and equipment of the tenant are invited as `resource`.
    pub attendees: Vec<String>,
    pub is_all_day: bool,
    pub recurrence: Option<wire::PatternedRecurrence>,
}

impl NewEvent {
    pub fn new(subject: impl Into<String>, start: DateTime<Utc>, end: DateTime<Utc>) -> NewEvent {
        NewEvent {
            subject: subject.into(),
            start,
            end,
            time_zone: None,
            show_as: None,
            sensitivity: None,
            location: None,
            body: None,
            attendees: vec![],
            is_all_day: false,
            recurrence: None,
        }
    }

    pub fn with_attendees(mut self, attendees: &[&str]) -> NewEvent {
        self.attendees = attendees.iter().map(|a| a.to_string()).collect();
        self
    }

    pub fn with_show_as(mut self, show_as: &str) -> NewEvent {
        self.show_as = Some(show_as.into());
        self
    }
}

fn rejected(e: ApiError) -> SimError {
    SimError::Rejected { code: e.code, message: e.message }
}

/// The wire event a scenario `[[events]]` entry stands for.
pub(crate) fn spec_to_wire(spec: &EventSpec, state: &State) -> Result<wire::Event, ApiError> {
    let mb = state
        .mailbox(&spec.mailbox)
        .ok_or_else(|| ApiError::invalid_request(format!("no mailbox {}", spec.mailbox)))?;
    let zone_name = spec.time_zone.clone().unwrap_or_else(|| mb.time_zone.clone());
    let zone =
        tz::resolve(&zone_name).ok_or_else(|| ApiError::invalid_request(format!("unknown time zone {zone_name}")))?;
    let start_local = tz::to_local(spec.start.with_timezone(&Utc), zone);
    let end_local = tz::to_local(spec.end.with_timezone(&Utc), zone);
    let attendees = spec
        .attendees
        .iter()
        .map(|a| {
            let (address, name, kind) = match a {
                AttendeeSpec::Address(x) => (x.clone(), None, None),
                AttendeeSpec::Full { address, name, kind } => (address.clone(), name.clone(), kind.clone()),
            };
            let target = state.mailbox(&address);
            let kind = kind.unwrap_or_else(|| {
                if target.is_some_and(|m| m.is_resource()) {
                    "resource".into()
                } else {
                    "required".into()
                }
            });
            wire::Attendee {
                kind: Some(kind),
                status: None,
                email_address: Some(wire::EmailAddress {
                    name: Some(name.or_else(|| target.map(|m| m.name.clone())).unwrap_or_else(|| address.clone())),
                    address: Some(target.map(|m| m.email.clone()).unwrap_or(address)),
                }),
                ..Default::default()
            }
        })
        .collect();
    let recurrence = spec.recurrence.as_ref().map(|r| {
        let days = if r.days_of_week.is_empty() {
            vec![crate::recurrence::weekday_name(start_local.weekday()).to_string()]
        } else {
            r.days_of_week.clone()
        };
        let (kind, end_date, count) = match (r.count, r.until) {
            (Some(n), _) => ("numbered", None, Some(n as i32)),
            (None, Some(d)) => ("endDate", Some(d.format("%Y-%m-%d").to_string()), None),
            (None, None) => ("noEnd", None, None),
        };
        wire::PatternedRecurrence {
            pattern: Some(wire::RecurrencePattern {
                kind: Some(r.pattern.clone()),
                interval: Some(r.interval as i32),
                days_of_week: Some(days),
                day_of_month: Some(start_local.day() as i32),
                ..Default::default()
            }),
            range: Some(wire::RecurrenceRange {
                kind: Some(kind.into()),
                start_date: Some(start_local.date().format("%Y-%m-%d").to_string()),
                end_date,
                number_of_occurrences: count,
                recurrence_time_zone: Some(zone_name.clone()),
            }),
            ..Default::default()
        }
    });
    Ok(wire::Event {
        subject: Some(spec.subject.clone()),
        body: spec
            .body
            .as_ref()
            .map(|b| wire::ItemBody { content_type: Some("text".into()), content: Some(b.clone()) }),
        start: Some(wire::DateTimeTimeZone {
            date_time: tz::format_naive(start_local),
            time_zone: Some(zone_name.clone()),
        }),
        end: Some(wire::DateTimeTimeZone { date_time: tz::format_naive(end_local), time_zone: Some(zone_name) }),
        show_as: spec.show_as.clone(),
        sensitivity: spec.sensitivity.clone(),
        location: spec
            .location
            .as_ref()
            .map(|l| wire::Location { display_name: Some(l.clone()), ..Default::default() }),
        is_all_day: Some(spec.is_all_day),
        categories: Some(spec.categories.clone()),
        attendees: Some(attendees),
        recurrence,
        transaction_id: spec.transaction_id.clone(),
        ..Default::default()
    })
}

impl Outlook {
    pub(crate) fn new(sim: Simulator) -> Outlook {
        Outlook { sim }
    }

    fn key(state: &State, mailbox: &str) -> Result<String, SimError> {
        state.mailbox(mailbox).map(|m| m.key.clone()).ok_or_else(|| SimError::UnknownMailbox(mailbox.to_string()))
    }

    /// Creates an event in `mailbox` (its organizer); invites attendees. Returns its id.
    pub fn create_event(&self, mailbox: &str, event: NewEvent) -> Result<String, SimError> {
        let zone = event.time_zone.clone().unwrap_or_else(|| "UTC".into());
        let spec = EventSpec {
            mailbox: mailbox.to_string(),
            subject: event.subject,
            start: event.start.fixed_offset(),
            end: event.end.fixed_offset(),
            time_zone: Some(zone),
            show_as: event.show_as,
            sensitivity: event.sensitivity,
            location: event.location,
            body: event.body,
            is_all_day: event.is_all_day,
            categories: vec![],
            attendees: event.attendees.into_iter().map(AttendeeSpec::Address).collect(),
            recurrence: None,
            transaction_id: None,
        };
        let mut wire_event = {
            let state = self.sim.inner.state.lock().unwrap();
            Self::key(&state, mailbox)?;
            spec_to_wire(&spec, &state).map_err(rejected)?
        };
        wire_event.recurrence = event.recurrence;
        self.create_raw(mailbox, wire_event)
    }

    /// Creates an event from Graph's own shape (as a POST body would carry it).
    pub fn create_raw(&self, mailbox: &str, event: wire::Event) -> Result<String, SimError> {
        let now = Utc::now();
        let mut state = self.sim.inner.state.lock().unwrap();
        let key = Self::key(&state, mailbox)?;
        let has_attendees = event.attendees.as_ref().is_some_and(|a| !a.is_empty());
        let (id, created) = state.create_event(&key, event, now).map_err(rejected)?;
        if created && has_attendees {
            booking::sync_meeting(&mut state, &key, &id, true, now);
        }
        Ok(id)
    }

    /// Changes an event (or an occurrence) with a PATCH-shaped JSON object, e.g.
    /// `json!({"subject": "Moved", "start": {"dateTime": "...", "timeZone": "UTC"}})`.
    pub fn update_event(&self, mailbox: &str, id: &str, patch: Value) -> Result<(), SimError> {
        let now = Utc::now();
        let Value::Object(patch) = patch else {
            return Err(SimError::Rejected {
                code: "RequestBodyRead".into(),
                message: "the patch must be a JSON object".into(),
            });
        };
        let mut state = self.sim.inner.state.lock().unwrap();
        let key = Self::key(&state, mailbox)?;
        // Meeting copies follow only a meeting: one with attendees before or after the change.
        let meeting = |state: &State, master: &str| {
            state.event(&key, master).is_some_and(|e| e.event.attendees.as_ref().is_some_and(|a| !a.is_empty()))
        };
        let was_meeting = state.resolve_id(&key, id).is_some_and(|(m, _)| meeting(&state, &m));
        let (master, reprocess) = state.update_event(&key, id, &patch, None, now).map_err(|e| {
            if e.status == 404 {
                SimError::UnknownEvent { mailbox: mailbox.into(), id: id.into() }
            } else {
                rejected(e)
            }
        })?;
        if state.event(&key, &master).is_some_and(|e| e.origin.is_none()) && (was_meeting || meeting(&state, &master)) {
            booking::sync_meeting(&mut state, &key, &master, reprocess, now);
        }
        Ok(())
    }

    /// Deletes an event (or cancels an occurrence); an organizer's deletion removes the copies.
    pub fn delete_event(&self, mailbox: &str, id: &str) -> Result<(), SimError> {
        let now = Utc::now();
        let mut state = self.sim.inner.state.lock().unwrap();
        let key = Self::key(&state, mailbox)?;
        let was_copy =
            state.resolve_id(&key, id).and_then(|(m, _)| state.event(&key, &m)).is_some_and(|e| e.origin.is_some());
        let (master, _) = state
            .delete_event(&key, id, None, now)
            .map_err(|_| SimError::UnknownEvent { mailbox: mailbox.into(), id: id.into() })?;
        if !was_copy {
            booking::sync_meeting(&mut state, &key, &master, false, now);
        }
        Ok(())
    }

    /// An attendee answers a meeting in their calendar (`accepted`, `tentativelyAccepted`,
    /// `declined`); the organizer's event shows the answer.
    pub fn respond(&self, mailbox: &str, id: &str, response: &str) -> Result<(), SimError> {
        let now = Utc::now();
        let mut state = self.sim.inner.state.lock().unwrap();
        let key = Self::key(&state, mailbox)?;
        let ev = state
            .event(&key, id)
            .cloned()
            .ok_or_else(|| SimError::UnknownEvent { mailbox: mailbox.into(), id: id.into() })?;
        let origin = ev.origin.clone().ok_or_else(|| SimError::Rejected {
            code: "ErrorInvalidRequest".into(),
            message: "only an attendee's copy of a meeting can be answered".into(),
        })?;
        let show_as = match response {
            "accepted" => "busy",
            "tentativelyAccepted" => "tentative",
            "declined" => "free",
            other => {
                return Err(SimError::Rejected {
                    code: "ErrorInvalidRequest".into(),
                    message: format!("'{other}' is not accepted, tentativelyAccepted or declined"),
                })
            }
        };
        let status = wire::ResponseStatus {
            response: Some(response.into()),
            time: Some(tz::format_instant(now)),
            ..Default::default()
        };
        if let Some(source) = state.event(&origin.mailbox, &origin.id).cloned() {
            state.upsert_copy(&key, &origin, &source, show_as, status, now);
            state.set_attendee_response(&origin.mailbox, &origin.id, &key, response, now);
        }
        Ok(())
    }

    /// The events stored in a mailbox (single events and series masters), start/end in UTC.
    pub fn list_events(&self, mailbox: &str) -> Result<Vec<wire::Event>, SimError> {
        let state = self.sim.inner.state.lock().unwrap();
        let key = Self::key(&state, mailbox)?;
        let opts = RenderOpts { expand_props: Some(vec![]), ..Default::default() };
        let mut out: Vec<(DateTime<Utc>, wire::Event)> = state
            .events
            .get(&key)
            .into_iter()
            .flat_map(|m| m.values())
            .filter_map(|e| Some((e.start, serde_json::from_value(render_event(e, &opts)).ok()?)))
            .collect();
        out.sort_by_key(|e| e.0);
        Ok(out.into_iter().map(|(_, e)| e).collect())
    }

    /// One event or occurrence, start/end in UTC, with all its extended properties.
    pub fn get_event(&self, mailbox: &str, id: &str) -> Result<wire::Event, SimError> {
        let state = self.sim.inner.state.lock().unwrap();
        let key = Self::key(&state, mailbox)?;
        let unknown = || SimError::UnknownEvent { mailbox: mailbox.into(), id: id.into() };
        let (master, occ) = state.resolve_id(&key, id).ok_or_else(unknown)?;
        let ev = state.event(&key, &master).ok_or_else(unknown)?;
        let opts = RenderOpts { expand_props: Some(vec![]), ..Default::default() };
        let v = match occ {
            Some(k) => render_instance(&ev.occurrence(k).ok_or_else(unknown)?, &opts),
            None => render_event(ev, &opts),
        };
        serde_json::from_value(v).map_err(|e| SimError::Rejected { code: "Internal".into(), message: e.to_string() })
    }

    /// The instances (as calendarView shows them) of a mailbox overlapping `[from, to)`.
    pub fn list_instances(
        &self,
        mailbox: &str,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<wire::Event>, SimError> {
        let state = self.sim.inner.state.lock().unwrap();
        let key = Self::key(&state, mailbox)?;
        Ok(state
            .instances(&key, from, to)
            .iter()
            .filter_map(|i| serde_json::from_value(render_instance(i, &RenderOpts::default())).ok())
            .collect())
    }
}
