use std::time::{Duration, SystemTime, UNIX_EPOCH};

use api::Role;
use axum::{
    body::Body,
    http::{Request, StatusCode},
};
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use secrecy::SecretString;
use serde_json::{Value, json};
use tollgate::config::SigningSettings;

use crate::support::{TestApp, jwt_part};

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn claims(user_id: i64, roles: &[&str], exp: i64) -> Value {
    json!({
        "sub": user_id.to_string(), "id": user_id, "roles": roles, "iat": now(), "exp": exp,
        "iss": "tollgate", "aud": "tollgate", "jti": "test-jti-0123456789",
        "sid": "test-session", "ver": 0,
    })
}

/// Signs `claims` with the server's own Ed25519 key, as a valid token would be.
async fn sign_with_server_key(app: &TestApp, claims: &Value) -> String {
    let keys = app.state.storage.signing_keys("EdDSA").await.unwrap();
    let mut header = Header::new(Algorithm::EdDSA);
    header.kid = Some(keys[0].kid.clone());
    jsonwebtoken::encode(
        &header,
        claims,
        &EncodingKey::from_ed_der(&keys[0].private_key),
    )
    .unwrap()
}

async fn expect_unauthorized(app: &TestApp, token: &str, message: &str) {
    let response = app.get("/api/test/user", Some(token)).await;
    response.assert(StatusCode::UNAUTHORIZED);
    assert_eq!(response.message(), message, "token {token}");
}

#[tokio::test]
async fn the_token_is_accepted_from_either_header() {
    let app = TestApp::new().await;
    let token = app.user_with_roles("alice", &[Role::User]).await;
    for (name, value) in [
        ("x-access-token", token.clone()),
        ("authorization", format!("Bearer {token}")),
        ("authorization", format!("bearer {token}")),
    ] {
        let request = Request::get("/api/test/user")
            .header(name, value)
            .body(Body::empty())
            .unwrap();
        let response = app.send(request).await;
        response.assert(StatusCode::OK);
        assert_eq!(response.text(), "User Content.");
    }
}

#[tokio::test]
async fn a_missing_token_is_401_with_a_bearer_challenge() {
    let app = TestApp::new().await;
    for request in [
        Request::get("/api/test/user").body(Body::empty()).unwrap(),
        Request::get("/api/test/user")
            .header("authorization", "Basic YWxpY2U6cGFzcw==")
            .body(Body::empty())
            .unwrap(),
        Request::get("/api/test/user")
            .header("x-access-token", "")
            .body(Body::empty())
            .unwrap(),
    ] {
        let response = app.send(request).await;
        response.assert(StatusCode::UNAUTHORIZED);
        assert_eq!(response.header("www-authenticate"), Some("Bearer"));
        assert_eq!(response.json(), json!({"message": "No token provided!"}));
    }
}

#[tokio::test]
async fn garbage_and_tampered_tokens_are_unauthorized() {
    let app = TestApp::new().await;
    let token = app.user_with_roles("alice", &[Role::User]).await;
    let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
    let mut payload = jwt_part(&token, 1);
    payload["roles"] = json!(["user", "admin"]);
    parts[1] = URL_SAFE_NO_PAD.encode(payload.to_string());
    let tampered = parts.join(".");

    for bad in [
        "garbage",
        "a.b.c",
        &tampered,
        &format!("{token}x"),
        &"x".repeat(5000),
    ] {
        expect_unauthorized(&app, bad, "Unauthorized!").await;
    }
    let tampered_admin = app.get("/api/test/admin", Some(&tampered)).await;
    tampered_admin.assert(StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn an_expired_token_says_so() {
    let app = TestApp::new().await;
    app.user_with_roles("alice", &[Role::User]).await;
    let expired = sign_with_server_key(&app, &claims(1, &["user"], now() - 10)).await;
    expect_unauthorized(&app, &expired, "Unauthorized! Access Token was expired!").await;
    // The same claims, still valid, pass: the refusal was about time alone.
    let valid = sign_with_server_key(&app, &claims(1, &["user"], now() + 60)).await;
    app.get("/api/test/user", Some(&valid))
        .await
        .assert(StatusCode::OK);
}

#[tokio::test]
async fn a_cached_token_still_expires_on_time() {
    let app = TestApp::with_settings(|s| s.access_token_ttl = Duration::from_secs(1)).await;
    let token = app.user_with_roles("alice", &[Role::User]).await;
    app.get("/api/test/user", Some(&token))
        .await
        .assert(StatusCode::OK);
    app.get("/api/test/user", Some(&token))
        .await
        .assert(StatusCode::OK);
    tokio::time::sleep(Duration::from_millis(2100)).await;
    expect_unauthorized(&app, &token, "Unauthorized! Access Token was expired!").await;
}

#[tokio::test]
async fn wrong_issuer_audience_or_key_id_is_refused() {
    let app = TestApp::new().await;
    app.user_with_roles("alice", &[Role::User]).await;
    let exp = now() + 600;
    let mut wrong_iss = claims(1, &["user"], exp);
    wrong_iss["iss"] = json!("someone-else");
    let mut wrong_aud = claims(1, &["user"], exp);
    wrong_aud["aud"] = json!("another-api");
    let mut no_exp = claims(1, &["user"], exp);
    no_exp.as_object_mut().unwrap().remove("exp");
    let mut bad_role = claims(1, &["superuser"], exp);
    bad_role["roles"] = json!(["superuser"]);
    for claims in [wrong_iss, wrong_aud, no_exp, bad_role] {
        let token = sign_with_server_key(&app, &claims).await;
        expect_unauthorized(&app, &token, "Unauthorized!").await;
    }

    // Right key, but a kid we do not know; and no kid at all.
    let keys = app.state.storage.signing_keys("EdDSA").await.unwrap();
    let key = EncodingKey::from_ed_der(&keys[0].private_key);
    for kid in [Some("unknown-kid".to_owned()), None] {
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = kid;
        let token = jsonwebtoken::encode(&header, &claims(1, &["admin"], exp), &key).unwrap();
        expect_unauthorized(&app, &token, "Unauthorized!").await;
    }
}

#[tokio::test]
async fn algorithm_confusion_and_foreign_keys_are_refused() {
    let app = TestApp::new().await;
    app.user_with_roles("alice", &[Role::User]).await;
    let keys = app.state.storage.signing_keys("EdDSA").await.unwrap();
    let kid = keys[0].kid.clone();
    let admin_claims = claims(1, &["user", "admin"], now() + 600);

    // alg "none": header and payload, no signature.
    let none_header =
        URL_SAFE_NO_PAD.encode(json!({"alg": "none", "typ": "JWT", "kid": kid}).to_string());
    let payload = URL_SAFE_NO_PAD.encode(admin_claims.to_string());
    expect_unauthorized(&app, &format!("{none_header}.{payload}."), "Unauthorized!").await;

    // HS256 "signed" with the public key as the HMAC secret.
    let mut header = Header::new(Algorithm::HS256);
    header.kid = Some(kid.clone());
    let confused = jsonwebtoken::encode(
        &header,
        &admin_claims,
        &EncodingKey::from_secret(&keys[0].public_key),
    )
    .unwrap();
    expect_unauthorized(&app, &confused, "Unauthorized!").await;

    // A token signed by an attacker's own Ed25519 key, pointing at it with jku/x5u and our kid.
    let rng = ring::rand::SystemRandom::new();
    let attacker = ring::signature::Ed25519KeyPair::generate_pkcs8(&rng).unwrap();
    let mut header = Header::new(Algorithm::EdDSA);
    header.kid = Some(kid);
    header.jku = Some("http://attacker.example/jwks.json".into());
    header.x5u = Some("http://attacker.example/cert.pem".into());
    let forged = jsonwebtoken::encode(
        &header,
        &admin_claims,
        &EncodingKey::from_ed_der(attacker.as_ref()),
    )
    .unwrap();
    expect_unauthorized(&app, &forged, "Unauthorized!").await;
}

#[tokio::test]
async fn the_signing_key_survives_restarts_and_is_shared_by_nodes() {
    let first = TestApp::new().await;
    let token = first.user_with_roles("alice", &[Role::User]).await;
    let jwks = first.get("/.well-known/jwks.json", None).await.json();
    let keys = jwks["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 1);
    assert_eq!(keys[0]["kty"], "OKP");
    assert_eq!(keys[0]["crv"], "Ed25519");
    assert_eq!(keys[0]["alg"], "EdDSA");
    assert!(keys[0].get("d").is_none(), "private key material published");

    let second = TestApp::on(first.db, |_| {}).await;
    second
        .get("/api/test/user", Some(&token))
        .await
        .assert(StatusCode::OK);
    assert_eq!(
        second.get("/.well-known/jwks.json", None).await.json(),
        jwks
    );
}

#[tokio::test]
async fn hs256_mode_signs_with_the_operator_secret_and_publishes_no_key() {
    let secret = "an operator secret of at least 32 bytes!";
    let app = TestApp::with_settings(|s| {
        s.signing = SigningSettings::Hs256(SecretString::from(secret));
    })
    .await;
    let token = app.user_with_roles("alice", &[Role::User]).await;
    assert_eq!(jwt_part(&token, 0)["alg"], "HS256");
    app.get("/api/test/user", Some(&token))
        .await
        .assert(StatusCode::OK);
    assert_eq!(
        app.get("/.well-known/jwks.json", None).await.json(),
        json!({"keys": []})
    );

    // A token signed with a different secret, or with EdDSA, is refused.
    let mut header = Header::new(Algorithm::HS256);
    header.kid = jwt_part(&token, 0)["kid"].as_str().map(str::to_owned);
    let other = jsonwebtoken::encode(
        &header,
        &claims(1, &["admin"], now() + 600),
        &EncodingKey::from_secret(b"another secret that is long enough!!"),
    )
    .unwrap();
    expect_unauthorized(&app, &other, "Unauthorized!").await;
    let eddsa_app = TestApp::new().await;
    let eddsa_token = eddsa_app.user_with_roles("alice", &[Role::User]).await;
    expect_unauthorized(&app, &eddsa_token, "Unauthorized!").await;
}

#[tokio::test]
async fn a_cached_token_does_not_vouch_for_an_altered_copy() {
    let app = TestApp::new().await;
    let token = app.user_with_roles("alice", &[Role::User]).await;
    app.get("/api/test/user", Some(&token))
        .await
        .assert(StatusCode::OK);
    // The cache knows the token by a digest of all of it: change one character of the
    // signature, or append one, and it is a stranger again (and a forgery).
    let (head, tail) = token.split_at(token.len() - 6);
    let flipped = if tail.starts_with('A') { "B" } else { "A" };
    let altered = format!("{head}{flipped}{}", &tail[1..]);
    expect_unauthorized(&app, &altered, "Unauthorized!").await;
    expect_unauthorized(&app, &format!("{token}A"), "Unauthorized!").await;
    app.get("/api/test/user", Some(&token))
        .await
        .assert(StatusCode::OK);
}

#[tokio::test]
async fn a_cache_smaller_than_the_crowd_still_verifies_everyone() {
    let app = TestApp::with_settings(|s| s.token_cache_size = 1).await;
    let alice = app.user_with_roles("alice", &[Role::User]).await;
    let bob = app.user_with_roles("bob", &[Role::User, Role::Admin]).await;
    for _ in 0..3 {
        for token in [&alice, &bob] {
            app.get("/api/test/user", Some(token))
                .await
                .assert(StatusCode::OK);
        }
        app.get("/api/test/admin", Some(&alice))
            .await
            .assert(StatusCode::FORBIDDEN);
        app.get("/api/test/admin", Some(&bob))
            .await
            .assert(StatusCode::OK);
    }
}
