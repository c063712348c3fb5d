//! What admins do to other users. Every change is audited with the admin as actor.

use crate::{
    app::AppState,
    clock::{self, unix_now},
    domain::sessions::{Client, end_sessions},
    error::Result,
    storage::{AdminChange, AuditEvent, AuditKind, SessionFilter},
    tokens::Principal,
};

/// Changes a user's roles, or disables, enables or deletes them. Their access tokens stop
/// working at once (a role change makes clients refresh and pick up the new roles); disabling
/// also ends their sessions. The last enabled admin cannot be demoted, disabled or deleted.
pub async fn change_user(
    state: &AppState,
    admin: &Principal,
    user_id: i64,
    change: AdminChange,
    client: &Client,
) -> Result<()> {
    let now = unix_now();
    let revocation = state
        .storage
        .apply_admin_change(
            user_id,
            &change,
            clock::after(now, state.tokens.access_token_ttl()),
        )
        .await?;
    state.revocations.apply(&revocation);
    if change == AdminChange::Disable {
        end_sessions(state, SessionFilter::AllOf { user_id }, "user disabled").await?;
    }
    let (kind, detail) = match &change {
        AdminChange::SetRoles(roles) => (
            AuditKind::RolesChanged,
            Some(
                roles
                    .iter()
                    .map(|r| r.as_str())
                    .collect::<Vec<_>>()
                    .join(","),
            ),
        ),
        AdminChange::Disable => (AuditKind::UserDisabled, None),
        AdminChange::Enable => (AuditKind::UserEnabled, None),
        AdminChange::Delete => (AuditKind::UserDeleted, None),
    };
    state
        .audit(AuditEvent {
            actor_id: Some(admin.user_id),
            ip: client.ip.clone(),
            detail,
            ..AuditEvent::new(kind, Some(user_id))
        })
        .await;
    Ok(())
}

/// Ends every session of a user.
pub async fn end_user_sessions(
    state: &AppState,
    admin: &Principal,
    user_id: i64,
    client: &Client,
) -> Result<usize> {
    let ended = end_sessions(state, SessionFilter::AllOf { user_id }, "ended by admin").await?;
    state
        .audit(AuditEvent {
            actor_id: Some(admin.user_id),
            ip: client.ip.clone(),
            detail: Some(format!("{} sessions", ended.len())),
            ..AuditEvent::new(AuditKind::SessionRevoked, Some(user_id))
        })
        .await;
    Ok(ended.len())
}
