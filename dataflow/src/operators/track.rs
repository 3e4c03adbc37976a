//! `Track`: DeepSORT over each stream's frames, on the worker that owns the stream, with the
//! tracker's state carried from chunk to chunk. Frames of the 1 s overlap that were already
//! tracked as the end of the previous chunk are not fed to the tracker again; they get the
//! track ids assigned then, so ids neither reset nor double-count at chunk boundaries.

use std::collections::{BTreeMap, VecDeque};

use horsestream_proto::ProcessedChunk;
use timely::container::CapacityContainerBuilder;
use timely::dataflow::StreamVec;
use timely::dataflow::channels::pact::Pipeline;
use timely::dataflow::operators::generic::Operator;
use timely::progress::Timestamp;

use super::Outcome;
use crate::tracking::{DetectionIn, Tracker, TrackerConfig};

/// How long the ids of tracked frames are remembered for the next chunk's overlap.
const REMEMBER_US: i64 = 5_000_000;

#[derive(Debug)]
struct StreamState {
    tracker: Tracker,
    /// Pts of the newest frame fed to the tracker.
    last_pts_us: Option<i64>,
    /// Track ids given to the detections of recent frames, by pts.
    recent: VecDeque<(i64, Vec<Option<u64>>)>,
}

/// The trackers of every stream this worker owns.
#[derive(Debug)]
pub struct StreamTracks {
    config: TrackerConfig,
    streams: BTreeMap<String, StreamState>,
}

impl StreamTracks {
    pub fn new(config: TrackerConfig) -> Self {
        StreamTracks {
            config,
            streams: BTreeMap::new(),
        }
    }

    /// Sets `track_id` on the detections of `chunk` that belong to a confirmed track.
    pub fn process(&mut self, chunk: &mut ProcessedChunk) {
        let state = self
            .streams
            .entry(chunk.stream_id.clone())
            .or_insert_with(|| StreamState {
                tracker: Tracker::new(self.config.clone()),
                last_pts_us: None,
                recent: VecDeque::new(),
            });
        for frame in &mut chunk.frames {
            if state.last_pts_us.is_some_and(|last| frame.pts_us <= last) {
                // Already tracked (overlap, or a replayed chunk): reuse the ids given then.
                if let Some((_, ids)) = state.recent.iter().find(|(p, _)| *p == frame.pts_us)
                    && ids.len() == frame.detections.len()
                {
                    for (d, id) in frame.detections.iter_mut().zip(ids) {
                        d.track_id = *id;
                    }
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
                    embedding: frame.embeddings.get(i).cloned(),
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
    }
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
                                tracks.process(&mut p.chunk);
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
}
