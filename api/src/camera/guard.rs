//! The SSRF guard: the camera proxy may reach only the host registered with the stream. Pure
//! functions over URLs, used before every connection (ONVIF service addresses the camera
//! returns are checked too).

/// Scheme, host and port of a URL, as the guard compares them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub scheme: String,
    /// Lower-case; IPv6 literals without brackets.
    pub host: String,
    pub port: u16,
    /// Path and query (`/` when empty).
    pub path: String,
}

impl Target {
    /// `host:port`, with an IPv6 literal in brackets: what to connect to and the `Host` header.
    pub fn authority(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GuardError {
    #[error("not a URL the camera proxy understands")]
    Malformed,
    #[error("URLs with user info are refused")]
    UserInfo,
    #[error("scheme {0:?} is not allowed here")]
    Scheme(String),
    #[error("host {found:?} is not the camera host registered for this stream")]
    OtherHost { found: String },
}

fn default_port(scheme: &str) -> Option<u16> {
    match scheme {
        "http" => Some(80),
        "https" => Some(443),
        "rtsp" => Some(554),
        "rtsps" => Some(322),
        _ => None,
    }
}

/// Splits `scheme://host[:port]/path` (no user info accepted).
pub fn parse(url: &str) -> Result<Target, GuardError> {
    let (scheme, rest) = url.split_once("://").ok_or(GuardError::Malformed)?;
    let scheme = scheme.to_ascii_lowercase();
    let port_default = default_port(&scheme).ok_or_else(|| GuardError::Scheme(scheme.clone()))?;
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, path) = rest.split_at(end);
    if authority.contains('@') {
        return Err(GuardError::UserInfo);
    }
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let (h, after) = v6.split_once(']').ok_or(GuardError::Malformed)?;
        let port = match after.strip_prefix(':') {
            Some(p) => p.parse().map_err(|_| GuardError::Malformed)?,
            None if after.is_empty() => port_default,
            None => return Err(GuardError::Malformed),
        };
        (h.to_owned(), port)
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (h.to_owned(), p.parse().map_err(|_| GuardError::Malformed)?),
            None => (authority.to_owned(), port_default),
        }
    };
    if host.is_empty()
        || port == 0
        || !host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':' | b'_'))
    {
        return Err(GuardError::Malformed);
    }
    let path = path.split('#').next().unwrap_or("");
    Ok(Target {
        scheme,
        host: host.to_ascii_lowercase(),
        port,
        path: if path.is_empty() {
            "/".into()
        } else {
            path.to_owned()
        },
    })
}

/// `url` parsed, when its host is `registered_host` and its scheme one of `schemes`.
pub fn check(url: &str, registered_host: &str, schemes: &[&str]) -> Result<Target, GuardError> {
    let t = parse(url)?;
    if !schemes.contains(&t.scheme.as_str()) {
        return Err(GuardError::Scheme(t.scheme));
    }
    if !t
        .host
        .eq_ignore_ascii_case(registered_host.trim_matches(['[', ']']))
    {
        return Err(GuardError::OtherHost { found: t.host });
    }
    Ok(t)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_hosts_ports_and_paths() {
        let t = parse("rtsp://Cam.Local/stream1?x=1").unwrap();
        assert_eq!(
            (t.host.as_str(), t.port, t.path.as_str()),
            ("cam.local", 554, "/stream1?x=1")
        );
        let t = parse("http://10.0.0.5:8080").unwrap();
        assert_eq!(
            (t.host.as_str(), t.port, t.path.as_str()),
            ("10.0.0.5", 8080, "/")
        );
        assert_eq!(t.authority(), "10.0.0.5:8080");
        let t = parse("http://[fe80::1]:81/onvif").unwrap();
        assert_eq!((t.host.as_str(), t.port), ("fe80::1", 81));
        assert_eq!(t.authority(), "[fe80::1]:81");
        assert_eq!(parse("http://[::1]/x").unwrap().port, 80);
    }

    #[test]
    fn refuses_user_info_bad_ports_and_unknown_schemes() {
        assert_eq!(parse("http://a:b@cam/"), Err(GuardError::UserInfo));
        assert_eq!(parse("http://cam:0/"), Err(GuardError::Malformed));
        assert_eq!(parse("http://cam:99999/"), Err(GuardError::Malformed));
        assert_eq!(parse("cam/x"), Err(GuardError::Malformed));
        assert_eq!(
            parse("file:///etc/passwd"),
            Err(GuardError::Scheme("file".into()))
        );
        assert_eq!(parse("http://cam%2f/"), Err(GuardError::Malformed));
    }

    #[test]
    fn only_the_registered_host_passes() {
        assert!(check("http://cam.local:8000/onvif/ptz", "cam.local", &["http"]).is_ok());
        assert!(check("http://CAM.local/onvif/ptz", "cam.local", &["http"]).is_ok());
        for (url, found) in [
            ("http://169.254.169.254/latest/meta-data", "169.254.169.254"),
            ("http://localhost:5432/", "localhost"),
            ("http://cam.local.evil.com/", "cam.local.evil.com"),
        ] {
            assert_eq!(
                check(url, "cam.local", &["http"]),
                Err(GuardError::OtherHost {
                    found: found.into()
                })
            );
        }
        assert_eq!(
            check("https://cam.local/", "cam.local", &["http"]),
            Err(GuardError::Scheme("https".into()))
        );
        assert_eq!(
            check("http://[::1]/", "[::1]", &["http"]).unwrap().host,
            "::1"
        );
    }
}
