//! A small ONVIF PTZ client: SOAP 1.2 envelopes with a WS-Security UsernameToken
//! (PasswordDigest), sent over plain HTTP/1.1 to the registered camera host only. The flow of
//! one command: device service `GetCapabilities` (PTZ and media service addresses, both checked
//! by the guard) → media `GetProfiles` (first profile token) → the PTZ call. Redirects are
//! refused, responses are capped, SOAP faults are reported without the camera's text.
//!
//! Envelope building and response parsing are pure and unit-tested; no ONVIF camera is
//! available to the test suite, so the calls themselves are exercised against nothing real.

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use bytes::Bytes;
use chrono::{DateTime, SecondsFormat, Utc};
use http_body_util::{BodyExt, Full, Limited};
use sha1::{Digest, Sha1};

use super::CameraCredentials;
use super::guard::{self, GuardError};

/// Largest SOAP response read.
pub const MAX_RESPONSE: usize = 1 << 20;

const NS_DEVICE: &str = "http://www.onvif.org/ver10/device/wsdl";
const NS_MEDIA: &str = "http://www.onvif.org/ver10/media/wsdl";
const NS_PTZ: &str = "http://www.onvif.org/ver20/ptz/wsdl";
const NS_SCHEMA: &str = "http://www.onvif.org/ver10/schema";

#[derive(Debug, thiserror::Error)]
pub enum OnvifError {
    #[error("camera address refused: {0}")]
    Guard(#[from] GuardError),
    #[error("camera redirected the request (status {0}); redirects are refused")]
    Redirect(u16),
    #[error("camera answered HTTP {0}")]
    Status(u16),
    #[error("camera returned a SOAP fault ({0})")]
    Fault(String),
    #[error("camera response lacks {0}")]
    Missing(&'static str),
    #[error("camera unreachable: {0}")]
    Connect(String),
    #[error("camera did not answer in time")]
    Timeout,
}

/// A PTZ command as the API takes it.
#[derive(Debug, Clone, PartialEq)]
pub enum PtzCommand {
    /// Velocities in ONVIF's generic space, -1..=1; `timeout` stops the move by itself.
    ContinuousMove {
        pan: f64,
        tilt: f64,
        zoom: f64,
        timeout: Option<Duration>,
    },
    Stop,
    SetPreset {
        name: String,
    },
    GotoPreset {
        token: String,
    },
}

/// What the camera answered to a command (the token of a preset just set).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PtzOutcome {
    pub preset_token: Option<String>,
}

/// Escapes text for XML element content and attribute values.
pub fn xml_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
    out
}

/// The WS-Security header: `PasswordDigest = base64(sha1(nonce + created + password))`.
pub fn security_header(
    username: &str,
    password: &str,
    nonce: &[u8],
    created: DateTime<Utc>,
) -> String {
    let created = created.to_rfc3339_opts(SecondsFormat::Secs, true);
    let mut h = Sha1::new();
    h.update(nonce);
    h.update(created.as_bytes());
    h.update(password.as_bytes());
    let digest = B64.encode(h.finalize());
    format!(
        "<wsse:Security s:mustUnderstand=\"1\" \
         xmlns:wsse=\"http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd\" \
         xmlns:wsu=\"http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-utility-1.0.xsd\">\
         <wsse:UsernameToken><wsse:Username>{}</wsse:Username>\
         <wsse:Password Type=\"http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-username-token-profile-1.0#PasswordDigest\">{digest}</wsse:Password>\
         <wsse:Nonce EncodingType=\"http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-soap-message-security-1.0#Base64Binary\">{}</wsse:Nonce>\
         <wsu:Created>{created}</wsu:Created></wsse:UsernameToken></wsse:Security>",
        xml_escape(username),
        B64.encode(nonce),
    )
}

/// A SOAP 1.2 envelope around `body` with `header`.
pub fn envelope(header: &str, body: &str) -> String {
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\
         <s:Envelope xmlns:s=\"http://www.w3.org/2003/05/soap-envelope\">\
         <s:Header>{header}</s:Header><s:Body>{body}</s:Body></s:Envelope>"
    )
}

pub fn get_capabilities_body() -> String {
    format!("<GetCapabilities xmlns=\"{NS_DEVICE}\"><Category>All</Category></GetCapabilities>")
}

pub fn get_profiles_body() -> String {
    format!("<GetProfiles xmlns=\"{NS_MEDIA}\"/>")
}

fn clamp(v: f64) -> f64 {
    if v.is_finite() {
        v.clamp(-1.0, 1.0)
    } else {
        0.0
    }
}

/// The body of a PTZ service call for `cmd` on `profile`.
pub fn ptz_body(profile: &str, cmd: &PtzCommand) -> String {
    let p = xml_escape(profile);
    match cmd {
        PtzCommand::ContinuousMove {
            pan,
            tilt,
            zoom,
            timeout,
        } => {
            let timeout = timeout
                .map(|t| format!("<Timeout>PT{}S</Timeout>", t.as_millis() as f64 / 1000.0))
                .unwrap_or_default();
            format!(
                "<ContinuousMove xmlns=\"{NS_PTZ}\"><ProfileToken>{p}</ProfileToken>\
                 <Velocity><PanTilt xmlns=\"{NS_SCHEMA}\" x=\"{}\" y=\"{}\"/>\
                 <Zoom xmlns=\"{NS_SCHEMA}\" x=\"{}\"/></Velocity>{timeout}</ContinuousMove>",
                clamp(*pan),
                clamp(*tilt),
                clamp(*zoom)
            )
        }
        PtzCommand::Stop => format!(
            "<Stop xmlns=\"{NS_PTZ}\"><ProfileToken>{p}</ProfileToken>\
             <PanTilt>true</PanTilt><Zoom>true</Zoom></Stop>"
        ),
        PtzCommand::SetPreset { name } => format!(
            "<SetPreset xmlns=\"{NS_PTZ}\"><ProfileToken>{p}</ProfileToken>\
             <PresetName>{}</PresetName></SetPreset>",
            xml_escape(name)
        ),
        PtzCommand::GotoPreset { token } => format!(
            "<GotoPreset xmlns=\"{NS_PTZ}\"><ProfileToken>{p}</ProfileToken>\
             <PresetToken>{}</PresetToken></GotoPreset>",
            xml_escape(token)
        ),
    }
}

/// Every tag of `xml` in order: its inside (between `<` and `>`), its local name (without a
/// namespace prefix) and the text after it.
fn tags(xml: &str) -> impl Iterator<Item = (&str, &str, &str)> {
    let mut rest = xml;
    std::iter::from_fn(move || {
        let lt = rest.find('<')?;
        rest = &rest[lt + 1..];
        let gt = rest.find('>')?;
        let (tag, after) = (&rest[..gt], &rest[gt + 1..]);
        rest = after;
        let name = tag
            .split(|c: char| c.is_whitespace() || c == '/')
            .next()
            .unwrap_or("");
        Some((tag, name.rsplit(':').next().unwrap_or(name), after))
    })
}

/// The text of every element whose local name is `local` (any namespace prefix), in order.
fn element_texts<'a>(xml: &'a str, local: &str) -> Vec<&'a str> {
    tags(xml)
        .filter(|(tag, name, _)| *name == local && !tag.starts_with('/') && !tag.ends_with('/'))
        .filter_map(|(_, _, body)| body.find("</").map(|end| body[..end].trim()))
        .collect()
}

/// The value of attribute `attr` on every element whose local name is `local`.
fn element_attrs<'a>(xml: &'a str, local: &str, attr: &str) -> Vec<&'a str> {
    let needle = format!("{attr}=\"");
    tags(xml)
        .filter(|(_, name, _)| *name == local)
        .filter_map(|(tag, _, _)| {
            let v = &tag[tag.find(&needle)? + needle.len()..];
            v.find('"').map(|end| &v[..end])
        })
        .collect()
}

/// The `XAddr` inside the capabilities section `section` (`PTZ`, `Media`).
pub fn capability_xaddr(xml: &str, section: &str) -> Option<String> {
    let open = [format!(":{section}>"), format!("<{section}>")];
    let start = open.iter().filter_map(|o| xml.find(o.as_str())).min()?;
    element_texts(&xml[start..], "XAddr")
        .first()
        .map(|s| s.to_string())
}

/// The token of the first media profile of a `GetProfilesResponse`.
pub fn first_profile_token(xml: &str) -> Option<String> {
    element_attrs(xml, "Profiles", "token")
        .first()
        .map(|s| s.to_string())
}

/// The `PresetToken` of a `SetPresetResponse`.
pub fn preset_token(xml: &str) -> Option<String> {
    element_texts(xml, "PresetToken")
        .first()
        .map(|s| s.to_string())
}

/// The fault code of a SOAP fault (e.g. `ter:NotAuthorized`), if the response is one.
pub fn soap_fault(xml: &str) -> Option<String> {
    if element_texts(xml, "Fault").is_empty() && !xml.contains(":Fault>") {
        return None;
    }
    let codes = element_texts(xml, "Value");
    Some(
        codes
            .last()
            .map(|c| c.to_string())
            .unwrap_or_else(|| "unknown".into()),
    )
}

/// POSTs one SOAP envelope to `url` (already guarded) and returns the response body.
async fn post(url: &guard::Target, action: &str, xml: String) -> Result<String, OnvifError> {
    let authority = url.authority();
    let tcp = tokio::net::TcpStream::connect(authority.as_str())
        .await
        .map_err(|e| OnvifError::Connect(e.kind().to_string()))?;
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tcp))
            .await
            .map_err(|e| OnvifError::Connect(e.to_string()))?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    let req = hyper::Request::post(url.path.as_str())
        .header(hyper::header::HOST, authority)
        .header(
            hyper::header::CONTENT_TYPE,
            format!("application/soap+xml; charset=utf-8; action=\"{action}\""),
        )
        .body(Full::new(Bytes::from(xml)))
        .map_err(|e| OnvifError::Connect(e.to_string()))?;
    let res = sender
        .send_request(req)
        .await
        .map_err(|e| OnvifError::Connect(e.to_string()))?;
    let status = res.status().as_u16();
    if (300..400).contains(&status) {
        return Err(OnvifError::Redirect(status));
    }
    let body = Limited::new(res.into_body(), MAX_RESPONSE)
        .collect()
        .await
        .map_err(|e| OnvifError::Connect(e.to_string()))?
        .to_bytes();
    let text = String::from_utf8_lossy(&body).into_owned();
    if let Some(code) = soap_fault(&text) {
        return Err(OnvifError::Fault(code));
    }
    if !(200..300).contains(&status) {
        return Err(OnvifError::Status(status));
    }
    Ok(text)
}

/// The ONVIF client of one stream's camera.
#[derive(Debug, Clone)]
pub struct OnvifClient {
    host: String,
    credentials: CameraCredentials,
    timeout: Duration,
}

impl OnvifClient {
    /// A client for the camera at `host` (the registered host of the stream).
    pub fn new(host: String, credentials: CameraCredentials, timeout: Duration) -> Self {
        OnvifClient {
            host,
            credentials,
            timeout,
        }
    }

    /// The device service URL: `http://HOST:PORT/onvif/device_service`.
    pub fn device_url(&self) -> String {
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        format!(
            "http://{host}:{}/onvif/device_service",
            self.credentials.onvif_port()
        )
    }

    /// The envelope of `body` with a fresh UsernameToken.
    pub fn request(&self, body: &str) -> String {
        let nonce = *uuid::Uuid::new_v4().as_bytes();
        envelope(
            &security_header(
                &self.credentials.username,
                &self.credentials.password,
                &nonce,
                Utc::now(),
            ),
            body,
        )
    }

    async fn call(&self, url: &str, action: &str, body: &str) -> Result<String, OnvifError> {
        let target = guard::check(url, &self.host, &["http"])?;
        tokio::time::timeout(self.timeout, post(&target, action, self.request(body)))
            .await
            .map_err(|_| OnvifError::Timeout)?
    }

    /// Runs `cmd` on the camera's first media profile.
    pub async fn ptz(&self, cmd: &PtzCommand) -> Result<PtzOutcome, OnvifError> {
        let caps = self
            .call(
                &self.device_url(),
                &format!("{NS_DEVICE}/GetCapabilities"),
                &get_capabilities_body(),
            )
            .await?;
        let ptz = capability_xaddr(&caps, "PTZ").ok_or(OnvifError::Missing("a PTZ service"))?;
        let media =
            capability_xaddr(&caps, "Media").ok_or(OnvifError::Missing("a media service"))?;
        let profiles = self
            .call(
                &media,
                &format!("{NS_MEDIA}/GetProfiles"),
                &get_profiles_body(),
            )
            .await?;
        let profile =
            first_profile_token(&profiles).ok_or(OnvifError::Missing("a media profile"))?;
        let action = match cmd {
            PtzCommand::ContinuousMove { .. } => "ContinuousMove",
            PtzCommand::Stop => "Stop",
            PtzCommand::SetPreset { .. } => "SetPreset",
            PtzCommand::GotoPreset { .. } => "GotoPreset",
        };
        let reply = self
            .call(
                &ptz,
                &format!("{NS_PTZ}/{action}"),
                &ptz_body(&profile, cmd),
            )
            .await?;
        Ok(PtzOutcome {
            preset_token: match cmd {
                PtzCommand::SetPreset { .. } => {
                    Some(preset_token(&reply).ok_or(OnvifError::Missing("a preset token"))?)
                }
                _ => None,
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn password_digest_matches_the_ws_security_definition() {
        // base64(sha1(nonce ‖ created ‖ password)), computed independently with
        // `printf 'NONCE16BYTES!!!!2024-01-02T03:04:05Zsecret' | sha1sum | xxd -r -p | base64`.
        let created = DateTime::parse_from_rfc3339("2024-01-02T03:04:05Z")
            .unwrap()
            .with_timezone(&Utc);
        let h = security_header("ad<min", "secret", b"NONCE16BYTES!!!!", created);
        let expected = "mrj+zxt7g5vswi0pG8XrSTnWWj4=";
        assert!(
            h.contains(&format!("#PasswordDigest\">{expected}</wsse:Password>")),
            "{h}"
        );
        assert!(h.contains("<wsse:Username>ad&lt;min</wsse:Username>"));
        assert!(h.contains(&format!(
            ">{}</wsse:Nonce>",
            B64.encode(b"NONCE16BYTES!!!!")
        )));
        assert!(h.contains("<wsu:Created>2024-01-02T03:04:05Z</wsu:Created>"));
        assert!(!h.contains("secret"), "the password itself is never sent");
    }

    #[test]
    fn ptz_bodies_carry_the_profile_clamped_velocities_and_escaped_names() {
        let b = ptz_body(
            "Profile_1",
            &PtzCommand::ContinuousMove {
                pan: 0.5,
                tilt: -3.0,
                zoom: f64::NAN,
                timeout: Some(Duration::from_millis(1500)),
            },
        );
        assert!(b.contains("<ProfileToken>Profile_1</ProfileToken>"), "{b}");
        assert!(b.contains("x=\"0.5\" y=\"-1\""), "{b}");
        assert!(
            b.contains("<Zoom xmlns=\"http://www.onvif.org/ver10/schema\" x=\"0\"/>"),
            "{b}"
        );
        assert!(b.contains("<Timeout>PT1.5S</Timeout>"), "{b}");
        let b = ptz_body(
            "p",
            &PtzCommand::SetPreset {
                name: "gate & <trough>".into(),
            },
        );
        assert!(
            b.contains("<PresetName>gate &amp; &lt;trough&gt;</PresetName>"),
            "{b}"
        );
        let b = ptz_body("p", &PtzCommand::GotoPreset { token: "7".into() });
        assert!(b.contains("<GotoPreset") && b.contains("<PresetToken>7</PresetToken>"));
        assert!(ptz_body("p", &PtzCommand::Stop).contains("<PanTilt>true</PanTilt>"));
    }

    #[test]
    fn parses_capabilities_profiles_presets_and_faults() {
        let caps = r#"<env:Envelope><env:Body><tds:GetCapabilitiesResponse><tds:Capabilities>
            <tt:Device><tt:XAddr>http://cam/onvif/device_service</tt:XAddr></tt:Device>
            <tt:Media><tt:XAddr>http://cam/onvif/media</tt:XAddr></tt:Media>
            <tt:PTZ><tt:XAddr>http://cam:8080/onvif/ptz</tt:XAddr></tt:PTZ>
            </tds:Capabilities></tds:GetCapabilitiesResponse></env:Body></env:Envelope>"#;
        assert_eq!(
            capability_xaddr(caps, "PTZ").unwrap(),
            "http://cam:8080/onvif/ptz"
        );
        assert_eq!(
            capability_xaddr(caps, "Media").unwrap(),
            "http://cam/onvif/media"
        );
        assert_eq!(capability_xaddr(caps, "Imaging"), None);
        let profiles = r#"<trt:GetProfilesResponse><trt:Profiles fixed="true" token="main_0">
            <tt:Name>main</tt:Name></trt:Profiles><trt:Profiles token="sub_1"/></trt:GetProfilesResponse>"#;
        assert_eq!(first_profile_token(profiles).unwrap(), "main_0");
        let set = "<tptz:SetPresetResponse><tptz:PresetToken>12</tptz:PresetToken></tptz:SetPresetResponse>";
        assert_eq!(preset_token(set).unwrap(), "12");
        let fault = r#"<env:Body><env:Fault><env:Code><env:Value>env:Sender</env:Value>
            <env:Subcode><env:Value>ter:NotAuthorized</env:Value></env:Subcode></env:Code>
            <env:Reason><env:Text>Sender not authorized</env:Text></env:Reason></env:Fault></env:Body>"#;
        assert_eq!(soap_fault(fault).unwrap(), "ter:NotAuthorized");
        assert_eq!(soap_fault(set), None);
    }

    #[tokio::test]
    async fn service_addresses_off_the_registered_host_are_refused_before_connecting() {
        let client = OnvifClient::new(
            "cam.local".into(),
            CameraCredentials {
                username: "u".into(),
                password: "p".into(),
                onvif_port: Some(8000),
            },
            Duration::from_secs(1),
        );
        assert_eq!(
            client.device_url(),
            "http://cam.local:8000/onvif/device_service"
        );
        let err = client
            .call("http://169.254.169.254/onvif/ptz", "a", "<x/>")
            .await
            .unwrap_err();
        assert!(
            matches!(err, OnvifError::Guard(GuardError::OtherHost { .. })),
            "{err:?}"
        );
        let env = client.request(&get_profiles_body());
        assert!(env.contains("<GetProfiles xmlns=\"http://www.onvif.org/ver10/media/wsdl\"/>"));
        assert!(env.contains("<wsse:Username>u</wsse:Username>") && !env.contains(">p<"));
    }
}
