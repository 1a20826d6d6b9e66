-- What each service instance last reported (see the SQLite migration of the same number).
CREATE TABLE instances (
    service     TEXT NOT NULL,
    instance    TEXT NOT NULL,
    status      TEXT NOT NULL,
    version     BIGINT,
    epoch       BIGINT,
    reason      TEXT,
    detail      TEXT,
    time        TEXT,
    received_at DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (service, instance)
);
