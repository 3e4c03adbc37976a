//! The dataflow's operators, one per file, each an extension trait on timely streams whose
//! logic is a plain struct or function tested without timely.

pub mod decode;
pub mod detect;
pub mod horses;
pub mod sink;
pub mod track;

use horsestream_proto::ProcessedChunk;
use horsestream_sinks::ChunkErrorRecord;
use horsestream_sinks::store::StreamCheckpoint;

use crate::horses::ChunkAnalysis;

/// What became of one input record: errors are data, carried to the sink like results.
#[derive(Debug, Clone)]
pub enum Outcome {
    Processed(Processed),
    Failed(ChunkErrorRecord),
}

/// A chunk's detections and tracks, and what the horses operator made of them.
#[derive(Debug, Clone)]
pub struct Processed {
    pub chunk: ProcessedChunk,
    pub analysis: ChunkAnalysis,
    /// Where the chunk's record sits (topic, partition, offset): a refusal by the sink is
    /// recorded there, like the earlier stages' refusals.
    pub source: String,
    pub partition: i32,
    pub offset: i64,
    /// The stream's state after this chunk, stored with it (when checkpoints are on): the
    /// tracker's part set by `Track`, the horses' part by `Horses`.
    pub checkpoint: Option<StreamCheckpoint>,
    /// The horses' part of the checkpoint `Track` restored the stream from, for `Horses`
    /// (set on a stream's first chunk after a restart only).
    pub restored_horses: Option<Vec<u8>>,
}

impl Processed {
    /// `chunk`, made of the record `from` was decoded from.
    pub fn new(chunk: ProcessedChunk, from: &decode::Located) -> Self {
        Processed {
            chunk,
            analysis: ChunkAnalysis::default(),
            source: from.source.clone(),
            partition: from.partition,
            offset: from.offset,
            checkpoint: None,
            restored_horses: None,
        }
    }
}
