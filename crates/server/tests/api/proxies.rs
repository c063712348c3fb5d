//! The guide's nginx and Caddy configurations (`docs/protect-your-api.md`), run for real: the
//! proxy binary in front of an app that echoes what reaches it, asking the `tollgate` binary,
//! all on loopback. The snippets are read from the guide, so the guide cannot drift from what
//! is tested. Each test starts and stops its own processes on free ports; without the proxy's
//! binary it says so and passes (CI installs both).

use std::{
    fs::{File, Permissions},
    net::TcpListener,
    os::unix::fs::PermissionsExt,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use axum::{
    Json, Router,
    extract::State,
    http::{HeaderMap, Method, Uri},
};
use reqwest::{StatusCode, header};
use serde_json::{Value, json};
use tempfile::TempDir;

use crate::{
    authz::TUTORIAL_RULES,
    binary::{Server, run, stderr, tollgate},
    support::{PASSWORD, TestDatabase},
};

const GUIDE: &str = include_str!("../../../../docs/protect-your-api.md");

/// The headers the proxy copies from Tollgate's answer onto the app's request.
const IDENTITY: [&str; 4] = [
    "remote-user",
    "remote-email",
    "remote-groups",
    "remote-user-id",
];

/// What a browser sends for a page it is asked to open.
const PAGE_ACCEPT: &str = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8";

#[derive(Debug, Clone, Copy)]
enum Kind {
    Nginx,
    Caddy,
}

impl Kind {
    fn program(self) -> &'static str {
        match self {
            Kind::Nginx => "nginx",
            Kind::Caddy => "caddy",
        }
    }

    /// The installed binary: on `PATH`, or in the `sbin` directories a user's `PATH` may lack.
    fn binary(self) -> Option<PathBuf> {
        let path = std::env::var_os("PATH").unwrap_or_default();
        std::env::split_paths(&path)
            .chain(["/usr/sbin".into(), "/usr/local/sbin".into()])
            .map(|dir| dir.join(self.program()))
            .find(|file| file.is_file())
    }
}

/// The guide's one code block fenced as ```` ```lang ````, its placeholders filled in.
fn snippet(lang: &str, listen: &str, tollgate: &str, upstream: &str) -> String {
    let fence = format!("```{lang}\n");
    let mut blocks = GUIDE.split(&fence).skip(1);
    let block = blocks
        .next()
        .unwrap_or_else(|| panic!("docs/protect-your-api.md has no {lang} block"));
    assert!(blocks.next().is_none(), "more than one {lang} block");
    let (text, _) = block.split_once("\n```").expect("the block is closed");
    for placeholder in ["{LISTEN}", "{TOLLGATE}", "{UPSTREAM}"] {
        assert!(
            text.contains(placeholder),
            "the {lang} block lacks {placeholder}"
        );
    }
    text.replace("{LISTEN}", listen)
        .replace("{TOLLGATE}", tollgate)
        .replace("{UPSTREAM}", upstream)
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The app behind the proxy: answers every request with its method, URI and headers, and
/// counts the requests that reached it.
struct App {
    addr: String,
    hits: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl App {
    async fn start() -> Self {
        let hits = Arc::new(AtomicUsize::new(0));
        let router = Router::new().fallback(echo).with_state(hits.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let task = tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
        Self { addr, hits, task }
    }

    fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }
}

impl Drop for App {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn echo(
    State(hits): State<Arc<AtomicUsize>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Json<Value> {
    hits.fetch_add(1, Ordering::SeqCst);
    let headers: Vec<[String; 2]> = headers
        .iter()
        .map(|(name, value)| {
            [
                name.as_str().to_owned(),
                String::from_utf8_lossy(value.as_bytes()).into_owned(),
            ]
        })
        .collect();
    Json(json!({
        "app": "echo",
        "method": method.as_str(),
        "uri": uri.to_string(),
        "headers": headers,
    }))
}

/// A running nginx or Caddy with the guide's configuration, stopped on drop.
struct Proxy {
    kind: Kind,
    child: Child,
    base: String,
    logs: Vec<PathBuf>,
    _dir: TempDir,
}

impl Proxy {
    /// Starts the proxy on a free port and waits until it answers. A port taken in between by
    /// a test running alongside means another try on another port.
    async fn start(kind: Kind, binary: &Path, tollgate: &str, upstream: &str) -> Self {
        for _ in 0..3 {
            let mut proxy = Self::spawn(kind, binary, tollgate, upstream);
            match proxy.wait_until_serving().await {
                Ok(()) => return proxy,
                Err(log) if log.to_ascii_lowercase().contains("already in use") => continue,
                Err(log) => panic!("{kind:?} did not start:\n{log}"),
            }
        }
        panic!("{kind:?} found no free port in three tries");
    }

    fn spawn(kind: Kind, binary: &Path, tollgate: &str, upstream: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let listen = format!("127.0.0.1:{}", free_port());
        let (child, logs) = match kind {
            Kind::Nginx => spawn_nginx(binary, dir.path(), &listen, tollgate, upstream),
            Kind::Caddy => spawn_caddy(binary, dir.path(), &listen, tollgate, upstream),
        };
        Self {
            kind,
            child,
            base: format!("http://{listen}"),
            logs,
            _dir: dir,
        }
    }

    fn log(&self) -> String {
        self.logs
            .iter()
            .map(|file| std::fs::read_to_string(file).unwrap_or_default())
            .collect()
    }

    /// Polls until this proxy (not whatever else may hold the port) answers HTTP; its log if it
    /// exits or never does.
    async fn wait_until_serving(&mut self) -> Result<(), String> {
        let client = reqwest::Client::new();
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(10) {
            if let Some(status) = self.child.try_wait().unwrap() {
                return Err(format!("exited ({status}):\n{}", self.log()));
            }
            if let Ok(response) = client.get(format!("{}/login", self.base)).send().await
                && response
                    .headers()
                    .get(header::SERVER)
                    .and_then(|v| v.to_str().ok())
                    .is_some_and(|v| v.to_ascii_lowercase().contains(self.kind.program()))
            {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Err(format!("no answer in 10 s:\n{}", self.log()))
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        // SIGTERM rather than SIGKILL: nginx's master then stops its workers too.
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(5) {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// nginx in the foreground, its configuration, pid, logs and temporary files all in `dir`.
fn spawn_nginx(
    binary: &Path,
    dir: &Path,
    listen: &str,
    tollgate: &str,
    upstream: &str,
) -> (Child, Vec<PathBuf>) {
    let server = snippet("nginx", listen, tollgate, upstream);
    let d = dir.display();
    let conf = dir.join("nginx.conf");
    std::fs::write(
        &conf,
        format!(
            "worker_processes 1;
error_log {d}/error.log notice;
events {{ worker_connections 64; }}
http {{
    access_log {d}/access.log;
    client_body_temp_path {d}/body;
    proxy_temp_path {d}/proxy;
    fastcgi_temp_path {d}/fastcgi;
    uwsgi_temp_path {d}/uwsgi;
    scgi_temp_path {d}/scgi;

{server}
}}
"
        ),
    )
    .unwrap();
    // Started as root, nginx runs its workers as `nobody`: they must reach the temporary paths.
    std::fs::set_permissions(dir, Permissions::from_mode(0o755)).unwrap();
    let log = dir.join("error.log");
    let early_errors = dir.join("stderr.log");
    let child = Command::new(binary)
        .arg("-p")
        .arg(dir)
        .arg("-c")
        .arg(&conf)
        .arg("-e")
        .arg(&log)
        .arg("-g")
        .arg(format!("daemon off; pid {d}/nginx.pid;"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(File::create(&early_errors).unwrap())
        .spawn()
        .unwrap();
    (child, vec![early_errors, log])
}

/// Caddy without its admin endpoint or automatic HTTPS, its state and log in `dir`.
fn spawn_caddy(
    binary: &Path,
    dir: &Path,
    listen: &str,
    tollgate: &str,
    upstream: &str,
) -> (Child, Vec<PathBuf>) {
    let site = snippet("caddyfile", &format!("http://{listen}"), tollgate, upstream);
    let caddyfile = dir.join("Caddyfile");
    std::fs::write(
        &caddyfile,
        format!("{{\n\tadmin off\n\tauto_https off\n}}\n\n{site}\n"),
    )
    .unwrap();
    let log = dir.join("caddy.log");
    let child = Command::new(binary)
        .arg("run")
        .arg("--config")
        .arg(&caddyfile)
        .args(["--adapter", "caddyfile"])
        .env_clear()
        .env("HOME", dir)
        .env("XDG_CONFIG_HOME", dir)
        .env("XDG_DATA_HOME", dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(File::create(&log).unwrap())
        .spawn()
        .unwrap();
    (child, vec![log])
}

/// An answer, read whole.
#[derive(Debug)]
struct Answer {
    status: StatusCode,
    headers: header::HeaderMap,
    body: String,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// What the app received, from its echo; fails if the answer is not the app's.
    #[track_caller]
    fn seen(&self) -> Seen {
        assert_eq!(self.status, StatusCode::OK, "{}", self.body);
        let echo: Value = serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("not the app's answer ({e}): {}", self.body));
        assert_eq!(echo["app"], "echo", "{}", self.body);
        Seen(echo)
    }
}

/// The request as the app received it.
struct Seen(Value);

impl Seen {
    fn uri(&self) -> &str {
        self.0["uri"].as_str().unwrap()
    }

    fn method(&self) -> &str {
        self.0["method"].as_str().unwrap()
    }

    /// Every value of every header whose name, read as some frameworks read names (case and
    /// `_`/`-` folded), is `name`.
    fn values(&self, name: &str) -> Vec<String> {
        let fold = |n: &str| n.to_ascii_lowercase().replace('_', "-");
        self.0["headers"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|pair| fold(pair[0].as_str().unwrap()) == fold(name))
            .map(|pair| pair[1].as_str().unwrap().to_owned())
            .collect()
    }

    /// The app was told exactly this identity, and nothing else under those names. An
    /// anonymous caller's identity (all empty) may also arrive as no header at all.
    #[track_caller]
    fn assert_identity(&self, expected: [&str; 4]) {
        for (name, value) in IDENTITY.iter().zip(expected) {
            let values = self.values(name);
            if value.is_empty() {
                assert!(
                    values.iter().all(String::is_empty),
                    "{name}: {values:?} reached the app for an anonymous caller"
                );
            } else {
                assert_eq!(values, [value], "{name} as the app received it");
            }
        }
    }
}

/// A user made with the command line, signed in through the proxy.
struct User {
    id: i64,
    token: String,
    /// The `tollgate_access` cookie the sign-in's `Set-Cookie` carried, as `name=value`.
    cookie: String,
}

/// The proxy, Tollgate and the app, all running; dropped, all stopped.
struct Stack {
    kind: Kind,
    client: reqwest::Client,
    proxy: Proxy,
    tollgate: Server,
    app: App,
    db: TestDatabase,
    _rules: TempDir,
}

impl Stack {
    /// Everything started and answering, or `None` (said on stderr) when the proxy's binary is
    /// not installed.
    async fn start(kind: Kind) -> Option<Self> {
        let Some(binary) = kind.binary() else {
            eprintln!(
                "SKIPPED: no {} binary installed (CI installs it; apt-get install {0})",
                kind.program()
            );
            return None;
        };
        let rules = tempfile::tempdir().unwrap();
        let file = rules.path().join("tollgate.toml");
        std::fs::write(
            &file,
            format!("{TUTORIAL_RULES}\n[[rule]]\npath = \"/app/**\"\npolicy = \"authenticated\"\n"),
        )
        .unwrap();
        let db = TestDatabase::fresh().await;
        let tollgate = Server::start_with(
            &db,
            &[
                "--config",
                file.to_str().unwrap(),
                "--trusted-proxy",
                "127.0.0.1",
            ],
        )
        .await;
        let app = App::start().await;
        let tollgate_addr = tollgate.base.strip_prefix("http://").unwrap().to_owned();
        let proxy = Proxy::start(kind, &binary, &tollgate_addr, &app.addr).await;
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        Some(Self {
            kind,
            client,
            proxy,
            tollgate,
            app,
            db,
            _rules: rules,
        })
    }

    /// Adds a user with the command line, password from the environment, and signs them in
    /// through the proxy.
    async fn user(&self, name: &str, roles: &[&str]) -> User {
        let mut add = tollgate(&self.db);
        add.env("TOLLGATE_PASSWORD", PASSWORD).args([
            "user",
            "add",
            name,
            "--email",
            &format!("{name}@example.com"),
        ]);
        for role in roles {
            add.args(["--role", role]);
        }
        let output = run(add);
        assert!(output.status.success(), "{}", stderr(&output));

        let response = self
            .client
            .post(format!("{}/api/auth/signin", self.proxy.base))
            .json(&json!({"username": name, "password": PASSWORD}))
            .send()
            .await
            .unwrap();
        assert_eq!(
            response.status(),
            StatusCode::OK,
            "sign-in through the proxy"
        );
        let cookie = response
            .headers()
            .get_all(header::SET_COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find(|c| c.starts_with("tollgate_access="))
            .expect("the sign-in sets the access cookie, through the proxy")
            .split(';')
            .next()
            .unwrap()
            .to_owned();
        let body: Value = response.json().await.unwrap();
        User {
            id: body["id"].as_i64().unwrap(),
            token: body["accessToken"].as_str().unwrap().to_owned(),
            cookie,
        }
    }

    async fn send(&self, request: reqwest::RequestBuilder) -> Answer {
        let response = request.send().await.unwrap();
        Answer {
            status: response.status(),
            headers: response.headers().clone(),
            body: response.text().await.unwrap(),
        }
    }

    /// A bare `GET` through the proxy.
    fn get(&self, path: &str) -> reqwest::RequestBuilder {
        self.client.get(format!("{}{path}", self.proxy.base))
    }

    /// A script's request (`fetch`, XHR, an API client) through the proxy.
    fn api(&self, path: &str) -> reqwest::RequestBuilder {
        self.get(path).header(header::ACCEPT, "application/json")
    }

    /// A browser opening a page through the proxy.
    fn page(&self, path: &str) -> reqwest::RequestBuilder {
        self.get(path)
            .header(header::ACCEPT, PAGE_ACCEPT)
            .header("sec-fetch-mode", "navigate")
            .header("sec-fetch-dest", "document")
    }

    /// Sends a request the proxy must refuse, and checks the app never saw it.
    async fn refused(&self, request: reqwest::RequestBuilder) -> Answer {
        let before = self.app.hits();
        let answer = self.send(request).await;
        assert_eq!(self.app.hits(), before, "{:?}: reached the app", self.kind);
        answer
    }
}

/// Each behaviour, once behind nginx and once behind Caddy.
macro_rules! through_both_proxies {
    ($($name:ident),* $(,)?) => {
        mod nginx {
            $(
                #[tokio::test]
                async fn $name() {
                    super::$name(super::Kind::Nginx).await;
                }
            )*
        }
        mod caddy {
            $(
                #[tokio::test]
                async fn $name() {
                    super::$name(super::Kind::Caddy).await;
                }
            )*
        }
    };
}

through_both_proxies!(
    public_routes_reach_the_app_anonymously_with_an_empty_identity,
    scripts_get_401_and_browsers_are_sent_to_the_login_page,
    signed_in_users_reach_the_app_with_their_identity,
    role_routes_need_the_role,
    a_disabled_users_very_next_request_is_refused,
    spoofed_identity_headers_never_reach_the_app,
    the_access_cookie_from_sign_in_opens_pages,
    paths_that_lead_elsewhere_are_judged_where_they_lead,
    the_login_page_and_what_it_calls_are_tollgates_on_the_apps_origin,
);

async fn public_routes_reach_the_app_anonymously_with_an_empty_identity(kind: Kind) {
    let Some(stack) = Stack::start(kind).await else {
        return;
    };
    let seen = stack.send(stack.api("/api/test/all?page=2")).await.seen();
    assert_eq!((seen.method(), seen.uri()), ("GET", "/api/test/all?page=2"));
    seen.assert_identity(["", "", "", ""]);

    // A browser gets the page too, not the login page.
    let seen = stack.send(stack.page("/api/test/all")).await.seen();
    seen.assert_identity(["", "", "", ""]);

    // No rule, no entry: refused before the app, signed in or not.
    let answer = stack.refused(stack.api("/api/test/nothing")).await;
    assert_eq!(answer.status, StatusCode::FORBIDDEN, "{}", answer.body);
    let uma = stack.user("uma", &["user"]).await;
    let answer = stack
        .refused(
            stack
                .api("/api/test/nothing")
                .header("x-access-token", &uma.token),
        )
        .await;
    assert_eq!(answer.status, StatusCode::FORBIDDEN, "{}", answer.body);
}

async fn scripts_get_401_and_browsers_are_sent_to_the_login_page(kind: Kind) {
    let Some(stack) = Stack::start(kind).await else {
        return;
    };
    // Scripts and API clients: 401, no redirect.
    for request in [
        stack.api("/api/test/user"),
        stack
            .get("/app/page")
            .header(header::ACCEPT, PAGE_ACCEPT)
            .header("x-requested-with", "XMLHttpRequest"),
        stack
            .get("/app/page")
            .header(header::ACCEPT, PAGE_ACCEPT)
            .header("sec-fetch-mode", "cors"),
        stack
            .api("/api/test/user")
            .header("x-access-token", "not-a-token"),
    ] {
        let answer = stack.refused(request).await;
        assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "{}", answer.body);
        assert_eq!(answer.header("location"), None);
    }

    // A browser opening a page: 302 to the login page, with the way back.
    let answer = stack.refused(stack.page("/app/page?tab=2&q=a%20b")).await;
    assert_eq!(answer.status, StatusCode::FOUND, "{}", answer.body);
    let location = answer.header("location").unwrap();
    assert_eq!(
        location,
        "/login?redirect=%2Fapp%2Fpage%3Ftab%3D2%26q%3Da%2520b"
    );
    // ... as with an `Accept` alone (no Sec-Fetch headers, older browsers).
    let answer = stack
        .refused(
            stack
                .get("/api/test/user")
                .header(header::ACCEPT, PAGE_ACCEPT),
        )
        .await;
    assert_eq!(answer.status, StatusCode::FOUND, "{}", answer.body);
    assert_eq!(
        answer.header("location"),
        Some("/login?redirect=%2Fapi%2Ftest%2Fuser")
    );

    // The login page is there, on the same origin, served by Tollgate.
    let before = stack.app.hits();
    let login = stack.send(stack.page(location)).await;
    assert_eq!(login.status, StatusCode::OK, "{}", login.body);
    assert!(
        login.body.contains("<title>Tollgate</title>"),
        "{}",
        login.body
    );
    assert_eq!(stack.app.hits(), before);
}

async fn the_login_page_and_what_it_calls_are_tollgates_on_the_apps_origin(kind: Kind) {
    let Some(stack) = Stack::start(kind).await else {
        return;
    };
    let before = stack.app.hits();
    for page in ["/login?redirect=%2Fapp%2Fpage", "/register"] {
        let answer = stack.send(stack.page(page)).await;
        assert_eq!(answer.status, StatusCode::OK, "{page}: {}", answer.body);
        assert!(answer.body.contains("<title>Tollgate</title>"), "{page}");
    }
    // The scripts, styles and wasm the page loads.
    let login = stack.send(stack.page("/login")).await;
    let assets: Vec<&str> = login
        .body
        .split('"')
        .filter(|part| part.starts_with("/assets/"))
        .collect();
    assert!(assets.len() >= 3, "{}", login.body);
    for asset in assets {
        let answer = stack.send(stack.get(asset)).await;
        assert_eq!(answer.status, StatusCode::OK, "{asset}");
    }
    // Signing in, and the profile the page reads next.
    let uma = stack.user("uma", &["user"]).await;
    let me = stack
        .send(
            stack
                .api("/api/user/me")
                .header("x-access-token", &uma.token),
        )
        .await;
    assert_eq!(me.status, StatusCode::OK, "{}", me.body);
    let me: Value = serde_json::from_str(&me.body).unwrap();
    assert_eq!(me["username"], "uma");
    assert_eq!(stack.app.hits(), before, "Tollgate's pages reached the app");
}

async fn signed_in_users_reach_the_app_with_their_identity(kind: Kind) {
    let Some(stack) = Stack::start(kind).await else {
        return;
    };
    let uma = stack.user("uma", &["user"]).await;
    let id = uma.id.to_string();
    let seen = stack
        .send(
            stack
                .api("/api/test/user?x=1")
                .header("x-access-token", &uma.token),
        )
        .await
        .seen();
    assert_eq!(seen.uri(), "/api/test/user?x=1");
    seen.assert_identity(["uma", "uma@example.com", "user", &id]);

    // The same with a bearer token, on the authenticated pages.
    let seen = stack
        .send(
            stack
                .api("/app/orders/7")
                .header(header::AUTHORIZATION, format!("Bearer {}", uma.token)),
        )
        .await
        .seen();
    assert_eq!(seen.uri(), "/app/orders/7");
    seen.assert_identity(["uma", "uma@example.com", "user", &id]);

    // Public routes name a signed-in caller too.
    let seen = stack
        .send(
            stack
                .api("/api/test/all")
                .header("x-access-token", &uma.token),
        )
        .await
        .seen();
    seen.assert_identity(["uma", "uma@example.com", "user", &id]);
}

async fn role_routes_need_the_role(kind: Kind) {
    let Some(stack) = Stack::start(kind).await else {
        return;
    };
    let uma = stack.user("uma", &["user"]).await;
    let mona = stack.user("mona", &["user", "moderator"]).await;
    let ada = stack.user("ada", &["user", "admin"]).await;

    for (user, path) in [
        (&uma, "/api/test/mod"),
        (&uma, "/api/test/admin"),
        (&mona, "/api/test/admin"),
        (&ada, "/api/test/mod"),
    ] {
        let answer = stack
            .refused(stack.api(path).header("x-access-token", &user.token))
            .await;
        assert_eq!(
            answer.status,
            StatusCode::FORBIDDEN,
            "{path}: {}",
            answer.body
        );
        // A browser signed in without the role: refused, not sent to sign in again.
        let answer = stack
            .refused(stack.page(path).header(header::COOKIE, &user.cookie))
            .await;
        assert_eq!(
            answer.status,
            StatusCode::FORBIDDEN,
            "{path}: {}",
            answer.body
        );
    }

    let seen = stack
        .send(
            stack
                .api("/api/test/mod")
                .header("x-access-token", &mona.token),
        )
        .await
        .seen();
    seen.assert_identity([
        "mona",
        "mona@example.com",
        "user,moderator",
        &mona.id.to_string(),
    ]);
    let seen = stack
        .send(
            stack
                .api("/api/test/admin")
                .header("x-access-token", &ada.token),
        )
        .await
        .seen();
    seen.assert_identity(["ada", "ada@example.com", "user,admin", &ada.id.to_string()]);
}

async fn a_disabled_users_very_next_request_is_refused(kind: Kind) {
    let Some(stack) = Stack::start(kind).await else {
        return;
    };
    let ada = stack.user("ada", &["user", "admin"]).await;
    let uma = stack.user("uma", &["user"]).await;
    let as_uma = || {
        stack
            .api("/api/test/user")
            .header("x-access-token", &uma.token)
    };
    stack.send(as_uma()).await.seen().assert_identity([
        "uma",
        "uma@example.com",
        "user",
        &uma.id.to_string(),
    ]);

    // The admin API is not behind the proxy here: straight to Tollgate.
    let disabled = stack
        .client
        .post(format!(
            "{}/api/admin/users/{}/disable",
            stack.tollgate.base, uma.id
        ))
        .header("x-access-token", &ada.token)
        .send()
        .await
        .unwrap();
    assert_eq!(disabled.status(), StatusCode::OK);

    let answer = stack.refused(as_uma()).await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "{}", answer.body);
    let answer = stack
        .refused(stack.page("/app/page").header(header::COOKIE, &uma.cookie))
        .await;
    assert_eq!(answer.status, StatusCode::FOUND, "{}", answer.body);
    // Others are unaffected.
    stack
        .send(
            stack
                .api("/api/test/user")
                .header("x-access-token", &ada.token),
        )
        .await
        .seen();
}

async fn spoofed_identity_headers_never_reach_the_app(kind: Kind) {
    let Some(stack) = Stack::start(kind).await else {
        return;
    };
    let uma = stack.user("uma", &["user"]).await;
    // Every spelling a framework might read as an identity header.
    let spoof = |request: reqwest::RequestBuilder| {
        request
            .header("Remote-User", "admin")
            .header("remote-user", "root")
            .header("Remote-Email", "admin@example.com")
            .header("Remote-Groups", "admin")
            .header("Remote-User-Id", "1")
            .header("Remote_User", "admin")
            .header("REMOTE_GROUPS", "admin")
    };

    // Anonymous on a public route: the app sees no identity at all.
    let seen = stack.send(spoof(stack.api("/api/test/all"))).await.seen();
    seen.assert_identity(["", "", "", ""]);
    let seen = stack.send(spoof(stack.page("/api/test/all"))).await.seen();
    seen.assert_identity(["", "", "", ""]);

    // Signed in: the app sees who the caller really is, once.
    let seen = stack
        .send(spoof(
            stack
                .api("/api/test/user")
                .header("x-access-token", &uma.token),
        ))
        .await
        .seen();
    seen.assert_identity(["uma", "uma@example.com", "user", &uma.id.to_string()]);

    // And the headers open nothing.
    let answer = stack.refused(spoof(stack.api("/api/test/admin"))).await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "{}", answer.body);
    let answer = stack
        .refused(spoof(
            stack
                .api("/api/test/admin")
                .header("x-access-token", &uma.token),
        ))
        .await;
    assert_eq!(answer.status, StatusCode::FORBIDDEN, "{}", answer.body);
}

async fn the_access_cookie_from_sign_in_opens_pages(kind: Kind) {
    let Some(stack) = Stack::start(kind).await else {
        return;
    };
    let uma = stack.user("uma", &["user"]).await;
    let seen = stack
        .send(
            stack
                .page("/app/page?tab=2")
                .header(header::COOKIE, format!("theme=dark; {}", uma.cookie)),
        )
        .await
        .seen();
    assert_eq!(seen.uri(), "/app/page?tab=2");
    seen.assert_identity(["uma", "uma@example.com", "user", &uma.id.to_string()]);

    // A cookie that is not a token is no sign-in: back to the login page.
    let answer = stack
        .refused(
            stack
                .page("/app/page")
                .header(header::COOKIE, "tollgate_access=forged"),
        )
        .await;
    assert_eq!(answer.status, StatusCode::FOUND, "{}", answer.body);
    assert_eq!(
        answer.header("location"),
        Some("/login?redirect=%2Fapp%2Fpage")
    );
}

/// Sends `GET path` exactly as written, which an HTTP client library would first tidy up
/// (`..`, `%2e`), and returns the status.
async fn raw_get(base: &str, path: &str) -> StatusCode {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = base.strip_prefix("http://").unwrap();
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nAccept: application/json\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await.unwrap();
    let status = answer.split(' ').nth(1).unwrap_or_default();
    StatusCode::from_bytes(status.as_bytes())
        .unwrap_or_else(|_| panic!("not an HTTP answer: {answer}"))
}

async fn paths_that_lead_elsewhere_are_judged_where_they_lead(kind: Kind) {
    let Some(stack) = Stack::start(kind).await else {
        return;
    };
    // From the public route to the admin's, as the app would resolve them: the admin's rule
    // decides, so anonymous callers must sign in.
    for path in [
        "/api/test/all/../admin",
        "/api/test/all/%2e%2e/admin",
        "/api/test/all/%2E%2E/admin",
        "/api/test//all/../admin",
        "/api/test/./admin",
        "/api/test/%61dmin",
        "//api/test/admin",
    ] {
        let before = stack.app.hits();
        let status = raw_get(&stack.proxy.base, path).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{kind:?} {path}");
        assert_eq!(stack.app.hits(), before, "{kind:?} {path} reached the app");
    }
    // Paths that servers read differently are refused outright.
    for path in [
        "/api/test/all%2f..%2fadmin",
        "/api/test/all/..%2fadmin",
        "/api/test/all/..;/admin",
        "/api/test/all/..\\admin",
    ] {
        let before = stack.app.hits();
        let status = raw_get(&stack.proxy.base, path).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{kind:?} {path}");
        assert_eq!(stack.app.hits(), before, "{kind:?} {path} reached the app");
    }
    // A query is not a path.
    assert_eq!(
        raw_get(&stack.proxy.base, "/api/test/all?next=/../admin").await,
        StatusCode::OK
    );
}
