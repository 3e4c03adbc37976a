//! `GET /api/v1/detections?stream=&from=&to=&limit=&cursor=`: one stream's detections in the
//! stable order (time, chunk, frame, index), paged with an opaque cursor (the last row's key).

use axum::extract::State;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use chrono::{DateTime, Utc};
use horsestream_sinks::store::{DetectionKey, DetectionQuery, StoredDetection};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::AppState;
use crate::auth::{Authorized, perm};
use crate::error::{AppError, ErrorBody};
use crate::json::ApiJson;
use crate::params::ApiQuery;
use crate::rest::page_limit;

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct DetectionParams {
    /// The stream id.
    pub stream: String,
    /// RFC 3339, inclusive.
    pub from: Option<String>,
    /// RFC 3339, exclusive.
    pub to: Option<String>,
    /// 1 to 1000 (default 100).
    pub limit: Option<i64>,
    /// `nextCursor` of the previous page.
    pub cursor: Option<String>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DetectionOut {
    pub time: DateTime<Utc>,
    pub stream_id: String,
    pub chunk_id: String,
    pub frame_index: i32,
    pub det_index: i32,
    pub pts_us: i64,
    pub class_id: i32,
    pub confidence: f32,
    /// `{"x","y","w","h","confidence"}` in source pixels.
    #[schema(value_type = Object)]
    pub bbox: serde_json::Value,
    pub track_id: Option<i64>,
    pub horse_id: Option<i64>,
    /// Not found by the detector: the track's box interpolated over a frame it was missed in
    /// (confidence 0).
    pub interpolated: bool,
}

impl From<StoredDetection> for DetectionOut {
    fn from(d: StoredDetection) -> Self {
        DetectionOut {
            time: d.time,
            stream_id: d.stream_id,
            chunk_id: d.chunk_id,
            frame_index: d.frame_index,
            det_index: d.det_index,
            pts_us: d.pts_us,
            class_id: d.class_id,
            confidence: d.confidence,
            bbox: d.bbox,
            track_id: d.track_id,
            horse_id: d.horse_id,
            interpolated: d.interpolated,
        }
    }
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DetectionPage {
    pub items: Vec<DetectionOut>,
    /// Present when more rows follow: pass it as `cursor` for the next page.
    pub next_cursor: Option<String>,
}

/// What a cursor holds: the stream it belongs to and the last key served.
#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
struct Cursor {
    s: String,
    t: i64,
    c: String,
    f: i32,
    i: i32,
}

/// The opaque `cursor` of the page that follows `k` in `stream`.
pub fn encode_cursor(stream: &str, k: &DetectionKey) -> String {
    let c = Cursor {
        s: stream.to_owned(),
        t: k.time.timestamp_micros(),
        c: k.chunk_id.clone(),
        f: k.frame_index,
        i: k.det_index,
    };
    B64.encode(serde_json::to_vec(&c).unwrap_or_default())
}

/// The position a `cursor` of `stream` holds; anything else is a 400 `invalid_cursor`
/// (public for the fuzz harness in `fuzz/`).
pub fn decode_cursor(stream: &str, s: &str) -> Result<DetectionKey, AppError> {
    let bad = || AppError::bad_request("invalid_cursor", "cursor is not one this API issued");
    let bytes = B64.decode(s).map_err(|_| bad())?;
    let c: Cursor = serde_json::from_slice(&bytes).map_err(|_| bad())?;
    if c.s != stream {
        return Err(AppError::bad_request(
            "invalid_cursor",
            "cursor belongs to another stream",
        ));
    }
    Ok(DetectionKey {
        time: DateTime::from_timestamp_micros(c.t).ok_or_else(bad)?,
        chunk_id: c.c,
        frame_index: c.f,
        det_index: c.i,
    })
}

pub(crate) fn parse_time(what: &str, s: &str) -> Result<DateTime<Utc>, AppError> {
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| {
            AppError::bad_request(
                "invalid_time",
                format!("{what} is not an RFC 3339 time: {e}"),
            )
        })
}

#[utoipa::path(get, path = "/api/v1/detections", tag = "detections", params(DetectionParams),
    responses((status = 200, body = DetectionPage), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn list(
    _: Authorized<perm::StreamsRead>,
    State(state): State<AppState>,
    ApiQuery(p): ApiQuery<DetectionParams>,
) -> Result<ApiJson<DetectionPage>, AppError> {
    let from = p
        .from
        .as_deref()
        .map(|s| parse_time("from", s))
        .transpose()?;
    let to = p.to.as_deref().map(|s| parse_time("to", s)).transpose()?;
    if let (Some(f), Some(t)) = (from, to)
        && f > t
    {
        return Err(AppError::bad_request("invalid_range", "from is after to"));
    }
    let limit = page_limit(p.limit)?;
    let after = p
        .cursor
        .as_deref()
        .map(|c| decode_cursor(&p.stream, c))
        .transpose()?;
    let store = state.store()?;
    store.get_stream(&p.stream).await?;
    let mut rows = store
        .detections(&DetectionQuery {
            stream_id: p.stream.clone(),
            from,
            to,
            after,
            limit: limit + 1,
        })
        .await?;
    let more = rows.len() as i64 > limit;
    rows.truncate(limit as usize);
    let next_cursor = if more {
        rows.last().map(|d| encode_cursor(&p.stream, &d.key()))
    } else {
        None
    };
    Ok(ApiJson(DetectionPage {
        items: rows.into_iter().map(DetectionOut::from).collect(),
        next_cursor,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_refuse_tampering_and_other_streams() {
        let k = DetectionKey {
            time: DateTime::from_timestamp_micros(1_700_000_000_123_456).unwrap(),
            chunk_id: "cam-1:42".into(),
            frame_index: 7,
            det_index: 2,
        };
        let c = encode_cursor("cam-1", &k);
        assert_eq!(decode_cursor("cam-1", &c).unwrap(), k);
        assert_eq!(
            decode_cursor("cam-2", &c).unwrap_err().code(),
            "invalid_cursor"
        );
        assert_eq!(
            decode_cursor("cam-1", "!!").unwrap_err().code(),
            "invalid_cursor"
        );
        assert_eq!(
            decode_cursor("cam-1", &B64.encode(b"{\"s\":\"cam-1\"}"))
                .unwrap_err()
                .code(),
            "invalid_cursor"
        );
    }
}
