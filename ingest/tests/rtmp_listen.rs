//! RTMP listen: ingest binds `rtmp://127.0.0.1:PORT/live/KEY`, the ffmpeg CLI pushes our
//! generated sample video to it in real time (`-re`), chunks arrive at exact 10 fps, the
//! stream key never shows, and when the encoder stops ingest listens again at once and takes
//! a second push.

use std::convert::Infallible;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError, channel};
use std::time::{Duration, Instant};

use horsestream_ingest::{
    Fps, IngestConfig, LiveConfig, SampleSpec, SourceSpec, StopSignal, StreamState, StreamStatus,
    ingest_source, make_sample_video,
};
use horsestream_proto::FrameChunk;

#[path = "support/media.rs"]
mod media;
use media::{free_port, photo};

/// `ffmpeg -re -i video -c copy -f flv url`, killed on drop.
struct Push(Child);

impl Push {
    fn start(video: &Path, url: &str) -> Push {
        let child = Command::new("ffmpeg")
            .args(["-hide_banner", "-loglevel", "error", "-re", "-i"])
            .arg(video)
            .args(["-c", "copy", "-f", "flv", url])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("the ffmpeg CLI (scripts/install-deps.sh installs it)");
        Push(child)
    }

    fn wait(mut self) -> bool {
        self.0.wait().is_ok_and(|s| s.success())
    }
}

impl Drop for Push {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[derive(Debug)]
enum Event {
    Chunk(FrameChunk),
    Status(StreamStatus),
}

fn wait_for(
    rx: &Receiver<Event>,
    events: &mut Vec<Event>,
    what: &str,
    done: impl Fn(&[Event]) -> bool,
) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !done(events) {
        match rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            Ok(e) => events.push(e),
            Err(RecvTimeoutError::Timeout) => panic!("timed out waiting for {what}: {events:#?}"),
            Err(RecvTimeoutError::Disconnected) => panic!("ingest ended waiting for {what}"),
        }
    }
}

fn count(events: &[Event], state: &str) -> usize {
    events
        .iter()
        .filter(|e| matches!(e, Event::Status(s) if s.state.name() == state))
        .count()
}

#[test]
fn pushed_rtmp_stream_is_ingested_and_listened_for_again() {
    let dir = tempfile::tempdir().unwrap();
    let video = dir.path().join("push.mp4");
    let spec = SampleSpec {
        width: 320,
        height: 240,
        fps: Fps::new(25, 1),
        duration: Duration::from_secs(5),
        hold: Duration::from_secs(1),
        ..SampleSpec::default()
    };
    make_sample_video(&photo(), &video, &spec).unwrap();

    let port = free_port();
    let url = format!("rtmp://127.0.0.1:{port}/live/s3cr3tkey");
    let source = SourceSpec::parse(&url).unwrap();
    assert_eq!(source, SourceSpec::RtmpListen { url: url.clone() });
    let cfg = LiveConfig {
        ingest: IngestConfig {
            chunk_len: Duration::from_secs(2),
            chunk_overlap: Duration::from_millis(500),
            decode_threads: 1,
            ..IngestConfig::default()
        },
        ..LiveConfig::default()
    };
    let (tx, rx) = channel();
    let stop = StopSignal::new();
    let stop2 = stop.clone();
    let handle = std::thread::spawn(move || {
        let tx2 = tx.clone();
        ingest_source(
            &source,
            "rtmp-1",
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
    let mut events = Vec::new();
    wait_for(&rx, &mut events, "listening", |ev| {
        count(ev, "connecting") >= 1
    });
    // The listener binds right after `Connecting`; an encoder that comes too early is
    // refused, as it would be by any RTMP server that is not up yet, and tries again.
    let push_until_active = |events: &mut Vec<Event>, n: usize| {
        for _ in 0..20 {
            let push = Push::start(&video, &url);
            let t = Instant::now();
            while t.elapsed() < Duration::from_secs(3) && count(events, "active") < n {
                if let Ok(e) = rx.recv_timeout(Duration::from_millis(100)) {
                    events.push(e);
                }
            }
            if count(events, "active") >= n {
                return push;
            }
        }
        panic!("no connection from the encoder: {events:#?}");
    };
    let push = push_until_active(&mut events, 1);
    assert!(push.wait(), "the first push failed");
    // The encoder is gone: end of stream, then listening again without a backoff.
    wait_for(&rx, &mut events, "listening again", |ev| {
        count(ev, "connecting") >= 2
    });
    let push = push_until_active(&mut events, 2);
    assert!(push.wait(), "the second push failed");
    stop.stop();
    let stats = handle.join().unwrap().unwrap();
    events.extend(rx.try_iter());

    let statuses: Vec<&StreamStatus> = events
        .iter()
        .filter_map(|e| match e {
            Event::Status(s) => Some(s),
            _ => None,
        })
        .collect();
    let ended = statuses
        .iter()
        .find_map(|s| match &s.state {
            StreamState::Error { reason, retry_in } => Some((reason.clone(), *retry_in)),
            _ => None,
        })
        .expect("an Error when the encoder stopped");
    assert!(ended.0.contains("stopped publishing"), "{ended:?}");
    assert_eq!(ended.1, Some(Duration::ZERO), "listens again at once");
    assert_eq!(stats.connections, 2, "{stats:?}");

    let chunks: Vec<&FrameChunk> = events
        .iter()
        .filter_map(|e| match e {
            Event::Chunk(c) => Some(c),
            _ => None,
        })
        .collect();
    // Two 5 s pushes at 2 s chunks with 0.5 s overlap: several chunks.
    assert!(chunks.len() >= 4, "{} chunks", chunks.len());
    let seqs: Vec<u64> = chunks.iter().map(|c| c.sequence).collect();
    assert!(seqs.windows(2).all(|w| w[1] > w[0]), "{seqs:?}");
    for c in &chunks {
        assert_eq!((c.width, c.height), (320, 240));
        for pair in c.frames.windows(2) {
            let step = pair[1].pts_us - pair[0].pts_us;
            // Frames of one push are exactly 100 ms apart; a chunk spanning the two pushes
            // jumps over the gap between them.
            assert!(
                (step - 100_000).abs() <= 1_000 || step > 100_000 && step % 100_000 == 0,
                "chunk {}: step {step} µs",
                c.sequence
            );
        }
        assert!(
            c.source
                .starts_with(&format!("rtmp://127.0.0.1:{port}/live/*** (h264 320x240)")),
            "{}",
            c.source
        );
    }
    let frames: usize = stats.frames_emitted as usize;
    assert!(frames >= 2 * 45, "two pushes of ~5 s at 10 fps: {frames}");
    let text = format!(
        "{statuses:?} {:?}",
        chunks.iter().map(|c| &c.source).collect::<Vec<_>>()
    );
    assert!(!text.contains("s3cr3tkey"), "{text}");
}
