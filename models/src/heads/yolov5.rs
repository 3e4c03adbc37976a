//! YOLOv5 output decoding: one row per anchor box, `[cx, cy, w, h, objectness, C class scores]`
//! with the box already in network-input pixels (the export's Detect layer applies the grids,
//! anchors and sigmoids); score = objectness × best class score.

use super::{ClassFilter, corners, score_row};
use crate::manifest::DetectionParams;
use crate::nms::Candidate;

/// Decodes the `num_anchors × (5 + num_classes)` output values of ONE image into candidates
/// in network-input pixels.
///
/// Like YOLOv5's `non_max_suppression` without `multi_label`, each row gets its best class;
/// it is kept when that class passes `classes` and `objectness × class score >=
/// score_threshold` (the same `>=` as the YOLOX decoder, where YOLOv5 uses `>`; they differ
/// only for a score exactly at the threshold).
pub fn decode(
    output: &[f32],
    params: &DetectionParams,
    classes: &ClassFilter,
    score_threshold: f32,
) -> Vec<Candidate> {
    let row = 5 + params.num_classes as usize;
    assert_eq!(
        output.len(),
        params.num_anchors() * row,
        "YOLOv5 output of one image has the wrong length"
    );
    output
        .chunks_exact(row)
        .filter_map(|r| {
            let (class_id, score) = score_row(r, classes, score_threshold)?;
            Some(corners(class_id, score, r[0], r[1], r[2], r[3]))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::heads::test_params::small;
    use crate::manifest::DetectionHead;

    /// 3 × 20 anchor rows of 8 values.
    fn empty() -> Vec<f32> {
        vec![0.0; 60 * 8]
    }

    fn set(out: &mut [f32], anchor: usize, vals: [f32; 8]) {
        out[anchor * 8..anchor * 8 + 8].copy_from_slice(&vals);
    }

    #[test]
    fn rows_are_pixel_boxes_scored_by_objectness_times_class() {
        let p = small(DetectionHead::Yolov5);
        assert_eq!(p.num_anchors(), 60);
        let mut out = empty();
        set(&mut out, 7, [20.0, 10.0, 32.0, 8.0, 0.9, 0.1, 0.8, 0.05]);
        set(&mut out, 59, [16.0, 16.0, 16.0, 16.0, 0.5, 0.0, 0.0, 0.9]);
        let got = decode(&out, &p, &ClassFilter::All, 0.3);
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].class_id, 1);
        assert!((got[0].score - 0.72).abs() < 1e-6);
        assert_eq!(
            (got[0].x1, got[0].y1, got[0].x2, got[0].y2),
            (4.0, 6.0, 36.0, 14.0)
        );
        assert_eq!(got[1].class_id, 2);
        assert!((got[1].score - 0.45).abs() < 1e-6);
        assert_eq!(
            (got[1].x1, got[1].y1, got[1].x2, got[1].y2),
            (8.0, 8.0, 24.0, 24.0)
        );
    }

    #[test]
    fn low_objectness_class_filter_and_threshold_drop_rows() {
        let p = small(DetectionHead::Yolov5);
        let mut out = empty();
        // A confident class under a low objectness: 0.25 · 1.0 < 0.3.
        set(&mut out, 0, [5.0, 5.0, 2.0, 2.0, 0.25, 0.0, 1.0, 0.0]);
        // Class 0 best: dropped by a horse-only (class 1) filter.
        set(&mut out, 1, [5.0, 5.0, 2.0, 2.0, 0.9, 0.8, 0.7, 0.0]);
        // Passes: 0.9 · 0.5 = 0.45.
        set(&mut out, 2, [5.0, 5.0, 2.0, 2.0, 0.9, 0.0, 0.5, 0.0]);
        let horse = ClassFilter::Only(vec![1]);
        let got = decode(&out, &p, &horse, 0.3);
        assert_eq!(got.len(), 1);
        assert!((got[0].score - 0.45).abs() < 1e-6);
        assert_eq!(decode(&out, &p, &ClassFilter::All, 0.3).len(), 2);
        assert_eq!(decode(&out, &p, &ClassFilter::All, 0.2).len(), 3);
        assert!(decode(&out, &p, &ClassFilter::All, 0.5).len() == 1);
    }

    #[test]
    #[should_panic(expected = "wrong length")]
    fn a_yolox_sized_output_is_refused() {
        let p = small(DetectionHead::Yolov5);
        decode(&vec![0.0; 20 * 8], &p, &ClassFilter::All, 0.3);
    }
}
