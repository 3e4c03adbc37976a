-- What each horse has done, per speed unit, over all its gait windows: windows, distance (unit
-- × s, each stretch once), seconds per gait class (JSON object), through the end of the newest
-- window counted. Kept in the dataflow's horse state (checkpointed with every chunk) and
-- written after each chunk that adds windows; a write never replaces newer totals.
CREATE TABLE IF NOT EXISTS horse_totals (
    horse_id BIGINT           NOT NULL REFERENCES horses (id) ON DELETE CASCADE,
    unit     TEXT             NOT NULL,
    windows  BIGINT           NOT NULL,
    distance DOUBLE PRECISION NOT NULL,
    seconds  JSONB            NOT NULL,
    through  TIMESTAMPTZ      NOT NULL,
    PRIMARY KEY (horse_id, unit)
);
