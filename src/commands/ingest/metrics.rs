//! What an ingest process reports on `GET /metrics` (`--metrics-listen`): per stream, the
//! chunks, frames and bytes it published, the time spent waiting for the broker's
//! acknowledgements, how far the last published chunk is behind the wall clock, its state
//! and its state changes; for the process, the streams running, the streams waiting for an
//! ingest process, failed reads of the streams table and chunks published but not recorded.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

#[derive(Debug, Default)]
pub struct IngestMetrics {
    streams: Mutex<BTreeMap<String, StreamMetrics>>,
    pub running: AtomicU64,
    pub pending_streams: AtomicU64,
    pub table_errors: AtomicU64,
    pub unrecorded_chunks: AtomicU64,
}

#[derive(Debug, Default, Clone)]
struct StreamMetrics {
    chunks: u64,
    frames: u64,
    bytes: u64,
    publish_seconds: f64,
    /// Capture time of the end of the last published chunk, µs since the Unix epoch.
    last_chunk_end_us: Option<i64>,
    state: String,
    changes: BTreeMap<String, u64>,
}

impl IngestMetrics {
    /// A chunk of `frames` frames and `bytes` bytes ending at `end_us` was acknowledged by the
    /// broker after `publish_seconds`.
    pub fn chunk(&self, stream: &str, frames: u64, bytes: u64, end_us: i64, publish_seconds: f64) {
        let mut streams = self.streams.lock().unwrap_or_else(|e| e.into_inner());
        let s = streams.entry(stream.to_owned()).or_default();
        s.chunks += 1;
        s.frames += frames;
        s.bytes += bytes;
        s.publish_seconds += publish_seconds;
        s.last_chunk_end_us = Some(end_us);
    }

    pub fn state(&self, stream: &str, state: &str) {
        let mut streams = self.streams.lock().unwrap_or_else(|e| e.into_inner());
        let s = streams.entry(stream.to_owned()).or_default();
        state.clone_into(&mut s.state);
        *s.changes.entry(state.to_owned()).or_default() += 1;
    }

    /// The Prometheus text exposition, with chunk lags measured at `now_us`.
    pub fn render(&self, now_us: i64) -> String {
        let streams = self
            .streams
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let mut out = String::new();
        let mut family = |name: &str, kind: &str, help: &str, rows: Vec<(String, String)>| {
            let _ = writeln!(out, "# HELP {name} {help}");
            let _ = writeln!(out, "# TYPE {name} {kind}");
            for (labels, value) in rows {
                let _ = writeln!(out, "{name}{labels} {value}");
            }
        };
        let per_stream = |f: &dyn Fn(&StreamMetrics) -> String| -> Vec<(String, String)> {
            streams
                .iter()
                .map(|(id, s)| (format!("{{stream=\"{}\"}}", escape(id)), f(s)))
                .collect()
        };
        family(
            "horsestream_ingest_chunks_total",
            "counter",
            "Chunks published and acknowledged by the broker.",
            per_stream(&|s| s.chunks.to_string()),
        );
        family(
            "horsestream_ingest_frames_total",
            "counter",
            "Frames in published chunks (overlap frames counted in each chunk).",
            per_stream(&|s| s.frames.to_string()),
        );
        family(
            "horsestream_ingest_bytes_total",
            "counter",
            "Bytes of published chunk messages.",
            per_stream(&|s| s.bytes.to_string()),
        );
        family(
            "horsestream_ingest_publish_seconds_total",
            "counter",
            "Time spent waiting for the broker to acknowledge chunks.",
            per_stream(&|s| format!("{:.6}", s.publish_seconds)),
        );
        family(
            "horsestream_ingest_chunk_lag_seconds",
            "gauge",
            "Wall clock minus the capture time at the end of the last published chunk.",
            streams
                .iter()
                .filter_map(|(id, s)| {
                    let end = s.last_chunk_end_us?;
                    let lag = (now_us - end) as f64 / 1e6;
                    Some((
                        format!("{{stream=\"{}\"}}", escape(id)),
                        format!("{lag:.3}"),
                    ))
                })
                .collect(),
        );
        family(
            "horsestream_ingest_stream_active",
            "gauge",
            "1 while the stream's last state is active, else 0.",
            per_stream(&|s| u8::from(s.state == "active").to_string()),
        );
        family(
            "horsestream_ingest_status_changes_total",
            "counter",
            "State changes reported as stream:status, by state.",
            streams
                .iter()
                .flat_map(|(id, s)| {
                    s.changes.iter().map(move |(state, n)| {
                        (
                            format!("{{stream=\"{}\",state=\"{}\"}}", escape(id), escape(state)),
                            n.to_string(),
                        )
                    })
                })
                .collect(),
        );
        let process = [
            (
                "horsestream_ingest_streams_running",
                "gauge",
                "Streams this process runs now.",
                self.running.load(Ordering::Relaxed),
            ),
            (
                "horsestream_ingest_pending_streams",
                "gauge",
                "Enabled streams no ingest process holds (waiting for capacity).",
                self.pending_streams.load(Ordering::Relaxed),
            ),
            (
                "horsestream_ingest_table_errors_total",
                "counter",
                "Failed reads of the streams table.",
                self.table_errors.load(Ordering::Relaxed),
            ),
            (
                "horsestream_ingest_unrecorded_chunks_total",
                "counter",
                "Chunks published but not recorded in video_chunks.",
                self.unrecorded_chunks.load(Ordering::Relaxed),
            ),
        ];
        for (name, kind, help, value) in process {
            family(name, kind, help, vec![(String::new(), value.to_string())]);
        }
        out
    }
}

/// A label value as the text format wants it: backslash, quote and newline escaped.
fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streams_are_labelled_and_escaped() {
        let m = IngestMetrics::default();
        m.chunk("cam-1", 100, 5_000, 10_000_000, 0.25);
        m.chunk("cam-1", 100, 7_000, 19_000_000, 0.5);
        m.state("cam-1", "connecting");
        m.state("cam-1", "active");
        m.state("odd\"id", "error");
        m.running.store(2, Ordering::Relaxed);
        let text = m.render(21_500_000);
        for line in [
            "horsestream_ingest_chunks_total{stream=\"cam-1\"} 2",
            "horsestream_ingest_frames_total{stream=\"cam-1\"} 200",
            "horsestream_ingest_bytes_total{stream=\"cam-1\"} 12000",
            "horsestream_ingest_publish_seconds_total{stream=\"cam-1\"} 0.750000",
            "horsestream_ingest_chunk_lag_seconds{stream=\"cam-1\"} 2.500",
            "horsestream_ingest_stream_active{stream=\"cam-1\"} 1",
            "horsestream_ingest_stream_active{stream=\"odd\\\"id\"} 0",
            "horsestream_ingest_status_changes_total{stream=\"cam-1\",state=\"active\"} 1",
            "horsestream_ingest_status_changes_total{stream=\"odd\\\"id\",state=\"error\"} 1",
            "horsestream_ingest_streams_running 2",
            "horsestream_ingest_table_errors_total 0",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "{line} missing from\n{text}"
            );
        }
        // A stream with no chunk yet has no lag.
        assert!(!text.contains("chunk_lag_seconds{stream=\"odd"));
    }
}
