//! The simulator's library errors (scenario, snapshot, certificates, the Outlook handle).

use std::path::PathBuf;

/// What went wrong, said so that the fix is clear.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    /// The scenario TOML does not parse or does not validate; `key` names the offending key.
    #[error("scenario: {key}: {message}")]
    Scenario { key: String, message: String },
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A state snapshot could not be encoded or decoded.
    #[error("state snapshot {path}: {message}")]
    Snapshot { path: PathBuf, message: String },
    /// The self-signed TLS certificate could not be made or loaded.
    #[error("tls: {0}")]
    Tls(String),
    /// An `Outlook` action named a mailbox that is not in the scenario.
    #[error("no mailbox {0} in this simulator (check the scenario's [[mailboxes]])")]
    UnknownMailbox(String),
    /// An `Outlook` action named an event that is not in that mailbox.
    #[error("no event {id} in mailbox {mailbox}")]
    UnknownEvent { mailbox: String, id: String },
    /// An `Outlook` action was refused the way Graph would refuse it.
    #[error("{code}: {message}")]
    Rejected { code: String, message: String },
}

impl SimError {
    pub(crate) fn scenario(key: impl Into<String>, message: impl Into<String>) -> SimError {
        SimError::Scenario { key: key.into(), message: message.into() }
    }
}
