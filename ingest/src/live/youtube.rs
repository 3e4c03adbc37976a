//! Resolving a YouTube (or any yt-dlp-supported) page to a media URL FFmpeg can read, by
//! running the external `yt-dlp` command before each connection (resolved URLs expire), with
//! an optional cookies file and proxies taken in turn.

use std::ffi::OsStr;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::redact::scrub;
use super::source::{Failure, Watchdog};
use crate::{IngestError, YoutubeOptions};

/// `program` as found on `search_path` (a `PATH`-style list), or itself if it names a path.
/// Only executable regular files count.
pub(crate) fn find_program(program: &Path, search_path: Option<&OsStr>) -> Option<PathBuf> {
    let is_exe = |p: &Path| {
        use std::os::unix::fs::PermissionsExt;
        std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    };
    if program.components().count() > 1 {
        return is_exe(program).then(|| program.to_path_buf());
    }
    let path = match search_path {
        Some(p) => p.to_os_string(),
        None => std::env::var_os("PATH")?,
    };
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|p| is_exe(p))
}

/// Proxies in turn: the current one until a failure or until `interval` passed since it was
/// taken. Times are offsets from any fixed instant, so the logic is testable.
#[derive(Debug, Clone)]
pub(crate) struct ProxyRotation {
    proxies: Vec<String>,
    interval: Option<Duration>,
    current: usize,
    since: Option<Duration>,
}

impl ProxyRotation {
    pub fn new(proxies: Vec<String>, interval: Option<Duration>) -> Self {
        ProxyRotation {
            proxies,
            interval,
            current: 0,
            since: None,
        }
    }

    /// The proxy for a connection starting at `now`; `None` without proxies.
    pub fn take(&mut self, now: Duration) -> Option<&str> {
        if self.proxies.is_empty() {
            return None;
        }
        match (self.since, self.interval) {
            (None, _) => self.since = Some(now),
            (Some(since), Some(every)) if now.saturating_sub(since) >= every => {
                self.current = (self.current + 1) % self.proxies.len();
                self.since = Some(now);
            }
            _ => {}
        }
        Some(&self.proxies[self.current])
    }

    /// The current proxy failed: the next connection takes the next one.
    pub fn failed(&mut self) {
        if !self.proxies.is_empty() {
            self.current = (self.current + 1) % self.proxies.len();
            self.since = None;
        }
    }
}

/// The media URL and the proxy it was resolved through (FFmpeg must use the same one).
#[derive(Debug, Clone)]
pub(crate) struct Resolved {
    pub url: String,
    pub proxy: Option<String>,
}

/// Runs yt-dlp for one page.
#[derive(Debug)]
pub(crate) struct Resolver {
    program: PathBuf,
    opts: YoutubeOptions,
    pub proxies: ProxyRotation,
    epoch: Instant,
}

fn missing(opts: &YoutubeOptions) -> IngestError {
    IngestError::MissingTool {
        tool: opts.yt_dlp.display().to_string(),
        hint: "YouTube sources are resolved by yt-dlp: install it (e.g. `pipx install yt-dlp` \
               or `pip install yt-dlp`) so that it is on PATH",
    }
}

impl Resolver {
    /// Finds yt-dlp and checks the cookies file; fails with a clear error if either is not
    /// there.
    pub fn new(opts: &YoutubeOptions) -> Result<Self, IngestError> {
        let program =
            find_program(&opts.yt_dlp, opts.search_path.as_deref()).ok_or_else(|| missing(opts))?;
        if let Some(c) = &opts.cookies {
            std::fs::metadata(c).map_err(|source| IngestError::Io {
                path: c.clone(),
                source,
            })?;
        }
        if opts.proxy_interval.is_some_and(|d| d.is_zero()) {
            return Err(IngestError::Config(
                "the proxy rotation interval must be positive".into(),
            ));
        }
        Ok(Resolver {
            program,
            proxies: ProxyRotation::new(opts.proxies.clone(), opts.proxy_interval),
            opts: opts.clone(),
            epoch: Instant::now(),
        })
    }

    /// Text with the credentials of every proxy removed.
    pub fn clean(&self, text: &str) -> String {
        self.opts
            .proxies
            .iter()
            .fold(text.to_string(), |t, p| scrub(&t, p))
    }

    /// Resolves `page` through the current proxy. Bounded by the resolve timeout and a stop.
    pub fn resolve(&mut self, page: &str, watchdog: &Watchdog) -> Result<Resolved, Failure> {
        let proxy = self.proxies.take(self.epoch.elapsed()).map(str::to_string);
        let mut cmd = Command::new(&self.program);
        cmd.args(["--no-warnings", "--no-playlist", "--get-url", "-f"])
            .arg(&self.opts.format);
        if let Some(c) = &self.opts.cookies {
            cmd.arg("--cookies").arg(c);
        }
        if let Some(p) = &proxy {
            cmd.args(["--proxy", p]);
        }
        if let Some(path) = &self.opts.search_path {
            cmd.env("PATH", path);
        }
        cmd.arg("--")
            .arg(page)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd
            .spawn()
            .map_err(|e| Failure::Error(format!("cannot run {}: {e}", self.program.display())))?;
        let pipe = |r: Option<Box<dyn Read + Send>>| {
            std::thread::spawn(move || {
                let mut s = String::new();
                if let Some(mut r) = r {
                    let _ = r.read_to_string(&mut s);
                }
                s
            })
        };
        let out = pipe(child.stdout.take().map(|r| Box::new(r) as _));
        let err = pipe(child.stderr.take().map(|r| Box::new(r) as _));
        let deadline = Instant::now() + self.opts.resolve_timeout;
        let status = loop {
            match child.try_wait() {
                Ok(Some(status)) => break Some(status),
                Ok(None) if watchdog.stopped() || Instant::now() >= deadline => {
                    let _ = child.kill();
                    let _ = child.wait();
                    break None;
                }
                Ok(None) => std::thread::sleep(Duration::from_millis(20)),
                Err(e) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err(Failure::Error(format!("waiting for yt-dlp: {e}")));
                }
            }
        };
        let (stdout, stderr) = (
            out.join().unwrap_or_default(),
            err.join().unwrap_or_default(),
        );
        let Some(status) = status else {
            if watchdog.stopped() {
                return Err(Failure::Stopped);
            }
            return Err(Failure::Error(format!(
                "yt-dlp gave no answer within {:.0} s",
                self.opts.resolve_timeout.as_secs_f64()
            )));
        };
        let url = stdout
            .lines()
            .map(str::trim)
            .find(|l| l.contains("://"))
            .map(str::to_string);
        match (status.success(), url) {
            (true, Some(url)) => Ok(Resolved { url, proxy }),
            (ok, _) => {
                let last = stderr
                    .lines()
                    .map(str::trim)
                    .rfind(|l| !l.is_empty())
                    .unwrap_or(if ok {
                        "no media URL printed"
                    } else {
                        "no message"
                    });
                let reason = format!(
                    "yt-dlp could not resolve {} ({status}): {last}",
                    crate::redact_url(page)
                );
                Err(Failure::Error(self.clean(&scrub(&reason, page))))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    #[test]
    fn no_proxies_means_none() {
        let mut r = ProxyRotation::new(vec![], Some(s(1)));
        assert_eq!(r.take(s(0)), None);
        r.failed();
        assert_eq!(r.take(s(5)), None);
    }

    #[test]
    fn rotates_on_failure_and_on_interval() {
        let mut r = ProxyRotation::new(vec!["a".into(), "b".into(), "c".into()], Some(s(60)));
        assert_eq!(r.take(s(0)), Some("a"));
        assert_eq!(r.take(s(59)), Some("a"));
        assert_eq!(r.take(s(60)), Some("b"), "interval passed");
        r.failed();
        assert_eq!(r.take(s(61)), Some("c"), "failure moves on");
        assert_eq!(
            r.take(s(120)),
            Some("c"),
            "the interval restarts with a new proxy"
        );
        assert_eq!(r.take(s(121)), Some("a"), "wraps around");
    }

    #[test]
    fn without_interval_only_failures_rotate() {
        let mut r = ProxyRotation::new(vec!["a".into(), "b".into()], None);
        assert_eq!(r.take(s(0)), Some("a"));
        assert_eq!(r.take(s(100_000)), Some("a"));
        r.failed();
        assert_eq!(r.take(s(100_001)), Some("b"));
        r.failed();
        assert_eq!(r.take(s(100_002)), Some("a"));
    }

    #[test]
    fn programs_are_found_only_when_executable() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let exe = dir.path().join("tool");
        std::fs::write(&exe, "#!/bin/sh\n").unwrap();
        let path = std::env::join_paths([dir.path()]).unwrap();
        assert_eq!(
            find_program(Path::new("tool"), Some(&path)),
            None,
            "not executable"
        );
        std::fs::set_permissions(&exe, std::fs::Permissions::from_mode(0o755)).unwrap();
        assert_eq!(
            find_program(Path::new("tool"), Some(&path)),
            Some(exe.clone())
        );
        assert_eq!(find_program(&exe, None), Some(exe.clone()));
        assert_eq!(find_program(Path::new("tool"), Some(OsStr::new(""))), None);
    }
}
