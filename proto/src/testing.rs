//! Builders and helpers for tests of the crates downstream (feature `testing`): never used
//! by a binary.

use crate::{BoundingBox, Detection, FrameResult, ProcessedChunk};

/// A processed chunk of `stream_id`: frames 100 ms apart from `first_pts_us` over `len_us`,
/// frame `i` holding `boxes[i]` detections. Detection `k` of frame `i` is the box
/// `(10 + 60k, 20 + i)` sized 50×40, confidence `0.5 + k/10` (at most 1), track `k + 1`.
/// Capture times are `stream_start_us + pts`; the frame size is unknown (0 × 0).
pub fn chunk(
    stream_id: &str,
    sequence: u64,
    stream_start_us: i64,
    first_pts_us: i64,
    len_us: i64,
    boxes: &[usize],
) -> ProcessedChunk {
    ProcessedChunk {
        stream_id: stream_id.into(),
        sequence,
        start_pts_us: first_pts_us,
        end_pts_us: first_pts_us + len_us,
        stream_start_time_us: stream_start_us,
        frame_width: 0,
        frame_height: 0,
        frames: boxes
            .iter()
            .enumerate()
            .map(|(i, &n)| {
                let pts_us = first_pts_us + i as i64 * 100_000;
                FrameResult {
                    index: i as u32,
                    pts_us,
                    capture_time_us: stream_start_us + pts_us,
                    detections: (0..n)
                        .map(|k| Detection {
                            frame_index: i as u32,
                            pts_us,
                            class_id: 17,
                            confidence: (0.5 + k as f32 / 10.0).min(1.0),
                            bbox: BoundingBox {
                                x: 10.0 + k as f32 * 60.0,
                                y: 20.0 + i as f32,
                                w: 50.0,
                                h: 40.0,
                            },
                            track_id: Some(k as u64 + 1),
                            keypoints: Vec::new(),
                            interpolated: false,
                            candidate: false,
                        })
                        .collect(),
                    embeddings: Vec::new(),
                }
            })
            .collect(),
    }
}

/// A loopback port free at the time of asking, and not given out before by this process:
/// the kernel may hand the port it just freed to the next `bind(0)`, and two of a test's
/// servers on one port do not start (CI saw a Kafka broker given one port for two listeners).
pub fn free_port() -> u16 {
    static GIVEN: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
    let mut given = GIVEN.lock().unwrap_or_else(|e| e.into_inner());
    loop {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("a free loopback port");
        if !given.contains(&port) {
            given.push(port);
            return port;
        }
    }
}
