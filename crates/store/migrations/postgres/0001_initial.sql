-- calbridge store schema, version 1, for PostgreSQL: the same tables as ../0001_initial.sql.
--
-- Embedded into the binary by `src/migrate.rs` and applied by sqlx's migrator, which records
-- it in `_sqlx_migrations`. Never edit an applied migration: add a new numbered file instead,
-- here and beside the SQLite ones, with the same version (its checksum is verified on every
-- start).
--
-- Ids are store-assigned identity columns (a sequence never hands out a number twice, so a
-- stale id held by a caller can never point at a newer row), except events, whose id is chosen
-- by calbridge (a UUID, usable as an idempotency key before any store saw the event). Integers
-- are BIGINT throughout. JSON columns hold the serde form of the calbridge-core type named
-- beside them: `jsonb` for calbridge's own settings and states, `text` where the exact text
-- matters (an event's content, which may hold any character the host application sent).
-- Instants are microseconds since the Unix epoch (UTC), used only for range queries: the
-- exact instants live in `events.data`. Names, addresses and ids compare and sort bytewise
-- (`COLLATE "C"`), as in SQLite, whatever the database's default collation.

CREATE TABLE connections (
    id                BIGINT  GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name              TEXT    COLLATE "C" NOT NULL UNIQUE,
    kind              TEXT    NOT NULL,                     -- ConnectionSettings::kind()
    settings          JSONB   NOT NULL,                     -- ConnectionSettings
    default_organizer TEXT,
    max_threads       BIGINT  NOT NULL CHECK (max_threads >= 0)
);

CREATE TABLE sites (
    id            BIGINT  GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name          TEXT    COLLATE "C" NOT NULL UNIQUE,
    connection_id BIGINT  NOT NULL REFERENCES connections (id) ON DELETE CASCADE
);

CREATE INDEX sites_by_connection ON sites (connection_id);

CREATE TABLE calendars (
    id            BIGINT  GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    email         TEXT    COLLATE "C" NOT NULL UNIQUE,      -- lower-cased SMTP address
    kind          TEXT    NOT NULL CHECK (kind IN ('person', 'room', 'equipment')),
    display_name  TEXT    NOT NULL,
    connection_id BIGINT  NOT NULL REFERENCES connections (id) ON DELETE CASCADE,
    site_id       BIGINT  REFERENCES sites (id) ON DELETE SET NULL,
    busy_only     BOOLEAN NOT NULL DEFAULT FALSE,
    link_state    JSONB   NOT NULL DEFAULT '{"state":"unverified"}'  -- LinkState
);

CREATE INDEX calendars_by_connection ON calendars (connection_id);
CREATE INDEX calendars_by_site ON calendars (site_id);

CREATE TABLE events (
    id          TEXT    COLLATE "C" PRIMARY KEY,
    calendar_id BIGINT  NOT NULL REFERENCES calendars (id) ON DELETE CASCADE,
    origin      TEXT    NOT NULL CHECK (origin IN ('local', 'exchange')),
    data        TEXT    NOT NULL,                           -- JSON: EventData
    start_us    BIGINT  NOT NULL,                           -- data.start, floor to microseconds
    end_us      BIGINT  NOT NULL,                           -- data.end, floor to microseconds
    version     BIGINT  NOT NULL,
    deleted     BOOLEAN NOT NULL DEFAULT FALSE
);

CREATE INDEX events_by_calendar_time ON events (calendar_id, start_us, end_us);

-- The last state both sides agreed on, per event. No foreign key to events: the engine writes
-- an event and its record in either order within one commit, and removes both together.
CREATE TABLE sync_records (
    local_id       TEXT    COLLATE "C" PRIMARY KEY,
    calendar_id    BIGINT  NOT NULL REFERENCES calendars (id) ON DELETE CASCADE,
    remote_id      TEXT    COLLATE "C" NOT NULL,
    remote_version TEXT    NOT NULL,
    remote_hash    TEXT    NOT NULL,
    local_version  BIGINT  NOT NULL,
    local_hash     TEXT    NOT NULL,
    UNIQUE (calendar_id, remote_id)
);

CREATE TABLE cursors (
    calendar_id BIGINT  PRIMARY KEY REFERENCES calendars (id) ON DELETE CASCADE,
    cursor      TEXT    NOT NULL
);
