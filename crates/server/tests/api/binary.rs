//! The built binary over a real port: start-up, migration, the CLI, restart.

use std::{
    io::Write,
    net::TcpListener,
    process::{Child, Command, Output, Stdio},
    time::Duration,
};

use serde_json::{Value, json};

use crate::support::{PASSWORD, TestDatabase};

const BIN: &str = env!("CARGO_BIN_EXE_tollgate");

pub(crate) fn tollgate(db: &TestDatabase) -> Command {
    let mut command = Command::new(BIN);
    command
        .env_clear()
        .env("DATABASE_URL", &db.url)
        .env("RUST_LOG", "warn");
    command
}

pub(crate) fn run(mut command: Command) -> Output {
    command.output().unwrap()
}

pub(crate) fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

pub(crate) fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

pub(crate) struct Server {
    pub child: Child,
    pub base: String,
}

impl Server {
    pub async fn start(db: &TestDatabase) -> Self {
        Self::start_with(db, &[]).await
    }

    /// Starts the binary on a free port with extra arguments, and waits until it answers.
    pub async fn start_with(db: &TestDatabase, args: &[&str]) -> Self {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = tollgate(db)
            .args(["--bind", &format!("127.0.0.1:{port}")])
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let server = Self {
            child,
            base: format!("http://127.0.0.1:{port}"),
        };
        for _ in 0..200 {
            if let Ok(response) = reqwest::get(format!("{}/healthz", server.base)).await
                && response.status().is_success()
            {
                return server;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("tollgate did not start");
    }

    /// Stops the server as an operator would (SIGTERM) and checks it exits cleanly.
    pub fn stop(mut self) {
        let pid = self.child.id().to_string();
        assert!(
            Command::new("kill")
                .args(["-TERM", &pid])
                .status()
                .unwrap()
                .success()
        );
        let status = self.child.wait().unwrap();
        assert!(status.success(), "tollgate exited with {status}");
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
    }
}

pub(crate) async fn post(base: &str, path: &str, body: Value) -> (u16, Value) {
    let response = reqwest::Client::new()
        .post(format!("{base}{path}"))
        .json(&body)
        .send()
        .await
        .unwrap();
    (response.status().as_u16(), response.json().await.unwrap())
}

pub(crate) async fn get(base: &str, path: &str, token: &str) -> (u16, String) {
    let response = reqwest::Client::new()
        .get(format!("{base}{path}"))
        .header("x-access-token", token)
        .send()
        .await
        .unwrap();
    (response.status().as_u16(), response.text().await.unwrap())
}

#[test]
fn help_documents_the_options() {
    let output = Command::new(BIN).arg("--help").output().unwrap();
    assert!(output.status.success());
    let help = stdout(&output);
    for option in [
        "--bind",
        "--database-url",
        "--access-token-ttl",
        "--jwt-algorithm",
        "--jwt-secret",
        "--cors-origin",
        "--allow-self-assigned-roles",
        "DATABASE_URL",
        "user",
    ] {
        assert!(help.contains(option), "--help lacks {option}");
    }
    let user_help = Command::new(BIN)
        .args(["user", "add", "--help"])
        .output()
        .unwrap();
    assert!(stdout(&user_help).contains("--role"));
}

#[test]
fn bad_configuration_fails_fast_with_a_clear_message() {
    let cases: [(&[&str], &str); 4] = [
        (&["--jwt-algorithm", "hs256"], "TOLLGATE_JWT_SECRET"),
        (&["--access-token-ttl", "forever"], "access-token-ttl"),
        (&["--database-url", "mysql://x"], "sqlite:// or postgres://"),
        (&["--cors-origin", "example.com"], "http://"),
    ];
    for (args, expected) in cases {
        let output = Command::new(BIN)
            .env_clear()
            .env("DATABASE_URL", "sqlite::memory:")
            .args(args)
            .output()
            .unwrap();
        assert!(!output.status.success(), "{args:?} started");
        assert!(
            stderr(&output).contains(expected),
            "{args:?}: {}",
            stderr(&output)
        );
    }
}

#[tokio::test]
async fn the_binary_serves_migrates_and_manages_users_from_the_cli() {
    let db = TestDatabase::fresh().await;
    let server = Server::start(&db).await;
    let base = server.base.clone();

    // Sign-up and sign-in over real HTTP.
    let (status, body) = post(
        &base,
        "/api/auth/signup",
        json!({"username": "alice", "email": "alice@example.com", "password": PASSWORD}),
    )
    .await;
    assert_eq!(
        (status, body["message"].as_str()),
        (200, Some("User registered successfully!"))
    );

    // An admin made from the command line, password from the environment.
    let mut add = tollgate(&db);
    add.env("TOLLGATE_PASSWORD", PASSWORD).args([
        "user",
        "add",
        "root",
        "--email",
        "Root@Example.com",
        "--role",
        "admin",
        "--role",
        "user",
    ]);
    let output = run(add);
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(stdout(&output).contains("created user root"));

    // A second user, password piped on stdin.
    let mut add = tollgate(&db);
    add.args(["user", "add", "bob", "--email", "bob@example.com"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = add.spawn().unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(format!("{PASSWORD}\n").as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success(), "{}", stderr(&output));

    // A weak password or a taken name is refused with a message.
    let mut weak = tollgate(&db);
    weak.env("TOLLGATE_PASSWORD", "short").args([
        "user",
        "add",
        "carol",
        "--email",
        "c@example.com",
    ]);
    let output = run(weak);
    assert!(!output.status.success());
    assert!(stderr(&output).contains("Password"), "{}", stderr(&output));
    let mut taken = tollgate(&db);
    taken.env("TOLLGATE_PASSWORD", PASSWORD).args([
        "user",
        "add",
        "ALICE",
        "--email",
        "x@example.com",
    ]);
    let output = run(taken);
    assert!(!output.status.success());
    assert!(
        stderr(&output).contains("Username is already in use"),
        "{}",
        stderr(&output)
    );

    let (status, body) = post(
        &base,
        "/api/auth/signin",
        json!({"username": "root", "password": PASSWORD}),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(body["roles"], json!(["ROLE_USER", "ROLE_ADMIN"]));
    let admin_token = body["accessToken"].as_str().unwrap().to_owned();
    assert_eq!(
        get(&base, "/api/test/admin", &admin_token).await,
        (200, "Admin Content.".to_owned())
    );

    // Grant and revoke; the next sign-in carries the change.
    let mut grant = tollgate(&db);
    grant.args(["user", "grant", "bob", "moderator"]);
    let output = run(grant);
    assert!(output.status.success(), "{}", stderr(&output));
    let (_, body) = post(
        &base,
        "/api/auth/signin",
        json!({"username": "bob", "password": PASSWORD}),
    )
    .await;
    assert_eq!(body["roles"], json!(["ROLE_USER", "ROLE_MODERATOR"]));
    let mut revoke = tollgate(&db);
    revoke.args(["user", "revoke", "bob", "moderator"]);
    assert!(run(revoke).status.success());
    let (_, body) = post(
        &base,
        "/api/auth/signin",
        json!({"username": "bob", "password": PASSWORD}),
    )
    .await;
    assert_eq!(body["roles"], json!(["ROLE_USER"]));
    let mut grant_missing = tollgate(&db);
    grant_missing.args(["user", "grant", "nobody", "admin"]);
    let output = run(grant_missing);
    assert!(!output.status.success());
    assert!(stderr(&output).contains("no user named nobody"));

    let mut list = tollgate(&db);
    list.args(["user", "list"]);
    let output = run(list);
    let listing = stdout(&output);
    for expected in ["alice", "root", "root@example.com", "admin", "bob"] {
        assert!(listing.contains(expected), "{listing}");
    }

    // A restart keeps users and the signing key: the old token still works.
    server.stop();
    let server = Server::start(&db).await;
    assert_eq!(
        get(&server.base, "/api/test/admin", &admin_token).await.0,
        200
    );
    server.stop();
}

fn cli(db: &TestDatabase, args: &[&str]) -> Output {
    let mut command = tollgate(db);
    command.env("TOLLGATE_PASSWORD", PASSWORD).args(args);
    run(command)
}

/// Polls `path` with `token` until it answers `status`; returns how long that took.
async fn until_status(base: &str, path: &str, token: &str, status: u16) -> Option<Duration> {
    let started = std::time::Instant::now();
    while started.elapsed() < Duration::from_secs(3) {
        if get(base, path, token).await.0 == status {
            return Some(started.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    None
}

#[tokio::test]
async fn cli_changes_reach_the_live_tokens_of_a_running_server() {
    let db = TestDatabase::fresh().await;
    let server = Server::start(&db).await;
    let base = server.base.clone();
    for (name, roles) in [("root", ["admin", "user"]), ("boss", ["admin", "user"])] {
        let output = cli(
            &db,
            &[
                "user",
                "add",
                name,
                "--email",
                &format!("{name}@example.com"),
                "--role",
                roles[0],
                "--role",
                roles[1],
            ],
        );
        assert!(output.status.success(), "{}", stderr(&output));
    }
    let signin = |name: &'static str| {
        let base = base.clone();
        async move {
            let (status, body) = post(
                &base,
                "/api/auth/signin",
                json!({"username": name, "password": PASSWORD}),
            )
            .await;
            (
                status,
                body["accessToken"].as_str().unwrap_or("").to_owned(),
            )
        }
    };
    let (_, boss) = signin("boss").await;
    assert_eq!(get(&base, "/api/test/admin", &boss).await.0, 200);

    // Demoted from the command line: the live admin token stops working within a second.
    let output = cli(&db, &["user", "revoke", "boss", "admin"]);
    assert!(output.status.success(), "{}", stderr(&output));
    let took = until_status(&base, "/api/test/admin", &boss, 401).await;
    assert!(
        took.is_some_and(|t| t <= Duration::from_millis(1200)),
        "still admin after the CLI revoked it ({took:?})"
    );
    // A fresh token carries the new roles: no way to give admin back.
    let (_, boss) = signin("boss").await;
    assert_eq!(get(&base, "/api/test/admin", &boss).await.0, 403);
    assert_eq!(get(&base, "/api/test/user", &boss).await.0, 200);

    // Audited as the API's changes are, marked as the CLI's.
    let (_, root) = signin("root").await;
    let (status, audit) = get(&base, "/api/admin/audit?kind=roles_changed", &root).await;
    assert_eq!(status, 200);
    assert!(audit.contains("(cli)"), "{audit}");

    // The last enabled admin can neither lose the role nor be disabled.
    for args in [
        &["user", "revoke", "root", "admin"][..],
        &["user", "disable", "root"][..],
    ] {
        let output = cli(&db, args);
        assert!(!output.status.success(), "{args:?} succeeded");
        assert!(
            stderr(&output).contains("last admin"),
            "{}",
            stderr(&output)
        );
    }
    assert_eq!(get(&base, "/api/test/admin", &root).await.0, 200);

    // Disabled from the command line: sessions end at once, sign-in is refused; enabled again.
    let output = cli(&db, &["user", "disable", "boss"]);
    assert!(output.status.success(), "{}", stderr(&output));
    let took = until_status(&base, "/api/test/user", &boss, 401).await;
    assert!(
        took.is_some_and(|t| t <= Duration::from_millis(1200)),
        "disabled user's token still works ({took:?})"
    );
    assert_eq!(signin("boss").await.0, 403);
    let output = cli(&db, &["user", "enable", "boss"]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(signin("boss").await.0, 200);
    server.stop();
}
