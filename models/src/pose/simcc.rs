//! SimCC decoding as RTMPose does it (mmpose `get_simcc_maximum` + `SimCCLabel.decode`): per
//! keypoint, the argmax of the x vector and of the y vector, divided by the split ratio, give
//! the location in network-input pixels; the confidence is the smaller of the two maxima.
//! mmpose marks a keypoint whose confidence is `<= 0` as not located.

/// One keypoint in network-input pixels.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SimccPeak {
    pub x: f32,
    pub y: f32,
    /// `min(max(simcc_x), max(simcc_y))`: the raw model output (RTMPose's SimCC logits are not
    /// normalised), so its scale depends on the model.
    pub confidence: f32,
}

/// Index and value of the maximum; the first of equal maxima wins (numpy `argmax`). An empty
/// vector gives `(0, -inf)`.
fn argmax(v: &[f32]) -> (usize, f32) {
    let mut best = (0, f32::NEG_INFINITY);
    for (i, &x) in v.iter().enumerate() {
        if x > best.1 {
            best = (i, x);
        }
    }
    best
}

/// Decodes one keypoint from its x and y SimCC vectors.
pub fn decode_keypoint(simcc_x: &[f32], simcc_y: &[f32], split_ratio: f32) -> SimccPeak {
    let (ix, vx) = argmax(simcc_x);
    let (iy, vy) = argmax(simcc_y);
    SimccPeak {
        x: ix as f32 / split_ratio,
        y: iy as f32 / split_ratio,
        confidence: vx.min(vy),
    }
}

/// Decodes the `K` keypoints of one crop: `simcc_x` holds `K` rows of `bins_x` values,
/// `simcc_y` `K` rows of `bins_y` (row-major, as one crop's slice of `[N, K, bins]`).
pub fn decode(
    simcc_x: &[f32],
    simcc_y: &[f32],
    bins_x: usize,
    bins_y: usize,
    split_ratio: f32,
) -> Vec<SimccPeak> {
    assert!(bins_x > 0 && bins_y > 0, "SimCC vectors must not be empty");
    assert_eq!(
        simcc_x.len() / bins_x,
        simcc_y.len() / bins_y,
        "simcc_x and simcc_y disagree on the number of keypoints"
    );
    simcc_x
        .chunks_exact(bins_x)
        .zip(simcc_y.chunks_exact(bins_y))
        .map(|(x, y)| decode_keypoint(x, y, split_ratio))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one_hot(len: usize, at: usize, value: f32, floor: f32) -> Vec<f32> {
        let mut v = vec![floor; len];
        v[at] = value;
        v
    }

    #[test]
    fn argmax_over_the_split_ratio_gives_input_pixels() {
        let p = decode_keypoint(
            &one_hot(512, 301, 0.9, 0.0),
            &one_hot(512, 45, 0.7, 0.0),
            2.0,
        );
        assert_eq!((p.x, p.y), (150.5, 22.5));
        assert_eq!(p.confidence, 0.7);
        let p = decode_keypoint(
            &one_hot(384, 10, 0.4, 0.0),
            &one_hot(512, 11, 0.6, 0.0),
            2.0,
        );
        assert_eq!((p.x, p.y, p.confidence), (5.0, 5.5, 0.4));
    }

    #[test]
    fn the_first_of_equal_maxima_wins() {
        let mut x = vec![0.0; 8];
        x[3] = 1.0;
        x[6] = 1.0;
        let p = decode_keypoint(&x, &x, 1.0);
        assert_eq!((p.x, p.y), (3.0, 3.0));
    }

    #[test]
    fn confidence_can_be_non_positive() {
        // All logits negative: located at the argmax, but confidence <= 0 (mmpose: not found).
        let p = decode_keypoint(&one_hot(8, 2, -0.5, -3.0), &one_hot(8, 4, -0.1, -3.0), 2.0);
        assert_eq!((p.x, p.y, p.confidence), (1.0, 2.0, -0.5));
    }

    #[test]
    fn rows_are_keypoints() {
        // K = 3, 6 bins along x, 4 along y.
        let mut x = vec![0.0; 3 * 6];
        let mut y = vec![0.0; 3 * 4];
        for k in 0..3 {
            x[k * 6 + (5 - k)] = 1.0 + k as f32;
            y[k * 4 + k] = 2.0;
        }
        let got = decode(&x, &y, 6, 4, 2.0);
        let xs: Vec<(f32, f32, f32)> = got.iter().map(|p| (p.x, p.y, p.confidence)).collect();
        assert_eq!(xs, vec![(2.5, 0.0, 1.0), (2.0, 0.5, 2.0), (1.5, 1.0, 2.0)]);
    }
}
