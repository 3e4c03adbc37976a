//! Stream checkpoints: the state a stream's worker carries from chunk to chunk (the DeepSORT
//! tracker of `Track`, the horses of `Horses`), encoded after every chunk and stored by the
//! sink in the transaction that stores the chunk's rows. When a worker first sees a stream
//! (after a restart, or when a replay starts mid-stream) it restores the stream's newest
//! checkpoint before that chunk, so a restarted dataflow assigns the same track ids and horses
//! as one that never stopped. See `docs/crash-recovery.md`.
//!
//! Encoding: one version byte, then bincode (exact bits of every float, so a restored Kalman
//! filter or gallery computes what the original would have).

use horsestream_proto::BoundingBox;
use horsestream_sinks::store::StreamCheckpoint;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// First byte of every encoded state; bumped whenever a checkpointed type changes shape, so
/// an old checkpoint is refused (the stream then starts afresh) instead of misread.
const VERSION: u8 = 5; // 2: horses keep their gait totals; 3: track samples carry the pose;
// 4: gait totals in integer µs and millionths; 5: rule episodes and their conditions records

/// Reads the checkpoint to resume a stream from: `(stream, sequence)` → the state stored with
/// the newest chunk of `stream` before `sequence`, if any.
pub type Restore = Box<dyn FnMut(&str, u64) -> Option<(u64, StreamCheckpoint)>>;

/// `BoundingBox` (a proto domain type without serde) as checkpoints encode it.
#[derive(Serialize, Deserialize)]
#[serde(remote = "BoundingBox")]
pub(crate) struct BoxDef {
    x: f32,
    y: f32,
    w: f32,
    h: f32,
}

pub(crate) fn encode<T: Serialize + ?Sized>(value: &T) -> Vec<u8> {
    let mut out = vec![VERSION];
    bincode::serialize_into(&mut out, value).expect("checkpoint state always serializes");
    out
}

#[derive(Debug, thiserror::Error)]
pub(crate) enum DecodeError {
    #[error("checkpoint format {found}, this build reads {VERSION}")]
    Version { found: u8 },
    #[error("empty checkpoint")]
    Empty,
    #[error("malformed checkpoint: {0}")]
    Malformed(#[from] bincode::Error),
}

pub(crate) fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, DecodeError> {
    match bytes.split_first() {
        None => Err(DecodeError::Empty),
        Some((&VERSION, rest)) => Ok(bincode::deserialize(rest)?),
        Some((&found, _)) => Err(DecodeError::Version { found }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct S {
        #[serde(with = "BoxDef")]
        b: BoundingBox,
        f: Vec<f64>,
    }

    #[test]
    fn round_trips_exact_bits_and_refuses_other_versions() {
        let s = S {
            b: BoundingBox {
                x: 0.1,
                y: f32::MIN_POSITIVE,
                w: 1e-30,
                h: 3.3,
            },
            f: vec![0.1 + 0.2, std::f64::consts::PI, -0.0],
        };
        let bytes = encode(&s);
        let back: S = decode(&bytes).unwrap();
        assert_eq!(back, s);
        assert_eq!(back.f[2].to_bits(), (-0.0f64).to_bits());
        let mut old = bytes.clone();
        old[0] = VERSION + 1;
        assert!(matches!(
            decode::<S>(&old),
            Err(DecodeError::Version { .. })
        ));
        assert!(matches!(decode::<S>(&[]), Err(DecodeError::Empty)));
        assert!(matches!(
            decode::<S>(&bytes[..bytes.len() - 3]),
            Err(DecodeError::Malformed(_))
        ));
    }
}
