//! `DecodeChunks`: raw records → validated chunks, or error records naming where the bad
//! message sits (topic, partition, offset).

use horsestream_proto::FrameChunk;
use horsestream_sinks::ChunkErrorRecord;
use timely::dataflow::StreamVec;
use timely::dataflow::operators::vec::Map;
use timely::progress::Timestamp;

use crate::source::Record;

/// A chunk with the position of the record it came from.
#[derive(Debug, Clone)]
pub struct Located {
    pub source: String,
    pub partition: i32,
    pub offset: i64,
    pub chunk: FrameChunk,
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
    ) -> StreamVec<'scope, T, Result<Located, ChunkErrorRecord>>;
}

impl<'scope, T: Timestamp> DecodeChunks<'scope, T> for StreamVec<'scope, T, Record> {
    fn decode_chunks(
        self,
        window: Option<(i64, i64)>,
    ) -> StreamVec<'scope, T, Result<Located, ChunkErrorRecord>> {
        self.flat_map(move |r| match decode_record(r) {
            Ok(l) if !in_window(&l.chunk, window) => None,
            other => Some(other),
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
