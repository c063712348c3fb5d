//! Second factors through the API: TOTP enrolment, the sign-in's second step, replay and
//! skew, recovery codes, step-up, the enrolment policy, an admin's reset.

use std::time::Duration;

use api::Role;
use axum::http::{Method, StatusCode};
use serde_json::{Value, json};
use tollgate::{clock::unix_now, totp::Authenticator};

use crate::support::{PASSWORD, TestApp, jwt_part};

/// The authenticator app of the test: computes codes from the secret Tollgate showed.
struct Phone(Authenticator);

impl Phone {
    fn new(base32: &str) -> Self {
        let secret = totp_rs::Secret::try_from_base32(base32).unwrap();
        Self(Authenticator::new(secret.as_ref(), "test", "test").unwrap())
    }

    /// The code `steps` steps of 30 s away from now.
    fn code(&self, steps: i64) -> String {
        self.0.code_at((unix_now() + steps * 30).unsigned_abs())
    }
}

/// Enrols an authenticator app for the signed-in `token`; returns the phone, the recovery
/// codes and the new access token. The code used is the current step's.
async fn enrol(app: &TestApp, token: &str) -> (Phone, Vec<String>, String) {
    let begun = app
        .post(
            "/api/user/mfa/totp",
            json!({"currentPassword": PASSWORD}),
            Some(token),
        )
        .await;
    begun.assert(StatusCode::OK);
    let phone = Phone::new(begun.json()["secret"].as_str().unwrap());
    assert!(
        begun.json()["uri"]
            .as_str()
            .unwrap()
            .starts_with("otpauth://totp/")
    );
    let confirmed = app
        .post(
            "/api/user/mfa/totp/confirm",
            json!({"code": phone.code(0)}),
            Some(token),
        )
        .await;
    confirmed.assert(StatusCode::OK);
    let body = confirmed.json();
    let codes: Vec<String> = body["recoveryCodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap().to_owned())
        .collect();
    (
        phone,
        codes,
        body["accessToken"].as_str().unwrap().to_owned(),
    )
}

/// Signs in with the password: must be refused with a challenge; returns its token.
async fn challenge(app: &TestApp, username: &str) -> String {
    let refused = app.signin(username, PASSWORD).await;
    refused.assert(StatusCode::UNAUTHORIZED);
    let body = refused.json();
    assert_eq!(body["reason"], "mfa_required", "{body}");
    assert_eq!(body["accessToken"], Value::Null);
    assert_eq!(body["methods"], json!(["otp", "recovery"]));
    body["mfaToken"].as_str().unwrap().to_owned()
}

async fn verify(app: &TestApp, mfa_token: &str, factor: Value) -> crate::support::TestResponse {
    let mut body = factor;
    body["mfaToken"] = json!(mfa_token);
    app.post("/api/auth/mfa/verify", body, None).await
}

#[tokio::test]
async fn an_authenticator_app_guards_the_sign_in_and_each_code_works_once() {
    let app = TestApp::new().await;
    let token = app.user_with_roles("alice", &[Role::User]).await;
    let status = app.get("/api/user/mfa", Some(&token)).await.json();
    assert_eq!(
        status,
        json!({"totp": false, "passkeys": [], "recoveryCodesLeft": 0, "required": false})
    );

    // Enrolment: a wrong first code is refused; the right one confirms and yields codes.
    // The current password is asked for: a stolen token cannot add the thief's app.
    app.post("/api/user/mfa/totp", json!({}), Some(&token))
        .await
        .assert(StatusCode::BAD_REQUEST);
    app.post(
        "/api/user/mfa/totp",
        json!({"currentPassword": "not the password"}),
        Some(&token),
    )
    .await
    .assert(StatusCode::BAD_REQUEST);
    let begun = app
        .post(
            "/api/user/mfa/totp",
            json!({"currentPassword": PASSWORD}),
            Some(&token),
        )
        .await;
    begun.assert(StatusCode::OK);
    let phone = Phone::new(begun.json()["secret"].as_str().unwrap());
    let wrong = if phone.code(0) == "000000" {
        "111111"
    } else {
        "000000"
    };
    app.post(
        "/api/user/mfa/totp/confirm",
        json!({"code": wrong}),
        Some(&token),
    )
    .await
    .assert(StatusCode::UNAUTHORIZED);
    let confirmed = app
        .post(
            "/api/user/mfa/totp/confirm",
            json!({"code": phone.code(0)}),
            Some(&token),
        )
        .await;
    confirmed.assert(StatusCode::OK);
    assert_eq!(
        confirmed.json()["recoveryCodes"].as_array().unwrap().len(),
        10
    );
    let enrolled = confirmed.json()["accessToken"].as_str().unwrap().to_owned();
    assert_eq!(jwt_part(&enrolled, 1)["amr"], json!(["pwd", "otp"]));
    app.post(
        "/api/user/mfa/totp",
        json!({"currentPassword": PASSWORD}),
        Some(&enrolled),
    )
    .await
    .assert(StatusCode::CONFLICT);

    // The password alone: a challenge, which is no access token.
    let mfa_token = challenge(&app, "alice").await;
    app.get("/api/test/user", Some(&mfa_token))
        .await
        .assert(StatusCode::UNAUTHORIZED);
    // The code the enrolment used is spent (replay); the next step's works (skew +1).
    verify(&app, &mfa_token, json!({"code": phone.code(0)}))
        .await
        .assert(StatusCode::UNAUTHORIZED);
    let signed_in = verify(&app, &mfa_token, json!({"code": phone.code(1)})).await;
    signed_in.assert(StatusCode::OK);
    let body = signed_in.json();
    assert_eq!(body["username"], "alice");
    assert_eq!(body["roles"], json!(["ROLE_USER"]));
    assert!(signed_in.refresh_cookie().is_some());
    let access = body["accessToken"].as_str().unwrap();
    assert_eq!(jwt_part(access, 1)["amr"], json!(["pwd", "otp"]));
    app.get("/api/test/user", Some(access))
        .await
        .assert(StatusCode::OK);
    // The challenge is used up; the same code in a new challenge is a replay.
    verify(&app, &mfa_token, json!({"code": phone.code(1)}))
        .await
        .assert(StatusCode::UNAUTHORIZED);
    let again = challenge(&app, "alice").await;
    verify(&app, &again, json!({"code": phone.code(1)}))
        .await
        .assert(StatusCode::UNAUTHORIZED);
    // Two steps away is outside the window.
    verify(&app, &again, json!({"code": phone.code(2)}))
        .await
        .assert(StatusCode::UNAUTHORIZED);
    // The refresh keeps the session's amr.
    let refreshed = app.refreshed(&signed_in.refresh_cookie().unwrap()).await;
    assert_eq!(jwt_part(&refreshed.access, 1)["amr"], json!(["pwd", "otp"]));
}

#[tokio::test]
async fn a_recovery_code_works_once_and_a_new_set_voids_the_old() {
    let app = TestApp::new().await;
    let token = app.user_with_roles("bob", &[Role::User]).await;
    let (_phone, codes, enrolled) = enrol(&app, &token).await;
    let mfa_token = challenge(&app, "bob").await;
    let signed_in = verify(
        &app,
        &mfa_token,
        json!({"recoveryCode": codes[0].to_uppercase()}),
    )
    .await;
    signed_in.assert(StatusCode::OK);
    assert_eq!(
        jwt_part(signed_in.json()["accessToken"].as_str().unwrap(), 1)["amr"],
        json!(["pwd", "recovery"])
    );
    let again = challenge(&app, "bob").await;
    verify(&app, &again, json!({"recoveryCode": codes[0]}))
        .await
        .assert(StatusCode::UNAUTHORIZED);
    verify(
        &app,
        &again,
        json!({"code": "123456", "recoveryCode": codes[1]}),
    )
    .await
    .assert(StatusCode::BAD_REQUEST);
    let status = app.get("/api/user/mfa", Some(&enrolled)).await.json();
    assert_eq!(status["recoveryCodesLeft"], 9);

    // A new set (the enrolling session proved the factor a moment ago).
    let fresh = app
        .post("/api/user/mfa/recovery-codes", json!({}), Some(&enrolled))
        .await;
    fresh.assert(StatusCode::OK);
    let fresh: Vec<String> = fresh.json()["recoveryCodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap().to_owned())
        .collect();
    verify(&app, &again, json!({"recoveryCode": codes[1]}))
        .await
        .assert(StatusCode::UNAUTHORIZED);
    verify(&app, &again, json!({"recoveryCode": fresh[0]}))
        .await
        .assert(StatusCode::OK);
}

#[tokio::test]
async fn guessing_codes_ends_the_challenge_and_backs_off_like_passwords() {
    let app = TestApp::new().await;
    let token = app.user_with_roles("carol", &[Role::User]).await;
    let (phone, _codes, _) = enrol(&app, &token).await;
    let wrong = |n: u32| format!("{:06}", (n * 7919) % 1_000_000);
    let mfa_token = challenge(&app, "carol").await;
    let mut guessed = 0;
    for n in 0..5 {
        let guess = wrong(n);
        if guess == phone.code(-1) || guess == phone.code(0) || guess == phone.code(1) {
            continue;
        }
        verify(&app, &mfa_token, json!({"code": guess}))
            .await
            .assert(StatusCode::UNAUTHORIZED);
        guessed += 1;
    }
    assert!(guessed >= 4);
    // Five wrong codes end the challenge (or the back-off refuses first), right code or not.
    let after = verify(&app, &mfa_token, json!({"code": phone.code(1)})).await;
    assert!(
        [StatusCode::UNAUTHORIZED, StatusCode::TOO_MANY_REQUESTS].contains(&after.status),
        "{after:?}"
    );
    // More guesses in new challenges, from an address the owner never signed in from, meet
    // the per-account back-off: 429 with Retry-After. (At the owner's own address the
    // back-off lets them through, as for passwords.)
    let attacker = "203.0.113.66";
    let mut limited = false;
    for n in 10..30 {
        let refused = app
            .send_from(attacker, crate::support::signin_request("carol", PASSWORD))
            .await;
        let fresh = refused.json()["mfaToken"].as_str().unwrap().to_owned();
        let request = crate::support::json_request(
            Method::POST,
            "/api/auth/mfa/verify",
            &json!({"mfaToken": fresh, "code": wrong(n)}),
            None,
        );
        let answer = app.send_from(attacker, request).await;
        if answer.status == StatusCode::TOO_MANY_REQUESTS {
            assert!(answer.header("retry-after").is_some());
            limited = true;
            break;
        }
        answer.assert(StatusCode::UNAUTHORIZED);
    }
    assert!(limited, "code guessing never backed off");
    let kinds: Vec<String> = app
        .state
        .storage
        .audit_events(
            None,
            tollgate::audit::AuditKind::parse("mfa_failed"),
            100,
            0,
        )
        .await
        .unwrap()
        .0
        .into_iter()
        .map(|e| e.kind)
        .collect();
    assert!(kinds.len() >= 5);
}

#[tokio::test]
async fn sensitive_changes_ask_for_a_recent_factor() {
    let app = TestApp::with_settings(|settings| {
        settings.step_up_window = Duration::from_secs(1);
    })
    .await;
    let token = app.user_with_roles("dave", &[Role::User]).await;
    let (phone, codes, enrolled) = enrol(&app, &token).await;
    // Proven a moment ago: allowed.
    app.request(
        Method::PUT,
        "/api/user/password",
        json!({"currentPassword": PASSWORD, "newPassword": "a brand new passphrase"}),
        Some(&enrolled),
    )
    .await
    .assert(StatusCode::OK);
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let stale = app
        .request(
            Method::PUT,
            "/api/user/password",
            json!({"currentPassword": "a brand new passphrase", "newPassword": PASSWORD}),
            Some(&enrolled),
        )
        .await;
    stale.assert(StatusCode::UNAUTHORIZED);
    assert_eq!(stale.json()["reason"], "step_up_required");
    app.delete("/api/user/mfa/totp", Some(&enrolled))
        .await
        .assert(StatusCode::UNAUTHORIZED);
    // Step-up with the next code, then the change goes through.
    let stepped = app
        .post(
            "/api/auth/mfa/step-up",
            json!({"code": phone.code(1)}),
            Some(&enrolled),
        )
        .await;
    stepped.assert(StatusCode::OK);
    let stepped = stepped.json()["accessToken"].as_str().unwrap().to_owned();
    app.request(
        Method::PUT,
        "/api/user/password",
        json!({"currentPassword": "a brand new passphrase", "newPassword": PASSWORD}),
        Some(&stepped),
    )
    .await
    .assert(StatusCode::OK);
    // A recovery code steps up too; then the factor can be removed.
    tokio::time::sleep(Duration::from_millis(2100)).await;
    app.post(
        "/api/auth/mfa/step-up",
        json!({"recoveryCode": codes[3]}),
        Some(&stepped),
    )
    .await
    .assert(StatusCode::OK);
    app.delete("/api/user/mfa/totp", Some(&stepped))
        .await
        .assert(StatusCode::OK);
    // Without a factor, the password alone signs in.
    app.signin("dave", PASSWORD).await.assert(StatusCode::OK);
}

#[tokio::test]
async fn admin_changes_ask_an_admin_with_a_factor_for_a_recent_one() {
    let app = TestApp::with_settings(|settings| {
        settings.step_up_window = Duration::from_secs(1);
    })
    .await;
    let token = app
        .user_with_roles("root", &[Role::Admin, Role::User])
        .await;
    app.user_with_roles("erin", &[Role::User]).await;
    let (phone, _codes, enrolled) = enrol(&app, &token).await;
    let erin = app
        .get("/api/admin/users?q=erin", Some(&enrolled))
        .await
        .json()["users"][0]["id"]
        .as_i64()
        .unwrap();
    tokio::time::sleep(Duration::from_millis(2100)).await;
    // Reading needs nothing more; changing needs a recent factor.
    app.get(&format!("/api/admin/users/{erin}"), Some(&enrolled))
        .await
        .assert(StatusCode::OK);
    let refused = app
        .post(
            &format!("/api/admin/users/{erin}/disable"),
            json!({}),
            Some(&enrolled),
        )
        .await;
    refused.assert(StatusCode::UNAUTHORIZED);
    assert_eq!(refused.json()["reason"], "step_up_required");
    let stepped = app
        .post(
            "/api/auth/mfa/step-up",
            json!({"code": phone.code(1)}),
            Some(&enrolled),
        )
        .await;
    let stepped = stepped.json()["accessToken"].as_str().unwrap().to_owned();
    app.post(
        &format!("/api/admin/users/{erin}/disable"),
        json!({}),
        Some(&stepped),
    )
    .await
    .assert(StatusCode::OK);
}

#[tokio::test]
async fn a_role_that_requires_a_factor_gets_nothing_until_one_is_enrolled() {
    let app = TestApp::with_settings(|settings| {
        settings.require_mfa_for_roles = vec![Role::Admin];
    })
    .await;
    app.user_with_roles("plain", &[Role::User]).await;
    let token = app
        .user_with_roles("boss", &[Role::Admin, Role::User])
        .await;
    assert_eq!(jwt_part(&token, 1)["mfa_enrol"], true);
    let refused = app.get("/api/test/admin", Some(&token)).await;
    refused.assert(StatusCode::FORBIDDEN);
    assert_eq!(refused.json()["reason"], "mfa_enrollment_required");
    app.get("/api/admin/users", Some(&token))
        .await
        .assert(StatusCode::FORBIDDEN);
    // What enrolment needs works: the profile, the status, the enrolment itself, logout.
    app.get("/api/user/me", Some(&token))
        .await
        .assert(StatusCode::OK);
    let status = app.get("/api/user/mfa", Some(&token)).await.json();
    assert_eq!(status["required"], true);
    let (phone, _codes, enrolled) = enrol(&app, &token).await;
    assert!(jwt_part(&enrolled, 1).get("mfa_enrol").is_none());
    app.get("/api/test/admin", Some(&enrolled))
        .await
        .assert(StatusCode::OK);
    // The factor cannot be removed while the role requires it.
    app.delete("/api/user/mfa/totp", Some(&enrolled))
        .await
        .assert(StatusCode::CONFLICT);
    // Users without the role are untouched.
    let plain = app.token_for("plain").await;
    app.get("/api/test/user", Some(&plain))
        .await
        .assert(StatusCode::OK);
    // The next sign-in asks for the factor.
    let mfa_token = challenge(&app, "boss").await;
    verify(&app, &mfa_token, json!({"code": phone.code(1)}))
        .await
        .assert(StatusCode::OK);
}

#[tokio::test]
async fn an_admin_resets_a_users_factors_and_a_password_reset_does_not_bypass_them() {
    let app = TestApp::new().await;
    let admin = app
        .user_with_roles("root", &[Role::Admin, Role::User])
        .await;
    let token = app.user_with_roles("frank", &[Role::User]).await;
    let (_phone, _codes, enrolled) = enrol(&app, &token).await;
    let frank = app
        .get("/api/admin/users?q=frank", Some(&admin))
        .await
        .json()["users"][0]
        .clone();
    assert_eq!(frank["mfa"], true);
    let id = frank["id"].as_i64().unwrap();
    // A new password set by an admin: the factor still guards the sign-in.
    app.request(
        Method::PUT,
        &format!("/api/admin/users/{id}/password"),
        json!({"password": "set by the admin"}),
        Some(&admin),
    )
    .await
    .assert(StatusCode::OK);
    let refused = app.signin("frank", "set by the admin").await;
    assert_eq!(refused.json()["reason"], "mfa_required");
    // The admin's reset: factors gone, sessions ended, the password alone signs in.
    app.delete(&format!("/api/admin/users/{id}/mfa"), Some(&admin))
        .await
        .assert(StatusCode::OK);
    app.get("/api/test/user", Some(&enrolled))
        .await
        .assert(StatusCode::UNAUTHORIZED);
    app.signin("frank", "set by the admin")
        .await
        .assert(StatusCode::OK);
    let kinds: Vec<String> = app
        .state
        .storage
        .audit_events(Some(id), None, 100, 0)
        .await
        .unwrap()
        .0
        .into_iter()
        .map(|e| e.kind)
        .collect();
    assert!(kinds.contains(&"mfa_reset".to_owned()), "{kinds:?}");
    assert!(kinds.contains(&"mfa_enrolled".to_owned()), "{kinds:?}");
}

#[tokio::test]
async fn an_admin_session_without_a_proven_factor_stays_limited_after_enrolment_elsewhere() {
    let app = TestApp::with_settings(|settings| {
        settings.require_mfa_for_roles = vec![Role::Admin];
        settings.step_up_window = Duration::from_secs(1);
    })
    .await;
    let token = app
        .user_with_roles("boss", &[Role::Admin, Role::User])
        .await;
    // A second session, opened with the password alone before any factor exists.
    let other = app.session("boss").await;
    let (phone, _codes, enrolled) = enrol(&app, &token).await;
    // Its refresh does not turn it into a full admin session: it proved no factor.
    let refreshed = app.refreshed(&other.refresh).await;
    assert_eq!(jwt_part(&refreshed.access, 1)["mfa_enrol"], true);
    app.get("/api/test/admin", Some(&refreshed.access))
        .await
        .assert(StatusCode::FORBIDDEN);
    // Proving the factor there (step-up) makes it whole.
    let stepped = app
        .post(
            "/api/auth/mfa/step-up",
            json!({"code": phone.code(1)}),
            Some(&refreshed.access),
        )
        .await;
    stepped.assert(StatusCode::OK);
    let stepped = stepped.json()["accessToken"].as_str().unwrap().to_owned();
    app.get("/api/test/admin", Some(&stepped))
        .await
        .assert(StatusCode::OK);

    // Handing out privileged roles through the tutorial's sign-up is an admin change too.
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let refused = app
        .post(
            "/api/auth/signup",
            json!({"username": "mole", "email": "mole@example.com", "password": PASSWORD, "roles": ["admin"]}),
            Some(&enrolled),
        )
        .await;
    refused.assert(StatusCode::UNAUTHORIZED);
    assert_eq!(refused.json()["reason"], "step_up_required");
    assert!(refused.header("www-authenticate").is_none());
}

#[tokio::test]
async fn the_second_step_answers_in_the_shape_of_the_route_the_sign_in_began_at() {
    let app = TestApp::new().await;
    let token = app
        .user_with_roles("gina", &[Role::User, Role::Moderator])
        .await;
    let (phone, codes, _) = enrol(&app, &token).await;
    let refused = app
        .post(
            "/api/auth/login",
            json!({"email": "gina@example.com", "password": PASSWORD}),
            None,
        )
        .await;
    refused.assert(StatusCode::UNAUTHORIZED);
    let mfa_token = refused.json()["mfaToken"].as_str().unwrap().to_owned();
    let done = verify(&app, &mfa_token, json!({"code": phone.code(1)})).await;
    done.assert(StatusCode::OK);
    let body = done.json();
    assert_eq!(body["user"]["role"], "moderator", "{body}");
    assert_eq!(body["user"]["username"], "gina");
    assert!(body["accessToken"].is_string());
    // The tutorial's route keeps its own shape.
    let mfa_token = challenge(&app, "gina").await;
    let done = verify(&app, &mfa_token, json!({"recoveryCode": codes[0]})).await;
    assert_eq!(done.json()["roles"], json!(["ROLE_USER", "ROLE_MODERATOR"]));
}

#[tokio::test]
async fn an_enrolment_only_token_does_not_get_in_the_way_of_mailed_links() {
    let app = TestApp::with_settings(|settings| {
        settings.require_mfa_for_roles = vec![Role::Admin];
    })
    .await;
    let token = app.user_with_roles("ivy", &[Role::Admin]).await;
    let answer = app
        .post(
            "/api/auth/verify-email",
            json!({"token": "not-a-real-link"}),
            Some(&token),
        )
        .await;
    answer.assert(StatusCode::BAD_REQUEST);
}
