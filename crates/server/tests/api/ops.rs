//! What operators run and watch: readiness, JSON logs, backups.

use std::{process::Stdio, time::Duration};

use axum::http::StatusCode;
use tokio::io::{AsyncBufReadExt, BufReader};

use crate::{
    binary::{run, stderr, stdout, tollgate},
    support::{PASSWORD, TestApp, TestDatabase},
};

#[tokio::test]
async fn readiness_checks_the_database_and_the_key_and_names_what_fails() {
    let app = TestApp::new().await;
    let ready = app.get("/readyz", None).await;
    ready.assert(StatusCode::OK);
    assert_eq!(ready.header("cache-control"), Some("no-store"));
    let body = ready.json();
    assert_eq!(body["status"], "ready");
    assert_eq!(body["checks"]["database"], "ok");
    assert_eq!(body["checks"]["keys"], "ok");

    // The database gone: 503 naming it; liveness is unaffected.
    app.state.storage.close().await;
    let down = app.get("/readyz", None).await;
    down.assert(StatusCode::SERVICE_UNAVAILABLE);
    let body = down.json();
    assert_eq!(body["status"], "not ready");
    assert!(
        body["message"].as_str().unwrap().starts_with("database:"),
        "{body}"
    );
    assert_eq!(body["checks"]["keys"], "not checked");
    app.get("/healthz", None).await.assert(StatusCode::OK);
}

#[tokio::test]
async fn a_node_whose_signing_key_left_the_database_is_not_ready() {
    let app = TestApp::new().await;
    let url = app.db.url.clone();
    if url.starts_with("sqlite:") {
        let pool = sqlx::SqlitePool::connect(&url).await.unwrap();
        sqlx::query("DELETE FROM signing_keys")
            .execute(&pool)
            .await
            .unwrap();
        pool.close().await;
    } else {
        let pool = sqlx::PgPool::connect(&url).await.unwrap();
        sqlx::query("DELETE FROM signing_keys")
            .execute(&pool)
            .await
            .unwrap();
        pool.close().await;
    }
    let answer = app.get("/readyz", None).await;
    answer.assert(StatusCode::SERVICE_UNAVAILABLE);
    assert!(
        answer.json()["message"]
            .as_str()
            .unwrap()
            .starts_with("keys:")
    );
}

#[tokio::test]
async fn json_logs_are_one_object_per_line() {
    let db = TestDatabase::fresh().await;
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut command = tokio::process::Command::from(tollgate(&db));
    command
        .env("RUST_LOG", "info")
        .args([
            "--log-format",
            "json",
            "--bind",
            &format!("127.0.0.1:{port}"),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let mut child = command.spawn().unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let serving = tokio::time::timeout(Duration::from_secs(30), async {
        while let Some(line) = lines.next_line().await.unwrap() {
            let record: serde_json::Value =
                serde_json::from_str(&line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
            assert!(
                record["timestamp"].is_string() && record["level"].is_string(),
                "{line}"
            );
            if record["fields"]["message"] == "tollgate is serving" {
                return record;
            }
        }
        panic!("the server stopped before serving");
    })
    .await
    .expect("no `tollgate is serving` line");
    assert_eq!(serving["level"], "INFO");
    assert!(
        serving["fields"]["address"]
            .as_str()
            .unwrap()
            .contains(&port.to_string())
    );
    child.kill().await.unwrap();
}

#[test]
fn a_backup_is_a_working_copy_of_the_sqlite_database() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let db = runtime.block_on(TestDatabase::fresh());
    let mut add = tollgate(&db);
    add.env("TOLLGATE_PASSWORD", PASSWORD).args([
        "user",
        "add",
        "alice",
        "--email",
        "alice@example.com",
    ]);
    assert!(run(add).status.success());
    let dir = tempfile::tempdir().unwrap();
    let copy = dir.path().join("copy.db");
    let mut backup = tollgate(&db);
    backup.arg("backup").arg(&copy);
    let output = run(backup);
    if db.url.starts_with("postgres") {
        assert!(!output.status.success());
        assert!(stderr(&output).contains("pg_dump"), "{}", stderr(&output));
        return;
    }
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(stdout(&output).contains("backup written to"));
    // Never over an existing file.
    let mut again = tollgate(&db);
    again.arg("backup").arg(&copy);
    let output = run(again);
    assert!(!output.status.success());
    assert!(stderr(&output).contains("exists already"));
    // The copy serves: alice signs in on it.
    runtime.block_on(async {
        let restored = TestDatabase::existing(&format!("sqlite://{}", copy.display()));
        let app = TestApp::on(restored, |_| {}).await;
        app.signin("alice", PASSWORD).await.assert(StatusCode::OK);
    });
}

#[tokio::test]
async fn old_audit_events_are_purged_in_bounded_batches() {
    // No retention: the app's own housekeeping leaves the events to this test.
    let app = TestApp::with_settings(|settings| settings.audit_retention = None).await;
    let storage = &app.state.storage;
    let old = tollgate::clock::unix_now() - 400 * 86_400;
    let event = tollgate::audit::AuditEvent::new(tollgate::audit::AuditKind::Logout, None);
    for _ in 0..2_500 {
        storage.record_audit(&event, old).await.unwrap();
    }
    storage
        .record_audit(&event, tollgate::clock::unix_now())
        .await
        .unwrap();
    let purged = storage
        .purge_audit(tollgate::clock::unix_now() - 90 * 86_400)
        .await
        .unwrap();
    assert_eq!(purged, 2_500);
    let (_, left) = storage.audit_events(None, None, 10, 0).await.unwrap();
    assert_eq!(left, 1);
}

/// The value of the sample `name{labels}` in an exposition, if present.
fn sample(text: &str, name_and_labels: &str) -> Option<f64> {
    text.lines()
        .find(|line| line.starts_with(name_and_labels))
        .and_then(|line| line.rsplit(' ').next())
        .and_then(|value| value.parse().ok())
}

#[tokio::test]
async fn metrics_count_requests_sign_ins_refreshes_and_sample_the_queues() {
    let app = TestApp::with_settings(|settings| settings.refresh_grace = Duration::ZERO).await;
    app.user_with_roles("mia", &[api::Role::User]).await;
    app.signin("mia", "wrong password").await;
    let session = app.session("mia").await;
    app.refreshed(&session.refresh).await;
    // Twice: the second request is counted through the handles the first registered.
    for _ in 0..2 {
        app.get("/api/test/user", Some(&session.access))
            .await
            .assert(StatusCode::OK);
    }

    let scraped = app.get("/metrics", None).await;
    scraped.assert(StatusCode::OK);
    assert!(
        scraped
            .header("content-type")
            .is_some_and(|t| t.starts_with("text/plain; version=0.0.4"))
    );
    let text = scraped.text();
    assert!(
        text.contains("# HELP tollgate_http_requests_total"),
        "{text}"
    );
    assert_eq!(
        sample(
            &text,
            r#"tollgate_http_requests_total{method="GET",route="/api/test/user",status="200"}"#
        ),
        Some(2.0),
        "{text}"
    );
    assert_eq!(
        sample(
            &text,
            r#"tollgate_http_requests_total{method="POST",route="/api/auth/signin",status="401"}"#
        ),
        Some(1.0)
    );
    assert!(text.contains(
        r#"tollgate_http_request_duration_seconds_bucket{method="GET",route="/api/test/user",le="#
    ));
    assert_eq!(
        sample(
            &text,
            r#"tollgate_http_request_duration_seconds_count{method="GET",route="/api/test/user"}"#
        ),
        Some(2.0),
        "{text}"
    );
    assert_eq!(
        sample(&text, r#"tollgate_signins_total{outcome="failed"}"#),
        Some(1.0)
    );
    assert_eq!(
        sample(&text, r#"tollgate_signins_total{outcome="ok"}"#),
        Some(2.0)
    );
    assert_eq!(sample(&text, "tollgate_refreshes_total"), Some(1.0));
    assert!(sample(&text, "tollgate_password_hash_jobs_total").unwrap() >= 3.0);
    assert_eq!(
        sample(&text, "tollgate_password_hash_queue_depth"),
        Some(0.0)
    );
    assert!(sample(&text, "tollgate_db_pool_max_connections").unwrap() >= 1.0);
    assert_eq!(sample(&text, "tollgate_mail_queue_depth"), Some(0.0));
    // Users who just signed up may still wait for the admin search's index (SQLite).
    assert!(sample(&text, "tollgate_user_search_waiting_users").is_some());
    assert!(sample(&text, "tollgate_user_search_index_merging").is_some());
    // Labels are route patterns, never raw paths.
    app.get("/api/admin/users/12345", None).await;
    let text = app.get("/metrics", None).await.text();
    assert!(text.contains(r#"route="/api/admin/users/{id}""#), "{text}");
    assert!(!text.contains("12345"));

    // Reuse of a rotated refresh token is counted, and so is the revocation it causes.
    app.refresh(&session.refresh, &[]).await;
    let text = app.get("/metrics", None).await.text();
    assert_eq!(
        sample(&text, "tollgate_refresh_reuse_detected_total"),
        Some(1.0),
        "{text}"
    );
    assert!(text.contains(r#"tollgate_revocations_total{reason="refresh_reuse"}"#));
}

#[tokio::test]
async fn metrics_are_for_this_machine_or_on_an_address_of_their_own() {
    let app = TestApp::new().await;
    let refused = app
        .send_from(
            "203.0.113.9",
            axum::http::Request::get("/metrics")
                .body(axum::body::Body::empty())
                .unwrap(),
        )
        .await;
    refused.assert(StatusCode::FORBIDDEN);
    assert!(refused.text().contains("--metrics-listen"));
    // Nor for a visitor whose request a proxy on this machine forwards.
    let forwarded = app
        .send_from(
            "127.0.0.1",
            axum::http::Request::get("/metrics")
                .header("x-forwarded-for", "203.0.113.9")
                .body(axum::body::Body::empty())
                .unwrap(),
        )
        .await;
    forwarded.assert(StatusCode::FORBIDDEN);

    // With an address of their own: served there, and no longer on the main one.
    let db = TestDatabase::fresh().await;
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let listen = format!("127.0.0.1:{port}");
    let server = crate::binary::Server::start_with(&db, &["--metrics-listen", &listen]).await;
    let mut scraped = None;
    for _ in 0..50 {
        if let Ok(response) = reqwest::get(format!("http://{listen}/metrics")).await {
            scraped = Some(response);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let scraped = scraped.expect("the metrics listener answers");
    assert_eq!(scraped.status(), StatusCode::OK);
    assert!(
        scraped
            .text()
            .await
            .unwrap()
            .contains("tollgate_db_pool_connections")
    );
    let main = reqwest::get(format!("{}/metrics", server.base))
        .await
        .unwrap();
    assert_eq!(main.status(), StatusCode::NOT_FOUND);
}
