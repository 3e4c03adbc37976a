//! Kafka topics of horsestream: configuration (with the operator's TLS/SASL client settings),
//! topic creation, and the producer that ingest uses for chunks and the dataflow uses for live
//! events.

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
    /// librdkafka settings of the operator (TLS, SASL, …), set on every client.
    pub client_options: ClientOptions,
}

/// librdkafka properties given by the operator (`security.protocol`, `ssl.ca.location`,
/// `sasl.username`, …) and set on every client horsestream creates. Properties horsestream
/// decides itself (brokers, group, commits, idempotence, message size) are refused. `Debug`
/// shows secret values as `***`; nothing here logs them.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct ClientOptions(Vec<(String, String)>);

impl ClientOptions {
    /// Properties horsestream sets itself, with the flag to use instead (if any).
    pub const RESERVED: [(&str, &str); 9] = [
        ("bootstrap.servers", "--brokers"),
        ("metadata.broker.list", "--brokers"),
        ("group.id", "--group-id"),
        ("enable.auto.commit", ""),
        ("enable.auto.offset.store", ""),
        ("enable.idempotence", ""),
        ("acks", ""),
        ("enable.partition.eof", ""),
        ("message.max.bytes", ""),
    ];

    /// Sets `key` (replacing an earlier value of it). Keys are librdkafka's dotted names.
    pub fn set(&mut self, key: &str, value: &str) -> Result<(), SinkError> {
        let key = key.trim();
        if key.is_empty()
            || !key
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'_')
        {
            return Err(SinkError::Config(format!(
                "Kafka option {key:?}: expected a librdkafka property name such as \
                 security.protocol"
            )));
        }
        if let Some((_, flag)) = Self::RESERVED.iter().find(|(k, _)| *k == key) {
            let instead = if flag.is_empty() {
                String::new()
            } else {
                format!(" (use {flag})")
            };
            return Err(SinkError::Config(format!(
                "Kafka option {key} is set by horsestream itself{instead}"
            )));
        }
        self.0.retain(|(k, _)| k != key);
        self.0.push((key.to_owned(), value.to_owned()));
        Ok(())
    }

    /// Parses and sets one `key=value` (the value may contain `=`).
    pub fn set_pair(&mut self, pair: &str) -> Result<(), SinkError> {
        let (k, v) = pair.split_once('=').ok_or_else(|| {
            SinkError::Config(format!(
                "Kafka option {:?}: expected key=value",
                pair.split(['=', ':']).next().unwrap_or_default()
            ))
        })?;
        self.set(k, v)
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.iter().find(|(k, _)| *k == key).map(|(_, v)| v)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether the value of `key` is a secret (passwords, client secrets, inline keys, JAAS).
    pub fn is_secret(key: &str) -> bool {
        [
            "password",
            "secret",
            "key.pem",
            "jaas",
            "oauthbearer.config",
            "token",
        ]
        .iter()
        .any(|s| key.contains(s))
    }
}

impl std::fmt::Debug for ClientOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_map()
            .entries(
                self.iter()
                    .map(|(k, v)| (k, if Self::is_secret(k) { "***" } else { v })),
            )
            .finish()
    }
}

impl KafkaConfig {
    pub fn new(brokers: impl Into<String>) -> Self {
        KafkaConfig {
            brokers: brokers.into(),
            chunks_topic: "horsestream.chunks".into(),
            events_topic: "horsestream.events".into(),
            partitions: 4,
            max_message_bytes: 64 << 20,
            client_options: ClientOptions::default(),
        }
    }

    /// Settings shared by every client of these topics: the operator's options, then
    /// horsestream's own.
    pub fn client_config(&self) -> ClientConfig {
        let mut c = ClientConfig::new();
        for (k, v) in self.client_options.iter() {
            c.set(k, v);
        }
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

#[cfg(test)]
mod tests {
    use rdkafka::producer::BaseProducer;

    use super::*;

    fn options(pairs: &[&str]) -> Result<ClientOptions, SinkError> {
        let mut o = ClientOptions::default();
        for p in pairs {
            o.set_pair(p)?;
        }
        Ok(o)
    }

    #[test]
    fn pairs_are_parsed_and_the_last_value_wins() {
        let o = options(&[
            "security.protocol=SASL_SSL",
            "sasl.jaas.config=a=b=c",
            "security.protocol=SSL",
        ])
        .unwrap();
        assert_eq!(o.get("security.protocol"), Some("SSL"));
        assert_eq!(o.get("sasl.jaas.config"), Some("a=b=c"));
        assert_eq!(o.iter().count(), 2);
    }

    #[test]
    fn malformed_and_reserved_options_are_refused_without_their_value() {
        for (pair, says) in [
            ("security.protocol", "expected key=value"),
            ("=x", "expected a librdkafka property name"),
            (
                "Security Protocol=SSL",
                "expected a librdkafka property name",
            ),
            ("bootstrap.servers=evil:9092", "use --brokers"),
            ("enable.auto.commit=true", "set by horsestream itself"),
            ("group.id=x", "use --group-id"),
        ] {
            let e = options(&[pair]).unwrap_err().to_string();
            assert!(e.contains(says), "{pair}: {e}");
        }
        let e = options(&["sasl.password:hunter2-secret"])
            .unwrap_err()
            .to_string();
        assert!(!e.contains("hunter2"), "{e}");
    }

    #[test]
    fn secrets_are_redacted_in_debug_output() {
        let mut k = KafkaConfig::new("b:9093");
        k.client_options = options(&[
            "sasl.username=horsestream",
            "sasl.password=hunter2-secret",
            "ssl.key.password=key-secret-42",
            "sasl.oauthbearer.client.secret=oauth-secret-7",
        ])
        .unwrap();
        let shown = format!("{k:?}");
        for secret in ["hunter2-secret", "key-secret-42", "oauth-secret-7"] {
            assert!(!shown.contains(secret), "{shown}");
        }
        assert!(
            shown.contains("horsestream") && shown.contains("***"),
            "{shown}"
        );
        assert!(!format!("{:?}", k.client_config()).contains("hunter2"));
    }

    /// The real librdkafka takes the settings: it is built with TLS (a `security.protocol`
    /// of SSL or SASL_SSL is accepted and the CA file is loaded when the client is created),
    /// SASL PLAIN and SCRAM are available, and a CA file that does not exist is refused.
    #[test]
    fn librdkafka_accepts_tls_and_sasl_settings() {
        let dir = tempfile::tempdir().unwrap();
        let ca = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
        let ca_path = dir.path().join("ca.pem");
        std::fs::write(&ca_path, ca.cert.pem()).unwrap();
        let ca_path = ca_path.display().to_string();
        for mechanism in ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] {
            let mut k = KafkaConfig::new("127.0.0.1:1");
            k.client_options = options(&[
                "security.protocol=SASL_SSL",
                &format!("ssl.ca.location={ca_path}"),
                &format!("sasl.mechanism={mechanism}"),
                "sasl.username=u",
                "sasl.password=p",
            ])
            .unwrap();
            let created: Result<BaseProducer, _> = k.client_config().create();
            assert!(created.is_ok(), "{mechanism}: {:?}", created.err());
        }
        let mut k = KafkaConfig::new("127.0.0.1:1");
        k.client_options = options(&[
            "security.protocol=SSL",
            "ssl.ca.location=/nonexistent/ca.pem",
        ])
        .unwrap();
        let e = k
            .client_config()
            .create::<BaseProducer>()
            .err()
            .expect("a missing CA file must be refused")
            .to_string();
        assert!(e.contains("ssl.ca.location") || e.contains("ca.pem"), "{e}");
    }
}
