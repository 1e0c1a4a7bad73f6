//! Extractors whose rejections are problem details: a body that is not JSON (400), not sent
//! as JSON (415), or that does not fit the resource (422, naming the field); a path or query
//! parameter that does not parse (400, naming it).

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::StatusCode;
use serde::de::DeserializeOwned;

use crate::error::{ApiError, FieldError};

/// A JSON body.
pub struct Json<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for Json<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(v)) => Ok(Json(v)),
            Err(rejection) => Err(json_rejection(rejection)),
        }
    }
}

fn clean(text: &str) -> String {
    for prefix in
        ["Failed to deserialize the JSON body into the target type: ", "Failed to parse the request body as JSON: "]
    {
        if let Some(rest) = text.strip_prefix(prefix) {
            return rest.to_string();
        }
    }
    text.to_string()
}

/// `settings.rooms[0]` as a JSON pointer: `/settings/rooms/0`.
fn pointer(path: &str) -> String {
    let mut out = String::new();
    for part in path.split('.') {
        for piece in part.split('[') {
            let piece = piece.trim_end_matches(']');
            if !piece.is_empty() {
                out.push('/');
                out.push_str(piece);
            }
        }
    }
    if out.is_empty() {
        "/".into()
    } else {
        out
    }
}

fn json_rejection(r: JsonRejection) -> ApiError {
    match r {
        JsonRejection::MissingJsonContentType(_) => ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "media-type",
            "the body must be JSON: send it with the header Content-Type: application/json",
        ),
        JsonRejection::JsonSyntaxError(e) => ApiError::bad_request(format!(
            "the body is not valid JSON: {}. Fix: send one JSON object as the API reference (/openapi.json) describes",
            clean(&e.body_text())
        )),
        JsonRejection::JsonDataError(e) => {
            let text = clean(&e.body_text());
            let (field, message) = match text.split_once(": ") {
                Some((path, msg)) if !path.contains(' ') => (pointer(path), msg.to_string()),
                _ => ("/".to_string(), text.clone()),
            };
            ApiError::invalid(vec![FieldError {
                field,
                message: format!("{message}. Fix: see the request schema in /openapi.json"),
            }])
        }
        other => {
            ApiError::new(other.status(), "bad-request", format!("the body could not be read: {}", other.body_text()))
        }
    }
}

/// Path parameters.
pub struct Path<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for Path<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        match axum::extract::Path::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(v)) => Ok(Path(v)),
            Err(PathRejection::FailedToDeserializePathParams(e)) => Err(ApiError::bad_request(format!(
                "a path parameter is not valid: {}. Fix: ids are the positive integers (or, for events and webhooks, \
                 the strings) the API returned",
                e.body_text().trim_start_matches("Invalid URL: ")
            ))),
            Err(other) => Err(ApiError::bad_request(other.body_text())),
        }
    }
}

/// Query parameters.
pub struct Query<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for Query<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Query(v)) => Ok(Query(v)),
            Err(QueryRejection::FailedToDeserializeQueryString(e)) => Err(ApiError::bad_request(format!(
                "a query parameter is not valid: {}. Fix: see the operation's parameters in /openapi.json",
                e.body_text().trim_start_matches("Failed to deserialize query string: ")
            ))),
            Err(other) => Err(ApiError::bad_request(other.body_text())),
        }
    }
}

/// Collects field errors, then fails with all of them at once.
#[derive(Default)]
pub struct Check(Vec<FieldError>);

impl Check {
    pub fn fail(&mut self, field: &str, message: impl Into<String>) {
        self.0.push(FieldError { field: field.into(), message: message.into() });
    }
    pub fn require(&mut self, ok: bool, field: &str, message: impl Into<String>) {
        if !ok {
            self.fail(field, message);
        }
    }
    pub fn finish(self) -> Result<(), ApiError> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(ApiError::invalid(self.0))
        }
    }
}
