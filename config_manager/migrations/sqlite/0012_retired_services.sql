-- Retired services (issue 12): DELETE /configs/{service} marks the service retired. Its
-- retained message becomes a signed tombstone (docs/protocol.md, "Tombstone"); its last
-- config stays stored; writes are refused.
ALTER TABLE services ADD COLUMN retired_at TEXT;
ALTER TABLE services ADD COLUMN retired_by TEXT;
