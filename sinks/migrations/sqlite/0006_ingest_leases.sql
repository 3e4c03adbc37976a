-- Which ingest process runs a stream: it holds a lease it renews while it runs the stream.
ALTER TABLE streams ADD COLUMN ingest_owner TEXT;
ALTER TABLE streams ADD COLUMN ingest_lease_us INTEGER;
