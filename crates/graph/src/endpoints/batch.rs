//! JSON batching — <https://learn.microsoft.com/graph/json-batching>
//!
//! `POST /v1.0/$batch` carries up to 20 requests, each with an `id`, its method, its URL
//! relative to the version (`/users/...`), its headers and its JSON body. Graph answers `200`
//! with one response per id, in any order, each with its own status: every inner request is
//! evaluated (and throttled) on its own. calbridge batches several changes to one mailbox in
//! one round trip; [`crate::GraphClient::send_batch`] sends a batch and retries the inner
//! requests that were throttled.

use std::collections::HashMap;

use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use reqwest::Method;
use serde::Deserialize;
use serde_json::{json, Value};
use url::Url;

use super::{graph_path, parse_json, GraphRequest, TransportRetry};
use crate::error::GraphError;

/// Graph's limit on requests in one batch.
pub const MAX_REQUESTS: usize = 20;
/// Graph runs at most this many of a batch's requests at a time.
pub const PARALLEL: usize = 4;

const OPERATION: &str = "JSON batch";

/// One inner answer, as if the request had been sent alone.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Answer {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

/// The batch of `items` (at most [`MAX_REQUESTS`], all under `base`'s version path). Inner
/// ids are the items' positions, from `"1"`. The batch may be sent again after a transport
/// failure only when every item may.
pub fn request(base: &Url, items: &[GraphRequest]) -> Result<GraphRequest, GraphError> {
    if items.is_empty() || items.len() > MAX_REQUESTS {
        return Err(GraphError::Refused {
            operation: OPERATION,
            message: format!("a batch holds 1 to {MAX_REQUESTS} requests, not {}", items.len()),
        });
    }
    let version = graph_path(base, &["v1.0"]);
    let prefix = version.path().trim_end_matches('/').to_string();
    let mut requests = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        super::check_same_origin(item.operation, base, item.url.as_str())?;
        let path = item.url.path();
        let Some(relative) = path.strip_prefix(&prefix).filter(|r| r.starts_with('/')) else {
            return Err(GraphError::Refused {
                operation: OPERATION,
                message: format!("{} is not under {prefix}/ and cannot be batched", item.operation),
            });
        };
        let url = match item.url.query() {
            Some(q) => format!("{relative}?{q}"),
            None => relative.to_string(),
        };
        // Repeated headers (`Prefer`) are joined with commas, as HTTP allows.
        let mut headers: Vec<(String, String)> = Vec::new();
        for (name, value) in &item.headers {
            match headers.iter_mut().find(|(n, _)| n.eq_ignore_ascii_case(name)) {
                Some((_, v)) => {
                    v.push_str(", ");
                    v.push_str(value);
                }
                None => headers.push((name.to_string(), value.clone())),
            }
        }
        let mut entry = json!({ "id": (i + 1).to_string(), "method": item.method.as_str(), "url": url });
        if !headers.is_empty() {
            entry["headers"] = Value::Object(headers.into_iter().map(|(n, v)| (n, Value::String(v))).collect());
        }
        if let Some(body) = &item.body {
            entry["body"] = serde_json::from_slice(body).map_err(|e| GraphError::Refused {
                operation: OPERATION,
                message: format!("{} has a body that is not JSON and cannot be batched: {e}", item.operation),
            })?;
        }
        requests.push(entry);
    }
    let retry = items.iter().map(|i| i.retry).min_by_key(|r| match r {
        TransportRetry::Never => 0,
        TransportRetry::Once => 1,
        TransportRetry::Idempotent => 2,
    });
    let url = graph_path(base, &["v1.0", "$batch"]);
    Ok(GraphRequest::new(OPERATION, Method::POST, url, retry.unwrap_or(TransportRetry::Never))
        .json_body(&json!({ "requests": requests })))
}

#[derive(Deserialize)]
struct Responses {
    responses: Vec<Response>,
}

#[derive(Deserialize)]
struct Response {
    id: String,
    status: u16,
    #[serde(default)]
    headers: HashMap<String, Value>,
    #[serde(default)]
    body: Option<Value>,
}

/// The answers to a batch of `count` requests, in the requests' order. An answer missing, or
/// one for an id the batch did not hold, makes the whole batch unreadable.
pub fn parse(body: &[u8], count: usize) -> Result<Vec<Answer>, GraphError> {
    let parsed: Responses = parse_json(OPERATION, body)?;
    let mut answers: Vec<Option<Answer>> = vec![None; count];
    for r in parsed.responses {
        let slot =
            r.id.parse::<usize>().ok().filter(|i| (1..=count).contains(i)).ok_or_else(|| GraphError::Decode {
                operation: OPERATION,
                message: format!("Graph answered for request id {:?}, which the batch did not hold", r.id),
            })?;
        let mut headers = HeaderMap::new();
        for (name, value) in r.headers {
            let value = match value {
                Value::String(s) => s,
                other => other.to_string(),
            };
            if let (Ok(n), Ok(v)) = (HeaderName::from_bytes(name.as_bytes()), HeaderValue::from_str(&value)) {
                headers.append(n, v);
            }
        }
        let body = match r.body {
            None | Some(Value::Null) => Vec::new(),
            // A body that is not JSON comes back as a string (base64 for binary content).
            Some(Value::String(s)) => s.into_bytes(),
            Some(v) => serde_json::to_vec(&v).expect("JSON values serialise"),
        };
        answers[slot - 1] = Some(Answer { status: r.status, headers, body });
    }
    answers
        .into_iter()
        .enumerate()
        .map(|(i, a)| {
            a.ok_or_else(|| GraphError::Decode {
                operation: OPERATION,
                message: format!("Graph's answer to the batch lacks request {}", i + 1),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::endpoints::{event_delete, event_update};
    use crate::test_support::{example, graph_base};

    #[test]
    fn requests_become_relative_entries_with_their_headers_and_bodies() {
        let base = graph_base();
        let update =
            event_update::request(&base, "a@contoso.com", "AAMk=", "W/\"1\"", &crate::types::Event::default()).unwrap();
        let delete = event_delete::request(&base, "a@contoso.com", "AAMk2");
        let r = request(&base, &[update, delete]).unwrap();
        assert_eq!(r.method, Method::POST);
        assert_eq!(r.url.as_str(), "https://graph.microsoft.com/v1.0/$batch");
        assert_eq!(r.retry, TransportRetry::Never, "a PATCH inside: never sent twice");
        let body = r.body_json().unwrap();
        let first = &body["requests"][0];
        assert_eq!(first["id"], "1");
        assert_eq!(first["method"], "PATCH");
        assert_eq!(first["url"], "/users/a@contoso.com/events/AAMk=");
        assert_eq!(first["headers"]["If-Match"], "W/\"1\"");
        assert_eq!(first["headers"]["Content-Type"], "application/json");
        assert_eq!(
            first["headers"]["Prefer"], "outlook.timezone=\"UTC\", outlook.body-content-type=\"text\"",
            "repeated headers are joined"
        );
        assert!(first["body"].is_object());
        assert_eq!(body["requests"][1]["method"], "DELETE");
        assert!(body["requests"][1].get("body").is_none());
        let deletes: Vec<GraphRequest> =
            (0..2).map(|i| event_delete::request(&base, "a@contoso.com", &i.to_string())).collect();
        assert_eq!(request(&base, &deletes).unwrap().retry, TransportRetry::Idempotent);
    }

    #[test]
    fn sizes_and_foreign_urls_are_refused_before_sending() {
        let base = graph_base();
        assert!(request(&base, &[]).is_err());
        let many: Vec<GraphRequest> = (0..21).map(|i| event_delete::request(&base, "a@x", &i.to_string())).collect();
        assert!(request(&base, &many).unwrap_err().to_string().contains("1 to 20"));
        let other = Url::parse("https://graph.example.org/v1.0/").unwrap();
        let foreign = event_delete::request(&other, "a@x", "1");
        assert!(request(&base, &[foreign]).is_err());
    }

    #[test]
    fn answers_are_put_back_in_request_order() {
        let body = br#"{"responses":[
            {"id":"2","status":204,"headers":{}},
            {"id":"1","status":429,"headers":{"Retry-After":"7","Content-Type":"application/json"},
             "body":{"error":{"code":"ApplicationThrottled","message":"slow down"}}}]}"#;
        let answers = parse(body, 2).unwrap();
        assert_eq!(answers[0].status, 429);
        assert_eq!(answers[0].headers["retry-after"], "7");
        assert!(String::from_utf8_lossy(&answers[0].body).contains("ApplicationThrottled"));
        assert_eq!(answers[1].status, 204);
        assert!(answers[1].body.is_empty());
        assert!(parse(body, 3).unwrap_err().to_string().contains("lacks request 3"));
        assert!(parse(body, 1).unwrap_err().to_string().contains("did not hold"));
    }

    #[test]
    fn microsofts_example_answer_parses() {
        let Some(doc) = example("json-batching/01-response.http") else { return };
        assert_eq!(doc.status(), 200);
        let answers = parse(doc.body.as_bytes(), 5).unwrap();
        assert_eq!(answers[0].status, 200);
        assert_eq!(answers[1].status, 403);
        assert!(answers.iter().all(|a| a.status >= 200));
    }
}
