//! Helpers the ingest integration tests share (included with `#[path]`; each test file uses
//! some of them): the shared photo, a free loopback port, the ffmpeg CLI.
#![allow(dead_code)]

use std::path::PathBuf;
use std::process::Command;

/// `horses.jpg` from the shared media folder (`HORSESTREAM_MEDIA_DIR` overrides); FFmpeg's
/// own logger is turned down to errors.
pub fn photo() -> PathBuf {
    ffmpeg_next::log::set_level(ffmpeg_next::log::Level::Error);
    std::env::var_os("HORSESTREAM_MEDIA_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/media"))
        .join("horses.jpg")
}

/// A loopback port free at the time of asking and not given out before by this process (the
/// kernel may hand a just-freed port to the next `bind(0)`).
pub fn free_port() -> u16 {
    static GIVEN: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
    let mut given = GIVEN.lock().unwrap_or_else(|e| e.into_inner());
    loop {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("a free loopback port");
        if !given.contains(&port) {
            given.push(port);
            return port;
        }
    }
}

/// Runs the ffmpeg CLI quietly (`-y`), panics with its stderr on failure; its stdout.
pub fn ffmpeg(args: &[&str]) -> Vec<u8> {
    let out = Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-y"])
        .args(args)
        .output()
        .expect("the ffmpeg CLI (scripts/install-deps.sh installs it)");
    assert!(
        out.status.success(),
        "ffmpeg: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}
