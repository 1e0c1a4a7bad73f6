//! [`EwsRemote`]: calbridge's [`Remote`] seam over EWS.
//!
//! - `mailbox`: GetFolder of the mailbox's calendar (it exists and calbridge may open it),
//!   then ResolveNames for its display name (best effort); `verify_mailbox` (a link's
//!   verification) is the GetFolder alone.
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
//!   `push_many` carries a sync's changes to independent events in one CreateItem and one
//!   DeleteItem per kind of notice, and one GetItem then one UpdateItem per kind for the
//!   updates; EWS answers each item with a message of its own.
//!
//! Series: SyncFolderItems reports a series as its master. calbridge keeps the *instances*
//! of a series over both protocols (see `calbridge_core::series`), so a master is expanded
//! here: its occurrences in the window come from its `Recurrence` at the master's content,
//! without its `DeletedOccurrences` and `ModifiedOccurrences`; the modified ones in the window
//! (exceptions) are read with GetItem. An instance's remote id is `{master id}#{InstanceIndex}`,
//! stable when an occurrence becomes an exception, and read back as an `OccurrenceItemId`.
//! After the instances a [`RemoteChange::SeriesListed`] says the series is complete, so
//! occurrences that went (deleted, the series shortened) go locally too; a deleted master takes
//! its instances with it. An occurrence's version is its master's change key.

use async_trait::async_trait;

use calbridge_core::remote::{MailboxInfo, Remote, RemoteCalendar, RemoteError, RoomInfo};
use std::collections::{BTreeMap, HashSet};

use chrono::{DateTime, Utc};

use calbridge_core::model::{Series, SeriesKind};
use calbridge_core::series;
use calbridge_core::sync::{ChangePage, Confirmed, Cursor, PushChange, RemoteChange, RemoteItem, Window};

use crate::client::{message_result, EwsClient};
use crate::convert::{self, item_shape, sync_shape};
use crate::error::EwsError;
use crate::wire::ops::sync_folder_items::Change;
use crate::wire::ops::update_item::ItemChange;
use crate::wire::types::{Item, ItemId, ItemRef};

const FULL: &str = "full:";
const SYNC: &str = "sync:";

/// The remote id of the `index`-th occurrence (EWS `InstanceIndex`) of the series `master`.
pub fn occurrence_id(master: &str, index: u32) -> String {
    format!("{master}#{index}")
}

/// The series and index an occurrence id names. EWS ids are base64, so `#` is never theirs.
pub fn parse_occurrence_id(id: &str) -> Option<(&str, u32)> {
    let (master, index) = id.rsplit_once('#')?;
    Some((master, index.parse().ok().filter(|i| *i > 0)?))
}

/// How EWS is asked for the item a remote id names: an item, or an occurrence of a series.
fn item_ref(remote_id: &str) -> ItemRef {
    match parse_occurrence_id(remote_id) {
        Some((master, instance_index)) => {
            ItemRef::Occurrence { recurring_master_id: master.to_string(), change_key: None, instance_index }
        }
        None => ItemRef::Item(ItemId::new(remote_id, None)),
    }
}

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

    /// Reads `ids` (remote ids: items or occurrences) with the full shape: each id with its
    /// item, or `None` when Exchange no longer has it. Other per-item errors are returned.
    async fn read(
        &self,
        email: &str,
        ids: &[String],
    ) -> Result<Vec<(String, Result<Option<Item>, EwsError>)>, EwsError> {
        let refs: Vec<ItemRef> = ids.iter().map(|i| item_ref(i)).collect();
        let msgs = self.client.get_items(email, &refs, &item_shape()).await?;
        Ok(ids
            .iter()
            .cloned()
            .zip(msgs)
            .map(|(id, m)| {
                let r = match message_result("GetItem", m) {
                    Ok(items) => Ok(items.into_iter().next()),
                    Err(e) if GONE.contains(&e.code().unwrap_or_default()) => Ok(None),
                    Err(e) => Err(e),
                };
                (id, r)
            })
            .collect())
    }
}

impl EwsRemote {
    /// A series' instances within the window, then its listing (see the module header).
    async fn expand(
        &self,
        email: &str,
        item: &Item,
        master: &RemoteItem,
        window: &Window,
        changes: &mut Vec<RemoteChange>,
        skipped: &mut Vec<String>,
    ) -> Result<(), RemoteError> {
        let master_id = master.remote_id.as_str();
        if master.provenance.is_some() {
            // A series calbridge created: its master links to the host application's series.
            changes.push(RemoteChange::Upsert(master.clone()));
        }
        let mut skip: HashSet<DateTime<Utc>> =
            item.deleted_occurrences.iter().flatten().filter_map(|s| convert::parse_time(s)).collect();
        let modified = item.modified_occurrences.as_deref().unwrap_or_default();
        skip.extend(modified.iter().filter_map(|m| convert::parse_time(&m.original_start)));
        let mut listed = Vec::new();
        for occ in series::occurrences(master_id, &master.data, window.start, window.end, &skip) {
            let remote_id = occurrence_id(master_id, occ.index);
            listed.push(remote_id.clone());
            changes.push(RemoteChange::Upsert(RemoteItem {
                remote_id,
                version: master.version.clone(),
                data: occ.data,
                provenance: None,
            }));
        }
        // Exceptions in the window, each by its series and index.
        let mut exceptions = Vec::new();
        for m in modified.iter().filter(|m| in_window(Some(&m.start), Some(&m.end), window)) {
            let original = convert::parse_time(&m.original_start);
            match original.and_then(|o| series::index_of(&master.data, o).map(|i| (o, i))) {
                Some((o, index)) => exceptions.push((occurrence_id(master_id, index), m.item_id.id.clone(), o)),
                None => tracing::warn!(
                    mailbox = email, master = master_id, original = %m.original_start,
                    "a modified occurrence is not a date of its series' rule; leaving it out"
                ),
            }
        }
        let real: Vec<String> = exceptions.iter().map(|(_, real, _)| real.clone()).collect();
        let reads = if real.is_empty() { Vec::new() } else { self.read(email, &real).await? };
        for ((remote_id, _, original), (_, read)) in exceptions.into_iter().zip(reads) {
            listed.push(remote_id.clone());
            let data = match read {
                Ok(Some(x)) => convert::remote_item(&x).map_err(|e| e.to_string()),
                Ok(None) => continue,
                Err(e) => Err(e.to_string()),
            };
            match data {
                Ok(mut r) => {
                    r.data.series = Series {
                        kind: SeriesKind::Exception,
                        master_id: Some(master_id.to_string()),
                        original_start: Some(original),
                        recurrence: None,
                    };
                    changes.push(RemoteChange::Upsert(RemoteItem { remote_id, provenance: None, ..r }));
                }
                Err(e) => {
                    tracing::warn!(mailbox = email, id = %remote_id, "skipping an exception EWS would not give: {e}");
                    skipped.push(remote_id);
                }
            }
        }
        changes.push(RemoteChange::SeriesListed { master_id: master_id.to_string(), instance_ids: listed });
        Ok(())
    }
}

/// The answers that mean an item (or an occurrence) is no longer there.
const GONE: [&str; 3] = [
    "ErrorItemNotFound",
    "ErrorCalendarOccurrenceIsDeletedFromRecurrence",
    "ErrorCalendarOccurrenceIndexIsOutOfRecurrenceRange",
];

/// The confirmation of a create or update: the id and change key EWS answered with, and the
/// content as sent. Not read back: resources answer a meeting asynchronously, and a read
/// racing with that answer would record a version whose content calbridge never merged; the
/// answer arrives instead as the next change to the item.
fn confirmation(id: ItemId, sent: &calbridge_core::model::EventData) -> Confirmed {
    Confirmed { remote_id: id.id, version: id.change_key.unwrap_or_default(), data: sent.clone() }
}

/// Whether an update may be sent: it needs the change key last read, and content EWS can hold.
fn updatable(remote_id: &str, if_match: &str, data: &calbridge_core::model::EventData) -> Result<(), RemoteError> {
    if if_match.is_empty() {
        return Err(RemoteError::Permanent(format!(
            "refusing to update {remote_id} without a version: the change key last read is unknown"
        )));
    }
    match convert::unwritable(data) {
        Some(why) => Err(RemoteError::Permanent(why)),
        None => Ok(()),
    }
}

/// The item change of an update, and whom it notifies given what Exchange holds now. An
/// occurrence is changed through its series (it becomes an exception).
fn prepared_update(
    remote_id: &str,
    if_match: &str,
    data: &calbridge_core::model::EventData,
    current: Option<&calbridge_core::model::EventData>,
) -> (ItemChange, &'static str) {
    let send = convert::update_invitations(current, data);
    let mut change = convert::item_change(remote_id, if_match, data);
    if let ItemRef::Occurrence { recurring_master_id, instance_index, .. } = item_ref(remote_id) {
        let change_key = Some(if_match.to_string());
        change.item_id = ItemRef::Occurrence { recurring_master_id, change_key, instance_index };
    }
    (change, send)
}

/// An update's confirmation: the new change key; an occurrence keeps the id calbridge knows it by.
fn updated_confirmation(
    remote_id: &str,
    updated: Item,
    data: &calbridge_core::model::EventData,
) -> Result<Option<Confirmed>, RemoteError> {
    let id = updated
        .item_id
        .ok_or_else(|| RemoteError::Permanent("EWS updated the item but did not say its new change key".into()))?;
    Ok(Some(Confirmed { remote_id: remote_id.to_string(), ..confirmation(id, data) }))
}

/// Puts each item's answer of one request in its change's place (`indices`), or the request's
/// own error in all of them.
fn fill<T>(
    out: &mut [Option<Result<Option<Confirmed>, RemoteError>>],
    indices: &[usize],
    answers: Result<Vec<Result<T, EwsError>>, EwsError>,
    confirm: impl Fn(usize, T) -> Result<Option<Confirmed>, RemoteError>,
) {
    match answers {
        Ok(answers) => {
            for (&i, answer) in indices.iter().zip(answers) {
                out[i] = Some(answer.map_err(|e| e.classify()).and_then(|t| confirm(i, t)));
            }
        }
        Err(e) => {
            let e = e.classify();
            for &i in indices {
                out[i] = Some(Err(e.clone()));
            }
        }
    }
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
    fn watches_notifications(&self) -> bool {
        true
    }

    async fn watch(
        &self,
        mailboxes: Vec<String>,
        options: calbridge_core::remote::WatchOptions,
    ) -> Result<Box<dyn calbridge_core::remote::Watch>, RemoteError> {
        Ok(Box::new(crate::streaming::watch(self.client.clone(), mailboxes, options)))
    }

    fn throttled_wait(&self) -> std::time::Duration {
        self.client.throttled_wait()
    }

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

    /// GetFolder alone: verification needs no display name.
    async fn verify_mailbox(&self, email: &str) -> Result<(), RemoteError> {
        self.client.calendar(email).await?;
        Ok(())
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
        let mut wanted: Vec<String> = Vec::new();
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
                        wanted.push(id.id);
                    } else if !listing {
                        changes.push(RemoteChange::Removed { remote_id: id.id });
                    }
                }
                Change::ReadFlagChange { .. } => {}
            }
        }
        let mut skipped = Vec::new();
        let mut masters = Vec::new();
        if !wanted.is_empty() {
            for (id, read) in self.read(email, &wanted).await? {
                match read {
                    Ok(Some(item)) => match convert::remote_item(&item) {
                        Ok(r) if r.data.series.kind == SeriesKind::Master => masters.push((item, r)),
                        Ok(r) if r.data.overlaps(window.start, window.end) => changes.push(RemoteChange::Upsert(r)),
                        Ok(r) => {
                            if !listing {
                                changes.push(RemoteChange::Removed { remote_id: r.remote_id });
                            }
                        }
                        Err(e) => {
                            tracing::warn!(mailbox = email, %id, "skipping an item EWS sent: {e}");
                            skipped.push(id);
                        }
                    },
                    Ok(None) => {
                        if !listing {
                            changes.push(RemoteChange::Removed { remote_id: id });
                        }
                    }
                    Err(e) => {
                        tracing::warn!(mailbox = email, %id, "skipping an item EWS would not read: {e}");
                        skipped.push(id);
                    }
                }
            }
        }
        for (item, master) in &masters {
            self.expand(email, item, master, window, &mut changes, &mut skipped).await?;
        }
        let done = result.includes_last_item_in_range;
        let prefix = if listing && !done { FULL } else { SYNC };
        Ok(ChangePage { changes, next: Cursor(format!("{prefix}{}", result.sync_state)), done, skipped })
    }

    async fn fetch(&self, email: &str, ids: &[String]) -> Result<Vec<RemoteItem>, RemoteError> {
        let mut out = Vec::new();
        for (id, read) in self.read(email, ids).await? {
            match read {
                // An occurrence keeps the id it was asked by.
                Ok(Some(item)) => match convert::remote_item(&item) {
                    Ok(r) => out.push(RemoteItem { remote_id: id, ..r }),
                    Err(e) => tracing::warn!(mailbox = email, %id, "skipping an item EWS sent: {e}"),
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
                updatable(remote_id, if_match, data)?;
                // What Exchange holds now decides whether attendees hear of the change.
                let current = match self.read(email, std::slice::from_ref(remote_id)).await?.pop() {
                    Some((_, Ok(Some(item)))) => convert::event_data(&item).ok(),
                    Some((_, Ok(None))) => {
                        return Err(RemoteError::NotFound(format!("item {remote_id} is no longer in Exchange")))
                    }
                    _ => None,
                };
                let (change, send) = prepared_update(remote_id, if_match, data, current.as_ref());
                let updated = self.client.update_item(email, change, send).await?;
                updated_confirmation(remote_id, updated, data)
            }
            PushChange::Delete { remote_id } => {
                match self.client.delete_item(email, item_ref(remote_id), "SendToAllAndSaveCopy").await {
                    Ok(()) => Ok(None),
                    Err(e) => match e.classify() {
                        RemoteError::NotFound(_) => Ok(None),
                        other => Err(other),
                    },
                }
            }
        }
    }

    /// Creates in one CreateItem and deletes in one DeleteItem per kind of notice sent, and
    /// updates in one UpdateItem per kind after one GetItem of what Exchange holds: each item
    /// answered on its own, as EWS does.
    async fn push_many(&self, email: &str, changes: &[PushChange]) -> Vec<Result<Option<Confirmed>, RemoteError>> {
        let mut out: Vec<Option<Result<Option<Confirmed>, RemoteError>>> = vec![None; changes.len()];
        let mut creates: BTreeMap<&'static str, Vec<usize>> = BTreeMap::new();
        let mut updates: Vec<usize> = Vec::new();
        let mut deletes: Vec<usize> = Vec::new();
        for (i, change) in changes.iter().enumerate() {
            match change {
                PushChange::Create { data, .. } => match convert::unwritable(data) {
                    Some(why) => out[i] = Some(Err(RemoteError::Permanent(why))),
                    None => creates.entry(convert::invitations(data)).or_default().push(i),
                },
                PushChange::Update { remote_id, if_match, data } => match updatable(remote_id, if_match, data) {
                    Ok(()) => updates.push(i),
                    Err(e) => out[i] = Some(Err(e)),
                },
                PushChange::Delete { .. } => deletes.push(i),
            }
        }
        for (send, group) in creates {
            let items = group
                .iter()
                .map(|&i| match &changes[i] {
                    PushChange::Create { data, provenance } => convert::to_item(data, Some(provenance)),
                    _ => unreachable!("grouped creates"),
                })
                .collect();
            let answers = self.client.create_items(email, items, send).await;
            fill(&mut out, &group, answers, |i, item| {
                let PushChange::Create { data, .. } = &changes[i] else { unreachable!("grouped creates") };
                let id = item
                    .item_id
                    .ok_or_else(|| RemoteError::Permanent("EWS created the item but did not say its id".into()))?;
                Ok(Some(confirmation(id, data)))
            });
        }
        if !deletes.is_empty() {
            let ids = deletes
                .iter()
                .map(|&i| match &changes[i] {
                    PushChange::Delete { remote_id } => item_ref(remote_id),
                    _ => unreachable!("grouped deletes"),
                })
                .collect();
            let answers = self.client.delete_items(email, ids, "SendToAllAndSaveCopy").await;
            fill(&mut out, &deletes, answers, |_, ()| Ok(None));
            for &i in &deletes {
                // Gone already is fine.
                if matches!(out[i], Some(Err(RemoteError::NotFound(_)))) {
                    out[i] = Some(Ok(None));
                }
            }
        }
        if !updates.is_empty() {
            let ids: Vec<String> = updates
                .iter()
                .map(|&i| match &changes[i] {
                    PushChange::Update { remote_id, .. } => remote_id.clone(),
                    _ => unreachable!("grouped updates"),
                })
                .collect();
            match self.read(email, &ids).await {
                Err(e) => {
                    let e = e.classify();
                    for &i in &updates {
                        out[i] = Some(Err(e.clone()));
                    }
                }
                Ok(current) => {
                    let mut by_send: BTreeMap<&'static str, Vec<(usize, ItemChange)>> = BTreeMap::new();
                    for (&i, (_, now)) in updates.iter().zip(current) {
                        let PushChange::Update { remote_id, if_match, data } = &changes[i] else {
                            unreachable!("grouped updates")
                        };
                        let current = match now {
                            Ok(Some(item)) => convert::event_data(&item).ok(),
                            Ok(None) => {
                                let gone = format!("item {remote_id} is no longer in Exchange");
                                out[i] = Some(Err(RemoteError::NotFound(gone)));
                                continue;
                            }
                            Err(_) => None,
                        };
                        let (change, send) = prepared_update(remote_id, if_match, data, current.as_ref());
                        by_send.entry(send).or_default().push((i, change));
                    }
                    for (send, group) in by_send {
                        let (indices, item_changes): (Vec<usize>, Vec<ItemChange>) = group.into_iter().unzip();
                        let answers = self.client.update_items(email, item_changes, send).await;
                        fill(&mut out, &indices, answers, |i, item| {
                            let PushChange::Update { remote_id, data, .. } = &changes[i] else {
                                unreachable!("grouped updates")
                            };
                            updated_confirmation(remote_id, item, data)
                        });
                    }
                }
            }
        }
        out.into_iter().map(|o| o.expect("every change is answered")).collect()
    }

    async fn decline(&self, email: &str, remote_id: &str, comment: &str) -> Result<(), RemoteError> {
        // DeclineItem names an item by its id: an occurrence's is read first.
        let item_id = match parse_occurrence_id(remote_id) {
            None => remote_id.to_string(),
            Some(_) => match self.read(email, &[remote_id.to_string()]).await?.pop() {
                Some((_, Ok(Some(item)))) => item.item_id.map(|i| i.id).unwrap_or_default(),
                Some((_, Err(e))) => return Err(e.classify()),
                _ => return Err(RemoteError::NotFound(format!("occurrence {remote_id} is no longer in Exchange"))),
            },
        };
        self.client.decline_item(email, &item_id, comment).await.map_err(|e| e.classify())
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
