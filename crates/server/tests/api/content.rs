use api::Role;
use axum::http::{Method, Request, StatusCode, header};
use serde_json::json;

use crate::support::TestApp;

#[tokio::test]
async fn public_content_needs_no_token_and_is_plain_text() {
    let app = TestApp::new().await;
    let response = app.get("/api/test/all", None).await;
    response.assert(StatusCode::OK);
    assert_eq!(response.text(), "Public Content.");
    assert!(
        response
            .header("content-type")
            .unwrap()
            .starts_with("text/plain")
    );
}

#[tokio::test]
async fn each_board_admits_exactly_its_role() {
    let app = TestApp::new().await;
    let user = app.user_with_roles("user1", &[Role::User]).await;
    let moderator = app
        .user_with_roles("mod1", &[Role::User, Role::Moderator])
        .await;
    let admin = app
        .user_with_roles("admin1", &[Role::User, Role::Admin])
        .await;

    let cases = [
        (&user, "/api/test/user", Ok("User Content.")),
        (&user, "/api/test/mod", Err("Require Moderator Role!")),
        (&user, "/api/test/admin", Err("Require Admin Role!")),
        (&moderator, "/api/test/user", Ok("User Content.")),
        (&moderator, "/api/test/mod", Ok("Moderator Content.")),
        (&moderator, "/api/test/admin", Err("Require Admin Role!")),
        (&admin, "/api/test/user", Ok("User Content.")),
        // As in the tutorial, roles do not imply each other.
        (&admin, "/api/test/mod", Err("Require Moderator Role!")),
        (&admin, "/api/test/admin", Ok("Admin Content.")),
    ];
    for (token, path, expected) in cases {
        let response = app.get(path, Some(token)).await;
        match expected {
            Ok(text) => {
                response.assert(StatusCode::OK);
                assert_eq!(response.text(), text);
                assert!(
                    response
                        .header("content-type")
                        .unwrap()
                        .starts_with("text/plain")
                );
            }
            Err(message) => {
                response.assert(StatusCode::FORBIDDEN);
                assert_eq!(response.json(), json!({"message": message}));
            }
        }
    }
    for path in ["/api/test/user", "/api/test/mod", "/api/test/admin"] {
        let response = app.get(path, None).await;
        response.assert(StatusCode::UNAUTHORIZED);
        assert_eq!(response.message(), "No token provided!");
    }
}

#[tokio::test]
async fn role_checks_need_no_database() {
    let app = TestApp::new().await;
    let admin = app.user_with_roles("admin1", &[Role::Admin]).await;
    app.state.storage.close().await;
    // With the pool closed, any query would fail with a 500; role checks still answer.
    app.get("/api/test/admin", Some(&admin))
        .await
        .assert(StatusCode::OK);
    app.get("/api/test/user", Some(&admin))
        .await
        .assert(StatusCode::OK);
    app.get("/api/test/mod", Some(&admin))
        .await
        .assert(StatusCode::FORBIDDEN);
    app.get("/healthz", None).await.assert(StatusCode::OK);
}

#[tokio::test]
async fn me_returns_the_profile() {
    let app = TestApp::new().await;
    let token = app
        .user_with_roles("alice", &[Role::User, Role::Moderator])
        .await;
    let response = app.get("/api/user/me", Some(&token)).await;
    response.assert(StatusCode::OK);
    let body = response.json();
    assert_eq!(body["id"], 1);
    assert_eq!(body["username"], "alice");
    assert_eq!(body["email"], "alice@example.com");
    assert_eq!(body["roles"], json!(["ROLE_USER", "ROLE_MODERATOR"]));
    let created = body["createdAt"].as_str().unwrap();
    assert!(
        time::OffsetDateTime::parse(created, &time::format_description::well_known::Rfc3339)
            .is_ok(),
        "{created}"
    );
    app.get("/api/user/me", None)
        .await
        .assert(StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn healthz_and_jwks_need_no_token() {
    let app = TestApp::new().await;
    let health = app.get("/healthz", None).await;
    health.assert(StatusCode::OK);
    assert_eq!(health.text(), "ok");
    let jwks = app.get("/.well-known/jwks.json", None).await;
    jwks.assert(StatusCode::OK);
    assert!(jwks.json()["keys"].is_array());
}

#[tokio::test]
async fn cors_admits_the_configured_origin_only() {
    let app = TestApp::new().await;
    let preflight = |origin: &str| {
        Request::builder()
            .method(Method::OPTIONS)
            .uri("/api/test/user")
            .header(header::ORIGIN, origin)
            .header(header::ACCESS_CONTROL_REQUEST_METHOD, "GET")
            .header(
                header::ACCESS_CONTROL_REQUEST_HEADERS,
                "x-access-token, content-type",
            )
            .body(axum::body::Body::empty())
            .unwrap()
    };
    let allowed = app.send(preflight("http://localhost:8081")).await;
    assert!(allowed.status.is_success());
    assert_eq!(
        allowed.header("access-control-allow-origin"),
        Some("http://localhost:8081")
    );
    assert_eq!(
        allowed.header("access-control-allow-credentials"),
        Some("true")
    );
    let allowed_headers = allowed.header("access-control-allow-headers").unwrap();
    for name in ["x-access-token", "authorization", "content-type"] {
        assert!(allowed_headers.contains(name), "{allowed_headers}");
    }

    let refused = app.send(preflight("http://evil.example")).await;
    assert_eq!(refused.header("access-control-allow-origin"), None);

    let other = TestApp::with_settings(|s| {
        s.cors_origins = vec![header::HeaderValue::from_static("https://app.example")]
    })
    .await;
    let response = other.send(preflight("https://app.example")).await;
    assert_eq!(
        response.header("access-control-allow-origin"),
        Some("https://app.example")
    );
}

#[tokio::test]
async fn every_response_carries_the_security_headers() {
    let app = TestApp::new().await;
    for response in [
        app.get("/api/test/all", None).await,
        app.get("/api/test/user", None).await,
        app.get("/nowhere", None).await,
    ] {
        assert_eq!(response.header("x-content-type-options"), Some("nosniff"));
        assert_eq!(response.header("x-frame-options"), Some("DENY"));
        assert_eq!(response.header("referrer-policy"), Some("no-referrer"));
    }
}

#[tokio::test]
async fn cors_headers_are_the_same_whether_or_not_a_request_has_an_origin() {
    let app = TestApp::new().await;
    let get = |origin: Option<&str>| {
        let mut request = Request::get("/healthz");
        if let Some(origin) = origin {
            request = request.header(header::ORIGIN, origin);
        }
        request.body(axum::body::Body::empty()).unwrap()
    };
    let plain = app.send(get(None)).await;
    let allowed = app.send(get(Some("http://localhost:8081"))).await;
    let refused = app.send(get(Some("http://evil.example"))).await;
    for response in [&plain, &allowed, &refused] {
        response.assert(StatusCode::OK);
        assert_eq!(
            response.header("vary"),
            Some("origin, access-control-request-method, access-control-request-headers")
        );
        assert_eq!(response.header("x-frame-options"), Some("DENY"));
    }
    assert_eq!(
        allowed.header("access-control-allow-credentials"),
        Some("true")
    );
    // CORS headers are for browsers' cross-origin requests only.
    assert_eq!(plain.header("access-control-allow-credentials"), None);
    assert_eq!(plain.header("access-control-allow-origin"), None);
    assert_eq!(refused.header("access-control-allow-origin"), None);
    assert_eq!(
        allowed.header("access-control-allow-origin"),
        Some("http://localhost:8081")
    );
}
