//! YOLOX output decoding: anchor-point grids over the strides, boxes from (x, y, log w, log h),
//! score = objectness × best class score, class filter and score threshold.

use super::{ClassFilter, corners, score_row};
use crate::manifest::DetectionParams;
use crate::nms::Candidate;

/// Decodes the output rows of ONE image (`num_anchors × (5 + num_classes)` values, anchors
/// row-major per stride, strides in manifest order) into candidates in network-input pixels.
///
/// Like YOLOX's own postprocess, each anchor gets its best class; the anchor is kept when that
/// class passes `classes` and `objectness × class score >= score_threshold`.
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
        "YOLOX output of one image has the wrong length"
    );
    let mut out = Vec::new();
    let mut rows = output.chunks_exact(row);
    for &stride in &params.strides {
        let grid = (params.input_size / stride) as usize;
        let s = stride as f32;
        for gy in 0..grid {
            for gx in 0..grid {
                let r = rows.next().expect("length checked above");
                let Some((class_id, score)) = score_row(r, classes, score_threshold) else {
                    continue;
                };
                let cx = (r[0] + gx as f32) * s;
                let cy = (r[1] + gy as f32) * s;
                let w = r[2].exp() * s;
                let h = r[3].exp() * s;
                out.push(corners(class_id, score, cx, cy, w, h));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::heads::test_params::small;
    use crate::manifest::DetectionHead;

    /// A 32×32 input with strides 8 and 16 (16 + 4 anchors) and 3 classes.
    fn params() -> DetectionParams {
        small(DetectionHead::Yolox)
    }

    fn empty() -> Vec<f32> {
        vec![0.0; 20 * 8]
    }

    fn set(out: &mut [f32], anchor: usize, vals: [f32; 8]) {
        out[anchor * 8..anchor * 8 + 8].copy_from_slice(&vals);
    }

    #[test]
    fn known_anchors_give_known_boxes() {
        let mut out = empty();
        // Stride 8, grid (x=2, y=1) → anchor 1*4+2 = 6. cx=(0.5+2)*8=20, cy=(0.25+1)*8=10,
        // w=e^ln(4)*8=32, h=e^0*8=8; obj 0.9 × class-1 0.8 = 0.72.
        set(
            &mut out,
            6,
            [0.5, 0.25, 4f32.ln(), 0.0, 0.9, 0.1, 0.8, 0.05],
        );
        // Stride 16, grid (x=1, y=1) → anchor 16 + 1*2+1 = 19. cx=cy=(0+1)*16=16, w=h=16.
        set(&mut out, 19, [0.0, 0.0, 0.0, 0.0, 0.5, 0.0, 0.0, 0.9]);
        let got = decode(&out, &params(), &ClassFilter::All, 0.3);
        assert_eq!(got.len(), 2);
        let a = got[0];
        assert_eq!(a.class_id, 1);
        assert!((a.score - 0.72).abs() < 1e-6);
        assert_eq!((a.x1, a.y1, a.x2, a.y2), (4.0, 6.0, 36.0, 14.0));
        let b = got[1];
        assert_eq!(b.class_id, 2);
        assert!((b.score - 0.45).abs() < 1e-6);
        assert_eq!((b.x1, b.y1, b.x2, b.y2), (8.0, 8.0, 24.0, 24.0));
    }

    #[test]
    fn class_filter_and_threshold_apply() {
        let mut out = empty();
        set(&mut out, 0, [0.0, 0.0, 0.0, 0.0, 0.9, 0.1, 0.8, 0.05]); // class 1, 0.72
        set(&mut out, 1, [0.0, 0.0, 0.0, 0.0, 0.9, 0.0, 0.0, 0.5]); // class 2, 0.45
        set(&mut out, 2, [0.0, 0.0, 0.0, 0.0, 0.5, 0.0, 0.5, 0.0]); // class 1, 0.25
        let only = ClassFilter::Only(vec![1]);
        let got = decode(&out, &params(), &only, 0.3);
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].class_id, 1);
        assert_eq!(decode(&out, &params(), &ClassFilter::All, 0.3).len(), 2);
        assert_eq!(decode(&out, &params(), &ClassFilter::All, 0.2).len(), 3);
    }

    #[test]
    fn best_class_decides_the_filter() {
        // Class 2 is the best class: a horse-only filter drops the anchor even though the
        // class-1 score alone would pass the threshold.
        let mut out = empty();
        set(&mut out, 0, [0.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.6, 0.7]);
        assert!(decode(&out, &params(), &ClassFilter::Only(vec![1]), 0.3).is_empty());
    }
}
