//! Room discovery: the organisation's rooms and room lists (EWS GetRoomLists/GetRooms, Graph
//! `places`) imported as calendars of a connection, in one call.
//!
//! Each room list becomes a site of the connection (a building, a campus) unless the caller
//! names one site for them all; a room in no list is linked to the connection itself. A room
//! already linked keeps its link (its site, name and privacy option are the administrator's);
//! new links start `pending` and are verified by the first sync. Importing again adds only
//! rooms that are new in Exchange.

use calbridge_core::model::{CalendarKind, Connection, SiteId};
use calbridge_core::remote::{Remote, RemoteError};
use calbridge_core::store::{NewCalendar, Store, StoreError};

/// What an import did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RoomImport {
    /// Rooms linked now, by address.
    pub linked: Vec<String>,
    /// Rooms that were linked already.
    pub existing: Vec<String>,
    /// Sites made for room lists, by name.
    pub sites_created: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("Exchange did not list its rooms: {0}")]
    Remote(#[from] RemoteError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Links every room Exchange lists to `connection` (see the module header). `site`: put them
/// all in this site instead of one per room list.
pub async fn import_rooms(
    store: &dyn Store,
    remote: &dyn Remote,
    connection: &Connection,
    site: Option<SiteId>,
) -> Result<RoomImport, ImportError> {
    let rooms = remote.rooms().await?;
    let mut report = RoomImport::default();
    let mut sites = store.sites().await?;
    for room in rooms {
        let email = room.email.trim().to_ascii_lowercase();
        if email.is_empty() {
            continue;
        }
        if store.calendar_by_email(&email).await?.is_some() {
            report.existing.push(email);
            continue;
        }
        let site_id = match (site, room.room_list.as_deref().map(str::trim).filter(|l| !l.is_empty())) {
            (Some(s), _) => Some(s),
            (None, None) => None,
            (None, Some(list)) => {
                // The list's own site; a site of that name under another connection is left
                // alone, and this connection's gets the connection's name beside it.
                let mine = sites.iter().find(|s| s.name == list && s.connection_id == connection.id);
                let taken = sites.iter().any(|s| s.name == list && s.connection_id != connection.id);
                match mine {
                    Some(s) => Some(s.id),
                    None => {
                        let name = if taken { format!("{list} ({})", connection.name) } else { list.to_string() };
                        let created = match sites.iter().find(|s| s.name == name && s.connection_id == connection.id) {
                            Some(s) => s.clone(),
                            None => {
                                let s = store.upsert_site(&name, connection.id).await?;
                                report.sites_created.push(s.name.clone());
                                sites.push(s.clone());
                                s
                            }
                        };
                        Some(created.id)
                    }
                }
            }
        };
        let display_name = match room.capacity {
            Some(seats) if !room.name.contains("seat") => format!("{} ({seats} seats)", room.name),
            _ => room.name.clone(),
        };
        store
            .upsert_calendar(NewCalendar {
                email: email.clone(),
                kind: CalendarKind::Room,
                display_name,
                connection_id: connection.id,
                site_id,
                busy_only: false,
            })
            .await?;
        report.linked.push(email);
    }
    Ok(report)
}
