//! Stream checkpoints on both stores: stored in the chunk's transaction, found as "the newest
//! before a chunk", the first one kept when a chunk is written again, the oldest pruned, and
//! none stored with a refused chunk.

use horsestream_proto::testing;
use horsestream_sinks::store::{CHECKPOINTS_KEPT, StreamCheckpoint};
use horsestream_sinks::{NewStream, Store};

fn unique(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("{prefix}-{}-{nanos}", std::process::id())
}

fn state(n: u64) -> StreamCheckpoint {
    StreamCheckpoint {
        tracks: format!("tracks after {n}").into_bytes(),
        horses: format!("horses after {n}").into_bytes(),
    }
}

async fn checkpoints_follow_their_chunks(store: &Store) {
    let id = unique("ckpt");
    store
        .create_stream(&NewStream {
            id: id.clone(),
            name: id.clone(),
            source_url: "file:///x.mp4".into(),
            source_kind: "file".into(),
            credentials_secret: None,
            calibration: None,
            zones: vec![],
            enabled: false,
        })
        .await
        .unwrap();
    let chunk = |seq: u64| {
        testing::chunk(
            &id,
            seq,
            1_700_000_000_000_000,
            seq as i64 * 9_000_000,
            10_000_000,
            &[1, 2],
        )
    };
    assert_eq!(store.checkpoint_before(&id, 5).await.unwrap(), None);

    let last = CHECKPOINTS_KEPT as u64 + 3;
    for seq in 0..=last {
        store
            .write_chunk_checkpointed(&chunk(seq), Some(&state(seq)))
            .await
            .unwrap();
    }
    // The newest strictly before the chunk asked about.
    assert_eq!(
        store.checkpoint_before(&id, 10).await.unwrap(),
        Some((9, state(9)))
    );
    assert_eq!(
        store.checkpoint_before(&id, last + 7).await.unwrap(),
        Some((last, state(last)))
    );
    // Only the newest CHECKPOINTS_KEPT + 1 are kept.
    let kept = store.checkpoint_sequences(&id).await.unwrap();
    assert_eq!(
        kept,
        (last - CHECKPOINTS_KEPT as u64..=last).collect::<Vec<_>>()
    );
    assert_eq!(store.checkpoint_before(&id, 2).await.unwrap(), None);

    // A chunk written again (a replay) keeps its first checkpoint and adds no rows.
    let before = store.frames(&id).await.unwrap();
    store
        .write_chunk_checkpointed(&chunk(last), Some(&state(999)))
        .await
        .unwrap();
    assert_eq!(
        store.checkpoint_before(&id, last + 1).await.unwrap(),
        Some((last, state(last)))
    );
    assert_eq!(store.frames(&id).await.unwrap(), before);

    // A refused chunk (an unregistered stream) stores no checkpoint either.
    let stranger = unique("unregistered");
    let c = testing::chunk(&stranger, 0, 1_700_000_000_000_000, 0, 10_000_000, &[1]);
    assert!(
        store
            .write_chunk_checkpointed(&c, Some(&state(0)))
            .await
            .is_err()
    );
    assert!(
        store
            .checkpoint_sequences(&stranger)
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn postgres() {
    let url = std::env::var("HORSESTREAM_DATABASE_URL")
        .expect("HORSESTREAM_DATABASE_URL is not set: eval \"$(scripts/services.sh env)\"");
    checkpoints_follow_their_chunks(&Store::connect(&url).await.unwrap()).await;
}

#[tokio::test]
async fn sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("store.db").display());
    checkpoints_follow_their_chunks(&Store::connect(&url).await.unwrap()).await;
}
