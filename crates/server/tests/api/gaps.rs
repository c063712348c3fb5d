//! Revocation gaps and sidestepped defences found in review: each test here failed before
//! its fix.

use std::time::Duration;

use api::Role;
use axum::{
    body::Body,
    http::{Method, Request, StatusCode},
};
use serde_json::json;

use crate::support::{PASSWORD, TestApp, TestDatabase, json_request, signin_request};

const NEW_PASSWORD: &str = "a brand new passphrase";

fn change_password(token: &str, current: &str, new: &str) -> Request<Body> {
    json_request(
        Method::PUT,
        "/api/user/password",
        &json!({"currentPassword": current, "newPassword": new}),
        Some(token),
    )
}

#[tokio::test]
async fn sign_ins_racing_a_password_change_open_no_session_that_survives_it() {
    let app = TestApp::with_settings(|s| {
        s.hash_concurrency = std::num::NonZeroUsize::new(4).unwrap();
    })
    .await;
    app.user_with_roles("alice", &[Role::User]).await;
    let owner = app.session("alice").await;

    for round in 0..3 {
        let (old, new) = if round % 2 == 0 {
            (PASSWORD, NEW_PASSWORD)
        } else {
            (NEW_PASSWORD, PASSWORD)
        };
        // Sign-ins with the old password, in flight while the password changes.
        let mut signins = tokio::task::JoinSet::new();
        for _ in 0..4 {
            let router = app.router.clone();
            signins.spawn(async move {
                let response =
                    tower::ServiceExt::oneshot(router, signin_request("alice", old)).await;
                let response = response.unwrap();
                let status = response.status();
                let body = http_body_util::BodyExt::collect(response.into_body())
                    .await
                    .unwrap()
                    .to_bytes();
                (status, body)
            });
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
        app.send(change_password(&owner.access, old, new))
            .await
            .assert(StatusCode::OK);
        for (status, body) in signins.join_all().await {
            assert!(
                status == StatusCode::OK || status == StatusCode::UNAUTHORIZED,
                "{status}"
            );
            if status == StatusCode::OK {
                // Opened before the change landed: the change ended it.
                let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
                let token = body["accessToken"].as_str().unwrap();
                app.get("/api/test/user", Some(token))
                    .await
                    .assert(StatusCode::UNAUTHORIZED);
            }
        }
        // Only the owner's session is left.
        let sessions = app.get("/api/auth/sessions", Some(&owner.access)).await;
        sessions.assert(StatusCode::OK);
        assert_eq!(
            sessions.json().as_array().unwrap().len(),
            1,
            "round {round}: {}",
            sessions.text()
        );
    }
}

#[tokio::test]
async fn a_session_opens_only_for_the_credential_verified() {
    use tollgate::storage::{NewSession, SessionOpened};
    let app = TestApp::new().await;
    app.user_with_roles("alice", &[Role::User]).await;
    let storage = &app.state.storage;
    let alice = storage.user_by_username("alice").await.unwrap().unwrap();
    let open = |id: &'static str, user_id: i64, credential_version: i64| NewSession {
        id,
        user_id,
        now: tollgate::clock::unix_now(),
        idle_expires_at: tollgate::clock::unix_now() + 60,
        absolute_expires_at: tollgate::clock::unix_now() + 60,
        user_agent: None,
        ip: None,
        token_hash: id.as_bytes(),
        credential_version,
        amr: "pwd",
        factor_proven_at: None,
    };
    assert_eq!(
        storage
            .insert_session(&open("stale", alice.id, alice.credential_version + 1))
            .await
            .unwrap(),
        SessionOpened::CredentialChanged
    );
    // A user deleted meanwhile: no foreign-key failure, just no session.
    assert_eq!(
        storage
            .insert_session(&open("ghost", alice.id + 1000, 0))
            .await
            .unwrap(),
        SessionOpened::CredentialChanged
    );
    assert_eq!(
        storage
            .insert_session(&open("fresh", alice.id, alice.credential_version))
            .await
            .unwrap(),
        SessionOpened::Opened
    );
}

#[tokio::test]
async fn sign_ins_racing_a_deletion_answer_as_for_an_unknown_user() {
    let app = TestApp::new().await;
    let admin = app.user_with_roles("root", &[Role::Admin]).await;
    for round in 0..4 {
        let name = format!("doomed{round}");
        app.user_with_roles(&name, &[Role::User]).await;
        let id = app
            .state
            .storage
            .user_by_username(&name)
            .await
            .unwrap()
            .unwrap()
            .id;
        let mut signins = tokio::task::JoinSet::new();
        for _ in 0..4 {
            let router = app.router.clone();
            let name = name.clone();
            signins.spawn(async move {
                tower::ServiceExt::oneshot(router, signin_request(&name, PASSWORD))
                    .await
                    .unwrap()
                    .status()
            });
        }
        tokio::time::sleep(Duration::from_millis(round * 20)).await;
        app.delete(&format!("/api/admin/users/{id}"), Some(&admin))
            .await
            .assert(StatusCode::OK);
        for status in signins.join_all().await {
            assert!(
                status == StatusCode::OK || status == StatusCode::UNAUTHORIZED,
                "sign-in racing a deletion answered {status}"
            );
        }
    }
}

#[tokio::test]
async fn a_shorter_token_lifetime_after_restart_does_not_revive_revoked_tokens() {
    let db = TestDatabase::fresh().await;
    let url = db.url.clone();
    let long = TestApp::on(db, |s| s.access_token_ttl = Duration::from_secs(3600)).await;
    long.user_with_roles("alice", &[Role::User]).await;
    let session = long.session("alice").await;
    long.post("/api/auth/logout", json!({}), Some(&session.access))
        .await
        .assert(StatusCode::OK);

    // Restarted with 2-second tokens: the 1-hour token stays revoked past 2 seconds.
    let short = TestApp::on(TestDatabase::existing(&url), |s| {
        s.access_token_ttl = Duration::from_secs(2)
    })
    .await;
    tokio::time::sleep(Duration::from_millis(3100)).await;
    short.state.revocations.purge();
    short
        .get("/api/test/user", Some(&session.access))
        .await
        .assert(StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn a_node_with_short_tokens_revokes_for_as_long_as_the_longest_lived_node_needs() {
    let db = TestDatabase::fresh().await;
    let url = db.url.clone();
    let long = TestApp::on(db, |s| s.access_token_ttl = Duration::from_secs(3600)).await;
    let short = TestApp::on(TestDatabase::existing(&url), |s| {
        s.access_token_ttl = Duration::from_secs(2)
    })
    .await;
    long.user_with_roles("alice", &[Role::User]).await;
    // A 1-hour token from the long-lived node, logged out through the short-lived one.
    let session = long.session("alice").await;
    short
        .post("/api/auth/logout", json!({}), Some(&session.access))
        .await
        .assert(StatusCode::OK);
    // The long-lived node hears of it (NOTIFY on PostgreSQL, polling on SQLite)...
    let mut refused = false;
    for _ in 0..40 {
        if long
            .get("/api/test/user", Some(&session.access))
            .await
            .status
            == StatusCode::UNAUTHORIZED
        {
            refused = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(refused, "the other node never heard of the logout");
    // ...and keeps it past the short node's lifetime; so does a restart of either.
    tokio::time::sleep(Duration::from_millis(3100)).await;
    long.state.revocations.purge();
    short.state.revocations.purge();
    long.get("/api/test/user", Some(&session.access))
        .await
        .assert(StatusCode::UNAUTHORIZED);
    let restarted = TestApp::on(TestDatabase::existing(&url), |s| {
        s.access_token_ttl = Duration::from_secs(2)
    })
    .await;
    restarted
        .get("/api/test/user", Some(&session.access))
        .await
        .assert(StatusCode::UNAUTHORIZED);
}

const OWNER_IP: &str = "198.51.100.20";
const ATTACKER: &str = "203.0.113.66";

#[tokio::test]
async fn refreshing_a_stolen_cookie_earns_no_back_off_exemption() {
    let app = TestApp::new().await;
    app.user_with_roles("alice", &[Role::User]).await;
    let signin = app
        .send_from(OWNER_IP, signin_request("alice", PASSWORD))
        .await;
    signin.assert(StatusCode::OK);
    let stolen = signin.refresh_cookie().unwrap();
    // The attacker refreshes the stolen session from their own address...
    let refresh = Request::post("/api/auth/refresh")
        .header("cookie", format!("tollgate_refresh={stolen}"))
        .body(Body::empty())
        .unwrap();
    app.send_from(ATTACKER, refresh)
        .await
        .assert(StatusCode::OK);
    // ...and still meets the back-off when guessing from there.
    app.lock_out("alice").await;
    app.send_from(ATTACKER, signin_request("alice", "guess"))
        .await
        .assert(StatusCode::TOO_MANY_REQUESTS);
    // The owner, where she gave her password, is let through.
    app.send_from(OWNER_IP, signin_request("alice", PASSWORD))
        .await
        .assert(StatusCode::OK);
}

#[tokio::test]
async fn the_exemption_ends_with_the_session_and_with_a_password_change() {
    let app = TestApp::new().await;
    app.user_with_roles("alice", &[Role::User]).await;

    // Ended session: no exemption left at that address.
    let signin = app
        .send_from(OWNER_IP, signin_request("alice", PASSWORD))
        .await;
    signin.assert(StatusCode::OK);
    let token = signin.json()["accessToken"].as_str().unwrap().to_owned();
    app.post("/api/auth/logout", json!({}), Some(&token))
        .await
        .assert(StatusCode::OK);
    app.lock_out("alice").await;
    app.send_from(OWNER_IP, signin_request("alice", PASSWORD))
        .await
        .assert(StatusCode::TOO_MANY_REQUESTS);

    // A session opened before a password change no longer vouches for its address.
    app.state
        .storage
        .signin_succeeded(&tollgate::storage::ThrottleKey::for_name("alice"))
        .await
        .unwrap();
    let signin = app
        .send_from(OWNER_IP, signin_request("alice", PASSWORD))
        .await;
    signin.assert(StatusCode::OK);
    let token = signin.json()["accessToken"].as_str().unwrap().to_owned();
    app.send_from("192.0.2.1", change_password(&token, PASSWORD, NEW_PASSWORD))
        .await
        .assert(StatusCode::OK);
    app.lock_out("alice").await;
    app.send_from(OWNER_IP, signin_request("alice", NEW_PASSWORD))
        .await
        .assert(StatusCode::TOO_MANY_REQUESTS);
}

#[tokio::test]
async fn back_off_says_nothing_about_whether_an_account_exists() {
    use tollgate::storage::{SigninAttempt, ThrottleKey};
    let app = TestApp::new().await;
    app.user_with_roles("alice", &[Role::User]).await;
    // Five failures start the back-off for a missing name exactly as for an existing one
    // (checked at a fixed time, so a slow machine cannot outlast the one-second back-off).
    for name in ["alice", "ghost"] {
        let started = tollgate::clock::unix_now();
        for _ in 0..5 {
            app.send_from(ATTACKER, signin_request(name, "wrong guess"))
                .await
                .assert(StatusCode::UNAUTHORIZED);
        }
        assert!(
            matches!(
                app.state
                    .storage
                    .begin_signin_attempt(&ThrottleKey::for_name(name), started)
                    .await
                    .unwrap(),
                SigninAttempt::LockedUntil(_)
            ),
            "{name} is not backing off"
        );
    }
    // While backing off, both answer the same 429.
    app.lock_out("alice").await;
    app.lock_out("ghost").await;
    let alice = app
        .send_from(ATTACKER, signin_request("alice", "guess"))
        .await;
    let ghost = app
        .send_from(ATTACKER, signin_request("GHOST", "guess"))
        .await;
    alice.assert(StatusCode::TOO_MANY_REQUESTS);
    ghost.assert(StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(alice.text(), ghost.text());
    let retry = |r: &crate::support::TestResponse| -> i64 {
        r.header("retry-after").unwrap().parse().unwrap()
    };
    assert!((retry(&alice) - retry(&ghost)).abs() <= 2);
}

#[tokio::test]
async fn over_long_passwords_cost_a_hash_for_known_and_unknown_names_alike() {
    let app = TestApp::new().await;
    app.user_with_roles("alice", &[Role::User]).await;
    let huge = "x".repeat(tollgate::passwords::MAX_PASSWORD_BYTES + 1);
    for name in ["alice", "ghost"] {
        let before = app.state.passwords.runs();
        app.send_from(ATTACKER, signin_request(name, &huge))
            .await
            .assert(StatusCode::UNAUTHORIZED);
        assert_eq!(app.state.passwords.runs() - before, 1, "{name}");
    }
}
