//! The OpenAPI document, generated from the handlers' annotations (utoipa), then completed in
//! one place: the bearer-key security scheme on every operation but `/healthz`, and the
//! problem-details answers every operation can give (which status, and the one schema).

use std::sync::OnceLock;

use utoipa::openapi::path::Operation;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{ContentBuilder, OpenApi as Doc, Ref, ResponseBuilder};
use utoipa::OpenApi;

use crate::dto;
use crate::error::{FieldError, Problem, PROBLEM_JSON};
use crate::routes::{availability, calendars, connections, events, sessions, sync, system, webhooks};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "calbridge",
        description = "Keeps a business application's calendars in sync with Microsoft Exchange. \
                       Every operation but /healthz needs an API key: `Authorization: Bearer cbk_...`.",
        license(name = "Apache-2.0")
    ),
    paths(
        system::healthz,
        system::openapi,
        system::metrics,
        connections::list,
        connections::create,
        connections::read,
        connections::replace,
        connections::delete,
        connections::test,
        connections::import_rooms,
        calendars::list_sites,
        calendars::create_site,
        calendars::read_site,
        calendars::delete_site,
        calendars::list,
        calendars::link,
        calendars::read,
        calendars::replace,
        calendars::verify,
        calendars::unlink,
        events::list,
        events::create,
        events::read,
        events::replace,
        events::delete,
        sessions::create,
        sessions::read,
        sessions::replace,
        sessions::delete,
        availability::busy,
        availability::free_slots,
        sync::sync_calendar,
        sync::calendar_status,
        sync::sync_connection,
        sync::statuses,
        webhooks::list,
        webhooks::create,
        webhooks::read,
        webhooks::delete,
    ),
    components(schemas(Problem, FieldError, dto::Settings, connections::Disconnected))
)]
struct ApiDoc;

/// Statuses any operation may answer with problem details, and why.
const PROBLEMS: &[(&str, &str)] = &[
    ("400", "The request is malformed (bad JSON, a bad id or query parameter)"),
    ("401", "No API key, or an unknown one"),
    ("403", "The API key's scope does not allow this"),
    ("404", "No such resource"),
    ("409", "The request conflicts with the current state (a name in use, a read-only event, a stale version)"),
    ("413", "The body is larger than the server accepts (2 MB)"),
    ("415", "The body was not sent as application/json"),
    ("422", "The body is well-formed but invalid; `errors` names each field"),
    ("502", "Exchange failed the operation"),
    ("503", "The store is unavailable"),
];

fn complete(doc: &mut Doc) {
    let components = doc.components.get_or_insert_with(Default::default);
    components.add_security_scheme(
        "apiKey",
        SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).bearer_format("cbk_...").build()),
    );
    let keyed = SecurityRequirement::new("apiKey", Vec::<String>::new());
    let problem = ContentBuilder::new().schema(Some(Ref::from_schema_name("Problem"))).build();
    for (path, item) in doc.paths.paths.iter_mut() {
        let ops: [&mut Option<Operation>; 4] = [&mut item.get, &mut item.post, &mut item.put, &mut item.delete];
        for op in ops.into_iter().flatten() {
            if path != "/healthz" {
                op.security = Some(vec![keyed.clone()]);
                for (status, why) in PROBLEMS {
                    op.responses.responses.entry(status.to_string()).or_insert_with(|| {
                        ResponseBuilder::new().description(*why).content(PROBLEM_JSON, problem.clone()).build().into()
                    });
                }
            }
        }
    }
}

/// The document.
pub fn document() -> Doc {
    let mut doc = ApiDoc::openapi();
    complete(&mut doc);
    doc
}

/// The document as JSON, made once.
pub fn json() -> String {
    static JSON: OnceLock<String> = OnceLock::new();
    JSON.get_or_init(|| document().to_json().expect("the OpenAPI document serialises")).clone()
}
