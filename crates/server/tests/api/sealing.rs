//! Encryption at rest under a master key: an existing install's secrets are sealed when the
//! key is first given, everything keeps working, a missing or wrong key stops the server with
//! the reason, and `tollgate keys rewrap` moves to a new key (or back to none).

use api::Role;
use axum::http::StatusCode;
use serde_json::json;
use tollgate::{
    AppState,
    clock::unix_now,
    config::Settings,
    sealing::{MasterKey, Sealer, is_sealed},
    storage::SecretRef,
    totp::Authenticator,
};

use crate::{
    binary::{run, stderr, stdout, tollgate},
    support::{PASSWORD, TestApp, TestDatabase},
};

fn sealer(key: &str) -> Sealer {
    Sealer::new(Some(MasterKey::parse(key).unwrap()))
}

/// Enrols an authenticator app for `token`; returns the app.
async fn enrol(app: &TestApp, token: &str) -> Authenticator {
    let begun = app
        .post(
            "/api/user/mfa/totp",
            json!({"currentPassword": PASSWORD}),
            Some(token),
        )
        .await;
    begun.assert(StatusCode::OK);
    let secret =
        totp_rs::Secret::try_from_base32(begun.json()["secret"].as_str().unwrap()).unwrap();
    let phone = Authenticator::new(secret.as_ref(), "test", "test").unwrap();
    app.post(
        "/api/user/mfa/totp/confirm",
        json!({"code": phone.code_at(unix_now().unsigned_abs())}),
        Some(token),
    )
    .await
    .assert(StatusCode::OK);
    phone
}

/// Signs in with the password and the app's code `steps` steps ahead.
async fn sign_in_with_code(app: &TestApp, username: &str, phone: &Authenticator, steps: i64) {
    let refused = app.signin(username, PASSWORD).await;
    refused.assert(StatusCode::UNAUTHORIZED);
    let mfa_token = refused.json()["mfaToken"].as_str().unwrap().to_owned();
    let code = phone.code_at((unix_now() + steps * 30).unsigned_abs());
    app.post(
        "/api/auth/mfa/verify",
        json!({"mfaToken": mfa_token, "code": code}),
        None,
    )
    .await
    .assert(StatusCode::OK);
}

async fn load_error(url: &str, sealer: Sealer) -> String {
    let settings = Settings {
        sealer,
        ..Settings::for_tests()
    };
    let storage = TestDatabase::existing(url).storage().await;
    match AppState::load(storage, settings).await {
        Ok(_) => panic!("the state loaded"),
        Err(e) => format!("{e:#}"),
    }
}

#[tokio::test]
async fn a_master_key_seals_an_existing_installs_secrets_and_everything_keeps_working() {
    let key = MasterKey::generate().unwrap();
    // An install without a key, with a user who has an authenticator app.
    let plain = TestApp::new().await;
    let token = plain.user_with_roles("ann", &[Role::User]).await;
    let phone = enrol(&plain, &token).await;
    let rows = plain.state.storage.secret_rows().await.unwrap();
    assert!(rows.iter().all(|row| !is_sealed(&row.value)));
    assert!(rows.iter().any(|row| matches!(row.at, SecretRef::Totp(_))));
    assert!(
        rows.iter()
            .any(|row| matches!(row.at, SecretRef::SigningKey(_)))
    );
    assert!(
        rows.iter()
            .any(|row| matches!(row.at, SecretRef::Shared(_)))
    );

    // The key is given: at start-up every secret is sealed.
    let url = plain.db.url.clone();
    let sealed = TestApp::on(TestDatabase::existing(&url), |settings| {
        settings.sealer = sealer(&key);
    })
    .await;
    let rows = sealed.state.storage.secret_rows().await.unwrap();
    assert!(rows.len() >= 4);
    assert!(rows.iter().all(|row| is_sealed(&row.value)), "{rows:?}");
    // Same keys and secrets: tokens signed before still verify; the app's codes still work;
    // refresh tokens issued before still rotate.
    sealed
        .get("/api/test/user", Some(&token))
        .await
        .assert(StatusCode::OK);
    sign_in_with_code(&sealed, "ann", &phone, 1).await;
    // A new authenticator is sealed as it is stored.
    let bob = sealed.user_with_roles("bob", &[Role::User]).await;
    let bobs_phone = enrol(&sealed, &bob).await;
    let rows = sealed.state.storage.secret_rows().await.unwrap();
    assert!(rows.iter().all(|row| is_sealed(&row.value)));
    sign_in_with_code(&sealed, "bob", &bobs_phone, 1).await;

    // Without the key, or with another, the server does not start, and says why.
    let missing = load_error(&url, Sealer::default()).await;
    assert!(missing.contains("master key"), "{missing}");
    let other = load_error(&url, sealer(&MasterKey::generate().unwrap())).await;
    assert!(other.contains("rewrap"), "{other}");

    // A sealed value moved to another row does not open.
    let totp: Vec<_> = rows
        .iter()
        .filter(|row| matches!(row.at, SecretRef::Totp(_)))
        .collect();
    let (ann, bob) = (totp[0], totp[1]);
    let swapped = sealed
        .state
        .storage
        .replace_secrets(&[(ann.clone(), bob.value.clone())])
        .await
        .unwrap();
    assert!(swapped);
    let refused = sealed.signin("ann", PASSWORD).await;
    refused.assert(StatusCode::UNAUTHORIZED);
    let mfa_token = refused.json()["mfaToken"].as_str().unwrap().to_owned();
    let code = phone.code_at((unix_now() + 30).unsigned_abs());
    let broken = sealed
        .post(
            "/api/auth/mfa/verify",
            json!({"mfaToken": mfa_token, "code": code}),
            None,
        )
        .await;
    broken.assert(StatusCode::INTERNAL_SERVER_ERROR);
    assert!(
        !broken.text().contains("totp"),
        "no internals: {}",
        broken.text()
    );
}

#[tokio::test]
async fn keys_rewrap_moves_the_secrets_to_a_new_master_key_or_back_to_none() {
    let db = TestDatabase::fresh().await;
    let made = run({
        let mut command = tollgate(&db);
        command.args(["keys", "new-master-key"]);
        command
    });
    assert!(made.status.success(), "{}", stderr(&made));
    let old = stdout(&made).trim().to_owned();
    MasterKey::parse(&old).unwrap();
    let new = MasterKey::generate().unwrap();
    // A first start with the old key seals the fresh install's secrets.
    let app = TestApp::on(TestDatabase::existing(&db.url), |settings| {
        settings.sealer = sealer(&old);
    })
    .await;
    let token = app.user_with_roles("cyd", &[Role::User]).await;
    drop(app);

    // A mistyped key is refused without being echoed.
    let mistyped = run({
        let mut command = tollgate(&db);
        command
            .env("TOLLGATE_MASTER_KEY", "NOT-THE-KEY-hunter2")
            .args(["user", "list"]);
        command
    });
    assert!(!mistyped.status.success());
    assert!(
        stderr(&mistyped).contains("--master-key"),
        "{}",
        stderr(&mistyped)
    );
    assert!(
        !stderr(&mistyped).contains("hunter2"),
        "{}",
        stderr(&mistyped)
    );

    // Without the new key, nothing happens.
    let refused = run({
        let mut command = tollgate(&db);
        command
            .env("TOLLGATE_MASTER_KEY", &old)
            .args(["keys", "rewrap"]);
        command
    });
    assert!(!refused.status.success());
    assert!(
        stderr(&refused).contains("new master key"),
        "{}",
        stderr(&refused)
    );

    let rewrapped = run({
        let mut command = tollgate(&db);
        command
            .env("TOLLGATE_MASTER_KEY", &old)
            .env("TOLLGATE_NEW_MASTER_KEY", &new)
            .args(["keys", "rewrap"]);
        command
    });
    assert!(rewrapped.status.success(), "{}", stderr(&rewrapped));
    assert!(
        stdout(&rewrapped).contains("secrets are now encrypted under master key"),
        "{}",
        stdout(&rewrapped)
    );
    // The old key no longer opens them; the new one does, and tokens still verify.
    assert!(load_error(&db.url, sealer(&old)).await.contains("rewrap"));
    let app = TestApp::on(TestDatabase::existing(&db.url), |settings| {
        settings.sealer = sealer(&new);
    })
    .await;
    app.get("/api/test/user", Some(&token))
        .await
        .assert(StatusCode::OK);
    drop(app);

    // And back to none.
    let decrypted = run({
        let mut command = tollgate(&db);
        command
            .env("TOLLGATE_MASTER_KEY", &new)
            .args(["keys", "rewrap", "--decrypt"]);
        command
    });
    assert!(decrypted.status.success(), "{}", stderr(&decrypted));
    assert!(stdout(&decrypted).contains("stored unencrypted"));
    let app = TestApp::on(TestDatabase::existing(&db.url), |_| {}).await;
    let rows = app.state.storage.secret_rows().await.unwrap();
    assert!(rows.iter().all(|row| !is_sealed(&row.value)));
    app.get("/api/test/user", Some(&token))
        .await
        .assert(StatusCode::OK);
}
