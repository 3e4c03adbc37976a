-- Horses get the stable number the dataflow gives them in their stream (Horse_{number}), so
-- a replayed or restarted chunk updates the same row whatever its display name became.
ALTER TABLE horses ADD COLUMN IF NOT EXISTS number INTEGER;
UPDATE horses SET number = substring(display_name FROM '^Horse_([0-9]+)$')::integer
 WHERE number IS NULL AND display_name ~ '^Horse_[0-9]+$';
CREATE UNIQUE INDEX IF NOT EXISTS horses_stream_number ON horses (stream_id, number);
-- The persisted re-ID gallery is trimmed to the newest features of each horse.
CREATE INDEX IF NOT EXISTS horse_features_horse_time ON horse_features (horse_id, time DESC);
