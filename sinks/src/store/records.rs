//! The rows the repository reads and writes, independent of the backend.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::SinkError;

/// Size of the shipped re-ID model's embeddings, the dimension the migrations give
/// `horse_features.embedding`. The dimension a store holds is [`crate::Store::embedding_dim`];
/// [`crate::Store::migrate_gallery`] changes it for a model of another size (MIGRATIONS.md).
pub const EMBEDDING_DIM: usize = 1280;

/// The largest embedding a gallery holds: pgvector indexes `vector` columns of up to 2,000
/// dimensions with hnsw.
pub const MAX_EMBEDDING_DIM: usize = 2000;

/// How image pixels relate to the ground plane of a stream. Stored as JSON:
/// `{"pixels_per_metre": 42.0}` or `{"homography": […]}`; the dataflow's gait metrics use it
/// as it is.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Calibration {
    /// A constant scale, valid for a camera looking straight at the plane of motion.
    PixelsPerMetre(f64),
    /// Row-major 3×3 homography from image pixels `(x, y, 1)` to ground-plane metres.
    Homography([[f64; 3]; 3]),
}

impl Calibration {
    /// Maps an image point to ground metres; `None` for a point on or beyond the horizon.
    pub fn to_ground(&self, p: [f64; 2]) -> Option<[f64; 2]> {
        match *self {
            Calibration::PixelsPerMetre(ppm) => Some([p[0] / ppm, p[1] / ppm]),
            Calibration::Homography(h) => {
                let w = h[2][0] * p[0] + h[2][1] * p[1] + h[2][2];
                if !w.is_finite() || w.abs() < 1e-12 {
                    return None;
                }
                let x = (h[0][0] * p[0] + h[0][1] * p[1] + h[0][2]) / w;
                let y = (h[1][0] * p[0] + h[1][1] * p[1] + h[1][2]) / w;
                (x.is_finite() && y.is_finite()).then_some([x, y])
            }
        }
    }

    /// Why this calibration cannot map pixels to metres, if it cannot.
    pub fn check(&self) -> Result<(), String> {
        match *self {
            Calibration::PixelsPerMetre(ppm) if !(ppm.is_finite() && ppm > 0.0) => {
                Err(format!("pixels per metre must be > 0, got {ppm}"))
            }
            Calibration::PixelsPerMetre(_) => Ok(()),
            Calibration::Homography(h) => {
                if h.iter().flatten().any(|v| !v.is_finite()) {
                    return Err("homography has a non-finite entry".into());
                }
                let det = h[0][0] * (h[1][1] * h[2][2] - h[1][2] * h[2][1])
                    - h[0][1] * (h[1][0] * h[2][2] - h[1][2] * h[2][0])
                    + h[0][2] * (h[1][0] * h[2][1] - h[1][1] * h[2][0]);
                if det.abs() < 1e-15 {
                    return Err("homography is singular".into());
                }
                Ok(())
            }
        }
    }
}

/// A named region of the image (paddock, gate, water trough), polygon in source pixels.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Zone {
    pub name: String,
    pub polygon: Vec<[f64; 2]>,
}

/// Which alert rules the dataflow applies to a stream's horses, and their thresholds (the
/// dataflow's `horses` module describes each rule). Stored as JSON; a field left out takes
/// its default, `null` turns a timed rule off.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AlertRules {
    /// `no_movement`: a horse at standstill this long, seconds (default 600).
    pub no_movement_s: Option<f64>,
    /// `lying_down`: a horse's box flat this long, seconds (default 30).
    pub lying_down_s: Option<f64>,
    /// `zone_exit`: a horse leaves every zone of the stream (default on; needs zones).
    pub zone_exit: bool,
}

impl Default for AlertRules {
    fn default() -> Self {
        AlertRules {
            no_movement_s: Some(600.0),
            lying_down_s: Some(30.0),
            zone_exit: true,
        }
    }
}

/// The longest a timed alert rule waits: a day.
pub const MAX_ALERT_WAIT_S: f64 = 86_400.0;

impl AlertRules {
    /// Every timed threshold finite, above 0 and at most [`MAX_ALERT_WAIT_S`].
    pub fn validate(&self) -> Result<(), String> {
        for (name, v) in [
            ("no_movement_s", self.no_movement_s),
            ("lying_down_s", self.lying_down_s),
        ] {
            if let Some(v) = v
                && !(v.is_finite() && v > 0.0 && v <= MAX_ALERT_WAIT_S)
            {
                return Err(format!(
                    "{name} must be within (0, {MAX_ALERT_WAIT_S}] seconds"
                ));
            }
        }
        Ok(())
    }
}

/// A camera or file the platform watches. The credentials are kept server-side and never
/// part of this record: read them with `Store::stream_credentials`.
#[derive(Debug, Clone, PartialEq)]
pub struct Stream {
    pub id: String,
    pub name: String,
    pub source_url: String,
    pub source_kind: String,
    pub status: String,
    pub has_credentials: bool,
    pub calibration: Option<Calibration>,
    pub zones: Vec<Zone>,
    pub alert_rules: AlertRules,
    pub enabled: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// What [`Store::claim_streams`](crate::Store::claim_streams) found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StreamClaims {
    /// Enabled streams the caller holds, by id.
    pub owned: Vec<String>,
    /// Enabled streams nobody holds a live lease on.
    pub pending: u64,
}

/// What `Store::create_stream` takes; the status starts as `stopped`.
#[derive(Clone, PartialEq)]
pub struct NewStream {
    pub id: String,
    pub name: String,
    pub source_url: String,
    pub source_kind: String,
    pub credentials_secret: Option<String>,
    pub calibration: Option<Calibration>,
    pub zones: Vec<Zone>,
    pub enabled: bool,
}

impl std::fmt::Debug for NewStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewStream")
            .field("id", &self.id)
            .field("name", &self.name)
            .field("source_url", &self.source_url)
            .field("source_kind", &self.source_kind)
            .field(
                "credentials_secret",
                &self.credentials_secret.as_ref().map(|_| "…"),
            )
            .field("calibration", &self.calibration)
            .field("zones", &self.zones)
            .field("enabled", &self.enabled)
            .finish()
    }
}

/// A partial update: `None` leaves a field as it is. `Some(None)` clears an optional field.
#[derive(Clone, Default, PartialEq)]
pub struct StreamPatch {
    pub name: Option<String>,
    pub source_url: Option<String>,
    pub source_kind: Option<String>,
    pub status: Option<String>,
    pub credentials_secret: Option<Option<String>>,
    pub calibration: Option<Option<Calibration>>,
    pub zones: Option<Vec<Zone>>,
    pub alert_rules: Option<AlertRules>,
    pub enabled: Option<bool>,
}

impl std::fmt::Debug for StreamPatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamPatch")
            .field("name", &self.name)
            .field("source_url", &self.source_url)
            .field("source_kind", &self.source_kind)
            .field("status", &self.status)
            .field(
                "credentials_secret",
                &self
                    .credentials_secret
                    .as_ref()
                    .map(|c| c.as_ref().map(|_| "…")),
            )
            .field("calibration", &self.calibration)
            .field("zones", &self.zones)
            .field("alert_rules", &self.alert_rules)
            .field("enabled", &self.enabled)
            .finish()
    }
}

impl StreamPatch {
    /// Applies the patch to a stored stream (credentials are handled separately).
    pub(crate) fn apply(&self, s: &mut Stream) {
        if let Some(v) = &self.name {
            s.name.clone_from(v);
        }
        if let Some(v) = &self.source_url {
            s.source_url.clone_from(v);
        }
        if let Some(v) = &self.source_kind {
            s.source_kind.clone_from(v);
        }
        if let Some(v) = &self.status {
            s.status.clone_from(v);
        }
        if let Some(v) = self.calibration {
            s.calibration = v;
        }
        if let Some(v) = &self.zones {
            s.zones.clone_from(v);
        }
        if let Some(v) = self.alert_rules {
            s.alert_rules = v;
        }
        if let Some(v) = self.enabled {
            s.enabled = v;
        }
    }
}

/// A horse as the platform knows it: one identity across broken tracks.
#[derive(Debug, Clone, PartialEq)]
pub struct Horse {
    pub id: i64,
    pub stream_id: String,
    pub display_name: String,
    pub colour: Option<String>,
    pub first_seen: DateTime<Utc>,
    pub last_seen: DateTime<Utc>,
    pub track_ids: Vec<i64>,
}

/// A horse seen at `time`: a new horse (`horse_id: None`, named `Horse_N` in its stream)
/// or another sighting of a known one (widens first/last seen, remembers the track id).
#[derive(Debug, Clone, PartialEq)]
pub struct HorseSighting {
    pub horse_id: Option<i64>,
    pub stream_id: String,
    pub time: DateTime<Utc>,
    pub track_id: Option<i64>,
    pub colour: Option<String>,
}

/// A horse the dataflow numbered in its stream (`Horse_{number}`), seen between `first_seen`
/// and `last_seen` under `track_ids`. Recording it again widens the times and adds track ids,
/// so a replayed chunk changes nothing.
#[derive(Debug, Clone, PartialEq)]
pub struct HorseObservation {
    pub stream_id: String,
    pub number: u32,
    pub first_seen: DateTime<Utc>,
    pub last_seen: DateTime<Utc>,
    pub track_ids: Vec<i64>,
}

/// Features kept per horse in the persisted re-ID gallery; older ones are dropped on insert.
pub const GALLERY_LIMIT: i64 = 64;

/// A gallery match: the horse and its smallest cosine distance to the query.
#[derive(Debug, Clone, PartialEq)]
pub struct HorseMatch {
    pub horse_id: i64,
    pub display_name: String,
    pub distance: f64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    Info,
    Warning,
    Critical,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Critical => "critical",
        }
    }

    pub(crate) fn parse(s: &str) -> Result<Self, SinkError> {
        match s {
            "info" => Ok(Severity::Info),
            "warning" => Ok(Severity::Warning),
            "critical" => Ok(Severity::Critical),
            other => Err(SinkError::Invalid {
                what: "severity",
                reason: format!("{other:?} is not info, warning or critical"),
            }),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct NewAlert {
    pub time: DateTime<Utc>,
    pub stream_id: String,
    pub horse_id: Option<i64>,
    pub kind: String,
    pub severity: Severity,
    pub message: String,
    /// Set by the producer (e.g. `chunk id/rule`) so that a replayed chunk raises the alert
    /// once; inserting an alert whose key exists returns the stored one.
    pub dedup_key: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Alert {
    pub id: i64,
    pub time: DateTime<Utc>,
    pub stream_id: String,
    pub horse_id: Option<i64>,
    pub kind: String,
    pub severity: Severity,
    pub message: String,
    pub dedup_key: Option<String>,
    pub acknowledged_at: Option<DateTime<Utc>>,
    pub acknowledged_by: Option<String>,
}

/// Which alerts `Store::list_alerts` returns, newest first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlertQuery {
    pub stream_id: Option<String>,
    pub unacknowledged_only: bool,
    pub limit: i64,
}

impl Default for AlertQuery {
    fn default() -> Self {
        AlertQuery {
            stream_id: None,
            unacknowledged_only: false,
            limit: 100,
        }
    }
}

/// One gait window of one track, keyed by `(stream_id, track_id, time)`: writing the same
/// window again overwrites it, so a replay adds no row.
#[derive(Debug, Clone, PartialEq)]
pub struct GaitRow {
    pub time: DateTime<Utc>,
    pub stream_id: String,
    pub track_id: i64,
    pub horse_id: Option<i64>,
    pub speed: f64,
    pub acceleration: f64,
    /// `metres_per_second`, `body_lengths_per_second` or `pixels_per_second`.
    pub unit: String,
    pub stride_hz: Option<f64>,
    /// `standstill`, `walk`, `trot`, `canter`, `gallop` or `unknown`.
    pub gait_class: String,
    pub distance: f64,
    /// What the window's pose keypoints gave, when the stream runs a pose model.
    pub pose: Option<GaitPose>,
}

/// Gait metrics of one window from pose keypoints (stored as JSON with the window).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GaitPose {
    /// Poses in the window with at least one measurable limb.
    pub samples: u32,
    /// Stride frequency from the hooves' fore–aft motion, Hz.
    pub hoof_stride_hz: Option<f64>,
    /// Share of the hoof signal's variance the stride explains, 0..=1.
    pub hoof_confidence: f64,
    /// Left fore, right fore, left hind, right hind.
    pub joints: Vec<GaitJoint>,
    /// Signed symmetry index of the range of motion, percent (positive: left moves more).
    pub symmetry_fore: Option<f64>,
    pub symmetry_hind: Option<f64>,
}

/// One limb's joint over a window: the angle at the elbow (fore) or knee (hind) keypoint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GaitJoint {
    /// `left_fore`, `right_fore`, `left_hind` or `right_hind`.
    pub limb: String,
    pub mean_deg: Option<f64>,
    /// Range of motion: 95th − 5th percentile of the angle, degrees.
    pub rom_deg: Option<f64>,
    pub samples: u32,
}

/// `pose` as its column stores it.
pub(crate) fn pose_json(pose: &GaitPose) -> String {
    serde_json::to_string(pose).expect("a GaitPose is plain data")
}

/// The `pose` column read back; text that is not a `GaitPose` is a data error.
pub(crate) fn read_pose(text: Option<String>) -> Result<Option<GaitPose>, SinkError> {
    text.map(|t| {
        serde_json::from_str(&t).map_err(|e| SinkError::Invalid {
            what: "stored gait pose",
            reason: e.to_string(),
        })
    })
    .transpose()
}

impl GaitPose {
    /// Every number it holds, named, for validation.
    pub fn values(&self) -> Vec<(String, Option<f64>)> {
        let mut v = vec![
            ("hoof_stride_hz".to_owned(), self.hoof_stride_hz),
            ("hoof_confidence".to_owned(), Some(self.hoof_confidence)),
            ("symmetry_fore".to_owned(), self.symmetry_fore),
            ("symmetry_hind".to_owned(), self.symmetry_hind),
        ];
        for j in &self.joints {
            v.push((format!("{} mean_deg", j.limb), j.mean_deg));
            v.push((format!("{} rom_deg", j.limb), j.rom_deg));
        }
        v
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Admin,
    Manager,
    Viewer,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Manager => "manager",
            Role::Viewer => "viewer",
        }
    }

    pub(crate) fn parse(s: &str) -> Result<Self, SinkError> {
        match s {
            "admin" => Ok(Role::Admin),
            "manager" => Ok(Role::Manager),
            "viewer" => Ok(Role::Viewer),
            other => Err(SinkError::Invalid {
                what: "role",
                reason: format!("{other:?} is not admin, manager or viewer"),
            }),
        }
    }
}

/// A user; the password hash is what the API verifies against, never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct User {
    pub id: i64,
    pub username: String,
    pub password_hash: String,
    pub role: Role,
    pub created_at: DateTime<Utc>,
}

impl std::fmt::Debug for User {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("User")
            .field("id", &self.id)
            .field("username", &self.username)
            .field("password_hash", &"…")
            .field("role", &self.role)
            .field("created_at", &self.created_at)
            .finish()
    }
}

/// What one retention pass removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RetentionReport {
    /// TimescaleDB chunks dropped from `detections` and `gait_metrics` (0 on SQLite).
    pub dropped_chunks: u64,
    /// Rows deleted one by one: SQLite's detections and gait metrics, and on both backends
    /// the `video_chunks` and `chunk_errors` rows older than the cutoff.
    pub deleted_rows: u64,
}

/// What `Store::create_user` takes: the hash (argon2, bcrypt, …) is made by the API.
#[derive(Clone, PartialEq, Eq)]
pub struct NewUser {
    pub username: String,
    pub password_hash: String,
    pub role: Role,
}

impl std::fmt::Debug for NewUser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewUser")
            .field("username", &self.username)
            .field("password_hash", &"…")
            .field("role", &self.role)
            .finish()
    }
}
