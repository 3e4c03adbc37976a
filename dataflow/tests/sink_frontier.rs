//! The sink's epochs: the sink writes on a thread of its own, and an epoch may complete (so
//! the worker may commit source positions up to it) only once every write of it is stored.
//! The store is real (SQLite); another connection holds its write lock, so the sink's write
//! waits, and the epoch must wait with it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use horsestream_dataflow::operators::Outcome;
use horsestream_dataflow::operators::sink::StoreAndPublish;
use horsestream_dataflow::{Metrics, SinkWriter};
use horsestream_sinks::{ChunkErrorRecord, EventPublisher, Store};
use sqlx::Connection;
use timely::dataflow::operators::{Input, Probe};
use timely::dataflow::{InputHandle, ProbeHandle};

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn refused(offset: i64) -> Outcome {
    Outcome::Failed(ChunkErrorRecord {
        source: "test".into(),
        partition: 0,
        offset,
        stage: "decode".into(),
        reason: "a test record".into(),
    })
}

#[test]
fn an_epoch_completes_only_once_its_writes_are_stored() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("sink.db").display());
    // Timely runs the closure on this thread; it only has to be `Send + Sync` to be handed
    // over, so everything is made inside it.
    timely::execute_directly(move |worker| {
        let sink_rt = runtime();
        let store = sink_rt.block_on(Store::connect(&url)).unwrap();
        let reader_rt = runtime();
        let reader = reader_rt.block_on(Store::connect(&url)).unwrap();

        // Another connection takes the write lock and keeps it.
        let lock_rt = runtime();
        let mut lock = lock_rt
            .block_on(sqlx::SqliteConnection::connect(&url))
            .unwrap();
        lock_rt
            .block_on(sqlx::query("BEGIN IMMEDIATE").execute(&mut lock))
            .unwrap();

        let (events, _events_rx) = crossbeam_channel::unbounded();
        let writer = SinkWriter::new(
            sink_rt,
            store,
            EventPublisher::Channel(events),
            Arc::new(Metrics::default()),
        );
        let mut input = InputHandle::new();
        let probe = ProbeHandle::new();
        worker.dataflow::<u64, _, _>(|scope| {
            scope
                .input_from(&mut input)
                .container::<Vec<Outcome>>()
                .store_and_publish(writer)
                .probe_with(&probe);
        });
        input.send(refused(1));
        input.send(refused(2));
        input.advance_to(1);

        // While the lock is held the writes cannot be stored, so epoch 0 stays open.
        let until = Instant::now() + Duration::from_millis(500);
        while Instant::now() < until {
            worker.step_or_park(Some(Duration::from_millis(10)));
        }
        assert!(
            probe.less_than(&1),
            "epoch 0 completed while its writes were waiting for the store"
        );
        let stored = reader_rt.block_on(reader.chunk_errors()).unwrap();
        assert!(stored.is_empty(), "{stored:?}");

        // Released, the writes go through, and then the epoch completes.
        lock_rt
            .block_on(sqlx::query("COMMIT").execute(&mut lock))
            .unwrap();
        let until = Instant::now() + Duration::from_secs(60);
        while probe.less_than(&1) {
            assert!(Instant::now() < until, "epoch 0 never completed");
            worker.step_or_park(Some(Duration::from_millis(10)));
        }
        let stored = reader_rt.block_on(reader.chunk_errors()).unwrap();
        let offsets: Vec<i64> = stored.iter().map(|e| e.offset).collect();
        assert_eq!(offsets.len(), 2, "{stored:?}");
        assert!(offsets.contains(&1) && offsets.contains(&2), "{stored:?}");
    });
}
