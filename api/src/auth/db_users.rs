//! [`StoreUserStore`]: the [`UserStore`] over the `users` table of the sinks store (TimescaleDB
//! or SQLite), and the first-run admin for it.

use horsestream_sinks::{NewUser, SinkError, Store};

use crate::auth::users::{BoxFuture, User, UserStore, UserStoreError};
use crate::auth::{Bootstrap, Role, users};

/// Users kept in the store's `users` table.
#[derive(Debug, Clone)]
pub struct StoreUserStore {
    store: Store,
}

fn role_from(r: horsestream_sinks::Role) -> Role {
    match r {
        horsestream_sinks::Role::Admin => Role::Admin,
        horsestream_sinks::Role::Manager => Role::Manager,
        horsestream_sinks::Role::Viewer => Role::Viewer,
    }
}

fn role_to(r: Role) -> horsestream_sinks::Role {
    match r {
        Role::Admin => horsestream_sinks::Role::Admin,
        Role::Manager => horsestream_sinks::Role::Manager,
        Role::Viewer => horsestream_sinks::Role::Viewer,
    }
}

fn user_from(u: horsestream_sinks::User) -> User {
    User {
        id: u.id,
        username: u.username,
        password_hash: u.password_hash,
        role: role_from(u.role),
    }
}

fn backend(e: SinkError) -> UserStoreError {
    match e {
        SinkError::Conflict { id, .. } => UserStoreError::Duplicate(id),
        e => UserStoreError::Backend {
            retriable: e.is_retriable(),
            source: Box::new(e),
        },
    }
}

impl StoreUserStore {
    pub fn new(store: Store) -> Self {
        StoreUserStore { store }
    }

    /// Adds a user with an already hashed (argon2 PHC) password; returns its id.
    pub async fn insert(
        &self,
        username: &str,
        password_hash: &str,
        role: Role,
    ) -> Result<i64, UserStoreError> {
        users::check_hash(password_hash)?;
        let u = self
            .store
            .create_user(&NewUser {
                username: username.to_owned(),
                password_hash: password_hash.to_owned(),
                role: role_to(role),
            })
            .await
            .map_err(backend)?;
        Ok(u.id)
    }

    /// Makes sure the admin exists: created with `password_hash`, or with a generated password
    /// (returned once) when none is configured. An existing admin is left as it is.
    pub async fn bootstrap_admin(
        &self,
        username: &str,
        password_hash: Option<&str>,
    ) -> Result<Option<Bootstrap>, UserStoreError> {
        if self.find_by_username(username).await?.is_some() {
            return Ok(None);
        }
        let (hash, outcome) = users::admin_hash(password_hash)?;
        self.insert(username, &hash, Role::Admin).await?;
        Ok(Some(outcome))
    }
}

impl UserStore for StoreUserStore {
    fn find_by_username<'a>(
        &'a self,
        username: &'a str,
    ) -> BoxFuture<'a, Result<Option<User>, UserStoreError>> {
        Box::pin(async move {
            Ok(self
                .store
                .find_user_by_username(username)
                .await
                .map_err(backend)?
                .map(user_from))
        })
    }

    fn find_by_id(&self, id: i64) -> BoxFuture<'_, Result<Option<User>, UserStoreError>> {
        Box::pin(async move {
            Ok(self
                .store
                .find_user_by_id(id)
                .await
                .map_err(backend)?
                .map(user_from))
        })
    }
}
