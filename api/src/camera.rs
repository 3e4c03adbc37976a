//! Talking to a stream's camera on the browser's behalf: ONVIF PTZ (SOAP over HTTP with a
//! WS-Security UsernameToken) and JPEG snapshots grabbed from the stream's RTSP URL with FFmpeg.
//! Both reach only the camera host registered with the stream ([`guard`]), refuse redirects,
//! and use the credentials stored server-side, which never appear in logs or errors.

pub mod guard;
pub mod onvif;
pub mod rtsp;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::error::AppError;

/// A camera's login, stored as the stream's `credentials_secret` (JSON) and never returned.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CameraCredentials {
    pub username: String,
    pub password: String,
    /// Port of the camera's ONVIF device service on the registered host (default 80).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub onvif_port: Option<u16>,
}

impl std::fmt::Debug for CameraCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CameraCredentials")
            .field("username", &"…")
            .field("password", &"…")
            .field("onvif_port", &self.onvif_port)
            .finish()
    }
}

impl CameraCredentials {
    pub const DEFAULT_ONVIF_PORT: u16 = 80;

    pub fn validate(&self) -> Result<(), AppError> {
        if self.username.is_empty() || self.username.len() > 256 || self.password.len() > 256 {
            return Err(AppError::invalid(
                "credentials need a username of 1 to 256 bytes and a password of at most 256",
            ));
        }
        if self.onvif_port == Some(0) {
            return Err(AppError::invalid("onvifPort must not be 0"));
        }
        Ok(())
    }

    pub fn to_secret(&self) -> Result<String, serde_json::Error> {
        serde_json::to_string(self)
    }

    /// Reads the stored secret; a secret that is not our JSON is refused (its text is not
    /// echoed, it may be a password).
    pub fn from_secret(secret: &str) -> Result<Self, AppError> {
        serde_json::from_str(secret).map_err(|_| {
            AppError::internal("stored camera credentials are not in the expected JSON form")
        })
    }

    pub fn onvif_port(&self) -> u16 {
        self.onvif_port.unwrap_or(Self::DEFAULT_ONVIF_PORT)
    }

    /// `user:password@`, percent-encoded, for a URL's authority (FFmpeg reads it from
    /// there). The result holds the password: never log it.
    pub fn user_info(&self) -> String {
        format!("{}:{}@", pct(&self.username), pct(&self.password))
    }
}

fn pct(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}
