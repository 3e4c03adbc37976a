-- When a chunk's results were first committed. `processed_at` moves on every replay or
-- retry of the chunk; `stored_at` never does, so "what did the database hold at time T"
-- stays answerable after chunks were written again.
ALTER TABLE video_chunks ADD COLUMN IF NOT EXISTS stored_at TIMESTAMPTZ;
UPDATE video_chunks SET stored_at = processed_at WHERE stored_at IS NULL;
ALTER TABLE video_chunks ALTER COLUMN stored_at SET DEFAULT now();
ALTER TABLE video_chunks ALTER COLUMN stored_at SET NOT NULL;
