//! The 8-state constant-velocity Kalman filter of DeepSORT (Wojke et al. 2017): state
//! (cx, cy, a, h, vcx, vcy, va, vh), measurement (cx, cy, a, h) with a = w/h, one step per
//! frame (dt = 1). Process and measurement noise are proportional to the box height, so the
//! filter behaves the same for a horse near the camera and one far away.
//!
//! Plain `[[f64; N]; N]` arrays: the matrices are tiny and fixed, and the whole filter is a
//! few hundred multiply-adds, so a linear-algebra crate would add a dependency and no speed.

/// Chi-square 0.95 quantile for 4 degrees of freedom: the gate on the squared Mahalanobis
/// distance between a track's projected state and a full (cx, cy, a, h) measurement.
pub const CHI2_095_4DOF: f64 = 9.4877;

const STD_WEIGHT_POSITION: f64 = 1.0 / 20.0;
const STD_WEIGHT_VELOCITY: f64 = 1.0 / 160.0;

/// Mean and covariance of one track's state.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct KalmanState {
    /// (cx, cy, a, h, vcx, vcy, va, vh).
    pub mean: [f64; 8],
    /// 8 × 8, row-major.
    pub covariance: [[f64; 8]; 8],
}

/// The state projected into measurement space, with the Cholesky factor of its covariance
/// kept so that gating many detections against one track factors once.
#[derive(Debug, Clone, PartialEq)]
pub struct Projection {
    /// Projected (cx, cy, a, h).
    pub mean: [f64; 4],
    /// Innovation covariance S = H P Hᵀ + R.
    pub covariance: [[f64; 4]; 4],
    /// Lower-triangular L with L Lᵀ = S; `None` when S is not positive definite (a degenerate
    /// box), in which case every distance is infinite.
    chol: Option<[[f64; 4]; 4]>,
}

impl Projection {
    /// Squared Mahalanobis distance of a measurement (cx, cy, a, h) from this projection.
    pub fn mahalanobis_sq(&self, z: &[f64; 4]) -> f64 {
        let Some(l) = &self.chol else {
            return f64::INFINITY;
        };
        let d: [f64; 4] = std::array::from_fn(|i| z[i] - self.mean[i]);
        forward_substitute(l, &d).iter().map(|v| v * v).sum()
    }
}

impl KalmanState {
    /// A new track from its first measurement: zero velocity, uncertainty scaled by height.
    pub fn initiate(z: &[f64; 4]) -> Self {
        let h = z[3];
        let p = 2.0 * STD_WEIGHT_POSITION * h;
        let v = 10.0 * STD_WEIGHT_VELOCITY * h;
        let std = [p, p, 1e-2, p, v, v, 1e-5, v];
        let mut covariance = [[0.0; 8]; 8];
        for (i, s) in std.iter().enumerate() {
            covariance[i][i] = s * s;
        }
        let mut mean = [0.0; 8];
        mean[..4].copy_from_slice(z);
        Self { mean, covariance }
    }

    /// One frame ahead: x ← F x, P ← F P Fᵀ + Q, with F adding each velocity to its position.
    pub fn predict(&mut self) {
        let h = self.mean[3];
        let p = STD_WEIGHT_POSITION * h;
        let v = STD_WEIGHT_VELOCITY * h;
        let q = [p, p, 1e-2, p, v, v, 1e-5, v];
        for i in 0..4 {
            self.mean[i] += self.mean[i + 4];
        }
        // With P = [[A, B], [Bᵀ, C]] in 4 × 4 blocks and F = [[I, I], [0, I]]:
        // F P Fᵀ = [[A + B + Bᵀ + C, B + C], [Bᵀ + C, C]].
        let old = self.covariance;
        let c = &mut self.covariance;
        for i in 0..4 {
            for j in 0..4 {
                c[i][j] = old[i][j] + old[i][j + 4] + old[i + 4][j] + old[i + 4][j + 4];
                c[i][j + 4] = old[i][j + 4] + old[i + 4][j + 4];
                c[i + 4][j] = old[i + 4][j] + old[i + 4][j + 4];
            }
        }
        for (i, s) in q.iter().enumerate() {
            c[i][i] += s * s;
        }
    }

    /// The state in measurement space: H x and H P Hᵀ + R (H selects the first 4 states).
    pub fn project(&self) -> Projection {
        let h = self.mean[3];
        let p = STD_WEIGHT_POSITION * h;
        let r = [p, p, 1e-1, p];
        let mut covariance: [[f64; 4]; 4] =
            std::array::from_fn(|i| std::array::from_fn(|j| self.covariance[i][j]));
        for (i, ri) in r.iter().enumerate() {
            covariance[i][i] += ri * ri;
        }
        let mut mean = [0.0; 4];
        mean.copy_from_slice(&self.mean[..4]);
        Projection {
            mean,
            covariance,
            chol: cholesky(&covariance),
        }
    }

    /// Correct with a measurement: K = P Hᵀ S⁻¹, x ← x + K (z − H x), P ← P − K S Kᵀ.
    /// A degenerate innovation covariance leaves the state unchanged.
    pub fn update(&mut self, z: &[f64; 4]) {
        let proj = self.project();
        let Some(l) = &proj.chol else { return };
        // Row r of K = P Hᵀ S⁻¹ solves S x = (column r of H P), S being symmetric; H P is the
        // first 4 rows of P.
        let top: [[f64; 8]; 4] = std::array::from_fn(|i| self.covariance[i]);
        let k: [[f64; 4]; 8] =
            std::array::from_fn(|r| cholesky_solve(l, &std::array::from_fn(|i| top[i][r])));
        let innovation: [f64; 4] = std::array::from_fn(|i| z[i] - proj.mean[i]);
        // x ← x + K ν;  P ← P − K S Kᵀ = P − K (H P).
        for ((m, kr), row) in self.mean.iter_mut().zip(&k).zip(self.covariance.iter_mut()) {
            *m += kr.iter().zip(&innovation).map(|(a, b)| a * b).sum::<f64>();
            for (c, v) in row.iter_mut().enumerate() {
                *v -= (0..4).map(|i| kr[i] * top[i][c]).sum::<f64>();
            }
        }
    }

    /// Squared Mahalanobis distance of a measurement from this state (see [`Projection`] to
    /// gate many measurements against one state).
    pub fn gating_distance(&self, z: &[f64; 4]) -> f64 {
        self.project().mahalanobis_sq(z)
    }
}

/// Lower-triangular Cholesky factor, or `None` when not positive definite.
fn cholesky(a: &[[f64; 4]; 4]) -> Option<[[f64; 4]; 4]> {
    let mut l = [[0.0; 4]; 4];
    for i in 0..4 {
        for j in 0..=i {
            let s: f64 = (0..j).map(|k| l[i][k] * l[j][k]).sum();
            if i == j {
                let d = a[i][i] - s;
                if !(d.is_finite() && d > 0.0) {
                    return None;
                }
                l[i][j] = d.sqrt();
            } else {
                l[i][j] = (a[i][j] - s) / l[j][j];
            }
        }
    }
    Some(l)
}

/// Solve L y = b for lower-triangular L.
fn forward_substitute(l: &[[f64; 4]; 4], b: &[f64; 4]) -> [f64; 4] {
    let mut y = [0.0; 4];
    for i in 0..4 {
        let s: f64 = (0..i).map(|k| l[i][k] * y[k]).sum();
        y[i] = (b[i] - s) / l[i][i];
    }
    y
}

/// Solve (L Lᵀ) x = b.
fn cholesky_solve(l: &[[f64; 4]; 4], b: &[f64; 4]) -> [f64; 4] {
    let y = forward_substitute(l, b);
    let mut x = [0.0; 4];
    for i in (0..4).rev() {
        let s: f64 = (i + 1..4).map(|k| l[k][i] * x[k]).sum();
        x[i] = (y[i] - s) / l[i][i];
    }
    x
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() <= 1e-9 * (1.0 + b.abs())
    }

    #[test]
    fn initiate_predict_update_hand_case() {
        // z = (cx 100, cy 50, a 0.5, h 100).
        let mut kf = KalmanState::initiate(&[100.0, 50.0, 0.5, 100.0]);
        // Position std 2·h/20 = 10 → var 100; velocity std 10·h/160 = 6.25 → var 39.0625;
        // aspect var 1e-4, aspect-velocity var 1e-10.
        assert!(close(kf.covariance[0][0], 100.0));
        assert!(close(kf.covariance[3][3], 100.0));
        assert!(close(kf.covariance[2][2], 1e-4));
        assert!(close(kf.covariance[4][4], 39.0625));
        assert!(close(kf.covariance[7][7], 39.0625));
        assert!(close(kf.covariance[6][6], 1e-10));

        kf.predict();
        // Zero velocity: mean unchanged. Position var 100 + 39.0625 + (100/20)² = 164.0625,
        // position-velocity cov 39.0625, velocity var 39.0625 + (100/160)² = 39.453125.
        assert_eq!(kf.mean, [100.0, 50.0, 0.5, 100.0, 0.0, 0.0, 0.0, 0.0]);
        assert!(close(kf.covariance[0][0], 164.0625));
        assert!(close(kf.covariance[0][4], 39.0625));
        assert!(close(kf.covariance[4][0], 39.0625));
        assert!(close(kf.covariance[4][4], 39.453125));
        // Aspect var 1e-4 + 1e-10 + 1e-4.
        assert!(close(kf.covariance[2][2], 2e-4 + 1e-10));

        // S_xx = 164.0625 + (100/20)² = 189.0625. A measurement 10 px right of the prediction:
        // d² = 10² / 189.0625 = 0.528925619...
        let z = [110.0, 50.0, 0.5, 100.0];
        assert!(close(kf.gating_distance(&z), 100.0 / 189.0625));
        assert!(kf.gating_distance(&z) < CHI2_095_4DOF);

        kf.update(&z);
        // Gain on cx: 164.0625 / 189.0625 = 0.867768595...; on vcx: 39.0625 / 189.0625.
        // cx = 100 + 10·0.8677... = 108.677685950..., vcx = 2.066115702...
        assert!(close(kf.mean[0], 100.0 + 10.0 * 164.0625 / 189.0625));
        assert!(close(kf.mean[4], 10.0 * 39.0625 / 189.0625));
        assert!(close(kf.mean[1], 50.0));
        assert!(close(kf.mean[3], 100.0));
        // P_xx = 164.0625 − 164.0625² / 189.0625 = 164.0625 · 25 / 189.0625 = 21.694214876...
        assert!(close(kf.covariance[0][0], 164.0625 * 25.0 / 189.0625));
        // P_xv = 39.0625 − 164.0625·39.0625 / 189.0625 = 39.0625 · 25 / 189.0625.
        assert!(close(kf.covariance[0][4], 39.0625 * 25.0 / 189.0625));
        assert!(close(kf.covariance[4][0], kf.covariance[0][4]));
        // P_vv = 39.453125 − 39.0625² / 189.0625.
        assert!(close(
            kf.covariance[4][4],
            39.453125 - 39.0625 * 39.0625 / 189.0625
        ));
    }

    #[test]
    fn far_measurement_is_gated() {
        let mut kf = KalmanState::initiate(&[100.0, 50.0, 0.5, 100.0]);
        kf.predict();
        // 50 px away: 2500 / 189.0625 ≈ 13.2 > 9.4877.
        assert!(kf.gating_distance(&[150.0, 50.0, 0.5, 100.0]) > CHI2_095_4DOF);
    }

    #[test]
    fn converges_to_constant_velocity() {
        let mut kf = KalmanState::initiate(&[0.0, 0.0, 1.0, 50.0]);
        for t in 1..60 {
            kf.predict();
            kf.update(&[3.0 * f64::from(t), -2.0 * f64::from(t), 1.0, 50.0]);
        }
        assert!((kf.mean[4] - 3.0).abs() < 0.05, "{:?}", kf.mean);
        assert!((kf.mean[5] + 2.0).abs() < 0.05, "{:?}", kf.mean);
        kf.predict();
        assert!((kf.mean[0] - 180.0).abs() < 0.5, "{:?}", kf.mean);
    }

    #[test]
    fn degenerate_height_gates_everything() {
        let kf = KalmanState::initiate(&[0.0, 0.0, 1.0, 0.0]);
        assert_eq!(kf.gating_distance(&[0.0, 0.0, 1.0, 0.0]), f64::INFINITY);
    }
}
