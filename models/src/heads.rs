//! Detection output heads: the decoders of the three output layouts a manifest may declare
//! (`head = "yolox" | "yolov5" | "yolov8"`), the class filter they share, and one dispatch.
//! All of them are pure and give candidates in network-input pixels, before NMS.

pub mod yolov5;
pub mod yolov8;
pub mod yolox;

use crate::manifest::{DetectionHead, DetectionParams};
use crate::nms::Candidate;

/// Which classes a detector reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClassFilter {
    All,
    Only(Vec<u32>),
}

impl ClassFilter {
    pub fn accepts(&self, class_id: u32) -> bool {
        match self {
            ClassFilter::All => true,
            ClassFilter::Only(ids) => ids.contains(&class_id),
        }
    }
}

/// Decodes the raw output of ONE image with the decoder of `params.head`. `output` is that
/// image's slice of the batch output in standard (row-major) layout.
pub fn decode_output(
    output: &[f32],
    params: &DetectionParams,
    classes: &ClassFilter,
    score_threshold: f32,
) -> Vec<Candidate> {
    match params.head {
        DetectionHead::Yolox => yolox::decode(output, params, classes, score_threshold),
        DetectionHead::Yolov5 => yolov5::decode(output, params, classes, score_threshold),
        DetectionHead::Yolov8 => yolov8::decode(output, params, classes, score_threshold),
    }
}

/// Index and value of the highest score; the first one wins a tie (like numpy's `argmax`).
pub(crate) fn best_class(scores: impl IntoIterator<Item = f32>) -> (u32, f32) {
    let mut best = (0, f32::MIN);
    for (i, v) in scores.into_iter().enumerate() {
        if v > best.1 {
            best = (i as u32, v);
        }
    }
    best
}

/// Class and score of a `[box, objectness, C class scores]` row (YOLOX, YOLOv5): the best class,
/// scored objectness × class score; `None` unless that class passes `classes` and the score is
/// `>= score_threshold`.
pub(crate) fn score_row(
    row: &[f32],
    classes: &ClassFilter,
    score_threshold: f32,
) -> Option<(u32, f32)> {
    let obj = row[4];
    if obj < score_threshold {
        // score = obj × cls <= obj: cannot pass.
        return None;
    }
    let (class_id, cls_score) = best_class(row[5..].iter().copied());
    let score = obj * cls_score;
    (score >= score_threshold && classes.accepts(class_id)).then_some((class_id, score))
}

/// A candidate from a centre box.
pub(crate) fn corners(class_id: u32, score: f32, cx: f32, cy: f32, w: f32, h: f32) -> Candidate {
    Candidate {
        class_id,
        score,
        x1: cx - w / 2.0,
        y1: cy - h / 2.0,
        x2: cx + w / 2.0,
        y2: cy + h / 2.0,
    }
}

#[cfg(test)]
pub(crate) mod test_params {
    use crate::manifest::{ChannelOrder, DetectionHead, DetectionParams, LetterboxPlacement};

    /// A 32×32 input with strides 8 and 16 (16 + 4 grid cells) and 3 classes.
    pub fn small(head: DetectionHead) -> DetectionParams {
        DetectionParams {
            head,
            input_size: 32,
            letterbox: LetterboxPlacement::Center,
            channel_order: ChannelOrder::Rgb,
            pixel_range: [0.0, 1.0],
            pad_value: 114,
            num_classes: 3,
            strides: vec![8, 16],
            horse_class_id: 1,
            score_threshold: 0.3,
            nms_iou: 0.45,
            low_score_threshold: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn best_class_takes_the_first_of_equal_maxima() {
        assert_eq!(best_class([0.1, 0.7, 0.7, 0.2]), (1, 0.7));
        assert_eq!(best_class([-3.0, -2.0]), (1, -2.0));
    }

    #[test]
    fn dispatch_follows_the_head() {
        // The same 20 rows of [cx, cy, w, h, obj, c0, c1, c2] mean a pixel box to YOLOv5 and
        // grid offsets to YOLOX; as YOLOv8 the buffer is read channel-first.
        let mut p = test_params::small(DetectionHead::Yolov5);
        p.strides = vec![16]; // 4 cells: YOLOv5 has 12 rows, YOLOX/YOLOv8 4.
        let mut out = vec![0.0; 12 * 8];
        out[..8].copy_from_slice(&[10.0, 10.0, 4.0, 4.0, 0.9, 0.0, 1.0, 0.0]);
        let v5 = decode_output(&out, &p, &ClassFilter::All, 0.3);
        assert_eq!(v5.len(), 1);
        assert_eq!(
            (v5[0].x1, v5[0].y1, v5[0].x2, v5[0].y2),
            (8.0, 8.0, 12.0, 12.0)
        );
        p.head = DetectionHead::Yolox;
        let x = decode_output(&out[..4 * 8], &p, &ClassFilter::All, 0.3);
        assert_eq!(x.len(), 1);
        // (10 + 0) · 16 = 160, w = e⁴ · 16.
        assert!((x[0].x1 + x[0].x2 - 320.0).abs() < 1e-3, "{x:?}");
    }
}
