//! Access tokens: signing keys, claims, issuing and verifying.
//!
//! Tokens are JWTs signed with Ed25519 (the key lives in the database so every node shares it,
//! and its public half is served as a JWKS) or, if the operator chooses, HS256 with a secret.
//! Verification pins the algorithm, looks keys up only by `kid` in the local key set, checks
//! `exp`, `iss` and `aud`, and ignores header fields such as `jku` and `x5u`. Tokens that
//! verified once are remembered in a bounded cache, so a busy client costs one signature check
//! per token rather than per request; `exp` is still checked on every use (and revocation by
//! the caller). The cache keeps the token's SHA-256, not the token, next to its principal:
//! about [`CACHE_ENTRY_BYTES`] per token rather than the token's half kilobyte and more.

use std::{
    collections::HashMap,
    sync::{Arc, RwLock},
    time::Duration,
};

use anyhow::Context;
use api::Role;
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation, errors::ErrorKind};
use ring::{
    digest, hmac,
    rand::{SecureRandom, SystemRandom},
    signature::{Ed25519KeyPair, KeyPair},
};
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};

use crate::{
    clock::{self, unix_now},
    config::{Settings, SigningSettings},
};

/// Longest token we look at; anything longer is refused before any parsing.
const MAX_TOKEN_LEN: usize = 4096;
/// The algorithm name of Ed25519 keys, as stored and as published in the JWKS.
pub const EDDSA: &str = "EdDSA";

/// The key material the token code works with. Loaded (and created on first start) by the
/// domain's `keys` step; this module knows no database.
pub struct KeySet {
    /// Ed25519 signing keys, newest first; the newest whose time has come signs, the others
    /// verify. Empty under HS256.
    pub ed25519: Vec<Ed25519Key>,
    /// The secret from which refresh tokens' successors are derived, shared by every node.
    pub refresh_secret: Vec<u8>,
}

/// An Ed25519 key pair; the private half is secret and never logged.
pub struct Ed25519Key {
    pub kid: String,
    /// PKCS#8 (DER) private key.
    pub pkcs8: Vec<u8>,
    pub public_key: Vec<u8>,
    /// When it starts signing (unix time); published and verifying before that.
    pub activates_at: i64,
}

impl std::fmt::Debug for Ed25519Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ed25519Key")
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

impl Ed25519Key {
    /// A fresh key pair from the system's random generator.
    pub fn generate() -> anyhow::Result<Self> {
        let rng = SystemRandom::new();
        let pkcs8 = Ed25519KeyPair::generate_pkcs8(&rng)
            .map_err(|_| anyhow::anyhow!("generating an Ed25519 key failed"))?;
        let pair = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref())
            .map_err(|_| anyhow::anyhow!("reading back the Ed25519 key failed"))?;
        let public_key = pair.public_key().as_ref().to_vec();
        let kid =
            URL_SAFE_NO_PAD.encode(&digest::digest(&digest::SHA256, &public_key).as_ref()[..12]);
        Ok(Self {
            kid,
            pkcs8: pkcs8.as_ref().to_vec(),
            public_key,
            activates_at: 0,
        })
    }
}

/// 32 random bytes, e.g. a candidate for a shared secret.
pub fn random_secret() -> anyhow::Result<[u8; 32]> {
    let mut secret = [0u8; 32];
    SystemRandom::new()
        .fill(&mut secret)
        .map_err(|_| anyhow::anyhow!("system random generator failed"))?;
    Ok(secret)
}

/// What the verified-token cache holds for one token with today's 22-character session ids and
/// a typical name and address (8 and 20 bytes), in bytes of heap: its entry (key, pointer,
/// bookkeeping), the shared principal, its session id, username and email (each a separate
/// allocation). Measured, allocator overhead included, it is close to this (about 190 bytes
/// before tokens carried the name and address); the cache is bounded by `token_cache_size` ×
/// this many bytes, entries weighed by their actual lengths.
pub const CACHE_ENTRY_BYTES: u64 = 288;

/// The cache's key for a token: its SHA-256. A collision-resistant digest, since a token whose
/// key collided with another's would be taken for it.
type CacheKey = [u8; 32];

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
    /// The session (refresh-token family) the token belongs to.
    pub sid: String,
    /// The user's token version when issued; older versions are revoked.
    pub ver: i64,
    /// The user's name and address when issued, for the services Tollgate protects (identity
    /// headers, introspection). Tokens from before they were added have neither.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub preferred_username: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub email: String,
    /// How the user proved who they are (RFC 8176): `pwd`, `otp`, `hwk`, or Tollgate's
    /// `recovery` for a recovery code.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub amr: Vec<String>,
    /// The user must enrol a second factor before anything else (`--require-mfa-for-role`):
    /// the token is good for enrolment only.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub mfa_enrol: bool,
}

/// Who a verified token speaks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub user_id: i64,
    pub roles: RoleSet,
    /// Unix seconds.
    pub expires_at: i64,
    pub session_id: String,
    pub version: i64,
    pub username: String,
    pub email: String,
    /// The methods the user proved, comma-joined (`pwd,otp`).
    pub amr: Amr,
    /// Good for enrolling a second factor only.
    pub must_enrol: bool,
}

/// How a user proved who they are, as a small set.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Amr(u8);

impl Amr {
    pub const PASSWORD: Amr = Amr(1);
    pub const OTP: Amr = Amr(2);
    pub const HARDWARE_KEY: Amr = Amr(4);
    pub const RECOVERY_CODE: Amr = Amr(8);
    const NAMES: [(Amr, &'static str); 4] = [
        (Amr::PASSWORD, "pwd"),
        (Amr::OTP, "otp"),
        (Amr::HARDWARE_KEY, "hwk"),
        (Amr::RECOVERY_CODE, "recovery"),
    ];

    #[must_use]
    pub fn with(self, other: Amr) -> Amr {
        Amr(self.0 | other.0)
    }

    pub fn contains(self, other: Amr) -> bool {
        self.0 & other.0 == other.0
    }

    /// Whether a second factor (anything but the password) is in.
    pub fn has_second_factor(self) -> bool {
        self.0 & !Amr::PASSWORD.0 != 0
    }

    pub fn names(self) -> Vec<&'static str> {
        Self::NAMES
            .iter()
            .filter(|(amr, _)| self.contains(*amr))
            .map(|(_, name)| *name)
            .collect()
    }

    /// As stored with a session: `pwd,otp`.
    pub fn joined(self) -> String {
        self.names().join(",")
    }

    /// Reads a stored or claimed list; unknown names are ignored.
    pub fn parse<'a>(names: impl IntoIterator<Item = &'a str>) -> Amr {
        names.into_iter().fold(Amr::default(), |amr, name| {
            match Self::NAMES.iter().find(|(_, n)| *n == name.trim()) {
                Some((one, _)) => amr.with(*one),
                None => amr,
            }
        })
    }
}

/// What an access token is issued for.
#[derive(Debug, Clone, Copy)]
pub struct Subject<'a> {
    pub user_id: i64,
    pub username: &'a str,
    pub email: &'a str,
    pub roles: &'a [Role],
    pub session_id: &'a str,
    pub version: i64,
    pub amr: Amr,
    pub must_enrol: bool,
}

/// An opaque refresh token: 256 bits, base64url. Only its hash is ever stored.
#[derive(Clone, PartialEq, Eq)]
pub struct RefreshToken(String);

impl RefreshToken {
    /// Accepts only strings shaped like our tokens, so junk never reaches the database.
    pub fn parse(raw: &str) -> Option<Self> {
        let bytes = URL_SAFE_NO_PAD.decode(raw.trim()).ok()?;
        (bytes.len() == 32).then(|| Self(raw.trim().to_owned()))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for RefreshToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RefreshToken(***)")
    }
}

/// Who a token's claims speak for; claims that do not hang together are invalid.
fn principal_of(claims: AccessClaims) -> Result<Principal, TokenError> {
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
        session_id: claims.sid,
        version: claims.ver,
        amr: Amr::parse(claims.amr.iter().map(String::as_str)),
        must_enrol: claims.mfa_enrol,
        username: claims.preferred_username,
        email: claims.email,
    })
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

    /// The role names, comma-joined in the order of [`Role::ALL`] (`user,admin`): one of eight
    /// fixed strings, so no allocation.
    pub fn joined(self) -> &'static str {
        const JOINED: [&str; 8] = [
            "",
            "user",
            "moderator",
            "user,moderator",
            "admin",
            "user,admin",
            "moderator,admin",
            "user,moderator,admin",
        ];
        JOINED[usize::from(self.0 & 7)]
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
    /// The keys, replaced whole when a rotation is loaded.
    keys: RwLock<Arc<Keys>>,
    validation: Validation,
    issuer: String,
    audience: String,
    ttl: Duration,
    verified: quick_cache::sync::Cache<CacheKey, Arc<Principal>, EntryBytes>,
    rng: SystemRandom,
    /// Derives a refresh token's successor, so parallel refreshes agree on it.
    refresh_key: hmac::Key,
}

/// The signing keys in use: who signs when, who verifies, what is published.
struct Keys {
    /// (activates at, kid, key), newest generation first.
    signers: Vec<(i64, String, EncodingKey)>,
    decoding: HashMap<String, DecodingKey>,
    jwks: serde_json::Value,
}

impl Keys {
    fn hs256(secret: &[u8]) -> Self {
        // A kid that names the secret without revealing it.
        let kid = format!(
            "hs256-{}",
            &hex(digest::digest(&digest::SHA256, secret).as_ref())[..16]
        );
        Self {
            signers: vec![(0, kid.clone(), EncodingKey::from_secret(secret))],
            decoding: HashMap::from([(kid, DecodingKey::from_secret(secret))]),
            // Symmetric keys are never published.
            jwks: serde_json::json!({ "keys": [] }),
        }
    }

    fn ed25519(keys: &[Ed25519Key]) -> anyhow::Result<Self> {
        anyhow::ensure!(!keys.is_empty(), "no Ed25519 signing key loaded");
        // Newest generation first (as stored): the signer is the newest generation whose time
        // has come, whatever the activation times of older ones, so a key made after another
        // that is still waiting supersedes it for good (and the purge, by generation, agrees).
        let signers: Vec<_> = keys
            .iter()
            .map(|k| {
                (
                    k.activates_at,
                    k.kid.clone(),
                    EncodingKey::from_ed_der(&k.pkcs8),
                )
            })
            .collect();
        let decoding = keys
            .iter()
            .map(|k| (k.kid.clone(), DecodingKey::from_ed_der(&k.public_key)))
            .collect();
        let published: Vec<_> = keys
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
        Ok(Self {
            signers,
            decoding,
            jwks: serde_json::json!({ "keys": published }),
        })
    }

    /// The key that signs at `now`: the newest generation whose time has come (else the
    /// oldest).
    fn signer(&self, now: i64) -> Option<&(i64, String, EncodingKey)> {
        self.signers
            .iter()
            .find(|(at, ..)| *at <= now)
            .or_else(|| self.signers.last())
    }
}

impl Tokens {
    /// Builds the signer and verifier from the configured algorithm and the loaded keys.
    pub fn new(settings: &Settings, keys: KeySet) -> anyhow::Result<Self> {
        let rng = SystemRandom::new();
        let (algorithm, signing) = match &settings.signing {
            SigningSettings::Hs256(secret) => (
                Algorithm::HS256,
                Keys::hs256(secret.expose_secret().as_bytes()),
            ),
            SigningSettings::Eddsa => (Algorithm::EdDSA, Keys::ed25519(&keys.ed25519)?),
        };

        let refresh_key = hmac::Key::new(hmac::HMAC_SHA256, &keys.refresh_secret);

        let mut validation = Validation::new(algorithm);
        validation.leeway = 0;
        validation.set_issuer(&[&settings.issuer]);
        validation.set_audience(&[&settings.audience]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        // `sid` and `ver` are required by the claims type itself.

        Ok(Self {
            inner: Arc::new(Inner {
                algorithm,
                keys: RwLock::new(Arc::new(signing)),
                validation,
                issuer: settings.issuer.clone(),
                audience: settings.audience.clone(),
                ttl: settings.access_token_ttl,
                verified: verified_cache(settings.token_cache_size),
                rng,
                refresh_key,
            }),
        })
    }

    fn keys(&self) -> Arc<Keys> {
        match self.inner.keys.read() {
            Ok(keys) => Arc::clone(&keys),
            Err(poisoned) => Arc::clone(&poisoned.into_inner()),
        }
    }

    /// Puts the Ed25519 keys now stored in place of those loaded before (a rotation, a retired
    /// key). Returns whether anything changed. A key that is gone takes the tokens it verified
    /// with it, out of the cache too. Nothing changes under HS256.
    pub fn replace_keys(&self, stored: &[Ed25519Key]) -> anyhow::Result<bool> {
        if self.inner.algorithm != Algorithm::EdDSA {
            return Ok(false);
        }
        let current = self.keys();
        let same = stored.len() == current.signers.len()
            && stored.iter().all(|k| {
                current
                    .signers
                    .iter()
                    .any(|(at, kid, _)| *kid == k.kid && *at == k.activates_at)
            });
        if same {
            return Ok(false);
        }
        let dropped = current
            .decoding
            .keys()
            .any(|kid| !stored.iter().any(|k| &k.kid == kid));
        let fresh = Arc::new(Keys::ed25519(stored)?);
        match self.inner.keys.write() {
            Ok(mut keys) => *keys = fresh,
            Err(poisoned) => *poisoned.into_inner() = fresh,
        }
        if dropped {
            self.inner.verified.clear();
        }
        Ok(true)
    }

    /// Whether the key this node signs with is among `stored_kids` (always, for HS256, whose
    /// secret is configuration, not stored).
    pub fn signing_key_in(&self, stored_kids: &[String]) -> bool {
        self.inner.algorithm == Algorithm::HS256
            || self
                .keys()
                .signer(unix_now())
                .is_some_and(|(_, kid, _)| stored_kids.contains(kid))
    }

    /// The public keys as a JSON Web Key Set: the key that signs, the next one before it
    /// signs, and the previous ones while tokens they signed may live.
    pub fn jwks(&self) -> serde_json::Value {
        self.keys().jwks.clone()
    }

    /// The kid that signs now.
    pub fn signing_kid(&self) -> Option<String> {
        self.keys()
            .signer(unix_now())
            .map(|(_, kid, _)| kid.clone())
    }

    /// Tokens remembered as verified.
    pub fn cached(&self) -> usize {
        self.inner.verified.len()
    }

    pub fn access_token_ttl(&self) -> Duration {
        self.inner.ttl
    }

    /// Signs an access token.
    pub fn issue(&self, subject: Subject<'_>) -> anyhow::Result<IssuedToken> {
        let inner = &self.inner;
        let now = unix_now();
        let claims = AccessClaims {
            sub: subject.user_id.to_string(),
            id: subject.user_id,
            roles: subject
                .roles
                .iter()
                .map(|r| r.as_str().to_owned())
                .collect(),
            iat: now,
            exp: clock::after(now, inner.ttl),
            iss: inner.issuer.clone(),
            aud: inner.audience.clone(),
            jti: self.random_id::<16>()?,
            sid: subject.session_id.to_owned(),
            ver: subject.version,
            preferred_username: subject.username.to_owned(),
            email: subject.email.to_owned(),
            amr: subject.amr.names().into_iter().map(str::to_owned).collect(),
            mfa_enrol: subject.must_enrol,
        };
        let keys = self.keys();
        let (_, kid, encoding) = keys.signer(now).context("no signing key")?;
        let mut header = Header::new(inner.algorithm);
        header.kid = Some(kid.clone());
        let token = jsonwebtoken::encode(&header, &claims, encoding)
            .context("signing an access token failed")?;
        Ok(IssuedToken {
            token,
            expires_in: inner.ttl,
        })
    }

    /// Checks a token and says whom it speaks for.
    pub fn verify(&self, token: &str) -> Result<Arc<Principal>, TokenError> {
        if token.len() > MAX_TOKEN_LEN {
            return Err(TokenError::Invalid);
        }
        let now = unix_now();
        let key = cache_key(token);
        if let Some(principal) = self.inner.verified.get(&key) {
            return if principal.expires_at <= now {
                self.inner.verified.remove(&key);
                Err(TokenError::Expired)
            } else {
                Ok(principal)
            };
        }
        let principal = Arc::new(self.verify_signature(token)?);
        if principal.expires_at <= now {
            return Err(TokenError::Expired);
        }
        self.inner.verified.insert(key, Arc::clone(&principal));
        Ok(principal)
    }

    /// The claims of a valid, unexpired token, checked in full (signature, `exp`, `iss`,
    /// `aud`), without the cache: for introspection, which reports them.
    pub fn verified_claims(&self, token: &str) -> Result<(AccessClaims, Principal), TokenError> {
        let claims = self.decode_claims(token)?;
        if claims.exp <= unix_now() {
            return Err(TokenError::Expired);
        }
        let principal = principal_of(claims.clone())?;
        Ok((claims, principal))
    }

    fn verify_signature(&self, token: &str) -> Result<Principal, TokenError> {
        principal_of(self.decode_claims(token)?)
    }

    fn decode_claims(&self, token: &str) -> Result<AccessClaims, TokenError> {
        let inner = &self.inner;
        if token.len() > MAX_TOKEN_LEN {
            return Err(TokenError::Invalid);
        }
        let header = jsonwebtoken::decode_header(token).map_err(|_| TokenError::Invalid)?;
        if header.alg != inner.algorithm {
            return Err(TokenError::Invalid);
        }
        let keys = self.keys();
        let key = header
            .kid
            .as_deref()
            .and_then(|kid| keys.decoding.get(kid))
            .ok_or(TokenError::Invalid)?;
        let data = jsonwebtoken::decode::<AccessClaims>(token, key, &inner.validation).map_err(
            |e| match e.kind() {
                ErrorKind::ExpiredSignature => TokenError::Expired,
                _ => TokenError::Invalid,
            },
        )?;
        Ok(data.claims)
    }

    /// A fresh random id (session ids, token ids), base64url.
    pub fn random_id<const N: usize>(&self) -> anyhow::Result<String> {
        let mut bytes = [0u8; N];
        self.inner
            .rng
            .fill(&mut bytes)
            .map_err(|_| anyhow::anyhow!("system random generator failed"))?;
        Ok(URL_SAFE_NO_PAD.encode(bytes))
    }

    /// A new refresh token.
    pub fn new_refresh_token(&self) -> anyhow::Result<RefreshToken> {
        Ok(RefreshToken(self.random_id::<32>()?))
    }

    /// The token that replaces `token` when it is rotated. Derived (HMAC-SHA256 under a
    /// server secret) rather than drawn at random, so parallel refreshes with the same token
    /// all hand the client the same successor, and no plaintext token is ever stored.
    pub fn successor(&self, token: &RefreshToken) -> RefreshToken {
        let tag = hmac::sign(&self.inner.refresh_key, token.0.as_bytes());
        RefreshToken(URL_SAFE_NO_PAD.encode(tag.as_ref()))
    }

    /// What the database keeps of a refresh token: its SHA-256.
    pub fn refresh_hash(token: &RefreshToken) -> Vec<u8> {
        digest::digest(&digest::SHA256, token.0.as_bytes())
            .as_ref()
            .to_vec()
    }
}

fn cache_key(token: &str) -> CacheKey {
    let mut key = [0u8; 32];
    key.copy_from_slice(digest::digest(&digest::SHA256, token.as_bytes()).as_ref());
    key
}

/// The verified-token cache, bounded in bytes: room for `tokens` entries of
/// [`CACHE_ENTRY_BYTES`].
fn verified_cache(tokens: usize) -> quick_cache::sync::Cache<CacheKey, Arc<Principal>, EntryBytes> {
    let tokens = tokens.max(1);
    quick_cache::sync::Cache::with_weighter(
        tokens,
        (tokens as u64).saturating_mul(CACHE_ENTRY_BYTES),
        EntryBytes,
    )
}

/// Weighs a cache entry by the heap it takes: fixed parts plus the session id's length.
#[derive(Debug, Clone, Copy)]
struct EntryBytes;

/// The fixed part of an entry: what [`CACHE_ENTRY_BYTES`] holds besides a 22-byte session id,
/// an 8-byte username and a 20-byte email address.
const CACHE_ENTRY_FIXED_BYTES: u64 = CACHE_ENTRY_BYTES - 22 - 8 - 20;

impl quick_cache::Weighter<CacheKey, Arc<Principal>> for EntryBytes {
    fn weight(&self, _key: &CacheKey, principal: &Arc<Principal>) -> u64 {
        let text = principal.session_id.len() + principal.username.len() + principal.email.len();
        CACHE_ENTRY_FIXED_BYTES + text as u64
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn joined_role_names_follow_the_set() {
        for roles in [
            vec![],
            vec![Role::User],
            vec![Role::Admin, Role::User],
            vec![Role::Moderator, Role::Admin],
            Role::ALL.to_vec(),
        ] {
            let set: RoleSet = roles.iter().copied().collect();
            let expected: Vec<&str> = Role::ALL
                .into_iter()
                .filter(|r| roles.contains(r))
                .map(Role::as_str)
                .collect();
            assert_eq!(set.joined(), expected.join(","));
        }
    }
}
