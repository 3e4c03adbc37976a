//! Live sources that never need a restart: RTSP cameras, an RTMP encoder pushing to us,
//! HTTP/HLS URLs and yt-dlp-resolved pages ([`SourceSpec`]). [`ingest_source`] connects,
//! decodes, resamples and chunks exactly like [`ingest_file`](crate::ingest_file), and when
//! the source stalls or drops it reconnects with backoff, keeps chunk sequence numbers growing
//! and reports the outage as a [`Gap`] (optionally bridged by the [re-broadcast
//! cache](RebroadcastConfig)).

mod backoff;
mod rebroadcast;
mod redact;
mod source;
mod timeline;
mod youtube;

use std::hash::{Hash, Hasher};
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use horsestream_proto::FrameChunk;

use crate::chunker::{Chunk, ChunkLayout, Chunker};
use crate::encode::FrameEncoder;
use crate::hls::HlsWriter;
use crate::resample::{Slot, slot_pts_us};
use crate::{Held, IngestConfig, IngestError, SourceSpec, YoutubeOptions, now_us};

pub use backoff::{Backoff, BackoffConfig, SplitMix64};
pub use rebroadcast::RebroadcastConfig;
pub use redact::redact_url;
pub use timeline::Gap;

use rebroadcast::Rebroadcast;
use source::{Failure, LiveFrame, LiveSource, Target, Watchdog};
use timeline::Timeline;
use youtube::Resolver;

/// How RTP travels from an RTSP camera.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RtspTransport {
    /// Interleaved in the RTSP TCP connection (default): no loss, works through NAT.
    #[default]
    Tcp,
    /// Separate UDP ports: lower latency, packets may be lost (damaged frames are skipped).
    Udp,
}

impl std::str::FromStr for RtspTransport {
    type Err = IngestError;

    /// `tcp` or `udp`, in any case.
    fn from_str(s: &str) -> Result<Self, IngestError> {
        match s.to_ascii_lowercase().as_str() {
            "tcp" => Ok(RtspTransport::Tcp),
            "udp" => Ok(RtspTransport::Udp),
            other => Err(IngestError::Config(format!(
                "unknown RTSP transport {other:?} (tcp, udp)"
            ))),
        }
    }
}

/// How a live stream is read, chunked and kept alive.
#[derive(Debug, Clone, PartialEq)]
pub struct LiveConfig {
    /// Frame rate, chunk length/overlap, encoding, decoder threads, as for files.
    /// `stream_start_time_us` `None` means the wall-clock arrival of the first frame.
    pub ingest: IngestConfig,
    /// RTSP transport, unless the source's URL names one.
    pub transport: RtspTransport,
    /// Longest wait for a connection to open and describe its stream (default 10 s).
    pub connect_timeout: Duration,
    /// A connected stream with no decoded frame for this long is stalled and reconnected
    /// (default 5 s). Also the socket I/O timeout handed to FFmpeg.
    pub stall_timeout: Duration,
    pub backoff: BackoffConfig,
    /// How `youtube` sources are resolved (yt-dlp, cookies, proxies).
    pub youtube: YoutubeOptions,
    /// Replay the last seconds of frames into outages (default: off).
    pub rebroadcast: Option<RebroadcastConfig>,
}

impl Default for LiveConfig {
    fn default() -> Self {
        LiveConfig {
            ingest: IngestConfig::default(),
            transport: RtspTransport::default(),
            connect_timeout: Duration::from_secs(10),
            stall_timeout: Duration::from_secs(5),
            backoff: BackoffConfig::default(),
            youtube: YoutubeOptions::default(),
            rebroadcast: None,
        }
    }
}

/// Where a live stream is; the payload of a `stream:status` event.
#[derive(Debug, Clone, PartialEq)]
pub enum StreamState {
    /// Connection attempt number `attempt` (1-based, counted over the stream's life).
    Connecting { attempt: u64 },
    /// The first frame of the connection made by attempt `attempt` was decoded. `gap` is the
    /// outage this connection ended, if there was one before it.
    Active { attempt: u64, gap: Option<Gap> },
    /// Connected, but no frame for `silent_for`; the next attempt is in `retry_in`.
    Stalled {
        silent_for: Duration,
        retry_in: Duration,
    },
    /// The connection failed or broke (`reason` never holds credentials). `retry_in` is when
    /// the next attempt starts; `None` when ingest gave up (publishing failed).
    Error {
        reason: String,
        retry_in: Option<Duration>,
    },
    /// Stopped on request; the last event of a stream.
    Stopped,
}

impl StreamState {
    /// `connecting`, `active`, `stalled`, `error` or `stopped`.
    pub fn name(&self) -> &'static str {
        match self {
            StreamState::Connecting { .. } => "connecting",
            StreamState::Active { .. } => "active",
            StreamState::Stalled { .. } => "stalled",
            StreamState::Error { .. } => "error",
            StreamState::Stopped => "stopped",
        }
    }
}

/// A state change of one stream, at wall-clock `at_us` (µs since the Unix epoch).
#[derive(Debug, Clone, PartialEq)]
pub struct StreamStatus {
    pub stream_id: String,
    pub at_us: i64,
    pub state: StreamState,
}

/// What one [`ingest_live`] run did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LiveStats {
    /// Connection attempts.
    pub attempts: u64,
    /// Attempts that delivered at least one frame.
    pub connections: u64,
    pub frames_decoded: u64,
    /// Output slots (overlaps not doubled).
    pub frames_emitted: u64,
    pub chunks: u64,
    /// Frames in published chunks (overlapping frames counted in each chunk).
    pub frames_published: u64,
    /// Packets or frames the decoder rejected and ingest skipped.
    pub damaged_packets: u64,
    /// Outages between connections (and camera clock jumps), in order.
    pub gaps: Vec<Gap>,
    /// Outage slots filled with frames replayed from the re-broadcast cache.
    pub frames_rebroadcast: u64,
}

/// Ends an [`ingest_live`] loop from another thread, within about a second even while it
/// waits for a camera or sleeps before a retry. Clones share the signal.
#[derive(Debug, Clone, Default)]
pub struct StopSignal {
    flag: Arc<AtomicBool>,
    wake: Arc<(Mutex<()>, Condvar)>,
}

impl StopSignal {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn stop(&self) {
        self.flag.store(true, Ordering::SeqCst);
        let _guard = self.wake.0.lock().unwrap_or_else(|e| e.into_inner());
        self.wake.1.notify_all();
    }

    pub fn is_stopped(&self) -> bool {
        self.flag.load(Ordering::SeqCst)
    }

    /// Sleeps for `d` or until stopped; true if stopped.
    fn wait(&self, d: Duration) -> bool {
        let guard = self.wake.0.lock().unwrap_or_else(|e| e.into_inner());
        let _ = self
            .wake
            .1
            .wait_timeout_while(guard, d, |_| !self.is_stopped())
            .unwrap_or_else(|e| e.into_inner());
        self.is_stopped()
    }
}

/// Encodes slots, cuts chunks and publishes them; one per stream, across connections.
struct Assembler<'a, E> {
    stream_id: &'a str,
    cfg: &'a IngestConfig,
    name: PathBuf,
    encoder: FrameEncoder,
    chunker: Chunker<Rc<Vec<u8>>>,
    description: String,
    publish: &'a mut dyn FnMut(FrameChunk) -> Result<(), E>,
    last_sequence: Option<u64>,
    hls: Option<HlsWriter>,
    rebroadcast: Option<Rebroadcast<Rc<Vec<u8>>>>,
}

impl<E> Assembler<'_, E>
where
    E: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    fn slots(
        &mut self,
        slots: Vec<Slot<Rc<Held>>>,
        stream_start: i64,
        stats: &mut LiveStats,
    ) -> Result<(), IngestError> {
        for slot in slots {
            if let Some(h) = self.hls.as_mut() {
                h.push(slot.index, &slot.frame)?;
            }
            let bytes = slot.frame.bytes(&mut self.encoder)?;
            if let Some(r) = self.rebroadcast.as_mut() {
                r.remember(bytes.clone());
            }
            stats.frames_emitted += 1;
            for chunk in self.chunker.push(slot.index, bytes) {
                self.send(chunk, stream_start, stats)?;
            }
        }
        Ok(())
    }

    /// While no connection delivers frames: fills the outage slots up to now with frames
    /// replayed from the re-broadcast cache (if on), and keeps the timeline after them; then
    /// publishes the chunks whose time is over, so an outage holds no chunk back.
    fn idle(
        &mut self,
        timeline: &mut Timeline<Rc<Held>>,
        stats: &mut LiveStats,
    ) -> Result<(), IngestError> {
        if timeline.in_segment() {
            return Ok(());
        }
        let (Some(start), Some(now_slot)) =
            (timeline.stream_start_us(), timeline.wall_slot(now_us()))
        else {
            return Ok(());
        };
        self.rebroadcast(timeline, start, now_slot, stats)?;
        let now_pts = slot_pts_us(now_slot, self.cfg.fps);
        for chunk in self.chunker.close_until(now_pts) {
            self.send(chunk, start, stats)?;
        }
        Ok(())
    }

    fn rebroadcast(
        &mut self,
        timeline: &mut Timeline<Rc<Held>>,
        start: i64,
        now_slot: u64,
        stats: &mut LiveStats,
    ) -> Result<(), IngestError> {
        let Some(r) = self.rebroadcast.as_mut() else {
            return Ok(());
        };
        let filled = r.fill(timeline.next_index(), now_slot);
        if let Some((last, _)) = filled.last() {
            timeline.reserve(last + 1);
        }
        for (index, bytes) in filled {
            stats.frames_rebroadcast += 1;
            stats.frames_emitted += 1;
            for chunk in self.chunker.push(index, bytes) {
                self.send(chunk, start, stats)?;
            }
        }
        Ok(())
    }

    fn finish(&mut self, stream_start: i64, stats: &mut LiveStats) -> Result<(), IngestError> {
        for chunk in self.chunker.finish() {
            self.send(chunk, stream_start, stats)?;
        }
        Ok(())
    }

    fn send(
        &mut self,
        chunk: Chunk<Rc<Vec<u8>>>,
        stream_start: i64,
        stats: &mut LiveStats,
    ) -> Result<(), IngestError> {
        let size = self.encoder.size().expect("a chunk has encoded frames");
        debug_assert!(self.last_sequence.is_none_or(|s| chunk.sequence > s));
        self.last_sequence = Some(chunk.sequence);
        let replayed = self.rebroadcast.as_mut().map_or(0, |r| {
            let first = chunk.frames.first().map_or(0, |f| f.index);
            let last = chunk.frames.last().map_or(0, |f| f.index);
            r.replayed_in(first..last + 1)
        });
        let description = if replayed > 0 {
            format!(
                "{} [re-broadcast: {replayed} of {} frames replayed from the cache during an outage]",
                self.description,
                chunk.frames.len()
            )
        } else {
            self.description.clone()
        };
        let chunk = crate::frame_chunk(
            chunk,
            self.stream_id,
            stream_start,
            self.cfg,
            size,
            &description,
        );
        let chunk_id = chunk.chunk_id();
        let n = chunk.frames.len() as u64;
        let _span = crate::ingest_span(&chunk).entered();
        tracing::debug!(chunk_id, frames = n, "publishing chunk");
        (self.publish)(chunk).map_err(|e| IngestError::Publish {
            path: self.name.clone(),
            chunk_id,
            source: e.into(),
        })?;
        stats.chunks += 1;
        stats.frames_published += n;
        Ok(())
    }
}

fn validate(cfg: &LiveConfig) -> Result<(), IngestError> {
    let b = &cfg.backoff;
    let bad = |what: String| Err(IngestError::Config(what));
    if cfg.stall_timeout.is_zero() || cfg.connect_timeout.is_zero() {
        return bad("live stall and connect timeouts must be positive".into());
    }
    if b.initial.is_zero() || b.max < b.initial {
        return bad(format!(
            "reconnect backoff needs 0 < initial ({:?}) <= max ({:?})",
            b.initial, b.max
        ));
    }
    let multiplier_ok = b.multiplier >= 1.0 && b.multiplier.is_finite();
    if !multiplier_ok || !(0.0..=1.0).contains(&b.jitter) {
        return bad(format!(
            "reconnect backoff multiplier ({}) must be >= 1 and jitter ({}) in 0..=1",
            b.multiplier, b.jitter
        ));
    }
    Ok(())
}

fn default_seed(stream_id: &str) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    stream_id.hash(&mut h);
    now_us().hash(&mut h);
    h.finish()
}

/// Where each connection goes: a fixed URL, or a page re-resolved by yt-dlp every time.
enum Upstream {
    Fixed(Target),
    Youtube { page: String, resolver: Resolver },
}

impl Upstream {
    fn shown(&self) -> String {
        match self {
            Upstream::Fixed(t) => t.shown.clone(),
            Upstream::Youtube { page, .. } => redact_url(page),
        }
    }

    fn is_listen(&self) -> bool {
        matches!(self, Upstream::Fixed(t) if t.listen)
    }

    /// The target of the next connection (resolving a page takes a yt-dlp run). A failed
    /// resolve is a failed connection: the loop moves on to the next proxy, as for any other.
    fn target(&mut self, watchdog: &Watchdog) -> Result<Target, Failure> {
        match self {
            Upstream::Fixed(t) => Ok(t.clone()),
            Upstream::Youtube { page, resolver } => {
                let r = resolver.resolve(page, watchdog)?;
                Ok(Target {
                    url: r.url,
                    shown: redact_url(page),
                    transport: RtspTransport::Tcp,
                    listen: false,
                    http_proxy: r.proxy,
                })
            }
        }
    }

    /// A connection failed or stalled: take the next proxy.
    fn failed(&mut self) {
        if let Upstream::Youtube { resolver, .. } = self {
            resolver.proxies.failed();
        }
    }

    fn clean(&self, text: &str) -> String {
        match self {
            Upstream::Fixed(t) => t.clean(text),
            Upstream::Youtube { page, resolver } => resolver.clean(&redact::scrub(text, page)),
        }
    }
}

/// Reads the live source at `url` (any URL FFmpeg opens; RTSP with `cfg.transport`) until
/// `stop` is signalled. See [`ingest_source`]; this is that for a URL opened as given.
pub fn ingest_live<E>(
    url: &str,
    stream_id: &str,
    cfg: &LiveConfig,
    stop: &StopSignal,
    publish: &mut dyn FnMut(FrameChunk) -> Result<(), E>,
    status: &mut dyn FnMut(StreamStatus),
) -> Result<LiveStats, IngestError>
where
    E: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let target = Target {
        url: url.to_string(),
        shown: redact_url(url),
        transport: cfg.transport,
        listen: false,
        http_proxy: None,
    };
    run(
        Upstream::Fixed(target),
        stream_id,
        cfg,
        stop,
        publish,
        status,
    )
}

/// Reads a live [`SourceSpec`] until `stop` is signalled, publishing chunks as they
/// complete and reporting every state change through `status`.
///
/// - RTSP uses the URL's `?transport=` or else `cfg.transport`.
/// - RTMP listens on the URL's address for a pushing encoder; while none is connected the
///   state is `Connecting` (no timeout). When the encoder stops publishing, the state goes to
///   `Error` and ingest listens again at once.
/// - HTTP(S) URLs (HLS playlists, progressive files) are opened by FFmpeg's HTTP client.
/// - YouTube pages are resolved through `yt-dlp` (see [`YoutubeOptions`]) before every
///   connection; a missing yt-dlp is an error up front ([`IngestError::MissingTool`], also
///   reported as a final `Error` status).
///
/// Chunks are cut exactly as [`ingest_file`](crate::ingest_file) cuts them, on one timeline
/// for the whole run: slot 0 is the first frame (or `cfg.ingest.stream_start_time_us`), each
/// connection's clock is anchored to the wall clock when its first frame arrives, so
/// chunk times and sequence numbers only grow across reconnects and are never reused. A
/// chunk that spans an outage holds the frames on both sides (the hole is reported as a
/// [`Gap`] in [`StreamState::Active`] and [`LiveStats::gaps`]); it is published once frames
/// pass its end, or at stop. With `cfg.rebroadcast`, the hole is filled with replayed frames
/// as described in [`RebroadcastConfig`] (the gap is still reported). Frames are turned
/// upright by the source's rotation metadata.
///
/// A stall (no frame for `cfg.stall_timeout`), a closed connection, a read error or a failed
/// connection attempt never ends the loop: the state goes to `Stalled` or `Error`, and the
/// next attempt follows after an exponential backoff with jitter. URLs may hold
/// credentials; only [`redact_url`]'s form appears in logs, errors and statuses (a resolved
/// YouTube media URL never does).
///
/// Returns when stopped (after publishing the trailing chunks and a final `Stopped`), or
/// with an error for a bad configuration or a failed `publish` (after an `Error` status with
/// no retry).
pub fn ingest_source<E>(
    spec: &SourceSpec,
    stream_id: &str,
    cfg: &LiveConfig,
    stop: &StopSignal,
    publish: &mut dyn FnMut(FrameChunk) -> Result<(), E>,
    status: &mut dyn FnMut(StreamStatus),
) -> Result<LiveStats, IngestError>
where
    E: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let fixed = |url: &str, transport: RtspTransport, listen: bool| {
        Upstream::Fixed(Target {
            url: url.to_string(),
            shown: redact_url(url),
            transport,
            listen,
            http_proxy: None,
        })
    };
    let upstream = match spec {
        SourceSpec::File(p) => {
            return Err(IngestError::Config(format!(
                "{} is a file: use ingest_file",
                p.display()
            )));
        }
        SourceSpec::Rtsp { url, transport } => {
            fixed(url, transport.unwrap_or(cfg.transport), false)
        }
        SourceSpec::RtmpListen { url } => fixed(url, cfg.transport, true),
        SourceSpec::Http { url } => fixed(url, cfg.transport, false),
        SourceSpec::Youtube { url } => match Resolver::new(&cfg.youtube) {
            Ok(resolver) => Upstream::Youtube {
                page: url.clone(),
                resolver,
            },
            Err(e) => {
                status(StreamStatus {
                    stream_id: stream_id.to_string(),
                    at_us: now_us(),
                    state: StreamState::Error {
                        reason: e.to_string(),
                        retry_in: None,
                    },
                });
                return Err(e);
            }
        },
    };
    run(upstream, stream_id, cfg, stop, publish, status)
}

/// Every this long the live loop wakes up while it waits (for a connection or a retry) to
/// fill outage slots from the re-broadcast cache.
const TICK: Duration = Duration::from_millis(50);

fn run<E>(
    mut upstream: Upstream,
    stream_id: &str,
    cfg: &LiveConfig,
    stop: &StopSignal,
    publish: &mut dyn FnMut(FrameChunk) -> Result<(), E>,
    status: &mut dyn FnMut(StreamStatus),
) -> Result<LiveStats, IngestError>
where
    E: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    if stream_id.is_empty() {
        return Err(IngestError::Config("empty stream id".into()));
    }
    validate(cfg)?;
    let layout = ChunkLayout::new(
        cfg.ingest.chunk_len,
        cfg.ingest.chunk_overlap,
        cfg.ingest.fps,
    )?;
    let shown = upstream.shown();
    let name = PathBuf::from(&shown);
    let hls = match &cfg.ingest.hls {
        Some(h) => Some(HlsWriter::new(
            h,
            stream_id,
            cfg.ingest.fps,
            cfg.ingest.encode.max_width,
        )?),
        None => None,
    };
    let mut asm = Assembler {
        stream_id,
        cfg: &cfg.ingest,
        encoder: FrameEncoder::new(&name, cfg.ingest.encode)?,
        name,
        chunker: Chunker::starting_at(layout, cfg.ingest.first_sequence),
        description: shown.clone(),
        publish,
        last_sequence: None,
        hls,
        rebroadcast: cfg.rebroadcast.map(|r| Rebroadcast::new(r, cfg.ingest.fps)),
    };
    let mut emit = |state: StreamState| {
        tracing::debug!(stream_id, state = state.name(), "stream status");
        status(StreamStatus {
            stream_id: stream_id.to_string(),
            at_us: now_us(),
            state,
        })
    };
    let mut timeline: Timeline<Rc<Held>> = Timeline::new(
        cfg.ingest.fps,
        cfg.ingest.stream_start_time_us,
        cfg.stall_timeout,
    );
    let mut backoff = Backoff::new(cfg.backoff.clone(), default_seed(stream_id));
    let watchdog = Watchdog::new(stop.flag.clone());
    let mut stats = LiveStats::default();

    // Any error from encoding or publishing ends the run: report it, then return it.
    macro_rules! fatal {
        ($result:expr) => {
            if let Err(e) = $result {
                emit(StreamState::Error {
                    reason: upstream.clean(&e.to_string()),
                    retry_in: None,
                });
                return Err(e);
            }
        };
    }

    while !stop.is_stopped() {
        stats.attempts += 1;
        let attempt = stats.attempts;
        emit(StreamState::Connecting { attempt });
        // Resolve and connect on a helper thread; meanwhile keep the re-broadcast going.
        let connected = std::thread::scope(|s| {
            let wd = watchdog.clone();
            let up = &mut upstream;
            let task = s.spawn(move || {
                let target = up.target(&wd)?;
                LiveSource::open(target, cfg, wd)
            });
            while !task.is_finished() {
                if let Err(e) = asm.idle(&mut timeline, &mut stats) {
                    return (task.join(), Err(e));
                }
                std::thread::sleep(TICK);
            }
            (task.join(), Ok(()))
        });
        let opened = match connected {
            (Ok(opened), filled) => {
                fatal!(filled);
                opened
            }
            (Err(panic), _) => std::panic::resume_unwind(panic),
        };
        let mut delivered = false;
        let failure = match opened {
            Err(f) => f,
            Ok(mut src) => {
                asm.description = format!(
                    "{shown} ({})",
                    crate::describe_video(
                        src.codec_name(),
                        (src.width(), src.height()),
                        src.rotation()
                    )
                );
                asm.encoder.set_rotation(src.rotation());
                if let Some(h) = asm.hls.as_mut() {
                    h.set_rotation(src.rotation());
                }
                tracing::info!(url = %shown, stream_id, attempt, codec = src.codec_name(), "connected");
                let mut active_since: Option<Instant> = None;
                let failure = loop {
                    let LiveFrame { pts, frame } = match src.next_frame() {
                        Ok(f) => f,
                        Err(f) => break f,
                    };
                    stats.frames_decoded += 1;
                    let pushed = timeline.push(src.time_base(), pts, Held::new(frame), now_us());
                    stats.gaps.extend(pushed.gap);
                    if active_since.is_none() {
                        active_since = Some(Instant::now());
                        stats.connections += 1;
                        emit(StreamState::Active {
                            attempt,
                            gap: pushed.gap,
                        });
                    }
                    let start = timeline.stream_start_us().expect("set by the first frame");
                    fatal!(asm.slots(pushed.slots, start, &mut stats));
                };
                let tail = timeline.end_segment();
                if let Some(start) = timeline.stream_start_us() {
                    fatal!(asm.slots(tail, start, &mut stats));
                }
                stats.damaged_packets += src.damaged_packets;
                if active_since.is_some_and(|t| t.elapsed() >= cfg.backoff.stable_after) {
                    backoff.reset();
                }
                delivered = active_since.is_some();
                failure
            }
        };
        if !matches!(failure, Failure::Stopped) {
            upstream.failed();
        }
        // A pushing encoder that went away may come back at once: listen again without delay.
        let listen_again = upstream.is_listen() && delivered;
        let mut next_delay = || {
            if listen_again {
                backoff.reset();
                Duration::ZERO
            } else {
                backoff.next_delay()
            }
        };
        let state = match failure {
            Failure::Stopped => break,
            Failure::Stalled(silent_for) => {
                let retry_in = next_delay();
                tracing::warn!(url = %shown, stream_id, ?silent_for, ?retry_in, "stream stalled");
                StreamState::Stalled {
                    silent_for,
                    retry_in,
                }
            }
            Failure::Error(reason) => {
                let retry_in = next_delay();
                let reason = upstream.clean(&reason);
                tracing::warn!(url = %shown, stream_id, %reason, ?retry_in, "stream failed");
                StreamState::Error {
                    reason,
                    retry_in: Some(retry_in),
                }
            }
        };
        let delay = match &state {
            StreamState::Stalled { retry_in, .. } => *retry_in,
            StreamState::Error { retry_in, .. } => retry_in.unwrap_or_default(),
            _ => Duration::ZERO,
        };
        emit(state);
        let until = Instant::now() + delay;
        loop {
            fatal!(asm.idle(&mut timeline, &mut stats));
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() || stop.wait(left.min(TICK)) {
                break;
            }
        }
    }
    let tail = timeline.end_segment();
    if let Some(start) = timeline.stream_start_us() {
        fatal!(asm.slots(tail, start, &mut stats));
        fatal!(asm.finish(start, &mut stats));
    }
    if let Some(h) = asm.hls.as_mut() {
        fatal!(h.finish());
    }
    tracing::info!(url = %shown, stream_id, ?stats, "live ingest stopped");
    emit(StreamState::Stopped);
    Ok(stats)
}
