//! The keys: signing keys (the first Ed25519 key is created on first start and shared by every
//! node through the database), their rotation, and the server secrets (the refresh-token
//! derivation secret), sealed under the master key if there is one. The token code receives
//! the keys and knows no database.
//!
//! Rotation: a new key is stored with a time to start signing (`activates_at`), some time
//! ahead ([`Settings::key_publish_ahead`]), so the JWKS publishes it before any token carries
//! it and every node has loaded it (each reloads the keys every minute). The key it replaces
//! keeps verifying, and stays published, until every token it signed has expired; then it is
//! deleted.

use crate::{
    clock::unix_now,
    config::{Settings, SigningSettings},
    sealing::{Sealer, is_sealed},
    state::AppState,
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
            if storage.signing_keys(EDDSA).await?.is_empty() {
                store_new_key(storage, sealer, 1, unix_now()).await?;
            }
            signing_keys(storage, sealer).await?
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
/// may do it at once: all of one node's changes apply or none, and the loser reads again.
pub async fn seal_plain_secrets(storage: &Storage, sealer: &Sealer) -> anyhow::Result<()> {
    if !sealer.is_on() {
        return Ok(());
    }
    for _ in 0..5 {
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
        if changes.is_empty() {
            return Ok(());
        }
        if storage.replace_secrets(&changes).await? {
            tracing::info!(
                sealed = changes.len(),
                "the secrets in the database are now encrypted under the master key"
            );
            return Ok(());
        }
    }
    anyhow::bail!("the secrets kept changing while they were being sealed; start again")
}

/// `tollgate keys rewrap`: opens every secret with `old` and seals it with `new` (a new
/// master key; no key stores them plain), in one transaction, all or none. Returns how many.
pub async fn rewrap(storage: &Storage, old: &Sealer, new: &Sealer) -> anyhow::Result<usize> {
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
    if !storage.replace_secrets(&changes).await? {
        anyhow::bail!(
            "a secret changed while they were being rewrapped (is a server still running?); nothing was changed: stop the servers and run it again"
        );
    }
    Ok(changes.len())
}

/// The Ed25519 keys stored, opened.
async fn signing_keys(storage: &Storage, sealer: &Sealer) -> anyhow::Result<Vec<Ed25519Key>> {
    storage
        .signing_keys(EDDSA)
        .await?
        .into_iter()
        .map(|key| {
            Ok(Ed25519Key {
                pkcs8: sealer.open(
                    &SecretRef::SigningKey(key.generation).context(),
                    &key.private_key,
                )?,
                kid: key.kid,
                public_key: key.public_key,
                activates_at: key.activates_at,
            })
        })
        .collect()
}

/// Stores a fresh key as `generation`, signing from `activates_at`. `None` if another node
/// (or the CLI) stored that generation first.
async fn store_new_key(
    storage: &Storage,
    sealer: &Sealer,
    generation: i64,
    activates_at: i64,
) -> anyhow::Result<Option<StoredKey>> {
    let key = Ed25519Key::generate()?;
    let stored = StoredKey {
        generation,
        kid: key.kid,
        algorithm: EDDSA.to_owned(),
        private_key: sealer.seal(&SecretRef::SigningKey(generation).context(), &key.pkcs8)?,
        public_key: key.public_key,
        activates_at,
    };
    Ok(storage
        .insert_signing_key_if_absent(&stored)
        .await?
        .then_some(stored))
}

/// A key made by a rotation.
#[derive(Debug, Clone)]
pub struct Rotated {
    pub generation: i64,
    pub kid: String,
    pub activates_at: i64,
    /// Older keys deleted at once (`retire_previous`).
    pub retired: u64,
}

/// `tollgate keys rotate`: a new signing key that starts signing `activate_in` from now. With
/// `retire_previous` (a leaked key), the older keys are deleted at once: the tokens they signed
/// stop working on every node within a minute, and their users sign in again.
pub async fn rotate(
    storage: &Storage,
    settings: &Settings,
    activate_in: std::time::Duration,
    retire_previous: bool,
) -> anyhow::Result<Rotated> {
    anyhow::ensure!(
        matches!(settings.signing, SigningSettings::Eddsa),
        "keys are rotated under --jwt-algorithm eddsa; an HS256 secret is changed in the configuration"
    );
    let now = unix_now();
    let newest = storage.signing_keys(EDDSA).await?.into_iter().next();
    let generation = newest.as_ref().map_or(1, |key| key.generation + 1);
    let activates_at = now.saturating_add_unsigned(activate_in.as_secs());
    let Some(key) = store_new_key(storage, &settings.sealer, generation, activates_at).await?
    else {
        anyhow::bail!("another rotation stored generation {generation} at the same time");
    };
    let retired = if retire_previous {
        storage.delete_keys_before(EDDSA, generation).await?
    } else {
        0
    };
    Ok(Rotated {
        generation,
        kid: key.kid,
        activates_at,
        retired,
    })
}

/// How long after a newer key starts signing an older one is still kept, beyond the longest
/// token lifetime: clock skew, and nodes that load the newer key up to a minute late.
const RETIRE_MARGIN_SECS: i64 = 5 * 60;

/// A serving node's minute: rotates when `--key-rotation` says so (one node wins; the others
/// find the key stored), deletes keys no live token needs, and loads what is stored now.
pub async fn maintain(state: &AppState) -> anyhow::Result<()> {
    let settings = &state.settings;
    if !matches!(settings.signing, SigningSettings::Eddsa) {
        return Ok(());
    }
    let storage = &state.storage;
    let now = unix_now();
    if let Some(period) = settings.key_rotation {
        let keys = storage.signing_keys(EDDSA).await?;
        let pending = keys.iter().any(|key| key.activates_at > now);
        // (A key stored before rotation existed counts as old: it is replaced soon after
        // the schedule is turned on.)
        let due = keys.first().is_some_and(|newest| {
            newest.activates_at <= now.saturating_sub_unsigned(period.as_secs())
        });
        if due
            && !pending
            && let Some(newest) = keys.first()
            && let Some(key) = store_new_key(
                storage,
                &settings.sealer,
                newest.generation + 1,
                now.saturating_add_unsigned(settings.key_publish_ahead.as_secs()),
            )
            .await?
        {
            tracing::info!(
                kid = %key.kid,
                generation = key.generation,
                activates_at = key.activates_at,
                "scheduled key rotation: a new signing key is published and signs from activates_at"
            );
        }
    }
    let purged = storage.purge_retired_keys(now, RETIRE_MARGIN_SECS).await?;
    if purged > 0 {
        tracing::info!(
            purged,
            "retired signing keys deleted: no live token needs them"
        );
    }
    if state
        .tokens
        .replace_keys(&signing_keys(storage, &settings.sealer).await?)?
    {
        tracing::info!(signing = ?state.tokens.signing_kid(), "signing keys reloaded");
    }
    Ok(())
}
