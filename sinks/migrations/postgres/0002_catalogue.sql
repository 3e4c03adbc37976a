-- The catalogue around the detections: streams (with calibration, zones and server-side
-- credentials), horses and their re-ID gallery, alerts, gait metrics (a hypertable), users,
-- models and which models each stream runs. See sinks/MIGRATIONS.md.
CREATE EXTENSION IF NOT EXISTS vector;

CREATE TABLE IF NOT EXISTS streams (
    id                 TEXT        PRIMARY KEY,
    name               TEXT        NOT NULL,
    -- Without credentials: those live in credentials_secret, which default queries never return.
    source_url         TEXT        NOT NULL,
    -- rtsp, hls, file, …
    source_kind        TEXT        NOT NULL,
    -- stopped, starting, live, reconnecting, error, …
    status             TEXT        NOT NULL DEFAULT 'stopped',
    credentials_secret TEXT,
    -- {"pixels_per_metre": 42.0} or {"homography": [[…],[…],[…]]}; NULL when uncalibrated.
    calibration        JSONB,
    -- [{"name": "arena", "polygon": [[x, y], …]}, …] in source pixels.
    zones              JSONB       NOT NULL DEFAULT '[]'::jsonb,
    enabled            BOOLEAN     NOT NULL DEFAULT TRUE,
    created_at         TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at         TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS horses (
    id           BIGSERIAL   PRIMARY KEY,
    stream_id    TEXT        NOT NULL REFERENCES streams (id) ON DELETE CASCADE,
    -- Horse_1, Horse_2, … per stream until someone names the horse.
    display_name TEXT        NOT NULL,
    colour       TEXT,
    first_seen   TIMESTAMPTZ NOT NULL,
    last_seen    TIMESTAMPTZ NOT NULL,
    -- Every tracker id this horse was seen under (tracks break, the horse stays).
    track_ids    BIGINT[]    NOT NULL DEFAULT '{}',
    UNIQUE (stream_id, display_name)
);
CREATE INDEX IF NOT EXISTS horses_stream_last_seen ON horses (stream_id, last_seen DESC);

-- The re-ID gallery: a few appearance embeddings per horse. The dimension is the re-ID
-- model's output (1280 for the shipped model); a model with another dimension is a new
-- migration (sinks/MIGRATIONS.md). Only this gallery is indexed, never every detection.
CREATE TABLE IF NOT EXISTS horse_features (
    id        BIGSERIAL    PRIMARY KEY,
    horse_id  BIGINT       NOT NULL REFERENCES horses (id) ON DELETE CASCADE,
    stream_id TEXT         NOT NULL REFERENCES streams (id) ON DELETE CASCADE,
    time      TIMESTAMPTZ  NOT NULL,
    embedding vector(1280) NOT NULL,
    UNIQUE (horse_id, time)
);
CREATE INDEX IF NOT EXISTS horse_features_embedding_hnsw
    ON horse_features USING hnsw (embedding vector_cosine_ops);
CREATE INDEX IF NOT EXISTS horse_features_stream ON horse_features (stream_id);

CREATE TABLE IF NOT EXISTS alerts (
    id              BIGSERIAL   PRIMARY KEY,
    time            TIMESTAMPTZ NOT NULL,
    stream_id       TEXT        NOT NULL REFERENCES streams (id) ON DELETE CASCADE,
    horse_id        BIGINT      REFERENCES horses (id) ON DELETE SET NULL,
    kind            TEXT        NOT NULL,
    severity        TEXT        NOT NULL CHECK (severity IN ('info', 'warning', 'critical')),
    message         TEXT        NOT NULL,
    -- Set by the producer (e.g. chunk id + rule) so a replayed chunk does not raise it twice.
    dedup_key       TEXT        UNIQUE,
    acknowledged_at TIMESTAMPTZ,
    acknowledged_by TEXT
);
CREATE INDEX IF NOT EXISTS alerts_stream_time ON alerts (stream_id, time DESC);
CREATE INDEX IF NOT EXISTS alerts_unacknowledged ON alerts (time DESC)
    WHERE acknowledged_at IS NULL;

CREATE TABLE IF NOT EXISTS gait_metrics (
    time         TIMESTAMPTZ      NOT NULL,
    stream_id    TEXT             NOT NULL REFERENCES streams (id) ON DELETE CASCADE,
    track_id     BIGINT           NOT NULL,
    horse_id     BIGINT,
    speed        DOUBLE PRECISION NOT NULL,
    acceleration DOUBLE PRECISION NOT NULL,
    -- metres_per_second, body_lengths_per_second or pixels_per_second.
    unit         TEXT             NOT NULL,
    stride_hz    DOUBLE PRECISION,
    -- standstill, walk, trot, canter, gallop, unknown.
    gait_class   TEXT             NOT NULL,
    distance     DOUBLE PRECISION NOT NULL,
    -- One window of one track: a replayed window overwrites itself.
    PRIMARY KEY (stream_id, track_id, time)
);
SELECT create_hypertable('gait_metrics', 'time', if_not_exists => TRUE);
CREATE INDEX IF NOT EXISTS gait_metrics_horse_time ON gait_metrics (horse_id, time DESC)
    WHERE horse_id IS NOT NULL;

CREATE TABLE IF NOT EXISTS users (
    id            BIGSERIAL   PRIMARY KEY,
    username      TEXT        UNIQUE NOT NULL,
    password_hash TEXT        NOT NULL,
    role          TEXT        NOT NULL CHECK (role IN ('admin', 'manager', 'viewer')),
    created_at    TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS models (
    name   TEXT    PRIMARY KEY,
    -- detect, reid, pose, …
    task   TEXT    NOT NULL,
    file   TEXT    NOT NULL,
    sha256 TEXT    NOT NULL,
    active BOOLEAN NOT NULL DEFAULT FALSE
);

CREATE TABLE IF NOT EXISTS stream_models (
    stream_id  TEXT NOT NULL REFERENCES streams (id) ON DELETE CASCADE,
    model_name TEXT NOT NULL REFERENCES models (name) ON DELETE CASCADE,
    PRIMARY KEY (stream_id, model_name)
);
