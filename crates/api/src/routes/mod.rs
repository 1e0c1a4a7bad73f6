//! The routes, one file per resource. Each handler is annotated for the OpenAPI document.

use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::Router;

use crate::console;
use crate::error::ApiError;
use crate::ApiState;

pub mod availability;
pub mod calendars;
pub mod connections;
pub mod events;
pub mod sessions;
pub mod sync;
pub mod system;
pub mod validate;
pub mod webhooks;

/// One log line per request: method, path, status and time taken. Never headers (they carry
/// the API key) or the query.
async fn log_request(req: axum::extract::Request, next: axum::middleware::Next) -> axum::response::Response {
    let (method, path) = (req.method().clone(), req.uri().path().to_string());
    let started = std::time::Instant::now();
    let res = next.run(req).await;
    let ms = started.elapsed().as_millis() as u64;
    if res.status().is_server_error() {
        tracing::warn!(%method, %path, status = res.status().as_u16(), ms, "request failed");
    } else {
        tracing::info!(%method, %path, status = res.status().as_u16(), ms, "request");
    }
    res
}

pub fn router(state: ApiState) -> Router {
    Router::new()
        .route("/", get(console::root))
        .route("/ui", get(console::root))
        .route("/ui/", get(console::index))
        .route("/ui/app.js", get(console::app_js))
        .route("/ui/app.css", get(console::app_css))
        .route("/ui/login", post(console::login))
        .route("/ui/session", get(console::session))
        .route("/ui/logout", post(console::logout))
        .route("/healthz", get(system::healthz))
        .route(crate::notifications::GRAPH_PATH, post(crate::notifications::receive))
        .route("/openapi.json", get(system::openapi))
        .route("/metrics", get(system::metrics))
        .route("/connections", get(connections::list).post(connections::create))
        .route("/connections/{id}", get(connections::read).put(connections::replace).delete(connections::delete))
        .route("/connections/{id}/test", post(connections::test))
        .route("/connections/{id}/rooms/import", post(connections::import_rooms))
        .route("/connections/{id}/sync", post(sync::sync_connection))
        .route("/sites", get(calendars::list_sites).post(calendars::create_site))
        .route("/sites/{id}", get(calendars::read_site).delete(calendars::delete_site))
        .route("/calendars", get(calendars::list).post(calendars::link))
        .route("/calendars/{id}", get(calendars::read).put(calendars::replace).delete(calendars::unlink))
        .route("/calendars/{id}/verify", post(calendars::verify))
        .route("/calendars/{id}/events", get(events::list).post(events::create))
        .route("/calendars/{id}/sync", get(sync::calendar_status).post(sync::sync_calendar))
        .route("/events/{id}", get(events::read).put(events::replace).delete(events::delete))
        .route("/sessions", post(sessions::create))
        .route("/sessions/{id}", get(sessions::read).put(sessions::replace).delete(sessions::delete))
        .route("/availability", post(availability::busy))
        .route("/availability/free-slots", post(availability::free_slots))
        .route("/sync/status", get(sync::statuses))
        .route("/webhooks", get(webhooks::list).post(webhooks::create))
        .route("/webhooks/{id}", get(webhooks::read).delete(webhooks::delete))
        .layer(axum::middleware::from_fn(log_request))
        .fallback(|| async {
            ApiError::new(StatusCode::NOT_FOUND, "not-found", "no such resource; the API reference is at /openapi.json")
        })
        .with_state(state)
}
