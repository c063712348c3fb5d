//! The web UI, embedded at build time: `index.html` for the app's routes, and content-named
//! assets cached forever.

use api::wire::paths;
use axum::{
    extract::Path,
    http::{HeaderValue, Method, Uri, header},
    response::{IntoResponse, Response},
};

use crate::error::Error;

/// A file of the built UI.
pub struct Asset {
    pub name: &'static str,
    pub content_type: &'static str,
    pub bytes: &'static [u8],
}

mod built {
    use super::Asset;
    include!(concat!(env!("OUT_DIR"), "/ui/assets.rs"));
}

pub use built::ASSETS;

/// The UI's pages that Tollgate keeps in gate mode (see `app`).
pub const GATE_MODE_PAGES: [&str; 8] = [
    "/login",
    "/register",
    "/profile",
    "/forgot-password",
    paths::PAGE_RESET_PASSWORD,
    paths::PAGE_VERIFY_EMAIL,
    paths::PAGE_CONFIRM_EMAIL,
    paths::PAGE_REPORT_EMAIL,
];

/// `index.html`: never cached, so a new release is picked up at the next load.
pub async fn index() -> Response {
    (
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/html; charset=utf-8"),
            ),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
        ],
        built::INDEX_HTML,
    )
        .into_response()
}

/// `/assets/{name}`: the file, cached for a year (its name changes with its content).
pub async fn asset(Path(name): Path<String>) -> Result<Response, Error> {
    asset_named(&name).ok_or(Error::NotFound("Not found."))
}

/// The asset of this name, if the UI has one.
pub fn asset_named(name: &str) -> Option<Response> {
    let asset = ASSETS.iter().find(|a| a.name == name)?;
    Some(
        (
            [
                (
                    header::CONTENT_TYPE,
                    HeaderValue::from_static(asset.content_type),
                ),
                (
                    header::CACHE_CONTROL,
                    HeaderValue::from_static("public, max-age=31536000, immutable"),
                ),
            ],
            asset.bytes,
        )
            .into_response(),
    )
}

/// Unknown paths: the app's client-side routes (`/profile`, `/admin/users`) get `index.html`;
/// API paths and anything that looks like a file get a JSON 404.
pub async fn fallback(method: Method, uri: Uri) -> Response {
    let path = uri.path();
    let last = path.rsplit('/').next().unwrap_or_default();
    let client_route = (method == Method::GET || method == Method::HEAD)
        && !path.starts_with("/api/")
        && path != "/api"
        && !path.starts_with("/assets/")
        && !last.contains('.');
    if client_route {
        index().await
    } else {
        Error::NotFound("Not found.").into_response()
    }
}
