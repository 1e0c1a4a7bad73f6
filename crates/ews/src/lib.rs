//! # calbridge-ews — Exchange Server (and Exchange Online) over EWS
//!
//! The EWS adapter. Its heart is [`wire`]: the XML of Exchange Web Services, mirrored from
//! Microsoft's schema (`messages.xsd`, `types.xsd`) with names verbatim (`ItemId`/`ChangeKey`,
//! `SyncState`, `LegacyFreeBusyStatus`), one file per operation.
//!
//! ## Files
//!
//! | file | what |
//! |---|---|
//! | `wire/xml.rs` | safe parsing (roxmltree: no DTD, size, node and nesting-depth limits, namespaces resolved) and a small writer |
//! | `wire/envelope.rs` | the SOAP envelope: `RequestServerVersion`, `ExchangeImpersonation`, `TimeZoneContext`, `ServerVersionInfo`, faults, response-message status |
//! | `wire/types.rs` | `ItemId`, folder references, `Mailbox`, `Attendee`, `CalendarItem` (as [`wire::types::Item`]), `Recurrence`, extended properties, property paths and shapes |
//! | `wire/ops/*.rs` | one file per operation: FindItem, GetItem, SyncFolderItems, CreateItem, UpdateItem, DeleteItem, GetUserAvailability, GetRoomLists, GetRooms, ResolveNames, GetFolder, ConvertId, Subscribe, GetStreamingEvents, GetEvents, Unsubscribe |
//! | `transport.rs` | HTTP/1.1 on connections calbridge holds itself (NTLM signs in a connection), TLS with rustls, the per-server concurrency limit |
//! | `ntlm.rs` | the NTLMv2 negotiate and authenticate messages |
//! | `oauth.rs` | app-only tokens for `https://outlook.office365.com/.default` |
//! | `client.rs` | [`client::EwsClient`]: the envelope headers (version, impersonation, UTC time zone context, `X-AnchorMailbox`), `ErrorServerBusy` back-off, one method per operation |
//! | `error.rs` | [`error::EwsError`] and its classification into the engine's `RemoteError`, with hints that name the missing role or right |
//! | `convert.rs` | calendar items ↔ calbridge's `EventData`; the provenance extended property |
//! | `remote.rs` | [`remote::EwsRemote`], the `Remote` seam: SyncFolderItems + GetItem, CreateItem, UpdateItem, DeleteItem; `watch` (see `streaming.rs`) |
//! | `streaming.rs` | [`streaming::EwsWatch`]: change notifications calbridge reads itself — streaming subscriptions over budgeted long-lived GetStreamingEvents connections, pull subscriptions read with GetEvents when streaming is refused, polling when subscriptions are |
//! | `connector.rs` | [`connector::EwsConnector`]: adapters for stored connections and the connection test |
//!
//! The adapter depends on calbridge-core (the model and the `Remote` seam) and, for the
//! identity platform's token client and the Windows time-zone table, on calbridge-graph.
//!
//! The wire module depends on nothing of calbridge's, so the simulator compiles the same
//! files (it must not depend on calbridge-core). Each type can be written and parsed: the
//! client writes requests and parses answers, the simulator parses requests and writes
//! answers. Tests validate both directions against Microsoft's schema and parse every
//! documented example of these operations.
//!
//! ## Why roxmltree
//!
//! EWS answers mix prefixes, default namespaces and per-element redeclarations; matching on
//! resolved namespaces is what makes a parser accept every server's spelling. roxmltree
//! resolves them, refuses DTDs by default (no entity expansion, so no billion-laughs) and
//! enforces a node limit; quick-xml's serde layer matches prefixed names instead.

pub mod client;
pub mod connector;
pub mod convert;
pub mod error;
mod ntlm;
pub mod oauth;
pub mod recurrence;
pub mod remote;
pub mod streaming;
#[doc(hidden)]
pub mod testing;
pub mod transport;
pub mod wire;

pub use client::{EwsClient, EwsOptions};
pub use connector::EwsConnector;
pub use remote::EwsRemote;
