//! `AppState`: what every handler and socket event shares (tokens, users, the password-hashing
//! limiter, the live-events status). Cheap to clone.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use tokio::sync::{OnceCell, Semaphore};

use crate::auth::{AuthConfig, TokenService, UserStore, users};
use crate::error::AppError;

#[derive(Clone)]
pub struct AppState(Arc<Inner>);

struct Inner {
    tokens: TokenService,
    users: Arc<dyn UserStore>,
    /// At most one argon2 computation per core, so a login flood cannot starve the runtime.
    hashing: Semaphore,
    dummy_hash: OnceCell<String>,
    events: EventsStatus,
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
        }))
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
