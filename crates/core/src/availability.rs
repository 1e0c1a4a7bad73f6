//! Availability: merging busy intervals and finding free slots. Pure functions of their
//! inputs; the busy intervals come from [`crate::policy::FreeBusyPolicy::busy_intervals`].

use chrono::{DateTime, Duration, Utc};

/// An instant range `[start, end)`.
pub type Span = (DateTime<Utc>, DateTime<Utc>);

/// Sorted, non-overlapping union of `spans` (touching spans join).
pub fn merge(mut spans: Vec<Span>) -> Vec<Span> {
    spans.retain(|(s, e)| s < e);
    spans.sort();
    let mut out: Vec<Span> = Vec::with_capacity(spans.len());
    for (s, e) in spans {
        match out.last_mut() {
            Some(last) if s <= last.1 => last.1 = last.1.max(e),
            _ => out.push((s, e)),
        }
    }
    out
}

/// Whether `[start, end)` overlaps none of the sorted, merged `busy` spans.
pub fn is_free(busy: &[Span], start: DateTime<Utc>, end: DateTime<Utc>) -> bool {
    // The first span ending after `start` is the only one that can overlap first.
    let i = busy.partition_point(|(_, e)| *e <= start);
    busy.get(i).is_none_or(|(s, _)| *s >= end)
}

/// Starts of the slots of length `duration` within `[from, to)`, on multiples of `step` after
/// `from`, that overlap nothing in `busy` (sorted and merged), at most `limit` of them.
pub fn free_slots(
    busy: &[Span],
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    duration: Duration,
    step: Duration,
    limit: usize,
) -> Vec<DateTime<Utc>> {
    let mut out = Vec::new();
    if duration <= Duration::zero() || step <= Duration::zero() {
        return out;
    }
    let mut start = from;
    while start + duration <= to && out.len() < limit {
        if is_free(busy, start, start + duration) {
            out.push(start);
        }
        start += step;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn t(h: u32, m: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 1, 5, h, m, 0).unwrap()
    }

    #[test]
    fn merge_joins_overlapping_and_touching_spans_and_drops_empty_ones() {
        let got = merge(vec![(t(10, 0), t(11, 0)), (t(9, 0), t(10, 0)), (t(13, 0), t(14, 0)), (t(12, 0), t(12, 0))]);
        assert_eq!(got, vec![(t(9, 0), t(11, 0)), (t(13, 0), t(14, 0))]);
    }

    #[test]
    fn free_slots_avoid_every_busy_span() {
        let busy = merge(vec![(t(9, 0), t(10, 0)), (t(11, 0), t(11, 30))]);
        let got = free_slots(&busy, t(8, 0), t(12, 0), Duration::minutes(60), Duration::minutes(30), 10);
        assert_eq!(got, vec![t(8, 0), t(10, 0)]);
        let all = free_slots(&[], t(8, 0), t(9, 0), Duration::minutes(30), Duration::minutes(15), 10);
        assert_eq!(all, vec![t(8, 0), t(8, 15), t(8, 30)]);
        assert_eq!(free_slots(&[], t(8, 0), t(18, 0), Duration::minutes(30), Duration::minutes(30), 3).len(), 3);
        assert!(is_free(&busy, t(10, 0), t(11, 0)), "touching is not overlapping");
        assert!(!is_free(&busy, t(9, 59), t(10, 30)));
    }
}
