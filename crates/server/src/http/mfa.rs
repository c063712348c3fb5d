//! Second factors: the sign-in's second step, step-up, the user's own factors, an admin's reset.

use api::wire::{
    MessageBody, MfaPasskeyRequest, MfaStatus, MfaVerifyRequest, PasskeyAssertion,
    PasskeyRequestOptions, RecoveryCodes, RefreshResponse, SigninResponse, StepUpRequest,
    TotpBeginRequest, TotpConfirmRequest, TotpConfirmed, TotpEnrolment, paths,
};
use axum::{
    Json as JsonResponse,
    extract::State,
    http::{HeaderValue, header},
    response::IntoResponse,
};

use super::{
    auth::{login_body, session_cookies, signin_body},
    extract::{Admin, ClientInfo, EnrollingUser, Json, Path, RecentlyVerified, RequireRole},
    passkeys::request_options,
};
use crate::{
    domain::{
        accounts::SignInRoute,
        admin::Actor,
        mfa::{self, Factor},
    },
    error::{Error, Result},
    limits::Limit,
    openapi::ErrorBody,
    state::AppState,
};

pub(super) const NO_STORE: [(header::HeaderName, HeaderValue); 1] =
    [(header::CACHE_CONTROL, HeaderValue::from_static("no-store"))];

/// The one factor a request names: a code, a recovery code, or a passkey's answer.
fn factor<'a>(
    code: Option<&'a str>,
    recovery: Option<&'a str>,
    passkey: Option<&'a PasskeyAssertion>,
) -> Result<Factor<'a>> {
    match (code, recovery, passkey) {
        (Some(code), None, None) => Ok(Factor::Otp(code)),
        (None, Some(recovery), None) => Ok(Factor::Recovery(recovery)),
        (None, None, Some(passkey)) => Ok(Factor::Passkey {
            ceremony: &passkey.ceremony,
            answer: &passkey.credential,
        }),
        _ => Err(Error::BadBody {
            status: axum::http::StatusCode::BAD_REQUEST,
            message:
                "Give one of `code` (from the authenticator app), `recoveryCode`, or `passkey`."
                    .into(),
        }),
    }
}

/// `POST /api/auth/mfa/verify {mfaToken, code | recoveryCode | passkey}`: the sign-in's second step;
/// answers as the route the sign-in started at (`/api/auth/signin` or `/api/auth/login`).
#[utoipa::path(post, path = paths::MFA_VERIFY, tag = "mfa", request_body = MfaVerifyRequest,
    responses(
        (status = 200, description = "Signed in: the answer of `/api/auth/signin` (`SigninResponse`) or of `/api/auth/login` (`LoginResponse`), as the sign-in started.",
            body = SigninResponse),
        (status = 400, description = "Not exactly one of `code`, `recoveryCode`, `passkey`; or a passkey ceremony that expired.", body = ErrorBody),
        (status = 401, description = "The challenge expired or was used, or the factor was not accepted.", body = ErrorBody),
        (status = 403, description = "The account is disabled.", body = ErrorBody),
    ))]
pub async fn verify(
    State(state): State<AppState>,
    client: ClientInfo,
    Json(body): Json<MfaVerifyRequest>,
) -> Result<impl IntoResponse> {
    state.limits.check(Limit::Signin, client.ip)?;
    let factor = factor(
        body.code.as_deref(),
        body.recovery_code.as_deref(),
        body.passkey.as_ref(),
    )?;
    let (signed_in, route) =
        mfa::complete_sign_in(&state, &body.mfa_token, factor, &client.client()).await?;
    let cookies = session_cookies(&state, &signed_in.access, &signed_in.grant);
    // The shape of the route the sign-in started at.
    let body = match route {
        SignInRoute::Signin => serde_json::to_value(signin_body(&state, signed_in)),
        SignInRoute::Login => serde_json::to_value(login_body(signed_in)),
    }
    .map_err(anyhow::Error::from)?;
    Ok((NO_STORE, cookies, JsonResponse(body)))
}

/// `POST /api/auth/mfa/passkey {mfaToken}`: options for proving a passkey as the sign-in's
/// second step; the answer goes to `/api/auth/mfa/verify` as `passkey`.
#[utoipa::path(post, path = paths::MFA_PASSKEY, tag = "mfa", request_body = MfaPasskeyRequest,
    responses(
        (status = 200, description = "Options for `navigator.credentials.get`, and the ceremony to answer in.", body = PasskeyRequestOptions),
        (status = 401, description = "The challenge expired or was used.", body = ErrorBody),
        (status = 404, description = "The user has no passkey.", body = ErrorBody),
        (status = 501, description = "Passkeys are off: the public URL cannot be a relying party.", body = ErrorBody),
    ))]
pub async fn begin_passkey(
    State(state): State<AppState>,
    client: ClientInfo,
    Json(body): Json<MfaPasskeyRequest>,
) -> Result<impl IntoResponse> {
    state.limits.check(Limit::Signin, client.ip)?;
    Ok(request_options(
        mfa::begin_passkey(&state, &body.mfa_token).await?,
    ))
}

/// `POST /api/auth/mfa/step-up/passkey`: options for proving a passkey as a step-up; the
/// answer goes to `/api/auth/mfa/step-up` as `passkey`.
#[utoipa::path(post, path = paths::MFA_STEP_UP_PASSKEY, tag = "mfa", security(("bearer" = []), ("accessToken" = [])),
    responses(
        (status = 200, description = "Options for `navigator.credentials.get`, and the ceremony to answer in.", body = PasskeyRequestOptions),
        (status = 401, description = "No token, or it is invalid, expired or revoked.", body = ErrorBody),
        (status = 404, description = "The caller has no passkey.", body = ErrorBody),
        (status = 501, description = "Passkeys are off: the public URL cannot be a relying party.", body = ErrorBody),
    ))]
pub async fn begin_step_up_passkey(
    State(state): State<AppState>,
    EnrollingUser(principal): EnrollingUser,
) -> Result<impl IntoResponse> {
    Ok(request_options(
        mfa::begin_passkey_step_up(&state, &principal).await?,
    ))
}

/// `POST /api/auth/mfa/step-up {code | recoveryCode | passkey}`: proves a factor again; a new access
/// token says so.
#[utoipa::path(post, path = paths::MFA_STEP_UP, tag = "mfa", request_body = StepUpRequest, security(("bearer" = []), ("accessToken" = [])),
    responses(
        (status = 200, description = "A new access token that records the proof.", body = RefreshResponse),
        (status = 400, description = "Not exactly one of `code`, `recoveryCode`, `passkey`.", body = ErrorBody),
        (status = 401, description = "No valid token, or the factor was not accepted.", body = ErrorBody),
        (status = 409, description = "The caller has no second factor.", body = ErrorBody),
    ))]
pub async fn step_up(
    State(state): State<AppState>,
    EnrollingUser(principal): EnrollingUser,
    client: ClientInfo,
    Json(body): Json<StepUpRequest>,
) -> Result<impl IntoResponse> {
    state.limits.check(Limit::Signin, client.ip)?;
    let factor = factor(
        body.code.as_deref(),
        body.recovery_code.as_deref(),
        body.passkey.as_ref(),
    )?;
    let access = mfa::step_up(&state, &principal, factor, &client.client()).await?;
    Ok((
        NO_STORE,
        JsonResponse(RefreshResponse {
            access_token: access.token,
            token_type: "Bearer".to_owned(),
            expires_in: access.expires_in.as_secs(),
        }),
    ))
}

/// `GET /api/user/mfa`: what the caller has set up.
#[utoipa::path(get, path = paths::MFA, tag = "mfa", security(("bearer" = []), ("accessToken" = [])),
    responses(
        (status = 200, description = "The caller's factors.", body = MfaStatus),
        (status = 401, description = "No token, or it is invalid, expired or revoked.", body = ErrorBody),
    ))]
pub async fn status(
    State(state): State<AppState>,
    EnrollingUser(principal): EnrollingUser,
) -> Result<JsonResponse<MfaStatus>> {
    let status = mfa::status(&state, principal.user_id).await?;
    Ok(JsonResponse(MfaStatus {
        totp: status.totp,
        passkeys: status
            .passkeys
            .into_iter()
            .map(super::passkeys::info)
            .collect(),
        recovery_codes_left: status.recovery_codes_left,
        required: status.required,
    }))
}

/// `POST /api/user/mfa/totp`: starts setting up an authenticator app.
#[utoipa::path(post, path = paths::MFA_TOTP, tag = "mfa", request_body = TotpBeginRequest, security(("bearer" = []), ("accessToken" = [])),
    responses(
        (status = 200, description = "The secret for the authenticator app; confirm it with a code.", body = TotpEnrolment),
        (status = 400, description = "The current password is missing or wrong.", body = ErrorBody),
        (status = 401, description = "No valid token; or a second factor was not proven recently (`reason: step_up_required`): prove one at `/api/auth/mfa/step-up`, then retry.", body = ErrorBody),
        (status = 409, description = "An authenticator app is set up already.", body = ErrorBody),
    ))]
pub async fn begin_totp(
    State(state): State<AppState>,
    EnrollingUser(principal): EnrollingUser,
    client: ClientInfo,
    Json(body): Json<TotpBeginRequest>,
) -> Result<impl IntoResponse> {
    let enrolment = mfa::begin_totp(
        &state,
        &principal,
        body.current_password.as_deref(),
        &client.client(),
    )
    .await?;
    Ok((
        NO_STORE,
        JsonResponse(TotpEnrolment {
            secret: enrolment.secret,
            uri: enrolment.uri,
        }),
    ))
}

/// `POST /api/user/mfa/totp/confirm {code}`: the first code confirms the app.
#[utoipa::path(post, path = paths::MFA_TOTP_CONFIRM, tag = "mfa", request_body = TotpConfirmRequest, security(("bearer" = []), ("accessToken" = [])),
    responses(
        (status = 200, description = "Confirmed: recovery codes (shown once) and a new access token.", body = TotpConfirmed),
        (status = 400, description = "No enrolment was started.", body = ErrorBody),
        (status = 401, description = "No valid token, or the code was not accepted.", body = ErrorBody),
        (status = 409, description = "An authenticator app is set up already.", body = ErrorBody),
    ))]
pub async fn confirm_totp(
    State(state): State<AppState>,
    EnrollingUser(principal): EnrollingUser,
    client: ClientInfo,
    Json(body): Json<TotpConfirmRequest>,
) -> Result<impl IntoResponse> {
    state.limits.check(Limit::Signin, client.ip)?;
    let enrolled = mfa::confirm_totp(&state, &principal, &body.code, &client.client()).await?;
    Ok((
        NO_STORE,
        JsonResponse(TotpConfirmed {
            recovery_codes: enrolled.recovery_codes,
            access_token: enrolled.access.token,
            token_type: "Bearer".to_owned(),
            expires_in: enrolled.access.expires_in.as_secs(),
        }),
    ))
}

/// `DELETE /api/user/mfa/totp`: needs a recently proven factor.
#[utoipa::path(delete, path = paths::MFA_TOTP, tag = "mfa", security(("bearer" = []), ("accessToken" = [])),
    responses(
        (status = 200, description = "Removed.", body = MessageBody),
        (status = 401, description = "No valid token; or a second factor was not proven recently (`reason: step_up_required`): prove one at `/api/auth/mfa/step-up`, then retry.", body = ErrorBody), (status = 403, description = "The token is good only for enrolling a second factor (`reason: mfa_enrollment_required`).", body = ErrorBody),
        (status = 404, description = "No authenticator app is set up.", body = ErrorBody),
        (status = 409, description = "The caller's role requires a second factor.", body = ErrorBody),
    ))]
pub async fn remove_totp(
    State(state): State<AppState>,
    RecentlyVerified(principal): RecentlyVerified,
    client: ClientInfo,
) -> Result<JsonResponse<MessageBody>> {
    mfa::remove_totp(&state, &principal, &client.client()).await?;
    Ok(JsonResponse(MessageBody {
        message: "The authenticator app was removed, and the recovery codes with it.".to_owned(),
    }))
}

/// `POST /api/user/mfa/recovery-codes`: a new set, shown once; the old set stops working.
#[utoipa::path(post, path = paths::MFA_RECOVERY_CODES, tag = "mfa", security(("bearer" = []), ("accessToken" = [])),
    responses(
        (status = 200, description = "A new set, shown once; the old set stops working.", body = RecoveryCodes),
        (status = 401, description = "No valid token; or a second factor was not proven recently (`reason: step_up_required`): prove one at `/api/auth/mfa/step-up`, then retry.", body = ErrorBody), (status = 403, description = "The token is good only for enrolling a second factor (`reason: mfa_enrollment_required`).", body = ErrorBody),
        (status = 409, description = "The caller has no second factor.", body = ErrorBody),
    ))]
pub async fn regenerate_recovery_codes(
    State(state): State<AppState>,
    RecentlyVerified(principal): RecentlyVerified,
    client: ClientInfo,
) -> Result<impl IntoResponse> {
    let recovery_codes =
        mfa::regenerate_recovery_codes(&state, &principal, &client.client()).await?;
    Ok((NO_STORE, JsonResponse(RecoveryCodes { recovery_codes })))
}

/// `DELETE /api/admin/users/{id}/mfa`: removes every factor of the user and ends their
/// sessions.
#[utoipa::path(delete, path = paths::ADMIN_USER_MFA, tag = "admin", security(("bearer" = []), ("accessToken" = [])), params(("id" = i64, Path, description = "The user's id.")),
    responses(
        (status = 200, description = "Every factor of the user is removed and their sessions are over.", body = MessageBody),
        (status = 401, description = "No valid token; or a second factor was not proven recently (`reason: step_up_required`): prove one at `/api/auth/mfa/step-up`, then retry.", body = ErrorBody), (status = 403, description = "The caller is not an admin.", body = ErrorBody), (status = 404, description = "No such user.", body = ErrorBody),
    ))]
pub async fn admin_reset(
    State(state): State<AppState>,
    RequireRole(admin, ..): RequireRole<Admin>,
    _: RecentlyVerified,
    client: ClientInfo,
    Path(id): Path<i64>,
) -> Result<JsonResponse<MessageBody>> {
    mfa::admin_reset(&state, Actor::Admin(&admin), id, &client.client()).await?;
    Ok(JsonResponse(MessageBody {
        message: "The user's second factors were removed and their sessions ended.".to_owned(),
    }))
}
