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

pub trait DecodeChunks<'scope, T: Timestamp> {
    fn decode_chunks(self) -> StreamVec<'scope, T, Result<Located, ChunkErrorRecord>>;
}

impl<'scope, T: Timestamp> DecodeChunks<'scope, T> for StreamVec<'scope, T, Record> {
    fn decode_chunks(self) -> StreamVec<'scope, T, Result<Located, ChunkErrorRecord>> {
        self.map(decode_record)
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
