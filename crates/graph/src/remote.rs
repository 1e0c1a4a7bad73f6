//! [`GraphRemote`]: calbridge's [`Remote`] seam over Microsoft Graph.
//!
//! - `mailbox`: `GET /users/{email}`; if the app may not read the directory (403
//!   `Authorization_RequestDenied`, it has only Calendars.ReadWrite), the mailbox's calendars
//!   answer instead.
//! - `changes`: `calendarView/delta`. Without a cursor a round starts over the window; with
//!   one, the cursor (a whole `@odata.nextLink` or `@odata.deltaLink`) is fetched as it is.
//!   `@removed` items become [`RemoteChange::Removed`], the rest upserts; an item that cannot
//!   be converted is logged and its id (if it has one) reported in `skipped`; `next` is the
//!   nextLink (`done = false`) or the deltaLink (`done = true`).
//! - `fetch`: `GET /users/{email}/events/{id}` each (concurrently, within the mailbox's
//!   limit), with the provenance property; ids Graph no longer has are left out.
//! - `push`: create (`POST …/calendar/events`, provenance in `transactionId` and the extended
//!   property), update (`PATCH` with `If-Match`; refused, unsent, without a version), delete
//!   (`DELETE`; gone already is fine). `push_many` sends the same requests as JSON batches of
//!   up to 20, one round trip each.
//!
//! Errors are classified once, by [`GraphError::classify`].

use async_trait::async_trait;
use tokio::task::JoinSet;

use calbridge_core::remote::{MailboxInfo, Remote, RemoteCalendar, RemoteError, RemoteSubscription, RoomInfo};
use calbridge_core::sync::{ChangePage, Confirmed, Cursor, PushChange, RemoteItem, Window};
use chrono::{DateTime, Utc};

use crate::client::GraphClient;
use crate::convert;
use crate::endpoints::calendar_view_delta::{DeltaNext, DeltaPage};
use crate::endpoints::{event_create, event_delete, event_update, GraphRequest};
use crate::error::GraphError;

/// The Graph adapter of one connection.
#[derive(Clone, Debug)]
pub struct GraphRemote {
    client: GraphClient,
}

impl GraphRemote {
    pub fn new(client: GraphClient) -> Self {
        GraphRemote { client }
    }

    pub fn client(&self) -> &GraphClient {
        &self.client
    }

    /// The request that applies `change`: create, conditional update or delete.
    fn push_request(&self, email: &str, change: &PushChange) -> Result<GraphRequest, GraphError> {
        let base = self.client.graph_url();
        match change {
            PushChange::Create { data, provenance } => {
                Ok(event_create::request(base, email, &convert::to_wire_create(data, provenance)))
            }
            PushChange::Update { remote_id, if_match, data } => {
                event_update::request(base, email, remote_id, if_match, &convert::to_wire(data))
            }
            PushChange::Delete { remote_id } => Ok(event_delete::request(base, email, remote_id)),
        }
    }

    async fn mailbox_from_calendars(&self, email: &str) -> Result<MailboxInfo, GraphError> {
        let calendars = self.client.calendars(email).await?;
        let default = calendars.iter().find(|c| c.is_default_calendar == Some(true)).or(calendars.first());
        let owner = default.and_then(|c| c.owner.as_ref());
        Ok(MailboxInfo {
            email: owner.and_then(|o| o.address.clone()).unwrap_or_else(|| email.to_string()),
            display_name: owner.and_then(|o| o.name.clone()).unwrap_or_default(),
        })
    }
}

/// A delta page as the engine's [`ChangePage`]. An event that cannot be converted is logged
/// and its id reported in `skipped`, so the engine does not take its absence for a deletion;
/// one without an id cannot be named, the log is all there is of it. Links are made relative
/// to `origin` (the Graph origin) when they point there.
fn change_page(email: &str, origin: &str, page: DeltaPage) -> ChangePage {
    let mut changes = Vec::with_capacity(page.events.len());
    let mut skipped = Vec::new();
    for ev in &page.events {
        match convert::remote_change(ev) {
            Ok(c) => changes.push(c),
            Err(e) => {
                tracing::warn!(mailbox = email, id = ?ev.id, "skipping an event Graph sent: {e}");
                if let Some(id) = ev.id.as_ref().filter(|i| !i.is_empty()) {
                    skipped.push(id.clone());
                }
            }
        }
    }
    let relative = |l: String| match l.strip_prefix(origin) {
        Some(rest) if rest.starts_with('/') => rest.to_string(),
        _ => l,
    };
    let (next, done) = match page.next {
        DeltaNext::NextLink(l) => (Cursor(relative(l)), false),
        DeltaNext::DeltaLink(l) => (Cursor(relative(l)), true),
    };
    ChangePage { changes, next, done, skipped }
}

/// A subscription as Graph answered it; its expiration as asked when Graph did not say.
fn subscription(s: crate::types::Subscription, asked: DateTime<Utc>) -> Result<RemoteSubscription, RemoteError> {
    let id =
        s.id.filter(|i| !i.is_empty())
            .ok_or_else(|| RemoteError::Permanent("Graph made a subscription but did not say its id".into()))?;
    let expires = s
        .expiration_date_time
        .as_deref()
        .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
        .map(|t| t.with_timezone(&Utc))
        .unwrap_or(asked);
    Ok(RemoteSubscription { id, expires })
}

#[async_trait]
impl Remote for GraphRemote {
    fn throttled_wait(&self) -> std::time::Duration {
        self.client.throttled_wait()
    }

    async fn mailbox(&self, email: &str) -> Result<MailboxInfo, RemoteError> {
        match self.client.user(email).await {
            Ok(u) => Ok(MailboxInfo {
                email: u.mail.or(u.user_principal_name).filter(|m| !m.is_empty()).unwrap_or_else(|| email.to_string()),
                display_name: u.display_name.unwrap_or_default(),
            }),
            Err(e) if e.status() == Some(403) && e.code() == Some("Authorization_RequestDenied") => {
                tracing::debug!(mailbox = email, "no directory permission; checking the mailbox through its calendars");
                Ok(self.mailbox_from_calendars(email).await?)
            }
            Err(e) => Err(e.into()),
        }
    }

    async fn list_calendars(&self, email: &str) -> Result<Vec<RemoteCalendar>, RemoteError> {
        let calendars = self.client.calendars(email).await?;
        Ok(calendars
            .into_iter()
            .filter_map(|c| {
                Some(RemoteCalendar {
                    id: c.id.filter(|i| !i.is_empty())?,
                    name: c.name.unwrap_or_default(),
                    is_default: c.is_default_calendar.unwrap_or(false),
                })
            })
            .collect())
    }

    async fn changes(&self, email: &str, window: &Window, cursor: Option<&Cursor>) -> Result<ChangePage, RemoteError> {
        // Cursors are stored relative to the Graph origin (`/v1.0/...?$deltatoken=...`): the
        // token is only ever sent to the configured `graph_url`, and a cursor survives a change
        // of host name or port (a proxy, a restarted simulator).
        let origin = self.client.graph_url().origin().ascii_serialization();
        let link = cursor.map(|c| if c.0.starts_with('/') { format!("{origin}{}", c.0) } else { c.0.clone() });
        let mailbox = email.to_string();
        let then = move |page| change_page(&mailbox, &origin, page);
        Ok(self.client.delta_then(email, window.start, window.end, link.as_deref(), then).await?)
    }

    async fn fetch(&self, email: &str, ids: &[String]) -> Result<Vec<RemoteItem>, RemoteError> {
        let mut tasks = JoinSet::new();
        for (i, id) in ids.iter().enumerate() {
            let client = self.client.clone();
            let (email, id) = (email.to_string(), id.clone());
            tasks.spawn(async move { (i, client.get_event(&email, &id).await) });
        }
        let mut found: Vec<(usize, RemoteItem)> = Vec::new();
        let mut first_error: Option<RemoteError> = None;
        while let Some(joined) = tasks.join_next().await {
            let (i, result) = joined.map_err(|e| RemoteError::Transient(format!("reading an event failed: {e}")))?;
            match result {
                Ok(ev) => match convert::remote_item(&ev) {
                    Ok(item) => found.push((i, item)),
                    Err(e) => tracing::warn!(mailbox = email, id = %ids[i], "skipping an event Graph sent: {e}"),
                },
                Err(e) => match e.classify() {
                    RemoteError::NotFound(_) => {}
                    other => {
                        first_error.get_or_insert(other);
                    }
                },
            }
        }
        if let Some(e) = first_error {
            return Err(e);
        }
        found.sort_by_key(|(i, _)| *i);
        Ok(found.into_iter().map(|(_, item)| item).collect())
    }

    async fn push(&self, email: &str, change: &PushChange) -> Result<Option<Confirmed>, RemoteError> {
        let answer = match self.push_request(email, change) {
            Ok(req) => self.client.send(email, &req).await,
            Err(e) => Err(e),
        };
        push_answer(change, answer)
    }

    /// One `$batch` round trip per 20 changes (see [`GraphClient::send_batch`]).
    async fn push_many(&self, email: &str, changes: &[PushChange]) -> Vec<Result<Option<Confirmed>, RemoteError>> {
        let mut answers: Vec<Option<Result<crate::client::GraphResponse, GraphError>>> = vec![None; changes.len()];
        let mut sendable = Vec::new();
        let mut requests = Vec::new();
        for (i, change) in changes.iter().enumerate() {
            match self.push_request(email, change) {
                Ok(r) => {
                    sendable.push(i);
                    requests.push(r);
                }
                // Refused before sending (an update without a version).
                Err(e) => answers[i] = Some(Err(e)),
            }
        }
        for (i, answer) in sendable.into_iter().zip(self.client.send_batch(email, &requests).await) {
            answers[i] = Some(answer);
        }
        changes
            .iter()
            .zip(answers)
            .map(|(change, answer)| push_answer(change, answer.expect("every change is answered or refused")))
            .collect()
    }

    fn pushes_notifications(&self) -> bool {
        true
    }

    async fn subscribe(
        &self,
        email: &str,
        notification_url: &str,
        client_state: &str,
        expires: DateTime<Utc>,
    ) -> Result<RemoteSubscription, RemoteError> {
        let s = self
            .client
            .create_subscription(email, notification_url, client_state, expires)
            .await
            .map_err(|e| e.classify())?;
        subscription(s, expires)
    }

    async fn renew(&self, email: &str, id: &str, expires: DateTime<Utc>) -> Result<DateTime<Utc>, RemoteError> {
        let s = self.client.renew_subscription(email, id, expires).await.map_err(|e| e.classify())?;
        Ok(subscription(s, expires)?.expires)
    }

    async fn unsubscribe(&self, email: &str, id: &str) -> Result<(), RemoteError> {
        match self.client.delete_subscription(email, id).await.map_err(|e| e.classify()) {
            Ok(()) | Err(RemoteError::NotFound(_)) => Ok(()),
            Err(e) => Err(e),
        }
    }

    async fn decline(&self, email: &str, remote_id: &str, comment: &str) -> Result<(), RemoteError> {
        self.client.decline_event(email, remote_id, comment).await.map_err(|e| e.classify())
    }

    async fn rooms(&self) -> Result<Vec<RoomInfo>, RemoteError> {
        let place_error = |e: GraphError| match e.classify() {
            RemoteError::Auth { message, .. } if e.status() == Some(403) => RemoteError::Auth {
                message,
                hint: "give the app registration the Microsoft Graph application permission Place.Read.All \
                       (with admin consent) to import rooms"
                    .into(),
            },
            other => other,
        };
        let mut out: Vec<RoomInfo> = Vec::new();
        let mut add = |p: crate::types::Place, list: Option<&str>| {
            let Some(email) = p.email_address.clone().filter(|e| !e.is_empty()) else { return };
            if out.iter().any(|r| r.email.eq_ignore_ascii_case(&email)) {
                return;
            }
            out.push(RoomInfo {
                name: p.display_name.clone().unwrap_or_else(|| email.clone()),
                capacity: p.capacity(),
                email,
                room_list: list.map(str::to_string),
            });
        };
        for list in self.client.room_lists().await.map_err(place_error)? {
            let Some(address) = list.email_address.as_deref() else { continue };
            for room in self.client.rooms_of(address).await.map_err(place_error)? {
                add(room, list.display_name.as_deref());
            }
        }
        // Rooms in no list.
        for room in self.client.rooms().await.map_err(place_error)? {
            add(room, None);
        }
        Ok(out)
    }
}

/// What Graph's answer to a push means: the confirmed version of a created or updated event;
/// nothing for a delete (gone already is fine).
fn push_answer(
    change: &PushChange,
    answer: Result<crate::client::GraphResponse, GraphError>,
) -> Result<Option<Confirmed>, RemoteError> {
    let confirm = |parsed: Result<crate::types::Event, GraphError>, sent| {
        let ev = parsed.map_err(|e| e.classify())?;
        convert::confirmed(&ev, sent)
            .map(Some)
            .map_err(|e| RemoteError::Permanent(format!("Graph confirmed the change but its answer is unusable: {e}")))
    };
    match (change, answer) {
        (PushChange::Create { data, .. }, Ok(r)) => confirm(event_create::parse(&r.body), data),
        (PushChange::Update { data, .. }, Ok(r)) => confirm(event_update::parse(&r.body), data),
        (PushChange::Delete { .. }, Ok(r)) => event_delete::parse(r.status).map(|()| None).map_err(|e| e.classify()),
        (PushChange::Delete { .. }, Err(e)) => match e.classify() {
            RemoteError::NotFound(_) => Ok(None),
            other => Err(other),
        },
        (_, Err(e)) => Err(e.classify()),
    }
}
#[cfg(test)]
mod tests {
    use super::*;
    use calbridge_core::model::EventData;
    use calbridge_core::sync::RemoteChange;
    use calbridge_core::{GraphSettings, Secret};
    use chrono::{TimeZone, Utc};

    use crate::endpoints::calendar_view_delta;
    use crate::GraphOptions;

    const ORIGIN: &str = "https://graph.microsoft.com";

    fn event(id: &str, start: &str) -> serde_json::Value {
        serde_json::json!({
            "id": id,
            "@odata.etag": "W/\"1\"",
            "subject": "Class",
            "start": {"dateTime": start, "timeZone": "UTC"},
            "end": {"dateTime": "2026-11-23T10:00:00.0000000", "timeZone": "UTC"}
        })
    }

    #[test]
    fn events_that_cannot_be_read_are_reported_as_skipped() {
        let body = serde_json::json!({
            "@odata.deltaLink": format!("{ORIGIN}/v1.0/users/a@contoso.com/calendarView/delta?$deltatoken=r1"),
            "value": [
                event("AAMkGood", "2026-11-23T09:00:00.0000000"),
                // A start Graph should never write: not a date-time.
                event("AAMkBad", "next tuesday-ish"),
                // An unknown zone, on an otherwise fine event.
                {"id": "AAMkZone", "start": {"dateTime": "2026-11-23T09:00:00", "timeZone": "Mars/Olympus"},
                 "end": {"dateTime": "2026-11-23T10:00:00", "timeZone": "Mars/Olympus"}},
                // No start at all.
                {"id": "AAMkNoStart", "subject": "x"},
                // Without an id it cannot be reported (only logged).
                {"subject": "no id", "start": {"dateTime": "garbage", "timeZone": "UTC"}},
                {"id": "", "start": {"dateTime": "garbage", "timeZone": "UTC"}},
                {"id": "AAMkGone", "@removed": {"reason": "deleted"}}
            ]
        });
        let base = url::Url::parse(ORIGIN).unwrap();
        let page = calendar_view_delta::parse(&base, body.to_string().as_bytes()).unwrap();
        let p = change_page("a@contoso.com", ORIGIN, page);
        assert_eq!(p.skipped, vec!["AAMkBad", "AAMkZone", "AAMkNoStart"]);
        let ids: Vec<&str> = p
            .changes
            .iter()
            .map(|c| match c {
                RemoteChange::Upsert(item) => item.remote_id.as_str(),
                RemoteChange::Removed { remote_id } => remote_id.as_str(),
                RemoteChange::SeriesListed { master_id, .. } => master_id.as_str(),
            })
            .collect();
        assert_eq!(ids, vec!["AAMkGood", "AAMkGone"]);
        assert!(p.done);
        assert_eq!(p.next, Cursor("/v1.0/users/a@contoso.com/calendarView/delta?$deltatoken=r1".into()));
    }

    #[test]
    fn a_clean_page_skips_nothing() {
        let body = serde_json::json!({
            "@odata.nextLink": format!("{ORIGIN}/v1.0/users/a@contoso.com/calendarView/delta?$skiptoken=p2"),
            "value": [event("AAMk1", "2026-11-23T09:00:00.0000000")]
        });
        let base = url::Url::parse(ORIGIN).unwrap();
        let page = calendar_view_delta::parse(&base, body.to_string().as_bytes()).unwrap();
        let p = change_page("a@contoso.com", ORIGIN, page);
        assert!(p.skipped.is_empty());
        assert_eq!(p.changes.len(), 1);
        assert!(!p.done);
    }

    #[tokio::test]
    async fn an_update_without_a_version_sends_nothing() {
        // Nothing listens at this graph_url or authority: any request would fail as Transient.
        let settings = GraphSettings {
            tenant_id: "t".into(),
            client_id: "c".into(),
            authority_url: "http://127.0.0.1:9".into(),
            graph_url: "http://127.0.0.1:9".into(),
        };
        let remote = GraphRemote::new(GraphClient::new(&settings, Secret::new("x"), GraphOptions::default()).unwrap());
        let s = Utc.with_ymd_and_hms(2026, 11, 23, 9, 0, 0).unwrap();
        let data = EventData::new("Class", s, s + chrono::Duration::hours(1));
        let change = PushChange::Update { remote_id: "AAMk1".into(), if_match: String::new(), data };
        match remote.push("a@contoso.com", &change).await {
            Err(RemoteError::Permanent(m)) => assert!(m.contains("refusing to update without a version"), "{m}"),
            other => panic!("{other:?}"),
        }
        assert_eq!((remote.client().requests(), remote.client().token_requests()), (0, 0));
    }
}
