-- Ingest records every chunk it published (status 'ingested'); the sink's commit turns the
-- row to 'processed'.
ALTER TABLE video_chunks ADD COLUMN ingested_us INTEGER;
