//! The `Connector` seam: how the API and the scheduler get a [`Remote`] for a stored
//! connection, and how a connection is diagnosed.
//!
//! Each protocol adapter (Graph, EWS) implements it for its connection kind; the composition
//! root hands one connector per kind to the API. A diagnosis is a list of [`Check`]s, each with
//! a result and, when it did not pass, a hint that names the fix (which permission, which
//! mailbox right).

use std::sync::Arc;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::model::{CalendarKind, Connection, Secret};
use crate::remote::{Remote, RemoteError};

/// The outcome of one check.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CheckResult {
    Pass,
    Fail,
    /// Not run: an earlier check failed, or there was nothing to check.
    Skip,
}

/// One step of a connection test.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Check {
    /// `token`, `mailbox.person`, `calendar.room`, ...
    pub name: String,
    pub result: CheckResult,
    /// What was checked and what Exchange answered.
    pub detail: String,
    /// What to do when it did not pass.
    pub hint: Option<String>,
}

impl Check {
    pub fn pass(name: impl Into<String>, detail: impl Into<String>) -> Check {
        Check { name: name.into(), result: CheckResult::Pass, detail: detail.into(), hint: None }
    }
    pub fn fail(name: impl Into<String>, detail: impl Into<String>, hint: impl Into<String>) -> Check {
        Check { name: name.into(), result: CheckResult::Fail, detail: detail.into(), hint: Some(hint.into()) }
    }
    pub fn skip(name: impl Into<String>, detail: impl Into<String>) -> Check {
        Check { name: name.into(), result: CheckResult::Skip, detail: detail.into(), hint: None }
    }
}

/// A mailbox to probe during a test: one per linked kind (person, room, equipment), and the
/// default organizer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Probe {
    pub email: String,
    pub kind: CalendarKind,
}

/// Builds adapters for, and diagnoses, connections of one kind.
#[async_trait]
pub trait Connector: Send + Sync {
    /// The `ConnectionSettings` kind it serves (`graph`, `ews`).
    fn kind(&self) -> &'static str;
    /// An adapter for the connection, with its secret.
    fn remote(&self, connection: &Connection, secret: Secret) -> Result<Arc<dyn Remote>, RemoteError>;
    /// Runs the connection test: credentials first, then each probe's mailbox and calendar.
    async fn diagnose(&self, connection: &Connection, secret: Secret, probes: &[Probe]) -> Vec<Check>;
    /// Reads a body Exchange POSTed to calbridge's notification endpoint for this kind;
    /// `None` when this kind is not notified over HTTP.
    fn read_notifications(&self, body: &[u8]) -> Option<Result<Vec<InboundNotification>, String>> {
        let _ = body;
        None
    }
}

/// A change notification Exchange sent, as calbridge acts on it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InboundNotification {
    /// The subscription it claims to belong to.
    pub subscription_id: Option<String>,
    /// The secret the subscription was made with, as the notification carries it.
    pub client_state: Option<String>,
    pub signal: NotificationSignal,
}

/// What a notification asks calbridge to do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NotificationSignal {
    /// The mailbox's calendar changed (or notifications were missed, or an unknown lifecycle
    /// event): sync it.
    Changed,
    /// Renew the subscription now.
    Reauthorize,
    /// The subscription is gone: subscribe again, and sync.
    Removed,
}
