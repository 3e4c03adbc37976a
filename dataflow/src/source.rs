//! Where a worker's records come from: the chunks topic in Kafka, or the in-process bus of
//! `horsestream demo`. A source hands out raw records and commits positions it is told are
//! durably processed; it never decides that by itself.

pub mod kafka;
pub mod memory;

use std::collections::BTreeMap;
use std::time::Duration;

use crate::DataflowError;

/// One message as read from the bus, not yet decoded.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Record {
    /// The topic, or `memory` for the in-process bus.
    pub source: String,
    pub partition: i32,
    pub offset: i64,
    /// The stream id the producer keyed the message with.
    pub key: Vec<u8>,
    pub payload: Vec<u8>,
}

/// What a poll found.
#[derive(Debug)]
pub enum Poll {
    Records(Vec<Record>),
    /// Nothing now; more may come.
    Idle,
    /// Nothing now and nothing ever again (end of a bounded run).
    Exhausted,
}

/// Next offset to read, per (topic, partition).
pub type Positions = BTreeMap<(String, i32), i64>;

pub trait ChunkSource {
    /// Up to `max` records, waiting at most `timeout` for the first.
    fn poll(&mut self, max: usize, timeout: Duration) -> Result<Poll, DataflowError>;

    /// Records that everything before `positions` is processed and durably stored.
    fn commit(&mut self, positions: &Positions) -> Result<(), DataflowError>;

    /// `(topic, partition, records not read yet)` of each partition this source reads, as
    /// far as it knows; a source without partitions has none.
    fn lag(&mut self) -> Vec<(String, i32, i64)> {
        Vec::new()
    }
}
