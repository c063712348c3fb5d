//! Service clients: the services allowed to introspect tokens.

use super::{Storage, on_pool};
use crate::error::Result;

/// A service client as stored (its secret's hash stays in the database).
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct ClientRecord {
    pub name: String,
    pub created_at: i64,
    pub last_used_at: Option<i64>,
}

impl Storage {
    /// Adds a client; `false` if the name is taken.
    pub async fn insert_client(&self, name: &str, secret_hash: &[u8], now: i64) -> Result<bool> {
        let inserted = on_pool!(self, |pool| {
            sqlx::query(
                "INSERT INTO service_clients (name, secret_hash, created_at) VALUES ($1, $2, $3) \
                 ON CONFLICT (name) DO NOTHING",
            )
            .bind(name)
            .bind(secret_hash)
            .bind(now)
            .execute(pool)
            .await?
            .rows_affected()
        });
        Ok(inserted == 1)
    }

    /// The stored hash of a client's secret.
    pub async fn client_secret_hash(&self, name: &str) -> Result<Option<Vec<u8>>> {
        let found: Option<(Vec<u8>,)> = on_pool!(self, |pool| {
            sqlx::query_as("SELECT secret_hash FROM service_clients WHERE name = $1")
                .bind(name)
                .fetch_optional(pool)
                .await?
        });
        Ok(found.map(|(hash,)| hash))
    }

    /// Notes when a client was last seen (at most once a minute per client).
    pub async fn touch_client(&self, name: &str, now: i64) -> Result<()> {
        on_pool!(self, |pool| {
            sqlx::query(
                "UPDATE service_clients SET last_used_at = $1 \
                 WHERE name = $2 AND (last_used_at IS NULL OR last_used_at < $1 - 60)",
            )
            .bind(now)
            .bind(name)
            .execute(pool)
            .await?
            .rows_affected()
        });
        Ok(())
    }

    pub async fn list_clients(&self) -> Result<Vec<ClientRecord>> {
        let clients = on_pool!(self, |pool| {
            sqlx::query_as(
                "SELECT name, created_at, last_used_at FROM service_clients ORDER BY name",
            )
            .fetch_all(pool)
            .await?
        });
        Ok(clients)
    }

    /// Removes a client; `false` if there was none by that name.
    pub async fn remove_client(&self, name: &str) -> Result<bool> {
        let removed = on_pool!(self, |pool| {
            sqlx::query("DELETE FROM service_clients WHERE name = $1")
                .bind(name)
                .execute(pool)
                .await?
                .rows_affected()
        });
        Ok(removed == 1)
    }
}
