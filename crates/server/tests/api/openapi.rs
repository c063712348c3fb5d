//! The OpenAPI document: every route described, the viewer served offline under our CSP, and
//! schemathesis run against the served document over real HTTP.
//!
//! Schemathesis comes from PyPI (`pip install schemathesis`); it is found through
//! `TOLLGATE_SCHEMATHESIS` or on `PATH`. Without it the last test is skipped, unless
//! `TOLLGATE_REQUIRE_SCHEMATHESIS` is set (as CI does).

use std::{path::Path, process::Command};

use axum::http::StatusCode;

use crate::{
    binary::{Server, run, stderr, tollgate},
    mail_sink::MailSink,
    support::{TestApp, TestDatabase, jwt_part},
};

/// Every operation the API serves. A route added without a `#[utoipa::path]` cannot be
/// registered (the router takes its path from the attribute), and one registered is listed
/// here: the document and this list must agree.
const OPERATIONS: [(&str, &str); 62] = [
    ("get", "/healthz"),
    ("get", "/readyz"),
    ("get", "/metrics"),
    ("get", "/.well-known/jwks.json"),
    ("post", "/api/auth/signup"),
    ("post", "/api/auth/signin"),
    ("post", "/api/auth/login"),
    ("post", "/api/auth/refresh"),
    ("post", "/api/auth/refreshtoken"),
    ("post", "/api/auth/logout"),
    ("post", "/api/auth/signout"),
    ("get", "/api/auth/sessions"),
    ("delete", "/api/auth/sessions"),
    ("delete", "/api/auth/sessions/{id}"),
    ("post", "/api/auth/password/forgot"),
    ("post", "/api/auth/password/reset"),
    ("post", "/api/auth/verify-email"),
    ("post", "/api/auth/verify-email/resend"),
    ("post", "/api/auth/email/confirm"),
    ("post", "/api/auth/email/report"),
    ("post", "/api/user/email"),
    ("post", "/api/auth/mfa/verify"),
    ("post", "/api/auth/mfa/step-up"),
    ("post", "/api/auth/mfa/passkey"),
    ("post", "/api/auth/mfa/step-up/passkey"),
    ("post", "/api/auth/passkey/begin"),
    ("post", "/api/auth/passkey"),
    ("get", "/api/user/mfa"),
    ("post", "/api/user/mfa/totp"),
    ("delete", "/api/user/mfa/totp"),
    ("post", "/api/user/mfa/totp/confirm"),
    ("post", "/api/user/mfa/recovery-codes"),
    ("get", "/api/user/passkeys"),
    ("post", "/api/user/passkeys"),
    ("post", "/api/user/passkeys/begin"),
    ("patch", "/api/user/passkeys/{id}"),
    ("delete", "/api/user/passkeys/{id}"),
    ("get", "/api/test/all"),
    ("get", "/api/test/user"),
    ("get", "/api/test/mod"),
    ("get", "/api/test/admin"),
    ("get", "/api/user/me"),
    ("put", "/api/user/password"),
    ("get", "/api/admin/users"),
    ("post", "/api/admin/users"),
    ("get", "/api/admin/users/{id}"),
    ("delete", "/api/admin/users/{id}"),
    ("put", "/api/admin/users/{id}/roles"),
    ("put", "/api/admin/users/{id}/password"),
    ("post", "/api/admin/users/{id}/password-reset"),
    ("post", "/api/admin/users/{id}/verify-email"),
    ("post", "/api/admin/users/{id}/disable"),
    ("post", "/api/admin/users/{id}/enable"),
    ("get", "/api/admin/users/{id}/sessions"),
    ("delete", "/api/admin/users/{id}/sessions"),
    ("delete", "/api/admin/users/{id}/mfa"),
    ("get", "/api/admin/audit"),
    ("get", "/api/admin/clients"),
    ("delete", "/api/admin/clients/{name}"),
    ("post", "/oauth/introspect"),
    ("get", "/api/authz/forward-auth"),
    ("get", "/api/authz/auth-request"),
];

#[tokio::test]
async fn the_document_describes_every_route_its_bodies_and_errors() {
    let app = TestApp::new().await;
    let response = app.get("/api/openapi.json", None).await;
    response.assert(StatusCode::OK);
    let doc = response.json();
    assert_eq!(doc["openapi"], "3.1.0");
    assert_eq!(doc["info"]["title"], "Tollgate");

    let mut served: Vec<(String, String)> = doc["paths"]
        .as_object()
        .unwrap()
        .iter()
        .flat_map(|(path, item)| {
            item.as_object()
                .unwrap()
                .keys()
                .filter(|k| matches!(k.as_str(), "get" | "post" | "put" | "patch" | "delete"))
                .map(|method| (method.clone(), path.clone()))
                .collect::<Vec<_>>()
        })
        .collect();
    served.sort();
    let mut expected: Vec<(String, String)> = OPERATIONS
        .iter()
        .map(|(m, p)| ((*m).to_owned(), (*p).to_owned()))
        .collect();
    expected.sort();
    assert_eq!(served, expected);

    for (method, path) in OPERATIONS {
        let operation = &doc["paths"][path][method];
        let responses = operation["responses"].as_object().unwrap();
        assert!(
            responses.keys().any(|s| s.starts_with('2')),
            "{method} {path}: no success answer"
        );
        // The errors every operation shares.
        for status in ["429", "503"] {
            assert!(
                responses.contains_key(status),
                "{method} {path}: no {status}"
            );
        }
        if operation["requestBody"].is_object() {
            for status in ["400", "413", "415"] {
                assert!(
                    responses.contains_key(status),
                    "{method} {path}: no {status}"
                );
            }
        }
        assert!(!responses.contains_key("default"), "{method} {path}");
        assert!(operation["tags"].as_array().is_some_and(|t| !t.is_empty()));
        // Every path parameter is described.
        for name in path
            .split('/')
            .filter_map(|s| s.strip_prefix('{')?.strip_suffix('}'))
        {
            let params = operation["parameters"].as_array().unwrap();
            assert!(
                params
                    .iter()
                    .any(|p| p["name"] == name && p["in"] == "path" && p["required"] == true),
                "{method} {path}: {name} undescribed"
            );
        }
    }

    // Request bodies and their types, security, and the errors a route names.
    let signup = &doc["paths"]["/api/auth/signup"]["post"];
    assert_eq!(
        signup["requestBody"]["content"]["application/json"]["schema"]["$ref"],
        "#/components/schemas/SignupRequest"
    );
    let schemas = &doc["components"]["schemas"];
    assert_eq!(
        schemas["SignupRequest"]["required"],
        serde_json::json!(["username", "email", "password"])
    );
    assert_eq!(
        schemas["SignupRequest"]["properties"]["username"]["minLength"],
        3
    );
    assert_eq!(
        schemas["SignupRequest"]["properties"]["password"]["maxLength"],
        128
    );
    assert!(signup["responses"]["400"].is_object());
    assert_eq!(
        signup["responses"]["429"]["content"]["application/json"]["schema"]["$ref"],
        "#/components/schemas/ErrorBody"
    );
    assert_eq!(
        doc["paths"]["/oauth/introspect"]["post"]["requestBody"]["content"]["application/x-www-form-urlencoded"]
            ["schema"]["$ref"],
        "#/components/schemas/IntrospectionRequest"
    );
    let schemes = &doc["components"]["securitySchemes"];
    assert_eq!(schemes["bearer"]["scheme"], "bearer");
    assert_eq!(schemes["accessToken"]["name"], "x-access-token");
    assert_eq!(schemes["serviceClient"]["scheme"], "basic");
    assert_eq!(schemes["accessCookie"]["name"], "tollgate_access");
    assert_eq!(
        doc["paths"]["/api/admin/users"]["get"]["security"],
        serde_json::json!([{"bearer": []}, {"accessToken": []}])
    );
    let refusal = &schemas["SigninRefusal"]["properties"];
    for field in ["accessToken", "message", "reason", "mfaToken", "methods"] {
        assert!(refusal[field].is_object(), "{field}");
    }
    let forward = &doc["paths"]["/api/authz/forward-auth"]["get"]["responses"]["200"]["headers"];
    for header in [
        "Remote-User",
        "Remote-Email",
        "Remote-Groups",
        "Remote-User-Id",
    ] {
        assert!(forward[header].is_object(), "{header}");
    }
}

#[tokio::test]
async fn the_viewer_is_served_from_here_under_the_csp() {
    let app = TestApp::new().await;
    let page = app.get("/docs/", None).await;
    page.assert(StatusCode::OK);
    let csp = page.header("content-security-policy").unwrap().to_owned();
    assert!(csp.contains("script-src 'self'"), "{csp}");
    let html = page.text();
    assert!(html.contains("swagger-ui"));
    // Nothing from another host: every script and stylesheet is relative.
    for attribute in ["src=\"", "href=\""] {
        for reference in html.split(attribute).skip(1) {
            assert!(!reference.contains("//"), "{reference}");
        }
    }
    for asset in [
        "swagger-ui-bundle.js",
        "swagger-ui.css",
        "swagger-initializer.js",
    ] {
        let response = app.get(&format!("/docs/{asset}"), None).await;
        response.assert(StatusCode::OK);
        assert!(response.body.len() > 100, "{asset}");
    }
    let initializer = app.get("/docs/swagger-initializer.js", None).await.text();
    assert!(initializer.contains("/api/openapi.json"), "{initializer}");
    // No online validator (an image from swagger.io).
    assert!(
        initializer.contains("\"validatorUrl\": \"none\""),
        "{initializer}"
    );
}

/// Where schemathesis is: `TOLLGATE_SCHEMATHESIS`, else on `PATH`.
fn schemathesis() -> Option<String> {
    let candidate =
        std::env::var("TOLLGATE_SCHEMATHESIS").unwrap_or_else(|_| "schemathesis".to_owned());
    let found = Command::new(&candidate)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if found {
        return Some(candidate);
    }
    assert!(
        std::env::var_os("TOLLGATE_REQUIRE_SCHEMATHESIS").is_none(),
        "schemathesis is required (TOLLGATE_REQUIRE_SCHEMATHESIS): pip install schemathesis, \
         and name it in TOLLGATE_SCHEMATHESIS if it is not on PATH"
    );
    None
}

/// Schemathesis against the document the binary serves, on SQLite: every operation, with
/// examples from the schema, its boundaries and random data, valid and not, as an admin. No
/// server error, and no answer that contradicts the document (status, content type, headers,
/// body), and invalid data refused.
#[test]
fn schemathesis_finds_no_server_error_and_no_answer_off_the_document() {
    if std::env::var("TOLLGATE_TEST_DATABASE_URL").is_ok_and(|url| !url.is_empty()) {
        eprintln!("skipped: schemathesis runs in the SQLite pass");
        return;
    }
    let Some(schemathesis) = schemathesis() else {
        eprintln!("skipped: schemathesis not found");
        return;
    };
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let db = runtime.block_on(TestDatabase::fresh());
    let Some(sink) = runtime.block_on(MailSink::start()) else {
        eprintln!("skipped: no SMTP sink (Python's aiosmtpd)");
        return;
    };
    let password = "schemathesis admin password";
    let mut add = tollgate(&db);
    add.env("TOLLGATE_PASSWORD", password).args([
        "user",
        "add",
        "fuzzadmin",
        "--email",
        "fuzzadmin@example.com",
        "--role",
        "admin",
        "--role",
        "user",
    ]);
    let output = run(add);
    assert!(output.status.success(), "{}", stderr(&output));

    let smtp = sink.smtp_url();
    let server = runtime.block_on(Server::start_with(
        &db,
        &[
            "--smtp-url",
            &smtp,
            "--mail-from",
            "Tollgate <auth@tollgate.test>",
            "--access-token-ttl",
            "2h",
            "--rate-limit-signin",
            "0",
            "--rate-limit-signup",
            "0",
            "--rate-limit-refresh",
            "0",
            "--rate-limit-mail",
            "0",
            "--rate-limit-code",
            "0",
        ],
    ));
    let (status, body) = runtime.block_on(crate::binary::post(
        &server.base,
        "/api/auth/signin",
        serde_json::json!({"username": "fuzzadmin", "password": password}),
    ));
    assert_eq!(status, 200, "{body}");
    let token = body["accessToken"].as_str().unwrap().to_owned();
    let admin_id = jwt_part(&token, 1)["sub"].as_str().unwrap().to_owned();

    let hooks = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/schemathesis");
    let report = tempfile::tempdir().unwrap();
    let examples = std::env::var("TOLLGATE_SCHEMATHESIS_EXAMPLES").unwrap_or("25".to_owned());
    let seed = std::env::var("TOLLGATE_SCHEMATHESIS_SEED").unwrap_or("20261201".to_owned());
    // Signing out, and ending a session by id, would end the admin's session: they run in a
    // pass of their own, anonymous.
    let own_session = "^/api/auth/(logout|signout|sessions/\\{id\\})$";
    let passes: [(&str, &[&str]); 2] = [
        (
            "as an admin",
            &[
                "-H",
                &format!("Authorization: Bearer {token}"),
                "--exclude-path-regex",
                own_session,
            ],
        ),
        ("anonymous", &["--include-path-regex", own_session]),
    ];
    for (name, extra) in passes {
        let output = Command::new(&schemathesis)
            .env("PYTHONPATH", &hooks)
            .env("SCHEMATHESIS_HOOKS", "hooks")
            .env("TOLLGATE_ADMIN_ID", &admin_id)
            .env("NO_COLOR", "1")
            .current_dir(report.path())
            .args([
                "run",
                &format!("{}/api/openapi.json", server.base),
                "--url",
                &server.base,
                "--workers",
                "1",
                "--max-examples",
                &examples,
                "--seed",
                &seed,
                "--phases",
                "examples,coverage,fuzzing",
                "--checks",
                "all",
                // Valid by the schema is not always acceptable: a taken username, a wrong
                // password, a code that was never sent. The document cannot say that.
                "--exclude-checks",
                "positive_data_acceptance",
                "--no-shrink",
            ])
            .args(extra)
            .output()
            .unwrap();
        let out = String::from_utf8_lossy(&output.stdout);
        assert!(
            output.status.success(),
            "schemathesis ({name}) failed:\n{out}\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
        eprintln!(
            "schemathesis ({name}): {}",
            out.lines()
                .filter(|l| l.contains("generated") || l.contains("Tested"))
                .collect::<Vec<_>>()
                .join("; ")
        );
    }

    // The admin's session lived through the run: the operations were tested as an admin.
    let (status, _) = runtime.block_on(crate::binary::get(&server.base, "/api/test/admin", &token));
    assert_eq!(status, 200);
    drop(server);
    drop(sink);
}
