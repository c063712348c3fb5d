//! The one-time codes and links sent by mail (see `codes`), and the account changes they
//! prove: each change and the use of its token land in one transaction, so a token works once.

use time::OffsetDateTime;

use super::{
    Revocation, RevocationNotice, SessionFilter, Storage, is_unique_violation, on_pool,
    record_revocation,
};
use crate::error::{Error, Result};

/// What a mailed code or link is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// Proves the current address.
    Verify,
    /// Sets a new password (forgotten, or the first one of an account an admin made).
    Reset,
    /// Proves a new address before it replaces the current one.
    Change,
    /// Sent to the old address after a change: undoes it.
    Report,
}

impl Purpose {
    pub fn as_str(self) -> &'static str {
        match self {
            Purpose::Verify => "verify",
            Purpose::Reset => "reset",
            Purpose::Change => "change",
            Purpose::Report => "report",
        }
    }

    fn parse(raw: &str) -> Option<Self> {
        [
            Purpose::Verify,
            Purpose::Reset,
            Purpose::Change,
            Purpose::Report,
        ]
        .into_iter()
        .find(|p| p.as_str() == raw)
    }
}

/// A stored token. `expires_at` 0 means used or void; the row stays for the send counts.
#[derive(Debug, Clone)]
pub struct EmailToken {
    pub user_id: i64,
    pub purpose: Purpose,
    pub email: String,
    pub code_hash: Option<Vec<u8>>,
    pub link_hash: Vec<u8>,
    pub attempts: i64,
    pub created_at: i64,
    pub expires_at: i64,
    /// Mails of this purpose sent to the user in the hour from `window_started_at`.
    pub sends: i64,
    pub window_started_at: i64,
}

impl EmailToken {
    pub fn is_live(&self, now: i64) -> bool {
        self.expires_at > now
    }
}

/// A token to store.
#[derive(Debug)]
pub struct NewEmailToken<'a> {
    pub user_id: i64,
    pub purpose: Purpose,
    pub email: &'a str,
    pub code_hash: Option<&'a [u8]>,
    pub link_hash: &'a [u8],
    pub now: i64,
    pub expires_at: i64,
}

/// How long the hourly count of sends runs.
pub const SEND_WINDOW_SECS: i64 = 3600;

type TokenRow = (
    i64,
    String,
    String,
    Option<Vec<u8>>,
    Vec<u8>,
    i64,
    i64,
    i64,
    i64,
    i64,
);

const SELECT_TOKEN: &str = "SELECT user_id, purpose, email, code_hash, link_hash, attempts, \
     created_at, expires_at, sends, window_started_at FROM email_tokens";

fn token(row: TokenRow) -> Option<EmailToken> {
    let (
        user_id,
        purpose,
        email,
        code_hash,
        link_hash,
        attempts,
        created_at,
        expires_at,
        sends,
        window_started_at,
    ) = row;
    Some(EmailToken {
        user_id,
        purpose: Purpose::parse(&purpose)?,
        email,
        code_hash,
        link_hash,
        attempts,
        created_at,
        expires_at,
        sends,
        window_started_at,
    })
}

/// The token of the link that undoes an email change, stored with the change.
#[derive(Debug)]
pub struct ReportToken<'a> {
    pub link_hash: &'a [u8],
    pub now: i64,
    pub expires_at: i64,
}

/// A new password, and what must end with the old one.
#[derive(Debug)]
pub struct PasswordReplacement<'a> {
    pub user_id: i64,
    pub password_hash: &'a str,
    /// The token that proves the right to set it (used up here), or `None` for an admin.
    pub token: Option<&'a [u8]>,
    pub now: i64,
    pub own_ttl_secs: i64,
}

/// Inside a transaction `$tx`: on PostgreSQL, locks the user's row first, so that the account
/// changes below (reset, address change, report) take their locks in one order and cannot
/// deadlock one another. (SQLite's transactions hold the one write lock.)
macro_rules! lock_user {
    ($storage:expr, $tx:expr, $user_id:expr) => {
        if $storage.backend() == super::Backend::Postgres {
            sqlx::query("SELECT id FROM users WHERE id = $1 FOR UPDATE")
                .bind($user_id)
                .execute(&mut *$tx)
                .await?;
        }
    };
}

/// Inside a transaction `$tx`: the user the token named by `$link_hash` belongs to, if any.
macro_rules! token_owner {
    ($tx:expr, $link_hash:expr) => {{
        let owner: Option<(i64,)> =
            sqlx::query_as("SELECT user_id FROM email_tokens WHERE link_hash = $1")
                .bind($link_hash)
                .fetch_optional(&mut *$tx)
                .await?;
        owner.map(|(id,)| id)
    }};
}

/// Inside a transaction `$tx`: uses up the live token of `$purpose` named by `$link_hash`,
/// its owner's row locked first (see [`lock_user`]). Evaluates to the owner and the address
/// the token went to, or `None` if no such token is live.
macro_rules! use_link {
    ($storage:expr, $tx:expr, $link_hash:expr, $purpose:expr, $now:expr) => {{
        if let Some(owner) = token_owner!($tx, $link_hash) {
            lock_user!($storage, $tx, owner);
        }
        let used: Option<(i64, String)> = sqlx::query_as(
            "UPDATE email_tokens SET expires_at = 0 \
             WHERE link_hash = $1 AND purpose = $2 AND expires_at > $3 \
             RETURNING user_id, email",
        )
        .bind($link_hash)
        .bind(Purpose::as_str($purpose))
        .bind($now)
        .fetch_optional(&mut *$tx)
        .await?;
        used
    }};
}

impl Storage {
    /// The user's token for `purpose`, live or not.
    pub async fn email_token(&self, user_id: i64, purpose: Purpose) -> Result<Option<EmailToken>> {
        let row: Option<TokenRow> = on_pool!(self, |pool| {
            sqlx::query_as(&format!(
                "{SELECT_TOKEN} WHERE user_id = $1 AND purpose = $2"
            ))
            .bind(user_id)
            .bind(purpose.as_str())
            .fetch_optional(pool)
            .await?
        });
        Ok(row.and_then(token))
    }

    /// The token a link carries, by its hash.
    pub async fn email_token_by_link(&self, link_hash: &[u8]) -> Result<Option<EmailToken>> {
        let row: Option<TokenRow> = on_pool!(self, |pool| {
            sqlx::query_as(&format!("{SELECT_TOKEN} WHERE link_hash = $1"))
                .bind(link_hash)
                .fetch_optional(pool)
                .await?
        });
        Ok(row.and_then(token))
    }

    /// Stores a token, replacing (and so voiding) the user's previous one of that purpose,
    /// and counts the send in the current hour, unless the previous one was sent less than
    /// `cooldown_secs` ago or the hour's `max_sends` are used up: then nothing changes and
    /// `false` is returned. Decided in the one statement, so parallel requests cannot all pass.
    pub async fn put_email_token(
        &self,
        new: &NewEmailToken<'_>,
        cooldown_secs: i64,
        max_sends: i64,
    ) -> Result<bool> {
        let stored = on_pool!(self, |pool| {
            sqlx::query(
                "INSERT INTO email_tokens (user_id, purpose, email, code_hash, link_hash, \
                   attempts, created_at, expires_at, sends, window_started_at) \
                 VALUES ($1, $2, $3, $4, $5, 0, $6, $7, 1, $6) \
                 ON CONFLICT (user_id, purpose) DO UPDATE SET \
                   email = excluded.email, code_hash = excluded.code_hash, \
                   link_hash = excluded.link_hash, attempts = 0, \
                   created_at = excluded.created_at, expires_at = excluded.expires_at, \
                   sends = CASE WHEN email_tokens.window_started_at > $6 - $8 \
                           THEN email_tokens.sends + 1 ELSE 1 END, \
                   window_started_at = CASE WHEN email_tokens.window_started_at > $6 - $8 \
                           THEN email_tokens.window_started_at ELSE $6 END \
                 WHERE email_tokens.created_at <= $6 - $9 \
                   AND NOT (email_tokens.window_started_at > $6 - $8 \
                            AND email_tokens.sends >= $10)",
            )
            .bind(new.user_id)
            .bind(new.purpose.as_str())
            .bind(new.email)
            .bind(new.code_hash)
            .bind(new.link_hash)
            .bind(new.now)
            .bind(new.expires_at)
            .bind(SEND_WINDOW_SECS)
            .bind(cooldown_secs)
            .bind(max_sends)
            .execute(pool)
            .await?
            .rows_affected()
        });
        Ok(stored == 1)
    }

    /// Counts an attempt with a code against the user's live token of `purpose` before the
    /// code is compared, so parallel guesses cannot outnumber the limit: returns the token
    /// (with the attempt counted), or `None` if there is no live token or its attempts are
    /// used up.
    pub async fn count_code_attempt(
        &self,
        user_id: i64,
        purpose: Purpose,
        now: i64,
        max_attempts: i64,
    ) -> Result<Option<EmailToken>> {
        let row: Option<TokenRow> = on_pool!(self, |pool| {
            sqlx::query_as(
                "UPDATE email_tokens SET attempts = attempts + 1 \
                 WHERE user_id = $1 AND purpose = $2 AND expires_at > $3 AND attempts < $4 \
                 RETURNING user_id, purpose, email, code_hash, link_hash, attempts, \
                   created_at, expires_at, sends, window_started_at",
            )
            .bind(user_id)
            .bind(purpose.as_str())
            .bind(now)
            .bind(max_attempts)
            .fetch_optional(pool)
            .await?
        });
        Ok(row.and_then(token))
    }

    /// Voids the token named by `link_hash` (its last allowed attempt failed).
    pub async fn void_email_token_by_link(&self, link_hash: &[u8]) -> Result<()> {
        on_pool!(self, |pool| {
            sqlx::query("UPDATE email_tokens SET expires_at = 0 WHERE link_hash = $1")
                .bind(link_hash)
                .execute(pool)
                .await?
                .rows_affected()
        });
        Ok(())
    }

    /// Whether a report link for `email` is live: the address was just replaced on some
    /// account and may yet come back to it, so no other account may take it meanwhile.
    pub async fn email_reserved(&self, email: &str, now: i64) -> Result<bool> {
        let found: Option<(i64,)> = on_pool!(self, |pool| {
            sqlx::query_as(
                "SELECT user_id FROM email_tokens WHERE purpose = 'report' AND email = $1 \
                 AND expires_at > $2",
            )
            .bind(email)
            .bind(now)
            .fetch_optional(pool)
            .await?
        });
        Ok(found.is_some())
    }

    /// Voids the user's live token of `purpose`, if any (e.g. a change asked for again).
    pub async fn void_email_token(&self, user_id: i64, purpose: Purpose) -> Result<()> {
        on_pool!(self, |pool| {
            sqlx::query(
                "UPDATE email_tokens SET expires_at = 0 WHERE user_id = $1 AND purpose = $2",
            )
            .bind(user_id)
            .bind(purpose.as_str())
            .execute(pool)
            .await?
            .rows_affected()
        });
        Ok(())
    }

    /// Sets a password, with the token that allows it (used up, or nothing happens and `None`
    /// is returned), and ends what the old password opened: every session, every access token
    /// (the token version moves on), the sign-in back-off of the account. A reset token proves
    /// the address it was sent to, so that address counts as verified if it is still the
    /// user's.
    pub async fn replace_password_with(
        &self,
        change: &PasswordReplacement<'_>,
    ) -> Result<Option<Vec<RevocationNotice>>> {
        let PasswordReplacement {
            user_id,
            password_hash,
            token,
            now,
            own_ttl_secs,
        } = *change;
        on_pool!(self, |pool| {
            let mut tx = pool.begin().await?;
            lock_user!(self, tx, user_id);
            let proven_email: Option<String> = match token {
                Some(link_hash) => {
                    let used: Option<(String,)> = sqlx::query_as(
                        "UPDATE email_tokens SET expires_at = 0 \
                         WHERE link_hash = $1 AND user_id = $2 AND purpose = $3 \
                           AND expires_at > $4 RETURNING email",
                    )
                    .bind(link_hash)
                    .bind(user_id)
                    .bind(Purpose::Reset.as_str())
                    .bind(now)
                    .fetch_optional(&mut *tx)
                    .await?;
                    match used {
                        Some((email,)) => Some(email),
                        None => {
                            tx.rollback().await?;
                            return Ok(None);
                        }
                    }
                }
                None => None,
            };
            let found: Option<(i64,)> = sqlx::query_as(
                "UPDATE users SET password_hash = $1, updated_at = $2, \
                   credential_version = credential_version + 1, \
                   token_version = token_version + 1, failed_signins = 0, locked_until = NULL, \
                   email_verified_at = CASE WHEN email = $3 AND email_verified_at IS NULL \
                                       THEN $4 ELSE email_verified_at END \
                 WHERE id = $5 RETURNING token_version",
            )
            .bind(password_hash)
            .bind(OffsetDateTime::now_utc())
            .bind(proven_email.as_deref())
            .bind(now)
            .bind(user_id)
            .fetch_optional(&mut *tx)
            .await?;
            let Some((min_version,)) = found else {
                tx.rollback().await?;
                return Ok(None);
            };
            // Any other reset link (an older one, an admin's invitation) dies with the old
            // password.
            sqlx::query(
                "UPDATE email_tokens SET expires_at = 0 WHERE user_id = $1 AND purpose = 'reset'",
            )
            .bind(user_id)
            .execute(&mut *tx)
            .await?;
            let mut notices = super::sessions::revoke_in!(
                self,
                tx,
                SessionFilter::AllOf { user_id },
                "password reset",
                now,
                own_ttl_secs
            );
            notices.push(record_revocation!(
                self,
                tx,
                &Revocation::User {
                    id: user_id,
                    min_version
                },
                now,
                own_ttl_secs
            ));
            tx.commit().await?;
            Ok(Some(notices))
        })
    }

    /// Marks the address a verification token was sent to as verified, using the token up.
    /// `false` if the token is not live or the user's address has changed since.
    pub async fn verify_email_with(&self, link_hash: &[u8], now: i64) -> Result<Option<i64>> {
        on_pool!(self, |pool| {
            let mut tx = pool.begin().await?;
            let used = use_link!(self, tx, link_hash, Purpose::Verify, now);
            let Some((user_id, email)) = used else {
                tx.rollback().await?;
                return Ok(None);
            };
            let marked = sqlx::query(
                "UPDATE users SET email_verified_at = COALESCE(email_verified_at, $1) \
                 WHERE id = $2 AND email = $3",
            )
            .bind(now)
            .bind(user_id)
            .bind(&email)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if marked == 0 {
                tx.rollback().await?;
                return Ok(None);
            }
            tx.commit().await?;
            Ok(Some(user_id))
        })
    }

    /// Marks a user's current address verified (an admin's word for it).
    pub async fn mark_email_verified(&self, user_id: i64, now: i64) -> Result<bool> {
        let changed = on_pool!(self, |pool| {
            sqlx::query(
                "UPDATE users SET email_verified_at = COALESCE(email_verified_at, $1) WHERE id = $2",
            )
            .bind(now)
            .bind(user_id)
            .execute(pool)
            .await?
            .rows_affected()
        });
        Ok(changed > 0)
    }

    /// Moves a user to the new address a change token proves, using it up, and stores the
    /// report token for the old address. Returns the user and the old address, or `None` if
    /// the token is not live. An address taken meanwhile is [`Error::EmailTaken`].
    pub async fn change_email_with(
        &self,
        link_hash: &[u8],
        report: &ReportToken<'_>,
    ) -> Result<Option<(i64, String)>> {
        let now = report.now;
        let changed: Result<Option<(i64, String)>, sqlx::Error> = on_pool!(self, |pool| {
            async {
                let mut tx = pool.begin().await?;
                let used = use_link!(self, tx, link_hash, Purpose::Change, now);
                let Some((user_id, new_email)) = used else {
                    tx.rollback().await?;
                    return Ok(None);
                };
                let (old_email,): (String,) =
                    sqlx::query_as("SELECT email FROM users WHERE id = $1")
                        .bind(user_id)
                        .fetch_one(&mut *tx)
                        .await?;
                sqlx::query(
                    "UPDATE users SET email = $1, email_verified_at = $2, updated_at = $3 \
                     WHERE id = $4",
                )
                .bind(&new_email)
                .bind(now)
                .bind(OffsetDateTime::now_utc())
                .bind(user_id)
                .execute(&mut *tx)
                .await?;
                // Links mailed to the old address (a reset, a verification) die with it.
                sqlx::query(
                    "UPDATE email_tokens SET expires_at = 0 \
                     WHERE user_id = $1 AND purpose IN ('reset', 'verify')",
                )
                .bind(user_id)
                .execute(&mut *tx)
                .await?;
                sqlx::query(
                    "INSERT INTO email_tokens (user_id, purpose, email, code_hash, link_hash, \
                       attempts, created_at, expires_at, sends, window_started_at) \
                     VALUES ($1, $2, $3, NULL, $4, 0, $5, $6, 1, $5) \
                     ON CONFLICT (user_id, purpose) DO UPDATE SET email = excluded.email, \
                       code_hash = NULL, link_hash = excluded.link_hash, attempts = 0, \
                       created_at = excluded.created_at, expires_at = excluded.expires_at",
                )
                .bind(user_id)
                .bind(Purpose::Report.as_str())
                .bind(&old_email)
                .bind(report.link_hash)
                .bind(now)
                .bind(report.expires_at)
                .execute(&mut *tx)
                .await?;
                tx.commit().await?;
                Ok(Some((user_id, old_email)))
            }
            .await
        });
        match changed {
            Ok(changed) => Ok(changed),
            Err(e) if is_unique_violation(&e) => Err(Error::EmailTaken),
            Err(e) => Err(e.into()),
        }
    }

    /// Undoes an email change reported from the old address, using the report token up: the
    /// old address comes back (verified: it received the report link), the password is voided
    /// (whoever changed the address knew it), every session and access token ends. Returns the
    /// user and their revocations, or `None` if the token is not live; the old address taken
    /// meanwhile by another account is [`Error::EmailTaken`].
    pub async fn undo_email_change(
        &self,
        link_hash: &[u8],
        no_password: &str,
        now: i64,
        own_ttl_secs: i64,
    ) -> Result<Option<(i64, Vec<RevocationNotice>)>> {
        let undone: Result<Option<(i64, Vec<RevocationNotice>)>, Error> = on_pool!(self, |pool| {
            async {
                let mut tx = pool.begin().await?;
                let used = use_link!(self, tx, link_hash, Purpose::Report, now);
                let Some((user_id, old_email)) = used else {
                    tx.rollback().await?;
                    return Ok(None);
                };
                let restored: Result<Option<(i64,)>, sqlx::Error> = sqlx::query_as(
                    "UPDATE users SET email = $1, email_verified_at = $2, updated_at = $3, \
                           password_hash = $4, credential_version = credential_version + 1, \
                           token_version = token_version + 1 \
                         WHERE id = $5 RETURNING token_version",
                )
                .bind(&old_email)
                .bind(now)
                .bind(OffsetDateTime::now_utc())
                .bind(no_password)
                .bind(user_id)
                .fetch_optional(&mut *tx)
                .await;
                let min_version = match restored {
                    Ok(Some((version,))) => version,
                    Ok(None) => {
                        tx.rollback().await?;
                        return Ok(None);
                    }
                    Err(e) if is_unique_violation(&e) => return Err(Error::EmailTaken),
                    Err(e) => return Err(e.into()),
                };
                // Any pending change or reset went to addresses the reporter may not own.
                sqlx::query(
                    "UPDATE email_tokens SET expires_at = 0 \
                         WHERE user_id = $1 AND purpose IN ('change', 'reset')",
                )
                .bind(user_id)
                .execute(&mut *tx)
                .await?;
                let mut notices = super::sessions::revoke_in!(
                    self,
                    tx,
                    SessionFilter::AllOf { user_id },
                    "email change reported",
                    now,
                    own_ttl_secs
                );
                notices.push(record_revocation!(
                    self,
                    tx,
                    &Revocation::User {
                        id: user_id,
                        min_version
                    },
                    now,
                    own_ttl_secs
                ));
                tx.commit().await?;
                Ok(Some((user_id, notices)))
            }
            .await
        });
        undone
    }
}
