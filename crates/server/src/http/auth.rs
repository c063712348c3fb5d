//! Sign-up, sign-in, refresh and logout.

use std::collections::BTreeSet;

use api::{
    Email, Password, Role, Username,
    wire::{
        LoginRequest, LoginResponse, LoginUser, MessageBody, RefreshResponse, RefreshTokenRequest,
        RefreshTokenResponse, SigninRequest, SigninResponse, SignupRequest, messages, paths,
    },
};
use axum::{
    Json as JsonResponse,
    extract::State,
    http::{HeaderMap, HeaderName, HeaderValue, header},
    response::{AppendHeaders, IntoResponse},
};

use super::{
    cookies,
    extract::{AuthUser, ClientInfo, Json, SameSite, lenient_auth},
};
use crate::{
    domain::{
        accounts::{self, SignInRoute, SignUp, SignedIn},
        sessions::{self, Grant},
    },
    error::{Error, RefreshFailure, Result},
    limits::Limit,
    openapi::{ErrorBody, SigninRefusal},
    state::AppState,
    tokens::IssuedToken,
};

/// `POST /api/auth/signup`. The per-IP limit is for anonymous clients: an admin provisioning
/// users is not counted. A bad token is refused (401) only after being counted.
#[utoipa::path(post, path = paths::SIGNUP, tag = "auth", request_body = SignupRequest,
    security((), ("bearer" = []), ("accessToken" = [])),
    responses(
        (status = 200, description = "Registered.", body = MessageBody),
        (status = 400, description = "A field is invalid, a role unknown, or the username or address taken.", body = ErrorBody),
        (status = 401, description = "A token was sent and is not valid.", body = ErrorBody),
        (status = 403, description = "Roles other than `user` asked for without an admin's token.", body = ErrorBody),
    ))]
pub async fn signup(
    State(state): State<AppState>,
    client: ClientInfo,
    caller: Result<Option<AuthUser>, Error>,
    Json(body): Json<SignupRequest>,
) -> Result<JsonResponse<MessageBody>> {
    let admin = matches!(&caller, Ok(Some(AuthUser(p))) if p.roles.contains(Role::Admin));
    if !admin {
        state.limits.check(Limit::Signup, client.ip)?;
    }
    let caller = caller?;
    let request = SignUp {
        username: Username::parse(&body.username)?,
        email: Email::parse(&body.email)?,
        password: Password::parse(&body.password)?,
        roles: body
            .roles
            .unwrap_or_default()
            .iter()
            .map(|name| Role::parse(name))
            .collect::<Result<BTreeSet<_>, _>>()?,
    };
    // An admin handing out roles makes an admin change: a recent factor, if they have one.
    if let Some(AuthUser(principal)) = &caller
        && admin
        && request.roles.iter().any(|r| *r != Role::User)
    {
        crate::domain::mfa::require_recent_factor(&state, principal).await?;
    }
    accounts::sign_up(
        &state,
        request,
        caller.as_ref().map(|c| &*c.0),
        &client.client(),
    )
    .await?;
    Ok(JsonResponse(MessageBody {
        message: messages::USER_REGISTERED.to_owned(),
    }))
}

/// `POST /api/auth/signin`: the tutorial's sign-in. The refresh token is set in an HttpOnly
/// cookie (and in the body only with `--refresh-token-in-body`).
#[utoipa::path(post, path = paths::SIGNIN, tag = "auth", request_body = SigninRequest,
    responses(
        (status = 200, description = "Signed in.", body = SigninResponse),
        (status = 400, description = "The body is invalid.", body = ErrorBody),
        (status = 401, description = "Wrong username or password (`accessToken: null`), or a \
            second factor is needed (`reason: mfa_required`, with `mfaToken` and `methods`).",
            body = SigninRefusal),
        (status = 403, description = "The account is disabled, or its address is not verified.", body = ErrorBody),
    ))]
pub async fn signin(
    State(state): State<AppState>,
    client: ClientInfo,
    Json(body): Json<SigninRequest>,
) -> Result<impl IntoResponse> {
    state.limits.check(Limit::Signin, client.ip)?;
    let signed_in = accounts::sign_in(
        &state,
        &body.username,
        &body.password,
        &client.client(),
        SignInRoute::Signin,
    )
    .await?;
    let session_cookies = session_cookies(&state, &signed_in.access, &signed_in.grant);
    Ok((
        [(header::CACHE_CONTROL, HeaderValue::from_static("no-store"))],
        session_cookies,
        JsonResponse(signin_body(&state, signed_in)),
    ))
}

/// The tutorial's sign-in answer.
pub fn signin_body(state: &AppState, signed_in: SignedIn) -> SigninResponse {
    let user = signed_in.user;
    let refresh_token = state
        .settings
        .refresh_token_in_body
        .then(|| signed_in.grant.refresh_token.expose().to_owned());
    SigninResponse {
        // Before the fields that move out of `user`.
        roles: user.authorities(),
        id: user.id,
        username: user.username,
        email: user.email,
        access_token: signed_in.access.token,
        token_type: "Bearer".to_owned(),
        expires_in: signed_in.access.expires_in.as_secs(),
        refresh_token,
    }
}

/// `POST /api/auth/login {email | username, password}`: the production guide's sign-in, by
/// address or username, with the user (and their highest role) in the answer and the refresh
/// token in its cookie.
#[utoipa::path(post, path = paths::LOGIN, tag = "auth", request_body = LoginRequest,
    responses(
        (status = 200, description = "Signed in.", body = LoginResponse),
        (status = 400, description = "The body is invalid, or names neither `email` nor `username`.", body = ErrorBody),
        (status = 401, description = "Wrong credentials, or a second factor is needed (`reason: mfa_required`).",
            body = SigninRefusal),
        (status = 403, description = "The account is disabled, or its address is not verified.", body = ErrorBody),
    ))]
pub async fn login(
    State(state): State<AppState>,
    client: ClientInfo,
    Json(body): Json<LoginRequest>,
) -> Result<impl IntoResponse> {
    state.limits.check(Limit::Signin, client.ip)?;
    let name = body
        .email
        .as_deref()
        .or(body.username.as_deref())
        .ok_or(Error::MissingLoginName)?;
    let signed_in = accounts::sign_in(
        &state,
        name,
        &body.password,
        &client.client(),
        SignInRoute::Login,
    )
    .await?;
    let session_cookies = session_cookies(&state, &signed_in.access, &signed_in.grant);
    Ok((
        [(header::CACHE_CONTROL, HeaderValue::from_static("no-store"))],
        session_cookies,
        JsonResponse(login_body(signed_in)),
    ))
}

/// The production guide's sign-in answer.
pub fn login_body(signed_in: SignedIn) -> LoginResponse {
    let user = signed_in.user;
    let role = user.roles.iter().max().copied().unwrap_or(Role::User);
    LoginResponse {
        access_token: signed_in.access.token,
        token_type: "Bearer".to_owned(),
        expires_in: signed_in.access.expires_in.as_secs(),
        user: LoginUser {
            roles: user.roles.iter().map(|r| r.as_str().to_owned()).collect(),
            role: role.as_str().to_owned(),
            email_verified: user.email_verified_at.is_some(),
            id: user.id,
            username: user.username,
            email: user.email,
        },
    }
}

/// The refresh and access cookies of a session just opened or refreshed.
pub fn session_cookies(
    state: &AppState,
    access: &IssuedToken,
    grant: &Grant,
) -> AppendHeaders<[(HeaderName, HeaderValue); 2]> {
    let https = state.settings.https;
    AppendHeaders([
        (header::SET_COOKIE, cookies::set_refresh(grant, https)),
        (header::SET_COOKIE, cookies::set_access(access, https)),
    ])
}

/// `POST /api/auth/refresh`: the refresh token comes from the HttpOnly cookie and its
/// successor goes back in it.
#[utoipa::path(post, path = paths::REFRESH, tag = "auth", security(("refreshCookie" = [])),
    responses(
        (status = 200, description = "A new access token; the rotated refresh token is in the cookie.",
            body = RefreshResponse),
        (status = 401, description = "No refresh cookie, or it is unknown, reused or expired: the session is over.",
            body = ErrorBody),
        (status = 403, description = "A cross-site request.", body = ErrorBody),
    ))]
pub async fn refresh(
    State(state): State<AppState>,
    _: SameSite,
    client: ClientInfo,
    headers: HeaderMap,
) -> Result<impl IntoResponse> {
    state.limits.check(Limit::Refresh, client.ip)?;
    let presented = cookies::refresh_token(&headers)
        .ok_or(Error::Refresh(RefreshFailure::Missing))
        .map_err(Error::on_cookie_route)?;
    let refreshed = sessions::refresh(&state, &presented, &client.client())
        .await
        .map_err(Error::on_cookie_route)?;
    Ok((
        [(header::CACHE_CONTROL, HeaderValue::from_static("no-store"))],
        session_cookies(&state, &refreshed.access, &refreshed.grant),
        JsonResponse(RefreshResponse {
            access_token: refreshed.access.token,
            token_type: "Bearer".to_owned(),
            expires_in: refreshed.access.expires_in.as_secs(),
        }),
    ))
}

/// `POST /api/auth/refreshtoken`: the tutorial's route, token in the body. Unlike the
/// tutorial, the token is rotated; the cookie follows so both routes stay in step.
#[utoipa::path(post, path = paths::REFRESH_TOKEN, tag = "auth", request_body = RefreshTokenRequest,
    responses(
        (status = 200, description = "A new access token and the next refresh token.", body = RefreshTokenResponse),
        (status = 400, description = "The body is invalid.", body = ErrorBody),
        (status = 403, description = "The refresh token is missing, unknown, reused or expired (the tutorial's answer).",
            body = ErrorBody),
    ))]
pub async fn refresh_token(
    State(state): State<AppState>,
    client: ClientInfo,
    Json(body): Json<RefreshTokenRequest>,
) -> Result<impl IntoResponse> {
    state.limits.check(Limit::Refresh, client.ip)?;
    let presented = body
        .refresh_token
        .filter(|t| !t.is_empty())
        .ok_or(Error::Refresh(RefreshFailure::Missing))?;
    let refreshed = sessions::refresh(&state, &presented, &client.client()).await?;
    Ok((
        [(header::CACHE_CONTROL, HeaderValue::from_static("no-store"))],
        session_cookies(&state, &refreshed.access, &refreshed.grant),
        JsonResponse(RefreshTokenResponse {
            access_token: refreshed.access.token,
            refresh_token: refreshed.grant.refresh_token.expose().to_owned(),
        }),
    ))
}

/// `POST /api/auth/logout` (and `/signout`): ends the session named by the access token or,
/// failing that, by the refresh cookie, and clears the cookie. Always succeeds.
#[utoipa::path(post, path = paths::LOGOUT, tag = "auth",
    security((), ("bearer" = []), ("accessToken" = []), ("refreshCookie" = [])),
    responses(
        (status = 200, description = "Signed out (whether or not a session was named).", body = MessageBody),
        (status = 403, description = "A cross-site request.", body = ErrorBody),
    ))]
pub async fn logout(
    State(state): State<AppState>,
    _: SameSite,
    client: ClientInfo,
    headers: HeaderMap,
) -> Result<impl IntoResponse> {
    let session = match lenient_auth(&headers, &state) {
        Some(principal) => Some((principal.session_id.clone(), principal.user_id)),
        None => match cookies::refresh_token(&headers) {
            Some(token) => sessions::session_of(&state, &token).await?,
            None => None,
        },
    };
    if let Some((session_id, user_id)) = session {
        sessions::log_out(&state, &session_id, user_id, &client.client()).await?;
    }
    let https = state.settings.https;
    Ok((
        AppendHeaders([
            (header::SET_COOKIE, cookies::clear_refresh(https)),
            (header::SET_COOKIE, cookies::clear_access(https)),
        ]),
        JsonResponse(MessageBody {
            message: messages::SIGNED_OUT.to_owned(),
        }),
    ))
}

/// `POST /api/auth/signout`: the same as `/api/auth/logout`.
#[utoipa::path(post, path = paths::SIGNOUT, tag = "auth",
    security((), ("bearer" = []), ("accessToken" = []), ("refreshCookie" = [])),
    responses(
        (status = 200, description = "Signed out (whether or not a session was named).", body = MessageBody),
        (status = 403, description = "A cross-site request.", body = ErrorBody),
    ))]
pub async fn signout(
    state: State<AppState>,
    same_site: SameSite,
    client: ClientInfo,
    headers: HeaderMap,
) -> Result<impl IntoResponse> {
    logout(state, same_site, client, headers).await
}
