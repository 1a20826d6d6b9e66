-- Governance (issue 12): hash-chained history, the audit log, idempotent writes.
--
-- Every version row carries the hash chain (see docs/manager.md, "Hash-chained history"):
--   prev_hash: row_hash of the version row stored before it (any service), 64 zeros first;
--   row_hash:  SHA-256 of the RFC 8785 canonical JSON of the row's content and prev_hash.
-- Rows stored before this migration are chained by the manager when it opens the database.
ALTER TABLE versions ADD COLUMN prev_hash TEXT;
ALTER TABLE versions ADD COLUMN row_hash TEXT;
CREATE UNIQUE INDEX versions_row_hash ON versions(row_hash) WHERE row_hash IS NOT NULL;

-- Every accepted or refused change and every administrative event.
CREATE TABLE audit (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    at          TEXT NOT NULL,
    actor       TEXT NOT NULL,
    action      TEXT NOT NULL,
    outcome     TEXT NOT NULL CHECK (outcome IN ('ok', 'refused')),
    service     TEXT,
    version     INTEGER,
    request_id  TEXT,
    reason      TEXT,
    detail_json TEXT NOT NULL DEFAULT '{}'
) STRICT;
CREATE INDEX audit_service ON audit(service, id);
CREATE INDEX audit_at ON audit(at);

-- Idempotency-Key: the first outcome of a write, stored in the write's own transaction.
CREATE TABLE idempotency (
    token        TEXT NOT NULL,
    key          TEXT NOT NULL,
    request_hash TEXT NOT NULL,
    result_json  TEXT NOT NULL,
    created_at   REAL NOT NULL,
    PRIMARY KEY (token, key)
) STRICT;
CREATE INDEX idempotency_created ON idempotency(created_at);
