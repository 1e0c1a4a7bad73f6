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
//! | `wire/xml.rs` | safe parsing (roxmltree: no DTD, size and node limits, namespaces resolved) and a small writer |
//! | `wire/envelope.rs` | the SOAP envelope: `RequestServerVersion`, `ExchangeImpersonation`, `TimeZoneContext`, `ServerVersionInfo`, faults, response-message status |
//! | `wire/types.rs` | `ItemId`, folder references, `Mailbox`, `Attendee`, `CalendarItem` (as [`wire::types::Item`]), `Recurrence`, extended properties, property paths and shapes |
//! | `wire/ops/*.rs` | one file per operation: FindItem, GetItem, SyncFolderItems, CreateItem, UpdateItem, DeleteItem, GetUserAvailability, GetRoomLists, GetRooms, ResolveNames, GetFolder, ConvertId |
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

#[doc(hidden)]
pub mod testing;
pub mod wire;
