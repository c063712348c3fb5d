use axum::{
    body::Body,
    http::{Request, StatusCode},
};
use serde_json::json;

use crate::support::{PASSWORD, TestApp};

fn post_raw(path: &str, content_type: Option<&str>, body: impl Into<Body>) -> Request<Body> {
    let mut request = Request::post(path);
    if let Some(content_type) = content_type {
        request = request.header("content-type", content_type);
    }
    request.body(body.into()).unwrap()
}

#[tokio::test]
async fn malformed_bodies_get_clear_json_errors() {
    let app = TestApp::new().await;
    let json = Some("application/json");
    let cases: Vec<(Request<Body>, StatusCode, &str)> = vec![
        (
            post_raw("/api/auth/signup", json, "{\"username\":"),
            StatusCode::BAD_REQUEST,
            "not valid JSON",
        ),
        (
            post_raw("/api/auth/signup", json, ""),
            StatusCode::BAD_REQUEST,
            "not valid JSON",
        ),
        (
            post_raw("/api/auth/signup", json, "[1,2,3]"),
            StatusCode::BAD_REQUEST,
            "Invalid request body",
        ),
        (
            post_raw(
                "/api/auth/signup",
                json,
                r#"{"username":5,"email":"a@b.co","password":"x"}"#,
            ),
            StatusCode::BAD_REQUEST,
            "Invalid request body",
        ),
        (
            post_raw(
                "/api/auth/signup",
                json,
                r#"{"username":"alice","password":"12345678"}"#,
            ),
            StatusCode::BAD_REQUEST,
            "email",
        ),
        (
            post_raw(
                "/api/auth/signup",
                json,
                r#"{"username":"alice","email":"a@b.co","password":"12345678","roles":"admin"}"#,
            ),
            StatusCode::BAD_REQUEST,
            "Invalid request body",
        ),
        (
            post_raw("/api/auth/signup", Some("text/plain"), "{}"),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "Content-Type: application/json",
        ),
        (
            post_raw("/api/auth/signup", None, "{}"),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "Content-Type: application/json",
        ),
        (
            post_raw(
                "/api/auth/signin",
                json,
                &b"{\"username\":\"\xff\xfe\",\"password\":\"x\"}"[..],
            ),
            StatusCode::BAD_REQUEST,
            "",
        ),
        (
            post_raw("/api/auth/signin", json, &[0xffu8, 0xfe, 0x00][..]),
            StatusCode::BAD_REQUEST,
            "not valid JSON",
        ),
    ];
    for (request, status, fragment) in cases {
        let response = app.send(request).await;
        response.assert(status);
        assert!(
            response
                .header("content-type")
                .unwrap()
                .starts_with("application/json")
        );
        assert!(
            response.message().contains(fragment),
            "{}",
            response.message()
        );
    }
    assert!(app.state.storage.list_users().await.unwrap().is_empty());
}

#[tokio::test]
async fn oversized_bodies_are_refused_with_413() {
    let app = TestApp::new().await;
    let padding = "x".repeat(70 * 1024);
    let body = json!({"username": "alice", "email": "a@example.com", "password": PASSWORD, "pad": padding});
    let response = app
        .send(post_raw(
            "/api/auth/signup",
            Some("application/json"),
            body.to_string(),
        ))
        .await;
    response.assert(StatusCode::PAYLOAD_TOO_LARGE);
    assert!(response.message().contains("too large"));
    // Just under the limit is read (and then judged on its fields).
    let padding = "x".repeat(60 * 1024);
    let body = json!({"username": "alice", "email": "a@example.com", "password": PASSWORD, "pad": padding});
    app.send(post_raw(
        "/api/auth/signup",
        Some("application/json"),
        body.to_string(),
    ))
    .await
    .assert(StatusCode::OK);
}

#[tokio::test]
async fn absurd_headers_are_refused_with_431() {
    let app = TestApp::new().await;
    let request = Request::get("/api/test/all")
        .header("x-junk", "y".repeat(20 * 1024))
        .body(Body::empty())
        .unwrap();
    let response = app.send(request).await;
    response.assert(StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE);
    assert!(response.message().contains("headers"));
}

#[tokio::test]
async fn non_ascii_token_headers_are_unauthorized_not_errors() {
    let app = TestApp::new().await;
    let request = Request::get("/api/test/user")
        .header(
            "x-access-token",
            axum::http::HeaderValue::from_bytes(b"\xfftoken").unwrap(),
        )
        .body(Body::empty())
        .unwrap();
    let response = app.send(request).await;
    response.assert(StatusCode::UNAUTHORIZED);
    assert_eq!(response.message(), "Unauthorized!");
}

#[tokio::test]
async fn unknown_routes_and_methods_answer_in_json() {
    let app = TestApp::new().await;
    let missing = app.get("/api/nothing/here", None).await;
    missing.assert(StatusCode::NOT_FOUND);
    assert_eq!(missing.message(), "Not found.");
    let wrong_method = app.get("/api/auth/signin", None).await;
    wrong_method.assert(StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(wrong_method.message(), "Method not allowed.");
}

/// A route whose body is optional (resending the verification mail: signed in, no body is
/// needed) takes an empty body of any type as none, and refuses a body it cannot read.
#[tokio::test]
async fn an_optional_body_may_be_empty_but_not_malformed() {
    let app = TestApp::new().await;
    let resend = "/api/auth/verify-email/resend";
    let cases = [
        // No body from an anonymous caller: the token (or an address) is what is missing.
        (
            post_raw(resend, None, ""),
            StatusCode::UNAUTHORIZED,
            "No token",
        ),
        (
            post_raw(resend, Some("application/x-www-form-urlencoded"), ""),
            StatusCode::UNAUTHORIZED,
            "No token",
        ),
        (
            post_raw(resend, Some("application/json"), "  "),
            StatusCode::UNAUTHORIZED,
            "No token",
        ),
        // A body is read as JSON whoever sends it.
        (
            post_raw(resend, None, "{\"email\":\"a@b.co\"}"),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "Content-Type: application/json",
        ),
        (
            post_raw(resend, Some("application/json"), "[]"),
            StatusCode::BAD_REQUEST,
            "expected a JSON object",
        ),
        (
            post_raw(resend, Some("application/json"), "{\"email\": {}}"),
            StatusCode::BAD_REQUEST,
            "Invalid request body",
        ),
    ];
    for (request, status, fragment) in cases {
        let response = app.send(request).await;
        response.assert(status);
        assert!(
            response.message().contains(fragment),
            "{}",
            response.message()
        );
    }
}
