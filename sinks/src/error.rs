/// Why a sink could not take data. Every variant says whether trying again may help.
#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    #[error("database migration: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("kafka: {0}")]
    Kafka(#[from] rdkafka::error::KafkaError),
    #[error("unsupported store url {0:?}: expected postgres://… or sqlite://…")]
    UnsupportedUrl(String),
    #[error("{0}")]
    Config(String),
    #[error("event channel closed")]
    ChannelClosed,
}

impl SinkError {
    /// Whether the same write may succeed later (a server that is down or busy), as opposed
    /// to one that will fail the same way again (bad configuration, a rejected row).
    pub fn is_retriable(&self) -> bool {
        match self {
            SinkError::Database(e) => matches!(
                e,
                sqlx::Error::Io(_)
                    | sqlx::Error::PoolTimedOut
                    | sqlx::Error::PoolClosed
                    | sqlx::Error::WorkerCrashed
                    | sqlx::Error::Protocol(_)
            ),
            SinkError::Kafka(e) => !matches!(
                e.rdkafka_error_code(),
                Some(
                    rdkafka::types::RDKafkaErrorCode::MessageSizeTooLarge
                        | rdkafka::types::RDKafkaErrorCode::InvalidMessage
                        | rdkafka::types::RDKafkaErrorCode::TopicAuthorizationFailed
                        | rdkafka::types::RDKafkaErrorCode::UnknownTopicOrPartition
                )
            ),
            SinkError::Migrate(_)
            | SinkError::UnsupportedUrl(_)
            | SinkError::Config(_)
            | SinkError::ChannelClosed => false,
        }
    }
}
