//! Keeping camera credentials out of logs, errors and status events.

const MASK: &str = "***";

/// Query parameters whose values are treated as secrets (matched case-insensitively as
/// substrings of the key), e.g. `?user=admin&password=x` on cameras that take them there.
const SECRET_KEYS: &[&str] = &[
    "pass", "pwd", "token", "secret", "auth", "key", "sig", "user", "login", "cred",
];

/// `url` with its credentials masked: the user-info part (`user:password@`) becomes `***@`
/// and the values of secret-looking query parameters become `***`. Everything else (scheme,
/// host, port, path) stays, so the result still says which camera it is.
///
/// Errs on the side of hiding: if an `@` appears anywhere before the query, everything from
/// `://` to the last such `@` is masked, even if that `@` was part of a path (a password with
/// an unescaped `/` or `@` is hidden either way).
///
/// ```
/// use horsestream_ingest::redact_url;
/// assert_eq!(redact_url("rtsp://admin:s3cret@10.0.0.5:554/cam"), "rtsp://***@10.0.0.5:554/cam");
/// assert_eq!(redact_url("http://cam/snap?user=a&pwd=b&ch=1"), "http://cam/snap?user=***&pwd=***&ch=1");
/// ```
pub fn redact_url(url: &str) -> String {
    let (scheme, rest) = match url.find("://") {
        Some(i) => url.split_at(i + 3),
        None => ("", url),
    };
    let (before_query, query) = match rest.find(['?', '#']) {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    let mut out = String::with_capacity(url.len());
    out.push_str(scheme);
    let host_path = match before_query.rfind('@') {
        Some(at) => {
            out.push_str(MASK);
            &before_query[at..]
        }
        None => before_query,
    };
    match rtmp_key_start(scheme, host_path) {
        Some(k) => {
            out.push_str(&host_path[..k]);
            out.push_str(MASK);
        }
        None => out.push_str(host_path),
    }
    out.push_str(&redact_query(query));
    out
}

/// In an RTMP URL (`rtmp://host/app/KEY`) the path after the app is the stream key, which
/// is a secret: the byte offset in `host_path` where it starts, if there is one.
fn rtmp_key_start(scheme: &str, host_path: &str) -> Option<usize> {
    let s = scheme.to_ascii_lowercase();
    if !s.starts_with("rtmp") {
        return None;
    }
    let slash = host_path.find('/')?;
    let app = host_path[slash + 1..].find('/')? + slash + 2;
    (app < host_path.len()).then_some(app)
}

fn redact_query(query: &str) -> String {
    let Some(sep) = query.chars().next() else {
        return String::new();
    };
    let (body, fragment) = match (sep, query[1..].find('#')) {
        ('?', Some(i)) => (&query[1..1 + i], &query[1 + i..]),
        ('?', None) => (&query[1..], ""),
        _ => return query.to_string(), // only a fragment
    };
    let pairs: Vec<String> = body
        .split('&')
        .map(|pair| match pair.split_once('=') {
            Some((k, _)) if is_secret_key(k) => format!("{k}={MASK}"),
            _ => pair.to_string(),
        })
        .collect();
    format!("?{}{fragment}", pairs.join("&"))
}

fn is_secret_key(key: &str) -> bool {
    let key = key.to_ascii_lowercase();
    SECRET_KEYS.iter().any(|s| key.contains(s))
}

/// The secret pieces of `url` (user-info, its parts raw and percent-decoded, secret query
/// values), longest first, for scrubbing free text such as FFmpeg error messages.
fn secrets(url: &str) -> Vec<String> {
    let rest = url.find("://").map_or(url, |i| &url[i + 3..]);
    let (before_query, query) = match rest.find(['?', '#']) {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    let mut out = Vec::new();
    let scheme = url.find("://").map_or("", |i| &url[..i + 3]);
    let host_path = before_query
        .rfind('@')
        .map_or(before_query, |at| &before_query[at..]);
    if let Some(k) = rtmp_key_start(scheme, host_path) {
        out.push(host_path[k..].to_string());
    }
    if let Some(at) = before_query.rfind('@') {
        let info = &before_query[..at];
        out.push(info.to_string());
        for part in info.splitn(2, ':') {
            out.push(part.to_string());
            out.push(percent_decode(part));
        }
    }
    for pair in query.trim_start_matches('?').split(['&', '#']) {
        if let Some((k, v)) = pair.split_once('=')
            && is_secret_key(k)
        {
            out.push(v.to_string());
            out.push(percent_decode(v));
        }
    }
    out.retain(|s| !s.is_empty());
    out.sort_by_key(|s| std::cmp::Reverse(s.len()));
    out.dedup();
    out
}

/// `text` with every credential of `url` replaced by `***`, and `url` itself by its
/// [`redact_url`] form.
pub(crate) fn scrub(text: &str, url: &str) -> String {
    let secrets = secrets(url);
    let scrub_piece = |piece: &str| {
        secrets
            .iter()
            .fold(piece.to_string(), |t, s| t.replace(s.as_str(), MASK))
    };
    if url.is_empty() {
        return scrub_piece(text);
    }
    text.split(url)
        .map(scrub_piece)
        .collect::<Vec<_>>()
        .join(&redact_url(url))
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |j: usize| bytes.get(j).and_then(|&b| (b as char).to_digit(16));
        if bytes[i] == b'%'
            && let (Some(hi), Some(lo)) = (hex(i + 1), hex(i + 2))
        {
            out.push((hi * 16 + lo) as u8);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_user_info() {
        assert_eq!(
            redact_url("rtsp://admin:s3cret@10.0.0.5:554/Streaming/Channels/101"),
            "rtsp://***@10.0.0.5:554/Streaming/Channels/101"
        );
        assert_eq!(
            redact_url("rtsp://admin@cam.local/live"),
            "rtsp://***@cam.local/live"
        );
        assert_eq!(redact_url("rtsp://:pw@cam/x"), "rtsp://***@cam/x");
    }

    #[test]
    fn leaves_urls_without_credentials_alone() {
        for url in [
            "rtsp://127.0.0.1:8554/cam",
            "http://example.com/live/index.m3u8?ch=2",
            "/var/video/a.mp4",
            "",
        ] {
            assert_eq!(redact_url(url), url);
        }
    }

    #[test]
    fn unescaped_at_slash_and_colon_in_the_password_stay_hidden() {
        let url = "rtsp://admin:p@ss/w:rd@10.0.0.5/cam";
        let r = redact_url(url);
        assert_eq!(r, "rtsp://***@10.0.0.5/cam");
        assert!(!r.contains("p@ss") && !r.contains("w:rd") && !r.contains("admin"));
    }

    #[test]
    fn masks_secret_query_values() {
        assert_eq!(
            redact_url("http://cam/video.cgi?User=admin&PassWord=x%26y&channel=1&token=abc#t"),
            "http://cam/video.cgi?User=***&PassWord=***&channel=1&token=***#t"
        );
        assert_eq!(
            redact_url("rtsp://u:p@cam/x?pwd=1"),
            "rtsp://***@cam/x?pwd=***"
        );
    }

    #[test]
    fn scrub_removes_raw_and_decoded_credentials_from_text() {
        let url = "rtsp://admin:s%3Acret@10.0.0.5/cam?token=tok";
        let msg = format!("failed to open {url}: auth s:cret for admin rejected, tok expired");
        let clean = scrub(&msg, url);
        assert!(!clean.contains("s:cret"), "{clean}");
        assert!(!clean.contains("s%3Acret"), "{clean}");
        assert!(!clean.contains("admin"), "{clean}");
        assert!(!clean.contains("tok "), "{clean}");
        assert!(
            clean.contains("rtsp://***@10.0.0.5/cam?token=***"),
            "{clean}"
        );
        assert_eq!(scrub("nothing here", "rtsp://cam/x"), "nothing here");
    }

    #[test]
    fn rtmp_stream_keys_are_secret() {
        assert_eq!(
            redact_url("rtmp://0.0.0.0:1935/live/s3cr3tkey"),
            "rtmp://0.0.0.0:1935/live/***"
        );
        assert_eq!(
            redact_url("rtmp://u:p@host/app/key/more?x=1"),
            "rtmp://***@host/app/***?x=1"
        );
        assert_eq!(redact_url("rtmp://host/app"), "rtmp://host/app");
        assert_eq!(redact_url("rtmp://host/app/"), "rtmp://host/app/");
        let url = "rtmp://0.0.0.0:1935/live/s3cr3tkey";
        let clean = scrub("publisher s3cr3tkey rejected", url);
        assert!(!clean.contains("s3cr3tkey"), "{clean}");
    }

    #[test]
    fn percent_decoding() {
        assert_eq!(percent_decode("a%3Ab%40c"), "a:b@c");
        assert_eq!(percent_decode("100%"), "100%");
        assert_eq!(percent_decode("%zz"), "%zz");
        assert_eq!(percent_decode("%é%4"), "%é%4");
    }
}
