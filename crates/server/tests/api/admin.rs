//! The admin API: listing, inspecting and changing users, and reading the audit log.

use api::Role;
use axum::http::{Method, StatusCode};
use serde_json::{Value, json};
use time::{OffsetDateTime, format_description::well_known::Rfc3339};

use crate::support::{PASSWORD, TestApp, TestResponse, json_request};

const LAST_ADMIN: &str = "The last admin cannot lose the admin role or be disabled or deleted.";

/// An app with one admin, `root1`; returns the app and the admin's access token.
async fn app_with_admin() -> (TestApp, String) {
    let app = TestApp::new().await;
    let admin = app.user_with_roles("root1", &[Role::Admin]).await;
    (app, admin)
}

/// Creates users straight in the database (one hash for all of them, to keep tests quick),
/// without signing them in. Returns their ids, in order.
async fn add_users(app: &TestApp, users: &[(&str, &str, &[Role])]) -> Vec<i64> {
    let hash = app
        .state
        .passwords
        .hash(&api::Password::parse(PASSWORD).unwrap())
        .await
        .unwrap();
    let mut ids = Vec::new();
    for (username, email, roles) in users {
        ids.push(
            app.state
                .storage
                .insert_user(&tollgate::storage::NewUser {
                    username: &api::Username::parse(username).unwrap(),
                    email: &api::Email::parse(email).unwrap(),
                    password_hash: &hash,
                    roles,
                    email_verified_at: None,
                })
                .await
                .unwrap(),
        );
    }
    ids
}

async fn id_of(app: &TestApp, username: &str) -> i64 {
    app.state
        .storage
        .user_by_username(username)
        .await
        .unwrap()
        .unwrap_or_else(|| panic!("no user {username}"))
        .id
}

/// Percent-encodes a query-string value.
fn encode(value: &str) -> String {
    value
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

fn usernames(list: &Value) -> Vec<String> {
    list["users"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["username"].as_str().unwrap().to_owned())
        .collect()
}

async fn search(app: &TestApp, admin: &str, q: &str) -> Value {
    let response = app
        .get(&format!("/api/admin/users?q={}", encode(q)), Some(admin))
        .await;
    response.assert(StatusCode::OK);
    response.json()
}

async fn set_roles(app: &TestApp, admin: &str, id: i64, roles: Value) -> TestResponse {
    app.request(
        Method::PUT,
        &format!("/api/admin/users/{id}/roles"),
        json!({ "roles": roles }),
        Some(admin),
    )
    .await
}

async fn admin_post(app: &TestApp, admin: &str, id: i64, action: &str) -> TestResponse {
    app.post(
        &format!("/api/admin/users/{id}/{action}"),
        json!({}),
        Some(admin),
    )
    .await
}

async fn admin_user(app: &TestApp, admin: &str, id: i64) -> Value {
    let response = app
        .get(&format!("/api/admin/users/{id}"), Some(admin))
        .await;
    response.assert(StatusCode::OK);
    response.json()
}

async fn audit(app: &TestApp, admin: &str, query: &str) -> Value {
    let response = app
        .get(&format!("/api/admin/audit?{query}"), Some(admin))
        .await;
    response.assert(StatusCode::OK);
    response.json()
}

fn kinds(page: &Value) -> Vec<String> {
    page["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap().to_owned())
        .collect()
}

// --- The audit log's contents and retention -----------------------------------------------

#[tokio::test]
async fn a_failed_signin_records_what_was_typed_only_if_it_could_be_a_username() {
    let (app, admin) = app_with_admin().await;
    for typed in [
        "hunter2 secret!",
        "Bob.Smith",
        "x\u{202E}y",
        &"a".repeat(300),
    ] {
        app.signin(typed, "whatever password")
            .await
            .assert(StatusCode::UNAUTHORIZED);
    }
    let response = app
        .get("/api/admin/audit?kind=signin_failed", Some(&admin))
        .await;
    response.assert(StatusCode::OK);
    assert!(!response.text().contains("hunter2"), "{}", response.text());
    let page = response.json();
    let details: Vec<&str> = page["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["detail"].as_str().unwrap())
        .collect();
    assert_eq!(
        details,
        [
            "unknown username (invalid)",
            "unknown username (invalid)",
            "unknown username: bob.smith",
            "unknown username (invalid)",
        ]
    );
}

#[tokio::test]
async fn audit_events_older_than_the_retention_are_purged() {
    use tollgate::audit::{AuditEvent, AuditKind};
    // Housekeeping purges by the real clock; here the test's clock decides.
    let app = TestApp::with_settings(|s| s.audit_retention = None).await;
    let storage = &app.state.storage;
    let day = 86_400;
    let now = 1_000 * day;
    for age_days in [200, 120, 91, 89, 10, 0] {
        storage
            .record_audit(
                &AuditEvent {
                    detail: Some(format!("{age_days} days old")),
                    ..AuditEvent::new(AuditKind::Logout, None)
                },
                now - age_days * day,
            )
            .await
            .unwrap();
    }
    assert_eq!(storage.purge_audit(now - 90 * day).await.unwrap(), 3);
    let (kept, total) = storage.audit_events(None, None, 10, 0).await.unwrap();
    assert_eq!(total, 3);
    let details: Vec<_> = kept.iter().filter_map(|e| e.detail.as_deref()).collect();
    assert_eq!(details, ["0 days old", "10 days old", "89 days old"]);
    // Nothing left to purge; an empty log is fine too.
    assert_eq!(storage.purge_audit(now - 90 * day).await.unwrap(), 0);
    assert_eq!(storage.purge_audit(now + day).await.unwrap(), 3);
    assert_eq!(storage.purge_audit(now + day).await.unwrap(), 0);
}

// --- Who may call the admin API -----------------------------------------------------------

#[tokio::test]
async fn every_admin_route_refuses_non_admins_with_403_and_anonymous_callers_with_401() {
    let (app, admin) = app_with_admin().await;
    // A moderator is not an admin: roles do not imply each other.
    let moderator = app
        .user_with_roles("mod1", &[Role::User, Role::Moderator])
        .await;
    let target = add_users(&app, &[("victim", "victim@example.com", &[Role::User])]).await[0];
    let mod_id = id_of(&app, "mod1").await;
    let routes = [
        (Method::GET, "/api/admin/users".to_owned(), json!({})),
        (Method::GET, "/api/admin/users?q=vic".to_owned(), json!({})),
        (Method::GET, format!("/api/admin/users/{target}"), json!({})),
        (
            Method::PUT,
            format!("/api/admin/users/{mod_id}/roles"),
            json!({"roles": ["admin"]}),
        ),
        (
            Method::POST,
            format!("/api/admin/users/{target}/disable"),
            json!({}),
        ),
        (
            Method::POST,
            format!("/api/admin/users/{target}/enable"),
            json!({}),
        ),
        (
            Method::DELETE,
            format!("/api/admin/users/{target}"),
            json!({}),
        ),
        (
            Method::DELETE,
            format!("/api/admin/users/{target}/sessions"),
            json!({}),
        ),
        (Method::GET, "/api/admin/audit".to_owned(), json!({})),
    ];
    for (method, path, body) in &routes {
        let response = app
            .request(method.clone(), path, body.clone(), Some(&moderator))
            .await;
        assert_eq!(response.status, StatusCode::FORBIDDEN, "{method} {path}");
        assert_eq!(
            response.json(),
            json!({"message": "Require Admin Role!"}),
            "{method} {path}"
        );

        let response = app.request(method.clone(), path, body.clone(), None).await;
        assert_eq!(response.status, StatusCode::UNAUTHORIZED, "{method} {path}");
        assert_eq!(response.message(), "No token provided!", "{method} {path}");

        let response = app
            .request(method.clone(), path, body.clone(), Some("not-a-token"))
            .await;
        assert_eq!(response.status, StatusCode::UNAUTHORIZED, "{method} {path}");
    }

    // None of the refused calls changed anything.
    let victim = admin_user(&app, &admin, target).await;
    assert_eq!(victim["roles"], json!(["ROLE_USER"]));
    assert_eq!(victim["disabled"], json!(false));
    assert_eq!(
        admin_user(&app, &admin, mod_id).await["roles"],
        json!(["ROLE_USER", "ROLE_MODERATOR"])
    );
    app.get("/api/test/mod", Some(&moderator))
        .await
        .assert(StatusCode::OK);
    app.signin("victim", PASSWORD).await.assert(StatusCode::OK);
    let admin_kinds = audit(&app, &admin, "").await;
    for kind in kinds(&admin_kinds) {
        assert!(
            ["signin_ok"].contains(&kind.as_str()),
            "refused call was audited as {kind}"
        );
    }
}

// --- Listing and searching users ----------------------------------------------------------

#[tokio::test]
async fn users_are_found_by_part_of_username_or_email_whatever_the_case() {
    let (app, admin) = app_with_admin().await;
    add_users(
        &app,
        &[
            ("Erin.Case", "erin@example.com", &[Role::User]),
            ("dave", "D.Smith@Mail.Test", &[Role::User]),
            ("frank", "frank@example.com", &[Role::User, Role::Moderator]),
        ],
    )
    .await;

    // Each user found comes with their own roles (the admin's address is at example.com too).
    let found = search(&app, &admin, "example.com").await;
    let roles: Vec<&Value> = found["users"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| &u["roles"])
        .collect();
    assert_eq!(
        roles,
        [
            &json!(["ROLE_ADMIN"]),
            &json!(["ROLE_USER"]),
            &json!(["ROLE_USER", "ROLE_MODERATOR"])
        ]
    );

    // By username, in any case (PostgreSQL's LIKE is case-sensitive, so this is not free).
    for q in ["erin.case", "ERIN.C", "rin.Ca"] {
        let found = search(&app, &admin, q).await;
        assert_eq!(usernames(&found), ["Erin.Case"], "q={q}");
        assert_eq!(found["total"], 1, "q={q}");
    }
    // By email only: "smith" and "mail.test" are not in dave's username.
    for q in ["SMITH", "d.smith@mail", "Mail.TEST"] {
        let found = search(&app, &admin, q).await;
        assert_eq!(usernames(&found), ["dave"], "q={q}");
        assert_eq!(found["total"], 1, "q={q}");
    }
    // Both fields are searched: "example" is in every email but dave's.
    assert_eq!(
        usernames(&search(&app, &admin, "example").await),
        ["root1", "Erin.Case", "frank"]
    );
    // Surrounding blanks are ignored.
    assert_eq!(
        usernames(&search(&app, &admin, "  frank ").await),
        ["frank"]
    );
    // No match is an empty page, not an error.
    let none = search(&app, &admin, "nobody-like-this").await;
    assert_eq!(none["users"], json!([]));
    assert_eq!(none["total"], 0);
    // No q lists everyone.
    let all = app.get("/api/admin/users", Some(&admin)).await;
    all.assert(StatusCode::OK);
    assert_eq!(all.json()["total"], 4);
}

#[tokio::test]
async fn percent_and_underscore_in_a_search_are_literal_not_wildcards() {
    let (app, admin) = app_with_admin().await;
    add_users(
        &app,
        &[
            ("a_b", "first@example.com", &[Role::User]),
            ("axb", "second@example.com", &[Role::User]),
            ("pct", "100%sure@example.com", &[Role::User]),
            ("plain", "plain@example.com", &[Role::User]),
        ],
    )
    .await;

    // As wildcards, `_` and `%` would match every user.
    assert_eq!(usernames(&search(&app, &admin, "_").await), ["a_b"]);
    assert_eq!(usernames(&search(&app, &admin, "a_b").await), ["a_b"]);
    assert_eq!(usernames(&search(&app, &admin, "%").await), ["pct"]);
    assert_eq!(usernames(&search(&app, &admin, "0%s").await), ["pct"]);
    assert_eq!(search(&app, &admin, "%").await["total"], 1);
    assert_eq!(search(&app, &admin, "p%t").await["total"], 0);
    // The escape character itself is literal too.
    let backslash = search(&app, &admin, "\\").await;
    assert_eq!(backslash["total"], 0);
    assert_eq!(search(&app, &admin, "a\\_b").await["total"], 0);
}

#[tokio::test]
async fn without_paging_parameters_the_first_20_users_are_listed_in_id_order() {
    let (app, admin) = app_with_admin().await;
    let names: Vec<String> = (0..24).map(|i| format!("u{:02}", 23 - i)).collect();
    let emails: Vec<String> = names.iter().map(|n| format!("{n}@example.com")).collect();
    let users: Vec<(&str, &str, &[Role])> = names
        .iter()
        .zip(&emails)
        .map(|(n, e)| (n.as_str(), e.as_str(), &[Role::User][..]))
        .collect();
    let mut ids = vec![id_of(&app, "root1").await];
    ids.extend(add_users(&app, &users).await);

    let response = app.get("/api/admin/users", Some(&admin)).await;
    response.assert(StatusCode::OK);
    let body = response.json();
    assert_eq!(body["page"], 1);
    assert_eq!(body["perPage"], 20);
    assert_eq!(body["total"], 25);
    let listed: Vec<i64> = body["users"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["id"].as_i64().unwrap())
        .collect();
    // Names were inserted in reverse order: the list follows ids, not names.
    assert_eq!(listed, ids[..20]);
    assert_eq!(usernames(&body)[..3], ["root1", "u23", "u22"]);
}

#[tokio::test]
async fn the_user_list_is_paged_in_id_order() {
    let (app, admin) = app_with_admin().await;
    // Inserted in non-alphabetical order: the list follows ids, not names.
    let mut ids = vec![id_of(&app, "root1").await];
    ids.extend(
        add_users(
            &app,
            &[
                ("zed", "zed@x.test", &[Role::User]),
                ("andy", "andy@x.test", &[Role::User]),
                ("mike", "mike@x.test", &[Role::User]),
                ("bea", "bea@x.test", &[Role::User]),
            ],
        )
        .await,
    );

    let mut seen = Vec::new();
    for page in 1..=3 {
        let response = app
            .get(
                &format!("/api/admin/users?page={page}&per_page=2"),
                Some(&admin),
            )
            .await;
        response.assert(StatusCode::OK);
        let body = response.json();
        assert_eq!(body["page"], page);
        assert_eq!(body["perPage"], 2);
        assert_eq!(body["total"], 5);
        let users = body["users"].as_array().unwrap();
        assert_eq!(users.len(), if page == 3 { 1 } else { 2 }, "page {page}");
        seen.extend(users.iter().map(|u| u["id"].as_i64().unwrap()));
    }
    assert_eq!(seen, ids);
    assert!(ids.windows(2).all(|w| w[0] < w[1]));

    // Past the end: an empty page that still tells the total.
    let past = app
        .get("/api/admin/users?page=4&per_page=2", Some(&admin))
        .await;
    past.assert(StatusCode::OK);
    assert_eq!(past.json()["users"], json!([]));
    assert_eq!(past.json()["total"], 5);

    // The smallest and largest page sizes are accepted.
    for per_page in [1, 100] {
        let response = app
            .get(
                &format!("/api/admin/users?page=1&per_page={per_page}"),
                Some(&admin),
            )
            .await;
        response.assert(StatusCode::OK);
        assert_eq!(response.json()["perPage"], per_page);
    }

    // Paging applies to the filtered list, and total counts only the matches.
    let filtered = app
        .get("/api/admin/users?q=d&page=2&per_page=1", Some(&admin))
        .await;
    filtered.assert(StatusCode::OK);
    // "d" is in zed and andy (in that id order), in no other username or email.
    assert_eq!(usernames(&filtered.json()), ["andy"]);
    assert_eq!(filtered.json()["total"], 2);
}

#[tokio::test]
async fn bad_paging_is_refused_with_a_json_400() {
    let (app, admin) = app_with_admin().await;
    for route in ["/api/admin/users", "/api/admin/audit"] {
        for query in [
            "page=0",
            "per_page=0",
            "per_page=101",
            "page=abc",
            "per_page=abc",
            "page=-1",
            "page=1.5",
            "per_page=99999999999",
        ] {
            let response = app.get(&format!("{route}?{query}"), Some(&admin)).await;
            assert_eq!(
                response.status,
                StatusCode::BAD_REQUEST,
                "{route}?{query}: {}",
                response.text()
            );
            assert!(
                response.message().starts_with("Invalid query string"),
                "{route}?{query}: {}",
                response.message()
            );
        }
    }
}

#[tokio::test]
async fn out_of_range_paging_is_refused_with_a_message_naming_the_parameter() {
    let (app, admin) = app_with_admin().await;
    for route in ["/api/admin/users", "/api/admin/audit"] {
        for (query, message) in [
            ("page=0", "Invalid query string: page starts at 1"),
            (
                "per_page=0",
                "Invalid query string: per_page must be between 1 and 100",
            ),
            (
                "per_page=101",
                "Invalid query string: per_page must be between 1 and 100",
            ),
        ] {
            let response = app.get(&format!("{route}?{query}"), Some(&admin)).await;
            response.assert(StatusCode::BAD_REQUEST);
            assert_eq!(response.message(), message, "{route}?{query}");
        }
        // Just inside the bounds is fine.
        for query in ["page=1", "per_page=1", "per_page=100"] {
            app.get(&format!("{route}?{query}"), Some(&admin))
                .await
                .assert(StatusCode::OK);
        }
    }
}

#[tokio::test]
async fn an_overlong_search_or_one_with_control_characters_is_refused() {
    let (app, admin) = app_with_admin().await;
    let response = app
        .get(
            &format!("/api/admin/users?q={}", "a".repeat(255)),
            Some(&admin),
        )
        .await;
    response.assert(StatusCode::BAD_REQUEST);
    assert_eq!(response.message(), "Invalid query string: q is too long");
    assert_eq!(search(&app, &admin, &"a".repeat(254)).await["total"], 0);
    for q in ["a\tb", "\u{0}", "x\u{7f}"] {
        let response = app
            .get(&format!("/api/admin/users?q={}", encode(q)), Some(&admin))
            .await;
        response.assert(StatusCode::BAD_REQUEST);
        assert_eq!(
            response.message(),
            "Invalid query string: q must not contain control characters",
            "{q:?}"
        );
    }
}

// --- One user -----------------------------------------------------------------------------

#[tokio::test]
async fn an_admin_sees_a_users_fields() {
    let (app, admin) = app_with_admin().await;
    let before = OffsetDateTime::now_utc().replace_nanosecond(0).unwrap();
    app.post(
        "/api/auth/signup",
        json!({"username": "Carol", "email": "Carol@Example.com", "password": PASSWORD}),
        None,
    )
    .await
    .assert(StatusCode::OK);
    let id = id_of(&app, "carol").await;

    let user = admin_user(&app, &admin, id).await;
    let created_at = user["createdAt"].as_str().unwrap().to_owned();
    assert_eq!(
        user,
        json!({
            "id": id,
            "username": "Carol",
            "email": "carol@example.com",
            "roles": ["ROLE_USER"],
            "disabled": false,
            "createdAt": created_at,
            "emailVerified": false,
            "lastSigninAt": null,
            "mfa": false,
            "factors": [],
        })
    );
    let created = OffsetDateTime::parse(&created_at, &Rfc3339).unwrap();
    assert!(
        created >= before && created <= OffsetDateTime::now_utc(),
        "{created_at}"
    );

    let admin_id = id_of(&app, "root1").await;
    assert_eq!(
        admin_user(&app, &admin, admin_id).await["roles"],
        json!(["ROLE_ADMIN"])
    );
}

#[tokio::test]
async fn an_unknown_user_is_404_and_a_non_numeric_id_is_400() {
    let (app, admin) = app_with_admin().await;
    let missing = app.get("/api/admin/users/999999", Some(&admin)).await;
    missing.assert(StatusCode::NOT_FOUND);
    assert_eq!(missing.json(), json!({"message": "User not found."}));

    for id in ["abc", "1.5", "99999999999999999999"] {
        let response = app
            .get(&format!("/api/admin/users/{id}"), Some(&admin))
            .await;
        assert_eq!(
            response.status,
            StatusCode::BAD_REQUEST,
            "{id}: {}",
            response.text()
        );
        assert_eq!(response.message(), "Invalid identifier in the path.");
    }
}

// --- Roles --------------------------------------------------------------------------------

#[tokio::test]
async fn changing_roles_revokes_the_users_tokens_and_a_new_signin_carries_the_new_roles() {
    let (app, admin) = app_with_admin().await;
    app.signup("carol").await.assert(StatusCode::OK);
    let id = id_of(&app, "carol").await;
    let old = app.session("carol").await;
    app.get("/api/test/user", Some(&old.access))
        .await
        .assert(StatusCode::OK);
    app.get("/api/test/mod", Some(&old.access))
        .await
        .assert(StatusCode::FORBIDDEN);

    let response = set_roles(&app, &admin, id, json!(["user", "moderator"])).await;
    response.assert(StatusCode::OK);
    let body = response.json();
    assert_eq!(body["id"], id);
    assert_eq!(body["username"], "carol");
    assert_eq!(body["roles"], json!(["ROLE_USER", "ROLE_MODERATOR"]));

    // The old token still says ROLE_USER only: it is refused at once.
    let refused = app.get("/api/test/user", Some(&old.access)).await;
    refused.assert(StatusCode::UNAUTHORIZED);
    assert_eq!(refused.message(), "Unauthorized!");

    // A fresh sign-in carries the new roles.
    let signin = app.signin("carol", PASSWORD).await;
    signin.assert(StatusCode::OK);
    assert_eq!(
        signin.json()["roles"],
        json!(["ROLE_USER", "ROLE_MODERATOR"])
    );
    let fresh = signin.json()["accessToken"].as_str().unwrap().to_owned();
    let content = app.get("/api/test/mod", Some(&fresh)).await;
    content.assert(StatusCode::OK);
    assert_eq!(content.text(), "Moderator Content.");

    // The session is not ended by a role change: refreshing picks up the new roles.
    let refreshed = app.refreshed(&old.refresh).await;
    app.get("/api/test/mod", Some(&refreshed.access))
        .await
        .assert(StatusCode::OK);

    // The stored roles agree.
    assert_eq!(
        app.state.storage.roles_of(id).await.unwrap(),
        [Role::User, Role::Moderator]
    );
}

#[tokio::test]
async fn role_lists_are_deduplicated_and_may_replace_every_role() {
    let (app, admin) = app_with_admin().await;
    let id = add_users(
        &app,
        &[("carol", "carol@example.com", &[Role::User, Role::Moderator])],
    )
    .await[0];

    let response = set_roles(&app, &admin, id, json!(["moderator", "moderator"])).await;
    response.assert(StatusCode::OK);
    assert_eq!(response.json()["roles"], json!(["ROLE_MODERATOR"]));

    // Given in any order, shown in the usual order.
    let response = set_roles(&app, &admin, id, json!(["admin", "user"])).await;
    response.assert(StatusCode::OK);
    assert_eq!(response.json()["roles"], json!(["ROLE_USER", "ROLE_ADMIN"]));
    let token = app.token_for("carol").await;
    app.get("/api/admin/users", Some(&token))
        .await
        .assert(StatusCode::OK);
}

#[tokio::test]
async fn bad_role_changes_are_refused_and_change_nothing() {
    let (app, admin) = app_with_admin().await;
    let id = add_users(&app, &[("carol", "carol@example.com", &[Role::User])]).await[0];
    let carol = app.token_for("carol").await;

    let unknown = set_roles(&app, &admin, id, json!(["user", "x"])).await;
    unknown.assert(StatusCode::BAD_REQUEST);
    assert_eq!(
        unknown.json(),
        json!({"message": "Failed! Role does not exist = x"})
    );
    // Role names are the tutorial's, not authorities.
    let authority = set_roles(&app, &admin, id, json!(["ROLE_ADMIN"])).await;
    authority.assert(StatusCode::BAD_REQUEST);
    assert_eq!(
        authority.message(),
        "Failed! Role does not exist = ROLE_ADMIN"
    );

    let empty = set_roles(&app, &admin, id, json!([])).await;
    empty.assert(StatusCode::BAD_REQUEST);
    assert!(empty.message().contains("roles"), "{}", empty.message());

    for body in [json!({}), json!({"roles": "admin"}), json!({"roles": [1]})] {
        let response = app
            .request(
                Method::PUT,
                &format!("/api/admin/users/{id}/roles"),
                body.clone(),
                Some(&admin),
            )
            .await;
        assert_eq!(
            response.status,
            StatusCode::BAD_REQUEST,
            "{body}: {}",
            response.text()
        );
        response.message();
    }

    let missing = set_roles(&app, &admin, 999_999, json!(["user"])).await;
    missing.assert(StatusCode::NOT_FOUND);
    assert_eq!(missing.message(), "User not found.");

    // Nothing changed: same roles, and carol's token was not revoked.
    assert_eq!(
        admin_user(&app, &admin, id).await["roles"],
        json!(["ROLE_USER"])
    );
    app.get("/api/test/user", Some(&carol))
        .await
        .assert(StatusCode::OK);
    assert_eq!(audit(&app, &admin, "kind=roles_changed").await["total"], 0);
}

// --- The last admin -----------------------------------------------------------------------

#[tokio::test]
async fn the_last_admin_cannot_demote_disable_or_delete_themself() {
    let (app, admin) = app_with_admin().await;
    let admin_id = id_of(&app, "root1").await;
    let session = app.session("root1").await;

    for roles in [json!(["user"]), json!(["user", "moderator"])] {
        let response = set_roles(&app, &admin, admin_id, roles).await;
        response.assert(StatusCode::CONFLICT);
        assert_eq!(response.json(), json!({"message": LAST_ADMIN}));
    }
    let disable = admin_post(&app, &admin, admin_id, "disable").await;
    disable.assert(StatusCode::CONFLICT);
    assert_eq!(disable.json(), json!({"message": LAST_ADMIN}));
    let delete = app
        .delete(&format!("/api/admin/users/{admin_id}"), Some(&admin))
        .await;
    delete.assert(StatusCode::CONFLICT);
    assert_eq!(delete.json(), json!({"message": LAST_ADMIN}));

    // Nothing changed: still an enabled admin, tokens and session still good.
    let user = admin_user(&app, &admin, admin_id).await;
    assert_eq!(user["roles"], json!(["ROLE_ADMIN"]));
    assert_eq!(user["disabled"], false);
    app.get("/api/test/admin", Some(&admin))
        .await
        .assert(StatusCode::OK);
    app.get("/api/test/admin", Some(&session.access))
        .await
        .assert(StatusCode::OK);
    app.refreshed(&session.refresh).await;
    app.signin("root1", PASSWORD).await.assert(StatusCode::OK);
    let page = audit(&app, &admin, "").await;
    for kind in kinds(&page) {
        assert!(
            !["roles_changed", "user_disabled", "user_deleted"].contains(&kind.as_str()),
            "a refused change was audited as {kind}"
        );
    }
}

#[tokio::test]
async fn the_last_admin_may_change_their_other_roles_while_keeping_admin() {
    let (app, admin) = app_with_admin().await;
    let admin_id = id_of(&app, "root1").await;
    let response = set_roles(&app, &admin, admin_id, json!(["admin", "moderator"])).await;
    response.assert(StatusCode::OK);
    assert_eq!(
        response.json()["roles"],
        json!(["ROLE_MODERATOR", "ROLE_ADMIN"])
    );
}

#[tokio::test]
async fn with_two_admins_one_can_demote_the_other_and_then_is_the_last_admin() {
    let (app, root1) = app_with_admin().await;
    let root2 = app.user_with_roles("root2", &[Role::Admin]).await;
    let root1_id = id_of(&app, "root1").await;
    let root2_id = id_of(&app, "root2").await;

    let response = set_roles(&app, &root1, root2_id, json!(["user"])).await;
    response.assert(StatusCode::OK);
    assert_eq!(response.json()["roles"], json!(["ROLE_USER"]));

    // root2 is no longer an admin, and their old admin token is refused at once.
    app.get("/api/admin/users", Some(&root2))
        .await
        .assert(StatusCode::UNAUTHORIZED);
    let fresh = app.token_for("root2").await;
    let refused = app.get("/api/admin/users", Some(&fresh)).await;
    refused.assert(StatusCode::FORBIDDEN);
    assert_eq!(refused.message(), "Require Admin Role!");

    // root1 is now the last admin.
    set_roles(&app, &root1, root1_id, json!(["user"]))
        .await
        .assert(StatusCode::CONFLICT);
    assert_eq!(
        admin_user(&app, &root1, root1_id).await["roles"],
        json!(["ROLE_ADMIN"])
    );
}

#[tokio::test]
async fn with_two_admins_either_may_be_disabled_or_deleted_but_not_both() {
    let (app, root1) = app_with_admin().await;
    let ids = add_users(
        &app,
        &[
            ("root2", "root2@example.com", &[Role::Admin]),
            ("root3", "root3@example.com", &[Role::Admin]),
        ],
    )
    .await;
    let root1_id = id_of(&app, "root1").await;

    app.delete(&format!("/api/admin/users/{}", ids[0]), Some(&root1))
        .await
        .assert(StatusCode::OK);
    // root1 may even delete themself while root3 remains...
    let root3 = app.token_for("root3").await;
    app.delete(&format!("/api/admin/users/{root1_id}"), Some(&root1))
        .await
        .assert(StatusCode::OK);
    // ...and root3, the last admin, is then protected.
    let response = app
        .delete(&format!("/api/admin/users/{}", ids[1]), Some(&root3))
        .await;
    response.assert(StatusCode::CONFLICT);
    assert_eq!(response.message(), LAST_ADMIN);
    admin_post(&app, &root3, ids[1], "disable")
        .await
        .assert(StatusCode::CONFLICT);
    assert_eq!(
        app.get("/api/admin/users", Some(&root3)).await.json()["total"],
        1
    );
}

#[tokio::test]
async fn a_disabled_admin_does_not_count_as_an_enabled_admin() {
    let (app, root1) = app_with_admin().await;
    let root1_id = id_of(&app, "root1").await;
    let root2_id = add_users(&app, &[("root2", "root2@example.com", &[Role::Admin])]).await[0];

    admin_post(&app, &root1, root2_id, "disable")
        .await
        .assert(StatusCode::OK);

    // root2 still holds the admin role, but disabled: root1 is the last enabled admin.
    assert_eq!(
        admin_user(&app, &root1, root2_id).await["roles"],
        json!(["ROLE_ADMIN"])
    );
    let demote = set_roles(&app, &root1, root1_id, json!(["user"])).await;
    demote.assert(StatusCode::CONFLICT);
    assert_eq!(demote.message(), LAST_ADMIN);
    admin_post(&app, &root1, root1_id, "disable")
        .await
        .assert(StatusCode::CONFLICT);
    app.delete(&format!("/api/admin/users/{root1_id}"), Some(&root1))
        .await
        .assert(StatusCode::CONFLICT);
    let user = admin_user(&app, &root1, root1_id).await;
    assert_eq!(user["roles"], json!(["ROLE_ADMIN"]));
    assert_eq!(user["disabled"], false);

    // Enabled again, root2 counts, and root1 may step down.
    admin_post(&app, &root1, root2_id, "enable")
        .await
        .assert(StatusCode::OK);
    set_roles(&app, &root1, root1_id, json!(["user"]))
        .await
        .assert(StatusCode::OK);
    let root2 = app.token_for("root2").await;
    app.get("/api/admin/users", Some(&root2))
        .await
        .assert(StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_admins_removing_each_other_at_once_leave_exactly_one_enabled_admin() {
    for change in ["demote", "disable", "delete"] {
        let (app, root1) = app_with_admin().await;
        let root2 = app.user_with_roles("root2", &[Role::Admin]).await;
        let root1_id = id_of(&app, "root1").await;
        let root2_id = id_of(&app, "root2").await;

        let mut tasks = tokio::task::JoinSet::new();
        for (token, target) in [(root1.clone(), root2_id), (root2.clone(), root1_id)] {
            let request = match change {
                "demote" => json_request(
                    Method::PUT,
                    &format!("/api/admin/users/{target}/roles"),
                    &json!({"roles": ["user"]}),
                    Some(&token),
                ),
                "disable" => json_request(
                    Method::POST,
                    &format!("/api/admin/users/{target}/disable"),
                    &json!({}),
                    Some(&token),
                ),
                _ => json_request(
                    Method::DELETE,
                    &format!("/api/admin/users/{target}"),
                    &json!({}),
                    Some(&token),
                ),
            };
            let router = app.router.clone();
            tasks.spawn(async move {
                tower::ServiceExt::oneshot(router, request)
                    .await
                    .unwrap()
                    .status()
            });
        }
        let mut statuses = tasks.join_all().await;
        statuses.sort();
        // One wins; the other, by then the last admin's target, is refused (or, if it came
        // second with a revoked token, is refused at authentication).
        assert_eq!(statuses[0], StatusCode::OK, "{change}: {statuses:?}");
        assert!(
            [StatusCode::UNAUTHORIZED, StatusCode::CONFLICT].contains(&statuses[1]),
            "{change}: {statuses:?}"
        );
        let enabled_admins = app
            .state
            .storage
            .list_users()
            .await
            .unwrap()
            .into_iter()
            .filter(|u| u.roles.contains(&Role::Admin) && !u.disabled)
            .count();
        assert_eq!(enabled_admins, 1, "{change}");
    }
}

// --- Disable, enable, delete, end sessions ------------------------------------------------

#[tokio::test]
async fn disabling_a_user_stops_their_tokens_at_once_and_enabling_lets_them_sign_in_again() {
    let (app, admin) = app_with_admin().await;
    app.signup("carol").await.assert(StatusCode::OK);
    let id = id_of(&app, "carol").await;
    let session = app.session("carol").await;
    app.get("/api/test/user", Some(&session.access))
        .await
        .assert(StatusCode::OK);

    let response = admin_post(&app, &admin, id, "disable").await;
    response.assert(StatusCode::OK);
    assert_eq!(response.json(), json!({"message": "User disabled."}));
    assert_eq!(admin_user(&app, &admin, id).await["disabled"], true);

    let refused = app.get("/api/test/user", Some(&session.access)).await;
    refused.assert(StatusCode::UNAUTHORIZED);
    assert_eq!(refused.message(), "Unauthorized!");
    app.refresh(&session.refresh, &[])
        .await
        .assert(StatusCode::UNAUTHORIZED);

    let signin = app.signin("carol", PASSWORD).await;
    signin.assert(StatusCode::FORBIDDEN);
    assert_eq!(signin.message(), "This account is disabled.");
    // A wrong password does not reveal that the account is disabled.
    app.signin("carol", "wrong password")
        .await
        .assert(StatusCode::UNAUTHORIZED);

    let response = admin_post(&app, &admin, id, "enable").await;
    response.assert(StatusCode::OK);
    assert_eq!(response.json(), json!({"message": "User enabled."}));
    assert_eq!(admin_user(&app, &admin, id).await["disabled"], false);

    let fresh = app.session("carol").await;
    app.get("/api/test/user", Some(&fresh.access))
        .await
        .assert(StatusCode::OK);
    // Enabling does not bring the old session back.
    app.get("/api/test/user", Some(&session.access))
        .await
        .assert(StatusCode::UNAUTHORIZED);
    app.refresh(&session.refresh, &[])
        .await
        .assert(StatusCode::UNAUTHORIZED);
    app.refreshed(&fresh.refresh).await;
}

#[tokio::test]
async fn disabling_or_enabling_an_unknown_user_is_404() {
    let (app, admin) = app_with_admin().await;
    for action in ["disable", "enable"] {
        let response = admin_post(&app, &admin, 999_999, action).await;
        response.assert(StatusCode::NOT_FOUND);
        assert_eq!(response.message(), "User not found.");
    }
    let response = app
        .post("/api/admin/users/abc/disable", json!({}), Some(&admin))
        .await;
    response.assert(StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn deleting_a_user_revokes_their_token_and_forgets_them() {
    let (app, admin) = app_with_admin().await;
    app.signup("carol").await.assert(StatusCode::OK);
    let id = id_of(&app, "carol").await;
    let session = app.session("carol").await;

    let response = app
        .delete(&format!("/api/admin/users/{id}"), Some(&admin))
        .await;
    response.assert(StatusCode::OK);
    assert_eq!(response.json(), json!({"message": "User deleted."}));

    app.get("/api/test/user", Some(&session.access))
        .await
        .assert(StatusCode::UNAUTHORIZED);
    app.refresh(&session.refresh, &[])
        .await
        .assert(StatusCode::UNAUTHORIZED);
    let signin = app.signin("carol", PASSWORD).await;
    signin.assert(StatusCode::UNAUTHORIZED);
    assert_eq!(signin.message(), "Invalid username or password.");
    app.get(&format!("/api/admin/users/{id}"), Some(&admin))
        .await
        .assert(StatusCode::NOT_FOUND);
    assert_eq!(search(&app, &admin, "carol").await["total"], 0);
    let again = app
        .delete(&format!("/api/admin/users/{id}"), Some(&admin))
        .await;
    again.assert(StatusCode::NOT_FOUND);
    assert_eq!(again.message(), "User not found.");

    // The name is free again; the new carol is someone else, and the old token stays dead.
    app.signup("carol").await.assert(StatusCode::OK);
    assert_ne!(id_of(&app, "carol").await, id);
    app.get("/api/test/user", Some(&session.access))
        .await
        .assert(StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn ending_a_users_sessions_revokes_their_tokens_but_they_can_sign_in_again() {
    let (app, admin) = app_with_admin().await;
    app.signup("carol").await.assert(StatusCode::OK);
    let id = id_of(&app, "carol").await;
    let laptop = app.session("carol").await;
    let phone = app.session("carol").await;
    let bystander = add_users(&app, &[("dave", "dave@example.com", &[Role::User])]).await[0];
    let dave = app.session("dave").await;

    let response = app
        .delete(&format!("/api/admin/users/{id}/sessions"), Some(&admin))
        .await;
    response.assert(StatusCode::OK);
    assert_eq!(response.message(), "2 session(s) ended.");

    for session in [&laptop, &phone] {
        app.get("/api/test/user", Some(&session.access))
            .await
            .assert(StatusCode::UNAUTHORIZED);
        app.refresh(&session.refresh, &[])
            .await
            .assert(StatusCode::UNAUTHORIZED);
    }
    // Carol is neither disabled nor deleted: she can sign in again.
    assert_eq!(admin_user(&app, &admin, id).await["disabled"], false);
    let fresh = app.session("carol").await;
    app.get("/api/test/user", Some(&fresh.access))
        .await
        .assert(StatusCode::OK);
    // Other users' sessions, and the admin's, are untouched.
    app.get("/api/test/user", Some(&dave.access))
        .await
        .assert(StatusCode::OK);
    app.refreshed(&dave.refresh).await;
    app.get("/api/test/admin", Some(&admin))
        .await
        .assert(StatusCode::OK);

    let events = audit(&app, &admin, &format!("user={id}&kind=session_revoked")).await;
    assert_eq!(events["total"], 1);
    assert_eq!(events["events"][0]["actorId"], id_of(&app, "root1").await);
    assert_eq!(
        audit(
            &app,
            &admin,
            &format!("user={bystander}&kind=session_revoked")
        )
        .await["total"],
        0
    );

    let missing = app
        .delete("/api/admin/users/999999/sessions", Some(&admin))
        .await;
    missing.assert(StatusCode::NOT_FOUND);
    assert_eq!(missing.message(), "User not found.");
}

// --- Audit log ----------------------------------------------------------------------------

#[tokio::test]
async fn the_audit_log_records_account_and_admin_events_newest_first() {
    let (app, admin) = app_with_admin().await;
    let admin_id = id_of(&app, "root1").await;

    app.signup("carol").await.assert(StatusCode::OK);
    let carol = id_of(&app, "carol").await;
    app.signin("carol", PASSWORD).await.assert(StatusCode::OK);
    app.signin("carol", "wrong password")
        .await
        .assert(StatusCode::UNAUTHORIZED);
    set_roles(&app, &admin, carol, json!(["user", "moderator"]))
        .await
        .assert(StatusCode::OK);
    admin_post(&app, &admin, carol, "disable")
        .await
        .assert(StatusCode::OK);
    admin_post(&app, &admin, carol, "enable")
        .await
        .assert(StatusCode::OK);
    app.delete(&format!("/api/admin/users/{carol}"), Some(&admin))
        .await
        .assert(StatusCode::OK);

    // Everything about carol, newest first, and still there after she was deleted.
    let page = audit(&app, &admin, &format!("user={carol}")).await;
    assert_eq!(
        kinds(&page),
        [
            "user_deleted",
            "user_enabled",
            "user_disabled",
            "roles_changed",
            "signin_failed",
            "signin_ok",
            "signup",
        ]
    );
    assert_eq!(page["total"], 7);
    assert_eq!(page["page"], 1);
    assert_eq!(page["perPage"], 20);
    let events = page["events"].as_array().unwrap();
    let ids: Vec<i64> = events.iter().map(|e| e["id"].as_i64().unwrap()).collect();
    assert!(ids.windows(2).all(|w| w[0] > w[1]), "{ids:?}");
    for event in events {
        assert_eq!(event["userId"], carol, "{event}");
        let by_admin = [
            "roles_changed",
            "user_disabled",
            "user_enabled",
            "user_deleted",
        ]
        .contains(&event["kind"].as_str().unwrap());
        let expected_actor = if by_admin {
            json!(admin_id)
        } else {
            json!(null)
        };
        assert_eq!(event["actorId"], expected_actor, "{event}");
        assert_eq!(event["ip"], "127.0.0.1", "{event}");
        OffsetDateTime::parse(event["at"].as_str().unwrap(), &Rfc3339)
            .unwrap_or_else(|e| panic!("{event}: {e}"));
    }
    let roles_changed = &events[3];
    assert_eq!(roles_changed["detail"], "user,moderator");
    assert!(events[5]["sessionId"].is_string(), "{}", events[5]);

    // By kind: root1's sign-in and carol's, newest first.
    let signins = audit(&app, &admin, "kind=signin_ok").await;
    assert_eq!(signins["total"], 2);
    assert_eq!(kinds(&signins), ["signin_ok", "signin_ok"]);
    let who: Vec<i64> = signins["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["userId"].as_i64().unwrap())
        .collect();
    assert_eq!(who, [carol, admin_id]);

    // By user and kind together.
    let both = audit(&app, &admin, &format!("user={admin_id}&kind=signin_ok")).await;
    assert_eq!(both["total"], 1);
    assert_eq!(both["events"][0]["userId"], admin_id);
    let none = audit(&app, &admin, &format!("user={admin_id}&kind=user_deleted")).await;
    assert_eq!(none["total"], 0);
    assert_eq!(none["events"], json!([]));

    // Unfiltered: everything, and an empty kind means no filter.
    let all = audit(&app, &admin, "").await;
    assert_eq!(all["total"], 8);
    assert_eq!(audit(&app, &admin, "kind=").await["total"], 8);
}

#[tokio::test]
async fn the_audit_log_is_paged_newest_first() {
    let (app, admin) = app_with_admin().await;
    app.signup("carol").await.assert(StatusCode::OK);
    let carol = id_of(&app, "carol").await;
    for _ in 0..3 {
        app.signin("carol", "wrong password")
            .await
            .assert(StatusCode::UNAUTHORIZED);
    }
    app.signin("carol", PASSWORD).await.assert(StatusCode::OK);

    // Newest first: signin_ok, 3 x signin_failed, signup.
    let first = audit(&app, &admin, &format!("user={carol}&page=1&per_page=2")).await;
    assert_eq!(kinds(&first), ["signin_ok", "signin_failed"]);
    assert_eq!(first["page"], 1);
    assert_eq!(first["perPage"], 2);
    assert_eq!(first["total"], 5);
    let third = audit(&app, &admin, &format!("user={carol}&page=3&per_page=2")).await;
    assert_eq!(kinds(&third), ["signup"]);
    assert_eq!(third["total"], 5);
    let failed = audit(
        &app,
        &admin,
        &format!("user={carol}&kind=signin_failed&page=2&per_page=2"),
    )
    .await;
    assert_eq!(kinds(&failed), ["signin_failed"]);
    assert_eq!(failed["total"], 3);
}

#[tokio::test]
async fn an_unknown_audit_kind_or_user_filter_is_400() {
    let (app, admin) = app_with_admin().await;
    for query in ["kind=nonsense", "kind=SIGNUP", "user=abc"] {
        let response = app
            .get(&format!("/api/admin/audit?{query}"), Some(&admin))
            .await;
        assert_eq!(
            response.status,
            StatusCode::BAD_REQUEST,
            "{query}: {}",
            response.text()
        );
        assert!(
            response.message().starts_with("Invalid query string"),
            "{query}: {}",
            response.message()
        );
    }
    let unknown = app
        .get("/api/admin/audit?kind=nonsense", Some(&admin))
        .await;
    assert_eq!(unknown.message(), "Invalid query string: unknown kind");
}

#[tokio::test]
async fn search_by_any_part_stays_in_step_with_changes_to_the_users() {
    let (app, admin) = app_with_admin().await;
    add_users(
        &app,
        &[
            ("Alice.Smith", "alice@corp.example", &[Role::User]),
            ("bob", "bob@home.example", &[Role::User]),
            ("xbcabcx", "x1@other.example", &[Role::User]),
            ("abcq", "qbcd@else.example", &[Role::User]),
        ],
    )
    .await;
    // The index finds rows holding every trigram of the query; only rows holding the query
    // itself are answered: not all the trigrams in a different order, nor spread over the
    // name and the address.
    assert_eq!(search(&app, &admin, "abcab").await["total"], 0);
    assert_eq!(search(&app, &admin, "abcd").await["total"], 0);
    assert_eq!(usernames(&search(&app, &admin, "bcabc").await), ["xbcabcx"]);
    // FTS5 folds `ſ` to `s`; the search does not (nor does PostgreSQL's): no match.
    assert_eq!(search(&app, &admin, "ſmi").await["total"], 0);
    // Any part, whatever the case; through the index (3 characters or more) or not.
    assert_eq!(
        usernames(&search(&app, &admin, "smi").await),
        ["Alice.Smith"]
    );
    assert_eq!(
        usernames(&search(&app, &admin, "E.SMITH").await),
        ["Alice.Smith"]
    );
    assert_eq!(
        usernames(&search(&app, &admin, "corp.ex").await),
        ["Alice.Smith"]
    );
    assert_eq!(usernames(&search(&app, &admin, "ob").await), ["bob"]);
    assert_eq!(search(&app, &admin, "a\"b").await["total"], 0);
    assert_eq!(search(&app, &admin, "\"smith\"").await["total"], 0);
    // A deleted user is gone from it.
    let bob = id_of(&app, "bob").await;
    app.delete(&format!("/api/admin/users/{bob}"), Some(&admin))
        .await
        .assert(StatusCode::OK);
    assert_eq!(search(&app, &admin, "home.example").await["total"], 0);
    // A changed address is found by its new value only.
    let alice = id_of(&app, "Alice.Smith").await;
    // (As a confirmed address change does, straight in the database.)
    let change = "UPDATE users SET email = 'alice@new.example' WHERE id = $1";
    if app.db.url.starts_with("sqlite:") {
        use sqlx::Connection;
        let mut db = sqlx::SqliteConnection::connect(&app.db.url).await.unwrap();
        sqlx::query(change)
            .bind(alice)
            .execute(&mut db)
            .await
            .unwrap();
    } else {
        use sqlx::Connection;
        let mut db = sqlx::PgConnection::connect(&app.db.url).await.unwrap();
        sqlx::query(change)
            .bind(alice)
            .execute(&mut db)
            .await
            .unwrap();
    }
    assert_eq!(search(&app, &admin, "corp.ex").await["total"], 0);
    assert_eq!(
        usernames(&search(&app, &admin, "new.exam").await),
        ["Alice.Smith"]
    );
}

/// With enough users for the search to learn which trigrams are common, a query made mostly of
/// them (`user5000` among `user0` … `user59999`) is looked up by its uncommon part and still
/// finds exactly the users that contain it, with the right total.
#[tokio::test]
async fn a_search_made_of_common_trigrams_finds_exactly_what_contains_it() {
    let db = crate::support::TestDatabase::fresh().await;
    let storage = db.storage().await;
    if let Some(pool) = storage.postgres_pool() {
        sqlx::query(
            "INSERT INTO users (username, email, password_hash, created_at, updated_at) \
             SELECT 'user' || g, 'user' || g || '@scale.example', 'x', now(), now() \
             FROM generate_series(0, 59999) g",
        )
        .execute(pool)
        .await
        .unwrap();
        sqlx::query("ANALYZE users").execute(pool).await.unwrap();
    } else {
        let pool = sqlx::SqlitePool::connect(&db.url).await.unwrap();
        sqlx::query(
            "WITH RECURSIVE g(n) AS (SELECT 0 UNION ALL SELECT n + 1 FROM g WHERE n < 59999) \
             INSERT INTO users (username, email, password_hash, created_at, updated_at) \
             SELECT 'user' || n, 'user' || n || '@scale.example', 'x', \
                    '2026-01-01T00:00:00Z', '2026-01-01T00:00:00Z' FROM g",
        )
        .execute(&pool)
        .await
        .unwrap();
        pool.close().await;
    }
    storage.refresh_search_hints().await.unwrap();
    // Found while SQLite's index has yet to take the users in (checked one by one)...
    let waiting = storage.search_users("USER5000", 20, 0).await.unwrap();
    assert_eq!(waiting.total, 11);
    // ... and through the index once it has.
    storage.catch_up_search_index().await.unwrap();
    assert_eq!(storage.users_waiting_for_search_index(), 0);

    let names = |page: &tollgate::storage::UserPage| {
        page.users
            .iter()
            .map(|u| u.username.clone())
            .collect::<Vec<_>>()
    };
    let found = storage.search_users("USER5000", 20, 0).await.unwrap();
    let expected: Vec<String> = ["user5000".to_owned()]
        .into_iter()
        .chain((50000..50010).map(|n| format!("user{n}")))
        .collect();
    assert_eq!(names(&found), expected);
    assert_eq!(found.total, 11);
    // A later page, and past the last one: the total all the same.
    let second = storage.search_users("user5000", 5, 5).await.unwrap();
    assert_eq!(names(&second), expected[5..10]);
    assert_eq!(second.total, 11);
    let past = storage.search_users("user5000", 20, 40).await.unwrap();
    assert!(past.users.is_empty());
    assert_eq!(past.total, 11);
    // A fragment of the addresses: every tenth user.
    let fragment = storage.search_users("9@scale.", 3, 0).await.unwrap();
    assert_eq!(names(&fragment), ["user9", "user19", "user29"]);
    assert_eq!(fragment.total, 6000);
}

/// Runs `sql` (with `id` bound) straight in the test's database, as a tool or another node would.
async fn run_sql(url: &str, sql: &str, id: Option<i64>) {
    use sqlx::Connection;
    if url.starts_with("sqlite:") {
        let mut db = sqlx::SqliteConnection::connect(url).await.unwrap();
        let mut query = sqlx::query(sql);
        if let Some(id) = id {
            query = query.bind(id);
        }
        query.execute(&mut db).await.unwrap();
    } else {
        let mut db = sqlx::PgConnection::connect(url).await.unwrap();
        let sql = sql.replace("?", "$1");
        let mut query = sqlx::query(&sql);
        if let Some(id) = id {
            query = query.bind(id);
        }
        query.execute(&mut db).await.unwrap();
    }
}

/// SQLite's search index takes users in after they change (in the background, in batches);
/// until it does, a search checks them one by one. Either way a search finds exactly the
/// users as they are now: added, renamed and deleted users, by trigram (answered by the index
/// alone) and by longer queries (4-grams, checked), names in any script.
#[tokio::test]
async fn a_search_is_exact_before_and_after_the_index_takes_changes_in() {
    let db = crate::support::TestDatabase::fresh().await;
    let storage = db.storage().await;
    let sqlite = db.url.starts_with("sqlite:");
    let add = "INSERT INTO users (username, email, password_hash, created_at, updated_at) VALUES \
               ('Alice', 'alice@home.example', 'x', '2026-01-01T00:00:00Z', '2026-01-01T00:00:00Z'), \
               ('bob', 'bob@work.example', 'x', '2026-01-01T00:00:00Z', '2026-01-01T00:00:00Z'), \
               ('日本語ユーザー', 'nihon@home.example', 'x', '2026-01-01T00:00:00Z', '2026-01-01T00:00:00Z'), \
               ('Dmitri', 'x1@other.example', 'x', '2026-01-01T00:00:00Z', '2026-01-01T00:00:00Z'), \
               ('eve', 'Eve.Long@Mixed.Example', 'x', '2026-01-01T00:00:00Z', '2026-01-01T00:00:00Z')";
    let add = if sqlite {
        add.to_owned()
    } else {
        add.replace("'2026-01-01T00:00:00Z'", "now()")
    };
    run_sql(&db.url, &add, None).await;
    expect_added(&storage, sqlite, false).await;
    let taken = storage.catch_up_search_index().await.unwrap();
    assert_eq!(taken, if sqlite { 5 } else { 0 });
    expect_added(&storage, sqlite, true).await;

    // Renamed and deleted: the index still holds what they were until it takes them in again.
    let alice = storage.search_users("alice", 1, 0).await.unwrap().users[0].id;
    let bob = storage.search_users("bob@", 1, 0).await.unwrap().users[0].id;
    run_sql(
        &db.url,
        "UPDATE users SET username = 'Carol', email = 'carol@home.example' WHERE id = ?",
        Some(alice),
    )
    .await;
    run_sql(&db.url, "DELETE FROM users WHERE id = ?", Some(bob)).await;
    expect_changed(&storage, sqlite, false).await;
    let taken = storage.catch_up_search_index().await.unwrap();
    assert_eq!(taken, if sqlite { 2 } else { 0 });
    expect_changed(&storage, sqlite, true).await;
}

/// The usernames a search for `q` finds, checked against its total.
async fn found(storage: &tollgate::storage::Storage, q: &str) -> Vec<String> {
    let page = storage.search_users(q, 20, 0).await.unwrap();
    let names: Vec<String> = page.users.into_iter().map(|u| u.username).collect();
    assert_eq!(usize::try_from(page.total).unwrap(), names.len(), "{q}");
    names
}

/// On SQLite, whether the search index has taken in every change.
async fn assert_indexed(storage: &tollgate::storage::Storage, sqlite: bool, indexed: bool) {
    if sqlite {
        let waiting = storage
            .count_users_waiting_for_search_index()
            .await
            .unwrap();
        assert_eq!(waiting == 0, indexed, "{waiting} waiting");
    }
}

async fn expect_added(storage: &tollgate::storage::Storage, sqlite: bool, indexed: bool) {
    assert_indexed(storage, sqlite, indexed).await;
    assert_eq!(found(storage, "lic").await, ["Alice"]);
    assert_eq!(found(storage, "ALICE@").await, ["Alice"]);
    assert_eq!(found(storage, "e@home.ex").await, ["Alice"]);
    assert_eq!(
        found(storage, "home.example").await,
        ["Alice", "日本語ユーザー"]
    );
    assert_eq!(found(storage, "本語ユ").await, ["日本語ユーザー"]);
    assert_eq!(found(storage, "本語ユー").await, ["日本語ユーザー"]);
    assert_eq!(found(storage, "bob@work").await, ["bob"]);
    assert!(found(storage, "lice@work").await.is_empty());
    // A name's 4-grams, whatever the case (not its address's).
    assert_eq!(found(storage, "MITR").await, ["Dmitri"]);
    assert_eq!(found(storage, "dmitri").await, ["Dmitri"]);
    // An address a tool wrote in capitals (Tollgate stores them lower-cased; SQLite's check
    // folds them all the same, PostgreSQL's compares them as stored).
    if sqlite {
        assert_eq!(found(storage, "long@mixed").await, ["eve"]);
        assert_eq!(found(storage, "ve.").await, ["eve"]);
    }
    // Quotes are text to the index, not its syntax.
    assert!(found(storage, "a\"b").await.is_empty());
    assert!(found(storage, "ali\"ce").await.is_empty());
}

async fn expect_changed(storage: &tollgate::storage::Storage, sqlite: bool, indexed: bool) {
    assert_indexed(storage, sqlite, indexed).await;
    assert!(found(storage, "lic").await.is_empty());
    assert!(found(storage, "alice@").await.is_empty());
    assert!(found(storage, "bob").await.is_empty());
    assert!(found(storage, "bob@work").await.is_empty());
    assert_eq!(found(storage, "car").await, ["Carol"]);
    assert_eq!(found(storage, "carol@h").await, ["Carol"]);
    assert_eq!(
        found(storage, "home.example").await,
        ["Carol", "日本語ユーザー"]
    );
}

/// A row a tool wrote with a name that is not text does not stop SQLite's search index from
/// taking in the users queued with it.
#[tokio::test]
async fn a_row_a_tool_wrote_badly_does_not_stop_the_search_index() {
    let db = crate::support::TestDatabase::fresh().await;
    if !db.url.starts_with("sqlite:") {
        return;
    }
    let storage = db.storage().await;
    run_sql(
        &db.url,
        "INSERT INTO users (username, email, password_hash, created_at, updated_at) VALUES \
         (x'c328ff', 'blob@home.example', 'x', '2026-01-01T00:00:00Z', '2026-01-01T00:00:00Z'), \
         ('frank', 'frank@home.example', 'x', '2026-01-01T00:00:00Z', '2026-01-01T00:00:00Z')",
        None,
    )
    .await;
    assert_eq!(storage.catch_up_search_index().await.unwrap(), 2);
    assert_eq!(storage.users_waiting_for_search_index(), 0);
    assert_eq!(found(&storage, "rank@home").await, ["frank"]);
}
