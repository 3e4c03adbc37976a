//! Multi-object-tracking accuracy, computed by the project's own code so that tracking
//! tests and benchmarks do not depend on an outside evaluator.
//!
//! - CLEAR MOT (Bernardin & Stiefelhagen 2008): per frame, a ground-truth object keeps the
//!   hypothesis it was last matched to while their IoU stays ≥ 0.5; the others are matched by
//!   Hungarian assignment on 1 − IoU (IoU ≥ 0.5 only). A match whose hypothesis differs from
//!   the object's last known one is an ID switch. MOTA = 1 − (FN + FP + IDSW) / GT.
//! - IDF1 (Ristani et al. 2016): one global one-to-one mapping between ground-truth ids and
//!   hypothesis ids that maximises the number of frames in which the mapped pair overlaps
//!   with IoU ≥ 0.5 (IDTP); IDF1 = 2·IDTP / (2·IDTP + IDFP + IDFN).

use std::collections::BTreeMap;

use horsestream_proto::BoundingBox;
use pathfinding::kuhn_munkres::kuhn_munkres;
use pathfinding::matrix::Matrix;

use super::assignment::{CostMatrix, min_cost_matching};
use super::geometry::iou;

/// IoU at or above which a hypothesis can explain a ground-truth object.
pub const IOU_THRESHOLD: f32 = 0.5;

/// Accumulates frames of (ground truth, hypotheses), each an `(id, box)` list with ids
/// unique within the frame.
#[derive(Debug, Clone, Default)]
pub struct MotAccumulator {
    frames: u64,
    gt_total: u64,
    hyp_total: u64,
    false_negatives: u64,
    false_positives: u64,
    id_switches: u64,
    matches: u64,
    iou_sum: f64,
    /// Ground-truth id → hypothesis id it was last matched to.
    last_match: BTreeMap<u64, u64>,
    /// (gt id, hyp id) → frames in which they overlap with IoU ≥ 0.5.
    overlaps: BTreeMap<(u64, u64), u64>,
    gt_ids: BTreeMap<u64, ()>,
    hyp_ids: BTreeMap<u64, ()>,
}

/// The scores of a sequence.
#[derive(Debug, Clone, PartialEq)]
pub struct MotSummary {
    pub frames: u64,
    /// Ground-truth objects over all frames.
    pub gt: u64,
    /// Hypotheses over all frames.
    pub hyp: u64,
    pub false_negatives: u64,
    pub false_positives: u64,
    pub id_switches: u64,
    /// Matched (object, hypothesis) pairs over all frames.
    pub matches: u64,
    /// 1 − (FN + FP + IDSW) / GT; NaN without ground truth.
    pub mota: f64,
    /// Mean IoU of the matched pairs; NaN without matches.
    pub motp: f64,
    pub idtp: u64,
    pub idfp: u64,
    pub idfn: u64,
    /// 2·IDTP / (2·IDTP + IDFP + IDFN); NaN when there is neither ground truth nor hypothesis.
    pub idf1: f64,
}

impl MotAccumulator {
    pub fn new() -> Self {
        Self::default()
    }

    /// Add one frame.
    pub fn update(&mut self, gt: &[(u64, BoundingBox)], hyp: &[(u64, BoundingBox)]) {
        self.frames += 1;
        self.gt_total += gt.len() as u64;
        self.hyp_total += hyp.len() as u64;
        for &(g, _) in gt {
            self.gt_ids.insert(g, ());
        }
        for &(h, _) in hyp {
            self.hyp_ids.insert(h, ());
        }
        let ious: Vec<Vec<f32>> = gt
            .iter()
            .map(|(_, gb)| hyp.iter().map(|(_, hb)| iou(gb, hb)).collect())
            .collect();
        for (gi, &(g, _)) in gt.iter().enumerate() {
            for (hi, &(h, _)) in hyp.iter().enumerate() {
                if ious[gi][hi] >= IOU_THRESHOLD {
                    *self.overlaps.entry((g, h)).or_insert(0) += 1;
                }
            }
        }

        // 1. Keep last known correspondences that are still valid.
        let mut gt_matched = vec![false; gt.len()];
        let mut hyp_matched = vec![false; hyp.len()];
        for (gi, &(g, _)) in gt.iter().enumerate() {
            let Some(&h) = self.last_match.get(&g) else {
                continue;
            };
            let Some(hi) = hyp.iter().position(|&(id, _)| id == h) else {
                continue;
            };
            if !hyp_matched[hi] && ious[gi][hi] >= IOU_THRESHOLD {
                gt_matched[gi] = true;
                hyp_matched[hi] = true;
                self.matches += 1;
                self.iou_sum += f64::from(ious[gi][hi]);
            }
        }

        // 2. Hungarian on the rest.
        let free_gt: Vec<usize> = (0..gt.len()).filter(|&i| !gt_matched[i]).collect();
        let free_hyp: Vec<usize> = (0..hyp.len()).filter(|&i| !hyp_matched[i]).collect();
        let costs = CostMatrix::from_fn(free_gt.len(), free_hyp.len(), |r, c| {
            let v = ious[free_gt[r]][free_hyp[c]];
            if v >= IOU_THRESHOLD {
                1.0 - f64::from(v)
            } else {
                f64::INFINITY
            }
        });
        let m = min_cost_matching(&costs, 1.0 - f64::from(IOU_THRESHOLD));
        for &(r, c) in &m.matches {
            let (gi, hi) = (free_gt[r], free_hyp[c]);
            let (g, h) = (gt[gi].0, hyp[hi].0);
            if self.last_match.insert(g, h).is_some_and(|prev| prev != h) {
                self.id_switches += 1;
            }
            self.matches += 1;
            self.iou_sum += f64::from(ious[gi][hi]);
        }
        self.false_negatives += m.unmatched_rows.len() as u64;
        self.false_positives += m.unmatched_cols.len() as u64;
    }

    /// Scores over every frame added so far.
    pub fn summary(&self) -> MotSummary {
        let gt_ids: Vec<u64> = self.gt_ids.keys().copied().collect();
        let hyp_ids: Vec<u64> = self.hyp_ids.keys().copied().collect();
        let idtp = max_overlap_mapping(&gt_ids, &hyp_ids, &self.overlaps);
        let idfn = self.gt_total - idtp;
        let idfp = self.hyp_total - idtp;
        let ratio = |num: f64, den: f64| if den > 0.0 { num / den } else { f64::NAN };
        MotSummary {
            frames: self.frames,
            gt: self.gt_total,
            hyp: self.hyp_total,
            false_negatives: self.false_negatives,
            false_positives: self.false_positives,
            id_switches: self.id_switches,
            matches: self.matches,
            mota: 1.0
                - ratio(
                    (self.false_negatives + self.false_positives + self.id_switches) as f64,
                    self.gt_total as f64,
                ),
            motp: ratio(self.iou_sum, self.matches as f64),
            idtp,
            idfp,
            idfn,
            idf1: ratio(2.0 * idtp as f64, (2 * idtp + idfp + idfn) as f64),
        }
    }
}

/// IDTP: the largest total overlap count of a one-to-one mapping of gt ids to hyp ids.
fn max_overlap_mapping(
    gt_ids: &[u64],
    hyp_ids: &[u64],
    overlaps: &BTreeMap<(u64, u64), u64>,
) -> u64 {
    if overlaps.is_empty() {
        return 0;
    }
    let n = gt_ids.len().max(hyp_ids.len());
    let mut weights = Matrix::new(n, n, 0i64);
    for (&(g, h), &count) in overlaps {
        let r = gt_ids.binary_search(&g).expect("gt id recorded");
        let c = hyp_ids.binary_search(&h).expect("hyp id recorded");
        weights[(r, c)] = count as i64;
    }
    let (total, _) = kuhn_munkres(&weights);
    total as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bb(x: f32, y: f32) -> BoundingBox {
        BoundingBox {
            x,
            y,
            w: 10.0,
            h: 10.0,
        }
    }

    /// (ground truth, hypotheses) of one frame.
    type Frame = (Vec<(u64, BoundingBox)>, Vec<(u64, BoundingBox)>);

    fn run(frames: &[Frame]) -> MotSummary {
        let mut acc = MotAccumulator::new();
        for (gt, hyp) in frames {
            acc.update(gt, hyp);
        }
        acc.summary()
    }

    #[test]
    fn perfect_tracking() {
        // 2 objects × 3 frames, hypotheses identical under other ids.
        // GT 6, FN 0, FP 0, IDSW 0 → MOTA 1; IDTP 6, IDFP 0, IDFN 0 → IDF1 1; MOTP 1.
        let frames: Vec<_> = (0..3)
            .map(|t| {
                let t = t as f32;
                let gt = vec![(1, bb(t, 0.0)), (2, bb(50.0 - t, 50.0))];
                let hyp = vec![(20, bb(50.0 - t, 50.0)), (10, bb(t, 0.0))];
                (gt, hyp)
            })
            .collect();
        let s = run(&frames);
        assert_eq!(
            (s.gt, s.false_negatives, s.false_positives, s.id_switches),
            (6, 0, 0, 0)
        );
        assert_eq!(s.mota, 1.0);
        assert_eq!(s.motp, 1.0);
        assert_eq!((s.idtp, s.idfp, s.idfn), (6, 0, 0));
        assert_eq!(s.idf1, 1.0);
    }

    #[test]
    fn one_id_switch() {
        // Object 1 for 4 frames; hypothesis 10 in frames 1–2, hypothesis 11 in frames 3–4.
        // Every frame matches: FN 0, FP 0; frame 3 switches 10 → 11: IDSW 1.
        // MOTA = 1 − 1/4 = 0.75.
        // IDF1: best mapping 1 → 10 (or 11), 2 frames: IDTP 2, IDFN 4 − 2 = 2, IDFP 4 − 2 = 2,
        // IDF1 = 4 / (4 + 2 + 2) = 0.5.
        let frames: Vec<_> = (0..4)
            .map(|t| {
                (
                    vec![(1, bb(0.0, 0.0))],
                    vec![(if t < 2 { 10 } else { 11 }, bb(0.0, 0.0))],
                )
            })
            .collect();
        let s = run(&frames);
        assert_eq!(
            (s.false_negatives, s.false_positives, s.id_switches),
            (0, 0, 1)
        );
        assert_eq!(s.mota, 0.75);
        assert_eq!((s.idtp, s.idfp, s.idfn), (2, 2, 2));
        assert_eq!(s.idf1, 0.5);
    }

    #[test]
    fn misses_and_false_positives() {
        // Frame 1: object 1 at A, no hypothesis → FN 1.
        // Frame 2: object 1 at A, hypothesis 10 at A → match.
        // Frame 3: no object, hypothesis 10 at B → FP 1.
        // Frame 4: object 1 at A, hypothesis 10 at A and 11 far away → match, FP 1.
        // GT 3, FN 1, FP 2, IDSW 0 → MOTA = 1 − 3/3 = 0.
        // IDF1: (1, 10) overlap in frames 2 and 4 → IDTP 2; GT 3, hyp 4 → IDFN 1, IDFP 2,
        // IDF1 = 4 / (4 + 2 + 1) = 4/7.
        let a = bb(0.0, 0.0);
        let frames = vec![
            (vec![(1, a)], vec![]),
            (vec![(1, a)], vec![(10, a)]),
            (vec![], vec![(10, bb(100.0, 0.0))]),
            (vec![(1, a)], vec![(10, a), (11, bb(200.0, 0.0))]),
        ];
        let s = run(&frames);
        assert_eq!((s.gt, s.hyp), (3, 4));
        assert_eq!(
            (s.false_negatives, s.false_positives, s.id_switches),
            (1, 2, 0)
        );
        assert_eq!(s.mota, 0.0);
        assert_eq!((s.idtp, s.idfp, s.idfn), (2, 2, 1));
        assert!((s.idf1 - 4.0 / 7.0).abs() < 1e-12);
    }

    #[test]
    fn keeps_previous_match_while_still_valid() {
        // Frame 1: object 1 at X = (0, 0, 10, 10), hypothesis 10 at X.
        // Frame 2: object 1 at X, hypothesis 10 shifted 2.5 px (IoU 7.5·10 / (200 − 75) = 0.6),
        // hypothesis 11 exactly at X (IoU 1). Hungarian alone would take 11 (cost 0 < 0.4),
        // CLEAR MOT keeps 10 because IoU 0.6 ≥ 0.5: IDSW 0, FP 1 (hypothesis 11).
        // GT 2, FN 0, FP 1 → MOTA = 1 − 1/2 = 0.5; MOTP = (1 + 0.6) / 2 = 0.8.
        // IDF1: overlaps (1, 10) = 2, (1, 11) = 1 → IDTP 2; GT 2, hyp 3 → IDFN 0, IDFP 1,
        // IDF1 = 4 / 5 = 0.8.
        let x = bb(0.0, 0.0);
        let frames = vec![
            (vec![(1, x)], vec![(10, x)]),
            (vec![(1, x)], vec![(10, bb(2.5, 0.0)), (11, x)]),
        ];
        let s = run(&frames);
        assert_eq!(
            (s.false_negatives, s.false_positives, s.id_switches),
            (0, 1, 0)
        );
        assert_eq!(s.mota, 0.5);
        assert!((s.motp - 0.8).abs() < 1e-6);
        assert_eq!((s.idtp, s.idfp, s.idfn), (2, 1, 0));
        assert!((s.idf1 - 0.8).abs() < 1e-12);
    }

    #[test]
    fn switch_after_gap_counts() {
        // Frame 1: object 1 ↔ hypothesis 10. Frame 2: nothing. Frame 3: object 1 ↔ 11.
        // The last known correspondence (10) survives the empty frame → IDSW 1.
        // GT 2 → MOTA = 1 − 1/2 = 0.5. IDF1: IDTP 1, IDFN 1, IDFP 1 → 2 / 4 = 0.5.
        let x = bb(0.0, 0.0);
        let frames = vec![
            (vec![(1, x)], vec![(10, x)]),
            (vec![], vec![]),
            (vec![(1, x)], vec![(11, x)]),
        ];
        let s = run(&frames);
        assert_eq!(s.id_switches, 1);
        assert_eq!(s.mota, 0.5);
        assert_eq!(s.idf1, 0.5);
    }

    #[test]
    fn swapped_ids_between_two_objects() {
        // Objects 1 (at A) and 2 (at B) for 4 frames. Hypotheses: frames 1–2 → 10 on A,
        // 20 on B; frames 3–4 swapped (20 on A, 10 on B). Frame 3: two switches.
        // GT 8 → MOTA = 1 − 2/8 = 0.75.
        // IDF1: mapping {1→10, 2→20} gives 2 + 2 = 4 (same for the swap) → IDTP 4,
        // IDFN 4, IDFP 4 → 8 / 16 = 0.5.
        let (a, b) = (bb(0.0, 0.0), bb(100.0, 0.0));
        let frames: Vec<_> = (0..4)
            .map(|t| {
                let (ha, hb) = if t < 2 { (10, 20) } else { (20, 10) };
                (vec![(1, a), (2, b)], vec![(ha, a), (hb, b)])
            })
            .collect();
        let s = run(&frames);
        assert_eq!(s.id_switches, 2);
        assert_eq!(s.mota, 0.75);
        assert_eq!((s.idtp, s.idfp, s.idfn), (4, 4, 4));
        assert_eq!(s.idf1, 0.5);
    }

    #[test]
    fn empty_sequence_is_nan() {
        let s = MotAccumulator::new().summary();
        assert!(s.mota.is_nan() && s.idf1.is_nan());
    }
}
