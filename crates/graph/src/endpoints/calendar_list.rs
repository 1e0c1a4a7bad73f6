//! List calendars — <https://learn.microsoft.com/graph/api/user-list-calendars>
//!
//! `GET /v1.0/users/{email}/calendars?$select=id,name,isDefaultCalendar,canEdit,owner`; pages
//! continue at `@odata.nextLink`.

use reqwest::Method;
use url::Url;

use super::{graph_path, parse_json, set_query, GraphRequest, TransportRetry};
use crate::error::GraphError;
use crate::types::{Calendar, Collection};

pub fn request(base: &Url, email: &str) -> GraphRequest {
    let mut url = graph_path(base, &["v1.0", "users", email, "calendars"]);
    set_query(&mut url, &[("$select", "id,name,isDefaultCalendar,canEdit,owner")]);
    GraphRequest::new("list calendars", Method::GET, url, TransportRetry::Idempotent)
}

/// The next page (a validated `@odata.nextLink`).
pub fn request_next(next_link: Url) -> GraphRequest {
    GraphRequest::new("list calendars", Method::GET, next_link, TransportRetry::Idempotent)
}

pub fn parse(body: &[u8]) -> Result<Collection<Calendar>, GraphError> {
    parse_json("list calendars", body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::graph_base;

    #[test]
    fn request_and_parse() {
        let r = request(&graph_base(), "room1@contoso.com");
        assert_eq!(r.method, Method::GET);
        assert_eq!(
            r.url.as_str(),
            "https://graph.microsoft.com/v1.0/users/room1@contoso.com/calendars?$select=id,name,isDefaultCalendar,canEdit,owner"
        );
        // The documented shape of a calendar collection (user-list-calendars).
        let c = parse(
            br#"{"@odata.context":"https://graph.microsoft.com/v1.0/$metadata#users('room1%40contoso.com')/calendars",
                 "value":[{"id":"AAMkAGViNDU7zAAAAAGtlAAA=","name":"Calendar","color":"auto","isDefaultCalendar":true,
                           "changeKey":"nfZyf7VcrEKLNoU37KWlkQAAA0x0+w==","canShare":true,"canViewPrivateItems":true,
                           "canEdit":true,"owner":{"name":"Room 1","address":"room1@contoso.com"}},
                          {"id":"AAMkAGViNDU7zAAAAAGtmAAA=","name":"Birthdays","isDefaultCalendar":false,"canEdit":false}]}"#,
        )
        .unwrap();
        assert_eq!(c.value.len(), 2);
        assert_eq!(c.value[0].is_default_calendar, Some(true));
        assert_eq!(c.value[0].owner.as_ref().and_then(|o| o.name.as_deref()), Some("Room 1"));
        assert_eq!(c.value[1].name.as_deref(), Some("Birthdays"));
        assert!(c.next_link.is_none());
    }
}
