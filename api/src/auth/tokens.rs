//! JWTs: HS256 access tokens (15 min) and refresh tokens (7 days) signed with the configured
//! secret. Only HS256 is accepted: `alg: none`, other algorithms, forged signatures, expired or
//! wrong-issuer tokens, and a refresh token used as an access token (or back) are refused.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use crate::auth::Role;

/// The shortest secret accepted (bytes): HS256 keys should carry at least 256 bits.
pub const MIN_SECRET_LEN: usize = 32;
pub const ISSUER: &str = "horsestream";

/// How tokens are signed and how long they live.
#[derive(Clone)]
pub struct AuthConfig {
    pub jwt_secret: Vec<u8>,
    pub access_ttl: Duration,
    pub refresh_ttl: Duration,
}

impl std::fmt::Debug for AuthConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthConfig")
            .field("jwt_secret", &"<redacted>")
            .field("access_ttl", &self.access_ttl)
            .field("refresh_ttl", &self.refresh_ttl)
            .finish()
    }
}

impl AuthConfig {
    pub const DEFAULT_ACCESS_TTL: Duration = Duration::from_secs(15 * 60);
    pub const DEFAULT_REFRESH_TTL: Duration = Duration::from_secs(7 * 24 * 3600);

    /// The seed's lifetimes with `secret`, refused when shorter than [`MIN_SECRET_LEN`].
    pub fn new(secret: impl Into<Vec<u8>>) -> Result<Self, TokenError> {
        let jwt_secret = secret.into();
        if jwt_secret.len() < MIN_SECRET_LEN {
            return Err(TokenError::WeakSecret(jwt_secret.len()));
        }
        Ok(AuthConfig {
            jwt_secret,
            access_ttl: Self::DEFAULT_ACCESS_TTL,
            refresh_ttl: Self::DEFAULT_REFRESH_TTL,
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TokenKind {
    Access,
    Refresh,
}

/// The claims of both kinds of token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// The user's id, as a string (RFC 7519).
    pub sub: String,
    /// The username, for logs and clients.
    pub name: String,
    pub role: Role,
    pub typ: TokenKind,
    pub iss: String,
    pub iat: u64,
    pub exp: u64,
    /// A unique id per token (for revocation lists and logs).
    pub jti: String,
}

impl Claims {
    pub fn user_id(&self) -> Option<i64> {
        self.sub.parse().ok()
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TokenError {
    #[error("the JWT secret has {0} bytes; at least {MIN_SECRET_LEN} are required")]
    WeakSecret(usize),
    #[error("token expired")]
    Expired,
    #[error("invalid token: {0}")]
    Invalid(String),
    #[error("a {0:?} token cannot be used here")]
    WrongKind(TokenKind),
    #[error("cannot sign token: {0}")]
    Sign(String),
}

/// Signs and checks tokens.
#[derive(Clone)]
pub struct TokenService {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    access_ttl: Duration,
    refresh_ttl: Duration,
}

impl std::fmt::Debug for TokenService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenService")
            .field("access_ttl", &self.access_ttl)
            .field("refresh_ttl", &self.refresh_ttl)
            .finish_non_exhaustive()
    }
}

/// A freshly issued token pair.
#[derive(Debug, Clone)]
pub struct TokenPair {
    pub access_token: String,
    pub refresh_token: String,
    pub access_expires_in: Duration,
    pub refresh_expires_in: Duration,
}

pub fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl TokenService {
    pub fn new(cfg: &AuthConfig) -> Self {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.algorithms = vec![Algorithm::HS256];
        validation.leeway = 5;
        validation.set_issuer(&[ISSUER]);
        validation.set_required_spec_claims(&["exp", "iat", "iss", "sub"]);
        TokenService {
            encoding: EncodingKey::from_secret(&cfg.jwt_secret),
            decoding: DecodingKey::from_secret(&cfg.jwt_secret),
            validation,
            access_ttl: cfg.access_ttl,
            refresh_ttl: cfg.refresh_ttl,
        }
    }

    pub fn access_ttl(&self) -> Duration {
        self.access_ttl
    }

    /// Signs arbitrary claims (tests use it to make expired tokens).
    pub fn sign(&self, claims: &Claims) -> Result<String, TokenError> {
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), claims, &self.encoding)
            .map_err(|e| TokenError::Sign(e.to_string()))
    }

    fn claims(&self, user_id: i64, username: &str, role: Role, typ: TokenKind) -> Claims {
        let iat = now_secs();
        let ttl = match typ {
            TokenKind::Access => self.access_ttl,
            TokenKind::Refresh => self.refresh_ttl,
        };
        Claims {
            sub: user_id.to_string(),
            name: username.to_owned(),
            role,
            typ,
            iss: ISSUER.to_owned(),
            iat,
            exp: iat + ttl.as_secs(),
            jti: uuid::Uuid::new_v4().to_string(),
        }
    }

    /// An access and a refresh token for this user.
    pub fn issue(&self, user_id: i64, username: &str, role: Role) -> Result<TokenPair, TokenError> {
        Ok(TokenPair {
            access_token: self.sign(&self.claims(user_id, username, role, TokenKind::Access))?,
            refresh_token: self.sign(&self.claims(user_id, username, role, TokenKind::Refresh))?,
            access_expires_in: self.access_ttl,
            refresh_expires_in: self.refresh_ttl,
        })
    }

    /// Checks signature, algorithm, issuer, expiry and kind; returns the claims.
    pub fn verify(&self, token: &str, kind: TokenKind) -> Result<Claims, TokenError> {
        use jsonwebtoken::errors::ErrorKind;
        let data = jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation)
            .map_err(|e| match e.kind() {
                ErrorKind::ExpiredSignature => TokenError::Expired,
                ErrorKind::InvalidSignature => TokenError::Invalid("bad signature".into()),
                ErrorKind::InvalidAlgorithm => TokenError::Invalid("algorithm not allowed".into()),
                ErrorKind::InvalidIssuer => TokenError::Invalid("wrong issuer".into()),
                _ => TokenError::Invalid("malformed token".into()),
            })?;
        if data.claims.typ != kind {
            return Err(TokenError::WrongKind(data.claims.typ));
        }
        Ok(data.claims)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn service(secret: &[u8]) -> TokenService {
        TokenService::new(&AuthConfig::new(secret.to_vec()).unwrap())
    }

    fn b64(s: &str) -> String {
        // base64url without padding, enough for the handcrafted tokens below
        const A: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        let b = s.as_bytes();
        let mut out = String::new();
        for chunk in b.chunks(3) {
            let n = chunk.iter().fold(0u32, |n, &c| (n << 8) | c as u32) << (8 * (3 - chunk.len()));
            for i in 0..=chunk.len() {
                out.push(A[((n >> (18 - 6 * i)) & 63) as usize] as char);
            }
        }
        out
    }

    const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";

    #[test]
    fn issued_tokens_verify_as_their_kind_only() {
        let s = service(SECRET);
        let pair = s.issue(7, "ann", Role::Manager).unwrap();
        let c = s.verify(&pair.access_token, TokenKind::Access).unwrap();
        assert_eq!(
            (c.user_id(), c.name.as_str(), c.role),
            (Some(7), "ann", Role::Manager)
        );
        assert_eq!(c.exp - c.iat, 15 * 60);
        let r = s.verify(&pair.refresh_token, TokenKind::Refresh).unwrap();
        assert_eq!(r.exp - r.iat, 7 * 24 * 3600);
        assert_eq!(
            s.verify(&pair.refresh_token, TokenKind::Access),
            Err(TokenError::WrongKind(TokenKind::Refresh))
        );
        assert_eq!(
            s.verify(&pair.access_token, TokenKind::Refresh),
            Err(TokenError::WrongKind(TokenKind::Access))
        );
    }

    #[test]
    fn expired_forged_and_unsigned_tokens_are_refused() {
        let s = service(SECRET);
        let mut c = s.claims(1, "ann", Role::Admin, TokenKind::Access);
        c.iat = now_secs() - 3600;
        c.exp = now_secs() - 60;
        assert_eq!(
            s.verify(&s.sign(&c).unwrap(), TokenKind::Access),
            Err(TokenError::Expired)
        );

        let other = service(b"another secret, also 32 bytes long!");
        let forged = other.issue(1, "ann", Role::Admin).unwrap().access_token;
        assert!(matches!(
            s.verify(&forged, TokenKind::Access),
            Err(TokenError::Invalid(_))
        ));

        let claims =
            serde_json::to_string(&s.claims(1, "ann", Role::Admin, TokenKind::Access)).unwrap();
        let none = format!("{}.{}.", b64(r#"{"alg":"none","typ":"JWT"}"#), b64(&claims));
        assert!(matches!(
            s.verify(&none, TokenKind::Access),
            Err(TokenError::Invalid(_))
        ));
        let hs512 = format!(
            "{}.{}.",
            b64(r#"{"alg":"HS512","typ":"JWT"}"#),
            b64(&claims)
        );
        assert!(matches!(
            s.verify(&hs512, TokenKind::Access),
            Err(TokenError::Invalid(_))
        ));
        assert!(matches!(
            s.verify("garbage", TokenKind::Access),
            Err(TokenError::Invalid(_))
        ));
    }

    #[test]
    fn wrong_issuer_is_refused() {
        let s = service(SECRET);
        let mut c = s.claims(1, "ann", Role::Admin, TokenKind::Access);
        c.iss = "someone-else".into();
        assert!(matches!(
            s.verify(&s.sign(&c).unwrap(), TokenKind::Access),
            Err(TokenError::Invalid(_))
        ));
    }

    #[test]
    fn short_secrets_are_refused() {
        assert_eq!(
            AuthConfig::new(b"short".to_vec()).unwrap_err(),
            TokenError::WeakSecret(5)
        );
        assert!(!format!("{:?}", AuthConfig::new(SECRET.to_vec()).unwrap()).contains("0123"));
    }
}
