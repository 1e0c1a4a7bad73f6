//! The NTLMv2 messages of an HTTP sign-in (`Authorization: NTLM …`), built with the
//! `ntlmclient` crate: a small, dependency-light implementation of the client side.

use base64::prelude::{Engine as _, BASE64_STANDARD};
use ntlmclient::{Flags, Message, NegotiateMessage};

use calbridge_core::Secret;

/// The workstation name calbridge presents.
const WORKSTATION: &str = "CALBRIDGE";

/// The base64 negotiate message (type 1).
pub fn negotiate() -> String {
    let flags = Flags::NEGOTIATE_UNICODE
        | Flags::REQUEST_TARGET
        | Flags::NEGOTIATE_NTLM
        | Flags::NEGOTIATE_ALWAYS_SIGN
        | Flags::NEGOTIATE_WORKSTATION_SUPPLIED;
    let msg = Message::Negotiate(NegotiateMessage {
        flags,
        supplied_domain: String::new(),
        supplied_workstation: WORKSTATION.into(),
        os_version: Default::default(),
    });
    BASE64_STANDARD.encode(msg.to_bytes().expect("a negotiate message always encodes"))
}

/// The base64 authenticate message (type 3) answering the server's base64 `challenge`.
pub fn authenticate(challenge: &str, username: &str, domain: &str, password: &Secret) -> Result<String, String> {
    let bytes = BASE64_STANDARD.decode(challenge.trim()).map_err(|e| format!("not base64: {e}"))?;
    let msg = Message::try_from(bytes.as_slice()).map_err(|e| format!("not an NTLM message: {e:?}"))?;
    let Message::Challenge(c) = msg else {
        return Err("not a challenge message".into());
    };
    let target_info: Vec<u8> = c.target_information.iter().flat_map(|t| t.to_bytes()).collect();
    let creds = ntlmclient::Credentials {
        username: username.to_string(),
        password: password.expose().to_string(),
        domain: domain.to_string(),
    };
    let response =
        ntlmclient::respond_challenge_ntlm_v2(c.challenge, &target_info, ntlmclient::get_ntlm_time(), &creds);
    let flags = Flags::NEGOTIATE_UNICODE | Flags::NEGOTIATE_NTLM;
    let out =
        response.to_message(&creds, WORKSTATION, flags).to_bytes().map_err(|e| format!("cannot encode: {e:?}"))?;
    Ok(BASE64_STANDARD.encode(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_negotiate_message_is_ntlmssp_type_1() {
        let raw = BASE64_STANDARD.decode(negotiate()).unwrap();
        assert_eq!(&raw[..8], b"NTLMSSP\0");
        assert_eq!(u32::from_le_bytes(raw[8..12].try_into().unwrap()), 1);
    }

    #[test]
    fn a_garbled_challenge_is_refused_with_a_reason() {
        let e = authenticate("!!!", "svc", "CONTOSO", &Secret::new("pw")).unwrap_err();
        assert!(e.contains("base64"), "{e}");
        let e = authenticate(&negotiate(), "svc", "CONTOSO", &Secret::new("pw")).unwrap_err();
        assert!(e.contains("challenge"), "{e}");
    }
}
