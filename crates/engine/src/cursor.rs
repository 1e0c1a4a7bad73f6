//! The stored cursor: the adapter's opaque cursor, tagged with the window it was made for.
//!
//! Graph's calendarView delta tokens carry the range of the first request; a cursor is only
//! reused while the engine's window is the same, otherwise the window has moved on and a full
//! listing starts.

use calbridge_core::sync::{Cursor, Window};

fn tag(window: &Window) -> String {
    format!("{}/{}", window.start.format("%Y-%m-%dT%H:%M:%SZ"), window.end.format("%Y-%m-%dT%H:%M:%SZ"))
}

/// The cursor as stored: `window|adapter cursor`.
pub fn wrap(cursor: &Cursor, window: &Window) -> Cursor {
    Cursor(format!("{}|{}", tag(window), cursor.0))
}

/// The adapter's cursor, if `stored` was made for `window`.
pub fn unwrap(stored: &Cursor, window: &Window) -> Option<Cursor> {
    let (w, inner) = stored.0.split_once('|')?;
    (w == tag(window) && !inner.is_empty()).then(|| Cursor(inner.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{Duration, TimeZone, Utc};

    #[test]
    fn a_cursor_is_reused_only_for_its_window() {
        let now = Utc.with_ymd_and_hms(2026, 11, 23, 12, 0, 0).unwrap();
        let w = Window::around(now, 30, 365);
        let c = wrap(&Cursor("/v1.0/users/a/calendarView/delta?$deltatoken=x|y".into()), &w);
        assert_eq!(unwrap(&c, &w).unwrap().0, "/v1.0/users/a/calendarView/delta?$deltatoken=x|y");
        let later = Window::around(now + Duration::days(8), 30, 365);
        assert_ne!(w, later, "the window moves on weekly");
        assert_eq!(unwrap(&c, &later), None);
        assert_eq!(unwrap(&Cursor("legacy-without-window".into()), &w), None);
    }
}
