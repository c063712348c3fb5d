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

    pub(crate) fn to_payload(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    pub fn from_payload(payload: &str) -> Option<Self> {
        serde_json::from_str(payload).ok()
    }
}

impl Storage {
    /// Revocations that have not yet outlived the access tokens they stop.
    pub async fn active_revocations(&self, now: i64) -> Result<Vec<Revocation>> {
        let rows: Vec<(String, String, Option<i64>)> = on_pool!(self, |pool| {
            sqlx::query_as(
                "SELECT kind, subject, min_version FROM revocations WHERE expires_at > $1 ORDER BY id",
            )
            .bind(now)
            .fetch_all(pool)
            .await?
        });
        Ok(rows
            .into_iter()
            .filter_map(|(kind, subject, min_version)| {
                Revocation::from_row(&kind, subject, min_version)
            })
            .collect())
    }

    /// Deletes what no longer matters: old revocations, sessions long expired.
    pub async fn purge_expired(&self, now: i64) -> Result<()> {
        on_pool!(self, |pool| {
            sqlx::query("DELETE FROM revocations WHERE expires_at <= $1")
                .bind(now)
                .execute(pool)
                .await?;
            // Keep a day of history so reuse of an expired family's token is still recognised.
            sqlx::query(
                "DELETE FROM sessions WHERE absolute_expires_at <= $1 OR idle_expires_at <= $1",
            )
            .bind(now - 86_400)
            .execute(pool)
            .await?
            .rows_affected()
        });
        Ok(())
    }
}
