//! DeepSORT tracking: Kalman filter, gating, matching cascade, Hungarian assignment, and the
//! multi-object-tracking metrics (MOTA, IDF1) that measure it. Pure logic, no timely.
