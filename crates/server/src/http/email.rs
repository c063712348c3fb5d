//! The mail flows: forgotten password, address verification, address change.

use api::{
    Email, Password,
    wire::{
        ChangeEmailRequest, ConfirmRequest, ForgotPasswordRequest, MessageBody, ReportRequest,
        ResendVerificationRequest, ResetPasswordRequest, messages,
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
pub async fn resend_verification(
    State(state): State<AppState>,
    client: ClientInfo,
    caller: Option<EnrollingUser>,
    body: Result<Json<ResendVerificationRequest>, Error>,
) -> Result<impl IntoResponse> {
    state.limits.check(Limit::Mail, client.ip)?;
    // A signed-in caller needs no body; anyone else names the address.
    let email = match (&caller, body) {
        (Some(_), _) => None,
        (None, Ok(Json(ResendVerificationRequest { email: Some(raw) }))) => {
            Some(Email::parse(&raw)?)
        }
        (None, Ok(_)) => return Err(Error::NoToken),
        (None, Err(e)) => return Err(e),
    };
    verify::resend(&state, caller.map(|c| c.0.user_id), email).await?;
    Ok(said(messages::VERIFY_MAIL_MAYBE_SENT))
}

/// `POST /api/user/email {newEmail, currentPassword}`.
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
pub async fn report_email_change(
    State(state): State<AppState>,
    client: ClientInfo,
    Json(body): Json<ReportRequest>,
) -> Result<impl IntoResponse> {
    state.limits.check(Limit::Code, client.ip)?;
    change::report(&state, &body.token, &client.client()).await?;
    Ok(said(messages::EMAIL_CHANGE_UNDONE))
}
