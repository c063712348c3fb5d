//! Sign-up and sign-in.

use std::collections::BTreeSet;

use api::{
    Email, Password, Role, Username,
    wire::{MessageBody, SigninRequest, SigninResponse, SignupRequest, messages},
};
use axum::{Json as JsonResponse, extract::State, http::header, response::IntoResponse};

use super::extract::{AuthUser, Json};
use crate::{
    app::AppState,
    domain::accounts::{self, SignUp},
    error::Result,
};

pub async fn signup(
    State(state): State<AppState>,
    caller: Option<AuthUser>,
    Json(body): Json<SignupRequest>,
) -> Result<JsonResponse<MessageBody>> {
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
    accounts::sign_up(&state, request, caller.as_ref().map(|c| &*c.0)).await?;
    Ok(JsonResponse(MessageBody {
        message: messages::USER_REGISTERED.to_owned(),
    }))
}

pub async fn signin(
    State(state): State<AppState>,
    Json(body): Json<SigninRequest>,
) -> Result<impl IntoResponse> {
    let signed_in = accounts::sign_in(&state, &body.username, &body.password).await?;
    let user = signed_in.user;
    Ok((
        [(header::CACHE_CONTROL, "no-store")],
        JsonResponse(SigninResponse {
            id: user.id,
            username: user.username,
            email: user.email,
            roles: user
                .roles
                .iter()
                .map(|r| r.authority().to_owned())
                .collect(),
            access_token: signed_in.access.token,
            token_type: "Bearer".to_owned(),
            expires_in: signed_in.access.expires_in.as_secs(),
        }),
    ))
}
