//! Where data leaves a stage of horsestream: the TimescaleDB store, the embedded (SQLite)
//! store used by `horsestream demo`, and Kafka topics — chunks published by ingest and live
//! events published by the dataflow once their rows are committed.

mod error;
pub mod events;
pub mod kafka;
pub mod store;

pub use error::SinkError;
pub use events::EventPublisher;
pub use store::{
    Alert, AlertQuery, AlertRules, Calibration, ChunkErrorRecord, DetectionProblem, EMBEDDING_DIM,
    FrameRow, GALLERY_LIMIT, GaitJoint, GaitPose, GaitRow, Horse, HorseMatch, HorseObservation,
    HorseSighting, HorseTotalsRow, MAX_EMBEDDING_DIM, NewAlert, NewStream, NewUser, RetentionJob,
    RetentionReport, Role, Severity, Store, StoreStats, Stream, StreamClaims, StreamPatch, User,
    Zone,
};
