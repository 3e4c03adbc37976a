//! One connection to a live source: open with timeouts, read and decode with a watchdog that
//! interrupts FFmpeg when no frame arrived for too long or a stop was requested.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use ffmpeg_next::{Dictionary, Packet, codec, decoder, format, frame, media};

use super::redact::{redact_url, scrub};
use super::{LiveConfig, RtspTransport};
use crate::resample::TimeBase;
use crate::rotate::{Rotation, stream_rotation};

fn monotonic_ms() -> u64 {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    EPOCH.get_or_init(Instant::now).elapsed().as_millis() as u64
}

/// Shared between the ingest loop and FFmpeg's interrupt callback (which FFmpeg polls while
/// it waits for the network): interrupt when the deadline passed or a stop was requested.
#[derive(Debug)]
pub(crate) struct Watchdog {
    deadline_ms: AtomicU64,
    stop: Arc<AtomicBool>,
}

impl Watchdog {
    pub fn new(stop: Arc<AtomicBool>) -> Arc<Self> {
        Arc::new(Watchdog {
            deadline_ms: AtomicU64::new(u64::MAX),
            stop,
        })
    }

    /// Interrupt FFmpeg unless something happens within `d`.
    pub fn arm(&self, d: Duration) {
        let ms = monotonic_ms().saturating_add(d.as_millis() as u64);
        self.deadline_ms.store(ms, Ordering::Relaxed);
    }

    pub fn stopped(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }

    /// No deadline: only a stop interrupts (waiting for a pushing encoder).
    pub fn disarm(&self) {
        self.deadline_ms.store(u64::MAX, Ordering::Relaxed);
    }

    pub fn expired(&self) -> bool {
        monotonic_ms() >= self.deadline_ms.load(Ordering::Relaxed)
    }

    fn should_interrupt(&self) -> bool {
        self.stopped() || self.expired()
    }
}

/// Why a connection ended. Every message is free of credentials.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Failure {
    /// A stop was requested.
    Stopped,
    /// Connected, but no frame for this long.
    Stalled(Duration),
    /// Could not connect or the connection broke; the reason is for people.
    Error(String),
}

/// What one connection opens.
#[derive(Debug, Clone)]
pub(crate) struct Target {
    /// The URL FFmpeg opens (for YouTube the resolved media URL, never shown).
    pub url: String,
    /// How the source is named in messages (credentials masked).
    pub shown: String,
    pub transport: RtspTransport,
    /// Listen for a pushing encoder (RTMP) instead of connecting.
    pub listen: bool,
    /// HTTP proxy for FFmpeg's HTTP client (HLS and progressive HTTP).
    pub http_proxy: Option<String>,
}

impl Target {
    /// `text` without credentials of the URL or the proxy, the URL shown as `shown`.
    pub fn clean(&self, text: &str) -> String {
        let mut t = scrub(text, &self.url).replace(&redact_url(&self.url), &self.shown);
        if let Some(p) = &self.http_proxy {
            t = scrub(&t, p);
        }
        t
    }
}

/// A decoded picture and its camera pts.
pub(crate) struct LiveFrame {
    pub pts: i64,
    pub frame: frame::Video,
}

pub(crate) struct LiveSource {
    target: Target,
    rotation: Rotation,
    input: format::context::Input,
    stream_index: usize,
    decoder: decoder::Video,
    time_base: TimeBase,
    codec_name: &'static str,
    packet: Packet,
    watchdog: Arc<Watchdog>,
    stall_timeout: Duration,
    /// Set when reading ended; remaining frames are drained from the decoder first.
    ending: Option<Failure>,
    /// Packets the decoder rejected (lost or damaged data), skipped.
    pub damaged_packets: u64,
}

impl std::fmt::Debug for LiveSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LiveSource")
            .field("url", &self.target.shown)
            .field("codec", &self.codec_name)
            .field("time_base", &self.time_base)
            .finish_non_exhaustive()
    }
}

fn is_again(e: &ffmpeg_next::Error) -> bool {
    matches!(e, ffmpeg_next::Error::Other { errno } if *errno == ffmpeg_next::error::EAGAIN)
}

fn options(target: &Target, cfg: &LiveConfig) -> Dictionary<'static> {
    let url = target.url.as_str();
    let mut opts = Dictionary::new();
    // A backstop only: the watchdog decides stalls and connect timeouts. Shorter, FFmpeg's
    // own timeout would fire first and flush a held frame, which looks like progress.
    let io_timeout_us = (2 * cfg.stall_timeout.max(cfg.connect_timeout))
        .as_micros()
        .to_string();
    if url.to_ascii_lowercase().starts_with("rtsp") {
        let transport = match target.transport {
            RtspTransport::Tcp => "tcp",
            RtspTransport::Udp => "udp",
        };
        opts.set("rtsp_transport", transport);
        // Socket I/O timeout (FFmpeg ≥ 5 calls it `timeout`; `stimeout` is gone).
        opts.set("timeout", &io_timeout_us);
        opts.set("allowed_media_types", "video");
    } else if target.listen {
        // FFmpeg's RTMP server side: accept one publisher on the URL's address. No I/O
        // timeout while waiting for it (only a stop interrupts); the watchdog takes over
        // once it is connected.
        opts.set("listen", "1");
    } else {
        opts.set("rw_timeout", &io_timeout_us);
    }
    if let Some(p) = &target.http_proxy {
        opts.set("http_proxy", p);
    }
    // Open quickly: a camera announces its codec parameters in the SDP/first keyframe.
    opts.set("analyzeduration", "100000");
    opts.set("probesize", "500000");
    opts
}

impl LiveSource {
    /// Connects to the target and finds its video stream. Bounded by `cfg.connect_timeout`
    /// (and a stop request) through the watchdog; a listening target waits for its encoder
    /// until stopped.
    pub fn open(
        target: Target,
        cfg: &LiveConfig,
        watchdog: Arc<Watchdog>,
    ) -> Result<Self, Failure> {
        let url = target.url.as_str();
        let describe = |what: &str, e: ffmpeg_next::Error| -> Failure {
            if watchdog.stopped() {
                Failure::Stopped
            } else if watchdog.expired() {
                Failure::Error(format!(
                    "{what}: no answer within {:.1} s",
                    cfg.connect_timeout.as_secs_f64()
                ))
            } else {
                Failure::Error(target.clean(&format!("{what}: {e}")))
            }
        };
        ffmpeg_next::init().map_err(|e| describe("initialising FFmpeg", e))?;
        if target.listen {
            watchdog.disarm();
        } else {
            watchdog.arm(cfg.connect_timeout);
        }
        let wd = watchdog.clone();
        let input = format::input_with_interrupt_and_dictionary(
            url,
            move || wd.should_interrupt(),
            options(&target, cfg),
        )
        .map_err(|e| describe("cannot open the stream", e))?;
        let stream = input
            .streams()
            .best(media::Type::Video)
            .ok_or_else(|| Failure::Error("the stream has no video".into()))?;
        let stream_index = stream.index();
        let rotation = stream_rotation(&stream);
        let tb = stream.time_base();
        if tb.numerator() <= 0 || tb.denominator() <= 0 {
            return Err(Failure::Error(
                "the video stream has no valid time base".into(),
            ));
        }
        let params = stream.parameters();
        let codec_id = params.id();
        let unsupported =
            || Failure::Error(format!("no decoder for video codec {}", codec_id.name()));
        if decoder::find(codec_id).is_none() {
            return Err(unsupported());
        }
        let mut ctx = codec::context::Context::from_parameters(params)
            .map_err(|e| describe("reading codec parameters", e))?;
        // Slice threads: frame threading would hold back (threads − 1) frames of latency.
        ctx.set_threading(codec::threading::Config {
            kind: codec::threading::Type::Slice,
            count: cfg.ingest.decode_threads,
            ..Default::default()
        });
        let decoder = ctx.decoder().video().map_err(|_| unsupported())?;
        // The first frame must come within the stall timeout, like every later one.
        watchdog.arm(cfg.stall_timeout);
        Ok(LiveSource {
            target,
            rotation,
            input,
            stream_index,
            decoder,
            time_base: TimeBase {
                num: tb.numerator() as i64,
                den: tb.denominator() as i64,
            },
            codec_name: codec_id.name(),
            packet: Packet::empty(),
            watchdog,
            stall_timeout: cfg.stall_timeout,
            ending: None,
            damaged_packets: 0,
        })
    }

    pub fn time_base(&self) -> TimeBase {
        self.time_base
    }

    pub fn codec_name(&self) -> &'static str {
        self.codec_name
    }

    pub fn rotation(&self) -> Rotation {
        self.rotation
    }

    pub fn width(&self) -> u32 {
        self.decoder.width()
    }

    pub fn height(&self) -> u32 {
        self.decoder.height()
    }

    fn read_failure(&self, e: ffmpeg_next::Error) -> Failure {
        if self.watchdog.stopped() {
            Failure::Stopped
        } else if self.watchdog.expired() {
            Failure::Stalled(self.stall_timeout)
        } else if self.target.listen {
            // FFmpeg's RTMP server reports a publisher that left as an I/O error, not EOF.
            Failure::Error(self.target.clean(&format!(
                "the encoder stopped publishing or its connection broke: {e}"
            )))
        } else if e == ffmpeg_next::Error::Eof {
            Failure::Error("the source closed the connection (end of stream)".into())
        } else {
            Failure::Error(
                self.target
                    .clean(&format!("reading the stream failed: {e}")),
            )
        }
    }

    /// The next decoded frame. A live stream has no clean end: end of stream, a read error,
    /// a stall or a stop is a [`Failure`] (after the frames still in the decoder).
    pub fn next_frame(&mut self) -> Result<LiveFrame, Failure> {
        let mut frame = frame::Video::empty();
        loop {
            match self.decoder.receive_frame(&mut frame) {
                Ok(()) => {
                    let Some(pts) = frame.timestamp() else {
                        continue;
                    };
                    // A frame that only came out because the watchdog interrupted FFmpeg
                    // (the depacketizer flushes what it held) does not end the stall: the
                    // deadline stays expired and the next read fails as stalled.
                    if self.ending.is_none() && !self.watchdog.expired() {
                        self.watchdog.arm(self.stall_timeout);
                    }
                    return Ok(LiveFrame { pts, frame });
                }
                Err(e) if is_again(&e) => {}
                Err(ffmpeg_next::Error::Eof) => {
                    return Err(self
                        .ending
                        .clone()
                        .unwrap_or_else(|| Failure::Error("the decoder ended the stream".into())));
                }
                Err(e) => {
                    // A damaged frame (lost packets): skip it and feed more data; the next
                    // keyframe recovers.
                    self.damaged_packets += 1;
                    tracing::debug!(error = %e, "undecodable frame skipped");
                }
            }
            if let Some(end) = &self.ending {
                return Err(end.clone());
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
                        match self.decoder.send_packet(&self.packet) {
                            Ok(()) => {}
                            Err(e) if is_again(&e) => {}
                            Err(e) => {
                                self.damaged_packets += 1;
                                tracing::debug!(error = %e, "damaged packet skipped");
                            }
                        }
                        break;
                    }
                    Err(e) => {
                        let failure = self.read_failure(e);
                        self.ending = Some(failure.clone());
                        if failure == Failure::Stopped || self.decoder.send_eof().is_err() {
                            return Err(failure);
                        }
                        break;
                    }
                }
            }
        }
    }
}
