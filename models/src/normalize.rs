//! 0–255 pixel values → network input values, as one model wants them: its channel order,
//! `pixel_range`, `mean` and `std`, folded into a 256-entry table per channel when the model is
//! wrapped, so a pixel costs three lookups. Used by the letterbox, the embedder and the pose crop.

use crate::manifest::ChannelOrder;

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct PixelNorm {
    /// Input plane of each source channel (0 = R, 1 = G, 2 = B).
    plane: [usize; 3],
    /// `table[c][v]`: the input value of `v` in source channel `c`.
    table: [[f32; 256]; 3],
}

impl PixelNorm {
    /// `(lo + v · (hi − lo) / 255 − mean[p]) / std[p]` for a value `v` that lands in plane `p`
    /// (`mean` and `std` are per input plane, i.e. in `order`).
    pub(crate) fn new(
        order: ChannelOrder,
        [lo, hi]: [f32; 2],
        mean: [f32; 3],
        std: [f32; 3],
    ) -> PixelNorm {
        let plane = match order {
            ChannelOrder::Rgb => [0, 1, 2],
            ChannelOrder::Bgr => [2, 1, 0],
        };
        let k = (hi - lo) / 255.0;
        let mut table = [[0f32; 256]; 3];
        for (c, row) in table.iter_mut().enumerate() {
            let p = plane[c];
            for (v, out) in row.iter_mut().enumerate() {
                *out = (lo + v as f32 * k - mean[p]) / std[p];
            }
        }
        PixelNorm { plane, table }
    }

    /// No mean or std: `pixel_range` only (the detectors).
    pub(crate) fn range(order: ChannelOrder, pixel_range: [f32; 2]) -> PixelNorm {
        PixelNorm::new(order, pixel_range, [0.0; 3], [1.0; 3])
    }

    /// Writes pixel `rgb` at offset `at` of each plane of `out` (CHW, planes of `plane_len`).
    #[inline]
    pub(crate) fn store(&self, out: &mut [f32], plane_len: usize, at: usize, rgb: [u8; 3]) {
        for (c, v) in rgb.into_iter().enumerate() {
            out[self.plane[c] * plane_len + at] = self.table[c][usize::from(v)];
        }
    }

    /// Fills each plane of `out` (CHW, planes of `plane_len`) with pixel `rgb`.
    pub(crate) fn fill(&self, out: &mut [f32], plane_len: usize, rgb: [u8; 3]) {
        for (c, v) in rgb.into_iter().enumerate() {
            let start = self.plane[c] * plane_len;
            out[start..start + plane_len].fill(self.table[c][usize::from(v)]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order_range_mean_and_std_apply_per_plane() {
        let n = PixelNorm::new(
            ChannelOrder::Bgr,
            [0.0, 1.0],
            [0.1, 0.2, 0.3],
            [0.5, 0.25, 2.0],
        );
        let mut out = [0f32; 3];
        n.store(&mut out, 1, 0, [255, 51, 0]);
        // B (0) in plane 0, G (51 → 0.2) in plane 1, R (255 → 1) in plane 2.
        let expected = [(0.0 - 0.1) / 0.5, (0.2 - 0.2) / 0.25, (1.0 - 0.3) / 2.0];
        for (got, want) in out.into_iter().zip(expected) {
            assert!((got - want).abs() < 1e-6, "{out:?} vs {expected:?}");
        }
        let plain = PixelNorm::range(ChannelOrder::Rgb, [0.0, 255.0]);
        let mut out = [0f32; 6];
        plain.fill(&mut out, 2, [114, 7, 255]);
        assert_eq!(out, [114.0, 114.0, 7.0, 7.0, 255.0, 255.0]);
    }
}
