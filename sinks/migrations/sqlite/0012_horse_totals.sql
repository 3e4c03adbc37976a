-- What each horse has done, per speed unit, over all its gait windows: windows, distance (unit
-- × s, each stretch once), seconds per gait class (JSON text), through the end of the newest
-- window counted (µs). Kept in the dataflow's horse state (checkpointed with every chunk) and
-- written after each chunk that adds windows; a write never replaces newer totals.
CREATE TABLE IF NOT EXISTS horse_totals (
    horse_id   INTEGER NOT NULL REFERENCES horses (id) ON DELETE CASCADE,
    unit       TEXT    NOT NULL,
    windows    INTEGER NOT NULL,
    distance   REAL    NOT NULL,
    seconds    TEXT    NOT NULL,
    through_us INTEGER NOT NULL,
    PRIMARY KEY (horse_id, unit)
);
