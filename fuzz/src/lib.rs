//! Fuzz harnesses of horsestream's parsers of untrusted input: one function per target, each
//! feeding arbitrary bytes to the real code and asserting what must hold for every input (no
//! panic, plus the property named in its doc); each returns whether the input was accepted,
//! which the stable test uses to check its seeds reach the accepting paths. The cargo-fuzz targets in `fuzz_targets/` call
//! them under libFuzzer; `tests/bad_input_fuzz.rs` includes this file as a module and runs
//! them on stable over seeds and bounded mutations, so CI exercises the same checks.

use std::sync::OnceLock;

use axum::extract::FromRequestParts;
use axum::http::{HeaderValue, Request, header::AUTHORIZATION};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use horsestream_api::auth::{AuthConfig, Authenticated, ISSUER, InMemoryUserStore, now_secs};
use horsestream_dataflow::operators::decode::{decode_record, in_window};
use horsestream_dataflow::operators::detect::frame_image;
use horsestream_dataflow::source::Record;
use horsestream_proto::{FrameChunk, MAX_FRAME_SIDE};

/// A chunks-topic message: decoded and validated as the dataflow does (`DecodeChunks`), then
/// its frames decoded (`Detect`'s first step). A refused message is one `decode` error
/// record on one line; an accepted chunk keeps the promised invariants, round-trips through
/// the wire, and its time window and frames can be computed without a panic.
pub fn chunk(data: &[u8]) -> bool {
    let record = Record {
        source: "fuzz".into(),
        partition: 1,
        offset: 2,
        key: Vec::new(),
        payload: data.to_vec(),
    };
    let located = match decode_record(record) {
        Err(e) => {
            assert_eq!((e.stage.as_str(), e.partition, e.offset), ("decode", 1, 2));
            assert!(!e.reason.is_empty() && !e.reason.contains('\n'), "{e:?}");
            return false;
        }
        Ok(l) => l,
    };
    let c = &located.chunk;
    assert!(!c.stream_id.is_empty());
    assert!(c.fps_num > 0 && c.fps_den > 0);
    assert!((1..=MAX_FRAME_SIDE).contains(&c.width) && (1..=MAX_FRAME_SIDE).contains(&c.height));
    assert!(c.start_pts_us <= c.end_pts_us);
    for (i, f) in c.frames.iter().enumerate() {
        assert_eq!(f.index as usize, i);
        assert!(!f.data.is_empty());
    }
    assert_eq!(FrameChunk::decode(&c.encode_to_vec()).as_ref(), Ok(c));
    for window in [(i64::MIN, i64::MAX), (0, 0), (i64::MAX, i64::MIN)] {
        let _ = in_window(c, Some(window));
    }
    // Frame decoding allocates width × height × 3 bytes: keep the fuzzer's memory bounded.
    if u64::from(c.width) * u64::from(c.height) <= 1 << 20 {
        for f in c.frames.iter().take(2) {
            if let Ok(img) = frame_image(c, &f.data) {
                assert_eq!(img.dimensions(), (c.width, c.height));
            }
        }
    }
    true
}

/// A password no error message may show.
const SECRET: &str = "Pw-0f-The-Camera";

/// `--input` / a stream's source URL (`SourceSpec::parse`): any text parses or is refused
/// without a panic, and when the URL carries user info, no error shows the password (nor the
/// redacted form of an accepted one). Accepted: the URL with user info parsed.
pub fn source_url(data: &[u8]) -> bool {
    let text = String::from_utf8_lossy(data);
    if let Ok(spec) = horsestream_ingest::SourceSpec::parse(&text) {
        let _ = (spec.kind(), spec.is_live());
    }
    let _ = horsestream_ingest::redact_url(&text);
    let (pick, rest) = match data.split_first() {
        Some((p, rest)) => (*p, String::from_utf8_lossy(rest)),
        None => (0, "".into()),
    };
    const SCHEMES: [&str; 8] = [
        "rtsp",
        "rtsps",
        "rtmp",
        "http",
        "https",
        "RTSP",
        "ftp",
        "youtube:https",
    ];
    let scheme = SCHEMES[usize::from(pick) % SCHEMES.len()];
    let url = format!("{scheme}://admin:{SECRET}@{rest}");
    match horsestream_ingest::SourceSpec::parse(&url) {
        Err(e) => {
            let shown = format!("{e} {e:?}");
            assert!(!shown.contains(SECRET), "{shown}");
            false
        }
        Ok(_) => {
            let shown = horsestream_ingest::redact_url(&url);
            assert!(!shown.contains(SECRET), "{shown}");
            true
        }
    }
}

/// The secret the auth harness's tokens are signed with.
pub const JWT_SECRET: &[u8] = b"fuzzing secret, 32 bytes or longer!";

fn state() -> &'static horsestream_api::AppState {
    static STATE: OnceLock<horsestream_api::AppState> = OnceLock::new();
    STATE.get_or_init(|| {
        horsestream_api::AppState::new(
            &AuthConfig::new(JWT_SECRET.to_vec()).unwrap(),
            std::sync::Arc::new(InMemoryUserStore::new()),
        )
    })
}

/// Runs a future that never waits on I/O (the extractors) to completion.
fn ready<F: std::future::Future>(f: F) -> F::Output {
    thread_local! {
        static RT: tokio::runtime::Runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
    }
    RT.with(|rt| rt.block_on(f))
}

/// An `Authorization` header as REST routes see it (the `Authenticated` extractor: bearer
/// parsing, then JWT verification). A caller is accepted only with an unexpired HS256 access
/// token of this issuer: what the header and claims say is checked here independently of the
/// JWT library.
pub fn auth_header(data: &[u8]) -> bool {
    let Ok(value) = HeaderValue::from_bytes(data) else {
        return false;
    };
    let (mut parts, ()) = Request::builder()
        .uri("/api/v1/auth/me")
        .header(AUTHORIZATION, value)
        .body(())
        .unwrap()
        .into_parts();
    let Ok(Authenticated(who)) = ready(Authenticated::from_request_parts(&mut parts, state()))
    else {
        return false;
    };
    let text = std::str::from_utf8(data).expect("an accepted header is text");
    let token = text
        .split_once(' ')
        .map(|(_, t)| t.trim())
        .expect("bearer scheme");
    let segments: Vec<&str> = token.split('.').collect();
    assert_eq!(segments.len(), 3, "{token}");
    let header: serde_json::Value =
        serde_json::from_slice(&B64URL.decode(segments[0]).expect("header is base64url"))
            .expect("header is JSON");
    assert_eq!(header["alg"], "HS256", "{header}");
    let claims: serde_json::Value =
        serde_json::from_slice(&B64URL.decode(segments[1]).expect("claims are base64url"))
            .expect("claims are JSON");
    assert_eq!(claims["iss"], ISSUER);
    assert_eq!(claims["typ"], "access");
    assert!(claims["exp"].as_u64().unwrap().saturating_add(5) >= now_secs());
    assert_eq!(claims["sub"].as_str().unwrap(), who.user_id.to_string());
    true
}

/// A valid `Authorization` header value for the auth harness's seeds.
pub fn valid_bearer() -> String {
    let pair = state()
        .tokens()
        .issue(7, "fuzz", horsestream_api::auth::Role::Viewer)
        .unwrap();
    format!("Bearer {}", pair.access_token)
}

/// The detections API's `cursor` parameter: any text is a cursor of this stream or a 400
/// `invalid_cursor`, and a cursor that decodes is re-encoded to the same position.
pub fn cursor(data: &[u8]) -> bool {
    use horsestream_api::rest::detections::{decode_cursor, encode_cursor};
    let text = String::from_utf8_lossy(data);
    match decode_cursor("cam-1", &text) {
        Ok(key) => {
            let again = decode_cursor("cam-1", &encode_cursor("cam-1", &key)).unwrap();
            assert_eq!(again, key);
            assert!(decode_cursor("cam-2", &encode_cursor("cam-1", &key)).is_err());
            true
        }
        Err(e) => {
            assert_eq!(e.code(), "invalid_cursor");
            false
        }
    }
}

/// A cursor as the API issues it, for seeds.
pub fn valid_cursor(micros: i64, chunk: &str) -> String {
    B64URL.encode(
        serde_json::json!({"s": "cam-1", "t": micros, "c": chunk, "f": 3, "i": 1}).to_string(),
    )
}

/// Any bytes as the JSON body of every REST route that takes one, through the `ApiJson`
/// extractor the routes use. A body is accepted only if it deserialises on its own as that
/// route's type; otherwise it is a 400 `malformed_json` (and then it is not JSON at all) or a
/// 422 `invalid_body`, answered as a JSON error with its code — never a panic or a 5xx.
/// Returns whether some route accepted it.
pub fn rest_json(data: &[u8]) -> bool {
    use horsestream_api::auth::routes::{LoginRequest, RefreshRequest};
    use horsestream_api::rest::{camera, horses, models, streams};
    let mut accepted = false;
    accepted |= body_of::<streams::CreateStream>(data);
    accepted |= body_of::<streams::PatchStream>(data);
    accepted |= body_of::<horses::RenameHorse>(data);
    accepted |= body_of::<models::ActivateModel>(data);
    accepted |= body_of::<camera::MoveRequest>(data);
    accepted |= body_of::<camera::PresetRequest>(data);
    accepted |= body_of::<LoginRequest>(data);
    accepted |= body_of::<RefreshRequest>(data);
    accepted
}

fn body_of<T: serde::de::DeserializeOwned + Send + 'static>(data: &[u8]) -> bool {
    use axum::extract::FromRequest;
    use axum::response::IntoResponse;
    use horsestream_api::ApiJson;
    let request = Request::builder()
        .method("POST")
        .uri("/api/v1/x")
        .header(axum::http::header::CONTENT_TYPE, "application/json")
        .body(axum::body::Body::from(data.to_vec()))
        .unwrap();
    match ready(ApiJson::<T>::from_request(request, &())) {
        Ok(ApiJson(_)) => {
            assert!(
                serde_json::from_slice::<T>(data).is_ok(),
                "accepted a body that does not deserialise: {:?}",
                String::from_utf8_lossy(data)
            );
            true
        }
        Err(e) => {
            let (status, code) = (e.status(), e.code());
            match code {
                "malformed_json" => {
                    assert_eq!(status, 400);
                    assert!(
                        serde_json::from_slice::<serde_json::Value>(data).is_err(),
                        "valid JSON called malformed: {:?}",
                        String::from_utf8_lossy(data)
                    );
                }
                "invalid_body" => assert_eq!(status, 422),
                other => panic!("{other} ({status}) for a JSON body"),
            }
            let response = e.into_response();
            assert_eq!(response.status(), status);
            let body = ready(axum::body::to_bytes(response.into_body(), 1 << 20)).unwrap();
            let body: serde_json::Value = serde_json::from_slice(&body).expect("the error is JSON");
            assert_eq!(body["error"]["code"], code, "{body}");
            assert!(
                body["error"]["message"]
                    .as_str()
                    .is_some_and(|m| !m.is_empty()),
                "{body}"
            );
            false
        }
    }
}
