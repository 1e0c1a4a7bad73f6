//! `/availability`: merged busy intervals, and free slots for a set of people with,
//! optionally, one of several candidate rooms. Local events and Exchange events count alike,
//! by the installation's free/busy policy.

use axum::extract::State;
use calbridge_core::availability::{free_slots as slots, is_free, merge, Span};
use calbridge_core::model::Calendar;
use chrono::{DateTime, Duration, Utc};

use crate::auth::{Authorized, ReadScope};
use crate::dto::{Availability, AvailabilityInput, CalendarBusy, FreeSlot, FreeSlots, FreeSlotsInput, Interval};
use crate::error::{ApiError, ApiResult};
use crate::extract::{Check, Json};
use crate::routes::events::{check_range, MAX_RANGE_DAYS};
use crate::ApiState;

fn intervals(spans: &[Span]) -> Vec<Interval> {
    spans.iter().map(|(s, e)| Interval { start: *s, end: *e }).collect()
}

/// Each calendar's merged busy intervals over `[from, to)`, in the order of `calendars`: one
/// store read for all of them, of times and show-as only.
async fn busy_of(
    state: &ApiState,
    calendars: &[Calendar],
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> ApiResult<Vec<Vec<Span>>> {
    let ids: Vec<i64> = calendars.iter().map(|c| c.id).collect();
    let times = state.store().busy_times(&ids, from, to).await?;
    let policy = state.config().policy;
    Ok(ids
        .iter()
        .map(|id| {
            // `times` is ordered by calendar.
            let first = times.partition_point(|t| t.calendar_id < *id);
            let mine = times[first..].iter().take_while(|t| t.calendar_id == *id);
            policy.busy_spans(mine.map(|t| (t.start, t.end, t.show_as)), from, to)
        })
        .collect())
}

/// The calendars `ids` name, each once, in the order given; 404 naming the first unknown one.
async fn calendars_of(state: &ApiState, ids: &[i64]) -> ApiResult<Vec<Calendar>> {
    let mut found: std::collections::HashMap<i64, Calendar> =
        state.store().calendars_by_id(ids).await?.into_iter().map(|c| (c.id, c)).collect();
    let mut out: Vec<Calendar> = Vec::with_capacity(found.len());
    let mut seen = std::collections::HashSet::new();
    for id in ids {
        if !seen.insert(*id) {
            continue;
        }
        match found.remove(id) {
            Some(c) => out.push(c),
            None => return Err(ApiError::not_found(format!("calendar {id}"))),
        }
    }
    Ok(out)
}

/// The most calendars one availability query may name.
pub const MAX_CALENDARS: usize = 1000;

/// Busy intervals of each calendar over `[from, to)`, and all of them merged.
#[utoipa::path(post, path = "/availability", tag = "availability", request_body = AvailabilityInput,
    responses((status = 200, description = "Busy intervals", body = Availability)))]
pub async fn busy(
    State(state): State<ApiState>,
    _auth: Authorized<ReadScope>,
    Json(input): Json<AvailabilityInput>,
) -> ApiResult<axum::Json<Availability>> {
    let mut check = Check::default();
    check.require(
        (1..=MAX_CALENDARS).contains(&input.calendars.len()),
        "/calendars",
        format!("give 1 to {MAX_CALENDARS} calendar ids"),
    );
    check_range(&mut check, input.from, input.to, MAX_RANGE_DAYS);
    check.finish()?;
    let cals = calendars_of(&state, &input.calendars).await?;
    let busy = busy_of(&state, &cals, input.from, input.to).await?;
    let all = merge(busy.iter().flatten().copied().collect());
    let out = cals
        .iter()
        .zip(&busy)
        .map(|(c, spans)| CalendarBusy { calendar_id: c.id, email: c.email.clone(), busy: intervals(spans) })
        .collect();
    Ok(axum::Json(Availability { from: input.from, to: input.to, calendars: out, merged: intervals(&all) }))
}

/// Free slots of `duration_minutes` in `[from, to)` when every participant is free and, when
/// rooms are given, at least one of them; each slot lists the free rooms.
#[utoipa::path(post, path = "/availability/free-slots", tag = "availability", request_body = FreeSlotsInput,
    responses((status = 200, description = "Free slots, earliest first", body = FreeSlots)))]
pub async fn free_slots(
    State(state): State<ApiState>,
    _auth: Authorized<ReadScope>,
    Json(input): Json<FreeSlotsInput>,
) -> ApiResult<axum::Json<FreeSlots>> {
    let mut check = Check::default();
    check.require(input.participants.len() <= 100, "/participants", "give at most 100 calendar ids");
    check.require(input.rooms.len() <= 100, "/rooms", "give at most 100 calendar ids");
    check.require(
        !input.participants.is_empty() || !input.rooms.is_empty(),
        "/participants",
        "give at least one participant or room",
    );
    check.require((5..=1440).contains(&input.duration_minutes), "/duration_minutes", "must be 5 to 1440");
    let step = input.step_minutes.unwrap_or(30);
    check.require((5..=1440).contains(&step), "/step_minutes", "must be 5 to 1440 (default 30)");
    let limit = input.limit.unwrap_or(20);
    check.require((1..=500).contains(&limit), "/limit", "must be 1 to 500 (default 20)");
    check_range(&mut check, input.from, input.to, 93);
    check.finish()?;
    let people = calendars_of(&state, &input.participants).await?;
    let rooms = calendars_of(&state, &input.rooms).await?;
    let busy = merge(busy_of(&state, &people, input.from, input.to).await?.into_iter().flatten().collect());
    let room_busy: Vec<(i64, Vec<Span>)> =
        rooms.iter().map(|r| r.id).zip(busy_of(&state, &rooms, input.from, input.to).await?).collect();
    let duration = Duration::minutes(input.duration_minutes.into());
    let mut out = Vec::new();
    // Candidates are free for the people; a room requirement may drop some, so look further.
    for start in slots(&busy, input.from, input.to, duration, Duration::minutes(step.into()), usize::MAX) {
        if out.len() >= limit as usize {
            break;
        }
        let end = start + duration;
        let free_rooms: Vec<i64> =
            room_busy.iter().filter(|(_, b)| is_free(b, start, end)).map(|(id, _)| *id).collect();
        if rooms.is_empty() || !free_rooms.is_empty() {
            out.push(FreeSlot { start, end, rooms: free_rooms });
        }
    }
    Ok(axum::Json(FreeSlots { slots: out }))
}
