//! The caller's own sessions.

use api::wire::{MessageBody, SessionInfo, paths};
use axum::{Json, extract::State};

use super::extract::{AuthUser, ClientInfo, Path};
use crate::{
    clock::{rfc3339, unix_now},
    domain::sessions::{end_other_sessions, end_own_session},
    error::{Error, Result},
    openapi::ErrorBody,
    state::AppState,
};

/// `GET /api/auth/sessions`: the caller's live sessions.
#[utoipa::path(get, path = paths::SESSIONS, tag = "auth", security(("bearer" = []), ("accessToken" = [])),
    responses(
        (status = 200, description = "The caller's live sessions, `current` marking this one.", body = Vec<SessionInfo>),
        (status = 401, description = "No token, or it is invalid, expired or revoked.", body = ErrorBody), (status = 403, description = "The token is good only for enrolling a second factor (`reason: mfa_enrollment_required`).", body = ErrorBody),
    ))]
pub async fn list(
    State(state): State<AppState>,
    AuthUser(principal): AuthUser,
) -> Result<Json<Vec<SessionInfo>>> {
    Ok(Json(
        sessions_of(&state, principal.user_id, Some(&principal.session_id)).await?,
    ))
}

/// A user's live sessions, `current` marking the one named.
pub async fn sessions_of(
    state: &AppState,
    user_id: i64,
    current: Option<&str>,
) -> Result<Vec<SessionInfo>> {
    let sessions = state.storage.active_sessions(user_id, unix_now()).await?;
    Ok(sessions
        .into_iter()
        .map(|s| SessionInfo {
            current: current == Some(s.id.as_str()),
            id: s.id,
            created_at: rfc3339(s.created_at),
            last_used_at: rfc3339(s.last_used_at),
            expires_at: rfc3339(s.idle_expires_at.min(s.absolute_expires_at)),
            user_agent: s.user_agent,
            ip: s.ip,
        })
        .collect())
}

/// `DELETE /api/auth/sessions/{id}`: ends one of the caller's sessions (the current one too).
#[utoipa::path(delete, path = paths::SESSION, tag = "auth", security(("bearer" = []), ("accessToken" = [])),
    params(("id" = String, Path, description = "The session's id, from the list.")),
    responses(
        (status = 200, description = "The session is over: its tokens stop working at once.", body = MessageBody),
        (status = 401, description = "No token, or it is invalid, expired or revoked.", body = ErrorBody), (status = 403, description = "The token is good only for enrolling a second factor (`reason: mfa_enrollment_required`).", body = ErrorBody),
        (status = 404, description = "No such session of the caller.", body = ErrorBody),
    ))]
pub async fn end_one(
    State(state): State<AppState>,
    AuthUser(principal): AuthUser,
    client: ClientInfo,
    Path(id): Path<String>,
) -> Result<Json<MessageBody>> {
    let well_formed = id.len() == 22
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if !well_formed {
        return Err(Error::NotFound("Session not found."));
    }
    if !end_own_session(&state, &principal, &id, &client.client()).await? {
        return Err(Error::NotFound("Session not found."));
    }
    Ok(Json(MessageBody {
        message: "Session ended.".to_owned(),
    }))
}

/// `DELETE /api/auth/sessions`: ends every session of the caller but the current one.
#[utoipa::path(delete, path = paths::SESSIONS, tag = "auth", security(("bearer" = []), ("accessToken" = [])),
    responses(
        (status = 200, description = "Every other session is over.", body = MessageBody),
        (status = 401, description = "No token, or it is invalid, expired or revoked.", body = ErrorBody), (status = 403, description = "The token is good only for enrolling a second factor (`reason: mfa_enrollment_required`).", body = ErrorBody),
    ))]
pub async fn end_others(
    State(state): State<AppState>,
    AuthUser(principal): AuthUser,
    client: ClientInfo,
) -> Result<Json<MessageBody>> {
    let ended = end_other_sessions(&state, &principal, &client.client()).await?;
    Ok(Json(MessageBody {
        message: format!("{ended} other session(s) ended."),
    }))
}
