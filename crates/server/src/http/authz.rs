//! Forward-auth: reverse proxies ask whether a request to the service behind them may pass.
//!
//! - `GET /api/authz/forward-auth` for Traefik's `forwardAuth` and Caddy's `forward_auth`,
//!   which describe the original request in `X-Forwarded-Method`, `-Host` and `-Uri`.
//! - `GET /api/authz/auth-request` for nginx's `auth_request`, whose configuration passes
//!   `X-Original-URL` and `X-Original-Method`.
//!
//! Credentials are the caller's access token (`Authorization: Bearer`, `x-access-token`) or, for
//! a browser, the access cookie Tollgate sets at sign-in. Everything is decided in memory (the
//! token, the revocations, the rules): no database round trip per check, since nginx does not
//! cache its subrequests.
//!
//! Answers: 200 with the identity headers (always all four, empty for an anonymous caller of
//! a public rule, so that no copy sent by the client can stand in for one); for a caller without
//! valid credentials, a browser page load is sent to the login page (302, or for nginx, which
//! only understands 2xx, 401 and 403, a 401 carrying the `Location`) and any other request gets
//! 401; 403 when the rule's roles do not match, no rule matches, or the path is ambiguous.

use std::{borrow::Cow, sync::Arc};

use api::wire::paths;
use axum::{
    extract::{Request, State},
    http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri, header},
    response::{IntoResponse, Response},
};

use super::{cookies, extract};
use crate::{
    authz::{Outcome, RequestPath, Target},
    error::{Error, Result},
    openapi::ErrorBody,
    state::AppState,
    tokens::Principal,
};

pub const REMOTE_USER: HeaderName = HeaderName::from_static("remote-user");
pub const REMOTE_EMAIL: HeaderName = HeaderName::from_static("remote-email");
pub const REMOTE_GROUPS: HeaderName = HeaderName::from_static("remote-groups");
pub const REMOTE_USER_ID: HeaderName = HeaderName::from_static("remote-user-id");
/// The identity headers, set on every allowed request (and removed from what clients send).
pub const IDENTITY_HEADERS: [HeaderName; 4] =
    [REMOTE_USER, REMOTE_EMAIL, REMOTE_GROUPS, REMOTE_USER_ID];

/// The login page, relative to the protected site: Tollgate's UI is expected on the same
/// origin (the proxy routes `/login` and the auth API to it).
const LOGIN_PATH: &str = "/login";

/// `GET /api/authz/forward-auth` (Traefik, Caddy). The request is taken whole, not its
/// headers: axum's `HeaderMap` extractor would copy them, and this route is on every request
/// of the protected site.
#[utoipa::path(get, path = paths::FORWARD_AUTH, tag = "services", security((), ("bearer" = []), ("accessToken" = []), ("accessCookie" = [])),
    params(
        ("X-Forwarded-Method" = String, Header, description = "The original request's method."),
        ("X-Forwarded-Proto" = Option<String>, Header, description = "Its scheme."),
        ("X-Forwarded-Host" = String, Header, description = "Its host."),
        ("X-Forwarded-Uri" = String, Header, description = "Its path and query."),
    ),
    responses(
        (status = 200, description = "Allowed. The identity headers are always all present (empty for an anonymous caller of a public rule).",
            headers(
                ("Remote-User" = String, description = "The username."),
                ("Remote-Email" = String, description = "The address."),
                ("Remote-Groups" = String, description = "The roles, comma-joined."),
                ("Remote-User-Id" = String, description = "The user's id."),
            )),
        (status = 302, description = "A browser's page load without valid credentials: to the login page, with the original URL to return to."),
        (status = 400, description = "The proxy did not describe the original request.", body = ErrorBody),
        (status = 401, description = "No valid credentials: an API or XHR request, or for nginx a page load (with the login page in `Location`, for the configuration to redirect to).", body = ErrorBody),
        (status = 403, description = "The rule's roles do not match, no rule matches, or the path is ambiguous.", body = ErrorBody),
    ))]
pub async fn forward_auth(State(state): State<AppState>, request: Request) -> Result<Response> {
    let headers = request.headers();
    let original = Original::from_forwarded(headers)?;
    check(&state, headers, &original, LoginAnswer::Redirect)
}

/// `GET /api/authz/auth-request` (nginx).
#[utoipa::path(get, path = paths::AUTH_REQUEST, tag = "services", security((), ("bearer" = []), ("accessToken" = []), ("accessCookie" = [])),
    params(
        ("X-Original-URL" = String, Header, description = "The original request's URL."),
        ("X-Original-Method" = String, Header, description = "Its method."),
    ),
    responses(
        (status = 200, description = "Allowed. The identity headers are always all present (empty for an anonymous caller of a public rule).",
            headers(
                ("Remote-User" = String, description = "The username."),
                ("Remote-Email" = String, description = "The address."),
                ("Remote-Groups" = String, description = "The roles, comma-joined."),
                ("Remote-User-Id" = String, description = "The user's id."),
            )),
        (status = 400, description = "The proxy did not describe the original request.", body = ErrorBody),
        (status = 401, description = "No valid credentials: an API or XHR request, or for nginx a page load (with the login page in `Location`, for the configuration to redirect to).", body = ErrorBody),
        (status = 403, description = "The rule's roles do not match, no rule matches, or the path is ambiguous.", body = ErrorBody),
    ))]
pub async fn auth_request(State(state): State<AppState>, request: Request) -> Result<Response> {
    let headers = request.headers();
    let original = Original::from_nginx(headers)?;
    check(
        &state,
        headers,
        &original,
        LoginAnswer::UnauthorizedWithLocation,
    )
}

/// How a browser is sent to the login page.
#[derive(Debug, Clone, Copy)]
pub enum LoginAnswer {
    /// 302: Traefik and Caddy pass the auth server's answer on as it is.
    Redirect,
    /// 401 with `Location`: nginx fails the request on anything but 2xx, 401 and 403; its
    /// configuration turns this 401 into the redirect (`error_page 401`).
    UnauthorizedWithLocation,
}

// The request headers read here, parsed once rather than at every lookup.
const X_FORWARDED_URI: HeaderName = HeaderName::from_static("x-forwarded-uri");
const X_FORWARDED_METHOD: HeaderName = HeaderName::from_static("x-forwarded-method");
pub(super) const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
const X_ORIGINAL_URL: HeaderName = HeaderName::from_static("x-original-url");
const X_ORIGINAL_METHOD: HeaderName = HeaderName::from_static("x-original-method");
const SEC_FETCH_SITE: HeaderName = HeaderName::from_static("sec-fetch-site");
const SEC_FETCH_MODE: HeaderName = HeaderName::from_static("sec-fetch-mode");
const X_REQUESTED_WITH: HeaderName = HeaderName::from_static("x-requested-with");

/// The request a check is about, borrowed from the headers that describe it where it can be.
#[derive(Debug)]
pub struct Original<'a> {
    pub method: Method,
    pub host: Option<Cow<'a, str>>,
    /// Path and query as the client sent them: where to come back to after signing in.
    pub path_and_query: Cow<'a, str>,
}

impl<'a> Original<'a> {
    fn from_forwarded(headers: &'a HeaderMap) -> Result<Self> {
        let uri = required(headers, &X_FORWARDED_URI)?;
        let method = required(headers, &X_FORWARDED_METHOD)?;
        Ok(Self {
            method: parse_method(method)?,
            host: optional(headers, &X_FORWARDED_HOST).map(Cow::Borrowed),
            path_and_query: Cow::Borrowed(path_and_query(uri)?),
        })
    }

    fn from_nginx(headers: &'a HeaderMap) -> Result<Self> {
        let url = required(headers, &X_ORIGINAL_URL)?;
        let method = required(headers, &X_ORIGINAL_METHOD)?;
        let uri: Uri = url
            .parse()
            .map_err(|_| Error::BadForwardAuth(format!("X-Original-URL `{url}` is not a URL")))?;
        let path = uri.path_and_query().map_or("/", |p| p.as_str());
        Ok(Self {
            method: parse_method(method)?,
            host: uri.authority().map(|a| Cow::Owned(a.as_str().to_owned())),
            path_and_query: Cow::Owned(path_and_query(path)?.to_owned()),
        })
    }

    fn path(&self) -> &str {
        self.path_and_query
            .split_once('?')
            .map_or(&*self.path_and_query, |(path, _)| path)
    }
}

fn required<'h>(headers: &'h HeaderMap, name: &HeaderName) -> Result<&'h str> {
    optional(headers, name).ok_or_else(|| {
        Error::BadForwardAuth(format!(
            "{name} is missing: this route is for reverse proxies (see docs/protect-your-api.md)"
        ))
    })
}

fn optional<'h>(headers: &'h HeaderMap, name: &HeaderName) -> Option<&'h str> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty())
}

fn parse_method(raw: &str) -> Result<Method> {
    Method::from_bytes(raw.as_bytes())
        .map_err(|_| Error::BadForwardAuth(format!("`{raw}` is not an HTTP method")))
}

fn path_and_query(raw: &str) -> Result<&str> {
    if raw.starts_with('/') {
        Ok(raw)
    } else {
        Err(Error::BadForwardAuth(format!(
            "the original URI `{raw}` does not start with `/`"
        )))
    }
}

/// The caller's valid token, from a header or (for browsers) the access cookie. A token that
/// does not verify, or is revoked, counts as none.
pub fn caller(
    state: &AppState,
    headers: &HeaderMap,
    original: &Original<'_>,
) -> Result<Option<Arc<Principal>>> {
    if headers.contains_key(&extract::X_ACCESS_TOKEN) || headers.contains_key(header::AUTHORIZATION)
    {
        // A token good for enrolling a second factor only opens nothing.
        return Ok(extract::lenient_auth(headers, state).filter(|p| !p.must_enrol));
    }
    let Some(token) = cookies::access_token(headers) else {
        return Ok(None);
    };
    let Ok(extract::AuthUser(principal)) = extract::authenticate(state, &token) else {
        return Ok(None);
    };
    // A cookie is sent by the browser whoever made the page: a change (POST, PUT, ...) made
    // with it must come from the protected site itself. SameSite=Lax already keeps the cookie
    // off cross-site posts; this refuses them outright where the browser says so.
    if !is_safe(&original.method)
        && optional(headers, &SEC_FETCH_SITE).is_some_and(|site| site == "cross-site")
    {
        return Err(Error::CrossSite);
    }
    Ok(Some(principal))
}

fn is_safe(method: &Method) -> bool {
    matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// Whether the original request is a browser loading a page (which can be sent to the login
/// page) rather than a script or an API client (which gets a 401 to handle).
pub fn is_page_load(headers: &HeaderMap, original: &Original<'_>) -> bool {
    if !matches!(original.method, Method::GET | Method::HEAD) {
        return false;
    }
    if let Some(mode) = optional(headers, &SEC_FETCH_MODE) {
        return mode == "navigate";
    }
    optional(headers, &X_REQUESTED_WITH).is_none()
        && optional(headers, &header::ACCEPT).is_some_and(|accept| accept.contains("text/html"))
}

fn check(
    state: &AppState,
    headers: &HeaderMap,
    original: &Original,
    login: LoginAnswer,
) -> Result<Response> {
    let principal = judge(state, headers, original, login)?;
    allowed(principal.as_deref())
}

/// Whether the rules let the caller of `original` through: the caller (`None` for an
/// anonymous caller of a public rule), or the refusal to answer with: 403, 401, or for a
/// browser loading a page the way to the login page.
pub fn judge(
    state: &AppState,
    headers: &HeaderMap,
    original: &Original<'_>,
    login: LoginAnswer,
) -> Result<Option<Arc<Principal>>> {
    let path = RequestPath::parse(original.path()).map_err(Error::PathRefused)?;
    let principal = caller(state, headers, original)?;
    let rules = state.authz.rules();
    let target = Target {
        host: original.host.as_deref(),
        method: &original.method,
        path: &path,
    };
    match rules
        .decide(&target, principal.as_ref().map(|p| p.roles))
        .outcome
    {
        Outcome::Allow => Ok(principal),
        Outcome::Forbidden => Err(Error::AccessDenied),
        Outcome::NeedsCredentials if is_page_load(headers, original) => Err(Error::SignInAt {
            location: login_location(&original.path_and_query)?,
            unauthorized: matches!(login, LoginAnswer::UnauthorizedWithLocation),
        }),
        Outcome::NeedsCredentials => Err(Error::SignInRequired),
    }
}

/// Marks an allowed check's answer. It goes to the reverse proxy alone, which copies the
/// identity headers onto the request it forwards and drops the rest (Caddy's `copy_headers`,
/// Traefik's `authResponseHeaders`, nginx's `auth_request_set`): no browser ever sees it. So the
/// headers meant for browsers (CSP, `X-Frame-Options`, ...) are left off it, about 400 bytes
/// on every request of the protected site; `Cache-Control: no-store` stays. A refusal, which
/// the proxy does pass on to the browser, carries them all as usual.
#[derive(Debug, Clone, Copy)]
pub struct ForProxy;

/// 200 with the identity headers: all four, always.
fn allowed(principal: Option<&Principal>) -> Result<Response> {
    let mut response = (StatusCode::OK, identity(principal)?).into_response();
    response.extensions_mut().insert(ForProxy);
    Ok(response)
}

/// The identity headers for `principal`, all four, empty for an anonymous caller.
pub fn identity(principal: Option<&Principal>) -> Result<[(HeaderName, HeaderValue); 4]> {
    let value = |text: &str| {
        HeaderValue::from_str(text)
            .map_err(|_| Error::Internal(anyhow::anyhow!("identity is not a valid header value")))
    };
    let (user, email, groups, id) = match principal {
        Some(p) => (
            value(&p.username)?,
            value(&p.email)?,
            HeaderValue::from_static(p.roles.joined()),
            HeaderValue::from(p.user_id),
        ),
        None => {
            let empty = HeaderValue::from_static("");
            (empty.clone(), empty.clone(), empty.clone(), empty)
        }
    };
    Ok([
        (REMOTE_USER, user),
        (REMOTE_EMAIL, email),
        (REMOTE_GROUPS, groups),
        (REMOTE_USER_ID, id),
    ])
}

/// `/login?redirect=<the original path and query>`: a path on the same site, so the login
/// page cannot be made to send anyone elsewhere (it also checks this itself).
fn login_location(path_and_query: &str) -> Result<HeaderValue> {
    let back =
        percent_encoding::utf8_percent_encode(path_and_query, percent_encoding::NON_ALPHANUMERIC);
    HeaderValue::from_str(&format!("{LOGIN_PATH}?redirect={back}"))
        .map_err(|_| Error::Internal(anyhow::anyhow!("login location is not a header value")))
}
