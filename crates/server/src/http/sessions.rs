//! The caller's own sessions.

use api::wire::{MessageBody, SessionInfo};
use axum::{Json, extract::State};

use super::extract::{AuthUser, ClientInfo, Path};
use crate::{
    clock::{rfc3339, unix_now},
    domain::sessions::end_sessions,
    error::{Error, Result},
    state::AppState,
    storage::{AuditEvent, AuditKind, SessionFilter},
};

pub async fn list(
    State(state): State<AppState>,
    AuthUser(principal): AuthUser,
) -> Result<Json<Vec<SessionInfo>>> {
    let sessions = state
        .storage
        .active_sessions(principal.user_id, unix_now())
        .await?;
    Ok(Json(
        sessions
            .into_iter()
            .map(|s| SessionInfo {
                current: s.id == principal.session_id,
                id: s.id,
                created_at: rfc3339(s.created_at),
                last_used_at: rfc3339(s.last_used_at),
                expires_at: rfc3339(s.idle_expires_at.min(s.absolute_expires_at)),
                user_agent: s.user_agent,
                ip: s.ip,
            })
            .collect(),
    ))
}

/// `DELETE /api/auth/sessions/{id}`: ends one of the caller's sessions (the current one too).
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
    let ended = end_sessions(
        &state,
        SessionFilter::One {
            id: &id,
            user_id: principal.user_id,
        },
        "ended by user",
    )
    .await?;
    if ended.is_empty() {
        return Err(Error::NotFound("Session not found."));
    }
    audit_ended(&state, principal.user_id, &client, ended.len()).await;
    Ok(Json(MessageBody {
        message: "Session ended.".to_owned(),
    }))
}

/// `DELETE /api/auth/sessions`: ends every session of the caller but the current one.
pub async fn end_others(
    State(state): State<AppState>,
    AuthUser(principal): AuthUser,
    client: ClientInfo,
) -> Result<Json<MessageBody>> {
    let ended = end_sessions(
        &state,
        SessionFilter::AllOfExcept {
            user_id: principal.user_id,
            keep: &principal.session_id,
        },
        "ended by user",
    )
    .await?;
    audit_ended(&state, principal.user_id, &client, ended.len()).await;
    Ok(Json(MessageBody {
        message: format!("{} other session(s) ended.", ended.len()),
    }))
}

async fn audit_ended(state: &AppState, user_id: i64, client: &ClientInfo, count: usize) {
    if count > 0 {
        state
            .audit(AuditEvent {
                ip: Some(client.ip.to_string()),
                detail: Some(format!("{count} sessions")),
                ..AuditEvent::new(AuditKind::SessionRevoked, Some(user_id))
            })
            .await;
    }
}
