//! Email as part of an account: proving the address, recovering a forgotten password, moving
//! to a new address. Every flow mails a one-time code and link (see `codes`), single-use,
//! short-lived, voided by a newer one, limited in attempts and in sends per address; and every
//! answer that could tell whether an address has an account is the same either way.

pub mod change;
pub mod reset;
pub mod verify;

use std::time::Duration;

use crate::{
    clock::unix_now,
    codes,
    error::{Error, Result},
    mail::{Outgoing, Template, render},
    state::AppState,
    storage::{EmailToken, NewEmailToken, Purpose, UserRecord},
};

/// Wrong codes a token survives; the last one voids it.
pub const MAX_CODE_ATTEMPTS: i64 = 5;
/// Mails of one purpose to one user per hour at most.
pub const MAX_SENDS_PER_HOUR: i64 = 5;

/// What a mailed token is, where its link leads and how long it lives.
#[derive(Debug, Clone, Copy)]
pub struct Kind {
    pub purpose: Purpose,
    pub template: Template,
    /// The UI page the link opens.
    pub page: &'static str,
    pub lifetime: Duration,
}

/// Whether a mail went out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sent {
    Queued,
    /// One went less than a minute ago, or the hour's allowance is used up.
    Throttled,
}

/// Refuses with a clear message when no mail server is configured.
pub fn require_mail(state: &AppState, feature: &'static str) -> Result<()> {
    if state.mailer.is_configured() {
        Ok(())
    } else {
        Err(Error::MailUnavailable(feature))
    }
}

/// Mails `user` a fresh code and link of `kind` at `to`, voiding the previous one, unless
/// the cooldown or the hourly allowance says not now.
pub async fn send_token(
    state: &AppState,
    user: &UserRecord,
    to: &str,
    kind: Kind,
    extra: &[(&str, &str)],
) -> Result<Sent> {
    let now = unix_now();
    let drawn = state.codes.draw(user.id, kind.purpose.as_str())?;
    let cooldown = i64::try_from(state.settings.mail.send_cooldown.as_secs()).unwrap_or(i64::MAX);
    let stored = state
        .storage
        .put_email_token(
            &NewEmailToken {
                user_id: user.id,
                purpose: kind.purpose,
                email: to,
                code_hash: Some(&drawn.code_hash),
                link_hash: &drawn.link_hash,
                now,
                expires_at: crate::clock::after(now, kind.lifetime),
            },
            cooldown,
            MAX_SENDS_PER_HOUR,
        )
        .await?;
    if !stored {
        tracing::debug!(
            user_id = user.id,
            purpose = kind.purpose.as_str(),
            "mail throttled"
        );
        return Ok(Sent::Throttled);
    }
    let link = page_link(state, kind.page, &drawn.link);
    let mut values = vec![("code", drawn.code.as_str()), ("link", link.as_str())];
    values.extend_from_slice(extra);
    queue(state, user, to, kind.template, kind.lifetime, &values).await;
    Ok(Sent::Queued)
}

/// A link to a UI page carrying a token.
pub fn page_link(state: &AppState, page: &str, token: &str) -> String {
    format!("{}{page}?token={token}", state.settings.public_url)
}

/// Renders `template` for `user` and queues it to `to`.
pub async fn queue(
    state: &AppState,
    user: &UserRecord,
    to: &str,
    template: Template,
    lifetime: Duration,
    values: &[(&str, &str)],
) {
    let valid_for = describe(lifetime);
    let mut all = vec![
        ("product", state.settings.product_name.as_str()),
        ("public_url", state.settings.public_url.as_str()),
        ("username", user.username.as_str()),
        ("email", to),
        ("valid_for", valid_for.as_str()),
    ];
    all.extend_from_slice(values);
    let queued = state
        .mailer
        .queue(Outgoing {
            to: to.to_owned(),
            user_id: Some(user.id),
            template,
            message: render(template, &all),
        })
        .await;
    if !queued {
        tracing::error!(
            template = template.name(),
            user_id = user.id,
            "mail not sent: no mail server is configured"
        );
        state
            .audit(crate::audit::AuditEvent {
                detail: Some(format!(
                    "{} to {to}: no mail server is configured",
                    template.name()
                )),
                ..crate::audit::AuditEvent::new(crate::audit::AuditKind::MailFailed, Some(user.id))
            })
            .await;
    }
}

/// The user's live token of `purpose` if `typed` is its code. Every attempt counts against
/// the token before the comparison (a wrong last allowed attempt voids it); no token, a spent
/// one and a wrong code all fail alike.
pub async fn token_for_code(
    state: &AppState,
    user_id: i64,
    purpose: Purpose,
    typed: &str,
) -> Result<EmailToken> {
    let token = state
        .storage
        .count_code_attempt(user_id, purpose, unix_now(), MAX_CODE_ATTEMPTS)
        .await?;
    let Some(token) = token else {
        return Err(Error::InvalidCode);
    };
    let matches = token.code_hash.as_deref().is_some_and(|stored| {
        state
            .codes
            .matches(user_id, purpose.as_str(), typed, stored)
    });
    if !matches {
        if token.attempts >= MAX_CODE_ATTEMPTS {
            state
                .storage
                .void_email_token_by_link(&token.link_hash)
                .await?;
        }
        return Err(Error::InvalidCode);
    }
    Ok(token)
}

/// The stored hash of a link token, if `raw` can be one at all.
pub fn link_hash(raw: &str) -> Result<Vec<u8>> {
    if codes::plausible_link(raw.trim()) {
        Ok(codes::link_hash(raw.trim()))
    } else {
        Err(Error::InvalidCode)
    }
}

/// "30 minutes", "24 hours", "3 days".
fn describe(lifetime: Duration) -> String {
    let secs = lifetime.as_secs();
    let (n, unit) = if secs >= 2 * 86_400 && secs.is_multiple_of(86_400) {
        (secs / 86_400, "day")
    } else if secs >= 3600 && secs.is_multiple_of(3600) {
        (secs / 3600, "hour")
    } else {
        (secs.div_ceil(60).max(1), "minute")
    };
    format!("{n} {unit}{}", if n == 1 { "" } else { "s" })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lifetimes_read_naturally() {
        assert_eq!(describe(Duration::from_secs(1800)), "30 minutes");
        assert_eq!(describe(Duration::from_secs(3600)), "1 hour");
        assert_eq!(describe(Duration::from_secs(86_400)), "24 hours");
        assert_eq!(describe(Duration::from_secs(3 * 86_400)), "3 days");
        assert_eq!(describe(Duration::from_secs(59)), "1 minute");
    }
}
