-- A write is ONE statement: INSERT INTO versions. The database itself then
--   * refuses a version that does not follow the service's current one (optimistic lock),
--   * advances the service's current version,
--   * adds the outbox row (its id is the version row's rowid, so the writer knows it).
-- A single statement is atomic and, in autocommit mode, its own durable transaction.
CREATE TRIGGER versions_follow_current BEFORE INSERT ON versions
WHEN NEW.version != COALESCE((SELECT current_version FROM services WHERE name = NEW.service), 0) + 1
BEGIN
    SELECT RAISE(ABORT, 'version conflict');
END;

CREATE TRIGGER versions_advance AFTER INSERT ON versions
BEGIN
    INSERT INTO services (name, current_version, updated_at)
    VALUES (NEW.service, NEW.version, NEW.created_at)
    ON CONFLICT (name) DO UPDATE
    SET current_version = excluded.current_version, updated_at = excluded.updated_at;
    INSERT INTO outbox (id, service, version, created_at)
    VALUES (NEW.rowid, NEW.service, NEW.version, NEW.created_at);
END;
