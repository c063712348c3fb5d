//! Access tokens: signing keys, claims, issuing and verifying.
//!
//! Tokens are JWTs signed with Ed25519 (the key lives in the database so every node shares it,
//! and its public half is served as a JWKS) or, if the operator chooses, HS256 with a secret.
//! Verification pins the algorithm, looks keys up only by `kid` in the local key set, checks
//! `exp`, `iss` and `aud`, and ignores header fields such as `jku` and `x5u`. Tokens that
//! verified once are remembered in a bounded cache, so a busy client costs one signature check
//! per token rather than per request; `exp` is still checked on every use.

use std::{
    collections::HashMap,
    sync::Arc,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use anyhow::Context;
use api::Role;
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation, errors::ErrorKind};
use ring::{
    digest,
    rand::{SecureRandom, SystemRandom},
    signature::{Ed25519KeyPair, KeyPair},
};
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};

use crate::{
    config::{Settings, SigningSettings},
    storage::{Storage, StoredKey},
};

/// Longest token we look at; anything longer is refused before any parsing.
const MAX_TOKEN_LEN: usize = 4096;
const EDDSA: &str = "EdDSA";

/// The claims of an access token. `id` repeats `sub` as a number, as the tutorial's clients expect.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AccessClaims {
    pub sub: String,
    pub id: i64,
    pub roles: Vec<String>,
    pub iat: i64,
    pub exp: i64,
    pub iss: String,
    pub aud: String,
    pub jti: String,
}

/// Who a verified token speaks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub user_id: i64,
    pub roles: RoleSet,
    /// Unix seconds.
    pub expires_at: i64,
    pub jti: String,
}

/// A small set of roles.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RoleSet(u8);

impl RoleSet {
    fn bit(role: Role) -> u8 {
        match role {
            Role::User => 1,
            Role::Moderator => 2,
            Role::Admin => 4,
        }
    }

    pub fn contains(self, role: Role) -> bool {
        self.0 & Self::bit(role) != 0
    }

    pub fn iter(self) -> impl Iterator<Item = Role> {
        Role::ALL.into_iter().filter(move |r| self.contains(*r))
    }
}

impl FromIterator<Role> for RoleSet {
    fn from_iter<I: IntoIterator<Item = Role>>(roles: I) -> Self {
        Self(roles.into_iter().fold(0, |bits, r| bits | Self::bit(r)))
    }
}

/// Why a token was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("token expired")]
    Expired,
    #[error("token invalid")]
    Invalid,
}

/// A freshly signed access token.
#[derive(Debug)]
pub struct IssuedToken {
    pub token: String,
    pub expires_in: Duration,
}

#[derive(Clone)]
pub struct Tokens {
    inner: Arc<Inner>,
}

struct Inner {
    algorithm: Algorithm,
    kid: String,
    encoding: EncodingKey,
    decoding: HashMap<String, DecodingKey>,
    validation: Validation,
    issuer: String,
    audience: String,
    ttl: Duration,
    jwks: serde_json::Value,
    verified: quick_cache::sync::Cache<String, Arc<Principal>>,
    rng: SystemRandom,
}

impl Tokens {
    /// Loads the signing keys (creating the Ed25519 key on first start) and builds the verifier.
    pub async fn load(storage: &Storage, settings: &Settings) -> anyhow::Result<Self> {
        let rng = SystemRandom::new();
        let (algorithm, kid, encoding, decoding, jwks_keys) = match &settings.signing {
            SigningSettings::Hs256(secret) => {
                let secret = secret.expose_secret().as_bytes();
                // A kid that names the secret without revealing it.
                let kid = format!(
                    "hs256-{}",
                    &hex(digest::digest(&digest::SHA256, secret).as_ref())[..16]
                );
                let decoding = HashMap::from([(kid.clone(), DecodingKey::from_secret(secret))]);
                // Symmetric keys are never published.
                (
                    Algorithm::HS256,
                    kid,
                    EncodingKey::from_secret(secret),
                    decoding,
                    Vec::new(),
                )
            }
            SigningSettings::Eddsa => {
                let mut keys = storage.signing_keys(EDDSA).await?;
                if keys.is_empty() {
                    storage
                        .insert_signing_key_if_absent(&new_ed25519_key(&rng)?)
                        .await?;
                    keys = storage.signing_keys(EDDSA).await?;
                }
                let newest = keys.first().context("no signing key after creating one")?;
                let encoding = EncodingKey::from_ed_der(&newest.private_key);
                let decoding = keys
                    .iter()
                    .map(|k| (k.kid.clone(), DecodingKey::from_ed_der(&k.public_key)))
                    .collect();
                let jwks_keys = keys
                    .iter()
                    .map(|k| {
                        serde_json::json!({
                            "kty": "OKP",
                            "crv": "Ed25519",
                            "alg": EDDSA,
                            "use": "sig",
                            "kid": k.kid,
                            "x": URL_SAFE_NO_PAD.encode(&k.public_key),
                        })
                    })
                    .collect();
                (
                    Algorithm::EdDSA,
                    newest.kid.clone(),
                    encoding,
                    decoding,
                    jwks_keys,
                )
            }
        };

        let mut validation = Validation::new(algorithm);
        validation.leeway = 0;
        validation.set_issuer(&[&settings.issuer]);
        validation.set_audience(&[&settings.audience]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);

        Ok(Self {
            inner: Arc::new(Inner {
                algorithm,
                kid,
                encoding,
                decoding,
                validation,
                issuer: settings.issuer.clone(),
                audience: settings.audience.clone(),
                ttl: settings.access_token_ttl,
                jwks: serde_json::json!({ "keys": jwks_keys }),
                verified: quick_cache::sync::Cache::new(settings.token_cache_size),
                rng,
            }),
        })
    }

    /// The public keys as a JSON Web Key Set.
    pub fn jwks(&self) -> &serde_json::Value {
        &self.inner.jwks
    }

    pub fn access_token_ttl(&self) -> Duration {
        self.inner.ttl
    }

    /// Signs an access token for the user.
    pub fn issue(&self, user_id: i64, roles: &[Role]) -> anyhow::Result<IssuedToken> {
        let inner = &self.inner;
        let now = unix_now();
        let mut jti = [0u8; 16];
        inner
            .rng
            .fill(&mut jti)
            .map_err(|_| anyhow::anyhow!("system random generator failed"))?;
        let claims = AccessClaims {
            sub: user_id.to_string(),
            id: user_id,
            roles: roles.iter().map(|r| r.as_str().to_owned()).collect(),
            iat: now,
            exp: now + i64::try_from(inner.ttl.as_secs()).unwrap_or(i64::MAX / 2),
            iss: inner.issuer.clone(),
            aud: inner.audience.clone(),
            jti: URL_SAFE_NO_PAD.encode(jti),
        };
        let mut header = Header::new(inner.algorithm);
        header.kid = Some(inner.kid.clone());
        let token = jsonwebtoken::encode(&header, &claims, &inner.encoding)
            .context("signing an access token failed")?;
        Ok(IssuedToken {
            token,
            expires_in: inner.ttl,
        })
    }

    /// Checks a token and says whom it speaks for.
    pub fn verify(&self, token: &str) -> Result<Arc<Principal>, TokenError> {
        let now = unix_now();
        if let Some(principal) = self.inner.verified.get(token) {
            return if principal.expires_at <= now {
                self.inner.verified.remove(token);
                Err(TokenError::Expired)
            } else {
                Ok(principal)
            };
        }
        let principal = Arc::new(self.verify_signature(token)?);
        if principal.expires_at <= now {
            return Err(TokenError::Expired);
        }
        self.inner
            .verified
            .insert(token.to_owned(), Arc::clone(&principal));
        Ok(principal)
    }

    fn verify_signature(&self, token: &str) -> Result<Principal, TokenError> {
        let inner = &self.inner;
        if token.len() > MAX_TOKEN_LEN {
            return Err(TokenError::Invalid);
        }
        let header = jsonwebtoken::decode_header(token).map_err(|_| TokenError::Invalid)?;
        if header.alg != inner.algorithm {
            return Err(TokenError::Invalid);
        }
        let key = header
            .kid
            .as_deref()
            .and_then(|kid| inner.decoding.get(kid))
            .ok_or(TokenError::Invalid)?;
        let data = jsonwebtoken::decode::<AccessClaims>(token, key, &inner.validation).map_err(
            |e| match e.kind() {
                ErrorKind::ExpiredSignature => TokenError::Expired,
                _ => TokenError::Invalid,
            },
        )?;
        let claims = data.claims;
        if claims.sub != claims.id.to_string() {
            return Err(TokenError::Invalid);
        }
        let roles = claims
            .roles
            .iter()
            .map(|name| Role::parse(name).map_err(|_| TokenError::Invalid))
            .collect::<Result<RoleSet, _>>()?;
        Ok(Principal {
            user_id: claims.id,
            roles,
            expires_at: claims.exp,
            jti: claims.jti,
        })
    }
}

fn new_ed25519_key(rng: &SystemRandom) -> anyhow::Result<StoredKey> {
    let pkcs8 = Ed25519KeyPair::generate_pkcs8(rng)
        .map_err(|_| anyhow::anyhow!("generating an Ed25519 key failed"))?;
    let pair = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref())
        .map_err(|_| anyhow::anyhow!("reading back the Ed25519 key failed"))?;
    let public_key = pair.public_key().as_ref().to_vec();
    let kid = URL_SAFE_NO_PAD.encode(&digest::digest(&digest::SHA256, &public_key).as_ref()[..12]);
    Ok(StoredKey {
        generation: 1,
        kid,
        algorithm: EDDSA.to_owned(),
        private_key: pkcs8.as_ref().to_vec(),
        public_key,
    })
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
