//! Counters shared by every worker of the process, read by progress displays and summaries.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

#[derive(Debug, Default)]
pub struct Metrics {
    pub records_in: AtomicU64,
    pub chunks_processed: AtomicU64,
    pub chunk_errors: AtomicU64,
    pub frames: AtomicU64,
    pub detections: AtomicU64,
    pub max_detections_per_frame: AtomicU64,
    pub sink_retries: AtomicU64,
    pub events_published: AtomicU64,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MetricsSnapshot {
    pub records_in: u64,
    pub chunks_processed: u64,
    pub chunk_errors: u64,
    pub frames: u64,
    pub detections: u64,
    pub max_detections_per_frame: u64,
    pub sink_retries: u64,
    pub events_published: u64,
}

impl Metrics {
    pub fn snapshot(&self) -> MetricsSnapshot {
        MetricsSnapshot {
            records_in: self.records_in.load(Relaxed),
            chunks_processed: self.chunks_processed.load(Relaxed),
            chunk_errors: self.chunk_errors.load(Relaxed),
            frames: self.frames.load(Relaxed),
            detections: self.detections.load(Relaxed),
            max_detections_per_frame: self.max_detections_per_frame.load(Relaxed),
            sink_retries: self.sink_retries.load(Relaxed),
            events_published: self.events_published.load(Relaxed),
        }
    }
}
