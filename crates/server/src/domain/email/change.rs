//! Moving to a new address: asked for with the current password, done only when the new
//! address confirms, and told to the old one with a way to undo it.

use std::time::Duration;

use api::{Email, wire::paths};

use super::{Kind, link_hash, require_mail, send_token, token_for_code};
use crate::{
    audit::{AuditEvent, AuditKind},
    clock::{self, unix_now},
    domain::{accounts, sessions::Client},
    error::{Error, Result},
    mail::Template,
    passwords::NO_PASSWORD,
    state::AppState,
    storage::{Purpose, ReportToken},
};

pub const KIND: Kind = Kind {
    purpose: Purpose::Change,
    template: Template::ConfirmNewEmail,
    page: paths::PAGE_CONFIRM_EMAIL,
    lifetime: Duration::from_secs(3600),
};

/// How long the old address can undo a change.
pub const REPORT_LIFETIME: Duration = Duration::from_secs(7 * 86_400);

const FEATURE: &str = "Changing the email address is not available: this server has no mail \
     server configured. Ask an administrator.";

/// `POST /api/user/email`: checks the current password, then mails a code and link to the new
/// address. An address another account uses gets no mail, and the answer does not say so.
pub async fn request(
    state: &AppState,
    user_id: i64,
    new_email: &Email,
    current_password: &str,
    client: &Client,
) -> Result<()> {
    require_mail(state, FEATURE)?;
    let user = state
        .storage
        .user_by_id(user_id)
        .await?
        .ok_or(Error::NotFound("User not found."))?;
    accounts::confirm_password(state, &user, current_password, client).await?;
    if new_email.as_str() == user.email {
        return Err(Error::SameEmail);
    }
    let now = unix_now();
    // While the old address can still undo the last change, the address stays put: a second
    // change would take the undo link away from it.
    if let Some(report) = state.storage.email_token(user.id, Purpose::Report).await?
        && report.is_live(now)
    {
        return Err(Error::EmailChangeLocked);
    }
    // Asked again too soon: said plainly, whatever the new address (the answer must not
    // depend on whether it is taken).
    if let Some(pending) = state.storage.email_token(user.id, Purpose::Change).await?
        && pending.created_at
            > now.saturating_sub_unsigned(state.settings.mail.send_cooldown.as_secs())
    {
        return Err(Error::MailThrottled);
    }
    // The rest happens after the answer, which is the same whether the address is taken.
    let state = state.clone();
    let client = client.clone();
    let new_email = new_email.clone();
    tokio::spawn(async move {
        let result = async {
            if state.storage.email_taken(&new_email).await? {
                // Nothing to confirm; a pending change to another address is voided all the same.
                return state
                    .storage
                    .void_email_token(user.id, Purpose::Change)
                    .await;
            }
            let new = new_email.as_str();
            send_token(&state, &user, new, KIND, &[]).await?;
            state
                .audit(AuditEvent {
                    ip: client.ip.clone(),
                    detail: Some(format!("to {new}")),
                    ..AuditEvent::new(AuditKind::EmailChangeRequested, Some(user.id))
                })
                .await;
            Ok::<_, Error>(())
        }
        .await;
        if let Err(e) = result {
            tracing::warn!(error = %e, "could not send an address confirmation");
        }
    });
    Ok(())
}

/// Confirms the new address with the link's token (no sign-in needed) or, signed in, the
/// code; then tells the old address, with a link to undo the change.
pub async fn confirm(
    state: &AppState,
    caller: Option<i64>,
    token: Option<&str>,
    code: Option<&str>,
    client: &Client,
) -> Result<()> {
    let link = match (token, code, caller) {
        (Some(token), _, _) => link_hash(token)?,
        (None, Some(code), Some(user_id)) => {
            token_for_code(state, user_id, Purpose::Change, code)
                .await?
                .link_hash
        }
        (None, Some(_), None) => return Err(Error::NoToken),
        (None, None, _) => return Err(Error::MissingProof),
    };
    let now = unix_now();
    // The report link for the old address is drawn first, so it lands with the change.
    let report = state.codes.draw(0, Purpose::Report.as_str())?;
    let (user_id, old_email) = state
        .storage
        .change_email_with(
            &link,
            &ReportToken {
                link_hash: &report.link_hash,
                now,
                expires_at: clock::after(now, REPORT_LIFETIME),
            },
        )
        .await?
        .ok_or(Error::InvalidCode)?;
    let user = state
        .storage
        .user_by_id(user_id)
        .await?
        .ok_or(Error::InvalidCode)?;
    state
        .audit(AuditEvent {
            ip: client.ip.clone(),
            detail: Some(format!("{old_email} -> {}", user.email)),
            ..AuditEvent::new(AuditKind::EmailChanged, Some(user.id))
        })
        .await;
    let link = super::page_link(state, paths::PAGE_REPORT_EMAIL, &report.link);
    super::queue(
        state,
        &user,
        &old_email,
        Template::EmailChanged,
        REPORT_LIFETIME,
        &[("new_email", &user.email), ("link", &link)],
    )
    .await;
    Ok(())
}

/// `POST /api/auth/email/report`: the old address says the change was not theirs. It comes
/// back, every session and access token ends, and the password stops working (whoever made
/// the change knew it): the owner chooses a new one by mail.
pub async fn report(state: &AppState, token: &str, client: &Client) -> Result<()> {
    let link = link_hash(token)?;
    let (user_id, notices) = state
        .storage
        .undo_email_change(
            &link,
            NO_PASSWORD,
            unix_now(),
            crate::domain::sessions::own_ttl_secs(state),
        )
        .await?
        .ok_or(Error::InvalidCode)?;
    for notice in &notices {
        state.revocations.apply(notice);
    }
    if let Some(user) = state.storage.user_by_id(user_id).await? {
        super::reset::clear_backoff(state, &user).await?;
    }
    state
        .audit(AuditEvent {
            ip: client.ip.clone(),
            ..AuditEvent::new(AuditKind::EmailChangeReported, Some(user_id))
        })
        .await;
    Ok(())
}
