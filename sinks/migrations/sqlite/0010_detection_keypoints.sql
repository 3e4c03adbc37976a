-- A detection's pose, when the stream runs a pose model: [[x, y, score], …] in source pixels,
-- in the pose model's keypoint order (AP-10K's 17 for `rtmpose_ap10k`), as JSON text. NULL
-- without pose.
ALTER TABLE detections ADD COLUMN keypoints TEXT;
