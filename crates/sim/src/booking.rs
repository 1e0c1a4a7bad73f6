//! Meetings across mailboxes: when an organizer's event with attendees is created, moved or
//! deleted, each attendee that is a mailbox of this tenant gets (or loses) a copy with the same
//! iCalUId; rooms and equipment process the request by their calendar-processing rules
//! (auto-accept, conflicts, booking window, maximum duration) and their answer is written
//! back to the organizer's `attendees[].status`, bumping its change key.

use chrono::{DateTime, Duration, Utc};

use crate::state::{Origin, State, StoredEvent, NO_TIME};
use crate::wire;

/// Why a resource declines.
fn resource_decision(
    state: &State,
    resource_key: &str,
    meeting: &StoredEvent,
    origin: &Origin,
    now: DateTime<Utc>,
) -> Option<bool> {
    let mb = state.mailbox_by_key(resource_key)?;
    if !mb.auto_accept {
        return None;
    }
    let duration = meeting.end - meeting.start;
    if duration > Duration::minutes(mb.max_duration_minutes as i64) {
        return Some(false);
    }
    let horizon = now + Duration::days(mb.booking_window_days as i64);
    let far = meeting.start.max(now) + Duration::days(3 * 366);
    let instances = meeting.instances(meeting.start - Duration::seconds(1), far);
    if instances.iter().any(|i| i.start > horizon) {
        return Some(false);
    }
    if !mb.allow_conflicts {
        let uid = meeting.event.i_cal_u_id.as_deref();
        for inst in &instances {
            let clash = state.instances(resource_key, inst.start, inst.end).into_iter().any(|other| {
                other.ev.origin.as_ref() != Some(origin)
                    && (uid.is_none() || other.ev.event.i_cal_u_id.as_deref() != uid)
                    && other.show_as() != "free"
                    && other.start < inst.end
                    && other.end > inst.start
            });
            if clash {
                return Some(false);
            }
        }
    }
    Some(true)
}

/// Brings every attendee copy of the organizer's event `(organizer, id)` in line with it.
/// `reprocess`: the time or attendees changed, so resources decide again.
pub fn sync_meeting(state: &mut State, organizer: &str, id: &str, reprocess: bool, now: DateTime<Utc>) {
    let origin = Origin { mailbox: organizer.to_string(), id: id.to_string() };
    let meeting = state.event(organizer, id).cloned();
    let attendees: Vec<(String, String, Option<String>)> = meeting
        .as_ref()
        .map(|m| {
            m.event
                .attendees
                .iter()
                .flatten()
                .filter_map(|a| {
                    let addr = a.email_address.as_ref()?.address.as_ref()?.to_ascii_lowercase();
                    Some((addr, a.kind.clone().unwrap_or_default(), a.status.as_ref().and_then(|s| s.response.clone())))
                })
                .filter(|(addr, _, _)| addr != organizer && state.mailbox_by_key(addr).is_some())
                .collect()
        })
        .unwrap_or_default();
    // Copies in mailboxes that are no longer invited (or of a deleted meeting) go away.
    let holders: Vec<String> = state
        .events
        .iter()
        .filter(|(_, evs)| evs.values().any(|e| e.origin.as_ref() == Some(&origin)))
        .map(|(k, _)| k.clone())
        .collect();
    for holder in holders {
        if !attendees.iter().any(|(a, _, _)| *a == holder) {
            state.remove_copy(&holder, &origin);
        }
    }
    let Some(meeting) = meeting else {
        return;
    };
    if meeting.event.is_cancelled == Some(true) {
        for (addr, _, _) in &attendees {
            state.remove_copy(addr, &origin);
        }
        return;
    }
    for (addr, _, current) in attendees {
        let is_resource = state.mailbox_by_key(&addr).is_some_and(|m| m.is_resource());
        if !is_resource {
            let keep =
                state.find_copy(&addr, &origin).and_then(|cid| state.event(&addr, &cid)).filter(|_| !reprocess).map(
                    |c| {
                        (
                            c.event.show_as.clone().unwrap_or_else(|| "tentative".into()),
                            c.event.response_status.clone().unwrap_or_default(),
                        )
                    },
                );
            let (show_as, response) = keep.unwrap_or_else(|| {
                (
                    "tentative".to_string(),
                    wire::ResponseStatus {
                        response: Some("notResponded".into()),
                        time: Some(NO_TIME.into()),
                        ..Default::default()
                    },
                )
            });
            state.upsert_copy(&addr, &origin, &meeting, &show_as, response, now);
            if reprocess && current.as_deref().is_some_and(|r| r != "none") {
                state.set_attendee_response(organizer, id, &addr, "none", now);
            }
            continue;
        }
        let decided = matches!(current.as_deref(), Some("accepted") | Some("declined"));
        if decided && !reprocess {
            if current.as_deref() == Some("accepted") {
                let response = wire::ResponseStatus {
                    response: Some("accepted".into()),
                    time: Some(crate::tz::format_instant(now)),
                    ..Default::default()
                };
                state.upsert_copy(&addr, &origin, &meeting, "busy", response, now);
            }
            continue;
        }
        match resource_decision(state, &addr, &meeting, &origin, now) {
            Some(true) => {
                let response = wire::ResponseStatus {
                    response: Some("accepted".into()),
                    time: Some(crate::tz::format_instant(now)),
                    ..Default::default()
                };
                state.upsert_copy(&addr, &origin, &meeting, "busy", response, now);
                state.set_attendee_response(organizer, id, &addr, "accepted", now);
            }
            Some(false) => {
                state.remove_copy(&addr, &origin);
                state.set_attendee_response(organizer, id, &addr, "declined", now);
            }
            None => {
                let response = wire::ResponseStatus {
                    response: Some("notResponded".into()),
                    time: Some(NO_TIME.into()),
                    ..Default::default()
                };
                state.upsert_copy(&addr, &origin, &meeting, "tentative", response, now);
                state.set_attendee_response(organizer, id, &addr, "none", now);
            }
        }
    }
}

/// The mailbox `attendee` declines the meeting it holds as `id` (its copy, or an occurrence of
/// it): the copy leaves its calendar and the organizer's meeting records the answer; the
/// organizer's meeting itself stays. An organizer cannot decline its own meeting.
pub fn decline(state: &mut State, attendee: &str, id: &str, now: DateTime<Utc>) -> Result<(), crate::state::ApiError> {
    let (master, _) = state.resolve_id(attendee, id).ok_or_else(crate::state::ApiError::item_not_found)?;
    let copy = state.event(attendee, &master).ok_or_else(crate::state::ApiError::item_not_found)?;
    let Some(origin) = copy.origin.clone() else {
        return Err(crate::state::ApiError::invalid_request(
            "Your request can't be completed. You can't respond to this meeting because you're the meeting organizer.",
        ));
    };
    state.remove_copy(attendee, &origin);
    state.set_attendee_response(&origin.mailbox, &origin.id, attendee, "declined", now);
    Ok(())
}
