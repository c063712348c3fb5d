//! `tollgate import` against the tutorial's own databases, made as its Sequelize models make
//! them: a private MariaDB (Debian's `mariadb-server`, started here on a free loopback port)
//! and PostgreSQL (the CI's, when `TOLLGATE_TEST_DATABASE_URL` is set). A few hundred users
//! with bcrypt cost 8 (as the tutorial hashes), some broken on purpose; then they sign in.
//!
//! Without `/usr/sbin/mariadbd` the MariaDB test is skipped with a message, unless
//! `TOLLGATE_REQUIRE_MARIADB=1` (set by CI) makes that a failure.

use std::{
    path::Path,
    process::{Child, Command, Stdio},
    sync::OnceLock,
    time::Duration,
};

use api::Role;
use axum::http::StatusCode;
use sqlx::{Connection, Executor, MySqlConnection, PgConnection};

use crate::{
    binary::{run, stderr, stdout, tollgate},
    support::{TestApp, TestDatabase},
};

const USERS: usize = 240;

/// The tutorial's tables on MySQL/MariaDB, as Sequelize creates them.
const MYSQL_SCHEMA: &str = "
CREATE TABLE `users` (`id` INTEGER NOT NULL auto_increment, `username` VARCHAR(255),
  `email` VARCHAR(255), `password` VARCHAR(255), `createdAt` DATETIME NOT NULL,
  `updatedAt` DATETIME NOT NULL, PRIMARY KEY (`id`)) ENGINE=InnoDB;
CREATE TABLE `roles` (`id` INTEGER, `name` VARCHAR(255), `createdAt` DATETIME NOT NULL,
  `updatedAt` DATETIME NOT NULL, PRIMARY KEY (`id`)) ENGINE=InnoDB;
CREATE TABLE `user_roles` (`createdAt` DATETIME NOT NULL, `updatedAt` DATETIME NOT NULL,
  `roleId` INTEGER, `userId` INTEGER, PRIMARY KEY (`roleId`, `userId`),
  FOREIGN KEY (`roleId`) REFERENCES `roles` (`id`) ON DELETE CASCADE ON UPDATE CASCADE,
  FOREIGN KEY (`userId`) REFERENCES `users` (`id`) ON DELETE CASCADE ON UPDATE CASCADE) ENGINE=InnoDB;
";

/// The same on PostgreSQL.
const POSTGRES_SCHEMA: &str = r#"
CREATE TABLE "users" ("id" SERIAL, "username" VARCHAR(255), "email" VARCHAR(255),
  "password" VARCHAR(255), "createdAt" TIMESTAMP WITH TIME ZONE NOT NULL,
  "updatedAt" TIMESTAMP WITH TIME ZONE NOT NULL, PRIMARY KEY ("id"));
CREATE TABLE "roles" ("id" INTEGER, "name" VARCHAR(255),
  "createdAt" TIMESTAMP WITH TIME ZONE NOT NULL, "updatedAt" TIMESTAMP WITH TIME ZONE NOT NULL,
  PRIMARY KEY ("id"));
CREATE TABLE "user_roles" ("createdAt" TIMESTAMP WITH TIME ZONE NOT NULL,
  "updatedAt" TIMESTAMP WITH TIME ZONE NOT NULL,
  "roleId" INTEGER REFERENCES "roles" ("id") ON DELETE CASCADE ON UPDATE CASCADE,
  "userId" INTEGER REFERENCES "users" ("id") ON DELETE CASCADE ON UPDATE CASCADE,
  PRIMARY KEY ("roleId", "userId"));
"#;

fn password(i: usize) -> String {
    format!("tutorial password {i}")
}

/// bcrypt cost 8 hashes in bcryptjs's `$2a$` form, made once for every test.
fn hashes() -> &'static [String] {
    static HASHES: OnceLock<Vec<String>> = OnceLock::new();
    HASHES.get_or_init(|| {
        (0..USERS)
            .map(|i| {
                bcrypt::hash_with_result(password(i), 8)
                    .unwrap()
                    .format_for_version(bcrypt::Version::TwoA)
            })
            .collect()
    })
}

/// The rows to load, with `quote` around the camel-case column names: `USERS` good users
/// (every 10th a moderator, every 60th an admin too), then the broken ones.
fn inserts(quote: char, now: &str) -> Vec<String> {
    let q = |name: &str| format!("{quote}{name}{quote}");
    let (created, updated, role_id, user_id) =
        (q("createdAt"), q("updatedAt"), q("roleId"), q("userId"));
    let mut statements = vec![format!(
        "INSERT INTO roles (id, name, {created}, {updated}) VALUES \
         (1, 'user', {now}, {now}), (2, 'moderator', {now}, {now}), (3, 'admin', {now}, {now}), \
         (4, 'superuser', {now}, {now})"
    )];
    let mut users = Vec::new();
    let mut links = Vec::new();
    for (i, hash) in hashes().iter().enumerate() {
        let id = i + 1;
        users.push(format!(
            "({id}, 'user{i}', 'user{i}@example.com', '{hash}', {now}, {now})"
        ));
        links.push(format!("(1, {id}, {now}, {now})"));
        if i % 10 == 0 {
            links.push(format!("(2, {id}, {now}, {now})"));
        }
        if i % 60 == 0 {
            links.push(format!("(3, {id}, {now}, {now})"));
        }
    }
    let base = USERS + 1;
    let good = &hashes()[0];
    // Broken on purpose: each must be reported, none may stop the rest.
    let broken = [
        format!("({base}, 'USER5', 'other5@example.com', '{good}', {now}, {now})"),
        format!(
            "({}, 'fresh1', 'user6@example.com', '{good}', {now}, {now})",
            base + 1
        ),
        format!(
            "({}, 'badmail', 'not-an-email', '{good}', {now}, {now})",
            base + 2
        ),
        format!(
            "({}, 'plainpw', 'plain@example.com', 'hunter22', {now}, {now})",
            base + 3
        ),
        format!(
            "({}, NULL, 'nobody@example.com', '{good}', {now}, {now})",
            base + 4
        ),
        format!(
            "({}, 'a', 'short@example.com', '{good}', {now}, {now})",
            base + 5
        ),
        format!(
            "({}, 'superman', 'super@example.com', '{good}', {now}, {now})",
            base + 6
        ),
        format!(
            "({}, 'roleless', 'roleless@example.com', '{good}', {now}, {now})",
            base + 7
        ),
    ];
    users.extend(broken);
    links.push(format!("(4, {}, {now}, {now})", base + 6));
    statements.push(format!(
        "INSERT INTO users (id, username, email, password, {created}, {updated}) VALUES {}",
        users.join(", ")
    ));
    statements.push(format!(
        "INSERT INTO user_roles ({role_id}, {user_id}, {created}, {updated}) VALUES {}",
        links.join(", ")
    ));
    statements
}

/// A private MariaDB on a free loopback port, gone with the test.
struct MariaDb {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Drop for MariaDb {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl MariaDb {
    async fn start() -> Option<Self> {
        if !Path::new("/usr/sbin/mariadbd").exists() {
            assert!(
                std::env::var("TOLLGATE_REQUIRE_MARIADB").is_err(),
                "TOLLGATE_REQUIRE_MARIADB is set but /usr/sbin/mariadbd is missing"
            );
            eprintln!("skipped: install Debian's mariadb-server to run the import test");
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let installed = Command::new("mariadb-install-db")
            .args(["--no-defaults", "--auth-root-authentication-method=normal"])
            .arg(format!("--datadir={}", data.display()))
            .args(["--skip-test-db", "--user=root"])
            .output()
            .unwrap();
        assert!(
            installed.status.success(),
            "{}",
            String::from_utf8_lossy(&installed.stderr)
        );
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new("/usr/sbin/mariadbd")
            .arg("--no-defaults")
            .arg(format!("--datadir={}", data.display()))
            .arg(format!("--socket={}", dir.path().join("sock").display()))
            .arg(format!("--port={port}"))
            .args([
                "--bind-address=127.0.0.1",
                "--skip-grant-tables",
                "--skip-log-bin",
                "--user=root",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let server = Self {
            child,
            port,
            _dir: dir,
        };
        for _ in 0..300 {
            if MySqlConnection::connect(&server.url("mysql")).await.is_ok() {
                return Some(server);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("mariadbd did not start");
    }

    fn url(&self, database: &str) -> String {
        format!("mysql://root@127.0.0.1:{}/{database}", self.port)
    }
}

fn import(db: &TestDatabase, from: &str, extra: &[&str]) -> String {
    let output = run({
        let mut command = tollgate(db);
        command
            .env("TOLLGATE_IMPORT_FROM", from)
            .arg("import")
            .args(extra);
        command
    });
    assert!(output.status.success(), "{}", stderr(&output));
    stdout(&output)
}

/// What every import of the loaded data must show, and the sign-ins after it.
async fn imports_and_signs_in(from: &str) {
    let read = USERS + 8;
    let good = USERS + 2; // and `superman`, whose unknown role is left out, and `roleless`
    let skipped = read - good;
    let db = TestDatabase::fresh().await;

    // A dry run says what would happen and changes nothing.
    let dry = import(&db, from, &["--dry-run"]);
    assert!(
        dry.contains(&format!(
            "{read} users read: {good} would be imported, 0 already here, {skipped} skipped."
        )),
        "{dry}"
    );
    let app = TestApp::on(TestDatabase::existing(&db.url), |_| {}).await;
    assert!(
        app.state
            .storage
            .user_by_username("user1")
            .await
            .unwrap()
            .is_none()
    );

    let done = import(&db, from, &[]);
    assert!(
        done.contains(&format!(
            "{read} users read: {good} imported, 0 already here, {skipped} skipped."
        )),
        "{done}"
    );
    for reported in [
        "(USER5): the same username as source user #6",
        "(fresh1): the same email as source user #7",
        "(badmail): invalid email",
        "(plainpw): the password is not a bcrypt hash",
        "(): invalid username",
        "(a): invalid username",
        "imported source user",
        "(superman): unknown role `superuser` left out",
        "(roleless): no role: given `user`",
    ] {
        assert!(done.contains(reported), "{reported:?} not in {done}");
    }
    assert!(!done.contains("hunter22"), "passwords are never shown");

    // They sign in with their tutorial passwords and keep their roles; the hash is upgraded.
    for (i, roles) in [
        (0usize, vec!["ROLE_USER", "ROLE_MODERATOR", "ROLE_ADMIN"]),
        (7, vec!["ROLE_USER"]),
        (10, vec!["ROLE_USER", "ROLE_MODERATOR"]),
        (USERS - 1, vec!["ROLE_USER"]),
    ] {
        let name = format!("user{i}");
        let signed_in = app.signin(&name, &password(i)).await;
        signed_in.assert(StatusCode::OK);
        assert_eq!(signed_in.json()["roles"], serde_json::json!(roles));
        let stored = app
            .state
            .storage
            .user_by_username(&name)
            .await
            .unwrap()
            .unwrap();
        assert!(stored.password_hash.starts_with("$argon2id$"));
        app.signin(&name, "not the password")
            .await
            .assert(StatusCode::UNAUTHORIZED);
    }
    let superman = app
        .state
        .storage
        .user_by_username("superman")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(superman.roles, [Role::User]);

    // Again: nothing changes, even for the users whose hash was upgraded.
    let again = import(&db, from, &[]);
    assert!(
        again.contains(&format!(
            "{read} users read: 0 imported, {good} already here, {skipped} skipped."
        )),
        "{again}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_tutorials_mariadb_users_come_along_with_their_passwords_and_roles() {
    let Some(mariadb) = MariaDb::start().await else {
        return;
    };
    let statements = tokio::task::spawn_blocking(|| inserts('`', "NOW()"))
        .await
        .unwrap();
    let mut admin = MySqlConnection::connect(&mariadb.url("mysql"))
        .await
        .unwrap();
    admin.execute("CREATE DATABASE tutorial").await.unwrap();
    let mut tutorial = MySqlConnection::connect(&mariadb.url("tutorial"))
        .await
        .unwrap();
    tutorial.execute(MYSQL_SCHEMA).await.unwrap();
    for statement in &statements {
        tutorial.execute(statement.as_str()).await.unwrap();
    }
    imports_and_signs_in(&mariadb.url("tutorial")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_tutorials_postgres_users_come_along_too() {
    let Ok(admin_url) = std::env::var("TOLLGATE_TEST_DATABASE_URL") else {
        eprintln!("skipped: runs on the PostgreSQL pass (TOLLGATE_TEST_DATABASE_URL)");
        return;
    };
    let statements = tokio::task::spawn_blocking(|| inserts('"', "NOW()"))
        .await
        .unwrap();
    let name = format!("tutorial_{}", std::process::id());
    let mut admin = PgConnection::connect(&admin_url).await.unwrap();
    admin
        .execute(format!("CREATE DATABASE {name}").as_str())
        .await
        .unwrap();
    let (base, _) = admin_url.rsplit_once('/').unwrap();
    let url = format!("{base}/{name}");
    let mut tutorial = PgConnection::connect(&url).await.unwrap();
    tutorial.execute(POSTGRES_SCHEMA).await.unwrap();
    for statement in &statements {
        tutorial.execute(statement.as_str()).await.unwrap();
    }
    imports_and_signs_in(&url).await;
}

#[tokio::test]
async fn a_source_that_is_not_the_tutorials_is_refused_clearly() {
    let db = TestDatabase::fresh().await;
    let output = run({
        let mut command = tollgate(&db);
        command
            .env("TOLLGATE_IMPORT_FROM", "sqlite://elsewhere.db")
            .arg("import");
        command
    });
    assert!(!output.status.success());
    assert!(stderr(&output).contains("mysql://"), "{}", stderr(&output));
}
