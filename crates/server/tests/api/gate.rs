//! Gate mode over real TCP: Tollgate served on a port in front of a real upstream (an echo
//! server in this process), driven by an HTTP client and a WebSocket client.

use std::{net::SocketAddr, time::Duration};

use api::Role;
use axum::{
    Router,
    extract::{
        Request,
        ws::{Message as ServerMessage, WebSocketUpgrade},
    },
    http::{HeaderMap, StatusCode},
    response::IntoResponse,
    routing::{any, get},
};
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio_tungstenite::tungstenite::{Message, client::IntoClientRequest};
use tollgate::authz::Upstream;

use crate::support::{PASSWORD, TestApp};

const RULES: &str = r#"
[[rule]]
path = "/public/**"
policy = "bypass"

[[rule]]
path = "/"
policy = "bypass"

[[rule]]
path = "/app/**"
policy = "authenticated"

[[rule]]
path = "/admin/**"
any_of = ["admin"]

[[rule]]
path = "/ws"
policy = "authenticated"

[[rule]]
path = "/slow"
policy = "bypass"
"#;

/// The upstream: echoes what it received as JSON, with headers an app would set itself.
async fn echo(request: Request) -> impl IntoResponse {
    let (parts, body) = request.into_parts();
    let body = axum::body::to_bytes(body, usize::MAX).await.unwrap();
    // Every value of a header, comma-joined in the order received.
    let mut headers = serde_json::Map::new();
    for name in parts.headers.keys() {
        let values: Vec<&str> = parts
            .headers
            .get_all(name)
            .iter()
            .map(|value| value.to_str().unwrap_or("<binary>"))
            .collect();
        headers.insert(name.as_str().to_owned(), Value::String(values.join(", ")));
    }
    (
        [
            (
                "content-security-policy",
                "default-src 'self' 'unsafe-inline'",
            ),
            ("cache-control", "public, max-age=60"),
            ("x-upstream", "yes"),
        ],
        axum::Json(json!({
            "method": parts.method.as_str(),
            "uri": parts.uri.to_string(),
            "headers": headers,
            "body_len": body.len(),
        })),
    )
}

async fn ws_echo(ws: WebSocketUpgrade, headers: HeaderMap) -> impl IntoResponse {
    let user = headers
        .get("remote-user")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    ws.on_upgrade(move |mut socket| async move {
        while let Some(Ok(message)) = socket.recv().await {
            if let ServerMessage::Text(text) = message {
                let reply = format!("{user}: {}", text.as_str());
                if socket
                    .send(ServerMessage::Text(reply.into()))
                    .await
                    .is_err()
                {
                    break;
                }
            }
        }
    })
}

async fn start_upstream() -> SocketAddr {
    let app = Router::new()
        .route("/ws", get(ws_echo))
        .route(
            "/public/hop-answer",
            get(|| async {
                (
                    [
                        ("connection", "x-hop"),
                        ("x-hop", "for the gate only"),
                        ("keep-alive", "timeout=5"),
                        ("via", "1.1 app"),
                        ("x-upstream", "yes"),
                    ],
                    "ok",
                )
            }),
        )
        .route(
            "/slow",
            get(|| async {
                tokio::time::sleep(Duration::from_secs(3)).await;
                "late"
            }),
        )
        .fallback(any(echo));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    address
}

struct Gate {
    app: TestApp,
    base: String,
    client: reqwest::Client,
    _dir: tempfile::TempDir,
}

impl Gate {
    async fn start(upstream: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("tollgate.toml");
        std::fs::write(&file, RULES).unwrap();
        let upstream = Upstream::parse("/", upstream).unwrap();
        let app = TestApp::with_settings(|s| {
            s.config_file = Some(file);
            s.upstreams = vec![upstream];
            s.upstream_timeout = Duration::from_secs(1);
        })
        .await;
        let base = app.serve().await;
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        Self {
            app,
            base,
            client,
            _dir: dir,
        }
    }

    /// What the echo upstream received for a GET through the gate.
    async fn echo(&self, path: &str, headers: &[(&str, &str)]) -> Value {
        json(self.get(path, headers).await).await
    }

    async fn get(&self, path: &str, headers: &[(&str, &str)]) -> reqwest::Response {
        let mut request = self.client.get(format!("{}{path}", self.base));
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        request.send().await.unwrap()
    }
}

/// `body` is our JSON error for an upstream that cannot be reached.
fn assert_unreachable(body: &Value) {
    let message = body["message"].as_str().unwrap_or_default();
    assert!(message.contains("cannot be reached"), "{body}");
}

async fn json(response: reqwest::Response) -> Value {
    response.json().await.unwrap()
}

const SPOOFED: [(&str, &str); 4] = [
    ("remote-user", "root"),
    ("remote-email", "root@evil.example"),
    ("remote-groups", "admin"),
    ("remote-user-id", "1"),
];

#[tokio::test]
async fn allowed_requests_reach_the_upstream_with_our_identity_headers_only() {
    let upstream = start_upstream().await;
    let gate = Gate::start(&format!("http://{upstream}")).await;
    let token = gate.app.user_with_roles("uma", &[Role::User]).await;

    // Public, anonymous, with spoofed identity headers: they arrive empty.
    let response = gate.get("/public/page?q=1", &SPOOFED).await;
    assert_eq!(response.status(), StatusCode::OK);
    // The upstream's own headers are its own: not replaced by Tollgate's.
    assert_eq!(
        response.headers()["content-security-policy"],
        "default-src 'self' 'unsafe-inline'"
    );
    assert_eq!(response.headers()["cache-control"], "public, max-age=60");
    let echo = json(response).await;
    assert_eq!(echo["uri"], "/public/page?q=1");
    for (name, _) in SPOOFED {
        assert_eq!(echo["headers"][name], "", "{name}");
    }

    // Signed in: the upstream sees who, whatever the client claims; our cookies stay with us.
    let mut headers = SPOOFED.to_vec();
    headers.push(("x-access-token", &token));
    headers.push(("cookie", "theme=dark; tollgate_access=abc"));
    let response = gate.get("/app/orders", &headers).await;
    assert_eq!(response.status(), StatusCode::OK);
    let echo = json(response).await;
    assert_eq!(echo["headers"]["remote-user"], "uma");
    assert_eq!(echo["headers"]["remote-email"], "uma@example.com");
    assert_eq!(echo["headers"]["remote-groups"], "user");
    assert!(
        echo["headers"]["remote-user-id"]
            .as_str()
            .unwrap()
            .parse::<i64>()
            .is_ok()
    );
    assert_eq!(echo["headers"]["cookie"], "theme=dark");
    assert_eq!(echo["headers"]["x-forwarded-for"], "127.0.0.1");
    assert_eq!(echo["headers"]["x-forwarded-proto"], "http");
    assert!(echo["headers"]["x-forwarded-host"].is_string());

    // `/` is the upstream's in gate mode; Tollgate keeps its API and its sign-in pages.
    let echo = gate.echo("/", &[]).await;
    assert_eq!(echo["uri"], "/");
    let response = gate.get("/api/test/all", &[]).await;
    assert_eq!(response.text().await.unwrap(), "Public Content.");
    let response = gate.get("/login", &[]).await;
    assert!(response.text().await.unwrap().contains("<html"));
    // Tollgate's assets by name; any other `/assets/...` is the upstream's, under the rules.
    let ours = tollgate::http::ui::ASSETS[0].name;
    let response = gate.get(&format!("/assets/{ours}"), &[]).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert!(response.headers().get("x-upstream").is_none());
    let response = gate
        .get("/assets/theirs.css", &[("x-access-token", &token)])
        .await;
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn refused_requests_never_reach_the_upstream() {
    let upstream = start_upstream().await;
    let gate = Gate::start(&format!("http://{upstream}")).await;
    let user = gate.app.user_with_roles("uma", &[Role::User]).await;
    let admin = gate
        .app
        .user_with_roles("ada", &[Role::User, Role::Admin])
        .await;

    // Scripts get 401; a browser is sent to the login page and back.
    let response = gate
        .get("/app/orders", &[("accept", "application/json")])
        .await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert!(response.headers().get("x-upstream").is_none());
    let response = gate
        .get(
            "/app/orders?page=2",
            &[("accept", "text/html"), ("sec-fetch-mode", "navigate")],
        )
        .await;
    assert_eq!(response.status(), StatusCode::FOUND);
    assert_eq!(
        response.headers()["location"],
        "/login?redirect=%2Fapp%2Forders%3Fpage%3D2"
    );
    // Roles.
    let response = gate.get("/admin/users", &[("x-access-token", &user)]).await;
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    assert!(response.headers().get("x-upstream").is_none());
    let response = gate
        .get("/admin/users", &[("x-access-token", &admin)])
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    // No rule: denied.
    let response = gate.get("/elsewhere", &[("x-access-token", &admin)]).await;
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    // Traversal to the admin's pages through a public prefix.
    let response = gate.get("/public/%2e%2e/admin/users", &[]).await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);

    // Revocation: the very next request after the user is disabled is refused.
    let uma = gate
        .app
        .state
        .storage
        .user_by_username("uma")
        .await
        .unwrap()
        .unwrap();
    gate.app
        .post(
            &format!("/api/admin/users/{}/disable", uma.id),
            json!({}),
            Some(&admin),
        )
        .await
        .assert(StatusCode::OK);
    let response = gate.get("/app/orders", &[("x-access-token", &user)]).await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn a_browser_signed_in_through_the_gate_reaches_pages_with_its_cookie() {
    let upstream = start_upstream().await;
    let gate = Gate::start(&format!("http://{upstream}")).await;
    gate.app.user_with_roles("uma", &[Role::User]).await;
    let response = gate
        .client
        .post(format!("{}/api/auth/signin", gate.base))
        .json(&json!({"username": "uma", "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let cookie = response
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap())
        .find(|c| c.starts_with("tollgate_access="))
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    let response = gate
        .get(
            "/app/home",
            &[("cookie", &cookie), ("sec-fetch-mode", "navigate")],
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(json(response).await["headers"]["remote-user"], "uma");
}

#[tokio::test]
async fn bodies_stream_both_ways_without_the_api_body_limit() {
    let upstream = start_upstream().await;
    let gate = Gate::start(&format!("http://{upstream}")).await;
    let response = gate
        .client
        .post(format!("{}/public/upload", gate.base))
        .body(vec![b'x'; 1024 * 1024])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let echo = json(response).await;
    assert_eq!(echo["method"], "POST");
    assert_eq!(echo["body_len"], 1024 * 1024);
}

#[tokio::test]
async fn websockets_pass_through_the_gate() {
    let upstream = start_upstream().await;
    let gate = Gate::start(&format!("http://{upstream}")).await;
    let token = gate.app.user_with_roles("uma", &[Role::User]).await;
    let url = format!("{}/ws", gate.base.replace("http://", "ws://"));

    // Without credentials, no upgrade.
    let refused = tokio_tungstenite::connect_async(url.as_str()).await;
    assert!(refused.is_err());

    let mut request = url.as_str().into_client_request().unwrap();
    request
        .headers_mut()
        .insert("x-access-token", token.parse().unwrap());
    let (mut socket, response) = tokio_tungstenite::connect_async(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::SWITCHING_PROTOCOLS);
    socket.send(Message::text("hello")).await.unwrap();
    let reply = tokio::time::timeout(Duration::from_secs(5), socket.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(reply.into_text().unwrap().as_str(), "uma: hello");
    socket.close(None).await.unwrap();
}

#[tokio::test]
async fn a_websocket_the_upstream_refuses_is_our_json_502() {
    let upstream = start_upstream().await;
    let gate = Gate::start(&format!("http://{upstream}")).await;
    // `/public/...` is the echo, which answers a handshake with a plain 200.
    let url = format!(
        "{}/public/not-a-socket",
        gate.base.replace("http://", "ws://")
    );
    let refused = tokio_tungstenite::connect_async(url.as_str()).await;
    let Err(tokio_tungstenite::tungstenite::Error::Http(response)) = refused else {
        panic!("expected an HTTP refusal, got {refused:?}");
    };
    assert_eq!(response.status(), StatusCode::BAD_GATEWAY);
    let body: Value = serde_json::from_slice(response.body().as_deref().unwrap()).unwrap();
    assert_unreachable(&body);
}

#[tokio::test]
async fn an_upstream_that_is_down_or_slow_gets_502_or_504_in_json() {
    // A port nothing listens on.
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap()
    };
    let gate = Gate::start(&format!("http://{closed}")).await;
    let response = gate.get("/public/x", &[]).await;
    assert_eq!(response.status(), StatusCode::BAD_GATEWAY);
    let body = json(response).await;
    assert_unreachable(&body);

    let upstream = start_upstream().await;
    let gate = Gate::start(&format!("http://{upstream}")).await;
    let response = gate.get("/slow", &[]).await;
    assert_eq!(response.status(), StatusCode::GATEWAY_TIMEOUT);
    let body = json(response).await;
    assert!(
        body["message"].as_str().unwrap().contains("in time"),
        "{body}"
    );
}

#[tokio::test]
async fn hop_by_hop_headers_stay_behind_both_ways_and_via_grows_by_the_gate() {
    let upstream = start_upstream().await;
    let gate = Gate::start(&format!("http://{upstream}")).await;
    // A front proxy on a host called `proxy` is not us: no loop, and its entry stays.
    let response = gate
        .get(
            "/public/hops",
            &[
                ("connection", "x-private"),
                ("x-private", "for the next hop only"),
                ("keep-alive", "timeout=5"),
                ("proxy-connection", "keep-alive"),
                ("via", "1.0 fred"),
                ("via", "1.1 proxy"),
            ],
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let via: Vec<&str> = response
        .headers()
        .get_all("via")
        .iter()
        .map(|v| v.to_str().unwrap())
        .collect();
    assert_eq!(via, ["1.1 tollgate"]);
    let echo = json(response).await;
    for name in ["x-private", "keep-alive", "proxy-connection"] {
        assert!(echo["headers"].get(name).is_none(), "{name}: {echo}");
    }
    assert_eq!(echo["headers"]["via"], "1.0 fred, 1.1 proxy, 1.1 tollgate");

    // The upstream's answer: its own hop's headers stay behind, its `Via` stays, ours follows.
    let response = gate.get("/public/hop-answer", &[]).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["x-upstream"], "yes");
    for name in ["x-hop", "keep-alive"] {
        assert!(response.headers().get(name).is_none(), "{name}");
    }
    let via: Vec<&str> = response
        .headers()
        .get_all("via")
        .iter()
        .map(|v| v.to_str().unwrap())
        .collect();
    assert_eq!(via, ["1.1 app", "1.1 tollgate"]);
}

#[tokio::test]
async fn a_clients_connection_header_cannot_take_away_or_forge_what_the_gate_sets() {
    let upstream = start_upstream().await;
    let gate = Gate::start(&format!("http://{upstream}")).await;
    let token = gate.app.user_with_roles("uma", &[Role::User]).await;
    let host = gate.base.trim_start_matches("http://").to_owned();
    let echo = gate
        .echo(
            "/app/orders",
            &[
                ("x-access-token", &token),
                (
                    "connection",
                    "host, remote-user, remote-groups, x-forwarded-for, x-forwarded-host, via",
                ),
                ("x-forwarded-host", "admin.example"),
                ("forwarded", "host=admin.example"),
                ("x-forwarded-for", "203.0.113.9"),
            ],
        )
        .await;
    let headers = &echo["headers"];
    assert_eq!(headers["remote-user"], "uma", "{echo}");
    assert_eq!(headers["remote-groups"], "user");
    assert_eq!(headers["x-forwarded-host"], host.as_str());
    assert!(headers.get("forwarded").is_none(), "{echo}");
    assert_eq!(headers["x-forwarded-for"], "127.0.0.1");
    assert_eq!(headers["via"], "1.1 tollgate");
    // Without `Connection`, an earlier hop's addresses stay, ours last; a claimed host never does.
    let echo = gate
        .echo(
            "/app/orders",
            &[
                ("x-access-token", &token),
                ("x-forwarded-host", "admin.example"),
                ("x-forwarded-for", "203.0.113.9"),
            ],
        )
        .await;
    assert_eq!(echo["headers"]["x-forwarded-for"], "203.0.113.9, 127.0.0.1");
    assert_eq!(echo["headers"]["x-forwarded-host"], host.as_str());
    // `Host` named away, a host claimed beside it: the upstream still gets the judged one.
    let echo = gate
        .echo(
            "/app/orders",
            &[
                ("x-access-token", &token),
                ("connection", "host"),
                ("x-forwarded-host", "admin.example"),
            ],
        )
        .await;
    assert_eq!(echo["headers"]["x-forwarded-host"], host.as_str(), "{echo}");
}

#[tokio::test]
async fn max_forwards_is_counted_down_and_zero_is_answered_by_the_gate() {
    let upstream = start_upstream().await;
    let gate = Gate::start(&format!("http://{upstream}")).await;
    // TRACE (OPTIONS never reaches the gate: Tollgate answers it as a CORS preflight).
    let trace = |max_forwards: &str| {
        gate.client
            .request(
                reqwest::Method::TRACE,
                format!("{}/public/trace", gate.base),
            )
            .header("max-forwards", max_forwards)
            .send()
    };
    let echo = json(trace("3").await.unwrap()).await;
    assert_eq!(echo["method"], "TRACE");
    assert_eq!(echo["headers"]["max-forwards"], "2");
    // 0: the gate is the last hop and answers itself (it does not echo requests back); the
    // upstream never sees it.
    let response = trace("0").await.unwrap();
    assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert!(response.headers().get("x-upstream").is_none());
    // Other methods carry it as it is.
    let echo = gate.echo("/public/get", &[("max-forwards", "0")]).await;
    assert_eq!(echo["headers"]["max-forwards"], "0");
}

#[tokio::test]
async fn a_request_that_comes_back_through_the_gate_gets_508_in_json() {
    let upstream = start_upstream().await;
    let gate = Gate::start(&format!("http://{upstream}")).await;
    // What an upstream that leads back to Tollgate sends it: the request, with our `Via`.
    for via in ["1.1 tollgate", "1.0 cdn, 1.1 tollgate"] {
        let response = gate.get("/public/x", &[("via", via)]).await;
        assert_eq!(response.status(), StatusCode::LOOP_DETECTED, "{via}");
        let body = json(response).await;
        assert!(
            body["message"].as_str().unwrap().contains("leads back"),
            "{body}"
        );
    }
}
