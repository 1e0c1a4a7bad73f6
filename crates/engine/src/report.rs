//! What a sync did, per calendar and in total.

use std::time::Duration;

use calbridge_core::model::{Calendar, CalendarKind};
use calbridge_core::planner::Action;
use calbridge_core::store::WriteStats;

/// Created / updated / deleted counts on one side.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    pub created: u64,
    pub updated: u64,
    pub deleted: u64,
    /// Lost confirmations recovered (pull) — counted apart from creates.
    pub linked: u64,
}

impl Counts {
    pub fn total(&self) -> u64 {
        self.created + self.updated + self.deleted + self.linked
    }

    pub fn count(&mut self, action: &Action) {
        match action {
            Action::CreateLocal { .. } | Action::Adopt { .. } | Action::CreateRemote { .. } => self.created += 1,
            Action::UpdateLocal { .. } | Action::UpdateRemote { .. } => self.updated += 1,
            Action::DeleteLocal { .. } | Action::DeleteRemote { .. } | Action::Forget { .. } => self.deleted += 1,
            Action::Link { .. } => self.linked += 1,
            Action::Refresh { .. } => {}
        }
    }

    pub fn add(&mut self, o: Counts) {
        self.created += o.created;
        self.updated += o.updated;
        self.deleted += o.deleted;
        self.linked += o.linked;
    }
}

/// The outcome of syncing one calendar.
#[derive(Clone, Debug)]
pub struct CalendarReport {
    pub calendar_id: i64,
    pub email: String,
    pub kind: CalendarKind,
    pub pulled: Counts,
    pub pushed: Counts,
    pub writes: WriteStats,
    /// Requests the engine made (pages and pushes; adapters may add retries).
    pub requests: u64,
    /// The pull listed the whole window (first sync or after an expired cursor).
    pub full_listing: bool,
    /// The cursor had expired and the window was re-listed.
    pub relisted: bool,
    /// Pushes left for the next sync because Exchange changed meanwhile.
    pub deferred: u64,
    pub throttled_wait: Duration,
    pub paused: Option<String>,
    pub warnings: Vec<String>,
    pub error: Option<String>,
    pub duration: Duration,
}

impl CalendarReport {
    pub fn new(c: &Calendar) -> Self {
        CalendarReport {
            calendar_id: c.id,
            email: c.email.clone(),
            kind: c.kind,
            pulled: Counts::default(),
            pushed: Counts::default(),
            writes: WriteStats::default(),
            requests: 0,
            full_listing: false,
            relisted: false,
            deferred: 0,
            throttled_wait: Duration::ZERO,
            paused: None,
            warnings: Vec::new(),
            error: None,
            duration: Duration::ZERO,
        }
    }

    pub fn ok(&self) -> bool {
        self.error.is_none() && self.paused.is_none()
    }
}

/// Totals over many calendar reports.
#[derive(Clone, Debug, Default)]
pub struct SyncSummary {
    pub calendars: u64,
    pub failed: u64,
    pub paused: u64,
    pub pulled: Counts,
    pub pushed: Counts,
    pub writes: WriteStats,
    pub requests: u64,
    pub throttled_wait: Duration,
}

impl SyncSummary {
    pub fn of(reports: &[CalendarReport]) -> Self {
        let mut s = SyncSummary::default();
        for r in reports {
            s.calendars += 1;
            if r.error.is_some() {
                s.failed += 1;
            }
            if r.paused.is_some() {
                s.paused += 1;
            }
            s.pulled.add(r.pulled);
            s.pushed.add(r.pushed);
            s.writes.add(r.writes);
            s.requests += r.requests;
            s.throttled_wait += r.throttled_wait;
        }
        s
    }
}
