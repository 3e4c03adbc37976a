//! Backup and restore of the TimescaleDB database with `scripts/backup.sh` and
//! `scripts/restore.sh`, against the real PostgreSQL (`scripts/services.sh start`): rows
//! written through `horsestream_sinks::Store` into a fresh database are backed up, restored into
//! another fresh database, and the restored store answers exactly the same; `horsestream api`
//! then serves the restored database (streams, detections, horses over REST). Both databases
//! are dropped at the end, also when the test fails.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use chrono::{DateTime, TimeZone, Utc};
use horsestream_proto::{ProcessedChunk, testing};
use horsestream_sinks::{
    Calibration, ChunkErrorRecord, EMBEDDING_DIM, FrameRow, GaitRow, Horse, HorseMatch,
    HorseSighting, NewStream, Store, StoreStats, Stream, Zone,
};

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn psql_bin() -> PathBuf {
    let debian = PathBuf::from("/usr/lib/postgresql/15/bin/psql");
    if debian.exists() {
        debian
    } else {
        PathBuf::from("psql")
    }
}

/// `url` with its database replaced by `db` (query parameters kept).
fn with_database(url: &str, db: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, format!("?{q}")),
        None => (url, String::new()),
    };
    let scheme_end = base.find("://").expect("a postgres:// URL") + 3;
    let host_end = base[scheme_end..]
        .find('/')
        .map_or(base.len(), |i| scheme_end + i);
    format!("{}/{db}{query}", &base[..host_end])
}

/// One `psql -tA` query; its output, trimmed. Panics with psql's message on failure.
fn psql(url: &str, sql: &str) -> String {
    let out = Command::new(psql_bin())
        .args([url, "-XtAv", "ON_ERROR_STOP=1", "-c", sql])
        .output()
        .expect("running psql");
    assert!(
        out.status.success(),
        "psql {sql:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// Fresh databases on the test server, dropped (connections closed by force) when it goes.
struct Databases {
    admin_url: String,
    names: Vec<String>,
}

impl Databases {
    fn new(url: &str) -> Self {
        Databases {
            admin_url: with_database(url, "postgres"),
            names: Vec::new(),
        }
    }

    /// A database name nobody uses, to be dropped at the end; `create` makes it now.
    fn fresh(&mut self, role: &str, create: bool) -> String {
        let name = common::unique(&format!("hs_backup_{role}")).replace('-', "_");
        if create {
            psql(&self.admin_url, &format!("CREATE DATABASE \"{name}\""));
        }
        self.names.push(name.clone());
        name
    }
}

impl Drop for Databases {
    fn drop(&mut self) {
        for name in &self.names {
            let sql = format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)");
            let dropped = Command::new(psql_bin())
                .args([&self.admin_url, "-Xqc", &sql])
                .status();
            if !matches!(dropped, Ok(s) if s.success()) {
                eprintln!("could not drop test database {name}: {dropped:?}");
            }
        }
    }
}

fn script(name: &str, args: &[&str]) {
    let out = Command::new("bash")
        .arg(repo().join("scripts").join(name))
        .args(args)
        .output()
        .expect("running bash");
    eprintln!(
        "$ scripts/{name} {}\n{}{}",
        args.join(" "),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "scripts/{name} failed");
}

fn at(y: i32, mo: u32, d: u32, h: u32, mi: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(y, mo, d, h, mi, 0).unwrap()
}

/// Chunk `sequence` (10 s each) of a stream that started at `start`.
fn chunk(stream_id: &str, sequence: u64, start: DateTime<Utc>, boxes: &[usize]) -> ProcessedChunk {
    let first_pts = sequence as i64 * 10_000_000;
    testing::chunk(
        stream_id,
        sequence,
        start.timestamp_micros(),
        first_pts,
        10_000_000,
        boxes,
    )
}

fn embedding(phase: f32) -> Vec<f32> {
    (0..EMBEDDING_DIM)
        .map(|i| (i as f32 * 0.37 + phase).sin())
        .collect()
}

fn new_stream(id: &str, enabled: bool) -> NewStream {
    NewStream {
        id: id.to_owned(),
        name: format!("Paddock {id}"),
        source_url: "rtsp://cam-7.local:554/stream1".into(),
        source_kind: "rtsp".into(),
        credentials_secret: Some("viewer:s3cret".into()),
        calibration: Some(Calibration::PixelsPerMetre(38.5)),
        zones: vec![Zone {
            name: "gate".into(),
            polygon: vec![[0.0, 0.0], [120.0, 0.0], [120.0, 80.0]],
        }],
        enabled,
    }
}

/// Everything the test reads back from a store.
#[derive(Debug, PartialEq)]
struct Snapshot {
    stats: StoreStats,
    frames: Vec<Vec<FrameRow>>,
    streams: Vec<Stream>,
    credentials: Option<String>,
    chunk_errors: Vec<ChunkErrorRecord>,
    horses: Vec<Horse>,
    nearest: Vec<HorseMatch>,
    gait: Vec<GaitRow>,
}

async fn snapshot(store: &Store, streams: &[&str]) -> Snapshot {
    let mut frames = Vec::new();
    for s in streams {
        frames.push(store.frames(s).await.unwrap());
    }
    Snapshot {
        stats: store.stats().await.unwrap(),
        frames,
        streams: store.list_streams().await.unwrap(),
        credentials: store.stream_credentials(streams[0]).await.unwrap(),
        chunk_errors: store.chunk_errors().await.unwrap(),
        horses: store.list_horses(streams[0]).await.unwrap(),
        nearest: store
            .nearest_horse(streams[0], &embedding(0.05), 2)
            .await
            .unwrap(),
        gait: store.gait(streams[0]).await.unwrap(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backup_restored_into_a_fresh_database_answers_the_same_rows() {
    let url = common::required_env("HORSESTREAM_DATABASE_URL");
    let mut dbs = Databases::new(&url);
    let source_url = with_database(&url, &dbs.fresh("src", true));
    let restored_url = with_database(&url, &dbs.fresh("dst", false));
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("horsestream.dump");
    let file = file.to_str().unwrap();

    // Rows of every kind, in a database of their own.
    let source = Store::connect(&source_url).await.unwrap();
    let (a, b) = ("paddock-north", "stable-cam");
    source.create_stream(&new_stream(a, true)).await.unwrap();
    source.create_stream(&new_stream(b, false)).await.unwrap();
    let t0 = at(2026, 3, 1, 10, 0);
    source
        .write_chunk(&chunk(a, 0, t0, &[2, 1, 0, 3]))
        .await
        .unwrap();
    source.write_chunk(&chunk(a, 1, t0, &[1, 1])).await.unwrap();
    // Another week: another hypertable chunk.
    source
        .write_chunk(&chunk(b, 0, at(2026, 3, 9, 6, 30), &[1]))
        .await
        .unwrap();
    source
        .record_error(&ChunkErrorRecord {
            source: "horsestream.chunks".into(),
            partition: 3,
            offset: 41,
            stage: "decode".into(),
            reason: "truncated JPEG".into(),
        })
        .await
        .unwrap();
    for (track, phase) in [(1_i64, 0.0_f32), (2, 1.5)] {
        let horse = source
            .upsert_horse(&HorseSighting {
                horse_id: None,
                stream_id: a.into(),
                time: t0,
                track_id: Some(track),
                colour: Some("bay".into()),
            })
            .await
            .unwrap();
        source
            .add_horse_feature(horse.id, t0, &embedding(phase))
            .await
            .unwrap();
    }
    source
        .write_gait(&[GaitRow {
            time: t0,
            stream_id: a.into(),
            track_id: 1,
            horse_id: None,
            speed: 1.4,
            acceleration: 0.1,
            unit: "metres_per_second".into(),
            stride_hz: Some(0.9),
            gait_class: "walk".into(),
            distance: 14.0,
            pose: None,
        }])
        .await
        .unwrap();
    let before = snapshot(&source, &[a, b]).await;
    assert_eq!(before.stats.chunks, 3);
    assert_eq!(before.stats.detections, 9);
    assert_eq!(before.stats.chunk_errors, 1);
    assert_eq!(before.horses.len(), 2);
    let first = before.horses.iter().find(|h| h.track_ids == [1]).unwrap();
    assert_eq!(before.nearest[0].horse_id, first.id);

    script("backup.sh", &["-d", &source_url, file]);
    script("restore.sh", &["-c", "-d", &restored_url, file]);

    // The restored database: out of TimescaleDB's restoring mode, both hypertables back.
    assert_eq!(psql(&restored_url, "SHOW timescaledb.restoring"), "off");
    assert_eq!(
        psql(
            &restored_url,
            "SELECT string_agg(hypertable_name, ',' ORDER BY hypertable_name) \
             FROM timescaledb_information.hypertables"
        ),
        "detections,gait_metrics"
    );
    // Connecting applies no migration again (the migrations table came along) and the store
    // answers exactly what the source answered.
    let restored = Store::connect(&restored_url).await.unwrap();
    let after = snapshot(&restored, &[a, b]).await;
    assert_eq!(after, before);

    // The API serves the restored database: its streams, detections and horses over REST.
    // (Started off the test's runtime: creating the topic blocks on a runtime of its own.)
    let api = {
        let url = restored_url.clone();
        std::thread::spawn(move || RestoredApi::start(&url))
            .join()
            .unwrap()
    };
    let login = serde_json::json!({"username": "restore-admin", "password": "pw-restore"});
    let (status, body) = common::http(&api.addr, "POST", "/api/v1/auth/login", Some(&login), None);
    assert_eq!(status, 200, "{body}");
    let token: serde_json::Value = serde_json::from_str(&body).unwrap();
    let token = token["accessToken"].as_str().unwrap();
    let get = |path: &str| {
        let (status, body) = common::http(&api.addr, "GET", path, None, Some(token));
        assert_eq!(status, 200, "GET {path}: {body}");
        serde_json::from_str::<serde_json::Value>(&body).unwrap()
    };
    let streams = get("/api/v1/streams");
    for id in [a, b] {
        assert!(
            streams.as_array().unwrap().iter().any(|s| s["id"] == id),
            "{id} in {streams}"
        );
    }
    let detections = get(&format!(
        "/api/v1/detections?stream={a}&from=2020-01-01T00:00:00Z&to=2030-01-01T00:00:00Z&limit=1000"
    ));
    let served = detections["items"].as_array().map_or(0, Vec::len);
    let stored_a: usize = before.frames[0].iter().map(|f| f.boxes.len()).sum();
    assert_eq!(served, stored_a, "{detections}");
    let horses = get(&format!("/api/v1/streams/{a}/horses"));
    assert_eq!(
        horses.as_array().unwrap().len(),
        before.horses.iter().filter(|h| h.stream_id == a).count(),
        "{horses}"
    );
    drop(api);

    // It takes new rows, in a time range no restored hypertable chunk covers.
    restored
        .write_chunk(&chunk(a, 2, at(2026, 5, 1, 12, 0), &[2]))
        .await
        .unwrap();
    let stats = restored.stats().await.unwrap();
    assert_eq!(stats.chunks, 4);
    assert_eq!(stats.detections, 11);
    // The source was only read.
    assert_eq!(source.stats().await.unwrap(), before.stats);
}

/// `horsestream api` on a restored database, killed when dropped.
struct RestoredApi {
    addr: String,
    child: std::process::Child,
}

impl RestoredApi {
    fn start(url: &str) -> Self {
        let addr = format!("127.0.0.1:{}", common::free_port());
        let hash = common::password_hash("pw-restore");
        // Its live events come from a topic of its own.
        let k = common::fresh_topics("backup-api");
        let child = Command::new(env!("CARGO_BIN_EXE_horsestream"))
            .args([
                "api",
                "--listen",
                &addr,
                "--database-url",
                url,
                "--admin-user",
                "restore-admin",
                "--admin-password-hash",
                &hash,
                "--jwt-secret",
                "backup test secret of at least thirty-two bytes",
                "--brokers",
                &k.brokers,
                "--events-topic",
                &k.events_topic,
            ])
            .env("HORSESTREAM_LOG", "error")
            .spawn()
            .expect("starting horsestream api");
        let mut api = RestoredApi { addr, child };
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        while common::http(&api.addr, "GET", "/api/v1/ready", None, None).0 != 200 {
            if let Some(status) = api.child.try_wait().unwrap() {
                panic!("horsestream api exited with {status}");
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the API never became ready"
            );
            std::thread::sleep(std::time::Duration::from_millis(200));
        }
        api
    }
}

impl Drop for RestoredApi {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn database_is_swapped_in_a_url() {
    assert_eq!(
        with_database("postgres://u:p@h:5432/horsestream?sslmode=disable", "x"),
        "postgres://u:p@h:5432/x?sslmode=disable"
    );
    assert_eq!(
        with_database(
            "postgres://postgres@127.0.0.1:15432/horsestream",
            "postgres"
        ),
        "postgres://postgres@127.0.0.1:15432/postgres"
    );
}
