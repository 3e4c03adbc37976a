//! The embedded store against a real SQLite file: rows land once, replays add nothing.

use horsestream_proto::{BoundingBox, Detection, FrameResult, ProcessedChunk};
use horsestream_sinks::{ChunkErrorRecord, NewStream, Store};

fn chunk(sequence: u64, boxes_per_frame: &[usize]) -> ProcessedChunk {
    ProcessedChunk {
        stream_id: "paddock".into(),
        sequence,
        start_pts_us: sequence as i64 * 9_000_000,
        end_pts_us: sequence as i64 * 9_000_000 + 10_000_000,
        stream_start_time_us: 1_700_000_000_000_000,
        frame_width: 0,
        frame_height: 0,
        frames: boxes_per_frame
            .iter()
            .enumerate()
            .map(|(i, &n)| {
                let pts_us = sequence as i64 * 9_000_000 + i as i64 * 100_000;
                FrameResult {
                    index: i as u32,
                    pts_us,
                    capture_time_us: 1_700_000_000_000_000 + pts_us,
                    detections: (0..n)
                        .map(|k| Detection {
                            frame_index: i as u32,
                            pts_us,
                            class_id: 17,
                            confidence: 0.5,
                            bbox: BoundingBox {
                                x: k as f32 * 10.0,
                                y: 1.0,
                                w: 5.0,
                                h: 5.0,
                            },
                            track_id: Some(k as u64),
                        })
                        .collect(),
                    embeddings: Vec::new(),
                }
            })
            .collect(),
    }
}

async fn store() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("store.db").display());
    let store = Store::connect(&url).await.unwrap();
    store
        .create_stream(&NewStream {
            id: "paddock".into(),
            name: "Paddock".into(),
            source_url: "file:///paddock.mp4".into(),
            source_kind: "file".into(),
            credentials_secret: None,
            calibration: None,
            zones: Vec::new(),
            enabled: true,
        })
        .await
        .unwrap();
    (dir, store)
}

#[tokio::test]
async fn replayed_chunk_adds_no_rows() {
    let (_dir, store) = store().await;
    let c = chunk(0, &[3, 0, 1]);
    store.write_chunk(&c).await.unwrap();
    store.write_chunk(&c).await.unwrap();
    let s = store.stats().await.unwrap();
    assert_eq!((s.chunks, s.frames, s.detections), (1, 3, 4));
    assert_eq!(s.frames_with_detections, 2);
    assert_eq!(s.max_detections_per_frame, 3);
}

#[tokio::test]
async fn frames_lists_every_frame_in_order_with_its_boxes() {
    let (_dir, store) = store().await;
    store.write_chunk(&chunk(1, &[1, 2])).await.unwrap();
    store.write_chunk(&chunk(0, &[0, 1])).await.unwrap();
    let frames = store.frames("paddock").await.unwrap();
    let shape: Vec<(String, i32, usize)> = frames
        .iter()
        .map(|f| (f.chunk_id.clone(), f.frame_index, f.boxes.len()))
        .collect();
    assert_eq!(
        shape,
        vec![
            ("paddock:0".into(), 0, 0),
            ("paddock:0".into(), 1, 1),
            ("paddock:1".into(), 0, 1),
            ("paddock:1".into(), 1, 2),
        ]
    );
    assert_eq!(frames[0].pts_us, None);
    assert_eq!(frames[3].pts_us, Some(9_100_000));
    assert_eq!(frames[3].boxes[1]["x"], 10.0);
    assert_eq!(frames[3].boxes[1]["confidence"], 0.5);
}

#[tokio::test]
async fn an_error_recorded_twice_is_kept_once() {
    let (_dir, store) = store().await;
    let e = ChunkErrorRecord {
        source: "horsestream.chunks".into(),
        partition: 2,
        offset: 41,
        stage: "decode".into(),
        reason: "not a valid protobuf message".into(),
    };
    store.record_error(&e).await.unwrap();
    store.record_error(&e).await.unwrap();
    assert_eq!(store.chunk_errors().await.unwrap(), vec![e]);
}

#[tokio::test]
async fn an_unknown_url_scheme_is_refused() {
    let err = Store::connect("mysql://x").await.unwrap_err();
    assert!(!err.is_retriable());
    assert!(err.to_string().contains("mysql://x"), "{err}");
}
