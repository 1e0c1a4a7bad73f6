//! Content hashes: two sides hold the same content exactly when their hashes are equal.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::model::EventData;

/// A SHA-256 of an event's content, hex-encoded.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ContentHash(pub String);

/// Hash of an event's content. Attendees are compared as a set (Exchange may reorder them)
/// and e-mail addresses case-insensitively.
pub fn content_hash(data: &EventData) -> ContentHash {
    let mut canonical = data.clone();
    for a in &mut canonical.attendees {
        a.email = a.email.to_ascii_lowercase();
    }
    canonical.attendees.sort_by(|a, b| a.email.cmp(&b.email));
    if let Some(o) = &mut canonical.organizer {
        o.email = o.email.to_ascii_lowercase();
    }
    // serde_json of a struct is deterministic: fields in declaration order.
    let bytes = serde_json::to_vec(&canonical).expect("event data serialises");
    let digest = Sha256::digest(&bytes);
    ContentHash(digest.iter().map(|b| format!("{b:02x}")).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::*;
    use chrono::{TimeZone, Utc};

    #[test]
    fn attendee_order_and_case_do_not_matter_but_content_does() {
        let s = Utc.with_ymd_and_hms(2026, 3, 1, 9, 0, 0).unwrap();
        let mut a = EventData::new("Class", s, s + chrono::Duration::hours(1));
        let att = |e: &str| Attendee {
            email: e.into(),
            name: e.into(),
            role: AttendeeRole::Required,
            response: ResponseStatus::None,
        };
        a.attendees = vec![att("x@c.com"), att("Y@c.com")];
        let mut b = a.clone();
        b.attendees = vec![att("y@c.com"), att("x@c.com")];
        b.attendees[0].name = "Y@c.com".into();
        assert_eq!(content_hash(&a), content_hash(&b));
        b.subject = "Class 2".into();
        assert_ne!(content_hash(&a), content_hash(&b));
    }
}
