-- Horses get the stable number the dataflow gives them in their stream (Horse_{number}), so
-- a replayed or restarted chunk updates the same row whatever its display name became.
ALTER TABLE horses ADD COLUMN number INTEGER;
UPDATE horses SET number = CAST(substr(display_name, 7) AS INTEGER)
 WHERE number IS NULL AND display_name GLOB 'Horse_[0-9]*';
CREATE UNIQUE INDEX IF NOT EXISTS horses_stream_number ON horses (stream_id, number);
CREATE INDEX IF NOT EXISTS horse_features_horse_time ON horse_features (horse_id, time_us DESC);
