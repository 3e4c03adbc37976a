//! `Detect`: runs the detector over every frame of a chunk, in batches, on the worker that
//! owns the chunk's stream. A model that fails (a session error at run time, a model file
//! that cannot be loaded again, a device gone) degrades the chunks instead of stopping the
//! worker: they pass on as [`Outcome::Degraded`] without inference while the models are down,
//! and the sessions are rebuilt with backoff until they work again ([`ChunkAnalyzer`]).

use std::sync::Arc;
use std::time::{Duration, Instant};

use horsestream_proto::{
    BoundingBox, Detection, Frame, FrameChunk, FrameEncoding, FrameResult, ProcessedChunk,
};
use horsestream_sinks::ChunkErrorRecord;
use image::RgbImage;
use timely::container::CapacityContainerBuilder;
use timely::dataflow::StreamVec;
use timely::dataflow::channels::pact::Pipeline;
use timely::dataflow::operators::generic::Operator;
use timely::progress::Timestamp;

use super::decode::Located;
use super::{Degraded, Outcome};
use crate::Metrics;

/// One object found on a frame.
#[derive(Debug, Clone, PartialEq)]
pub struct Found {
    pub class_id: u32,
    pub score: f32,
    pub bbox: BoundingBox,
    /// Below the model's threshold: may only continue a track (see [`Detection::candidate`]).
    pub candidate: bool,
}

/// Something that finds objects on a batch of frames: the ONNX detector in production.
pub trait Analyzer {
    fn detect(&mut self, frames: &[RgbImage]) -> Result<Vec<Vec<Found>>, String>;
}

impl Analyzer for horsestream_models::Detector {
    fn detect(&mut self, frames: &[RgbImage]) -> Result<Vec<Vec<Found>>, String> {
        let per_frame =
            horsestream_models::Detector::detect(self, frames).map_err(|e| e.to_string())?;
        Ok(per_frame
            .into_iter()
            .map(|dets| {
                dets.into_iter()
                    .map(|d| Found {
                        class_id: d.class_id,
                        score: d.score,
                        bbox: d.bbox,
                        candidate: d.candidate,
                    })
                    .collect()
            })
            .collect())
    }
}

/// Something that turns crops into appearance embeddings, one per `(frame, box)` in order:
/// the re-ID model, given the crops of a whole batch of frames at once.
pub trait Embed {
    fn embed(&mut self, crops: &[(&RgbImage, BoundingBox)]) -> Result<Vec<Vec<f32>>, String>;
}

impl Embed for horsestream_models::Embedder {
    fn embed(&mut self, crops: &[(&RgbImage, BoundingBox)]) -> Result<Vec<Vec<f32>>, String> {
        self.embed_boxes(crops).map_err(|e| e.to_string())
    }
}

/// Why a chunk was not analysed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// The chunk itself is bad (a frame that does not decode): an error record.
    Input(String),
    /// A model failed or is down: the chunk is degraded, the models retried later.
    Model(String),
}

/// Builds the analyzer's models again (new sessions from the model files) after a failure.
pub type Reload = Box<dyn FnMut() -> Result<Models, String>>;

/// A detector and, optionally, a re-ID embedder.
pub type Models = (Box<dyn Analyzer>, Option<Box<dyn Embed>>);

/// How a failed model is retried: the first retry after `first`, then twice as long each
/// time, at most `max`. `max` zero retries at every chunk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    pub first: Duration,
    pub max: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            first: Duration::from_secs(1),
            max: Duration::from_secs(30),
        }
    }
}

impl RetryPolicy {
    /// A policy whose longest wait is `max` (the first retry waits at most 1 s).
    pub fn up_to(max: Duration) -> Self {
        RetryPolicy {
            first: max.min(Duration::from_secs(1)),
            max,
        }
    }
}

/// The models are down: chunks are degraded until `retry_at`, then the models are tried again.
#[derive(Debug, Clone)]
struct Down {
    reason: String,
    retry_at: Instant,
    backoff: Duration,
}

/// The operator's logic: frames of a chunk → detections per frame (and their embeddings).
pub struct ChunkAnalyzer {
    /// `None` after a failure when the sessions are rebuilt by `reload`.
    analyzer: Option<Box<dyn Analyzer>>,
    embedder: Option<Box<dyn Embed>>,
    /// Keypoints for the detections of streams whose pose is on (`pose.rs`).
    pose: Option<super::pose::PoseStage>,
    batch_size: usize,
    reload: Option<Reload>,
    retry: RetryPolicy,
    down: Option<Down>,
    metrics: Option<Arc<Metrics>>,
    /// The results of each stream's newest frames, for the next chunk's overlap; `None`
    /// when every frame is analysed.
    recent: Option<Recent>,
    /// Threads decoding a batch's JPEG frames at once (1: on the worker alone, as it goes).
    decode_threads: usize,
}

impl std::fmt::Debug for ChunkAnalyzer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChunkAnalyzer")
            .field("batch_size", &self.batch_size)
            .field("down", &self.down)
            .finish_non_exhaustive()
    }
}

impl ChunkAnalyzer {
    pub fn new(analyzer: Box<dyn Analyzer>, batch_size: usize) -> Self {
        ChunkAnalyzer {
            analyzer: Some(analyzer),
            embedder: None,
            pose: None,
            batch_size: batch_size.max(1),
            reload: None,
            retry: RetryPolicy::default(),
            down: None,
            metrics: None,
            recent: Some(Recent::default()),
            decode_threads: horsestream_models::cores(),
        }
    }

    /// How many threads decode a batch's frames at once (default: the machine's cores).
    pub fn with_decode_threads(mut self, threads: usize) -> Self {
        self.decode_threads = threads.max(1);
        self
    }

    /// Whether a frame that comes again in the next chunk's overlap takes the result found
    /// for it before (the default) instead of being analysed again.
    pub fn with_overlap_reuse(mut self, reuse: bool) -> Self {
        self.recent = reuse.then(Recent::default);
        self
    }

    /// Also computes an appearance embedding for every detection.
    pub fn with_embedder(mut self, embedder: Box<dyn Embed>) -> Self {
        self.embedder = Some(embedder);
        self
    }

    /// Also runs the pose stage on each batch's detections (streams whose pose is on).
    pub fn with_pose(mut self, pose: super::pose::PoseStage) -> Self {
        self.pose = Some(pose);
        self
    }

    /// After a model failure, drops the sessions and builds new ones with `reload` (retried
    /// as `retry` says) instead of trying the same sessions again.
    pub fn with_reload(mut self, reload: Reload, retry: RetryPolicy) -> Self {
        self.reload = Some(reload);
        self.retry = retry;
        self
    }

    /// Times inference calls, batch fill and model availability into `metrics`.
    pub fn set_metrics(&mut self, metrics: Arc<Metrics>) {
        self.metrics = Some(metrics);
        self.set_available(self.down.is_none());
    }

    /// Whether the models are down (chunks are being degraded).
    pub fn is_degraded(&self) -> bool {
        self.down.is_some()
    }

    /// The chunk's detections, or why there are none. While the models are down, a chunk
    /// before the next retry fails at once with the models' failure.
    pub fn process(&mut self, chunk: &FrameChunk) -> Result<ProcessedChunk, Failure> {
        self.process_many(&[chunk])
            .pop()
            .expect("one result per chunk")
    }

    /// [`Self::process`] for several chunks at once (of any streams), whose frames share the
    /// inference batches: a chunk's last few frames fill a batch with the next chunk's first
    /// instead of running as a small call of their own. One result per chunk, in order. A bad
    /// frame fails its own chunk only; when the shared call fails, each chunk is tried alone,
    /// so a model failure degrades only the chunks it fails on.
    pub fn process_many(&mut self, chunks: &[&FrameChunk]) -> Vec<Result<ProcessedChunk, Failure>> {
        let all = |failure: Failure| chunks.iter().map(|_| Err(failure.clone())).collect();
        if let Some(down) = &self.down {
            if Instant::now() < down.retry_at {
                return all(Failure::Model(down.reason.clone()));
            }
            if self.analyzer.is_none()
                && let Some(reload) = &mut self.reload
            {
                match reload() {
                    Ok((analyzer, embedder)) => {
                        self.analyzer = Some(analyzer);
                        self.embedder = embedder;
                        if let Some(recent) = &mut self.recent {
                            *recent = Recent::default();
                        }
                    }
                    Err(e) => return all(self.fail(format!("models not reloaded: {e}"))),
                }
            }
        }
        match self.run(chunks) {
            Ok(results) => {
                if let Some(down) = self.down.take() {
                    tracing::warn!(was = %down.reason, "models work again, analysis resumed");
                    self.set_available(true);
                }
                chunks
                    .iter()
                    .zip(results)
                    .map(|(chunk, r)| {
                        r.map(|frames| processed(chunk, frames))
                            .map_err(Failure::Input)
                    })
                    .collect()
            }
            // A shared call's failure may come from one chunk's input (a fixed-batch model given
            // a short batch, a frame that breaks the session): each chunk then runs alone, so
            // the others are not degraded with it. A model that is really down fails the
            // first of them and the rest wait for the retry.
            Err(_) if chunks.len() > 1 => chunks.iter().map(|c| self.process(c)).collect(),
            Err(reason) => all(self.fail(reason)),
        }
    }

    /// Marks the models down after `reason`, schedules the next retry, and drops the
    /// sessions when they are rebuilt for a retry.
    fn fail(&mut self, reason: String) -> Failure {
        let backoff = self
            .down
            .as_ref()
            .map_or(self.retry.first, |d| d.backoff * 2)
            .min(self.retry.max);
        if self.down.is_none() {
            tracing::error!(%reason, retry_in = ?backoff,
                            "model failed: chunks are degraded (not analysed) until it works again");
        } else {
            tracing::warn!(%reason, retry_in = ?backoff, "models still unavailable");
        }
        self.down = Some(Down {
            reason: reason.clone(),
            retry_at: Instant::now() + backoff,
            backoff,
        });
        if self.reload.is_some() {
            self.analyzer = None;
            self.embedder = None;
        }
        self.set_available(false);
        Failure::Model(reason)
    }

    fn set_available(&self, up: bool) {
        if let Some(m) = &self.metrics {
            m.model_available("detector", up);
        }
    }

    /// Decodes, on [`Self::decode_threads`] threads at once, the frames the next batch will
    /// most likely run: the next `batch_size` of `order` whose chunk has not failed and that
    /// no earlier result covers (the same test the batch makes, which may still differ: a
    /// frame not decoded ahead is decoded when the batch takes it, one decoded for nothing
    /// is dropped). Decoding was a tenth of a worker's time, on one core.
    fn decode_ahead<'a>(
        &self,
        chunks: &[&'a FrameChunk],
        results: &[Result<Vec<FrameResult>, String>],
        order: impl Iterator<Item = (usize, &'a Frame)>,
    ) -> Vec<(usize, &'a Frame, Result<RgbImage, String>)> {
        if self.decode_threads < 2 {
            return Vec::new();
        }
        let mut want: Vec<(usize, &Frame)> = Vec::with_capacity(self.batch_size);
        for (c, f) in order {
            if want.len() == self.batch_size {
                break;
            }
            if results[c].is_err() {
                continue;
            }
            let stream = chunks[c].stream_id.as_str();
            let covered = self.recent.as_ref().is_some_and(|recent| {
                recent.has(stream, f)
                    || want
                        .iter()
                        .any(|&(c2, f2)| same_bytes(chunks[c2], f2, stream, f))
            });
            if !covered {
                want.push((c, f));
            }
        }
        let part = want.len().div_ceil(self.decode_threads).max(1);
        std::thread::scope(|scope| {
            let mut parts = want.chunks(part);
            let first = parts.next().unwrap_or_default();
            let decode = |frames: &[(usize, &'a Frame)]| {
                frames
                    .iter()
                    .map(|&(c, f)| (c, f, frame_image(chunks[c], &f.data)))
                    .collect::<Vec<_>>()
            };
            let others: Vec<_> = parts.map(|p| scope.spawn(move || decode(p))).collect();
            let mut out = decode(first);
            for other in others {
                out.extend(
                    other
                        .join()
                        .expect("frame_image catches the decoder's panics"),
                );
            }
            out
        })
    }

    /// Frame results per chunk (or why the chunk's input is bad), or the model failure that
    /// stopped them all. Frames are taken in order, chunk after chunk, `batch_size` to a call.
    fn run(
        &mut self,
        chunks: &[&FrameChunk],
    ) -> Result<Vec<Result<Vec<FrameResult>, String>>, String> {
        if self.analyzer.is_none() {
            return Err("no detector session".to_owned());
        }
        let mut results: Vec<Result<Vec<FrameResult>, String>> = chunks
            .iter()
            .map(|c| Ok(Vec::with_capacity(c.frames.len())))
            .collect();
        let mut order = chunks
            .iter()
            .enumerate()
            .flat_map(|(c, chunk)| chunk.frames.iter().map(move |f| (c, f)));
        loop {
            // The next batch: (chunk, frame) in order, each run through the models or taken
            // from a result already at hand (an overlap frame). Only frames that run take a
            // place in the batch and have a decoded image. A frame that does not decode fails
            // its chunk, whose frames then leave the batch.
            let mut slots: Vec<(usize, &Frame, Slot)> = Vec::with_capacity(self.batch_size);
            let mut images: Vec<RgbImage> = Vec::with_capacity(self.batch_size);
            let mut ahead = self.decode_ahead(chunks, &results, order.clone());
            while images.len() < self.batch_size {
                let Some((c, f)) = order.next() else { break };
                if results[c].is_err() {
                    continue;
                }
                let stream = chunks[c].stream_id.as_str();
                let earlier = slots
                    .iter()
                    .position(|&(c2, f2, _)| same_bytes(chunks[c2], f2, stream, f));
                let earlier = earlier.filter(|_| self.recent.is_some());
                if let Some(slot) = earlier
                    .map(Slot::Same)
                    .or_else(|| self.recent.as_ref()?.find(stream, f))
                {
                    slots.push((c, f, slot));
                    continue;
                }
                let decoded = match ahead
                    .iter()
                    .position(|(c2, f2, _)| *c2 == c && std::ptr::eq(*f2, f))
                {
                    Some(i) => ahead.swap_remove(i).2,
                    None => frame_image(chunks[c], &f.data),
                };
                match decoded {
                    Ok(image) => {
                        slots.push((c, f, Slot::Run));
                        images.push(image);
                    }
                    Err(e) => {
                        results[c] = Err(format!("frame {}: {e}", f.index));
                        // Frames come chunk after chunk: this chunk's are the batch's tail.
                        let keep = slots.iter().position(|s| s.0 == c).unwrap_or(slots.len());
                        slots.truncate(keep);
                        images.truncate(slots.iter().filter(|s| s.2.runs()).count());
                    }
                }
            }
            if slots.is_empty() {
                break;
            }
            let run: Vec<(usize, &Frame)> = slots
                .iter()
                .filter(|s| s.2.runs())
                .map(|&(c, f, _)| (c, f))
                .collect();
            let mut ran = if run.is_empty() {
                Vec::new()
            } else {
                self.analyse(chunks, &run, &images)?
            }
            .into_iter();
            // Every slot's result, in order; then each chunk takes its own, and the tails of
            // the chunks are remembered for the next chunks' overlap.
            let mut done: Vec<FrameResult> = Vec::with_capacity(slots.len());
            for (_, f, slot) in &slots {
                let result = match slot {
                    Slot::Run => ran.next().expect("one result per frame run"),
                    Slot::Reuse(r) => again(f, r),
                    Slot::Same(j) => again(f, &done[*j]),
                };
                done.push(result);
            }
            let reused = slots.len() - run.len();
            if reused > 0
                && let Some(m) = &self.metrics
            {
                m.frames_reused
                    .fetch_add(reused as u64, std::sync::atomic::Ordering::Relaxed);
            }
            for ((c, f, _), frame) in slots.iter().zip(done) {
                if let Some(recent) = &mut self.recent {
                    recent.remember(chunks[*c], f, &frame);
                }
                if let Ok(out) = &mut results[*c] {
                    out.push(frame);
                }
            }
        }
        Ok(results)
    }

    /// Detections (with embeddings and poses) of the frames `batch` (chunk, frame), whose
    /// decoded images are `images`: one detector call, the re-ID of their boxes, the pose of
    /// each stream's run of frames.
    fn analyse(
        &mut self,
        chunks: &[&FrameChunk],
        batch: &[(usize, &Frame)],
        images: &[RgbImage],
    ) -> Result<Vec<FrameResult>, String> {
        let Some(analyzer) = self.analyzer.as_mut() else {
            return Err("no detector session".to_owned());
        };
        let start = Instant::now();
        let found = analyzer
            .detect(images)
            .map_err(|e| format!("detector: {e}"))?;
        if let Some(m) = &self.metrics {
            let fill = batch.len() as f64 / self.batch_size as f64;
            m.inference("detector", start.elapsed().as_secs_f64(), Some(fill));
        }
        if found.len() != batch.len() {
            return Err(format!(
                "detector returned {} results for {} frames",
                found.len(),
                batch.len()
            ));
        }
        // Re-ID of every box of the batch's frames in one go (the embedder splits it into a
        // few calls), then each frame takes its share in order. Candidates get none: the
        // tracker matches them by overlap alone, and most are dropped.
        let mut embeddings = match &mut self.embedder {
            Some(e) if found.iter().flatten().any(|d| !d.candidate) => {
                let crops: Vec<(&RgbImage, BoundingBox)> = images
                    .iter()
                    .zip(&found)
                    .flat_map(|(image, ds)| {
                        ds.iter()
                            .filter(|d| !d.candidate)
                            .map(move |d| (image, d.bbox))
                    })
                    .collect();
                let start = Instant::now();
                let embedded = e.embed(&crops).map_err(|e| {
                    let (c, f) = batch[0];
                    format!(
                        "chunk {} frame {}..: re-ID: {e}",
                        chunks[c].sequence, f.index
                    )
                })?;
                if let Some(m) = &self.metrics {
                    m.inference("reid", start.elapsed().as_secs_f64(), None);
                }
                if embedded.len() != crops.len() {
                    return Err(format!(
                        "re-ID returned {} embeddings for {} crops",
                        embedded.len(),
                        crops.len()
                    ));
                }
                embedded.into_iter()
            }
            _ => Vec::new().into_iter(),
        };
        let mut frames: Vec<FrameResult> = Vec::with_capacity(batch.len());
        for (&(_, f), found) in batch.iter().zip(found) {
            let embeddings: Vec<Vec<f32>> = if self.embedder.is_some() {
                found
                    .iter()
                    .map(|d| {
                        if d.candidate {
                            Vec::new()
                        } else {
                            embeddings.next().unwrap_or_default()
                        }
                    })
                    .collect()
            } else {
                Vec::new()
            };
            frames.push(frame_result(f, found, embeddings));
        }
        // Pose per stream: each run of one chunk's frames in the batch.
        if let Some(pose) = &mut self.pose {
            let mut from = 0;
            while from < batch.len() {
                let c = batch[from].0;
                let to = from + batch[from..].iter().take_while(|b| b.0 == c).count();
                let start = Instant::now();
                if pose.attach(
                    &chunks[c].stream_id,
                    &images[from..to],
                    &mut frames[from..to],
                ) && let Some(m) = &self.metrics
                {
                    m.inference("pose", start.elapsed().as_secs_f64(), None);
                }
                from = to;
            }
        }
        Ok(frames)
    }
}

/// Where a frame's result comes from.
#[derive(Debug)]
enum Slot {
    /// The models, in this batch.
    Run,
    /// A result of an earlier batch (the previous chunk's tail).
    Reuse(FrameResult),
    /// The result of an earlier slot of this batch.
    Same(usize),
}

impl Slot {
    fn runs(&self) -> bool {
        matches!(self, Slot::Run)
    }
}

/// How far back from a chunk's end (pts, µs) its frames are remembered: the next chunk
/// repeats the last second (ingest's overlap) and analysing it again would give the same
/// result from the same bytes.
const REMEMBER_US: i64 = 2_000_000;
/// Streams whose tails are remembered at once; beyond it the least recently seen is forgotten.
const REMEMBER_STREAMS: usize = 1024;

/// The results of each stream's newest frames, so a frame that comes again — the overlap of
/// the next chunk — is not analysed twice. A frame is the same only if its stream, pts,
/// capture time and bytes are: its bytes' hash is kept, and any difference runs the models
/// (and the decoder, which checks the frame) as for a new frame.
#[derive(Debug, Default)]
struct Recent {
    streams: std::collections::HashMap<String, StreamTail>,
    /// Counts remembers, to find the least recently seen stream.
    clock: u64,
}

#[derive(Debug, Default)]
struct StreamTail {
    /// (bytes' hash, result), ascending pts.
    frames: std::collections::VecDeque<(u64, FrameResult)>,
    seen: u64,
}

/// Whether frame `f2` of `chunk` is frame `f` of `stream`, bytes and all (a frame of the
/// batch that an overlap frame repeats).
fn same_bytes(chunk: &FrameChunk, f2: &Frame, stream: &str, f: &Frame) -> bool {
    chunk.stream_id == stream
        && (f2.pts_us, f2.capture_time_us) == (f.pts_us, f.capture_time_us)
        && f2.data == f.data
}

fn same_frame(f: &Frame, hash: u64, r: &FrameResult) -> bool {
    r.pts_us == f.pts_us && r.capture_time_us == f.capture_time_us && hash == bytes_hash(&f.data)
}

fn bytes_hash(data: &[u8]) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    data.hash(&mut h);
    h.finish()
}

impl Recent {
    /// Whether [`Self::find`] has a result for `f`.
    fn has(&self, stream: &str, f: &Frame) -> bool {
        self.result(stream, f).is_some()
    }

    /// The result of `f` (of `stream`) from an earlier batch, if it is the same frame.
    fn find(&self, stream: &str, f: &Frame) -> Option<Slot> {
        self.result(stream, f).map(|r| Slot::Reuse(r.clone()))
    }

    fn result(&self, stream: &str, f: &Frame) -> Option<&FrameResult> {
        let tail = self.streams.get(stream)?;
        let (hash, r) = tail.frames.iter().find(|(_, r)| r.pts_us == f.pts_us)?;
        same_frame(f, *hash, r).then_some(r)
    }

    /// Keeps `result` of frame `f` if it lies in the last [`REMEMBER_US`] of its chunk.
    fn remember(&mut self, chunk: &FrameChunk, f: &Frame, result: &FrameResult) {
        if f.pts_us < chunk.end_pts_us - REMEMBER_US {
            return;
        }
        self.clock += 1;
        if !self.streams.contains_key(&chunk.stream_id)
            && self.streams.len() >= REMEMBER_STREAMS
            && let Some(oldest) = self
                .streams
                .iter()
                .min_by_key(|(_, t)| t.seen)
                .map(|(s, _)| s.clone())
        {
            self.streams.remove(&oldest);
        }
        let tail = self.streams.entry(chunk.stream_id.clone()).or_default();
        tail.seen = self.clock;
        // A frame older than the newest kept belongs to a replay or a restarted stream:
        // start the tail again from it.
        if tail
            .frames
            .back()
            .is_some_and(|(_, r)| r.pts_us >= f.pts_us)
        {
            tail.frames.clear();
        }
        tail.frames.push_back((bytes_hash(&f.data), result.clone()));
        while tail
            .frames
            .front()
            .is_some_and(|(_, r)| r.pts_us < f.pts_us - REMEMBER_US)
        {
            tail.frames.pop_front();
        }
    }
}

/// `r`, the result of the same frame in another chunk, as the result of `f`: the frame's
/// index is its place in this chunk.
fn again(f: &Frame, r: &FrameResult) -> FrameResult {
    let mut out = r.clone();
    out.index = f.index;
    for d in &mut out.detections {
        d.frame_index = f.index;
    }
    out
}

/// The detections `found` on frame `f`, with their embeddings.
fn frame_result(f: &Frame, found: Vec<Found>, embeddings: Vec<Vec<f32>>) -> FrameResult {
    FrameResult {
        index: f.index,
        pts_us: f.pts_us,
        capture_time_us: f.capture_time_us,
        detections: found
            .into_iter()
            .map(|d| Detection {
                frame_index: f.index,
                pts_us: f.pts_us,
                class_id: d.class_id,
                confidence: d.score,
                bbox: d.bbox,
                track_id: None,
                keypoints: Vec::new(),
                interpolated: false,
                candidate: d.candidate,
            })
            .collect(),
        embeddings,
    }
}

/// The result shape of `chunk` with `frames`.
fn processed(chunk: &FrameChunk, frames: Vec<FrameResult>) -> ProcessedChunk {
    ProcessedChunk {
        stream_id: chunk.stream_id.clone(),
        sequence: chunk.sequence,
        start_pts_us: chunk.start_pts_us,
        end_pts_us: chunk.end_pts_us,
        stream_start_time_us: chunk.stream_start_time_us,
        frame_width: chunk.width,
        frame_height: chunk.height,
        frames,
    }
}

/// `chunk`'s frames without detections, for a degraded chunk's record.
pub fn unanalysed(chunk: &FrameChunk) -> ProcessedChunk {
    let frames = chunk
        .frames
        .iter()
        .map(|f| FrameResult {
            index: f.index,
            pts_us: f.pts_us,
            capture_time_us: f.capture_time_us,
            detections: Vec::new(),
            embeddings: Vec::new(),
        })
        .collect();
    processed(chunk, frames)
}

/// The pixels of one frame of `chunk`. A JPEG's size is checked from its header before it is
/// decoded (a hostile header must not make the worker allocate for it), and a JPEG cut short
/// (no end-of-image marker) is refused rather than decoded with its missing rows filled in.
pub fn frame_image(chunk: &FrameChunk, data: &[u8]) -> Result<RgbImage, String> {
    match chunk.encoding {
        FrameEncoding::Jpeg => {
            use image::ImageDecoder;
            let mut decoder = image::codecs::jpeg::JpegDecoder::new(std::io::Cursor::new(data))
                .map_err(|e| format!("bad JPEG: {e}"))?;
            decoder
                .set_limits(image::Limits::default())
                .map_err(|e| format!("bad JPEG: {e}"))?;
            let (w, h) = decoder.dimensions();
            if (w, h) != (chunk.width, chunk.height) {
                return Err(format!(
                    "JPEG is {w}x{h}, chunk says {}x{}",
                    chunk.width, chunk.height
                ));
            }
            let end = data.iter().rposition(|&b| b != 0).map_or(0, |i| i + 1);
            if !data[..end].ends_with(&[0xFF, 0xD9]) {
                return Err("bad JPEG: truncated (no end-of-image marker)".to_owned());
            }
            // The decoder has panicked on hostile input (zune-jpeg 0.5.15's AVX2 upsampler,
            // found by `fuzz/`): a panic must cost the frame, not the worker.
            let decoded = crate::panics::catch(std::panic::AssertUnwindSafe(|| {
                image::DynamicImage::from_decoder(decoder)
            }))
            .map_err(|_| "bad JPEG: the decoder failed on it".to_owned())?;
            Ok(decoded.map_err(|e| format!("bad JPEG: {e}"))?.into_rgb8())
        }
        FrameEncoding::Rgb24 => RgbImage::from_raw(chunk.width, chunk.height, data.to_vec())
            .ok_or_else(|| "RGB frame has the wrong size".to_owned()),
    }
}

pub trait Detect<'scope, T: Timestamp> {
    /// Chunks (or earlier errors) → outcomes. A bad frame makes the chunk an error record, a
    /// failed model a degraded chunk; the worker carries on with the next one.
    fn detect(
        self,
        analyzer: ChunkAnalyzer,
        metrics: Arc<Metrics>,
    ) -> StreamVec<'scope, T, Outcome>;
}

impl<'scope, T: Timestamp> Detect<'scope, T>
    for StreamVec<'scope, T, Result<Located, ChunkErrorRecord>>
{
    fn detect(
        self,
        mut analyzer: ChunkAnalyzer,
        metrics: Arc<Metrics>,
    ) -> StreamVec<'scope, T, Outcome> {
        analyzer.set_metrics(metrics.clone());
        self.unary::<CapacityContainerBuilder<Vec<Outcome>>, _, _, _>(
            Pipeline,
            "Detect",
            move |_cap, _info| {
                move |input, output| {
                    // Everything that arrived since the last activation, analysed together so
                    // that chunks of different streams share inference batches.
                    let mut caps = Vec::new();
                    let mut items = Vec::new();
                    input.for_each(|cap, data| {
                        caps.push(cap.retain_stamp(0));
                        items.extend(data.drain(..).map(|item| (caps.len() - 1, item)));
                    });
                    if items.is_empty() {
                        return;
                    }
                    let located: Vec<&Located> =
                        items.iter().filter_map(|(_, i)| i.as_ref().ok()).collect();
                    let mut results = if located.is_empty() {
                        Vec::new()
                    } else {
                        // One span per chunk, all open for the call that analyses them.
                        let spans: Vec<tracing::Span> = located
                            .iter()
                            .map(|l| super::chunk_span("detect", &l.trace_id, &l.chunk.chunk_id()))
                            .collect();
                        let _entered: Vec<_> = spans.iter().map(|s| s.enter()).collect();
                        let start = Instant::now();
                        let chunks: Vec<&FrameChunk> = located.iter().map(|l| &l.chunk).collect();
                        let results = analyzer.process_many(&chunks);
                        // Each chunk is charged its frames' share of the call, so that the
                        // operator's time sums to the time spent (the capacity model adds it).
                        let seconds = start.elapsed().as_secs_f64();
                        let frames: usize = chunks.iter().map(|c| c.frames.len()).sum();
                        for c in &chunks {
                            let share = c.frames.len() as f64 / frames.max(1) as f64;
                            metrics.operator_latency("detect", seconds * share);
                        }
                        results
                    }
                    .into_iter();
                    for (cap, item) in items {
                        let outcome = match item {
                            Err(e) => Outcome::Failed(e),
                            Ok(located) => match results.next().expect("one result per chunk") {
                                Ok(p) => Outcome::Processed(super::Processed::new(p, &located)),
                                Err(Failure::Input(reason)) => Outcome::Failed(located.error(
                                    "inference",
                                    format!("chunk {}: {reason}", located.chunk.chunk_id()),
                                )),
                                Err(Failure::Model(reason)) => Outcome::Degraded(Degraded {
                                    chunk: unanalysed(&located.chunk),
                                    reason,
                                    trace_id: located.trace_id.clone(),
                                }),
                            },
                        };
                        output.session(&caps[cap]).give(outcome);
                    }
                }
            },
        )
    }
}

#[cfg(test)]
mod tests {
    use horsestream_proto::Frame;

    use super::*;

    /// Finds one box per frame whose x is the frame's top-left red value: enough to see
    /// that frames reach the analyzer in order and results land on the right frame.
    struct RedProbe;
    impl Analyzer for RedProbe {
        fn detect(&mut self, frames: &[RgbImage]) -> Result<Vec<Vec<Found>>, String> {
            Ok(frames
                .iter()
                .map(|f| {
                    vec![Found {
                        candidate: false,
                        class_id: 17,
                        score: 0.9,
                        bbox: BoundingBox {
                            x: f.get_pixel(0, 0).0[0] as f32,
                            y: 0.0,
                            w: 1.0,
                            h: 1.0,
                        },
                    }]
                })
                .collect())
        }
    }

    fn chunk(n: usize) -> FrameChunk {
        FrameChunk {
            stream_id: "s".into(),
            sequence: 4,
            start_pts_us: 0,
            end_pts_us: 1_000_000,
            fps_num: 10,
            fps_den: 1,
            width: 2,
            height: 1,
            source: "test".into(),
            encoding: FrameEncoding::Rgb24,
            stream_start_time_us: 0,
            trace_id: String::new(),
            frames: (0..n)
                .map(|i| Frame {
                    index: i as u32,
                    pts_us: i as i64 * 100_000,
                    capture_time_us: i as i64 * 100_000,
                    data: vec![i as u8 * 10, 0, 0, 0, 0, 0],
                })
                .collect(),
        }
    }

    /// [`RedProbe`] that also counts the frames it is given.
    struct Counting(std::rc::Rc<std::cell::Cell<usize>>);
    impl Analyzer for Counting {
        fn detect(&mut self, frames: &[RgbImage]) -> Result<Vec<Vec<Found>>, String> {
            self.0.set(self.0.get() + frames.len());
            RedProbe.detect(frames)
        }
    }

    /// Chunk `sequence` of stream "s": one frame every 100 ms over `pts` (ms), indexed from 0
    /// in the chunk; a frame's red value is its pts / 10 ms, so the same pts gives the same
    /// bytes.
    fn span(sequence: u64, pts_ms: std::ops::Range<i64>) -> FrameChunk {
        let mut c = chunk(0);
        c.sequence = sequence;
        c.start_pts_us = pts_ms.start * 1000;
        c.end_pts_us = pts_ms.end * 1000;
        c.frames = pts_ms
            .step_by(100)
            .enumerate()
            .map(|(i, ms)| Frame {
                index: i as u32,
                pts_us: ms * 1000,
                capture_time_us: ms * 1000,
                data: vec![(ms / 10) as u8, 0, 0, 0, 0, 0],
            })
            .collect();
        c
    }

    fn xs(p: &ProcessedChunk) -> Vec<(u32, u32, f32)> {
        p.frames
            .iter()
            .map(|f| (f.index, f.detections[0].frame_index, f.detections[0].bbox.x))
            .collect()
    }

    #[test]
    fn overlap_frames_take_the_previous_chunks_results_and_only_the_same_bytes_do() {
        use std::cell::Cell;
        use std::rc::Rc;
        let analysed = Rc::new(Cell::new(0));
        let mut a = ChunkAnalyzer::new(Box::new(Counting(analysed.clone())), 4);
        let first = a.process(&span(0, 0..1000)).unwrap();
        assert_eq!(analysed.get(), 10);
        // The next chunk repeats 800 and 900 ms; the frame at 900 ms differs in one byte.
        let mut next = span(1, 800..1800);
        next.frames[1].data[1] = 1;
        let second = a.process(&next).unwrap();
        assert_eq!(
            analysed.get(),
            10 + 9,
            "the frame at 800 ms is not analysed again"
        );
        // Every frame has its own result, indexed in its chunk: the reused one equals the
        // first chunk's result for that frame.
        let want: Vec<(u32, u32, f32)> = (0..10).map(|i| (i, i, (80 + i * 10) as f32)).collect();
        assert_eq!(xs(&second), want);
        assert_eq!(second.frames[0].detections, {
            let mut d = first.frames[8].detections.clone();
            d[0].frame_index = 0;
            d
        });

        // Both chunks in one call: the repeated frames take the results of the same call.
        analysed.set(0);
        let mut a = ChunkAnalyzer::new(Box::new(Counting(analysed.clone())), 4);
        let both = a.process_many(&[&span(0, 0..1000), &span(1, 800..1800)]);
        assert_eq!(analysed.get(), 18);
        let second = both[1].as_ref().unwrap();
        assert_eq!(xs(second), want);
        // A frame already seen of another stream is not the same frame.
        let mut other = span(1, 800..1800);
        other.stream_id = "t".into();
        a.process(&other).unwrap();
        assert_eq!(analysed.get(), 28);

        // Without reuse every frame runs.
        analysed.set(0);
        let mut plain =
            ChunkAnalyzer::new(Box::new(Counting(analysed.clone())), 4).with_overlap_reuse(false);
        let both = plain.process_many(&[&span(0, 0..1000), &span(1, 800..1800)]);
        assert_eq!(analysed.get(), 20);
        assert_eq!(xs(both[1].as_ref().unwrap()), want);
    }

    /// Fails while its shared switch is on; counts its calls.
    struct Switch(std::rc::Rc<std::cell::Cell<(bool, u32)>>);
    impl Analyzer for Switch {
        fn detect(&mut self, frames: &[RgbImage]) -> Result<Vec<Vec<Found>>, String> {
            let (fail, calls) = self.0.get();
            self.0.set((fail, calls + 1));
            if fail {
                return Err("session run failed: device lost".into());
            }
            Ok(vec![Vec::new(); frames.len()])
        }
    }

    #[test]
    fn a_failed_model_degrades_chunks_until_a_reload_works() {
        use std::cell::Cell;
        use std::rc::Rc;
        let state = Rc::new(Cell::new((true, 0)));
        let reloads = Rc::new(Cell::new(0u32));
        let reload_ok = Rc::new(Cell::new(false));
        let (s, r, ok) = (state.clone(), reloads.clone(), reload_ok.clone());
        let reload: Reload = Box::new(move || {
            r.set(r.get() + 1);
            if ok.get() {
                Ok((Box::new(Switch(s.clone())) as Box<dyn Analyzer>, None))
            } else {
                Err("yolox_nano.onnx: sha256 mismatch".into())
            }
        });
        // A retry at every chunk: no waiting in a test.
        let mut a = ChunkAnalyzer::new(Box::new(Switch(state.clone())), 4)
            .with_reload(reload, RetryPolicy::up_to(Duration::ZERO));
        let c = chunk(6);
        let Failure::Model(why) = a.process(&c).unwrap_err() else {
            panic!("a session error is the model's failure");
        };
        assert!(why.contains("device lost"), "{why}");
        assert!(a.is_degraded());
        // The session was dropped: the next chunk reloads, the model file is still bad.
        let Failure::Model(why) = a.process(&c).unwrap_err() else {
            panic!("a failed reload keeps the chunk degraded");
        };
        assert!(why.contains("sha256 mismatch"), "{why}");
        assert_eq!(reloads.get(), 1);
        // The file is back, the device too: the reload works and so does the chunk.
        reload_ok.set(true);
        state.set((false, state.get().1));
        let p = a.process(&c).unwrap();
        assert_eq!(p.frames.len(), 6);
        assert!(!a.is_degraded());
        assert_eq!(reloads.get(), 2);
    }

    #[test]
    fn while_down_chunks_before_the_next_retry_skip_inference() {
        use std::cell::Cell;
        use std::rc::Rc;
        let state = Rc::new(Cell::new((true, 0)));
        let mut a = ChunkAnalyzer::new(Box::new(Switch(state.clone())), 8);
        a.retry = RetryPolicy::up_to(Duration::from_secs(3600));
        assert!(matches!(a.process(&chunk(3)), Err(Failure::Model(_))));
        assert_eq!(state.get().1, 1);
        state.set((false, 1));
        // Within the backoff the chunk is degraded without calling the model.
        assert!(matches!(a.process(&chunk(3)), Err(Failure::Model(_))));
        assert_eq!(state.get().1, 1);
    }

    #[test]
    fn backoff_doubles_up_to_its_cap() {
        let mut a = ChunkAnalyzer::new(Box::new(RedProbe), 8);
        a.retry = RetryPolicy {
            first: Duration::from_secs(1),
            max: Duration::from_secs(5),
        };
        let waits: Vec<u64> = (0..5)
            .map(|_| {
                a.fail("x".into());
                a.down.as_ref().unwrap().backoff.as_secs()
            })
            .collect();
        assert_eq!(waits, vec![1, 2, 4, 5, 5]);
    }

    /// On every frame: a detection, then a candidate.
    struct WithCandidate;
    impl Analyzer for WithCandidate {
        fn detect(&mut self, frames: &[RgbImage]) -> Result<Vec<Vec<Found>>, String> {
            let found = |x: f32, candidate: bool| Found {
                class_id: 17,
                score: if candidate { 0.2 } else { 0.9 },
                bbox: BoundingBox {
                    x,
                    y: 0.0,
                    w: 1.0,
                    h: 1.0,
                },
                candidate,
            };
            Ok(frames
                .iter()
                .map(|_| vec![found(0.0, false), found(1.0, true)])
                .collect())
        }
    }

    /// Embeds a crop as its box's x; records how many crops each call got.
    struct CountCrops(std::rc::Rc<std::cell::RefCell<Vec<usize>>>);
    impl Embed for CountCrops {
        fn embed(&mut self, crops: &[(&RgbImage, BoundingBox)]) -> Result<Vec<Vec<f32>>, String> {
            self.0.borrow_mut().push(crops.len());
            Ok(crops.iter().map(|(_, b)| vec![b.x + 1.0]).collect())
        }
    }

    #[test]
    fn candidates_are_kept_flagged_and_get_no_embedding() {
        let calls = std::rc::Rc::new(std::cell::RefCell::new(Vec::new()));
        let mut a = ChunkAnalyzer::new(Box::new(WithCandidate), 4)
            .with_embedder(Box::new(CountCrops(calls.clone())));
        let p = a.process(&chunk(6)).unwrap();
        // One crop per frame: the detection's, never the candidate's.
        assert_eq!(*calls.borrow(), vec![4, 2]);
        for f in &p.frames {
            let flags: Vec<bool> = f.detections.iter().map(|d| d.candidate).collect();
            assert_eq!(flags, vec![false, true]);
            assert_eq!(f.embeddings, vec![vec![1.0], Vec::new()]);
        }
    }

    /// [`RedProbe`] that records the size of every batch it is given.
    struct Sizes(std::rc::Rc<std::cell::RefCell<Vec<usize>>>);
    impl Analyzer for Sizes {
        fn detect(&mut self, frames: &[RgbImage]) -> Result<Vec<Vec<Found>>, String> {
            self.0.borrow_mut().push(frames.len());
            RedProbe.detect(frames)
        }
    }

    #[test]
    fn chunks_analysed_together_share_batches_and_get_what_each_would_alone() {
        let sizes = std::rc::Rc::new(std::cell::RefCell::new(Vec::new()));
        let mut a = ChunkAnalyzer::new(Box::new(Sizes(sizes.clone())), 4);
        let (mut x, mut y) = (chunk(5), chunk(6));
        y.stream_id = "other".into();
        y.sequence = 9;
        let together = a.process_many(&[&x, &y]);
        assert_eq!(*sizes.borrow(), vec![4, 4, 3]);
        sizes.borrow_mut().clear();
        // A fresh analyzer: this one would take every frame it has seen from its memory.
        let mut a = ChunkAnalyzer::new(Box::new(Sizes(sizes.clone())), 4);
        let alone = [a.process(&x), a.process(&y)];
        assert_eq!(*sizes.borrow(), vec![4, 1, 4, 2]);
        assert_eq!(together, alone);
        // A frame that does not decode fails its own chunk; the other is whole.
        x.frames[3].data.truncate(2);
        let r = a.process_many(&[&x, &y]);
        assert!(
            matches!(&r[0], Err(Failure::Input(e)) if e.starts_with("frame 3:")),
            "{:?}",
            r[0]
        );
        assert_eq!(r[1], alone[1]);
        // A frame that breaks the session (it decodes) fails its chunk only: the shared call
        // fails, then each chunk runs alone.
        struct Poisoned;
        impl Analyzer for Poisoned {
            fn detect(&mut self, frames: &[RgbImage]) -> Result<Vec<Vec<Found>>, String> {
                if frames.iter().any(|f| f.get_pixel(0, 0).0[0] == 250) {
                    return Err("session run failed".into());
                }
                RedProbe.detect(frames)
            }
        }
        let mut p = ChunkAnalyzer::new(Box::new(Poisoned), 4);
        let mut poisoned = y.clone();
        poisoned.frames[2].data[0] = 250;
        let r = p.process_many(&[&chunk(5), &poisoned]);
        assert_eq!(r[0], alone[0]);
        assert!(matches!(&r[1], Err(Failure::Model(_))), "{:?}", r[1]);
        // A model that fails whatever it is given fails every chunk of the call.
        let mut broken = ChunkAnalyzer::new(
            Box::new(Switch(std::rc::Rc::new(std::cell::Cell::new((true, 0))))),
            4,
        );
        let r = broken.process_many(&[&chunk(5), &y]);
        assert!(
            r.iter().all(|r| matches!(r, Err(Failure::Model(_)))),
            "{r:?}"
        );
    }

    #[test]
    fn frames_decoded_ahead_on_threads_give_what_decoding_one_by_one_gives() {
        let run = |threads: usize| {
            let mut a = ChunkAnalyzer::new(Box::new(RedProbe), 4).with_decode_threads(threads);
            let (x, mut y, z) = (span(0, 0..1000), span(1, 800..1800), span(2, 1700..2700));
            // Fails y, in the middle of a batch; z's overlap repeats y's last frame.
            y.frames[5].data.truncate(2);
            let mut other = span(0, 0..1000);
            other.stream_id = "t".into();
            let first = a.process_many(&[&x, &y, &other, &z]);
            (first, a.process(&span(3, 2600..3600)))
        };
        let one = run(1);
        assert!(
            matches!(&one.0[1], Err(Failure::Input(e)) if e.starts_with("frame 5:")),
            "{:?}",
            one.0[1]
        );
        assert!(one.0.iter().filter(|r| r.is_ok()).count() == 3);
        assert_eq!(run(2), one);
        assert_eq!(run(3), one);
    }

    #[test]
    fn batches_keep_frame_order() {
        let mut a = ChunkAnalyzer::new(Box::new(RedProbe), 3);
        let p = a.process(&chunk(7)).unwrap();
        let xs: Vec<f32> = p.frames.iter().map(|f| f.detections[0].bbox.x).collect();
        assert_eq!(xs, vec![0.0, 10.0, 20.0, 30.0, 40.0, 50.0, 60.0]);
        assert_eq!(p.frames[6].detections[0].pts_us, 600_000);
    }

    #[test]
    fn a_jpeg_that_panicked_the_decoder_is_a_bad_frame() {
        // A progressive 4x3 JPEG found by the `chunk` fuzz target (fuzz/), which made
        // zune-jpeg's AVX2 upsampler fail an assertion.
        let hex: String = [
            "ffd8ffe000104a46494600010200000100010000ffc20011080003000403011100022101031201ffdb00430006040506",
            "050406060506070706080a100a0a09090a140e0f0c10171418010000000000039a1f1a1b231c1616202c20232627292a",
            "29191f2d302d283025282928ffdb0043010707070a080a130a0a13281a161a2828282828282828282828282828282828",
            "2828282828d8df282835363738393a434445696a737475767778797a82838485868788898a92939495969798999aa2a3",
            "a4a5a6a7a8a9aad3d4d5d6d7d8d9dae2e3e4e5e6e7e8e9eaf2f3f4f5f6f7f8f9faffda000c03010002110301000000ff",
            "ff0000f0ff00000f3ff122b3ff00be4ff8d65a47ffd96880e0fc8ab0919803c3c4c5c668b0919803d3d4d5d6d7d8d9da",
            "e2e3e4e5e6e7e8e9eaf2f3f4f5f6f7f8f9faffda000c03010002110301000000ffff0000f0ff00000f3ff122b3ff00be",
            "4ff8d65a47ffd968b09198030102031104052131061241510761711322328108144291a1b1c109233352f0156272d10a",
            "162434e125f11718191a262728292a35363738393a434445464748494a535455565758595a636465666768696a737475",
            "767778797a82838485868788898a92939495969798999aa2a3a4a5a6a7a8a9aab2b3b4b5b6b7b8b9bac2c3c4c5c6c7c8",
            "c954d2d3d4d5d6d7d8d9dae2e3e4e5e6e7e8e9eaf2f3f4f5f6f7f8f9fa0000001003010002110301000000ffff0000f0",
            "ff00000f3ff122b3ff00be4ff8d65a47ffd96880e0fc8ab0919803c3c4c5c6c7c8c954d2d3d4d5d6d7d8d9dae2e3e4e5",
            "e6e7e8e9eaf2f3f4f5f6f7f8f9faffda000c03010002110301000000ffff0000f0ff00000f3ff122b3ff00be4ff8d65a",
            "47ffd968b09198033ff122b3ff00be4ff8d65a47ffd9",
        ]
        .concat();
        let jpeg: Vec<u8> = (0..hex.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
            .collect();
        let mut c = chunk(1);
        (c.encoding, c.width, c.height) = (FrameEncoding::Jpeg, 4, 3);
        // Whatever the decoder makes of it on this CPU, no panic leaves frame_image.
        match frame_image(&c, &jpeg) {
            Ok(img) => assert_eq!(img.dimensions(), (4, 3)),
            Err(e) => assert!(e.starts_with("bad JPEG"), "{e}"),
        }
    }

    #[test]
    fn a_truncated_jpeg_or_one_of_another_size_is_refused() {
        let mut c = chunk(1);
        c.encoding = FrameEncoding::Jpeg;
        let mut jpeg = Vec::new();
        image::codecs::jpeg::JpegEncoder::new(&mut jpeg)
            .encode(
                &[200, 10, 10, 10, 200, 10],
                2,
                1,
                image::ExtendedColorType::Rgb8,
            )
            .unwrap();
        assert!(frame_image(&c, &jpeg).unwrap().get_pixel(0, 0).0[0] > 150);
        let mut padded = jpeg.clone();
        padded.extend([0, 0]);
        assert!(frame_image(&c, &padded).is_ok());
        let cut = &jpeg[..jpeg.len() - 4];
        assert_eq!(
            frame_image(&c, cut).unwrap_err(),
            "bad JPEG: truncated (no end-of-image marker)"
        );
        c.width = 3;
        assert_eq!(
            frame_image(&c, &jpeg).unwrap_err(),
            "JPEG is 2x1, chunk says 3x1"
        );
    }

    #[test]
    fn a_corrupt_frame_fails_the_chunk_with_its_index() {
        let mut c = chunk(3);
        c.encoding = FrameEncoding::Jpeg;
        let mut a = ChunkAnalyzer::new(Box::new(RedProbe), 8);
        let Failure::Input(err) = a.process(&c).unwrap_err() else {
            panic!("a bad frame is the chunk's fault, not the model's");
        };
        assert!(err.starts_with("frame 0: bad JPEG"), "{err}");
        assert!(!a.is_degraded());
    }
}
