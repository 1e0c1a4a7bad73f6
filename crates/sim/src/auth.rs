//! Access tokens: JWT-shaped (`header.payload.signature`, base64url), HS256-signed with the
//! simulator's key so that only this simulator's tokens (and those of a snapshot it was
//! loaded from) are accepted. Claims follow Entra ID's app-only v1.0 tokens: `aud`, `iss`,
//! `iat`, `nbf`, `exp`, `appid`, `roles`, `tid`, `oid`, `idtyp`.

use serde_json::{json, Value};

use crate::ids::{b64url, b64url_decode, hmac_sha256};

/// Why a token was refused; the message is Graph's.
#[derive(Debug, PartialEq, Eq)]
pub enum TokenProblem {
    Empty,
    Malformed,
    BadSignature,
    Expired,
    WrongTenant,
}

impl TokenProblem {
    pub fn message(&self) -> &'static str {
        match self {
            TokenProblem::Empty => "Access token is empty.",
            TokenProblem::Malformed => "IDX14100: JWT is not well formed, there are no dots (.).\nThe token needs to be in JWS or JWE Compact Serialization Format.",
            TokenProblem::BadSignature => "Access token validation failure. Invalid signature.",
            TokenProblem::Expired => "Lifetime validation failed, the token is expired.",
            TokenProblem::WrongTenant => "Access token validation failure. Invalid issuer.",
        }
    }
}

pub fn mint(key: &[u8], claims: &Value) -> String {
    let header = json!({"typ": "JWT", "alg": "HS256", "kid": "calbridge-sim"});
    let signing_input = format!("{}.{}", b64url(header.to_string().as_bytes()), b64url(claims.to_string().as_bytes()));
    let sig = hmac_sha256(key, signing_input.as_bytes());
    format!("{signing_input}.{}", b64url(&sig))
}

/// Verifies signature, lifetime (`now` in Unix seconds) and tenant; returns the claims.
pub fn verify(key: &[u8], token: &str, tenant_id: &str, now: i64) -> Result<Value, TokenProblem> {
    let token = token.trim();
    if token.is_empty() {
        return Err(TokenProblem::Empty);
    }
    let parts: Vec<&str> = token.split('.').collect();
    if parts.len() != 3 {
        return Err(TokenProblem::Malformed);
    }
    let claims: Value =
        b64url_decode(parts[1]).and_then(|b| serde_json::from_slice(&b).ok()).ok_or(TokenProblem::Malformed)?;
    let expected = hmac_sha256(key, format!("{}.{}", parts[0], parts[1]).as_bytes());
    if b64url_decode(parts[2]).as_deref() != Some(&expected[..]) {
        return Err(TokenProblem::BadSignature);
    }
    if claims["tid"].as_str() != Some(tenant_id) {
        return Err(TokenProblem::WrongTenant);
    }
    if claims["exp"].as_i64().unwrap_or(0) <= now {
        return Err(TokenProblem::Expired);
    }
    Ok(claims)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mint_and_verify() {
        let key = b"k";
        let t = mint(key, &json!({"tid": "t", "exp": 100, "roles": ["Calendars.Read"]}));
        assert_eq!(t.split('.').count(), 3);
        assert!(verify(key, &t, "t", 50).is_ok());
        assert_eq!(verify(key, &t, "t", 100), Err(TokenProblem::Expired));
        assert_eq!(verify(key, &t, "u", 50), Err(TokenProblem::WrongTenant));
        assert_eq!(verify(b"other", &t, "t", 50), Err(TokenProblem::BadSignature));
        assert_eq!(verify(key, "abc", "t", 50), Err(TokenProblem::Malformed));
    }
}
