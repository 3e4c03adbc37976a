//! Per-class greedy non-maximum suppression over corner boxes.

/// A scored box in network-input pixels, corners `(x1, y1)`–`(x2, y2)`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Candidate {
    pub class_id: u32,
    pub score: f32,
    pub x1: f32,
    pub y1: f32,
    pub x2: f32,
    pub y2: f32,
}

impl Candidate {
    pub fn area(&self) -> f32 {
        (self.x2 - self.x1).max(0.0) * (self.y2 - self.y1).max(0.0)
    }
}

/// Intersection over union; 0 for disjoint or degenerate boxes.
pub fn iou(a: &Candidate, b: &Candidate) -> f32 {
    let iw = (a.x2.min(b.x2) - a.x1.max(b.x1)).max(0.0);
    let ih = (a.y2.min(b.y2) - a.y1.max(b.y1)).max(0.0);
    let inter = iw * ih;
    let union = a.area() + b.area() - inter;
    if union <= 0.0 { 0.0 } else { inter / union }
}

/// Keeps, per class, the highest-scoring boxes and drops any box whose IoU with a kept box of
/// the same class exceeds `iou_threshold`. Result is sorted by score, highest first (ties keep
/// input order, so the result is deterministic).
pub fn nms(mut candidates: Vec<Candidate>, iou_threshold: f32) -> Vec<Candidate> {
    candidates.sort_by(|a, b| b.score.total_cmp(&a.score));
    let mut kept: Vec<Candidate> = Vec::with_capacity(candidates.len().min(64));
    for c in candidates {
        let suppressed = kept
            .iter()
            .any(|k| k.class_id == c.class_id && iou(k, &c) > iou_threshold);
        if !suppressed {
            kept.push(c);
        }
    }
    kept
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(class_id: u32, score: f32, x1: f32, y1: f32, x2: f32, y2: f32) -> Candidate {
        Candidate {
            class_id,
            score,
            x1,
            y1,
            x2,
            y2,
        }
    }

    #[test]
    fn iou_of_known_boxes() {
        let a = c(0, 1.0, 0.0, 0.0, 10.0, 10.0);
        assert_eq!(iou(&a, &a), 1.0);
        assert_eq!(iou(&a, &c(0, 1.0, 5.0, 0.0, 15.0, 10.0)), 50.0 / 150.0);
        assert_eq!(iou(&a, &c(0, 1.0, 20.0, 20.0, 30.0, 30.0)), 0.0);
        assert_eq!(iou(&a, &c(0, 1.0, 3.0, 3.0, 3.0, 3.0)), 0.0);
    }

    #[test]
    fn overlapping_boxes_keep_the_best() {
        let out = nms(
            vec![
                c(17, 0.6, 1.0, 1.0, 11.0, 11.0),
                c(17, 0.9, 0.0, 0.0, 10.0, 10.0),
                c(17, 0.7, 2.0, 0.0, 12.0, 10.0),
            ],
            0.45,
        );
        assert_eq!(out, vec![c(17, 0.9, 0.0, 0.0, 10.0, 10.0)]);
    }

    #[test]
    fn non_overlapping_boxes_all_survive_sorted() {
        let out = nms(
            vec![
                c(17, 0.5, 0.0, 0.0, 10.0, 10.0),
                c(17, 0.8, 100.0, 0.0, 110.0, 10.0),
                // IoU 50/150 = 0.33 with the first: below the threshold.
                c(17, 0.4, 5.0, 0.0, 15.0, 10.0),
            ],
            0.45,
        );
        let scores: Vec<f32> = out.iter().map(|d| d.score).collect();
        assert_eq!(scores, vec![0.8, 0.5, 0.4]);
    }

    #[test]
    fn suppression_is_per_class() {
        let out = nms(
            vec![
                c(17, 0.9, 0.0, 0.0, 10.0, 10.0),
                c(19, 0.8, 0.0, 0.0, 10.0, 10.0),
                c(17, 0.7, 0.0, 0.0, 10.0, 10.0),
            ],
            0.45,
        );
        let classes: Vec<u32> = out.iter().map(|d| d.class_id).collect();
        assert_eq!(classes, vec![17, 19]);
    }

    #[test]
    fn a_suppressed_box_does_not_suppress_others() {
        // B overlaps A (suppressed); C overlaps B but not A: C must survive.
        let out = nms(
            vec![
                c(0, 0.9, 0.0, 0.0, 10.0, 10.0),
                c(0, 0.8, 3.0, 0.0, 13.0, 10.0),
                c(0, 0.7, 8.0, 0.0, 18.0, 10.0),
            ],
            0.45,
        );
        assert_eq!(out.len(), 2);
        assert_eq!(out[1].score, 0.7);
    }
}
