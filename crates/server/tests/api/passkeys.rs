//! Passkeys through the API, answered by a software authenticator: registering several,
//! naming and removing them, as the second step of a sign-in, as a step-up, as the whole
//! sign-in; ceremonies that are single use and bound to their user; the enrolment policy.

use std::time::Duration;

use api::Role;
use axum::http::{Method, StatusCode};
use serde_json::{Value, json};

use crate::{
    authenticator::SoftAuthenticator,
    support::{PASSWORD, TestApp, TestResponse, jwt_part},
};

/// The origin of `Settings::for_tests`' public URL (`http://127.0.0.1:8080`), as browsers
/// must use it for passkeys.
const ORIGIN: &str = "http://localhost:8080";

async fn begin(app: &TestApp, token: &str) -> Value {
    let begun = app
        .post(
            "/api/user/passkeys/begin",
            json!({"currentPassword": PASSWORD}),
            Some(token),
        )
        .await;
    begun.assert(StatusCode::OK);
    assert_eq!(begun.header("cache-control"), Some("no-store"));
    begun.json()
}

/// Registers a new passkey of `device` named `name`; returns the answer's body.
async fn register(app: &TestApp, token: &str, device: &mut SoftAuthenticator, name: &str) -> Value {
    let begun = begin(app, token).await;
    let selection = &begun["options"]["publicKey"]["authenticatorSelection"];
    assert_eq!(selection["residentKey"], "required", "{begun}");
    assert_eq!(selection["userVerification"], "required");
    let credential = device.register(&begun["options"]);
    let registered = app
        .post(
            "/api/user/passkeys",
            json!({"ceremony": begun["ceremony"], "name": name, "credential": credential}),
            Some(token),
        )
        .await;
    registered.assert(StatusCode::CREATED);
    registered.json()
}

async fn passkey_options(app: &TestApp, path: &str, body: Value, token: Option<&str>) -> Value {
    let options = app.post(path, body, token).await;
    options.assert(StatusCode::OK);
    options.json()
}

async fn verify(app: &TestApp, mfa_token: &str, assertion: Value) -> TestResponse {
    app.post(
        "/api/auth/mfa/verify",
        json!({"mfaToken": mfa_token, "passkey": assertion}),
        None,
    )
    .await
}

/// Signs in with the password; must be asked for a factor. Returns the challenge token.
async fn challenge(app: &TestApp, username: &str, methods: Value) -> String {
    let refused = app.signin(username, PASSWORD).await;
    refused.assert(StatusCode::UNAUTHORIZED);
    let body = refused.json();
    assert_eq!(body["reason"], "mfa_required");
    assert_eq!(body["methods"], methods);
    body["mfaToken"].as_str().unwrap().to_owned()
}

fn names(list: &Value) -> Vec<&str> {
    list.as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect()
}

#[tokio::test]
async fn passkeys_are_registered_named_listed_and_removed() {
    let app = TestApp::new().await;
    let token = app.user_with_roles("ada", &[Role::User]).await;
    let mut laptop = SoftAuthenticator::new(ORIGIN);
    let mut key = SoftAuthenticator::new(ORIGIN);

    // The current password is asked for.
    app.post("/api/user/passkeys/begin", json!({}), Some(&token))
        .await
        .assert(StatusCode::BAD_REQUEST);
    app.post(
        "/api/user/passkeys/begin",
        json!({"currentPassword": "not the password"}),
        Some(&token),
    )
    .await
    .assert(StatusCode::BAD_REQUEST);

    let first = register(&app, &token, &mut laptop, "Laptop").await;
    // The first factor brings recovery codes; the access token says a key was proven.
    assert_eq!(first["recoveryCodes"].as_array().unwrap().len(), 10);
    assert_eq!(first["passkey"]["name"], "Laptop");
    let token = first["accessToken"].as_str().unwrap().to_owned();
    assert!(
        jwt_part(&token, 1)["amr"]
            .as_array()
            .unwrap()
            .contains(&json!("hwk"))
    );
    let second = register(&app, &token, &mut key, "  Blue key ").await;
    assert!(second.get("recoveryCodes").is_none(), "{second}");
    assert_eq!(second["passkey"]["name"], "Blue key");

    let listed = app.get("/api/user/passkeys", Some(&token)).await;
    listed.assert(StatusCode::OK);
    assert_eq!(names(&listed.json()), ["Laptop", "Blue key"]);
    let status = app.get("/api/user/mfa", Some(&token)).await.json();
    assert_eq!(status["totp"], false);
    assert_eq!(status["passkeys"].as_array().unwrap().len(), 2);
    assert_eq!(status["recoveryCodesLeft"], 10);

    // Renaming: checked, and only one's own.
    let id = second["passkey"]["id"].as_i64().unwrap();
    let path = format!("/api/user/passkeys/{id}");
    app.request(
        Method::PATCH,
        &path,
        json!({"name": "Yubikey"}),
        Some(&token),
    )
    .await
    .assert(StatusCode::OK);
    app.request(Method::PATCH, &path, json!({"name": "  "}), Some(&token))
        .await
        .assert(StatusCode::BAD_REQUEST);
    app.request(
        Method::PATCH,
        &path,
        json!({"name": "x".repeat(65)}),
        Some(&token),
    )
    .await
    .assert(StatusCode::BAD_REQUEST);
    let other = app.user_with_roles("eve", &[Role::User]).await;
    app.request(Method::PATCH, &path, json!({"name": "mine"}), Some(&other))
        .await
        .assert(StatusCode::NOT_FOUND);
    app.delete(&path, Some(&other))
        .await
        .assert(StatusCode::NOT_FOUND);
    let listed = app.get("/api/user/passkeys", Some(&token)).await.json();
    assert_eq!(names(&listed), ["Laptop", "Yubikey"]);

    // The admin list says which factors the user has.
    let admin = app
        .user_with_roles("root", &[Role::Admin, Role::User])
        .await;
    let users = app.get("/api/admin/users?q=ada", Some(&admin)).await.json();
    assert_eq!(users["users"][0]["mfa"], true);
    assert_eq!(users["users"][0]["factors"], json!(["passkey"]));

    // Removing one keeps the codes; removing the last drops them.
    app.delete(&path, Some(&token)).await.assert(StatusCode::OK);
    app.delete(&path, Some(&token))
        .await
        .assert(StatusCode::NOT_FOUND);
    let laptop_id = first["passkey"]["id"].as_i64().unwrap();
    assert_eq!(
        app.get("/api/user/mfa", Some(&token)).await.json()["recoveryCodesLeft"],
        10
    );
    app.delete(&format!("/api/user/passkeys/{laptop_id}"), Some(&token))
        .await
        .assert(StatusCode::OK);
    let status = app.get("/api/user/mfa", Some(&token)).await.json();
    assert_eq!(status["recoveryCodesLeft"], 0);
    assert_eq!(status["passkeys"], json!([]));
    // With no factor left, the password alone signs in again.
    app.signin("ada", PASSWORD).await.assert(StatusCode::OK);
}

#[tokio::test]
async fn a_ceremony_is_single_use_bound_to_its_user_and_checked() {
    let app = TestApp::new().await;
    let token = app.user_with_roles("bob", &[Role::User]).await;
    let other = app.user_with_roles("mallory", &[Role::User]).await;
    let mut device = SoftAuthenticator::new(ORIGIN);

    // Another user cannot finish bob's ceremony.
    let begun = begin(&app, &token).await;
    let credential = device.register(&begun["options"]);
    let body = json!({"ceremony": begun["ceremony"], "name": "Phone", "credential": credential});
    let stolen = app
        .post("/api/user/passkeys", body.clone(), Some(&other))
        .await;
    stolen.assert(StatusCode::BAD_REQUEST);
    assert!(stolen.text().contains("expired"), "{}", stolen.text());
    // Taken up by that attempt: the ceremony is gone for bob too.
    app.post("/api/user/passkeys", body, Some(&token))
        .await
        .assert(StatusCode::BAD_REQUEST);

    // An answer for another origin is refused.
    let begun = begin(&app, &token).await;
    let mut phishing = SoftAuthenticator::new("http://localhost:9999");
    let credential = phishing.register(&begun["options"]);
    app.post(
        "/api/user/passkeys",
        json!({"ceremony": begun["ceremony"], "name": "Phone", "credential": credential}),
        Some(&token),
    )
    .await
    .assert(StatusCode::BAD_REQUEST);

    // A garbage credential is a clear 400, never a 500.
    let begun = begin(&app, &token).await;
    let garbage = app
        .post(
            "/api/user/passkeys",
            json!({"ceremony": begun["ceremony"], "name": "Phone", "credential": {"id": "x"}}),
            Some(&token),
        )
        .await;
    garbage.assert(StatusCode::BAD_REQUEST);

    // A credential registered already (to anyone) is refused.
    let registered = register(&app, &token, &mut device, "Phone").await;
    let token = registered["accessToken"].as_str().unwrap().to_owned();
    let begun = begin(&app, &other).await;
    let again = device.register_again(device.credentials.len() - 1, &begun["options"]);
    app.post(
        "/api/user/passkeys",
        json!({"ceremony": begun["ceremony"], "name": "Stolen", "credential": again}),
        Some(&other),
    )
    .await
    .assert(StatusCode::CONFLICT);
    let listed = app.get("/api/user/passkeys", Some(&token)).await.json();
    assert_eq!(names(&listed), ["Phone"]);
}

#[tokio::test]
async fn a_passkey_is_the_second_step_of_a_password_sign_in() {
    let app = TestApp::new().await;
    let token = app.user_with_roles("carol", &[Role::User]).await;
    let mut device = SoftAuthenticator::new(ORIGIN);
    register(&app, &token, &mut device, "Phone").await;

    let mfa_token = challenge(&app, "carol", json!(["passkey", "recovery"])).await;
    let options = passkey_options(
        &app,
        "/api/auth/mfa/passkey",
        json!({"mfaToken": mfa_token}),
        None,
    )
    .await;
    // The options name carol's passkey.
    assert_eq!(
        options["options"]["publicKey"]["allowCredentials"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    // A wrong signature fails as a wrong code does, and counts as an attempt.
    let mut forged = device.assert(&options["options"]);
    forged["response"]["signature"] = json!("MEUCIQDeadBeef00");
    let wrong = verify(
        &app,
        &mfa_token,
        json!({"ceremony": options["ceremony"], "credential": forged}),
    )
    .await;
    wrong.assert(StatusCode::UNAUTHORIZED);
    assert!(wrong.header("www-authenticate").is_none());
    // The ceremony was used up by that answer.
    let answer = device.assert(&options["options"]);
    verify(
        &app,
        &mfa_token,
        json!({"ceremony": options["ceremony"], "credential": answer}),
    )
    .await
    .assert(StatusCode::BAD_REQUEST);

    let options = passkey_options(
        &app,
        "/api/auth/mfa/passkey",
        json!({"mfaToken": mfa_token}),
        None,
    )
    .await;
    let answer = device.assert(&options["options"]);
    let signed_in = verify(
        &app,
        &mfa_token,
        json!({"ceremony": options["ceremony"], "credential": answer}),
    )
    .await;
    signed_in.assert(StatusCode::OK);
    let access = signed_in.json()["accessToken"].as_str().unwrap().to_owned();
    assert_eq!(jwt_part(&access, 1)["amr"], json!(["pwd", "hwk"]));
    app.get("/api/test/user", Some(&access))
        .await
        .assert(StatusCode::OK);
    // The challenge is used up; its options cannot be asked for again.
    app.post(
        "/api/auth/mfa/passkey",
        json!({"mfaToken": mfa_token}),
        None,
    )
    .await
    .assert(StatusCode::UNAUTHORIZED);
    // The passkey's use is recorded.
    let listed = app.get("/api/user/passkeys", Some(&access)).await.json();
    assert!(listed[0]["lastUsedAt"].as_i64().is_some(), "{listed}");

    // An admin's reset removes passkeys too: the password alone signs in again.
    let admin = app
        .user_with_roles("root", &[Role::Admin, Role::User])
        .await;
    let carol = app
        .get("/api/admin/users?q=carol", Some(&admin))
        .await
        .json()["users"][0]["id"]
        .as_i64()
        .unwrap();
    app.delete(&format!("/api/admin/users/{carol}/mfa"), Some(&admin))
        .await
        .assert(StatusCode::OK);
    app.get("/api/user/passkeys", Some(&access))
        .await
        .assert(StatusCode::UNAUTHORIZED);
    let session = app.signin("carol", PASSWORD).await;
    session.assert(StatusCode::OK);
    let access = session.json()["accessToken"].as_str().unwrap().to_owned();
    let listed = app.get("/api/user/passkeys", Some(&access)).await.json();
    assert_eq!(listed, json!([]));
}

#[tokio::test]
async fn a_passkey_alone_signs_in_without_a_username() {
    let app = TestApp::new().await;
    let token = app.user_with_roles("dora", &[Role::User]).await;
    let mut device = SoftAuthenticator::new(ORIGIN);
    register(&app, &token, &mut device, "Phone").await;

    let options = passkey_options(&app, "/api/auth/passkey/begin", json!({}), None).await;
    // Any passkey of this site: none is named.
    assert!(
        options["options"]["publicKey"]["allowCredentials"]
            .as_array()
            .is_none_or(Vec::is_empty)
    );
    assert_eq!(options["options"]["publicKey"]["rpId"], "localhost");
    let answer = device.assert(&options["options"]);
    let signed_in = app
        .post(
            "/api/auth/passkey",
            json!({"ceremony": options["ceremony"], "credential": answer}),
            None,
        )
        .await;
    signed_in.assert(StatusCode::OK);
    let body = signed_in.json();
    assert_eq!(body["username"], "dora");
    assert!(signed_in.refresh_cookie().is_some());
    let access = body["accessToken"].as_str().unwrap();
    assert_eq!(jwt_part(access, 1)["amr"], json!(["hwk"]));
    // A passkey sign-in has proven a factor: sensitive changes need no step-up.
    app.request(
        Method::PUT,
        "/api/user/password",
        json!({"currentPassword": PASSWORD, "newPassword": "a brand new passphrase"}),
        Some(access),
    )
    .await
    .assert(StatusCode::OK);

    // A cloned authenticator (its counter not past the last one seen) is refused.
    device.credentials[0].counter -= 1;
    let options = passkey_options(&app, "/api/auth/passkey/begin", json!({}), None).await;
    let answer = device.assert(&options["options"]);
    app.post(
        "/api/auth/passkey",
        json!({"ceremony": options["ceremony"], "credential": answer}),
        None,
    )
    .await
    .assert(StatusCode::UNAUTHORIZED);

    // An unknown credential, or another user's handle, gets nowhere.
    let mut stranger = SoftAuthenticator::new(ORIGIN);
    let token = app.user_with_roles("erin", &[Role::User]).await;
    register(&app, &token, &mut stranger, "Phone").await;
    let options = passkey_options(&app, "/api/auth/passkey/begin", json!({}), None).await;
    let mut answer = stranger.assert(&options["options"]);
    answer["response"]["userHandle"] = json!(base64_handle(&device));
    app.post(
        "/api/auth/passkey",
        json!({"ceremony": options["ceremony"], "credential": answer}),
        None,
    )
    .await
    .assert(StatusCode::UNAUTHORIZED);
    let options = passkey_options(&app, "/api/auth/passkey/begin", json!({}), None).await;
    let mut unknown = SoftAuthenticator::new(ORIGIN);
    unknown.register(&json!({"publicKey": {
        "rp": {"id": "localhost"}, "user": {"id": "AAAAAAAAAAAAAAAAAAAAAA"}, "challenge": "AAAA"}}));
    let answer = unknown.assert(&options["options"]);
    app.post(
        "/api/auth/passkey",
        json!({"ceremony": options["ceremony"], "credential": answer}),
        None,
    )
    .await
    .assert(StatusCode::UNAUTHORIZED);

    // A disabled user's passkey opens nothing.
    let admin = app
        .user_with_roles("root", &[Role::Admin, Role::User])
        .await;
    let dora = app
        .get("/api/admin/users?q=dora", Some(&admin))
        .await
        .json()["users"][0]["id"]
        .as_i64()
        .unwrap();
    app.post(
        &format!("/api/admin/users/{dora}/disable"),
        json!({}),
        Some(&admin),
    )
    .await
    .assert(StatusCode::OK);
    let options = passkey_options(&app, "/api/auth/passkey/begin", json!({}), None).await;
    let answer = device.assert(&options["options"]);
    app.post(
        "/api/auth/passkey",
        json!({"ceremony": options["ceremony"], "credential": answer}),
        None,
    )
    .await
    .assert(StatusCode::FORBIDDEN);
}

fn base64_handle(device: &SoftAuthenticator) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&device.credentials[0].user_handle)
}

#[tokio::test]
async fn a_passkey_steps_up_and_the_last_factor_of_a_required_role_stays() {
    let app = TestApp::with_settings(|settings| {
        settings.step_up_window = Duration::from_secs(1);
        settings.require_mfa_for_roles = vec![Role::Admin];
    })
    .await;
    let token = app
        .user_with_roles("boss", &[Role::Admin, Role::User])
        .await;
    assert_eq!(jwt_part(&token, 1)["mfa_enrol"], true);
    // A user who must enrol registers a passkey without giving the password again.
    let begun = app
        .post("/api/user/passkeys/begin", json!({}), Some(&token))
        .await;
    begun.assert(StatusCode::OK);
    let mut device = SoftAuthenticator::new(ORIGIN);
    let credential = device.register(&begun.json()["options"]);
    let registered = app
        .post(
            "/api/user/passkeys",
            json!({"ceremony": begun.json()["ceremony"], "name": "Key", "credential": credential}),
            Some(&token),
        )
        .await;
    registered.assert(StatusCode::CREATED);
    let token = registered.json()["accessToken"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(jwt_part(&token, 1).get("mfa_enrol").is_none());
    app.get("/api/test/admin", Some(&token))
        .await
        .assert(StatusCode::OK);

    // Stale: removing the passkey asks for a step-up, which the passkey gives.
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let id = registered.json()["passkey"]["id"].as_i64().unwrap();
    let stale = app
        .delete(&format!("/api/user/passkeys/{id}"), Some(&token))
        .await;
    stale.assert(StatusCode::UNAUTHORIZED);
    assert_eq!(stale.json()["reason"], "step_up_required");
    let options = passkey_options(
        &app,
        "/api/auth/mfa/step-up/passkey",
        json!({}),
        Some(&token),
    )
    .await;
    let answer = device.assert(&options["options"]);
    let stepped = app
        .post(
            "/api/auth/mfa/step-up",
            json!({"passkey": {"ceremony": options["ceremony"], "credential": answer}}),
            Some(&token),
        )
        .await;
    stepped.assert(StatusCode::OK);
    let stepped = stepped.json()["accessToken"].as_str().unwrap().to_owned();
    // The role requires a factor: the only one stays.
    app.delete(&format!("/api/user/passkeys/{id}"), Some(&stepped))
        .await
        .assert(StatusCode::CONFLICT);

    // The next sign-in asks for it.
    let mfa_token = challenge(&app, "boss", json!(["passkey", "recovery"])).await;
    let options = passkey_options(
        &app,
        "/api/auth/mfa/passkey",
        json!({"mfaToken": mfa_token}),
        None,
    )
    .await;
    let answer = device.assert(&options["options"]);
    verify(
        &app,
        &mfa_token,
        json!({"ceremony": options["ceremony"], "credential": answer}),
    )
    .await
    .assert(StatusCode::OK);
}

#[tokio::test]
async fn passkeys_are_off_with_a_clear_answer_when_the_public_url_is_an_ip_address() {
    let app = TestApp::with_settings(|settings| {
        settings.public_url = "http://192.0.2.10:8080".to_owned();
    })
    .await;
    let token = app.user_with_roles("gina", &[Role::User]).await;
    let refused = app
        .post(
            "/api/user/passkeys/begin",
            json!({"currentPassword": PASSWORD}),
            Some(&token),
        )
        .await;
    refused.assert(StatusCode::NOT_IMPLEMENTED);
    assert!(
        refused.text().contains("--public-url"),
        "{}",
        refused.text()
    );
    app.post("/api/auth/passkey/begin", json!({}), None)
        .await
        .assert(StatusCode::NOT_IMPLEMENTED);
}

#[tokio::test]
async fn adding_a_factor_to_an_account_that_has_one_asks_for_a_recent_one() {
    let app = TestApp::with_settings(|settings| {
        settings.step_up_window = Duration::from_secs(1);
        settings.require_mfa_for_roles = vec![Role::Admin];
    })
    .await;
    // Two sessions of a user who must enrol, before any factor.
    let older = app
        .user_with_roles("boss", &[Role::Admin, Role::User])
        .await;
    let token = app.token_for("boss").await;
    let mut device = SoftAuthenticator::new(ORIGIN);
    let begun = app
        .post("/api/user/passkeys/begin", json!({}), Some(&token))
        .await;
    begun.assert(StatusCode::OK);
    let credential = device.register(&begun.json()["options"]);
    app.post(
        "/api/user/passkeys",
        json!({"ceremony": begun.json()["ceremony"], "name": "Key", "credential": credential}),
        Some(&token),
    )
    .await
    .assert(StatusCode::CREATED);
    // The older session never proved the factor now on the account: it cannot add another,
    // with or without the password.
    for body in [json!({}), json!({"currentPassword": PASSWORD})] {
        let refused = app
            .post("/api/user/passkeys/begin", body.clone(), Some(&older))
            .await;
        refused.assert(StatusCode::UNAUTHORIZED);
        assert_eq!(refused.json()["reason"], "step_up_required");
        app.post("/api/user/mfa/totp", body, Some(&older))
            .await
            .assert(StatusCode::UNAUTHORIZED);
    }
    // A plain user with a factor proven long ago: step-up first, then the password.
    let plain = app.user_with_roles("pam", &[Role::User]).await;
    let mut phone = SoftAuthenticator::new(ORIGIN);
    let registered = register(&app, &plain, &mut phone, "Phone").await;
    let plain = registered["accessToken"].as_str().unwrap().to_owned();
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let stale = app
        .post(
            "/api/user/passkeys/begin",
            json!({"currentPassword": PASSWORD}),
            Some(&plain),
        )
        .await;
    stale.assert(StatusCode::UNAUTHORIZED);
    assert_eq!(stale.json()["reason"], "step_up_required");
    let options = passkey_options(
        &app,
        "/api/auth/mfa/step-up/passkey",
        json!({}),
        Some(&plain),
    )
    .await;
    let answer = phone.assert(&options["options"]);
    let stepped = app
        .post(
            "/api/auth/mfa/step-up",
            json!({"passkey": {"ceremony": options["ceremony"], "credential": answer}}),
            Some(&plain),
        )
        .await;
    stepped.assert(StatusCode::OK);
    let stepped = stepped.json()["accessToken"].as_str().unwrap().to_owned();
    register(
        &app,
        &stepped,
        &mut SoftAuthenticator::new(ORIGIN),
        "Second",
    )
    .await;
}
