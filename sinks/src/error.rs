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
    /// A chunk carried a detection no model should produce; nothing of the chunk was written.
    #[error("chunk {chunk_id} rejected: {problem}")]
    InvalidChunk {
        chunk_id: String,
        problem: crate::store::DetectionProblem,
    },
    /// A stream, horse, alert, … that does not exist.
    #[error("unknown {what} {id:?}")]
    NotFound { what: &'static str, id: String },
    /// A stream id or user name that is already taken.
    #[error("{what} {id:?} already exists")]
    Conflict { what: &'static str, id: String },
    /// A value the store refuses: a non-finite metric, an embedding of the wrong size, …
    #[error("invalid {what}: {reason}")]
    Invalid { what: &'static str, reason: String },
}

impl SinkError {
    /// Whether the same write may succeed later (a server that is down or busy), as opposed
    /// to one that will fail the same way again (bad configuration, a rejected row).
    pub fn is_retriable(&self) -> bool {
        match self {
            SinkError::Database(e) => match e {
                sqlx::Error::Io(_)
                | sqlx::Error::Tls(_)
                | sqlx::Error::PoolTimedOut
                | sqlx::Error::PoolClosed
                | sqlx::Error::WorkerCrashed
                | sqlx::Error::Protocol(_) => true,
                sqlx::Error::Database(db) => db.code().is_some_and(|c| retriable_code(&c)),
                _ => false,
            },
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
            | SinkError::ChannelClosed
            | SinkError::InvalidChunk { .. }
            | SinkError::NotFound { .. }
            | SinkError::Conflict { .. }
            | SinkError::Invalid { .. } => false,
        }
    }
}

/// Whether a database error code names a transient condition: PostgreSQL SQLSTATEs for a lost
/// connection (class 08), a serialization failure or deadlock, exhausted resources (class 53)
/// and a server shutting down or starting (57P01–57P03); SQLite's BUSY (5) and LOCKED (6)
/// primary result codes.
pub(crate) fn retriable_code(code: &str) -> bool {
    code.starts_with("08")
        || code.starts_with("53")
        || matches!(code, "40001" | "40P01" | "57P01" | "57P02" | "57P03")
        || code
            .parse::<i64>()
            .is_ok_and(|n| n > 0 && matches!(n & 0xff, 5 | 6) && code.len() <= 4)
}

/// Maps a database error from writing `what` `id`: a unique violation is a [`SinkError::Conflict`],
/// a foreign-key violation a [`SinkError::NotFound`] of `parent`.
pub(crate) fn classify(
    e: sqlx::Error,
    what: &'static str,
    id: &str,
    parent: &'static str,
    parent_id: &str,
) -> SinkError {
    if let sqlx::Error::Database(db) = &e {
        match db.kind() {
            sqlx::error::ErrorKind::UniqueViolation => {
                return SinkError::Conflict {
                    what,
                    id: id.to_owned(),
                };
            }
            sqlx::error::ErrorKind::ForeignKeyViolation => {
                return SinkError::NotFound {
                    what: parent,
                    id: parent_id.to_owned(),
                };
            }
            _ => {}
        }
    }
    SinkError::Database(e)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transient_database_codes_are_retriable() {
        for code in [
            "08006", "08001", "40001", "40P01", "53300", "57P01", "57P03", "5", "6", "517",
        ] {
            assert!(retriable_code(code), "{code}");
        }
        for code in ["23505", "23503", "42P01", "22P02", "19", "2067", "1"] {
            assert!(!retriable_code(code), "{code}");
        }
    }

    #[test]
    fn rejected_and_missing_rows_are_not_retriable() {
        let e = SinkError::NotFound {
            what: "stream",
            id: "x".into(),
        };
        assert!(!e.is_retriable());
        assert_eq!(e.to_string(), "unknown stream \"x\"");
    }
}
