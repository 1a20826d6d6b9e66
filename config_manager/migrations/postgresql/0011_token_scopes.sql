-- Token scopes (issue 12): services_json NULL = every service; else a JSON array of names.
ALTER TABLE tokens ADD COLUMN services_json TEXT;
