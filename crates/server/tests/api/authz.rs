//! Forward-auth through the real router: the tutorial's four routes as rules, asked about by
//! a proxy the way Traefik/Caddy (`X-Forwarded-*`) and nginx (`X-Original-*`) ask.

use api::Role;
use axum::{
    body::Body,
    http::{Request, StatusCode},
};

use crate::support::{TestApp, TestResponse};

/// The tutorial's `/api/test/*` behaviour, as four rules, plus a host-specific rule.
pub const TUTORIAL_RULES: &str = r#"
[[rule]]
path = "/api/test/all"
policy = "bypass"

[[rule]]
path = "/api/test/user"
policy = "authenticated"

[[rule]]
path = "/api/test/mod"
any_of = ["moderator"]

[[rule]]
path = "/api/test/admin"
any_of = ["admin"]

[[rule]]
host = "orders.example.com"
path = "/api/orders/**"
methods = ["GET", "POST"]
any_of = ["admin", "moderator"]
"#;

async fn app_with_rules(rules: &str) -> (TestApp, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("tollgate.toml");
    std::fs::write(&file, rules).unwrap();
    let app = TestApp::with_settings(|s| s.config_file = Some(file)).await;
    (app, dir)
}

/// How the original request reaches Tollgate.
#[derive(Clone, Copy)]
enum Proxy {
    Caddy,
    Nginx,
}

struct Ask<'a> {
    proxy: Proxy,
    method: &'a str,
    host: &'a str,
    uri: &'a str,
    headers: Vec<(&'a str, String)>,
}

impl<'a> Ask<'a> {
    fn new(proxy: Proxy, uri: &'a str) -> Self {
        Self {
            proxy,
            method: "GET",
            host: "app.example.com",
            uri,
            headers: Vec::new(),
        }
    }

    fn token(mut self, token: &str) -> Self {
        self.headers.push(("x-access-token", token.to_owned()));
        self
    }

    fn header(mut self, name: &'a str, value: &str) -> Self {
        self.headers.push((name, value.to_owned()));
        self
    }

    fn method(mut self, method: &'a str) -> Self {
        self.method = method;
        self
    }

    fn host(mut self, host: &'a str) -> Self {
        self.host = host;
        self
    }

    async fn send(self, app: &TestApp) -> TestResponse {
        let mut request = match self.proxy {
            Proxy::Caddy => Request::get("/api/authz/forward-auth")
                .header("x-forwarded-method", self.method)
                .header("x-forwarded-proto", "https")
                .header("x-forwarded-host", self.host)
                .header("x-forwarded-uri", self.uri),
            Proxy::Nginx => Request::get("/api/authz/auth-request")
                .header("x-original-method", self.method)
                .header(
                    "x-original-url",
                    format!("https://{}{}", self.host, self.uri),
                ),
        };
        for (name, value) in &self.headers {
            request = request.header(*name, value);
        }
        app.send(request.body(Body::empty()).unwrap()).await
    }
}

fn assert_identity(response: &TestResponse, user: &str, groups: &str) {
    response.assert(StatusCode::OK);
    assert_eq!(response.header("remote-user"), Some(user));
    let email = if user.is_empty() {
        String::new()
    } else {
        format!("{user}@example.com")
    };
    assert_eq!(response.header("remote-email"), Some(email.as_str()));
    assert_eq!(response.header("remote-groups"), Some(groups));
    assert!(response.header("remote-user-id").is_some());
}

#[tokio::test]
async fn the_tutorials_routes_as_rules_through_both_kinds_of_proxy() {
    let (app, _dir) = app_with_rules(TUTORIAL_RULES).await;
    let user = app.user_with_roles("uma", &[Role::User]).await;
    let moderator = app
        .user_with_roles("mona", &[Role::User, Role::Moderator])
        .await;
    let admin = app.user_with_roles("ada", &[Role::User, Role::Admin]).await;
    let callers: [(Option<&str>, &str, &str); 4] = [
        (None, "", ""),
        (Some(&user), "uma", "user"),
        (Some(&moderator), "mona", "user,moderator"),
        (Some(&admin), "ada", "user,admin"),
    ];
    use StatusCode as S;
    let table: [(&str, [S; 4]); 5] = [
        ("/api/test/all", [S::OK, S::OK, S::OK, S::OK]),
        ("/api/test/user", [S::UNAUTHORIZED, S::OK, S::OK, S::OK]),
        (
            "/api/test/mod",
            [S::UNAUTHORIZED, S::FORBIDDEN, S::OK, S::FORBIDDEN],
        ),
        (
            "/api/test/admin",
            [S::UNAUTHORIZED, S::FORBIDDEN, S::FORBIDDEN, S::OK],
        ),
        ("/api/test/nothing", [S::FORBIDDEN; 4]),
    ];
    for proxy in [Proxy::Caddy, Proxy::Nginx] {
        for (path, expected) in &table {
            for ((token, name, groups), status) in callers.iter().zip(expected) {
                let mut ask = Ask::new(proxy, path);
                if let Some(token) = token {
                    ask = ask.token(token);
                }
                let response = ask.send(&app).await;
                assert_eq!(
                    response.status,
                    *status,
                    "{path} as {name:?}: {}",
                    response.text()
                );
                if *status == S::OK {
                    // Every 2xx carries all four identity headers, empty for an anonymous caller.
                    assert_identity(&response, name, groups);
                    // It is for the proxy alone: never stored, and none of the browser headers.
                    assert_eq!(response.header("cache-control"), Some("no-store"));
                    assert_eq!(response.header("content-security-policy"), None);
                    assert_eq!(response.header("x-frame-options"), None);
                } else {
                    assert!(response.header("remote-user").is_none());
                    assert!(response.message().len() > 3);
                    // A refusal reaches the browser through the proxy: the headers go with it.
                    assert!(response.header("content-security-policy").is_some());
                    assert_eq!(response.header("x-frame-options"), Some("DENY"));
                    assert_eq!(response.header("cache-control"), Some("no-store"));
                }
            }
        }
    }
}

#[tokio::test]
async fn bearer_tokens_count_as_much_as_the_tutorials_header() {
    let (app, _dir) = app_with_rules(TUTORIAL_RULES).await;
    let admin = app.user_with_roles("ada", &[Role::Admin]).await;
    let response = Ask::new(Proxy::Caddy, "/api/test/admin")
        .header("authorization", &format!("Bearer {admin}"))
        .send(&app)
        .await;
    assert_identity(&response, "ada", "admin");
    // A bad token is no token.
    let response = Ask::new(Proxy::Caddy, "/api/test/user")
        .token("not-a-token")
        .send(&app)
        .await;
    response.assert(StatusCode::UNAUTHORIZED);
    // ... but a public route stays public for it.
    let response = Ask::new(Proxy::Caddy, "/api/test/all")
        .token("not-a-token")
        .send(&app)
        .await;
    assert_identity(&response, "", "");
}

#[tokio::test]
async fn hosts_and_methods_of_a_rule_are_honoured() {
    let (app, _dir) = app_with_rules(TUTORIAL_RULES).await;
    let moderator = app.user_with_roles("mona", &[Role::Moderator]).await;
    let ask = |method, host| {
        Ask::new(Proxy::Nginx, "/api/orders/7/items?page=2")
            .method(method)
            .host(host)
            .token(&moderator)
    };
    ask("GET", "orders.example.com")
        .send(&app)
        .await
        .assert(StatusCode::OK);
    ask("POST", "Orders.Example.com:8443")
        .send(&app)
        .await
        .assert(StatusCode::OK);
    // No rule for DELETE, nor for another host: denied by default.
    ask("DELETE", "orders.example.com")
        .send(&app)
        .await
        .assert(StatusCode::FORBIDDEN);
    ask("GET", "app.example.com")
        .send(&app)
        .await
        .assert(StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn paths_are_judged_as_the_upstream_will_read_them() {
    let (app, _dir) = app_with_rules(TUTORIAL_RULES).await;
    let user = app.user_with_roles("uma", &[Role::User]).await;
    for proxy in [Proxy::Caddy, Proxy::Nginx] {
        // Through the public route to the admin's: judged as the admin route.
        for uri in [
            "/api/test/all/../admin",
            "/api/test/all/%2e%2e/admin",
            "/api/test//all/../admin?x=1",
        ] {
            Ask::new(proxy, uri)
                .send(&app)
                .await
                .assert(StatusCode::UNAUTHORIZED);
            Ask::new(proxy, uri)
                .token(&user)
                .send(&app)
                .await
                .assert(StatusCode::FORBIDDEN);
        }
        // Paths servers disagree about are refused.
        for uri in ["/api/test/all%2f..%2fadmin", "/api/test/all/..;/admin"] {
            let response = Ask::new(proxy, uri).send(&app).await;
            response.assert(StatusCode::FORBIDDEN);
            assert!(
                response.message().contains("ambiguous"),
                "{}",
                response.text()
            );
        }
    }
}

#[tokio::test]
async fn browsers_are_sent_to_the_login_page_and_scripts_get_401() {
    let (app, _dir) = app_with_rules(TUTORIAL_RULES).await;
    let page = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8";
    // Caddy and Traefik pass a redirect on.
    let response = Ask::new(Proxy::Caddy, "/api/test/user?tab=2&x=%20")
        .header("accept", page)
        .send(&app)
        .await;
    response.assert(StatusCode::FOUND);
    assert_eq!(
        response.header("location"),
        Some("/login?redirect=%2Fapi%2Ftest%2Fuser%3Ftab%3D2%26x%3D%2520")
    );
    // nginx only understands 401: the Location rides on it.
    let response = Ask::new(Proxy::Nginx, "/api/test/user")
        .header("sec-fetch-mode", "navigate")
        .header("accept", "*/*")
        .send(&app)
        .await;
    response.assert(StatusCode::UNAUTHORIZED);
    assert_eq!(
        response.header("location"),
        Some("/login?redirect=%2Fapi%2Ftest%2Fuser")
    );
    // Scripts: XHR, fetch, API clients, and non-GET requests.
    for ask in [
        Ask::new(Proxy::Caddy, "/api/test/user")
            .header("accept", page)
            .header("x-requested-with", "XMLHttpRequest"),
        Ask::new(Proxy::Caddy, "/api/test/user")
            .header("accept", page)
            .header("sec-fetch-mode", "cors"),
        Ask::new(Proxy::Caddy, "/api/test/user").header("accept", "application/json"),
        Ask::new(Proxy::Caddy, "/api/test/user")
            .method("POST")
            .header("accept", page),
    ] {
        let response = ask.send(&app).await;
        response.assert(StatusCode::UNAUTHORIZED);
        assert_eq!(response.header("location"), None);
        assert_eq!(response.header("www-authenticate"), Some("Bearer"));
    }
    // A signed-in user without the role: 403, not the login page.
    let user = app.user_with_roles("uma", &[Role::User]).await;
    Ask::new(Proxy::Caddy, "/api/test/admin")
        .header("accept", page)
        .token(&user)
        .send(&app)
        .await
        .assert(StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn the_access_cookie_signs_a_browser_in_and_logout_clears_it() {
    let (app, _dir) = app_with_rules(TUTORIAL_RULES).await;
    app.user_with_roles("uma", &[Role::User]).await;
    let signin = app.signin("uma", crate::support::PASSWORD).await;
    let set_cookies: Vec<String> = signin
        .headers
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect();
    let access = set_cookies
        .iter()
        .find(|c| c.starts_with("tollgate_access="))
        .expect("sign-in sets the access cookie");
    for attribute in ["HttpOnly", "SameSite=Lax", "Path=/", "Max-Age=900"] {
        assert!(access.contains(attribute), "{access}");
    }
    let value = access
        .strip_prefix("tollgate_access=")
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    let cookie = format!("theme=dark; tollgate_access={value}");
    let response = Ask::new(Proxy::Caddy, "/api/test/user")
        .header("cookie", &cookie)
        .send(&app)
        .await;
    assert_identity(&response, "uma", "user");

    // A change made with the cookie from another site is refused; from the site itself, fine.
    Ask::new(Proxy::Caddy, "/api/test/user")
        .method("POST")
        .header("cookie", &cookie)
        .header("sec-fetch-site", "cross-site")
        .send(&app)
        .await
        .assert(StatusCode::FORBIDDEN);
    Ask::new(Proxy::Caddy, "/api/test/user")
        .method("POST")
        .header("cookie", &cookie)
        .header("sec-fetch-site", "same-origin")
        .send(&app)
        .await
        .assert(StatusCode::OK);

    // Logging out clears the cookie and ends the session: the old value no longer works.
    let logout = app
        .send(
            Request::post("/api/auth/logout")
                .header("cookie", &cookie)
                .header("x-access-token", &value)
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    logout.assert(StatusCode::OK);
    assert!(
        logout
            .headers
            .get_all("set-cookie")
            .iter()
            .any(|v| v.to_str().unwrap().starts_with("tollgate_access=;")),
        "{:?}",
        logout.headers
    );
    Ask::new(Proxy::Caddy, "/api/test/user")
        .header("cookie", &cookie)
        .send(&app)
        .await
        .assert(StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn revocation_takes_effect_on_the_very_next_check() {
    let (app, _dir) = app_with_rules(TUTORIAL_RULES).await;
    let admin = app.user_with_roles("ada", &[Role::User, Role::Admin]).await;
    let moderator = app
        .user_with_roles("mona", &[Role::User, Role::Moderator])
        .await;
    let mona = app
        .state
        .storage
        .user_by_username("mona")
        .await
        .unwrap()
        .unwrap();
    Ask::new(Proxy::Nginx, "/api/test/mod")
        .token(&moderator)
        .send(&app)
        .await
        .assert(StatusCode::OK);
    app.post(
        &format!("/api/admin/users/{}/disable", mona.id),
        serde_json::json!({}),
        Some(&admin),
    )
    .await
    .assert(StatusCode::OK);
    Ask::new(Proxy::Nginx, "/api/test/mod")
        .token(&moderator)
        .send(&app)
        .await
        .assert(StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn checks_need_no_database() {
    let (app, _dir) = app_with_rules(TUTORIAL_RULES).await;
    let admin = app.user_with_roles("ada", &[Role::Admin]).await;
    // Verified once, so the token is known; then the database goes away.
    Ask::new(Proxy::Caddy, "/api/test/admin")
        .token(&admin)
        .send(&app)
        .await
        .assert(StatusCode::OK);
    app.state.storage.close().await;
    let response = Ask::new(Proxy::Caddy, "/api/test/admin")
        .token(&admin)
        .send(&app)
        .await;
    assert_identity(&response, "ada", "admin");
    Ask::new(Proxy::Nginx, "/api/test/mod")
        .token(&admin)
        .send(&app)
        .await
        .assert(StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn a_request_that_is_not_from_a_proxy_gets_a_clear_400() {
    let (app, _dir) = app_with_rules(TUTORIAL_RULES).await;
    for path in ["/api/authz/forward-auth", "/api/authz/auth-request"] {
        let response = app.get(path, None).await;
        response.assert(StatusCode::BAD_REQUEST);
        assert!(
            response.message().contains("missing"),
            "{}",
            response.text()
        );
    }
    let response = app
        .send(
            Request::get("/api/authz/forward-auth")
                .header("x-forwarded-method", "GET")
                .header("x-forwarded-uri", "no-slash")
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    response.assert(StatusCode::BAD_REQUEST);
    let response = app
        .send(
            Request::get("/api/authz/auth-request")
                .header("x-original-method", "G E T")
                .header("x-original-url", "https://a.example.com/")
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    response.assert(StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn without_a_config_file_everything_is_denied() {
    let app = TestApp::new().await;
    let admin = app.user_with_roles("ada", &[Role::Admin]).await;
    Ask::new(Proxy::Caddy, "/api/test/all")
        .token(&admin)
        .send(&app)
        .await
        .assert(StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn a_bad_config_file_stops_the_start_with_the_rules_position() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("tollgate.toml");
    std::fs::write(
        &file,
        "[[rule]]\npath = \"/**\"\npolicy = \"bypass\"\n\n[[rule]]\npath = \"/admin\"\nany_of = [\"admin\"]\n",
    )
    .unwrap();
    let db = crate::support::TestDatabase::fresh().await;
    let mut settings = tollgate::config::Settings::for_tests();
    settings.config_file = Some(file);
    let error = match tollgate::AppState::load(db.storage().await, settings).await {
        Ok(_) => panic!("a bad config file must stop the start"),
        Err(e) => format!("{e:#}"),
    };
    assert!(
        error.contains("rule 2") && error.contains("never match"),
        "{error}"
    );
}
