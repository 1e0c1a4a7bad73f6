-- calbridge store schema, version 3 (PostgreSQL): administrators of the admin web UI.
--
-- Only a slow, salted hash of each password is kept (a PHC string, argon2id). User names are
-- stored lower-cased. Instants are microseconds since the Unix epoch (UTC).

CREATE TABLE admins (
    id            BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    username      TEXT   COLLATE "C" NOT NULL UNIQUE,
    password_hash TEXT   NOT NULL,
    created_us    BIGINT NOT NULL,
    updated_us    BIGINT NOT NULL
);
