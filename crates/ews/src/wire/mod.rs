//! EWS wire types: the XML layer, the SOAP envelope, shared types and one file per
//! operation. This module depends on nothing of calbridge's (no calbridge-core), so the
//! simulator compiles the very same files in (`crates/sim/src/lib.rs`, `ews_wire`).

pub mod envelope;
pub mod ops;
pub mod types;
pub mod xml;
