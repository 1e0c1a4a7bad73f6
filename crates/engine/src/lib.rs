//! # calbridge-engine — the async driver
//!
//! The engine turns the core's decisions into effects, and nothing else: it has no HTTP and
//! no SQL of its own. It talks to Exchange through `calbridge_core::remote::Remote` and to its
//! state through `calbridge_core::store::Store`, both handed in by the composition root.
//!
//! One calendar sync ([`Engine::sync_calendar`]) is:
//!
//! 0. **Ask first.** With a stored cursor, the first page of changes is asked for before the
//!    calendar's snapshot is read. When Exchange reports nothing and the store has no local
//!    change to push (`Store::has_local_changes`), the sync ends there: one request, no
//!    snapshot, no write.
//! 1. **Pull.** Ask the remote for the changes since the stored cursor (without one, a full
//!    listing of the window). For each page: plan with `planner::plan_pull`, turn the plan into
//!    local writes, and commit the writes *together with the page's cursor* in one transaction.
//!    An expired cursor (`RemoteError::CursorExpired`) restarts as a full listing; after a full
//!    listing, `planner::plan_reconcile` removes what Exchange no longer has. Never
//!    delete-all/create-all: existing records match the listing by remote id.
//! 2. **Guard.** A page or a reconcile that would delete more than the [`DeleteGuard`] allows
//!    is not applied: the calendar is paused and reported, its cursor cleared so the next run
//!    re-lists and checks again.
//! 3. **Push.** Plan with `planner::plan_push`; perform each action against Exchange and record
//!    it (`planner::confirm`) only after Exchange confirmed it. Creates carry the local id as
//!    the idempotency key, so a retry after a lost confirmation never duplicates; the next pull
//!    links such an event instead.
//!
//! [`Engine::sync_connection`] runs the calendars of one connection concurrently, while the
//! connection's adapter keeps to its `max_threads` requests in flight ([`limit`]) and to
//! Exchange's per-mailbox budgets; it verifies links it has not checked yet, and reports
//! progress through a callback.
//!
//! A [`Notifier`] in the [`EngineConfig`] turns the event changes of each commit into webhook
//! messages that the same commit queues in the outbox.
//!
//! [`rooms`] imports the organisation's rooms as calendars; [`decline`] has a room or piece of
//! equipment decline a booking made in Exchange, for the host application.
//!
//! [`secrets`] seals and opens the secrets the store keeps (XChaCha20-Poly1305 under a master
//! key with a key id) and rotates them to a new key.
//!
//! Time and ids are inputs: every entry point takes `now`; new local ids come from an id
//! generator that tests may replace.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::Semaphore;

use calbridge_core::model::{Calendar, Connection, Event, EventId, LinkState, Origin, SeriesKind};
use calbridge_core::planner::{self, Action, DeleteGuard, Plan};
use calbridge_core::remote::{Remote, RemoteError};
use calbridge_core::store::{Lease, Notification, Store, StoreError, WriteStats};
use calbridge_core::sync::Provenance;
use calbridge_core::sync::{ChangePage, CursorUpdate, PushChange, RemoteChange, Snapshot, Window, Write};

/// A first page of changes asked for before the calendar's snapshot was read, or the error
/// asking for it met.
type FirstPage = Result<ChangePage, RemoteError>;

pub mod cursor;
pub mod decline;
pub mod limit;
pub mod report;
pub mod rooms;
pub mod secrets;

pub use report::{CalendarReport, Counts, SyncSummary};

/// Engine failures for one calendar.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error("{0}")]
    Remote(#[from] RemoteError),
    #[error("{0}")]
    Store(#[from] StoreError),
}

/// How the engine syncs.
#[derive(Clone)]
pub struct EngineConfig {
    /// This installation's id, written into every event calbridge creates (provenance).
    pub installation_id: String,
    /// Days before today kept in sync (default 30).
    pub window_past_days: u32,
    /// Days after today kept in sync (default 365).
    pub window_future_days: u32,
    pub delete_guard: DeleteGuard,
    /// How often a page request is retried after a throttling or transient error that the
    /// adapter already gave up on (default 2).
    pub page_retries: u32,
    /// Makes new local ids (UUIDs by default).
    pub new_id: Arc<dyn Fn() -> EventId + Send + Sync>,
    /// Turns the event changes of a commit into webhook messages, queued in the same
    /// transaction (none by default).
    pub notifier: Option<Arc<dyn Notifier>>,
}

/// Reports what a sync changes as webhook messages (`event.created`, `booking.accepted`, ...).
/// Called for every event a commit writes or removes, before the commit; the messages it
/// returns are committed with the change, so a message exists exactly when its change does.
pub trait Notifier: Send + Sync {
    /// `before` is the stored event (`None` when new), `after` the one written (`None` when
    /// removed).
    fn notify(&self, calendar: &Calendar, before: Option<&Event>, after: Option<&Event>) -> Vec<Notification>;
}

impl EngineConfig {
    pub fn new(installation_id: impl Into<String>) -> Self {
        EngineConfig {
            installation_id: installation_id.into(),
            window_past_days: 30,
            window_future_days: 365,
            delete_guard: DeleteGuard::default(),
            page_retries: 2,
            new_id: Arc::new(|| EventId::new(uuid::Uuid::now_v7().to_string())),
            notifier: None,
        }
    }

    pub fn window(&self, now: DateTime<Utc>) -> Window {
        Window::around(now, self.window_past_days, self.window_future_days)
    }
}

/// The sync engine. Cheap to clone.
#[derive(Clone)]
pub struct Engine {
    store: Arc<dyn Store>,
    config: EngineConfig,
    /// The lease this engine commits under (several workers on one database), and the moment
    /// it was known to hold.
    lease: Option<(Lease, DateTime<Utc>)>,
}

impl Engine {
    pub fn new(store: Arc<dyn Store>, config: EngineConfig) -> Self {
        Engine { store, config, lease: None }
    }

    /// This engine, committing only while `lease` holds (checked in each commit's own
    /// transaction): a worker whose calendar went to another worker writes nothing.
    pub fn with_lease(&self, lease: Lease, now: DateTime<Utc>) -> Engine {
        Engine { lease: Some((lease, now)), ..self.clone() }
    }

    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    pub fn config(&self) -> &EngineConfig {
        &self.config
    }

    /// Checks a calendar's mailbox against Exchange and records the link state.
    pub async fn verify_link(&self, remote: &dyn Remote, calendar: &Calendar) -> Result<LinkState, StoreError> {
        let state = match remote.verify_mailbox(&calendar.email).await {
            Ok(_) => LinkState::Verified,
            Err(RemoteError::NotFound(_)) => LinkState::Failed {
                error: format!(
                    "Exchange has no mailbox {}; check the address (it must be the primary SMTP address) and that the mailbox exists in this tenant",
                    calendar.email
                ),
            },
            Err(e) => LinkState::Failed { error: e.to_string() },
        };
        self.store.set_link_state(calendar.id, &state).await?;
        Ok(state)
    }

    /// Syncs one calendar: pull, then push. See the crate header.
    pub async fn sync_calendar(&self, remote: &dyn Remote, calendar: &Calendar, now: DateTime<Utc>) -> CalendarReport {
        let started = std::time::Instant::now();
        let mut report = CalendarReport::new(calendar);
        let window = self.config.window(now);
        // Ask Exchange first when a cursor is stored: a round Exchange reports idle, with no
        // local change to push, needs neither the calendar's snapshot nor any write.
        let first = match self.first_page(remote, calendar, &window, &mut report).await {
            Ok(first) => first,
            Err(e) => {
                report.error = Some(e.to_string());
                return report;
            }
        };
        if let Some(Ok(page)) = &first {
            if page.done && page.changes.is_empty() && page.skipped.is_empty() {
                match self.store.has_local_changes(calendar.id).await {
                    Ok(false) => {
                        report.duration = started.elapsed();
                        return report;
                    }
                    Ok(true) => {}
                    Err(e) => {
                        report.error = Some(e.to_string());
                        return report;
                    }
                }
            }
        }
        let mut snapshot = match self.store.snapshot(calendar.id).await {
            Ok(s) => s,
            Err(e) => {
                report.error = Some(e.to_string());
                return report;
            }
        };
        match self.pull(remote, calendar, &window, &mut snapshot, &mut report, first).await {
            // The host application changed an event while the pull was planning: read the
            // calendar again and pull once more (pages are idempotent by remote id).
            Err(SyncError::Store(StoreError::Conflict(why))) => {
                tracing::info!(mailbox = %calendar.email, "local change during the pull ({why}); pulling again");
                let again = match self.store.snapshot(calendar.id).await {
                    Ok(s) => {
                        snapshot = s;
                        self.pull(remote, calendar, &window, &mut snapshot, &mut report, None).await
                    }
                    Err(e) => Err(e.into()),
                };
                if let Err(e) = again {
                    report.error = Some(e.to_string());
                }
            }
            Err(e) => report.error = Some(e.to_string()),
            Ok(()) => {}
        }
        if report.error.is_none() && report.paused.is_none() {
            if let Err(e) = self.push(remote, calendar, &window, &mut snapshot, &mut report).await {
                report.error = Some(e.to_string());
            }
        }
        report.duration = started.elapsed();
        report
    }

    /// The first page of changes after the stored cursor (when one is stored for this
    /// window), asked before anything else is read; `None` when the round will be a full
    /// listing. Its error, if any, is the pull's to handle.
    async fn first_page(
        &self,
        remote: &dyn Remote,
        calendar: &Calendar,
        window: &Window,
        report: &mut CalendarReport,
    ) -> Result<Option<FirstPage>, StoreError> {
        let stored = self.store.cursor(calendar.id).await?;
        let Some(cursor) = stored.as_ref().and_then(|c| cursor::unwrap(c, window)) else { return Ok(None) };
        Ok(Some(self.changes_with_retry(remote, &calendar.email, window, Some(&cursor), report).await))
    }

    async fn changes_with_retry(
        &self,
        remote: &dyn Remote,
        email: &str,
        window: &Window,
        cursor: Option<&calbridge_core::sync::Cursor>,
        report: &mut CalendarReport,
    ) -> Result<calbridge_core::sync::ChangePage, RemoteError> {
        let mut attempt = 0;
        loop {
            report.requests += 1;
            match remote.changes(email, window, cursor).await {
                Err(e) if e.is_retryable() && attempt < self.config.page_retries => {
                    attempt += 1;
                    let wait = match &e {
                        RemoteError::Throttled { retry_after: Some(d) } => *d,
                        _ => Duration::from_millis(500 * 2u64.pow(attempt)),
                    };
                    report.throttled_wait += wait;
                    tracing::warn!(mailbox = email, error = %e, wait_ms = wait.as_millis() as u64, "retrying page");
                    tokio::time::sleep(wait).await;
                }
                other => return other,
            }
        }
    }

    async fn commit(
        &self,
        calendar: &Calendar,
        snapshot: &mut Snapshot,
        writes: Vec<Write>,
        cursor: CursorUpdate,
        report: &mut CalendarReport,
    ) -> Result<(), StoreError> {
        if writes.is_empty() && cursor == CursorUpdate::Keep {
            return Ok(());
        }
        let mut writes = writes;
        if let Some(n) = &self.config.notifier {
            let mut notes = Vec::new();
            for w in &writes {
                match w {
                    Write::PutEvent(e) => notes.extend(n.notify(calendar, snapshot.events.get(&e.id), Some(e))),
                    Write::RemoveEvent(id) => {
                        if let Some(before) = snapshot.events.get(id) {
                            notes.extend(n.notify(calendar, Some(before), None));
                        }
                    }
                    _ => {}
                }
            }
            writes.extend(notes.into_iter().map(Write::Notify));
        }
        let stats: WriteStats = match &self.lease {
            Some((lease, now)) => self.store.commit_fenced(calendar.id, &writes, &cursor, lease, *now).await?,
            None => self.store.commit(calendar.id, &writes, &cursor).await?,
        };
        report.writes.add(stats);
        snapshot.apply(writes);
        Ok(())
    }

    async fn pull(
        &self,
        remote: &dyn Remote,
        calendar: &Calendar,
        window: &Window,
        snapshot: &mut Snapshot,
        report: &mut CalendarReport,
        mut first: Option<FirstPage>,
    ) -> Result<(), SyncError> {
        // The stored cursor belongs to the window it was made for; a window that moved on
        // (weekly) starts a full listing, so the new days arrive and nothing is missed.
        let stored = self.store.cursor(calendar.id).await?;
        let mut cursor = stored.as_ref().and_then(|c| cursor::unwrap(c, window));
        let mut full = cursor.is_none();
        if full {
            // Asked after a cursor that is gone now: the listing starts over.
            first = None;
        }
        report.full_listing = full;
        let records_at_start = snapshot.records.len();
        // Deletions wait for the end of the round: the guard sees the whole round, and the
        // round's cursor is committed together with them.
        let mut deferred: Vec<Action> = Vec::new();
        let mut seen: HashSet<String> = HashSet::new();
        let mut first_page = true;
        loop {
            let asked = match first.take() {
                // The first page, already asked for by `sync_calendar`.
                Some(page) => page,
                None => self.changes_with_retry(remote, &calendar.email, window, cursor.as_ref(), report).await,
            };
            let page = match asked {
                Ok(p) => p,
                Err(RemoteError::CursorExpired) if !full => {
                    tracing::info!(mailbox = %calendar.email, "sync cursor expired; re-listing the window and reconciling");
                    report.relisted = true;
                    report.full_listing = true;
                    full = true;
                    first_page = true;
                    cursor = None;
                    seen.clear();
                    deferred.clear();
                    continue;
                }
                Err(e) => return Err(e.into()),
            };
            for c in &page.changes {
                if let RemoteChange::Upsert(i) = c {
                    seen.insert(i.remote_id.clone());
                    // Back again later in the round: not deleted after all.
                    deferred
                        .retain(|a| !matches!(a, Action::DeleteLocal { remote_id, .. } if remote_id == &i.remote_id));
                }
            }
            for id in &page.skipped {
                // Unreadable now, not gone: a re-listing must not delete it.
                seen.insert(id.clone());
                report
                    .warnings
                    .push(format!("Exchange sent an event calbridge could not read (id {id}); it was left as it is"));
            }
            let plan = planner::plan_pull(snapshot, &page.changes, window, &self.config.installation_id);
            let plan = self.confirm_local_deletions(remote, calendar, window, snapshot, plan, report).await?;
            if !plan.is_empty() {
                tracing::debug!(mailbox = %calendar.email, "pull plan:\n{plan}");
            }
            let mut writes = Vec::new();
            for action in plan.actions {
                match &action {
                    Action::DeleteLocal { .. } => deferred.push(action),
                    Action::DeleteRemote { remote_id, .. } => {
                        // A duplicate of an event calbridge created: remove it from Exchange
                        // before this page counts as done.
                        report.requests += 1;
                        match remote.push(&calendar.email, &PushChange::Delete { remote_id: remote_id.clone() }).await {
                            Ok(_) | Err(RemoteError::NotFound(_)) => report.pushed.deleted += 1,
                            Err(e) => return Err(e.into()),
                        }
                    }
                    _ => {
                        report.pulled.count(&action);
                        let new_id = self.config.new_id.clone();
                        writes.extend(planner::local_writes(&action, snapshot, calendar.id, &mut || new_id()));
                    }
                }
            }
            let idle_round = first_page && !full && page.done && page.changes.is_empty() && page.skipped.is_empty();
            first_page = false;
            if !page.done {
                // Pages within a round are committed without a cursor: an interrupted round
                // starts over from the last complete one (pages are idempotent by remote id).
                self.commit(calendar, snapshot, writes, CursorUpdate::Keep, report).await?;
                cursor = Some(page.next);
                continue;
            }
            if full {
                let plan = planner::plan_reconcile(snapshot, &seen, window);
                let plan = self.confirm_local_deletions(remote, calendar, window, snapshot, plan, report).await?;
                for action in plan.actions {
                    let dup = deferred.iter().any(|d| matches!((d, &action), (Action::DeleteLocal { local_id: a, .. }, Action::DeleteLocal { local_id: b, .. }) if a == b));
                    if !dup {
                        deferred.push(action);
                    }
                }
            }
            let deletions = deferred.iter().filter(|a| matches!(a, Action::DeleteLocal { .. })).count();
            if let Some(why) = self.config.delete_guard.check(deletions, records_at_start) {
                // Keep what the round brought in, but neither its deletions nor its cursor.
                self.commit(calendar, snapshot, writes, CursorUpdate::Keep, report).await?;
                return self.pause(calendar, snapshot, why, report).await;
            }
            for action in &deferred {
                report.pulled.count(action);
                writes.extend(planner::local_writes(action, snapshot, calendar.id, &mut || {
                    unreachable!("deletions create nothing")
                }));
            }
            // The round's cursor, with its last page and its deletions. An idle round keeps the
            // stored cursor, so an idle sync writes nothing even when Exchange hands out a
            // fresh token for the same position.
            let update =
                if idle_round { CursorUpdate::Keep } else { CursorUpdate::Set(cursor::wrap(&page.next, window)) };
            self.commit(calendar, snapshot, writes, update, report).await?;
            return Ok(());
        }
    }

    /// Exchange reports an event that left the window as removed. An event the host
    /// application created is deleted locally only when Exchange really no longer has it;
    /// otherwise the planner decides again on Exchange's current version.
    async fn confirm_local_deletions(
        &self,
        remote: &dyn Remote,
        calendar: &Calendar,
        window: &Window,
        snapshot: &Snapshot,
        plan: Plan,
        report: &mut CalendarReport,
    ) -> Result<Plan, SyncError> {
        let mut actions = Vec::with_capacity(plan.actions.len());
        for action in plan.actions {
            let Action::DeleteLocal { local_id, remote_id, .. } = &action else {
                actions.push(action);
                continue;
            };
            if snapshot.events.get(local_id).is_none_or(|e| e.origin != Origin::Local) {
                actions.push(action);
                continue;
            }
            report.requests += 1;
            match remote.fetch(&calendar.email, std::slice::from_ref(remote_id)).await?.pop() {
                None => actions.push(action),
                Some(item) => {
                    let again = planner::plan_pull(
                        snapshot,
                        &[RemoteChange::Upsert(item)],
                        window,
                        &self.config.installation_id,
                    );
                    actions.extend(again.actions);
                }
            }
        }
        Ok(Plan { actions })
    }

    async fn pause(
        &self,
        calendar: &Calendar,
        snapshot: &mut Snapshot,
        why: String,
        report: &mut CalendarReport,
    ) -> Result<(), SyncError> {
        tracing::warn!(mailbox = %calendar.email, "{why}");
        // Forget the cursor so the next run lists everything again and re-checks.
        self.commit(calendar, snapshot, Vec::new(), CursorUpdate::Clear, report).await?;
        report.paused = Some(why);
        Ok(())
    }

    async fn push(
        &self,
        remote: &dyn Remote,
        calendar: &Calendar,
        window: &Window,
        snapshot: &mut Snapshot,
        report: &mut CalendarReport,
    ) -> Result<(), SyncError> {
        let plan = planner::plan_push(snapshot, window);
        if !plan.is_empty() {
            tracing::debug!(mailbox = %calendar.email, "push plan:\n{plan}");
        }
        // Changes to independent events travel together (an adapter that batches sends up to
        // `PUSH_CHUNK` in one round trip). A series' master or instance goes alone: the order of
        // a series' changes matters, and a master's version conflict is retried on its own.
        let mut chunk: Vec<(&Action, PushChange)> = Vec::new();
        for action in &plan.actions {
            let change = match action {
                Action::CreateRemote { local_id, data } => PushChange::Create {
                    data: data.clone(),
                    provenance: Provenance {
                        installation: self.config.installation_id.clone(),
                        local_id: local_id.clone(),
                    },
                },
                Action::UpdateRemote { remote_id, if_match, data, .. } => {
                    PushChange::Update { remote_id: remote_id.clone(), if_match: if_match.clone(), data: data.clone() }
                }
                Action::DeleteRemote { remote_id, .. } => PushChange::Delete { remote_id: remote_id.clone() },
                Action::Forget { .. } => {
                    let writes = planner::local_writes(action, snapshot, calendar.id, &mut || unreachable!());
                    self.commit(calendar, snapshot, writes, CursorUpdate::Keep, report).await?;
                    continue;
                }
                _ => continue,
            };
            if touches_series(action, snapshot) {
                self.push_chunk(remote, calendar, window, snapshot, std::mem::take(&mut chunk), report).await?;
                self.push_chunk(remote, calendar, window, snapshot, vec![(action, change)], report).await?;
                continue;
            }
            chunk.push((action, change));
            if chunk.len() == PUSH_CHUNK {
                self.push_chunk(remote, calendar, window, snapshot, std::mem::take(&mut chunk), report).await?;
            }
        }
        self.push_chunk(remote, calendar, window, snapshot, chunk, report).await
    }

    /// Pushes changes to independent events (one alone goes with `push`), then commits what
    /// Exchange confirmed in one transaction. A failure that concerns more than one change
    /// (throttling given up on, a transport or permission failure) is returned after the
    /// confirmed changes are committed; the changes left unsent go at the next run.
    async fn push_chunk(
        &self,
        remote: &dyn Remote,
        calendar: &Calendar,
        window: &Window,
        snapshot: &mut Snapshot,
        items: Vec<(&Action, PushChange)>,
        report: &mut CalendarReport,
    ) -> Result<(), SyncError> {
        let answers = match &items[..] {
            [] => return Ok(()),
            [(action, change)] => {
                report.requests += 1;
                let mut result = remote.push(&calendar.email, change).await;
                if let (Err(RemoteError::VersionConflict), Action::UpdateRemote { local_id, remote_id, .. }) =
                    (&result, action)
                {
                    // A series' master changes in Exchange whenever one of its occurrences does,
                    // and Graph's delta never lists masters: read it, take its version (the
                    // three-way rules decide what its content means), and try once more.
                    if snapshot.events.get(local_id).is_some_and(|e| e.data.series.kind == SeriesKind::Master) {
                        if let Some(retry) =
                            self.refresh_master(remote, calendar, window, snapshot, remote_id, report).await?
                        {
                            report.requests += 1;
                            result = remote.push(&calendar.email, &retry).await;
                        }
                    }
                }
                vec![result]
            }
            _ => {
                report.requests += items.len() as u64;
                let changes: Vec<PushChange> = items.iter().map(|(_, c)| c.clone()).collect();
                remote.push_many(&calendar.email, &changes).await
            }
        };
        let mut writes = Vec::new();
        let mut failure: Option<RemoteError> = None;
        // Fewer answers than changes: the rest were not sent.
        for ((action, change), result) in items.iter().zip(answers) {
            let confirmed = match result {
                Ok(c) => c,
                Err(RemoteError::NotFound(_)) if matches!(change, PushChange::Delete { .. }) => None,
                Err(e @ (RemoteError::VersionConflict | RemoteError::NotFound(_))) => {
                    // Exchange moved on since our last pull; the next pull brings its state
                    // and the planner decides again.
                    tracing::info!(mailbox = %calendar.email, "push deferred until the next pull ({e}): {action}");
                    report.deferred += 1;
                    continue;
                }
                Err(e @ RemoteError::Permanent(_)) => {
                    tracing::warn!(mailbox = %calendar.email, "push refused ({e}): {action}");
                    report.warnings.push(format!("{action}: {e}"));
                    continue;
                }
                Err(e) => {
                    failure.get_or_insert(e);
                    continue;
                }
            };
            report.pushed.count(action);
            writes.extend(planner::confirm(action, snapshot, calendar.id, confirmed.as_ref()));
        }
        if !writes.is_empty() {
            self.commit(calendar, snapshot, writes, CursorUpdate::Keep, report).await?;
        }
        match failure {
            Some(e) => Err(e.into()),
            None => Ok(()),
        }
    }

    /// Reads a series' master whose update met a newer version, records what the three-way
    /// rules make of it, and returns the update to send again (if the host application's
    /// change still stands).
    async fn refresh_master(
        &self,
        remote: &dyn Remote,
        calendar: &Calendar,
        window: &Window,
        snapshot: &mut Snapshot,
        remote_id: &str,
        report: &mut CalendarReport,
    ) -> Result<Option<PushChange>, SyncError> {
        report.requests += 1;
        let Some(item) = remote.fetch(&calendar.email, &[remote_id.to_string()]).await?.pop() else {
            return Ok(None);
        };
        let plan = planner::plan_pull(snapshot, &[RemoteChange::Upsert(item)], window, &self.config.installation_id);
        let new_id = self.config.new_id.clone();
        let mut writes = Vec::new();
        for a in &plan.actions {
            writes.extend(planner::local_writes(a, snapshot, calendar.id, &mut || new_id()));
        }
        self.commit(calendar, snapshot, writes, CursorUpdate::Keep, report).await?;
        let again = planner::plan_push(snapshot, window);
        Ok(again.actions.into_iter().find_map(|a| match a {
            Action::UpdateRemote { remote_id: r, if_match, data, .. } if r == remote_id => {
                Some(PushChange::Update { remote_id: r, if_match, data })
            }
            _ => None,
        }))
    }

    /// Syncs every calendar of a connection, `max_threads` × [`limit::CALENDARS_PER_SLOT`] at
    /// once; `remote`, the adapter built for the connection, keeps to `max_threads` requests in
    /// flight (see [`limit`]). Unverified links are verified first; calendars whose link failed
    /// are skipped and reported.
    pub async fn sync_connection(
        &self,
        connection: &Connection,
        remote: Arc<dyn Remote>,
        now: DateTime<Utc>,
        on_done: Arc<dyn Fn(&CalendarReport) + Send + Sync>,
    ) -> Result<Vec<CalendarReport>, StoreError> {
        let calendars = self.store.calendars(Some(connection.id)).await?;
        // The adapter keeps to `max_threads` requests in flight; four times as many
        // calendars at once, so that calendars' reading and storing overlap others' requests.
        let max_threads = connection.max_threads.max(1) as usize;
        let calendars_at_once = Arc::new(Semaphore::new(max_threads * limit::CALENDARS_PER_SLOT));
        let mut tasks = tokio::task::JoinSet::new();
        let mut by_task = std::collections::HashMap::new();
        for calendar in calendars {
            let engine = self.clone();
            let remote = remote.clone();
            let calendars_at_once = calendars_at_once.clone();
            let on_done = on_done.clone();
            let c = calendar.clone();
            let handle = tasks.spawn(async move {
                let _permit = calendars_at_once.acquire_owned().await.expect("semaphore never closes");
                let report = engine.verify_and_sync(remote.as_ref(), c, now).await;
                on_done(&report);
                report
            });
            by_task.insert(handle.id(), calendar);
        }
        let mut reports = Vec::new();
        while let Some(r) = tasks.join_next_with_id().await {
            match r {
                Ok((_, report)) => reports.push(report),
                // A bug in one calendar's sync must not stop the others: report it as failed.
                Err(e) => {
                    let mut report = CalendarReport::new(&by_task[&e.id()]);
                    report.error = Some(format!("internal error while syncing (please report it): {e}"));
                    on_done(&report);
                    reports.push(report);
                }
            }
        }
        reports.sort_by(|a, b| a.email.cmp(&b.email));
        Ok(reports)
    }

    /// Verifies the calendar's link when it is not verified yet, then syncs it; a failed link
    /// is reported without syncing.
    pub async fn verify_and_sync(
        &self,
        remote: &dyn Remote,
        mut calendar: Calendar,
        now: DateTime<Utc>,
    ) -> CalendarReport {
        if !matches!(calendar.link, LinkState::Verified) {
            match self.verify_link(remote, &calendar).await {
                Ok(state) => calendar.link = state,
                Err(e) => {
                    let mut r = CalendarReport::new(&calendar);
                    r.error = Some(e.to_string());
                    return r;
                }
            }
            if let LinkState::Failed { error } = &calendar.link {
                let mut r = CalendarReport::new(&calendar);
                r.error = Some(format!("link not verified: {error}"));
                return r;
            }
        }
        self.sync_calendar(remote, &calendar, now).await
    }
}

/// Changes committed together after one `push_many` (Graph's batch limit, so one round trip).
const PUSH_CHUNK: usize = 20;

/// Whether a push concerns a series (its master or one of its instances).
fn touches_series(action: &Action, snapshot: &Snapshot) -> bool {
    let kind_of = |id: &EventId| snapshot.events.get(id).map(|e| e.data.series.kind);
    let kind = match action {
        Action::CreateRemote { data, .. } | Action::UpdateRemote { data, .. } => Some(data.series.kind),
        Action::DeleteRemote { local_id: Some(id), .. } => kind_of(id),
        _ => None,
    };
    kind.is_some_and(|k| k != SeriesKind::Single)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_event_ids_sort_in_the_order_they_were_made() {
        // Time-ordered ids keep the store's id indexes growing at one end (docs/performance.md).
        let config = EngineConfig::new("test");
        let ids: Vec<EventId> = (0..2_000).map(|_| (config.new_id)()).collect();
        assert!(ids.windows(2).all(|w| w[0] < w[1]), "ids out of order");
        assert!(ids.iter().all(|id| uuid::Uuid::parse_str(&id.0).is_ok_and(|u| u.get_version_num() == 7)));
    }
}
