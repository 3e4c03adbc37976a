//! The dataflow's operators, one per file, each an extension trait on timely streams whose
//! logic is a plain struct or function tested without timely.

pub mod decode;
pub mod detect;
pub mod sink;
pub mod track;

use horsestream_proto::ProcessedChunk;
use horsestream_sinks::ChunkErrorRecord;

/// What became of one input record: errors are data, carried to the sink like results.
#[derive(Debug, Clone)]
pub enum Outcome {
    Processed(ProcessedChunk),
    Failed(ChunkErrorRecord),
}
