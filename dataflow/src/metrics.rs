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

impl MetricsSnapshot {
    /// The counters in Prometheus' text exposition format.
    pub fn to_prometheus(&self) -> String {
        let counters = [
            (
                "records_in",
                "Records read from the source",
                self.records_in,
            ),
            (
                "chunks_processed",
                "Chunks stored and announced",
                self.chunks_processed,
            ),
            (
                "chunk_errors",
                "Inputs refused (decode, inference, store)",
                self.chunk_errors,
            ),
            ("frames", "Frames processed", self.frames),
            ("detections", "Detections stored", self.detections),
            ("sink_retries", "Sink writes retried", self.sink_retries),
            (
                "events_published",
                "Live events published",
                self.events_published,
            ),
        ];
        let mut out = String::new();
        for (name, help, value) in counters {
            out.push_str(&format!(
                "# HELP horsestream_{name}_total {help}.\n# TYPE horsestream_{name}_total counter\nhorsestream_{name}_total {value}\n"
            ));
        }
        out.push_str(&format!(
            "# HELP horsestream_max_detections_per_frame Most detections on one frame.\n# TYPE horsestream_max_detections_per_frame gauge\nhorsestream_max_detections_per_frame {}\n",
            self.max_detections_per_frame
        ));
        out
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prometheus_text_has_every_counter_with_its_value() {
        let m = Metrics::default();
        m.chunks_processed.fetch_add(3, Relaxed);
        m.frames.fetch_add(220, Relaxed);
        let text = m.snapshot().to_prometheus();
        assert!(text.contains("# TYPE horsestream_chunks_processed_total counter\n"));
        assert!(text.contains("\nhorsestream_chunks_processed_total 3\n"));
        assert!(text.contains("\nhorsestream_frames_total 220\n"));
        assert!(text.contains("\nhorsestream_chunk_errors_total 0\n"));
        let samples = text.lines().filter(|l| !l.starts_with('#')).count();
        assert_eq!(samples, 8);
    }
}
