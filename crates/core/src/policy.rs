//! Free/busy policy and privacy masking.
//!
//! Busy, Tentative and Out-of-office block time; Working-elsewhere blocks time only when the
//! installation says so; Free events are not shown at all. A calendar linked "busy only" shows
//! its Exchange events as "Busy" with no subject, body, location or attendees; private and
//! confidential events are always masked that way.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::model::{Calendar, Event, EventData, Origin, Sensitivity, SeriesKind, ShowAs};

/// The installation's free/busy rules.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FreeBusyPolicy {
    /// Whether "working elsewhere" blocks time (off by default: the person is available).
    pub working_elsewhere_blocks: bool,
}

impl FreeBusyPolicy {
    /// Does an event with this status block time?
    pub fn blocks(&self, show_as: ShowAs) -> bool {
        match show_as {
            ShowAs::Busy | ShowAs::Tentative | ShowAs::Oof => true,
            ShowAs::WorkingElsewhere => self.working_elsewhere_blocks,
            // Exchange sends `unknown` for items it could not classify; treat as busy so
            // a room is never offered when in doubt.
            ShowAs::Unknown => true,
            ShowAs::Free => false,
        }
    }

    /// Is the event shown at all? Free events are hidden; cancelled ones too.
    pub fn visible(&self, data: &EventData) -> bool {
        data.show_as != ShowAs::Free && !data.cancelled
    }

    /// Merged busy intervals of `events` within `[from, to)`, sorted and non-overlapping.
    pub fn busy_intervals<'a>(
        &self,
        events: impl IntoIterator<Item = &'a EventData>,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Vec<(DateTime<Utc>, DateTime<Utc>)> {
        let claims = events
            .into_iter()
            // A series blocks time through its instances, never as its master; a cancelled
            // event blocks nothing.
            .filter(|e| e.series.kind != SeriesKind::Master && !e.cancelled)
            .map(|e| (e.start, e.end, e.show_as));
        self.busy_spans(claims, from, to)
    }

    /// Merged busy intervals within `[from, to)` of claims on time (start, end, show-as) that
    /// are neither cancelled nor series masters: what `Store::busy_times` reads.
    pub fn busy_spans(
        &self,
        claims: impl IntoIterator<Item = (DateTime<Utc>, DateTime<Utc>, ShowAs)>,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Vec<(DateTime<Utc>, DateTime<Utc>)> {
        let mut spans: Vec<(DateTime<Utc>, DateTime<Utc>)> = claims
            .into_iter()
            .filter(|(start, end, show_as)| {
                *show_as != ShowAs::Free && self.blocks(*show_as) && *start < to && *end > from
            })
            .map(|(start, end, _)| (start.max(from), end.min(to)))
            .collect();
        spans.sort();
        let mut merged: Vec<(DateTime<Utc>, DateTime<Utc>)> = Vec::with_capacity(spans.len());
        for (s, e) in spans {
            match merged.last_mut() {
                Some(last) if s <= last.1 => last.1 = last.1.max(e),
                _ => merged.push((s, e)),
            }
        }
        merged
    }
}

/// Whether a reader must see this event masked.
pub fn must_mask(calendar: &Calendar, event: &Event) -> bool {
    let private = matches!(event.data.sensitivity, Sensitivity::Private | Sensitivity::Confidential);
    private || (calendar.busy_only && event.origin == Origin::Exchange)
}

/// The event as a reader may see it: masked when [`must_mask`] says so.
pub fn present(calendar: &Calendar, event: &Event) -> Event {
    if !must_mask(calendar, event) {
        return event.clone();
    }
    let mut masked = event.clone();
    masked.data = mask(&event.data);
    masked
}

/// "Busy only": keeps time and status, drops what the event is about and who attends.
pub fn mask(data: &EventData) -> EventData {
    EventData {
        subject: "Busy".into(),
        body: String::new(),
        location: String::new(),
        organizer: None,
        attendees: Vec::new(),
        ..data.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::*;
    use chrono::TimeZone;

    fn t(h: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 1, 5, h, 0, 0).unwrap()
    }

    fn ev(show_as: ShowAs, s: u32, e: u32) -> EventData {
        let mut d = EventData::new("x", t(s), t(e));
        d.show_as = show_as;
        d
    }

    #[test]
    fn free_is_hidden_and_tentative_and_oof_block() {
        let p = FreeBusyPolicy::default();
        assert!(!p.visible(&ev(ShowAs::Free, 9, 10)));
        assert!(p.blocks(ShowAs::Tentative));
        assert!(p.blocks(ShowAs::Oof));
        assert!(p.blocks(ShowAs::Busy));
        assert!(!p.blocks(ShowAs::Free));
    }

    #[test]
    fn working_elsewhere_is_configurable() {
        assert!(!FreeBusyPolicy::default().blocks(ShowAs::WorkingElsewhere));
        assert!(FreeBusyPolicy { working_elsewhere_blocks: true }.blocks(ShowAs::WorkingElsewhere));
    }

    #[test]
    fn busy_intervals_merge_and_skip_free() {
        let p = FreeBusyPolicy::default();
        let evs = [
            ev(ShowAs::Busy, 9, 10),
            ev(ShowAs::Tentative, 10, 11),
            ev(ShowAs::Free, 12, 13),
            ev(ShowAs::Oof, 14, 16),
            ev(ShowAs::Busy, 15, 17),
        ];
        let got = p.busy_intervals(evs.iter(), t(0), t(16));
        assert_eq!(got, vec![(t(9), t(11)), (t(14), t(16))]);
    }

    fn calendar(busy_only: bool) -> Calendar {
        Calendar {
            id: 1,
            email: "a@b.c".into(),
            kind: CalendarKind::Person,
            display_name: "A".into(),
            connection_id: 1,
            site_id: None,
            busy_only,
            link: LinkState::Verified,
        }
    }

    fn event(origin: Origin, sensitivity: Sensitivity) -> Event {
        let mut data = ev(ShowAs::Busy, 9, 10);
        data.subject = "Salary review".into();
        data.location = "Room 1".into();
        data.sensitivity = sensitivity;
        data.attendees.push(Attendee {
            email: "x@b.c".into(),
            name: "X".into(),
            role: AttendeeRole::Required,
            response: ResponseStatus::Accepted,
        });
        Event { id: EventId::new("e"), calendar_id: 1, origin, data, version: 1, deleted: false }
    }

    #[test]
    fn busy_only_masks_exchange_events_but_keeps_time() {
        let shown = present(&calendar(true), &event(Origin::Exchange, Sensitivity::Normal));
        assert_eq!(shown.data.subject, "Busy");
        assert!(shown.data.location.is_empty() && shown.data.attendees.is_empty());
        assert_eq!((shown.data.start, shown.data.end), (t(9), t(10)));
        let open = present(&calendar(false), &event(Origin::Exchange, Sensitivity::Normal));
        assert_eq!(open.data.subject, "Salary review");
    }

    #[test]
    fn private_events_are_always_masked() {
        let shown = present(&calendar(false), &event(Origin::Exchange, Sensitivity::Private));
        assert_eq!(shown.data.subject, "Busy");
        let shown = present(&calendar(false), &event(Origin::Local, Sensitivity::Confidential));
        assert_eq!(shown.data.subject, "Busy");
    }
}
