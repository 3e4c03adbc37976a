-- The spine's tables: detections (a TimescaleDB hypertable), processed chunks, and the
-- chunks that could not be processed (errors are data, kept for operators).
CREATE EXTENSION IF NOT EXISTS timescaledb;

CREATE TABLE IF NOT EXISTS detections (
    time        TIMESTAMPTZ NOT NULL,
    stream_id   TEXT        NOT NULL,
    chunk_id    TEXT        NOT NULL,
    frame_index INTEGER     NOT NULL,
    det_index   INTEGER     NOT NULL,
    pts_us      BIGINT      NOT NULL,
    class_id    INTEGER     NOT NULL,
    confidence  REAL        NOT NULL,
    -- {"x","y","w","h"} in source pixels (top-left corner and size) and "confidence".
    bbox        JSONB       NOT NULL,
    horse_id    BIGINT,
    track_id    BIGINT,
    -- A retried or replayed chunk writes the same keys: ON CONFLICT DO NOTHING keeps one row.
    PRIMARY KEY (stream_id, chunk_id, frame_index, det_index, time)
);
SELECT create_hypertable('detections', 'time', if_not_exists => TRUE);
CREATE INDEX IF NOT EXISTS detections_stream_time ON detections (stream_id, time DESC);

CREATE TABLE IF NOT EXISTS video_chunks (
    chunk_id     TEXT        PRIMARY KEY,
    stream_id    TEXT        NOT NULL,
    sequence     BIGINT      NOT NULL,
    start_time   TIMESTAMPTZ NOT NULL,
    end_time     TIMESTAMPTZ NOT NULL,
    frames       INTEGER     NOT NULL,
    detections   INTEGER     NOT NULL,
    status       TEXT        NOT NULL,
    processed_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    UNIQUE (stream_id, sequence)
);

CREATE TABLE IF NOT EXISTS chunk_errors (
    id          BIGSERIAL   PRIMARY KEY,
    recorded_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    source      TEXT        NOT NULL,
    partition   INTEGER     NOT NULL,
    "offset"    BIGINT      NOT NULL,
    stage       TEXT        NOT NULL,
    reason      TEXT        NOT NULL,
    UNIQUE (source, partition, "offset", stage)
);
