//! The in-process bus: a bounded channel from ingest to the dataflow workers, so a full
//! queue slows ingest down instead of growing memory.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};

use super::{ChunkSource, Poll, Positions, Record};
use crate::DataflowError;

/// The name records from the in-process bus carry as their source.
pub const MEMORY_SOURCE: &str = "memory";

/// The sending half, used by ingest. Cloneable; the bus ends when every clone is dropped.
#[derive(Debug, Clone)]
pub struct MemoryPublisher {
    tx: Sender<Record>,
    next_offset: Arc<AtomicI64>,
}

impl MemoryPublisher {
    /// Blocks while the bus is full. Returns the record's offset, or `None` if every
    /// reader is gone.
    pub fn publish(&self, key: &str, payload: Vec<u8>) -> Option<i64> {
        let offset = self.next_offset.fetch_add(1, Ordering::SeqCst);
        let record = Record {
            source: MEMORY_SOURCE.to_owned(),
            partition: 0,
            offset,
            key: key.as_bytes().to_vec(),
            payload,
        };
        self.tx.send(record).ok().map(|()| offset)
    }
}

/// The receiving half. One worker reads it ([`MemorySource::for_worker`]): a stream's chunks
/// must reach the worker that owns it in order, and the exchange keeps the order of what one
/// worker sends to another, not of what two workers send. When every worker took what it got,
/// a chunk could overtake the one before it; its predecessor then looked already tracked and
/// lost its track ids (the demo's 120 s sample: 3 of 14 chunks).
#[derive(Debug, Clone)]
pub struct MemorySource {
    /// `None` for a worker that does not read the bus.
    rx: Option<Receiver<Record>>,
}

impl MemorySource {
    /// What worker `index` reads: the bus for worker 0, nothing for the others (their source
    /// is exhausted at once; they still take their share of streams through the exchange).
    pub fn for_worker(&self, index: usize) -> MemorySource {
        MemorySource {
            rx: self.rx.clone().filter(|_| index == 0),
        }
    }
}

/// A bus holding at most `capacity` records in flight.
pub fn memory_bus(capacity: usize) -> (MemoryPublisher, MemorySource) {
    let (tx, rx) = crossbeam_channel::bounded(capacity);
    (
        MemoryPublisher {
            tx,
            next_offset: Arc::new(AtomicI64::new(0)),
        },
        MemorySource { rx: Some(rx) },
    )
}

impl ChunkSource for MemorySource {
    fn poll(&mut self, max: usize, timeout: Duration) -> Result<Poll, DataflowError> {
        let Some(rx) = &self.rx else {
            return Ok(Poll::Exhausted);
        };
        let first = match rx.recv_timeout(timeout) {
            Ok(r) => r,
            Err(RecvTimeoutError::Timeout) => return Ok(Poll::Idle),
            Err(RecvTimeoutError::Disconnected) => return Ok(Poll::Exhausted),
        };
        let mut records = vec![first];
        while records.len() < max {
            match rx.try_recv() {
                Ok(r) => records.push(r),
                Err(_) => break,
            }
        }
        Ok(Poll::Records(records))
    }

    /// Nothing outlives the process, so there is nothing to commit.
    fn commit(&mut self, _positions: &Positions) -> Result<(), DataflowError> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_arrive_in_order_then_the_bus_is_exhausted() {
        let (tx, mut rx) = memory_bus(4);
        assert_eq!(tx.publish("a", vec![1]), Some(0));
        assert_eq!(tx.publish("b", vec![2]), Some(1));
        drop(tx);
        let Poll::Records(rs) = rx.poll(10, Duration::from_millis(10)).unwrap() else {
            panic!("expected records");
        };
        let got: Vec<(i64, Vec<u8>)> = rs.into_iter().map(|r| (r.offset, r.key)).collect();
        assert_eq!(got, vec![(0, b"a".to_vec()), (1, b"b".to_vec())]);
        assert!(matches!(
            rx.poll(10, Duration::from_millis(10)).unwrap(),
            Poll::Exhausted
        ));
    }

    #[test]
    fn only_the_first_worker_reads_the_bus() {
        let (tx, bus) = memory_bus(4);
        tx.publish("a", vec![1]);
        let mut others = bus.for_worker(1);
        assert!(matches!(
            others.poll(10, Duration::from_millis(1)).unwrap(),
            Poll::Exhausted
        ));
        let mut first = bus.for_worker(0);
        let Poll::Records(rs) = first.poll(10, Duration::from_millis(10)).unwrap() else {
            panic!("expected the record");
        };
        assert_eq!(rs[0].key, b"a");
    }

    #[test]
    fn an_empty_open_bus_is_idle() {
        let (_tx, mut rx) = memory_bus(1);
        assert!(matches!(
            rx.poll(1, Duration::from_millis(1)).unwrap(),
            Poll::Idle
        ));
    }
}
