//! A connection's concurrency limit ("max threads") on the requests it has in flight.
//!
//! [`Limited`] wraps a connection's [`Remote`] so that at most `max_threads` of its calls are
//! with Exchange at once, however many calendars are being synced: a calendar that is storing
//! what it read, or planning, holds no slot, so the next calendar's request can go out
//! meanwhile. [`Engine::sync_connection`](crate::Engine::sync_connection) works on
//! [`CALENDARS_PER_SLOT`] calendars per slot.
//!
//! Each call takes one slot for its whole length, retries and throttling waits inside the
//! adapter included; a call that sends several requests in sequence (an EWS sync page and the
//! GetItem for its items) sends them one at a time, so the connection never has more than
//! `max_threads` requests in flight. [`Remote::watch`] takes no slot: its connections stay
//! open for as long as the watch runs, and its streaming connections have their own limit.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use tokio::sync::{Semaphore, SemaphorePermit};

use calbridge_core::remote::{
    MailboxInfo, Remote, RemoteCalendar, RemoteError, RemoteSubscription, RoomInfo, Watch, WatchOptions,
};
use calbridge_core::sync::{ChangePage, Confirmed, Cursor, PushChange, RemoteItem, Window};

/// Calendars a connection's sync works on at once, per slot of its limit: two, so that one
/// calendar's storing overlaps another's request.
pub const CALENDARS_PER_SLOT: usize = 2;

/// A [`Remote`] with at most a fixed number of calls in flight.
pub struct Limited {
    inner: Arc<dyn Remote>,
    slots: Semaphore,
    max_in_flight: usize,
}

impl Limited {
    /// `inner` with at most `max_in_flight` (at least 1) calls in flight.
    pub fn new(inner: Arc<dyn Remote>, max_in_flight: usize) -> Self {
        let max_in_flight = max_in_flight.max(1);
        Limited { inner, slots: Semaphore::new(max_in_flight), max_in_flight }
    }

    /// The limit.
    pub fn max_in_flight(&self) -> usize {
        self.max_in_flight
    }

    async fn slot(&self) -> SemaphorePermit<'_> {
        self.slots.acquire().await.expect("the semaphore is never closed")
    }
}

#[async_trait]
impl Remote for Limited {
    async fn mailbox(&self, email: &str) -> Result<MailboxInfo, RemoteError> {
        let _slot = self.slot().await;
        self.inner.mailbox(email).await
    }

    async fn verify_mailbox(&self, email: &str) -> Result<(), RemoteError> {
        let _slot = self.slot().await;
        self.inner.verify_mailbox(email).await
    }

    async fn list_calendars(&self, email: &str) -> Result<Vec<RemoteCalendar>, RemoteError> {
        let _slot = self.slot().await;
        self.inner.list_calendars(email).await
    }

    async fn changes(&self, email: &str, window: &Window, cursor: Option<&Cursor>) -> Result<ChangePage, RemoteError> {
        let _slot = self.slot().await;
        self.inner.changes(email, window, cursor).await
    }

    async fn fetch(&self, email: &str, ids: &[String]) -> Result<Vec<RemoteItem>, RemoteError> {
        let _slot = self.slot().await;
        self.inner.fetch(email, ids).await
    }

    async fn push(&self, email: &str, change: &PushChange) -> Result<Option<Confirmed>, RemoteError> {
        let _slot = self.slot().await;
        self.inner.push(email, change).await
    }

    async fn push_many(&self, email: &str, changes: &[PushChange]) -> Vec<Result<Option<Confirmed>, RemoteError>> {
        let _slot = self.slot().await;
        self.inner.push_many(email, changes).await
    }

    async fn decline(&self, email: &str, remote_id: &str, comment: &str) -> Result<(), RemoteError> {
        let _slot = self.slot().await;
        self.inner.decline(email, remote_id, comment).await
    }

    async fn rooms(&self) -> Result<Vec<RoomInfo>, RemoteError> {
        let _slot = self.slot().await;
        self.inner.rooms().await
    }

    fn pushes_notifications(&self) -> bool {
        self.inner.pushes_notifications()
    }

    async fn subscribe(
        &self,
        email: &str,
        notification_url: &str,
        client_state: &str,
        expires: DateTime<Utc>,
    ) -> Result<RemoteSubscription, RemoteError> {
        let _slot = self.slot().await;
        self.inner.subscribe(email, notification_url, client_state, expires).await
    }

    async fn renew(&self, email: &str, id: &str, expires: DateTime<Utc>) -> Result<DateTime<Utc>, RemoteError> {
        let _slot = self.slot().await;
        self.inner.renew(email, id, expires).await
    }

    async fn unsubscribe(&self, email: &str, id: &str) -> Result<(), RemoteError> {
        let _slot = self.slot().await;
        self.inner.unsubscribe(email, id).await
    }

    fn watches_notifications(&self) -> bool {
        self.inner.watches_notifications()
    }

    async fn watch(&self, mailboxes: Vec<String>, options: WatchOptions) -> Result<Box<dyn Watch>, RemoteError> {
        self.inner.watch(mailboxes, options).await
    }

    fn throttled_wait(&self) -> Duration {
        self.inner.throttled_wait()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// Counts its calls in flight; each call waits a little so that calls overlap.
    #[derive(Default)]
    struct Counting {
        now: AtomicUsize,
        most: AtomicUsize,
        calls: AtomicUsize,
    }

    impl Counting {
        async fn call(&self) {
            let n = self.now.fetch_add(1, Ordering::SeqCst) + 1;
            self.most.fetch_max(n, Ordering::SeqCst);
            self.calls.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(5)).await;
            self.now.fetch_sub(1, Ordering::SeqCst);
        }
    }

    #[async_trait]
    impl Remote for Counting {
        async fn mailbox(&self, email: &str) -> Result<MailboxInfo, RemoteError> {
            self.call().await;
            Ok(MailboxInfo { email: email.into(), display_name: email.into() })
        }
        async fn list_calendars(&self, _: &str) -> Result<Vec<RemoteCalendar>, RemoteError> {
            self.call().await;
            Ok(vec![])
        }
        async fn changes(&self, _: &str, _: &Window, _: Option<&Cursor>) -> Result<ChangePage, RemoteError> {
            self.call().await;
            Err(RemoteError::CursorExpired)
        }
        async fn fetch(&self, _: &str, _: &[String]) -> Result<Vec<RemoteItem>, RemoteError> {
            self.call().await;
            Ok(vec![])
        }
        async fn push(&self, _: &str, _: &PushChange) -> Result<Option<Confirmed>, RemoteError> {
            self.call().await;
            Ok(None)
        }
        async fn decline(&self, _: &str, _: &str, _: &str) -> Result<(), RemoteError> {
            self.call().await;
            Ok(())
        }
        async fn rooms(&self) -> Result<Vec<RoomInfo>, RemoteError> {
            self.call().await;
            Ok(vec![])
        }
        fn throttled_wait(&self) -> Duration {
            Duration::from_millis(7)
        }
        fn pushes_notifications(&self) -> bool {
            true
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn at_most_the_limit_of_calls_are_in_flight() {
        let counting = Arc::new(Counting::default());
        let limited = Arc::new(Limited::new(counting.clone(), 3));
        let mut tasks = tokio::task::JoinSet::new();
        for i in 0..40 {
            let limited = limited.clone();
            tasks.spawn(async move {
                let email = format!("m{i}@example.com");
                match i % 4 {
                    0 => drop(limited.mailbox(&email).await),
                    1 => drop(limited.verify_mailbox(&email).await),
                    2 => drop(limited.fetch(&email, &[]).await),
                    _ => drop(limited.rooms().await),
                }
            });
        }
        while tasks.join_next().await.is_some() {}
        assert_eq!(counting.calls.load(Ordering::SeqCst), 40, "every call reached the adapter");
        assert_eq!(counting.most.load(Ordering::SeqCst), 3, "three calls overlapped, never more");
    }

    #[tokio::test]
    async fn a_limit_of_zero_is_one_and_the_adapters_answers_pass_through() {
        let counting = Arc::new(Counting::default());
        let limited = Limited::new(counting.clone(), 0);
        assert_eq!(limited.max_in_flight(), 1);
        assert_eq!(limited.mailbox("a@example.com").await.unwrap().display_name, "a@example.com");
        assert!(matches!(
            limited.changes("a@example.com", &Window::around(Utc::now(), 1, 1), None).await,
            Err(RemoteError::CursorExpired)
        ));
        assert!(limited.pushes_notifications());
        assert!(!limited.watches_notifications());
        assert_eq!(limited.throttled_wait(), Duration::from_millis(7));
    }
}
