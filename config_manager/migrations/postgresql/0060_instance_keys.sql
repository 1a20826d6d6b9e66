-- Signed applied reports (issue 11 part 4): see the SQLite migration of the same number.
CREATE TABLE instance_keys (
    service    TEXT NOT NULL,
    instance   TEXT NOT NULL,
    public_key TEXT NOT NULL,
    key_id     TEXT NOT NULL,
    pinned_at  TEXT NOT NULL,
    pinned_by  TEXT,
    PRIMARY KEY (service, instance)
);
ALTER TABLE instances ADD COLUMN forged INTEGER NOT NULL DEFAULT 0;
ALTER TABLE instances ADD COLUMN forged_reason TEXT;
ALTER TABLE instances ADD COLUMN pending_key TEXT;
ALTER TABLE instances ADD COLUMN signed_high TEXT;
