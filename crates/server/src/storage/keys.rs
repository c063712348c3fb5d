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
}

impl std::fmt::Debug for StoredKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoredKey")
            .field("generation", &self.generation)
            .field("kid", &self.kid)
            .field("algorithm", &self.algorithm)
            .finish_non_exhaustive()
    }
}

type KeyRow = (i64, String, String, Vec<u8>, Vec<u8>);

impl Storage {
    /// Every key of `algorithm`, newest generation first.
    pub async fn signing_keys(&self, algorithm: &str) -> Result<Vec<StoredKey>> {
        let rows: Vec<KeyRow> = on_pool!(self, |pool| {
            sqlx::query_as(
                "SELECT generation, kid, algorithm, private_key, public_key FROM signing_keys \
                 WHERE algorithm = $1 ORDER BY generation DESC",
            )
            .bind(algorithm)
            .fetch_all(pool)
            .await?
        });
        Ok(rows
            .into_iter()
            .map(
                |(generation, kid, algorithm, private_key, public_key)| StoredKey {
                    generation,
                    kid,
                    algorithm,
                    private_key,
                    public_key,
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

    pub async fn insert_signing_key_if_absent(&self, key: &StoredKey) -> Result<()> {
        on_pool!(self, |pool| {
            sqlx::query(
                "INSERT INTO signing_keys (generation, kid, algorithm, private_key, public_key, created_at) \
                 VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (generation) DO NOTHING",
            )
            .bind(key.generation)
            .bind(&key.kid)
            .bind(&key.algorithm)
            .bind(&key.private_key)
            .bind(&key.public_key)
            .bind(OffsetDateTime::now_utc())
            .execute(pool)
            .await?
            .rows_affected()
        });
        Ok(())
    }
}
