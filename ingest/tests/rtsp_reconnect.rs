//! Live ingest against a real RTSP camera: GStreamer's RTSP server from
//! `scripts/rtsp-camera.py`, started on a free loopback port by each test. The camera is
//! killed, frozen and restarted under a running [`ingest_live`]; ingest must reconnect on
//! its own, keep chunk sequence numbers unique and increasing, record the gap and report the
//! status transitions. These tests fail (never skip) when the GStreamer pieces are missing.

use std::convert::Infallible;
use std::io::{BufRead, BufReader, Read};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender, channel};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use horsestream_ingest::{
    BackoffConfig, IngestConfig, LiveConfig, LiveStats, RtspTransport, StopSignal, StreamState,
    StreamStatus, ingest_live,
};
use horsestream_proto::FrameChunk;
use horsestream_proto::testing::free_port;

const PYTHON: &str = "/usr/bin/python3";
const INSTALL_HINT: &str = "the test RTSP camera needs GStreamer's RTSP server: run \
     `bash scripts/install-deps.sh` (python3-gi, gir1.2-gst-rtsp-server-1.0, gstreamer1.0-plugins-*)";

fn script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../scripts/rtsp-camera.py")
}

fn wall_us() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_micros() as i64
}

/// A running `scripts/rtsp-camera.py`; killed (SIGKILL, like a camera losing power) on drop.
struct Camera {
    child: Child,
}

impl Camera {
    fn start(port: u16, extra: &[&str]) -> Camera {
        assert!(
            std::path::Path::new(PYTHON).exists(),
            "{PYTHON} not found; {INSTALL_HINT}"
        );
        let mut child = Command::new(PYTHON)
            .arg(script())
            .args(["--port", &port.to_string()])
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}; {INSTALL_HINT}", script().display()));
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = channel();
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            let ready = lines.next().and_then(Result::ok);
            let _ = tx.send(ready);
            for _ in lines {} // keep the pipe drained
        });
        match rx.recv_timeout(Duration::from_secs(20)) {
            Ok(Some(line)) if line.trim() == "ready" => Camera { child },
            other => {
                let _ = child.kill();
                let _ = child.wait();
                let mut err = String::new();
                if let Some(mut e) = child.stderr.take() {
                    let _ = e.read_to_string(&mut err);
                }
                panic!("the RTSP camera did not become ready ({other:?}): {err}\n{INSTALL_HINT}");
            }
        }
    }

    fn pid(&self) -> String {
        self.child.id().to_string()
    }

    fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .args([sig, &self.pid()])
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "kill {sig} failed");
    }

    fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Camera {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[derive(Debug)]
enum Event {
    Chunk(FrameChunk),
    Status(StreamStatus),
}

/// Everything the ingest thread reported, with the instant it arrived.
struct Run {
    rx: Receiver<(Instant, Event)>,
    events: Vec<(Instant, Event)>,
    stop: StopSignal,
    handle: Option<JoinHandle<LiveStats>>,
}

impl Run {
    fn start(url: String, cfg: LiveConfig) -> Run {
        let (tx, rx): (Sender<(Instant, Event)>, _) = channel();
        let stop = StopSignal::new();
        let stop2 = stop.clone();
        let handle = std::thread::spawn(move || {
            let tx2 = tx.clone();
            ingest_live(
                &url,
                "cam-1",
                &cfg,
                &stop2,
                &mut |c| {
                    let _ = tx.send((Instant::now(), Event::Chunk(c)));
                    Ok::<(), Infallible>(())
                },
                &mut |s| {
                    let _ = tx2.send((Instant::now(), Event::Status(s)));
                },
            )
            .expect("ingest_live returns stats when stopped")
        });
        Run {
            rx,
            events: Vec::new(),
            stop,
            handle: Some(handle),
        }
    }

    /// Collects events until `done` holds for the events so far, or panics after `timeout`.
    fn wait_for(
        &mut self,
        what: &str,
        timeout: Duration,
        done: impl Fn(&[(Instant, Event)]) -> bool,
    ) {
        let deadline = Instant::now() + timeout;
        while !done(&self.events) {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.rx.recv_timeout(left) {
                Ok(ev) => self.events.push(ev),
                Err(RecvTimeoutError::Timeout) => {
                    panic!(
                        "timed out waiting for {what}; events: {:#?}",
                        self.summary()
                    )
                }
                Err(RecvTimeoutError::Disconnected) => {
                    panic!(
                        "ingest ended while waiting for {what}: {:#?}",
                        self.summary()
                    )
                }
            }
        }
    }

    fn stop(&mut self) -> LiveStats {
        self.stop.stop();
        let stats = self.handle.take().unwrap().join().expect("ingest thread");
        self.events.extend(self.rx.try_iter());
        stats
    }

    fn statuses(&self) -> Vec<&StreamStatus> {
        self.events
            .iter()
            .filter_map(|(_, e)| match e {
                Event::Status(s) => Some(s),
                Event::Chunk(_) => None,
            })
            .collect()
    }

    fn chunks(&self) -> Vec<&FrameChunk> {
        self.events
            .iter()
            .filter_map(|(_, e)| match e {
                Event::Chunk(c) => Some(c),
                Event::Status(_) => None,
            })
            .collect()
    }

    fn summary(&self) -> Vec<String> {
        self.events
            .iter()
            .map(|(_, e)| match e {
                Event::Status(s) => format!("{:?}", s.state),
                Event::Chunk(c) => format!(
                    "chunk {} [{}, {}) {} frames",
                    c.sequence,
                    c.start_pts_us,
                    c.end_pts_us,
                    c.frames.len()
                ),
            })
            .collect()
    }
}

fn count_chunks(events: &[(Instant, Event)]) -> usize {
    events
        .iter()
        .filter(|(_, e)| matches!(e, Event::Chunk(_)))
        .count()
}

fn actives(events: &[(Instant, Event)]) -> Vec<Instant> {
    events
        .iter()
        .filter_map(|(t, e)| match e {
            Event::Status(StreamStatus {
                state: StreamState::Active { .. },
                ..
            }) => Some(*t),
            _ => None,
        })
        .collect()
}

/// Short chunks keep the tests fast: 2 s with 0.5 s overlap at 10 fps.
fn live_config() -> LiveConfig {
    LiveConfig {
        ingest: IngestConfig {
            chunk_len: Duration::from_secs(2),
            chunk_overlap: Duration::from_millis(500),
            decode_threads: 1,
            ..Default::default()
        },
        backoff: BackoffConfig {
            seed: Some(7),
            ..Default::default()
        },
        ..Default::default()
    }
}

/// True if `names` contains `pattern` as an ordered subsequence, each element one of the
/// alternatives.
fn has_subsequence(names: &[&str], pattern: &[&[&str]]) -> bool {
    let mut it = names.iter();
    pattern
        .iter()
        .all(|alts| it.by_ref().any(|n| alts.contains(n)))
}

fn assert_sequences_strictly_increase(chunks: &[&FrameChunk]) {
    let seqs: Vec<u64> = chunks.iter().map(|c| c.sequence).collect();
    assert!(
        seqs.windows(2).all(|w| w[1] > w[0]),
        "sequence numbers not strictly increasing: {seqs:?}"
    );
    for c in chunks {
        assert_eq!(
            c.start_pts_us,
            c.sequence as i64 * 1_500_000,
            "chunk {}",
            c.sequence
        );
        let t: Vec<i64> = c.frames.iter().map(|f| f.capture_time_us).collect();
        assert!(
            t.windows(2).all(|w| w[1] > w[0]),
            "chunk {} times {t:?}",
            c.sequence
        );
        for f in &c.frames {
            assert!(f.pts_us >= c.start_pts_us && f.pts_us < c.end_pts_us);
            assert_eq!(f.pts_us % 100_000, 0, "frames on the 10 fps grid");
        }
    }
}

#[test]
fn camera_restart_reconnects_with_gap_and_unique_sequences() {
    let port = free_port();
    let camera = Camera::start(port, &[]);
    let mut run = Run::start(format!("rtsp://127.0.0.1:{port}/cam"), live_config());
    run.wait_for("2 chunks", Duration::from_secs(30), |ev| {
        count_chunks(ev) >= 2
    });

    let (killed, killed_us) = (Instant::now(), wall_us());
    camera.kill();
    // Longer than a chunk (2 s): the chunk open when the camera died ends during the outage.
    std::thread::sleep(Duration::from_secs(4));
    let camera = Camera::start(port, &[]);
    let (back, back_us) = (Instant::now(), wall_us());
    let before = actives(&run.events).len();
    run.wait_for("Active after the restart", Duration::from_secs(15), |ev| {
        actives(ev).len() > before
    });
    let reconnect = *actives(&run.events).last().unwrap() - back;
    eprintln!("reconnected {reconnect:?} after the camera was back");
    assert!(
        reconnect <= Duration::from_secs(5),
        "reconnected only {reconnect:?} after the camera came back"
    );
    // Two more chunks: the one spanning the outage and a clean one after it.
    let n = count_chunks(&run.events);
    run.wait_for(
        "2 chunks after reconnecting",
        Duration::from_secs(20),
        |ev| count_chunks(ev) >= n + 2,
    );
    let stats = run.stop();
    drop(camera);

    let statuses = run.statuses();
    let names: Vec<&str> = statuses.iter().map(|s| s.state.name()).collect();
    assert_eq!(names.first(), Some(&"connecting"), "{names:?}");
    assert_eq!(names.last(), Some(&"stopped"), "{names:?}");
    assert!(
        has_subsequence(
            &names,
            &[
                &["active"],
                &["stalled", "error"],
                &["connecting"],
                &["active"],
                &["stopped"]
            ]
        ),
        "transitions: {names:?}"
    );
    assert!(statuses.windows(2).all(|w| w[1].at_us >= w[0].at_us));

    // The gap covers the outage, in the Active status and in the stats.
    let gap = statuses
        .iter()
        .find_map(|s| match s.state {
            StreamState::Active { gap: Some(g), .. } => Some(g),
            _ => None,
        })
        .expect("a gap on the reconnect's Active status");
    assert_eq!(stats.gaps, vec![gap]);
    assert!(
        gap.from_us <= killed_us + 500_000,
        "{gap:?} vs kill at {killed_us}"
    );
    assert!(gap.to_us >= back_us, "{gap:?} vs camera back at {back_us}");
    assert!(gap.duration() >= Duration::from_secs(4), "{gap:?}");

    // That chunk was published while the camera was down, not held until it came back.
    let during_outage = run
        .events
        .iter()
        .filter(|(t, e)| matches!(e, Event::Chunk(_)) && *t > killed && *t < back)
        .count();
    assert!(
        during_outage >= 1,
        "no chunk published during the outage: {:#?}",
        run.summary()
    );

    let chunks = run.chunks();
    assert_sequences_strictly_increase(&chunks);
    assert_eq!(stats.chunks as usize, chunks.len());
    // No frame falls inside the gap; frames exist on both sides of it.
    let times: Vec<i64> = chunks
        .iter()
        .flat_map(|c| c.frames.iter().map(|f| f.capture_time_us))
        .collect();
    assert!(!times.iter().any(|&t| t >= gap.from_us && t < gap.to_us));
    assert!(times.iter().any(|&t| t < gap.from_us) && times.iter().any(|&t| t >= gap.to_us));
    for c in &chunks {
        assert_eq!((c.width, c.height), (320, 240));
        assert!(
            c.source
                .starts_with(&format!("rtsp://127.0.0.1:{port}/cam (h264 320x240)"))
        );
    }
    assert_eq!(stats.connections, 2);
}

#[test]
fn camera_that_never_answers_is_an_error_retried_with_growing_backoff() {
    let port = free_port(); // nothing listens here
    let mut run = Run::start(format!("rtsp://127.0.0.1:{port}/cam"), live_config());
    let errors = |ev: &[(Instant, Event)]| {
        ev.iter()
            .filter(|(_, e)| {
                matches!(
                    e,
                    Event::Status(StreamStatus {
                        state: StreamState::Error { .. },
                        ..
                    })
                )
            })
            .count()
    };
    run.wait_for("3 failed attempts", Duration::from_secs(20), |ev| {
        errors(ev) >= 3
    });
    let stats = run.stop();

    let statuses = run.statuses();
    let mut attempts = Vec::new();
    let mut delays = Vec::new();
    for s in &statuses {
        match &s.state {
            StreamState::Connecting { attempt } => attempts.push((*attempt, s.at_us)),
            StreamState::Error { reason, retry_in } => {
                assert!(
                    reason.contains("cannot open the stream")
                        && reason.contains("Connection refused"),
                    "unclear reason: {reason}"
                );
                delays.push(retry_in.expect("retried"));
            }
            StreamState::Stopped => {}
            other => panic!("unexpected state {other:?}"),
        }
    }
    assert_eq!(statuses.last().unwrap().state, StreamState::Stopped);
    assert!(attempts.len() >= 3, "{attempts:?}");
    assert_eq!(
        attempts.iter().map(|a| a.0).take(3).collect::<Vec<_>>(),
        vec![1, 2, 3]
    );
    assert!(
        delays.windows(2).all(|w| w[1] > w[0]),
        "backoff not growing: {delays:?}"
    );
    assert!(delays[0] <= Duration::from_millis(500) && delays[0] >= Duration::from_millis(400));
    // Each attempt waited its announced delay.
    for (w, d) in attempts.windows(2).zip(&delays) {
        let waited = Duration::from_micros((w[1].1 - w[0].1) as u64);
        assert!(waited >= *d, "waited {waited:?} < {d:?}");
    }
    assert_eq!(stats.chunks, 0);
    assert_eq!(stats.connections, 0);
}

#[test]
fn credentials_never_appear_in_statuses_or_chunks() {
    let port = free_port();
    let _camera = Camera::start(port, &["--user", "admin", "--password", "Sup3r:secret"]);
    let good = format!("rtsp://admin:Sup3r%3Asecret@127.0.0.1:{port}/cam");
    let bad = format!("rtsp://admin:wrong-Pa55@127.0.0.1:{port}/cam");

    let mut run = Run::start(bad, live_config());
    run.wait_for("an auth error", Duration::from_secs(20), |ev| {
        ev.iter().any(|(_, e)| {
            matches!(
                e,
                Event::Status(StreamStatus {
                    state: StreamState::Error { .. },
                    ..
                })
            )
        })
    });
    run.stop();
    let text = format!("{:?}", run.statuses());
    assert!(text.contains("401"), "{text}");
    assert!(
        !text.contains("wrong-Pa55") && !text.contains("admin"),
        "{text}"
    );

    let mut run = Run::start(good, live_config());
    run.wait_for("a chunk", Duration::from_secs(30), |ev| {
        count_chunks(ev) >= 1
    });
    run.stop();
    let chunk = run.chunks()[0].clone();
    assert!(
        chunk
            .source
            .starts_with(&format!("rtsp://***@127.0.0.1:{port}/cam ")),
        "{}",
        chunk.source
    );
    let text = format!("{:?} {}", run.statuses(), chunk.source);
    for secret in ["Sup3r", "secret", "admin"] {
        assert!(!text.contains(secret), "{secret} leaked: {text}");
    }
}

#[test]
fn frozen_camera_is_stalled_then_reconnected_over_udp() {
    let port = free_port();
    let camera = Camera::start(port, &[]);
    let cfg = LiveConfig {
        transport: RtspTransport::Udp,
        stall_timeout: Duration::from_secs(2),
        connect_timeout: Duration::from_secs(3),
        ..live_config()
    };
    let mut run = Run::start(format!("rtsp://127.0.0.1:{port}/cam"), cfg);
    run.wait_for("a chunk", Duration::from_secs(30), |ev| {
        count_chunks(ev) >= 1
    });
    // SIGSTOP: the sockets stay open but nothing is sent, like a hung camera.
    camera.signal("-STOP");
    let frozen = Instant::now();
    run.wait_for("Stalled", Duration::from_secs(10), |ev| {
        ev.iter().any(|(_, e)| {
            matches!(
                e,
                Event::Status(StreamStatus {
                    state: StreamState::Stalled { .. },
                    ..
                })
            )
        })
    });
    let detected = frozen.elapsed();
    eprintln!("stall detected after {detected:?}");
    assert!(detected >= Duration::from_millis(1500) && detected < Duration::from_secs(3));
    camera.signal("-CONT");
    let before = actives(&run.events).len();
    run.wait_for("Active after the thaw", Duration::from_secs(20), |ev| {
        actives(ev).len() > before
    });
    let stats = run.stop();
    drop(camera);
    let names: Vec<&str> = run.statuses().iter().map(|s| s.state.name()).collect();
    assert!(
        has_subsequence(
            &names,
            &[
                &["active"],
                &["stalled"],
                &["connecting"],
                &["active"],
                &["stopped"]
            ]
        ),
        "{names:?}"
    );
    assert_sequences_strictly_increase(&run.chunks());
    assert_eq!(stats.gaps.len(), 1, "{:?}", stats.gaps);
}
