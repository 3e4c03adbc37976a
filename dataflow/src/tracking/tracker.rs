//! The DeepSORT tracker of one stream: predict every track, match detections in a cascade by
//! time since update (appearance cost gated by motion), then by IoU, then give confirmed
//! tracks still unmatched a chance at the frame's low-score *candidates* by IoU alone
//! (ByteTrack's second association: a horse half hidden or blurred scores low but is still
//! where its track predicts it), start tracks from the unmatched detections (never from
//! candidates), confirm after `n_init` hits and forget after `max_age` misses.
//!
//! Deterministic: tracks live in a `Vec` in creation order, ids count up from 1, and every
//! tie is broken by index, so the same frames always give the same ids.

use horsestream_proto::BoundingBox;
use serde::{Deserialize, Serialize};

use super::assignment::{CostMatrix, Matching, min_cost_matching};
use super::gallery::{Gallery, inv_norm};
use super::geometry::{from_xyah, iou, is_valid, to_xyah};
use super::kalman::{CHI2_095_4DOF, KalmanState, Projection};

/// Tuning of [`Tracker`]; the defaults are DeepSORT's.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TrackerConfig {
    /// Frames a confirmed track survives without a matching detection.
    pub max_age: u32,
    /// Consecutive hits that confirm a tentative track.
    pub n_init: u32,
    /// Largest cosine distance (1 − cos) accepted in the appearance cascade.
    pub max_cosine_distance: f32,
    /// Features kept per track (the gallery size).
    pub nn_budget: usize,
    /// Largest 1 − IoU accepted in the IoU stage.
    pub max_iou_distance: f32,
    /// Largest 1 − IoU accepted between a confirmed track's predicted box and a candidate
    /// (ByteTrack's second association uses an IoU of at least 0.5).
    pub max_candidate_iou_distance: f32,
}

impl Default for TrackerConfig {
    fn default() -> Self {
        Self {
            max_age: 30,
            n_init: 3,
            max_cosine_distance: 0.3,
            nn_budget: 100,
            max_iou_distance: 0.7,
            max_candidate_iou_distance: 0.5,
        }
    }
}

/// One detection of a frame.
#[derive(Debug, Clone, PartialEq)]
pub struct DetectionIn {
    /// Top-left x, y, width, height in pixels.
    pub bbox: BoundingBox,
    pub score: f32,
    /// Re-ID feature (L2-normalised by the model; normalised again here). Without one a
    /// detection can only be matched in the IoU stage.
    pub embedding: Option<Vec<f32>>,
    /// A low-score box: it may continue a confirmed track, matched by IoU after every
    /// other stage, but never starts one.
    pub candidate: bool,
}

/// A confirmed track that a detection of this frame updated.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TrackOut {
    pub id: u64,
    /// The filtered box (Kalman state after the update), not the raw detection.
    pub bbox: BoundingBox,
    /// Index of the detection in the frame passed to [`Tracker::update`].
    pub detection: usize,
}

/// Lifecycle of a track.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum TrackState {
    /// Seen fewer than `n_init` times in a row; deleted at its first miss.
    Tentative,
    Confirmed,
    Deleted,
}

/// One track's state, readable for callers that want predicted boxes of occluded tracks.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Track {
    id: u64,
    state: TrackState,
    kf: KalmanState,
    hits: u32,
    age: u32,
    time_since_update: u32,
    gallery: Gallery,
}

impl Track {
    pub fn id(&self) -> u64 {
        self.id
    }

    pub fn state(&self) -> TrackState {
        self.state
    }

    /// Detections matched so far, the first one included.
    pub fn hits(&self) -> u32 {
        self.hits
    }

    /// Frames since the track started.
    pub fn age(&self) -> u32 {
        self.age
    }

    /// Frames since the last matched detection (0 when updated this frame).
    pub fn time_since_update(&self) -> u32 {
        self.time_since_update
    }

    /// The current filtered (or, when missed, predicted) box.
    pub fn bbox(&self) -> BoundingBox {
        from_xyah(&self.kf.mean[..4])
    }

    /// The Kalman filter state.
    pub fn kalman(&self) -> &KalmanState {
        &self.kf
    }

    /// Number of appearance features held.
    pub fn gallery_len(&self) -> usize {
        self.gallery.len()
    }
}

/// A detection prepared once per frame.
#[derive(Debug)]
struct Prepared<'a> {
    xyah: [f64; 4],
    bbox: BoundingBox,
    /// Embedding and 1 / its norm.
    embedding: Option<(&'a [f32], f32)>,
    candidate: bool,
}

/// DeepSORT over the frames of one stream. Serializable whole (a stream's checkpoint): a
/// tracker read back continues exactly as the one written would have.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Tracker {
    config: TrackerConfig,
    tracks: Vec<Track>,
    next_id: u64,
}

impl Tracker {
    pub fn new(config: TrackerConfig) -> Self {
        Self {
            config,
            tracks: Vec::new(),
            next_id: 1,
        }
    }

    pub fn config(&self) -> &TrackerConfig {
        &self.config
    }

    /// Live tracks (tentative and confirmed), in creation order.
    pub fn tracks(&self) -> &[Track] {
        &self.tracks
    }

    /// Advance one frame: predict, match, update, start and delete tracks. Returns the
    /// confirmed tracks matched to a detection of this frame, in ascending id order.
    /// Detections with a non-finite or empty box are ignored.
    pub fn update(&mut self, frame: &[DetectionIn]) -> Vec<TrackOut> {
        for t in &mut self.tracks {
            t.kf.predict();
            t.age += 1;
            t.time_since_update += 1;
        }
        let dets: Vec<Option<Prepared<'_>>> = frame
            .iter()
            .map(|d| {
                is_valid(&d.bbox).then(|| Prepared {
                    xyah: to_xyah(&d.bbox),
                    bbox: d.bbox,
                    embedding: d
                        .embedding
                        .as_deref()
                        .and_then(|e| inv_norm(e).map(|inv| (e, inv))),
                    candidate: d.candidate,
                })
            })
            .collect();

        let (matches, unmatched_tracks, unmatched_dets) = self.associate(&dets);

        let mut track_det = vec![None; self.tracks.len()];
        for &(t, d) in &matches {
            track_det[t] = Some(d);
            let det = dets[d].as_ref().expect("only valid detections are matched");
            let track = &mut self.tracks[t];
            track.kf.update(&det.xyah);
            if let Some((e, _)) = det.embedding {
                track.gallery.push(e);
            }
            track.hits += 1;
            track.time_since_update = 0;
            if track.state == TrackState::Tentative && track.hits >= self.config.n_init {
                track.state = TrackState::Confirmed;
            }
        }
        for &t in &unmatched_tracks {
            let track = &mut self.tracks[t];
            if track.state == TrackState::Tentative || track.time_since_update > self.config.max_age
            {
                track.state = TrackState::Deleted;
            }
        }
        let mut out: Vec<TrackOut> = self
            .tracks
            .iter()
            .zip(&track_det)
            .filter(|(t, _)| t.state == TrackState::Confirmed)
            .filter_map(|(t, d)| {
                d.map(|d| TrackOut {
                    id: t.id,
                    bbox: t.bbox(),
                    detection: d,
                })
            })
            .collect();
        self.tracks.retain(|t| t.state != TrackState::Deleted);

        for d in unmatched_dets {
            let det = dets[d]
                .as_ref()
                .expect("only valid detections are left unmatched");
            let mut gallery = Gallery::new(self.config.nn_budget);
            if let Some((e, _)) = det.embedding {
                gallery.push(e);
            }
            let state = if self.config.n_init <= 1 {
                TrackState::Confirmed
            } else {
                TrackState::Tentative
            };
            let track = Track {
                id: self.next_id,
                state,
                kf: KalmanState::initiate(&det.xyah),
                hits: 1,
                age: 1,
                time_since_update: 0,
                gallery,
            };
            if state == TrackState::Confirmed {
                out.push(TrackOut {
                    id: track.id,
                    bbox: track.bbox(),
                    detection: d,
                });
            }
            self.next_id += 1;
            self.tracks.push(track);
        }
        out
    }

    /// Matching cascade over confirmed tracks, then IoU matching. Returns (track, detection)
    /// matches, unmatched track indices and unmatched (valid) detection indices, all sorted.
    fn associate(
        &self,
        dets: &[Option<Prepared<'_>>],
    ) -> (Vec<(usize, usize)>, Vec<usize>, Vec<usize>) {
        let mut unmatched_dets: Vec<usize> = dets
            .iter()
            .enumerate()
            .filter_map(|(i, d)| d.as_ref().filter(|d| !d.candidate).map(|_| i))
            .collect();
        let mut matches = Vec::new();

        // Cascade: confirmed tracks grouped by time since update, most recent first.
        let mut confirmed: Vec<usize> = (0..self.tracks.len())
            .filter(|&i| self.tracks[i].state == TrackState::Confirmed)
            .collect();
        confirmed.sort_by_key(|&i| (self.tracks[i].time_since_update, i));
        let projections: Vec<Option<Projection>> = self
            .tracks
            .iter()
            .map(|t| (t.state == TrackState::Confirmed).then(|| t.kf.project()))
            .collect();
        let mut cascade_unmatched = Vec::new();
        let mut level_start = 0;
        while level_start < confirmed.len() {
            let level = self.tracks[confirmed[level_start]].time_since_update;
            let level_end = confirmed[level_start..]
                .iter()
                .position(|&i| self.tracks[i].time_since_update != level)
                .map_or(confirmed.len(), |p| level_start + p);
            let level_tracks = &confirmed[level_start..level_end];
            level_start = level_end;
            if unmatched_dets.is_empty() || level > self.config.max_age {
                cascade_unmatched.extend_from_slice(level_tracks);
                continue;
            }
            let costs = self.appearance_costs(level_tracks, &projections, &unmatched_dets, dets);
            let m = min_cost_matching(&costs, f64::from(self.config.max_cosine_distance));
            matches.extend(
                m.matches
                    .iter()
                    .map(|&(r, c)| (level_tracks[r], unmatched_dets[c])),
            );
            cascade_unmatched.extend(m.unmatched_rows.iter().map(|&r| level_tracks[r]));
            unmatched_dets = m
                .unmatched_cols
                .iter()
                .map(|&c| unmatched_dets[c])
                .collect();
        }

        // IoU stage: tentative tracks, and confirmed ones that missed only this frame.
        let mut iou_candidates: Vec<usize> = (0..self.tracks.len())
            .filter(|&i| self.tracks[i].state == TrackState::Tentative)
            .collect();
        let mut unmatched_tracks = Vec::new();
        for t in cascade_unmatched {
            if self.tracks[t].time_since_update == 1 {
                iou_candidates.push(t);
            } else {
                unmatched_tracks.push(t);
            }
        }
        iou_candidates.sort_unstable();
        let m = self.iou_matching(
            &iou_candidates,
            &unmatched_dets,
            dets,
            self.config.max_iou_distance,
            |t| t.time_since_update <= 1,
        );
        matches.extend(
            m.matches
                .iter()
                .map(|&(r, c)| (iou_candidates[r], unmatched_dets[c])),
        );
        unmatched_tracks.extend(m.unmatched_rows.iter().map(|&r| iou_candidates[r]));
        let unmatched_dets: Vec<usize> = m
            .unmatched_cols
            .iter()
            .map(|&c| unmatched_dets[c])
            .collect();

        // Candidates: confirmed tracks still unmatched, by IoU with their predicted box.
        let candidates: Vec<usize> = dets
            .iter()
            .enumerate()
            .filter_map(|(i, d)| d.as_ref().filter(|d| d.candidate).map(|_| i))
            .collect();
        if !candidates.is_empty() {
            unmatched_tracks.sort_unstable();
            let open: Vec<usize> = unmatched_tracks
                .iter()
                .copied()
                .filter(|&t| self.tracks[t].state == TrackState::Confirmed)
                .collect();
            let m = self.iou_matching(
                &open,
                &candidates,
                dets,
                self.config.max_candidate_iou_distance,
                |_| true,
            );
            let taken: Vec<usize> = m.matches.iter().map(|&(r, _)| open[r]).collect();
            matches.extend(m.matches.iter().map(|&(r, c)| (open[r], candidates[c])));
            unmatched_tracks.retain(|t| !taken.contains(t));
        }

        matches.sort_unstable();
        unmatched_tracks.sort_unstable();
        (matches, unmatched_tracks, unmatched_dets)
    }

    /// Matches tracks `rows` to detections `cols` (indices into `self.tracks` and `dets`) by
    /// the IoU of the track's predicted box with the detection's: a pair costs 1 − IoU, and
    /// pairs costing more than `max_distance`, or whose track `admit` refuses, stay unmatched.
    fn iou_matching(
        &self,
        rows: &[usize],
        cols: &[usize],
        dets: &[Option<Prepared<'_>>],
        max_distance: f32,
        admit: impl Fn(&Track) -> bool,
    ) -> Matching {
        let boxes: Vec<BoundingBox> = rows.iter().map(|&t| self.tracks[t].bbox()).collect();
        let costs = CostMatrix::from_fn(rows.len(), cols.len(), |r, c| {
            if !admit(&self.tracks[rows[r]]) {
                return f64::INFINITY;
            }
            let det = dets[cols[c]].as_ref().expect("valid");
            1.0 - f64::from(iou(&boxes[r], &det.bbox))
        });
        min_cost_matching(&costs, f64::from(max_distance))
    }

    /// Cascade costs of one level: cosine distance to the nearest gallery feature, infinite
    /// when the Mahalanobis gate rejects the pair or either side has no feature.
    ///
    /// The gate runs first, so the gallery is scanned only for plausible pairs; and a pair
    /// whose track and detection have no other plausible partner only needs to know whether
    /// some feature is within `max_cosine_distance` (the assignment cannot be affected by the
    /// exact value), so its scan stops at the first such feature, newest first.
    fn appearance_costs(
        &self,
        tracks: &[usize],
        projections: &[Option<Projection>],
        det_idx: &[usize],
        dets: &[Option<Prepared<'_>>],
    ) -> CostMatrix {
        let (rows, cols) = (tracks.len(), det_idx.len());
        let det = |c: usize| {
            dets[det_idx[c]]
                .as_ref()
                .expect("only valid detections are unmatched")
        };
        let mut gated = vec![false; rows * cols];
        let mut row_count = vec![0usize; rows];
        let mut col_count = vec![0usize; cols];
        for (r, &t) in tracks.iter().enumerate() {
            let Some(proj) = &projections[t] else {
                continue;
            };
            for c in 0..cols {
                if proj.mahalanobis_sq(&det(c).xyah) <= CHI2_095_4DOF {
                    gated[r * cols + c] = true;
                    row_count[r] += 1;
                    col_count[c] += 1;
                }
            }
        }
        let threshold = self.config.max_cosine_distance;
        CostMatrix::from_fn(rows, cols, |r, c| {
            if !gated[r * cols + c] {
                return f64::INFINITY;
            }
            let Some((e, inv)) = det(c).embedding else {
                return f64::INFINITY;
            };
            let gallery = &self.tracks[tracks[r]].gallery;
            let d = if row_count[r] == 1 && col_count[c] == 1 {
                gallery.any_within(e, inv, threshold)
            } else {
                gallery.min_cosine_distance(e, inv)
            };
            d.map_or(f64::INFINITY, f64::from)
        })
    }
}

#[cfg(test)]
mod tests;
