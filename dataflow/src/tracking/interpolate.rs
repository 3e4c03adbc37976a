//! Track interpolation over short gaps: a confirmed track that the detector missed for a few
//! frames, then found again, gets a box in each missed frame, linearly interpolated between
//! its sightings before and after the gap. Such a box is flagged `interpolated`, has
//! confidence 0 and no appearance embedding.
//!
//! Only gaps whose both ends are in the frames given are filled. The tracker runs a chunk at a
//! time and a chunk starts with the last second of the previous one, so a gap that began in the
//! previous chunk's last second is filled in this chunk's copy of those frames; an older one is
//! not (the previous chunk has been emitted by then).

use std::collections::BTreeMap;

use horsestream_proto::{BoundingBox, Detection, FrameResult};

/// Fills the gaps of at most `max_gap` frames in every track of `frames` (consecutive frames
/// of one stream, in order); returns how many boxes it added. Each added box goes after the
/// frame's detected ones, so `embeddings` stays aligned with the detected boxes. Frames filled
/// before are left as they are.
pub fn fill_gaps(frames: &mut [FrameResult], max_gap: usize) -> usize {
    if max_gap == 0 {
        return 0;
    }
    // Newest sighting of each track: frame position, box.
    let mut last: BTreeMap<u64, (usize, BoundingBox)> = BTreeMap::new();
    let mut fills: Vec<(usize, Detection)> = Vec::new();
    for (k, frame) in frames.iter().enumerate() {
        for d in &frame.detections {
            let Some(id) = d.track_id else { continue };
            if d.interpolated {
                continue;
            }
            if let Some(&(j, before)) = last.get(&id) {
                let missed = k - j - 1;
                if (1..=max_gap).contains(&missed) {
                    for (m, gap_frame) in frames.iter().enumerate().take(k).skip(j + 1) {
                        if gap_frame.detections.iter().any(|g| g.track_id == Some(id)) {
                            continue; // filled already
                        }
                        let a = (m - j) as f32 / (k - j) as f32;
                        fills.push((
                            m,
                            Detection {
                                frame_index: gap_frame.index,
                                pts_us: gap_frame.pts_us,
                                class_id: d.class_id,
                                confidence: 0.0,
                                bbox: lerp(&before, &d.bbox, a),
                                track_id: Some(id),
                                keypoints: Vec::new(),
                                interpolated: true,
                                candidate: false,
                            },
                        ));
                    }
                }
            }
            last.insert(id, (k, d.bbox));
        }
    }
    let added = fills.len();
    for (m, d) in fills {
        frames[m].detections.push(d);
    }
    added
}

fn lerp(a: &BoundingBox, b: &BoundingBox, t: f32) -> BoundingBox {
    let mix = |x: f32, y: f32| x + (y - x) * t;
    BoundingBox {
        x: mix(a.x, b.x),
        y: mix(a.y, b.y),
        w: mix(a.w, b.w),
        h: mix(a.h, b.h),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn det(track: Option<u64>, x: f32) -> Detection {
        Detection {
            frame_index: 0,
            pts_us: 0,
            class_id: 17,
            confidence: 0.9,
            bbox: BoundingBox {
                x,
                y: 10.0,
                w: 40.0,
                h: 30.0,
            },
            track_id: track,
            keypoints: Vec::new(),
            interpolated: false,
            candidate: false,
        }
    }

    /// Frames 0.. whose detections are `at(frame)`.
    fn frames(n: usize, at: impl Fn(usize) -> Vec<Detection>) -> Vec<FrameResult> {
        (0..n)
            .map(|i| FrameResult {
                index: i as u32,
                pts_us: i as i64 * 100_000,
                capture_time_us: 1_000 + i as i64 * 100_000,
                detections: at(i)
                    .into_iter()
                    .map(|mut d| {
                        d.frame_index = i as u32;
                        d.pts_us = i as i64 * 100_000;
                        d
                    })
                    .collect(),
                embeddings: Vec::new(),
            })
            .collect()
    }

    fn interpolated(f: &FrameResult) -> Vec<(u64, f32)> {
        f.detections
            .iter()
            .filter(|d| d.interpolated)
            .map(|d| (d.track_id.unwrap(), d.bbox.x))
            .collect()
    }

    #[test]
    fn a_missed_frame_gets_the_box_halfway_between_its_neighbours() {
        // Track 1 at x = 0, 10, (missed), (missed), 40: the gap is filled at 20 and 30.
        let mut fs = frames(5, |i| match i {
            0 | 1 | 4 => vec![det(Some(1), i as f32 * 10.0)],
            _ => vec![],
        });
        assert_eq!(fill_gaps(&mut fs, 3), 2);
        assert_eq!(interpolated(&fs[2]), [(1, 20.0)]);
        assert_eq!(interpolated(&fs[3]), [(1, 30.0)]);
        let d = &fs[2].detections[0];
        assert_eq!((d.frame_index, d.pts_us, d.class_id), (2, 200_000, 17));
        assert_eq!(d.confidence, 0.0);
        assert_eq!((d.bbox.y, d.bbox.w, d.bbox.h), (10.0, 40.0, 30.0));
        assert!(
            fs[0]
                .detections
                .iter()
                .chain(&fs[4].detections)
                .all(|d| !d.interpolated)
        );
    }

    #[test]
    fn gaps_longer_than_the_limit_untracked_boxes_and_other_tracks_are_left_alone() {
        // Track 1 missed 3 frames (limit 2); track 2 missed 1; the untracked box never counts.
        let mut fs = frames(6, |i| {
            let mut v = vec![det(None, 99.0)];
            if i == 0 || i == 4 {
                v.push(det(Some(1), i as f32));
            }
            if i == 3 || i == 5 {
                v.push(det(Some(2), i as f32));
            }
            v
        });
        assert_eq!(fill_gaps(&mut fs, 2), 1);
        assert_eq!(interpolated(&fs[4]), [(2, 4.0)]);
        assert!(
            (0..6)
                .filter(|&i| i != 4)
                .all(|i| interpolated(&fs[i]).is_empty())
        );
        // Detected boxes keep their places (and so their embeddings' order).
        assert_eq!(fs[4].detections[0].track_id, None);
        assert_eq!(fs[4].detections[1].track_id, Some(1));
    }

    #[test]
    fn filling_twice_adds_nothing_more_and_a_limit_of_zero_turns_it_off() {
        let mut fs = frames(3, |i| {
            if i == 1 {
                vec![]
            } else {
                vec![det(Some(5), i as f32)]
            }
        });
        let mut off = fs.clone();
        assert_eq!(fill_gaps(&mut off, 0), 0);
        assert_eq!(off, fs);
        assert_eq!(fill_gaps(&mut fs, 10), 1);
        let once = fs.clone();
        assert_eq!(fill_gaps(&mut fs, 10), 0);
        assert_eq!(fs, once);
    }
}
