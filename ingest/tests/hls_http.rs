//! HLS written by our own ingest (`IngestConfig::hls`), checked as playback output and then
//! served on loopback by a small HTTP server in this file and ingested back as a live HTTP
//! source, directly and as a `youtube` source resolved by a stand-in `yt-dlp` script (through
//! a proxy list whose first proxy is dead). Real FFmpeg HTTP/HLS client throughout.

use std::collections::HashMap;
use std::convert::Infallible;
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::mpsc::{Receiver, RecvTimeoutError, channel};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use horsestream_ingest::{
    BackoffConfig, Fps, HlsConfig, IngestConfig, IngestError, LiveConfig, LiveStats, SampleSpec,
    SourceSpec, StopSignal, StreamState, StreamStatus, VideoSource, YoutubeOptions, ingest_file,
    ingest_source, make_sample_video,
};
use horsestream_proto::FrameChunk;

#[path = "support/media.rs"]
mod media;
use media::{free_port, photo};

/// An 8 s, 25 fps sample video written as HLS by our own ingest at its native 25 fps, so the
/// live ingest below really resamples 25 → 10 fps. Returns the served root.
fn hls_fixture(dir: &Path) -> PathBuf {
    let video = dir.join("sample.mp4");
    let spec = SampleSpec {
        width: 320,
        height: 240,
        fps: Fps::new(25, 1),
        duration: Duration::from_secs(8),
        hold: Duration::from_secs(1),
        ..SampleSpec::default()
    };
    make_sample_video(&photo(), &video, &spec).unwrap();
    let root = dir.join("www");
    let cfg = IngestConfig {
        fps: Fps::new(25, 1),
        hls: Some(HlsConfig::new(&root)),
        ..IngestConfig::default()
    };
    ingest_file(&video, "src", &cfg, &mut |_| Ok::<(), Infallible>(())).unwrap();
    root
}

/// Requests a [`Server`] answered: the path, and whether it came in proxy form
/// (`GET http://host/path`).
type Log = Arc<Mutex<Vec<(String, bool)>>>;

/// A static file server on loopback that also acts as an HTTP proxy for itself (it answers
/// absolute-form request targets), with keep-alive.
struct Server {
    port: u16,
    log: Log,
}

impl Server {
    fn start(root: PathBuf) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let log: Log = Arc::default();
        let log2 = log.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming().flatten() {
                let (root, log) = (root.clone(), log2.clone());
                std::thread::spawn(move || serve(conn, &root, &log));
            }
        });
        Server { port, log }
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}/{path}", self.port)
    }

    fn requests(&self) -> Vec<(String, bool)> {
        self.log.lock().unwrap().clone()
    }
}

fn serve(conn: TcpStream, root: &Path, log: &Log) {
    let mut reader = BufReader::new(conn.try_clone().unwrap());
    let mut out = conn;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let mut headers = HashMap::new();
        loop {
            let mut h = String::new();
            if reader.read_line(&mut h).unwrap_or(0) == 0 {
                return;
            }
            let h = h.trim_end();
            if h.is_empty() {
                break;
            }
            if let Some((k, v)) = h.split_once(':') {
                headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
            }
        }
        let target = line.split_whitespace().nth(1).unwrap_or("/").to_string();
        let (path, proxied) = match target.strip_prefix("http://") {
            Some(rest) => (rest.find('/').map_or("/", |i| &rest[i..]).to_string(), true),
            None => (target.clone(), false),
        };
        log.lock().unwrap().push((path.clone(), proxied));
        let file = root.join(path.trim_start_matches('/').split('?').next().unwrap());
        let (status, body) = match std::fs::read(&file) {
            Ok(b) => ("200 OK", b),
            Err(_) => ("404 Not Found", b"not found".to_vec()),
        };
        let kind = if path.ends_with(".m3u8") {
            "application/vnd.apple.mpegurl"
        } else {
            "video/mp2t"
        };
        let head = format!(
            "HTTP/1.1 {status}\r\nContent-Type: {kind}\r\nContent-Length: {}\r\n\r\n",
            body.len()
        );
        if out.write_all(head.as_bytes()).is_err() || out.write_all(&body).is_err() {
            return;
        }
        if headers
            .get("connection")
            .is_some_and(|c| c.eq_ignore_ascii_case("close"))
        {
            return;
        }
    }
}

#[derive(Debug)]
enum Event {
    Chunk(FrameChunk),
    Status(StreamStatus),
}

struct Run {
    rx: Receiver<Event>,
    events: Vec<Event>,
    stop: StopSignal,
    handle: Option<JoinHandle<Result<LiveStats, IngestError>>>,
}

impl Run {
    fn start(spec: SourceSpec, cfg: LiveConfig) -> Run {
        let (tx, rx) = channel();
        let stop = StopSignal::new();
        let stop2 = stop.clone();
        let handle = std::thread::spawn(move || {
            let tx2 = tx.clone();
            ingest_source(
                &spec,
                "web-1",
                &cfg,
                &stop2,
                &mut |c| {
                    let _ = tx.send(Event::Chunk(c));
                    Ok::<(), Infallible>(())
                },
                &mut |s| {
                    let _ = tx2.send(Event::Status(s));
                },
            )
        });
        Run {
            rx,
            events: Vec::new(),
            stop,
            handle: Some(handle),
        }
    }

    fn wait_for(&mut self, what: &str, timeout: Duration, done: impl Fn(&[Event]) -> bool) {
        let deadline = Instant::now() + timeout;
        while !done(&self.events) {
            match self
                .rx
                .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            {
                Ok(ev) => self.events.push(ev),
                Err(RecvTimeoutError::Timeout) => {
                    panic!("timed out waiting for {what}: {:#?}", self.statuses())
                }
                Err(RecvTimeoutError::Disconnected) => {
                    panic!("ingest ended waiting for {what}: {:#?}", self.statuses())
                }
            }
        }
    }

    fn stop(&mut self) -> LiveStats {
        self.stop.stop();
        let stats = self.handle.take().unwrap().join().unwrap().unwrap();
        self.events.extend(self.rx.try_iter());
        stats
    }

    fn statuses(&self) -> Vec<&StreamStatus> {
        self.events
            .iter()
            .filter_map(|e| match e {
                Event::Status(s) => Some(s),
                Event::Chunk(_) => None,
            })
            .collect()
    }

    fn chunks(&self) -> Vec<&FrameChunk> {
        self.events
            .iter()
            .filter_map(|e| match e {
                Event::Chunk(c) => Some(c),
                Event::Status(_) => None,
            })
            .collect()
    }
}

fn count(events: &[Event], state: &str) -> usize {
    events
        .iter()
        .filter(|e| matches!(e, Event::Status(s) if s.state.name() == state))
        .count()
}

fn live_config() -> LiveConfig {
    LiveConfig {
        ingest: IngestConfig {
            chunk_len: Duration::from_secs(2),
            chunk_overlap: Duration::from_millis(500),
            decode_threads: 1,
            ..IngestConfig::default()
        },
        backoff: BackoffConfig {
            seed: Some(3),
            initial: Duration::from_millis(200),
            ..BackoffConfig::default()
        },
        ..LiveConfig::default()
    }
}

/// Frames 100 ms apart (±1 ms) in every chunk, sequences increasing, and the frames of the
/// first connection (before its end-of-stream `Error`) cover the 8 s playlist.
fn assert_ten_fps(chunks: &[&FrameChunk]) {
    assert!(!chunks.is_empty());
    for c in chunks {
        assert_eq!((c.width, c.height), (320, 240));
        for pair in c.frames.windows(2) {
            let step = pair[1].pts_us - pair[0].pts_us;
            assert!(
                (step - 100_000).abs() <= 1_000,
                "chunk {}: step {step} µs",
                c.sequence
            );
        }
    }
    let seqs: Vec<u64> = chunks.iter().map(|c| c.sequence).collect();
    assert!(seqs.windows(2).all(|w| w[1] > w[0]), "{seqs:?}");
}

#[test]
fn our_hls_segments_are_2_s_with_a_valid_playlist() {
    let dir = tempfile::tempdir().unwrap();
    let video = dir.path().join("sample.mp4");
    let spec = SampleSpec {
        width: 320,
        height: 240,
        duration: Duration::from_secs(9),
        hold: Duration::from_secs(1),
        ..SampleSpec::default()
    };
    make_sample_video(&photo(), &video, &spec).unwrap();
    let hls = HlsConfig::new(dir.path().join("hls"));
    let cfg = IngestConfig {
        hls: Some(hls.clone()),
        ..IngestConfig::default()
    };
    ingest_file(&video, "paddock/1", &cfg, &mut |_| Ok::<(), Infallible>(())).unwrap();

    let stream_dir = hls.stream_dir("paddock/1");
    assert_eq!(stream_dir, dir.path().join("hls/paddock_1"));
    let playlist = std::fs::read_to_string(stream_dir.join("index.m3u8")).unwrap();
    let lines: Vec<&str> = playlist.lines().collect();
    assert_eq!(lines.first(), Some(&"#EXTM3U"), "{playlist}");
    assert!(lines.contains(&"#EXT-X-TARGETDURATION:2"), "{playlist}");
    assert_eq!(lines.last(), Some(&"#EXT-X-ENDLIST"), "{playlist}");
    let durations: Vec<f64> = lines
        .iter()
        .filter_map(|l| l.strip_prefix("#EXTINF:"))
        .map(|d| d.trim_end_matches(',').parse().unwrap())
        .collect();
    let segments: Vec<&str> = lines
        .iter()
        .copied()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .collect();
    // 9 s at 10 fps: four 2 s segments and a 1 s one.
    assert_eq!(durations, vec![2.0, 2.0, 2.0, 2.0, 1.0], "{playlist}");
    assert_eq!(segments.len(), 5);

    // Each segment holds its 2 s of slots: 20 frames from pts 2n s, TS timestamps = pts_us.
    for (n, name) in segments.iter().enumerate() {
        assert_eq!(*name, format!("seg_{n:06}.ts"));
        let mut src = VideoSource::open(&stream_dir.join(name), 1).unwrap();
        assert_eq!((src.width(), src.height()), (320, 240));
        let tb = src.time_base();
        let mut pts = Vec::new();
        while let Some(d) = src.next_frame().unwrap() {
            pts.push(tb.to_us(d.pts));
        }
        let want: Vec<i64> = (0..(durations[n] * 10.0).round() as i64)
            .map(|i| n as i64 * 2_000_000 + i * 100_000)
            .collect();
        assert_eq!(pts, want, "segment {n}");
    }
    // And the ffmpeg CLI plays the playlist from start to end.
    let out = Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-i"])
        .arg(stream_dir.join("index.m3u8"))
        .args(["-f", "null", "-"])
        .output()
        .expect("ffmpeg CLI");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Mean absolute difference of two decoded pictures' luma planes.
fn luma_diff(a: &ffmpeg_next::frame::Video, b: &ffmpeg_next::frame::Video) -> f64 {
    let (w, h) = (a.width() as usize, a.height() as usize);
    let mut sum = 0u64;
    for y in 0..h {
        let ra = &a.data(0)[y * a.stride(0)..][..w];
        let rb = &b.data(0)[y * b.stride(0)..][..w];
        sum += ra
            .iter()
            .zip(rb)
            .map(|(p, q)| p.abs_diff(*q) as u64)
            .sum::<u64>();
    }
    sum as f64 / (w * h) as f64
}

/// A 5 fps file at 10 fps: every decoded frame is held over two slots. The HLS writer scales
/// it once and sends that picture for both slots; the segments still hold every slot, and
/// each pair shows the same picture.
#[test]
fn hls_of_a_5_fps_file_repeats_each_picture_over_two_slots() {
    let dir = tempfile::tempdir().unwrap();
    let video = dir.path().join("slow.mp4");
    let spec = SampleSpec {
        width: 320,
        height: 240,
        fps: Fps::new(5, 1),
        duration: Duration::from_secs(4),
        hold: Duration::ZERO,
        ..SampleSpec::default()
    };
    make_sample_video(&photo(), &video, &spec).unwrap();
    let hls = HlsConfig::new(dir.path().join("hls"));
    let cfg = IngestConfig {
        hls: Some(hls.clone()),
        ..IngestConfig::default()
    };
    ingest_file(&video, "slow", &cfg, &mut |_| Ok::<(), Infallible>(())).unwrap();

    let stream_dir = hls.stream_dir("slow");
    let mut pictures = Vec::new();
    for n in 0..2 {
        let mut src = VideoSource::open(&stream_dir.join(format!("seg_{n:06}.ts")), 1).unwrap();
        let tb = src.time_base();
        while let Some(d) = src.next_frame().unwrap() {
            pictures.push((tb.to_us(d.pts), d.frame));
        }
    }
    let pts: Vec<i64> = pictures.iter().map(|(p, _)| *p).collect();
    assert_eq!(pts, (0..40).map(|i| i * 100_000).collect::<Vec<_>>());
    for (k, pair) in pictures.chunks(2).enumerate() {
        let same = luma_diff(&pair[0].1, &pair[1].1);
        assert!(same < 1.0, "slots {} and {}: {same}", 2 * k, 2 * k + 1);
    }
    // The source does move: the held pictures are not all one.
    let moved = luma_diff(&pictures[0].1, &pictures[38].1);
    assert!(moved > 5.0, "first vs last picture: {moved}");
}

#[test]
fn hls_playlist_over_http_is_ingested_at_exact_10_fps() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(hls_fixture(dir.path()));
    let url = server.url("src/index.m3u8");
    let spec = SourceSpec::parse(&url).unwrap();
    assert!(matches!(spec, SourceSpec::Http { .. }));
    let mut run = Run::start(spec, live_config());
    // A VOD playlist ends: the end of the first connection is an Error (then a retry).
    run.wait_for("the end of the playlist", Duration::from_secs(60), |ev| {
        count(ev, "error") >= 1
    });
    let stats = run.stop();
    let chunks = run.chunks();
    assert_ten_fps(&chunks);
    // Every slot of the first connection: 8 s at 10 fps (the second may have started).
    assert!(stats.frames_emitted >= 80, "{stats:?}");
    let first: Vec<i64> = chunks
        .iter()
        .flat_map(|c| c.frames.iter().map(|f| f.pts_us))
        .filter(|p| *p < 8_000_000)
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    assert_eq!(first, (0..80).map(|i| i * 100_000).collect::<Vec<_>>());
    assert!(chunks[0].source.starts_with(&url), "{}", chunks[0].source);
    assert!(server.requests().iter().any(|(p, _)| p.ends_with(".ts")));
}

/// A `yt-dlp` script that logs its arguments to `yt-dlp-args.txt` and prints `prints`; with
/// `refuse`, a run whose arguments contain that text fails instead (exit 1, a message).
fn stand_in_yt_dlp(dir: &Path, prints: &str, refuse: Option<&str>) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let script = bin.join("yt-dlp");
    let args = dir.join("yt-dlp-args.txt");
    let refuse = refuse.map_or(String::new(), |r| {
        format!("case \"$*\" in *'{r}'*) echo 'ERROR: proxy refused' >&2; exit 1;; esac\n")
    });
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\n# stand-in for yt-dlp: logs its arguments, prints one media URL\n\
             echo \"$*\" >> '{}'\n{refuse}echo '{prints}'\n",
            args.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    bin
}

fn path_with(dir: &Path) -> std::ffi::OsString {
    let mut dirs = vec![dir.to_path_buf()];
    dirs.extend(std::env::split_paths(
        &std::env::var_os("PATH").unwrap_or_default(),
    ));
    std::env::join_paths(dirs).unwrap()
}

#[test]
fn youtube_source_resolves_through_yt_dlp_and_rotates_past_a_dead_proxy() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(hls_fixture(dir.path()));
    let bin = stand_in_yt_dlp(dir.path(), &server.url("src/index.m3u8"), None);
    let cookies = dir.path().join("cookies.txt");
    std::fs::write(&cookies, "# Netscape HTTP Cookie File\n").unwrap();
    let dead = format!("http://user:proxypw@127.0.0.1:{}", free_port());
    let good = format!("http://user:proxypw@127.0.0.1:{}", server.port);
    let cfg = LiveConfig {
        youtube: YoutubeOptions {
            search_path: Some(path_with(&bin)),
            cookies: Some(cookies.clone()),
            proxies: vec![dead.clone(), good.clone()],
            ..YoutubeOptions::default()
        },
        ..live_config()
    };
    let page = "https://www.youtube.com/watch?v=standin";
    let spec = SourceSpec::parse(page).unwrap();
    assert_eq!(spec, SourceSpec::Youtube { url: page.into() });
    let mut run = Run::start(spec, cfg);
    run.wait_for("2 chunks", Duration::from_secs(60), |ev| {
        ev.iter().filter(|e| matches!(e, Event::Chunk(_))).count() >= 2
    });
    run.stop();

    let names: Vec<&str> = run.statuses().iter().map(|s| s.state.name()).collect();
    assert_eq!(
        &names[..4],
        &["connecting", "error", "connecting", "active"],
        "the dead proxy fails, the next one works: {names:?}"
    );
    let args = std::fs::read_to_string(dir.path().join("yt-dlp-args.txt")).unwrap();
    let calls: Vec<&str> = args.lines().collect();
    assert!(calls[0].contains(&format!("--proxy {dead}")), "{args}");
    assert!(calls[1].contains(&format!("--proxy {good}")), "{args}");
    for call in &calls {
        assert!(
            call.contains(&format!("--cookies {}", cookies.display())),
            "{call}"
        );
        assert!(call.ends_with(&format!("-- {page}")), "{call}");
    }
    // FFmpeg fetched the playlist and segments through the proxy.
    let reqs = server.requests();
    assert!(
        reqs.iter()
            .any(|(p, proxied)| *proxied && p.ends_with(".m3u8")),
        "{reqs:?}"
    );
    assert!(
        reqs.iter()
            .any(|(p, proxied)| *proxied && p.ends_with(".ts")),
        "{reqs:?}"
    );

    let chunks = run.chunks();
    assert_ten_fps(&chunks);
    // The resolved URL and the proxy password are never shown.
    let text = format!(
        "{:?} {:?}",
        run.statuses(),
        chunks.iter().map(|c| &c.source).collect::<Vec<_>>()
    );
    assert!(
        !text.contains("proxypw") && !text.contains("index.m3u8"),
        "{text}"
    );
    assert!(chunks[0].source.starts_with(page), "{}", chunks[0].source);
}

/// Regression: a yt-dlp run that failed through a proxy moved the rotation on twice (once
/// in the resolver, once in the loop), so with two proxies it came back to the dead one.
#[test]
fn youtube_resolve_failure_moves_to_the_next_proxy_once() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(hls_fixture(dir.path()));
    let dead = format!("http://127.0.0.1:{}", free_port());
    let good = format!("http://127.0.0.1:{}", server.port);
    let bin = stand_in_yt_dlp(
        dir.path(),
        &server.url("src/index.m3u8"),
        Some(&format!("--proxy {dead}")),
    );
    let cfg = LiveConfig {
        youtube: YoutubeOptions {
            search_path: Some(path_with(&bin)),
            proxies: vec![dead.clone(), good.clone()],
            ..YoutubeOptions::default()
        },
        ..live_config()
    };
    let mut run = Run::start(SourceSpec::parse("youtube:standin").unwrap(), cfg);
    run.wait_for("a chunk", Duration::from_secs(60), |ev| {
        ev.iter().any(|e| matches!(e, Event::Chunk(_)))
    });
    run.stop();

    let names: Vec<&str> = run.statuses().iter().map(|s| s.state.name()).collect();
    assert_eq!(
        &names[..4],
        &["connecting", "error", "connecting", "active"],
        "{names:?}"
    );
    let reason = run
        .statuses()
        .iter()
        .find_map(|s| match &s.state {
            StreamState::Error { reason, .. } => Some(reason.clone()),
            _ => None,
        })
        .unwrap();
    assert!(reason.contains("proxy refused"), "{reason}");
    let args = std::fs::read_to_string(dir.path().join("yt-dlp-args.txt")).unwrap();
    let calls: Vec<&str> = args.lines().collect();
    assert!(calls[0].contains(&format!("--proxy {dead}")), "{args}");
    assert!(calls[1].contains(&format!("--proxy {good}")), "{args}");
}

#[test]
fn youtube_source_without_yt_dlp_is_a_clear_error() {
    let empty = tempfile::tempdir().unwrap();
    let cfg = LiveConfig {
        youtube: YoutubeOptions {
            search_path: Some(empty.path().as_os_str().to_owned()),
            ..YoutubeOptions::default()
        },
        ..live_config()
    };
    let spec = SourceSpec::parse("youtube:dQw4w9WgXcQ").unwrap();
    let mut statuses = Vec::new();
    let err = ingest_source(
        &spec,
        "yt-1",
        &cfg,
        &StopSignal::new(),
        &mut |_| Ok::<(), Infallible>(()),
        &mut |s| statuses.push(s),
    )
    .unwrap_err();
    assert!(matches!(err, IngestError::MissingTool { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(msg.starts_with("yt-dlp not found"), "{msg}");
    assert!(msg.contains("install"), "{msg}");
    assert_eq!(statuses.len(), 1);
    assert_eq!(
        statuses[0].state,
        StreamState::Error {
            reason: msg,
            retry_in: None
        }
    );
}
