//! Extractors: request bodies in our error format, and authorization in the signature.

use std::{
    marker::PhantomData,
    net::{IpAddr, Ipv4Addr, SocketAddr},
    sync::Arc,
};

use api::{Role, wire::ACCESS_TOKEN_HEADER};
use axum::{
    body::{Body, Bytes},
    extract::{
        ConnectInfo, FromRequest, FromRequestParts, OptionalFromRequest, OptionalFromRequestParts,
        Request,
        rejection::{JsonRejection, MissingJsonContentType},
    },
    http::{Extensions, HeaderMap, HeaderName, StatusCode, header, request::Parts},
};
use http_body_util::Limited;
use serde::de::DeserializeOwned;

use crate::{
    app::MAX_BODY_BYTES,
    domain::sessions::Client,
    error::Error,
    state::AppState,
    tokens::{Principal, TokenError},
};

/// The tutorial's token header, parsed once: looked up on every authenticated request.
pub const X_ACCESS_TOKEN: HeaderName = HeaderName::from_static(ACCESS_TOKEN_HEADER);

/// `axum::Json`, but a body over [`MAX_BODY_BYTES`] is refused (413) and a malformed one gets
/// our `{"message": ...}` error. Every request body is read through it or [`Form`]: the limit is
/// applied where a body is read, rather than by a layer marking every request.
#[derive(Debug)]
pub struct Json<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for Json<T> {
    type Rejection = Error;

    async fn from_request(request: Request, state: &S) -> Result<Self, Error> {
        if !json_content_type(request.headers()) {
            return Err(JsonRejection::from(MissingJsonContentType::default()).into());
        }
        let bytes = Bytes::from_request(limited(request), state)
            .await
            .map_err(JsonRejection::from)?;
        json_object(&bytes).map(Self)
    }
}

/// An optional JSON body: none when the body is empty (whatever its `Content-Type`), else read
/// as [`Json`] (and refused if malformed, whoever sends it).
impl<T: DeserializeOwned, S: Send + Sync> OptionalFromRequest<S> for Json<T> {
    type Rejection = Error;

    async fn from_request(request: Request, state: &S) -> Result<Option<Self>, Error> {
        let is_json = json_content_type(request.headers());
        let bytes = Bytes::from_request(limited(request), state)
            .await
            .map_err(JsonRejection::from)?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(None);
        }
        if !is_json {
            return Err(JsonRejection::from(MissingJsonContentType::default()).into());
        }
        json_object(&bytes).map(|value| Some(Self(value)))
    }
}

/// A body read as a JSON object. Every body is one: serde would read a struct from an array
/// too.
fn json_object<T: DeserializeOwned>(bytes: &Bytes) -> Result<T, Error> {
    if bytes.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'[') {
        return Err(Error::BadBody {
            status: StatusCode::BAD_REQUEST,
            message: "Invalid request body: expected a JSON object.".to_owned(),
        });
    }
    let axum::Json(value) = axum::Json::from_bytes(bytes)?;
    Ok(value)
}

/// `application/json`, or a `+json` type, as axum's `Json` requires.
fn json_content_type(headers: &HeaderMap) -> bool {
    let Some(value) = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let essence = value.split(';').next().unwrap_or_default().trim();
    let Some((kind, subtype)) = essence.split_once('/') else {
        return false;
    };
    kind.eq_ignore_ascii_case("application")
        && (subtype.eq_ignore_ascii_case("json") || subtype.to_ascii_lowercase().ends_with("+json"))
}

/// The request with its body cut off at [`MAX_BODY_BYTES`] (axum's extractors answer 413).
fn limited(request: Request) -> Request {
    request.map(|body| Body::new(Limited::new(body, MAX_BODY_BYTES)))
}

/// `axum::Form` (a form-urlencoded body), under the same size limit as [`Json`] and with our
/// error format.
#[derive(Debug)]
pub struct Form<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for Form<T> {
    type Rejection = Error;

    async fn from_request(request: Request, state: &S) -> Result<Self, Error> {
        let request = limited(request);
        let axum::Form(value) =
            axum::Form::from_request(request, state)
                .await
                .map_err(|rejection| Error::BadBody {
                    // A missing or malformed field is a bad request (RFC 6749 §5.2), not 422.
                    status: match rejection.status() {
                        StatusCode::UNPROCESSABLE_ENTITY => StatusCode::BAD_REQUEST,
                        status => status,
                    },
                    message: format!("Invalid form body: {}", rejection.body_text()),
                })?;
        Ok(Self(value))
    }
}

/// The caller, proven by a valid access token in `x-access-token` or `Authorization: Bearer`.
#[derive(Debug, Clone)]
pub struct AuthUser(pub Arc<Principal>);

impl FromRequestParts<AppState> for AuthUser {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Error> {
        let token = bearer_token(&parts.headers)?.ok_or(Error::NoToken)?;
        authenticate(state, token)
    }
}

/// No token at all is `None`; a token that fails verification is still an error.
impl OptionalFromRequestParts<AppState> for AuthUser {
    type Rejection = Error;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Option<Self>, Error> {
        match bearer_token(&parts.headers)? {
            Some(token) => authenticate(state, token).map(Some),
            None => Ok(None),
        }
    }
}

/// Verifies the token, then checks it against the in-memory revocations (no database query).
/// A token good for enrolling a second factor only is refused (403, with its reason).
pub fn authenticate(state: &AppState, token: &str) -> Result<AuthUser, Error> {
    let principal = verify_token(state, token)?;
    if principal.must_enrol {
        return Err(Error::EnrolmentRequired);
    }
    Ok(AuthUser(principal))
}

/// Any valid token, enrolment-only ones included.
fn verify_token(state: &AppState, token: &str) -> Result<Arc<Principal>, Error> {
    match state.tokens.verify(token) {
        Ok(principal) if state.revocations.is_revoked(&principal) => Err(Error::InvalidToken),
        Ok(principal) => Ok(principal),
        Err(TokenError::Expired) => Err(Error::ExpiredToken),
        Err(TokenError::Invalid) => Err(Error::InvalidToken),
    }
}

/// The caller if their token is valid (enrolment-only tokens too); `None` for no token or a
/// bad one. For routes such as logout that must work whatever state the client's token is in.
pub fn lenient_auth(parts_headers: &HeaderMap, state: &AppState) -> Option<Arc<Principal>> {
    let token = bearer_token(parts_headers).ok().flatten()?;
    verify_token(state, token).ok()
}

/// The caller, with any valid token, including one good for enrolling a second factor only:
/// for the routes such a user needs (their profile, enrolment, sign-out).
#[derive(Debug, Clone)]
pub struct EnrollingUser(pub Arc<Principal>);

impl FromRequestParts<AppState> for EnrollingUser {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Error> {
        let token = bearer_token(&parts.headers)?.ok_or(Error::NoToken)?;
        verify_token(state, token).map(EnrollingUser)
    }
}

/// No token at all is `None`; a token that fails verification is still an error.
impl OptionalFromRequestParts<AppState> for EnrollingUser {
    type Rejection = Error;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Option<Self>, Error> {
        match bearer_token(&parts.headers)? {
            Some(token) => verify_token(state, token).map(|p| Some(EnrollingUser(p))),
            None => Ok(None),
        }
    }
}

/// The caller, who has proven their second factor recently if they have one: for changes to
/// passwords, addresses, factors, and every admin change (step-up).
#[derive(Debug, Clone)]
pub struct RecentlyVerified(pub Arc<Principal>);

impl FromRequestParts<AppState> for RecentlyVerified {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Error> {
        let AuthUser(principal) =
            <AuthUser as FromRequestParts<AppState>>::from_request_parts(parts, state).await?;
        crate::domain::mfa::require_recent_factor(state, &principal).await?;
        Ok(RecentlyVerified(principal))
    }
}

/// The token from `x-access-token` (the tutorial's header) or `Authorization: Bearer`.
fn bearer_token(headers: &HeaderMap) -> Result<Option<&str>, Error> {
    if let Some(value) = headers.get(&X_ACCESS_TOKEN) {
        let token = value.to_str().map_err(|_| Error::InvalidToken)?.trim();
        return Ok((!token.is_empty()).then_some(token));
    }
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Ok(None);
    };
    let value = value.to_str().map_err(|_| Error::InvalidToken)?;
    match value.split_once(' ') {
        Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") => {
            let token = token.trim();
            Ok((!token.is_empty()).then_some(token))
        }
        _ => Ok(None),
    }
}

/// Where the request came from: the client IP (the TCP peer, or, behind a trusted proxy, the
/// nearest untrusted address in `X-Forwarded-For`) and the user agent.
#[derive(Debug, Clone)]
pub struct ClientInfo {
    pub ip: IpAddr,
    pub user_agent: Option<String>,
}

impl ClientInfo {
    pub fn client(&self) -> Client {
        Client {
            ip: Some(self.ip.to_string()),
            user_agent: self.user_agent.clone(),
        }
    }
}

impl FromRequestParts<AppState> for ClientInfo {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Error> {
        let ip = client_ip(state, &parts.extensions, &parts.headers);
        let user_agent = parts
            .headers
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(|ua| ua.chars().take(256).collect());
        Ok(Self { ip, user_agent })
    }
}

/// The client's address: the TCP peer, or, behind a trusted proxy, the nearest untrusted
/// address in `X-Forwarded-For`.
pub fn client_ip(state: &AppState, extensions: &Extensions, headers: &HeaderMap) -> IpAddr {
    let peer = extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map_or(IpAddr::V4(Ipv4Addr::LOCALHOST), |info| {
            info.0.ip().to_canonical()
        });
    let trusted = |ip: &IpAddr| {
        state
            .settings
            .trusted_proxies
            .iter()
            .any(|net| net.contains(ip))
    };
    let mut ip = peer;
    if trusted(&peer) {
        // Walk the chain from the nearest hop; stop at the first address we do not trust.
        let hops = headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .collect::<Vec<_>>();
        for hop in hops.into_iter().rev() {
            match hop.parse::<IpAddr>().map(|a| a.to_canonical()) {
                Ok(address) => {
                    ip = address;
                    if !trusted(&address) {
                        break;
                    }
                }
                Err(_) => break,
            }
        }
    }
    ip
}

/// Refuses cross-site requests to cookie-authenticated routes: `Sec-Fetch-Site: cross-site`, or
/// an `Origin` that is neither in the CORS allow-list nor this server's own.
#[derive(Debug, Clone, Copy)]
pub struct SameSite;

impl FromRequestParts<AppState> for SameSite {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Error> {
        let headers = &parts.headers;
        if headers
            .get("sec-fetch-site")
            .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"cross-site"))
        {
            return Err(Error::CrossSite);
        }
        let Some(origin) = headers.get(header::ORIGIN) else {
            // Not a browser (browsers send Origin on every POST); the SameSite cookie does the rest.
            return Ok(Self);
        };
        if state
            .settings
            .cors_origins
            .iter()
            .any(|allowed| allowed == origin)
        {
            return Ok(Self);
        }
        let own_host = headers.get(header::HOST).and_then(|h| h.to_str().ok());
        let origin_host = origin.to_str().ok().and_then(|o| {
            o.strip_prefix("http://")
                .or_else(|| o.strip_prefix("https://"))
        });
        match (origin_host, own_host) {
            (Some(origin_host), Some(own_host)) if origin_host.eq_ignore_ascii_case(own_host) => {
                Ok(Self)
            }
            _ => Err(Error::CrossSite),
        }
    }
}

/// `axum::extract::Query`, with our error format.
#[derive(Debug, FromRequestParts)]
#[from_request(via(axum::extract::Query), rejection(Error))]
pub struct Query<T>(pub T);

/// `axum::extract::Path`, with our error format.
#[derive(Debug, FromRequestParts)]
#[from_request(via(axum::extract::Path), rejection(Error))]
pub struct Path<T>(pub T);

/// A role that a route can require, as a type.
pub trait RequiredRole {
    const ROLE: Role;
}

pub struct Moderator;
impl RequiredRole for Moderator {
    const ROLE: Role = Role::Moderator;
}

pub struct Admin;
impl RequiredRole for Admin {
    const ROLE: Role = Role::Admin;
}

/// A caller holding role `R`; anyone else gets 403 "Require <Role> Role!".
pub struct RequireRole<R>(pub Arc<Principal>, pub PhantomData<R>);

impl<R> RequireRole<R> {
    /// For a handler that already holds an admin's principal and calls another handler.
    pub fn trusted(principal: Arc<Principal>) -> Self {
        Self(principal, PhantomData)
    }
}

impl<R: RequiredRole + Send> FromRequestParts<AppState> for RequireRole<R> {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Error> {
        let AuthUser(principal) =
            <AuthUser as FromRequestParts<AppState>>::from_request_parts(parts, state).await?;
        if principal.roles.contains(R::ROLE) {
            Ok(Self(principal, PhantomData))
        } else {
            Err(Error::MissingRole(R::ROLE))
        }
    }
}
