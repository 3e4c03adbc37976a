//! Synthetic scenes with known ground truth, scored by the project's own MOT metrics.

use super::*;
use crate::tracking::metrics::MotAccumulator;

/// A box moving along a straight line at constant velocity, with its own appearance.
struct Mover {
    id: u64,
    x: f32,
    y: f32,
    vx: f32,
    vy: f32,
    w: f32,
    h: f32,
    /// Index of the embedding's dominant axis.
    look: usize,
    /// Frames in which the detector misses it.
    hidden: std::ops::Range<u32>,
}

impl Mover {
    fn at(&self, t: u32) -> BoundingBox {
        let t = t as f32;
        BoundingBox {
            x: self.x + self.vx * t,
            y: self.y + self.vy * t,
            w: self.w,
            h: self.h,
        }
    }
}

const DIM: usize = 16;

/// A unit vector near axis `look`, with a little frame-dependent noise.
fn embedding(look: usize, t: u32) -> Vec<f32> {
    let mut e: Vec<f32> = (0..DIM)
        .map(|i| 0.05 * (((i as u32 * 7 + t * 13 + look as u32) % 11) as f32 / 11.0))
        .collect();
    e[look] = 1.0;
    let n = e.iter().map(|v| v * v).sum::<f32>().sqrt();
    e.iter().map(|v| v / n).collect()
}

struct Outcome {
    /// Per frame: (ground-truth id, hypothesis id).
    pairs: Vec<Vec<(u64, u64)>>,
    acc: MotAccumulator,
}

/// Run `frames` frames through a tracker. Metrics skip the first `n_init − 1` frames, in
/// which no track can be confirmed yet, so a perfect tracker scores exactly 1.
fn run(movers: &[Mover], frames: u32, config: TrackerConfig, embeddings: bool) -> Outcome {
    let warmup = config.n_init.saturating_sub(1);
    let mut tracker = Tracker::new(config);
    let mut acc = MotAccumulator::new();
    let mut pairs = Vec::new();
    for t in 0..frames {
        // Detections in a frame-dependent order, so that nothing relies on input order.
        let mut visible: Vec<&Mover> = movers.iter().filter(|m| !m.hidden.contains(&t)).collect();
        if t % 2 == 1 {
            visible.reverse();
        }
        let dets: Vec<DetectionIn> = visible
            .iter()
            .map(|m| DetectionIn {
                bbox: m.at(t),
                score: 0.9,
                embedding: embeddings.then(|| embedding(m.look, t)),
                candidate: false,
            })
            .collect();
        let out = tracker.update(&dets);
        let frame_pairs: Vec<(u64, u64)> = out
            .iter()
            .map(|o| (visible[o.detection].id, o.id))
            .collect();
        if t >= warmup {
            let gt: Vec<(u64, BoundingBox)> = visible.iter().map(|m| (m.id, m.at(t))).collect();
            let hyp: Vec<(u64, BoundingBox)> = out.iter().map(|o| (o.id, o.bbox)).collect();
            acc.update(&gt, &hyp);
        }
        pairs.push(frame_pairs);
    }
    Outcome { pairs, acc }
}

/// The hypothesis ids each ground-truth id was ever output with.
fn ids_of(pairs: &[Vec<(u64, u64)>], gt: u64) -> Vec<u64> {
    let mut ids: Vec<u64> = pairs
        .iter()
        .flatten()
        .filter(|(g, _)| *g == gt)
        .map(|&(_, h)| h)
        .collect();
    ids.sort_unstable();
    ids.dedup();
    ids
}

fn crossing_scene() -> Vec<Mover> {
    vec![
        // A and B run towards each other on the same line and overlap completely at t = 25.
        Mover {
            id: 1,
            x: 0.0,
            y: 100.0,
            vx: 4.0,
            vy: 0.0,
            w: 40.0,
            h: 80.0,
            look: 0,
            hidden: 0..0,
        },
        Mover {
            id: 2,
            x: 200.0,
            y: 100.0,
            vx: -4.0,
            vy: 0.0,
            w: 40.0,
            h: 80.0,
            look: 1,
            hidden: 0..0,
        },
        // C moves diagonally, crossing B's path (not at the same time) from below.
        Mover {
            id: 3,
            x: 60.0,
            y: 300.0,
            vx: 2.0,
            vy: -3.0,
            w: 50.0,
            h: 90.0,
            look: 2,
            hidden: 0..0,
        },
    ]
}

#[test]
fn crossing_paths_keep_their_ids() {
    let out = run(&crossing_scene(), 60, TrackerConfig::default(), true);
    let s = out.acc.summary();
    assert_eq!(s.id_switches, 0, "{s:?}");
    assert_eq!(s.idf1, 1.0, "{s:?}");
    assert_eq!(s.mota, 1.0, "{s:?}");
    assert!(s.motp > 0.9, "{s:?}");
    for gt in 1..=3 {
        assert_eq!(ids_of(&out.pairs, gt).len(), 1, "object {gt}");
    }
    // Ids count up from 1 in order of first detection (detection order of frame 0).
    let mut all: Vec<u64> = (1..=3).flat_map(|g| ids_of(&out.pairs, g)).collect();
    all.sort_unstable();
    assert_eq!(all, vec![1, 2, 3]);
}

/// One of two boxes disappears for `gap` frames (no detection at all) and comes back.
fn occlusion_scene(gap: u32) -> Vec<Mover> {
    vec![
        Mover {
            id: 1,
            x: 0.0,
            y: 50.0,
            vx: 3.0,
            vy: 1.0,
            w: 60.0,
            h: 40.0,
            look: 3,
            hidden: 20..20 + gap,
        },
        Mover {
            id: 2,
            x: 300.0,
            y: 200.0,
            vx: -2.0,
            vy: 0.0,
            w: 60.0,
            h: 40.0,
            look: 4,
            hidden: 0..0,
        },
    ]
}

fn reappears_with_same_id(gap: u32) {
    let movers = occlusion_scene(gap);
    let out = run(&movers, 20 + gap + 20, TrackerConfig::default(), true);
    let s = out.acc.summary();
    assert_eq!(ids_of(&out.pairs, 1).len(), 1, "gap {gap}: {s:?}");
    assert_eq!(ids_of(&out.pairs, 2).len(), 1, "gap {gap}: {s:?}");
    // Matched again on the very first frame after the gap.
    assert!(
        out.pairs[(20 + gap) as usize].iter().any(|&(g, _)| g == 1),
        "gap {gap}"
    );
    assert_eq!(s.id_switches, 0, "gap {gap}: {s:?}");
    assert_eq!(s.false_negatives + s.false_positives, 0, "gap {gap}: {s:?}");
    assert_eq!(s.idf1, 1.0, "gap {gap}: {s:?}");
}

#[test]
fn two_frame_occlusion_keeps_id() {
    reappears_with_same_id(2);
}

#[test]
fn ten_frame_occlusion_keeps_id() {
    reappears_with_same_id(10);
}

#[test]
fn track_is_deleted_after_max_age() {
    // Gap 35 > max_age 30: the track is gone and the box comes back under a new id.
    let movers = occlusion_scene(35);
    let out = run(&movers, 20 + 35 + 10, TrackerConfig::default(), true);
    let ids = ids_of(&out.pairs, 1);
    assert_eq!(ids.len(), 2, "{ids:?}");
    assert!(ids[1] > ids[0]);
}

#[test]
fn lifecycle_counters() {
    let mut tracker = Tracker::new(TrackerConfig::default());
    let det = |x: f32| DetectionIn {
        bbox: BoundingBox {
            x,
            y: 0.0,
            w: 20.0,
            h: 40.0,
        },
        score: 1.0,
        embedding: Some(embedding(0, 0)),
        candidate: false,
    };
    assert!(tracker.update(&[det(0.0)]).is_empty());
    assert!(tracker.update(&[det(1.0)]).is_empty());
    assert_eq!(tracker.tracks()[0].state(), TrackState::Tentative);
    // Third hit confirms (n_init = 3) and is reported.
    let out = tracker.update(&[det(2.0)]);
    assert_eq!(out.len(), 1);
    assert_eq!((out[0].id, out[0].detection), (1, 0));
    let t = &tracker.tracks()[0];
    assert_eq!(
        (t.state(), t.hits(), t.age(), t.time_since_update()),
        (TrackState::Confirmed, 3, 3, 0)
    );
    assert_eq!(t.gallery_len(), 3);
    // A miss: kept, not reported, predicted forward.
    assert!(tracker.update(&[]).is_empty());
    assert_eq!(tracker.tracks()[0].time_since_update(), 1);
    assert!(tracker.tracks()[0].bbox().x > 2.0);
}

#[test]
fn tentative_track_dies_at_first_miss() {
    let mut tracker = Tracker::new(TrackerConfig::default());
    let d = DetectionIn {
        bbox: BoundingBox {
            x: 10.0,
            y: 10.0,
            w: 20.0,
            h: 20.0,
        },
        score: 0.5,
        embedding: None,
        candidate: false,
    };
    tracker.update(std::slice::from_ref(&d));
    tracker.update(std::slice::from_ref(&d));
    tracker.update(&[]);
    assert!(tracker.tracks().is_empty());
    // The next detection gets a fresh id.
    tracker.update(&[d]);
    assert_eq!(tracker.tracks()[0].id(), 2);
}

#[test]
fn without_embeddings_iou_stage_keeps_slow_tracks() {
    // Boxes far apart moving 2 px per frame: IoU between frames is high, so the IoU stage
    // alone keeps them (the appearance cascade has nothing to compare).
    let movers = vec![
        Mover {
            id: 1,
            x: 0.0,
            y: 0.0,
            vx: 2.0,
            vy: 0.0,
            w: 40.0,
            h: 40.0,
            look: 0,
            hidden: 0..0,
        },
        Mover {
            id: 2,
            x: 0.0,
            y: 200.0,
            vx: 0.0,
            vy: 2.0,
            w: 40.0,
            h: 40.0,
            look: 0,
            hidden: 0..0,
        },
    ];
    let out = run(&movers, 30, TrackerConfig::default(), false);
    let s = out.acc.summary();
    assert_eq!((s.id_switches, s.idf1), (0, 1.0), "{s:?}");
}

#[test]
fn invalid_boxes_are_ignored() {
    let mut tracker = Tracker::new(TrackerConfig {
        n_init: 1,
        ..TrackerConfig::default()
    });
    let bad = |w: f32| DetectionIn {
        bbox: BoundingBox {
            x: 0.0,
            y: 0.0,
            w,
            h: 10.0,
        },
        score: 1.0,
        embedding: None,
        candidate: false,
    };
    let out = tracker.update(&[bad(0.0), bad(f32::NAN), bad(10.0)]);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].detection, 2);
    assert_eq!(tracker.tracks().len(), 1);
}

#[test]
fn same_input_same_output() {
    let movers = crossing_scene();
    let a = run(&movers, 40, TrackerConfig::default(), true);
    let b = run(&movers, 40, TrackerConfig::default(), true);
    assert_eq!(a.pairs, b.pairs);
}

#[test]
fn config_deserialises_with_defaults() {
    let c: TrackerConfig = from_pairs("max_age = 10");
    assert_eq!(
        c,
        TrackerConfig {
            max_age: 10,
            ..TrackerConfig::default()
        }
    );
}

/// Deserialise through serde's value-free path without a format crate: a tiny
/// `key = integer` reader is enough to check `default` and field names.
fn from_pairs(s: &str) -> TrackerConfig {
    use serde::de::IntoDeserializer;
    use serde::de::value::{Error, MapDeserializer};
    let pairs = s.lines().map(|l| {
        let (k, v) = l.split_once('=').expect("key = value");
        (
            k.trim().to_owned(),
            v.trim().parse::<u32>().expect("integer"),
        )
    });
    let de: MapDeserializer<'_, _, Error> =
        MapDeserializer::new(pairs.map(|(k, v)| (k.into_deserializer(), v.into_deserializer())));
    TrackerConfig::deserialize(de).expect("valid config")
}

#[test]
fn a_candidate_continues_a_confirmed_track_but_never_starts_one() {
    let mut tracker = Tracker::new(TrackerConfig::default());
    let det = |x: f32, candidate: bool| DetectionIn {
        bbox: BoundingBox {
            x,
            y: 0.0,
            w: 20.0,
            h: 40.0,
        },
        score: if candidate { 0.15 } else { 0.9 },
        embedding: (!candidate).then(|| embedding(0, 0)),
        candidate,
    };
    // Candidates alone start nothing.
    for x in [0.0, 1.0, 2.0, 3.0] {
        assert!(tracker.update(&[det(x, true)]).is_empty());
    }
    assert!(tracker.tracks().is_empty());
    // A confirmed track (three hits) takes the candidate where it predicts itself...
    for x in [10.0, 11.0, 12.0] {
        tracker.update(&[det(x, false)]);
    }
    let out = tracker.update(&[det(13.0, true), det(200.0, true)]);
    assert_eq!(out.len(), 1, "{out:?}");
    assert_eq!((out[0].id, out[0].detection), (1, 0));
    let t = &tracker.tracks()[0];
    assert_eq!((t.hits(), t.time_since_update()), (4, 0));
    // ...without its appearance (it has none), and the far candidate started no track.
    assert_eq!(t.gallery_len(), 3);
    assert_eq!(tracker.tracks().len(), 1);
    // A detection wins over a candidate for the same track.
    let out = tracker.update(&[det(14.0, true), det(14.2, false)]);
    assert_eq!((out.len(), out[0].detection), (1, 1));
    // A candidate that barely overlaps the prediction (IoU < 0.5) is not taken.
    let out = tracker.update(&[det(26.0, true)]);
    assert!(out.is_empty(), "{out:?}");
    assert_eq!(tracker.tracks()[0].time_since_update(), 1);
}
