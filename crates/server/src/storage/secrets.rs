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
