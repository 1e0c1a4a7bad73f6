//! # calbridge-graph — Exchange Online over Microsoft Graph
//!
//! The Graph adapter: it implements calbridge-core's [`Remote`](calbridge_core::remote::Remote)
//! seam for one connection (an app registration with application permissions, client
//! credentials), and offers the typed Graph calls later callers need (`getSchedule`, users).
//!
//! ## Files
//!
//! | file | what |
//! |---|---|
//! | `types.rs` | Graph v1.0 wire types, names verbatim (`@odata.etag`, `showAs`, `seriesMasterId`); shared with the simulator |
//! | `endpoints/*.rs` | one file per endpoint: `request()` builds method, URL, headers and body; `parse()` reads the answer. Offline-testable |
//! | `auth.rs` | client credentials tokens, cached in memory, renewed early, single-flight; the [`Clock`](auth::Clock) |
//! | `client.rs` | [`GraphClient`](client::GraphClient): bearer token, `client-request-id`, throttling and retries, per-mailbox concurrency and request budget, JSON batches (`send_batch`), typed calls |
//! | `convert.rs` | the only bridge wire ↔ core (events, provenance, time zones, enums) |
//! | `zones.rs` | time zone names Graph writes (IANA, Windows, `tzone://Microsoft/Utc`) → `chrono_tz` |
//! | `remote.rs` | [`GraphRemote`](remote::GraphRemote), the `Remote` implementation |
//! | `connector.rs` | [`GraphConnector`](connector::GraphConnector), the `Connector`: adapters per stored connection, and the connection test (token, permissions, each probe mailbox) |
//! | `error.rs` | [`GraphError`](error::GraphError) and its classification |
//!
//! ## Error classification
//!
//! Every failure is a [`GraphError`](error::GraphError) that says what failed, why and what to
//! do (never with the client secret or the token in it). It is classified once, into the
//! engine's [`RemoteError`](calbridge_core::remote::RemoteError), first match wins:
//!
//! | Graph says | class |
//! |---|---|
//! | token endpoint 4xx (AADSTS…) | `Auth`, hint by AADSTS code: 7000215 wrong secret (paste the Value, not the Secret ID), 7000222 expired secret, 700016 client id not in tenant, 90002 tenant wrong, 1002012/`invalid_scope` scope must end in `/.default` |
//! | token endpoint 429 / 5xx | `Throttled` / `Transient` |
//! | 410, or code `syncStateNotFound` / `resyncRequired` / `syncStateInvalid` / `fullSyncRequired` | `CursorExpired` |
//! | 429, 503 (+ `Retry-After`) | `Throttled { retry_after }` (after the client's own retries) |
//! | 412, or code `ErrorIrresolvableConflict` | `VersionConflict` |
//! | 404, or code `ErrorItemNotFound` / `MailboxNotEnabledForRESTAPI` | `NotFound` |
//! | 401, 403 | `Auth`; 403 `ErrorAccessDenied` → grant Calendars.ReadWrite with admin consent or check the application access policy |
//! | no answer, a body that broke off, 408, other 5xx | `Transient` |
//! | an answer that is not Graph JSON, a foreign-host link, bad settings, an update without a version (refused, not sent) | `Permanent` |
//! | other 4xx | `Permanent` |
//!
//! ## Tokens
//!
//! `POST {authority_url}/{tenant}/oauth2/v2.0/token` (`grant_type=client_credentials`, scope
//! `https://graph.microsoft.com/.default`, or the national cloud's own for `graph_url`s there).
//! One cache per client, shared by its clones; a token is renewed when less than
//! `min(5 min, 10% of its lifetime)` remains; concurrent callers wait on one renewal; a 401
//! from Graph drops the token and the request is sent once more with a new one.
//!
//! ## Requests
//!
//! At most `mailbox_concurrency` (4) in flight per mailbox. `429`/`503` are retried after
//! `Retry-After` (seconds or HTTP date; else 1, 2, 4 … s), up to `max_attempts` (5) and
//! `max_retry_wait` in total. Without an answer, only safe requests are retried: GET and
//! DELETE, a create carrying a `transactionId` once (Graph deduplicates it), anything that
//! never connected. Event reads carry `Prefer: outlook.timezone="UTC"` and
//! `Prefer: outlook.body-content-type="text"`; delta also `Prefer: odata.maxpagesize=N`.
//!
//! ## Paging, delta and cursors
//!
//! `changes` without a cursor starts a `calendarView/delta` round over the window
//! (`startDateTime`/`endDateTime`, RFC 3339 UTC). The cursor is the whole
//! `@odata.nextLink` (more pages, `done = false`) or `@odata.deltaLink` (round complete,
//! `done = true`), fetched as it is next time. A link on another scheme, host or port than
//! `graph_url` is refused, both when it arrives and when it is followed: the token never
//! leaves for another host. An expired state token (410) is `CursorExpired`: the engine
//! re-lists and reconciles. Delta does not expand extended properties, so calbridge's
//! provenance tag is also written to `transactionId` on create and read back from there.

pub mod auth;
pub mod client;
pub mod connector;
pub mod convert;
pub mod endpoints;
pub mod error;
pub mod recurrence;
pub mod remote;
pub mod types;
pub mod zones;

#[cfg(test)]
mod test_support;

pub use client::{GraphClient, GraphOptions};
pub use connector::GraphConnector;
pub use error::GraphError;
pub use remote::GraphRemote;
