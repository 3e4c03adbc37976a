-- Ingest records every chunk it published (status 'ingested', `ingested_at`); the sink's
-- commit turns the row to 'processed' and sets `processed_at` and `stored_at`, which stay
-- NULL until then.
ALTER TABLE video_chunks ADD COLUMN IF NOT EXISTS ingested_at TIMESTAMPTZ;
ALTER TABLE video_chunks ALTER COLUMN processed_at DROP NOT NULL;
ALTER TABLE video_chunks ALTER COLUMN processed_at DROP DEFAULT;
ALTER TABLE video_chunks ALTER COLUMN stored_at DROP NOT NULL;
ALTER TABLE video_chunks ALTER COLUMN stored_at DROP DEFAULT;
