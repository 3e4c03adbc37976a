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

/// The receiving half; every worker holds a clone and takes what it gets.
#[derive(Debug, Clone)]
pub struct MemorySource {
    rx: Receiver<Record>,
}

/// A bus holding at most `capacity` records in flight.
pub fn memory_bus(capacity: usize) -> (MemoryPublisher, MemorySource) {
    let (tx, rx) = crossbeam_channel::bounded(capacity);
    (
        MemoryPublisher {
            tx,
            next_offset: Arc::new(AtomicI64::new(0)),
        },
        MemorySource { rx },
    )
}

impl ChunkSource for MemorySource {
    fn poll(&mut self, max: usize, timeout: Duration) -> Result<Poll, DataflowError> {
        let first = match self.rx.recv_timeout(timeout) {
            Ok(r) => r,
            Err(RecvTimeoutError::Timeout) => return Ok(Poll::Idle),
            Err(RecvTimeoutError::Disconnected) => return Ok(Poll::Exhausted),
        };
        let mut records = vec![first];
        while records.len() < max {
            match self.rx.try_recv() {
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
    fn an_empty_open_bus_is_idle() {
        let (_tx, mut rx) = memory_bus(1);
        assert!(matches!(
            rx.poll(1, Duration::from_millis(1)).unwrap(),
            Poll::Idle
        ));
    }
}
