//! What a dataflow process measures, shared by its workers: totals read by progress displays
//! and summaries ([`MetricsSnapshot`]), and the labelled families of `GET /metrics`
//! ([`Metrics::to_prometheus`]): frames in and out and chunk lag per stream, latency per
//! operator, inference time and batch fill per model, Kafka consumer lag per partition, sink
//! rows per table and retries per write, dropped chunks per reason, model availability.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// Latency buckets (seconds): a decode of a few ms to a sink write held by a retry.
const LATENCY_BUCKETS: [f64; 14] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];
/// Batch fill buckets: eighths of the configured batch.
const FILL_BUCKETS: [f64; 8] = [0.125, 0.25, 0.375, 0.5, 0.625, 0.75, 0.875, 1.0];

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
    pub chunks_degraded: AtomicU64,
    /// Frames whose results were taken from the same frame in the previous chunk's overlap
    /// instead of running the models again.
    pub frames_reused: AtomicU64,
    labelled: Mutex<Labelled>,
}

/// A Prometheus histogram with fixed buckets.
#[derive(Debug, Clone, PartialEq)]
struct Histogram {
    bounds: &'static [f64],
    /// Observations at or below each bound (not cumulative; summed when rendered).
    counts: Vec<u64>,
    sum: f64,
    count: u64,
}

impl Histogram {
    fn new(bounds: &'static [f64]) -> Self {
        Histogram {
            bounds,
            counts: vec![0; bounds.len()],
            sum: 0.0,
            count: 0,
        }
    }

    fn observe(&mut self, v: f64) {
        if let Some(i) = self.bounds.iter().position(|b| v <= *b) {
            self.counts[i] += 1;
        }
        self.sum += v;
        self.count += 1;
    }
}

#[derive(Debug, Default, Clone, PartialEq, Eq)]
struct StreamCounters {
    frames_in: u64,
    frames_out: u64,
    /// Capture time (µs since the epoch) of the end of the newest chunk stored.
    last_end_us: Option<i64>,
}

#[derive(Debug, Default)]
struct Labelled {
    streams: BTreeMap<String, StreamCounters>,
    latency: BTreeMap<&'static str, Histogram>,
    inference: BTreeMap<&'static str, Histogram>,
    batch_fill: BTreeMap<&'static str, Histogram>,
    sink_rows: BTreeMap<&'static str, u64>,
    sink_retries: BTreeMap<String, u64>,
    dropped: BTreeMap<String, u64>,
    consumer_lag: BTreeMap<(String, i32), i64>,
    model_available: BTreeMap<&'static str, bool>,
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
    pub chunks_degraded: u64,
    pub frames_reused: u64,
}

impl MetricsSnapshot {
    /// The totals in Prometheus' text exposition format.
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
            (
                "chunks_degraded",
                "Chunks recorded as not analysed because a model was unavailable",
                self.chunks_degraded,
            ),
            (
                "frames_reused",
                "Overlap frames given the previous chunk's result for the same frame instead of \
                 inference",
                self.frames_reused,
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
            chunks_degraded: self.chunks_degraded.load(Relaxed),
            frames_reused: self.frames_reused.load(Relaxed),
        }
    }

    fn with<R>(&self, f: impl FnOnce(&mut Labelled) -> R) -> R {
        f(&mut self.labelled.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// A decoded chunk of `stream` with `frames` frames entered the dataflow.
    pub fn frames_in(&self, stream: &str, frames: u64) {
        self.with(|l| stream_entry(l, stream).frames_in += frames);
    }

    /// A chunk of `stream` with `frames` frames, ending at capture time `end_us`, was stored.
    pub fn frames_out(&self, stream: &str, frames: u64, end_us: i64) {
        self.with(|l| {
            let s = stream_entry(l, stream);
            s.frames_out += frames;
            s.last_end_us = Some(s.last_end_us.map_or(end_us, |e| e.max(end_us)));
        });
    }

    /// `operator` (decode, detect, track, horses, sink) spent `seconds` on one chunk.
    pub fn operator_latency(&self, operator: &'static str, seconds: f64) {
        self.with(|l| {
            l.latency
                .entry(operator)
                .or_insert_with(|| Histogram::new(&LATENCY_BUCKETS))
                .observe(seconds)
        });
    }

    /// One inference call of `model` took `seconds`; `fill` is the share of its configured
    /// batch it carried, for models that have one.
    pub fn inference(&self, model: &'static str, seconds: f64, fill: Option<f64>) {
        self.with(|l| {
            l.inference
                .entry(model)
                .or_insert_with(|| Histogram::new(&LATENCY_BUCKETS))
                .observe(seconds);
            if let Some(fill) = fill {
                l.batch_fill
                    .entry(model)
                    .or_insert_with(|| Histogram::new(&FILL_BUCKETS))
                    .observe(fill);
            }
        });
    }

    /// The sink committed `rows` rows to `table`.
    pub fn sink_rows(&self, table: &'static str, rows: u64) {
        self.with(|l| *l.sink_rows.entry(table).or_default() += rows);
    }

    /// A sink write of `what` failed retriably and is retried.
    pub fn sink_retry(&self, what: &str) {
        self.sink_retries.fetch_add(1, Relaxed);
        self.with(|l| *l.sink_retries.entry(what.to_owned()).or_default() += 1);
    }

    /// A chunk was not analysed: refused at a stage (`decode`, `inference`, `store`) or
    /// `degraded` (a model was unavailable).
    pub fn dropped(&self, reason: &str) {
        self.with(|l| *l.dropped.entry(reason.to_owned()).or_default() += 1);
    }

    /// The consumer of `partition` of `topic` is `lag` records behind its high watermark.
    pub fn consumer_lag(&self, topic: &str, partition: i32, lag: i64) {
        self.with(|l| l.consumer_lag.insert((topic.to_owned(), partition), lag));
    }

    /// Whether `model` can run now (a worker's last attempt succeeded).
    pub fn model_available(&self, model: &'static str, up: bool) {
        self.with(|l| l.model_available.insert(model, up));
    }

    /// Everything in Prometheus' text exposition format, chunk lags measured at `now_us`.
    pub fn to_prometheus(&self, now_us: i64) -> String {
        let mut out = self.snapshot().to_prometheus();
        self.with(|l| l.render(&mut out, now_us));
        out
    }
}

fn stream_entry<'a>(l: &'a mut Labelled, stream: &str) -> &'a mut StreamCounters {
    if !l.streams.contains_key(stream) {
        l.streams
            .insert(stream.to_owned(), StreamCounters::default());
    }
    l.streams.get_mut(stream).expect("inserted above")
}

impl Labelled {
    fn render(&self, out: &mut String, now_us: i64) {
        let stream = |id: &str| format!("stream_id=\"{}\"", escape(id));
        let rows = |f: &dyn Fn(&StreamCounters) -> Option<String>| -> Vec<(String, String)> {
            self.streams
                .iter()
                .filter_map(|(id, s)| Some((stream(id), f(s)?)))
                .collect()
        };
        family(
            out,
            "horsestream_stream_frames_in_total",
            "counter",
            "Frames of the chunks that entered the dataflow, by stream.",
            rows(&|s| Some(s.frames_in.to_string())),
        );
        family(
            out,
            "horsestream_stream_frames_out_total",
            "counter",
            "Frames of the chunks stored with their analysis, by stream.",
            rows(&|s| Some(s.frames_out.to_string())),
        );
        family(
            out,
            "horsestream_chunk_lag_seconds",
            "gauge",
            "Wall clock minus the capture time at the end of the newest stored chunk (0 for a \
             chunk from the future: a file read faster than real time).",
            rows(&|s| {
                let end = s.last_end_us?;
                Some(format!("{:.3}", (now_us - end).max(0) as f64 / 1e6))
            }),
        );
        histograms(
            out,
            "horsestream_operator_latency_seconds",
            "Time an operator spent on one chunk.",
            "operator",
            &self.latency,
        );
        histograms(
            out,
            "horsestream_inference_seconds",
            "Time of one inference call (a batch of frames, or a frame's crops), by model.",
            "model",
            &self.inference,
        );
        histograms(
            out,
            "horsestream_inference_batch_fill",
            "Frames in an inference batch over the configured batch size, by model.",
            "model",
            &self.batch_fill,
        );
        let labelled = |label: &str, map: Vec<(String, String)>| -> Vec<(String, String)> {
            map.into_iter()
                .map(|(k, v)| (format!("{label}=\"{}\"", escape(&k)), v))
                .collect()
        };
        family(
            out,
            "horsestream_sink_rows_total",
            "counter",
            "Rows the sink committed, by table (keyed rows: a replayed row counts again but is stored once).",
            labelled(
                "table",
                self.sink_rows
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            ),
        );
        family(
            out,
            "horsestream_sink_write_retries_total",
            "counter",
            "Sink writes retried after a retriable failure, by write.",
            labelled(
                "write",
                self.sink_retries
                    .iter()
                    .map(|(k, v)| (k.clone(), v.to_string()))
                    .collect(),
            ),
        );
        family(
            out,
            "horsestream_chunks_dropped_total",
            "counter",
            "Chunks not analysed, by reason: refused at a stage (decode, inference, store) or \
             degraded (a model was unavailable; kept for a replay).",
            labelled(
                "reason",
                self.dropped
                    .iter()
                    .map(|(k, v)| (k.clone(), v.to_string()))
                    .collect(),
            ),
        );
        family(
            out,
            "horsestream_kafka_consumer_lag",
            "gauge",
            "Records between a partition's high watermark and the position this process reads.",
            self.consumer_lag
                .iter()
                .map(|((topic, p), lag)| {
                    (
                        format!("topic=\"{}\",partition=\"{p}\"", escape(topic)),
                        lag.to_string(),
                    )
                })
                .collect(),
        );
        family(
            out,
            "horsestream_model_available",
            "gauge",
            "1 while a model runs, 0 while it is unavailable and chunks are degraded.",
            labelled(
                "model",
                self.model_available
                    .iter()
                    .map(|(k, v)| (k.to_string(), u8::from(*v).to_string()))
                    .collect(),
            ),
        );
    }
}

/// One family: its HELP and TYPE lines, then one sample per `(labels, value)`.
fn family(out: &mut String, name: &str, kind: &str, help: &str, rows: Vec<(String, String)>) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
    for (labels, value) in rows {
        if labels.is_empty() {
            let _ = writeln!(out, "{name} {value}");
        } else {
            let _ = writeln!(out, "{name}{{{labels}}} {value}");
        }
    }
}

fn histograms(
    out: &mut String,
    name: &str,
    help: &str,
    label: &str,
    map: &BTreeMap<&'static str, Histogram>,
) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} histogram");
    for (key, h) in map {
        let mut cumulative = 0;
        for (bound, n) in h.bounds.iter().zip(&h.counts) {
            cumulative += n;
            let _ = writeln!(
                out,
                "{name}_bucket{{{label}=\"{key}\",le=\"{bound}\"}} {cumulative}"
            );
        }
        let _ = writeln!(
            out,
            "{name}_bucket{{{label}=\"{key}\",le=\"+Inf\"}} {}",
            h.count
        );
        let _ = writeln!(out, "{name}_sum{{{label}=\"{key}\"}} {}", h.sum);
        let _ = writeln!(out, "{name}_count{{{label}=\"{key}\"}} {}", h.count);
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
        assert_eq!(samples, 10);
    }

    #[test]
    fn labelled_families_render_buckets_lags_and_escaped_labels() {
        let m = Metrics::default();
        m.frames_in("cam-1", 100);
        m.frames_in("cam-1", 20);
        m.frames_out("cam-1", 100, 10_000_000);
        m.frames_out("odd\"id", 5, 30_000_000);
        m.operator_latency("detect", 0.2);
        m.operator_latency("detect", 3.0);
        m.inference("detector", 0.04, Some(0.5));
        m.inference("detector", 0.05, Some(1.0));
        m.sink_rows("detections", 7);
        m.sink_retry("chunk");
        m.dropped("degraded");
        m.consumer_lag("t", 3, 12);
        m.model_available("detector", false);
        let text = m.to_prometheus(12_500_000);
        for line in [
            "horsestream_stream_frames_in_total{stream_id=\"cam-1\"} 120",
            "horsestream_stream_frames_out_total{stream_id=\"cam-1\"} 100",
            "horsestream_chunk_lag_seconds{stream_id=\"cam-1\"} 2.500",
            // A chunk whose end is still in the future has no lag.
            "horsestream_chunk_lag_seconds{stream_id=\"odd\\\"id\"} 0.000",
            "horsestream_operator_latency_seconds_bucket{operator=\"detect\",le=\"0.1\"} 0",
            "horsestream_operator_latency_seconds_bucket{operator=\"detect\",le=\"0.25\"} 1",
            "horsestream_operator_latency_seconds_bucket{operator=\"detect\",le=\"5\"} 2",
            "horsestream_operator_latency_seconds_bucket{operator=\"detect\",le=\"+Inf\"} 2",
            "horsestream_operator_latency_seconds_sum{operator=\"detect\"} 3.2",
            "horsestream_operator_latency_seconds_count{operator=\"detect\"} 2",
            "horsestream_inference_batch_fill_bucket{model=\"detector\",le=\"0.5\"} 1",
            "horsestream_inference_batch_fill_sum{model=\"detector\"} 1.5",
            "horsestream_inference_seconds_count{model=\"detector\"} 2",
            "horsestream_sink_rows_total{table=\"detections\"} 7",
            "horsestream_sink_write_retries_total{write=\"chunk\"} 1",
            "horsestream_chunks_dropped_total{reason=\"degraded\"} 1",
            "horsestream_kafka_consumer_lag{topic=\"t\",partition=\"3\"} 12",
            "horsestream_model_available{model=\"detector\"} 0",
            "horsestream_sink_retries_total 1",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "{line} missing from\n{text}"
            );
        }
    }
}
