//! Snapshots: one JPEG frame grabbed with FFmpeg from the stream's own RTSP URL. FFmpeg never
//! gets the camera's address: it talks to a loopback relay that connects only to the
//! registered host and port, and that ends the session when the camera answers with a
//! redirect (FFmpeg would otherwise follow an RTSP 3xx to any host). Interleaved TCP transport
//! only, so no media flows outside the relay.

use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::CameraCredentials;
use super::guard::{GuardError, Target};

#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error("camera address refused: {0}")]
    Guard(#[from] GuardError),
    #[error("camera redirected the stream; redirects are refused")]
    Redirect,
    #[error("no frame from the camera: {0}")]
    Grab(String),
    #[error("camera did not give a frame in time")]
    Timeout,
}

/// Follows the camera → client side of an RTSP-over-TCP session: RTSP responses (status line,
/// headers, `Content-Length` body) and `$`-framed interleaved packets. Pure.
#[derive(Debug, Default)]
pub struct ResponseScanner {
    head: Vec<u8>,
    skip: usize,
    frame_header: Vec<u8>,
}

impl ResponseScanner {
    /// Consumes bytes; `Err(status)` as soon as a response has a 3xx status.
    pub fn feed(&mut self, mut data: &[u8]) -> Result<(), u16> {
        while !data.is_empty() {
            if self.skip > 0 {
                let n = self.skip.min(data.len());
                self.skip -= n;
                data = &data[n..];
                continue;
            }
            if !self.frame_header.is_empty() || (self.head.is_empty() && data[0] == b'$') {
                self.frame_header.push(data[0]);
                data = &data[1..];
                if self.frame_header.len() == 4 {
                    self.skip =
                        u16::from_be_bytes([self.frame_header[2], self.frame_header[3]]) as usize;
                    self.frame_header.clear();
                }
                continue;
            }
            self.head.push(data[0]);
            data = &data[1..];
            if self.head.ends_with(b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&self.head).into_owned();
                self.head.clear();
                let status = head
                    .lines()
                    .next()
                    .and_then(|l| l.split_whitespace().nth(1))
                    .and_then(|s| s.parse::<u16>().ok())
                    .unwrap_or(0);
                if (300..400).contains(&status) {
                    return Err(status);
                }
                self.skip = head
                    .lines()
                    .filter_map(|l| l.split_once(':'))
                    .find(|(k, _)| k.trim().eq_ignore_ascii_case("content-length"))
                    .and_then(|(_, v)| v.trim().parse().ok())
                    .unwrap_or(0);
            } else if self.head.len() > 64 * 1024 {
                // Not RTSP; stop inspecting nothing useful: treat as an error status.
                return Err(0);
            }
        }
        Ok(())
    }
}

/// Relays one client connection to `camera`, scanning the camera's answers.
async fn relay(client: TcpStream, camera: TcpStream, redirected: Arc<AtomicBool>) {
    let (mut cr, mut cw) = client.into_split();
    let (mut sr, mut sw) = camera.into_split();
    let up = async {
        let _ = tokio::io::copy(&mut cr, &mut sw).await;
        let _ = sw.shutdown().await;
    };
    let down = async {
        let mut scanner = ResponseScanner::default();
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            let n = match sr.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            if scanner.feed(&buf[..n]).is_err() {
                redirected.store(true, Ordering::Release);
                break;
            }
            if cw.write_all(&buf[..n]).await.is_err() {
                break;
            }
        }
        let _ = cw.shutdown().await;
    };
    tokio::select! {
        () = up => {}
        () = down => {}
    }
}

/// The FFmpeg input URL: the relay address with the camera's path and, when given, the
/// stored credentials as user info (percent-encoded).
pub fn relay_url(relay_port: u16, path: &str, credentials: Option<&CameraCredentials>) -> String {
    let userinfo = credentials
        .map(CameraCredentials::user_info)
        .unwrap_or_default();
    format!("rtsp://{userinfo}127.0.0.1:{relay_port}{path}")
}

/// Grabs one JPEG frame from `target` (the `rtsp://` source URL registered with the stream,
/// as [`guard::parse`] split it).
pub async fn snapshot(
    ffmpeg: &std::path::Path,
    target: &Target,
    credentials: Option<&CameraCredentials>,
    timeout: Duration,
) -> Result<Vec<u8>, SnapshotError> {
    if target.scheme != "rtsp" {
        return Err(GuardError::Scheme(target.scheme.clone()).into());
    }
    // The URL goes into FFmpeg's playlist below, one directive a line.
    if target.path.chars().any(char::is_control) {
        return Err(GuardError::Malformed.into());
    }
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| SnapshotError::Grab(e.kind().to_string()))?;
    let port = listener
        .local_addr()
        .map_err(|e| SnapshotError::Grab(e.kind().to_string()))?
        .port();
    let redirected = Arc::new(AtomicBool::new(false));
    let camera_addr = target.authority();
    let relay_task = {
        let redirected = redirected.clone();
        tokio::spawn(async move {
            // FFmpeg opens one RTSP connection with TCP transport; serve a few in case it
            // retries, each to the registered camera only.
            let mut sessions = Vec::new();
            for _ in 0..4 {
                let Ok((client, _)) = listener.accept().await else {
                    break;
                };
                let Ok(camera) = TcpStream::connect(&camera_addr).await else {
                    break;
                };
                sessions.push(tokio::spawn(relay(client, camera, redirected.clone())));
            }
            for s in sessions {
                let _ = s.await;
            }
        })
    };
    let url = relay_url(port, &target.path, credentials);
    // The URL holds the camera's password: FFmpeg reads it from stdin, as a one-entry concat
    // playlist, never from its argv, which every local user can read (`ps`).
    let playlist = format!(
        "ffconcat version 1.0\nfile '{}'\noption rtsp_transport tcp\noption timeout {}\n",
        url.replace('\'', "'\\''"),
        timeout.as_micros()
    );
    let run = async {
        let mut child = tokio::process::Command::new(ffmpeg)
            .args(["-hide_banner", "-loglevel", "error", "-nostdin"])
            .args(["-f", "concat", "-safe", "0"])
            .args(["-protocol_whitelist", "pipe,rtsp,tcp", "-i", "pipe:0"])
            .args([
                "-frames:v",
                "1",
                "-f",
                "image2pipe",
                "-c:v",
                "mjpeg",
                "-q:v",
                "3",
                "pipe:1",
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()?;
        if let Some(mut stdin) = child.stdin.take() {
            stdin.write_all(playlist.as_bytes()).await?;
        }
        child.wait_with_output().await
    };
    let out = tokio::time::timeout(timeout, run).await;
    relay_task.abort();
    if redirected.load(Ordering::Acquire) {
        return Err(SnapshotError::Redirect);
    }
    let out = out
        .map_err(|_| SnapshotError::Timeout)?
        .map_err(|e| SnapshotError::Grab(format!("cannot run ffmpeg: {}", e.kind())))?;
    if out.status.success() && out.stdout.starts_with(&[0xFF, 0xD8]) {
        return Ok(out.stdout);
    }
    // FFmpeg's message may quote the input URL: keep only the last line, without the URL.
    let stderr = String::from_utf8_lossy(&out.stderr);
    let last = stderr
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("no output");
    let cleaned = last.replace(&url, "<camera>");
    let cleaned = match credentials {
        Some(c) if !c.password.is_empty() => cleaned.replace(&c.password, "…"),
        _ => cleaned,
    };
    Err(SnapshotError::Grab(cleaned.chars().take(200).collect()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scanner_passes_responses_and_interleaved_packets_and_stops_at_a_redirect() {
        let mut s = ResponseScanner::default();
        let describe =
            b"RTSP/1.0 200 OK\r\nCSeq: 2\r\nContent-Length: 5\r\n\r\nv=0\r\n$\x00\x00\x03abc";
        // Byte by byte and whole: the same verdict.
        for b in describe.iter() {
            assert_eq!(s.feed(&[*b]), Ok(()));
        }
        // An interleaved packet whose payload looks like a redirect is payload, not a response.
        let mut s2 = ResponseScanner::default();
        let mut pkt = b"$\x01\x00\x18".to_vec();
        pkt.extend_from_slice(b"RTSP/1.0 302 Found\r\n\r\n\0\0");
        assert_eq!(s2.feed(&pkt), Ok(()));
        assert_eq!(
            s.feed(b"RTSP/1.0 302 Moved\r\nLocation: rtsp://10.0.0.9/x\r\n\r\n"),
            Err(302)
        );
    }

    #[test]
    fn relay_url_percent_encodes_the_credentials() {
        let c = CameraCredentials {
            username: "ad min".into(),
            password: "p@ss:w/rd".into(),
            onvif_port: None,
        };
        assert_eq!(
            relay_url(5000, "/cam?x=1", Some(&c)),
            "rtsp://ad%20min:p%40ss%3Aw%2Frd@127.0.0.1:5000/cam?x=1"
        );
        assert_eq!(relay_url(5000, "/cam", None), "rtsp://127.0.0.1:5000/cam");
    }
}
