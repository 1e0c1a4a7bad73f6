-- calbridge store schema, version 6 (SQLite): sync requests, by which a worker that does not
-- hold a calendar's lease asks its holder to sync it now (a "sync now", a change notification
-- that reached another worker). One row per calendar; instants are microseconds since the
-- Unix epoch (UTC).

CREATE TABLE sync_requests (
    calendar_id  INTEGER PRIMARY KEY REFERENCES calendars (id) ON DELETE CASCADE,
    requested_us INTEGER NOT NULL
);
