-- What each service instance last reported on config/applied/<service>/<instance>. The
-- manager rebuilds its instance view from here at start, so the view does not depend on
-- the broker delivering retained reports to a wildcard subscription (RabbitMQ's MQTT
-- plugin does not). Written in batches, off the config write path; a removed retained
-- report (empty payload) deletes the row.
CREATE TABLE instances (
    service     TEXT NOT NULL,
    instance    TEXT NOT NULL,
    status      TEXT NOT NULL,
    version     INTEGER,
    epoch       INTEGER,
    reason      TEXT,
    detail      TEXT,
    time        TEXT,
    received_at REAL NOT NULL,
    PRIMARY KEY (service, instance)
) STRICT;
