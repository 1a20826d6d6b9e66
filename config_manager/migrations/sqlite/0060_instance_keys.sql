-- Signed applied reports (issue 11 part 4, docs/protocol.md "Report signature"): the key
-- each instance signs its reports with, pinned on first use; a new key only by an admin
-- (POST /api/v1/services/{service}/instances/{instance}/key, audited). Kept when the
-- instance's report row is removed, so an id reused with another key is still forged.
CREATE TABLE instance_keys (
    service    TEXT NOT NULL,
    instance   TEXT NOT NULL,
    public_key TEXT NOT NULL,
    key_id     TEXT NOT NULL,
    pinned_at  TEXT NOT NULL,
    pinned_by  TEXT,
    PRIMARY KEY (service, instance)
) STRICT;
-- forged: the latest report received failed verification (forged_reason says why); the
-- other columns keep the genuine state. pending_key: a validly signed but unpinned key
-- (what an admin may approve). signed_high: the latest time of a genuine report.
ALTER TABLE instances ADD COLUMN forged INTEGER NOT NULL DEFAULT 0;
ALTER TABLE instances ADD COLUMN forged_reason TEXT;
ALTER TABLE instances ADD COLUMN pending_key TEXT;
ALTER TABLE instances ADD COLUMN signed_high TEXT;
