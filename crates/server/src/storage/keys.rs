//! Token signing keys.

use time::OffsetDateTime;

use super::{Storage, on_pool};
use crate::error::Result;

/// A signing key as stored; the private half is secret and never logged.
pub struct StoredKey {
    pub generation: i64,
    pub kid: String,
    pub algorithm: String,
    pub private_key: Vec<u8>,
    pub public_key: Vec<u8>,
    /// When it starts signing (unix time).
    pub activates_at: i64,
}

impl std::fmt::Debug for StoredKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoredKey")
            .field("generation", &self.generation)
            .field("kid", &self.kid)
            .field("algorithm", &self.algorithm)
            .field("activates_at", &self.activates_at)
            .finish_non_exhaustive()
    }
}

type KeyRow = (i64, String, String, Vec<u8>, Vec<u8>, i64);

impl Storage {
    /// Every key of `algorithm`, newest generation first.
    pub async fn signing_keys(&self, algorithm: &str) -> Result<Vec<StoredKey>> {
        let rows: Vec<KeyRow> = on_pool!(self, |pool| {
            sqlx::query_as(
                "SELECT generation, kid, algorithm, private_key, public_key, activates_at \
                 FROM signing_keys \
                 WHERE algorithm = $1 ORDER BY generation DESC",
            )
            .bind(algorithm)
            .fetch_all(pool)
            .await?
        });
        Ok(rows
            .into_iter()
            .map(
                |(generation, kid, algorithm, private_key, public_key, activates_at)| StoredKey {
                    generation,
                    kid,
                    algorithm,
                    private_key,
                    public_key,
                    activates_at,
                },
            )
            .collect())
    }

    /// Stores `key` unless another node stored one of the same generation first;
    /// callers read the keys back afterwards, so every node ends up with the same key.
    /// The ids of the stored signing keys (and proof the database answers).
    pub async fn signing_kids(&self) -> Result<Vec<String>> {
        let rows: Vec<(String,)> = on_pool!(self, |pool| {
            sqlx::query_as("SELECT kid FROM signing_keys")
                .fetch_all(pool)
                .await?
        });
        Ok(rows.into_iter().map(|(kid,)| kid).collect())
    }

    /// Returns whether it was stored.
    pub async fn insert_signing_key_if_absent(&self, key: &StoredKey) -> Result<bool> {
        let stored = on_pool!(self, |pool| {
            sqlx::query(
                "INSERT INTO signing_keys (generation, kid, algorithm, private_key, public_key, \
                 created_at, activates_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (generation) DO NOTHING",
            )
            .bind(key.generation)
            .bind(&key.kid)
            .bind(&key.algorithm)
            .bind(&key.private_key)
            .bind(&key.public_key)
            .bind(OffsetDateTime::now_utc())
            .bind(key.activates_at)
            .execute(pool)
            .await?
            .rows_affected()
        });
        Ok(stored == 1)
    }

    /// Deletes the keys no token still alive can have been signed with: those older than a
    /// key that has been signing for longer than the longest access-token lifetime any node
    /// issues, plus `margin_secs` (clock skew, nodes yet to load the newer key). Returns how
    /// many.
    pub async fn purge_retired_keys(&self, now: i64, margin_secs: i64) -> Result<u64> {
        let purged = on_pool!(self, |pool| {
            sqlx::query(
                "DELETE FROM signing_keys WHERE generation < (\
                   SELECT MAX(generation) FROM signing_keys WHERE activates_at <= $1 - $2 - \
                     (SELECT value FROM server_settings WHERE name = 'max_access_token_ttl'))",
            )
            .bind(now)
            .bind(margin_secs)
            .execute(pool)
            .await?
            .rows_affected()
        });
        Ok(purged)
    }

    /// Deletes every key of `algorithm` older than `generation` at once (a leaked key).
    pub async fn delete_keys_before(&self, algorithm: &str, generation: i64) -> Result<u64> {
        let deleted = on_pool!(self, |pool| {
            sqlx::query("DELETE FROM signing_keys WHERE algorithm = $1 AND generation < $2")
                .bind(algorithm)
                .bind(generation)
                .execute(pool)
                .await?
                .rows_affected()
        });
        Ok(deleted)
    }
}
