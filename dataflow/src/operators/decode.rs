//! `DecodeChunks`: raw records → validated chunks, or error records naming where the bad
//! message sits (topic, partition, offset).

use std::sync::Arc;
use std::time::Instant;

use horsestream_proto::FrameChunk;
use horsestream_sinks::ChunkErrorRecord;
use timely::dataflow::StreamVec;
use timely::dataflow::operators::vec::Map;
use timely::progress::Timestamp;

use crate::Metrics;
use crate::source::Record;

/// A chunk with the position of the record it came from.
#[derive(Debug, Clone)]
pub struct Located {
    pub source: String,
    pub partition: i32,
    pub offset: i64,
    pub chunk: FrameChunk,
    /// The chunk's trace id: ingest's, or one made from the record's position for a chunk
    /// that carries none.
    pub trace_id: String,
}

impl Located {
    /// An error record for this chunk at `stage`.
    pub fn error(&self, stage: &str, reason: String) -> ChunkErrorRecord {
        ChunkErrorRecord {
            source: self.source.clone(),
            partition: self.partition,
            offset: self.offset,
            stage: stage.to_owned(),
            reason,
        }
    }
}

/// Decodes a record; one that is not a valid chunk becomes an error record.
pub fn decode_record(record: Record) -> Result<Located, ChunkErrorRecord> {
    match FrameChunk::decode(&record.payload) {
        Ok(chunk) => Ok(Located {
            trace_id: if chunk.trace_id.is_empty() {
                position_trace_id(&record.source, record.partition, record.offset)
            } else {
                chunk.trace_id.clone()
            },
            source: record.source,
            partition: record.partition,
            offset: record.offset,
            chunk,
        }),
        Err(e) => Err(ChunkErrorRecord {
            source: record.source,
            partition: record.partition,
            offset: record.offset,
            stage: "decode".to_owned(),
            reason: e.to_string(),
        }),
    }
}

/// A trace id for a chunk that came without one: its record's position, so the same record
/// gets the same id in every run.
pub fn position_trace_id(source: &str, partition: i32, offset: i64) -> String {
    let topic = crate::shard::route(source.as_bytes()) ^ u64::from(partition as u32);
    format!("{topic:016x}{:016x}", offset as u64 | 1 << 63)
}

/// Whether a chunk's capture time range `[start, end)` meets the window `[from, to]` (µs).
pub fn in_window(chunk: &FrameChunk, window: Option<(i64, i64)>) -> bool {
    window.is_none_or(|(from, to)| {
        let start = chunk.stream_start_time_us + chunk.start_pts_us;
        let end = chunk.stream_start_time_us + chunk.end_pts_us;
        start <= to && end > from
    })
}

pub trait DecodeChunks<'scope, T: Timestamp> {
    /// Decodes every record; valid chunks outside `window` (a replay's range) are dropped.
    fn decode_chunks(
        self,
        window: Option<(i64, i64)>,
        metrics: Arc<Metrics>,
    ) -> StreamVec<'scope, T, Result<Located, ChunkErrorRecord>>;
}

impl<'scope, T: Timestamp> DecodeChunks<'scope, T> for StreamVec<'scope, T, Record> {
    fn decode_chunks(
        self,
        window: Option<(i64, i64)>,
        metrics: Arc<Metrics>,
    ) -> StreamVec<'scope, T, Result<Located, ChunkErrorRecord>> {
        self.flat_map(move |r| {
            use tracing::field::Empty;
            // The trace id is in the message: recorded on the span once it is decoded.
            let span = tracing::info_span!(target: super::TRACE_TARGET, "decode",
                                           trace_id = Empty, chunk_id = Empty);
            let _entered = span.enter();
            let start = Instant::now();
            let decoded = decode_record(r);
            if let Ok(l) = &decoded {
                span.record("trace_id", l.trace_id.as_str());
                span.record("chunk_id", l.chunk.chunk_id().as_str());
                if !in_window(&l.chunk, window) {
                    return None;
                }
                metrics.frames_in(&l.chunk.stream_id, l.chunk.frames.len() as u64);
                metrics.operator_latency("decode", start.elapsed().as_secs_f64());
            }
            Some(decoded)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn garbage_becomes_an_error_naming_its_position() {
        let r = Record {
            source: "horsestream.chunks".into(),
            partition: 3,
            offset: 17,
            key: b"s".to_vec(),
            payload: b"definitely not protobuf \xff\xff".to_vec(),
        };
        let e = decode_record(r).unwrap_err();
        assert_eq!((e.partition, e.offset, e.stage.as_str()), (3, 17, "decode"));
        assert!(e.reason.contains("protobuf"), "{}", e.reason);
    }
}
