-- calbridge store schema, version 1.
--
-- Embedded into the binary by `src/migrate.rs` and applied by sqlx's migrator, which records
-- it in `_sqlx_migrations`. Never edit an applied migration: add a new numbered file instead
-- (its checksum is verified on every start).
--
-- Ids are store-assigned integers (AUTOINCREMENT: never reused, so a stale id held by a caller
-- can never point at a newer row), except events, whose id is chosen by calbridge (a UUID,
-- usable as an idempotency key before any store saw the event). JSON columns hold the serde
-- form of the calbridge-core type named beside them. Instants are microseconds since the Unix
-- epoch (UTC), used only for range queries: the exact instants live in `events.data`.

CREATE TABLE connections (
    id                INTEGER PRIMARY KEY AUTOINCREMENT,
    name              TEXT    NOT NULL UNIQUE,
    kind              TEXT    NOT NULL,                     -- ConnectionSettings::kind()
    settings          TEXT    NOT NULL,                     -- JSON: ConnectionSettings
    default_organizer TEXT,
    max_threads       INTEGER NOT NULL CHECK (max_threads >= 0)
);

CREATE TABLE sites (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    name          TEXT    NOT NULL UNIQUE,
    connection_id INTEGER NOT NULL REFERENCES connections (id) ON DELETE CASCADE
);

CREATE INDEX sites_by_connection ON sites (connection_id);

CREATE TABLE calendars (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    email         TEXT    NOT NULL UNIQUE,                  -- lower-cased SMTP address
    kind          TEXT    NOT NULL CHECK (kind IN ('person', 'room', 'equipment')),
    display_name  TEXT    NOT NULL,
    connection_id INTEGER NOT NULL REFERENCES connections (id) ON DELETE CASCADE,
    site_id       INTEGER REFERENCES sites (id) ON DELETE SET NULL,
    busy_only     INTEGER NOT NULL DEFAULT 0 CHECK (busy_only IN (0, 1)),
    link_state    TEXT    NOT NULL DEFAULT '{"state":"unverified"}'  -- JSON: LinkState
);

CREATE INDEX calendars_by_connection ON calendars (connection_id);
CREATE INDEX calendars_by_site ON calendars (site_id);

CREATE TABLE events (
    id          TEXT    PRIMARY KEY NOT NULL,
    calendar_id INTEGER NOT NULL REFERENCES calendars (id) ON DELETE CASCADE,
    origin      TEXT    NOT NULL CHECK (origin IN ('local', 'exchange')),
    data        TEXT    NOT NULL,                           -- JSON: EventData
    start_us    INTEGER NOT NULL,                           -- data.start, floor to microseconds
    end_us      INTEGER NOT NULL,                           -- data.end, floor to microseconds
    version     INTEGER NOT NULL,
    deleted     INTEGER NOT NULL DEFAULT 0 CHECK (deleted IN (0, 1))
);

CREATE INDEX events_by_calendar_time ON events (calendar_id, start_us, end_us);

-- The last state both sides agreed on, per event. No foreign key to events: the engine writes
-- an event and its record in either order within one commit, and removes both together.
CREATE TABLE sync_records (
    local_id       TEXT    PRIMARY KEY NOT NULL,
    calendar_id    INTEGER NOT NULL REFERENCES calendars (id) ON DELETE CASCADE,
    remote_id      TEXT    NOT NULL,
    remote_version TEXT    NOT NULL,
    remote_hash    TEXT    NOT NULL,
    local_version  INTEGER NOT NULL,
    local_hash     TEXT    NOT NULL,
    UNIQUE (calendar_id, remote_id)
);

CREATE TABLE cursors (
    calendar_id INTEGER PRIMARY KEY NOT NULL REFERENCES calendars (id) ON DELETE CASCADE,
    cursor      TEXT    NOT NULL
);
