//! The mail flows: forgotten password, address verification, address change.

use api::{
    Email, Password,
    wire::{
        ChangeEmailRequest, ConfirmRequest, ForgotPasswordRequest, MessageBody, ReportRequest,
        ResendVerificationRequest, ResetPasswordRequest, messages, paths,
    },
};
use axum::{
    Json as JsonResponse,
    extract::State,
    http::{HeaderValue, header},
    response::IntoResponse,
};

use super::extract::{ClientInfo, EnrollingUser, Json, RecentlyVerified};
use crate::{
    domain::email::{
        change,
        reset::{self, Proof},
        verify,
    },
    error::{Error, Result},
    limits::Limit,
    openapi::ErrorBody,
    state::AppState,
};

/// A message, not to be cached (it may answer a request carrying a secret).
fn said(message: &str) -> impl IntoResponse + use<> {
    (
        [(header::CACHE_CONTROL, HeaderValue::from_static("no-store"))],
        JsonResponse(MessageBody {
            message: message.to_owned(),
        }),
    )
}

/// `POST /api/auth/password/forgot {email}`: always the same 200.
#[utoipa::path(post, path = paths::PASSWORD_FORGOT, tag = "email", request_body = ForgotPasswordRequest,
    responses(
        (status = 200, description = "The same answer whether or not an account uses the address.", body = MessageBody),
        (status = 400, description = "The address is not valid.", body = ErrorBody),
        (status = 501, description = "No mail is configured on this server.", body = ErrorBody),
    ))]
pub async fn forgot_password(
    State(state): State<AppState>,
    client: ClientInfo,
    Json(body): Json<ForgotPasswordRequest>,
) -> Result<impl IntoResponse> {
    state.limits.check(Limit::Mail, client.ip)?;
    let email = Email::parse(&body.email)?;
    reset::forgot(&state, email, &client.client()).await?;
    Ok(said(messages::RESET_MAIL_MAYBE_SENT))
}

/// `POST /api/auth/password/reset {email, code, newPassword}` or `{token, newPassword}`.
#[utoipa::path(post, path = paths::PASSWORD_RESET, tag = "email", request_body = ResetPasswordRequest,
    responses(
        (status = 200, description = "The password is reset; every session is over.", body = MessageBody),
        (status = 400, description = "Neither a token nor an address and code; the code or link is wrong, used or expired; or the new password is not acceptable.", body = ErrorBody),
        (status = 501, description = "No mail is configured on this server.", body = ErrorBody),
    ))]
pub async fn reset_password(
    State(state): State<AppState>,
    client: ClientInfo,
    Json(body): Json<ResetPasswordRequest>,
) -> Result<impl IntoResponse> {
    state.limits.check(Limit::Code, client.ip)?;
    let new_password = Password::parse(&body.new_password)?;
    let email;
    let proof = match (&body.token, &body.email, &body.code) {
        (Some(token), _, _) => Proof::Link(token),
        (None, Some(raw), Some(code)) => {
            email = Email::parse(raw)?;
            Proof::Code {
                email: &email,
                code,
            }
        }
        _ => return Err(Error::MissingProof),
    };
    reset::reset(&state, proof, &new_password, &client.client()).await?;
    Ok(said(messages::PASSWORD_RESET_DONE))
}

/// `POST /api/auth/verify-email {token}` (the link), `{code}` (signed in) or `{email, code}`.
#[utoipa::path(post, path = paths::VERIFY_EMAIL, tag = "email", request_body = ConfirmRequest,
    security((), ("bearer" = []), ("accessToken" = [])),
    responses(
        (status = 200, description = "The address is verified.", body = MessageBody),
        (status = 400, description = "Neither token nor code, or the code or link is wrong, used or expired.", body = ErrorBody),
        (status = 401, description = "A code alone, without a token or the address it went to.", body = ErrorBody),
        (status = 403, description = "Address verification is turned off on this server.", body = ErrorBody),
        (status = 501, description = "No mail is configured on this server.", body = ErrorBody),
    ))]
pub async fn verify_email(
    State(state): State<AppState>,
    client: ClientInfo,
    caller: Option<EnrollingUser>,
    Json(body): Json<ConfirmRequest>,
) -> Result<impl IntoResponse> {
    state.limits.check(Limit::Code, client.ip)?;
    let email;
    let proof = match (&body.token, &body.code, &body.email, &caller) {
        (Some(token), _, _, _) => verify::Proof::Link(token),
        (None, Some(code), Some(raw), _) => {
            email = Email::parse(raw)?;
            verify::Proof::CodeTo {
                email: &email,
                code,
            }
        }
        (None, Some(code), None, Some(EnrollingUser(principal))) => verify::Proof::CodeFor {
            user_id: principal.user_id,
            code,
        },
        (None, Some(_), None, None) => return Err(Error::NoToken),
        (None, None, _, _) => return Err(Error::MissingProof),
    };
    verify::confirm(&state, proof, &client.client()).await?;
    Ok(said(messages::EMAIL_VERIFIED))
}

/// `POST /api/auth/verify-email/resend`: for the signed-in caller, or `{email}`.
#[utoipa::path(post, path = paths::VERIFY_EMAIL_RESEND, tag = "email",
    request_body(content = Option<ResendVerificationRequest>, description = "The address, unless signed in."),
    security((), ("bearer" = []), ("accessToken" = [])),
    responses(
        (status = 200, description = "The same answer whether or not the address needs verifying.", body = MessageBody),
        (status = 400, description = "The address is not valid.", body = ErrorBody),
        (status = 401, description = "Neither signed in nor an address.", body = ErrorBody),
        (status = 403, description = "Address verification is turned off on this server.", body = ErrorBody),
        (status = 501, description = "No mail is configured on this server.", body = ErrorBody),
    ))]
pub async fn resend_verification(
    State(state): State<AppState>,
    client: ClientInfo,
    caller: Option<EnrollingUser>,
    body: Option<Json<ResendVerificationRequest>>,
) -> Result<impl IntoResponse> {
    state.limits.check(Limit::Mail, client.ip)?;
    // A signed-in caller needs no body; anyone else names the address.
    let email = match (&caller, body) {
        (Some(_), _) => None,
        (None, Some(Json(ResendVerificationRequest { email: Some(raw) }))) => {
            Some(Email::parse(&raw)?)
        }
        // Neither signed in nor an address: the token is what is missing.
        (None, _) => return Err(Error::NoToken),
    };
    verify::resend(&state, caller.map(|c| c.0.user_id), email).await?;
    Ok(said(messages::VERIFY_MAIL_MAYBE_SENT))
}

/// `POST /api/user/email {newEmail, currentPassword}`.
#[utoipa::path(post, path = paths::EMAIL, tag = "email", request_body = ChangeEmailRequest, security(("bearer" = []), ("accessToken" = [])),
    responses(
        (status = 200, description = "A code and link went to the new address; the change is made when confirmed.", body = MessageBody),
        (status = 400, description = "The address is not valid or is the current one, or the password is wrong.", body = ErrorBody),
        (status = 401, description = "No valid token; or a second factor was not proven recently (`reason: step_up_required`): prove one at `/api/auth/mfa/step-up`, then retry.", body = ErrorBody), (status = 403, description = "The token is good only for enrolling a second factor (`reason: mfa_enrollment_required`).", body = ErrorBody),
        (status = 409, description = "The address changed in the last 7 days and can still be reported.", body = ErrorBody),
        (status = 501, description = "No mail is configured on this server.", body = ErrorBody),
    ))]
pub async fn change_email(
    State(state): State<AppState>,
    RecentlyVerified(principal): RecentlyVerified,
    client: ClientInfo,
    Json(body): Json<ChangeEmailRequest>,
) -> Result<impl IntoResponse> {
    state.limits.check(Limit::Mail, client.ip)?;
    let new_email = Email::parse(&body.new_email)?;
    change::request(
        &state,
        principal.user_id,
        &new_email,
        &body.current_password,
        &client.client(),
    )
    .await?;
    Ok(said(messages::EMAIL_CHANGE_MAIL_SENT))
}

/// `POST /api/auth/email/confirm {token}` (the link) or `{code}` (signed in).
#[utoipa::path(post, path = paths::EMAIL_CONFIRM, tag = "email", request_body = ConfirmRequest, security((), ("bearer" = []), ("accessToken" = [])),
    responses(
        (status = 200, description = "The address is changed.", body = MessageBody),
        (status = 400, description = "Neither token nor code, or the code or link is wrong, used or expired; or the address is taken.", body = ErrorBody),
        (status = 401, description = "A code without being signed in.", body = ErrorBody),
        (status = 501, description = "No mail is configured on this server.", body = ErrorBody),
    ))]
pub async fn confirm_email(
    State(state): State<AppState>,
    client: ClientInfo,
    caller: Option<EnrollingUser>,
    Json(body): Json<ConfirmRequest>,
) -> Result<impl IntoResponse> {
    state.limits.check(Limit::Code, client.ip)?;
    change::confirm(
        &state,
        caller.map(|c| c.0.user_id),
        body.token.as_deref(),
        body.code.as_deref(),
        &client.client(),
    )
    .await?;
    Ok(said(messages::EMAIL_CHANGED))
}

/// `POST /api/auth/email/report {token}`: undoes an address change from the old address.
#[utoipa::path(post, path = paths::EMAIL_REPORT, tag = "email", request_body = ReportRequest,
    responses(
        (status = 200, description = "The change is undone: the old address is back, every session is over, the password no longer works.", body = MessageBody),
        (status = 400, description = "The link is wrong, used or expired.", body = ErrorBody),
        (status = 501, description = "No mail is configured on this server.", body = ErrorBody),
    ))]
pub async fn report_email_change(
    State(state): State<AppState>,
    client: ClientInfo,
    Json(body): Json<ReportRequest>,
) -> Result<impl IntoResponse> {
    state.limits.check(Limit::Code, client.ip)?;
    change::report(&state, &body.token, &client.client()).await?;
    Ok(said(messages::EMAIL_CHANGE_UNDONE))
}
