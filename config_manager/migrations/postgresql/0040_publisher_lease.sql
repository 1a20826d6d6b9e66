-- Replicas (issue 16): several managers on one PostgreSQL database; exactly one publishes,
-- the holder of this lease (config_manager/lease.py). Each acquisition takes the next
-- generation; the new holder raises the epoch (so instances refuse anything an older
-- holder may still send) and republishes every current config. expires_at is the
-- database server's clock: one clock for every replica.
CREATE TABLE publisher_lease (
    id          INTEGER PRIMARY KEY CHECK (id = 1),
    holder      TEXT NOT NULL,
    generation  BIGINT NOT NULL,
    acquired_at TIMESTAMPTZ NOT NULL,
    expires_at  TIMESTAMPTZ NOT NULL
);
INSERT INTO publisher_lease (id, holder, generation, acquired_at, expires_at)
VALUES (1, '', 0, '-infinity', '-infinity');
