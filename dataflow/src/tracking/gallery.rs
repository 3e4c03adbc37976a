//! A track's bounded appearance gallery: the last `budget` L2-normalised re-ID features,
//! stored contiguously so that the min-cosine-distance scan is one pass over one slice.

/// Ring buffer of unit-length features of one fixed dimension (set by the first push).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Gallery {
    budget: usize,
    dim: usize,
    /// `len * dim` floats; slot `i` is `data[i * dim..(i + 1) * dim]`.
    data: Vec<f32>,
    len: usize,
    /// Slot the next push overwrites once full.
    next: usize,
}

impl Gallery {
    /// An empty gallery keeping at most `budget` features (at least one).
    pub fn new(budget: usize) -> Self {
        Self {
            budget: budget.max(1),
            dim: 0,
            data: Vec::new(),
            len: 0,
            next: 0,
        }
    }

    /// Number of features held.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Add a feature, normalising it; the oldest one goes when the budget is reached. A
    /// feature of zero or non-finite norm, or of another dimension than the first, is ignored.
    pub fn push(&mut self, feature: &[f32]) {
        let Some(inv) = inv_norm(feature) else { return };
        if self.len == 0 {
            self.dim = feature.len();
        } else if feature.len() != self.dim {
            return;
        }
        let dim = self.dim;
        if self.len < self.budget {
            self.data.extend(feature.iter().map(|v| v * inv));
            self.len += 1;
        } else {
            let slot = &mut self.data[self.next * dim..(self.next + 1) * dim];
            for (s, v) in slot.iter_mut().zip(feature) {
                *s = v * inv;
            }
            self.next = (self.next + 1) % self.budget;
        }
    }

    /// Smallest cosine distance (1 − cos) between `query` and any stored feature, with
    /// `query_inv_norm` = 1 / ‖query‖ (see [`inv_norm`]). `None` when empty or when the
    /// dimensions differ.
    pub fn min_cosine_distance(&self, query: &[f32], query_inv_norm: f32) -> Option<f32> {
        if self.len == 0 || query.len() != self.dim {
            return None;
        }
        let best = self
            .data
            .chunks_exact(self.dim)
            .map(|g| dot(g, query))
            .fold(f32::NEG_INFINITY, f32::max);
        Some(1.0 - best * query_inv_norm)
    }
}

impl Gallery {
    /// Cosine distance to some stored feature that is within `max_distance`, scanning newest
    /// first and stopping at the first one; `None` when no feature is that close. Enough when
    /// only whether a pair passes the threshold matters, not its exact cost.
    pub fn any_within(&self, query: &[f32], query_inv_norm: f32, max_distance: f32) -> Option<f32> {
        if self.len == 0 || query.len() != self.dim {
            return None;
        }
        // Slots in push order: the oldest is `next` once full, 0 before.
        let newest = if self.len < self.budget {
            self.len - 1
        } else {
            (self.next + self.len - 1) % self.len
        };
        (0..self.len)
            .map(|k| (newest + self.len - k) % self.len)
            .map(|slot| {
                1.0 - dot(&self.data[slot * self.dim..(slot + 1) * self.dim], query)
                    * query_inv_norm
            })
            .find(|&d| d <= max_distance)
    }
}

/// 1 / ‖v‖, or `None` for an empty, zero or non-finite vector.
pub fn inv_norm(v: &[f32]) -> Option<f32> {
    let n = dot(v, v).sqrt();
    (n.is_finite() && n > 0.0).then(|| 1.0 / n)
}

/// Dot product with 8 independent accumulators, so that the compiler can vectorise it
/// without reassociating a single sum.
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let mut acc = [0.0f32; 8];
    let (ac, at) = a.split_at(n - n % 8);
    let (bc, bt) = b.split_at(n - n % 8);
    for (x, y) in ac.chunks_exact(8).zip(bc.chunks_exact(8)) {
        for i in 0..8 {
            acc[i] += x[i] * y[i];
        }
    }
    let tail: f32 = at.iter().zip(bt).map(|(x, y)| x * y).sum();
    acc.iter().sum::<f32>() + tail
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dot_matches_naive() {
        let a: Vec<f32> = (0..19).map(|i| i as f32 * 0.5 - 3.0).collect();
        let b: Vec<f32> = (0..19).map(|i| (i as f32).sin()).collect();
        let naive: f32 = a.iter().zip(&b).map(|(x, y)| x * y).sum();
        assert!((dot(&a, &b) - naive).abs() < 1e-4);
    }

    #[test]
    fn min_over_gallery_and_budget() {
        let mut g = Gallery::new(2);
        g.push(&[1.0, 0.0]);
        g.push(&[0.0, 2.0]); // normalised to (0, 1)
        // Query (1, 1)/√2: cos 1/√2 to both → distance 1 − 0.7071.
        let q = [1.0, 1.0];
        let d = g.min_cosine_distance(&q, inv_norm(&q).unwrap()).unwrap();
        assert!((d - (1.0 - std::f32::consts::FRAC_1_SQRT_2)).abs() < 1e-6);
        // Query (1, 0): exact match with the first feature → 0.
        let q = [3.0, 0.0];
        assert!(
            g.min_cosine_distance(&q, inv_norm(&q).unwrap())
                .unwrap()
                .abs()
                < 1e-6
        );
        // A third push evicts (1, 0); now (1, 0) is orthogonal to everything held → 1.
        g.push(&[0.0, -1.0]);
        assert_eq!(g.len(), 2);
        assert!((g.min_cosine_distance(&q, inv_norm(&q).unwrap()).unwrap() - 1.0).abs() < 1e-6);
    }

    #[test]
    fn any_within_finds_the_newest_close_feature() {
        let mut g = Gallery::new(3);
        for f in [[1.0, 0.0], [0.0, 1.0], [0.6, 0.8], [0.8, 0.6]] {
            g.push(&f);
        }
        // Holds (0, 1), (0.6, 0.8), (0.8, 0.6); (1, 0) was evicted.
        let q = [1.0, 0.0];
        assert_eq!(g.any_within(&q, 1.0, 0.1), None);
        // Newest first: (0.8, 0.6) at distance 0.2 is found before (0.6, 0.8) at 0.4.
        assert!((g.any_within(&q, 1.0, 0.5).unwrap() - 0.2).abs() < 1e-6);
        // For (0, 1) the newest within 0.5 is (0.8, 0.6) at 0.4, though (0.6, 0.8) is nearer.
        assert!((g.any_within(&[0.0, 1.0], 1.0, 0.5).unwrap() - 0.4).abs() < 1e-6);
        assert!((g.min_cosine_distance(&q, 1.0).unwrap() - 0.2).abs() < 1e-6);
    }

    #[test]
    fn rejects_bad_features() {
        let mut g = Gallery::new(3);
        g.push(&[0.0, 0.0]);
        assert!(g.is_empty());
        g.push(&[1.0, 0.0]);
        g.push(&[1.0, 0.0, 0.0]);
        assert_eq!(g.len(), 1);
        assert_eq!(g.min_cosine_distance(&[1.0, 0.0, 0.0], 1.0), None);
    }
}
