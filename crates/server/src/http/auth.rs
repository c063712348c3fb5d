//! Sign-up, sign-in, refresh and logout.

use std::collections::BTreeSet;

use api::{
    Email, Password, Role, Username,
    wire::{
        LoginRequest, LoginResponse, LoginUser, MessageBody, RefreshResponse, RefreshTokenRequest,
        RefreshTokenResponse, SigninRequest, SigninResponse, SignupRequest, messages,
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
    state::AppState,
    tokens::IssuedToken,
};

/// `POST /api/auth/signup`. The per-IP limit is for anonymous clients: an admin provisioning
/// users is not counted. A bad token is refused (401) only after being counted.
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
