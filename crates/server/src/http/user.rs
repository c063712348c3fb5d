//! The signed-in user's own resources.

use api::{
    Password,
    wire::{ChangePasswordRequest, MessageBody, Profile},
};
use axum::extract::State;
use time::format_description::well_known::Rfc3339;

use super::extract::{ClientInfo, EnrollingUser, Json, RecentlyVerified};
use crate::{
    domain::accounts,
    error::{Error, Result},
    limits::Limit,
    state::AppState,
};

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
