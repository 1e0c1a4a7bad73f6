//! `/sessions` and `/sessions/{id}`: class sessions. A session is one meeting in the calendar
//! of its connection's default organizer: instructors are required attendees, rooms and
//! equipment are booked as resources, and learners are either optional attendees of the same
//! meeting or, by `scheduling.learners` (or the request's `learners_invited`), invited
//! separately: one invitation each, same time, place and subject, without resources, so
//! learners see neither each other nor the instructors' meeting.
//!
//! The session's events are ordinary local events of the organizer's calendar (its meeting has
//! the session's id; an invitation has `{id}.learner-{hash of the address}`), so they sync,
//! notify and show in availability like any other. Replacing a session updates its meeting,
//! invites new learners and cancels for removed ones; deleting it cancels everything. What
//! Exchange re-sends on an update is the adapter's rule (over EWS only a change of date, time,
//! zone or location re-sends the meeting; other changes update it silently).

use axum::extract::State;
use axum::http::StatusCode;
use calbridge_core::model::{Calendar, CalendarKind, Event, EventData, EventId, Origin};
use sha2::{Digest, Sha256};

use crate::auth::{Authorized, ReadScope, WriteScope};
use crate::dto::{AttendeeInput, Email, EventInput, LearnerInvites, SessionInput, SessionView};
use crate::error::{ApiError, ApiResult};
use crate::extract::{Check, Json, Path};
use crate::routes::events::{create_in, delete_in, event_data, find_live, replace_in, shown};
use crate::routes::{connections, validate};
use crate::ApiState;

/// The id of `learner`'s own invitation to session `id`.
fn invitation_id(id: &str, learner: &str) -> EventId {
    let digest = Sha256::digest(learner.trim().to_ascii_lowercase().as_bytes());
    let hex: String = digest.iter().take(6).map(|b| format!("{b:02x}")).collect();
    EventId::new(format!("{id}.learner-{hex}"))
}

fn invitation_prefix(id: &str) -> String {
    format!("{id}.learner-")
}

/// The organizer's calendar for a session: the default organizer of the connection the input
/// names (directly or through a site), linked as a person.
async fn organizer_calendar(state: &ApiState, input: &SessionInput) -> ApiResult<Calendar> {
    let connection_id = match (input.connection_id, input.site_id) {
        (Some(c), None) => c,
        (None, Some(site)) => {
            let sites = state.store().sites().await?;
            let Some(s) = sites.into_iter().find(|s| s.id == site) else {
                return Err(ApiError::field("/site_id", format!("no site {site}; list them with GET /sites")));
            };
            s.connection_id
        }
        _ => {
            return Err(ApiError::field(
                "/connection_id",
                "give exactly one of `connection_id` and `site_id`: whose default organizer organises the session",
            ))
        }
    };
    let conn = connections::find(state, connection_id).await?;
    let Some(organizer) = conn.default_organizer.clone().filter(|o| !o.trim().is_empty()) else {
        return Err(ApiError::field(
            "/connection_id",
            format!(
                "connection {:?} has no default organizer. Fix: set `default_organizer` (PUT /connections/{}) to the \
                 account that organises class sessions, and link it as a person calendar",
                conn.name, conn.id
            ),
        ));
    };
    match state.store().calendar_by_email(&organizer).await? {
        Some(c) if c.connection_id == conn.id && c.kind == CalendarKind::Person => Ok(c),
        _ => Err(ApiError::field(
            "/connection_id",
            format!(
                "the default organizer {organizer} of connection {:?} is not linked as a person calendar of it. \
                 Fix: POST /calendars with {{\"email\": \"{organizer}\", \"kind\": \"person\", \"connection_id\": {}}}",
                conn.name, conn.id
            ),
        )),
    }
}

/// What a session's input asks for: its meeting and, per learner invited separately, an
/// invitation.
struct Desired {
    mode: LearnerInvites,
    meeting: EventData,
    invitations: Vec<(EventId, EventData)>,
}

async fn desired(state: &ApiState, id: &str, input: &SessionInput) -> ApiResult<Desired> {
    let mut check = Check::default();
    check.require(!input.instructors.is_empty(), "/instructors", "must name at least one instructor");
    check.require(input.instructors.len() <= 50, "/instructors", "holds more than 50 instructors");
    check.require(input.learners.len() <= 400, "/learners", "holds more than 400 learners");
    for (list, field) in [(&input.instructors, "/instructors"), (&input.learners, "/learners")] {
        for (i, e) in list.iter().enumerate() {
            validate::email(&mut check, &format!("{field}/{i}"), &e.0);
        }
    }
    let mut seen = std::collections::HashSet::new();
    for (i, e) in input.instructors.iter().chain(&input.learners).enumerate() {
        if !seen.insert(e.0.trim().to_ascii_lowercase()) {
            let field = if i < input.instructors.len() {
                format!("/instructors/{i}")
            } else {
                format!("/learners/{}", i - input.instructors.len())
            };
            check.fail(&field, format!("{} is named twice; name each person once", e.0.trim()));
        }
    }
    check.finish()?;
    let mode = input.learners_invited.unwrap_or(state.config().learners);
    let person = |e: &Email, optional: bool| AttendeeInput { email: e.0.clone(), name: None, optional };
    let mut attendees: Vec<AttendeeInput> = input.instructors.iter().map(|e| person(e, false)).collect();
    if mode == LearnerInvites::WithSession {
        attendees.extend(input.learners.iter().map(|e| person(e, true)));
    }
    let event = EventInput {
        id: None,
        expected_version: None,
        subject: input.subject.clone(),
        body: input.body.clone(),
        location: input.location.clone(),
        start: input.start,
        end: input.end,
        time_zone: input.time_zone.clone(),
        all_day: false,
        show_as: Default::default(),
        sensitivity: Default::default(),
        attendees,
        rooms: input.rooms.clone(),
        equipment: input.equipment.clone(),
        recurrence: None,
    };
    let meeting = event_data(state, &event).await?;
    let mut invitations = Vec::new();
    if mode == LearnerInvites::Separately {
        for learner in &input.learners {
            let invitation = EventInput {
                location: meeting.location.clone(),
                attendees: vec![person(learner, true)],
                rooms: vec![],
                equipment: vec![],
                ..event.clone()
            };
            invitations.push((invitation_id(id, &learner.0), event_data(state, &invitation).await?));
        }
    }
    Ok(Desired { mode, meeting, invitations })
}

/// The learners' invitations a session has now.
async fn invitations_of(state: &ApiState, cal: &Calendar, id: &str) -> ApiResult<Vec<Event>> {
    let prefix = invitation_prefix(id);
    let snapshot = state.store().snapshot(cal.id).await?;
    let mut out: Vec<Event> = snapshot
        .events
        .into_values()
        .filter(|e| !e.deleted && e.origin == Origin::Local && e.id.as_str().starts_with(&prefix))
        .collect();
    out.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(out)
}

fn view(cal: &Calendar, mode: LearnerInvites, meeting: &Event, invitations: &[Event]) -> SessionView {
    SessionView {
        id: meeting.id.as_str().to_string(),
        organizer: cal.email.clone(),
        calendar_id: cal.id,
        learners_invited: mode,
        event: shown(cal, meeting),
        invitations: invitations.iter().map(|e| shown(cal, e)).collect(),
    }
}

/// A stored session: its meeting must be a local event in a connection's default organizer's
/// calendar.
async fn find_session(state: &ApiState, id: &str) -> ApiResult<(Event, Calendar)> {
    let (e, cal) = find_live(state, id).await?;
    let conn = connections::find(state, cal.connection_id).await?;
    let is_organizer = conn.default_organizer.as_deref().is_some_and(|o| o.eq_ignore_ascii_case(&cal.email));
    if e.origin != Origin::Local || !is_organizer || id.contains(".learner-") {
        return Err(ApiError::not_found(format!("session {id}")));
    }
    Ok((e, cal))
}

/// Create a class session (write): its meeting (and the learners' own invitations) in the
/// default organizer's calendar; invitations and bookings go out at the next sync.
#[utoipa::path(post, path = "/sessions", tag = "sessions", request_body = SessionInput,
    responses((status = 201, description = "Created", body = SessionView)))]
pub async fn create(
    State(state): State<ApiState>,
    _auth: Authorized<WriteScope>,
    Json(input): Json<SessionInput>,
) -> ApiResult<(StatusCode, axum::Json<SessionView>)> {
    let mut check = Check::default();
    if let Some(id) = &input.id {
        validate::client_id(&mut check, "/id", id);
        check.require(id.len() <= 100, "/id", "is longer than 100 characters");
        check.require(!id.contains(".learner-"), "/id", "must not contain `.learner-`, which names invitations");
    }
    check.require(input.expected_version.is_none(), "/expected_version", "is only for replacing a session; omit it");
    check.finish()?;
    let cal = organizer_calendar(&state, &input).await?;
    let id = input.id.clone().unwrap_or_else(|| uuid::Uuid::now_v7().to_string());
    let want = desired(&state, &id, &input).await?;
    let meeting = create_in(&state, &cal, &EventId::new(&id), &want.meeting).await?;
    let mut invitations = Vec::new();
    for (inv_id, data) in &want.invitations {
        invitations.push(create_in(&state, &cal, inv_id, data).await?);
    }
    Ok((StatusCode::CREATED, axum::Json(view(&cal, want.mode, &meeting, &invitations))))
}

/// Read a class session.
#[utoipa::path(get, path = "/sessions/{id}", tag = "sessions", params(("id" = String, Path)),
    responses((status = 200, description = "The session", body = SessionView)))]
pub async fn read(
    State(state): State<ApiState>,
    _auth: Authorized<ReadScope>,
    Path(id): Path<String>,
) -> ApiResult<axum::Json<SessionView>> {
    let (meeting, cal) = find_session(&state, &id).await?;
    let invitations = invitations_of(&state, &cal, &id).await?;
    let mode = if invitations.is_empty() { LearnerInvites::WithSession } else { LearnerInvites::Separately };
    Ok(axum::Json(view(&cal, mode, &meeting, &invitations)))
}

/// Replace a class session (write): the meeting is updated, new learners are invited and
/// removed ones get cancellations at the next sync.
#[utoipa::path(put, path = "/sessions/{id}", tag = "sessions", params(("id" = String, Path)),
    request_body = SessionInput, responses((status = 200, description = "Replaced", body = SessionView)))]
pub async fn replace(
    State(state): State<ApiState>,
    _auth: Authorized<WriteScope>,
    Path(id): Path<String>,
    Json(input): Json<SessionInput>,
) -> ApiResult<axum::Json<SessionView>> {
    if input.id.as_ref().is_some_and(|i| i != &id) {
        return Err(ApiError::field("/id", "differs from the session's id in the path; omit it"));
    }
    let (meeting, cal) = find_session(&state, &id).await?;
    let organizer = organizer_calendar(&state, &input).await?;
    if organizer.id != cal.id {
        return Err(ApiError::field(
            "/connection_id",
            format!(
                "the session is organised by {}; a session cannot move to another organizer. Fix: delete it and \
                 create it anew",
                cal.email
            ),
        ));
    }
    let want = desired(&state, &id, &input).await?;
    let meeting = replace_in(&state, &cal, &meeting, &want.meeting, input.expected_version).await?;
    let existing = invitations_of(&state, &cal, &id).await?;
    let mut invitations = Vec::new();
    for (inv_id, data) in &want.invitations {
        match existing.iter().find(|e| &e.id == inv_id) {
            Some(e) if &e.data == data => invitations.push(e.clone()),
            Some(e) => invitations.push(replace_in(&state, &cal, e, data, None).await?),
            None => invitations.push(create_in(&state, &cal, inv_id, data).await?),
        }
    }
    for e in existing.iter().filter(|e| !want.invitations.iter().any(|(i, _)| i == &e.id)) {
        delete_in(&state, &cal, e).await?;
    }
    invitations.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(axum::Json(view(&cal, want.mode, &meeting, &invitations)))
}

/// Cancel a class session (write): its meeting and the learners' invitations are deleted in
/// Exchange at the next sync, which sends the cancellations.
#[utoipa::path(delete, path = "/sessions/{id}", tag = "sessions", params(("id" = String, Path)),
    responses((status = 204, description = "Cancelled")))]
pub async fn delete(
    State(state): State<ApiState>,
    _auth: Authorized<WriteScope>,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let (meeting, cal) = find_session(&state, &id).await?;
    for e in invitations_of(&state, &cal, &id).await? {
        delete_in(&state, &cal, &e).await?;
    }
    delete_in(&state, &cal, &meeting).await?;
    Ok(StatusCode::NO_CONTENT)
}
