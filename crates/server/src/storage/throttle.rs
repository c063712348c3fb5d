//! Failed sign-ins per name, counted for existing and unknown names alike.

use ring::digest;

use super::{Storage, on_pool};
use crate::error::Result;

/// Failures allowed before back-off starts.
pub const FREE_SIGNIN_FAILURES: i64 = 5;
/// Longest back-off, in seconds.
pub const MAX_BACKOFF_SECS: i64 = 900;

/// The name a sign-in counts against: a SHA-256 of its canonical (trimmed, lower-case) form,
/// so whatever was typed (often a password in the wrong field) is never stored.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct ThrottleKey([u8; 32]);

impl ThrottleKey {
    pub fn for_name(name: &str) -> Self {
        let canonical = name.trim().to_lowercase();
        let mut key = [0u8; 32];
        key.copy_from_slice(digest::digest(&digest::SHA256, canonical.as_bytes()).as_ref());
        Self(key)
    }
}

impl std::fmt::Debug for ThrottleKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ThrottleKey(…)")
    }
}

/// Whether a sign-in may check its password.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SigninAttempt {
    /// Go ahead; this attempt is already counted as a failure until it succeeds.
    Allowed,
    /// Backing off until this unix time.
    LockedUntil(i64),
}

impl Storage {
    /// Counts a sign-in attempt against `key` before its password is checked, atomically:
    /// parallel guesses each take a slot, and once [`FREE_SIGNIN_FAILURES`] are used the name
    /// backs off exponentially (1 s, 2 s, 4 s … up to [`MAX_BACKOFF_SECS`]). Unknown names are
    /// counted exactly like existing ones. [`Self::signin_succeeded`] clears the count.
    pub async fn begin_signin_attempt(&self, key: &ThrottleKey, now: i64) -> Result<SigninAttempt> {
        let counted: Option<(i64,)> = on_pool!(self, |pool| {
            sqlx::query_as(
                "INSERT INTO signin_throttle (name_hash, failures, locked_until, last_failed_at) \
                 VALUES ($1, 1, NULL, $2) \
                 ON CONFLICT (name_hash) DO UPDATE SET \
                   failures = signin_throttle.failures + 1, \
                   locked_until = CASE WHEN signin_throttle.failures + 1 >= $3 THEN $2 + \
                     CASE WHEN signin_throttle.failures + 1 >= $3 + 10 THEN $4 \
                     ELSE CAST(1 AS BIGINT) << CAST(signin_throttle.failures + 1 - $3 AS INTEGER) END \
                   ELSE signin_throttle.locked_until END, \
                   last_failed_at = $2 \
                 WHERE signin_throttle.locked_until IS NULL OR signin_throttle.locked_until <= $2 \
                 RETURNING failures",
            )
            .bind(key.0.as_slice())
            .bind(now)
            .bind(FREE_SIGNIN_FAILURES)
            .bind(MAX_BACKOFF_SECS)
            .fetch_optional(pool)
            .await?
        });
        if counted.is_some() {
            return Ok(SigninAttempt::Allowed);
        }
        let locked: Option<(Option<i64>,)> = on_pool!(self, |pool| {
            sqlx::query_as("SELECT locked_until FROM signin_throttle WHERE name_hash = $1")
                .bind(key.0.as_slice())
                .fetch_optional(pool)
                .await?
        });
        Ok(match locked {
            Some((Some(until),)) if until > now => SigninAttempt::LockedUntil(until),
            // Unlocked meanwhile: let the caller proceed.
            _ => SigninAttempt::Allowed,
        })
    }

    /// Forgets the failures counted against `key`.
    pub async fn signin_succeeded(&self, key: &ThrottleKey) -> Result<()> {
        on_pool!(self, |pool| {
            sqlx::query("DELETE FROM signin_throttle WHERE name_hash = $1")
                .bind(key.0.as_slice())
                .execute(pool)
                .await?
                .rows_affected()
        });
        Ok(())
    }
}
