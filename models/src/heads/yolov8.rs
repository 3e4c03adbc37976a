//! YOLOv8 (and YOLO11) output decoding: channels first, `[4 + C, A]` per image — rows `cx`,
//! `cy`, `w`, `h` in network-input pixels, then one row per class score (sigmoid-ed), one
//! column per anchor point; no objectness, the score is the best class score.

use super::{ClassFilter, corners};
use crate::manifest::DetectionParams;
use crate::nms::Candidate;

/// Decodes the `(4 + num_classes) × num_anchors` output values of ONE image into candidates in
/// network-input pixels.
///
/// Like Ultralytics' `non_max_suppression` without `multi_label`, each anchor gets its best
/// class; it is kept when that class passes `classes` and its score `>= score_threshold`.
/// The class rows are read one after the other (contiguous), not anchor by anchor.
pub fn decode(
    output: &[f32],
    params: &DetectionParams,
    classes: &ClassFilter,
    score_threshold: f32,
) -> Vec<Candidate> {
    let a = params.num_anchors();
    assert_eq!(
        output.len(),
        (4 + params.num_classes as usize) * a,
        "YOLOv8 output of one image has the wrong length"
    );
    let (boxes, scores) = output.split_at(4 * a);
    let mut best_class = vec![0u32; a];
    let mut best_score = vec![f32::MIN; a];
    for (c, row) in scores.chunks_exact(a).enumerate() {
        for ((&v, bc), bs) in row.iter().zip(&mut best_class).zip(&mut best_score) {
            // Strictly greater: the first of equal scores wins, like `argmax`.
            if v > *bs {
                *bs = v;
                *bc = c as u32;
            }
        }
    }
    let row = |i: usize| &boxes[i * a..(i + 1) * a];
    let (cx, cy, w, h) = (row(0), row(1), row(2), row(3));
    (0..a)
        .filter(|&i| best_score[i] >= score_threshold && classes.accepts(best_class[i]))
        .map(|i| corners(best_class[i], best_score[i], cx[i], cy[i], w[i], h[i]))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::heads::test_params::small;
    use crate::manifest::DetectionHead;

    const A: usize = 20;

    /// `[4 + 3, 20]`: channel-first, all zero.
    fn empty() -> Vec<f32> {
        vec![0.0; 7 * A]
    }

    /// Writes anchor `i`'s column: `[cx, cy, w, h, c0, c1, c2]`.
    fn set(out: &mut [f32], i: usize, vals: [f32; 7]) {
        for (ch, v) in vals.into_iter().enumerate() {
            out[ch * A + i] = v;
        }
    }

    #[test]
    fn columns_are_pixel_boxes_scored_by_the_best_class() {
        let p = small(DetectionHead::Yolov8);
        assert_eq!(p.num_anchors(), A);
        assert_eq!(p.output_shape(2), [2, 7, A]);
        let mut out = empty();
        set(&mut out, 3, [20.0, 10.0, 32.0, 8.0, 0.1, 0.8, 0.05]);
        set(&mut out, 19, [16.0, 16.0, 16.0, 16.0, 0.0, 0.2, 0.45]);
        let got = decode(&out, &p, &ClassFilter::All, 0.3);
        assert_eq!(got.len(), 2);
        assert_eq!((got[0].class_id, got[0].score), (1, 0.8));
        assert_eq!(
            (got[0].x1, got[0].y1, got[0].x2, got[0].y2),
            (4.0, 6.0, 36.0, 14.0)
        );
        assert_eq!((got[1].class_id, got[1].score), (2, 0.45));
        assert_eq!(
            (got[1].x1, got[1].y1, got[1].x2, got[1].y2),
            (8.0, 8.0, 24.0, 24.0)
        );
    }

    #[test]
    fn best_class_decides_the_filter_and_threshold_applies() {
        let p = small(DetectionHead::Yolov8);
        let mut out = empty();
        // Class 2 beats the horse class 1: a horse-only filter drops it.
        set(&mut out, 0, [5.0, 5.0, 2.0, 2.0, 0.0, 0.6, 0.7]);
        set(&mut out, 1, [5.0, 5.0, 2.0, 2.0, 0.0, 0.35, 0.0]);
        set(&mut out, 2, [5.0, 5.0, 2.0, 2.0, 0.0, 0.25, 0.0]);
        let horse = ClassFilter::Only(vec![1]);
        let got = decode(&out, &p, &horse, 0.3);
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].score, 0.35);
        assert_eq!(decode(&out, &p, &ClassFilter::All, 0.3).len(), 2);
        assert_eq!(decode(&out, &p, &horse, 0.2).len(), 2);
    }

    #[test]
    fn a_row_major_reading_would_differ() {
        // Regression guard for the layout: a box written as a ROW (as YOLOv5 lays it out) is
        // not a detection here, because column 0 then holds cx, cy, w, h from four channels.
        let p = small(DetectionHead::Yolov8);
        let mut out = empty();
        out[..7].copy_from_slice(&[20.0, 10.0, 32.0, 8.0, 0.0, 0.9, 0.0]);
        let got = decode(&out, &p, &ClassFilter::All, 0.3);
        assert!(got.is_empty(), "{got:?}");
    }
}
