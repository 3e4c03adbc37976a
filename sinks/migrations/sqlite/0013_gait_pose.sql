-- Gait metrics from pose keypoints, per window, when the horse's stream runs a pose model:
-- stride frequency from the hooves, mean angle and range of motion per limb joint, and the
-- fore and hind symmetry indices (JSON text, see `GaitPose`). NULL without pose.
ALTER TABLE gait_metrics ADD COLUMN pose TEXT;
