-- Retired services (issue 12): see the SQLite migration of the same number.
ALTER TABLE services ADD COLUMN retired_at TEXT;
ALTER TABLE services ADD COLUMN retired_by TEXT;
