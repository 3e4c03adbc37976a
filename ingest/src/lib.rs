//! horsestream-ingest (work in progress).
