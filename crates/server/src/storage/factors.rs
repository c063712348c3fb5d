//! Second factors: TOTP secrets, recovery codes, the sign-in challenge between password and
//! factor, and when a session last proved a factor.

use super::{Storage, on_pool};
use crate::error::Result;

/// Inside a transaction `$tx`: deletes the user's recovery codes once no factor is left for
/// them to stand in for.
macro_rules! drop_orphan_recovery_codes {
    ($tx:expr, $user_id:expr) => {
        sqlx::query(
            "DELETE FROM recovery_codes WHERE user_id = $1 \
             AND NOT EXISTS (SELECT 1 FROM totp_factors WHERE user_id = $1 \
                             AND confirmed_at IS NOT NULL) \
             AND NOT EXISTS (SELECT 1 FROM passkeys WHERE user_id = $1)",
        )
        .bind($user_id)
        .execute(&mut *$tx)
        .await?
    };
}
pub(crate) use drop_orphan_recovery_codes;

/// Inside a transaction `$tx`: gives the user the recovery codes `$hashes`, voiding any old set.
macro_rules! put_recovery_codes {
    ($tx:expr, $user_id:expr, $hashes:expr) => {
        sqlx::query("DELETE FROM recovery_codes WHERE user_id = $1")
            .bind($user_id)
            .execute(&mut *$tx)
            .await?;
        for hash in $hashes {
            sqlx::query("INSERT INTO recovery_codes (user_id, code_hash) VALUES ($1, $2)")
                .bind($user_id)
                .bind(hash)
                .execute(&mut *$tx)
                .await?;
        }
    };
}

/// A user's authenticator app.
#[derive(Clone)]
pub struct TotpRecord {
    pub secret: Vec<u8>,
    /// `None` while enrolling.
    pub confirmed_at: Option<i64>,
    pub last_used_step: Option<i64>,
}

impl std::fmt::Debug for TotpRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TotpRecord")
            .field("confirmed_at", &self.confirmed_at)
            .field("last_used_step", &self.last_used_step)
            .finish_non_exhaustive()
    }
}

/// A pending sign-in challenge.
#[derive(Debug, Clone)]
pub struct Challenge {
    pub user_id: i64,
    pub credential_version: i64,
    pub attempts: i64,
    pub expires_at: i64,
    /// Started at `/api/auth/login` (answer in its shape).
    pub via_login: bool,
}

impl Storage {
    pub async fn totp_of(&self, user_id: i64) -> Result<Option<TotpRecord>> {
        let row: Option<(Vec<u8>, Option<i64>, Option<i64>)> = on_pool!(self, |pool| {
            sqlx::query_as(
                "SELECT secret, confirmed_at, last_used_step FROM totp_factors WHERE user_id = $1",
            )
            .bind(user_id)
            .fetch_optional(pool)
            .await?
        });
        Ok(
            row.map(|(secret, confirmed_at, last_used_step)| TotpRecord {
                secret,
                confirmed_at,
                last_used_step,
            }),
        )
    }

    /// Starts (or restarts) an enrolment with a new secret. `false` if the user has a
    /// confirmed authenticator already (it must be removed first).
    pub async fn begin_totp(&self, user_id: i64, secret: &[u8], now: i64) -> Result<bool> {
        let stored = on_pool!(self, |pool| {
            sqlx::query(
                "INSERT INTO totp_factors (user_id, secret, confirmed_at, last_used_step, created_at) \
                 VALUES ($1, $2, NULL, NULL, $3) \
                 ON CONFLICT (user_id) DO UPDATE SET secret = excluded.secret, \
                   last_used_step = NULL, created_at = excluded.created_at \
                 WHERE totp_factors.confirmed_at IS NULL",
            )
            .bind(user_id)
            .bind(secret)
            .bind(now)
            .execute(pool)
            .await?
            .rows_affected()
        });
        Ok(stored == 1)
    }

    /// Accepts `step` for the user's confirmed authenticator if no later-or-equal step was
    /// accepted before (a code works once). `false` if the step was used already.
    pub async fn use_totp_step(&self, user_id: i64, step: i64) -> Result<bool> {
        let used = on_pool!(self, |pool| {
            sqlx::query(
                "UPDATE totp_factors SET last_used_step = $2 \
                 WHERE user_id = $1 AND (last_used_step IS NULL OR last_used_step < $2) \
                   AND confirmed_at IS NOT NULL",
            )
            .bind(user_id)
            .bind(step)
            .execute(pool)
            .await?
            .rows_affected()
        });
        Ok(used == 1)
    }

    /// Confirms a pending enrolment whose secret is `secret` (as stored) with its first
    /// accepted `step`, and gives the user the recovery codes `hashes` (voiding any old set),
    /// together or not at all. `false` if there is no such pending enrolment.
    pub async fn confirm_totp(
        &self,
        user_id: i64,
        step: i64,
        secret: &[u8],
        hashes: &[Vec<u8>],
        now: i64,
    ) -> Result<bool> {
        let confirmed = on_pool!(self, |pool| {
            let mut tx = pool.begin().await?;
            let confirmed = sqlx::query(
                "UPDATE totp_factors SET last_used_step = $2, confirmed_at = $3 \
                 WHERE user_id = $1 AND (last_used_step IS NULL OR last_used_step < $2) \
                   AND confirmed_at IS NULL AND secret = $4",
            )
            .bind(user_id)
            .bind(step)
            .bind(now)
            .bind(secret)
            .execute(&mut *tx)
            .await?
            .rows_affected()
                == 1;
            if confirmed {
                put_recovery_codes!(tx, user_id, hashes);
                tx.commit().await?;
            }
            confirmed
        });
        Ok(confirmed)
    }

    /// Replaces the user's recovery codes (voiding the old set).
    pub async fn replace_recovery_codes(&self, user_id: i64, hashes: &[Vec<u8>]) -> Result<()> {
        on_pool!(self, |pool| {
            let mut tx = pool.begin().await?;
            put_recovery_codes!(tx, user_id, hashes);
            tx.commit().await?;
        });
        Ok(())
    }

    /// Uses up a recovery code; `false` if it is not one of the user's unused codes.
    pub async fn use_recovery_code(&self, user_id: i64, hash: &[u8], now: i64) -> Result<bool> {
        let used = on_pool!(self, |pool| {
            sqlx::query(
                "UPDATE recovery_codes SET used_at = $3 \
                 WHERE user_id = $1 AND code_hash = $2 AND used_at IS NULL",
            )
            .bind(user_id)
            .bind(hash)
            .bind(now)
            .execute(pool)
            .await?
            .rows_affected()
        });
        Ok(used == 1)
    }

    pub async fn recovery_codes_left(&self, user_id: i64) -> Result<i64> {
        let (left,): (i64,) = on_pool!(self, |pool| {
            sqlx::query_as(
                "SELECT COUNT(*) FROM recovery_codes WHERE user_id = $1 AND used_at IS NULL",
            )
            .bind(user_id)
            .fetch_one(pool)
            .await?
        });
        Ok(left)
    }

    /// Removes every second factor of the user (authenticator app, passkeys) and their
    /// recovery codes. Returns whether there was a confirmed one.
    pub async fn remove_factors(&self, user_id: i64) -> Result<bool> {
        let removed = on_pool!(self, |pool| {
            let mut tx = pool.begin().await?;
            let totp = sqlx::query(
                "DELETE FROM totp_factors WHERE user_id = $1 AND confirmed_at IS NOT NULL",
            )
            .bind(user_id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            let passkeys = sqlx::query("DELETE FROM passkeys WHERE user_id = $1")
                .bind(user_id)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            sqlx::query("DELETE FROM totp_factors WHERE user_id = $1")
                .bind(user_id)
                .execute(&mut *tx)
                .await?;
            sqlx::query("DELETE FROM recovery_codes WHERE user_id = $1")
                .bind(user_id)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            totp + passkeys
        });
        Ok(removed > 0)
    }

    /// Removes the user's authenticator app (confirmed or not), and the recovery codes if no
    /// other factor is left. Returns whether there was a confirmed one.
    pub async fn remove_totp(&self, user_id: i64) -> Result<bool> {
        let removed = on_pool!(self, |pool| {
            let mut tx = pool.begin().await?;
            let removed = sqlx::query(
                "DELETE FROM totp_factors WHERE user_id = $1 AND confirmed_at IS NOT NULL",
            )
            .bind(user_id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            sqlx::query("DELETE FROM totp_factors WHERE user_id = $1")
                .bind(user_id)
                .execute(&mut *tx)
                .await?;
            drop_orphan_recovery_codes!(tx, user_id);
            tx.commit().await?;
            removed
        });
        Ok(removed > 0)
    }

    pub async fn put_mfa_challenge(
        &self,
        token_hash: &[u8],
        user_id: i64,
        credential_version: i64,
        via_login: bool,
        now: i64,
        expires_at: i64,
    ) -> Result<()> {
        on_pool!(self, |pool| {
            sqlx::query(
                "INSERT INTO mfa_challenges (token_hash, user_id, credential_version, attempts, \
                 via_login, created_at, expires_at) VALUES ($1, $2, $3, 0, $4, $5, $6)",
            )
            .bind(token_hash)
            .bind(user_id)
            .bind(credential_version)
            .bind(via_login)
            .bind(now)
            .bind(expires_at)
            .execute(pool)
            .await?
            .rows_affected()
        });
        Ok(())
    }

    /// Counts an attempt against a live challenge before the factor is checked, so parallel
    /// guesses cannot outnumber the limit. Returns the challenge, or `None` if it is used,
    /// expired or out of attempts.
    pub async fn claim_challenge_attempt(
        &self,
        token_hash: &[u8],
        max: i64,
        now: i64,
    ) -> Result<Option<Challenge>> {
        let row: Option<(i64, i64, i64, i64, bool)> = on_pool!(self, |pool| {
            sqlx::query_as(
                "UPDATE mfa_challenges SET attempts = attempts + 1 \
                 WHERE token_hash = $1 AND attempts < $2 AND expires_at > $3 \
                 RETURNING user_id, credential_version, attempts, expires_at, via_login",
            )
            .bind(token_hash)
            .bind(max)
            .bind(now)
            .fetch_optional(pool)
            .await?
        });
        Ok(row.map(
            |(user_id, credential_version, attempts, expires_at, via_login)| Challenge {
                user_id,
                credential_version,
                attempts,
                expires_at,
                via_login,
            },
        ))
    }

    /// The live challenge with attempts left, without counting one.
    pub async fn live_challenge(&self, token_hash: &[u8], now: i64) -> Result<Option<Challenge>> {
        let row: Option<(i64, i64, i64, i64, bool)> = on_pool!(self, |pool| {
            sqlx::query_as(
                "SELECT user_id, credential_version, attempts, expires_at, via_login \
                 FROM mfa_challenges WHERE token_hash = $1 AND attempts < $2 AND expires_at > $3",
            )
            .bind(token_hash)
            .bind(crate::domain::mfa::MAX_CHALLENGE_ATTEMPTS)
            .bind(now)
            .fetch_optional(pool)
            .await?
        });
        Ok(row.map(
            |(user_id, credential_version, attempts, expires_at, via_login)| Challenge {
                user_id,
                credential_version,
                attempts,
                expires_at,
                via_login,
            },
        ))
    }

    /// Uses a challenge up; `false` if it was used, ended or expired meanwhile.
    pub async fn take_mfa_challenge(&self, token_hash: &[u8], now: i64) -> Result<bool> {
        let taken = on_pool!(self, |pool| {
            sqlx::query("DELETE FROM mfa_challenges WHERE token_hash = $1 AND expires_at > $2")
                .bind(token_hash)
                .bind(now)
                .execute(pool)
                .await?
                .rows_affected()
        });
        Ok(taken == 1)
    }

    /// Records that the session's user just proved a second factor.
    pub async fn note_factor_proven(&self, session_id: &str, amr: &str, now: i64) -> Result<()> {
        on_pool!(self, |pool| {
            sqlx::query("UPDATE sessions SET factor_proven_at = $2, amr = $3 WHERE id = $1")
                .bind(session_id)
                .bind(now)
                .bind(amr)
                .execute(pool)
                .await?
                .rows_affected()
        });
        Ok(())
    }

    /// Whether the user has a confirmed second factor; `None` if there is no such user.
    pub async fn has_second_factor(&self, user_id: i64) -> Result<Option<bool>> {
        let row: Option<(bool,)> = on_pool!(self, |pool| {
            sqlx::query_as(
                "SELECT EXISTS (SELECT 1 FROM totp_factors t WHERE t.user_id = users.id \
                   AND t.confirmed_at IS NOT NULL) \
                 OR EXISTS (SELECT 1 FROM passkeys p WHERE p.user_id = users.id) \
                 FROM users WHERE id = $1",
            )
            .bind(user_id)
            .fetch_optional(pool)
            .await?
        });
        Ok(row.map(|(has,)| has))
    }

    /// When the session last proved a second factor, if ever.
    pub async fn factor_proven_at(&self, session_id: &str) -> Result<Option<i64>> {
        let row: Option<(Option<i64>,)> = on_pool!(self, |pool| {
            sqlx::query_as("SELECT factor_proven_at FROM sessions WHERE id = $1")
                .bind(session_id)
                .fetch_optional(pool)
                .await?
        });
        Ok(row.and_then(|(at,)| at))
    }
}
