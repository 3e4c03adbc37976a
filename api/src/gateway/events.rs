//! The live-events feed: every gateway replica reads ALL partitions of the events topic (its
//! own consumer group id, nothing committed), starting at the end of each partition, and emits
//! each decoded [`Event`] to the room of its stream and channel.
//!
//! Partitions are assigned explicitly at their high watermark rather than by a group
//! subscription with `auto.offset.reset=latest`: the replica then knows exactly when it is
//! ready (every event published after that point is delivered), there is no group join delay,
//! and replicas never split partitions between them. Partitions added later are picked up by
//! a periodic metadata refresh and read from their beginning.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use horsestream_proto::Event;
use horsestream_sinks::kafka::KafkaConfig;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};
use socketioxide::SocketIo;
use tokio::time::Instant;

use crate::gateway::channels::outgoing;
use crate::{AppState, Error};

const META_TIMEOUT: Duration = Duration::from_secs(10);

/// Where the live events come from.
#[derive(Debug, Clone)]
pub struct EventsConfig {
    /// Brokers and `events_topic` are used.
    pub kafka: KafkaConfig,
    /// The consumer group id is this prefix plus a random suffix, unique per replica.
    pub group_prefix: String,
    /// How often the topic's partitions are checked for new ones.
    pub metadata_refresh: Duration,
}

impl EventsConfig {
    pub fn new(kafka: KafkaConfig) -> Self {
        EventsConfig {
            kafka,
            group_prefix: "horsestream-gateway".into(),
            metadata_refresh: Duration::from_secs(30),
        }
    }
}

/// A consumer of the events topic, created before serving so configuration errors surface.
pub struct EventsConsumer {
    consumer: Arc<StreamConsumer>,
    topic: String,
    group: String,
    metadata_refresh: Duration,
}

impl std::fmt::Debug for EventsConsumer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventsConsumer")
            .field("topic", &self.topic)
            .field("group", &self.group)
            .finish_non_exhaustive()
    }
}

impl EventsConsumer {
    pub fn new(cfg: &EventsConfig) -> Result<Self, Error> {
        let group = format!("{}-{}", cfg.group_prefix, uuid::Uuid::new_v4().simple());
        let max = cfg.kafka.max_message_bytes.to_string();
        let consumer: StreamConsumer = cfg
            .kafka
            .client_config()
            .set("group.id", &group)
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("enable.partition.eof", "false")
            .set("fetch.max.bytes", &max)
            .set("max.partition.fetch.bytes", &max)
            // Live events are small and latency matters more than batching.
            .set("fetch.wait.max.ms", "10")
            .create()?;
        Ok(EventsConsumer {
            consumer: Arc::new(consumer),
            topic: cfg.kafka.events_topic.clone(),
            group,
            metadata_refresh: cfg.metadata_refresh,
        })
    }

    /// Assigns the partitions not assigned yet: at their high watermark on the first
    /// assignment, from their beginning when they appear later. Returns the new partitions.
    fn assign_new(&self, assigned: &BTreeSet<i32>) -> Result<Vec<i32>, Error> {
        let c = &self.consumer;
        let md = c.fetch_metadata(Some(&self.topic), META_TIMEOUT)?;
        let topic = md
            .topics()
            .iter()
            .find(|t| t.name() == self.topic)
            .ok_or_else(|| Error::Topic {
                topic: self.topic.clone(),
                why: "not in metadata".into(),
            })?;
        if let Some(e) = topic.error() {
            return Err(Error::Topic {
                topic: self.topic.clone(),
                why: rdkafka::types::RDKafkaErrorCode::from(e).to_string(),
            });
        }
        let new: Vec<i32> = topic
            .partitions()
            .iter()
            .map(|p| p.id())
            .filter(|p| !assigned.contains(p))
            .collect();
        drop(md);
        if new.is_empty() {
            return Ok(new);
        }
        let mut tpl = TopicPartitionList::new();
        for &p in &new {
            let offset = if assigned.is_empty() {
                let (_, high) = c.fetch_watermarks(&self.topic, p, META_TIMEOUT)?;
                Offset::Offset(high)
            } else {
                Offset::Beginning
            };
            tpl.add_partition_offset(&self.topic, p, offset)?;
        }
        c.incremental_assign(&tpl)?;
        drop(tpl);
        Ok(new)
    }
}

/// Runs until `shutdown` resolves: keeps the assignment current and emits every event.
pub async fn run_events(
    io: SocketIo,
    state: AppState,
    consumer: EventsConsumer,
    shutdown: impl Future<Output = ()>,
) {
    let consumer = Arc::new(consumer);
    let status = state.events();
    let mut assigned = BTreeSet::new();
    let mut next_refresh = Instant::now();
    let mut last_error: Option<String> = None;
    tokio::pin!(shutdown);
    tracing::info!(topic = %consumer.topic, group = %consumer.group, "live events consumer started");
    loop {
        if Instant::now() >= next_refresh {
            let (c, have) = (consumer.clone(), assigned.clone());
            let result = tokio::task::spawn_blocking(move || c.assign_new(&have)).await;
            match result {
                Ok(Ok(new)) => {
                    if !new.is_empty() {
                        tracing::info!(topic = %consumer.topic, partitions = ?new, "assigned");
                        assigned.extend(new);
                        status.ready.store(true, Ordering::Release);
                    }
                    last_error = None;
                }
                Ok(Err(e)) => {
                    let msg = e.to_string();
                    if last_error.as_deref() != Some(&msg) {
                        tracing::warn!(topic = %consumer.topic, error = %msg, "cannot assign events topic yet");
                    }
                    last_error = Some(msg);
                }
                Err(e) => tracing::error!(error = %e, "events assignment task failed"),
            }
            next_refresh = Instant::now()
                + if assigned.is_empty() {
                    Duration::from_secs(1)
                } else {
                    consumer.metadata_refresh
                };
        }
        tokio::select! {
            () = &mut shutdown => break,
            () = tokio::time::sleep_until(next_refresh) => {}
            msg = consumer.consumer.recv() => {
                let decoded = match msg {
                    Ok(m) => {
                        status.received.fetch_add(1, Ordering::Relaxed);
                        let decoded = Event::decode(m.payload().unwrap_or_default());
                        if let Err(e) = &decoded {
                            status.undecodable.fetch_add(1, Ordering::Relaxed);
                            tracing::warn!(partition = m.partition(), offset = m.offset(), error = %e, "undecodable event skipped");
                        }
                        decoded.ok()
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "events consumer error");
                        if matches!(e, KafkaError::MessageConsumption(_)) {
                            tokio::time::sleep(Duration::from_millis(100)).await;
                        }
                        None
                    }
                };
                if let Some(event) = decoded {
                    emit(&io, &state, &event).await;
                }
            }
        }
    }
    status.ready.store(false, Ordering::Release);
    // Closing a consumer talks to the brokers; keep that off the runtime.
    let _ = tokio::task::spawn_blocking(move || drop(consumer)).await;
    tracing::info!("live events consumer stopped");
}

/// Emits one event to the room of its stream and channel.
pub async fn emit(io: &SocketIo, state: &AppState, event: &Event) {
    let out = outgoing(event);
    match io.to(out.room()).emit(out.name, &out.payload).await {
        Ok(()) => {
            state.events().emitted.fetch_add(1, Ordering::Relaxed);
            let now_us = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_micros() as i64);
            let lag = (now_us - event.emitted_at_us).max(0) as f64 / 1e6;
            state.metrics().emitted(out.name, lag);
        }
        Err(e) => {
            tracing::warn!(room = %out.room(), event = out.name, error = %e, "emit failed for some sockets")
        }
    }
}
