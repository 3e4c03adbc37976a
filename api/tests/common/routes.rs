//! Every REST route with the permission the API documents for it (`rest.rs`), written out by
//! hand: the OpenAPI test checks the document has them all, the RBAC matrix calls each one.

pub struct Route {
    pub method: &'static str,
    /// As in the OpenAPI document.
    pub template: &'static str,
    pub permission: &'static str,
    /// A JSON body, when the route takes one.
    pub body: Option<&'static str>,
}

const fn r(
    method: &'static str,
    template: &'static str,
    permission: &'static str,
    body: Option<&'static str>,
) -> Route {
    Route {
        method,
        template,
        permission,
        body,
    }
}

pub const ROUTES: &[Route] = &[
    r("GET", "/api/v1/streams", "streams:read", None),
    r(
        "POST",
        "/api/v1/streams",
        "streams:write",
        Some(r#"{"id":"{new}","name":"n","sourceUrl":"file:///x.mp4","sourceKind":"file"}"#),
    ),
    r("GET", "/api/v1/streams/{id}", "streams:read", None),
    r(
        "PATCH",
        "/api/v1/streams/{id}",
        "streams:write",
        Some(r#"{"name":"renamed"}"#),
    ),
    r("DELETE", "/api/v1/streams/{id}", "streams:write", None),
    r(
        "POST",
        "/api/v1/streams/{id}/start",
        "streams:control",
        None,
    ),
    r("POST", "/api/v1/streams/{id}/stop", "streams:control", None),
    r("GET", "/api/v1/detections", "streams:read", None),
    r("GET", "/api/v1/streams/{id}/horses", "horses:read", None),
    r("GET", "/api/v1/horses/{id}", "horses:read", None),
    r(
        "PATCH",
        "/api/v1/horses/{id}",
        "horses:write",
        Some(r#"{"displayName":"{new}"}"#),
    ),
    r("GET", "/api/v1/alerts", "analytics:read", None),
    r(
        "POST",
        "/api/v1/alerts/{id}/acknowledge",
        "analytics:write",
        None,
    ),
    r("GET", "/api/v1/models", "models:read", None),
    r("POST", "/api/v1/models/{name}", "models:write", None),
    r(
        "PUT",
        "/api/v1/streams/{id}/model",
        "models:write",
        Some(r#"{"model":"yolox_nano"}"#),
    ),
    r(
        "POST",
        "/api/v1/streams/{id}/ptz/move",
        "streams:control",
        Some(r#"{"pan":0.5}"#),
    ),
    r(
        "POST",
        "/api/v1/streams/{id}/ptz/stop",
        "streams:control",
        None,
    ),
    r(
        "POST",
        "/api/v1/streams/{id}/ptz/presets",
        "streams:control",
        Some(r#"{"name":"gate"}"#),
    ),
    r(
        "POST",
        "/api/v1/streams/{id}/ptz/presets/{token}/goto",
        "streams:control",
        None,
    ),
    r("GET", "/api/v1/streams/{id}/snapshot", "streams:read", None),
    r(
        "GET",
        "/api/v1/streams/{id}/hls/{file}",
        "streams:read",
        None,
    ),
    r("GET", "/api/v1/streams/{id}/overlay", "streams:read", None),
];
