-- A stream's dataflow state after one of its chunks, written with the chunk's detections in
-- one transaction; see the TimescaleDB twin (0008_stream_checkpoints.sql).
CREATE TABLE IF NOT EXISTS stream_checkpoints (
    stream_id  TEXT    NOT NULL REFERENCES streams (id) ON DELETE CASCADE,
    sequence   INTEGER NOT NULL,
    tracks     BLOB    NOT NULL,
    horses     BLOB    NOT NULL,
    stored_us  INTEGER NOT NULL,
    PRIMARY KEY (stream_id, sequence)
);
