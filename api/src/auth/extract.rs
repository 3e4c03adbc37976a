//! Extractors that authenticate a request from its bearer token and authorise it against the
//! route's permission: `Authenticated` (any valid access token) and `Authorized<P>` (the
//! token's role must hold `P::PERMISSION`). Missing/invalid/expired → 401, wrong role → 403.

use std::marker::PhantomData;

use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;

use crate::AppState;
use crate::auth::{Claims, Permission, Role, TokenKind, allows};
use crate::error::AppError;

/// The authenticated caller, from a verified access token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub user_id: i64,
    pub username: String,
    pub role: Role,
    /// When the token expires (seconds since the epoch).
    pub expires_at: u64,
}

impl Principal {
    pub fn from_claims(c: &Claims) -> Result<Self, AppError> {
        Ok(Principal {
            user_id: c
                .user_id()
                .ok_or_else(|| AppError::unauthorized("invalid token: bad subject"))?,
            username: c.name.clone(),
            role: c.role,
            expires_at: c.exp,
        })
    }

    pub fn can(&self, permission: Permission) -> bool {
        allows(self.role, permission)
    }

    /// `Ok` when the role holds `permission`, else the 403 error.
    pub fn require(&self, permission: Permission) -> Result<(), AppError> {
        if self.can(permission) {
            Ok(())
        } else {
            Err(AppError::Forbidden {
                role: self.role.as_str(),
                permission: permission.as_str(),
            })
        }
    }
}

/// Verifies an access token and returns who holds it.
pub fn authenticate_token(state: &AppState, token: &str) -> Result<Principal, AppError> {
    let claims = state
        .tokens()
        .verify(token, TokenKind::Access)
        .map_err(|e| AppError::unauthorized(e.to_string()))?;
    Principal::from_claims(&claims)
}

fn bearer(parts: &Parts) -> Result<&str, AppError> {
    let value = parts
        .headers
        .get(AUTHORIZATION)
        .ok_or_else(|| AppError::unauthorized("missing bearer token"))?
        .to_str()
        .map_err(|_| AppError::unauthorized("malformed Authorization header"))?;
    match value.split_once(' ') {
        Some((scheme, token))
            if scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty() =>
        {
            Ok(token.trim())
        }
        _ => Err(AppError::unauthorized(
            "Authorization must be `Bearer <token>`",
        )),
    }
}

/// Any caller with a valid access token.
#[derive(Debug, Clone)]
pub struct Authenticated(pub Principal);

impl FromRequestParts<AppState> for Authenticated {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, AppError> {
        Ok(Authenticated(authenticate_token(state, bearer(parts)?)?))
    }
}

/// A permission a route requires, as a type: `Authorized<perm::StreamsRead>`.
pub trait RequiredPermission: Send + Sync + 'static {
    const PERMISSION: Permission;
}

/// One marker type per [`Permission`], for [`Authorized`].
pub mod perm {
    use super::{Permission, RequiredPermission};

    macro_rules! markers {
        ($($name:ident),* $(,)?) => {$(
            #[derive(Debug, Clone, Copy)]
            pub struct $name;
            impl RequiredPermission for $name {
                const PERMISSION: Permission = Permission::$name;
            }
        )*};
    }

    markers!(
        StreamsRead,
        StreamsWrite,
        StreamsControl,
        HorsesRead,
        HorsesWrite,
        AnalyticsRead,
        AnalyticsWrite,
        ModelsRead,
        ModelsWrite,
        UsersRead,
        UsersWrite,
    );
}

/// A caller whose role holds `P::PERMISSION`.
#[derive(Debug, Clone)]
pub struct Authorized<P>(pub Principal, PhantomData<P>);

impl<P> Authorized<P> {
    pub fn principal(&self) -> &Principal {
        &self.0
    }
}

impl<P: RequiredPermission> FromRequestParts<AppState> for Authorized<P> {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, AppError> {
        let Authenticated(principal) = Authenticated::from_request_parts(parts, state).await?;
        principal.require(P::PERMISSION)?;
        Ok(Authorized(principal, PhantomData))
    }
}
