//! Kafka topics of horsestream: configuration, topic creation, and the producer that ingest
//! uses for chunks and the dataflow uses for live events.

use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::types::RDKafkaErrorCode;

use crate::SinkError;

/// Where the topics are and how they are shaped.
#[derive(Debug, Clone)]
pub struct KafkaConfig {
    /// Comma-separated `host:port` list.
    pub brokers: String,
    pub chunks_topic: String,
    pub events_topic: String,
    /// Partitions of a topic created by [`ensure_topics`].
    pub partitions: i32,
    /// Largest message produced or fetched; chunks of full-size frames are several MB.
    pub max_message_bytes: usize,
}

impl KafkaConfig {
    pub fn new(brokers: impl Into<String>) -> Self {
        KafkaConfig {
            brokers: brokers.into(),
            chunks_topic: "horsestream.chunks".into(),
            events_topic: "horsestream.events".into(),
            partitions: 4,
            max_message_bytes: 64 << 20,
        }
    }

    /// Settings shared by every client of these topics.
    pub fn client_config(&self) -> ClientConfig {
        let mut c = ClientConfig::new();
        c.set("bootstrap.servers", &self.brokers)
            .set("message.max.bytes", self.max_message_bytes.to_string())
            .set("socket.timeout.ms", "30000");
        c
    }

    /// An idempotent producer: acks from all replicas, ordered retries, delivery reports
    /// awaited by the caller, and a bounded local queue so a slow broker slows the producer
    /// down instead of growing its memory.
    pub fn producer(&self) -> Result<FutureProducer, SinkError> {
        Ok(self
            .client_config()
            .set("enable.idempotence", "true")
            .set("acks", "all")
            .set("compression.type", "lz4")
            .set("linger.ms", "5")
            .set("queue.buffering.max.kbytes", "262144")
            .set("queue.buffering.max.messages", "10000")
            .set("message.timeout.ms", "120000")
            .create()?)
    }
}

/// Creates the chunks and events topics if they do not exist yet.
pub async fn ensure_topics(cfg: &KafkaConfig) -> Result<(), SinkError> {
    let admin: AdminClient<DefaultClientContext> = cfg.client_config().create()?;
    let max = cfg.max_message_bytes.to_string();
    let topics = [
        NewTopic::new(
            &cfg.chunks_topic,
            cfg.partitions,
            TopicReplication::Fixed(1),
        )
        .set("max.message.bytes", &max)
        // A chunk's timestamp is its capture end; for a long file ingested faster than real
        // time that lies ahead of the broker's clock, which Kafka refuses past 1 h by default.
        .set("message.timestamp.after.max.ms", "9223372036854775807"),
        NewTopic::new(
            &cfg.events_topic,
            cfg.partitions,
            TopicReplication::Fixed(1),
        ),
    ];
    let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
    for result in admin.create_topics(&topics, &opts).await? {
        match result {
            Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((topic, code)) => {
                return Err(SinkError::Config(format!(
                    "cannot create topic {topic}: {code}"
                )));
            }
        }
    }
    Ok(())
}

/// Sends keyed records to one topic and waits for the broker's acknowledgement.
#[derive(Clone)]
pub struct TopicProducer {
    producer: FutureProducer,
    topic: String,
}

impl std::fmt::Debug for TopicProducer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TopicProducer")
            .field("topic", &self.topic)
            .finish_non_exhaustive()
    }
}

impl TopicProducer {
    pub fn new(cfg: &KafkaConfig, topic: &str) -> Result<Self, SinkError> {
        Ok(TopicProducer {
            producer: cfg.producer()?,
            topic: topic.to_owned(),
        })
    }

    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// Produces one record; returns its partition and offset once the broker has it.
    pub async fn send(&self, key: &str, payload: &[u8]) -> Result<(i32, i64), SinkError> {
        self.send_record(FutureRecord::to(&self.topic).key(key).payload(payload))
            .await
    }

    /// Like [`send`](Self::send), with the record's timestamp set (ms since the Unix epoch):
    /// chunks carry their capture end time, so a replay can seek the topic by time.
    pub async fn send_at(
        &self,
        key: &str,
        payload: &[u8],
        timestamp_ms: i64,
    ) -> Result<(i32, i64), SinkError> {
        self.send_record(
            FutureRecord::to(&self.topic)
                .key(key)
                .payload(payload)
                .timestamp(timestamp_ms),
        )
        .await
    }

    async fn send_record(
        &self,
        record: FutureRecord<'_, str, [u8]>,
    ) -> Result<(i32, i64), SinkError> {
        match self.producer.send(record, Duration::from_secs(60)).await {
            Ok(d) => Ok((d.partition, d.offset)),
            Err((e, _)) => Err(SinkError::Kafka(e)),
        }
    }

    /// Waits until everything queued is delivered.
    pub fn flush(&self) -> Result<(), SinkError> {
        Ok(self.producer.flush(Duration::from_secs(60))?)
    }
}
