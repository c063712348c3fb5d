//! Gate mode: Tollgate in front of the services it protects, as their reverse proxy.
//!
//! With upstreams configured (`--upstream`, or `[[upstream]]` in the `--config` file), every
//! request that is not for one of Tollgate's own routes is checked against the access rules
//! and, when allowed, forwarded to the upstream whose path prefix is the longest match: with
//! the identity headers set by Tollgate (client-sent copies are always removed), Tollgate's own
//! cookies removed, `X-Forwarded-For/-Proto/-Host` added, hop-by-hop headers handled, bodies
//! streamed both ways and WebSocket upgrades passed through (by `axum-reverse-proxy`), with
//! `Via: 1.1 tollgate` both ways. An upstream that cannot be reached is a 502, one that does not
//! answer within `--upstream-timeout` a 504, and a request that has come through the gate
//! before (an upstream leading back to Tollgate) a 508, all with our JSON body. A refused
//! request never reaches the upstream: the caller gets what forward-auth answers (login
//! redirect, 401 or 403).

use std::{borrow::Cow, net::IpAddr, sync::Arc, time::Duration};

use api::wire::{ACCESS_COOKIE, REFRESH_COOKIE};
use axum::{
    extract::{Request, State},
    http::{HeaderMap, HeaderValue, Method, StatusCode, header},
    response::{IntoResponse, Response},
};
use axum_reverse_proxy::{ReverseProxy, Rfc9110Config, Rfc9110Layer};
use hyper_util::client::legacy::{Client, connect::HttpConnector};
use tower::{
    Layer, Service,
    util::{BoxCloneSyncService, MapResponseLayer},
};

use super::authz::{self as checks, IDENTITY_HEADERS, LoginAnswer};
use crate::{authz::Upstream, error::Error, state::AppState};

/// Marks a response that came from an upstream: Tollgate's own response headers (its CSP,
/// `Cache-Control: no-store`, ...) are the upstream's business there, not ours.
#[derive(Debug, Clone, Copy)]
pub struct FromUpstream;

type Forwarder = BoxCloneSyncService<Request, Response, std::convert::Infallible>;

/// The gate's name in `Via` (`1.1 tollgate`), by which a request that loops back is known.
const VIA_NAME: &str = "tollgate";

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
        // Named, so that only a request that came through a Tollgate gate counts as a loop
        // (unnamed, the layer takes any `Via` entry from a host called `proxy` for one).
        let rfc9110 = Rfc9110Layer::with_config(Rfc9110Config {
            pseudonym: Some(VIA_NAME.to_owned()),
            ..Rfc9110Config::default()
        });
        let routes = upstreams
            .into_iter()
            .map(|upstream| {
                // Paths go to the upstream whole: the prefix only chooses the upstream.
                let proxy = ReverseProxy::new_with_client("/", &upstream.url, client.clone());
                let marked = MapResponseLayer::new(mark_upstream_answer).layer(proxy);
                let forwarder = BoxCloneSyncService::new(rfc9110.layer(marked));
                (upstream, forwarder)
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
    if came_through_us(request.headers()) {
        return Err(Error::GateLoop);
    }
    let principal = checks::judge(state, request.headers(), &original, LoginAnswer::Redirect)?;
    let Some(forwarder) = gate.route(request.uri().path()) else {
        return Err(Error::NotFound("Not found."));
    };
    let client_ip = super::extract::client_ip(state, request.extensions(), request.headers());
    let mut request = request;
    prepare(
        request.headers_mut(),
        &checks::identity(principal.as_deref())?,
        client_ip,
        state.settings.https,
    );
    match tokio::time::timeout(gate.timeout, forwarder.clone().call(request)).await {
        Err(_) => Err(Error::UpstreamTimeout),
        Ok(Ok(response)) => Ok(response),
        Ok(Err(never)) => match never {},
    }
}

/// Tells the upstream's answers from the proxy's own when it cannot reach the upstream: that
/// one is a 502 with no headers at all (an upstream's answer always has some, if only `date`
/// or `content-length`), and becomes our JSON 502. The upstream's are marked as such.
fn mark_upstream_answer(mut response: Response) -> Response {
    if response.status() == StatusCode::BAD_GATEWAY && response.headers().is_empty() {
        return Error::UpstreamUnreachable.into_response();
    }
    response.extensions_mut().insert(FromUpstream);
    response
}

/// Whether a `Via` entry is ours (`1.1 tollgate`): the request has been through the gate
/// before. (The RFC 9110 layer checks the same, but answers with a bare 508.)
fn came_through_us(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::VIA)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .any(|entry| entry.split_whitespace().nth(1) == Some(VIA_NAME))
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
    let forwarded_for = match headers.get("x-forwarded-for").and_then(|v| v.to_str().ok()) {
        Some(earlier) => format!("{earlier}, {client_ip}"),
        None => client_ip.to_string(),
    };
    if let Ok(value) = HeaderValue::from_str(&forwarded_for) {
        headers.insert("x-forwarded-for", value);
    }
    headers.insert(
        "x-forwarded-proto",
        HeaderValue::from_static(if https { "https" } else { "http" }),
    );
    if let Some(host) = headers.get(header::HOST).cloned() {
        headers.insert("x-forwarded-host", host);
    }
}

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
