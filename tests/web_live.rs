//! The API, its gateway and the web client end to end on the real services, each process the
//! real binary: `horsestream api`, `horsestream dataflow` (Kafka, ONNX Runtime, TimescaleDB)
//! and `horsestream ingest`, in a database of their own (created and dropped by the test).
//!
//! - `official_socketio_client_gets_horse_boxes_across_a_gateway_restart`: the official Node
//!   `socket.io-client` (web/tests/live-client.mjs) logs in, subscribes to a stream that a live
//!   RTSP camera feeds (scripts/rtsp-camera.py looping the sample video), receives
//!   `detection:update` events with horse boxes, loses its connection when the API process is
//!   killed, reconnects to the restarted API, subscribes again and receives again.
//! - `browser_shows_horse_boxes_over_the_playing_video`: Playwright (playwright-core) drives
//!   Debian's Chromium (web/tests/browser.mjs) through the web client served by the API: log
//!   in, add a file stream, start it, and see boxes drawn over the playing HLS video. The
//!   stream is picked up by `horsestream ingest` in catalogue mode. It then changes the
//!   stream's alert settings in the page and finds them stored. Its dataflow runs the pose
//!   model the tests write on every stream, and the page draws each box's skeleton; the horse
//!   panel shows the joint angles of the pattern that model draws. The screenshot is saved in
//!   the target directory's `tmp/` (its path is printed).

mod common;
#[path = "common/pose_model.rs"]
mod pose_model;

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::OnceLock;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::*;
use serde_json::Value;

/// How long the test waits for one thing to happen before it fails (model loading, a chunk
/// of live video, inference on two shared cores).
const WAIT: Duration = Duration::from_secs(240);

/// The two tests each run a dataflow with ONNX Runtime: one at a time on a small machine.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner())
}

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// A child process killed (and reaped) when the test ends, however it ends.
struct Proc {
    name: &'static str,
    child: Child,
}

impl Proc {
    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
    }
}

fn spawn(name: &'static str, cmd: &mut Command) -> Proc {
    let child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("starting {name}: {e}"));
    Proc { name, child }
}

fn horsestream_cmd(args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_horsestream"));
    // Every store is named by a flag: `ingest --input` refuses a database URL, even from the
    // environment `scripts/services.sh env` sets.
    c.args(args)
        .env("HORSESTREAM_LOG", "warn")
        .env_remove("HORSESTREAM_DATABASE_URL")
        .stdin(Stdio::null());
    c
}

/// `scripts/web-build.sh` once per test binary: the npm packages (socket.io-client,
/// playwright-core) and the built client in web/dist.
fn web_build() -> &'static PathBuf {
    static DIST: OnceLock<PathBuf> = OnceLock::new();
    DIST.get_or_init(|| {
        let out = Command::new("bash")
            .arg(repo().join("scripts/web-build.sh"))
            .output()
            .expect("bash");
        assert!(
            out.status.success(),
            "scripts/web-build.sh failed (node 20+ and the npm registry are needed):\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        repo().join("web/dist")
    })
}

/// A database of its own on the test server, dropped with the value: `horsestream ingest` in
/// catalogue mode runs every enabled stream of its database, so tests must not share one.
struct Database {
    admin_url: String,
    name: String,
    url: String,
}

impl Database {
    fn create(prefix: &str) -> Database {
        let base = required_env("HORSESTREAM_DATABASE_URL");
        let (server, _) = base.rsplit_once('/').expect("postgres://host/db");
        let name = unique(prefix).replace('-', "_");
        let db = Database {
            admin_url: base.clone(),
            url: format!("{server}/{name}"),
            name,
        };
        db.sql(&format!("CREATE DATABASE \"{}\"", db.name));
        db
    }

    fn sql(&self, statement: &str) {
        tokio::runtime::Runtime::new().unwrap().block_on(async {
            use sqlx::Connection;
            let mut conn = sqlx::PgConnection::connect(&self.admin_url)
                .await
                .expect("connect to the test server");
            sqlx::raw_sql(sqlx::AssertSqlSafe(statement.to_owned()))
                .execute(&mut conn)
                .await
                .unwrap_or_else(|e| panic!("{statement}: {e}"));
        });
    }
}

impl Drop for Database {
    fn drop(&mut self) {
        let name = self.name.clone();
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            self.sql(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
        }));
        if r.is_err() {
            eprintln!("could not drop test database {name}");
        }
    }
}

struct ApiConfig<'a> {
    port: u16,
    db: &'a str,
    k: &'a horsestream_sinks::kafka::KafkaConfig,
    admin: &'a str,
    hash: &'a str,
    hls_dir: Option<&'a Path>,
    web_dir: Option<&'a Path>,
}

/// `horsestream api` on `cfg.port`, ready (its events consumer positioned) when this returns.
fn start_api(cfg: &ApiConfig) -> Proc {
    let port = cfg.port.to_string();
    let listen = format!("127.0.0.1:{port}");
    let mut cmd = horsestream_cmd(&[
        "api",
        "--listen",
        &listen,
        "--brokers",
        &cfg.k.brokers,
        "--events-topic",
        &cfg.k.events_topic,
        "--database-url",
        cfg.db,
        "--admin-user",
        cfg.admin,
        "--admin-password-hash",
        cfg.hash,
        "--jwt-secret",
        "web-live test secret of at least thirty-two bytes",
    ]);
    if let Some(d) = cfg.hls_dir {
        cmd.arg("--hls-dir").arg(d);
    }
    if let Some(d) = cfg.web_dir {
        cmd.arg("--web-dir").arg(d);
    }
    let mut api = spawn("api", &mut cmd);
    let deadline = Instant::now() + WAIT;
    while http_status(&listen, "/api/v1/ready") != Some(200) {
        if let Some(status) = api.child.try_wait().unwrap() {
            panic!("horsestream api exited with {status}");
        }
        assert!(Instant::now() < deadline, "the API never became ready");
        std::thread::sleep(Duration::from_millis(200));
    }
    api
}

/// The status code of `GET path` on `addr`.
fn http_status(addr: &str, path: &str) -> Option<u16> {
    let mut s = std::net::TcpStream::connect(addr).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut buf = String::new();
    let _ = s.read_to_string(&mut buf);
    buf.split_whitespace().nth(1)?.parse().ok()
}

fn start_dataflow(
    db: &str,
    k: &horsestream_sinks::kafka::KafkaConfig,
    group: &str,
    extra: &[&str],
) -> Proc {
    let mut args = vec![
        "dataflow".to_owned(),
        "--workers".into(),
        "2".into(),
        "--database-url".into(),
        db.into(),
        "--group-id".into(),
        group.into(),
    ];
    args.extend(topic_args(k));
    args.extend(extra.iter().map(|a| a.to_string()));
    spawn(
        "dataflow",
        &mut horsestream_cmd(&args.iter().map(String::as_str).collect::<Vec<_>>()),
    )
}

/// A Node script of web/tests printing one JSON object per line; lines arrive on a channel.
struct Node {
    proc: Proc,
    stdin: ChildStdin,
    rx: mpsc::Receiver<Value>,
    lines: Vec<Value>,
}

impl Node {
    fn start(script: &str, env: &[(&str, &str)]) -> Node {
        let mut cmd = Command::new("node");
        cmd.arg(repo().join("web/tests").join(script))
            .current_dir(repo().join("web"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut proc = spawn("node", &mut cmd);
        let stdin = proc.child.stdin.take().unwrap();
        let stdout = proc.child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let v = serde_json::from_str(&line)
                    .unwrap_or_else(|_| serde_json::json!({ "type": "raw", "line": line }));
                if tx.send(v).is_err() {
                    break;
                }
            }
        });
        Node {
            proc,
            stdin,
            rx,
            lines: Vec::new(),
        }
    }

    /// Reads lines until one satisfies `done`, which it returns; fails on an error line, on
    /// the script's exit and after [`WAIT`].
    fn wait_for(&mut self, what: &str, done: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + WAIT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.rx.recv_timeout(left) {
                Ok(v) => {
                    eprintln!("{}: {v}", self.proc.name);
                    self.lines.push(v.clone());
                    assert_ne!(
                        v["type"], "error",
                        "node failed while waiting for {what}: {v}"
                    );
                    if done(&v) {
                        return v;
                    }
                }
                Err(_) => panic!(
                    "no {what} (the script {}):\n{}",
                    if self.proc.child.try_wait().ok().flatten().is_some() {
                        "exited"
                    } else {
                        "timed out"
                    },
                    self.lines
                        .iter()
                        .map(Value::to_string)
                        .collect::<Vec<_>>()
                        .join("\n")
                ),
            }
        }
    }
}

/// The RTSP test camera looping `file`, on a free port.
fn start_camera(file: &Path) -> (Proc, u16) {
    let port = free_port();
    let mut camera = spawn(
        "camera",
        Command::new("/usr/bin/python3")
            .arg(repo().join("scripts/rtsp-camera.py"))
            .args(["--port", &port.to_string(), "--file"])
            .arg(file)
            .stdout(Stdio::piped()),
    );
    let mut line = String::new();
    BufReader::new(camera.child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert!(line.contains("ready"), "camera said {line:?}");
    (camera, port)
}

fn is_horse_update(v: &Value, stream: &str, connection: u64) -> bool {
    v["type"] == "detections"
        && v["streamId"] == stream
        && v["connection"] == connection
        && v["boxes"].as_u64().unwrap_or(0) > 0
}

#[test]
fn official_socketio_client_gets_horse_boxes_across_a_gateway_restart() {
    let _one = serial();
    web_build();
    let name = unique("web-live");
    let k = fresh_topics(&name);
    let db = Database::create("hs_web_live");
    let stream = name.clone();
    let (video, _) = sample();
    let (_camera, cam_port) = start_camera(video);
    let camera_url = format!("rtsp://127.0.0.1:{cam_port}/cam");

    let out = horsestream(&[
        "stream",
        "add",
        "--database-url",
        &db.url,
        "--id",
        &stream,
        "--url",
        &camera_url,
    ]);
    assert!(out.status.success(), "stream add: {}", error_line(&out));
    let hash = password_hash("pw-web-admin");
    let api_cfg = ApiConfig {
        port: free_port(),
        db: &db.url,
        k: &k,
        admin: "web-admin",
        hash: &hash,
        hls_dir: None,
        web_dir: None,
    };
    let mut api = start_api(&api_cfg);
    let _dataflow = start_dataflow(&db.url, &k, &format!("{name}-group"), &[]);
    let mut ingest_args = vec![
        "ingest".to_owned(),
        "--input".into(),
        camera_url.clone(),
        "--stream-id".into(),
        stream.clone(),
    ];
    ingest_args.extend(topic_args(&k));
    let _ingest = spawn(
        "ingest",
        &mut horsestream_cmd(&ingest_args.iter().map(String::as_str).collect::<Vec<_>>()),
    );

    let url = format!("http://127.0.0.1:{}", api_cfg.port);
    let mut client = Node::start(
        "live-client.mjs",
        &[
            ("HS_URL", &url),
            ("HS_USER", "web-admin"),
            ("HS_PASSWORD", "pw-web-admin"),
            ("HS_STREAM", &stream),
        ],
    );
    let ack = client.wait_for("the first subscription", |v| {
        v["type"] == "subscribed" && v["n"] == 1
    });
    assert_eq!(ack["ack"]["ok"], true, "{ack}");
    assert_eq!(ack["ack"]["channels"], serde_json::json!(["detections"]));

    // Horse boxes from the real dataflow: tracked, named horses.
    let first = client.wait_for("detection:update with boxes", |v| {
        is_horse_update(v, &stream, 1)
    });
    assert_eq!(
        first["valid"], true,
        "boxes with a size and a confidence: {first}"
    );
    assert!(
        !first["tracks"].as_array().unwrap().is_empty(),
        "track ids: {first}"
    );
    assert!(
        !first["horses"].as_array().unwrap().is_empty(),
        "horse names: {first}"
    );

    // The gateway goes away under the client (killed, not shut down): a transport close.
    api.kill();
    let gone = client.wait_for("the disconnect", |v| v["type"] == "disconnect");
    assert_eq!(gone["reason"], "transport close", "{gone}");
    let _api = start_api(&api_cfg);

    // The client reconnects by itself, subscribes again on the new process and resumes.
    let again = client.wait_for("the second subscription", |v| {
        v["type"] == "subscribed" && v["n"] == 2
    });
    assert_eq!(again["ack"]["ok"], true, "{again}");
    let resumed = client.wait_for("detection:update after the reconnect", |v| {
        is_horse_update(v, &stream, 2)
    });
    assert_eq!(resumed["valid"], true, "{resumed}");
    assert!(
        resumed["sequence"].as_u64() > first["sequence"].as_u64(),
        "a later chunk: {first} then {resumed}"
    );
    let _ = writeln!(client.stdin, "quit");
    client.wait_for("the client's end", |v| v["type"] == "done");
}

#[test]
fn browser_shows_horse_boxes_over_the_playing_video() {
    let _one = serial();
    let dist = web_build();
    let name = unique("web-browser");
    let k = fresh_topics(&name);
    let db = Database::create("hs_web_browser");
    // The schema, before ingest polls it: the API's own start-up applies the migrations.
    let hls = tempfile::tempdir().unwrap();
    let hash = password_hash("pw-web-admin");
    let api_cfg = ApiConfig {
        port: free_port(),
        db: &db.url,
        k: &k,
        admin: "web-admin",
        hash: &hash,
        hls_dir: Some(hls.path()),
        web_dir: Some(dist),
    };
    let _api = start_api(&api_cfg);
    // Every stream runs the pose model the tests write (`common/pose_model.rs`), so each box
    // the page draws carries its skeleton.
    let pose_dir = tempfile::tempdir().unwrap();
    let (models, manifest) = pose_model::model_dir(pose_dir.path(), true);
    let _dataflow = start_dataflow(
        &db.url,
        &k,
        &format!("{name}-group"),
        &[
            "--model-dir",
            models.to_str().unwrap(),
            "--manifest",
            manifest.to_str().unwrap(),
            "--pose-model",
            pose_model::POSE_MODEL,
        ],
    );
    let mut ingest_args = vec![
        "ingest".to_owned(),
        "--database-url".into(),
        db.url.clone(),
        "--hls-dir".into(),
        hls.path().display().to_string(),
    ];
    ingest_args.extend(topic_args(&k));
    let mut ingest = spawn(
        "ingest (catalogue)",
        &mut horsestream_cmd(&ingest_args.iter().map(String::as_str).collect::<Vec<_>>()),
    );

    let (video, _) = sample();
    let video_url = format!("file://{}", video.display());
    let screenshot = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("{name}.png"));
    let url = format!("http://127.0.0.1:{}", api_cfg.port);
    let mut browser = Node::start(
        "browser.mjs",
        &[
            ("HS_URL", &url),
            ("HS_USER", "web-admin"),
            ("HS_PASSWORD", "pw-web-admin"),
            ("HS_STREAM", &name),
            ("HS_VIDEO_URL", &video_url),
            ("HS_SCREENSHOT", screenshot.to_str().unwrap()),
        ],
    );
    let result = browser.wait_for("the browser's result", |v| v["type"] == "result");
    eprintln!("screenshot: {}", screenshot.display());
    assert!(
        ingest.child.try_wait().unwrap().is_none(),
        "catalogue ingest exited"
    );
    assert!(result["boxes"].as_u64().unwrap() > 0, "{result}");
    // Every detected box on screen has its AP-10K skeleton drawn (all 17 keypoints score
    // above the page's threshold), from the same frame's overlay data as the box; a box the
    // tracker interpolated over a missed frame has none.
    assert!(
        result["detected"].as_u64().unwrap() <= result["boxes"].as_u64().unwrap(),
        "{result}"
    );
    assert_eq!(
        result["keypoints"].as_u64(),
        result["detected"]
            .as_u64()
            .map(|b| b * pose_model::K as u64),
        "{result}"
    );
    assert!(result["painted"].as_u64().unwrap() >= 200, "{result}");
    assert!(result["videoWidth"].as_u64().unwrap() > 0, "{result}");
    let png = std::fs::read(&screenshot).expect("the screenshot was saved");
    assert!(
        png.starts_with(b"\x89PNG"),
        "a PNG at {}",
        screenshot.display()
    );

    // The alert settings the page saved are the stream's rules in the store.
    assert_eq!(result["alertSettingsSaved"], true, "{result}");
    let rules = tokio::runtime::Runtime::new().unwrap().block_on(async {
        let store = horsestream_sinks::Store::connect(&db.url).await.unwrap();
        store.get_stream(&name).await.unwrap().alert_rules
    });
    assert_eq!(
        (rules.no_movement_s, rules.lying_down_s, rules.zone_exit),
        (Some(120.0), None, true)
    );

    // The horse panel's pose line, from the newest gait window with pose: each joint's mean
    // angle is the `fixed-peaks` pattern's (a similarity keeps angles) with range 0, and a
    // pattern that does not move has no hoof stride and no symmetry index.
    let line = result["horsePose"]
        .as_str()
        .expect("the horse panel's pose line");
    assert!(!line.contains("hoof stride"), "{line}");
    assert!(line.ends_with("symmetry fore –, hind –"), "{line}");
    for (limb, angle) in pose_model::joint_angles() {
        let label = limb.replace('_', " ");
        let shown: f64 = line
            .split(&format!("{label} "))
            .nth(1)
            .and_then(|rest| rest.split('°').next())
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("no {label} angle in {line:?}"));
        assert!(
            (shown - angle).abs() <= 1.0,
            "{label}: {angle:.1}° in {line:?}"
        );
        assert!(
            line.contains(&format!("{label} {shown:.0}° (range 0°)")),
            "{line}"
        );
    }

    // What the canvas drew is what the store holds for that PTS.
    let pts = result["pts"].as_i64().unwrap();
    let frames = stored(&db.url, &name);
    assert!(
        frames
            .iter()
            .any(|f| f.pts_us.is_some_and(|p| (p - pts).abs() <= 60_000) && !f.boxes.is_empty()),
        "no stored boxes near pts {pts}"
    );
}
