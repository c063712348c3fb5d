//! The signed-in user's own resources.

use api::wire::Profile;
use axum::{Json, extract::State};
use time::format_description::well_known::Rfc3339;

use super::extract::AuthUser;
use crate::{
    app::AppState,
    error::{Error, Result},
};

pub async fn me(
    State(state): State<AppState>,
    AuthUser(principal): AuthUser,
) -> Result<Json<Profile>> {
    let user = state
        .storage
        .user_by_id(principal.user_id)
        .await?
        .ok_or(Error::NotFound("User not found."))?;
    Ok(Json(Profile {
        id: user.id,
        username: user.username,
        email: user.email,
        roles: user
            .roles
            .iter()
            .map(|r| r.authority().to_owned())
            .collect(),
        created_at: user
            .created_at
            .format(&Rfc3339)
            .map_err(anyhow::Error::from)?,
    }))
}
