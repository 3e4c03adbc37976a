-- A stream's dataflow state (DeepSORT tracker, horse identities, gait and alert state) after
-- one of its chunks, written in the transaction that stores the chunk's detections. A
-- restarted dataflow resumes each stream from the newest checkpoint before the first chunk it
-- reads (docs/crash-recovery.md). The bytes are the dataflow's versioned encoding; only the
-- newest few per stream are kept (the chunk's write prunes older ones).
CREATE TABLE IF NOT EXISTS stream_checkpoints (
    stream_id  TEXT        NOT NULL REFERENCES streams (id) ON DELETE CASCADE,
    sequence   BIGINT      NOT NULL,
    tracks     BYTEA       NOT NULL,
    horses     BYTEA       NOT NULL,
    stored_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (stream_id, sequence)
);
