-- Initial schema of the config manager's database.
CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
) STRICT;

CREATE TABLE services (
    name            TEXT PRIMARY KEY,
    current_version INTEGER NOT NULL CHECK (current_version >= 1),
    updated_at      TEXT NOT NULL
) STRICT;

-- Every version of every config is kept. values_json holds secrets only as ciphertext.
CREATE TABLE versions (
    service     TEXT NOT NULL REFERENCES services(name),
    version     INTEGER NOT NULL CHECK (version >= 1),
    epoch       INTEGER NOT NULL,
    values_json TEXT NOT NULL,
    created_at  TEXT NOT NULL,
    created_by  TEXT NOT NULL,
    change_id   TEXT NOT NULL,
    PRIMARY KEY (service, version)
) STRICT;

-- Written in the same transaction as the version; published_at set after the PUBACK.
CREATE TABLE outbox (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    service      TEXT NOT NULL,
    version      INTEGER NOT NULL,
    created_at   TEXT NOT NULL,
    published_at TEXT,
    FOREIGN KEY (service, version) REFERENCES versions(service, version)
) STRICT;
CREATE INDEX outbox_pending ON outbox(id) WHERE published_at IS NULL;

-- API tokens: only the SHA-256 of each (high-entropy, random) token is stored.
CREATE TABLE tokens (
    name         TEXT PRIMARY KEY,
    role         TEXT NOT NULL CHECK (role IN ('viewer', 'editor', 'admin')),
    token_hash   TEXT NOT NULL UNIQUE,
    created_at   TEXT NOT NULL,
    created_by   TEXT NOT NULL,
    revoked_at   TEXT
) STRICT;
