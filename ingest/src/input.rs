//! What `--input` names: one parser from the command-line string to a [`SourceSpec`].

use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

use crate::IngestError;
use crate::live::RtspTransport;

/// A source of video, as parsed from `--input` by [`SourceSpec::parse`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SourceSpec {
    /// A file in any container FFmpeg reads (a bare path or `file://PATH`).
    File(PathBuf),
    /// An RTSP camera (`rtsp://`, `rtsps://`). `transport` is `Some` when the URL asked for one
    /// with `?transport=tcp|udp` (that parameter is removed from `url`).
    Rtsp {
        url: String,
        transport: Option<RtspTransport>,
    },
    /// Listen for an encoder pushing RTMP (`rtmp://0.0.0.0:PORT/app/key`): ingest binds the
    /// address and accepts one publisher at a time; the app/key path must match what the
    /// encoder publishes to.
    RtmpListen { url: String },
    /// An HTTP(S) URL: an HLS playlist (`.m3u8`) or a progressive file.
    Http { url: String },
    /// A page resolved to a media URL by the external `yt-dlp` command before each
    /// connection: `youtube:VIDEO_ID`, `youtube:URL` (any URL yt-dlp knows) or a
    /// youtube.com / youtu.be URL. `url` is the page URL.
    Youtube { url: String },
}

const YOUTUBE_HOSTS: &[&str] = &[
    "youtube.com",
    "www.youtube.com",
    "m.youtube.com",
    "music.youtube.com",
    "youtu.be",
    "www.youtube-nocookie.com",
    "youtube-nocookie.com",
];

fn scheme_of(input: &str) -> Option<(String, &str)> {
    let i = input.find("://")?;
    let scheme = &input[..i];
    let valid = !scheme.is_empty()
        && scheme
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
    valid.then(|| (scheme.to_ascii_lowercase(), &input[i + 3..]))
}

/// The host of the authority part `rest` (after `scheme://`), lower-cased, without user-info
/// or port.
fn host_of(rest: &str) -> String {
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host_port = authority.rsplit('@').next().unwrap_or("");
    let host = if let Some(v6) = host_port.strip_prefix('[') {
        v6.split(']').next().unwrap_or("")
    } else {
        host_port.split(':').next().unwrap_or("")
    };
    host.to_ascii_lowercase()
}

/// `url` without its `transport` query parameter, and that parameter's value.
fn take_transport(url: &str) -> Result<(String, Option<RtspTransport>), IngestError> {
    let (base, fragment) = match url.find('#') {
        Some(i) => url.split_at(i),
        None => (url, ""),
    };
    let Some((path, query)) = base.split_once('?') else {
        return Ok((url.to_string(), None));
    };
    let mut transport = None;
    let mut kept = Vec::new();
    for pair in query.split('&') {
        match pair.split_once('=') {
            Some((k, v)) if k.eq_ignore_ascii_case("transport") => {
                transport = Some(v.parse()?);
            }
            _ if pair.is_empty() => {}
            _ => kept.push(pair),
        }
    }
    let mut out = path.to_string();
    if !kept.is_empty() {
        out.push('?');
        out.push_str(&kept.join("&"));
    }
    out.push_str(fragment);
    Ok((out, transport))
}

impl SourceSpec {
    /// Parses `--input`. Never touches the network or the file system; unknown schemes and
    /// malformed URLs are [`IngestError::Config`] errors whose text never holds credentials.
    pub fn parse(input: &str) -> Result<SourceSpec, IngestError> {
        let input = input.trim();
        if input.is_empty() {
            return Err(IngestError::Config("empty --input".into()));
        }
        if let Some(rest) = input
            .strip_prefix("youtube:")
            .or_else(|| input.strip_prefix("yt:"))
        {
            let rest = rest.trim();
            if rest.is_empty() {
                return Err(IngestError::Config(
                    "youtube: needs a video id or URL, e.g. youtube:dQw4w9WgXcQ".into(),
                ));
            }
            let url = if scheme_of(rest).is_some() {
                rest.to_string()
            } else if rest
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_'))
            {
                format!("https://www.youtube.com/watch?v={rest}")
            } else {
                return Err(IngestError::Config(format!(
                    "youtube:{} is neither a video id nor a URL",
                    crate::redact_url(rest)
                )));
            };
            return Ok(SourceSpec::Youtube { url });
        }
        let Some((scheme, rest)) = scheme_of(input) else {
            return Ok(SourceSpec::File(PathBuf::from(input)));
        };
        let shown = crate::redact_url(input);
        let need_host = |host: &str| {
            if host.is_empty() {
                Err(IngestError::Config(format!("{shown}: the URL has no host")))
            } else {
                Ok(())
            }
        };
        match scheme.as_str() {
            "file" => Ok(SourceSpec::File(PathBuf::from(rest))),
            "rtsp" | "rtsps" => {
                need_host(&host_of(rest))?;
                let (url, transport) = take_transport(input)?;
                Ok(SourceSpec::Rtsp { url, transport })
            }
            "rtmp" => {
                need_host(&host_of(rest))?;
                let path = rest.split_once('/').map_or("", |(_, p)| p);
                let path = path.split(['?', '#']).next().unwrap_or("");
                if path.split('/').filter(|s| !s.is_empty()).count() < 2 {
                    return Err(IngestError::Config(format!(
                        "{shown}: an RTMP listen URL needs an app and a stream key, \
                         e.g. rtmp://0.0.0.0:1935/live/KEY"
                    )));
                }
                Ok(SourceSpec::RtmpListen {
                    url: input.to_string(),
                })
            }
            "http" | "https" => {
                let host = host_of(rest);
                need_host(&host)?;
                if YOUTUBE_HOSTS.contains(&host.as_str()) {
                    Ok(SourceSpec::Youtube {
                        url: input.to_string(),
                    })
                } else {
                    Ok(SourceSpec::Http {
                        url: input.to_string(),
                    })
                }
            }
            other => Err(IngestError::Config(format!(
                "unsupported input scheme {other}:// (use a file path, rtsp://, rtmp://, \
                 http(s)://, or youtube:)"
            ))),
        }
    }

    /// The `streams.source_kind` of this source: `file`, `rtsp`, `rtmp`, `hls` (a `.m3u8`
    /// playlist), `http` or `youtube`.
    pub fn kind(&self) -> &'static str {
        match self {
            SourceSpec::File(_) => "file",
            SourceSpec::Rtsp { .. } => "rtsp",
            SourceSpec::RtmpListen { .. } => "rtmp",
            SourceSpec::Http { url }
                if url
                    .split(['?', '#'])
                    .next()
                    .is_some_and(|p| p.ends_with(".m3u8")) =>
            {
                "hls"
            }
            SourceSpec::Http { .. } => "http",
            SourceSpec::Youtube { .. } => "youtube",
        }
    }

    /// Whether the source is read by the reconnecting live loop (everything but files).
    pub fn is_live(&self) -> bool {
        !matches!(self, SourceSpec::File(_))
    }

    /// The URL or path with credentials masked, for logs.
    pub fn redacted(&self) -> String {
        match self {
            SourceSpec::File(p) => p.display().to_string(),
            SourceSpec::Rtsp { url, .. }
            | SourceSpec::RtmpListen { url }
            | SourceSpec::Http { url }
            | SourceSpec::Youtube { url } => crate::redact_url(url),
        }
    }
}

/// How a [`SourceSpec::Youtube`] page is resolved and fetched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct YoutubeOptions {
    /// The yt-dlp program: a name looked up in `search_path`, or a path (default `yt-dlp`).
    pub yt_dlp: PathBuf,
    /// Where to look for `yt_dlp` (a `PATH`-style list); `None` uses this process's `PATH`.
    pub search_path: Option<OsString>,
    /// A Netscape cookies file handed to yt-dlp (`--cookies`), for pages that need a login
    /// or an age/consent check.
    pub cookies: Option<PathBuf>,
    /// Proxies (`http://[user:pass@]host:port`) used in turn by yt-dlp and by FFmpeg's HTTP
    /// client; the next one is taken after a failed connection and when `proxy_interval`
    /// passed (at the next connection: a working connection is not cut for a rotation).
    pub proxies: Vec<String>,
    pub proxy_interval: Option<Duration>,
    /// yt-dlp format selector (default: the best format with video, at most 1080 lines).
    pub format: String,
    /// Longest time one yt-dlp run may take (default 60 s); it is killed after.
    pub resolve_timeout: Duration,
}

impl Default for YoutubeOptions {
    fn default() -> Self {
        YoutubeOptions {
            yt_dlp: PathBuf::from("yt-dlp"),
            search_path: None,
            cookies: None,
            proxies: Vec::new(),
            proxy_interval: None,
            format: "bv*[height<=1080]/b".into(),
            resolve_timeout: Duration::from_secs(60),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> SourceSpec {
        SourceSpec::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    fn err(s: &str) -> String {
        SourceSpec::parse(s).unwrap_err().to_string()
    }

    #[test]
    fn files() {
        assert_eq!(parse("a.mp4"), SourceSpec::File("a.mp4".into()));
        assert_eq!(
            parse("/var/video/x y.mkv"),
            SourceSpec::File("/var/video/x y.mkv".into())
        );
        assert_eq!(
            parse("file:///tmp/a.mov"),
            SourceSpec::File("/tmp/a.mov".into())
        );
        assert_eq!(parse("C:movie.mp4"), SourceSpec::File("C:movie.mp4".into()));
        assert!(!parse("a.mp4").is_live());
    }

    #[test]
    fn rtsp_with_and_without_transport() {
        assert_eq!(
            parse("rtsp://admin:pw@10.0.0.5:554/Streaming/101"),
            SourceSpec::Rtsp {
                url: "rtsp://admin:pw@10.0.0.5:554/Streaming/101".into(),
                transport: None
            }
        );
        assert_eq!(
            parse("rtsp://cam/live?transport=UDP"),
            SourceSpec::Rtsp {
                url: "rtsp://cam/live".into(),
                transport: Some(RtspTransport::Udp)
            }
        );
        assert_eq!(
            parse("rtsps://cam/live?ch=1&transport=tcp&token=t#x"),
            SourceSpec::Rtsp {
                url: "rtsps://cam/live?ch=1&token=t#x".into(),
                transport: Some(RtspTransport::Tcp)
            }
        );
        assert!(err("rtsp://cam/live?transport=sctp").contains("sctp"));
        assert!(err("rtsp:///live").contains("no host"));
    }

    #[test]
    fn rtmp_listen_needs_app_and_key() {
        assert_eq!(
            parse("rtmp://0.0.0.0:1935/live/abc"),
            SourceSpec::RtmpListen {
                url: "rtmp://0.0.0.0:1935/live/abc".into()
            }
        );
        let e = err("rtmp://0.0.0.0:1935/live");
        assert!(e.contains("app and a stream key"), "{e}");
        assert!(parse("rtmp://0.0.0.0:1935/live/abc").is_live());
    }

    #[test]
    fn http_and_youtube() {
        assert_eq!(
            parse("https://cdn.example.com/live/index.m3u8"),
            SourceSpec::Http {
                url: "https://cdn.example.com/live/index.m3u8".into()
            }
        );
        assert_eq!(
            parse("http://127.0.0.1:8080/v.mp4"),
            SourceSpec::Http {
                url: "http://127.0.0.1:8080/v.mp4".into()
            }
        );
        for url in [
            "https://www.youtube.com/watch?v=abc",
            "https://youtu.be/abc",
            "https://m.youtube.com/live/abc",
            "HTTPS://WWW.YOUTUBE.COM/watch?v=abc",
        ] {
            assert_eq!(parse(url), SourceSpec::Youtube { url: url.into() });
        }
        assert_eq!(
            parse("youtube:dQw4w9WgXcQ"),
            SourceSpec::Youtube {
                url: "https://www.youtube.com/watch?v=dQw4w9WgXcQ".into()
            }
        );
        assert_eq!(
            parse("youtube:http://127.0.0.1:9/x"),
            SourceSpec::Youtube {
                url: "http://127.0.0.1:9/x".into()
            }
        );
        assert!(err("youtube:").contains("video id"));
        assert!(err("youtube:not an id").contains("neither"));
        // A host that merely contains "youtube" is a plain HTTP source.
        assert!(matches!(
            parse("https://notyoutube.com/a.m3u8"),
            SourceSpec::Http { .. }
        ));
    }

    #[test]
    fn unknown_schemes_and_errors_without_credentials() {
        let e = err("gopher://u:secret@host/x");
        assert!(e.contains("unsupported input scheme gopher://"), "{e}");
        assert!(!e.contains("secret"));
        let e = err("rtmp://u:secret@0.0.0.0:1935/live");
        assert!(!e.contains("secret"), "{e}");
        assert!(err("  ").contains("empty"));
    }

    #[test]
    fn redacted_forms() {
        assert_eq!(
            parse("rtsp://admin:pw@cam/x").redacted(),
            "rtsp://***@cam/x"
        );
        assert_eq!(parse("a.mp4").redacted(), "a.mp4");
    }
}
