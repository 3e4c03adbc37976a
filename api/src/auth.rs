//! Authentication and authorisation: users and argon2 hashes, JWTs, the seed's roles and
//! permissions, the extractors routes use, and the `/api/v1/auth/*` routes.

mod db_users;
mod extract;
mod permissions;
pub mod routes;
mod tokens;
pub mod users;

pub use db_users::StoreUserStore;
pub use extract::{
    Authenticated, Authorized, Principal, RequiredPermission, authenticate_token, perm,
};
pub use permissions::{Permission, Role, allows, grant_covers};
pub use tokens::{
    AuthConfig, Claims, ISSUER, MIN_SECRET_LEN, TokenError, TokenKind, TokenPair, TokenService,
    now_secs,
};
pub use users::{Bootstrap, InMemoryUserStore, User, UserStore, UserStoreError};
