//! Gate mode: Tollgate in front of the services it protects, as their reverse proxy.
//!
//! With upstreams configured (`--upstream`, or `[[upstream]]` in the `--config` file), every
//! request that is not for one of Tollgate's own routes is checked against the access rules
//! and, when allowed, forwarded to the upstream whose path prefix is the longest match: with
//! the identity headers set by Tollgate (client-sent copies are always removed), Tollgate's own
//! cookies removed, `X-Forwarded-For/-Proto/-Host` added, bodies streamed both ways and WebSocket
//! upgrades passed through (by `axum-reverse-proxy`'s `ReverseProxy`), and what a hop keeps to
//! itself handled both ways ([`hops`]: hop-by-hop headers dropped, `Via` extended with
//! `1.1 tollgate`, `Max-Forwards` counted down). An upstream that cannot be reached is a 502,
//! one that does not answer within `--upstream-timeout` a 504, and a request that has come
//! through the gate before (an upstream leading back to Tollgate) a 508, all with our JSON
//! body. A refused request never reaches the upstream: the caller gets what forward-auth
//! answers (login redirect, 401 or 403).

mod hops;

use std::{borrow::Cow, net::IpAddr, sync::Arc, time::Duration};

use api::wire::{ACCESS_COOKIE, REFRESH_COOKIE};
use axum::{
    extract::{Request, State},
    http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, header},
    response::{IntoResponse, Response},
};
use axum_reverse_proxy::ReverseProxy;
use hyper_util::client::legacy::{Client, connect::HttpConnector};

use super::authz::{self as checks, IDENTITY_HEADERS, LoginAnswer};
use crate::{authz::Upstream, error::Error, state::AppState};

/// Marks a response that came from an upstream: Tollgate's own response headers (its CSP,
/// `Cache-Control: no-store`, ...) are the upstream's business there, not ours.
#[derive(Debug, Clone, Copy)]
pub struct FromUpstream;

type Forwarder = ReverseProxy<HttpConnector>;

/// The upstreams and their proxies, longest prefix first.
#[derive(Clone)]
pub struct Gate {
    routes: Arc<[(Upstream, Forwarder)]>,
    /// How long an upstream may take to start answering.
    timeout: Duration,
}

impl Gate {
    /// `None` when there is no upstream: Tollgate is not a gate then.
    pub fn new(mut upstreams: Vec<Upstream>, timeout: Duration) -> Option<Self> {
        if upstreams.is_empty() {
            return None;
        }
        upstreams.sort_by_key(|u| std::cmp::Reverse(u.prefix.len()));
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(timeout.min(Duration::from_secs(10))));
        let client = Client::builder(hyper_util::rt::TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(60))
            .pool_max_idle_per_host(64)
            .build(connector);
        let routes = upstreams
            .into_iter()
            .map(|upstream| {
                // Paths go to the upstream whole: the prefix only chooses the upstream.
                let proxy = ReverseProxy::new_with_client("/", &upstream.url, client.clone());
                (upstream, proxy)
            })
            .collect();
        Some(Self { routes, timeout })
    }

    fn route(&self, path: &str) -> Option<&Forwarder> {
        self.routes
            .iter()
            .find(|(upstream, _)| upstream.covers(path))
            .map(|(_, forwarder)| forwarder)
    }
}

/// The fallback in gate mode: every request no route of Tollgate's took.
pub async fn forward(State(state): State<AppState>, request: Request) -> Response {
    let Some(gate) = &state.gate else {
        return Error::NotFound("Not found.").into_response();
    };
    match check_and_forward(&state, gate, request).await {
        Ok(response) => response,
        Err(error) => error.into_response(),
    }
}

/// `/assets/...` in gate mode: the UI's own assets by name, anything else the upstream's.
pub async fn asset_or_forward(state: State<AppState>, request: Request) -> Response {
    let name = request.uri().path().trim_start_matches("/assets/");
    match super::ui::asset_named(name) {
        Some(asset) if request.method() == Method::GET => asset,
        _ => forward(state, request).await,
    }
}

async fn check_and_forward(
    state: &AppState,
    gate: &Gate,
    request: Request,
) -> Result<Response, Error> {
    let original = checks::Original {
        method: request.method().clone(),
        host: host_of(&request).map(Cow::Owned),
        path_and_query: Cow::Owned(
            request
                .uri()
                .path_and_query()
                .map_or("/", |p| p.as_str())
                .to_owned(),
        ),
    };
    if hops::came_through_us(request.headers()) {
        return Err(Error::GateLoop);
    }
    let principal = checks::judge(state, request.headers(), &original, LoginAnswer::Redirect)?;
    let Some(forwarder) = gate.route(request.uri().path()) else {
        return Err(Error::NotFound("Not found."));
    };
    let client_ip = super::extract::client_ip(state, request.extensions(), request.headers());
    let version = request.version();
    let upgrade = hops::is_websocket_upgrade(request.headers());
    let mut request = request;
    // Max-Forwards 0 on TRACE or OPTIONS: this hop is the last, and answers itself (without
    // echoing a TRACE back). (OPTIONS seldom gets here: the envelope answers it as a preflight.)
    if hops::is_last_hop(&original.method, request.headers_mut()) {
        return if original.method == Method::OPTIONS {
            Ok(StatusCode::OK.into_response())
        } else {
            Err(Error::MethodNotAllowed)
        };
    }
    let headers = request.headers_mut();
    // First what the client's hop keeps to itself (a client's `Connection` may name any
    // header), then ours, which nothing the client sent can take away.
    hops::strip(headers);
    if upgrade {
        hops::carry_websocket_upgrade(headers);
    }
    hops::add_via(headers, version);
    prepare(
        headers,
        &checks::identity(principal.as_deref())?,
        original.host.as_deref(),
        client_ip,
        state.settings.https,
    );
    let response = match tokio::time::timeout(gate.timeout, forwarder.proxy_request(request)).await
    {
        Err(_) => return Err(Error::UpstreamTimeout),
        Ok(Ok(response)) => response,
        Ok(Err(never)) => match never {},
    };
    Ok(upstream_answer(response, upgrade))
}

/// The upstream's answer as the client gets it: marked as the upstream's (its headers are its
/// own, not ours to replace), less what its hop keeps to itself, with our `Via`. Unless the
/// proxy could not reach the upstream: its answer then has no headers at all (an upstream's
/// always has some, if only `date` or `content-length`), a 502, or a 500 with the reason a
/// WebSocket handshake failed, and becomes our JSON 502 (the reason goes to the log).
fn upstream_answer(mut response: Response, upgrade: bool) -> Response {
    if response.headers().is_empty()
        && matches!(
            response.status(),
            StatusCode::BAD_GATEWAY | StatusCode::INTERNAL_SERVER_ERROR
        )
    {
        return Error::UpstreamUnreachable.into_response();
    }
    let version = response.version();
    let switched = upgrade && response.status() == StatusCode::SWITCHING_PROTOCOLS;
    let headers = response.headers_mut();
    hops::strip(headers);
    if switched {
        hops::carry_websocket_upgrade(headers);
    }
    hops::add_via(headers, version);
    response.extensions_mut().insert(FromUpstream);
    response
}

fn host_of(request: &Request) -> Option<String> {
    request
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .map(str::to_owned)
        .or_else(|| request.uri().authority().map(|a| a.as_str().to_owned()))
}

/// The request as the upstream gets it: identity headers ours only, Tollgate's cookies
/// removed, the forwarding headers added.
fn prepare(
    headers: &mut HeaderMap,
    identity: &[(axum::http::HeaderName, HeaderValue); 4],
    host: Option<&str>,
    client_ip: IpAddr,
    https: bool,
) {
    for name in IDENTITY_HEADERS {
        headers.remove(name);
    }
    for (name, value) in identity {
        headers.insert(name.clone(), value.clone());
    }
    strip_our_cookies(headers);
    // The addresses before ours (every line of them), then the client's as we saw it.
    let mut forwarded_for: Vec<&str> = headers
        .get_all(X_FORWARDED_FOR)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect();
    let client = client_ip.to_string();
    forwarded_for.push(&client);
    if let Ok(value) = HeaderValue::from_str(&forwarded_for.join(", ")) {
        headers.insert(X_FORWARDED_FOR, value);
    }
    headers.insert(
        X_FORWARDED_PROTO,
        HeaderValue::from_static(if https { "https" } else { "http" }),
    );
    // The host the rules judged, never one the client claims besides (nor an RFC 7239
    // `Forwarded`, which we do not write).
    headers.remove(header::FORWARDED);
    headers.remove(checks::X_FORWARDED_HOST);
    if let Some(value) = host.and_then(|host| HeaderValue::from_str(host).ok()) {
        headers.insert(checks::X_FORWARDED_HOST, value);
    }
}

const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");

/// Removes Tollgate's cookies from the `Cookie` headers: the upstream has no use for the
/// caller's tokens (a service that verifies tokens itself gets them in `Authorization`).
fn strip_our_cookies(headers: &mut HeaderMap) {
    let cookies: Vec<HeaderValue> = headers.get_all(header::COOKIE).iter().cloned().collect();
    if cookies.is_empty() {
        return;
    }
    headers.remove(header::COOKIE);
    for value in cookies {
        let Ok(text) = value.to_str() else {
            headers.append(header::COOKIE, value);
            continue;
        };
        let kept: Vec<&str> = text
            .split(';')
            .map(str::trim)
            .filter(|pair| {
                let name = pair.split('=').next().unwrap_or_default().trim();
                !pair.is_empty() && name != ACCESS_COOKIE && name != REFRESH_COOKIE
            })
            .collect();
        if !kept.is_empty()
            && let Ok(value) = HeaderValue::from_str(&kept.join("; "))
        {
            headers.append(header::COOKIE, value);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn our_cookies_never_reach_the_upstream() {
        let mut headers = HeaderMap::new();
        headers.append(
            header::COOKIE,
            HeaderValue::from_static("theme=dark; tollgate_access=abc; lang=en"),
        );
        headers.append(
            header::COOKIE,
            HeaderValue::from_static("tollgate_refresh=xyz"),
        );
        strip_our_cookies(&mut headers);
        let left: Vec<&str> = headers
            .get_all(header::COOKIE)
            .iter()
            .map(|v| v.to_str().unwrap())
            .collect();
        assert_eq!(left, ["theme=dark; lang=en"]);
    }
}
