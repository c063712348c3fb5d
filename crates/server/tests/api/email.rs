//! The mail flows end to end: real SMTP on loopback (aiosmtpd), mail read back, every step
//! through the HTTP API.

use std::time::{Duration, Instant};

use api::Role;
use axum::http::{Method, StatusCode};
use serde_json::json;
use tollgate::config::EmailVerification;

use crate::support::{MailSink, PASSWORD, TestApp};

const NEW_PASSWORD: &str = "a brand new passphrase";

/// An app with mail, or `return` from the test (skipped) without aiosmtpd.
macro_rules! app_with_mail {
    ($change:expr) => {
        match TestApp::with_mail($change).await {
            Some(pair) => pair,
            None => return,
        }
    };
    () => {
        app_with_mail!(|_| {})
    };
}

async fn forgot(app: &TestApp, email: &str) -> crate::support::TestResponse {
    app.post("/api/auth/password/forgot", json!({ "email": email }), None)
        .await
}

/// Signs up `name` and waits for the verification mail, so later waits count from 1.
async fn signed_up(app: &TestApp, sink: &MailSink, name: &str) -> String {
    app.signup(name).await.assert(StatusCode::OK);
    let address = format!("{name}@example.com");
    sink.wait_for(&address, 1).await;
    address
}

async fn audit_kinds(app: &TestApp) -> Vec<String> {
    let (events, _) = app
        .state
        .storage
        .audit_events(None, None, 500, 0)
        .await
        .unwrap();
    events.into_iter().map(|e| e.kind).collect()
}

#[tokio::test]
async fn a_forgotten_password_is_reset_with_the_mailed_code_once() {
    let (app, sink) = app_with_mail!();
    let address = signed_up(&app, &sink, "alice").await;
    let before = app.session("alice").await;

    let answer = forgot(&app, &address).await;
    answer.assert(StatusCode::OK);
    assert_eq!(answer.header("cache-control"), Some("no-store"));
    let mail = sink.wait_for(&address, 2).await;
    assert!(
        mail.subject.contains("Reset your Tollgate password"),
        "{}",
        mail.subject
    );
    assert!(
        mail.link()
            .starts_with("http://tollgate.test/reset-password?token=")
    );
    assert!(
        mail.html.contains(&mail.code()),
        "the HTML part carries the code too"
    );

    let reset = json!({"email": address, "code": mail.code(), "newPassword": NEW_PASSWORD});
    app.post("/api/auth/password/reset", reset.clone(), None)
        .await
        .assert(StatusCode::OK);
    app.signin("alice", PASSWORD)
        .await
        .assert(StatusCode::UNAUTHORIZED);
    app.signin("alice", NEW_PASSWORD)
        .await
        .assert(StatusCode::OK);
    // Single use.
    let again =
        json!({"email": address, "code": mail.code(), "newPassword": "yet another passphrase"});
    let refused = app.post("/api/auth/password/reset", again, None).await;
    refused.assert(StatusCode::BAD_REQUEST);
    assert!(refused.message().contains("invalid or has expired"));
    // Every session and access token from before is over.
    app.get("/api/test/user", Some(&before.access))
        .await
        .assert(StatusCode::UNAUTHORIZED);
    app.refresh(&before.refresh, &[])
        .await
        .assert(StatusCode::UNAUTHORIZED);
    // Proving the mailbox proved the address.
    let signed_in = app.signin("alice", NEW_PASSWORD).await;
    let token = signed_in.json()["accessToken"].as_str().unwrap().to_owned();
    assert_eq!(
        app.get("/api/user/me", Some(&token)).await.json()["emailVerified"],
        true
    );
    let kinds = audit_kinds(&app).await;
    assert!(kinds.contains(&"password_reset_requested".to_owned()));
    assert!(kinds.contains(&"password_reset".to_owned()));
}

#[tokio::test]
async fn the_link_resets_too_and_opening_it_consumes_nothing() {
    let (app, sink) = app_with_mail!();
    let address = signed_up(&app, &sink, "bob").await;
    forgot(&app, &address).await.assert(StatusCode::OK);
    let mail = sink.wait_for(&address, 2).await;
    // A mail scanner opening the link gets the page, and the token still works.
    let page = app
        .get(&mail.link().replace("http://tollgate.test", ""), None)
        .await;
    page.assert(StatusCode::OK);
    let reset = json!({"token": mail.token(), "newPassword": NEW_PASSWORD});
    app.post("/api/auth/password/reset", reset.clone(), None)
        .await
        .assert(StatusCode::OK);
    app.post("/api/auth/password/reset", reset, None)
        .await
        .assert(StatusCode::BAD_REQUEST);
    app.signin("bob", NEW_PASSWORD).await.assert(StatusCode::OK);
}

#[tokio::test]
async fn forgot_password_answers_alike_for_known_and_unknown_addresses() {
    let (app, sink) = app_with_mail!();
    let address = signed_up(&app, &sink, "carol").await;
    let known = forgot(&app, &address).await;
    let unknown = forgot(&app, "nobody@example.com").await;
    assert_eq!(known.status, unknown.status);
    assert_eq!(known.body, unknown.body);
    let mut known_headers = known.headers.clone();
    let mut unknown_headers = unknown.headers.clone();
    for headers in [&mut known_headers, &mut unknown_headers] {
        headers.remove("date");
    }
    assert_eq!(known_headers, unknown_headers);

    // Timing: interleaved, the medians are within noise of each other.
    let mut times = [Vec::new(), Vec::new()];
    for _ in 0..15 {
        for (i, email) in [address.as_str(), "nobody@example.com"].iter().enumerate() {
            let started = Instant::now();
            forgot(&app, email).await.assert(StatusCode::OK);
            times[i].push(started.elapsed());
        }
    }
    let [known_median, unknown_median] = times.map(|mut t| {
        t.sort();
        t[t.len() / 2]
    });
    let (low, high) = if known_median < unknown_median {
        (known_median, unknown_median)
    } else {
        (unknown_median, known_median)
    };
    assert!(
        high < low * 3 + Duration::from_millis(3),
        "known {known_median:?} vs unknown {unknown_median:?}"
    );
    sink.wait_for(&address, 2).await;
    assert!(sink.messages_to("nobody@example.com").is_empty());
}

#[tokio::test]
async fn codes_die_after_five_wrong_tries_and_when_a_newer_one_is_sent() {
    let (app, sink) = app_with_mail!();
    let address = signed_up(&app, &sink, "dave").await;
    forgot(&app, &address).await.assert(StatusCode::OK);
    let first = sink.wait_for(&address, 2).await;
    forgot(&app, &address).await.assert(StatusCode::OK);
    let second = sink.wait_for(&address, 3).await;
    assert_ne!(first.code(), second.code());
    let with = |code: &str| json!({"email": address, "code": code, "newPassword": NEW_PASSWORD});
    // The older code is void.
    app.post("/api/auth/password/reset", with(&first.code()), None)
        .await
        .assert(StatusCode::BAD_REQUEST);
    app.post(
        "/api/auth/password/reset",
        json!({"token": first.token(), "newPassword": NEW_PASSWORD}),
        None,
    )
    .await
    .assert(StatusCode::BAD_REQUEST);
    // Five wrong codes (the void one counted), and the right one is refused too.
    for wrong in ["0000 0000", "1111 1111", "2222 2222", "3333 3333"] {
        let wrong = if wrong == second.code() {
            "4444 4444"
        } else {
            wrong
        };
        app.post("/api/auth/password/reset", with(wrong), None)
            .await
            .assert(StatusCode::BAD_REQUEST);
    }
    app.post("/api/auth/password/reset", with(&second.code()), None)
        .await
        .assert(StatusCode::BAD_REQUEST);
    app.signin("dave", PASSWORD).await.assert(StatusCode::OK);
}

#[tokio::test]
async fn a_second_request_within_the_cooldown_sends_nothing_and_says_nothing() {
    let (app, sink) = app_with_mail!(|settings| {
        settings.mail.send_cooldown = Duration::from_secs(60);
    });
    let address = signed_up(&app, &sink, "erin").await;
    let first = forgot(&app, &address).await;
    sink.wait_for(&address, 2).await;
    let second = forgot(&app, &address).await;
    assert_eq!((first.status, first.body), (second.status, second.body));
    // Resending verification: the same answer for a known address (throttled) and an unknown one.
    let known = app
        .post(
            "/api/auth/verify-email/resend",
            json!({"email": address}),
            None,
        )
        .await;
    let unknown = app
        .post(
            "/api/auth/verify-email/resend",
            json!({"email": "nobody@example.com"}),
            None,
        )
        .await;
    known.assert(StatusCode::OK);
    assert_eq!((known.status, known.body), (unknown.status, unknown.body));
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(sink.messages_to(&address).len(), 2);
}

#[tokio::test]
async fn sign_up_mails_a_verification_that_the_link_or_the_code_completes() {
    let (app, sink) = app_with_mail!();
    let address = signed_up(&app, &sink, "frank").await;
    let mail = sink.wait_for(&address, 1).await;
    assert!(mail.subject.contains("Confirm your email address"));
    assert!(
        mail.link()
            .starts_with("http://tollgate.test/verify-email?token=")
    );
    let token = app.token_for("frank").await;
    assert_eq!(
        app.get("/api/user/me", Some(&token)).await.json()["emailVerified"],
        false
    );
    // The code needs the signed-in user; a wrong one is refused.
    app.post("/api/auth/verify-email", json!({"code": mail.code()}), None)
        .await
        .assert(StatusCode::UNAUTHORIZED);
    app.post(
        "/api/auth/verify-email",
        json!({"code": "0000 0001"}),
        Some(&token),
    )
    .await
    .assert(StatusCode::BAD_REQUEST);
    app.post(
        "/api/auth/verify-email",
        json!({"code": mail.code()}),
        Some(&token),
    )
    .await
    .assert(StatusCode::OK);
    assert_eq!(
        app.get("/api/user/me", Some(&token)).await.json()["emailVerified"],
        true
    );
    // Used: the link is spent too.
    app.post(
        "/api/auth/verify-email",
        json!({"token": mail.token()}),
        None,
    )
    .await
    .assert(StatusCode::BAD_REQUEST);
    app.post("/api/auth/verify-email", json!({}), None)
        .await
        .assert(StatusCode::BAD_REQUEST);

    // On demand, then by the link, signed out.
    let grace = signed_up(&app, &sink, "grace").await;
    let grace_token = app.token_for("grace").await;
    app.post(
        "/api/auth/verify-email/resend",
        json!({}),
        Some(&grace_token),
    )
    .await
    .assert(StatusCode::OK);
    let second = sink.wait_for(&grace, 2).await;
    app.post(
        "/api/auth/verify-email",
        json!({"token": second.token()}),
        None,
    )
    .await
    .assert(StatusCode::OK);
    let first = sink.wait_for(&grace, 1).await;
    assert_ne!(first.token(), second.token());
    assert!(
        audit_kinds(&app)
            .await
            .contains(&"email_verified".to_owned())
    );
}

#[tokio::test]
async fn required_verification_refuses_sign_in_until_the_address_is_proven() {
    let (app, sink) = app_with_mail!(|settings| {
        settings.email_verification = EmailVerification::Required;
    });
    let address = signed_up(&app, &sink, "heidi").await;
    let refused = app.signin("heidi", PASSWORD).await;
    refused.assert(StatusCode::FORBIDDEN);
    assert!(refused.message().contains("Verify your email address"));
    // The refusal mails a fresh link (an account may predate the policy); the older one is void.
    let first = sink.wait_for(&address, 1).await;
    sink.wait_for(&address, 2).await;
    app.post(
        "/api/auth/verify-email",
        json!({"token": first.token()}),
        None,
    )
    .await
    .assert(StatusCode::BAD_REQUEST);
    // A wrong password says nothing about verification.
    app.signin("heidi", "not the password at all")
        .await
        .assert(StatusCode::UNAUTHORIZED);
    let mail = sink.wait_for(&address, 2).await;
    app.post(
        "/api/auth/verify-email",
        json!({"token": mail.token()}),
        None,
    )
    .await
    .assert(StatusCode::OK);
    app.signin("heidi", PASSWORD).await.assert(StatusCode::OK);
}

#[tokio::test]
async fn an_email_change_takes_effect_when_the_new_address_confirms_and_can_be_reported() {
    let (app, sink) = app_with_mail!();
    let old = signed_up(&app, &sink, "ivan").await;
    let session = app.session("ivan").await;
    let change =
        |password: &str| json!({"newEmail": "ivan@example.org", "currentPassword": password});
    app.post(
        "/api/user/email",
        change("wrong password here"),
        Some(&session.access),
    )
    .await
    .assert(StatusCode::BAD_REQUEST);
    app.post("/api/user/email", change(PASSWORD), None)
        .await
        .assert(StatusCode::UNAUTHORIZED);
    app.post(
        "/api/user/email",
        json!({"newEmail": old, "currentPassword": PASSWORD}),
        Some(&session.access),
    )
    .await
    .assert(StatusCode::BAD_REQUEST);
    app.post("/api/user/email", change(PASSWORD), Some(&session.access))
        .await
        .assert(StatusCode::OK);
    let confirm = sink.wait_for("ivan@example.org", 1).await;
    assert!(
        confirm
            .link()
            .starts_with("http://tollgate.test/confirm-email?token=")
    );
    // Nothing changes before the new address confirms.
    let me = app.get("/api/user/me", Some(&session.access)).await.json();
    assert_eq!(me["email"], old);
    app.post(
        "/api/auth/email/confirm",
        json!({"code": confirm.code()}),
        Some(&session.access),
    )
    .await
    .assert(StatusCode::OK);
    let me = app.get("/api/user/me", Some(&session.access)).await.json();
    assert_eq!(
        (me["email"].as_str(), me["emailVerified"].as_bool()),
        (Some("ivan@example.org"), Some(true))
    );
    app.signin("ivan@example.org", PASSWORD)
        .await
        .assert(StatusCode::OK);

    // The old address is told, with a link to undo it.
    let notice = sink.wait_for(&old, 2).await;
    assert!(notice.text.contains("ivan@example.org"), "{}", notice.text);
    assert!(
        notice
            .link()
            .starts_with("http://tollgate.test/report-email-change?token=")
    );
    app.post(
        "/api/auth/email/report",
        json!({"token": notice.token()}),
        None,
    )
    .await
    .assert(StatusCode::OK);
    let admin = app.user_with_roles("admin", &[Role::Admin]).await;
    let users = app
        .get("/api/admin/users?q=ivan", Some(&admin))
        .await
        .json();
    assert_eq!(users["users"][0]["email"], old);
    // Every session ended and the password no longer works: the owner resets it by mail.
    app.refresh(&session.refresh, &[])
        .await
        .assert(StatusCode::UNAUTHORIZED);
    app.get("/api/test/user", Some(&session.access))
        .await
        .assert(StatusCode::UNAUTHORIZED);
    app.signin("ivan", PASSWORD)
        .await
        .assert(StatusCode::UNAUTHORIZED);
    app.post(
        "/api/auth/email/report",
        json!({"token": notice.token()}),
        None,
    )
    .await
    .assert(StatusCode::BAD_REQUEST);
    forgot(&app, &old).await.assert(StatusCode::OK);
    let reset = sink.wait_for(&old, 3).await;
    app.post(
        "/api/auth/password/reset",
        json!({"token": reset.token(), "newPassword": NEW_PASSWORD}),
        None,
    )
    .await
    .assert(StatusCode::OK);
    app.signin("ivan", NEW_PASSWORD)
        .await
        .assert(StatusCode::OK);
    let kinds = audit_kinds(&app).await;
    for kind in [
        "email_change_requested",
        "email_changed",
        "email_change_reported",
    ] {
        assert!(kinds.contains(&kind.to_owned()), "{kind} in {kinds:?}");
    }
}

#[tokio::test]
async fn an_address_in_use_gets_no_mail_and_the_answer_does_not_say_so() {
    let (app, sink) = app_with_mail!();
    signed_up(&app, &sink, "judy").await;
    let taken = signed_up(&app, &sink, "mallory").await;
    let token = app.token_for("judy").await;
    let answer = app
        .post(
            "/api/user/email",
            json!({"newEmail": taken, "currentPassword": PASSWORD}),
            Some(&token),
        )
        .await;
    answer.assert(StatusCode::OK);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        sink.messages_to(&taken).len(),
        1,
        "only mallory's own verification"
    );
}

/// The calls of a Vue 3 client written from the production guide (axios with
/// `withCredentials: true`, served from another origin), over real HTTP: a browser would carry
/// the refresh cookie, so the test does.
struct GuideClient {
    http: reqwest::Client,
    base: String,
    cookie: Option<String>,
}

impl GuideClient {
    const ORIGIN: &str = "http://localhost:8081";

    async fn post(
        &mut self,
        path: &str,
        body: serde_json::Value,
        bearer: Option<&str>,
    ) -> (u16, serde_json::Value) {
        let mut request = self
            .http
            .post(format!("{}{path}", self.base))
            .header("origin", Self::ORIGIN)
            .header("content-type", "application/json")
            .body(body.to_string());
        if let Some(cookie) = &self.cookie {
            request = request.header("cookie", cookie);
        }
        if let Some(token) = bearer {
            request = request.header("authorization", format!("Bearer {token}"));
        }
        let response = request.send().await.unwrap();
        assert_eq!(
            response
                .headers()
                .get("access-control-allow-origin")
                .and_then(|v| v.to_str().ok()),
            Some(Self::ORIGIN)
        );
        assert_eq!(
            response
                .headers()
                .get("access-control-allow-credentials")
                .and_then(|v| v.to_str().ok()),
            Some("true")
        );
        if let Some(refresh) = response
            .headers()
            .get_all("set-cookie")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find(|v| v.starts_with("tollgate_refresh="))
        {
            self.cookie = Some(refresh.split(';').next().unwrap().to_owned());
        }
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or_default())
    }

    async fn get(&self, path: &str, bearer: &str) -> u16 {
        self.http
            .get(format!("{}{path}", self.base))
            .header("origin", Self::ORIGIN)
            .header("authorization", format!("Bearer {bearer}"))
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    }
}

#[tokio::test]
async fn the_production_guide_client_signs_in_by_email_refreshes_and_logs_out() {
    let app = TestApp::new().await;
    app.user_with_roles("root", &[Role::User, Role::Admin])
        .await;
    app.user_with_roles("plain", &[Role::User, Role::Moderator])
        .await;
    let mut client = GuideClient {
        http: reqwest::Client::new(),
        base: app.serve().await,
        cookie: None,
    };
    // login({ email, password }) -> { accessToken, user }
    let (status, body) = client
        .post(
            "/api/auth/login",
            json!({"email": "root@example.com", "password": PASSWORD}),
            None,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["tokenType"], "Bearer");
    assert_eq!(body["expiresIn"], 900);
    assert_eq!(body["user"]["username"], "root");
    assert_eq!(body["user"]["email"], "root@example.com");
    assert_eq!(body["user"]["roles"], json!(["user", "admin"]));
    // The guard: `user.role === 'admin'`.
    assert_eq!(body["user"]["role"], "admin");
    assert!(client.cookie.is_some(), "the refresh cookie is set");
    let access = body["accessToken"].as_str().unwrap().to_owned();
    assert_eq!(client.get("/api/test/admin", &access).await, 200);

    // refresh() with credentials: the cookie, rotated.
    let before = client.cookie.clone();
    let (status, body) = client.post("/api/auth/refresh", json!({}), None).await;
    assert_eq!(status, 200, "{body}");
    assert_ne!(client.cookie, before);
    let access = body["accessToken"].as_str().unwrap().to_owned();
    assert_eq!(client.get("/api/test/user", &access).await, 200);

    // logout() with the Bearer token ends the session: the token and the cookie stop working.
    let (status, _) = client
        .post("/api/auth/logout", json!({}), Some(&access))
        .await;
    assert_eq!(status, 200);
    assert_eq!(client.get("/api/test/user", &access).await, 401);
    let (status, _) = client.post("/api/auth/refresh", json!({}), None).await;
    assert_eq!(status, 401);

    // By username too; a moderator's highest role; what the form can get wrong.
    let (status, body) = client
        .post(
            "/api/auth/login",
            json!({"username": "plain", "password": PASSWORD}),
            None,
        )
        .await;
    assert_eq!(
        (status, body["user"]["role"].as_str()),
        (200, Some("moderator"))
    );
    let (status, _) = client
        .post("/api/auth/login", json!({"password": PASSWORD}), None)
        .await;
    assert_eq!(status, 400);
    let (status, body) = client
        .post(
            "/api/auth/login",
            json!({"email": "root@example.com", "password": "wrong password!"}),
            None,
        )
        .await;
    assert_eq!(
        (status, body["message"].as_str()),
        (401, Some("Invalid username or password."))
    );
    // The tutorial's sign-in takes an address in its username field, in any case.
    app.signin("ROOT@example.com", PASSWORD)
        .await
        .assert(StatusCode::OK);
}

#[tokio::test]
async fn without_a_mail_server_the_mail_features_say_so() {
    let app = TestApp::new().await;
    app.signup("kim").await.assert(StatusCode::OK);
    let answer = forgot(&app, "kim@example.com").await;
    answer.assert(StatusCode::NOT_IMPLEMENTED);
    assert!(answer.message().contains("no mail server"));
    let unknown = forgot(&app, "nobody@example.com").await;
    assert_eq!((answer.status, answer.body), (unknown.status, unknown.body));
    let token = app.token_for("kim").await;
    app.post(
        "/api/user/email",
        json!({"newEmail": "kim@example.org", "currentPassword": PASSWORD}),
        Some(&token),
    )
    .await
    .assert(StatusCode::NOT_IMPLEMENTED);
    forgot(&app, "not an address")
        .await
        .assert(StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn a_mail_the_server_refuses_or_cannot_reach_is_audited_and_the_answer_is_unchanged() {
    // Refused for good (550): given up at once.
    let (app, sink) = app_with_mail!();
    app.post(
        "/api/auth/signup",
        json!({"username": "lena", "email": "lena@refuse.example", "password": PASSWORD}),
        None,
    )
    .await
    .assert(StatusCode::OK);
    forgot(&app, "lena@refuse.example")
        .await
        .assert(StatusCode::OK);
    wait_for_audit(&app, "mail_failed", 2).await;
    drop(sink);

    // Nobody listening: retried, then given up after the attempt limit.
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let app = TestApp::with_settings(|settings| {
        settings.mail.smtp = Some(
            tollgate::mail::SmtpSettings::parse(
                &format!("smtp://127.0.0.1:{closed}"),
                None,
                "Tollgate <auth@tollgate.test>",
            )
            .unwrap(),
        );
        settings.mail.retry_base = Duration::from_millis(50);
        settings.mail.max_attempts = 3;
    })
    .await;
    app.signup("mike").await.assert(StatusCode::OK);
    forgot(&app, "mike@example.com")
        .await
        .assert(StatusCode::OK);
    let (events, _) = wait_for_audit(&app, "mail_failed", 2).await;
    assert!(
        events
            .iter()
            .any(|e| e.detail.as_deref().unwrap_or("").contains("(3 attempts)")),
        "{events:?}"
    );
}

async fn wait_for_audit(
    app: &TestApp,
    kind: &str,
    count: usize,
) -> (Vec<tollgate::storage::AuditRecord>, i64) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (events, total) = app
            .state
            .storage
            .audit_events(None, tollgate::audit::AuditKind::parse(kind), 100, 0)
            .await
            .unwrap();
        if events.len() >= count {
            return (events, total);
        }
        assert!(Instant::now() < deadline, "{kind}: {events:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn admins_create_accounts_that_choose_their_own_password_and_care_for_them() {
    let (app, sink) = app_with_mail!();
    let admin = app.user_with_roles("boss", &[Role::Admin]).await;
    let created = app
        .post(
            "/api/admin/users",
            json!({"username": "newbie", "email": "newbie@example.com", "roles": ["moderator"]}),
            Some(&admin),
        )
        .await;
    created.assert(StatusCode::CREATED);
    let id = created.json()["id"].as_i64().unwrap();
    assert_eq!(created.json()["roles"], json!(["ROLE_MODERATOR"]));
    assert_eq!(created.json()["emailVerified"], false);
    // No password yet: nothing signs in.
    app.signin("newbie", "")
        .await
        .assert(StatusCode::UNAUTHORIZED);
    let invite = sink.wait_for("newbie@example.com", 1).await;
    assert!(
        invite.subject.contains("account is ready"),
        "{}",
        invite.subject
    );
    app.post(
        "/api/auth/password/reset",
        json!({"token": invite.token(), "newPassword": NEW_PASSWORD}),
        None,
    )
    .await
    .assert(StatusCode::OK);
    let session = app.signin("newbie", NEW_PASSWORD).await;
    session.assert(StatusCode::OK);

    // The list shows verification and the last sign-in; the sessions view lists them.
    let listed = app
        .get("/api/admin/users?q=newbie", Some(&admin))
        .await
        .json();
    assert_eq!(listed["users"][0]["emailVerified"], true);
    assert!(listed["users"][0]["lastSigninAt"].as_str().is_some());
    let sessions = app
        .get(&format!("/api/admin/users/{id}/sessions"), Some(&admin))
        .await;
    sessions.assert(StatusCode::OK);
    assert_eq!(sessions.json().as_array().unwrap().len(), 1);

    // A password set by an admin ends the user's sessions.
    let access = session.json()["accessToken"].as_str().unwrap().to_owned();
    app.request(
        Method::PUT,
        &format!("/api/admin/users/{id}/password"),
        json!({"password": "set by the admin"}),
        Some(&admin),
    )
    .await
    .assert(StatusCode::OK);
    app.get("/api/test/user", Some(&access))
        .await
        .assert(StatusCode::UNAUTHORIZED);
    app.signin("newbie", "set by the admin")
        .await
        .assert(StatusCode::OK);
    app.request(
        Method::PUT,
        &format!("/api/admin/users/{id}/password"),
        json!({"password": "short"}),
        Some(&admin),
    )
    .await
    .assert(StatusCode::BAD_REQUEST);

    // A reset mail on request of the admin.
    app.post(
        &format!("/api/admin/users/{id}/password-reset"),
        json!({}),
        Some(&admin),
    )
    .await
    .assert(StatusCode::OK);
    let reset = sink.wait_for("newbie@example.com", 2).await;
    assert!(reset.subject.contains("Reset"), "{}", reset.subject);

    // Marking verified; unknown users are 404; non-admins are refused.
    let other = app
        .post(
            "/api/admin/users",
            json!({"username": "other", "email": "other@example.com", "password": PASSWORD}),
            Some(&admin),
        )
        .await;
    other.assert(StatusCode::CREATED);
    let other_id = other.json()["id"].as_i64().unwrap();
    app.post(
        &format!("/api/admin/users/{other_id}/verify-email"),
        json!({}),
        Some(&admin),
    )
    .await
    .assert(StatusCode::OK);
    let user = app
        .get(&format!("/api/admin/users/{other_id}"), Some(&admin))
        .await
        .json();
    assert_eq!(user["emailVerified"], true);
    app.post(
        "/api/admin/users/99999/verify-email",
        json!({}),
        Some(&admin),
    )
    .await
    .assert(StatusCode::NOT_FOUND);
    let plain = app.token_for("other").await;
    app.post(
        &format!("/api/admin/users/{id}/password-reset"),
        json!({}),
        Some(&plain),
    )
    .await
    .assert(StatusCode::FORBIDDEN);
    app.post(
        "/api/admin/users",
        json!({"username": "newbie", "email": "x@example.com", "password": PASSWORD}),
        Some(&admin),
    )
    .await
    .assert(StatusCode::BAD_REQUEST);
    let kinds = audit_kinds(&app).await;
    assert!(kinds.contains(&"password_set_by_admin".to_owned()));
}

#[tokio::test]
async fn a_full_mail_queue_refuses_a_message_with_an_audit_event_and_the_same_answer() {
    // A server that keeps saying "later": four messages in flight, one waiting, the rest refused.
    let (app, sink) = app_with_mail!(|settings| {
        settings.mail.queue_capacity = 1;
        settings.mail.retry_base = Duration::from_secs(30);
    });
    for n in 0..8 {
        app.post(
            "/api/auth/signup",
            json!({"username": format!("slow{n}"), "email": format!("slow{n}@later.example"), "password": PASSWORD}),
            None,
        )
        .await
        .assert(StatusCode::OK);
    }
    let (events, _) = wait_for_audit(&app, "mail_failed", 1).await;
    assert!(
        events
            .iter()
            .all(|e| e.detail.as_deref().unwrap_or("").contains("queue is full")),
        "{events:?}"
    );
    drop(sink);
}

#[test]
fn the_cli_hands_out_reset_links_sets_passwords_and_mails_invitations() {
    use crate::binary::{run, stderr, stdout, tollgate};
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let db = runtime.block_on(crate::support::TestDatabase::fresh());
    let sink = match runtime.block_on(MailSink::start()) {
        Some(sink) => sink,
        None => return,
    };
    let mail_args = [
        "--smtp-url".to_owned(),
        sink.smtp_url(),
        "--mail-from".to_owned(),
        "Tollgate <auth@tollgate.test>".to_owned(),
        "--public-url".to_owned(),
        "https://auth.example.com".to_owned(),
    ];

    // An invitation without mail configured: the link is printed to pass on.
    let mut add = tollgate(&db);
    add.args([
        "user",
        "add",
        "nomail",
        "--email",
        "nomail@example.com",
        "--invite",
    ]);
    let output = run(add);
    assert!(output.status.success(), "{}", stderr(&output));
    let link = stdout(&output)
        .lines()
        .find(|l| l.contains("/reset-password?token="))
        .unwrap_or_else(|| panic!("{}", stdout(&output)))
        .to_owned();
    assert!(
        link.starts_with("http://127.0.0.1:8080/reset-password?token="),
        "{link}"
    );

    // With mail: the invitation goes out before the command returns.
    let mut add = tollgate(&db);
    add.args(mail_args.iter()).args([
        "user",
        "add",
        "invited",
        "--email",
        "invited@example.com",
        "--invite",
    ]);
    let output = run(add);
    assert!(output.status.success(), "{}", stderr(&output));
    let invite = sink.messages_to("invited@example.com");
    assert_eq!(invite.len(), 1, "{}", stdout(&output));
    assert!(
        invite[0]
            .link()
            .starts_with("https://auth.example.com/reset-password?token=")
    );

    // A password from stdin, never argv; then a reset mail and a verification mark.
    let mut set = tollgate(&db);
    set.args(["user", "set-password", "invited"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut child = set.spawn().unwrap();
    {
        use std::io::Write;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(b"set from the cli\n")
            .unwrap();
    }
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    // Another invitation so soon is refused, with the reason.
    let mut again = tollgate(&db);
    again
        .args(mail_args.iter())
        .args(["user", "send-reset", "invited"]);
    let output = run(again);
    assert!(!output.status.success());
    assert!(
        stderr(&output).contains("less than a minute ago"),
        "{}",
        stderr(&output)
    );
    // A user added with a password is mailed a verification; a reset mail follows on demand.
    let mut add = tollgate(&db);
    add.env("TOLLGATE_PASSWORD", PASSWORD)
        .args(mail_args.iter())
        .args(["user", "add", "plain", "--email", "plain@example.com"]);
    assert!(run(add).status.success());
    let mut reset = tollgate(&db);
    reset
        .args(mail_args.iter())
        .args(["user", "send-reset", "plain"]);
    let output = run(reset);
    assert!(output.status.success(), "{}", stderr(&output));
    let mail = sink.messages_to("plain@example.com");
    assert_eq!(mail.len(), 2);
    assert!(mail[0].subject.contains("Confirm your email"));
    assert!(mail[1].subject.contains("Reset"));
    let mut verify = tollgate(&db);
    verify.args(["user", "verify-email", "invited"]);
    assert!(run(verify).status.success());
    let mut link = tollgate(&db);
    link.args(["user", "reset-link", "invited"]);
    let output = run(link);
    assert!(stdout(&output).contains("/reset-password?token="));
    let mut list = tollgate(&db);
    list.args(["user", "list"]);
    let listed = stdout(&run(list));
    let row = listed
        .lines()
        .find(|l| l.contains("invited"))
        .unwrap()
        .to_owned();
    assert!(row.contains("yes") && row.contains("never"), "{row}");

    // The password set from the CLI signs in (through the library, on the same database).
    runtime.block_on(async {
        let app = TestApp::on(crate::support::TestDatabase::existing(&db.url), |_| {}).await;
        app.signin("invited", "set from the cli")
            .await
            .assert(StatusCode::OK);
    });
}

#[tokio::test]
async fn a_reset_on_one_node_ends_the_sessions_on_the_other() {
    let db = crate::support::TestDatabase::fresh().await;
    let url = db.url.clone();
    let Some(sink) = MailSink::start().await else {
        return;
    };
    let smtp = sink.smtp_url();
    let with_mail = move |settings: &mut tollgate::config::Settings| {
        settings.mail.smtp = Some(
            tollgate::mail::SmtpSettings::parse(&smtp, None, "Tollgate <auth@tollgate.test>")
                .unwrap(),
        );
        settings.mail.send_cooldown = Duration::ZERO;
    };
    let node_a = TestApp::on(db, with_mail.clone()).await;
    let node_b = TestApp::on(crate::support::TestDatabase::existing(&url), with_mail).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    node_a.signup("olga").await.assert(StatusCode::OK);
    let session = node_b.session("olga").await;
    forgot(&node_b, "olga@example.com")
        .await
        .assert(StatusCode::OK);
    let mail = sink.wait_for("olga@example.com", 2).await;
    node_a
        .post(
            "/api/auth/password/reset",
            json!({"token": mail.token(), "newPassword": NEW_PASSWORD}),
            None,
        )
        .await
        .assert(StatusCode::OK);
    // Node B refuses the old access token within a second (NOTIFY on PostgreSQL, the
    // revocation poll on a shared SQLite file).
    let started = Instant::now();
    while node_b
        .get("/api/test/user", Some(&session.access))
        .await
        .status
        != StatusCode::UNAUTHORIZED
    {
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "still accepted on node B"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    node_b
        .refresh(&session.refresh, &[])
        .await
        .assert(StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn parallel_requests_cannot_beat_the_cooldown() {
    let (app, sink) = app_with_mail!(|settings| {
        settings.mail.send_cooldown = Duration::from_secs(60);
    });
    let address = signed_up(&app, &sink, "paula").await;
    let requests = (0..6).map(|_| forgot(&app, &address));
    for answer in futures_util::future::join_all(requests).await {
        answer.assert(StatusCode::OK);
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        sink.messages_to(&address).len(),
        2,
        "one verification, one reset"
    );
}

#[tokio::test]
async fn a_reset_link_dies_when_the_password_changes_otherwise() {
    let (app, sink) = app_with_mail!();
    let address = signed_up(&app, &sink, "quinn").await;
    forgot(&app, &address).await.assert(StatusCode::OK);
    let mail = sink.wait_for(&address, 2).await;
    let token = app.token_for("quinn").await;
    app.request(
        Method::PUT,
        "/api/user/password",
        json!({"currentPassword": PASSWORD, "newPassword": NEW_PASSWORD}),
        Some(&token),
    )
    .await
    .assert(StatusCode::OK);
    app.post(
        "/api/auth/password/reset",
        json!({"token": mail.token(), "newPassword": "taken over now"}),
        None,
    )
    .await
    .assert(StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn the_old_address_keeps_its_undo_until_it_expires() {
    let (app, sink) = app_with_mail!();
    let old = signed_up(&app, &sink, "rita").await;
    let token = app.token_for("rita").await;
    app.post(
        "/api/user/email",
        json!({"newEmail": "rita@example.org", "currentPassword": PASSWORD}),
        Some(&token),
    )
    .await
    .assert(StatusCode::OK);
    let confirm = sink.wait_for("rita@example.org", 1).await;
    app.post(
        "/api/auth/email/confirm",
        json!({"token": confirm.token()}),
        None,
    )
    .await
    .assert(StatusCode::OK);
    // A second change would take the undo link from the old address: refused for now.
    let again = app
        .post(
            "/api/user/email",
            json!({"newEmail": "rita@example.net", "currentPassword": PASSWORD}),
            Some(&token),
        )
        .await;
    again.assert(StatusCode::CONFLICT);
    // Nobody can take the old address meanwhile, so the undo cannot be blocked.
    let squatter = app
        .post(
            "/api/auth/signup",
            json!({"username": "squatter", "email": old, "password": PASSWORD}),
            None,
        )
        .await;
    squatter.assert(StatusCode::BAD_REQUEST);
    assert_eq!(squatter.message(), "Failed! Email is already in use!");
    let notice = sink.wait_for(&old, 2).await;
    app.post(
        "/api/auth/email/report",
        json!({"token": notice.token()}),
        None,
    )
    .await
    .assert(StatusCode::OK);
}

#[tokio::test]
async fn under_required_verification_the_code_works_with_the_address() {
    let (app, sink) = app_with_mail!(|settings| {
        settings.email_verification = EmailVerification::Required;
    });
    let address = signed_up(&app, &sink, "sam").await;
    let mail = sink.wait_for(&address, 1).await;
    app.post(
        "/api/auth/verify-email",
        json!({"email": "nobody@example.com", "code": mail.code()}),
        None,
    )
    .await
    .assert(StatusCode::BAD_REQUEST);
    app.post(
        "/api/auth/verify-email",
        json!({"email": address, "code": mail.code()}),
        None,
    )
    .await
    .assert(StatusCode::OK);
    app.signin("sam", PASSWORD).await.assert(StatusCode::OK);
}

#[tokio::test]
async fn one_address_gets_a_bounded_number_of_messages_an_hour() {
    let (app, sink) = app_with_mail!(|settings| {
        settings.mail.per_recipient_per_hour = 2;
    });
    let address = signed_up(&app, &sink, "tina").await;
    forgot(&app, &address).await.assert(StatusCode::OK);
    sink.wait_for(&address, 2).await;
    forgot(&app, &address).await.assert(StatusCode::OK);
    let (events, _) = wait_for_audit(&app, "mail_failed", 1).await;
    assert!(
        events[0]
            .detail
            .as_deref()
            .unwrap_or("")
            .contains("too many messages")
    );
    assert_eq!(sink.messages_to(&address).len(), 2);
}

#[tokio::test]
async fn verification_turned_off_is_said_plainly() {
    let (app, _sink) = app_with_mail!(|settings| {
        settings.email_verification = EmailVerification::Off;
    });
    app.signup("uma").await.assert(StatusCode::OK);
    let answer = app
        .post(
            "/api/auth/verify-email/resend",
            json!({"email": "uma@example.com"}),
            None,
        )
        .await;
    answer.assert(StatusCode::FORBIDDEN);
    assert!(answer.message().contains("turned off"));
}
