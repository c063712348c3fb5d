//! Loading the keys: signing keys (the Ed25519 key is created on first start and shared by
//! every node through the database) and the refresh-token derivation secret. Key rotation will
//! grow here; the token code receives the keys and knows no database.

use crate::{
    config::{Settings, SigningSettings},
    sealing::{Sealer, is_sealed},
    storage::{SecretRef, Storage, StoredKey},
    tokens::{EDDSA, Ed25519Key, KeySet, random_secret},
};

/// Name of the shared secret from which refresh tokens' successors are derived.
const REFRESH_DERIVATION: &str = "refresh_token_derivation";

/// The keys this node signs and verifies with, creating what is missing on first start.
/// Several nodes starting at once agree: each stores its candidate only if none is there yet,
/// then reads back what is.
pub async fn load(storage: &Storage, settings: &Settings) -> anyhow::Result<KeySet> {
    let sealer = &settings.sealer;
    seal_plain_secrets(storage, sealer).await?;
    let ed25519 = match settings.signing {
        SigningSettings::Hs256(_) => Vec::new(),
        SigningSettings::Eddsa => {
            let mut stored = storage.signing_keys(EDDSA).await?;
            if stored.is_empty() {
                let key = Ed25519Key::generate()?;
                storage
                    .insert_signing_key_if_absent(&StoredKey {
                        generation: 1,
                        kid: key.kid,
                        algorithm: EDDSA.to_owned(),
                        private_key: sealer
                            .seal(&SecretRef::SigningKey(1).context(), &key.pkcs8)?,
                        public_key: key.public_key,
                    })
                    .await?;
                stored = storage.signing_keys(EDDSA).await?;
            }
            stored
                .into_iter()
                .map(|key| {
                    Ok(Ed25519Key {
                        pkcs8: sealer.open(
                            &SecretRef::SigningKey(key.generation).context(),
                            &key.private_key,
                        )?,
                        kid: key.kid,
                        public_key: key.public_key,
                    })
                })
                .collect::<anyhow::Result<_>>()?
        }
    };
    let refresh_secret = shared_secret(storage, sealer, REFRESH_DERIVATION).await?;
    Ok(KeySet {
        ed25519,
        refresh_secret,
    })
}

/// The server secret called `name`, made on first use; sealed in the database when there is
/// a master key.
pub async fn shared_secret(
    storage: &Storage,
    sealer: &Sealer,
    name: &str,
) -> anyhow::Result<Vec<u8>> {
    let context = SecretRef::Shared(name.to_owned()).context();
    let candidate = sealer.seal(&context, &random_secret()?)?;
    let stored = storage.shared_secret(name, &candidate).await?;
    sealer.open(&context, &stored)
}

/// With a master key: seals the secrets stored plain (before there was a key). Several nodes
/// may do it at once; each value changes only if it is still as read.
pub async fn seal_plain_secrets(storage: &Storage, sealer: &Sealer) -> anyhow::Result<()> {
    if !sealer.is_on() {
        return Ok(());
    }
    let changes = storage
        .secret_rows()
        .await?
        .into_iter()
        .filter(|row| !is_sealed(&row.value))
        .map(|row| {
            let sealed = sealer.seal(&row.at.context(), &row.value)?;
            Ok((row, sealed))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    if !changes.is_empty() {
        let sealed = storage.replace_secrets(&changes).await?;
        tracing::info!(
            sealed,
            "the secrets in the database are now encrypted under the master key"
        );
    }
    Ok(())
}

/// `tollgate keys rewrap`: opens every secret with `old` and seals it with `new` (a new
/// master key; no key stores them plain), all in one transaction. Returns how many.
pub async fn rewrap(storage: &Storage, old: &Sealer, new: &Sealer) -> anyhow::Result<u64> {
    seal_plain_secrets(storage, old).await?;
    let changes = storage
        .secret_rows()
        .await?
        .into_iter()
        .map(|row| {
            let context = row.at.context();
            let plain = old.open(&context, &row.value)?;
            let sealed = new.seal(&context, &plain)?;
            Ok((row, sealed))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let count = u64::try_from(changes.len()).unwrap_or(u64::MAX);
    let changed = storage.replace_secrets(&changes).await?;
    if changed != count {
        anyhow::bail!(
            "{changed} of {count} secrets were rewrapped: another process changed them meanwhile; run it again"
        );
    }
    Ok(changed)
}
