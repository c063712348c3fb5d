//! Token introspection (RFC 7662) for service clients, their admin API, and the CLI commands of
//! issue 8 (`tollgate client …`, `tollgate authz check`) on the real binary.

use std::{process::Stdio, time::Duration};

use api::Role;
use axum::{
    body::Body,
    http::{Request, StatusCode},
};
use base64::{Engine, engine::general_purpose::STANDARD};
use serde_json::json;
use tollgate::domain::clients::{self, ClientName};

use crate::{
    binary::{Server, run, stderr, stdout, tollgate},
    support::{PASSWORD, TestApp, TestDatabase, TestResponse},
};

async fn client(app: &TestApp, name: &str) -> String {
    clients::add(&app.state, &ClientName::parse(name).unwrap(), None)
        .await
        .unwrap()
}

async fn introspect(app: &TestApp, auth: Option<(&str, &str)>, form: &str) -> TestResponse {
    let mut request = Request::post("/oauth/introspect")
        .header("content-type", "application/x-www-form-urlencoded");
    if let Some((name, secret)) = auth {
        request = request.header(
            "authorization",
            format!("Basic {}", STANDARD.encode(format!("{name}:{secret}"))),
        );
    }
    app.send(request.body(Body::from(form.to_owned())).unwrap())
        .await
}

fn inactive(response: &TestResponse) {
    response.assert(StatusCode::OK);
    assert_eq!(response.json(), json!({"active": false}));
}

#[tokio::test]
async fn a_live_access_token_is_described_and_anything_else_is_inactive() {
    let app = TestApp::new().await;
    let secret = client(&app, "orders-api").await;
    let auth = Some(("orders-api", secret.as_str()));
    let token = app.user_with_roles("ada", &[Role::User, Role::Admin]).await;

    let response = introspect(
        &app,
        auth,
        &format!("token={token}&token_type_hint=access_token"),
    )
    .await;
    response.assert(StatusCode::OK);
    assert_eq!(response.header("cache-control"), Some("no-store"));
    let body = response.json();
    assert_eq!(body["active"], true);
    assert_eq!(body["username"], "ada");
    assert_eq!(body["roles"], json!(["user", "admin"]));
    assert_eq!(body["token_type"], "access_token");
    assert_eq!(body["iss"], "tollgate");
    assert_eq!(body["aud"], "tollgate");
    for claim in ["sub", "jti"] {
        assert!(
            body[claim].as_str().is_some_and(|v| !v.is_empty()),
            "{claim}"
        );
    }
    for claim in ["exp", "iat"] {
        assert!(body[claim].as_i64().is_some(), "{claim}");
    }

    // Garbage, a refresh token, an empty token: inactive, nothing more.
    inactive(&introspect(&app, auth, "token=garbage").await);
    inactive(&introspect(&app, auth, "token=").await);
    let session = app.session("ada").await;
    inactive(&introspect(&app, auth, &format!("token={}", session.refresh)).await);

    // Revoked: after logout, the session's token is inactive at once.
    inactive_after_logout(&app, auth, &session.access).await;
}

async fn inactive_after_logout(app: &TestApp, auth: Option<(&str, &str)>, access: &str) {
    let response = introspect(app, auth, &format!("token={access}")).await;
    assert_eq!(response.json()["active"], true);
    app.post("/api/auth/logout", json!({}), Some(access))
        .await
        .assert(StatusCode::OK);
    inactive(&introspect(app, auth, &format!("token={access}")).await);
}

#[tokio::test]
async fn an_expired_token_is_inactive() {
    let app = TestApp::with_settings(|s| s.access_token_ttl = Duration::from_secs(1)).await;
    let secret = client(&app, "svc").await;
    let token = app.user_with_roles("uma", &[Role::User]).await;
    tokio::time::sleep(Duration::from_millis(2100)).await;
    inactive(&introspect(&app, Some(("svc", &secret)), &format!("token={token}")).await);
}

#[tokio::test]
async fn only_registered_clients_may_ask() {
    let app = TestApp::new().await;
    let secret = client(&app, "svc").await;
    let token = app.user_with_roles("uma", &[Role::User]).await;
    let form = format!("token={token}");
    for auth in [
        None,
        Some(("svc", "wrong-secret")),
        Some(("other", secret.as_str())),
        Some(("svc", "")),
    ] {
        let response = introspect(&app, auth, &form).await;
        response.assert(StatusCode::UNAUTHORIZED);
        assert_eq!(response.json()["error"], "invalid_client");
        assert_eq!(
            response.header("www-authenticate"),
            Some("Basic realm=\"tollgate\"")
        );
    }
    // Not Basic, or not base64.
    for header in ["Bearer abc", "Basic !!!", "Basic"] {
        let response = app
            .send(
                Request::post("/oauth/introspect")
                    .header("content-type", "application/x-www-form-urlencoded")
                    .header("authorization", header)
                    .body(Body::from(form.clone()))
                    .unwrap(),
            )
            .await;
        response.assert(StatusCode::UNAUTHORIZED);
    }
    // A request without a token is malformed.
    let response = introspect(&app, Some(("svc", &secret)), "token_type_hint=x").await;
    response.assert(StatusCode::BAD_REQUEST);
    // A client name can be registered once.
    let taken = clients::add(&app.state, &ClientName::parse("svc").unwrap(), None).await;
    assert!(taken.is_err());
}

#[tokio::test]
async fn admins_list_and_remove_clients_and_removal_takes_effect_at_once() {
    let app = TestApp::new().await;
    let secret = client(&app, "svc").await;
    let admin = app.user_with_roles("ada", &[Role::Admin]).await;
    let user = app.user_with_roles("uma", &[Role::User]).await;
    introspect(&app, Some(("svc", &secret)), &format!("token={user}"))
        .await
        .assert(StatusCode::OK);

    app.get("/api/admin/clients", Some(&user))
        .await
        .assert(StatusCode::FORBIDDEN);
    let list = app.get("/api/admin/clients", Some(&admin)).await;
    list.assert(StatusCode::OK);
    let clients = list.json()["clients"].as_array().unwrap().clone();
    assert_eq!(clients.len(), 1);
    assert_eq!(clients[0]["name"], "svc");
    assert!(clients[0]["lastUsedAt"].as_i64().is_some());
    assert!(list.text().find(&secret).is_none());

    app.delete("/api/admin/clients/svc", Some(&admin))
        .await
        .assert(StatusCode::OK);
    app.delete("/api/admin/clients/svc", Some(&admin))
        .await
        .assert(StatusCode::NOT_FOUND);
    introspect(&app, Some(("svc", &secret)), &format!("token={user}"))
        .await
        .assert(StatusCode::UNAUTHORIZED);
    let audit = app
        .get("/api/admin/audit?kind=client_removed", Some(&admin))
        .await;
    audit.assert(StatusCode::OK);
    assert!(audit.text().contains("svc"), "{}", audit.text());
}

#[tokio::test]
async fn the_cli_adds_lists_and_removes_clients_and_checks_rules() {
    let db = TestDatabase::fresh().await;
    let mut add = tollgate(&db);
    add.args(["client", "add", "orders-api"]);
    let output = run(add);
    assert!(output.status.success(), "{}", stderr(&output));
    let secret = stdout(&output).lines().last().unwrap().trim().to_owned();
    assert!(secret.len() >= 40, "{}", stdout(&output));

    let mut bad = tollgate(&db);
    bad.args(["client", "add", "Bad Name"]);
    let output = run(bad);
    assert!(!output.status.success());
    assert!(
        stderr(&output).contains("client name"),
        "{}",
        stderr(&output)
    );

    let mut user = tollgate(&db);
    user.args([
        "user",
        "add",
        "mona",
        "--email",
        "mona@example.com",
        "--role",
        "moderator",
    ])
    .env("TOLLGATE_PASSWORD", PASSWORD)
    .stdin(Stdio::null());
    let output = run(user);
    assert!(output.status.success(), "{}", stderr(&output));

    // `authz check` with the tutorial's rules.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("tollgate.toml");
    std::fs::write(&file, crate::authz::TUTORIAL_RULES).unwrap();
    let check = |args: &[&str]| {
        let mut command = tollgate(&db);
        command
            .args(["authz", "check", "--config"])
            .arg(&file)
            .args(args);
        let output = run(command);
        assert!(output.status.success(), "{}", stderr(&output));
        stdout(&output)
    };
    let text = check(&[
        "--url",
        "https://app.example.com/api/test/mod",
        "--user",
        "mona",
    ]);
    assert!(
        text.contains("rule 3") && text.contains("mona") && text.contains("allowed"),
        "{text}"
    );
    let text = check(&["--url", "/api/test/admin", "--user", "mona"]);
    assert!(
        text.contains("rule 4") && text.contains("forbidden"),
        "{text}"
    );
    let text = check(&["--url", "/api/test/user"]);
    assert!(
        text.contains("anonymous") && text.contains("sign-in required"),
        "{text}"
    );
    let text = check(&["--url", "/elsewhere", "--method", "post"]);
    assert!(text.contains("no rule") && text.contains("POST"), "{text}");

    // The secret works against the running server.
    let server = Server::start(&db).await;
    let http = reqwest::Client::new();
    let signin: serde_json::Value = http
        .post(format!("{}/api/auth/signin", server.base))
        .json(&json!({"username": "mona", "password": PASSWORD}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = signin["accessToken"].as_str().unwrap();
    let answer: serde_json::Value = http
        .post(format!("{}/oauth/introspect", server.base))
        .basic_auth("orders-api", Some(&secret))
        .form(&[("token", token)])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(answer["active"], true);
    assert_eq!(answer["username"], "mona");
    server.stop();

    let mut list = tollgate(&db);
    list.args(["client", "list"]);
    let output = run(list);
    assert!(stdout(&output).contains("orders-api") && stdout(&output).contains("last used"));
    let mut remove = tollgate(&db);
    remove.args(["client", "remove", "orders-api"]);
    assert!(run(remove).status.success());
    let mut list = tollgate(&db);
    list.args(["client", "list"]);
    assert!(!stdout(&run(list)).contains("orders-api"));
}
