//! Declining from the host application: a resource (room or equipment) releases a booking that
//! someone made in Exchange. The resource mailbox declines the meeting (Graph `decline`, EWS
//! `DeclineItem`), so the organizer is told and the booking leaves the resource's calendar,
//! while the organizer's meeting stays as it is. The local copy goes with the next pull, as
//! any change made in Exchange does.
//!
//! Only bookings pulled from Exchange into a room or equipment calendar are declined this way;
//! events calbridge created are deleted instead, and a person's calendar is never answered
//! for.

use calbridge_core::model::{Calendar, Event, Origin};
use calbridge_core::remote::{Remote, RemoteError};
use calbridge_core::store::{Store, StoreError};

/// What the organizer reads in the answer.
pub const DECLINE_COMMENT: &str = "This booking was released by the booking system.";

#[derive(Debug, thiserror::Error)]
pub enum DeclineError {
    /// The event is not a booking this calendar may decline; the message says why.
    #[error("{0}")]
    NotABooking(String),
    #[error("Exchange did not take the decline: {0}")]
    Remote(#[from] RemoteError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// How a decline ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Declined {
    /// The resource declined; the organizer was told.
    Declined,
    /// Exchange no longer had the booking (declined or cancelled meanwhile).
    AlreadyGone,
}

/// The resource mailbox of `calendar` declines `event` (see the module header).
pub async fn decline_booking(
    store: &dyn Store,
    remote: &dyn Remote,
    calendar: &Calendar,
    event: &Event,
) -> Result<Declined, DeclineError> {
    if !calendar.kind.is_resource() {
        return Err(DeclineError::NotABooking(format!(
            "{} is a person's calendar; calbridge declines bookings only for rooms and equipment",
            calendar.email
        )));
    }
    if event.origin != Origin::Exchange || event.calendar_id != calendar.id {
        return Err(DeclineError::NotABooking(format!(
            "event {} is not a booking made in Exchange for {}",
            event.id, calendar.email
        )));
    }
    let organizer_is_resource =
        event.data.organizer.as_ref().is_some_and(|o| o.email.eq_ignore_ascii_case(&calendar.email));
    if organizer_is_resource {
        return Err(DeclineError::NotABooking(format!(
            "event {} was made in {}'s own calendar, not sent to it as a meeting, so there is nobody to decline it to; \
             remove it in Exchange",
            event.id, calendar.email
        )));
    }
    let Some(remote_id) = store.remote_id(&event.id).await? else {
        return Err(DeclineError::NotABooking(format!("event {} has no Exchange item yet; sync and retry", event.id)));
    };
    match remote.decline(&calendar.email, &remote_id, DECLINE_COMMENT).await {
        Ok(()) => Ok(Declined::Declined),
        Err(RemoteError::NotFound(_)) => Ok(Declined::AlreadyGone),
        Err(e) => Err(e.into()),
    }
}
