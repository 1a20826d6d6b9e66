-- A write is ONE statement: INSERT INTO versions. The database itself then
--   * refuses a version that does not follow the service's current one (optimistic lock),
--   * advances the service's current version,
--   * adds the outbox row (its id is the version row's seq, so the writer knows it).
-- The same rules as the SQLite triggers, in PL/pgSQL.
CREATE FUNCTION versions_follow_current() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.version <> COALESCE(
        (SELECT current_version FROM services WHERE name = NEW.service), 0) + 1 THEN
        RAISE EXCEPTION 'version conflict' USING ERRCODE = 'integrity_constraint_violation';
    END IF;
    RETURN NEW;
END
$$;

CREATE TRIGGER versions_follow_current BEFORE INSERT ON versions
FOR EACH ROW EXECUTE FUNCTION versions_follow_current();

CREATE FUNCTION versions_advance() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO services (name, current_version, updated_at)
    VALUES (NEW.service, NEW.version, NEW.created_at)
    ON CONFLICT (name) DO UPDATE
    SET current_version = excluded.current_version, updated_at = excluded.updated_at;
    INSERT INTO outbox (id, service, version, created_at)
    VALUES (NEW.seq, NEW.service, NEW.version, NEW.created_at);
    RETURN NULL;
END
$$;

CREATE TRIGGER versions_advance AFTER INSERT ON versions
FOR EACH ROW EXECUTE FUNCTION versions_advance();
