-- calbridge store schema, version 2: what the host application's API needs.
--
-- API keys (hashed), sealed connection secrets, webhook endpoints with their outbox, and the
-- last sync run per calendar. Instants are microseconds since the Unix epoch (UTC).

-- The connection's client secret or password, sealed under a master key.
-- JSON: calbridge_core::store::SealedSecret; NULL when the secret comes from the environment.
ALTER TABLE connections ADD COLUMN secret TEXT;

CREATE TABLE api_keys (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    name       TEXT    NOT NULL,
    scope      TEXT    NOT NULL CHECK (scope IN ('read', 'write', 'admin')),
    hash       TEXT    NOT NULL UNIQUE,                     -- hex SHA-256 of the token
    prefix     TEXT    NOT NULL,
    created_us INTEGER NOT NULL
);

CREATE TABLE webhooks (
    id          TEXT    PRIMARY KEY NOT NULL,
    url         TEXT    NOT NULL,
    events      TEXT    NOT NULL,                           -- JSON array of event types
    description TEXT    NOT NULL DEFAULT '',
    secret      TEXT    NOT NULL,                           -- JSON: SealedSecret (signing secret)
    created_us  INTEGER NOT NULL
);

-- Messages, written in the same transaction as the change they report.
CREATE TABLE outbox (
    id         TEXT    PRIMARY KEY NOT NULL,                -- msg_...: the webhook-id header
    event_type TEXT    NOT NULL,
    payload    TEXT    NOT NULL,                            -- the JSON body
    created_us INTEGER NOT NULL
);

-- One row per message and subscribed endpoint, made with the message.
CREATE TABLE deliveries (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    message_id      TEXT    NOT NULL REFERENCES outbox (id) ON DELETE CASCADE,
    webhook_id      TEXT    NOT NULL REFERENCES webhooks (id) ON DELETE CASCADE,
    state           TEXT    NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'delivered', 'failed')),
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_us INTEGER NOT NULL,
    last_error      TEXT,
    delivered_us    INTEGER,
    UNIQUE (message_id, webhook_id)
);

CREATE INDEX deliveries_due ON deliveries (state, next_attempt_us);

CREATE TABLE sync_status (
    calendar_id INTEGER PRIMARY KEY NOT NULL REFERENCES calendars (id) ON DELETE CASCADE,
    status      TEXT    NOT NULL                            -- JSON: SyncStatus
);
