use std::time::Duration;

use api::Role;
use axum::http::{Method, StatusCode};
use serde_json::json;

use crate::support::{PASSWORD, TestApp};

#[tokio::test]
async fn signin_sets_a_strict_httponly_refresh_cookie_and_keeps_it_out_of_the_body() {
    let app = TestApp::new().await;
    app.signup("alice").await.assert(StatusCode::OK);
    let response = app.signin("alice", PASSWORD).await;
    response.assert(StatusCode::OK);
    let cookie = response.set_cookie_header();
    for part in [
        "tollgate_refresh=",
        "HttpOnly",
        "SameSite=Strict",
        "Path=/api/auth",
        "Max-Age=604800",
    ] {
        assert!(cookie.contains(part), "{cookie}");
    }
    assert!(!cookie.contains("Secure"), "plain HTTP: {cookie}");
    assert!(response.json().get("refreshToken").is_none());
    // 256 bits, base64url.
    assert_eq!(response.refresh_cookie().unwrap().len(), 43);

    let https = TestApp::with_settings(|s| s.https = true).await;
    https.signup("alice").await.assert(StatusCode::OK);
    let response = https.signin("alice", PASSWORD).await;
    assert!(response.set_cookie_header().contains("Secure"));
    assert!(
        response
            .header("strict-transport-security")
            .unwrap()
            .contains("max-age=")
    );
    assert_eq!(
        app.get("/healthz", None)
            .await
            .header("strict-transport-security"),
        None
    );
}

#[tokio::test]
async fn refresh_rotates_the_token_every_time() {
    let app = TestApp::new().await;
    app.user_with_roles("alice", &[Role::User]).await;
    let first = app.session("alice").await;
    let response = app.refresh(&first.refresh, &[]).await;
    response.assert(StatusCode::OK);
    let body = response.json();
    assert_eq!(body["tokenType"], "Bearer");
    assert_eq!(body["expiresIn"], 900);
    let second = response.refresh_cookie().unwrap();
    assert_ne!(second, first.refresh);
    let access = body["accessToken"].as_str().unwrap();
    app.get("/api/test/user", Some(access))
        .await
        .assert(StatusCode::OK);
    let third = app.refreshed(&second).await;
    assert_ne!(third.refresh, second);
    // Only hashes are stored: the token itself is nowhere in the database.
    let hash = ring::digest::digest(&ring::digest::SHA256, third.refresh.as_bytes());
    let keys = app
        .state
        .storage
        .find_refresh_token(hash.as_ref())
        .await
        .unwrap();
    assert!(keys.is_some());
}

#[tokio::test]
async fn reused_refresh_token_revokes_the_family() {
    let app = TestApp::with_settings(|s| s.refresh_grace = Duration::ZERO).await;
    app.user_with_roles("alice", &[Role::User]).await;
    let stolen = app.session("alice").await;
    let legit = app.refreshed(&stolen.refresh).await;
    app.get("/api/test/user", Some(&legit.access))
        .await
        .assert(StatusCode::OK);

    // The thief replays the old token: refused, and the whole session dies with it.
    let replay = app.refresh(&stolen.refresh, &[]).await;
    replay.assert(StatusCode::UNAUTHORIZED);
    assert_eq!(replay.message(), "Refresh token is not in database!");
    let after = app.refresh(&legit.refresh, &[]).await;
    after.assert(StatusCode::UNAUTHORIZED);
    // Access tokens of the family stop at once too.
    app.get("/api/test/user", Some(&legit.access))
        .await
        .assert(StatusCode::UNAUTHORIZED);

    let (events, _) = app
        .state
        .storage
        .audit_events(Some(1), None, 50, 0)
        .await
        .unwrap();
    assert!(
        events.iter().any(|e| e.kind == "refresh_reuse_detected"),
        "{events:?}"
    );
    // Other sessions of the same user are untouched.
    let other = app.session("alice").await;
    app.refreshed(&other.refresh).await;
}

#[tokio::test]
async fn parallel_refreshes_within_the_grace_window_all_succeed_and_agree() {
    let app = TestApp::new().await;
    app.user_with_roles("alice", &[Role::User]).await;
    let session = app.session("alice").await;
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..10 {
        let router = app.router.clone();
        let refresh = session.refresh.clone();
        tasks.spawn(async move {
            let request = axum::http::Request::post("/api/auth/refresh")
                .header("cookie", format!("tollgate_refresh={refresh}"))
                .body(axum::body::Body::empty())
                .unwrap();
            let response = tower::ServiceExt::oneshot(router, request).await.unwrap();
            let status = response.status();
            let cookie = response
                .headers()
                .get("set-cookie")
                .map(|v| v.to_str().unwrap().to_owned());
            (status, cookie)
        });
    }
    let results = tasks.join_all().await;
    assert!(
        results.iter().all(|(status, _)| *status == StatusCode::OK),
        "{results:?}"
    );
    // Every tab got the same successor, so whichever cookie lands last works.
    let cookies: std::collections::HashSet<_> = results
        .iter()
        .map(|(_, c)| c.clone().unwrap().split(';').next().unwrap().to_owned())
        .collect();
    assert_eq!(cookies.len(), 1, "{cookies:?}");
    let successor = cookies.into_iter().next().unwrap();
    let successor = successor.strip_prefix("tollgate_refresh=").unwrap();
    let next = app.refreshed(successor).await;
    app.get("/api/test/user", Some(&next.access))
        .await
        .assert(StatusCode::OK);
    // Grace covers only the token rotated last: the first one is now truly reused.
    app.refresh(&session.refresh, &[])
        .await
        .assert(StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn the_previous_token_works_within_grace_but_not_after() {
    let app = TestApp::with_settings(|s| s.refresh_grace = Duration::from_secs(1)).await;
    app.user_with_roles("alice", &[Role::User]).await;
    let session = app.session("alice").await;
    let first = app.refreshed(&session.refresh).await;
    let again = app.refreshed(&session.refresh).await;
    assert_eq!(first.refresh, again.refresh);
    tokio::time::sleep(Duration::from_millis(2100)).await;
    app.refresh(&session.refresh, &[])
        .await
        .assert(StatusCode::UNAUTHORIZED);
    // That was reuse: the family is gone.
    app.refresh(&first.refresh, &[])
        .await
        .assert(StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn refresh_tokens_expire_after_idle_time() {
    let app = TestApp::with_settings(|s| s.refresh_idle_ttl = Duration::from_secs(1)).await;
    app.user_with_roles("alice", &[Role::User]).await;
    let session = app.session("alice").await;
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let response = app.refresh(&session.refresh, &[]).await;
    response.assert(StatusCode::UNAUTHORIZED);
    assert_eq!(
        response.message(),
        "Refresh token was expired. Please make a new signin request"
    );
}

#[tokio::test]
async fn refresh_tokens_expire_at_the_absolute_limit_however_often_used() {
    // Idle time alone would keep this session for a minute; the absolute limit ends it.
    let app = TestApp::with_settings(|s| {
        s.refresh_absolute_ttl = Duration::from_secs(2);
        s.refresh_idle_ttl = Duration::from_secs(60);
    })
    .await;
    app.user_with_roles("alice", &[Role::User]).await;
    let mut session = app.session("alice").await;
    session = app.refreshed(&session.refresh).await;
    tokio::time::sleep(Duration::from_millis(3100)).await;
    let response = app.refresh(&session.refresh, &[]).await;
    response.assert(StatusCode::UNAUTHORIZED);
    assert!(response.message().contains("expired"));
}

#[tokio::test]
async fn missing_or_junk_refresh_tokens_are_refused_cleanly() {
    let app = TestApp::new().await;
    let missing = app
        .send(
            axum::http::Request::post("/api/auth/refresh")
                .body(axum::body::Body::empty())
                .unwrap(),
        )
        .await;
    missing.assert(StatusCode::UNAUTHORIZED);
    assert_eq!(missing.message(), "Refresh Token is required!");
    for junk in ["x", "a".repeat(43).as_str(), "%%%", &"b".repeat(5000)] {
        let response = app.refresh(junk, &[]).await;
        response.assert(StatusCode::UNAUTHORIZED);
        assert_eq!(response.message(), "Refresh token is not in database!");
    }
}

#[tokio::test]
async fn the_tutorial_refreshtoken_route_rotates_and_answers_403s() {
    let app = TestApp::with_settings(|s| s.refresh_token_in_body = true).await;
    app.user_with_roles("alice", &[Role::User]).await;
    let signin = app.signin("alice", PASSWORD).await;
    let refresh = signin.json()["refreshToken"].as_str().unwrap().to_owned();
    assert_eq!(Some(refresh.clone()), signin.refresh_cookie());

    let response = app
        .post(
            "/api/auth/refreshtoken",
            json!({"refreshToken": refresh}),
            None,
        )
        .await;
    response.assert(StatusCode::OK);
    let body = response.json();
    let rotated = body["refreshToken"].as_str().unwrap();
    assert_ne!(rotated, refresh);
    app.get(
        "/api/test/user",
        Some(body["accessToken"].as_str().unwrap()),
    )
    .await
    .assert(StatusCode::OK);
    // The cookie follows, so the two routes cannot disagree.
    assert_eq!(response.refresh_cookie().as_deref(), Some(rotated));

    let missing = app.post("/api/auth/refreshtoken", json!({}), None).await;
    missing.assert(StatusCode::FORBIDDEN);
    assert_eq!(
        missing.json(),
        json!({"message": "Refresh Token is required!"})
    );
    let unknown = app
        .post(
            "/api/auth/refreshtoken",
            json!({"refreshToken": "nope"}),
            None,
        )
        .await;
    unknown.assert(StatusCode::FORBIDDEN);
    assert_eq!(unknown.message(), "Refresh token is not in database!");

    let short = TestApp::with_settings(|s| {
        s.refresh_token_in_body = true;
        s.refresh_idle_ttl = Duration::from_secs(1);
    })
    .await;
    short.user_with_roles("bob", &[Role::User]).await;
    let refresh = short.signin("bob", PASSWORD).await.json()["refreshToken"]
        .as_str()
        .unwrap()
        .to_owned();
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let expired = short
        .post(
            "/api/auth/refreshtoken",
            json!({"refreshToken": refresh}),
            None,
        )
        .await;
    expired.assert(StatusCode::FORBIDDEN);
    assert_eq!(
        expired.message(),
        "Refresh token was expired. Please make a new signin request"
    );
}

#[tokio::test]
async fn logout_kills_the_access_token_at_once_and_clears_the_cookie() {
    let app = TestApp::new().await;
    app.user_with_roles("alice", &[Role::User]).await;
    let session = app.session("alice").await;
    let other = app.session("alice").await;
    app.get("/api/test/user", Some(&session.access))
        .await
        .assert(StatusCode::OK);
    for path in ["/api/auth/logout", "/api/auth/signout"] {
        let response = app.post(path, json!({}), Some(&session.access)).await;
        response.assert(StatusCode::OK);
        assert_eq!(
            response.json(),
            json!({"message": "You've been signed out!"})
        );
        assert_eq!(response.refresh_cookie().as_deref(), Some(""));
        assert!(response.set_cookie_header().contains("Max-Age=0"));
    }
    app.get("/api/test/user", Some(&session.access))
        .await
        .assert(StatusCode::UNAUTHORIZED);
    app.refresh(&session.refresh, &[])
        .await
        .assert(StatusCode::UNAUTHORIZED);
    // Only that session: the other one lives on.
    app.get("/api/test/user", Some(&other.access))
        .await
        .assert(StatusCode::OK);

    // Logout by cookie alone (access token lost or expired).
    let request = axum::http::Request::post("/api/auth/logout")
        .header("cookie", format!("tollgate_refresh={}", other.refresh))
        .body(axum::body::Body::empty())
        .unwrap();
    app.send(request).await.assert(StatusCode::OK);
    app.get("/api/test/user", Some(&other.access))
        .await
        .assert(StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn sessions_are_listed_and_can_be_ended() {
    let app = TestApp::new().await;
    app.user_with_roles("alice", &[Role::User]).await;
    app.user_with_roles("bob", &[Role::User]).await;
    let laptop = app.session("alice").await;
    let phone = app.session("alice").await;
    let tablet = app.session("alice").await;
    let bob = app.session("bob").await;

    let listed = app.get("/api/auth/sessions", Some(&laptop.access)).await;
    listed.assert(StatusCode::OK);
    let sessions = listed.json();
    let sessions = sessions.as_array().unwrap();
    assert_eq!(sessions.len(), 4 - 1 + 1 - 1 + 1, "{sessions:?}"); // alice: 1 (helper) + 3
    let current: Vec<_> = sessions.iter().filter(|s| s["current"] == true).collect();
    assert_eq!(current.len(), 1);
    for field in ["id", "createdAt", "lastUsedAt", "expiresAt", "ip"] {
        assert!(!sessions[0][field].is_null(), "{field}");
    }

    // End the phone's session from the laptop.
    let phone_id = app
        .get("/api/auth/sessions", Some(&phone.access))
        .await
        .json()
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["current"] == true)
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    app.delete(
        &format!("/api/auth/sessions/{phone_id}"),
        Some(&laptop.access),
    )
    .await
    .assert(StatusCode::OK);
    app.get("/api/test/user", Some(&phone.access))
        .await
        .assert(StatusCode::UNAUTHORIZED);
    app.refresh(&phone.refresh, &[])
        .await
        .assert(StatusCode::UNAUTHORIZED);
    // Someone else's session, or an unknown one, is not found.
    let bob_id = app
        .get("/api/auth/sessions", Some(&bob.access))
        .await
        .json()[0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    app.delete(
        &format!("/api/auth/sessions/{bob_id}"),
        Some(&laptop.access),
    )
    .await
    .assert(StatusCode::NOT_FOUND);
    app.get("/api/test/user", Some(&bob.access))
        .await
        .assert(StatusCode::OK);

    // End all others: the laptop survives, the tablet does not.
    let response = app.delete("/api/auth/sessions", Some(&laptop.access)).await;
    response.assert(StatusCode::OK);
    app.get("/api/test/user", Some(&tablet.access))
        .await
        .assert(StatusCode::UNAUTHORIZED);
    app.get("/api/test/user", Some(&laptop.access))
        .await
        .assert(StatusCode::OK);
    let left = app
        .get("/api/auth/sessions", Some(&laptop.access))
        .await
        .json();
    assert_eq!(left.as_array().unwrap().len(), 1);
    app.get("/api/auth/sessions", None)
        .await
        .assert(StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn changing_the_password_ends_every_other_session() {
    let app = TestApp::new().await;
    app.user_with_roles("alice", &[Role::User]).await;
    let here = app.session("alice").await;
    let elsewhere = app.session("alice").await;
    let new_password = "a brand new passphrase";

    let wrong = app
        .request(
            Method::PUT,
            "/api/user/password",
            json!({"currentPassword": "not it", "newPassword": new_password}),
            Some(&here.access),
        )
        .await;
    wrong.assert(StatusCode::BAD_REQUEST);
    assert_eq!(wrong.message(), "Current password is incorrect.");
    let weak = app
        .request(
            Method::PUT,
            "/api/user/password",
            json!({"currentPassword": PASSWORD, "newPassword": "short"}),
            Some(&here.access),
        )
        .await;
    weak.assert(StatusCode::BAD_REQUEST);
    assert!(weak.message().starts_with("Password"));
    app.get("/api/test/user", Some(&elsewhere.access))
        .await
        .assert(StatusCode::OK);

    app.request(
        Method::PUT,
        "/api/user/password",
        json!({"currentPassword": PASSWORD, "newPassword": new_password}),
        Some(&here.access),
    )
    .await
    .assert(StatusCode::OK);
    app.get("/api/test/user", Some(&elsewhere.access))
        .await
        .assert(StatusCode::UNAUTHORIZED);
    app.refresh(&elsewhere.refresh, &[])
        .await
        .assert(StatusCode::UNAUTHORIZED);
    app.get("/api/test/user", Some(&here.access))
        .await
        .assert(StatusCode::OK);
    app.refreshed(&here.refresh).await;
    app.signin("alice", PASSWORD)
        .await
        .assert(StatusCode::UNAUTHORIZED);
    app.signin("alice", new_password)
        .await
        .assert(StatusCode::OK);
    let (events, _) = app
        .state
        .storage
        .audit_events(Some(1), None, 50, 0)
        .await
        .unwrap();
    assert!(
        events.iter().any(|e| e.kind == "password_changed"),
        "{events:?}"
    );
}

#[tokio::test]
async fn guessing_the_current_password_meets_the_account_back_off() {
    let app = TestApp::new().await;
    app.user_with_roles("alice", &[Role::User]).await;
    let session = app.session("alice").await;
    let change = |current: &str| {
        crate::support::json_request(
            Method::PUT,
            "/api/user/password",
            &json!({"currentPassword": current, "newPassword": "a brand new passphrase"}),
            Some(&session.access),
        )
    };
    // From an address this account never signed in from (the helper signed in from localhost):
    // each wrong guess is counted like a failed sign-in...
    let user = tollgate::storage::ThrottleKey::for_name("alice");
    let before = tollgate::clock::unix_now();
    for _ in 0..5 {
        app.send_from("203.0.113.99", change("guess"))
            .await
            .assert(StatusCode::BAD_REQUEST);
    }
    assert!(matches!(
        app.state
            .storage
            .begin_signin_attempt(&user, before)
            .await
            .unwrap(),
        tollgate::storage::SigninAttempt::LockedUntil(_)
    ));
    // ...and while the account backs off, the route answers 429 without checking the password.
    app.lock_out("alice").await;
    let hashes = app.state.passwords.runs();
    let refused = app.send_from("203.0.113.99", change(PASSWORD)).await;
    refused.assert(StatusCode::TOO_MANY_REQUESTS);
    assert!(refused.header("retry-after").is_some());
    assert_eq!(app.state.passwords.runs(), hashes);
}

#[tokio::test]
async fn revocations_survive_a_restart() {
    let first = TestApp::new().await;
    first.user_with_roles("alice", &[Role::User]).await;
    let session = first.session("alice").await;
    first
        .post("/api/auth/logout", json!({}), Some(&session.access))
        .await
        .assert(StatusCode::OK);
    let second = TestApp::on(first.db, |_| {}).await;
    second
        .get("/api/test/user", Some(&session.access))
        .await
        .assert(StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn the_tutorial_route_refuses_rotated_tokens_and_detects_reuse() {
    let app = TestApp::with_settings(|s| {
        s.refresh_token_in_body = true;
        s.refresh_grace = Duration::ZERO;
    })
    .await;
    app.user_with_roles("alice", &[Role::User]).await;
    let first = app.signin("alice", PASSWORD).await.json()["refreshToken"]
        .as_str()
        .unwrap()
        .to_owned();
    let rotated = app
        .post(
            "/api/auth/refreshtoken",
            json!({"refreshToken": first}),
            None,
        )
        .await;
    rotated.assert(StatusCode::OK);
    let second = rotated.json()["refreshToken"].as_str().unwrap().to_owned();
    // Replaying the first token: 403 in the tutorial's words, and the family is gone.
    let replay = app
        .post(
            "/api/auth/refreshtoken",
            json!({"refreshToken": first}),
            None,
        )
        .await;
    replay.assert(StatusCode::FORBIDDEN);
    assert_eq!(
        replay.json(),
        json!({"message": "Refresh token is not in database!"})
    );
    let after = app
        .post(
            "/api/auth/refreshtoken",
            json!({"refreshToken": second}),
            None,
        )
        .await;
    after.assert(StatusCode::FORBIDDEN);
    assert_eq!(after.message(), "Refresh token is not in database!");
}

#[tokio::test]
async fn sessions_record_the_user_agent_and_address_and_logout_is_audited() {
    let app = TestApp::new().await;
    app.user_with_roles("alice", &[Role::User]).await;
    let request = axum::http::Request::post("/api/auth/signin")
        .header("content-type", "application/json")
        .header("user-agent", "Mozilla/5.0 (X11; Linux x86_64) Chrome/156.0")
        .body(axum::body::Body::from(
            json!({"username": "alice", "password": PASSWORD}).to_string(),
        ))
        .unwrap();
    let signin = app.send_from("198.51.100.5", request).await;
    signin.assert(StatusCode::OK);
    let access = signin.json()["accessToken"].as_str().unwrap().to_owned();
    let sessions = app.get("/api/auth/sessions", Some(&access)).await.json();
    let current = sessions
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["current"] == true)
        .unwrap()
        .clone();
    assert_eq!(
        current["userAgent"],
        "Mozilla/5.0 (X11; Linux x86_64) Chrome/156.0"
    );
    assert_eq!(current["ip"], "198.51.100.5");
    // A fresh session ends at the idle limit (7 days), well before the absolute one (30 days).
    let created = time::OffsetDateTime::parse(
        current["createdAt"].as_str().unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();
    let expires = time::OffsetDateTime::parse(
        current["expiresAt"].as_str().unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();
    assert_eq!((expires - created).whole_days(), 7);

    app.post("/api/auth/logout", json!({}), Some(&access))
        .await
        .assert(StatusCode::OK);
    let (events, _) = app
        .state
        .storage
        .audit_events(Some(1), None, 50, 0)
        .await
        .unwrap();
    let kinds: Vec<&str> = events.iter().map(|e| e.kind.as_str()).collect();
    assert!(
        kinds.contains(&"logout") && kinds.contains(&"signin_ok"),
        "{kinds:?}"
    );
}

#[tokio::test]
async fn the_absolute_session_limit_defaults_to_thirty_days() {
    let app = TestApp::new().await;
    app.user_with_roles("alice", &[Role::User]).await;
    let session = app.session("alice").await;
    let hash = ring::digest::digest(&ring::digest::SHA256, session.refresh.as_bytes());
    let found = app
        .state
        .storage
        .find_refresh_token(hash.as_ref())
        .await
        .unwrap()
        .unwrap();
    let now = tollgate::clock::unix_now();
    assert!((found.absolute_expires_at - now - 30 * 86_400).abs() <= 2);
    assert!((found.idle_expires_at - now - 7 * 86_400).abs() <= 2);
}
