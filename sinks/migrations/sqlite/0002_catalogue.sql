-- The embedded twin of the TimescaleDB catalogue (postgres/0002_catalogue.sql): same tables
-- and keys, times in microseconds since the Unix epoch, JSON and vectors as text, no
-- hypertables (retention is a DELETE).
CREATE TABLE IF NOT EXISTS streams (
    id                 TEXT    PRIMARY KEY,
    name               TEXT    NOT NULL,
    source_url         TEXT    NOT NULL,
    source_kind        TEXT    NOT NULL,
    status             TEXT    NOT NULL DEFAULT 'stopped',
    credentials_secret TEXT,
    calibration        TEXT,
    zones              TEXT    NOT NULL DEFAULT '[]',
    enabled            INTEGER NOT NULL DEFAULT 1,
    created_us         INTEGER NOT NULL,
    updated_us         INTEGER NOT NULL
);

CREATE TABLE IF NOT EXISTS horses (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    stream_id     TEXT    NOT NULL REFERENCES streams (id) ON DELETE CASCADE,
    display_name  TEXT    NOT NULL,
    colour        TEXT,
    first_seen_us INTEGER NOT NULL,
    last_seen_us  INTEGER NOT NULL,
    -- JSON array of integers.
    track_ids     TEXT    NOT NULL DEFAULT '[]',
    UNIQUE (stream_id, display_name)
);
CREATE INDEX IF NOT EXISTS horses_stream_last_seen ON horses (stream_id, last_seen_us DESC);

-- JSON array of 1280 floats; nearest-horse search is a brute-force cosine scan in Rust.
CREATE TABLE IF NOT EXISTS horse_features (
    id        INTEGER PRIMARY KEY AUTOINCREMENT,
    horse_id  INTEGER NOT NULL REFERENCES horses (id) ON DELETE CASCADE,
    stream_id TEXT    NOT NULL REFERENCES streams (id) ON DELETE CASCADE,
    time_us   INTEGER NOT NULL,
    embedding TEXT    NOT NULL,
    UNIQUE (horse_id, time_us)
);
CREATE INDEX IF NOT EXISTS horse_features_stream ON horse_features (stream_id);

CREATE TABLE IF NOT EXISTS alerts (
    id                 INTEGER PRIMARY KEY AUTOINCREMENT,
    time_us            INTEGER NOT NULL,
    stream_id          TEXT    NOT NULL REFERENCES streams (id) ON DELETE CASCADE,
    horse_id           INTEGER REFERENCES horses (id) ON DELETE SET NULL,
    kind               TEXT    NOT NULL,
    severity           TEXT    NOT NULL CHECK (severity IN ('info', 'warning', 'critical')),
    message            TEXT    NOT NULL,
    dedup_key          TEXT    UNIQUE,
    acknowledged_us    INTEGER,
    acknowledged_by    TEXT
);
CREATE INDEX IF NOT EXISTS alerts_stream_time ON alerts (stream_id, time_us DESC);

CREATE TABLE IF NOT EXISTS gait_metrics (
    time_us      INTEGER NOT NULL,
    stream_id    TEXT    NOT NULL REFERENCES streams (id) ON DELETE CASCADE,
    track_id     INTEGER NOT NULL,
    horse_id     INTEGER,
    speed        REAL    NOT NULL,
    acceleration REAL    NOT NULL,
    unit         TEXT    NOT NULL,
    stride_hz    REAL,
    gait_class   TEXT    NOT NULL,
    distance     REAL    NOT NULL,
    PRIMARY KEY (stream_id, track_id, time_us)
);
CREATE INDEX IF NOT EXISTS gait_metrics_time ON gait_metrics (time_us);

CREATE TABLE IF NOT EXISTS users (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    username      TEXT    UNIQUE NOT NULL,
    password_hash TEXT    NOT NULL,
    role          TEXT    NOT NULL CHECK (role IN ('admin', 'manager', 'viewer')),
    created_us    INTEGER NOT NULL
);

CREATE TABLE IF NOT EXISTS models (
    name   TEXT    PRIMARY KEY,
    task   TEXT    NOT NULL,
    file   TEXT    NOT NULL,
    sha256 TEXT    NOT NULL,
    active INTEGER NOT NULL DEFAULT 0
);

CREATE TABLE IF NOT EXISTS stream_models (
    stream_id  TEXT NOT NULL REFERENCES streams (id) ON DELETE CASCADE,
    model_name TEXT NOT NULL REFERENCES models (name) ON DELETE CASCADE,
    PRIMARY KEY (stream_id, model_name)
);

-- Retention deletes detections by time.
CREATE INDEX IF NOT EXISTS detections_time ON detections (time_us);
