//! Camera credentials on a real run (issue 8, security): `horsestream api` (trace logging)
//! over TimescaleDB stores two camera streams with logins for the project's GStreamer RTSP
//! camera (one right, one wrong), answers every stream route and takes snapshots through its
//! FFmpeg relay; neither password, in any encoding, may appear in a response body, in the
//! process list while FFmpeg runs (`ps`), or in the API's log. The ingest side (its log, chunk
//! sources, events) is checked by `tests/ingest_catalogue.rs`.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use base64::Engine;
use common::*;
use horsestream_api::auth::{AuthConfig, Role, TokenService};

const USER: &str = "cam-user";
/// Characters that change under percent-encoding, so each encoding is looked for.
const PASSWORD: &str = "Gr3y M4re;pw";
const WRONG: &str = "N0t the@pw";
const JWT_SECRET: &str = "secrets test JWT key, 32 bytes or more";

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Every form a password could leak in: as is, percent-encoded (URL user info), and inside a
/// Basic `Authorization` header.
fn forms(password: &str) -> Vec<String> {
    let pct: String = password
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect();
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("{USER}:{password}"));
    vec![password.to_owned(), pct, basic]
}

fn leaks(text: &str) -> Vec<String> {
    [PASSWORD, WRONG]
        .iter()
        .flat_map(|p| forms(p))
        .filter(|f| text.contains(f.as_str()))
        .collect()
}

/// One HTTP/1.1 request on a fresh connection: status and body.
fn http(addr: &str, method: &str, path: &str, token: &str, body: Option<&str>) -> (u16, Vec<u8>) {
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let body = body.unwrap_or("");
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut raw = Vec::new();
    let _ = s.read_to_end(&mut raw);
    let status = String::from_utf8_lossy(&raw[..raw.len().min(32)])
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map_or(Vec::new(), |i| raw[i + 4..].to_vec());
    (status, body)
}

/// Every command line on the machine, as `ps` shows them, but the test camera's own (which
/// is given the password to check it).
fn command_lines() -> String {
    let out = Command::new("ps").args(["-eww", "-o", "args="]).output();
    String::from_utf8_lossy(&out.unwrap().stdout)
        .lines()
        .filter(|l| !l.contains("rtsp-camera.py"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Runs `request` while another thread reads the process list every few milliseconds;
/// returns its result, what leaked into the process list, and how many lists were read.
fn watching_ps<T>(request: impl FnOnce() -> T) -> (T, Vec<String>, usize) {
    let done = Arc::new(AtomicBool::new(false));
    let watcher = {
        let done = done.clone();
        std::thread::spawn(move || {
            let (mut seen, mut reads) = (Vec::new(), 0);
            while !done.load(Ordering::Acquire) {
                seen.extend(leaks(&command_lines()));
                reads += 1;
                std::thread::sleep(Duration::from_millis(5));
            }
            (seen, reads)
        })
    };
    let r = request();
    done.store(true, Ordering::Release);
    let (seen, reads) = watcher.join().unwrap();
    (r, seen, reads)
}

#[test]
fn camera_credentials_stay_out_of_responses_process_lists_and_logs() {
    let db = required_env("HORSESTREAM_DATABASE_URL");
    let dir = tempfile::tempdir().unwrap();

    let cam_port = free_port();
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/rtsp-camera.py");
    let mut camera = Command::new("/usr/bin/python3")
        .arg(script)
        .args(["--port", &cam_port.to_string(), "--user", USER])
        .args(["--password", PASSWORD])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start scripts/rtsp-camera.py");
    let mut line = String::new();
    BufReader::new(camera.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let _camera = Killed(camera);
    assert_eq!(line.trim(), "ready");

    let addr = format!("127.0.0.1:{}", free_port());
    let log_path = dir.path().join("api.log");
    let log = std::fs::File::create(&log_path).unwrap();
    let api = Command::new(env!("CARGO_BIN_EXE_horsestream"))
        .args([
            "api",
            "--listen",
            &addr,
            "--no-events",
            "--database-url",
            &db,
        ])
        .env("HORSESTREAM_JWT_SECRET", JWT_SECRET)
        .env("HORSESTREAM_LOG", "trace")
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap();
    let mut api = Killed(api);
    let deadline = Instant::now() + Duration::from_secs(60);
    while std::net::TcpStream::connect(&addr).is_err()
        || http(&addr, "GET", "/api/v1/health", "", None).0 != 200
    {
        assert!(api.0.try_wait().unwrap().is_none(), "the API exited");
        assert!(Instant::now() < deadline, "the API never answered");
        std::thread::sleep(Duration::from_millis(200));
    }
    let admin = TokenService::new(&AuthConfig::new(JWT_SECRET).unwrap())
        .issue(1, "admin", Role::Admin)
        .unwrap()
        .access_token;

    let good = unique("cred-ok");
    let bad = unique("cred-wrong");
    let mut bodies = Vec::new();
    for (id, password) in [(&good, PASSWORD), (&bad, WRONG)] {
        let body = serde_json::json!({
            "id": id, "name": id, "sourceKind": "rtsp",
            "sourceUrl": format!("rtsp://127.0.0.1:{cam_port}/cam"),
            "credentials": {"username": USER, "password": password},
        });
        let (status, text) = http(
            &addr,
            "POST",
            "/api/v1/streams",
            &admin,
            Some(&body.to_string()),
        );
        let text = String::from_utf8_lossy(&text).into_owned();
        assert_eq!(status, 201, "{text}");
        bodies.push(text);
        for (method, path, body) in [
            ("GET", format!("/api/v1/streams/{id}"), None),
            ("GET", "/api/v1/streams".to_owned(), None),
            (
                "PATCH",
                format!("/api/v1/streams/{id}"),
                Some(r#"{"name": "renamed"}"#),
            ),
            ("POST", format!("/api/v1/streams/{id}/ptz/stop"), None),
        ] {
            let (status, text) = http(&addr, method, &path, &admin, body);
            let text = String::from_utf8_lossy(&text).into_owned();
            assert!(
                status < 500 || status == 502,
                "{method} {path}: {status} {text}"
            );
            bodies.push(text);
        }
    }

    // Snapshots: the right password gives a JPEG, the wrong one the camera's refusal; FFmpeg
    // runs during both, and the process list is read all along.
    let ((ok, refused), in_ps, reads) = watching_ps(|| {
        let ok = http(
            &addr,
            "GET",
            &format!("/api/v1/streams/{good}/snapshot"),
            &admin,
            None,
        );
        let refused = http(
            &addr,
            "GET",
            &format!("/api/v1/streams/{bad}/snapshot"),
            &admin,
            None,
        );
        (ok, refused)
    });
    assert_eq!(ok.0, 200, "{}", String::from_utf8_lossy(&ok.1));
    assert!(ok.1.starts_with(&[0xFF, 0xD8]), "a JPEG");
    let refused = String::from_utf8_lossy(&refused.1).into_owned();
    assert!(refused.contains("401"), "the camera's refusal: {refused}");
    bodies.push(refused);
    assert!(reads > 10, "the process list was read {reads} times");
    assert!(in_ps.is_empty(), "in the process list: {in_ps:?}");

    for b in &bodies {
        assert!(leaks(b).is_empty(), "a response holds a password: {b}");
    }
    let _ = api.0.kill();
    let _ = api.0.wait();
    let log = std::fs::read_to_string(&log_path).unwrap();
    assert!(
        log.contains("snapshot") || log.contains("/snapshot"),
        "the trace log covers the snapshot requests"
    );
    assert!(
        leaks(&log).is_empty(),
        "the API log holds {:?}",
        leaks(&log)
    );
}
