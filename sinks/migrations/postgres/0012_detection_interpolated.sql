-- A box the detector did not find: a confirmed track's box in a frame it was missed in,
-- interpolated between its sightings before and after the gap (confidence 0).
ALTER TABLE detections ADD COLUMN IF NOT EXISTS interpolated boolean NOT NULL DEFAULT false;
