//! The sharded timely dataflow of horsestream. Each worker reads its share of the chunks
//! topic (or the in-process bus), chunks are exchanged by stream id, decoded, run through
//! the detector, and written by the sinks; source positions are committed only after the
//! sinks have acknowledged everything up to that epoch. Called by `horsestream dataflow`/`demo`.

pub mod alerts;
pub mod checkpoint;
mod error;
pub mod gait;
pub mod horses;
mod metrics;
pub mod operators;
pub mod panics;
mod run;
pub mod shard;
pub mod source;
pub mod totals;
pub mod tracking;

pub use error::DataflowError;
pub use horses::{HorseConfig, StreamHorses, StreamProfile};
pub use metrics::{Metrics, MetricsSnapshot};
pub use operators::detect::{
    Analyzer, ChunkAnalyzer, Embed, Failure, Found, Models, Reload, RetryPolicy,
};
pub use operators::pose::{EstimatePose, LoadPose, PoseStage, SelectPose};
pub use operators::sink::SinkWriter;
pub use operators::track::StreamTracks;
pub use run::{Cluster, DataflowConfig, WorkerParts, run};
pub use source::{ChunkSource, Poll, Record};
