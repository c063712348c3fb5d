//! `TestApp`: the real router on a fresh database, driven in-process.
//!
//! SQLite by default (a temporary file per test). With `TOLLGATE_TEST_DATABASE_URL` set to a
//! PostgreSQL URL, each test gets its own freshly created PostgreSQL database instead.

use std::{
    convert::Infallible,
    sync::atomic::{AtomicU32, Ordering},
    time::{SystemTime, UNIX_EPOCH},
};

use api::Role;
use axum::{
    body::Body,
    http::{HeaderMap, Method, Request, StatusCode, header},
    response::Response,
};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tempfile::TempDir;
use tollgate::{AppState, app, config::Settings, storage::Storage};
use tower::{ServiceExt, util::BoxCloneSyncService};

pub use crate::mail_sink::MailSink;

pub const PASSWORD: &str = "correct horse battery";

/// A database URL for one test, and the temporary directory that holds it (SQLite).
pub struct TestDatabase {
    pub url: String,
    _dir: Option<TempDir>,
}

impl TestDatabase {
    pub async fn fresh() -> Self {
        match std::env::var("TOLLGATE_TEST_DATABASE_URL") {
            Ok(admin_url) if !admin_url.is_empty() => {
                static COUNTER: AtomicU32 = AtomicU32::new(0);
                let nanos = SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .unwrap()
                    .as_nanos();
                let name = format!(
                    "tg_{}_{}_{}",
                    std::process::id(),
                    nanos % 1_000_000_000,
                    COUNTER.fetch_add(1, Ordering::Relaxed)
                );
                let admin = sqlx::PgPool::connect(&admin_url).await.unwrap();
                sqlx::query(&format!("CREATE DATABASE {name}"))
                    .execute(&admin)
                    .await
                    .unwrap();
                admin.close().await;
                let (base, _) = admin_url.rsplit_once('/').unwrap();
                Self {
                    url: format!("{base}/{name}"),
                    _dir: None,
                }
            }
            _ => {
                let dir = tempfile::tempdir().unwrap();
                let url = format!("sqlite://{}", dir.path().join("tollgate.db").display());
                Self {
                    url,
                    _dir: Some(dir),
                }
            }
        }
    }

    /// Another handle on a database created by [`Self::fresh`] (it stays with its creator).
    pub fn existing(url: &str) -> Self {
        Self {
            url: url.to_owned(),
            _dir: None,
        }
    }

    pub async fn storage(&self) -> Storage {
        let storage = Storage::connect(&self.url, 8).await.unwrap();
        storage.migrate().await.unwrap();
        storage
    }
}

pub struct TestApp {
    pub state: AppState,
    /// The whole app: routes and layers, as the server runs them.
    pub router: BoxCloneSyncService<Request<Body>, Response, Infallible>,
    pub db: TestDatabase,
}

/// A response, read whole.
#[derive(Debug)]
pub struct TestResponse {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

impl TestResponse {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", self.text()))
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn message(&self) -> String {
        self.json()["message"]
            .as_str()
            .unwrap_or_else(|| panic!("no message in {}", self.text()))
            .to_owned()
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    #[track_caller]
    pub fn assert(&self, status: StatusCode) -> &Self {
        assert_eq!(self.status, status, "body: {}", self.text());
        self
    }
}

impl TestApp {
    pub async fn new() -> Self {
        Self::with_settings(|_| {}).await
    }

    pub async fn with_settings(change: impl FnOnce(&mut Settings)) -> Self {
        let db = TestDatabase::fresh().await;
        Self::on(db, change).await
    }

    /// An app that mails through a real SMTP server on loopback, or `None` when the test must
    /// be skipped (see [`MailSink`]). Retries are quick and nothing is throttled by time.
    pub async fn with_mail(change: impl FnOnce(&mut Settings)) -> Option<(Self, MailSink)> {
        let sink = MailSink::start().await?;
        let url = sink.smtp_url();
        let app = Self::with_settings(|settings| {
            settings.mail.smtp = Some(
                tollgate::mail::SmtpSettings::parse(&url, None, "Tollgate <auth@tollgate.test>")
                    .unwrap(),
            );
            settings.mail.retry_base = std::time::Duration::from_millis(100);
            settings.mail.send_cooldown = std::time::Duration::ZERO;
            settings.public_url = "http://tollgate.test".to_owned();
            change(settings);
        })
        .await;
        Some((app, sink))
    }

    /// Another app (a restart, or a second node) on an existing database.
    pub async fn on(db: TestDatabase, change: impl FnOnce(&mut Settings)) -> Self {
        let mut settings = Settings::for_tests();
        change(&mut settings);
        let state = AppState::new(db.storage().await, settings).await.unwrap();
        Self {
            router: BoxCloneSyncService::new(
                app(state.clone()).map_response(|response| response.map(Body::new)),
            ),
            state,
            db,
        }
    }

    /// Serves this app on a free loopback port, as the binary does (real TCP, the connection
    /// deadlines, upgrades), until the test ends. Returns its base URL.
    pub async fn serve(&self) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let settings = tollgate::config::ServeSettings {
            header_read_timeout: std::time::Duration::from_secs(10),
            request_body_timeout: std::time::Duration::from_secs(10),
            idle_timeout: std::time::Duration::from_secs(10),
            max_connections: 100,
            shutdown_drain: std::time::Duration::from_secs(1),
            open_file_limit: None,
        };
        let state = self.state.clone();
        tokio::spawn(async move {
            tollgate::serve(listener, state, settings, std::future::pending())
                .await
                .unwrap();
        });
        base
    }

    pub async fn send(&self, request: Request<Body>) -> TestResponse {
        let response = self.router.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let body = response
            .into_body()
            .collect()
            .await
            .unwrap()
            .to_bytes()
            .to_vec();
        TestResponse {
            status,
            headers,
            body,
        }
    }

    pub async fn delete(&self, path: &str, token: Option<&str>) -> TestResponse {
        let mut request = Request::delete(path);
        if let Some(token) = token {
            request = request.header("x-access-token", token);
        }
        self.send(request.body(Body::empty()).unwrap()).await
    }

    pub async fn get(&self, path: &str, token: Option<&str>) -> TestResponse {
        let mut request = Request::get(path);
        if let Some(token) = token {
            request = request.header("x-access-token", token);
        }
        self.send(request.body(Body::empty()).unwrap()).await
    }

    pub async fn post(&self, path: &str, body: Value, token: Option<&str>) -> TestResponse {
        self.request(Method::POST, path, body, token).await
    }

    pub async fn request(
        &self,
        method: Method,
        path: &str,
        body: Value,
        token: Option<&str>,
    ) -> TestResponse {
        self.send(json_request(method, path, &body, token)).await
    }

    pub async fn signup(&self, username: &str) -> TestResponse {
        self.post(
            "/api/auth/signup",
            json!({"username": username, "email": format!("{username}@example.com"), "password": PASSWORD}),
            None,
        )
        .await
    }

    pub async fn signin(&self, username: &str, password: &str) -> TestResponse {
        self.post(
            "/api/auth/signin",
            json!({"username": username, "password": password}),
            None,
        )
        .await
    }

    /// Creates a user with the given roles straight in the database, as `tollgate user add`
    /// does, and signs them in. Returns the access token.
    pub async fn user_with_roles(&self, username: &str, roles: &[Role]) -> String {
        let hash = self
            .state
            .passwords
            .hash(&api::Password::parse(PASSWORD).unwrap())
            .await
            .unwrap();
        self.state
            .storage
            .insert_user(&tollgate::storage::NewUser {
                username: &api::Username::parse(username).unwrap(),
                email: &api::Email::parse(&format!("{username}@example.com")).unwrap(),
                password_hash: &hash,
                roles,
                email_verified_at: None,
            })
            .await
            .unwrap();
        self.token_for(username).await
    }

    pub async fn token_for(&self, username: &str) -> String {
        let response = self.signin(username, PASSWORD).await;
        response.assert(StatusCode::OK);
        response.json()["accessToken"].as_str().unwrap().to_owned()
    }
}

/// A signed-in browser session: the access token and the refresh cookie's value.
#[derive(Debug, Clone)]
pub struct Session {
    pub access: String,
    pub refresh: String,
}

impl TestResponse {
    /// The refresh token set by this response's `Set-Cookie`, if any (empty when cleared).
    pub fn refresh_cookie(&self) -> Option<String> {
        self.headers
            .get_all("set-cookie")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find_map(|v| v.strip_prefix("tollgate_refresh="))
            .map(|rest| rest.split(';').next().unwrap_or("").to_owned())
    }

    pub fn set_cookie_header(&self) -> String {
        self.header("set-cookie").unwrap_or_default().to_owned()
    }
}

impl TestApp {
    /// Signs in and keeps both tokens, as a browser would.
    pub async fn session(&self, username: &str) -> Session {
        let response = self.signin(username, PASSWORD).await;
        response.assert(StatusCode::OK);
        Session {
            access: response.json()["accessToken"].as_str().unwrap().to_owned(),
            refresh: response
                .refresh_cookie()
                .expect("signin sets the refresh cookie"),
        }
    }

    /// `POST /api/auth/refresh` with the refresh cookie (and extra headers, e.g. Origin).
    pub async fn refresh(&self, refresh: &str, headers: &[(&str, &str)]) -> TestResponse {
        let mut request = Request::post("/api/auth/refresh")
            .header(header::COOKIE, format!("tollgate_refresh={refresh}"));
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        self.send(request.body(Body::empty()).unwrap()).await
    }

    /// Refreshes and returns the new session (panics unless 200).
    pub async fn refreshed(&self, refresh: &str) -> Session {
        let response = self.refresh(refresh, &[]).await;
        response.assert(StatusCode::OK);
        Session {
            access: response.json()["accessToken"].as_str().unwrap().to_owned(),
            refresh: response.refresh_cookie().unwrap(),
        }
    }

    /// Puts the account into a long back-off (about 15 minutes) through the storage layer, whose
    /// clock the test controls.
    pub async fn lock_out(&self, username: &str) {
        use tollgate::storage::SigninAttempt::{Allowed, LockedUntil};
        let storage = &self.state.storage;
        let user = tollgate::storage::ThrottleKey::for_name(username);
        let real_now = tollgate::clock::unix_now();
        let mut now = real_now - 1000;
        for _ in 0..40 {
            match storage.begin_signin_attempt(&user, now).await.unwrap() {
                Allowed => {}
                LockedUntil(until) if until > real_now + 60 => return,
                LockedUntil(until) => now = until,
            }
        }
        panic!("could not put the account into a long back-off");
    }

    /// A request from a given client address (as the TCP peer).
    pub async fn send_from(&self, ip: &str, mut request: Request<Body>) -> TestResponse {
        let addr: std::net::SocketAddr = format!("{ip}:40000").parse().unwrap();
        request
            .extensions_mut()
            .insert(axum::extract::ConnectInfo(addr));
        self.send(request).await
    }
}

/// `POST /api/auth/signin` with a username and password.
pub fn signin_request(username: &str, password: &str) -> Request<Body> {
    json_request(
        Method::POST,
        "/api/auth/signin",
        &json!({"username": username, "password": password}),
        None,
    )
}

/// A JSON request.
pub fn json_request(
    method: Method,
    path: &str,
    body: &Value,
    token: Option<&str>,
) -> Request<Body> {
    let mut request = Request::builder()
        .method(method)
        .uri(path)
        .header(header::CONTENT_TYPE, "application/json");
    if let Some(token) = token {
        request = request.header(header::AUTHORIZATION, format!("Bearer {token}"));
    }
    request.body(Body::from(body.to_string())).unwrap()
}

/// Decodes a JWT part without checking anything, to look at what was issued.
pub fn jwt_part(token: &str, index: usize) -> Value {
    use base64::Engine;
    let part = token.split('.').nth(index).unwrap();
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(part)
        .unwrap();
    serde_json::from_slice(&bytes).unwrap()
}
