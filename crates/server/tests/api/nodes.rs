//! Two server instances on one PostgreSQL database: revocations travel between them.
//! Runs only when the suite runs on PostgreSQL (`TOLLGATE_TEST_DATABASE_URL`).

use std::time::{Duration, Instant};

use api::Role;
use axum::http::{Method, StatusCode};
use serde_json::json;

use crate::support::{TestApp, TestDatabase};

fn on_postgres() -> bool {
    std::env::var("TOLLGATE_TEST_DATABASE_URL").is_ok_and(|v| !v.is_empty())
}

/// Polls node `app` until `token` is refused on `/api/test/user`; returns how long it took.
async fn refused_within(app: &TestApp, token: &str, limit: Duration) -> Duration {
    let start = Instant::now();
    loop {
        if app.get("/api/test/user", Some(token)).await.status == StatusCode::UNAUTHORIZED {
            return start.elapsed();
        }
        assert!(start.elapsed() < limit, "still accepted after {limit:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn two_nodes_see_each_others_revocations_within_a_second() {
    if !on_postgres() {
        eprintln!("skipped: needs TOLLGATE_TEST_DATABASE_URL (PostgreSQL)");
        return;
    }
    let db = TestDatabase::fresh().await;
    let url = db.url.clone();
    let node_a = TestApp::on(db, |_| {}).await;
    let node_b = TestApp::on(TestDatabase::existing(&url), |_| {}).await;
    // Let node B's listener subscribe.
    tokio::time::sleep(Duration::from_millis(300)).await;

    let admin = node_a
        .user_with_roles("root", &[Role::Admin, Role::User])
        .await;
    node_a
        .user_with_roles("alice", &[Role::User, Role::Moderator])
        .await;

    // Logout on A: B refuses the token.
    let session = node_a.session("alice").await;
    node_b
        .get("/api/test/user", Some(&session.access))
        .await
        .assert(StatusCode::OK);
    node_a
        .post("/api/auth/logout", json!({}), Some(&session.access))
        .await
        .assert(StatusCode::OK);
    let took = refused_within(&node_b, &session.access, Duration::from_secs(1)).await;
    eprintln!("logout reached the other node in {took:?}");

    // Role change on B: A refuses the old token (it carries the removed role).
    let session = node_b.session("alice").await;
    node_a
        .get("/api/test/mod", Some(&session.access))
        .await
        .assert(StatusCode::OK);
    node_b
        .request(
            Method::PUT,
            "/api/admin/users/2/roles",
            json!({"roles": ["user"]}),
            Some(&admin),
        )
        .await
        .assert(StatusCode::OK);
    refused_within(&node_a, &session.access, Duration::from_secs(1)).await;
    // The refreshed token, from either node, carries the new roles.
    let fresh = node_a.refreshed(&session.refresh).await;
    node_b
        .get("/api/test/mod", Some(&fresh.access))
        .await
        .assert(StatusCode::FORBIDDEN);
    node_b
        .get("/api/test/user", Some(&fresh.access))
        .await
        .assert(StatusCode::OK);

    // Disable on A: B refuses.
    node_a
        .post("/api/admin/users/2/disable", json!({}), Some(&admin))
        .await
        .assert(StatusCode::OK);
    refused_within(&node_b, &fresh.access, Duration::from_secs(1)).await;

    // Password change on B ends A's view of the other session.
    node_a
        .post("/api/admin/users/2/enable", json!({}), Some(&admin))
        .await
        .assert(StatusCode::OK);
    let first = node_a.session("root").await;
    let second = node_a.session("root").await;
    node_b
        .request(
            Method::PUT,
            "/api/user/password",
            json!({"currentPassword": crate::support::PASSWORD, "newPassword": "another long passphrase"}),
            Some(&first.access),
        )
        .await
        .assert(StatusCode::OK);
    refused_within(&node_a, &second.access, Duration::from_secs(1)).await;
    node_a
        .get("/api/test/user", Some(&first.access))
        .await
        .assert(StatusCode::OK);
}
