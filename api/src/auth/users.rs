//! Who may log in: the [`UserStore`] trait, argon2 password hashing, and the in-memory store
//! seeded from configuration (the bootstrap admin). The PostgreSQL-backed store (the `users`
//! table of the sinks migrations) implements the same trait.

use std::future::Future;
use std::pin::Pin;
use std::sync::RwLock;

use argon2::password_hash::phc::PasswordHash;
use argon2::{Argon2, PasswordHasher, PasswordVerifier};

use crate::auth::Role;

/// A boxed future, so that [`UserStore`] can be used as `dyn UserStore`.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A user as the store keeps it.
#[derive(Clone, PartialEq, Eq)]
pub struct User {
    pub id: i64,
    pub username: String,
    /// An argon2 PHC string (`$argon2id$v=19$...`).
    pub password_hash: String,
    pub role: Role,
}

impl std::fmt::Debug for User {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("User")
            .field("id", &self.id)
            .field("username", &self.username)
            .field("role", &self.role)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum UserStoreError {
    #[error("user {0:?} already exists")]
    Duplicate(String),
    #[error("invalid password hash: {0}")]
    InvalidHash(String),
    /// The backing store failed; `retriable` says whether trying again may succeed.
    #[error("user store unavailable")]
    Backend {
        retriable: bool,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

/// Where users live. Implemented in memory here and over PostgreSQL by the storage crate.
pub trait UserStore: Send + Sync + 'static {
    fn find_by_username<'a>(
        &'a self,
        username: &'a str,
    ) -> BoxFuture<'a, Result<Option<User>, UserStoreError>>;

    fn find_by_id(&self, id: i64) -> BoxFuture<'_, Result<Option<User>, UserStoreError>>;
}

/// Users held in memory: for a single process, tests, and the bootstrap admin.
#[derive(Debug, Default)]
pub struct InMemoryUserStore {
    users: RwLock<Vec<User>>,
}

impl InMemoryUserStore {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a user with an already hashed password; returns its id.
    pub fn insert(
        &self,
        username: &str,
        password_hash: &str,
        role: Role,
    ) -> Result<i64, UserStoreError> {
        check_hash(password_hash)?;
        let mut users = self.users.write().unwrap_or_else(|e| e.into_inner());
        if users.iter().any(|u| u.username == username) {
            return Err(UserStoreError::Duplicate(username.to_owned()));
        }
        let id = users.iter().map(|u| u.id).max().unwrap_or(0) + 1;
        users.push(User {
            id,
            username: username.to_owned(),
            password_hash: password_hash.to_owned(),
            role,
        });
        Ok(id)
    }

    /// Changes a user's role (role changes take effect at the next token refresh).
    pub fn set_role(&self, username: &str, role: Role) -> bool {
        let mut users = self.users.write().unwrap_or_else(|e| e.into_inner());
        match users.iter_mut().find(|u| u.username == username) {
            Some(u) => {
                u.role = role;
                true
            }
            None => false,
        }
    }

    /// Removes a user; their refresh tokens stop working.
    pub fn remove(&self, username: &str) -> bool {
        let mut users = self.users.write().unwrap_or_else(|e| e.into_inner());
        let before = users.len();
        users.retain(|u| u.username != username);
        users.len() != before
    }

    fn find(&self, pred: impl Fn(&User) -> bool) -> Option<User> {
        let users = self.users.read().unwrap_or_else(|e| e.into_inner());
        users.iter().find(|u| pred(u)).cloned()
    }
}

impl UserStore for InMemoryUserStore {
    fn find_by_username<'a>(
        &'a self,
        username: &'a str,
    ) -> BoxFuture<'a, Result<Option<User>, UserStoreError>> {
        Box::pin(async move { Ok(self.find(|u| u.username == username)) })
    }

    fn find_by_id(&self, id: i64) -> BoxFuture<'_, Result<Option<User>, UserStoreError>> {
        Box::pin(async move { Ok(self.find(|u| u.id == id)) })
    }
}

/// Refuses what is not a PHC string, before a user is stored with it.
pub fn check_hash(password_hash: &str) -> Result<(), UserStoreError> {
    PasswordHash::new(password_hash)
        .map(drop)
        .map_err(|e| UserStoreError::InvalidHash(e.to_string()))
}

/// Hashes a password with argon2id and a random salt (OWASP-recommended default parameters).
/// CPU-heavy: call it off the async runtime.
pub fn hash_password(password: &str) -> Result<String, UserStoreError> {
    Argon2::default()
        .hash_password(password.as_bytes())
        .map(|h| h.to_string())
        .map_err(|e| UserStoreError::InvalidHash(e.to_string()))
}

/// Whether `password` matches the PHC string `hash` (parameters are read from the hash).
/// A malformed hash never matches. CPU-heavy: call it off the async runtime.
pub fn verify_password(password: &str, hash: &str) -> bool {
    match PasswordHash::new(hash) {
        Ok(parsed) => Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok(),
        Err(_) => false,
    }
}

/// A random password of 32 lowercase hex digits (128 bits), for the first-run admin.
pub fn generate_password() -> String {
    let a = uuid::Uuid::new_v4().as_u128();
    let b = uuid::Uuid::new_v4().as_u128();
    // A v4 UUID holds 122 random bits; mixing two fills all 128.
    format!("{:032x}", a ^ b.rotate_left(64))
}

/// What [`bootstrap_admin`] did.
#[derive(Debug)]
pub enum Bootstrap {
    /// The admin's hash came from configuration.
    Configured,
    /// No hash was configured: this password was generated, and must be shown to the operator
    /// once together with its hash, which they can configure to keep it.
    Generated { password: String, hash: String },
}

/// The admin's hash: `password_hash` when configured, else the hash of a generated password
/// (which the [`Bootstrap`] carries, to be shown once). Both user stores bootstrap with it.
pub fn admin_hash(password_hash: Option<&str>) -> Result<(String, Bootstrap), UserStoreError> {
    match password_hash {
        Some(hash) => Ok((hash.to_owned(), Bootstrap::Configured)),
        None => {
            let password = generate_password();
            let hash = hash_password(&password)?;
            Ok((hash.clone(), Bootstrap::Generated { password, hash }))
        }
    }
}

/// Adds the admin user: with `password_hash` when configured, else with a generated password.
pub fn bootstrap_admin(
    store: &InMemoryUserStore,
    username: &str,
    password_hash: Option<&str>,
) -> Result<Bootstrap, UserStoreError> {
    let (hash, outcome) = admin_hash(password_hash)?;
    store.insert(username, &hash, Role::Admin)?;
    Ok(outcome)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_then_verify() {
        let h = hash_password("correct horse").unwrap();
        assert!(h.starts_with("$argon2id$"));
        assert!(verify_password("correct horse", &h));
        assert!(!verify_password("wrong horse", &h));
        assert!(!verify_password("correct horse", "not a hash"));
    }

    #[test]
    fn generated_passwords_differ() {
        let (a, b) = (generate_password(), generate_password());
        assert_eq!(a.len(), 32);
        assert_ne!(a, b);
    }

    #[tokio::test]
    async fn store_finds_inserted_users_and_refuses_duplicates_and_bad_hashes() {
        let store = InMemoryUserStore::new();
        let h = hash_password("pw").unwrap();
        let id = store.insert("ann", &h, Role::Viewer).unwrap();
        assert!(matches!(
            store.insert("ann", &h, Role::Admin),
            Err(UserStoreError::Duplicate(_))
        ));
        assert!(matches!(
            store.insert("bob", "plaintext", Role::Admin),
            Err(UserStoreError::InvalidHash(_))
        ));
        let ann = store.find_by_username("ann").await.unwrap().unwrap();
        assert_eq!((ann.id, ann.role), (id, Role::Viewer));
        assert_eq!(store.find_by_id(id).await.unwrap().unwrap().username, "ann");
        assert!(store.find_by_username("bob").await.unwrap().is_none());
        assert!(
            !format!("{ann:?}").contains("argon2"),
            "Debug hides the hash"
        );
    }

    #[tokio::test]
    async fn bootstrap_generates_a_working_password_when_none_is_configured() {
        let store = InMemoryUserStore::new();
        let Bootstrap::Generated { password, hash } =
            bootstrap_admin(&store, "admin", None).unwrap()
        else {
            panic!("expected a generated password");
        };
        let admin = store.find_by_username("admin").await.unwrap().unwrap();
        assert_eq!(admin.role, Role::Admin);
        assert_eq!(admin.password_hash, hash);
        assert!(verify_password(&password, &admin.password_hash));
    }
}
