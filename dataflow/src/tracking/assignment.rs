//! Gated minimum-cost assignment between rows (tracks) and columns (detections), solved by
//! the `pathfinding` crate's Kuhn–Munkres.
//!
//! `kuhn_munkres_min` wants integer weights and at most as many rows as columns, so costs are
//! scaled to `i64`, the matrix is padded to a square with zero-cost dummy rows or columns,
//! and every infeasible pair (gated, non-finite, or above the threshold) gets a cost larger
//! than the sum of all feasible ones. The result is therefore the matching with the most
//! feasible pairs, and among those the cheapest; infeasible pairs the solver had to use are
//! dropped afterwards and their row and column reported unmatched. A row and a column that
//! are each other's only feasible partner are matched without the solver, which at steady
//! state (well-separated horses) leaves it almost nothing to do.

use pathfinding::kuhn_munkres::kuhn_munkres_min;
use pathfinding::matrix::Matrix;

/// Costs are rounded to multiples of 1 / `SCALE`.
const SCALE: f64 = 1e6;

/// A dense `rows × cols` cost matrix, row-major. `f64::INFINITY` marks a gated pair.
#[derive(Debug, Clone, PartialEq)]
pub struct CostMatrix {
    rows: usize,
    cols: usize,
    data: Vec<f64>,
}

impl CostMatrix {
    /// A matrix with every pair infeasible.
    pub fn infeasible(rows: usize, cols: usize) -> Self {
        Self {
            rows,
            cols,
            data: vec![f64::INFINITY; rows * cols],
        }
    }

    /// Build from a function of (row, col).
    pub fn from_fn(rows: usize, cols: usize, mut f: impl FnMut(usize, usize) -> f64) -> Self {
        let mut data = Vec::with_capacity(rows * cols);
        for r in 0..rows {
            for c in 0..cols {
                data.push(f(r, c));
            }
        }
        Self { rows, cols, data }
    }

    pub fn rows(&self) -> usize {
        self.rows
    }

    pub fn cols(&self) -> usize {
        self.cols
    }

    pub fn get(&self, r: usize, c: usize) -> f64 {
        self.data[r * self.cols + c]
    }

    pub fn set(&mut self, r: usize, c: usize, v: f64) {
        self.data[r * self.cols + c] = v;
    }
}

/// The outcome of [`min_cost_matching`], every list in ascending order.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Matching {
    /// (row, col) pairs, sorted by row.
    pub matches: Vec<(usize, usize)>,
    pub unmatched_rows: Vec<usize>,
    pub unmatched_cols: Vec<usize>,
}

/// Match rows to columns, each used at most once, using only pairs whose cost is finite and
/// `<= threshold`: first as many such pairs as possible, then the least total cost.
pub fn min_cost_matching(costs: &CostMatrix, threshold: f64) -> Matching {
    let (rows, cols) = (costs.rows, costs.cols);
    let feasible = |v: f64| v.is_finite() && v <= threshold;
    let mut row_count = vec![0usize; rows];
    let mut row_only = vec![0usize; rows];
    let mut col_count = vec![0usize; cols];
    for (r, row) in costs.data.chunks_exact(cols.max(1)).take(rows).enumerate() {
        for (c, &v) in row.iter().enumerate() {
            if feasible(v) {
                row_count[r] += 1;
                row_only[r] = c;
                col_count[c] += 1;
            }
        }
    }
    // A row and a column that can only go with each other form a component of their own:
    // match them directly and leave the solver the rows and columns that have a choice.
    let mut out = Matching::default();
    let mut row_done = vec![false; rows];
    let mut col_done = vec![false; cols];
    for r in 0..rows {
        if row_count[r] == 1 && col_count[row_only[r]] == 1 {
            out.matches.push((r, row_only[r]));
            row_done[r] = true;
            col_done[row_only[r]] = true;
        }
    }
    let sub_rows: Vec<usize> = (0..rows)
        .filter(|&r| !row_done[r] && row_count[r] > 0)
        .collect();
    let sub_cols: Vec<usize> = (0..cols)
        .filter(|&c| !col_done[c] && col_count[c] > 0)
        .collect();
    if !sub_rows.is_empty() && !sub_cols.is_empty() {
        let scaled = |v: f64| (v.max(0.0) * SCALE).round() as i64;
        let max_feasible = sub_rows
            .iter()
            .flat_map(|&r| sub_cols.iter().map(move |&c| costs.get(r, c)))
            .filter(|&v| feasible(v))
            .map(scaled)
            .max()
            .unwrap_or(0);
        let n = sub_rows.len().max(sub_cols.len());
        // Larger than any assignment made only of feasible pairs.
        let infeasible = (max_feasible + 1).saturating_mul(n as i64 + 1);
        let weights = Matrix::from_fn(n, n, |(r, c)| {
            if r < sub_rows.len() && c < sub_cols.len() {
                let v = costs.get(sub_rows[r], sub_cols[c]);
                if feasible(v) { scaled(v) } else { infeasible }
            } else {
                0
            }
        });
        let (_, assigned) = kuhn_munkres_min(&weights);
        for (r, &c) in assigned.iter().enumerate().take(sub_rows.len()) {
            if c < sub_cols.len() && feasible(costs.get(sub_rows[r], sub_cols[c])) {
                out.matches.push((sub_rows[r], sub_cols[c]));
                row_done[sub_rows[r]] = true;
                col_done[sub_cols[c]] = true;
            }
        }
    }
    out.matches.sort_unstable();
    out.unmatched_rows = (0..rows).filter(|&r| !row_done[r]).collect();
    out.unmatched_cols = (0..cols).filter(|&c| !col_done[c]).collect();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// splitmix64, enough randomness for tests without a dependency.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^ (z >> 31)
        }
        fn unit(&mut self) -> f64 {
            (self.next() >> 11) as f64 / (1u64 << 53) as f64
        }
        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }
    }

    /// Best (most pairs, then least cost) over every partial injective matching.
    fn brute_force(costs: &CostMatrix, threshold: f64) -> (usize, f64) {
        fn go(
            costs: &CostMatrix,
            threshold: f64,
            r: usize,
            used: &mut Vec<bool>,
            count: usize,
            cost: f64,
            best: &mut (usize, f64),
        ) {
            if r == costs.rows() {
                if count > best.0 || (count == best.0 && cost < best.1) {
                    *best = (count, cost);
                }
                return;
            }
            go(costs, threshold, r + 1, used, count, cost, best);
            for c in 0..costs.cols() {
                let v = costs.get(r, c);
                if !used[c] && v.is_finite() && v <= threshold {
                    used[c] = true;
                    go(costs, threshold, r + 1, used, count + 1, cost + v, best);
                    used[c] = false;
                }
            }
        }
        let mut best = (0, 0.0);
        go(
            costs,
            threshold,
            0,
            &mut vec![false; costs.cols()],
            0,
            0.0,
            &mut best,
        );
        best
    }

    fn check_consistent(m: &Matching, rows: usize, cols: usize) {
        let mut seen_r = vec![false; rows];
        let mut seen_c = vec![false; cols];
        for &(r, c) in &m.matches {
            assert!(!seen_r[r] && !seen_c[c]);
            seen_r[r] = true;
            seen_c[c] = true;
        }
        for &r in &m.unmatched_rows {
            assert!(!seen_r[r]);
            seen_r[r] = true;
        }
        for &c in &m.unmatched_cols {
            assert!(!seen_c[c]);
            seen_c[c] = true;
        }
        assert!(seen_r.iter().all(|&s| s) && seen_c.iter().all(|&s| s));
    }

    #[test]
    fn matches_brute_force_on_random_rectangular_matrices() {
        let mut rng = Rng(7);
        for case in 0..2000 {
            let rows = rng.below(6);
            let cols = rng.below(6);
            let gate_p = rng.unit() * 0.6;
            let costs = CostMatrix::from_fn(rows, cols, |_, _| {
                if rng.unit() < gate_p {
                    f64::INFINITY
                } else {
                    (rng.unit() * 1e6).round() / 1e6
                }
            });
            let threshold = 0.3 + rng.unit() * 0.7;
            let m = min_cost_matching(&costs, threshold);
            check_consistent(&m, rows, cols);
            let got_cost: f64 = m.matches.iter().map(|&(r, c)| costs.get(r, c)).sum();
            let (want_count, want_cost) = brute_force(&costs, threshold);
            assert_eq!(m.matches.len(), want_count, "case {case}: {costs:?} {m:?}");
            assert!(
                (got_cost - want_cost).abs() < 1e-6,
                "case {case}: {got_cost} vs {want_cost}"
            );
        }
    }

    #[test]
    fn hand_case_prefers_cheaper_total() {
        // Row 0 is cheapest at col 0 (0.1) but row 1 can only use col 0 (0.2): the matching
        // that keeps both rows is (0,1) + (1,0) = 0.5 + 0.2.
        let inf = f64::INFINITY;
        let costs = CostMatrix::from_fn(2, 3, |r, c| [[0.1, 0.5, 0.9], [0.2, inf, inf]][r][c]);
        let m = min_cost_matching(&costs, 0.95);
        assert_eq!(m.matches, vec![(0, 1), (1, 0)]);
        assert!(m.unmatched_rows.is_empty());
        assert_eq!(m.unmatched_cols, vec![2]);
    }

    #[test]
    fn above_threshold_is_unmatched() {
        let costs = CostMatrix::from_fn(2, 2, |r, c| [[0.1, 0.8], [0.8, 0.9]][r][c]);
        let m = min_cost_matching(&costs, 0.5);
        assert_eq!(m.matches, vec![(0, 0)]);
        assert_eq!(m.unmatched_rows, vec![1]);
        assert_eq!(m.unmatched_cols, vec![1]);
    }

    #[test]
    fn empty_sides() {
        let m = min_cost_matching(&CostMatrix::infeasible(0, 3), 1.0);
        assert_eq!(m.unmatched_cols, vec![0, 1, 2]);
        let m = min_cost_matching(&CostMatrix::infeasible(2, 0), 1.0);
        assert_eq!(m.unmatched_rows, vec![0, 1]);
    }
}
