-- calbridge store schema, version 5: leases, by which several workers on one database divide
-- the calendars. A calendar's row stays when its lease ends, so its fencing number only grows.
-- Instants are microseconds since the Unix epoch (UTC).

CREATE TABLE leases (
    calendar_id INTEGER PRIMARY KEY REFERENCES calendars (id) ON DELETE CASCADE,
    holder      TEXT    NOT NULL,
    fence       INTEGER NOT NULL,
    expires_us  INTEGER NOT NULL
);
CREATE INDEX leases_by_holder ON leases (holder, expires_us);

-- The workers, each with the last time it claimed: a worker seen within a lease's lifetime
-- counts when the calendars are shared out.
CREATE TABLE workers (
    holder  TEXT    PRIMARY KEY,
    seen_us INTEGER NOT NULL
);
