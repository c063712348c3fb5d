//! What admins do to other users, through the API or the command line. Every change is
//! audited with who made it, and takes effect on live access tokens at once.

use api::Role;

use crate::{
    audit::{AuditEvent, AuditKind},
    clock::unix_now,
    domain::sessions::{Client, end_sessions, own_ttl_secs},
    error::{Error, Result},
    state::AppState,
    storage::{AdminChange, SessionFilter, ThrottleKey},
    tokens::Principal,
};

/// A change an admin (or the CLI) makes to a user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UserChange {
    /// Replaces the user's roles.
    SetRoles(Vec<Role>),
    Disable,
    Enable,
    Delete,
}

impl UserChange {
    fn to_storage(&self) -> AdminChange {
        match self {
            UserChange::SetRoles(roles) => AdminChange::SetRoles(roles.clone()),
            UserChange::Disable => AdminChange::Disable,
            UserChange::Enable => AdminChange::Enable,
            UserChange::Delete => AdminChange::Delete,
        }
    }
}

/// Who makes an administrative change.
#[derive(Debug, Clone, Copy)]
pub enum Actor<'a> {
    /// An admin, through the API.
    Admin(&'a Principal),
    /// An operator, through `tollgate user …`.
    Cli,
}

impl Actor<'_> {
    fn audit(self, mut event: AuditEvent, client: &Client) -> AuditEvent {
        match self {
            Actor::Admin(admin) => {
                event.actor_id = Some(admin.user_id);
                event.ip = client.ip.clone();
            }
            Actor::Cli => {
                event.detail = Some(match event.detail {
                    Some(detail) => format!("{detail} (cli)"),
                    None => "cli".to_owned(),
                });
            }
        }
        event
    }
}

/// Changes a user's roles, or disables, enables or deletes them. Their access tokens stop
/// working at once, on every node and in a server running on the same SQLite file (a role
/// change makes clients refresh and pick up the new roles); disabling also ends their
/// sessions. The last enabled admin cannot be demoted, disabled or deleted.
pub async fn change_user(
    state: &AppState,
    actor: Actor<'_>,
    user_id: i64,
    change: UserChange,
    client: &Client,
) -> Result<()> {
    let username = match change {
        UserChange::Enable => state.storage.user_by_id(user_id).await?.map(|u| u.username),
        _ => None,
    };
    let notice = state
        .storage
        .apply_admin_change(
            user_id,
            &change.to_storage(),
            unix_now(),
            own_ttl_secs(state),
        )
        .await?;
    state.revocations.apply(&notice);
    match &change {
        UserChange::Disable => {
            end_sessions(state, SessionFilter::AllOf { user_id }, "user disabled").await?;
        }
        // A fresh start: no back-off left over from before.
        UserChange::Enable => {
            if let Some(username) = username {
                state
                    .storage
                    .signin_succeeded(&ThrottleKey::for_name(&username))
                    .await?;
            }
        }
        UserChange::SetRoles(_) | UserChange::Delete => {}
    }
    let (kind, detail) = match &change {
        UserChange::SetRoles(roles) => (
            AuditKind::RolesChanged,
            Some(
                roles
                    .iter()
                    .map(|r| r.as_str())
                    .collect::<Vec<_>>()
                    .join(","),
            ),
        ),
        UserChange::Disable => (AuditKind::UserDisabled, None),
        UserChange::Enable => (AuditKind::UserEnabled, None),
        UserChange::Delete => (AuditKind::UserDeleted, None),
    };
    state
        .audit(actor.audit(
            AuditEvent {
                detail,
                ..AuditEvent::new(kind, Some(user_id))
            },
            client,
        ))
        .await;
    Ok(())
}

/// Ends every session of a user (404 if there is no such user).
pub async fn end_user_sessions(
    state: &AppState,
    actor: Actor<'_>,
    user_id: i64,
    client: &Client,
) -> Result<usize> {
    if state.storage.user_by_id(user_id).await?.is_none() {
        return Err(Error::NotFound("User not found."));
    }
    let ended = end_sessions(state, SessionFilter::AllOf { user_id }, "ended by admin").await?;
    state
        .audit(actor.audit(
            AuditEvent {
                detail: Some(format!("{} sessions", ended.len())),
                ..AuditEvent::new(AuditKind::SessionRevoked, Some(user_id))
            },
            client,
        ))
        .await;
    Ok(ended.len())
}
