//! `AppState`: what every handler and socket event shares (tokens, users, the password-hashing
//! limiter, the live-events status, the Prometheus counters, the optional store, the model
//! settings and what is served from disk: HLS playback and the web client). Cheap to clone.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use horsestream_sinks::Store;
use tokio::sync::{OnceCell, Semaphore};

use crate::auth::{AuthConfig, TokenService, UserStore, users};
use crate::error::AppError;
use crate::metrics::ApiMetrics;

#[derive(Clone)]
pub struct AppState(Arc<Inner>);

struct Inner {
    tokens: TokenService,
    users: Arc<dyn UserStore>,
    /// At most one argon2 computation per core, so a login flood cannot starve the runtime.
    hashing: Semaphore,
    dummy_hash: OnceCell<String>,
    events: EventsStatus,
    metrics: Arc<ApiMetrics>,
    store: Option<Store>,
    models: ModelSettings,
    camera: CameraSettings,
    playback: PlaybackSettings,
}

/// What the API serves from disk: the streams' HLS playback and the web client.
#[derive(Debug, Clone, Default)]
pub struct PlaybackSettings {
    /// The folder `horsestream ingest --hls-dir` writes to; playback answers 503 without one.
    pub hls_dir: Option<std::path::PathBuf>,
    /// The built web client (`scripts/web-build.sh` → `web/dist`), served at `/`.
    pub web_dir: Option<std::path::PathBuf>,
}

/// Where uploaded models go and what they are checked against.
#[derive(Debug, Clone)]
pub struct ModelSettings {
    /// The model directory; uploads are refused (503) without one.
    pub dir: Option<std::path::PathBuf>,
    /// The manifest uploads are checked against (name, sha256, tensor signature).
    pub manifest: horsestream_models::Manifest,
    /// Largest upload accepted, bytes.
    pub max_upload_bytes: u64,
}

impl Default for ModelSettings {
    fn default() -> Self {
        ModelSettings {
            dir: None,
            manifest: horsestream_models::Manifest::embedded(),
            max_upload_bytes: Self::DEFAULT_MAX_UPLOAD,
        }
    }
}

impl ModelSettings {
    /// 256 MiB: larger than any detection or re-ID model the manifest lists.
    pub const DEFAULT_MAX_UPLOAD: u64 = 256 << 20;
}

/// How the API talks to cameras (PTZ over ONVIF, snapshots over RTSP).
#[derive(Debug, Clone)]
pub struct CameraSettings {
    /// The `ffmpeg` executable that grabs a snapshot.
    pub ffmpeg: std::path::PathBuf,
    /// Longest a snapshot or an ONVIF call may take.
    pub timeout: std::time::Duration,
}

impl Default for CameraSettings {
    fn default() -> Self {
        CameraSettings {
            ffmpeg: "ffmpeg".into(),
            timeout: std::time::Duration::from_secs(10),
        }
    }
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState")
            .field("tokens", &self.0.tokens)
            .field("events", &self.0.events)
            .finish_non_exhaustive()
    }
}

/// Counters and readiness of the live-events consumer.
#[derive(Debug, Default)]
pub struct EventsStatus {
    /// The consumer is positioned on every partition: events published from now on are seen.
    pub ready: AtomicBool,
    pub received: AtomicU64,
    pub emitted: AtomicU64,
    pub undecodable: AtomicU64,
}

impl AppState {
    pub fn new(auth: &AuthConfig, users: Arc<dyn UserStore>) -> Self {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        AppState(Arc::new(Inner {
            tokens: TokenService::new(auth),
            users,
            hashing: Semaphore::new(cores),
            dummy_hash: OnceCell::new(),
            events: EventsStatus::default(),
            metrics: Arc::default(),
            store: None,
            models: ModelSettings::default(),
            camera: CameraSettings::default(),
            playback: PlaybackSettings::default(),
        }))
    }

    /// The same state serving the REST resources from `store`.
    pub fn with_store(self, store: Store) -> Self {
        self.map(|i| i.store = Some(store))
    }

    pub fn with_models(self, models: ModelSettings) -> Self {
        self.map(|i| i.models = models)
    }

    pub fn with_camera(self, camera: CameraSettings) -> Self {
        self.map(|i| i.camera = camera)
    }

    pub fn with_playback(self, playback: PlaybackSettings) -> Self {
        self.map(|i| i.playback = playback)
    }

    fn map(self, f: impl FnOnce(&mut Inner)) -> Self {
        let mut inner = Arc::try_unwrap(self.0).unwrap_or_else(|shared| Inner {
            tokens: shared.tokens.clone(),
            users: shared.users.clone(),
            hashing: Semaphore::new(shared.hashing.available_permits().max(1)),
            dummy_hash: OnceCell::new(),
            events: EventsStatus::default(),
            metrics: shared.metrics.clone(),
            store: shared.store.clone(),
            models: shared.models.clone(),
            camera: shared.camera.clone(),
            playback: shared.playback.clone(),
        });
        f(&mut inner);
        AppState(Arc::new(inner))
    }

    /// The store, or 503 when the API runs without a database.
    pub fn store(&self) -> Result<&Store, AppError> {
        self.0
            .store
            .as_ref()
            .ok_or_else(|| AppError::Unavailable("no database configured".into()))
    }

    pub fn models(&self) -> &ModelSettings {
        &self.0.models
    }

    pub fn camera(&self) -> &CameraSettings {
        &self.0.camera
    }

    pub fn playback(&self) -> &PlaybackSettings {
        &self.0.playback
    }

    pub fn tokens(&self) -> &TokenService {
        &self.0.tokens
    }

    pub fn users(&self) -> &dyn UserStore {
        self.0.users.as_ref()
    }

    pub fn events(&self) -> &EventsStatus {
        &self.0.events
    }

    /// The counters `GET /metrics` reports (`--metrics-listen`).
    pub fn metrics(&self) -> &ApiMetrics {
        &self.0.metrics
    }

    pub fn events_ready(&self) -> bool {
        self.0.events.ready.load(Ordering::Acquire)
    }

    /// Verifies a password on the blocking pool, at most one per core at a time.
    pub async fn verify_password(&self, password: String, hash: String) -> Result<bool, AppError> {
        let _permit = self.0.hashing.acquire().await.map_err(AppError::internal)?;
        tokio::task::spawn_blocking(move || users::verify_password(&password, &hash))
            .await
            .map_err(AppError::internal)
    }

    /// A hash of a random password, verified against when the username is unknown.
    pub async fn dummy_password_hash(&self) -> Result<String, AppError> {
        self.0
            .dummy_hash
            .get_or_try_init(|| async {
                let _permit = self.0.hashing.acquire().await.map_err(AppError::internal)?;
                tokio::task::spawn_blocking(|| users::hash_password(&users::generate_password()))
                    .await
                    .map_err(AppError::internal)?
                    .map_err(AppError::internal)
            })
            .await
            .cloned()
    }
}
