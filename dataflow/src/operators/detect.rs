//! `Detect`: runs the detector over every frame of a chunk, in batches, on the worker that
//! owns the chunk's stream.

use horsestream_proto::{
    BoundingBox, Detection, FrameChunk, FrameEncoding, FrameResult, ProcessedChunk,
};
use horsestream_sinks::ChunkErrorRecord;
use image::RgbImage;
use timely::container::CapacityContainerBuilder;
use timely::dataflow::StreamVec;
use timely::dataflow::channels::pact::Pipeline;
use timely::dataflow::operators::generic::Operator;
use timely::progress::Timestamp;

use super::Outcome;
use super::decode::Located;

/// One object found on a frame.
#[derive(Debug, Clone, PartialEq)]
pub struct Found {
    pub class_id: u32,
    pub score: f32,
    pub bbox: BoundingBox,
}

/// Something that finds objects on a batch of frames: the ONNX detector in production.
pub trait Analyzer {
    fn detect(&mut self, frames: &[RgbImage]) -> Result<Vec<Vec<Found>>, String>;
}

impl Analyzer for horsestream_models::Detector {
    fn detect(&mut self, frames: &[RgbImage]) -> Result<Vec<Vec<Found>>, String> {
        let per_frame =
            horsestream_models::Detector::detect(self, frames).map_err(|e| e.to_string())?;
        Ok(per_frame
            .into_iter()
            .map(|dets| {
                dets.into_iter()
                    .map(|d| Found {
                        class_id: d.class_id,
                        score: d.score,
                        bbox: d.bbox,
                    })
                    .collect()
            })
            .collect())
    }
}

/// Something that turns crops of one frame into appearance embeddings: the re-ID model.
pub trait Embed {
    fn embed(&mut self, frame: &RgbImage, boxes: &[BoundingBox]) -> Result<Vec<Vec<f32>>, String>;
}

impl Embed for horsestream_models::Embedder {
    fn embed(&mut self, frame: &RgbImage, boxes: &[BoundingBox]) -> Result<Vec<Vec<f32>>, String> {
        let crops: Vec<RgbImage> = boxes
            .iter()
            .map(|b| horsestream_models::crop(frame, b))
            .collect();
        horsestream_models::Embedder::embed(self, &crops).map_err(|e| e.to_string())
    }
}

/// The operator's logic: frames of a chunk → detections per frame (and their embeddings).
pub struct ChunkAnalyzer {
    analyzer: Box<dyn Analyzer>,
    embedder: Option<Box<dyn Embed>>,
    batch_size: usize,
}

impl std::fmt::Debug for ChunkAnalyzer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChunkAnalyzer")
            .field("batch_size", &self.batch_size)
            .finish_non_exhaustive()
    }
}

impl ChunkAnalyzer {
    pub fn new(analyzer: Box<dyn Analyzer>, batch_size: usize) -> Self {
        ChunkAnalyzer {
            analyzer,
            embedder: None,
            batch_size: batch_size.max(1),
        }
    }

    /// Also computes an appearance embedding for every detection.
    pub fn with_embedder(mut self, embedder: Box<dyn Embed>) -> Self {
        self.embedder = Some(embedder);
        self
    }

    pub fn process(&mut self, chunk: &FrameChunk) -> Result<ProcessedChunk, String> {
        let mut frames = Vec::with_capacity(chunk.frames.len());
        for batch in chunk.frames.chunks(self.batch_size) {
            let images = batch
                .iter()
                .map(|f| frame_image(chunk, &f.data).map_err(|e| format!("frame {}: {e}", f.index)))
                .collect::<Result<Vec<_>, _>>()?;
            let found = self.analyzer.detect(&images)?;
            if found.len() != batch.len() {
                return Err(format!(
                    "detector returned {} results for {} frames",
                    found.len(),
                    batch.len()
                ));
            }
            for ((f, found), image) in batch.iter().zip(found).zip(&images) {
                let embeddings = match &mut self.embedder {
                    Some(e) if !found.is_empty() => {
                        let boxes: Vec<BoundingBox> = found.iter().map(|d| d.bbox).collect();
                        e.embed(image, &boxes)
                            .map_err(|e| format!("frame {}: re-ID: {e}", f.index))?
                    }
                    _ => Vec::new(),
                };
                frames.push(FrameResult {
                    index: f.index,
                    pts_us: f.pts_us,
                    capture_time_us: f.capture_time_us,
                    detections: found
                        .into_iter()
                        .map(|d| Detection {
                            frame_index: f.index,
                            pts_us: f.pts_us,
                            class_id: d.class_id,
                            confidence: d.score,
                            bbox: d.bbox,
                            track_id: None,
                        })
                        .collect(),
                    embeddings,
                });
            }
        }
        Ok(ProcessedChunk {
            stream_id: chunk.stream_id.clone(),
            sequence: chunk.sequence,
            start_pts_us: chunk.start_pts_us,
            end_pts_us: chunk.end_pts_us,
            stream_start_time_us: chunk.stream_start_time_us,
            frame_width: chunk.width,
            frame_height: chunk.height,
            frames,
        })
    }
}

/// The pixels of one frame of `chunk`. A JPEG's size is checked from its header before it is
/// decoded (a hostile header must not make the worker allocate for it), and a JPEG cut short
/// (no end-of-image marker) is refused rather than decoded with its missing rows filled in.
pub fn frame_image(chunk: &FrameChunk, data: &[u8]) -> Result<RgbImage, String> {
    match chunk.encoding {
        FrameEncoding::Jpeg => {
            use image::ImageDecoder;
            let mut decoder = image::codecs::jpeg::JpegDecoder::new(std::io::Cursor::new(data))
                .map_err(|e| format!("bad JPEG: {e}"))?;
            decoder
                .set_limits(image::Limits::default())
                .map_err(|e| format!("bad JPEG: {e}"))?;
            let (w, h) = decoder.dimensions();
            if (w, h) != (chunk.width, chunk.height) {
                return Err(format!(
                    "JPEG is {w}x{h}, chunk says {}x{}",
                    chunk.width, chunk.height
                ));
            }
            let end = data.iter().rposition(|&b| b != 0).map_or(0, |i| i + 1);
            if !data[..end].ends_with(&[0xFF, 0xD9]) {
                return Err("bad JPEG: truncated (no end-of-image marker)".to_owned());
            }
            // The decoder has panicked on hostile input (zune-jpeg 0.5.15's AVX2 upsampler,
            // found by `fuzz/`): a panic must cost the frame, not the worker.
            let decoded = crate::panics::catch(std::panic::AssertUnwindSafe(|| {
                image::DynamicImage::from_decoder(decoder)
            }))
            .map_err(|_| "bad JPEG: the decoder failed on it".to_owned())?;
            Ok(decoded.map_err(|e| format!("bad JPEG: {e}"))?.into_rgb8())
        }
        FrameEncoding::Rgb24 => RgbImage::from_raw(chunk.width, chunk.height, data.to_vec())
            .ok_or_else(|| "RGB frame has the wrong size".to_owned()),
    }
}

pub trait Detect<'scope, T: Timestamp> {
    /// Chunks (or earlier errors) → outcomes. An inference failure becomes an error
    /// record for that chunk; the worker carries on with the next one.
    fn detect(self, analyzer: ChunkAnalyzer) -> StreamVec<'scope, T, Outcome>;
}

impl<'scope, T: Timestamp> Detect<'scope, T>
    for StreamVec<'scope, T, Result<Located, ChunkErrorRecord>>
{
    fn detect(self, mut analyzer: ChunkAnalyzer) -> StreamVec<'scope, T, Outcome> {
        self.unary::<CapacityContainerBuilder<Vec<Outcome>>, _, _, _>(
            Pipeline,
            "Detect",
            move |_cap, _info| {
                move |input, output| {
                    input.for_each(|cap, data| {
                        let mut session = output.session(&cap);
                        for item in data.drain(..) {
                            let outcome = match item {
                                Err(e) => Outcome::Failed(e),
                                Ok(located) => match analyzer.process(&located.chunk) {
                                    Ok(p) => Outcome::Processed(super::Processed::new(p, &located)),
                                    Err(reason) => Outcome::Failed(located.error(
                                        "inference",
                                        format!("chunk {}: {reason}", located.chunk.chunk_id()),
                                    )),
                                },
                            };
                            session.give(outcome);
                        }
                    });
                }
            },
        )
    }
}

#[cfg(test)]
mod tests {
    use horsestream_proto::Frame;

    use super::*;

    /// Finds one box per frame whose x is the frame's top-left red value: enough to see
    /// that frames reach the analyzer in order and results land on the right frame.
    struct RedProbe;
    impl Analyzer for RedProbe {
        fn detect(&mut self, frames: &[RgbImage]) -> Result<Vec<Vec<Found>>, String> {
            Ok(frames
                .iter()
                .map(|f| {
                    vec![Found {
                        class_id: 17,
                        score: 0.9,
                        bbox: BoundingBox {
                            x: f.get_pixel(0, 0).0[0] as f32,
                            y: 0.0,
                            w: 1.0,
                            h: 1.0,
                        },
                    }]
                })
                .collect())
        }
    }

    fn chunk(n: usize) -> FrameChunk {
        FrameChunk {
            stream_id: "s".into(),
            sequence: 4,
            start_pts_us: 0,
            end_pts_us: 1_000_000,
            fps_num: 10,
            fps_den: 1,
            width: 2,
            height: 1,
            source: "test".into(),
            encoding: FrameEncoding::Rgb24,
            stream_start_time_us: 0,
            frames: (0..n)
                .map(|i| Frame {
                    index: i as u32,
                    pts_us: i as i64 * 100_000,
                    capture_time_us: i as i64 * 100_000,
                    data: vec![i as u8 * 10, 0, 0, 0, 0, 0],
                })
                .collect(),
        }
    }

    #[test]
    fn batches_keep_frame_order() {
        let mut a = ChunkAnalyzer::new(Box::new(RedProbe), 3);
        let p = a.process(&chunk(7)).unwrap();
        let xs: Vec<f32> = p.frames.iter().map(|f| f.detections[0].bbox.x).collect();
        assert_eq!(xs, vec![0.0, 10.0, 20.0, 30.0, 40.0, 50.0, 60.0]);
        assert_eq!(p.frames[6].detections[0].pts_us, 600_000);
    }

    #[test]
    fn a_jpeg_that_panicked_the_decoder_is_a_bad_frame() {
        // A progressive 4x3 JPEG found by the `chunk` fuzz target (fuzz/), which made
        // zune-jpeg's AVX2 upsampler fail an assertion.
        let hex: String = [
            "ffd8ffe000104a46494600010200000100010000ffc20011080003000403011100022101031201ffdb00430006040506",
            "050406060506070706080a100a0a09090a140e0f0c10171418010000000000039a1f1a1b231c1616202c20232627292a",
            "29191f2d302d283025282928ffdb0043010707070a080a130a0a13281a161a2828282828282828282828282828282828",
            "2828282828d8df282835363738393a434445696a737475767778797a82838485868788898a92939495969798999aa2a3",
            "a4a5a6a7a8a9aad3d4d5d6d7d8d9dae2e3e4e5e6e7e8e9eaf2f3f4f5f6f7f8f9faffda000c03010002110301000000ff",
            "ff0000f0ff00000f3ff122b3ff00be4ff8d65a47ffd96880e0fc8ab0919803c3c4c5c668b0919803d3d4d5d6d7d8d9da",
            "e2e3e4e5e6e7e8e9eaf2f3f4f5f6f7f8f9faffda000c03010002110301000000ffff0000f0ff00000f3ff122b3ff00be",
            "4ff8d65a47ffd968b09198030102031104052131061241510761711322328108144291a1b1c109233352f0156272d10a",
            "162434e125f11718191a262728292a35363738393a434445464748494a535455565758595a636465666768696a737475",
            "767778797a82838485868788898a92939495969798999aa2a3a4a5a6a7a8a9aab2b3b4b5b6b7b8b9bac2c3c4c5c6c7c8",
            "c954d2d3d4d5d6d7d8d9dae2e3e4e5e6e7e8e9eaf2f3f4f5f6f7f8f9fa0000001003010002110301000000ffff0000f0",
            "ff00000f3ff122b3ff00be4ff8d65a47ffd96880e0fc8ab0919803c3c4c5c6c7c8c954d2d3d4d5d6d7d8d9dae2e3e4e5",
            "e6e7e8e9eaf2f3f4f5f6f7f8f9faffda000c03010002110301000000ffff0000f0ff00000f3ff122b3ff00be4ff8d65a",
            "47ffd968b09198033ff122b3ff00be4ff8d65a47ffd9",
        ]
        .concat();
        let jpeg: Vec<u8> = (0..hex.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
            .collect();
        let mut c = chunk(1);
        (c.encoding, c.width, c.height) = (FrameEncoding::Jpeg, 4, 3);
        // Whatever the decoder makes of it on this CPU, no panic leaves frame_image.
        match frame_image(&c, &jpeg) {
            Ok(img) => assert_eq!(img.dimensions(), (4, 3)),
            Err(e) => assert!(e.starts_with("bad JPEG"), "{e}"),
        }
    }

    #[test]
    fn a_truncated_jpeg_or_one_of_another_size_is_refused() {
        let mut c = chunk(1);
        c.encoding = FrameEncoding::Jpeg;
        let mut jpeg = Vec::new();
        image::codecs::jpeg::JpegEncoder::new(&mut jpeg)
            .encode(
                &[200, 10, 10, 10, 200, 10],
                2,
                1,
                image::ExtendedColorType::Rgb8,
            )
            .unwrap();
        assert!(frame_image(&c, &jpeg).unwrap().get_pixel(0, 0).0[0] > 150);
        let mut padded = jpeg.clone();
        padded.extend([0, 0]);
        assert!(frame_image(&c, &padded).is_ok());
        let cut = &jpeg[..jpeg.len() - 4];
        assert_eq!(
            frame_image(&c, cut).unwrap_err(),
            "bad JPEG: truncated (no end-of-image marker)"
        );
        c.width = 3;
        assert_eq!(
            frame_image(&c, &jpeg).unwrap_err(),
            "JPEG is 2x1, chunk says 3x1"
        );
    }

    #[test]
    fn a_corrupt_frame_fails_the_chunk_with_its_index() {
        let mut c = chunk(3);
        c.encoding = FrameEncoding::Jpeg;
        let mut a = ChunkAnalyzer::new(Box::new(RedProbe), 8);
        let err = a.process(&c).unwrap_err();
        assert!(err.starts_with("frame 0: bad JPEG"), "{err}");
    }
}
