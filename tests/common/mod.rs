//! Helpers shared by the binary's integration tests: the services' addresses (from
//! `scripts/services.sh env`), the shared media and model directories, and running the binary.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use horsestream_ingest::{SampleInfo, SampleSpec, make_sample_video};
#[allow(unused_imports)] // not every test file takes a port
pub use horsestream_proto::testing::free_port;

/// An environment variable the test cannot run without. Missing is a failure, not a skip.
pub fn required_env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!(
            "{name} is not set: start the services and load their settings with \
             `bash scripts/services.sh start && eval \"$(bash scripts/services.sh env)\"` \
             (scripts/test.sh does both)"
        )
    })
}

pub fn shared_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared")
}

pub fn horses_jpg() -> PathBuf {
    shared_dir().join("media/horses.jpg")
}

/// A name no earlier run used, for topics, groups and stream ids.
pub fn unique(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("{prefix}-{}-{nanos}", std::process::id())
}

/// The sample video, written once per test binary.
pub fn sample() -> &'static (PathBuf, SampleInfo) {
    static SAMPLE: OnceLock<(PathBuf, SampleInfo)> = OnceLock::new();
    SAMPLE.get_or_init(|| {
        let dir = std::env::temp_dir().join(unique("horsestream-sample"));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("sample.mp4");
        let info = make_sample_video(&horses_jpg(), &path, &SampleSpec::default())
            .expect("writing the sample video");
        (path, info)
    })
}

pub fn horsestream(args: &[&str]) -> Output {
    let out = Command::new(env!("CARGO_BIN_EXE_horsestream"))
        .args(args)
        .env("HORSESTREAM_LOG", "error")
        .output()
        .expect("running horsestream");
    eprintln!(
        "$ horsestream {}\n{}{}",
        args.join(" "),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// The last line horsestream wrote to stderr: its error, if it failed.
pub fn error_line(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr)
        .lines()
        .rfind(|l| l.starts_with("horsestream: error:"))
        .unwrap_or_default()
        .to_owned()
}

/// Files that are not usable video, as the bad-input tests give them.
pub fn bad_files(dir: &Path) -> Vec<(PathBuf, &'static str)> {
    let text = dir.join("notes.mp4");
    std::fs::write(
        &text,
        "this is a text file about horses, not a video\n".repeat(50),
    )
    .unwrap();
    let empty = dir.join("empty.mp4");
    std::fs::write(&empty, b"").unwrap();
    let truncated = dir.join("truncated.mp4");
    let bytes = std::fs::read(&sample().0).unwrap();
    std::fs::write(&truncated, &bytes[..bytes.len() / 2]).unwrap();
    vec![
        (text, "not a media file"),
        (empty, "empty file"),
        (truncated, "truncated before its index"),
    ]
}

/// Fresh chunks and events topics named after `prefix`, created on the test broker.
pub fn fresh_topics(prefix: &str) -> horsestream_sinks::kafka::KafkaConfig {
    let mut k =
        horsestream_sinks::kafka::KafkaConfig::new(required_env("HORSESTREAM_KAFKA_BROKERS"));
    k.chunks_topic = format!("{prefix}.chunks");
    k.events_topic = format!("{prefix}.events");
    tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(horsestream_sinks::kafka::ensure_topics(&k))
        .unwrap();
    k
}

/// The flags that point a subcommand at `k`'s broker and topics.
pub fn topic_args(k: &horsestream_sinks::kafka::KafkaConfig) -> Vec<String> {
    [
        "--brokers",
        &k.brokers,
        "--chunks-topic",
        &k.chunks_topic,
        "--events-topic",
        &k.events_topic,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

/// Runs horsestream with `args` followed by `k`'s topic flags; it must succeed.
pub fn run_ok(args: &[&str], k: &horsestream_sinks::kafka::KafkaConfig) {
    let mut all: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    all.extend(topic_args(k));
    let out = horsestream(&all.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(
        out.status.success(),
        "horsestream {}: {}",
        args[0],
        error_line(&out)
    );
}

/// Every stored frame of `stream` in the store at `url`.
pub fn stored(url: &str, stream: &str) -> Vec<horsestream_sinks::FrameRow> {
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        horsestream_sinks::Store::connect(url)
            .await
            .unwrap()
            .frames(stream)
            .await
            .unwrap()
    })
}

/// Registers `stream` in the store at `url` (creating the store's schema if needed): the
/// store refuses results of streams nobody registered.
pub fn register(url: &str, stream: &str) {
    let out = horsestream(&[
        "stream",
        "add",
        "--database-url",
        url,
        "--id",
        stream,
        "--url",
        "file:///sample.mp4",
    ]);
    assert!(out.status.success(), "stream add: {}", error_line(&out));
}

/// Registers `stream` at `url` with a zone over the left 60 % of the 768-pixel frame (so
/// `zone_exit` alerts can fire) and a calibration (gait in m/s).
pub fn register_with_zone(url: &str, stream: &str) {
    use horsestream_sinks::{Calibration, NewStream, Store, Zone};
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        let store = Store::connect(url).await.unwrap();
        store
            .create_stream(&NewStream {
                id: stream.into(),
                name: stream.into(),
                source_url: "file:///sample.mp4".into(),
                source_kind: "file".into(),
                credentials_secret: None,
                calibration: Some(Calibration::PixelsPerMetre(60.0)),
                zones: vec![Zone {
                    name: "left".into(),
                    polygon: vec![[0.0, 0.0], [460.0, 0.0], [460.0, 512.0], [0.0, 512.0]],
                }],
                enabled: false,
            })
            .await
            .unwrap();
    });
}

/// A stored alert as compared across runs: time (µs), kind, severity, message, dedup key,
/// horse name.
pub type AlertFacts = (i64, String, String, String, Option<String>, Option<String>);

/// The alerts of `stream` stored at `url`, sorted.
pub fn alerts(url: &str, stream: &str) -> Vec<AlertFacts> {
    use horsestream_sinks::{AlertQuery, Store};
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        let store = Store::connect(url).await.unwrap();
        let horses = store.list_horses(stream).await.unwrap();
        let name_of = |id: Option<i64>| {
            id.and_then(|id| horses.iter().find(|h| h.id == id))
                .map(|h| h.display_name.clone())
        };
        let mut alerts: Vec<_> = store
            .list_alerts(&AlertQuery {
                stream_id: Some(stream.into()),
                unacknowledged_only: false,
                limit: 10_000,
            })
            .await
            .unwrap()
            .into_iter()
            .map(|a| {
                (
                    a.time.timestamp_micros(),
                    a.kind,
                    a.severity.as_str().to_owned(),
                    a.message,
                    a.dedup_key,
                    name_of(a.horse_id),
                )
            })
            .collect();
        alerts.sort();
        alerts
    })
}

/// A stored horse as compared across runs: name, first and last seen (µs), track ids, gait
/// totals.
pub type HorseFacts = (
    String,
    i64,
    i64,
    Vec<i64>,
    Vec<horsestream_sinks::HorseTotalsRow>,
);

/// What the dataflow derived for `stream` beyond its boxes: its horses (name, first and last
/// seen, track ids, gait totals, by name) and its gait windows, as stored at `url`.
pub fn analysis(url: &str, stream: &str) -> (Vec<HorseFacts>, Vec<horsestream_sinks::GaitRow>) {
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        let store = horsestream_sinks::Store::connect(url).await.unwrap();
        let mut horses: Vec<HorseFacts> = Vec::new();
        for h in store.list_horses(stream).await.unwrap() {
            let totals = store.horse_totals(h.id).await.unwrap();
            horses.push((
                h.display_name,
                h.first_seen.timestamp_micros(),
                h.last_seen.timestamp_micros(),
                h.track_ids,
                totals,
            ));
        }
        horses.sort_by(|a, b| a.0.cmp(&b.0));
        let mut gait = store.gait(stream).await.unwrap();
        // Horse row ids depend on insertion order across streams, not on the analysis.
        for g in &mut gait {
            g.horse_id = None;
        }
        (horses, gait)
    })
}

/// Fresh topics named after a new `unique(prefix)`, with the sample video ingested into them
/// as the stream of that name. Returns the name (stream id) and the topics.
pub fn ingested_sample(prefix: &str) -> (String, horsestream_sinks::kafka::KafkaConfig) {
    let name = unique(prefix);
    let k = fresh_topics(&name);
    let video = sample().0.to_str().unwrap().to_owned();
    run_ok(&["ingest", "--input", &video, "--stream-id", &name], &k);
    (name, k)
}

/// One HTTP/1.1 request to `addr` (JSON body, bearer token), answered with its status code and
/// body; `(0, "")` when nothing answers.
pub fn http(
    addr: &str,
    method: &str,
    path: &str,
    body: Option<&serde_json::Value>,
    token: Option<&str>,
) -> (u16, String) {
    use std::io::{Read, Write};
    let Ok(mut s) = std::net::TcpStream::connect(addr) else {
        return (0, String::new());
    };
    let _ = s.set_read_timeout(Some(std::time::Duration::from_secs(30)));
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n{auth}\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    if s.write_all(request.as_bytes()).is_err() {
        return (0, String::new());
    }
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf);
    let text = String::from_utf8_lossy(&buf);
    let status = text.get(9..12).and_then(|c| c.parse().ok()).unwrap_or(0);
    let body = text.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    (status, body.to_owned())
}

/// `horsestream api --hash-password` of `password`: the argon2 hash `--admin-password-hash` takes.
pub fn password_hash(password: &str) -> String {
    use std::io::Write;
    let mut child = Command::new(env!("CARGO_BIN_EXE_horsestream"))
        .args(["api", "--hash-password"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("running horsestream api --hash-password");
    writeln!(child.stdin.take().unwrap(), "{password}").unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "hashing a password");
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// A database of this test's own on the shared PostgreSQL server, dropped at the end.
pub struct OwnDatabase {
    name: String,
    admin: String,
    pub url: String,
}

impl OwnDatabase {
    pub fn create(rt: &tokio::runtime::Runtime, prefix: &str) -> Self {
        let base = required_env("HORSESTREAM_DATABASE_URL");
        let (server, _) = base.rsplit_once('/').expect("a database URL with a path");
        let name = unique(prefix).replace('-', "_");
        let admin = format!("{server}/postgres");
        rt.block_on(async {
            let pool = sqlx::PgPool::connect(&admin).await.unwrap();
            sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
                .execute(&pool)
                .await
                .unwrap();
        });
        OwnDatabase {
            url: format!("{server}/{name}"),
            name,
            admin,
        }
    }
}

impl Drop for OwnDatabase {
    fn drop(&mut self) {
        if let Ok(rt) = tokio::runtime::Runtime::new() {
            rt.block_on(async {
                if let Ok(pool) = sqlx::PgPool::connect(&self.admin).await {
                    let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
                        "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                        self.name
                    )))
                    .execute(&pool)
                    .await;
                }
            });
        }
    }
}

/// A self-signed certificate authority named `name`, for the TLS tests to sign with.
pub fn new_ca(name: &str) -> rcgen::CertifiedKey {
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, name);
    params.key_usages = vec![
        rcgen::KeyUsagePurpose::KeyCertSign,
        rcgen::KeyUsagePurpose::CrlSign,
    ];
    let key_pair = rcgen::KeyPair::generate().unwrap();
    let cert = params.self_signed(&key_pair).unwrap();
    rcgen::CertifiedKey { cert, key_pair }
}
