-- Which ingest process runs a stream: it holds a lease it renews while it runs the stream.
-- A stream whose lease ran out (its process died) is taken by another.
ALTER TABLE streams ADD COLUMN IF NOT EXISTS ingest_owner TEXT;
ALTER TABLE streams ADD COLUMN IF NOT EXISTS ingest_lease_until TIMESTAMPTZ;
