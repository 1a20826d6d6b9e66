-- Token scopes (issue 12): a token may be limited to named services.
-- services_json: NULL = every service; else a JSON array of service names.
ALTER TABLE tokens ADD COLUMN services_json TEXT;
