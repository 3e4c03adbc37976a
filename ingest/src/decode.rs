//! Opening a file with FFmpeg and pulling decoded pictures of its best video stream, with
//! the checks that turn bad input into one clear [`IngestError`].

use std::path::{Path, PathBuf};

use ffmpeg_next::{Packet, codec, decoder, format, frame, media};

use crate::IngestError;
use crate::resample::TimeBase;
use crate::rotate::{Rotation, stream_rotation};

/// A decoded picture and its presentation time in the stream's [`TimeBase`].
pub struct Decoded {
    pub pts: i64,
    pub frame: frame::Video,
}

impl std::fmt::Debug for Decoded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Decoded")
            .field("pts", &self.pts)
            .field("width", &self.frame.width())
            .field("height", &self.frame.height())
            .finish()
    }
}

/// The best video stream of a file, decoded with frame threading.
pub struct VideoSource {
    path: PathBuf,
    input: format::context::Input,
    stream_index: usize,
    decoder: decoder::Video,
    time_base: TimeBase,
    /// Container's idea of where the stream ends (start + duration), in the time base.
    expected_end: Option<i64>,
    codec_name: &'static str,
    rotation: Rotation,
    packet: Packet,
    draining: bool,
    done: bool,
    decoded: u64,
    last_pts: Option<i64>,
    last_delta: Option<i64>,
}

impl std::fmt::Debug for VideoSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VideoSource")
            .field("path", &self.path)
            .field("stream_index", &self.stream_index)
            .field("codec", &self.codec_name)
            .field("time_base", &self.time_base)
            .field("decoded", &self.decoded)
            .finish_non_exhaustive()
    }
}

fn is_again(e: &ffmpeg_next::Error) -> bool {
    matches!(e, ffmpeg_next::Error::Other { errno } if *errno == ffmpeg_next::error::EAGAIN)
}

impl VideoSource {
    /// Opens `path` and its best video stream. `threads` 0 lets FFmpeg pick.
    pub fn open(path: &Path, threads: usize) -> Result<Self, IngestError> {
        let meta = std::fs::metadata(path).map_err(|source| IngestError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        if meta.len() == 0 {
            return Err(IngestError::Empty {
                path: path.to_path_buf(),
            });
        }
        ffmpeg_next::init().map_err(IngestError::ffmpeg(path, "initialising"))?;
        let input = format::input(path).map_err(|source| IngestError::NotMedia {
            path: path.to_path_buf(),
            source,
        })?;
        let stream =
            input
                .streams()
                .best(media::Type::Video)
                .ok_or_else(|| IngestError::NoVideoStream {
                    path: path.to_path_buf(),
                })?;
        let stream_index = stream.index();
        let rotation = stream_rotation(&stream);
        let params = stream.parameters();
        let codec_id = params.id();
        let tb = stream.time_base();
        if tb.numerator() <= 0 || tb.denominator() <= 0 {
            return Err(IngestError::NotMedia {
                path: path.to_path_buf(),
                source: ffmpeg_next::Error::InvalidData,
            });
        }
        let time_base = TimeBase {
            num: tb.numerator() as i64,
            den: tb.denominator() as i64,
        };
        let expected_end = (stream.duration() > 0).then(|| {
            let start = if stream.start_time() == ffmpeg_next::ffi::AV_NOPTS_VALUE {
                0
            } else {
                stream.start_time()
            };
            start + stream.duration()
        });
        if decoder::find(codec_id).is_none() {
            return Err(IngestError::UnsupportedCodec {
                path: path.to_path_buf(),
                codec: codec_id.name().to_string(),
            });
        }
        let mut ctx = codec::context::Context::from_parameters(params)
            .map_err(IngestError::ffmpeg(path, "reading codec parameters"))?;
        ctx.set_threading(codec::threading::Config {
            kind: codec::threading::Type::Frame,
            count: threads,
            ..Default::default()
        });
        let decoder = ctx
            .decoder()
            .video()
            .map_err(|_| IngestError::UnsupportedCodec {
                path: path.to_path_buf(),
                codec: codec_id.name().to_string(),
            })?;
        Ok(VideoSource {
            path: path.to_path_buf(),
            input,
            stream_index,
            decoder,
            time_base,
            expected_end,
            codec_name: codec_id.name(),
            rotation,
            packet: Packet::empty(),
            draining: false,
            done: false,
            decoded: 0,
            last_pts: None,
            last_delta: None,
        })
    }

    pub fn time_base(&self) -> TimeBase {
        self.time_base
    }

    pub fn codec_name(&self) -> &'static str {
        self.codec_name
    }

    pub fn width(&self) -> u32 {
        self.decoder.width()
    }

    pub fn height(&self) -> u32 {
        self.decoder.height()
    }

    /// How decoded pictures must be turned to be upright (the stream's display matrix).
    pub fn rotation(&self) -> Rotation {
        self.rotation
    }

    /// Frames decoded so far.
    pub fn decoded(&self) -> u64 {
        self.decoded
    }

    /// Where the decoded stream ends: the last pts plus the last frame interval (or one tick
    /// with a single frame).
    pub fn end_pts(&self) -> Option<i64> {
        self.last_pts
            .map(|p| p + self.last_delta.unwrap_or(1).max(1))
    }

    fn corrupt(&self, source: Option<ffmpeg_next::Error>) -> IngestError {
        IngestError::Corrupt {
            path: self.path.clone(),
            at_us: self.time_base.to_us(self.last_pts.unwrap_or(0)),
            source,
        }
    }

    /// The next decoded frame in presentation order, `None` at a clean end of stream.
    ///
    /// Fails on a read or decode error, on a frame FFmpeg flags as corrupt, and at the end of
    /// a stream that stops well before the duration its container announced (a truncated
    /// file whose index is intact).
    pub fn next_frame(&mut self) -> Result<Option<Decoded>, IngestError> {
        if self.done {
            return Ok(None);
        }
        let mut frame = frame::Video::empty();
        loop {
            match self.decoder.receive_frame(&mut frame) {
                Ok(()) => {
                    if frame.is_corrupt() || frame.has_decode_errors() {
                        return Err(self.corrupt(None));
                    }
                    let Some(pts) = frame.timestamp() else {
                        tracing::debug!(path = %self.path.display(), "frame without timestamp skipped");
                        continue;
                    };
                    if let Some(prev) = self.last_pts
                        && pts > prev
                    {
                        self.last_delta = Some(pts - prev);
                    }
                    self.last_pts = Some(self.last_pts.map_or(pts, |p| p.max(pts)));
                    self.decoded += 1;
                    return Ok(Some(Decoded { pts, frame }));
                }
                Err(ffmpeg_next::Error::Eof) => {
                    self.done = true;
                    self.check_complete()?;
                    return Ok(None);
                }
                Err(e) if is_again(&e) => {}
                Err(e) => return Err(self.corrupt(Some(e))),
            }
            if self.draining {
                // EAGAIN after EOF was sent cannot happen; guard against a busy loop anyway.
                return Err(self.corrupt(None));
            }
            // The decoder wants input.
            loop {
                // `av_read_frame` does not release the packet it fills: a reused packet
                // leaked every earlier packet's data (~4 KB a packet, found by the soak).
                // Dropping the old one releases it.
                self.packet = Packet::empty();
                match self.packet.read(&mut self.input) {
                    Ok(()) => {
                        if self.packet.stream() != self.stream_index {
                            continue;
                        }
                        if self.packet.is_corrupt() {
                            return Err(self.damaged_packet());
                        }
                        match self.decoder.send_packet(&self.packet) {
                            Ok(()) => {}
                            Err(e) if is_again(&e) => {}
                            Err(e) => return Err(self.corrupt(Some(e))),
                        }
                        break;
                    }
                    Err(ffmpeg_next::Error::Eof) => {
                        self.decoder
                            .send_eof()
                            .map_err(IngestError::ffmpeg(&self.path, "flushing the decoder"))?;
                        self.draining = true;
                        break;
                    }
                    Err(e) => {
                        // A read error mid-file: the data ends or is damaged here.
                        return Err(self.corrupt(Some(e)));
                    }
                }
            }
        }
    }

    /// A packet the demuxer flagged corrupt: a truncation if it runs into the end of the
    /// file (a short read), corruption otherwise.
    fn damaged_packet(&self) -> IngestError {
        let end = self.packet.position() as i64 + self.packet.size() as i64;
        let at_eof = self
            .input
            .io_size()
            .is_some_and(|size| self.packet.position() >= 0 && end >= size);
        match (at_eof, self.expected_end) {
            (true, Some(expected)) => IngestError::Truncated {
                path: self.path.clone(),
                decoded_us: self.time_base.to_us(self.last_pts.unwrap_or(0)),
                expected_us: self.time_base.to_us(expected),
            },
            _ => self.corrupt(None),
        }
    }

    /// At EOF: the decoded stream must reach the container's duration, within a few frames.
    fn check_complete(&self) -> Result<(), IngestError> {
        let (Some(expected), Some(end)) = (self.expected_end, self.end_pts()) else {
            if self.decoded == 0 {
                return Err(IngestError::NoFrames {
                    path: self.path.clone(),
                });
            }
            return Ok(());
        };
        let (expected_us, end_us) = (self.time_base.to_us(expected), self.time_base.to_us(end));
        let frame_us = self.time_base.to_us(self.last_delta.unwrap_or(0));
        let tolerance = (4 * frame_us).max(250_000);
        if end_us + tolerance < expected_us {
            return Err(IngestError::Truncated {
                path: self.path.clone(),
                decoded_us: end_us,
                expected_us,
            });
        }
        Ok(())
    }
}
