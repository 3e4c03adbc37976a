-- Store-wide settings. `embedding_dim` is the size of the embeddings horse_features holds
-- (PostgreSQL keeps it in the vector column's type); `Store::migrate_gallery` changes it.
CREATE TABLE IF NOT EXISTS settings (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
INSERT OR IGNORE INTO settings (key, value) VALUES ('embedding_dim', '1280');

-- A stream's alert rules as JSON ({"no_movement_s": …, "lying_s": …, …}); NULL: the defaults.
ALTER TABLE streams ADD COLUMN alert_rules TEXT;
