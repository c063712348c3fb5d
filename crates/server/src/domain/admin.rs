//! What admins do to other users, through the API or the command line. Every change is
//! audited with who made it, and takes effect on live access tokens at once.

use api::{Email, Password, Role, Username};

use crate::{
    audit::{AuditEvent, AuditKind},
    clock::unix_now,
    domain::{
        email::{Sent, require_mail, reset, verify},
        sessions::{Client, end_sessions, own_ttl_secs},
    },
    error::{Error, Result},
    passwords::NO_PASSWORD,
    state::AppState,
    storage::{AdminChange, NewUser, SessionFilter, ThrottleKey},
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
    pub(crate) fn audit(self, mut event: AuditEvent, client: &Client) -> AuditEvent {
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
    target(state, user_id).await?;
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

/// The user an admin acts on; 404 if there is none.
pub(crate) async fn target(state: &AppState, user_id: i64) -> Result<crate::storage::UserRecord> {
    state
        .storage
        .user_by_id(user_id)
        .await?
        .ok_or(Error::NotFound("User not found."))
}

/// An account an admin makes.
#[derive(Debug)]
pub struct NewAccount {
    pub username: Username,
    pub email: Email,
    pub roles: Vec<Role>,
    /// Without one, the account has no password until its owner chooses one.
    pub password: Option<Password>,
    /// Mail the owner a link to choose their password.
    pub send_set_password_mail: bool,
    /// The admin vouches for the address.
    pub email_verified: bool,
}

/// Creates a user with any roles. Returns their id and whether a mail went out.
pub async fn create_user(
    state: &AppState,
    actor: Actor<'_>,
    account: NewAccount,
    client: &Client,
) -> Result<(i64, Option<Sent>)> {
    if account.send_set_password_mail {
        require_mail(
            state,
            "Mailing a link to choose a password needs a mail server (--smtp-url).",
        )?;
    }
    if state.storage.username_taken(&account.username).await? {
        return Err(Error::UsernameTaken);
    }
    if state.storage.email_taken(&account.email).await? {
        return Err(Error::EmailTaken);
    }
    let password_hash = match &account.password {
        Some(password) => state.passwords.hash(password).await?,
        None => NO_PASSWORD.to_owned(),
    };
    let mut roles = account.roles;
    if roles.is_empty() {
        roles.push(Role::User);
    }
    roles.sort();
    roles.dedup();
    let id = state
        .storage
        .insert_user(&NewUser {
            username: &account.username,
            email: &account.email,
            password_hash: &password_hash,
            roles: &roles,
            email_verified_at: account.email_verified.then(unix_now),
        })
        .await?;
    state
        .audit(
            actor.audit(
                AuditEvent {
                    detail: Some(
                        roles
                            .iter()
                            .map(|r| r.as_str())
                            .collect::<Vec<_>>()
                            .join(","),
                    ),
                    ..AuditEvent::new(AuditKind::Signup, Some(id))
                },
                client,
            ),
        )
        .await;
    let user = target(state, id).await?;
    let sent = if account.send_set_password_mail {
        Some(reset::send_set_password(state, &user, true).await?)
    } else {
        if !account.email_verified {
            verify::after_signup(state, id).await;
        }
        None
    };
    Ok((id, sent))
}

/// Sets a user's password: every session and access token of theirs ends.
pub async fn set_password(
    state: &AppState,
    actor: Actor<'_>,
    user_id: i64,
    password: &Password,
    client: &Client,
) -> Result<()> {
    let user = target(state, user_id).await?;
    let hash = state.passwords.hash(password).await?;
    reset::set_password(state, &user, &hash, None).await?;
    state
        .audit(actor.audit(
            AuditEvent::new(AuditKind::PasswordSetByAdmin, Some(user_id)),
            client,
        ))
        .await;
    Ok(())
}

/// Mails a user a link to choose a new password (their first, if they have none).
pub async fn send_reset(
    state: &AppState,
    actor: Actor<'_>,
    user_id: i64,
    client: &Client,
) -> Result<()> {
    let user = target(state, user_id).await?;
    // A password voided by a report is not a new account.
    let first = user.password_hash == NO_PASSWORD && user.last_signin_at.is_none();
    if reset::send_set_password(state, &user, first).await? == Sent::Throttled {
        return Err(Error::MailThrottled);
    }
    state
        .audit(actor.audit(
            AuditEvent {
                detail: Some("by an admin".to_owned()),
                ..AuditEvent::new(AuditKind::PasswordResetRequested, Some(user_id))
            },
            client,
        ))
        .await;
    Ok(())
}

/// Marks a user's address as verified.
pub async fn mark_email_verified(
    state: &AppState,
    actor: Actor<'_>,
    user_id: i64,
    client: &Client,
) -> Result<()> {
    if !state
        .storage
        .mark_email_verified(user_id, unix_now())
        .await?
    {
        return Err(Error::NotFound("User not found."));
    }
    state
        .audit(actor.audit(
            AuditEvent::new(AuditKind::EmailVerified, Some(user_id)),
            client,
        ))
        .await;
    Ok(())
}
