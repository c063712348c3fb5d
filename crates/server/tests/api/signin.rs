use std::time::{Duration, Instant};

use api::Role;
use axum::http::StatusCode;
use serde_json::json;

use crate::support::{PASSWORD, TestApp, jwt_part};

#[tokio::test]
async fn signin_returns_the_tutorial_fields_and_a_complete_token() {
    let app = TestApp::new().await;
    app.signup("alice").await.assert(StatusCode::OK);
    let response = app.signin("alice", PASSWORD).await;
    response.assert(StatusCode::OK);
    assert_eq!(response.header("cache-control"), Some("no-store"));
    let body = response.json();
    assert_eq!(body["id"], 1);
    assert_eq!(body["username"], "alice");
    assert_eq!(body["email"], "alice@example.com");
    assert_eq!(body["roles"], json!(["ROLE_USER"]));
    assert_eq!(body["tokenType"], "Bearer");
    assert_eq!(body["expiresIn"], 900);

    let token = body["accessToken"].as_str().unwrap();
    let header = jwt_part(token, 0);
    assert_eq!(header["alg"], "EdDSA");
    let jwks = app.get("/.well-known/jwks.json", None).await.json();
    assert_eq!(header["kid"], jwks["keys"][0]["kid"]);

    let claims = jwt_part(token, 1);
    assert_eq!(claims["sub"], "1");
    assert_eq!(claims["id"], 1);
    assert_eq!(claims["roles"], json!(["user"]));
    assert_eq!(claims["iss"], "tollgate");
    assert_eq!(claims["aud"], "tollgate");
    assert_eq!(
        claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(),
        900
    );
    assert!(claims["jti"].as_str().unwrap().len() >= 16);
}

#[tokio::test]
async fn usernames_sign_in_whatever_their_case() {
    let app = TestApp::new().await;
    app.signup("Alice").await.assert(StatusCode::OK);
    let response = app.signin("aLiCe", PASSWORD).await;
    response.assert(StatusCode::OK);
    assert_eq!(response.json()["username"], "Alice");
}

#[tokio::test]
async fn unknown_user_and_wrong_password_look_the_same() {
    let app = TestApp::new().await;
    app.signup("alice").await.assert(StatusCode::OK);
    let wrong_password = app.signin("alice", "wrong password").await;
    let unknown_user = app.signin("nobody", PASSWORD).await;
    let impossible_name = app.signin("no such user!", PASSWORD).await;
    for response in [&wrong_password, &unknown_user, &impossible_name] {
        response.assert(StatusCode::UNAUTHORIZED);
        assert_eq!(
            response.json(),
            json!({"accessToken": null, "message": "Invalid username or password."})
        );
    }
}

#[tokio::test]
async fn unknown_users_cost_as_much_time_as_wrong_passwords() {
    let app = TestApp::new().await;
    let names: Vec<String> = (0..4).map(|i| format!("user{i}")).collect();
    for name in &names {
        app.signup(name).await.assert(StatusCode::OK);
    }
    async fn time(app: &TestApp, usernames: &[String]) -> Duration {
        let start = Instant::now();
        for username in usernames {
            app.signin(username, "wrong password")
                .await
                .assert(StatusCode::UNAUTHORIZED);
        }
        start.elapsed()
    }
    // One attempt per account (repeated failures on one account would trip its back-off).
    // Without the dummy hash an unknown user would answer ~100x faster; the wide bounds absorb
    // a noisy shared machine.
    time(&app, &["warmup".to_owned()]).await;
    let wrong_password = time(&app, &names).await;
    let unknown: Vec<String> = (0..4).map(|i| format!("nobody{i}")).collect();
    let unknown_user = time(&app, &unknown).await;
    let ratio = unknown_user.as_secs_f64() / wrong_password.as_secs_f64();
    assert!(
        (0.2..5.0).contains(&ratio),
        "unknown {unknown_user:?} vs wrong password {wrong_password:?}"
    );
}

#[tokio::test]
async fn tutorial_bcrypt_hashes_verify_and_are_upgraded_to_argon2id() {
    let app = TestApp::new().await;
    // The tutorial stores bcrypt with cost 8, and allowed short passwords.
    for (name, password, prefix) in [("legacy", PASSWORD, "$2a$"), ("shorty", "abc12", "$2b$")] {
        let hash = bcrypt::hash(password, 8)
            .unwrap()
            .replacen("$2b$", prefix, 1);
        app.state
            .storage
            .insert_user(&tollgate::storage::NewUser {
                username: &api::Username::parse(name).unwrap(),
                email: &api::Email::parse(&format!("{name}@example.com")).unwrap(),
                password_hash: &hash,
                roles: &[Role::User],
                email_verified_at: None,
            })
            .await
            .unwrap();

        app.signin(name, "wrong password")
            .await
            .assert(StatusCode::UNAUTHORIZED);
        app.signin(name, password).await.assert(StatusCode::OK);
        let stored = app
            .state
            .storage
            .user_by_username(name)
            .await
            .unwrap()
            .unwrap();
        assert!(
            stored
                .password_hash
                .starts_with("$argon2id$v=19$m=19456,t=2,p=1$")
        );
        // And the upgraded hash keeps working.
        app.signin(name, password).await.assert(StatusCode::OK);
        app.signin(name, "wrong password")
            .await
            .assert(StatusCode::UNAUTHORIZED);
    }
}

#[tokio::test]
async fn signin_needs_both_fields() {
    let app = TestApp::new().await;
    let response = app
        .post("/api/auth/signin", json!({"username": "alice"}), None)
        .await;
    response.assert(StatusCode::BAD_REQUEST);
    assert!(
        response.message().contains("password"),
        "{}",
        response.message()
    );
}
