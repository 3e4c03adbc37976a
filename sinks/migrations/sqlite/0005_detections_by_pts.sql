-- The playback overlay reads a stream's detections by pts range.
CREATE INDEX IF NOT EXISTS detections_stream_pts ON detections (stream_id, pts_us);
