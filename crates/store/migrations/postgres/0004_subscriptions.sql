-- calbridge store schema, version 4 (PostgreSQL): change-notification subscriptions (Graph),
-- one per calendar. Only a SHA-256 of each clientState is kept. Instants are microseconds
-- since the Unix epoch (UTC).

CREATE TABLE subscriptions (
    id                TEXT   COLLATE "C" PRIMARY KEY,
    calendar_id       BIGINT NOT NULL UNIQUE REFERENCES calendars (id) ON DELETE CASCADE,
    client_state_hash TEXT   NOT NULL,
    expires_us        BIGINT NOT NULL
);
