-- A stream's alert rules ({"no_movement_s": …, "lying_s": …, …}); NULL: the defaults.
ALTER TABLE streams ADD COLUMN IF NOT EXISTS alert_rules jsonb;
