//! Sessions (refresh-token families) and their refresh tokens, stored as SHA-256 hashes only.

use super::{Backend, RevocationNotice, Storage, on_pool};
use crate::error::Result;

/// Inside a transaction `$tx` on either back end: ends the sessions chosen by `$filter` (a
/// [`SessionFilter`]) for `$reason` and records a revocation for each, evaluating to their
/// [`RevocationNotice`]s.
macro_rules! revoke_in {
    ($storage:expr, $tx:expr, $filter:expr, $reason:expr, $now:expr, $own_ttl_secs:expr) => {{
        let (condition, user_id, other) = match $filter {
            $crate::storage::SessionFilter::One { id, user_id } => ("id = $4", user_id, id),
            $crate::storage::SessionFilter::AllOf { user_id } => ("$4 = $4", user_id, ""),
            $crate::storage::SessionFilter::AllOfExcept { user_id, keep } => {
                ("id <> $4", user_id, keep)
            }
        };
        let sql = format!(
            "UPDATE sessions SET revoked_at = $1, revoked_reason = $2 \
             WHERE user_id = $3 AND revoked_at IS NULL AND {condition} RETURNING id"
        );
        let ids: Vec<(String,)> = sqlx::query_as(&sql)
            .bind($now)
            .bind($reason)
            .bind(user_id)
            .bind(other)
            .fetch_all(&mut *$tx)
            .await?;
        let mut notices = Vec::with_capacity(ids.len());
        for (id,) in ids {
            notices.push($crate::storage::record_revocation!(
                $storage,
                $tx,
                &$crate::storage::Revocation::Session { id },
                $now,
                $own_ttl_secs
            ));
        }
        notices
    }};
}
pub(crate) use revoke_in;

/// A session being opened at sign-in, with its first refresh token.
#[derive(Debug)]
pub struct NewSession<'a> {
    pub id: &'a str,
    pub user_id: i64,
    pub now: i64,
    pub idle_expires_at: i64,
    pub absolute_expires_at: i64,
    pub user_agent: Option<&'a str>,
    pub ip: Option<&'a str>,
    pub token_hash: &'a [u8],
    /// The credential the sign-in verified: the session opens only if it is still current.
    pub credential_version: i64,
    /// How the user proved who they are (`pwd,otp`).
    pub amr: &'a str,
    /// When a second factor was proven, if one was.
    pub factor_proven_at: Option<i64>,
}

/// Whether a session was opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionOpened {
    Opened,
    /// The password changed since it was verified, or the user was disabled or deleted.
    CredentialChanged,
}

/// A refresh token found by its hash, with its session.
#[derive(Debug, Clone)]
pub struct TokenLookup {
    pub session_id: String,
    pub user_id: i64,
    pub rotated_at: Option<i64>,
    pub idle_expires_at: i64,
    pub absolute_expires_at: i64,
    pub revoked: bool,
    /// How the session's user proved who they are (`pwd,otp`).
    pub amr: String,
}

/// A session as listed to its owner.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct SessionRecord {
    pub id: String,
    pub user_id: i64,
    pub created_at: i64,
    pub last_used_at: i64,
    pub idle_expires_at: i64,
    pub absolute_expires_at: i64,
    pub user_agent: Option<String>,
    pub ip: Option<String>,
}

/// Which sessions to end.
#[derive(Debug, Clone, Copy)]
pub enum SessionFilter<'a> {
    /// One session, only if it belongs to `user_id`.
    One { id: &'a str, user_id: i64 },
    /// Every session of the user.
    AllOf { user_id: i64 },
    /// Every session of the user but `keep`.
    AllOfExcept { user_id: i64, keep: &'a str },
}

type LookupRow = (String, i64, Option<i64>, i64, i64, Option<i64>, String);

impl Storage {
    /// Opens a session with its first refresh token, in one transaction, if and only if the
    /// user still exists, is enabled and still has the credential the sign-in verified. On
    /// PostgreSQL the user's row is share-locked, so a password change waits for this
    /// transaction (and then ends the session) or this one sees the change.
    pub async fn insert_session(&self, session: &NewSession<'_>) -> Result<SessionOpened> {
        let lock = match self.backend() {
            Backend::Postgres => " FOR SHARE",
            Backend::Sqlite => "",
        };
        let insert = format!(
            "INSERT INTO sessions (id, user_id, created_at, last_used_at, idle_expires_at, \
             absolute_expires_at, user_agent, ip, signin_ip, credential_version, amr, \
             factor_proven_at) \
             SELECT $1, id, $3, $3, $4, $5, $6, $7, $7, credential_version, $9, $10 FROM users \
             WHERE id = $2 AND credential_version = $8 AND disabled = FALSE{lock}"
        );
        let opened = on_pool!(self, |pool| {
            let mut tx = pool.begin().await?;
            let inserted = sqlx::query(&insert)
                .bind(session.id)
                .bind(session.user_id)
                .bind(session.now)
                .bind(session.idle_expires_at)
                .bind(session.absolute_expires_at)
                .bind(session.user_agent)
                .bind(session.ip)
                .bind(session.credential_version)
                .bind(session.amr)
                .bind(session.factor_proven_at)
                .execute(&mut *tx)
                .await;
            let inserted = match inserted {
                Ok(done) => done.rows_affected(),
                // The user was deleted between the check and the insert (PostgreSQL).
                Err(e)
                    if e.as_database_error()
                        .is_some_and(|d| d.is_foreign_key_violation()) =>
                {
                    0
                }
                Err(e) => return Err(e.into()),
            };
            if inserted == 0 {
                tx.rollback().await?;
                SessionOpened::CredentialChanged
            } else {
                sqlx::query(
                    "INSERT INTO refresh_tokens (hash, session_id, created_at) VALUES ($1, $2, $3)",
                )
                .bind(session.token_hash)
                .bind(session.id)
                .bind(session.now)
                .execute(&mut *tx)
                .await?;
                tx.commit().await?;
                SessionOpened::Opened
            }
        });
        Ok(opened)
    }

    pub async fn find_refresh_token(&self, hash: &[u8]) -> Result<Option<TokenLookup>> {
        let row: Option<LookupRow> = on_pool!(self, |pool| {
            sqlx::query_as(
                "SELECT t.session_id, s.user_id, t.rotated_at, s.idle_expires_at, \
                 s.absolute_expires_at, s.revoked_at, s.amr FROM refresh_tokens t \
                 JOIN sessions s ON s.id = t.session_id WHERE t.hash = $1",
            )
            .bind(hash)
            .fetch_optional(pool)
            .await?
        });
        Ok(row.map(
            |(
                session_id,
                user_id,
                rotated_at,
                idle_expires_at,
                absolute_expires_at,
                revoked_at,
                amr,
            )| {
                TokenLookup {
                    session_id,
                    user_id,
                    rotated_at,
                    idle_expires_at,
                    absolute_expires_at,
                    revoked: revoked_at.is_some(),
                    amr,
                }
            },
        ))
    }

    /// When the token with this hash was rotated: `None` if unknown, `Some(None)` if still current.
    pub async fn refresh_token_rotated_at(&self, hash: &[u8]) -> Result<Option<Option<i64>>> {
        let row: Option<(Option<i64>,)> = on_pool!(self, |pool| {
            sqlx::query_as("SELECT rotated_at FROM refresh_tokens WHERE hash = $1")
                .bind(hash)
                .fetch_optional(pool)
                .await?
        });
        Ok(row.map(|(rotated_at,)| rotated_at))
    }

    /// Rotates `old_hash` to `new_hash` if, and only if, `old_hash` is still current: the
    /// compare-and-set that makes one of several parallel refreshes the winner. Returns whether
    /// this call won. The session's idle expiry moves forward.
    #[allow(clippy::too_many_arguments)]
    pub async fn rotate_refresh_token(
        &self,
        session_id: &str,
        old_hash: &[u8],
        new_hash: &[u8],
        now: i64,
        idle_expires_at: i64,
        user_agent: Option<&str>,
        ip: Option<&str>,
    ) -> Result<bool> {
        let won = on_pool!(self, |pool| {
            let mut tx = pool.begin().await?;
            // The first statement writes, so SQLite takes its write lock before reading anything.
            let claimed = sqlx::query(
                "UPDATE refresh_tokens SET rotated_at = $1 WHERE hash = $2 AND rotated_at IS NULL \
                 AND EXISTS (SELECT 1 FROM sessions s WHERE s.id = refresh_tokens.session_id \
                 AND s.revoked_at IS NULL)",
            )
            .bind(now)
            .bind(old_hash)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if claimed == 1 {
                sqlx::query(
                    "INSERT INTO refresh_tokens (hash, session_id, created_at) VALUES ($1, $2, $3)",
                )
                .bind(new_hash)
                .bind(session_id)
                .bind(now)
                .execute(&mut *tx)
                .await?;
                sqlx::query(
                    "UPDATE sessions SET last_used_at = $1, idle_expires_at = $2, \
                     user_agent = COALESCE($3, user_agent), ip = COALESCE($4, ip) WHERE id = $5",
                )
                .bind(now)
                .bind(idle_expires_at)
                .bind(user_agent)
                .bind(ip)
                .bind(session_id)
                .execute(&mut *tx)
                .await?;
                tx.commit().await?;
                true
            } else {
                tx.rollback().await?;
                false
            }
        });
        Ok(won)
    }

    /// Ends the sessions chosen by `filter` and records a revocation for each, so their access
    /// tokens stop working everywhere. Returns the revocations made.
    pub async fn revoke_sessions(
        &self,
        filter: SessionFilter<'_>,
        reason: &str,
        now: i64,
        own_ttl_secs: i64,
    ) -> Result<Vec<RevocationNotice>> {
        let notices = on_pool!(self, |pool| {
            let mut tx = pool.begin().await?;
            let notices = revoke_in!(self, tx, filter, reason, now, own_ttl_secs);
            tx.commit().await?;
            notices
        });
        Ok(notices)
    }

    /// Whether `ip` is where the user gave the correct password for a session that is still
    /// valid and was opened with the current password. Refreshes move a session's `ip`, never
    /// its `signin_ip`.
    pub async fn has_trusted_session_from(&self, user_id: i64, ip: &str, now: i64) -> Result<bool> {
        let found: Option<(i64,)> = on_pool!(self, |pool| {
            sqlx::query_as(
                "SELECT s.user_id FROM sessions s JOIN users u ON u.id = s.user_id \
                 WHERE s.user_id = $1 AND s.signin_ip = $2 AND s.revoked_at IS NULL \
                 AND s.idle_expires_at > $3 AND s.absolute_expires_at > $3 \
                 AND s.credential_version = u.credential_version LIMIT 1",
            )
            .bind(user_id)
            .bind(ip)
            .bind(now)
            .fetch_optional(pool)
            .await?
        });
        Ok(found.is_some())
    }

    /// The user's sessions that are neither ended nor expired, most recently used first.
    pub async fn active_sessions(&self, user_id: i64, now: i64) -> Result<Vec<SessionRecord>> {
        let sessions = on_pool!(self, |pool| {
            sqlx::query_as(
                "SELECT id, user_id, created_at, last_used_at, idle_expires_at, absolute_expires_at, \
                 user_agent, ip FROM sessions WHERE user_id = $1 AND revoked_at IS NULL \
                 AND idle_expires_at > $2 AND absolute_expires_at > $2 \
                 ORDER BY last_used_at DESC, created_at DESC",
            )
            .bind(user_id)
            .bind(now)
            .fetch_all(pool)
            .await?
        });
        Ok(sessions)
    }
}
