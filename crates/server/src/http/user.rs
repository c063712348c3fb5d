//! The signed-in user's own resources.

use api::{
    Password,
    wire::{ChangePasswordRequest, MessageBody, Profile, paths},
};
use axum::extract::State;
use time::format_description::well_known::Rfc3339;

use super::extract::{ClientInfo, EnrollingUser, Json, RecentlyVerified};
use crate::{
    domain::accounts,
    error::{Error, Result},
    limits::Limit,
    openapi::ErrorBody,
    state::AppState,
};

/// `GET /api/user/me`: the caller's profile.
#[utoipa::path(get, path = paths::ME, tag = "user", security(("bearer" = []), ("accessToken" = [])),
    responses(
        (status = 200, description = "The caller's profile.", body = Profile),
        (status = 401, description = "No token, or it is invalid, expired or revoked.", body = ErrorBody),
        (status = 404, description = "The account was deleted.", body = ErrorBody),
    ))]
pub async fn me(
    State(state): State<AppState>,
    EnrollingUser(principal): EnrollingUser,
) -> Result<axum::Json<Profile>> {
    let user = state
        .storage
        .user_by_id(principal.user_id)
        .await?
        .ok_or(Error::NotFound("User not found."))?;
    Ok(axum::Json(Profile {
        // Before the fields that move out of `user`.
        roles: user.authorities(),
        id: user.id,
        username: user.username,
        email: user.email,
        email_verified: user.email_verified_at.is_some(),
        created_at: user
            .created_at
            .format(&Rfc3339)
            .map_err(anyhow::Error::from)?,
    }))
}

/// `PUT /api/user/password`: needs the current password; ends every other session.
#[utoipa::path(put, path = paths::PASSWORD, tag = "user", security(("bearer" = []), ("accessToken" = [])),
    request_body = ChangePasswordRequest,
    responses(
        (status = 200, description = "Changed; every other session is over.", body = MessageBody),
        (status = 400, description = "The current password is wrong, or the new one is not acceptable.", body = ErrorBody),
        (status = 401, description = "No valid token; or a second factor was not proven recently (`reason: step_up_required`): prove one at `/api/auth/mfa/step-up`, then retry.", body = ErrorBody), (status = 403, description = "The token is good only for enrolling a second factor (`reason: mfa_enrollment_required`).", body = ErrorBody),
    ))]
pub async fn change_password(
    State(state): State<AppState>,
    RecentlyVerified(principal): RecentlyVerified,
    client: ClientInfo,
    Json(body): Json<ChangePasswordRequest>,
) -> Result<axum::Json<MessageBody>> {
    state.limits.check(Limit::Signin, client.ip)?;
    let new = Password::parse(&body.new_password)?;
    accounts::change_password(
        &state,
        principal.user_id,
        &principal.session_id,
        &body.current_password,
        &new,
        &client.client(),
    )
    .await?;
    Ok(axum::Json(MessageBody {
        message: "Password changed. Your other sessions were ended.".to_owned(),
    }))
}
