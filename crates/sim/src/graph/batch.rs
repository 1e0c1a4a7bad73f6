//! JSON batching — <https://learn.microsoft.com/graph/json-batching>
//!
//! `POST /v1.0/$batch` with `{"requests": [{"id", "method", "url", "headers"?, "body"?,
//! "dependsOn"?}]}` answers `200` with `{"responses": [{"id", "status", "headers", "body"?}]}`,
//! whatever the inner requests' fates. As Graph does:
//! - at most 20 requests; ids unique; `url` relative to the version (`/users/...`); a `body`
//!   needs a `Content-Type` header; otherwise the whole batch is a `400 BadRequest`;
//! - each inner request is a Graph request of its own: it passes the same checks as one sent
//!   alone (token, roles, the mailbox's concurrency limit, injected faults and latency), so it
//!   can be throttled (`429`) on its own;
//! - at most four inner requests run at a time, in any order; `dependsOn` orders them, and a
//!   request whose dependency failed answers `424 Failed Dependency`;
//! - responses come back in any order (here: finishing order), matched by `id`.
//!
//! An inner mutation whose answer is dropped (fault injection) drops the whole batch's
//! answer: the change was applied and the client hears nothing.

use std::collections::{HashMap, HashSet};

use axum::body::{to_bytes, Body, Bytes};
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, Method, Request};
use axum::response::{IntoResponse, Response};
use axum::Router;
use serde::Deserialize;
use serde_json::{json, Map, Value};
use tower::ServiceExt;

use crate::state::ApiError;
use crate::Simulator;

/// Graph's limit on requests in one batch.
pub const MAX_REQUESTS: usize = 20;
/// Graph dispatches at most this many of a batch's requests at a time.
pub const PARALLEL: usize = 4;
/// The largest inner answer read back (a calendarView page is far smaller).
const MAX_INNER_BODY: usize = 16 * 1024 * 1024;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct BatchRequest {
    requests: Vec<Item>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Item {
    id: String,
    method: String,
    url: String,
    #[serde(default)]
    headers: Map<String, Value>,
    #[serde(default)]
    body: Option<Value>,
    #[serde(default)]
    depends_on: Vec<String>,
}

/// Answers a batch: checks its shape, then runs its requests through `inner` (the Graph
/// routes with their middleware), carrying the outer request's `Authorization`.
pub async fn handler(sim: Simulator, inner: Router, headers: HeaderMap, body: Bytes) -> Response {
    if let Err(e) = crate::server::authenticate(&sim, &headers) {
        return e.into_response();
    }
    let latency = sim.inner.faults.latency();
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    let items = match parse(&body) {
        Ok(items) => items,
        Err(e) => return e.into_response(),
    };
    let auth = headers.get(header::AUTHORIZATION).cloned();
    let mut answers: Vec<Value> = Vec::with_capacity(items.len());
    let mut failed: HashSet<String> = HashSet::new();
    let mut done: HashSet<String> = HashSet::new();
    let mut pending: Vec<Item> = items;
    while !pending.is_empty() {
        // Requests whose dependencies have all answered, at most four at a time.
        let (ready, rest): (Vec<Item>, Vec<Item>) =
            pending.into_iter().partition(|i| i.depends_on.iter().all(|d| done.contains(&d.to_ascii_lowercase())));
        pending = rest;
        let (blocked, runnable): (Vec<Item>, Vec<Item>) =
            ready.into_iter().partition(|i| i.depends_on.iter().any(|d| failed.contains(&d.to_ascii_lowercase())));
        for item in blocked {
            let key = item.id.to_ascii_lowercase();
            answers.push(json!({
                "id": item.id,
                "status": 424,
                "headers": {"Content-Type": "application/json"},
                "body": {"error": {"code": "FailedDependency", "message": "A request this request depends on failed."}},
            }));
            failed.insert(key.clone());
            done.insert(key);
        }
        for wave in runnable.chunks(PARALLEL) {
            let mut tasks = tokio::task::JoinSet::new();
            for item in wave.iter().cloned() {
                let (sim, inner, auth) = (sim.clone(), inner.clone(), auth.clone());
                tasks.spawn(async move {
                    let answer = run(&sim, inner, &item, auth).await;
                    (item.id, answer)
                });
            }
            while let Some(joined) = tasks.join_next().await {
                let Ok((id, answer)) = joined else { return crate::server::abort_response() };
                let Some((status, answer)) = answer else {
                    // The inner answer was dropped after its change was applied.
                    return crate::server::abort_response();
                };
                let key = id.to_ascii_lowercase();
                if status >= 400 {
                    failed.insert(key.clone());
                }
                done.insert(key);
                answers.push(answer);
            }
        }
    }
    axum::Json(json!({ "responses": answers })).into_response()
}

fn parse(body: &[u8]) -> Result<Vec<Item>, ApiError> {
    let batch: BatchRequest = serde_json::from_slice(body)
        .map_err(|e| ApiError::new(400, "BadRequest", format!("Invalid batch payload format: {e}.")))?;
    if batch.requests.is_empty() {
        return Err(ApiError::new(400, "BadRequest", "Invalid batch payload format: no requests."));
    }
    if batch.requests.len() > MAX_REQUESTS {
        return Err(ApiError::new(
            400,
            "BadRequest",
            format!("The number of batch requests ({}) exceeds the limit of {MAX_REQUESTS}.", batch.requests.len()),
        ));
    }
    let mut ids = HashSet::new();
    for r in &batch.requests {
        if r.id.is_empty() || !ids.insert(r.id.to_ascii_lowercase()) {
            return Err(ApiError::new(400, "BadRequest", format!("Batch request ids must be unique: '{}'.", r.id)));
        }
        if Method::from_bytes(r.method.to_ascii_uppercase().as_bytes()).is_err() {
            return Err(ApiError::new(
                400,
                "BadRequest",
                format!("Invalid method '{}' in request {}.", r.method, r.id),
            ));
        }
        if r.url.is_empty() || r.url.contains("://") {
            return Err(ApiError::new(
                400,
                "BadRequest",
                format!("Request {}: the url must be relative to the version, such as /users/{{id}}.", r.id),
            ));
        }
        if r.body.is_some() && !r.headers.keys().any(|k| k.eq_ignore_ascii_case("content-type")) {
            return Err(ApiError::new(
                400,
                "BadRequest",
                format!("Request {}: a request with a body needs a Content-Type header.", r.id),
            ));
        }
    }
    for r in &batch.requests {
        if let Some(d) = r.depends_on.iter().find(|d| !ids.contains(&d.to_ascii_lowercase())) {
            return Err(ApiError::new(
                400,
                "BadRequest",
                format!("Request {} depends on '{d}', which is not in the batch.", r.id),
            ));
        }
    }
    Ok(batch.requests)
}

/// Runs one inner request; `None` when its answer was dropped (fault injection).
async fn run(sim: &Simulator, inner: Router, item: &Item, auth: Option<HeaderValue>) -> Option<(u16, Value)> {
    let path = if item.url.starts_with('/') { item.url.clone() } else { format!("/{}", item.url) };
    let method = Method::from_bytes(item.method.to_ascii_uppercase().as_bytes()).unwrap_or(Method::GET);
    let full = format!("/v1.0{path}");
    let (kind, _) = crate::server::classify(&method, full.split('?').next().unwrap_or_default());
    sim.inner.stats.batched(kind);
    let body = match &item.body {
        Some(Value::String(s)) => Body::from(s.clone()),
        Some(v) => Body::from(serde_json::to_vec(v).unwrap_or_default()),
        None => Body::empty(),
    };
    let mut req = match Request::builder().method(method).uri(full).body(body) {
        Ok(r) => r,
        Err(e) => {
            let error = json!({"error": {"code": "BadRequest", "message": format!("Invalid request url: {e}.")}});
            return Some((400, json!({ "id": item.id, "status": 400, "body": error })));
        }
    };
    for (name, value) in &item.headers {
        let value = match value {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        if let (Ok(n), Ok(v)) = (HeaderName::from_bytes(name.as_bytes()), HeaderValue::from_str(&value)) {
            req.headers_mut().append(n, v);
        }
    }
    if let Some(auth) = auth {
        req.headers_mut().insert(header::AUTHORIZATION, auth);
    }
    let resp = match inner.oneshot(req).await {
        Ok(r) => r,
        Err(never) => match never {},
    };
    let status = resp.status().as_u16();
    let mut headers: HashMap<String, String> = HashMap::new();
    for (name, value) in resp.headers() {
        if let Ok(v) = value.to_str() {
            headers.insert(canonical(name.as_str()), v.to_string());
        }
    }
    let bytes = to_bytes(resp.into_body(), MAX_INNER_BODY).await.ok()?;
    let mut answer = json!({ "id": item.id, "status": status, "headers": headers });
    if !bytes.is_empty() {
        answer["body"] = serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
    }
    Some((status, answer))
}

/// `content-type` → `Content-Type`, as Graph writes inner headers.
fn canonical(name: &str) -> String {
    name.split('-')
        .map(|part| {
            let mut c = part.chars();
            match c.next() {
                Some(first) => first.to_ascii_uppercase().to_string() + c.as_str(),
                None => String::new(),
            }
        })
        .collect::<Vec<_>>()
        .join("-")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shape_is_checked_as_graph_does() {
        let ok = br#"{"requests":[{"id":"1","method":"GET","url":"/users/a"},{"id":"2","dependsOn":["1"],"method":"PATCH","url":"users/a","headers":{"Content-Type":"application/json"},"body":{"x":1}}]}"#;
        assert_eq!(parse(ok).unwrap().len(), 2);
        let many = format!(
            r#"{{"requests":[{}]}}"#,
            (1..=21).map(|i| format!(r#"{{"id":"{i}","method":"GET","url":"/users"}}"#)).collect::<Vec<_>>().join(",")
        );
        assert!(parse(many.as_bytes()).unwrap_err().message.contains("exceeds the limit of 20"));
        let dup = br#"{"requests":[{"id":"1","method":"GET","url":"/a"},{"id":"1","method":"GET","url":"/b"}]}"#;
        assert!(parse(dup).unwrap_err().message.contains("unique"));
        let no_type = br#"{"requests":[{"id":"1","method":"POST","url":"/a","body":{}}]}"#;
        assert!(parse(no_type).unwrap_err().message.contains("Content-Type"));
        let absolute = br#"{"requests":[{"id":"1","method":"GET","url":"https://graph.microsoft.com/v1.0/users"}]}"#;
        assert!(parse(absolute).unwrap_err().message.contains("relative"));
        let dangling = br#"{"requests":[{"id":"1","dependsOn":["9"],"method":"GET","url":"/a"}]}"#;
        assert!(parse(dangling).unwrap_err().message.contains("not in the batch"));
        assert_eq!(parse(b"{}").unwrap_err().status, 400);
    }

    #[test]
    fn header_names_are_written_as_graph_writes_them() {
        assert_eq!(canonical("content-type"), "Content-Type");
        assert_eq!(canonical("retry-after"), "Retry-After");
        assert_eq!(canonical("etag"), "Etag");
    }
}
