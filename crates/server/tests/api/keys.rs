//! Signing-key rotation: the next key is published before it signs, the previous one verifies
//! until its tokens have expired, every node follows, a leaked key can be retired at once, and
//! `--key-rotation` does it on a schedule.

use std::time::Duration;

use api::Role;
use axum::http::StatusCode;
use serde_json::Value;
use tollgate::{clock::unix_now, domain::keys, tokens::EDDSA};

use crate::{
    binary::{run, stderr, stdout, tollgate},
    support::{TestApp, TestDatabase, jwt_part},
};

async fn published(app: &TestApp) -> Vec<String> {
    let jwks = app.get("/.well-known/jwks.json", None).await.json();
    jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap().to_owned())
        .collect()
}

fn kid(token: &str) -> String {
    jwt_part(token, 0)["kid"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn a_rotated_key_is_published_first_signs_later_and_the_old_one_lives_out_its_tokens() {
    let app = TestApp::new().await;
    let before = app.user_with_roles("ann", &[Role::User]).await;
    let first = kid(&before);
    assert_eq!(published(&app).await, vec![first.clone()]);

    // A node on the same database (another process, or the CLI's rotation, would do alike).
    let other = TestApp::on(TestDatabase::existing(&app.db.url), |_| {}).await;

    // Rotated with the new key signing in 2 s: published at once, signing later.
    let rotated = keys::rotate(
        &app.state.storage,
        &app.state.settings,
        Duration::from_secs(2),
        false,
    )
    .await
    .unwrap();
    for node in [&app, &other] {
        keys::maintain(&node.state).await.unwrap();
        let kids = published(node).await;
        assert!(
            kids.contains(&first) && kids.contains(&rotated.kid),
            "{kids:?}"
        );
        assert_eq!(kid(&node.token_for("ann").await), first);
    }
    tokio::time::sleep(Duration::from_millis(2100)).await;
    // Its time has come: every node signs with it; tokens of the old key still verify.
    for node in [&app, &other] {
        let fresh = node.token_for("ann").await;
        assert_eq!(kid(&fresh), rotated.kid);
        node.get("/api/test/user", Some(&before))
            .await
            .assert(StatusCode::OK);
        other
            .get("/api/test/user", Some(&fresh))
            .await
            .assert(StatusCode::OK);
    }
    // Nothing is retired while a token of the old key may live.
    keys::maintain(&app.state).await.unwrap();
    assert_eq!(published(&app).await.len(), 2);
    // Once they cannot (seen from a day later), the old key goes, and its tokens with it,
    // cached or not.
    let purged = app
        .state
        .storage
        .purge_retired_keys(unix_now() + 86_400, 300)
        .await
        .unwrap();
    assert_eq!(purged, 1);
    for node in [&app, &other] {
        keys::maintain(&node.state).await.unwrap();
        assert_eq!(published(node).await, vec![rotated.kid.clone()]);
        node.get("/api/test/user", Some(&before))
            .await
            .assert(StatusCode::UNAUTHORIZED);
    }
    // The readiness check follows the signing key.
    app.get("/readyz", None).await.assert(StatusCode::OK);
}

#[tokio::test]
async fn a_leaked_key_is_retired_at_once() {
    let app = TestApp::new().await;
    let before = app.user_with_roles("bea", &[Role::User]).await;
    app.get("/api/test/user", Some(&before))
        .await
        .assert(StatusCode::OK);
    let rotated = keys::rotate(
        &app.state.storage,
        &app.state.settings,
        Duration::ZERO,
        true,
    )
    .await
    .unwrap();
    assert_eq!(rotated.retired, 1);
    keys::maintain(&app.state).await.unwrap();
    assert_eq!(published(&app).await, vec![rotated.kid.clone()]);
    app.get("/api/test/user", Some(&before))
        .await
        .assert(StatusCode::UNAUTHORIZED);
    assert_eq!(kid(&app.token_for("bea").await), rotated.kid);
}

#[tokio::test]
async fn the_schedule_rotates_once_per_period_and_publishes_ahead() {
    let app = TestApp::with_settings(|settings| {
        settings.key_rotation = Some(Duration::from_secs(1));
        settings.key_publish_ahead = Duration::from_secs(3);
    })
    .await;
    let first = kid(&app.user_with_roles("cid", &[Role::User]).await);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    // Due: one new key, pending; a second round while it is pending adds none.
    keys::maintain(&app.state).await.unwrap();
    keys::maintain(&app.state).await.unwrap();
    let stored = app.state.storage.signing_keys(EDDSA).await.unwrap();
    assert_eq!(stored.len(), 2);
    assert!(stored[0].activates_at > unix_now() - 1);
    assert_eq!(kid(&app.token_for("cid").await), first);
    tokio::time::sleep(Duration::from_millis(3100)).await;
    assert_eq!(kid(&app.token_for("cid").await), stored[0].kid);
}

#[tokio::test]
async fn keys_rotate_and_list_from_the_command_line() {
    let app = TestApp::new().await;
    let first = app.state.tokens.signing_kid().unwrap();
    let rotated = run({
        let mut command = tollgate(&app.db);
        command.args(["keys", "rotate", "--activate-in", "1h"]);
        command
    });
    assert!(rotated.status.success(), "{}", stderr(&rotated));
    assert!(
        stdout(&rotated).contains("generation 2"),
        "{}",
        stdout(&rotated)
    );
    let listed = run({
        let mut command = tollgate(&app.db);
        command.args(["keys", "list"]);
        command
    });
    let text = stdout(&listed);
    assert!(text.contains(&format!("1\t{first}\tsigning")), "{text}");
    assert!(
        text.contains("2\t") && text.contains("signs from"),
        "{text}"
    );
    // Under HS256 there is nothing to rotate: it says so.
    let refused = run({
        let mut command = tollgate(&app.db);
        command
            .env("TOLLGATE_JWT_ALGORITHM", "hs256")
            .env("TOLLGATE_JWT_SECRET", "x".repeat(40))
            .args(["keys", "rotate"]);
        command
    });
    assert!(!refused.status.success());
    assert!(stderr(&refused).contains("eddsa"), "{}", stderr(&refused));
    let _: Value = app.get("/.well-known/jwks.json", None).await.json();
}

#[tokio::test]
async fn a_key_made_after_one_still_waiting_supersedes_it_for_good() {
    let app = TestApp::new().await;
    let waiting = keys::rotate(
        &app.state.storage,
        &app.state.settings,
        Duration::from_secs(2),
        false,
    )
    .await
    .unwrap();
    let now = keys::rotate(
        &app.state.storage,
        &app.state.settings,
        Duration::ZERO,
        false,
    )
    .await
    .unwrap();
    keys::maintain(&app.state).await.unwrap();
    assert_eq!(app.state.tokens.signing_kid(), Some(now.kid.clone()));
    // Once the older, waiting key's time comes, the newer one still signs.
    tokio::time::sleep(Duration::from_millis(2100)).await;
    assert_eq!(app.state.tokens.signing_kid(), Some(now.kid));
    assert_ne!(waiting.kid, app.state.tokens.signing_kid().unwrap());
}
