//! Passkeys (WebAuthn credentials), the user handle authenticators keep, and the ceremonies
//! under way between a request for options and the answer to them.

use super::{Storage, factors::drop_orphan_recovery_codes, on_pool};
use crate::error::Result;

/// A registered passkey. `credential` is webauthn-rs's record of it, as JSON.
#[derive(Debug, Clone)]
pub struct PasskeyRecord {
    pub id: i64,
    pub user_id: i64,
    pub name: String,
    pub credential: String,
    pub created_at: i64,
    pub last_used_at: Option<i64>,
}

/// A new passkey to store.
#[derive(Debug, Clone, Copy)]
pub struct NewPasskey<'a> {
    pub user_id: i64,
    pub credential_id: &'a [u8],
    pub name: &'a str,
    pub credential: &'a str,
    pub now: i64,
}

/// A ceremony taken up by its answer.
#[derive(Debug, Clone)]
pub struct Ceremony {
    pub user_id: Option<i64>,
    pub state: String,
}

type PasskeyRow = (i64, i64, String, String, i64, Option<i64>);

const SELECT_PASSKEY: &str =
    "SELECT id, user_id, name, credential, created_at, last_used_at FROM passkeys";

fn passkey((id, user_id, name, credential, created_at, last_used_at): PasskeyRow) -> PasskeyRecord {
    PasskeyRecord {
        id,
        user_id,
        name,
        credential,
        created_at,
        last_used_at,
    }
}

impl Storage {
    /// The user's WebAuthn handle, made (from `fresh`) if they have none yet.
    pub async fn webauthn_handle(&self, user_id: i64, fresh: &[u8]) -> Result<Option<Vec<u8>>> {
        let row: Option<(Option<Vec<u8>>,)> = on_pool!(self, |pool| {
            sqlx::query(
                "UPDATE users SET webauthn_handle = $2 WHERE id = $1 AND webauthn_handle IS NULL",
            )
            .bind(user_id)
            .bind(fresh)
            .execute(pool)
            .await?;
            sqlx::query_as("SELECT webauthn_handle FROM users WHERE id = $1")
                .bind(user_id)
                .fetch_optional(pool)
                .await?
        });
        Ok(row.and_then(|(handle,)| handle))
    }

    /// The user whose WebAuthn handle this is.
    pub async fn user_of_webauthn_handle(&self, handle: &[u8]) -> Result<Option<i64>> {
        let row: Option<(i64,)> = on_pool!(self, |pool| {
            sqlx::query_as("SELECT id FROM users WHERE webauthn_handle = $1")
                .bind(handle)
                .fetch_optional(pool)
                .await?
        });
        Ok(row.map(|(id,)| id))
    }

    /// The user's passkeys, oldest first.
    pub async fn passkeys_of(&self, user_id: i64) -> Result<Vec<PasskeyRecord>> {
        let rows: Vec<PasskeyRow> = on_pool!(self, |pool| {
            sqlx::query_as(&format!("{SELECT_PASSKEY} WHERE user_id = $1 ORDER BY id"))
                .bind(user_id)
                .fetch_all(pool)
                .await?
        });
        Ok(rows.into_iter().map(passkey).collect())
    }

    pub async fn passkey_by_credential_id(
        &self,
        credential_id: &[u8],
    ) -> Result<Option<PasskeyRecord>> {
        let row: Option<PasskeyRow> = on_pool!(self, |pool| {
            sqlx::query_as(&format!("{SELECT_PASSKEY} WHERE credential_id = $1"))
                .bind(credential_id)
                .fetch_optional(pool)
                .await?
        });
        Ok(row.map(passkey))
    }

    /// Stores a new passkey; `None` if that credential is registered already (to anyone).
    pub async fn add_passkey(&self, new: NewPasskey<'_>) -> Result<Option<i64>> {
        let row: Option<(i64,)> = on_pool!(self, |pool| {
            sqlx::query_as(
                "INSERT INTO passkeys (user_id, credential_id, name, credential, created_at) \
                 VALUES ($1, $2, $3, $4, $5) ON CONFLICT (credential_id) DO NOTHING RETURNING id",
            )
            .bind(new.user_id)
            .bind(new.credential_id)
            .bind(new.name)
            .bind(new.credential)
            .bind(new.now)
            .fetch_optional(pool)
            .await?
        });
        Ok(row.map(|(id,)| id))
    }

    /// Records a use: when, and the credential with its updated counter, if the credential
    /// is still `old` (no other use was recorded meanwhile). Returns whether it was.
    pub async fn passkey_used(
        &self,
        id: i64,
        old: &str,
        credential: &str,
        now: i64,
    ) -> Result<bool> {
        let used = on_pool!(self, |pool| {
            sqlx::query(
                "UPDATE passkeys SET credential = $3, last_used_at = $4 \
                 WHERE id = $1 AND credential = $2",
            )
            .bind(id)
            .bind(old)
            .bind(credential)
            .bind(now)
            .execute(pool)
            .await?
            .rows_affected()
        });
        Ok(used == 1)
    }

    /// Renames one of the user's passkeys; `false` if they have no such passkey.
    pub async fn rename_passkey(&self, user_id: i64, id: i64, name: &str) -> Result<bool> {
        let renamed = on_pool!(self, |pool| {
            sqlx::query("UPDATE passkeys SET name = $3 WHERE id = $2 AND user_id = $1")
                .bind(user_id)
                .bind(id)
                .bind(name)
                .execute(pool)
                .await?
                .rows_affected()
        });
        Ok(renamed == 1)
    }

    /// Removes one of the user's passkeys (and the recovery codes, if it was the last factor);
    /// `false` if they have no such passkey.
    pub async fn remove_passkey(&self, user_id: i64, id: i64) -> Result<bool> {
        let removed = on_pool!(self, |pool| {
            let mut tx = pool.begin().await?;
            let removed = sqlx::query("DELETE FROM passkeys WHERE id = $2 AND user_id = $1")
                .bind(user_id)
                .bind(id)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            drop_orphan_recovery_codes!(tx, user_id);
            tx.commit().await?;
            removed
        });
        Ok(removed == 1)
    }

    pub async fn put_ceremony(
        &self,
        token_hash: &[u8],
        user_id: Option<i64>,
        purpose: &str,
        state: &str,
        expires_at: i64,
    ) -> Result<()> {
        on_pool!(self, |pool| {
            sqlx::query(
                "INSERT INTO webauthn_ceremonies (token_hash, user_id, purpose, state, expires_at) \
                 VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(token_hash)
            .bind(user_id)
            .bind(purpose)
            .bind(state)
            .bind(expires_at)
            .execute(pool)
            .await?
            .rows_affected()
        });
        Ok(())
    }

    /// Uses a live ceremony of this purpose up; `None` if there is none (used, expired, or
    /// never made).
    pub async fn take_ceremony(
        &self,
        token_hash: &[u8],
        purpose: &str,
        now: i64,
    ) -> Result<Option<Ceremony>> {
        let row: Option<(Option<i64>, String)> = on_pool!(self, |pool| {
            sqlx::query_as(
                "DELETE FROM webauthn_ceremonies \
                 WHERE token_hash = $1 AND purpose = $2 AND expires_at > $3 \
                 RETURNING user_id, state",
            )
            .bind(token_hash)
            .bind(purpose)
            .bind(now)
            .fetch_optional(pool)
            .await?
        });
        Ok(row.map(|(user_id, state)| Ceremony { user_id, state }))
    }
}
