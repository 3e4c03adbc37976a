//! The embedded store against a real SQLite file: rows land once, replays add nothing.

use horsestream_proto::{ProcessedChunk, testing};
use horsestream_sinks::{ChunkErrorRecord, NewStream, Store};

/// Chunk `sequence` of the `paddock` stream: 10 s long, starting every 9 s (1 s overlap).
fn chunk(sequence: u64, boxes_per_frame: &[usize]) -> ProcessedChunk {
    let first_pts = sequence as i64 * 9_000_000;
    testing::chunk(
        "paddock",
        sequence,
        1_700_000_000_000_000,
        first_pts,
        10_000_000,
        boxes_per_frame,
    )
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
    // In detection order: the builder's detection k sits at x = 10 + 60k, confidence 0.5 + k/10.
    assert_eq!(frames[3].boxes[0]["x"], 10.0);
    assert_eq!(frames[3].boxes[1]["x"], 70.0);
    assert_eq!(frames[3].boxes[0]["confidence"], 0.5);
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

/// Two processes on one SQLite file, as two dataflow processes sharing the embedded store: a
/// write waits for the other process's instead of failing with "database is locked". (A
/// deferred transaction that reads before it writes cannot wait: SQLite refuses its upgrade
/// at once when another connection wrote since its read, so writes begin `IMMEDIATE`.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_write_one_file_concurrently() {
    let (dir, first) = store().await;
    let url = format!("sqlite://{}", dir.path().join("store.db").display());
    let second = Store::connect(&url).await.unwrap();
    const CHUNKS: u64 = 120;
    let writers: Vec<_> = [first.clone(), second]
        .into_iter()
        .enumerate()
        .map(|(w, s)| {
            tokio::spawn(async move {
                for sequence in (w as u64..CHUNKS).step_by(2) {
                    s.write_chunk(&chunk(sequence, &[2, 1, 3])).await?;
                }
                Ok::<_, horsestream_sinks::SinkError>(())
            })
        })
        .collect();
    for w in writers {
        w.await.unwrap().expect("every write lands");
    }
    let s = first.stats().await.unwrap();
    assert_eq!((s.chunks, s.detections), (CHUNKS as i64, CHUNKS as i64 * 6));
}
