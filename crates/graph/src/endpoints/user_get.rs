//! Get user — <https://learn.microsoft.com/graph/api/user-get>
//!
//! `GET /v1.0/users/{email}?$select=id,displayName,mail,userPrincipalName`: does the mailbox's
//! user exist, and what is it called.

use reqwest::Method;
use url::Url;

use super::{graph_path, parse_json, set_query, GraphRequest, TransportRetry};
use crate::error::GraphError;
use crate::types::User;

pub fn request(base: &Url, email: &str) -> GraphRequest {
    let mut url = graph_path(base, &["v1.0", "users", email]);
    set_query(&mut url, &[("$select", "id,displayName,mail,userPrincipalName")]);
    GraphRequest::new("get user", Method::GET, url, TransportRetry::Idempotent)
}

pub fn parse(body: &[u8]) -> Result<User, GraphError> {
    parse_json("get user", body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::graph_base;

    #[test]
    fn request_and_parse() {
        let r = request(&graph_base(), "AdeleV@contoso.com");
        assert_eq!(r.method, Method::GET);
        assert_eq!(
            r.url.as_str(),
            "https://graph.microsoft.com/v1.0/users/AdeleV@contoso.com?$select=id,displayName,mail,userPrincipalName"
        );
        assert!(r.body.is_none());
        // The documented shape of a user (user-get, with $select).
        let u = parse(
            br#"{"@odata.context":"https://graph.microsoft.com/v1.0/$metadata#users(id,displayName,mail,userPrincipalName)/$entity",
                 "id":"87d349ed-44d7-43e1-9a83-5f2406dee5bd","displayName":"Adele Vance",
                 "mail":"AdeleV@contoso.com","userPrincipalName":"AdeleV@contoso.com"}"#,
        )
        .unwrap();
        assert_eq!(u.display_name.as_deref(), Some("Adele Vance"));
        assert_eq!(u.mail.as_deref(), Some("AdeleV@contoso.com"));
        assert_eq!(u.id.as_deref(), Some("87d349ed-44d7-43e1-9a83-5f2406dee5bd"));
    }
}
