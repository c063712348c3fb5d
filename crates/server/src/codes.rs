//! One-time codes and link tokens for the mail flows (verification, reset, email change).
//!
//! A mail carries both: an 8-digit code to type, and a link with a 256-bit token. Neither is
//! stored. The link token is kept as its SHA-256 (it is as strong as a key). The code is kept
//! as an HMAC-SHA256 under a server secret, bound to the user and the purpose: 10^8 values
//! would fall to a plain hash in seconds should the database leak.

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use ring::{
    digest, hmac,
    rand::{SecureRandom, SystemRandom},
};
use subtle::ConstantTimeEq;

/// Digits in a code.
pub const CODE_DIGITS: usize = 8;

/// Recovery codes in a set.
pub const RECOVERY_CODES: usize = 10;
const RECOVERY_CODE_CHARS: usize = 10;
/// Crockford's base 32, lower case: no `i`, `l`, `o`, `u` to misread.
const RECOVERY_ALPHABET: &[u8; 32] = b"0123456789abcdefghjkmnpqrstvwxyz";

/// A code and link token just drawn, to put in a mail; only their hashes are stored.
pub struct OneTime {
    /// `1234 5678`: the code as shown, in two groups of four.
    pub code: String,
    /// The token for the link, base64url.
    pub link: String,
    pub code_hash: Vec<u8>,
    pub link_hash: Vec<u8>,
}

impl std::fmt::Debug for OneTime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("OneTime(…)")
    }
}

/// Draws and checks codes; holds the server secret they are keyed with.
#[derive(Clone)]
pub struct Codes {
    key: hmac::Key,
    rng: SystemRandom,
}

impl Codes {
    pub fn new(secret: &[u8]) -> Self {
        Self {
            key: hmac::Key::new(hmac::HMAC_SHA256, secret),
            rng: SystemRandom::new(),
        }
    }

    /// A fresh code and link token for `user_id` and `purpose`.
    pub fn draw(&self, user_id: i64, purpose: &str) -> anyhow::Result<OneTime> {
        let code = self.uniform_code()?;
        let mut link = [0u8; 32];
        self.rng
            .fill(&mut link)
            .map_err(|_| anyhow::anyhow!("system random generator failed"))?;
        let link = URL_SAFE_NO_PAD.encode(link);
        Ok(OneTime {
            code_hash: self.code_hash(user_id, purpose, &code),
            link_hash: link_hash(&link),
            code: format!("{} {}", &code[..4], &code[4..]),
            link,
        })
    }

    /// Whether `typed` is the code whose hash is `stored`, in constant time.
    pub fn matches(&self, user_id: i64, purpose: &str, typed: &str, stored: &[u8]) -> bool {
        match normalize_code(typed) {
            Some(code) => bool::from(self.code_hash(user_id, purpose, &code).ct_eq(stored)),
            None => false,
        }
    }

    /// A fresh set of [`RECOVERY_CODES`] recovery codes for `user_id`, as shown
    /// (`abcde-12345`), and their hashes.
    pub fn recovery_codes(&self, user_id: i64) -> anyhow::Result<(Vec<String>, Vec<Vec<u8>>)> {
        let mut shown = Vec::with_capacity(RECOVERY_CODES);
        let mut hashes = Vec::with_capacity(RECOVERY_CODES);
        for _ in 0..RECOVERY_CODES {
            let mut bytes = [0u8; RECOVERY_CODE_CHARS];
            self.rng
                .fill(&mut bytes)
                .map_err(|_| anyhow::anyhow!("system random generator failed"))?;
            // 32 symbols: each byte's low five bits pick one without bias.
            let code: String = bytes
                .iter()
                .map(|b| char::from(RECOVERY_ALPHABET[usize::from(b & 31)]))
                .collect();
            hashes.push(self.code_hash(user_id, "recovery", &code));
            shown.push(format!("{}-{}", &code[..5], &code[5..]));
        }
        Ok((shown, hashes))
    }

    /// The stored form of a typed recovery code, if it can be one (case, spaces and dashes
    /// do not matter; `i`, `l` and `o` are read as `1`, `1` and `0`).
    pub fn recovery_hash(&self, user_id: i64, typed: &str) -> Option<Vec<u8>> {
        let code: String = typed
            .chars()
            .filter(|c| !c.is_whitespace() && *c != '-')
            .map(|c| match c.to_ascii_lowercase() {
                'i' | 'l' => '1',
                'o' => '0',
                c => c,
            })
            .collect();
        let valid = code.len() == RECOVERY_CODE_CHARS
            && code.bytes().all(|b| RECOVERY_ALPHABET.contains(&b));
        valid.then(|| self.code_hash(user_id, "recovery", &code))
    }

    fn code_hash(&self, user_id: i64, purpose: &str, digits: &str) -> Vec<u8> {
        let message = format!("{purpose}\0{user_id}\0{digits}");
        hmac::sign(&self.key, message.as_bytes()).as_ref().to_vec()
    }

    /// Eight decimal digits, each value equally likely (rejection sampling).
    fn uniform_code(&self) -> anyhow::Result<String> {
        const RANGE: u32 = 100_000_000;
        // The largest multiple of RANGE that fits, so `value % RANGE` has no bias.
        const ZONE: u32 = u32::MAX - (u32::MAX % RANGE);
        loop {
            let mut bytes = [0u8; 4];
            self.rng
                .fill(&mut bytes)
                .map_err(|_| anyhow::anyhow!("system random generator failed"))?;
            let value = u32::from_le_bytes(bytes);
            if value < ZONE {
                return Ok(format!("{:08}", value % RANGE));
            }
        }
    }
}

/// What the database keeps of a link token.
pub fn link_hash(token: &str) -> Vec<u8> {
    digest::digest(&digest::SHA256, token.as_bytes())
        .as_ref()
        .to_vec()
}

/// The digits of a typed code: spaces and dashes are ignored; anything else but exactly
/// [`CODE_DIGITS`] digits is no code.
pub fn normalize_code(typed: &str) -> Option<String> {
    let digits: String = typed
        .chars()
        .filter(|c| !c.is_whitespace() && *c != '-')
        .collect();
    (digits.len() == CODE_DIGITS && digits.bytes().all(|b| b.is_ascii_digit())).then_some(digits)
}

/// Whether `raw` can be a link token (43 base64url characters); checked before any look-up.
pub fn plausible_link(raw: &str) -> bool {
    raw.len() == 43
        && raw
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_code_matches_its_user_and_purpose_only() {
        let codes = Codes::new(b"secret");
        let drawn = codes.draw(7, "reset").unwrap();
        assert_eq!(drawn.code.len(), 9);
        assert!(codes.matches(7, "reset", &drawn.code, &drawn.code_hash));
        assert!(codes.matches(7, "reset", &drawn.code.replace(' ', "-"), &drawn.code_hash));
        assert!(!codes.matches(8, "reset", &drawn.code, &drawn.code_hash));
        assert!(!codes.matches(7, "verify", &drawn.code, &drawn.code_hash));
        assert!(!Codes::new(b"other").matches(7, "reset", &drawn.code, &drawn.code_hash));
        assert!(plausible_link(&drawn.link));
        assert_eq!(link_hash(&drawn.link), drawn.link_hash);
    }

    #[test]
    fn only_eight_digits_make_a_code() {
        assert_eq!(normalize_code(" 1234-5678 ").as_deref(), Some("12345678"));
        assert_eq!(normalize_code("1234567"), None);
        assert_eq!(normalize_code("123456789"), None);
        assert_eq!(normalize_code("1234567a"), None);
        assert_eq!(normalize_code("１２３４５６７８"), None);
        assert!(!plausible_link("short"));
    }

    #[test]
    fn recovery_codes_are_read_forgivingly_and_bound_to_their_user() {
        let codes = Codes::new(b"secret");
        let (shown, hashes) = codes.recovery_codes(3).unwrap();
        assert_eq!(shown.len(), RECOVERY_CODES);
        assert_eq!(shown[0].len(), 11);
        let typed = shown[0].to_uppercase().replace('-', " ");
        assert_eq!(codes.recovery_hash(3, &typed).as_ref(), Some(&hashes[0]));
        assert_ne!(codes.recovery_hash(4, &shown[0]).as_ref(), Some(&hashes[0]));
        assert_eq!(codes.recovery_hash(3, "short"), None);
        let distinct: std::collections::HashSet<_> = shown.iter().collect();
        assert_eq!(distinct.len(), RECOVERY_CODES);
    }

    #[test]
    fn codes_vary() {
        let codes = Codes::new(b"secret");
        let drawn: std::collections::HashSet<String> =
            (0..50).map(|_| codes.draw(1, "x").unwrap().code).collect();
        assert!(drawn.len() > 45);
    }
}
