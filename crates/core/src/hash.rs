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
///
/// The hash is the SHA-256 of the event's JSON (fields in declaration order) with the
/// attendees sorted by their lower-cased address and the organizer's address lower-cased.
/// Hashes are stored, so these bytes must not change from one version to the next. The JSON
/// is streamed into the digest, and the event is copied only when its addresses are not in
/// that form already.
pub fn content_hash(data: &EventData) -> ContentHash {
    let lower = |email: &str| !email.bytes().any(|b| b.is_ascii_uppercase());
    let canonical_already = data.attendees.iter().all(|a| lower(&a.email))
        && data.attendees.windows(2).all(|w| w[0].email <= w[1].email)
        && data.organizer.as_ref().is_none_or(|o| lower(&o.email));
    let owned;
    let canonical = if canonical_already {
        data
    } else {
        let mut c = data.clone();
        for a in &mut c.attendees {
            a.email.make_ascii_lowercase();
        }
        c.attendees.sort_by(|a, b| a.email.cmp(&b.email));
        if let Some(o) = &mut c.organizer {
            o.email.make_ascii_lowercase();
        }
        owned = c;
        &owned
    };
    let mut digest = DigestWriter(Sha256::new());
    // serde_json of a struct is deterministic: fields in declaration order.
    serde_json::to_writer(&mut digest, canonical).expect("event data serialises");
    ContentHash(hex(&digest.0.finalize()))
}

/// Feeds what is written into a SHA-256.
struct DigestWriter(Sha256);

impl std::io::Write for DigestWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.update(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Lower-case hexadecimal.
fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(DIGITS[(b >> 4) as usize] as char);
        out.push(DIGITS[(b & 15) as usize] as char);
    }
    out
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

    /// The hash as it was first defined: a canonical copy, its JSON, SHA-256, hex.
    fn reference(data: &EventData) -> ContentHash {
        let mut canonical = data.clone();
        for a in &mut canonical.attendees {
            a.email = a.email.to_ascii_lowercase();
        }
        canonical.attendees.sort_by(|a, b| a.email.cmp(&b.email));
        if let Some(o) = &mut canonical.organizer {
            o.email = o.email.to_ascii_lowercase();
        }
        let digest = Sha256::digest(serde_json::to_vec(&canonical).unwrap());
        ContentHash(digest.iter().map(|b| format!("{b:02x}")).collect())
    }

    /// Stored hashes are compared with new ones, so the hash must not change: it equals the
    /// first definition's for canonical and non-canonical events alike, and a fixed value.
    #[test]
    fn the_hash_is_the_one_stored_by_earlier_versions() {
        let s = Utc.with_ymd_and_hms(2026, 3, 1, 9, 0, 0).unwrap();
        let att = |e: &str| Attendee {
            email: e.into(),
            name: "Name \"quoted\" é".into(),
            role: AttendeeRole::Optional,
            response: ResponseStatus::Accepted,
        };
        let plain = EventData::new("Class", s, s + chrono::Duration::hours(1));
        assert_eq!(content_hash(&plain), reference(&plain));
        assert_eq!(content_hash(&plain).0, "b2b399c453d5aa98c133887945adbc4281c78f2b9b438c85668f4d50109f2b6f");
        let mut sorted = plain.clone();
        sorted.body = "Line 1\nLine 2 \u{1F600}".into();
        sorted.organizer = Some(Person { email: "org@c.com".into(), name: "Org".into() });
        sorted.attendees = vec![att("a@c.com"), att("b@c.com")];
        assert_eq!(content_hash(&sorted), reference(&sorted));
        let mut unsorted = sorted.clone();
        unsorted.attendees = vec![att("B@c.com"), att("a@c.com")];
        unsorted.organizer = Some(Person { email: "ORG@c.com".into(), name: "Org".into() });
        assert_eq!(content_hash(&unsorted), reference(&unsorted));
        assert_eq!(content_hash(&unsorted), content_hash(&sorted));
        let mut upper_only = sorted.clone();
        upper_only.attendees = vec![att("A@c.com"), att("b@c.com")];
        assert_eq!(content_hash(&upper_only), reference(&upper_only));
    }
}
