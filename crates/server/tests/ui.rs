//! End-to-end tests of the web UI in a real headless Chromium, driven over WebDriver
//! (Debian's `chromium` and `chromium-driver`), against the built binary on a real port.
//!
//! Without `/usr/bin/chromedriver` the test is skipped with a message, unless
//! `TOLLGATE_REQUIRE_BROWSER=1` (set by CI) makes that a failure. Screenshots of every page at
//! desktop and phone widths land in `target/screenshots/`.
#![allow(clippy::unwrap_used)]

use std::{
    net::TcpListener,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::Duration,
};

use fantoccini::{Client, ClientBuilder, Locator, elements::Element};
use serde_json::json;

// Shared with the API tests, which use all of it.
#[allow(dead_code)]
#[path = "support/mail_sink.rs"]
mod mail_sink;

const BIN: &str = env!("CARGO_BIN_EXE_tollgate");
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const PASSWORD: &str = "correct horse battery";
/// Short, so the test sees access tokens expire and get silently refreshed.
const ACCESS_TTL_SECS: u64 = 4;

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A child process killed when dropped.
struct Process(Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

struct Server {
    _process: Process,
    base: String,
    _dir: tempfile::TempDir,
}

async fn start_server() -> Server {
    start_server_with(tempfile::tempdir().unwrap(), &[]).await
}

/// The server, its database in `dir`, with extra arguments.
async fn start_server_with(dir: tempfile::TempDir, extra: &[String]) -> Server {
    let db = format!("sqlite://{}", dir.path().join("ui.db").display());
    let add_admin = Command::new(BIN)
        .env_clear()
        .env("DATABASE_URL", &db)
        .env("TOLLGATE_PASSWORD", PASSWORD)
        .args([
            "user",
            "add",
            "root",
            "--email",
            "root@example.com",
            "--role",
            "admin",
            "--role",
            "user",
        ])
        .output()
        .unwrap();
    assert!(
        add_admin.status.success(),
        "{}",
        String::from_utf8_lossy(&add_admin.stderr)
    );
    let port = free_port();
    let child = Command::new(BIN)
        .env_clear()
        .env("DATABASE_URL", &db)
        .env("RUST_LOG", "warn")
        .args([
            "--bind",
            &format!("127.0.0.1:{port}"),
            "--public-url",
            &format!("http://127.0.0.1:{port}"),
            "--access-token-ttl",
            &format!("{ACCESS_TTL_SECS}s"),
            "--rate-limit-signin",
            "0",
            "--rate-limit-signup",
            "0",
            "--rate-limit-refresh",
            "0",
        ])
        .args(extra)
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let server = Server {
        _process: Process(child),
        base: format!("http://127.0.0.1:{port}"),
        _dir: dir,
    };
    for _ in 0..200 {
        if reqwest::get(format!("{}/healthz", server.base))
            .await
            .is_ok()
        {
            return server;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("tollgate did not start");
}

struct Driver {
    _process: Process,
    url: String,
}

async fn start_driver() -> Driver {
    let port = free_port();
    let child = Command::new(CHROMEDRIVER)
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let driver = Driver {
        _process: Process(child),
        url: format!("http://127.0.0.1:{port}"),
    };
    for _ in 0..200 {
        if reqwest::get(format!("{}/status", driver.url)).await.is_ok() {
            return driver;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("chromedriver did not start");
}

/// A fresh browser: its own profile directory, so its own cookies. Any request to a host
/// other than localhost fails, which also proves the UI loads nothing from elsewhere.
async fn browser(driver: &Driver, profile: &Path) -> Client {
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        json!({
            "binary": "/usr/bin/chromium",
            "args": [
                "--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--disable-dev-shm-usage", "--window-size=1280,900",
                "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE localhost, EXCLUDE 127.0.0.1",
                format!("--user-data-dir={}", profile.display()),
            ]
        }),
    );
    // The console, for the CSP violations and failed loads it reports (see `BrowserLog`).
    caps.insert("goog:loggingPrefs".into(), json!({"browser": "ALL"}));
    ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(caps)
        .connect(&driver.url)
        .await
        .unwrap()
}

async fn find(client: &Client, css: &str) -> Element {
    match client
        .wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::Css(css))
        .await
    {
        Ok(element) => element,
        Err(e) => panic!("no `{css}` on {:?}: {e}", client.current_url().await.ok()),
    }
}

/// Waits until `css` shows text containing `expected`.
async fn expect_text(client: &Client, css: &str, expected: &str) {
    let mut last = String::new();
    for _ in 0..100 {
        if let Ok(element) = client.find(Locator::Css(css)).await {
            last = element.text().await.unwrap_or_default();
            if last.contains(expected) {
                return;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("`{css}` shows {last:?}, not {expected:?}");
}

async fn expect_path(client: &Client, expected: &str) {
    let mut last = String::new();
    for _ in 0..100 {
        let url = client.current_url().await.unwrap();
        last = format!(
            "{}{}",
            url.path(),
            url.query().map(|q| format!("?{q}")).unwrap_or_default()
        );
        if last == expected {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("at {last}, expected {expected}");
}

async fn nav_links(client: &Client) -> Vec<String> {
    let mut texts = Vec::new();
    for link in client.find_all(Locator::Css("header nav a")).await.unwrap() {
        texts.push(link.text().await.unwrap());
    }
    texts
}

async fn type_into(client: &Client, css: &str, text: &str) {
    let input = find(client, css).await;
    input.clear().await.unwrap();
    input.send_keys(text).await.unwrap();
}

async fn click(client: &Client, css: &str) {
    find(client, css).await.click().await.unwrap();
}

/// Clicks the navbar link with this text (client-side navigation, no reload).
async fn click_nav(client: &Client, text: &str) {
    let link = client
        .wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::LinkText(text))
        .await
        .unwrap_or_else(|_| panic!("no navbar link {text:?}"));
    link.click().await.unwrap();
}

async fn login(client: &Client, base: &str, username: &str, password: &str) {
    client.goto(&format!("{base}/login")).await.unwrap();
    type_into(client, "#username", username).await;
    type_into(client, "#password", password).await;
    click(client, "#login-submit").await;
}

fn screenshot_dir() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Saves the current page at desktop and phone widths.
async fn screenshots(client: &Client, name: &str) {
    for (label, width, height) in [("desktop", 1280, 900), ("phone", 390, 844)] {
        client.set_window_size(width, height).await.unwrap();
        tokio::time::sleep(Duration::from_millis(300)).await;
        let png = client.screenshot().await.unwrap();
        std::fs::write(screenshot_dir().join(format!("{name}-{label}.png")), png).unwrap();
    }
    client.set_window_size(1280, 900).await.unwrap();
}

fn browser_available() -> bool {
    if Path::new(CHROMEDRIVER).exists() && Path::new("/usr/bin/chromium").exists() {
        return true;
    }
    assert!(
        std::env::var("TOLLGATE_REQUIRE_BROWSER").is_err(),
        "TOLLGATE_REQUIRE_BROWSER is set but {CHROMEDRIVER} or /usr/bin/chromium is missing"
    );
    eprintln!("skipped: install Debian's chromium and chromium-driver to run the browser tests");
    false
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_web_ui_works_end_to_end_in_a_real_browser() {
    if !browser_available() {
        return;
    }
    let server = start_server().await;
    let base = server.base.clone();
    let driver = start_driver().await;
    let profiles = tempfile::tempdir().unwrap();
    let alice = browser(&driver, &profiles.path().join("alice")).await;

    // Home: public content, and the signed-out navbar.
    alice.goto(&base).await.unwrap();
    expect_text(&alice, "#content", "Public Content.").await;
    let links = nav_links(&alice).await;
    assert!(
        links.contains(&"Login".to_owned()) && links.contains(&"Sign up".to_owned()),
        "{links:?}"
    );
    assert!(!links.contains(&"Admin".to_owned()));
    screenshots(&alice, "home").await;

    // Sign up: live validation by the shared parsers, before anything is sent.
    click_nav(&alice, "Sign up").await;
    expect_path(&alice, "/register").await;
    type_into(&alice, "#username", "al").await;
    type_into(&alice, "#email", "not-an-email").await;
    type_into(&alice, "#password", "short").await;
    expect_text(
        &alice,
        "#username-error",
        "Username must be 3 to 20 characters long.",
    )
    .await;
    expect_text(
        &alice,
        "#email-error",
        "Email must be a valid email address.",
    )
    .await;
    expect_text(
        &alice,
        "#password-error",
        "Password must be 8 to 128 characters long.",
    )
    .await;
    screenshots(&alice, "register-errors").await;
    type_into(&alice, "#username", "alice").await;
    type_into(&alice, "#email", "alice@example.com").await;
    type_into(&alice, "#password", PASSWORD).await;
    expect_text(&alice, "#username-error", "").await;
    click(&alice, "#signup-submit").await;
    expect_text(&alice, "#signup-success", "User registered successfully!").await;

    // A taken username is reported at the field.
    alice.goto(&format!("{base}/register")).await.unwrap();
    type_into(&alice, "#username", "ALICE").await;
    type_into(&alice, "#email", "other@example.com").await;
    type_into(&alice, "#password", PASSWORD).await;
    click(&alice, "#signup-submit").await;
    expect_text(
        &alice,
        "#username-error",
        "Failed! Username is already in use!",
    )
    .await;

    // A protected page sends a signed-out visitor to log in, then back.
    alice.goto(&format!("{base}/profile")).await.unwrap();
    expect_path(&alice, "/login?redirect=%2Fprofile").await;
    type_into(&alice, "#username", "alice").await;
    type_into(&alice, "#password", "wrong password").await;
    click(&alice, "#login-submit").await;
    expect_text(&alice, "#login-error", "Invalid username or password.").await;
    screenshots(&alice, "login-error").await;
    type_into(&alice, "#password", PASSWORD).await;
    click(&alice, "#login-submit").await;
    expect_path(&alice, "/profile").await;
    expect_text(&alice, "#profile-username", "alice").await;
    expect_text(&alice, "#profile-email", "alice@example.com").await;
    expect_text(&alice, "#profile-roles", "ROLE_USER").await;
    expect_text(&alice, "#session-expiry", "UTC").await;
    expect_text(&alice, "#sessions", "This device").await;
    screenshots(&alice, "profile").await;

    // Boards: her own opens; the others show "access denied" rather than a blank page.
    let links = nav_links(&alice).await;
    assert!(links.contains(&"User board".to_owned()), "{links:?}");
    assert!(
        !links
            .iter()
            .any(|l| l == "Moderator board" || l == "Admin board"),
        "{links:?}"
    );
    click_nav(&alice, "User board").await;
    expect_text(&alice, "#content", "User Content.").await;
    screenshots(&alice, "user-board").await;
    alice.goto(&format!("{base}/mod")).await.unwrap();
    expect_text(&alice, "#access-denied", "You don't have access").await;
    screenshots(&alice, "access-denied").await;
    for page in ["admin", "admin/users"] {
        alice.goto(&format!("{base}/{page}")).await.unwrap();
        expect_text(&alice, "#access-denied", "You don't have access").await;
    }

    // The session survives a reload (silent refresh from the HttpOnly cookie)...
    alice.goto(&format!("{base}/profile")).await.unwrap();
    expect_text(&alice, "#profile-username", "alice").await;
    // ...and outlives the access token: after it expires, calls refresh and retry unseen.
    tokio::time::sleep(Duration::from_secs(ACCESS_TTL_SECS + 1)).await;
    click_nav(&alice, "User board").await;
    expect_text(&alice, "#content", "User Content.").await;
    // The token never touches web storage.
    let stored = alice
        .execute("return localStorage.length + sessionStorage.length", vec![])
        .await
        .unwrap();
    assert_eq!(stored, json!(0));

    // An admin makes alice a moderator; her UI follows after a refresh.
    // A return path that leaves the site is ignored (open-redirect attempt).
    let admin = browser(&driver, &profiles.path().join("admin")).await;
    admin
        .goto(&format!("{base}/login?redirect=%2F%5Cevil.example%2F"))
        .await
        .unwrap();
    type_into(&admin, "#username", "root").await;
    type_into(&admin, "#password", PASSWORD).await;
    click(&admin, "#login-submit").await;
    expect_path(&admin, "/profile").await;
    click_nav(&admin, "Admin board").await;
    expect_text(&admin, "#content", "Admin Content.").await;
    screenshots(&admin, "admin-board").await;
    click_nav(&admin, "Admin").await;
    type_into(&admin, "#user-search", "ali").await;
    click(&admin, "form.search button").await;
    expect_text(&admin, "#admin-users tbody", "alice@example.com").await;
    click(&admin, "tr[data-username='alice'] #role-2-moderator").await;
    click(&admin, "tr[data-username='alice'] .save-roles").await;
    expect_text(&admin, "#admin-notice", "Roles of alice saved.").await;
    // The audit log below follows the change without a reload.
    expect_text(&admin, "#audit tbody", "roles_changed").await;
    let pager = find(&admin, "#admin-users .pager")
        .await
        .text()
        .await
        .unwrap();
    assert_eq!(
        pager.split_whitespace().collect::<Vec<_>>(),
        ["Previous", "Page", "1", "of", "1", "Next"]
    );
    screenshots(&admin, "admin-users").await;

    // Two calls hit an expired token together (the admin page loads users and the audit log
    // at once): they share one refresh, no storm.
    tokio::time::sleep(Duration::from_secs(ACCESS_TTL_SECS + 1)).await;
    let refreshes = "return performance.getEntriesByType('resource').filter(e => e.name.endsWith('/api/auth/refresh')).length";
    let before = admin
        .execute(refreshes, vec![])
        .await
        .unwrap()
        .as_u64()
        .unwrap();
    click_nav(&admin, "Admin board").await;
    expect_text(&admin, "#content", "Admin Content.").await;
    let after_one = admin
        .execute(refreshes, vec![])
        .await
        .unwrap()
        .as_u64()
        .unwrap();
    assert_eq!(after_one, before + 1, "one expired call, one refresh");
    tokio::time::sleep(Duration::from_secs(ACCESS_TTL_SECS + 1)).await;
    click_nav(&admin, "Admin").await;
    expect_text(&admin, "#admin-users tbody", "alice@example.com").await;
    expect_text(&admin, "#audit tbody", "roles_changed").await;
    let after_two = admin
        .execute(refreshes, vec![])
        .await
        .unwrap()
        .as_u64()
        .unwrap();
    assert_eq!(
        after_two,
        after_one + 1,
        "two expired calls at once, still one refresh"
    );

    // Alice's next call is refused (her token predates the change), refreshes, and her UI
    // follows: the new role shows without a reload.
    click_nav(&alice, "Home").await;
    expect_path(&alice, "/").await;
    click_nav(&alice, "User board").await;
    expect_text(&alice, "header nav", "Moderator board").await;
    click_nav(&alice, "Moderator board").await;
    expect_text(&alice, "#content", "Moderator Content.").await;
    screenshots(&alice, "moderator-board").await;

    // Ending a session from another browser logs that browser out.
    let phone = browser(&driver, &profiles.path().join("phone")).await;
    login(&phone, &base, "alice", PASSWORD).await;
    expect_path(&phone, "/profile").await;
    alice.goto(&format!("{base}/profile")).await.unwrap();
    expect_text(&alice, "#sessions", "This device").await;
    // Alice's list now shows the phone's session too; end the one that is not hers.
    let mut ended = false;
    for _ in 0..50 {
        let rows = alice
            .find_all(Locator::Css("#sessions li:not(.current) .end-session"))
            .await
            .unwrap();
        if let Some(button) = rows.first() {
            button.click().await.unwrap();
            ended = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        alice.refresh().await.unwrap();
    }
    assert!(ended, "the phone's session never showed up");
    click_nav(&phone, "User board").await;
    expect_path(&phone, "/login?redirect=%2Fuser").await;
    // Alice's own session is untouched.
    click_nav(&alice, "User board").await;
    expect_text(&alice, "#content", "User Content.").await;

    // Changing the password from the profile page.
    alice.goto(&format!("{base}/profile")).await.unwrap();
    type_into(&alice, "#current-password", "not my password").await;
    type_into(&alice, "#new-password", "a new long passphrase").await;
    click(&alice, "#change-password").await;
    expect_text(&alice, "#profile", "alice").await;
    expect_text(&alice, "main", "Current password is incorrect.").await;
    type_into(&alice, "#current-password", PASSWORD).await;
    click(&alice, "#change-password").await;
    expect_text(&alice, "main", "Password changed.").await;

    // Logout: back to the login page, signed-out navbar, protected pages closed again.
    click(&alice, "#logout").await;
    expect_path(&alice, "/login").await;
    let links = nav_links(&alice).await;
    assert!(links.contains(&"Login".to_owned()), "{links:?}");
    screenshots(&alice, "login").await;
    alice.goto(&format!("{base}/user")).await.unwrap();
    expect_path(&alice, "/login?redirect=%2Fuser").await;

    // Nothing was fetched from any other host.
    let foreign = alice
        .execute(
            "return performance.getEntriesByType('resource').map(e => e.name).filter(n => !n.startsWith(location.origin))",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(foreign, json!([]));

    for client in [alice, admin, phone] {
        client.close().await.unwrap();
    }
}

/// The protected app of the gate-mode test: a page that greets whoever Tollgate says it is.
async fn start_upstream() -> String {
    use axum::{Router, http::HeaderMap, response::Html, routing::get};
    async fn page(headers: HeaderMap) -> Html<String> {
        let user = headers
            .get("remote-user")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        Html(format!(
            "<!doctype html><html><body><h1 id=\"secret\">Secret page for {user}</h1></body></html>"
        ))
    }
    let app = Router::new()
        .route("/app/{*rest}", get(page))
        .route("/", get(|| async { Html("<h1 id=\"home\">The app</h1>") }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{address}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_page_behind_the_gate_follows_the_ui_session() {
    if !browser_available() {
        return;
    }
    let upstream = start_upstream().await;
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("tollgate.toml");
    std::fs::write(
        &rules,
        "[[rule]]\npath = \"/\"\npolicy = \"bypass\"\n\n[[rule]]\npath = \"/app/**\"\npolicy = \"authenticated\"\n",
    )
    .unwrap();
    let args = [
        "--config".to_owned(),
        rules.display().to_string(),
        "--upstream".to_owned(),
        upstream,
    ];
    let server = start_server_with(dir, &args).await;
    let base = server.base.clone();
    let driver = start_driver().await;
    let profiles = tempfile::tempdir().unwrap();
    let root = browser(&driver, &profiles.path().join("root")).await;

    // The app's public home, through the gate.
    root.goto(&base).await.unwrap();
    expect_text(&root, "#home", "The app").await;

    // A protected page: to Tollgate's sign-in page, then back to the page, signed in.
    root.goto(&format!("{base}/app/page?x=1")).await.unwrap();
    expect_path(&root, "/login?redirect=%2Fapp%2Fpage%3Fx%3D1").await;
    type_into(&root, "#username", "root").await;
    type_into(&root, "#password", PASSWORD).await;
    click(&root, "#login-submit").await;
    expect_path(&root, "/app/page?x=1").await;
    expect_text(&root, "#secret", "Secret page for root").await;
    screenshots(&root, "gate-page").await;

    // The access cookie gone (as when the token expires): the login page restores the session
    // from the refresh cookie and sends the browser straight back, no password asked.
    root.delete_cookie("tollgate_access").await.unwrap();
    root.goto(&format!("{base}/app/other")).await.unwrap();
    expect_path(&root, "/app/other").await;
    expect_text(&root, "#secret", "Secret page for root").await;

    // Signing out in Tollgate's UI closes the app's pages too.
    root.goto(&format!("{base}/profile")).await.unwrap();
    click(&root, "#logout").await;
    expect_path(&root, "/login").await;
    root.goto(&format!("{base}/app/page")).await.unwrap();
    expect_path(&root, "/login?redirect=%2Fapp%2Fpage").await;
    root.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forgotten_password_is_reset_from_the_mail_and_the_address_changed_in_the_browser() {
    if !browser_available() {
        return;
    }
    let Some(sink) = mail_sink::MailSink::start().await else {
        return;
    };
    let args = [
        "--smtp-url".to_owned(),
        sink.smtp_url(),
        "--mail-from".to_owned(),
        "Tollgate <auth@tollgate.test>".to_owned(),
    ];
    let server = start_server_with(tempfile::tempdir().unwrap(), &args).await;
    let base = server.base.clone();
    let driver = start_driver().await;
    let profiles = tempfile::tempdir().unwrap();
    let root = browser(&driver, &profiles.path().join("root")).await;

    // Forgot password, from the login page.
    root.goto(&format!("{base}/login")).await.unwrap();
    click(&root, "#forgot-link").await;
    expect_path(&root, "/forgot-password").await;
    type_into(&root, "#forgot-email", "not an address").await;
    expect_text(&root, "#forgot-email-error", "valid email").await;
    type_into(&root, "#forgot-email", "root@example.com").await;
    click(&root, "#forgot-submit").await;
    expect_text(&root, "#forgot-status", "If an account uses this address").await;
    screenshots(&root, "forgot-password").await;

    // The mail's link opens the reset page; setting the password there works once.
    let mail = sink.wait_for("root@example.com", 1).await;
    assert!(
        mail.link()
            .starts_with(&format!("{base}/reset-password?token="))
    );
    root.goto(&mail.link()).await.unwrap();
    type_into(&root, "#reset-new-password", "short").await;
    expect_text(&root, "#reset-new-password-error", "8 to 128 characters").await;
    type_into(&root, "#reset-new-password", "a brand new passphrase").await;
    type_into(&root, "#reset-repeat", "a brand new passphrase").await;
    screenshots(&root, "reset-password").await;
    click(&root, "#reset-submit").await;
    expect_text(&root, "#reset-status", "Your password has been reset").await;
    click(&root, "#reset-login").await;
    expect_path(&root, "/login").await;

    // The old password is gone; the new one signs in, by address too.
    login(&root, &base, "root", PASSWORD).await;
    expect_text(&root, "#login-error", "Invalid username or password").await;
    login(&root, &base, "root@example.com", "a brand new passphrase").await;
    expect_path(&root, "/profile").await;
    expect_text(&root, "#email-verified", "verified").await;

    // A new address, confirmed with the code mailed to it.
    type_into(&root, "#new-email", "root@example.org").await;
    type_into(&root, "#email-current-password", "a brand new passphrase").await;
    click(&root, "#change-email-submit").await;
    expect_text(&root, "#change-email-status", "confirm the new address").await;
    let confirm = sink.wait_for("root@example.org", 1).await;
    type_into(&root, "#email-code", &confirm.code()).await;
    click(&root, "#email-code-submit").await;
    expect_text(&root, "#change-email-status", "has been changed").await;
    expect_text(&root, "#profile-email", "root@example.org").await;
    screenshots(&root, "profile-email").await;

    // The old address is told; its link opens the report page.
    let notice = sink.wait_for("root@example.com", 2).await;
    root.goto(&notice.link()).await.unwrap();
    expect_text(&root, "#link-page h1", "Report an email change").await;
    screenshots(&root, "report-email-change").await;

    // The admin makes an account without a password: its owner is mailed a link; the list
    // shows the address unverified, and the admin can vouch for it.
    root.goto(&format!("{base}/admin/users")).await.unwrap();
    type_into(&root, "#new-username", "newbie").await;
    type_into(&root, "#new-user-email", "newbie@example.com").await;
    click(&root, "#create-user-submit").await;
    expect_text(&root, "#create-user-status", "Created newbie").await;
    let invite = sink.wait_for("newbie@example.com", 1).await;
    assert!(
        invite.subject.contains("account is ready"),
        "{}",
        invite.subject
    );
    let row = "tr[data-username='newbie']";
    expect_text(&root, &format!("{row} .email-status"), "email not verified").await;
    expect_text(&root, &format!("{row} .last-signin"), "never").await;
    screenshots(&root, "admin-mail-care").await;
    click(&root, &format!("{row} .mark-verified")).await;
    expect_text(&root, "#admin-notice", "marked as verified").await;
    expect_text(&root, &format!("{row} .email-status"), "email verified").await;
    click(&root, &format!("{row} .show-sessions")).await;
    expect_text(
        &root,
        &format!("{row} .user-sessions"),
        "No active sessions",
    )
    .await;
    root.close().await.unwrap();
}

/// The code an authenticator app shows for `secret` (base32), `steps` steps from now.
fn totp_code(secret: &str, steps: i64) -> String {
    let secret = totp_rs::Secret::try_from_base32(secret.trim()).unwrap();
    let app = tollgate::totp::Authenticator::new(secret.as_ref(), "test", "test").unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    app.code_at(now.saturating_add_signed(steps * 30))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_step_sign_in_is_set_up_and_used_in_the_browser() {
    if !browser_available() {
        return;
    }
    let server = start_server().await;
    let base = server.base.clone();
    let driver = start_driver().await;
    let profiles = tempfile::tempdir().unwrap();
    let root = browser(&driver, &profiles.path().join("root")).await;
    let other = browser(&driver, &profiles.path().join("other")).await;

    // A second browser signed in before the factor exists: its session never proved one.
    login(&other, &base, "root", PASSWORD).await;
    expect_path(&other, "/profile").await;

    // Set up the authenticator app: QR code and key, confirmed with a first code.
    login(&root, &base, "root", PASSWORD).await;
    expect_path(&root, "/profile").await;
    type_into(&root, "#mfa-password", PASSWORD).await;
    click(&root, "#mfa-begin").await;
    find(&root, "#mfa-enrol .qr svg").await;
    let secret = find(&root, "#mfa-secret").await.text().await.unwrap();
    screenshots(&root, "two-step-enrol").await;
    type_into(&root, "#mfa-code", &totp_code(&secret, 0)).await;
    click(&root, "#mfa-confirm").await;
    expect_text(&root, "#two-step-status", "Two-step sign-in is on").await;
    let mut codes = Vec::new();
    for item in root
        .find_all(Locator::Css("#recovery-codes li"))
        .await
        .unwrap()
    {
        codes.push(item.text().await.unwrap());
    }
    assert_eq!(codes.len(), 10, "{codes:?}");
    screenshots(&root, "two-step-codes").await;
    click(&root, "#codes-saved").await;
    expect_text(&root, "#mfa-on", "on").await;

    // Sign out, and in again: password, then the app's next code.
    click(&root, "#logout").await;
    expect_path(&root, "/login").await;
    login(&root, &base, "root", PASSWORD).await;
    find(&root, "#second-step").await;
    screenshots(&root, "login-second-step").await;
    type_into(&root, "#factor-code", &totp_code(&secret, 1)).await;
    click(&root, "#factor-submit").await;
    expect_path(&root, "/profile").await;

    // And with a recovery code.
    click(&root, "#logout").await;
    expect_path(&root, "/login").await;
    login(&root, &base, "root", PASSWORD).await;
    click(&root, "#use-recovery").await;
    type_into(&root, "#factor-code", &codes[0]).await;
    click(&root, "#factor-submit").await;
    expect_path(&root, "/profile").await;
    expect_text(&root, "#codes-left", "Recovery codes left: 9").await;

    // The other browser's session never proved the factor: changing the password asks for it.
    other.goto(&format!("{base}/profile")).await.unwrap();
    type_into(&other, "#current-password", PASSWORD).await;
    type_into(&other, "#new-password", "a brand new passphrase").await;
    click(&other, "#change-password").await;
    find(&other, "#step-up").await;
    screenshots(&other, "step-up").await;
    type_into(&other, "#step-up-code", &codes[1]).await;
    click(&other, "#step-up-toggle").await;
    // The toggle made it a recovery code; confirm, then repeat the change.
    click(&other, "#step-up-submit").await;
    for _ in 0..50 {
        if other.find(Locator::Css("#step-up")).await.is_err() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    click(&other, "#change-password").await;
    expect_text(&other, "#change-password-status", "Password changed").await;
    root.close().await.unwrap();
    other.close().await.unwrap();
}

/// Chromium's virtual authenticator, added through chromedriver's W3C WebAuthn endpoint: a
/// platform authenticator that keeps discoverable credentials and verifies its user.
#[derive(Debug)]
struct AddVirtualAuthenticator;

impl fantoccini::wd::WebDriverCompatibleCommand for AddVirtualAuthenticator {
    fn endpoint(
        &self,
        base_url: &url::Url,
        session_id: Option<&str>,
    ) -> Result<url::Url, url::ParseError> {
        base_url.join(&format!(
            "session/{}/webauthn/authenticator",
            session_id.unwrap_or_default()
        ))
    }

    fn method_and_body(&self, _: &url::Url) -> (axum::http::Method, Option<String>) {
        let options = json!({
            "protocol": "ctap2",
            "transport": "internal",
            "hasResidentKey": true,
            "hasUserVerification": true,
            "isUserConsenting": true,
            "isUserVerified": true,
        });
        (axum::http::Method::POST, Some(options.to_string()))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_passkey_is_added_and_signs_in_alone_or_as_the_second_step_in_the_browser() {
    if !browser_available() {
        return;
    }
    let server = start_server().await;
    // A relying party is a domain name: the UI is opened at localhost (the loopback public
    // URL the server was given becomes `http://localhost:<port>` for passkeys).
    let base = server.base.replace("127.0.0.1", "localhost");
    let driver = start_driver().await;
    let profiles = tempfile::tempdir().unwrap();
    let root = browser(&driver, &profiles.path().join("root")).await;
    root.issue_cmd(AddVirtualAuthenticator).await.unwrap();

    // Add a passkey from the profile: named, with the current password.
    login(&root, &base, "root", PASSWORD).await;
    expect_path(&root, "/profile").await;
    type_into(&root, "#passkey-name", "This laptop").await;
    type_into(&root, "#passkey-password", PASSWORD).await;
    click(&root, "#passkey-add-submit").await;
    expect_text(&root, "#two-step-status", "Passkey “This laptop” added").await;
    // The first factor brings recovery codes.
    let codes = root
        .find_all(Locator::Css("#recovery-codes li"))
        .await
        .unwrap();
    assert_eq!(codes.len(), 10);
    click(&root, "#codes-saved").await;
    expect_text(&root, "#passkeys .passkey-name", "This laptop").await;
    screenshots(&root, "passkeys").await;

    // Renamed in place.
    click(&root, "#passkeys .passkey-rename").await;
    type_into(&root, "#passkeys .passkey-name-input", "Work laptop").await;
    click(&root, "#passkeys form.inline button[type=submit]").await;
    expect_text(&root, "#passkeys .passkey-name", "Work laptop").await;

    // Sign out; the passkey alone signs in, no username typed.
    click(&root, "#logout").await;
    expect_path(&root, "/login").await;
    screenshots(&root, "login-passkey").await;
    click(&root, "#passkey-signin").await;
    expect_path(&root, "/profile").await;
    expect_text(&root, "body", "root@example.com").await;

    // A password sign-in now asks for the passkey as its second step.
    click(&root, "#logout").await;
    expect_path(&root, "/login").await;
    login(&root, &base, "root", PASSWORD).await;
    find(&root, "#second-step").await;
    screenshots(&root, "login-second-step-passkey").await;
    click(&root, "#factor-passkey").await;
    expect_path(&root, "/profile").await;
    expect_text(&root, "#passkeys", "last used").await;
    root.close().await.unwrap();
}

/// chromedriver's console log of the page (`goog:loggingPrefs` asks for it): CSP violations
/// and failed loads show there.
#[derive(Debug)]
struct BrowserLog;

impl fantoccini::wd::WebDriverCompatibleCommand for BrowserLog {
    fn endpoint(
        &self,
        base_url: &url::Url,
        session_id: Option<&str>,
    ) -> Result<url::Url, url::ParseError> {
        base_url.join(&format!(
            "session/{}/se/log",
            session_id.unwrap_or_default()
        ))
    }

    fn method_and_body(&self, _: &url::Url) -> (axum::http::Method, Option<String>) {
        (
            axum::http::Method::POST,
            Some(json!({"type": "browser"}).to_string()),
        )
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_documentation_renders_offline_under_the_csp() {
    if !browser_available() {
        return;
    }
    let server = start_server().await;
    let driver = start_driver().await;
    let profiles = tempfile::tempdir().unwrap();
    let reader = browser(&driver, &profiles.path().join("reader")).await;

    // Swagger UI, from this server only (the browser resolves no other host), renders the
    // served document: the title and every operation.
    reader.goto(&format!("{}/docs", server.base)).await.unwrap();
    expect_text(&reader, ".swagger-ui .info .title", "Tollgate").await;
    let operations = reader.find_all(Locator::Css(".opblock")).await.unwrap();
    assert!(operations.len() >= 62, "{} operations", operations.len());
    // Its stylesheet applies: the method badges are styled.
    let badge = reader
        .execute(
            "return getComputedStyle(document.querySelector('.opblock-summary-method')).minWidth",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(badge, json!("80px"));
    // One operation opens, with its answers.
    click(&reader, "#operations-auth-signin .opblock-summary").await;
    expect_text(&reader, "#operations-auth-signin", "mfa_required").await;
    screenshots(&reader, "api-docs").await;

    // Nothing was refused by the CSP, and nothing failed to load.
    let log = reader.issue_cmd(BrowserLog).await.unwrap();
    let problems: Vec<&serde_json::Value> = log
        .as_array()
        .unwrap()
        .iter()
        .filter(|entry| {
            entry["level"] == "SEVERE"
                || entry["message"]
                    .as_str()
                    .is_some_and(|m| m.contains("Content Security Policy"))
        })
        .collect();
    assert!(problems.is_empty(), "{problems:#?}");
}
