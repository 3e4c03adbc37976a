//! DeepSORT tracking: Kalman filter, gating, matching cascade, Hungarian assignment, and the
//! multi-object-tracking metrics (MOTA, IDF1) that measure it. Pure logic, no timely.
//!
//! `tracker` is the entry point ([`Tracker::update`] once per frame of one stream); the rest
//! are its parts, each usable and tested alone. See `tracking/CONTEXT.md` for the file map.

pub mod assignment;
pub mod gallery;
pub mod geometry;
pub mod interpolate;
pub mod kalman;
pub mod metrics;
pub mod tracker;

pub use metrics::{MotAccumulator, MotSummary};
pub use tracker::{DetectionIn, Track, TrackOut, TrackState, Tracker, TrackerConfig};
