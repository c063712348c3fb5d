//! Loading the keys: signing keys (the Ed25519 key is created on first start and shared by
//! every node through the database) and the refresh-token derivation secret. Key rotation will
//! grow here; the token code receives the keys and knows no database.

use crate::{
    config::{Settings, SigningSettings},
    storage::{Storage, StoredKey},
    tokens::{EDDSA, Ed25519Key, KeySet, random_secret},
};

/// Name of the shared secret from which refresh tokens' successors are derived.
const REFRESH_DERIVATION: &str = "refresh_token_derivation";

/// The keys this node signs and verifies with, creating what is missing on first start.
/// Several nodes starting at once agree: each stores its candidate only if none is there yet,
/// then reads back what is.
pub async fn load(storage: &Storage, settings: &Settings) -> anyhow::Result<KeySet> {
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
                        private_key: key.pkcs8,
                        public_key: key.public_key,
                    })
                    .await?;
                stored = storage.signing_keys(EDDSA).await?;
            }
            stored
                .into_iter()
                .map(|key| Ed25519Key {
                    kid: key.kid,
                    pkcs8: key.private_key,
                    public_key: key.public_key,
                })
                .collect()
        }
    };
    let refresh_secret = storage
        .shared_secret(REFRESH_DERIVATION, &random_secret()?)
        .await?;
    Ok(KeySet {
        ed25519,
        refresh_secret,
    })
}
