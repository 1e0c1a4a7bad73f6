//! A connection's concurrency limit ("max threads") on the requests it has in flight.
//!
//! The limit is held by the connection's adapter, at the level of single HTTP requests: the
//! Graph and EWS clients built for a connection (through its [`Connector`], or with
//! `max_in_flight` set from `max_threads`) let at most `max_threads` requests be with
//! Exchange at once, over all of the connection's mailboxes and every use of it. A slot is
//! held from sending a request to the last byte of its answer; throttling waits, reading the
//! answer, planning and storing hold none, so the next request can go out meanwhile.
//! Streaming subscriptions (EWS) have a budget of their own.
//!
//! [`Engine::sync_connection`](crate::Engine::sync_connection) works on
//! [`CALENDARS_PER_SLOT`] calendars per slot, so that the slots stay busy while calendars
//! read, plan and store.
//!
//! [`Connector`]: calbridge_core::connector::Connector

/// Calendars a connection's sync works on at once, per slot of its limit: four, so that the
/// slots stay busy while other calendars' answers are read and stored (a request's answer
/// arrives later than its latency on a loaded machine; with two per slot, the 1,000-mailbox
/// initial sync kept its four slots busy only part of the time: docs/performance.md).
pub const CALENDARS_PER_SLOT: usize = 4;
