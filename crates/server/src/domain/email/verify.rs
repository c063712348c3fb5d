//! Proving the address: a mail at sign-up (or on demand) with a code and a link.

use std::time::Duration;

use api::{Email, wire::paths};

use super::{Kind, Sent, link_hash, require_mail, send_token, token_for_code};
use crate::{
    audit::{AuditEvent, AuditKind},
    clock::unix_now,
    config::EmailVerification,
    domain::sessions::Client,
    error::{Error, Result},
    mail::Template,
    state::AppState,
    storage::{Purpose, UserRecord},
};

pub const KIND: Kind = Kind {
    purpose: Purpose::Verify,
    template: Template::VerifyEmail,
    page: paths::PAGE_VERIFY_EMAIL,
    lifetime: Duration::from_secs(24 * 3600),
};

const FEATURE: &str =
    "Email verification is not available: this server has no mail server configured.";

/// After sign-up (or a sign-in refused for want of it): mails the user a verification code,
/// if the policy asks for one and mail is configured. A failure is logged; the caller goes on.
pub async fn after_signup(state: &AppState, user_id: i64) {
    if state.settings.email_verification == EmailVerification::Off || !state.mailer.is_configured()
    {
        return;
    }
    let sent = match state.storage.user_by_id(user_id).await {
        Ok(Some(user)) => send_token(state, &user, &user.email, KIND, &[])
            .await
            .map(|_| ()),
        Ok(None) => Ok(()),
        Err(e) => Err(e),
    };
    if let Err(e) = sent {
        tracing::warn!(user_id, error = %e, "could not send the verification mail");
    }
}

/// `POST /api/auth/verify-email/resend`: for the signed-in caller, or for an address. The
/// answer is the same whether the address has an account, is verified already, or was sent
/// a mail a moment ago: the work happens after the answer.
pub async fn resend(state: &AppState, caller: Option<i64>, email: Option<Email>) -> Result<()> {
    require_mail(state, FEATURE)?;
    if state.settings.email_verification == EmailVerification::Off {
        return Err(Error::FeatureOff(
            "Email verification is turned off on this server.",
        ));
    }
    let state = state.clone();
    tokio::spawn(async move {
        let user = match (caller, email) {
            (Some(id), _) => state.storage.user_by_id(id).await,
            (None, Some(email)) => state.storage.user_by_email(&email).await,
            (None, None) => Ok(None),
        };
        let result = match user {
            Ok(Some(user)) if needs_verifying(&user) => {
                send_token(&state, &user, &user.email, KIND, &[]).await
            }
            Ok(_) => Ok(Sent::Throttled),
            Err(e) => Err(e),
        };
        if let Err(e) = result {
            tracing::warn!(error = %e, "could not send a verification mail");
        }
    });
    Ok(())
}

fn needs_verifying(user: &UserRecord) -> bool {
    user.email_verified_at.is_none() && !user.disabled
}

/// What proves an address: the link's token, or the code with the signed-in caller or the
/// address it went to (sign-in may be refused until the address is verified).
#[derive(Debug)]
pub enum Proof<'a> {
    Link(&'a str),
    CodeFor { user_id: i64, code: &'a str },
    CodeTo { email: &'a Email, code: &'a str },
}

/// Verifies the address a proof names.
pub async fn confirm(state: &AppState, proof: Proof<'_>, client: &Client) -> Result<()> {
    let link = match proof {
        Proof::Link(token) => link_hash(token)?,
        Proof::CodeFor { user_id, code } => {
            token_for_code(state, user_id, Purpose::Verify, code)
                .await?
                .link_hash
        }
        Proof::CodeTo { email, code } => {
            let user = state
                .storage
                .user_by_email(email)
                .await?
                .ok_or(Error::InvalidCode)?;
            token_for_code(state, user.id, Purpose::Verify, code)
                .await?
                .link_hash
        }
    };
    let user_id = state
        .storage
        .verify_email_with(&link, unix_now())
        .await?
        .ok_or(Error::InvalidCode)?;
    state
        .audit(AuditEvent {
            ip: client.ip.clone(),
            ..AuditEvent::new(AuditKind::EmailVerified, Some(user_id))
        })
        .await;
    Ok(())
}
