//! Second factors: the sign-in's second step, step-up, the user's own factors, an admin's reset.

use api::wire::{
    MessageBody, MfaPasskeyRequest, MfaStatus, MfaVerifyRequest, PasskeyAssertion, RecoveryCodes,
    RefreshResponse, StepUpRequest, TotpBeginRequest, TotpConfirmRequest, TotpConfirmed,
    TotpEnrolment,
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
