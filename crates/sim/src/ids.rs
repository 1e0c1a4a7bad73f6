//! Exchange-shaped identifiers, derived deterministically from the tenant, the mailbox and a
//! counter, so the same scenario always yields the same ids: item ids (`AAMkAG...=`), calendar
//! ids, occurrence ids (master id + original start), change keys, iCalUIds and directory GUIDs.
//! Also the HMAC used to sign access tokens and sync-state tokens.

use base64::engine::general_purpose::{STANDARD, URL_SAFE, URL_SAFE_NO_PAD};
use base64::Engine;
use sha2::{Digest, Sha256};
use uuid::Uuid;

pub fn sha256(parts: &[&[u8]]) -> [u8; 32] {
    let mut h = Sha256::new();
    for p in parts {
        h.update((p.len() as u64).to_be_bytes());
        h.update(p);
    }
    h.finalize().into()
}

/// A GUID (version-4 shaped) derived from a name.
pub fn guid(parts: &[&str]) -> Uuid {
    let bytes: Vec<&[u8]> = parts.iter().map(|p| p.as_bytes()).collect();
    let h = sha256(&bytes);
    let mut b = [0u8; 16];
    b.copy_from_slice(&h[..16]);
    uuid::Builder::from_random_bytes(b).into_uuid()
}

fn mailbox_prefix(mailbox_guid: &Uuid, tag: u8) -> Vec<u8> {
    let mut b = vec![0x00, 0x03, 0x24, 0x00];
    b.extend_from_slice(mailbox_guid.hyphenated().to_string().as_bytes());
    b.extend_from_slice(&[0x00, tag, 0x00, 0x00, 0x00, 0x00, 0x00]);
    let folder = sha256(&[mailbox_guid.as_bytes(), b"calendar-folder"]);
    b.extend_from_slice(&folder[..16]);
    b
}

/// The id of a mailbox's default calendar folder.
pub fn calendar_id(mailbox_guid: &Uuid) -> String {
    let mut b = mailbox_prefix(mailbox_guid, 0x2E);
    b.extend_from_slice(&[0x01, 0x00]);
    let store = sha256(&[mailbox_guid.as_bytes(), b"store"]);
    b.extend_from_slice(&store[..16]);
    b.extend_from_slice(&[0x00, 0x00, 0x00, 0x00, 0x01, 0x06, 0x00, 0x00]);
    URL_SAFE.encode(b)
}

/// The id of one of a mailbox's distinguished folders (`root`, `msgfolderroot`, `inbox`, …);
/// `calendar` is [`calendar_id`].
pub fn folder_id(mailbox_guid: &Uuid, name: &str) -> String {
    if name == "calendar" {
        return calendar_id(mailbox_guid);
    }
    let mut b = mailbox_prefix(mailbox_guid, 0x2E);
    b.extend_from_slice(&[0x01, 0x00]);
    let folder = sha256(&[mailbox_guid.as_bytes(), b"folder", name.as_bytes()]);
    b.extend_from_slice(&folder[..16]);
    b.extend_from_slice(&[0x00, 0x00, 0x00, 0x00, 0x01, 0x01, 0x00, 0x00]);
    URL_SAFE.encode(b)
}

/// The id of the `counter`-th item created in a mailbox.
pub fn item_id(mailbox_guid: &Uuid, counter: u64) -> String {
    let mut b = mailbox_prefix(mailbox_guid, 0x46);
    b.extend_from_slice(&[0x07, 0x00]);
    let store = sha256(&[mailbox_guid.as_bytes(), b"store"]);
    b.extend_from_slice(&store[..16]);
    b.extend_from_slice(&[0x00, 0x00, 0x00, 0x00, 0x01, 0x0D, 0x00, 0x00]);
    let item = sha256(&[mailbox_guid.as_bytes(), b"item", &counter.to_be_bytes()]);
    b.extend_from_slice(&item[..14]);
    b.extend_from_slice(&counter.to_be_bytes()[3..]);
    b.extend_from_slice(&[0x00, 0x00]);
    URL_SAFE.encode(b)
}

/// The GUID of the mailbox an item, folder or occurrence id was made in (ids carry it, as
/// Exchange's do), if `id` is one of ours.
pub fn mailbox_guid_of(id: &str) -> Option<Uuid> {
    let b = URL_SAFE.decode(id).ok()?;
    let text = std::str::from_utf8(b.get(4..40)?).ok()?;
    Uuid::parse_str(text).ok()
}

const OCCURRENCE_MARK: [u8; 2] = [0x10, 0x4F];

/// The id of the occurrence of series `master_id` whose original start is `original_start`
/// (Unix seconds).
pub fn occurrence_id(master_id: &str, original_start: i64) -> String {
    let mut b = URL_SAFE.decode(master_id).unwrap_or_else(|_| master_id.as_bytes().to_vec());
    b.extend_from_slice(&OCCURRENCE_MARK);
    b.extend_from_slice(&original_start.to_be_bytes());
    URL_SAFE.encode(b)
}

/// Splits an occurrence id into its master id and original start.
pub fn parse_occurrence_id(id: &str) -> Option<(String, i64)> {
    let b = URL_SAFE.decode(id).ok()?;
    if b.len() < 10 + 40 {
        return None;
    }
    let (head, tail) = b.split_at(b.len() - 10);
    if tail[..2] != OCCURRENCE_MARK {
        return None;
    }
    let mut secs = [0u8; 8];
    secs.copy_from_slice(&tail[2..]);
    Some((URL_SAFE.encode(head), i64::from_be_bytes(secs)))
}

/// A change key: the mailbox's GUID and a change counter, base64 (22 bytes, like Exchange's).
pub fn change_key(mailbox_guid: &Uuid, counter: u64) -> String {
    let mut b = mailbox_guid.as_bytes().to_vec();
    b.extend_from_slice(&counter.to_be_bytes()[2..]);
    STANDARD.encode(b)
}

/// An iCalendar UID in Exchange's format (the Outlook global object id, hex).
pub fn ical_uid(seed: &[&str]) -> String {
    let bytes: Vec<&[u8]> = seed.iter().map(|p| p.as_bytes()).collect();
    let h = sha256(&bytes);
    let hex = |b: &[u8]| b.iter().map(|x| format!("{x:02X}")).collect::<String>();
    format!("040000008200E00074C5B7101A82E00800000000{}000000000000000010000000{}", hex(&h[..8]), hex(&h[8..24]))
}

pub fn hmac_sha256(key: &[u8], msg: &[u8]) -> [u8; 32] {
    let mut k = [0u8; 64];
    if key.len() > 64 {
        k[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        k[..key.len()].copy_from_slice(key);
    }
    let mut inner = Sha256::new();
    inner.update(k.map(|b| b ^ 0x36));
    inner.update(msg);
    let inner = inner.finalize();
    let mut outer = Sha256::new();
    outer.update(k.map(|b| b ^ 0x5c));
    outer.update(inner);
    outer.finalize().into()
}

pub fn b64url(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

pub fn b64url_decode(s: &str) -> Option<Vec<u8>> {
    URL_SAFE_NO_PAD.decode(s.trim_end_matches('=')).ok()
}

/// A small deterministic PRNG (SplitMix64) for the scenario generator.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed ^ 0x9E37_79B9_7F4A_7C15)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in `0..n` (n > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }
    /// Uniform in `lo..=hi`.
    pub fn range(&mut self, lo: i64, hi: i64) -> i64 {
        lo + self.below((hi - lo + 1).max(1) as u64) as i64
    }
    pub fn chance(&mut self, p: f64) -> bool {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64 <= p
    }
    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_name_the_mailbox_they_were_made_in() {
        let anna = guid(&["anna"]);
        let item = item_id(&anna, 7);
        assert_eq!(mailbox_guid_of(&item), Some(anna));
        assert_eq!(mailbox_guid_of(&occurrence_id(&item, 1_700_000_000)), Some(anna));
        assert_eq!(mailbox_guid_of(&calendar_id(&anna)), Some(anna));
        assert_ne!(mailbox_guid_of(&item_id(&guid(&["bob"]), 7)), Some(anna));
        assert_eq!(mailbox_guid_of("not-an-id"), None);
        assert_eq!(mailbox_guid_of(""), None);
    }

    #[test]
    fn ids_are_exchange_shaped_and_stable() {
        let g = guid(&["tenant", "adele@contoso.example"]);
        let id = item_id(&g, 7);
        assert!(id.starts_with("AAMkA"), "{id}");
        assert!(id.ends_with('='), "{id}");
        assert_eq!(id, item_id(&g, 7));
        assert_ne!(id, item_id(&g, 8));
        let occ = occurrence_id(&id, 1_700_000_000);
        assert_eq!(parse_occurrence_id(&occ), Some((id.clone(), 1_700_000_000)));
        assert_eq!(parse_occurrence_id(&id), None);
        assert_eq!(change_key(&g, 1).len(), 32);
        assert_eq!(ical_uid(&["x"]).len(), 112);
    }

    #[test]
    fn hmac_matches_rfc4231_case_2() {
        let mac = hmac_sha256(b"Jefe", b"what do ya want for nothing?");
        let hex: String = mac.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(hex, "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
    }
}
