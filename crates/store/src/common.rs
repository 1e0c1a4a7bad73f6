//! What both backends share: how values become columns and back, and the messages of the
//! rules the trait sets, so SQLite and PostgreSQL say the same thing for the same breach.

use calbridge_core::model::EventId;
use calbridge_core::store::{SealedSecret, StoreError};
use chrono::{DateTime, Utc};

use crate::error::corrupt;

/// An instant as microseconds since the Unix epoch, for the range columns.
pub(crate) fn micros(t: DateTime<Utc>) -> i64 {
    // Floor to microseconds; the exact instant lives in the event's JSON.
    t.timestamp_micros()
}

pub(crate) fn us_to_time(us: i64, what: impl FnOnce() -> String) -> Result<DateTime<Utc>, StoreError> {
    DateTime::from_timestamp_micros(us).ok_or_else(|| corrupt(what(), format!("instant {us} out of range")))
}

pub(crate) fn to_json<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_string(value).expect("calbridge-core types serialise to JSON")
}

pub(crate) fn sealed_from_json(json: &str, what: impl FnOnce() -> String) -> Result<SealedSecret, StoreError> {
    serde_json::from_str(json).map_err(|e| corrupt(what(), e))
}

pub(crate) fn normalise_email(email: &str) -> String {
    email.trim().to_lowercase()
}

pub(crate) fn read_only(id: &EventId) -> StoreError {
    StoreError::Conflict(format!(
        "event {id} came from Exchange and is read-only in calbridge; change it in Outlook/Exchange \
         and the next sync brings the change here"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn micros_floor_and_keep_order() {
        let t = DateTime::from_timestamp(1_700_000_000, 999_999_999).unwrap();
        assert_eq!(micros(t), 1_700_000_000_999_999);
        let before_epoch = DateTime::from_timestamp(-1, 500).unwrap();
        assert_eq!(micros(before_epoch), -1_000_000);
    }
}
