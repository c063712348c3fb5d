//! Serving the embedded web UI.

use axum::{
    body::Body,
    http::{Request, StatusCode},
};

use crate::support::TestApp;

#[tokio::test]
async fn index_html_is_served_uncached_for_the_apps_routes() {
    let app = TestApp::new().await;
    for path in [
        "/",
        "/login",
        "/profile",
        "/admin/users",
        "/some/client/route",
    ] {
        let response = app.get(path, None).await;
        response.assert(StatusCode::OK);
        assert!(
            response
                .header("content-type")
                .unwrap()
                .starts_with("text/html"),
            "{path}"
        );
        assert_eq!(response.header("cache-control"), Some("no-cache"));
        assert!(
            response.text().contains("<script type=\"module\""),
            "{path}"
        );
        assert!(response.header("content-security-policy").is_some());
    }
}

#[tokio::test]
async fn assets_are_content_named_cached_forever_and_compressed() {
    let app = TestApp::new().await;
    let index = app.get("/", None).await.text();
    let mut gzip_total = 0;
    for asset in tollgate::http::ui::ASSETS {
        assert!(
            index.contains(asset.name) || asset.name.starts_with("tollgate_web-"),
            "{}",
            asset.name
        );
        let request = Request::get(format!("/assets/{}", asset.name))
            .header("accept-encoding", "gzip")
            .body(Body::empty())
            .unwrap();
        let response = app.send(request).await;
        response.assert(StatusCode::OK);
        assert_eq!(response.header("content-type"), Some(asset.content_type));
        assert_eq!(
            response.header("cache-control"),
            Some("public, max-age=31536000, immutable")
        );
        if asset.bytes.len() > 1024 {
            assert_eq!(
                response.header("content-encoding"),
                Some("gzip"),
                "{}",
                asset.name
            );
        }
        if asset.name.ends_with(".wasm") || asset.name.ends_with(".js") {
            gzip_total += response.body.len();
        }
    }
    if !tollgate::http::ui::ASSETS.is_empty() {
        eprintln!(
            "wasm + js, gzip-compressed as served: {} KB",
            gzip_total / 1024
        );
        assert!(
            gzip_total <= 400 * 1024,
            "UI is {gzip_total} bytes gzip-compressed"
        );
    }
}

#[tokio::test]
async fn missing_assets_and_api_paths_are_json_404s_not_the_app() {
    let app = TestApp::new().await;
    for path in [
        "/assets/nope.js",
        "/assets/app.wasm",
        "/favicon.ico",
        "/api/nothing",
        "/api",
    ] {
        let response = app.get(path, None).await;
        response.assert(StatusCode::NOT_FOUND);
        assert_eq!(response.message(), "Not found.", "{path}");
    }
    let post = app.post("/profile", serde_json::json!({}), None).await;
    post.assert(StatusCode::NOT_FOUND);
}
