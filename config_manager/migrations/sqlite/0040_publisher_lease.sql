-- Replicas (issue 16) run on PostgreSQL only: a SQLite file has one manager (its lock
-- file), which always publishes. The table exists so that both dialects keep the same
-- schema (and copy-to-postgres the same tables); nothing uses it on SQLite.
CREATE TABLE publisher_lease (
    id          INTEGER PRIMARY KEY CHECK (id = 1),
    holder      TEXT NOT NULL,
    generation  INTEGER NOT NULL,
    acquired_at TEXT NOT NULL,
    expires_at  TEXT NOT NULL
) STRICT;
