//! The snippets of `docs/protect-your-api.md` that are code of their own, run for real: an axum
//! API and a Node/Express API that verify Tollgate's tokens with its JWKS. Each snippet in the
//! guide must be, byte for byte, the code run here, so the guide cannot drift from what works.

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::Duration,
};

use api::Role;
use axum::http::StatusCode;
use tokio::net::TcpListener;

use crate::support::TestApp;

// guide:axum:start
use axum::{
    Json, Router,
    extract::FromRequestParts,
    http::{StatusCode as Status, request::Parts},
    routing::get,
};
use jsonwebtoken::{DecodingKey, Validation, decode, decode_header, jwk::JwkSet};
use serde::Deserialize;

/// The claims your API reads from a Tollgate access token.
#[derive(Debug, Clone, Deserialize)]
pub struct Claims {
    pub sub: String,
    pub preferred_username: String,
    pub roles: Vec<String>,
}

/// Tollgate's public keys, fetched once at start (refetch them when Tollgate rotates its keys).
#[derive(Clone)]
pub struct Keys(std::sync::Arc<JwkSet>);

impl Keys {
    pub async fn fetch(tollgate: &str) -> Result<Self, reqwest::Error> {
        let url = format!("{tollgate}/.well-known/jwks.json");
        Ok(Self(std::sync::Arc::new(
            reqwest::get(url).await?.json().await?,
        )))
    }
}

/// An extractor: the verified claims of the caller's token, or 401.
impl FromRequestParts<Keys> for Claims {
    type Rejection = Status;

    async fn from_request_parts(parts: &mut Parts, keys: &Keys) -> Result<Self, Status> {
        let header = |name| parts.headers.get(name).and_then(|v| v.to_str().ok());
        let token = header("x-access-token")
            .or_else(|| header("authorization")?.strip_prefix("Bearer "))
            .ok_or(Status::UNAUTHORIZED)?;
        let kid = decode_header(token).map_err(|_| Status::UNAUTHORIZED)?.kid;
        let jwk = kid
            .and_then(|kid| keys.0.find(&kid))
            .ok_or(Status::UNAUTHORIZED)?;
        let key = DecodingKey::from_jwk(jwk).map_err(|_| Status::UNAUTHORIZED)?;
        let mut validation = Validation::new(jsonwebtoken::Algorithm::EdDSA);
        validation.set_issuer(&["tollgate"]);
        validation.set_audience(&["tollgate"]);
        let data = decode::<Claims>(token, &key, &validation).map_err(|_| Status::UNAUTHORIZED)?;
        Ok(data.claims)
    }
}

async fn orders(claims: Claims) -> Result<Json<serde_json::Value>, Status> {
    if !claims.roles.iter().any(|role| role == "admin") {
        return Err(Status::FORBIDDEN);
    }
    let (id, name) = (claims.sub, claims.preferred_username);
    Ok(Json(
        serde_json::json!({ "orders": [], "for": name, "user_id": id }),
    ))
}

pub fn app(keys: Keys) -> Router {
    Router::new()
        .route("/api/orders", get(orders))
        .with_state(keys)
}
// guide:axum:end

const GUIDE: &str = include_str!("../../../../docs/protect-your-api.md");

/// The code between `start` and `end` markers in this file.
fn marked(source: &str, name: &str) -> String {
    let start = format!("// guide:{name}:start\n");
    let end = format!("// guide:{name}:end");
    let from = source.find(&start).unwrap() + start.len();
    let to = source.find(&end).unwrap();
    source[from..to].to_owned()
}

/// The guide's fenced blocks in `language`.
fn guide_blocks(language: &str) -> Vec<String> {
    let fence = format!("```{language}\n");
    GUIDE
        .split(&fence)
        .skip(1)
        .filter_map(|rest| rest.split_once("```").map(|(code, _)| code.to_owned()))
        .collect()
}

fn examples_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/examples")
}

#[test]
fn the_guides_code_is_the_code_that_runs() {
    let axum = marked(include_str!("guide.rs"), "axum");
    assert!(
        guide_blocks("rust").contains(&axum),
        "the rust block of docs/protect-your-api.md must be the marked code of tests/api/guide.rs"
    );
    let middleware = std::fs::read_to_string(examples_dir().join("express/tollgate.mjs")).unwrap();
    assert!(
        guide_blocks("js").contains(&middleware),
        "the js block of docs/protect-your-api.md must be docs/examples/express/tollgate.mjs"
    );
}

#[test]
fn every_configuration_in_the_guide_loads() {
    let blocks = guide_blocks("toml");
    assert!(blocks.len() >= 2, "the guide shows rules and upstreams");
    for block in blocks {
        if let Err(e) = tollgate::authz::ConfigFile::parse(&block) {
            panic!("a TOML block of docs/protect-your-api.md does not load: {e:#}\n{block}");
        }
    }
}

/// The callers every example API is tried with, and what it must answer them.
async fn check_api(app: &TestApp, api: &str) {
    let admin = app.user_with_roles("ada", &[Role::User, Role::Admin]).await;
    let user = app.user_with_roles("uma", &[Role::User]).await;
    let mut forged = admin.clone();
    forged.replace_range(forged.len() - 4.., "AAAA");
    let http = reqwest::Client::new();
    let get = |headers: Vec<(&'static str, String)>| {
        let mut request = http.get(format!("{api}/api/orders"));
        for (name, value) in headers {
            request = request.header(name, value);
        }
        request.send()
    };
    let response = get(vec![("x-access-token", admin.clone())]).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["for"], "ada");
    let response = get(vec![("authorization", format!("Bearer {admin}"))])
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    for (headers, status) in [
        (vec![], StatusCode::UNAUTHORIZED),
        (vec![("x-access-token", forged)], StatusCode::UNAUTHORIZED),
        (
            vec![("x-access-token", "junk".to_owned())],
            StatusCode::UNAUTHORIZED,
        ),
        (vec![("x-access-token", user)], StatusCode::FORBIDDEN),
    ] {
        assert_eq!(get(headers).await.unwrap().status(), status);
    }
}

#[tokio::test]
async fn the_axum_example_verifies_tollgates_tokens() {
    let app = TestApp::new().await;
    let tollgate = app.serve().await;
    let keys = Keys::fetch(&tollgate).await.unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let api: SocketAddr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, self::app(keys)).await.unwrap() });
    check_api(&app, &format!("http://{api}")).await;
}

/// A child process killed on drop.
struct Node(Child);

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test]
async fn the_express_example_verifies_tollgates_tokens() {
    let dir = examples_dir().join("express");
    let installed =
        dir.join("node_modules/jose").exists() && dir.join("node_modules/express").exists();
    let node = Command::new("node")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !(installed && node) {
        assert!(
            std::env::var_os("TOLLGATE_REQUIRE_NODE").is_none(),
            "node and `npm ci` in docs/examples/express are required (TOLLGATE_REQUIRE_NODE)"
        );
        eprintln!("skipped: node or docs/examples/express/node_modules missing (run npm ci there)");
        return;
    }
    let app = TestApp::new().await;
    let tollgate = app.serve().await;
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let _node = Node(
        Command::new("node")
            .arg("server.mjs")
            .current_dir(&dir)
            .env("PORT", port.to_string())
            .env("TOLLGATE_URL", &tollgate)
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap(),
    );
    let api = format!("http://127.0.0.1:{port}");
    for _ in 0..100 {
        if reqwest::get(format!("{api}/health")).await.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    check_api(&app, &api).await;
}
