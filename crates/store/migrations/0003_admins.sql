-- calbridge store schema, version 3: administrators of the admin web UI.
--
-- Only a slow, salted hash of each password is kept (a PHC string, argon2id). User names are
-- stored lower-cased. Instants are microseconds since the Unix epoch (UTC).

CREATE TABLE admins (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    username      TEXT    NOT NULL UNIQUE,
    password_hash TEXT    NOT NULL,
    created_us    INTEGER NOT NULL,
    updated_us    INTEGER NOT NULL
);
