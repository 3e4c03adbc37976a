//! `Track`: DeepSORT over each stream's frames, on the worker that owns the stream, with the
//! tracker's state carried from chunk to chunk. Frames of the 1 s overlap that were already
//! tracked as the end of the previous chunk are not fed to the tracker again; they get the
//! track ids assigned then, so ids neither reset nor double-count at chunk boundaries.
//!
//! With checkpoints on ([`StreamTracks::with_checkpoints`]) each chunk leaves with the
//! stream's tracker state after it, and a stream seen for the first time resumes from its
//! newest stored checkpoint before that chunk (see [`crate::checkpoint`]).

use std::collections::{BTreeMap, VecDeque};

use horsestream_proto::{Detection, FrameResult, ProcessedChunk};
use horsestream_sinks::store::StreamCheckpoint;
use serde::{Deserialize, Serialize};
use timely::container::CapacityContainerBuilder;
use timely::dataflow::StreamVec;
use timely::dataflow::channels::pact::Pipeline;
use timely::dataflow::operators::generic::Operator;
use timely::progress::Timestamp;

use super::{Outcome, Processed};
use crate::checkpoint::{self, Restore};
use crate::tracking::{DetectionIn, Tracker, TrackerConfig, interpolate};

/// How long the ids of tracked frames are remembered for the next chunk's overlap.
const REMEMBER_US: i64 = 5_000_000;

/// The default longest gap, in frames, a track's boxes are interpolated over (1 s at 10 fps).
pub const DEFAULT_INTERPOLATION_GAP: usize = 10;

#[derive(Debug, Serialize, Deserialize)]
struct StreamState {
    tracker: Tracker,
    /// Pts of the newest frame fed to the tracker.
    last_pts_us: Option<i64>,
    /// Track ids given to the detections of recent frames, by pts.
    recent: VecDeque<(i64, Vec<Option<u64>>)>,
}

/// The trackers of every stream this worker owns.
pub struct StreamTracks {
    config: TrackerConfig,
    /// Longest gap (frames) filled by interpolation; 0 for none.
    max_gap: usize,
    streams: BTreeMap<String, StreamState>,
    /// Set when checkpoints are on.
    restore: Option<Restore>,
}

impl std::fmt::Debug for StreamTracks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamTracks")
            .field("config", &self.config)
            .field("max_gap", &self.max_gap)
            .field("streams", &self.streams)
            .field("checkpoints", &self.restore.is_some())
            .finish()
    }
}

impl StreamTracks {
    pub fn new(config: TrackerConfig) -> Self {
        StreamTracks {
            config,
            max_gap: DEFAULT_INTERPOLATION_GAP,
            streams: BTreeMap::new(),
            restore: None,
        }
    }

    /// Fills gaps of at most `frames` missed frames in a track with interpolated boxes
    /// ([`crate::tracking::interpolate`]); 0 turns it off.
    pub fn with_interpolation(mut self, frames: usize) -> Self {
        self.max_gap = frames;
        self
    }

    /// Turns checkpoints on: every processed chunk carries the tracker state after it (for
    /// the sink to store with the chunk), and a stream first seen at chunk `n` resumes from
    /// `restore(stream, n)`, the state stored with its newest chunk before `n`.
    pub fn with_checkpoints(
        mut self,
        restore: impl FnMut(&str, u64) -> Option<(u64, StreamCheckpoint)> + 'static,
    ) -> Self {
        self.restore = Some(Box::new(restore));
        self
    }

    /// Tracks a processed chunk; with checkpoints on, also attaches the stream's state after
    /// it and, at the stream's first chunk, the horses' part of the restored checkpoint.
    pub fn process_record(&mut self, p: &mut Processed) {
        let (restored_horses, state) = self.process_checkpointed(&mut p.chunk);
        p.restored_horses = restored_horses;
        if let Some(tracks) = state {
            p.checkpoint
                .get_or_insert_with(StreamCheckpoint::default)
                .tracks = tracks;
        }
    }

    /// [`Self::process`], returning the horses' part of the checkpoint the stream was
    /// restored from at this chunk (its first), and with checkpoints on the tracker's state
    /// after the chunk, encoded.
    pub fn process_checkpointed(
        &mut self,
        chunk: &mut ProcessedChunk,
    ) -> (Option<Vec<u8>>, Option<Vec<u8>>) {
        let restored = self.process_inner(chunk);
        let state = self
            .restore
            .is_some()
            .then(|| checkpoint::encode(&self.streams[&chunk.stream_id]));
        (restored, state)
    }

    /// Sets `track_id` on the detections of `chunk` that belong to a confirmed track, and adds
    /// the interpolated boxes of short gaps.
    pub fn process(&mut self, chunk: &mut ProcessedChunk) {
        self.process_inner(chunk);
    }

    /// The state of a stream seen for the first time at `chunk`: restored from its
    /// checkpoint (returned with the horses' part of it) or new.
    fn first_state(&mut self, chunk: &ProcessedChunk) -> (StreamState, Option<Vec<u8>>) {
        let fresh = || StreamState {
            tracker: Tracker::new(self.config.clone()),
            last_pts_us: None,
            recent: VecDeque::new(),
        };
        let Some(restore) = self.restore.as_mut() else {
            return (fresh(), None);
        };
        let Some((after, c)) = restore(&chunk.stream_id, chunk.sequence) else {
            return (fresh(), None);
        };
        match checkpoint::decode::<StreamState>(&c.tracks) {
            Ok(state) => {
                tracing::info!(stream = %chunk.stream_id, chunk = chunk.sequence, after,
                    tracks = state.tracker.tracks().len(), "tracker restored from checkpoint");
                (state, Some(c.horses))
            }
            Err(e) => {
                tracing::warn!(stream = %chunk.stream_id, after, error = %e,
                    "checkpoint unreadable, the stream's tracks start afresh");
                (fresh(), None)
            }
        }
    }

    fn process_inner(&mut self, chunk: &mut ProcessedChunk) -> Option<Vec<u8>> {
        let mut restored = None;
        if !self.streams.contains_key(&chunk.stream_id) {
            let (state, horses) = self.first_state(chunk);
            restored = horses;
            self.streams.insert(chunk.stream_id.clone(), state);
        }
        let state = self
            .streams
            .get_mut(&chunk.stream_id)
            .expect("inserted above");
        // Frames behind the tracker whose ids are no longer (or never were) remembered.
        let mut forgotten = 0;
        for frame in &mut chunk.frames {
            if state.last_pts_us.is_some_and(|last| frame.pts_us <= last) {
                // Already tracked (overlap, or a replayed chunk): reuse the ids given then.
                if let Some((_, ids)) = state.recent.iter().find(|(p, _)| *p == frame.pts_us)
                    && ids.len() == frame.detections.len()
                {
                    for (d, id) in frame.detections.iter_mut().zip(ids) {
                        d.track_id = *id;
                    }
                } else if !frame.detections.is_empty() {
                    forgotten += 1;
                }
                continue;
            }
            let input: Vec<DetectionIn> = frame
                .detections
                .iter()
                .enumerate()
                .map(|(i, d)| DetectionIn {
                    bbox: d.bbox,
                    score: d.confidence,
                    embedding: frame.embeddings.get(i).filter(|e| !e.is_empty()).cloned(),
                    candidate: d.candidate,
                })
                .collect();
            let mut ids = vec![None; input.len()];
            for out in state.tracker.update(&input) {
                ids[out.detection] = Some(out.id);
            }
            for (d, id) in frame.detections.iter_mut().zip(&ids) {
                d.track_id = *id;
            }
            state.recent.push_back((frame.pts_us, ids));
            while state
                .recent
                .front()
                .is_some_and(|(p, _)| *p < frame.pts_us - REMEMBER_US)
            {
                state.recent.pop_front();
            }
            state.last_pts_us = Some(frame.pts_us);
        }
        if forgotten > 0 {
            // A chunk that reached its stream's worker after a later one: its boxes keep no
            // track ids. Sources must deliver a stream's chunks in order (one Kafka partition,
            // one reader of the in-process bus); this says when they did not.
            tracing::warn!(stream = %chunk.stream_id, chunk = chunk.sequence, frames = forgotten,
                "frames behind the stream's tracker and no longer remembered: their boxes have no track ids");
        }
        for frame in &mut chunk.frames {
            drop_untracked_candidates(frame);
        }
        interpolate::fill_gaps(&mut chunk.frames, self.max_gap);
        restored
    }
}

/// Removes the candidates no track took, with their embeddings: a low-score box is a horse
/// only as the continuation of one.
fn drop_untracked_candidates(frame: &mut FrameResult) {
    let kept = |d: &Detection| !d.candidate || d.track_id.is_some();
    if frame.detections.iter().all(kept) {
        return;
    }
    if frame.embeddings.len() == frame.detections.len() {
        let mut keep = frame.detections.iter().map(kept);
        frame
            .embeddings
            .retain(|_| keep.next().expect("one embedding per detection"));
    }
    frame.detections.retain(kept);
}

pub trait Track<'scope, T: Timestamp> {
    fn track(self, tracks: StreamTracks) -> StreamVec<'scope, T, Outcome>;
}

impl<'scope, T: Timestamp> Track<'scope, T> for StreamVec<'scope, T, Outcome> {
    fn track(self, mut tracks: StreamTracks) -> StreamVec<'scope, T, Outcome> {
        self.unary::<CapacityContainerBuilder<Vec<Outcome>>, _, _, _>(
            Pipeline,
            "Track",
            move |_cap, _info| {
                move |input, output| {
                    input.for_each(|cap, data| {
                        let mut session = output.session(&cap);
                        for mut outcome in data.drain(..) {
                            if let Outcome::Processed(p) = &mut outcome {
                                p.stage("track", |p| tracks.process_record(p));
                            }
                            session.give(outcome);
                        }
                    });
                }
            },
        )
    }
}

#[cfg(test)]
mod tests {
    use horsestream_proto::{BoundingBox, Detection, FrameResult};

    use super::*;

    /// Two horses walking right at 10 px per frame, far apart; frames `from..to` at 10 fps.
    fn chunk(sequence: u64, from: i64, to: i64) -> ProcessedChunk {
        ProcessedChunk {
            stream_id: "s".into(),
            sequence,
            start_pts_us: from * 100_000,
            end_pts_us: to * 100_000,
            stream_start_time_us: 0,
            frame_width: 0,
            frame_height: 0,
            frames: (from..to)
                .enumerate()
                .map(|(i, k)| FrameResult {
                    index: i as u32,
                    pts_us: k * 100_000,
                    capture_time_us: k * 100_000,
                    detections: [0.0f32, 300.0]
                        .iter()
                        .map(|y| Detection {
                            frame_index: i as u32,
                            pts_us: k * 100_000,
                            class_id: 17,
                            confidence: 0.9,
                            bbox: BoundingBox {
                                x: 10.0 * k as f32,
                                y: *y,
                                w: 80.0,
                                h: 60.0,
                            },
                            track_id: None,
                            keypoints: Vec::new(),
                            interpolated: false,
                            candidate: false,
                        })
                        .collect(),
                    embeddings: vec![vec![1.0, 0.0], vec![0.0, 1.0]],
                })
                .collect(),
        }
    }

    fn ids(c: &ProcessedChunk) -> Vec<Vec<Option<u64>>> {
        c.frames
            .iter()
            .map(|f| f.detections.iter().map(|d| d.track_id).collect())
            .collect()
    }

    #[test]
    fn candidates_a_track_takes_stay_the_others_go_with_their_embeddings() {
        let mut t = StreamTracks::new(TrackerConfig::default()).with_interpolation(0);
        let mut c = chunk(0, 0, 20);
        for f in &mut c.frames[10..] {
            // The lower horse drops to a candidate, and a stray candidate appears far away.
            f.detections[1].candidate = true;
            f.detections[1].confidence = 0.2;
            f.embeddings[1] = Vec::new();
            let mut stray = f.detections[1].clone();
            stray.bbox.y = 900.0;
            f.detections.push(stray);
            f.embeddings.push(Vec::new());
        }
        // Overlap with a second chunk: the reused ids keep the same candidates.
        let mut d = chunk(1, 10, 30);
        d.frames[..10].clone_from_slice(&c.frames[10..]);
        t.process(&mut c);
        t.process(&mut d);
        for chunk in [&c, &d] {
            for f in &chunk.frames {
                assert_eq!(f.detections.len(), 2, "{f:?}");
                assert_eq!(f.embeddings.len(), 2);
                // (Tentative for the first n_init - 1 frames.)
                let tracked = f.detections.iter().all(|d| d.track_id.is_some());
                assert!(tracked || f.pts_us < 200_000, "{f:?}");
                assert!(f.detections.iter().all(|d| d.bbox.y < 900.0));
            }
        }
        let lower = c.frames[15].detections[1].clone();
        assert!(lower.candidate && lower.track_id == c.frames[5].detections[1].track_id);
        assert!(c.frames[15].embeddings[1].is_empty());
        assert_eq!(
            d.frames[0].detections[1].track_id,
            c.frames[10].detections[1].track_id
        );
    }

    #[test]
    fn ids_continue_across_chunks_and_the_overlap_reuses_them() {
        let mut t = StreamTracks::new(TrackerConfig::default());
        let mut a = chunk(0, 0, 20);
        let mut b = chunk(1, 10, 30);
        t.process(&mut a);
        t.process(&mut b);
        let (a, b) = (ids(&a), ids(&b));
        // Tentative for the first n_init - 1 frames, then two stable ids.
        assert_eq!(a[0], vec![None, None]);
        let pair = a[19].clone();
        assert!(
            pair.iter().all(Option::is_some) && pair[0] != pair[1],
            "{pair:?}"
        );
        assert!(a[3..].iter().all(|f| *f == pair), "{a:?}");
        // The overlap (frames 10..20 again) carries the same ids; later frames keep them.
        assert_eq!(b[..10], a[10..]);
        assert!(b.iter().all(|f| *f == pair), "{b:?}");
    }

    #[test]
    fn a_tracker_restored_from_a_checkpoint_gives_the_ids_of_one_that_never_stopped() {
        let chunks = || [chunk(0, 0, 20), chunk(1, 10, 30), chunk(2, 20, 40)];
        let mut whole = StreamTracks::new(TrackerConfig::default());
        let expected: Vec<_> = chunks()
            .into_iter()
            .map(|mut c| {
                whole.process(&mut c);
                ids(&c)
            })
            .collect();

        // Checkpoints on: chunk 0 is stored with its state, then the worker dies.
        let stored = std::rc::Rc::new(std::cell::RefCell::new(Vec::new()));
        let with_store = |stored: std::rc::Rc<std::cell::RefCell<Vec<(u64, StreamCheckpoint)>>>| {
            StreamTracks::new(TrackerConfig::default()).with_checkpoints(move |_, seq| {
                stored.borrow().iter().rfind(|(s, _)| *s < seq).cloned()
            })
        };
        let mut first = with_store(stored.clone());
        let [mut a, mut b, mut c] = chunks();
        let (restored, state) = first.process_checkpointed(&mut a);
        assert_eq!(ids(&a), expected[0]);
        assert!(restored.is_none(), "nothing stored yet");
        let checkpoint = StreamCheckpoint {
            tracks: state.expect("state attached"),
            horses: b"horses".to_vec(),
        };
        stored.borrow_mut().push((0, checkpoint));
        drop(first);

        // The restarted worker sees chunk 1 first and resumes from chunk 0's state.
        let mut second = with_store(stored.clone());
        let (restored, _) = second.process_checkpointed(&mut b);
        assert_eq!(
            restored.as_deref(),
            Some(&b"horses"[..]),
            "handed to Horses"
        );
        assert!(second.process_checkpointed(&mut c).0.is_none());
        assert_eq!(ids(&b), expected[1]);
        assert_eq!(ids(&c), expected[2]);

        // Without the checkpoint the restarted tracker starts over: ids differ.
        let mut cold = StreamTracks::new(TrackerConfig::default());
        let mut b = chunks()[1].clone();
        cold.process(&mut b);
        assert_ne!(ids(&b), expected[1]);
    }
}
