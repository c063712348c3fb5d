//! A forgotten password: a mailed code and link, then a new password that ends every session.
//! Also an account's first password, when an admin created it without one.

use std::time::Duration;

use api::{Email, Password, wire::paths};

use super::{Kind, Sent, link_hash, require_mail, send_token, token_for_code};
use crate::{
    audit::{AuditEvent, AuditKind},
    clock::unix_now,
    domain::sessions::{Client, own_ttl_secs},
    error::{Error, Result},
    mail::Template,
    state::AppState,
    storage::{PasswordReplacement, Purpose, ThrottleKey, UserRecord},
};

pub const KIND: Kind = Kind {
    purpose: Purpose::Reset,
    template: Template::ResetPassword,
    page: paths::PAGE_RESET_PASSWORD,
    lifetime: Duration::from_secs(30 * 60),
};

/// An admin's account, or an admin's reset: the user may not read mail at once.
pub const SET_PASSWORD_KIND: Kind = Kind {
    purpose: Purpose::Reset,
    template: Template::SetPassword,
    page: paths::PAGE_RESET_PASSWORD,
    lifetime: Duration::from_secs(3 * 86_400),
};

const FEATURE: &str = "Password reset by email is not available: this server has no mail server \
     configured. Ask an administrator to reset your password.";

/// `POST /api/auth/password/forgot`: the same answer, in the same time, for every address;
/// the look-up and the mail happen after the answer.
pub async fn forgot(state: &AppState, email: Email, client: &Client) -> Result<()> {
    require_mail(state, FEATURE)?;
    let state = state.clone();
    let client = client.clone();
    tokio::spawn(async move {
        let result = async {
            let Some(user) = state.storage.user_by_email(&email).await? else {
                return Ok(());
            };
            if user.disabled {
                return Ok(());
            }
            if send_token(&state, &user, &user.email, KIND, &[]).await? == Sent::Queued {
                state
                    .audit(AuditEvent {
                        ip: client.ip.clone(),
                        ..AuditEvent::new(AuditKind::PasswordResetRequested, Some(user.id))
                    })
                    .await;
            }
            Ok::<_, Error>(())
        }
        .await;
        if let Err(e) = result {
            tracing::warn!(error = %e, "could not send a password reset mail");
        }
    });
    Ok(())
}

/// What proves the right to set a new password.
#[derive(Debug)]
pub enum Proof<'a> {
    /// The token of the mailed link.
    Link(&'a str),
    /// The mailed code, with the address it went to.
    Code { email: &'a Email, code: &'a str },
}

/// `POST /api/auth/password/reset`: sets the password, ends every session and access token of
/// the user, clears the sign-in back-off, and counts the address as verified.
pub async fn reset(
    state: &AppState,
    proof: Proof<'_>,
    new_password: &Password,
    client: &Client,
) -> Result<()> {
    let (user_id, token) = match proof {
        Proof::Link(raw) => {
            let hash = link_hash(raw)?;
            let token = state
                .storage
                .email_token_by_link(&hash)
                .await?
                .filter(|t| t.purpose == Purpose::Reset && t.is_live(unix_now()))
                .ok_or(Error::InvalidCode)?;
            (token.user_id, hash)
        }
        Proof::Code { email, code } => {
            let user = state
                .storage
                .user_by_email(email)
                .await?
                .ok_or(Error::InvalidCode)?;
            let token = token_for_code(state, user.id, Purpose::Reset, code).await?;
            (user.id, token.link_hash)
        }
    };
    let user = state
        .storage
        .user_by_id(user_id)
        .await?
        .ok_or(Error::InvalidCode)?;
    if user.disabled {
        return Err(Error::AccountDisabled);
    }
    let hash = state.passwords.hash(new_password).await?;
    set_password(state, &user, &hash, Some(&token)).await?;
    state
        .audit(AuditEvent {
            ip: client.ip.clone(),
            ..AuditEvent::new(AuditKind::PasswordReset, Some(user.id))
        })
        .await;
    Ok(())
}

/// Stores a new password hash (with the reset token that allows it, used up here, or none for
/// an admin) and ends everything the old one opened, here and on every node.
pub async fn set_password(
    state: &AppState,
    user: &UserRecord,
    password_hash: &str,
    token: Option<&[u8]>,
) -> Result<()> {
    let notices = state
        .storage
        .replace_password_with(&PasswordReplacement {
            user_id: user.id,
            password_hash,
            token,
            now: unix_now(),
            own_ttl_secs: own_ttl_secs(state),
        })
        .await?
        .ok_or(Error::InvalidCode)?;
    for notice in &notices {
        state.revocations.apply(notice);
    }
    clear_backoff(state, user).await
}

/// Forgets the failed sign-ins counted against the user's names.
pub async fn clear_backoff(state: &AppState, user: &UserRecord) -> Result<()> {
    state
        .storage
        .signin_succeeded(&ThrottleKey::for_name(&user.username))
        .await?;
    state
        .storage
        .signin_succeeded(&ThrottleKey::for_name(&user.email))
        .await
}

/// Mails the user a link (and code) to choose a password: an admin's reset, or the first
/// password of an account an admin made.
pub async fn send_set_password(state: &AppState, user: &UserRecord, first: bool) -> Result<Sent> {
    require_mail(state, FEATURE)?;
    let kind = if first { SET_PASSWORD_KIND } else { KIND };
    send_token(state, user, &user.email, kind, &[]).await
}

/// A link to choose a new password, for an admin to pass on by other means (the CLI, when
/// there is no mail). Voids any earlier reset code of the user.
pub async fn link_for(state: &AppState, user: &UserRecord) -> Result<String> {
    let now = unix_now();
    let drawn = state.codes.draw(user.id, Purpose::Reset.as_str())?;
    // An operator's request: no cooldown.
    state
        .storage
        .put_email_token(
            &crate::storage::NewEmailToken {
                user_id: user.id,
                purpose: Purpose::Reset,
                email: &user.email,
                code_hash: Some(&drawn.code_hash),
                link_hash: &drawn.link_hash,
                now,
                expires_at: crate::clock::after(now, SET_PASSWORD_KIND.lifetime),
            },
            0,
            i64::MAX,
        )
        .await?;
    Ok(super::page_link(
        state,
        paths::PAGE_RESET_PASSWORD,
        &drawn.link,
    ))
}
