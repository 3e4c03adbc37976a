-- The embedded store's tables: the same shape as the TimescaleDB schema, times in
-- microseconds since the Unix epoch, JSON as text.
CREATE TABLE IF NOT EXISTS detections (
    time_us     INTEGER NOT NULL,
    stream_id   TEXT    NOT NULL,
    chunk_id    TEXT    NOT NULL,
    frame_index INTEGER NOT NULL,
    det_index   INTEGER NOT NULL,
    pts_us      INTEGER NOT NULL,
    class_id    INTEGER NOT NULL,
    confidence  REAL    NOT NULL,
    bbox        TEXT    NOT NULL,
    horse_id    INTEGER,
    track_id    INTEGER,
    PRIMARY KEY (stream_id, chunk_id, frame_index, det_index, time_us)
);

CREATE TABLE IF NOT EXISTS video_chunks (
    chunk_id      TEXT    PRIMARY KEY,
    stream_id     TEXT    NOT NULL,
    sequence      INTEGER NOT NULL,
    start_time_us INTEGER NOT NULL,
    end_time_us   INTEGER NOT NULL,
    frames        INTEGER NOT NULL,
    detections    INTEGER NOT NULL,
    status        TEXT    NOT NULL,
    UNIQUE (stream_id, sequence)
);

CREATE TABLE IF NOT EXISTS chunk_errors (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    recorded_us INTEGER NOT NULL,
    source      TEXT    NOT NULL,
    partition   INTEGER NOT NULL,
    "offset"    INTEGER NOT NULL,
    stage       TEXT    NOT NULL,
    reason      TEXT    NOT NULL,
    UNIQUE (source, partition, "offset", stage)
);
