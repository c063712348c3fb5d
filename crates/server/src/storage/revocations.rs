//! Access-token revocations still in force, and their broadcast to other nodes.

use serde::{Deserialize, Serialize};

use super::{Storage, on_pool};
use crate::error::Result;

/// PostgreSQL NOTIFY channel on which revocations reach every node.
pub const REVOCATION_CHANNEL: &str = "tollgate_revocations";

/// What stops access tokens from working before they expire.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Revocation {
    /// Every access token of one session.
    Session { id: String },
    /// Every access token of the user issued with a token version below `min_version`.
    User { id: i64, min_version: i64 },
}

impl Revocation {
    pub(crate) fn to_row(&self) -> (&'static str, String, Option<i64>) {
        match self {
            Revocation::Session { id } => ("session", id.clone(), None),
            Revocation::User { id, min_version } => ("user", id.to_string(), Some(*min_version)),
        }
    }

    fn from_row(kind: &str, subject: String, min_version: Option<i64>) -> Option<Self> {
        match (kind, min_version) {
            ("session", _) => Some(Revocation::Session { id: subject }),
            ("user", Some(min_version)) => Some(Revocation::User {
                id: subject.parse().ok()?,
                min_version,
            }),
            _ => None,
        }
    }
}

/// A revocation and when it may be forgotten: once every access token it could concern has
/// expired, whichever node issued it. This is what nodes tell each other.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RevocationNotice {
    #[serde(flatten)]
    pub revocation: Revocation,
    /// Unix time. Absent (0) in notices from older nodes: the receiver then keeps the entry
    /// for its own token lifetime.
    #[serde(default)]
    pub expires_at: i64,
}

impl RevocationNotice {
    pub(crate) fn to_payload(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    pub fn from_payload(payload: &str) -> Option<Self> {
        serde_json::from_str(payload).ok()
    }
}

type RevocationRow = (i64, String, String, Option<i64>, i64);

fn notices(rows: Vec<RevocationRow>) -> Vec<RevocationNotice> {
    rows.into_iter()
        .filter_map(|(_, kind, subject, min_version, expires_at)| {
            Some(RevocationNotice {
                revocation: Revocation::from_row(&kind, subject, min_version)?,
                expires_at,
            })
        })
        .collect()
}

/// Rows deleted per statement when purging.
pub const PURGE_BATCH: i64 = 1000;

impl Storage {
    /// Revocations that have not yet outlived the access tokens they stop, with the id of the
    /// newest row (to follow later ones with [`Self::revocations_after`]).
    pub async fn active_revocations(&self, now: i64) -> Result<(Vec<RevocationNotice>, i64)> {
        // The newest id first: a row added in between is read twice, never missed.
        let (last,): (Option<i64>,) = on_pool!(self, |pool| {
            sqlx::query_as("SELECT MAX(id) FROM revocations")
                .fetch_one(pool)
                .await?
        });
        let rows: Vec<RevocationRow> = on_pool!(self, |pool| {
            sqlx::query_as(
                "SELECT id, kind, subject, min_version, expires_at FROM revocations \
                 WHERE expires_at > $1 ORDER BY id",
            )
            .bind(now)
            .fetch_all(pool)
            .await?
        });
        Ok((notices(rows), last.unwrap_or(0)))
    }

    /// Revocations recorded after row `after` (by another process on the same SQLite file, say
    /// the CLI), and the id of the newest one.
    pub async fn revocations_after(&self, after: i64) -> Result<(Vec<RevocationNotice>, i64)> {
        let rows: Vec<RevocationRow> = on_pool!(self, |pool| {
            sqlx::query_as(
                "SELECT id, kind, subject, min_version, expires_at FROM revocations \
                 WHERE id > $1 ORDER BY id",
            )
            .bind(after)
            .fetch_all(pool)
            .await?
        });
        let last = rows.last().map_or(after, |row| row.0);
        Ok((notices(rows), last))
    }

    /// Records that this node issues access tokens living `ttl_secs`, so revocations made by
    /// any node (or the CLI) last at least that long. Returns the longest lifetime in use.
    pub async fn note_access_token_ttl(&self, ttl_secs: i64) -> Result<i64> {
        let (longest,): (i64,) = on_pool!(self, |pool| {
            sqlx::query(
                "UPDATE server_settings SET value = $1 \
                 WHERE name = 'max_access_token_ttl' AND value < $1",
            )
            .bind(ttl_secs)
            .execute(pool)
            .await?;
            sqlx::query_as("SELECT value FROM server_settings WHERE name = 'max_access_token_ttl'")
                .fetch_one(pool)
                .await?
        });
        Ok(longest)
    }

    /// Deletes what no longer matters: old revocations, sessions long expired.
    pub async fn purge_expired(&self, now: i64) -> Result<()> {
        on_pool!(self, |pool| {
            sqlx::query("DELETE FROM revocations WHERE expires_at <= $1")
                .bind(now)
                .execute(pool)
                .await?;
            // Keep a day of history so reuse of an expired family's token is still recognised.
            // In bounded batches, so a large backlog never holds the write lock for long.
            loop {
                let deleted = sqlx::query(
                    "DELETE FROM sessions WHERE id IN (SELECT id FROM sessions \
                     WHERE absolute_expires_at <= $1 OR idle_expires_at <= $1 LIMIT $2)",
                )
                .bind(now - 86_400)
                .bind(PURGE_BATCH)
                .execute(pool)
                .await?
                .rows_affected();
                if deleted < PURGE_BATCH.unsigned_abs() {
                    break;
                }
                tokio::task::yield_now().await;
            }
            sqlx::query("DELETE FROM mfa_challenges WHERE expires_at <= $1")
                .bind(now)
                .execute(pool)
                .await?;
            sqlx::query("DELETE FROM webauthn_ceremonies WHERE expires_at <= $1")
                .bind(now)
                .execute(pool)
                .await?;
            // Used and expired mail tokens, once their hour of send counting is over.
            sqlx::query(
                "DELETE FROM email_tokens WHERE expires_at <= $1 AND window_started_at <= $2",
            )
            .bind(now)
            .bind(now - super::email_tokens::SEND_WINDOW_SECS)
            .execute(pool)
            .await?;
            // A name's failures are forgotten a day after the last one, once no back-off runs.
            sqlx::query(
                "DELETE FROM signin_throttle WHERE last_failed_at <= $1 \
                 AND (locked_until IS NULL OR locked_until <= $2)",
            )
            .bind(now - 86_400)
            .bind(now)
            .execute(pool)
            .await?
            .rows_affected()
        });
        Ok(())
    }
}
