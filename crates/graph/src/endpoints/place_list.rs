//! List places — <https://learn.microsoft.com/graph/api/place-list>
//!
//! `GET /v1.0/places/microsoft.graph.roomlist` (the organisation's room lists),
//! `GET /v1.0/places/{list}/microsoft.graph.roomlist/rooms` (the rooms of one) and
//! `GET /v1.0/places/microsoft.graph.room` (every room). Needs `Place.Read.All`. Pages
//! continue at `@odata.nextLink`.

use reqwest::Method;
use url::Url;

use super::{graph_path, parse_json, GraphRequest, TransportRetry};
use crate::error::GraphError;
use crate::types::{Collection, Place};

pub fn room_lists(base: &Url) -> GraphRequest {
    GraphRequest::new(
        "list room lists",
        Method::GET,
        graph_path(base, &["v1.0", "places", "microsoft.graph.roomlist"]),
        TransportRetry::Idempotent,
    )
}

pub fn rooms_of(base: &Url, room_list: &str) -> GraphRequest {
    let url = graph_path(base, &["v1.0", "places", room_list, "microsoft.graph.roomlist", "rooms"]);
    GraphRequest::new("list the rooms of a room list", Method::GET, url, TransportRetry::Idempotent)
}

pub fn rooms(base: &Url) -> GraphRequest {
    GraphRequest::new(
        "list rooms",
        Method::GET,
        graph_path(base, &["v1.0", "places", "microsoft.graph.room"]),
        TransportRetry::Idempotent,
    )
}

/// The next page (a validated `@odata.nextLink`).
pub fn request_next(next_link: Url) -> GraphRequest {
    GraphRequest::new("list places", Method::GET, next_link, TransportRetry::Idempotent)
}

pub fn parse(body: &[u8]) -> Result<Collection<Place>, GraphError> {
    parse_json("list places", body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::{example, graph_base};

    #[test]
    fn requests_match_the_documented_ones() {
        for (ours, file) in [
            (rooms(&graph_base()), "place-list/01-request.http"),
            (room_lists(&graph_base()), "place-list/02-request.http"),
            (rooms_of(&graph_base(), "bldg2@contoso.com"), "place-list/03-request.http"),
        ] {
            let Some(doc) = example(file) else { return };
            let documented = doc.start_line.split_whitespace().nth(1).unwrap().to_string();
            assert_eq!(ours.url.as_str(), documented, "{file}");
            assert_eq!(ours.method, Method::GET);
        }
    }

    #[test]
    fn documented_answers_parse_with_their_values() {
        let Some(doc) = example("place-list/01-response.http") else { return };
        let rooms = parse(doc.body.as_bytes()).unwrap().value;
        assert_eq!(rooms.len(), 2);
        assert_eq!(rooms[0].email_address.as_deref(), Some("cf100@contoso.com"));
        assert_eq!(rooms[0].display_name.as_deref(), Some("Conf Room 100"));
        // The page writes the capacity as a string; the schema says Int32: both are read.
        assert_eq!(rooms[0].capacity(), Some(50));
        assert_eq!(rooms[1].building.as_deref(), Some("2"));
        let Some(doc) = example("place-list/02-response.http") else { return };
        let lists = parse(doc.body.as_bytes()).unwrap().value;
        let names: Vec<_> = lists.iter().map(|l| l.display_name.as_deref().unwrap()).collect();
        assert_eq!(names, ["Building 1", "Building 2"]);
        assert_eq!(lists[1].email_address.as_deref(), Some("bldg2@contoso.com"));
        let Some(doc) = example("place-list/03-response.http") else { return };
        let in_list = parse(doc.body.as_bytes()).unwrap().value;
        assert_eq!(in_list[0].email_address.as_deref(), Some("cf200@contoso.com"));
        assert_eq!(in_list[0].capacity(), Some(40));
        assert_eq!(
            parse(br#"{"value":[{"emailAddress":"r@c.com","capacity":12}]}"#).unwrap().value[0].capacity(),
            Some(12)
        );
    }
}
