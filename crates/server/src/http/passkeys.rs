//! Passkeys: the caller's own (register, list, rename, remove) and signing in with one alone.

use api::wire::{
    MessageBody, PasskeyAssertion, PasskeyBeginRequest, PasskeyCreationOptions, PasskeyInfo,
    PasskeyRegisterRequest, PasskeyRegistered, PasskeyRename, PasskeyRequestOptions,
    SigninResponse, paths,
};
use axum::{Json as JsonResponse, extract::State, http::StatusCode, response::IntoResponse};

use super::{
    auth::{session_cookies, signin_body},
    extract::{ClientInfo, EnrollingUser, Json, Path, RecentlyVerified},
    mfa::NO_STORE,
};
use webauthn_rs::prelude::RequestChallengeResponse;

use crate::{
    domain::passkeys, error::Result, limits::Limit, openapi::ErrorBody, state::AppState,
    storage::PasskeyRecord,
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
#[utoipa::path(get, path = paths::PASSKEYS, tag = "mfa", security(("bearer" = []), ("accessToken" = [])),
    responses(
        (status = 200, description = "The caller's passkeys.", body = Vec<PasskeyInfo>),
        (status = 401, description = "No token, or it is invalid, expired or revoked.", body = ErrorBody),
    ))]
pub async fn list(
    State(state): State<AppState>,
    EnrollingUser(principal): EnrollingUser,
) -> Result<JsonResponse<Vec<PasskeyInfo>>> {
    let passkeys = passkeys::list(&state, principal.user_id).await?;
    Ok(JsonResponse(passkeys.into_iter().map(info).collect()))
}

/// `POST /api/user/passkeys/begin {currentPassword}`: options for `navigator.credentials.create`.
#[utoipa::path(post, path = paths::PASSKEYS_BEGIN, tag = "mfa", request_body = PasskeyBeginRequest, security(("bearer" = []), ("accessToken" = [])),
    responses(
        (status = 200, description = "Options for `navigator.credentials.create`, and the ceremony to answer in.", body = PasskeyCreationOptions),
        (status = 400, description = "The current password is missing or wrong.", body = ErrorBody),
        (status = 401, description = "No valid token; or a second factor was not proven recently (`reason: step_up_required`): prove one at `/api/auth/mfa/step-up`, then retry.", body = ErrorBody),
        (status = 409, description = "The account has as many passkeys as it may.", body = ErrorBody),
        (status = 501, description = "Passkeys are off: the public URL cannot be a relying party.", body = ErrorBody),
    ))]
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
#[utoipa::path(post, path = paths::PASSKEYS, tag = "mfa", request_body = PasskeyRegisterRequest, security(("bearer" = []), ("accessToken" = [])),
    responses(
        (status = 201, description = "Registered: the passkey, recovery codes if it is the first factor (shown once), and a new access token.", body = PasskeyRegistered),
        (status = 400, description = "The name is not valid, the ceremony expired, or the answer does not verify.", body = ErrorBody),
        (status = 401, description = "No token, or it is invalid, expired or revoked.", body = ErrorBody),
        (status = 409, description = "The passkey is registered already, or the account has as many as it may.", body = ErrorBody),
        (status = 501, description = "Passkeys are off: the public URL cannot be a relying party.", body = ErrorBody),
    ))]
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
#[utoipa::path(patch, path = paths::PASSKEY, tag = "mfa", request_body = PasskeyRename, security(("bearer" = []), ("accessToken" = [])), params(("id" = i64, Path, description = "The passkey's id.")),
    responses(
        (status = 200, description = "Renamed.", body = MessageBody),
        (status = 400, description = "The name is not valid.", body = ErrorBody),
        (status = 401, description = "No token, or it is invalid, expired or revoked.", body = ErrorBody),
        (status = 404, description = "No such passkey of the caller.", body = ErrorBody),
    ))]
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
#[utoipa::path(delete, path = paths::PASSKEY, tag = "mfa", security(("bearer" = []), ("accessToken" = [])), params(("id" = i64, Path, description = "The passkey's id.")),
    responses(
        (status = 200, description = "Removed.", body = MessageBody),
        (status = 401, description = "No valid token; or a second factor was not proven recently (`reason: step_up_required`): prove one at `/api/auth/mfa/step-up`, then retry.", body = ErrorBody), (status = 403, description = "The token is good only for enrolling a second factor (`reason: mfa_enrollment_required`).", body = ErrorBody),
        (status = 404, description = "No such passkey of the caller.", body = ErrorBody),
        (status = 409, description = "It is the last factor of a user whose role requires one.", body = ErrorBody),
    ))]
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
#[utoipa::path(post, path = paths::PASSKEY_SIGNIN_BEGIN, tag = "auth",
    responses(
        (status = 200, description = "Options for `navigator.credentials.get` (any discoverable passkey), and the ceremony to answer in.", body = PasskeyRequestOptions),
        (status = 501, description = "Passkeys are off: the public URL cannot be a relying party.", body = ErrorBody),
    ))]
pub async fn begin_sign_in(
    State(state): State<AppState>,
    client: ClientInfo,
) -> Result<impl IntoResponse> {
    state.limits.check(Limit::Signin, client.ip)?;
    Ok(request_options(passkeys::begin_sign_in(&state).await?))
}

/// `POST /api/auth/passkey {ceremony, credential}`: signs in; answers as `/api/auth/signin`.
#[utoipa::path(post, path = paths::PASSKEY_SIGNIN, tag = "auth", request_body = PasskeyAssertion,
    responses(
        (status = 200, description = "Signed in, as by `/api/auth/signin`.", body = SigninResponse),
        (status = 400, description = "The body is invalid, or the ceremony expired or was used.", body = ErrorBody),
        (status = 401, description = "The passkey was not accepted.", body = ErrorBody),
        (status = 403, description = "The account is disabled, or its address is not verified.", body = ErrorBody),
        (status = 501, description = "Passkeys are off: the public URL cannot be a relying party.", body = ErrorBody),
    ))]
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
