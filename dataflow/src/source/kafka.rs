//! The chunks topic as a source: each worker is assigned its partitions by
//! [`crate::shard::partitions_for_worker`] (no consumer-group rebalancing, so the assignment
//! is fixed and known), resumes from the group's committed offsets, and commits only what
//! the dataflow says is stored.

use std::collections::BTreeMap;
use std::time::Duration;

use horsestream_sinks::kafka::KafkaConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};
use tracing::{debug, info};

use super::{ChunkSource, Poll, Positions, Record};
use crate::DataflowError;
use crate::shard::partitions_for_worker;

const META_TIMEOUT: Duration = Duration::from_secs(10);

/// How far past a replay's end to read (longer than any chunk); the dataflow then keeps
/// exactly the chunks that meet the range.
const REPLAY_MARGIN_MS: i64 = 60_000;

#[derive(Debug, Clone)]
pub struct KafkaSourceConfig {
    pub kafka: KafkaConfig,
    pub group_id: String,
    /// Stop once every assigned partition is read up to the end offset seen at start
    /// (replays, tests); otherwise run until stopped.
    pub stop_at_end: bool,
    /// Read a time range of the topic again instead of resuming the group.
    pub replay: Option<Replay>,
    /// Bytes of chunks librdkafka may fetch ahead of the dataflow, per worker: what a worker
    /// holds of a backlog that waits in Kafka (a slow sink, a burst). A chunk larger than this
    /// is still fetched, alone.
    pub prefetch_bytes: usize,
}

/// The default [`KafkaSourceConfig::prefetch_bytes`]: a few chunks of 768×512 JPEG frames.
pub const DEFAULT_PREFETCH_BYTES: usize = 16 << 20;

/// A historical range of the chunks topic, read through the same dataflow as live data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Replay {
    /// Broker timestamps (ms since the Unix epoch) bounding the records read; the dataflow
    /// then keeps the chunks whose own time range meets the requested one.
    pub from_ms: i64,
    pub to_ms: i64,
    /// Only records keyed by this stream id.
    pub stream: Option<String>,
}

pub struct KafkaSource {
    consumer: BaseConsumer,
    topic: String,
    /// Next offset to read per assigned partition.
    next: BTreeMap<i32, i64>,
    /// End offsets to stop at, for a bounded run.
    end: Option<BTreeMap<i32, i64>>,
    replay: Option<Replay>,
}

impl std::fmt::Debug for KafkaSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaSource")
            .field("topic", &self.topic)
            .field("next", &self.next)
            .field("end", &self.end)
            .finish_non_exhaustive()
    }
}

impl KafkaSource {
    pub fn new(cfg: &KafkaSourceConfig, index: usize, peers: usize) -> Result<Self, DataflowError> {
        let topic = cfg.kafka.chunks_topic.clone();
        let prefetch = cfg.prefetch_bytes.max(1 << 20);
        let consumer: BaseConsumer = cfg
            .kafka
            .client_config()
            .set("group.id", &cfg.group_id)
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("auto.offset.reset", "earliest")
            // What is fetched ahead is bounded by `prefetch_bytes`, not by the largest message:
            // librdkafka's defaults queue up to 64 MiB and fetch up to `message.max.bytes` on
            // top. The broker still returns a first message larger than the fetch size, and
            // the response may be as large as the largest chunk.
            .set("message.max.bytes", (1 << 20).to_string())
            .set("fetch.max.bytes", prefetch.to_string())
            .set("max.partition.fetch.bytes", prefetch.to_string())
            .set("queued.max.messages.kbytes", (prefetch >> 10).to_string())
            .set(
                "receive.message.max.bytes",
                (cfg.kafka.max_message_bytes.max(prefetch) + (1 << 20)).to_string(),
            )
            .set("fetch.wait.max.ms", "50")
            .create()?;
        let partitions = {
            let metadata = consumer.fetch_metadata(Some(&topic), META_TIMEOUT)?;
            metadata
                .topics()
                .iter()
                .find(|t| t.name() == topic && t.error().is_none())
                .map(|t| t.partitions().len() as i32)
                .unwrap_or(0)
        };
        if partitions == 0 {
            return Err(DataflowError::NoSuchTopic(topic));
        }
        let mine = partitions_for_worker(partitions, index, peers);

        // Resume from the group's committed offsets; a partition never committed starts at
        // the beginning. A replay starts at its first timestamp instead. The lists are dropped
        // before the consumer can be (see ENVIRONMENT.md).
        let mut next = BTreeMap::new();
        if let Some(r) = &cfg.replay {
            next = offsets_at(&consumer, &topic, &mine, r.from_ms)?;
        } else {
            let mut wanted = TopicPartitionList::new();
            for p in &mine {
                wanted.add_partition(&topic, *p);
            }
            let committed = consumer.committed_offsets(wanted, META_TIMEOUT)?;
            for e in committed.elements() {
                let start = match e.offset() {
                    Offset::Offset(o) => o,
                    _ => {
                        let (low, _) =
                            consumer.fetch_watermarks(&topic, e.partition(), META_TIMEOUT)?;
                        low
                    }
                };
                next.insert(e.partition(), start);
            }
        }
        let end = if let Some(r) = &cfg.replay {
            // A record's broker timestamp is its chunk's capture end: a chunk that starts
            // before `to` ends at most one chunk length later.
            Some(offsets_at(
                &consumer,
                &topic,
                &mine,
                r.to_ms + REPLAY_MARGIN_MS,
            )?)
        } else if cfg.stop_at_end {
            let mut end = BTreeMap::new();
            for p in &mine {
                let (_, high) = consumer.fetch_watermarks(&topic, *p, META_TIMEOUT)?;
                end.insert(*p, high);
            }
            Some(end)
        } else {
            None
        };
        {
            let mut assignment = TopicPartitionList::new();
            for (p, o) in &next {
                assignment.add_partition_offset(&topic, *p, Offset::Offset(*o))?;
            }
            consumer.assign(&assignment)?;
        }
        info!(worker = index, partitions = ?mine, start = ?next, end = ?end, "kafka source assigned");
        Ok(KafkaSource {
            consumer,
            topic,
            next,
            end,
            replay: cfg.replay.clone(),
        })
    }

    fn at_end(&self) -> bool {
        self.end.as_ref().is_some_and(|end| {
            end.iter()
                .all(|(p, e)| self.next.get(p).is_some_and(|n| n >= e))
        })
    }
}

impl ChunkSource for KafkaSource {
    fn poll(&mut self, max: usize, timeout: Duration) -> Result<Poll, DataflowError> {
        if self.at_end() {
            return Ok(Poll::Exhausted);
        }
        let mut records = Vec::new();
        let mut wait = timeout;
        while records.len() < max {
            let Some(msg) = self.consumer.poll(wait) else {
                break;
            };
            let msg = msg?;
            wait = Duration::ZERO;
            self.next.insert(msg.partition(), msg.offset() + 1);
            let past_end = self
                .end
                .as_ref()
                .and_then(|e| e.get(&msg.partition()))
                .is_some_and(|e| msg.offset() >= *e);
            let other_stream = self
                .replay
                .as_ref()
                .and_then(|r| r.stream.as_deref())
                .is_some_and(|s| msg.key() != Some(s.as_bytes()));
            if past_end || other_stream {
                if self.at_end() {
                    break;
                }
                continue;
            }
            records.push(Record {
                source: self.topic.clone(),
                partition: msg.partition(),
                offset: msg.offset(),
                key: msg.key().unwrap_or_default().to_vec(),
                payload: msg.payload().unwrap_or_default().to_vec(),
            });
            if self.at_end() {
                break;
            }
        }
        Ok(if records.is_empty() {
            Poll::Idle
        } else {
            Poll::Records(records)
        })
    }

    fn commit(&mut self, positions: &Positions) -> Result<(), DataflowError> {
        if self.replay.is_some() {
            // A replay re-reads history; the group's live position is not its to move.
            return Ok(());
        }
        let mut tpl = TopicPartitionList::new();
        for ((topic, partition), offset) in positions {
            tpl.add_partition_offset(topic, *partition, Offset::Offset(*offset))?;
        }
        if tpl.count() > 0 {
            self.consumer.commit(&tpl, CommitMode::Sync)?;
            debug!(?positions, "committed");
        }
        Ok(())
    }

    /// High watermark minus the next offset to read, per assigned partition (a broker round
    /// trip each; a partition the broker does not answer for is left out).
    fn lag(&mut self) -> Vec<(String, i32, i64)> {
        self.next
            .iter()
            .filter_map(|(p, next)| {
                match self.consumer.fetch_watermarks(&self.topic, *p, LAG_TIMEOUT) {
                    Ok((_, high)) => Some((self.topic.clone(), *p, (high - next).max(0))),
                    Err(e) => {
                        debug!(partition = p, error = %e, "no watermark for the lag metric");
                        None
                    }
                }
            })
            .collect()
    }
}

/// How long the lag metric waits for a partition's watermarks.
const LAG_TIMEOUT: Duration = Duration::from_secs(1);

/// Per partition, the first offset whose broker timestamp is at or after `ms` (the end of the
/// partition when there is none).
fn offsets_at(
    consumer: &BaseConsumer,
    topic: &str,
    partitions: &[i32],
    ms: i64,
) -> Result<BTreeMap<i32, i64>, DataflowError> {
    let mut query = TopicPartitionList::new();
    for p in partitions {
        query.add_partition_offset(topic, *p, Offset::Offset(ms.max(0)))?;
    }
    let found = consumer.offsets_for_times(query, META_TIMEOUT)?;
    let mut out = BTreeMap::new();
    for e in found.elements() {
        let offset = match e.offset() {
            Offset::Offset(o) => o,
            _ => {
                consumer
                    .fetch_watermarks(topic, e.partition(), META_TIMEOUT)?
                    .1
            }
        };
        out.insert(e.partition(), offset);
    }
    Ok(out)
}
