//! # calbridge-core — the domain, pure
//!
//! Everything calbridge *decides* lives here; everything it *does* lives elsewhere.
//!
//! - [`model`]: connections, sites, calendars (person / room / equipment, linked by SMTP
//!   address), events with their origin (local or Exchange), attendees, series identity and
//!   versions.
//! - [`policy`]: which events block time (free/busy policy) and what a reader may see of them
//!   ("busy only" masking, private events).
//! - [`sync`]: the vocabulary shared by the engine and the protocol adapters: sync records
//!   (the last state both sides agreed on), cursors, windows, remote items and changes.
//! - [`planner`]: the three-way sync planner. Given the local state, the last synced state
//!   and what Exchange reported, it returns a [`planner::Plan`]: a printable list of actions.
//!   Planning never performs I/O; the engine applies plans.
//! - [`recurrence`] and [`series`]: recurring series (the protocol-neutral rule, RRULE, and
//!   expansion into the instances calbridge keeps), [`zones`]: Windows ↔ IANA time zones.
//! - [`availability`]: merged busy intervals and free-slot search.
//! - [`connector`]: how a stored connection becomes a `Remote`, and its diagnosis (checks with
//!   hints), implemented per connection kind by the protocol adapters.
//! - [`remote`] and [`store`]: the two seams. `Remote` is implemented by the Graph and EWS
//!   adapters, `Store` by SQLite and PostgreSQL. Their errors are classified here so the
//!   engine only ever sees a class, never a protocol detail. Change notifications fit the
//!   `Remote` seam in two styles: push (Graph posts to calbridge: subscribe, renew,
//!   unsubscribe) and pull (EWS: `Remote::watch` returns a `Watch` yielding `WatchEvent`s).
//!
//! Rules of this crate: no tokio, reqwest, sqlx, axum or hyper (CI checks it); no clock and
//! no randomness — time and ids are parameters, so tests control them.

pub mod availability;
pub mod connector;
pub mod hash;
pub mod model;
pub mod planner;
pub mod policy;
pub mod recurrence;
pub mod remote;
pub mod series;
pub mod store;
pub mod sync;
pub mod zones;

pub use model::*;
