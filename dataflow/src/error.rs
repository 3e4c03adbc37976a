#[derive(Debug, thiserror::Error)]
pub enum DataflowError {
    #[error("kafka source: {0}")]
    Kafka(#[from] rdkafka::error::KafkaError),
    #[error("topic {0:?} does not exist or has no partitions")]
    NoSuchTopic(String),
    #[error("sink: {0}")]
    Sink(#[from] horsestream_sinks::SinkError),
    #[error("worker setup: {0}")]
    Setup(String),
    #[error("timely: {0}")]
    Timely(String),
}
