//! Passkeys: the caller's own (register, list, rename, remove) and signing in with one alone.

use api::wire::{
    MessageBody, PasskeyAssertion, PasskeyBeginRequest, PasskeyCreationOptions, PasskeyInfo,
    PasskeyRegisterRequest, PasskeyRegistered, PasskeyRename, PasskeyRequestOptions,
};
use axum::{Json as JsonResponse, extract::State, http::StatusCode, response::IntoResponse};

use super::{
    auth::{session_cookies, signin_body},
    extract::{ClientInfo, EnrollingUser, Json, Path, RecentlyVerified},
    mfa::NO_STORE,
};
use webauthn_rs::prelude::RequestChallengeResponse;

use crate::{
    domain::passkeys, error::Result, limits::Limit, state::AppState, storage::PasskeyRecord,
};

/// Options for `navigator.credentials.get`, with the ceremony to answer them in; never cached.
pub fn request_options(
    (ceremony, options): (String, RequestChallengeResponse),
) -> impl IntoResponse {
    (
        NO_STORE,
        JsonResponse(PasskeyRequestOptions { ceremony, options }),
    )
}

pub fn info(record: PasskeyRecord) -> PasskeyInfo {
    PasskeyInfo {
        id: record.id,
        name: record.name,
        created_at: record.created_at,
        last_used_at: record.last_used_at,
    }
}

/// `GET /api/user/passkeys`.
pub async fn list(
    State(state): State<AppState>,
    EnrollingUser(principal): EnrollingUser,
) -> Result<JsonResponse<Vec<PasskeyInfo>>> {
    let passkeys = passkeys::list(&state, principal.user_id).await?;
    Ok(JsonResponse(passkeys.into_iter().map(info).collect()))
}

/// `POST /api/user/passkeys/begin {currentPassword}`: options for `navigator.credentials.create`.
pub async fn begin_registration(
    State(state): State<AppState>,
    EnrollingUser(principal): EnrollingUser,
    client: ClientInfo,
    Json(body): Json<PasskeyBeginRequest>,
) -> Result<impl IntoResponse> {
    let (ceremony, options) = passkeys::begin_registration(
        &state,
        &principal,
        body.current_password.as_deref(),
        &client.client(),
    )
    .await?;
    Ok((
        NO_STORE,
        JsonResponse(PasskeyCreationOptions { ceremony, options }),
    ))
}

/// `POST /api/user/passkeys {ceremony, name, credential}`: the authenticator's answer.
pub async fn register(
    State(state): State<AppState>,
    EnrollingUser(principal): EnrollingUser,
    client: ClientInfo,
    Json(body): Json<PasskeyRegisterRequest>,
) -> Result<impl IntoResponse> {
    let registered = passkeys::finish_registration(
        &state,
        &principal,
        &body.ceremony,
        &body.name,
        &body.credential,
        &client.client(),
    )
    .await?;
    Ok((
        StatusCode::CREATED,
        NO_STORE,
        JsonResponse(PasskeyRegistered {
            passkey: info(registered.passkey),
            recovery_codes: registered.recovery_codes,
            access_token: registered.access.token,
            token_type: "Bearer".to_owned(),
            expires_in: registered.access.expires_in.as_secs(),
        }),
    ))
}

/// `PATCH /api/user/passkeys/{id} {name}`.
pub async fn rename(
    State(state): State<AppState>,
    EnrollingUser(principal): EnrollingUser,
    Path(id): Path<i64>,
    Json(body): Json<PasskeyRename>,
) -> Result<JsonResponse<MessageBody>> {
    passkeys::rename(&state, principal.user_id, id, &body.name).await?;
    Ok(JsonResponse(MessageBody {
        message: "The passkey was renamed.".to_owned(),
    }))
}

/// `DELETE /api/user/passkeys/{id}`: needs a recently proven factor.
pub async fn remove(
    State(state): State<AppState>,
    RecentlyVerified(principal): RecentlyVerified,
    client: ClientInfo,
    Path(id): Path<i64>,
) -> Result<JsonResponse<MessageBody>> {
    passkeys::remove(&state, &principal, id, &client.client()).await?;
    Ok(JsonResponse(MessageBody {
        message: "The passkey was removed.".to_owned(),
    }))
}

/// `POST /api/auth/passkey/begin`: options for signing in with a passkey alone.
pub async fn begin_sign_in(
    State(state): State<AppState>,
    client: ClientInfo,
) -> Result<impl IntoResponse> {
    state.limits.check(Limit::Signin, client.ip)?;
    Ok(request_options(passkeys::begin_sign_in(&state).await?))
}

/// `POST /api/auth/passkey {ceremony, credential}`: signs in; answers as `/api/auth/signin`.
pub async fn sign_in(
    State(state): State<AppState>,
    client: ClientInfo,
    Json(body): Json<PasskeyAssertion>,
) -> Result<impl IntoResponse> {
    state.limits.check(Limit::Signin, client.ip)?;
    let signed_in =
        passkeys::sign_in(&state, &body.ceremony, &body.credential, &client.client()).await?;
    let cookies = session_cookies(&state, &signed_in.access, &signed_in.grant);
    Ok((
        NO_STORE,
        cookies,
        JsonResponse(signin_body(&state, signed_in)),
    ))
}
