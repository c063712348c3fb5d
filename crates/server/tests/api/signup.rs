use api::Role;
use axum::http::StatusCode;
use serde_json::json;

use crate::support::{PASSWORD, TestApp};

#[tokio::test]
async fn signup_registers_a_user_with_the_user_role() {
    let app = TestApp::new().await;
    let response = app.signup("alice").await;
    response.assert(StatusCode::OK);
    assert_eq!(
        response.json(),
        json!({"message": "User registered successfully!"})
    );

    let signin = app.signin("alice", PASSWORD).await;
    signin.assert(StatusCode::OK);
    assert_eq!(signin.json()["roles"], json!(["ROLE_USER"]));
}

#[tokio::test]
async fn usernames_are_unique_whatever_their_case() {
    let app = TestApp::new().await;
    app.signup("alice").await.assert(StatusCode::OK);
    let response = app
        .post(
            "/api/auth/signup",
            json!({"username": "ALICE", "email": "other@example.com", "password": PASSWORD}),
            None,
        )
        .await;
    response.assert(StatusCode::BAD_REQUEST);
    assert_eq!(response.message(), "Failed! Username is already in use!");
}

#[tokio::test]
async fn emails_are_stored_lower_cased_and_unique() {
    let app = TestApp::new().await;
    let response = app
        .post(
            "/api/auth/signup",
            json!({"username": "alice", "email": " Alice@Example.COM ", "password": PASSWORD}),
            None,
        )
        .await;
    response.assert(StatusCode::OK);
    let token = app.token_for("alice").await;
    assert_eq!(
        app.get("/api/user/me", Some(&token)).await.json()["email"],
        "alice@example.com"
    );

    let duplicate = app
        .post(
            "/api/auth/signup",
            json!({"username": "bob", "email": "ALICE@example.com", "password": PASSWORD}),
            None,
        )
        .await;
    duplicate.assert(StatusCode::BAD_REQUEST);
    assert_eq!(duplicate.message(), "Failed! Email is already in use!");
}

#[tokio::test]
async fn an_unknown_role_is_named_in_the_error() {
    let app = TestApp::new().await;
    let response = app
        .post(
            "/api/auth/signup",
            json!({"username": "bob", "email": "bob@example.com", "password": PASSWORD, "roles": ["user", "root"]}),
            None,
        )
        .await;
    response.assert(StatusCode::BAD_REQUEST);
    assert_eq!(response.message(), "Failed! Role does not exist = root");
}

#[tokio::test]
async fn anonymous_callers_cannot_assign_themselves_roles() {
    let app = TestApp::new().await;
    for roles in [
        json!(["admin"]),
        json!(["moderator"]),
        json!(["user", "admin"]),
    ] {
        let response = app
            .post(
                "/api/auth/signup",
                json!({"username": "mallory", "email": "m@example.com", "password": PASSWORD, "roles": roles}),
                None,
            )
            .await;
        response.assert(StatusCode::FORBIDDEN);
        assert!(
            response.message().contains("admin"),
            "{}",
            response.message()
        );
    }
    // Nothing was created by the refused attempts.
    assert!(app.state.storage.list_users().await.unwrap().is_empty());
    // Asking for just `user`, or for nothing, is fine.
    let response = app
        .post(
            "/api/auth/signup",
            json!({"username": "mallory", "email": "m@example.com", "password": PASSWORD, "roles": ["user"]}),
            None,
        )
        .await;
    response.assert(StatusCode::OK);
}

#[tokio::test]
async fn a_signed_in_non_admin_cannot_assign_roles_either() {
    let app = TestApp::new().await;
    let moderator = app
        .user_with_roles("mod1", &[Role::User, Role::Moderator])
        .await;
    let response = app
        .post(
            "/api/auth/signup",
            json!({"username": "carol", "email": "c@example.com", "password": PASSWORD, "roles": ["moderator"]}),
            Some(&moderator),
        )
        .await;
    response.assert(StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn an_admin_token_may_assign_roles() {
    let app = TestApp::new().await;
    let admin = app.user_with_roles("root1", &[Role::Admin]).await;
    let response = app
        .post(
            "/api/auth/signup",
            json!({"username": "carol", "email": "c@example.com", "password": PASSWORD, "roles": ["moderator", "user"]}),
            Some(&admin),
        )
        .await;
    response.assert(StatusCode::OK);
    let signin = app.signin("carol", PASSWORD).await;
    assert_eq!(
        signin.json()["roles"],
        json!(["ROLE_USER", "ROLE_MODERATOR"])
    );
}

#[tokio::test]
async fn the_operator_switch_allows_self_assigned_roles() {
    let app = TestApp::with_settings(|s| s.allow_self_assigned_roles = true).await;
    let response = app
        .post(
            "/api/auth/signup",
            json!({"username": "demo", "email": "d@example.com", "password": PASSWORD, "roles": ["admin"]}),
            None,
        )
        .await;
    response.assert(StatusCode::OK);
    assert_eq!(
        app.signin("demo", PASSWORD).await.json()["roles"],
        json!(["ROLE_ADMIN"])
    );
}

#[tokio::test]
async fn a_bad_token_on_signup_is_refused_not_ignored() {
    let app = TestApp::new().await;
    let response = app
        .post(
            "/api/auth/signup",
            json!({"username": "eve", "email": "e@example.com", "password": PASSWORD, "roles": ["admin"]}),
            Some("not-a-token"),
        )
        .await;
    response.assert(StatusCode::UNAUTHORIZED);
    assert_eq!(response.message(), "Unauthorized!");
}

#[tokio::test]
async fn invalid_fields_are_refused_with_a_message_naming_the_field() {
    let app = TestApp::new().await;
    let cases = [
        (
            json!({"username": "ab", "email": "a@example.com", "password": PASSWORD}),
            "Username",
        ),
        (
            json!({"username": "has space", "email": "a@example.com", "password": PASSWORD}),
            "Username",
        ),
        (
            json!({"username": "x".repeat(21), "email": "a@example.com", "password": PASSWORD}),
            "Username",
        ),
        (
            json!({"username": "alice", "email": "not-an-email", "password": PASSWORD}),
            "Email",
        ),
        (
            json!({"username": "alice", "email": format!("{}@example.com", "a".repeat(250)), "password": PASSWORD}),
            "Email",
        ),
        (
            json!({"username": "alice", "email": "a@example.com", "password": "short"}),
            "Password",
        ),
        (
            json!({"username": "alice", "email": "a@example.com", "password": "p".repeat(129)}),
            "Password",
        ),
    ];
    for (body, field) in cases {
        let response = app.post("/api/auth/signup", body.clone(), None).await;
        response.assert(StatusCode::BAD_REQUEST);
        assert!(
            response.message().starts_with(field),
            "{body}: {}",
            response.message()
        );
    }
    assert!(app.state.storage.list_users().await.unwrap().is_empty());
}

#[tokio::test]
async fn look_alikes_of_an_address_with_invisible_or_non_ascii_characters_are_refused() {
    let app = TestApp::new().await;
    app.post(
        "/api/auth/signup",
        json!({"username": "admin", "email": "admin@example.com", "password": PASSWORD}),
        None,
    )
    .await
    .assert(StatusCode::OK);
    let cases = [
        (
            "admin\u{200B}@example.com",
            "Email must not contain invisible, formatting or control characters.",
        ),
        (
            "admin@example.com\u{202E}",
            "Email must not contain invisible, formatting or control characters.",
        ),
        (
            "adm\u{0085}in@example.com",
            "Email must not contain invisible, formatting or control characters.",
        ),
        (
            "\u{0430}dmin@example.com",
            "Email must be written in ASCII; give an internationalised domain in its xn-- \
             (punycode) form.",
        ),
    ];
    for (email, message) in cases {
        let response = app
            .post(
                "/api/auth/signup",
                json!({"username": "mallory", "email": email, "password": PASSWORD}),
                None,
            )
            .await;
        response.assert(StatusCode::BAD_REQUEST);
        assert_eq!(response.message(), message, "{email:?}");
    }
    // An internationalised domain in its ASCII form is fine.
    app.post(
        "/api/auth/signup",
        json!({"username": "jane", "email": "jane@xn--bcher-kva.example", "password": PASSWORD}),
        None,
    )
    .await
    .assert(StatusCode::OK);
    assert_eq!(app.state.storage.list_users().await.unwrap().len(), 2);
}

#[tokio::test]
async fn parallel_signups_for_one_name_create_exactly_one_complete_user() {
    let app = TestApp::new().await;
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..10 {
        let router = app.router.clone();
        tasks.spawn(async move {
            let body = json!({"username": "race", "email": format!("race{i}@example.com"), "password": PASSWORD});
            // A 503 (a busy database or hashing queue on a loaded test machine) asks the client
            // to retry, which is what a client does; it must never stand for a lost sign-up.
            for _ in 0..20 {
                let request = axum::http::Request::post("/api/auth/signup")
                    .header("content-type", "application/json")
                    .body(axum::body::Body::from(body.to_string()))
                    .unwrap();
                let status = tower::ServiceExt::oneshot(router.clone(), request)
                    .await
                    .unwrap()
                    .status();
                if status != StatusCode::SERVICE_UNAVAILABLE {
                    return status;
                }
                tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            }
            StatusCode::SERVICE_UNAVAILABLE
        });
    }
    let statuses = tasks.join_all().await;
    assert_eq!(
        statuses.iter().filter(|s| **s == StatusCode::OK).count(),
        1,
        "{statuses:?}"
    );
    assert!(
        statuses
            .iter()
            .all(|s| *s == StatusCode::OK || *s == StatusCode::BAD_REQUEST)
    );
    let users = app.state.storage.list_users().await.unwrap();
    assert_eq!(users.len(), 1);
    assert_eq!(users[0].roles, vec![Role::User]);
}
