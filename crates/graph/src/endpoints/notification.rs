//! Change notifications — <https://learn.microsoft.com/graph/change-notifications-delivery-webhooks>
//! and lifecycle notifications — <https://learn.microsoft.com/graph/change-notifications-lifecycle-events>
//!
//! What Graph sends *to* calbridge: `POST {notificationUrl}` with a
//! `changeNotificationCollection` (`{"value": [...]}`), each notification naming its
//! `subscriptionId` and echoing the subscription's `clientState`, which the receiver must
//! check; or, once when a subscription is made, `POST {notificationUrl}?validationToken=…`,
//! to be answered `200 OK`, `text/plain`, with the decoded token, within 10 seconds. Bodies are
//! size-limited before they are parsed.

use crate::error::GraphError;
use crate::types::{ChangeNotification, ChangeNotificationCollection};

/// The largest notification body calbridge reads (Graph batches up to a few hundred).
pub const MAX_BODY: usize = 1 << 20;

/// What a notification asks calbridge to do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Signal {
    /// Something changed in the subscribed mailbox: sync it.
    Changed,
    /// Renew the subscription (`reauthorizationRequired`).
    Reauthorize,
    /// The subscription is gone (`subscriptionRemoved`): subscribe again and sync.
    Removed,
    /// Notifications were lost (`missed`): sync.
    Missed,
    /// A lifecycle event calbridge does not know: sync, to be safe.
    Other(String),
}

impl ChangeNotification {
    pub fn signal(&self) -> Signal {
        match self.lifecycle_event.as_deref() {
            None => Signal::Changed,
            Some("reauthorizationRequired") => Signal::Reauthorize,
            Some("subscriptionRemoved") => Signal::Removed,
            Some("missed") => Signal::Missed,
            Some(other) => Signal::Other(other.to_string()),
        }
    }
}

/// Reads a notification body.
pub fn parse(body: &[u8]) -> Result<ChangeNotificationCollection, GraphError> {
    if body.len() > MAX_BODY {
        return Err(GraphError::Decode {
            operation: "change notification",
            message: format!("the body has {} bytes, more than the {MAX_BODY} calbridge reads", body.len()),
        });
    }
    super::parse_json("change notification", body)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(rel: &str) -> Option<String> {
        crate::test_support::protocol_file(&format!("graph/examples/{rel}"))
    }

    #[test]
    fn microsofts_examples_parse() {
        let Some(text) = read("change-notifications-delivery-webhooks/02-notification.json") else { return };
        let n = parse(text.as_bytes()).unwrap();
        assert_eq!(n.value.len(), 1);
        let first = &n.value[0];
        assert_eq!(first.subscription_id.as_deref(), Some("{subscription_guid}"));
        assert_eq!(first.client_state.as_deref(), Some("secretClientValue"));
        assert_eq!(first.change_type.as_deref(), Some("created"));
        assert_eq!(first.signal(), Signal::Changed);
        let Some(text) = read("change-notifications-lifecycle-events/02-notification.json") else { return };
        let n = parse(text.as_bytes()).unwrap();
        assert_eq!(n.value[0].client_state.as_deref(), Some("<secretClientState>"));
        assert!(matches!(n.value[0].signal(), Signal::Other(_)), "the example lists the three events in one string");
    }

    #[test]
    fn lifecycle_events_and_limits() {
        let body = br#"{"value":[{"subscriptionId":"s","clientState":"c","lifecycleEvent":"missed"},
                                 {"subscriptionId":"s","clientState":"c","lifecycleEvent":"reauthorizationRequired"},
                                 {"subscriptionId":"s","clientState":"c","lifecycleEvent":"subscriptionRemoved"}]}"#;
        let n = parse(body).unwrap();
        let signals: Vec<Signal> = n.value.iter().map(ChangeNotification::signal).collect();
        assert_eq!(signals, [Signal::Missed, Signal::Reauthorize, Signal::Removed]);
        let big = vec![b' '; MAX_BODY + 1];
        assert!(parse(&big).unwrap_err().to_string().contains("more than"));
        assert!(parse(b"{\"value\": 3}").is_err());
    }
}
