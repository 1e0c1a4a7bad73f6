//! `/calendars/{id}/events` and `/events/{id}`: the events of a calendar; the host
//! application's own events created, replaced and deleted (each change and its webhook
//! messages in one transaction). Events that came from Exchange are read-only.

use axum::extract::State;
use axum::http::StatusCode;
use calbridge_core::model::{
    Attendee, AttendeeRole, Calendar, Event, EventData, EventId, Origin, ResponseStatus, Series, SeriesKind,
};
use calbridge_core::policy::present;
use calbridge_core::recurrence::Recurrence;
use chrono::{DateTime, Datelike, Duration, Utc};

use crate::auth::{Authorized, ReadScope, WriteScope};
use crate::dto::{EventInput, EventView, RangeQuery};
use crate::error::{ApiError, ApiResult};
use crate::extract::{Check, Json, Path, Query};
use crate::routes::{calendars, validate};
use crate::webhooks::message;
use crate::ApiState;

/// The longest range one listing may ask for.
pub const MAX_RANGE_DAYS: i64 = 400;

pub(crate) fn check_range(check: &mut Check, from: DateTime<Utc>, to: DateTime<Utc>, max_days: i64) {
    if to <= from {
        check.fail("to", "must be after `from`");
    } else if to - from > Duration::days(max_days) {
        check.fail("to", format!("is more than {max_days} days after `from`; ask for a shorter range"));
    }
    for (field, t) in [("from", from), ("to", to)] {
        if !(1900..=2200).contains(&t.year()) {
            check.fail(field, "must lie between the years 1900 and 2200");
        }
    }
}

fn read_only(id: &str) -> ApiError {
    ApiError::conflict(format!(
        "event {id} came from Exchange (Outlook, a room display or another system) and is read-only in calbridge. \
         Fix: change it in Exchange; the next sync brings the change here"
    ))
}

pub(crate) async fn event_data(state: &ApiState, input: &EventInput) -> ApiResult<EventData> {
    let mut check = Check::default();
    validate::text(&mut check, "/subject", &input.subject, 255);
    validate::text(&mut check, "/body", &input.body, 32_000);
    validate::text(&mut check, "/location", &input.location, 255);
    if input.end <= input.start {
        check.fail("/end", "must be after `start`");
    } else if input.end - input.start > Duration::days(366) {
        check.fail("/end", "is more than 366 days after `start`; split the event");
    }
    for (field, t) in [("/start", input.start), ("/end", input.end)] {
        if !(1900..=2200).contains(&t.year()) {
            check.fail(field, "must lie between the years 1900 and 2200");
        }
    }
    let zone = input.time_zone.clone().unwrap_or_else(|| "UTC".into());
    if zone.trim().is_empty() || zone.len() > 64 || zone.chars().any(|c| c.is_control()) {
        check.fail("/time_zone", "must be a time zone name such as Europe/Zurich or W. Europe Standard Time");
    }
    check.require(input.attendees.len() <= 500, "/attendees", "holds more than 500 attendees");
    check.require(input.rooms.len() + input.equipment.len() <= 50, "/rooms", "more than 50 rooms and equipment");
    for (i, a) in input.attendees.iter().enumerate() {
        validate::email(&mut check, &format!("/attendees/{i}/email"), &a.email);
        if let Some(n) = &a.name {
            validate::text(&mut check, &format!("/attendees/{i}/name"), n, 255);
        }
    }
    for (list, field) in [(&input.rooms, "/rooms"), (&input.equipment, "/equipment")] {
        for (i, e) in list.iter().enumerate() {
            validate::email(&mut check, &format!("{field}/{i}"), &e.0);
        }
    }
    check.finish()?;
    let mut data = EventData::new(input.subject.clone(), input.start, input.end);
    data.body = input.body.clone();
    data.time_zone = zone.trim().to_string();
    data.all_day = input.all_day;
    data.show_as = input.show_as.into();
    data.sensitivity = input.sensitivity.into();
    data.series = Series::single();
    for a in &input.attendees {
        let email = a.email.trim().to_ascii_lowercase();
        data.attendees.push(Attendee {
            name: a.name.clone().filter(|n| !n.trim().is_empty()).unwrap_or_else(|| email.clone()),
            email,
            role: if a.optional { AttendeeRole::Optional } else { AttendeeRole::Required },
            response: ResponseStatus::None,
        });
    }
    let mut room_names = Vec::new();
    for (i, e) in input.rooms.iter().chain(&input.equipment).enumerate() {
        let email = e.0.trim().to_ascii_lowercase();
        let name = match state.store().calendar_by_email(&email).await? {
            Some(c) => c.display_name,
            None => email.clone(),
        };
        if i < input.rooms.len() {
            room_names.push(name.clone());
        }
        data.attendees.push(Attendee { email, name, role: AttendeeRole::Resource, response: ResponseStatus::None });
    }
    data.location =
        if input.location.trim().is_empty() { room_names.join("; ") } else { input.location.trim().to_string() };
    if let Some(rule) = &input.recurrence {
        data.series = Series::master(series_rule(rule, &data)?);
    }
    Ok(data)
}

/// The rule of a series created or replaced through the API: an RRULE Exchange can hold,
/// whose first date is the event's start date (in its zone).
fn series_rule(rule: &str, data: &EventData) -> ApiResult<Recurrence> {
    let Some(tz) = calbridge_core::zones::resolve(&data.time_zone) else {
        return Err(ApiError::field(
            "/time_zone",
            format!(
                "{:?} is not a time zone calbridge knows; a series needs one (IANA or Windows name)",
                data.time_zone
            ),
        ));
    };
    let start_date = data.start.with_timezone(&tz).date_naive();
    let rule =
        Recurrence::from_rrule(rule.trim(), start_date).map_err(|e| ApiError::field("/recurrence", e.to_string()))?;
    if rule.dates(start_date, 1).first() != Some(&start_date) {
        return Err(ApiError::field(
            "/start",
            format!(
                "{start_date} is not a date of the rule in {}; start the series on its first occurrence",
                data.time_zone
            ),
        ));
    }
    Ok(rule)
}

/// What a replacement of `existing` may be: a series stays a series (with a rule), an
/// instance of a series stays that instance (it becomes an exception), a single event stays
/// single.
fn keep_series_identity(existing: &Event, data: &mut EventData) -> ApiResult<()> {
    match existing.data.series.kind {
        SeriesKind::Master if data.series.kind != SeriesKind::Master => Err(ApiError::field(
            "/recurrence",
            "is required: this event is a series (give its rule, changed or not); to end the series, delete it",
        )),
        SeriesKind::Occurrence | SeriesKind::Exception => {
            if data.series.kind == SeriesKind::Master {
                return Err(ApiError::field("/recurrence", "an occurrence of a series cannot have a rule of its own"));
            }
            data.series = Series { kind: SeriesKind::Exception, recurrence: None, ..existing.data.series.clone() };
            Ok(())
        }
        SeriesKind::Single if data.series.kind == SeriesKind::Master => Err(ApiError::field(
            "/recurrence",
            "a single event cannot become a series; delete it and create the series",
        )),
        _ => Ok(()),
    }
}

pub(crate) fn shown(cal: &Calendar, e: &Event) -> EventView {
    EventView::from(&present(cal, e))
}

fn payload(cal: &Calendar, e: &Event) -> serde_json::Value {
    serde_json::to_value(shown(cal, e)).expect("views serialise")
}

/// List a calendar's events overlapping `[from, to)`, by start. Events marked Free in
/// Exchange are not shown; "busy only" calendars and private events are masked.
#[utoipa::path(get, path = "/calendars/{id}/events", tag = "events", params(("id" = i64, Path), RangeQuery),
    responses((status = 200, description = "Events by start", body = [EventView])))]
pub async fn list(
    State(state): State<ApiState>,
    _auth: Authorized<ReadScope>,
    Path(id): Path<i64>,
    Query(q): Query<RangeQuery>,
) -> ApiResult<axum::Json<Vec<EventView>>> {
    let mut check = Check::default();
    check_range(&mut check, q.from, q.to, MAX_RANGE_DAYS);
    check.finish()?;
    let cal = calendars::find(&state, id).await?;
    let policy = state.config().policy;
    let events = state.store().events_in_range(cal.id, q.from, q.to).await?;
    Ok(axum::Json(
        events
            .iter()
            .filter(|e| e.origin == Origin::Local || policy.visible(&e.data))
            .map(|e| shown(&cal, e))
            .collect(),
    ))
}

/// Create a local event in a calendar (write); calbridge creates it in the mailbox at the
/// next sync. Rooms and equipment are booked as resource attendees. With `recurrence` (an
/// RRULE) the event is a series; its occurrences arrive with the next sync.
#[utoipa::path(post, path = "/calendars/{id}/events", tag = "events", params(("id" = i64, Path)),
    request_body = EventInput, responses((status = 201, description = "Created", body = EventView)))]
pub async fn create(
    State(state): State<ApiState>,
    _auth: Authorized<WriteScope>,
    Path(id): Path<i64>,
    Json(input): Json<EventInput>,
) -> ApiResult<(StatusCode, axum::Json<EventView>)> {
    let mut check = Check::default();
    if let Some(id) = &input.id {
        validate::client_id(&mut check, "/id", id);
    }
    check.require(input.expected_version.is_none(), "/expected_version", "is only for replacing an event; omit it");
    check.finish()?;
    let cal = calendars::find(&state, id).await?;
    let data = event_data(&state, &input).await?;
    let event_id = EventId::new(input.id.clone().unwrap_or_else(|| uuid::Uuid::now_v7().to_string()));
    let e = create_in(&state, &cal, &event_id, &data).await?;
    Ok((StatusCode::CREATED, axum::Json(shown(&cal, &e))))
}

/// Creates a local event with its `event.created` message (an identical retry is a no-op).
pub(crate) async fn create_in(state: &ApiState, cal: &Calendar, id: &EventId, data: &EventData) -> ApiResult<Event> {
    if let Some(existing) = state.store().event(id).await? {
        if existing.origin == Origin::Exchange {
            return Err(read_only(id.as_str()));
        }
    }
    let preview = Event {
        id: id.clone(),
        calendar_id: cal.id,
        origin: Origin::Local,
        data: data.clone(),
        version: 1,
        deleted: false,
    };
    let note = message("event.created", payload(cal, &preview), Utc::now());
    let e = state.store().create_local_event_notify(cal.id, id, data, &state.subscribed(vec![note])).await?;
    state.outbox_changed();
    push_soon(state, cal).await;
    Ok(e)
}

/// A calendar Exchange notifies of its changes (a live Graph subscription, or an EWS
/// streaming or pull subscription) syncs when notified (and at the reconcile), not at the
/// scheduled interval: queue it now, so the host application's change reaches Exchange without
/// waiting for the reconcile. A polled calendar takes the change at its next scheduled sync.
async fn push_soon(state: &ApiState, cal: &Calendar) {
    let notified = crate::notifications::is_watched(state, cal.id)
        || (state.config().public_url.is_some()
            && state.store().subscriptions().await.is_ok_and(|held| crate::notifications::is_live(&held, cal.id)));
    if notified {
        state.sync_queue().push(cal.id);
    }
}

/// Replaces a local event's content with its `event.updated` message.
pub(crate) async fn replace_in(
    state: &ApiState,
    cal: &Calendar,
    e: &Event,
    data: &EventData,
    expected_version: Option<i64>,
) -> ApiResult<Event> {
    let preview = Event { data: data.clone(), version: e.version + 1, ..e.clone() };
    let note = message("event.updated", payload(cal, &preview), Utc::now());
    let notes = state.subscribed(vec![note]);
    let updated = state.store().update_local_event_notify(&e.id, data, expected_version, &notes).await?;
    state.outbox_changed();
    push_soon(state, cal).await;
    Ok(updated)
}

/// Deletes a local event (a tombstone the next sync pushes) with its `event.deleted` message.
pub(crate) async fn delete_in(state: &ApiState, cal: &Calendar, e: &Event) -> ApiResult<()> {
    let data = serde_json::json!({"id": e.id.as_str(), "calendar_id": cal.id});
    let note = message("event.deleted", data, Utc::now());
    state.store().delete_local_event_notify(&e.id, &state.subscribed(vec![note])).await?;
    state.outbox_changed();
    push_soon(state, cal).await;
    Ok(())
}

pub(crate) async fn find_live(state: &ApiState, id: &str) -> ApiResult<(Event, Calendar)> {
    let e = state
        .store()
        .event(&EventId::new(id))
        .await?
        .filter(|e| !e.deleted)
        .ok_or_else(|| ApiError::not_found(format!("event {id}")))?;
    let cal = calendars::find(state, e.calendar_id).await?;
    Ok((e, cal))
}

/// Read an event.
#[utoipa::path(get, path = "/events/{id}", tag = "events", params(("id" = String, Path)),
    responses((status = 200, description = "The event", body = EventView)))]
pub async fn read(
    State(state): State<ApiState>,
    _auth: Authorized<ReadScope>,
    Path(id): Path<String>,
) -> ApiResult<axum::Json<EventView>> {
    let (e, cal) = find_live(&state, &id).await?;
    Ok(axum::Json(shown(&cal, &e)))
}

/// Replace a local event (write). An event from Exchange is read-only: 409.
#[utoipa::path(put, path = "/events/{id}", tag = "events", params(("id" = String, Path)),
    request_body = EventInput, responses((status = 200, description = "Replaced", body = EventView)))]
pub async fn replace(
    State(state): State<ApiState>,
    _auth: Authorized<WriteScope>,
    Path(id): Path<String>,
    Json(input): Json<EventInput>,
) -> ApiResult<axum::Json<EventView>> {
    let (e, cal) = find_live(&state, &id).await?;
    if e.origin == Origin::Exchange {
        return Err(read_only(&id));
    }
    if input.id.as_ref().is_some_and(|i| i != &id) {
        return Err(ApiError::field("/id", "differs from the event's id in the path; omit it"));
    }
    let mut data = event_data(&state, &input).await?;
    keep_series_identity(&e, &mut data)?;
    let updated = replace_in(&state, &cal, &e, &data, input.expected_version).await?;
    Ok(axum::Json(shown(&cal, &updated)))
}

/// Delete a local event (write); calbridge deletes it in Exchange at the next sync. An event
/// from Exchange is read-only: 409; except, when `scheduling.decline_on_delete` is on, a
/// booking made in Exchange for a room or equipment, which the resource then declines at once
/// (the organizer is told; the organizer's meeting stays).
#[utoipa::path(delete, path = "/events/{id}", tag = "events", params(("id" = String, Path)),
    responses((status = 204, description = "Deleted")))]
pub async fn delete(
    State(state): State<ApiState>,
    _auth: Authorized<WriteScope>,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let (e, cal) = find_live(&state, &id).await?;
    if e.origin == Origin::Exchange {
        if cal.kind.is_resource() && state.config().decline_on_delete {
            return decline(&state, &cal, &e).await;
        }
        if cal.kind.is_resource() {
            return Err(ApiError::conflict(format!(
                "event {id} is a booking made in Exchange and is read-only in calbridge. Fix: cancel it in Exchange, \
                 or let the {} decline bookings deleted here by turning on scheduling.decline_on_delete",
                cal.kind.as_str()
            )));
        }
        return Err(read_only(&id));
    }
    delete_in(&state, &cal, &e).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The resource declines a booking made in Exchange (see `calbridge_engine::decline`), then
/// its calendar is synced so the booking leaves the store (and `event.deleted` goes out).
async fn decline(state: &ApiState, cal: &Calendar, e: &Event) -> ApiResult<StatusCode> {
    use calbridge_engine::decline::{decline_booking, DeclineError};
    let conn = crate::routes::connections::find(state, cal.connection_id).await?;
    let remote = state.remote(&conn).await?;
    decline_booking(state.store().as_ref(), remote.as_ref(), cal, e).await.map_err(|err| match err {
        DeclineError::NotABooking(why) => ApiError::conflict(format!("{why}. Nothing was changed")),
        DeclineError::Remote(r) if r.is_retryable() => {
            ApiError::unavailable(format!("{}: {r}. Fix: retry later", cal.email))
        }
        DeclineError::Remote(r) => ApiError::bad_gateway(format!("{} could not decline the booking: {r}", cal.email)),
        DeclineError::Store(s) => s.into(),
    })?;
    // The decline is done; a failed sync is recorded in the calendar's status and the next one
    // removes the booking.
    let _ = crate::sync::sync_calendar(state, cal.id).await;
    Ok(StatusCode::NO_CONTENT)
}
