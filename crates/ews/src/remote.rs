//! [`EwsRemote`]: calbridge's [`Remote`] seam over EWS.
//!
//! - `mailbox`: GetFolder of the mailbox's calendar (it exists and calbridge may open it),
//!   then ResolveNames for its display name (best effort).
//! - `changes`: SyncFolderItems on the calendar folder, `MaxChangesReturned` up to 512, with
//!   only `Start`, `End` and `CalendarItemType`; the items it reports that touch the window
//!   (and every series master, whose occurrences may) are then read with GetItem in batches.
//!   Without a cursor a full listing starts from an empty `SyncState` (every item arrives as
//!   a create); items outside the window are left out. Afterwards, an item changed outside
//!   the window is reported as removed (it moved out), as Graph's delta does. The cursor is
//!   the `SyncState`, tagged `full:` during a listing and `sync:` after it.
//!   `IncludesLastItemInRange` false means more pages (`done = false`).
//! - `fetch`: GetItem; ids Exchange no longer has (`ErrorItemNotFound`) are left out.
//! - `push`: CreateItem (`SendMeetingInvitations` to attendees, provenance as the extended
//!   property), UpdateItem (`ConflictResolution` NeverOverwrite with the change key last
//!   read: a stale one is `ErrorIrresolvableConflict`, a version conflict; the item is read
//!   first, so that only a key change — date, time, zone, location — re-sends the meeting,
//!   see [`convert::update_invitations`]), DeleteItem
//!   (`MoveToDeletedItems`, cancellations to attendees; gone already is fine). A create or
//!   update is confirmed with the id and change key EWS answers (see [`confirmation`]).
//!
//! Series are read as their masters (`SeriesKind::Master`); expanding occurrences over EWS
//! comes with the recurrence model.

use async_trait::async_trait;

use calbridge_core::remote::{MailboxInfo, Remote, RemoteCalendar, RemoteError, RoomInfo};
use calbridge_core::sync::{ChangePage, Confirmed, Cursor, PushChange, RemoteChange, RemoteItem, Window};

use crate::client::{message_result, EwsClient};
use crate::convert::{self, item_shape, sync_shape};
use crate::error::EwsError;
use crate::wire::ops::sync_folder_items::Change;
use crate::wire::types::{Item, ItemId, ItemRef};

const FULL: &str = "full:";
const SYNC: &str = "sync:";

/// The EWS adapter of one connection.
#[derive(Clone, Debug)]
pub struct EwsRemote {
    client: EwsClient,
}

/// Where a page of changes stands.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Position {
    /// A full listing, continuing from this state (`None`: its first page).
    Listing(Option<String>),
    /// Changes since this state.
    Since(String),
}

impl Position {
    fn parse(cursor: Option<&Cursor>) -> Result<Position, RemoteError> {
        let Some(c) = cursor else { return Ok(Position::Listing(None)) };
        if let Some(s) = c.0.strip_prefix(FULL) {
            Ok(Position::Listing(Some(s.to_string())))
        } else if let Some(s) = c.0.strip_prefix(SYNC) {
            Ok(Position::Since(s.to_string()))
        } else {
            // Not a cursor of this adapter (another protocol's, or damaged): list again.
            Err(RemoteError::CursorExpired)
        }
    }
}

impl EwsRemote {
    pub fn new(client: EwsClient) -> Self {
        EwsRemote { client }
    }

    pub fn client(&self) -> &EwsClient {
        &self.client
    }

    /// Reads `ids` with the full shape: each id with its item, or `None` when Exchange no
    /// longer has it. Other per-item errors are returned.
    async fn read(
        &self,
        email: &str,
        ids: &[ItemId],
    ) -> Result<Vec<(ItemId, Result<Option<Item>, EwsError>)>, EwsError> {
        let refs: Vec<ItemRef> = ids.iter().map(|i| ItemRef::Item(ItemId::new(i.id.clone(), None))).collect();
        let msgs = self.client.get_items(email, &refs, &item_shape()).await?;
        Ok(ids
            .iter()
            .cloned()
            .zip(msgs)
            .map(|(id, m)| {
                let r = match message_result("GetItem", m) {
                    Ok(items) => Ok(items.into_iter().next()),
                    Err(e) if e.code() == Some("ErrorItemNotFound") => Ok(None),
                    Err(e) => Err(e),
                };
                (id, r)
            })
            .collect())
    }
}

/// The confirmation of a create or update: the id and change key EWS answered with, and the
/// content as sent. Not read back: resources answer a meeting asynchronously, and a read
/// racing with that answer would record a version whose content calbridge never merged; the
/// answer arrives instead as the next change to the item.
fn confirmation(id: ItemId, sent: &calbridge_core::model::EventData) -> Confirmed {
    Confirmed { remote_id: id.id, version: id.change_key.unwrap_or_default(), data: sent.clone() }
}

fn in_window(start: Option<&str>, end: Option<&str>, window: &Window) -> bool {
    match (start.and_then(convert::parse_time), end.and_then(convert::parse_time)) {
        (Some(s), Some(e)) => s < window.end && e > window.start,
        // Without times it cannot be judged here: read it.
        _ => true,
    }
}

#[async_trait]
impl Remote for EwsRemote {
    async fn mailbox(&self, email: &str) -> Result<MailboxInfo, RemoteError> {
        self.client.calendar(email).await?;
        let display_name = match self.client.resolve_names(email).await {
            Ok(found) => found
                .into_iter()
                .find(|r| r.mailbox.email_address.as_deref().is_some_and(|a| a.eq_ignore_ascii_case(email)))
                .and_then(|r| r.mailbox.name)
                .unwrap_or_default(),
            Err(e) => {
                tracing::debug!(mailbox = email, "ResolveNames failed, the display name stays empty: {e}");
                String::new()
            }
        };
        Ok(MailboxInfo { email: email.to_string(), display_name })
    }

    async fn list_calendars(&self, email: &str) -> Result<Vec<RemoteCalendar>, RemoteError> {
        let folder = self.client.calendar(email).await?;
        let id = folder.folder_id.map(|f| f.id).unwrap_or_default();
        Ok(vec![RemoteCalendar {
            id,
            name: folder.display_name.unwrap_or_else(|| "Calendar".into()),
            is_default: true,
        }])
    }

    async fn changes(&self, email: &str, window: &Window, cursor: Option<&Cursor>) -> Result<ChangePage, RemoteError> {
        let position = Position::parse(cursor)?;
        let (state, listing) = match &position {
            Position::Listing(s) => (s.as_deref(), true),
            Position::Since(s) => (Some(s.as_str()), false),
        };
        let result = self.client.sync_folder_items(email, state, sync_shape()).await?;
        let mut changes = Vec::new();
        let mut wanted: Vec<ItemId> = Vec::new();
        for change in result.changes {
            match change {
                Change::Delete(id) => {
                    if !listing {
                        changes.push(RemoteChange::Removed { remote_id: id.id });
                    }
                }
                Change::Create(item) | Change::Update(item) => {
                    let Some(id) = item.item_id.clone().filter(|i| !i.id.is_empty()) else { continue };
                    let is_master = item.calendar_item_type.as_deref() == Some("RecurringMaster");
                    if !item.element.is_empty() && !item.is_calendar_item() {
                        continue;
                    }
                    if is_master || in_window(item.start.as_deref(), item.end.as_deref(), window) {
                        wanted.push(id);
                    } else if !listing {
                        changes.push(RemoteChange::Removed { remote_id: id.id });
                    }
                }
                Change::ReadFlagChange { .. } => {}
            }
        }
        let mut skipped = Vec::new();
        if !wanted.is_empty() {
            for (id, read) in self.read(email, &wanted).await? {
                match read {
                    Ok(Some(item)) => match convert::remote_item(&item) {
                        Ok(r)
                            if r.data.overlaps(window.start, window.end)
                                || r.data.series.kind != calbridge_core::model::SeriesKind::Single =>
                        {
                            changes.push(RemoteChange::Upsert(r))
                        }
                        Ok(r) => {
                            if !listing {
                                changes.push(RemoteChange::Removed { remote_id: r.remote_id });
                            }
                        }
                        Err(e) => {
                            tracing::warn!(mailbox = email, id = %id.id, "skipping an item EWS sent: {e}");
                            skipped.push(id.id);
                        }
                    },
                    Ok(None) => {
                        if !listing {
                            changes.push(RemoteChange::Removed { remote_id: id.id });
                        }
                    }
                    Err(e) => {
                        tracing::warn!(mailbox = email, id = %id.id, "skipping an item EWS would not read: {e}");
                        skipped.push(id.id);
                    }
                }
            }
        }
        let done = result.includes_last_item_in_range;
        let prefix = if listing && !done { FULL } else { SYNC };
        Ok(ChangePage { changes, next: Cursor(format!("{prefix}{}", result.sync_state)), done, skipped })
    }

    async fn fetch(&self, email: &str, ids: &[String]) -> Result<Vec<RemoteItem>, RemoteError> {
        let ids: Vec<ItemId> = ids.iter().map(|i| ItemId::new(i.clone(), None)).collect();
        let mut out = Vec::new();
        for (id, read) in self.read(email, &ids).await? {
            match read {
                Ok(Some(item)) => match convert::remote_item(&item) {
                    Ok(r) => out.push(r),
                    Err(e) => tracing::warn!(mailbox = email, id = %id.id, "skipping an item EWS sent: {e}"),
                },
                Ok(None) => {}
                Err(e) => return Err(e.classify()),
            }
        }
        Ok(out)
    }

    async fn push(&self, email: &str, change: &PushChange) -> Result<Option<Confirmed>, RemoteError> {
        match change {
            PushChange::Create { data, provenance } => {
                if let Some(why) = convert::unwritable(data) {
                    return Err(RemoteError::Permanent(why));
                }
                let item = convert::to_item(data, Some(provenance));
                let created = self.client.create_item(email, item, convert::invitations(data)).await?;
                let id = created
                    .item_id
                    .ok_or_else(|| RemoteError::Permanent("EWS created the item but did not say its id".into()))?;
                Ok(Some(confirmation(id, data)))
            }
            PushChange::Update { remote_id, if_match, data } => {
                if if_match.is_empty() {
                    return Err(RemoteError::Permanent(format!(
                        "refusing to update {remote_id} without a version: the change key last read is unknown"
                    )));
                }
                if let Some(why) = convert::unwritable(data) {
                    return Err(RemoteError::Permanent(why));
                }
                // What Exchange holds now decides whether attendees hear of the change.
                let current = match self.read(email, &[ItemId::new(remote_id.clone(), None)]).await?.pop() {
                    Some((_, Ok(Some(item)))) => convert::event_data(&item).ok(),
                    Some((_, Ok(None))) => {
                        return Err(RemoteError::NotFound(format!("item {remote_id} is no longer in Exchange")))
                    }
                    _ => None,
                };
                let send = convert::update_invitations(current.as_ref(), data);
                let change = convert::item_change(remote_id, if_match, data);
                let updated = self.client.update_item(email, change, send).await?;
                let id = updated.item_id.ok_or_else(|| {
                    RemoteError::Permanent("EWS updated the item but did not say its new change key".into())
                })?;
                Ok(Some(confirmation(id, data)))
            }
            PushChange::Delete { remote_id } => {
                let id = ItemRef::Item(ItemId::new(remote_id.clone(), None));
                match self.client.delete_item(email, id, "SendToAllAndSaveCopy").await {
                    Ok(()) => Ok(None),
                    Err(e) => match e.classify() {
                        RemoteError::NotFound(_) => Ok(None),
                        other => Err(other),
                    },
                }
            }
        }
    }

    async fn decline(&self, email: &str, remote_id: &str, comment: &str) -> Result<(), RemoteError> {
        self.client.decline_item(email, remote_id, comment).await.map_err(|e| e.classify())
    }

    async fn rooms(&self) -> Result<Vec<RoomInfo>, RemoteError> {
        let mut out: Vec<RoomInfo> = Vec::new();
        for list in self.client.room_lists().await? {
            let Some(address) = list.email_address.as_deref().filter(|a| !a.is_empty()) else { continue };
            for room in self.client.rooms(address).await? {
                let Some(email) = room.email_address.clone().filter(|e| !e.is_empty()) else { continue };
                if out.iter().any(|r| r.email.eq_ignore_ascii_case(&email)) {
                    continue;
                }
                out.push(RoomInfo {
                    name: room.name.clone().unwrap_or_else(|| email.clone()),
                    email,
                    room_list: list.name.clone(),
                    capacity: None,
                });
            }
        }
        Ok(out)
    }
}

impl From<EwsError> for RemoteError {
    fn from(e: EwsError) -> Self {
        e.classify()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_of_other_adapters_start_a_listing() {
        assert_eq!(Position::parse(None).unwrap(), Position::Listing(None));
        assert_eq!(Position::parse(Some(&Cursor("full:abc".into()))).unwrap(), Position::Listing(Some("abc".into())));
        assert_eq!(Position::parse(Some(&Cursor("sync:abc".into()))).unwrap(), Position::Since("abc".into()));
        assert_eq!(
            Position::parse(Some(&Cursor("/v1.0/users/a/calendarView/delta?$deltatoken=x".into()))).unwrap_err(),
            RemoteError::CursorExpired
        );
    }
}
