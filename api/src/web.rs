//! The web client at `/`: files of the built client (`scripts/web-build.sh` → `web/dist`) for
//! `GET` paths outside `/api/` and `/socket.io/`, `index.html` for any other such path (the
//! client routes itself), and the JSON 404 for unknown API paths or when no client is
//! configured. Public: the client holds no data, every call it makes is authorized.

use std::path::{Component, Path, PathBuf};

use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, header};
use axum::response::{IntoResponse, Response};

use crate::AppState;
use crate::error::AppError;

/// The file under `root` that `uri_path` names, when it names one safely: only normal path
/// components (no `..`, no root, no prefix, no hidden names); `/` is `index.html`.
pub fn web_path(root: &Path, uri_path: &str) -> Option<PathBuf> {
    let rel = uri_path.trim_start_matches('/');
    if rel.is_empty() {
        return Some(root.join("index.html"));
    }
    let mut out = root.to_path_buf();
    for c in Path::new(rel).components() {
        match c {
            Component::Normal(p) if !p.to_string_lossy().starts_with('.') => out.push(p),
            _ => return None,
        }
    }
    Some(out)
}

fn content_type(path: &Path) -> &'static str {
    match path.extension().and_then(|e| e.to_str()).unwrap_or("") {
        "html" => "text/html; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "json" | "map" => "application/json",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "ico" => "image/x-icon",
        "woff2" => "font/woff2",
        _ => "application/octet-stream",
    }
}

/// The router's fallback: the web client's files, else the JSON 404.
pub async fn fallback(State(state): State<AppState>, req: Request) -> Result<Response, AppError> {
    let path = req.uri().path();
    let no_route = || AppError::NotFound("no such route".into());
    let Some(root) = state.playback().web_dir.as_deref() else {
        return Err(no_route());
    };
    if !matches!(*req.method(), Method::GET | Method::HEAD)
        || path.starts_with("/api/")
        || path == "/api"
        || path.starts_with("/socket.io")
    {
        return Err(no_route());
    }
    let file = web_path(root, path).ok_or_else(no_route)?;
    let (file, bytes) = match tokio::fs::read(&file).await {
        Ok(b) => (file, b),
        // A client-side route (or a missing asset): the app's page.
        Err(_) if !path.starts_with("/assets/") => {
            let index = root.join("index.html");
            match tokio::fs::read(&index).await {
                Ok(b) => (index, b),
                Err(_) => return Err(no_route()),
            }
        }
        Err(_) => return Err(no_route()),
    };
    let cache = if file.ends_with("index.html") {
        "no-cache"
    } else {
        "public, max-age=300"
    };
    Ok((
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static(content_type(&file)),
            ),
            (header::CACHE_CONTROL, HeaderValue::from_static(cache)),
        ],
        bytes,
    )
        .into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_stay_inside_the_client_folder() {
        let root = Path::new("/srv/web");
        assert_eq!(
            web_path(root, "/").unwrap(),
            Path::new("/srv/web/index.html")
        );
        assert_eq!(
            web_path(root, "/assets/app.js").unwrap(),
            Path::new("/srv/web/assets/app.js")
        );
        for bad in [
            "/../etc/passwd",
            "/assets/../../x",
            "/.env",
            "/assets/.hidden",
            "//etc",
        ] {
            let p = web_path(root, bad);
            assert!(
                p.as_ref()
                    .is_none_or(|p| p.starts_with(root) && !p.to_string_lossy().contains("..")),
                "{bad:?} -> {p:?}"
            );
        }
        assert_eq!(web_path(root, "/../etc/passwd"), None);
        assert_eq!(web_path(root, "/.env"), None);
    }
}
