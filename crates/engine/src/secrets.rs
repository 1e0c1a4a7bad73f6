//! Sealed secrets: connection passwords and client secrets, and webhook signing secrets, kept
//! encrypted at rest.
//!
//! The cipher is XChaCha20-Poly1305 (authenticated encryption; a random 192-bit nonce per
//! seal, so random nonces never collide in practice) under a 256-bit master key. The owner of
//! a secret ([`SecretOwner::aad`]) is bound in as associated data: a sealed value copied to
//! another row does not open. Every sealed value names the master key that sealed it by its
//! key id, the first 16 hex digits of the key's SHA-256, so keys can be rotated: open with the
//! old key, seal with the new one ([`rotate`]).
//!
//! The master key comes from the operator (`CALBRIDGE_MASTER_KEY`, base64 of 32 bytes;
//! `openssl rand -base64 32` makes one). Neither the key nor an opened secret is ever
//! printed: their `Debug` shows only the key id.

use std::fmt;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use calbridge_core::model::Secret;
use calbridge_core::store::{SealedSecret, SecretOwner, Store, StoreError};
use chacha20poly1305::aead::{Aead, AeadCore, KeyInit, OsRng, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use sha2::{Digest, Sha256};

/// How to make a master key, for error messages.
pub const GENERATE_HINT: &str = "generate one with `openssl rand -base64 32` (or `head -c 32 /dev/urandom | base64`) \
                                 and keep it safe: without it the stored secrets cannot be opened";

/// Why a secret could not be sealed or opened.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SecretError {
    /// The master key given is not base64 of 32 bytes.
    #[error("the master key is not valid: {0}. Fix: {GENERATE_HINT}")]
    BadKey(String),
    /// The secret was sealed under another master key.
    #[error(
        "{owner} was sealed under master key {found}, but the master key given is {expected}. Fix: start calbridge \
         with the master key it was sealed under (or the previous one while rotating), or set the secret again"
    )]
    WrongKey { owner: String, found: String, expected: String },
    /// The sealed value does not open: damaged, or moved from another row.
    #[error("{0} does not open under the master key: the stored value is damaged or belongs to another row. Fix: set the secret again")]
    Corrupt(String),
}

/// A 256-bit master key with its key id.
#[derive(Clone)]
pub struct MasterKey {
    key: [u8; 32],
    id: String,
}

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MasterKey({})", self.id)
    }
}

fn describe(owner: &SecretOwner) -> String {
    match owner {
        SecretOwner::Connection(id) => format!("the secret of connection {id}"),
        SecretOwner::Webhook(id) => format!("the signing secret of webhook {id}"),
    }
}

impl MasterKey {
    /// A key from its 32 bytes.
    pub fn from_bytes(key: [u8; 32]) -> MasterKey {
        let digest = Sha256::digest(key);
        let id = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
        MasterKey { key, id }
    }

    /// A key from base64 (standard alphabet, padding optional) of exactly 32 bytes.
    pub fn from_base64(text: &str) -> Result<MasterKey, SecretError> {
        let trimmed = text.trim();
        if trimmed.is_empty() {
            return Err(SecretError::BadKey("it is empty".into()));
        }
        let bytes = B64
            .decode(trimmed)
            .or_else(|_| base64::engine::general_purpose::STANDARD_NO_PAD.decode(trimmed))
            .map_err(|_| SecretError::BadKey("it is not base64".into()))?;
        let key: [u8; 32] = bytes
            .try_into()
            .map_err(|b: Vec<u8>| SecretError::BadKey(format!("it decodes to {} bytes, not 32", b.len())))?;
        Ok(MasterKey::from_bytes(key))
    }

    /// The key id: the first 16 hex digits of the key's SHA-256.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Encrypts `secret` for `owner`.
    pub fn seal(&self, owner: &SecretOwner, secret: &Secret) -> SealedSecret {
        let cipher = XChaCha20Poly1305::new((&self.key).into());
        let nonce = XChaCha20Poly1305::generate_nonce(&mut OsRng);
        let aad = owner.aad();
        let ciphertext = cipher
            .encrypt(&nonce, Payload { msg: secret.expose().as_bytes(), aad: aad.as_bytes() })
            .expect("XChaCha20-Poly1305 encryption cannot fail for in-memory input");
        SealedSecret { key_id: self.id.clone(), nonce: B64.encode(nonce), ciphertext: B64.encode(ciphertext) }
    }

    /// Decrypts what [`MasterKey::seal`] sealed for the same `owner`.
    pub fn open(&self, owner: &SecretOwner, sealed: &SealedSecret) -> Result<Secret, SecretError> {
        if sealed.key_id != self.id {
            return Err(SecretError::WrongKey {
                owner: describe(owner),
                found: sealed.key_id.clone(),
                expected: self.id.clone(),
            });
        }
        let corrupt = || SecretError::Corrupt(describe(owner));
        let nonce = B64.decode(&sealed.nonce).map_err(|_| corrupt())?;
        if nonce.len() != 24 {
            return Err(corrupt());
        }
        let ciphertext = B64.decode(&sealed.ciphertext).map_err(|_| corrupt())?;
        let cipher = XChaCha20Poly1305::new((&self.key).into());
        let aad = owner.aad();
        let plain = cipher
            .decrypt(XNonce::from_slice(&nonce), Payload { msg: &ciphertext, aad: aad.as_bytes() })
            .map_err(|_| corrupt())?;
        String::from_utf8(plain).map(Secret::new).map_err(|_| corrupt())
    }
}

/// What a rotation did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Rotation {
    /// Secrets re-sealed under the new key.
    pub resealed: usize,
    /// Secrets already under the new key (a rotation run again after an interruption).
    pub already: usize,
}

/// Errors of a rotation.
#[derive(Debug, thiserror::Error)]
pub enum RotateError {
    #[error("{0}")]
    Secret(#[from] SecretError),
    #[error("{0}")]
    Store(#[from] StoreError),
}

/// Re-seals every stored secret under `new`, opening each with `old`. Secrets already under
/// `new` are left as they are, so an interrupted rotation can simply be run again. Nothing is
/// written until every secret opened.
pub async fn rotate(store: &dyn Store, old: &MasterKey, new: &MasterKey) -> Result<Rotation, RotateError> {
    let mut opened = Vec::new();
    let mut report = Rotation::default();
    for (owner, sealed) in store.secrets().await? {
        if sealed.key_id == new.id() {
            report.already += 1;
            continue;
        }
        let secret = old.open(&owner, &sealed)?;
        opened.push((owner, secret));
    }
    for (owner, secret) in opened {
        store.put_secret(&owner, &new.seal(&owner, &secret)).await?;
        report.resealed += 1;
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(b: u8) -> MasterKey {
        MasterKey::from_bytes([b; 32])
    }

    #[test]
    fn seal_then_open_round_trips_and_hides_the_value() {
        let k = key(7);
        let owner = SecretOwner::Connection(3);
        let sealed = k.seal(&owner, &Secret::new("canary-s3cret"));
        assert_eq!(sealed.key_id, k.id());
        assert!(!sealed.ciphertext.contains("canary"));
        assert!(!format!("{sealed:?}{k:?}").contains("canary"));
        assert_eq!(k.open(&owner, &sealed).unwrap().expose(), "canary-s3cret");
        let again = k.seal(&owner, &Secret::new("canary-s3cret"));
        assert_ne!(again.nonce, sealed.nonce, "every seal takes a fresh nonce");
    }

    #[test]
    fn a_sealed_value_does_not_open_for_another_owner_or_key_or_when_changed() {
        let k = key(7);
        let sealed = k.seal(&SecretOwner::Connection(3), &Secret::new("x"));
        assert!(matches!(k.open(&SecretOwner::Connection(4), &sealed), Err(SecretError::Corrupt(_))));
        assert!(matches!(k.open(&SecretOwner::Webhook("3".into()), &sealed), Err(SecretError::Corrupt(_))));
        let e = key(8).open(&SecretOwner::Connection(3), &sealed).unwrap_err();
        assert!(matches!(e, SecretError::WrongKey { .. }), "{e}");
        assert!(e.to_string().contains(k.id()), "{e}");
        let mut tampered = sealed.clone();
        tampered.ciphertext = B64.encode(b"not the ciphertext at all");
        assert!(matches!(k.open(&SecretOwner::Connection(3), &tampered), Err(SecretError::Corrupt(_))));
    }

    #[test]
    fn master_keys_must_be_base64_of_32_bytes() {
        let good = B64.encode([1u8; 32]);
        assert_eq!(MasterKey::from_base64(&good).unwrap().id(), key(1).id());
        assert_eq!(MasterKey::from_base64(good.trim_end_matches('=')).unwrap().id(), key(1).id());
        for (bad, why) in [("", "empty"), ("***", "not base64"), (&B64.encode([1u8; 16]) as &str, "16 bytes")] {
            let e = MasterKey::from_base64(bad).unwrap_err().to_string();
            assert!(e.contains(why) && e.contains("openssl rand -base64 32"), "{bad:?}: {e}");
        }
    }

    #[tokio::test]
    async fn rotation_reseals_every_secret_and_can_run_again() {
        use calbridge_core::model::{ConnectionSettings, GraphSettings};
        use calbridge_core::store::{NewConnection, NewWebhook};
        let store = calbridge_store::SqliteStore::open("sqlite::memory:").await.unwrap();
        let c = store
            .create_connection(NewConnection {
                name: "c".into(),
                settings: ConnectionSettings::Graph(GraphSettings {
                    tenant_id: "t".into(),
                    client_id: "c".into(),
                    authority_url: "https://login.microsoftonline.com".into(),
                    graph_url: "https://graph.microsoft.com".into(),
                }),
                default_organizer: None,
                max_threads: 1,
            })
            .await
            .unwrap();
        let (old, new) = (key(1), key(2));
        let conn = SecretOwner::Connection(c.id);
        store.put_secret(&conn, &old.seal(&conn, &Secret::new("client-secret"))).await.unwrap();
        let hook = SecretOwner::Webhook("wh_1".into());
        store
            .create_webhook(NewWebhook {
                id: "wh_1".into(),
                url: "http://127.0.0.1:9/".into(),
                events: vec!["event.created".into()],
                description: String::new(),
                secret: old.seal(&hook, &Secret::new("whsec_x")),
                created_at: chrono::Utc::now(),
            })
            .await
            .unwrap();

        let r = rotate(&store, &old, &new).await.unwrap();
        assert_eq!(r, Rotation { resealed: 2, already: 0 });
        let sealed = store.secret(&conn).await.unwrap().unwrap();
        assert_eq!(sealed.key_id, new.id());
        assert_eq!(new.open(&conn, &sealed).unwrap().expose(), "client-secret");
        assert!(matches!(old.open(&conn, &sealed), Err(SecretError::WrongKey { .. })));
        let hooks = store.secrets().await.unwrap();
        let (_, h) = hooks.iter().find(|(o, _)| o == &hook).unwrap();
        assert_eq!(new.open(&hook, h).unwrap().expose(), "whsec_x");

        assert_eq!(rotate(&store, &old, &new).await.unwrap(), Rotation { resealed: 0, already: 2 });
        let e = rotate(&store, &key(3), &key(4)).await.unwrap_err().to_string();
        assert!(e.contains(new.id()), "a wrong old key names the key the secrets are under: {e}");
    }
}
