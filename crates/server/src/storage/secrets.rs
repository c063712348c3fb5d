//! Server-wide secrets shared by every node on the database.

use super::{Storage, on_pool};
use crate::error::Result;

impl Storage {
    /// The secret called `name`, storing `candidate` if there is none yet. Every node gets the
    /// same value, whichever stored it first.
    pub async fn shared_secret(&self, name: &str, candidate: &[u8]) -> Result<Vec<u8>> {
        let (value,): (Vec<u8>,) = on_pool!(self, |pool| {
            sqlx::query("INSERT INTO server_secrets (name, value) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING")
                .bind(name)
                .bind(candidate)
                .execute(pool)
                .await?;
            sqlx::query_as("SELECT value FROM server_secrets WHERE name = $1")
                .bind(name)
                .fetch_one(pool)
                .await?
        });
        Ok(value)
    }
}

/// Where a secret that is sealed under the master key is stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretRef {
    /// A server secret, by name.
    Shared(String),
    /// A signing key's private half, by generation.
    SigningKey(i64),
    /// A user's authenticator-app secret.
    Totp(i64),
}

impl SecretRef {
    /// The name the sealing binds the value to.
    pub fn context(&self) -> String {
        match self {
            SecretRef::Shared(name) => format!("secret:{name}"),
            SecretRef::SigningKey(generation) => format!("signing_key:{generation}"),
            SecretRef::Totp(user_id) => format!("totp:{user_id}"),
        }
    }
}

/// A stored secret and where it is.
#[derive(Clone)]
pub struct SecretRow {
    pub at: SecretRef,
    pub value: Vec<u8>,
}

impl std::fmt::Debug for SecretRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecretRow")
            .field("at", &self.at)
            .finish_non_exhaustive()
    }
}

type NamedRow = (String, Vec<u8>);
type IdRow = (i64, Vec<u8>);

impl Storage {
    /// Every secret the master key seals, as stored.
    pub async fn secret_rows(&self) -> Result<Vec<SecretRow>> {
        let (shared, keys, totp): (Vec<NamedRow>, Vec<IdRow>, Vec<IdRow>) =
            on_pool!(self, |pool| {
                (
                    sqlx::query_as("SELECT name, value FROM server_secrets")
                        .fetch_all(pool)
                        .await?,
                    sqlx::query_as("SELECT generation, private_key FROM signing_keys")
                        .fetch_all(pool)
                        .await?,
                    sqlx::query_as("SELECT user_id, secret FROM totp_factors")
                        .fetch_all(pool)
                        .await?,
                )
            });
        let shared = shared.into_iter().map(|(name, value)| SecretRow {
            at: SecretRef::Shared(name),
            value,
        });
        let keys = keys.into_iter().map(|(generation, value)| SecretRow {
            at: SecretRef::SigningKey(generation),
            value,
        });
        let totp = totp.into_iter().map(|(user_id, value)| SecretRow {
            at: SecretRef::Totp(user_id),
            value,
        });
        Ok(shared.chain(keys).chain(totp).collect())
    }

    /// Replaces stored secrets, all or none: each only if it is still as read (`old.value`),
    /// in one transaction that is rolled back if any has changed meanwhile. Returns whether
    /// they were replaced.
    pub async fn replace_secrets(&self, changes: &[(SecretRow, Vec<u8>)]) -> Result<bool> {
        let changed = on_pool!(self, |pool| {
            let mut tx = pool.begin().await?;
            let mut changed = 0u64;
            for (old, new) in changes {
                let query = match &old.at {
                    SecretRef::Shared(name) => sqlx::query(
                        "UPDATE server_secrets SET value = $1 WHERE name = $2 AND value = $3",
                    )
                    .bind(new)
                    .bind(name),
                    SecretRef::SigningKey(generation) => sqlx::query(
                        "UPDATE signing_keys SET private_key = $1 \
                         WHERE generation = $2 AND private_key = $3",
                    )
                    .bind(new)
                    .bind(generation),
                    SecretRef::Totp(user_id) => sqlx::query(
                        "UPDATE totp_factors SET secret = $1 WHERE user_id = $2 AND secret = $3",
                    )
                    .bind(new)
                    .bind(user_id),
                };
                changed += query
                    .bind(&old.value)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
            }
            let all = changed == u64::try_from(changes.len()).unwrap_or(u64::MAX);
            if all {
                tx.commit().await?;
            } else {
                tx.rollback().await?;
            }
            all
        });
        Ok(changed)
    }
}
