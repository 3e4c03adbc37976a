//! What the store refuses before touching the database: detections no model should produce,
//! non-finite metrics, embeddings of the wrong size, unusable calibrations. Pure functions.

use horsestream_proto::{MAX_KEYPOINTS, ProcessedChunk};

use super::records::{Calibration, GaitPose, GaitRow, Zone};
use crate::SinkError;

/// Coordinates beyond this (in source pixels) are not a camera frame: the chunk carries no
/// frame size, so this bound stands in for "outside the frame" (16K video is 15360 wide).
pub const MAX_COORDINATE: f32 = 100_000.0;

/// What is wrong with the first bad detection of a chunk.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum DetectionProblem {
    #[error("frame {frame} detection {detection}: {field} is not finite")]
    NotFinite {
        frame: u32,
        detection: usize,
        field: &'static str,
    },
    #[error("frame {frame} detection {detection}: negative {field} {value}")]
    NegativeSize {
        frame: u32,
        detection: usize,
        field: &'static str,
        value: f32,
    },
    #[error("frame {frame} detection {detection}: {field} {value} is beyond ±{MAX_COORDINATE}")]
    OutOfRange {
        frame: u32,
        detection: usize,
        field: &'static str,
        value: f32,
    },
    #[error(
        "frame {frame} detection {detection}: box at ({x}, {y}) size {w}×{h} is outside the \
         {frame_width}×{frame_height} frame"
    )]
    OutsideFrame {
        frame: u32,
        detection: usize,
        x: f32,
        y: f32,
        w: f32,
        h: f32,
        frame_width: u32,
        frame_height: u32,
    },
    #[error("frame {frame} detection {detection}: confidence {value} outside 0..=1")]
    Confidence {
        frame: u32,
        detection: usize,
        value: f32,
    },
    #[error(
        "frame {frame} detection {detection}: keypoint {keypoint} of {count} is not a finite \
         point within ±{MAX_COORDINATE} (or more than {MAX_KEYPOINTS} keypoints)"
    )]
    Keypoint {
        frame: u32,
        detection: usize,
        keypoint: usize,
        count: usize,
    },
}

/// Checks every detection of a chunk; the first problem rejects the whole chunk.
pub fn validate_chunk(chunk: &ProcessedChunk) -> Result<(), DetectionProblem> {
    for f in &chunk.frames {
        for (i, d) in f.detections.iter().enumerate() {
            let b = &d.bbox;
            let fields = [("x", b.x), ("y", b.y), ("w", b.w), ("h", b.h)];
            for (field, value) in fields {
                if !value.is_finite() {
                    return Err(DetectionProblem::NotFinite {
                        frame: f.index,
                        detection: i,
                        field,
                    });
                }
            }
            for (field, value) in [("w", b.w), ("h", b.h)] {
                if value < 0.0 {
                    return Err(DetectionProblem::NegativeSize {
                        frame: f.index,
                        detection: i,
                        field,
                        value,
                    });
                }
            }
            for (field, value) in [
                ("x", b.x),
                ("y", b.y),
                ("x + w", b.x + b.w),
                ("y + h", b.y + b.h),
            ] {
                if value.abs() > MAX_COORDINATE {
                    return Err(DetectionProblem::OutOfRange {
                        frame: f.index,
                        detection: i,
                        field,
                        value,
                    });
                }
            }
            // With the frame size known, a box must overlap the frame and be at most twice
            // its size (detectors may reach a little past the edges, never beyond that).
            let (fw, fh) = (chunk.frame_width as f32, chunk.frame_height as f32);
            if fw > 0.0
                && fh > 0.0
                && (b.x + b.w <= 0.0
                    || b.y + b.h <= 0.0
                    || b.x >= fw
                    || b.y >= fh
                    || b.w > 2.0 * fw
                    || b.h > 2.0 * fh)
            {
                return Err(DetectionProblem::OutsideFrame {
                    frame: f.index,
                    detection: i,
                    x: b.x,
                    y: b.y,
                    w: b.w,
                    h: b.h,
                    frame_width: chunk.frame_width,
                    frame_height: chunk.frame_height,
                });
            }
            if !(0.0..=1.0).contains(&d.confidence) {
                return Err(DetectionProblem::Confidence {
                    frame: f.index,
                    detection: i,
                    value: d.confidence,
                });
            }
            let point = |v: f32| v.is_finite() && v.abs() <= MAX_COORDINATE;
            let bad = d
                .keypoints
                .iter()
                .position(|k| !point(k.x) || !point(k.y) || !k.score.is_finite())
                .or((d.keypoints.len() > MAX_KEYPOINTS).then_some(MAX_KEYPOINTS));
            if let Some(keypoint) = bad {
                return Err(DetectionProblem::Keypoint {
                    frame: f.index,
                    detection: i,
                    keypoint,
                    count: d.keypoints.len(),
                });
            }
        }
    }
    Ok(())
}

fn invalid(what: &'static str, reason: impl Into<String>) -> SinkError {
    SinkError::Invalid {
        what,
        reason: reason.into(),
    }
}

/// An embedding must have the gallery's size `dim`, finite entries and a non-zero norm.
pub fn validate_embedding(e: &[f32], dim: usize) -> Result<(), SinkError> {
    if e.len() != dim {
        return Err(invalid(
            "embedding",
            format!(
                "{} values, the gallery holds {dim}-value embeddings",
                e.len()
            ),
        ));
    }
    if e.iter().any(|v| !v.is_finite()) {
        return Err(invalid("embedding", "a value is not finite"));
    }
    if e.iter().all(|v| *v == 0.0) {
        return Err(invalid("embedding", "all zeros (no direction)"));
    }
    Ok(())
}

/// Gait metrics must be finite numbers.
pub fn validate_gait(row: &GaitRow) -> Result<(), SinkError> {
    let values = [
        ("speed", Some(row.speed)),
        ("acceleration", Some(row.acceleration)),
        ("distance", Some(row.distance)),
        ("stride_hz", row.stride_hz),
    ];
    let pose = row.pose.as_ref().map(GaitPose::values).unwrap_or_default();
    let values = values
        .into_iter()
        .map(|(f, v)| (f.to_owned(), v))
        .chain(pose);
    for (field, v) in values {
        if v.is_some_and(|v| !v.is_finite()) {
            return Err(invalid(
                "gait metrics",
                format!("{field} of track {} is not finite", row.track_id),
            ));
        }
    }
    Ok(())
}

/// A calibration must map pixels to metres; zones need a name and a finite polygon.
pub fn validate_geometry(
    calibration: Option<&Calibration>,
    zones: &[Zone],
) -> Result<(), SinkError> {
    if let Some(c) = calibration {
        c.check().map_err(|why| invalid("calibration", why))?;
    }
    for z in zones {
        if z.name.is_empty() {
            return Err(invalid("zone", "a zone has no name"));
        }
        if z.polygon.len() < 3 || z.polygon.iter().flatten().any(|v| !v.is_finite()) {
            return Err(invalid(
                "zone",
                format!("{:?} needs at least 3 finite points", z.name),
            ));
        }
    }
    Ok(())
}

/// Cosine distance `1 − cos(a, b)`, as pgvector's `<=>` computes it.
pub fn cosine_distance(a: &[f32], b: &[f32]) -> f64 {
    let (mut dot, mut na, mut nb) = (0.0f64, 0.0f64, 0.0f64);
    for (x, y) in a.iter().zip(b) {
        let (x, y) = (f64::from(*x), f64::from(*y));
        dot += x * y;
        na += x * x;
        nb += y * y;
    }
    if na == 0.0 || nb == 0.0 {
        return f64::NAN;
    }
    1.0 - dot / (na.sqrt() * nb.sqrt())
}

#[cfg(test)]
mod tests {
    use horsestream_proto::{BoundingBox, Detection, FrameResult, Keypoint};

    use super::*;
    use crate::store::records::EMBEDDING_DIM;

    fn chunk_with(b: BoundingBox, confidence: f32) -> ProcessedChunk {
        let ok = Detection {
            frame_index: 0,
            pts_us: 0,
            class_id: 17,
            confidence: 0.9,
            bbox: BoundingBox {
                x: 1.0,
                y: 2.0,
                w: 3.0,
                h: 4.0,
            },
            track_id: None,
            keypoints: Vec::new(),
            interpolated: false,
            candidate: false,
        };
        let bad = Detection {
            bbox: b,
            confidence,
            ..ok.clone()
        };
        ProcessedChunk {
            stream_id: "s".into(),
            sequence: 0,
            start_pts_us: 0,
            end_pts_us: 1,
            stream_start_time_us: 0,
            frame_width: 0,
            frame_height: 0,
            frames: vec![
                FrameResult {
                    index: 0,
                    pts_us: 0,
                    capture_time_us: 0,
                    detections: vec![ok.clone()],
                    embeddings: Vec::new(),
                },
                FrameResult {
                    index: 1,
                    pts_us: 0,
                    capture_time_us: 0,
                    detections: vec![ok, bad],
                    embeddings: Vec::new(),
                },
            ],
        }
    }

    fn bb(x: f32, y: f32, w: f32, h: f32) -> BoundingBox {
        BoundingBox { x, y, w, h }
    }

    #[test]
    fn plausible_boxes_pass() {
        assert_eq!(
            validate_chunk(&chunk_with(bb(1910.0, -5.0, 30.0, 0.0), 1.0)),
            Ok(())
        );
        assert_eq!(
            validate_chunk(&chunk_with(bb(0.0, 0.0, 0.0, 0.0), 0.0)),
            Ok(())
        );
    }

    #[test]
    fn nan_and_infinite_coordinates_are_rejected_with_their_place() {
        let e = validate_chunk(&chunk_with(bb(f32::NAN, 0.0, 1.0, 1.0), 0.5)).unwrap_err();
        assert_eq!(
            e,
            DetectionProblem::NotFinite {
                frame: 1,
                detection: 1,
                field: "x"
            }
        );
        let e = validate_chunk(&chunk_with(bb(0.0, 0.0, 1.0, f32::INFINITY), 0.5)).unwrap_err();
        assert!(
            matches!(e, DetectionProblem::NotFinite { field: "h", .. }),
            "{e}"
        );
        let e = validate_chunk(&chunk_with(bb(0.0, f32::NEG_INFINITY, 1.0, 1.0), 0.5)).unwrap_err();
        assert!(
            matches!(e, DetectionProblem::NotFinite { field: "y", .. }),
            "{e}"
        );
    }

    #[test]
    fn with_the_frame_size_known_boxes_must_be_in_the_frame() {
        let sized = |b| {
            let mut c = chunk_with(b, 0.5);
            (c.frame_width, c.frame_height) = (768, 512);
            validate_chunk(&c)
        };
        // Reaching past an edge is what detectors do; a box touching the frame is kept.
        assert_eq!(sized(bb(-20.0, 400.0, 100.0, 150.0)), Ok(()));
        assert_eq!(sized(bb(760.0, -10.0, 40.0, 30.0)), Ok(()));
        for b in [
            bb(5000.0, 10.0, 50.0, 50.0),
            bb(10.0, 512.0, 50.0, 50.0),
            bb(-60.0, 10.0, 50.0, 50.0),
            bb(0.0, 0.0, 1600.0, 100.0),
        ] {
            assert!(
                matches!(
                    sized(b),
                    Err(DetectionProblem::OutsideFrame {
                        frame: 1,
                        detection: 1,
                        frame_width: 768,
                        ..
                    })
                ),
                "{b:?}: {:?}",
                sized(b)
            );
        }
    }

    #[test]
    fn negative_sizes_are_rejected() {
        let e = validate_chunk(&chunk_with(bb(0.0, 0.0, -1.0, 1.0), 0.5)).unwrap_err();
        assert!(
            matches!(e, DetectionProblem::NegativeSize { field: "w", .. }),
            "{e}"
        );
        let e = validate_chunk(&chunk_with(bb(0.0, 0.0, 1.0, -0.5), 0.5)).unwrap_err();
        assert!(
            matches!(e, DetectionProblem::NegativeSize { field: "h", .. }),
            "{e}"
        );
    }

    #[test]
    fn absurd_coordinates_are_rejected() {
        for b in [
            bb(100_001.0, 0.0, 1.0, 1.0),
            bb(0.0, -200_000.0, 1.0, 1.0),
            bb(99_999.0, 0.0, 10.0, 1.0),
            bb(0.0, 0.0, 1.0, 1e9),
        ] {
            let e = validate_chunk(&chunk_with(b, 0.5)).unwrap_err();
            assert!(
                matches!(e, DetectionProblem::OutOfRange { .. }),
                "{b:?}: {e}"
            );
        }
    }

    #[test]
    fn confidence_outside_unit_interval_is_rejected() {
        for c in [1.5, -0.1, f32::NAN] {
            let e = validate_chunk(&chunk_with(bb(0.0, 0.0, 1.0, 1.0), c)).unwrap_err();
            assert!(matches!(e, DetectionProblem::Confidence { .. }), "{c}: {e}");
        }
    }

    #[test]
    fn keypoints_must_be_finite_points_in_range_and_few() {
        let with = |keypoints: Vec<Keypoint>| {
            let mut c = chunk_with(bb(0.0, 0.0, 1.0, 1.0), 0.5);
            c.frames[1].detections[1].keypoints = keypoints;
            validate_chunk(&c)
        };
        let kp = |x: f32, y: f32, score: f32| Keypoint { x, y, score };
        assert_eq!(with(vec![kp(5.0, -3.0, 1.2); 17]), Ok(()));
        for (keypoints, at) in [
            (vec![kp(1.0, 1.0, 0.5), kp(f32::NAN, 1.0, 0.5)], 1),
            (vec![kp(1.0, f32::INFINITY, 0.5)], 0),
            (vec![kp(1.0, 1.0, f32::NAN)], 0),
            (vec![kp(200_000.0, 1.0, 0.5)], 0),
            (vec![kp(1.0, 1.0, 0.5); MAX_KEYPOINTS + 1], MAX_KEYPOINTS),
        ] {
            assert!(
                matches!(
                    with(keypoints),
                    Err(DetectionProblem::Keypoint { frame: 1, detection: 1, keypoint, .. }) if keypoint == at
                ),
                "keypoint {at}"
            );
        }
    }

    #[test]
    fn embeddings_must_match_the_model() {
        assert!(validate_embedding(&vec![0.1; EMBEDDING_DIM], EMBEDDING_DIM).is_ok());
        assert!(validate_embedding(&vec![0.1; 512], EMBEDDING_DIM).is_err());
        assert!(validate_embedding(&vec![0.1; 512], 512).is_ok());
        assert!(validate_embedding(&vec![0.0; EMBEDDING_DIM], EMBEDDING_DIM).is_err());
        let mut e = vec![0.1; EMBEDDING_DIM];
        e[7] = f32::NAN;
        assert!(validate_embedding(&e, EMBEDDING_DIM).is_err());
    }

    #[test]
    fn cosine_distance_matches_pgvector() {
        assert!((cosine_distance(&[1.0, 0.0], &[2.0, 0.0])).abs() < 1e-12);
        assert!((cosine_distance(&[1.0, 0.0], &[0.0, 3.0]) - 1.0).abs() < 1e-12);
        assert!((cosine_distance(&[1.0, 0.0], &[-1.0, 0.0]) - 2.0).abs() < 1e-12);
    }

    #[test]
    fn unusable_geometry_is_refused() {
        let square = Zone {
            name: "arena".into(),
            polygon: vec![[0.0, 0.0], [1.0, 0.0], [1.0, 1.0]],
        };
        assert!(
            validate_geometry(
                Some(&Calibration::PixelsPerMetre(40.0)),
                std::slice::from_ref(&square)
            )
            .is_ok()
        );
        assert!(validate_geometry(Some(&Calibration::PixelsPerMetre(0.0)), &[]).is_err());
        let mut h = [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]];
        assert!(validate_geometry(Some(&Calibration::Homography(h)), &[]).is_ok());
        h[1][2] = f64::NAN;
        assert!(validate_geometry(Some(&Calibration::Homography(h)), &[]).is_err());
        // A singular homography maps the whole image onto a line.
        let flat = [[1.0, 2.0, 0.0], [2.0, 4.0, 0.0], [0.0, 0.0, 1.0]];
        assert!(validate_geometry(Some(&Calibration::Homography(flat)), &[]).is_err());
        let line = Zone {
            polygon: vec![[0.0, 0.0], [1.0, 0.0]],
            ..square
        };
        assert!(validate_geometry(None, &[line]).is_err());
    }
}
