//! Encryption at rest of the secrets kept in the database (signing keys' private halves, the
//! server secrets such as the refresh-token derivation secret, authenticator-app secrets), under
//! a master key the operator keeps outside it (`TOLLGATE_MASTER_KEY` or `--master-key-file`).
//!
//! A sealed value is `TGS1` ‖ key id (8 bytes) ‖ nonce (12) ‖ AES-256-GCM ciphertext and tag
//! (ring). The associated data names what the value is (`totp:42`, `secret:refresh…`), so a
//! sealed value cannot be moved to another row. With a master key, every value must be
//! sealed (plain ones are sealed at start-up); without one, sealed values cannot be read and
//! the server says so.

use std::sync::Arc;

use base64::{
    Engine,
    engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD},
};
use ring::{
    aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey},
    digest::{SHA256, digest},
    rand::{SecureRandom, SystemRandom},
};

const MAGIC: &[u8; 4] = b"TGS1";
const ID_LEN: usize = 8;
const KEY_LEN: usize = 32;

/// Whether a stored value is sealed (else it is plain, from before a master key was set).
pub fn is_sealed(stored: &[u8]) -> bool {
    stored.len() > MAGIC.len() + ID_LEN + NONCE_LEN && stored.starts_with(MAGIC)
}

/// The operator's master key.
pub struct MasterKey {
    key: LessSafeKey,
    id: [u8; ID_LEN],
}

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "MasterKey({})", self.id_text())
    }
}

impl MasterKey {
    /// Reads a key: 32 bytes in base64 (standard or URL-safe, padded or not).
    pub fn parse(text: &str) -> Result<Self, String> {
        let text = text.trim();
        let bytes = URL_SAFE_NO_PAD
            .decode(text.trim_end_matches('='))
            .or_else(|_| STANDARD.decode(text))
            .map_err(
                |_| "a master key is 32 bytes in base64 (see `tollgate keys new-master-key`)",
            )?;
        Self::from_bytes(&bytes)
    }

    /// Reads a key file: the base64 text, or exactly 32 raw bytes.
    pub fn from_file(path: &std::path::Path) -> Result<Self, String> {
        let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
        if bytes.len() == KEY_LEN {
            return Self::from_bytes(&bytes);
        }
        let text = String::from_utf8(bytes)
            .map_err(|_| format!("{}: not a master key", path.display()))?;
        Self::parse(&text).map_err(|e| format!("{}: {e}", path.display()))
    }

    fn from_bytes(bytes: &[u8]) -> Result<Self, String> {
        if bytes.len() != KEY_LEN {
            return Err(format!(
                "a master key is {KEY_LEN} bytes, this one is {}",
                bytes.len()
            ));
        }
        let unbound = UnboundKey::new(&AES_256_GCM, bytes).map_err(|_| "unusable master key")?;
        let mut id = [0u8; ID_LEN];
        let mut named = b"tollgate master key id ".to_vec();
        named.extend_from_slice(bytes);
        id.copy_from_slice(&digest(&SHA256, &named).as_ref()[..ID_LEN]);
        Ok(Self {
            key: LessSafeKey::new(unbound),
            id,
        })
    }

    /// A fresh key, in base64, for the operator to keep.
    pub fn generate() -> anyhow::Result<String> {
        let mut bytes = [0u8; KEY_LEN];
        SystemRandom::new()
            .fill(&mut bytes)
            .map_err(|_| anyhow::anyhow!("system random generator failed"))?;
        Ok(STANDARD.encode(bytes))
    }

    /// The key's public name (no secret), as shown in errors.
    pub fn id_text(&self) -> String {
        URL_SAFE_NO_PAD.encode(self.id)
    }
}

/// Seals and opens stored secrets: with the master key if there is one, else passes values
/// through as they are.
#[derive(Debug, Clone, Default)]
pub struct Sealer(Option<Arc<MasterKey>>);

impl Sealer {
    pub fn new(key: Option<MasterKey>) -> Self {
        Self(key.map(Arc::new))
    }

    /// The master key's public name, if there is a key.
    pub fn key_id(&self) -> Option<String> {
        self.0.as_ref().map(|key| key.id_text())
    }

    pub fn is_on(&self) -> bool {
        self.0.is_some()
    }

    /// The stored form of `plain`, known as `context`.
    pub fn seal(&self, context: &str, plain: &[u8]) -> anyhow::Result<Vec<u8>> {
        let Some(master) = &self.0 else {
            return Ok(plain.to_vec());
        };
        let mut nonce = [0u8; NONCE_LEN];
        SystemRandom::new()
            .fill(&mut nonce)
            .map_err(|_| anyhow::anyhow!("system random generator failed"))?;
        let mut sealed = plain.to_vec();
        master
            .key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(context.as_bytes()),
                &mut sealed,
            )
            .map_err(|_| anyhow::anyhow!("sealing {context} failed"))?;
        let mut out = Vec::with_capacity(MAGIC.len() + ID_LEN + NONCE_LEN + sealed.len());
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&master.id);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&sealed);
        Ok(out)
    }

    /// The plain value of `stored`, known as `context`.
    pub fn open(&self, context: &str, stored: &[u8]) -> anyhow::Result<Vec<u8>> {
        match (&self.0, is_sealed(stored)) {
            (None, false) => Ok(stored.to_vec()),
            (None, true) => anyhow::bail!(
                "{context} is encrypted in the database: give the master key (TOLLGATE_MASTER_KEY or --master-key-file)"
            ),
            (Some(_), false) => anyhow::bail!(
                "{context} is not encrypted in the database although a master key is given; it should have been sealed at start-up"
            ),
            (Some(master), true) => {
                let (id, rest) = stored[MAGIC.len()..].split_at(ID_LEN);
                if id != master.id {
                    anyhow::bail!(
                        "{context} is encrypted under another master key (id {}, this one is {}): give that key, or move to this one with `tollgate keys rewrap`",
                        URL_SAFE_NO_PAD.encode(id),
                        master.id_text()
                    );
                }
                let (nonce, sealed) = rest.split_at(NONCE_LEN);
                let nonce = Nonce::try_assume_unique_for_key(nonce)
                    .map_err(|_| anyhow::anyhow!("{context}: bad nonce"))?;
                let mut buffer = sealed.to_vec();
                let plain = master
                    .key
                    .open_in_place(nonce, Aad::from(context.as_bytes()), &mut buffer)
                    .map_err(|_| {
                        anyhow::anyhow!(
                            "{context} does not open with the master key: altered or misplaced"
                        )
                    })?;
                Ok(plain.to_vec())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn sealer() -> Sealer {
        Sealer::new(Some(
            MasterKey::parse(&MasterKey::generate().unwrap()).unwrap(),
        ))
    }

    #[test]
    fn a_sealed_value_opens_only_as_itself_and_under_its_key() {
        let sealer = sealer();
        let sealed = sealer.seal("totp:1", b"secret bytes").unwrap();
        assert!(is_sealed(&sealed));
        assert!(!sealed.windows(6).any(|w| w == b"secret"));
        assert_eq!(sealer.open("totp:1", &sealed).unwrap(), b"secret bytes");
        // Moved to another row, altered, or opened with another key: refused.
        assert!(sealer.open("totp:2", &sealed).is_err());
        let mut altered = sealed.clone();
        *altered.last_mut().unwrap() ^= 1;
        assert!(sealer.open("totp:1", &altered).is_err());
        let other = self::sealer().open("totp:1", &sealed).unwrap_err();
        assert!(other.to_string().contains("rewrap"), "{other}");
        // Without a key: sealed values are refused with the reason, plain ones pass.
        let none = Sealer::default();
        assert!(
            none.open("totp:1", &sealed)
                .unwrap_err()
                .to_string()
                .contains("master key")
        );
        assert_eq!(none.open("totp:1", b"plain").unwrap(), b"plain");
        // With a key, a plain value is not trusted.
        assert!(sealer.open("totp:1", b"plain").is_err());
        // Two seals of one value differ (fresh nonces).
        assert_ne!(sealed, sealer.seal("totp:1", b"secret bytes").unwrap());
    }

    #[test]
    fn keys_are_read_as_base64_or_raw_and_checked() {
        let text = MasterKey::generate().unwrap();
        let key = MasterKey::parse(&text).unwrap();
        let url_safe = text.replace('+', "-").replace('/', "_").replace('=', "");
        assert_eq!(MasterKey::parse(&url_safe).unwrap().id, key.id);
        assert!(
            MasterKey::parse("c2hvcnQ=")
                .unwrap_err()
                .contains("32 bytes")
        );
        assert!(MasterKey::parse("not base64!").is_err());
        let dir = tempfile::tempdir().unwrap();
        let raw = dir.path().join("raw");
        std::fs::write(&raw, STANDARD.decode(&text).unwrap()).unwrap();
        assert_eq!(MasterKey::from_file(&raw).unwrap().id, key.id);
        let file = dir.path().join("text");
        std::fs::write(&file, format!("{text}\n")).unwrap();
        assert_eq!(MasterKey::from_file(&file).unwrap().id, key.id);
        assert!(format!("{key:?}").starts_with("MasterKey("));
    }
}
