//! NTLM over HTTP, the server's side — <https://learn.microsoft.com/openspecs/windows_protocols/ms-nlmp/b38c36ed-2804-4868-a9ff-8dd3182128e4>
//!
//! The handshake takes three legs on one TCP connection: the client's NEGOTIATE_MESSAGE
//! (`Authorization: NTLM <base64>`), the server's CHALLENGE_MESSAGE (a 401 with
//! `WWW-Authenticate: NTLM <base64>`: flags, an 8-byte server challenge and the target
//! information with a timestamp), and the client's AUTHENTICATE_MESSAGE. Only NTLMv2 is
//! accepted: the NT response is `NTProofStr ‖ blob`, where
//! `NTProofStr = HMAC-MD5(NTOWFv2, server_challenge ‖ blob)` and
//! `NTOWFv2 = HMAC-MD5(MD4(UTF-16LE(password)), UTF-16LE(UPPER(user) ‖ domain))`; the
//! server recomputes it from the account's password. Session security (signing, sealing,
//! the MIC) is not needed over HTTP and is not checked. Everything here is pure: the caller
//! supplies the server challenge and the time.

use hmac::{Hmac, Mac};
use md4::{Digest, Md4};

type HmacMd5 = Hmac<md5::Md5>;

const SIGNATURE: &[u8; 8] = b"NTLMSSP\0";

pub const NEGOTIATE_UNICODE: u32 = 0x0000_0001;
pub const NEGOTIATE_OEM: u32 = 0x0000_0002;
pub const REQUEST_TARGET: u32 = 0x0000_0004;
pub const NEGOTIATE_LM_KEY: u32 = 0x0000_0080;
pub const NEGOTIATE_NTLM: u32 = 0x0000_0200;
pub const NEGOTIATE_ALWAYS_SIGN: u32 = 0x0000_8000;
pub const TARGET_TYPE_DOMAIN: u32 = 0x0001_0000;
pub const NEGOTIATE_EXTENDED_SESSIONSECURITY: u32 = 0x0008_0000;
pub const NEGOTIATE_TARGET_INFO: u32 = 0x0080_0000;

/// Why an NTLM message was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NtlmError {
    #[error("the token is not an NTLM message (no NTLMSSP signature)")]
    NotNtlm,
    #[error("expected NTLM message type {expected}, got {found}")]
    WrongType { expected: u32, found: u32 },
    #[error("the NTLM message is truncated ({0})")]
    Truncated(&'static str),
    #[error("the NTLM {0} field is not valid UTF-16")]
    BadString(&'static str),
    #[error("the NT response is not an NTLMv2 response (NTLMv1 and LM are refused)")]
    NotV2,
}

/// The target the challenge names: NetBIOS domain and computer names, their DNS forms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub nb_domain: String,
    pub nb_computer: String,
    pub dns_domain: String,
    pub dns_computer: String,
}

/// An AUTHENTICATE_MESSAGE, as far as the server needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authenticate {
    pub flags: u32,
    pub lm_response: Vec<u8>,
    pub nt_response: Vec<u8>,
    pub domain: String,
    pub user: String,
    pub workstation: String,
}

fn u16_at(b: &[u8], at: usize, what: &'static str) -> Result<u16, NtlmError> {
    b.get(at..at + 2).map(|s| u16::from_le_bytes([s[0], s[1]])).ok_or(NtlmError::Truncated(what))
}

fn u32_at(b: &[u8], at: usize, what: &'static str) -> Result<u32, NtlmError> {
    b.get(at..at + 4).map(|s| u32::from_le_bytes([s[0], s[1], s[2], s[3]])).ok_or(NtlmError::Truncated(what))
}

/// The bytes a `(len, maxlen, offset)` field descriptor at `at` points to.
fn field<'a>(b: &'a [u8], at: usize, what: &'static str) -> Result<&'a [u8], NtlmError> {
    let len = u16_at(b, at, what)? as usize;
    let offset = u32_at(b, at + 4, what)? as usize;
    if len == 0 {
        return Ok(&[]);
    }
    b.get(offset..offset.checked_add(len).ok_or(NtlmError::Truncated(what))?).ok_or(NtlmError::Truncated(what))
}

fn message_type(b: &[u8]) -> Result<u32, NtlmError> {
    if b.len() < 12 || &b[..8] != SIGNATURE {
        return Err(NtlmError::NotNtlm);
    }
    u32_at(b, 8, "MessageType")
}

fn expect_type(b: &[u8], expected: u32) -> Result<(), NtlmError> {
    match message_type(b)? {
        t if t == expected => Ok(()),
        found => Err(NtlmError::WrongType { expected, found }),
    }
}

/// 1 (NEGOTIATE), 2 (CHALLENGE) or 3 (AUTHENTICATE).
pub fn kind(b: &[u8]) -> Result<u32, NtlmError> {
    message_type(b)
}

/// The flags of a NEGOTIATE_MESSAGE.
pub fn parse_negotiate(b: &[u8]) -> Result<u32, NtlmError> {
    expect_type(b, 1)?;
    u32_at(b, 12, "NegotiateFlags")
}

fn utf16(s: &str) -> Vec<u8> {
    s.encode_utf16().flat_map(|u| u.to_le_bytes()).collect()
}

fn text(b: &[u8], unicode: bool, what: &'static str) -> Result<String, NtlmError> {
    if !unicode {
        return Ok(b.iter().map(|&c| c as char).collect());
    }
    if !b.len().is_multiple_of(2) {
        return Err(NtlmError::BadString(what));
    }
    let units: Vec<u16> = b.chunks(2).map(|c| u16::from_le_bytes([c[0], c[1]])).collect();
    String::from_utf16(&units).map_err(|_| NtlmError::BadString(what))
}

/// Windows FILETIME (100 ns since 1601-01-01) of a Unix time in seconds.
pub fn filetime(unix_secs: i64) -> u64 {
    ((unix_secs + 11_644_473_600).max(0) as u64) * 10_000_000
}

/// The flags the server answers a NEGOTIATE_MESSAGE's `client` flags with: the client's
/// (Unicode rather than OEM, extended session security rather than the LM key), plus NTLM,
/// always-sign, a domain target and the target information.
pub fn challenge_flags(client: u32) -> u32 {
    let mut f = client | REQUEST_TARGET | NEGOTIATE_NTLM | NEGOTIATE_ALWAYS_SIGN | NEGOTIATE_TARGET_INFO;
    f |= TARGET_TYPE_DOMAIN;
    if f & NEGOTIATE_UNICODE != 0 {
        f &= !NEGOTIATE_OEM;
    }
    if f & NEGOTIATE_EXTENDED_SESSIONSECURITY != 0 {
        f &= !NEGOTIATE_LM_KEY;
    }
    f
}

/// A CHALLENGE_MESSAGE: `flags` (from [`challenge_flags`]), the server challenge, the
/// target and the timestamp (a FILETIME, which makes clients send NTLMv2 with a MIC).
pub fn challenge(flags: u32, server_challenge: [u8; 8], target: &Target, timestamp: u64) -> Vec<u8> {
    let name = utf16(&target.nb_domain);
    let mut info = Vec::new();
    let mut av = |id: u16, value: &[u8]| {
        info.extend_from_slice(&id.to_le_bytes());
        info.extend_from_slice(&(value.len() as u16).to_le_bytes());
        info.extend_from_slice(value);
    };
    av(2, &utf16(&target.nb_domain));
    av(1, &utf16(&target.nb_computer));
    av(4, &utf16(&target.dns_domain));
    av(3, &utf16(&target.dns_computer));
    av(7, &timestamp.to_le_bytes());
    av(0, &[]);
    const HEADER: usize = 56;
    let mut m = Vec::with_capacity(HEADER + name.len() + info.len());
    m.extend_from_slice(SIGNATURE);
    m.extend_from_slice(&2u32.to_le_bytes());
    let descriptor = |m: &mut Vec<u8>, len: usize, offset: usize| {
        m.extend_from_slice(&(len as u16).to_le_bytes());
        m.extend_from_slice(&(len as u16).to_le_bytes());
        m.extend_from_slice(&(offset as u32).to_le_bytes());
    };
    descriptor(&mut m, name.len(), HEADER);
    m.extend_from_slice(&flags.to_le_bytes());
    m.extend_from_slice(&server_challenge);
    m.extend_from_slice(&[0u8; 8]);
    descriptor(&mut m, info.len(), HEADER + name.len());
    // Version: Windows 10.0 build 17763 (Server 2019), NTLM revision 15.
    m.extend_from_slice(&[10, 0, 0x63, 0x45, 0, 0, 0, 0x0F]);
    m.extend_from_slice(&name);
    m.extend_from_slice(&info);
    m
}

/// Reads an AUTHENTICATE_MESSAGE.
pub fn parse_authenticate(b: &[u8]) -> Result<Authenticate, NtlmError> {
    expect_type(b, 3)?;
    let flags = u32_at(b, 60, "NegotiateFlags")?;
    let unicode = flags & NEGOTIATE_UNICODE != 0;
    Ok(Authenticate {
        flags,
        lm_response: field(b, 12, "LmChallengeResponse")?.to_vec(),
        nt_response: field(b, 20, "NtChallengeResponse")?.to_vec(),
        domain: text(field(b, 28, "DomainName")?, unicode, "DomainName")?,
        user: text(field(b, 36, "UserName")?, unicode, "UserName")?,
        workstation: text(field(b, 44, "Workstation")?, unicode, "Workstation")?,
    })
}

fn hmac_md5(key: &[u8], parts: &[&[u8]]) -> HmacMd5 {
    let mut mac = HmacMd5::new_from_slice(key).expect("HMAC takes any key length");
    for p in parts {
        mac.update(p);
    }
    mac
}

/// NTOWFv2(password, user, domain).
pub fn ntowfv2(password: &str, user: &str, domain: &str) -> [u8; 16] {
    let nt_hash = Md4::digest(utf16(password));
    let who = utf16(&format!("{}{domain}", user.to_uppercase()));
    hmac_md5(&nt_hash, &[&who]).finalize().into_bytes().into()
}

/// Whether `auth`'s NTLMv2 response proves knowledge of `password` for the user and domain
/// it names, against `server_challenge`. `Err(NotV2)` for NTLMv1/LM-only answers.
pub fn verify(auth: &Authenticate, password: &str, server_challenge: &[u8; 8]) -> Result<bool, NtlmError> {
    let nt = &auth.nt_response;
    // 16 bytes of proof, then a blob of at least 28 bytes starting with the version 1, 1.
    if nt.len() < 16 + 28 || nt[16] != 1 || nt[17] != 1 {
        return Err(NtlmError::NotV2);
    }
    let (proof, blob) = nt.split_at(16);
    let key = ntowfv2(password, &auth.user, &auth.domain);
    Ok(hmac_md5(&key, &[server_challenge, blob]).verify_slice(proof).is_ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len() / 2).map(|i| u8::from_str_radix(&s[2 * i..2 * i + 2], 16).unwrap()).collect()
    }

    // MS-NLMP 4.2.4: user "User", domain "Domain", password "Password".
    #[test]
    fn ntowfv2_and_the_proof_match_the_specifications_example() {
        assert_eq!(ntowfv2("Password", "User", "Domain").to_vec(), hex("0c868a403bfd7a93a3001ef22ef02e3f"));
        let server_challenge: [u8; 8] = hex("0123456789abcdef").try_into().unwrap();
        // temp = 0x01 0x01, 6 zero bytes, time 0, client challenge aa…, 4 zero bytes, the
        // target info (NbDomainName "Domain", NbComputerName "Server", EOL), 4 zero bytes.
        let mut blob = hex("0101000000000000");
        blob.extend(hex("0000000000000000"));
        blob.extend(hex("aaaaaaaaaaaaaaaa"));
        blob.extend(hex("00000000"));
        blob.extend(hex("02000c0044006f006d00610069006e00"));
        blob.extend(hex("01000c005300650072007600650072000000000000000000"));
        let key = ntowfv2("Password", "User", "Domain");
        let proof = hmac_md5(&key, &[&server_challenge, &blob]).finalize().into_bytes();
        assert_eq!(proof.to_vec(), hex("68cd0ab851e51c96aabc927bebef6a1c"));
        let mut nt = proof.to_vec();
        nt.extend(&blob);
        let auth = Authenticate {
            flags: NEGOTIATE_UNICODE,
            lm_response: vec![],
            nt_response: nt,
            domain: "Domain".into(),
            user: "user".into(),
            workstation: String::new(),
        };
        assert_eq!(verify(&auth, "Password", &server_challenge), Ok(true), "the user name is case-insensitive");
        assert_eq!(verify(&auth, "password", &server_challenge), Ok(false));
        assert_eq!(
            verify(&Authenticate { domain: "DOMAIN".into(), ..auth.clone() }, "Password", &server_challenge),
            Ok(false)
        );
        assert_eq!(
            verify(&Authenticate { nt_response: vec![0; 24], ..auth }, "Password", &server_challenge),
            Err(NtlmError::NotV2)
        );
    }

    #[test]
    fn a_challenge_carries_the_flags_the_challenge_and_a_timestamped_target() {
        let target = Target {
            nb_domain: "CONTOSO".into(),
            nb_computer: "EXCH01".into(),
            dns_domain: "contoso.example".into(),
            dns_computer: "exch01.contoso.example".into(),
        };
        let flags =
            challenge_flags(NEGOTIATE_UNICODE | NEGOTIATE_OEM | NEGOTIATE_EXTENDED_SESSIONSECURITY | NEGOTIATE_LM_KEY);
        assert_eq!(flags & (NEGOTIATE_OEM | NEGOTIATE_LM_KEY), 0);
        let m = challenge(flags, *b"\x01\x02\x03\x04\x05\x06\x07\x08", &target, filetime(0));
        assert_eq!(kind(&m), Ok(2));
        assert_eq!(u32_at(&m, 20, "flags"), Ok(flags));
        assert_eq!(&m[24..32], b"\x01\x02\x03\x04\x05\x06\x07\x08");
        assert_eq!(text(field(&m, 12, "TargetName").unwrap(), true, "TargetName").unwrap(), "CONTOSO");
        let info = field(&m, 40, "TargetInfo").unwrap();
        // The timestamp pair (MsvAvTimestamp = 7) comes just before the end-of-list pair.
        let ts = &info[info.len() - 4 - 12..info.len() - 4];
        assert_eq!(&ts[..4], &[7, 0, 8, 0]);
        assert_eq!(u64::from_le_bytes(ts[4..].try_into().unwrap()), 116_444_736_000_000_000);
        assert_eq!(&info[info.len() - 4..], &[0, 0, 0, 0]);
    }

    #[test]
    fn garbage_is_refused_with_a_reason() {
        assert_eq!(parse_negotiate(b"hello"), Err(NtlmError::NotNtlm));
        let mut m = SIGNATURE.to_vec();
        m.extend(3u32.to_le_bytes());
        assert_eq!(parse_negotiate(&m), Err(NtlmError::WrongType { expected: 1, found: 3 }));
        assert!(matches!(parse_authenticate(&m), Err(NtlmError::Truncated(_))));
        m.extend([0u8; 52]);
        // A field pointing past the end.
        m[20] = 24;
        m[24] = 200;
        assert!(matches!(parse_authenticate(&m), Err(NtlmError::Truncated(_))));
    }
}
