//! Helpers the ingest integration tests share (included with `#[path]`; each test file uses
//! some of them): the shared photo, a free loopback port, the ffmpeg CLI.
#![allow(dead_code)]

#[allow(unused_imports)] // not every test file takes a port
pub use horsestream_proto::testing::free_port;
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
