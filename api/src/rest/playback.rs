//! Processed playback: each stream's HLS (2 s segments written by `horsestream ingest
//! --hls-dir DIR` as `DIR/<stream>/index.m3u8` + `seg_NNNNNN.ts`, their MPEG-TS timestamps the
//! frames' PTS) and the overlay drawn over it, keyed by that PTS.
//!
//! - `GET /api/v1/streams/{id}/hls/{file}`: the playlist or a segment. Only names of the
//!   muxer's own shape are served (`index.m3u8`, `seg_<digits>.ts`), from the stream's folder,
//!   so no request reaches outside it.
//! - `GET /api/v1/streams/{id}/overlay?fromPts=&toPts=`: per frame PTS (µs) in `[from, to)`,
//!   the boxes with track ids and the horse each track belongs to.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use horsestream_proto::stream_dir_name;
use horsestream_sinks::store::StoredDetection;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::AppState;
use crate::auth::{Authorized, perm};
use crate::error::{AppError, ErrorBody};
use crate::json::ApiJson;
use crate::params::{ApiPath, ApiQuery};
use crate::rest::valid_stream_id;

/// The longest PTS range one overlay request may ask for, µs (one minute of video).
pub const MAX_OVERLAY_RANGE_US: i64 = 60_000_000;
/// The most detection rows one overlay answer carries.
pub const MAX_OVERLAY_ROWS: i64 = 10_000;

/// What a playback file name is, when it is one ingest's HLS muxer writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HlsFile {
    Playlist,
    Segment,
}

impl HlsFile {
    /// `index.m3u8` or `seg_<1 to 12 digits>.ts`; anything else (paths, dots, other files) is
    /// `None`.
    pub fn parse(name: &str) -> Option<HlsFile> {
        if name == "index.m3u8" {
            return Some(HlsFile::Playlist);
        }
        let digits = name.strip_prefix("seg_")?.strip_suffix(".ts")?;
        ((1..=12).contains(&digits.len()) && digits.bytes().all(|b| b.is_ascii_digit()))
            .then_some(HlsFile::Segment)
    }

    fn content_type(self) -> &'static str {
        match self {
            HlsFile::Playlist => "application/vnd.apple.mpegurl",
            HlsFile::Segment => "video/mp2t",
        }
    }

    /// The playlist grows while the stream runs; a segment never changes once listed.
    fn cache_control(self) -> &'static str {
        match self {
            HlsFile::Playlist => "no-cache",
            HlsFile::Segment => "private, max-age=3600",
        }
    }
}

/// The path of `file` of `stream` under `dir`, or 404 for a name that is not a playback file.
pub fn hls_path(dir: &Path, stream: &str, file: &str) -> Result<(PathBuf, HlsFile), AppError> {
    let kind = HlsFile::parse(file)
        .ok_or_else(|| AppError::NotFound(format!("no playback file {file:?}")))?;
    Ok((dir.join(stream_dir_name(stream)).join(file), kind))
}

#[utoipa::path(get, path = "/api/v1/streams/{id}/hls/{file}", tag = "playback",
    params(("id" = String, Path, description = "stream id"),
           ("file" = String, Path, description = "`index.m3u8` or `seg_NNNNNN.ts`")),
    responses((status = 200, description = "the playlist (application/vnd.apple.mpegurl) or a segment (video/mp2t)"),
               (status = 404, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub async fn hls(
    _: Authorized<perm::StreamsRead>,
    State(state): State<AppState>,
    ApiPath((id, file)): ApiPath<(String, String)>,
) -> Result<Response, AppError> {
    if !valid_stream_id(&id) {
        return Err(AppError::NotFound(format!("stream {id:?} not found")));
    }
    let dir = state
        .playback()
        .hls_dir
        .as_deref()
        .ok_or_else(|| AppError::Unavailable("no HLS directory configured".into()))?;
    let (path, kind) = hls_path(dir, &id, &file)?;
    state.store()?.get_stream(&id).await?;
    let bytes = match tokio::fs::read(&path).await {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(AppError::NotFound(format!(
                "stream {id:?} has no playback file {file:?} (yet)"
            )));
        }
        Err(e) => return Err(AppError::internal(e)),
    };
    Ok((
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static(kind.content_type()),
            ),
            (
                header::CACHE_CONTROL,
                HeaderValue::from_static(kind.cache_control()),
            ),
        ],
        bytes,
    )
        .into_response())
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct OverlayParams {
    /// First frame PTS, µs (inclusive).
    pub from_pts: i64,
    /// End of the range, µs (exclusive); at most one minute after `fromPts`.
    pub to_pts: i64,
}

/// One box of the overlay, in source pixels.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct OverlayBox {
    pub x: f64,
    pub y: f64,
    pub w: f64,
    pub h: f64,
    pub confidence: f32,
    pub track_id: Option<i64>,
    /// The horse the box's track belongs to (`GET /horses/{id}`).
    pub horse_id: Option<i64>,
    /// Its display name (`Horse_3` until someone names it).
    pub horse: Option<String>,
    /// The pose, `[x, y, score]` per keypoint in source pixels, in the pose model's order
    /// (AP-10K's 17); empty when pose is off for the stream.
    #[serde(default)]
    pub keypoints: Vec<[f32; 3]>,
    /// Not found by the detector: the track's box interpolated over a frame it was missed in.
    #[serde(default)]
    pub interpolated: bool,
}

/// The boxes of one frame, keyed by the frame's PTS (the video's own timestamps).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct OverlayFrame {
    pub pts_us: i64,
    pub boxes: Vec<OverlayBox>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Overlay {
    pub stream_id: String,
    pub from_pts_us: i64,
    pub to_pts_us: i64,
    /// Frames with at least one box, by PTS.
    pub frames: Vec<OverlayFrame>,
    /// The row limit cut the answer: ask again from the last frame's PTS.
    pub truncated: bool,
}

/// A horse as the overlay names it.
#[derive(Debug, Clone, PartialEq)]
pub struct HorseRef {
    pub id: i64,
    pub name: String,
}

/// Frames from detection rows ordered by `(pts, time newest first, index)`: per PTS only the
/// newest run's rows (a restarted file stream writes its PTS again), each box named by the
/// horse its track belongs to.
pub fn overlay_frames(
    rows: &[StoredDetection],
    horses: &HashMap<i64, HorseRef>,
) -> Vec<OverlayFrame> {
    let mut frames: Vec<OverlayFrame> = Vec::new();
    let mut run_time = None;
    for d in rows {
        let same_pts = frames.last().is_some_and(|f| f.pts_us == d.pts_us);
        if !same_pts {
            frames.push(OverlayFrame {
                pts_us: d.pts_us,
                boxes: Vec::new(),
            });
            run_time = Some(d.time);
        } else if run_time != Some(d.time) {
            // An older run's row at this PTS.
            continue;
        }
        let num = |k: &str| d.bbox[k].as_f64().unwrap_or(0.0);
        let horse = d.track_id.and_then(|t| horses.get(&t));
        let frame = frames.last_mut().expect("pushed above");
        frame.boxes.push(OverlayBox {
            x: num("x"),
            y: num("y"),
            w: num("w"),
            h: num("h"),
            confidence: d.confidence,
            track_id: d.track_id,
            horse_id: horse.map(|h| h.id).or(d.horse_id),
            horse: horse.map(|h| h.name.clone()),
            keypoints: d.keypoints.clone(),
            interpolated: d.interpolated,
        });
    }
    frames
}

#[utoipa::path(get, path = "/api/v1/streams/{id}/overlay", tag = "playback",
    params(("id" = String, Path, description = "stream id"), OverlayParams),
    responses((status = 200, body = Overlay), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn overlay(
    _: Authorized<perm::StreamsRead>,
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
    ApiQuery(p): ApiQuery<OverlayParams>,
) -> Result<ApiJson<Overlay>, AppError> {
    if p.from_pts < 0 || p.to_pts < p.from_pts {
        return Err(AppError::bad_request(
            "invalid_range",
            "need 0 <= fromPts <= toPts",
        ));
    }
    if p.to_pts - p.from_pts > MAX_OVERLAY_RANGE_US {
        return Err(AppError::bad_request(
            "invalid_range",
            format!("at most {MAX_OVERLAY_RANGE_US} µs per request"),
        ));
    }
    let store = state.store()?;
    store.get_stream(&id).await?;
    let rows = store
        .detections_by_pts(&id, p.from_pts..p.to_pts, MAX_OVERLAY_ROWS)
        .await?;
    let truncated = rows.len() as i64 >= MAX_OVERLAY_ROWS;
    let horses: HashMap<i64, HorseRef> = store
        .list_horses(&id)
        .await?
        .into_iter()
        .flat_map(|h| {
            let r = HorseRef {
                id: h.id,
                name: h.display_name,
            };
            h.track_ids.into_iter().map(move |t| (t, r.clone()))
        })
        .collect();
    let mut frames = overlay_frames(&rows, &horses);
    if truncated {
        // The last frame may be cut short: leave it to the next request.
        frames.pop();
    }
    Ok(ApiJson(Overlay {
        stream_id: id,
        from_pts_us: p.from_pts,
        to_pts_us: p.to_pts,
        frames,
        truncated,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::DateTime;

    #[test]
    fn only_the_muxers_file_names_are_served() {
        assert_eq!(HlsFile::parse("index.m3u8"), Some(HlsFile::Playlist));
        assert_eq!(HlsFile::parse("seg_000000.ts"), Some(HlsFile::Segment));
        assert_eq!(
            HlsFile::parse("seg_123456789012.ts"),
            Some(HlsFile::Segment)
        );
        for bad in [
            "",
            "..",
            "../index.m3u8",
            "seg_.ts",
            "seg_1234567890123.ts",
            "seg_00a.ts",
            "seg_000001.ts/..",
            "SEG_000001.ts",
            "index.m3u8.bak",
            "..%2findex.m3u8",
            "/etc/passwd",
        ] {
            assert_eq!(HlsFile::parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn a_stream_of_dots_cannot_name_the_parent_folder() {
        let dir = Path::new("/hls");
        assert_eq!(
            hls_path(dir, "..", "index.m3u8").unwrap().0,
            Path::new("/hls/_../index.m3u8")
        );
        assert_eq!(
            hls_path(dir, "cam-1.a_b", "seg_000003.ts").unwrap().0,
            Path::new("/hls/cam-1.a_b/seg_000003.ts")
        );
        assert_eq!(stream_dir_name("a/b c"), "a_b_c");
        assert!(hls_path(dir, "cam", "../x").is_err());
    }

    fn row(pts: i64, time_s: i64, det: i32, track: Option<i64>) -> StoredDetection {
        StoredDetection {
            time: DateTime::from_timestamp(time_s, 0).unwrap(),
            stream_id: "s".into(),
            chunk_id: "s:0".into(),
            frame_index: 0,
            det_index: det,
            pts_us: pts,
            class_id: 17,
            confidence: 0.9,
            bbox: serde_json::json!({"x": 1.0, "y": 2.0, "w": 3.0, "h": 4.0, "confidence": 0.9}),
            horse_id: None,
            track_id: track,
            keypoints: if det == 0 {
                vec![[1.5, 2.5, 0.8]; 17]
            } else {
                Vec::new()
            },
            interpolated: false,
        }
    }

    #[test]
    fn frames_keep_the_newest_run_and_name_tracks_by_horse() {
        let horses = HashMap::from([(
            7,
            HorseRef {
                id: 42,
                name: "Bella".into(),
            },
        )]);
        // pts 0: newest run (t=200) has 2 boxes, an older run (t=100) 1; pts 100_000: one box.
        let rows = [
            row(0, 200, 0, Some(7)),
            row(0, 200, 1, None),
            row(0, 100, 0, Some(9)),
            row(100_000, 100, 0, Some(9)),
        ];
        let frames = overlay_frames(&rows, &horses);
        assert_eq!(frames.len(), 2);
        assert_eq!(frames[0].pts_us, 0);
        assert_eq!(frames[0].boxes.len(), 2);
        assert_eq!(frames[0].boxes[0].horse.as_deref(), Some("Bella"));
        assert_eq!(frames[0].boxes[0].horse_id, Some(42));
        assert_eq!(frames[0].boxes[1].horse, None);
        assert_eq!((frames[0].boxes[0].x, frames[0].boxes[0].h), (1.0, 4.0));
        assert_eq!(frames[1].pts_us, 100_000);
        assert_eq!(frames[1].boxes[0].track_id, Some(9));
        assert_eq!(frames[0].boxes[0].keypoints, vec![[1.5, 2.5, 0.8]; 17]);
        assert!(frames[0].boxes[1].keypoints.is_empty());
    }
}
