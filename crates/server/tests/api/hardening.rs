use std::{num::NonZeroU32, time::Duration};

use api::Role;
use axum::{
    body::Body,
    http::{Method, Request, StatusCode},
};
use serde_json::json;

use crate::support::{PASSWORD, TestApp, json_request, signin_request};

#[tokio::test]
async fn parallel_wrong_passwords_cannot_bypass_the_account_counter() {
    let app = TestApp::new().await;
    app.user_with_roles("alice", &[Role::User]).await;
    let hashes_before = app.state.passwords.runs();
    let burst_started = tollgate::clock::unix_now();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..20 {
        let router = app.router.clone();
        tasks.spawn(async move {
            let response = tower::ServiceExt::oneshot(
                router,
                from(ATTACKER, signin_request("alice", "wrong guess")),
            )
            .await
            .unwrap();
            (
                response.status(),
                response
                    .headers()
                    .get("retry-after")
                    .map(|v| v.to_str().unwrap().to_owned()),
            )
        });
    }
    let results = tasks.join_all().await;
    let refused = results
        .iter()
        .filter(|(s, _)| *s == StatusCode::TOO_MANY_REQUESTS)
        .count();
    let checked = results
        .iter()
        .filter(|(s, _)| *s == StatusCode::UNAUTHORIZED)
        .count();
    // The free allowance was checked and the rest waited for the back-off. (One or two more
    // may be checked if the machine is so slow that the first one-second back-off runs out
    // before the last requests arrive; without the atomic counter all 20 would be.)
    assert!((5..=7).contains(&checked), "{results:?}");
    assert_eq!(checked + refused, 20, "{results:?}");
    assert!(
        results
            .iter()
            .filter(|(s, _)| *s == StatusCode::TOO_MANY_REQUESTS)
            .all(|(_, retry)| retry
                .as_deref()
                .is_some_and(|r| r.parse::<u64>().unwrap() >= 1))
    );
    // Refused attempts never reached the password hasher.
    assert_eq!(app.state.passwords.runs() - hashes_before, checked as u64);

    // The account is backing off now, whatever the password (checked without racing the clock:
    // the first back-off is only a second long).
    let user = tollgate::storage::ThrottleKey::for_name("alice");
    assert!(matches!(
        app.state
            .storage
            .begin_signin_attempt(&user, burst_started)
            .await
            .unwrap(),
        tollgate::storage::SigninAttempt::LockedUntil(_)
    ));
    // It is a back-off, not a lock-out: once it runs out, the right password works.
    let mut status = StatusCode::TOO_MANY_REQUESTS;
    for _ in 0..10 {
        tokio::time::sleep(Duration::from_secs(1)).await;
        status = app
            .send_from(ATTACKER, signin_request("alice", PASSWORD))
            .await
            .status;
        if status != StatusCode::TOO_MANY_REQUESTS {
            break;
        }
    }
    assert_eq!(status, StatusCode::OK);
    // Success reset the count: five fresh failures are allowed again (from another address:
    // the one that just signed in is now a known one, let through the back-off).
    let before_failures = tollgate::clock::unix_now();
    for _ in 0..5 {
        app.send_from("203.0.113.67", signin_request("alice", "wrong guess"))
            .await
            .assert(StatusCode::UNAUTHORIZED);
    }
    // ...and the fifth started the back-off again (checked at a fixed time: a slow machine
    // may outlast the first one-second back-off before a sixth request could tell).
    assert!(matches!(
        app.state
            .storage
            .begin_signin_attempt(&user, before_failures)
            .await
            .unwrap(),
        tollgate::storage::SigninAttempt::LockedUntil(_)
    ));
}

const ATTACKER: &str = "203.0.113.66";

fn from(ip: &str, mut request: Request<Body>) -> Request<Body> {
    let addr: std::net::SocketAddr = format!("{ip}:40000").parse().unwrap();
    request
        .extensions_mut()
        .insert(axum::extract::ConnectInfo(addr));
    request
}

#[tokio::test]
async fn an_attacker_elsewhere_cannot_lock_the_owner_out() {
    let app = TestApp::new().await;
    app.user_with_roles("alice", &[Role::User]).await;
    // Alice has signed in from her usual address before.
    app.send_from("198.51.100.20", signin_request("alice", PASSWORD))
        .await
        .assert(StatusCode::OK);
    app.lock_out("alice").await;
    let refused = app
        .send_from(ATTACKER, signin_request("alice", PASSWORD))
        .await;
    refused.assert(StatusCode::TOO_MANY_REQUESTS);
    let retry_after: u64 = refused.header("retry-after").unwrap().parse().unwrap();
    assert!(retry_after > 60 && retry_after < 1000, "{retry_after}");
    // From her usual address she still gets in, and that resets the count.
    app.send_from("198.51.100.20", signin_request("alice", PASSWORD))
        .await
        .assert(StatusCode::OK);
    app.send_from(ATTACKER, signin_request("alice", "guess"))
        .await
        .assert(StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn back_off_doubles_from_one_second_up_to_fifteen_minutes() {
    use tollgate::storage::SigninAttempt::{Allowed, LockedUntil};
    let app = TestApp::new().await;
    app.user_with_roles("alice", &[Role::User]).await;
    let storage = &app.state.storage;
    let user = tollgate::storage::ThrottleKey::for_name("alice");
    // The clock is ours to move: each attempt comes exactly when the last back-off ends.
    let mut now = 1_000_000;
    for _ in 0..4 {
        assert_eq!(
            storage.begin_signin_attempt(&user, now).await.unwrap(),
            Allowed
        );
    }
    let mut waits = Vec::new();
    for _ in 0..12 {
        assert_eq!(
            storage.begin_signin_attempt(&user, now).await.unwrap(),
            Allowed
        );
        let LockedUntil(until) = storage.begin_signin_attempt(&user, now).await.unwrap() else {
            panic!("not backing off after {} failures", 5 + waits.len());
        };
        waits.push(until - now);
        now = until;
    }
    assert_eq!(waits, [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 900, 900]);
    // Success clears it all.
    storage.signin_succeeded(&user).await.unwrap();
    for _ in 0..5 {
        assert_eq!(
            storage.begin_signin_attempt(&user, now).await.unwrap(),
            Allowed
        );
    }
}

#[tokio::test]
async fn per_ip_limits_answer_429_with_retry_after_before_any_hashing() {
    let app = TestApp::with_settings(|s| {
        s.rate_limits.signin = NonZeroU32::new(3);
        s.rate_limits.signup = NonZeroU32::new(2);
        s.rate_limits.refresh = NonZeroU32::new(2);
    })
    .await;
    app.user_with_roles("alice", &[Role::User]).await;
    for _ in 0..3 {
        app.send_from("203.0.113.7", signin_request("nobody", "x"))
            .await
            .assert(StatusCode::UNAUTHORIZED);
    }
    let hashes_before = app.state.passwords.runs();
    let limited = app
        .send_from("203.0.113.7", signin_request("alice", PASSWORD))
        .await;
    limited.assert(StatusCode::TOO_MANY_REQUESTS);
    assert!(
        limited
            .header("retry-after")
            .unwrap()
            .parse::<u64>()
            .unwrap()
            >= 1
    );
    assert_eq!(limited.message(), "Too many requests; try again later.");
    assert_eq!(app.state.passwords.runs(), hashes_before);
    // Another client is not affected.
    app.send_from("203.0.113.8", signin_request("alice", PASSWORD))
        .await
        .assert(StatusCode::OK);

    let signup = |name: &str| {
        json_request(
            Method::POST,
            "/api/auth/signup",
            &json!({"username": name, "email": format!("{name}@example.com"), "password": PASSWORD}),
            None,
        )
    };
    app.send_from("198.51.100.1", signup("new1"))
        .await
        .assert(StatusCode::OK);
    app.send_from("198.51.100.1", signup("new2"))
        .await
        .assert(StatusCode::OK);
    app.send_from("198.51.100.1", signup("new3"))
        .await
        .assert(StatusCode::TOO_MANY_REQUESTS);

    let refresh = |token: &str| {
        Request::post("/api/auth/refresh")
            .header("cookie", format!("tollgate_refresh={token}"))
            .body(Body::empty())
            .unwrap()
    };
    for _ in 0..2 {
        app.send_from("192.0.2.1", refresh("junk"))
            .await
            .assert(StatusCode::UNAUTHORIZED);
    }
    app.send_from("192.0.2.1", refresh("junk"))
        .await
        .assert(StatusCode::TOO_MANY_REQUESTS);
}

#[tokio::test]
async fn admins_provisioning_users_are_not_held_to_the_anonymous_signup_limit() {
    let app = TestApp::with_settings(|s| s.rate_limits.signup = NonZeroU32::new(2)).await;
    let admin = app.user_with_roles("root", &[Role::Admin]).await;
    let user = app.user_with_roles("alice", &[Role::User]).await;
    let signup = |name: &str, token: Option<&str>| {
        json_request(
            Method::POST,
            "/api/auth/signup",
            &json!({"username": name, "email": format!("{name}@example.com"), "password": PASSWORD}),
            token,
        )
    };
    for i in 0..5 {
        app.send_from("198.51.100.1", signup(&format!("staff{i}"), Some(&admin)))
            .await
            .assert(StatusCode::OK);
    }
    // The admin's sign-ups left the address's allowance untouched.
    app.send_from("198.51.100.1", signup("anon1", None))
        .await
        .assert(StatusCode::OK);
    app.send_from("198.51.100.1", signup("anon2", None))
        .await
        .assert(StatusCode::OK);
    app.send_from("198.51.100.1", signup("anon3", None))
        .await
        .assert(StatusCode::TOO_MANY_REQUESTS);
    // A non-admin's token counts, and so does a bad one (refused with 401 after counting).
    app.send_from("198.51.100.2", signup("user1", Some(&user)))
        .await
        .assert(StatusCode::OK);
    app.send_from("198.51.100.2", signup("user2", Some("not-a-token")))
        .await
        .assert(StatusCode::UNAUTHORIZED);
    app.send_from("198.51.100.2", signup("user3", Some(&user)))
        .await
        .assert(StatusCode::TOO_MANY_REQUESTS);
    // The admin is still let through from a limited address.
    app.send_from("198.51.100.2", signup("staff5", Some(&admin)))
        .await
        .assert(StatusCode::OK);
}

#[tokio::test]
async fn answers_with_tokens_or_personal_data_are_never_stored_by_caches() {
    let app = TestApp::new().await;
    let admin = app.user_with_roles("root", &[Role::Admin]).await;
    app.user_with_roles("alice", &[Role::User]).await;
    let session = app.session("alice").await;
    let responses = [
        ("signin", app.signin("alice", PASSWORD).await),
        ("refresh", app.refresh(&session.refresh, &[]).await),
        ("me", app.get("/api/user/me", Some(&session.access)).await),
        (
            "sessions",
            app.get("/api/auth/sessions", Some(&session.access)).await,
        ),
        (
            "admin users",
            app.get("/api/admin/users", Some(&admin)).await,
        ),
        (
            "admin user",
            app.get("/api/admin/users/2", Some(&admin)).await,
        ),
        (
            "admin audit",
            app.get("/api/admin/audit", Some(&admin)).await,
        ),
        (
            "refreshtoken",
            app.post(
                "/api/auth/refreshtoken",
                json!({"refreshToken": app.session("alice").await.refresh}),
                None,
            )
            .await,
        ),
        (
            "user content",
            app.get("/api/test/user", Some(&session.access)).await,
        ),
        ("error", app.get("/api/user/me", Some("not-a-token")).await),
        ("wrong password", app.signin("alice", "wrong guess").await),
    ];
    for (what, response) in responses {
        assert!(response.status != StatusCode::NOT_FOUND, "{what}");
        assert_eq!(response.header("cache-control"), Some("no-store"), "{what}");
    }
    // What may be cached still says so.
    assert_eq!(
        app.get("/.well-known/jwks.json", None)
            .await
            .header("cache-control"),
        Some("public, max-age=300")
    );
    assert_eq!(
        app.get("/", None).await.header("cache-control"),
        Some("no-cache")
    );
}

#[tokio::test]
async fn x_forwarded_for_is_believed_only_from_trusted_proxies() {
    let app = TestApp::with_settings(|s| {
        s.rate_limits.signin = NonZeroU32::new(1);
        s.trusted_proxies = vec!["10.0.0.0/8".parse().unwrap()];
    })
    .await;
    let via_proxy = |client: &str| {
        let mut request = signin_request("nobody", "x");
        request.headers_mut().insert(
            "x-forwarded-for",
            format!("{client}, 10.1.1.1").parse().unwrap(),
        );
        request
    };
    // Two clients behind the same trusted proxy are told apart.
    app.send_from("10.0.0.1", via_proxy("203.0.113.1"))
        .await
        .assert(StatusCode::UNAUTHORIZED);
    app.send_from("10.0.0.1", via_proxy("203.0.113.2"))
        .await
        .assert(StatusCode::UNAUTHORIZED);
    app.send_from("10.0.0.1", via_proxy("203.0.113.1"))
        .await
        .assert(StatusCode::TOO_MANY_REQUESTS);
    // An untrusted peer cannot dodge its limit by inventing addresses.
    app.send_from("198.51.100.9", via_proxy("1.1.1.1"))
        .await
        .assert(StatusCode::UNAUTHORIZED);
    app.send_from("198.51.100.9", via_proxy("2.2.2.2"))
        .await
        .assert(StatusCode::TOO_MANY_REQUESTS);
    // The recorded address is the client's, not the proxy's.
    let (events, _) = app
        .state
        .storage
        .audit_events(None, None, 10, 0)
        .await
        .unwrap();
    assert!(
        events
            .iter()
            .any(|e| e.ip.as_deref() == Some("203.0.113.2")),
        "{events:?}"
    );
}

#[tokio::test]
async fn cross_site_requests_to_cookie_routes_are_refused() {
    let app = TestApp::new().await;
    app.user_with_roles("alice", &[Role::User]).await;
    let session = app.session("alice").await;
    for headers in [
        vec![("origin", "http://evil.example")],
        vec![("origin", "null")],
        vec![("sec-fetch-site", "cross-site")],
    ] {
        let response = app.refresh(&session.refresh, &headers).await;
        response.assert(StatusCode::FORBIDDEN);
        assert_eq!(response.message(), "Cross-site request refused.");
        let mut logout = Request::post("/api/auth/logout")
            .header("cookie", format!("tollgate_refresh={}", session.refresh));
        for (name, value) in &headers {
            logout = logout.header(*name, *value);
        }
        app.send(logout.body(Body::empty()).unwrap())
            .await
            .assert(StatusCode::FORBIDDEN);
    }
    // The refused requests changed nothing: the session still refreshes, from allowed origins.
    let next = app
        .refresh(&session.refresh, &[("origin", "http://localhost:8081")])
        .await;
    next.assert(StatusCode::OK);
    let same_origin = app
        .refresh(
            &next.refresh_cookie().unwrap(),
            &[
                ("origin", "http://tollgate.test:8080"),
                ("host", "tollgate.test:8080"),
                ("sec-fetch-site", "same-origin"),
            ],
        )
        .await;
    same_origin.assert(StatusCode::OK);
}

#[tokio::test]
async fn every_response_carries_a_strict_content_security_policy() {
    let app = TestApp::new().await;
    for response in [
        app.get("/api/test/all", None).await,
        app.get("/api/auth/sessions", None).await,
        app.get("/nowhere", None).await,
    ] {
        let csp = response.header("content-security-policy").unwrap();
        for directive in [
            "default-src 'self'",
            "'wasm-unsafe-eval'",
            "frame-ancestors 'none'",
            "object-src 'none'",
        ] {
            assert!(csp.contains(directive), "{csp}");
        }
        assert!(!csp.contains("unsafe-inline"));
        assert_eq!(response.header("x-content-type-options"), Some("nosniff"));
        assert_eq!(response.header("x-frame-options"), Some("DENY"));
        assert_eq!(response.header("referrer-policy"), Some("no-referrer"));
    }
}

#[tokio::test]
async fn a_disabled_account_with_the_right_password_is_told_so() {
    let app = TestApp::new().await;
    let admin = app.user_with_roles("root", &[Role::Admin]).await;
    app.user_with_roles("alice", &[Role::User]).await;
    app.post("/api/admin/users/2/disable", json!({}), Some(&admin))
        .await
        .assert(StatusCode::OK);
    let response = app.signin("alice", PASSWORD).await;
    response.assert(StatusCode::FORBIDDEN);
    assert_eq!(response.message(), "This account is disabled.");
    app.signin("alice", "wrong password")
        .await
        .assert(StatusCode::UNAUTHORIZED);
}
