-- calbridge store schema, version 2, for PostgreSQL: the same tables as ../0002_api.sql.
--
-- API keys (hashed), sealed connection secrets, webhook endpoints with their outbox, and the
-- last sync run per calendar. Instants are microseconds since the Unix epoch (UTC).

-- The connection's client secret or password, sealed under a master key.
-- calbridge_core::store::SealedSecret; NULL when the secret comes from the environment.
ALTER TABLE connections ADD COLUMN secret JSONB;

CREATE TABLE api_keys (
    id         BIGINT  GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name       TEXT    NOT NULL,
    scope      TEXT    NOT NULL CHECK (scope IN ('read', 'write', 'admin')),
    hash       TEXT    NOT NULL UNIQUE,                     -- hex SHA-256 of the token
    prefix     TEXT    NOT NULL,
    created_us BIGINT  NOT NULL
);

CREATE TABLE webhooks (
    id          TEXT    COLLATE "C" PRIMARY KEY,
    url         TEXT    NOT NULL,
    events      JSONB   NOT NULL,                           -- array of event types
    description TEXT    NOT NULL DEFAULT '',
    secret      JSONB   NOT NULL,                           -- SealedSecret (signing secret)
    created_us  BIGINT  NOT NULL
);

-- Messages, written in the same transaction as the change they report. The payload is text,
-- not jsonb: it is sent (and signed) byte for byte as it was written.
CREATE TABLE outbox (
    id         TEXT    COLLATE "C" PRIMARY KEY,             -- msg_...: the webhook-id header
    event_type TEXT    NOT NULL,
    payload    TEXT    NOT NULL,                            -- the JSON body
    created_us BIGINT  NOT NULL
);

-- One row per message and subscribed endpoint, made with the message.
CREATE TABLE deliveries (
    id              BIGINT  GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    message_id      TEXT    COLLATE "C" NOT NULL REFERENCES outbox (id) ON DELETE CASCADE,
    webhook_id      TEXT    COLLATE "C" NOT NULL REFERENCES webhooks (id) ON DELETE CASCADE,
    state           TEXT    NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'delivered', 'failed')),
    attempts        BIGINT  NOT NULL DEFAULT 0,
    next_attempt_us BIGINT  NOT NULL,
    last_error      TEXT,
    delivered_us    BIGINT,
    UNIQUE (message_id, webhook_id)
);

CREATE INDEX deliveries_due ON deliveries (state, next_attempt_us);
-- The foreign keys' other side, so deleting a webhook or pruning the outbox needs no scan.
CREATE INDEX deliveries_by_webhook ON deliveries (webhook_id);

CREATE TABLE sync_status (
    calendar_id BIGINT  PRIMARY KEY REFERENCES calendars (id) ON DELETE CASCADE,
    status      JSONB   NOT NULL                            -- SyncStatus
);
