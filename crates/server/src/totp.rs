//! TOTP (RFC 6238) as authenticator apps speak it: SHA-1, 6 digits, 30-second steps, one step
//! of clock skew either way. Which step a code matched is returned, so the caller can accept
//! each step once.

use totp_rs::{Builder, Secret, Totp};

/// Bytes of a new secret (160 bits, RFC 4226's recommendation).
pub const SECRET_BYTES: usize = 20;

/// An authenticator app's view of one secret.
pub struct Authenticator {
    totp: Totp,
}

impl std::fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Authenticator(…)")
    }
}

impl Authenticator {
    /// `issuer` and `account` label the entry in the user's app.
    pub fn new(secret: &[u8], issuer: &str, account: &str) -> anyhow::Result<Self> {
        // The otpauth label cannot hold `:`; nobody needs one there.
        let issuer = issuer.replace(':', " ");
        let totp = Builder::new()
            .with_secret(Secret::from(secret))
            .with_issuer(Some(issuer))
            .with_account_name(account.replace(':', " "))
            .build()
            .map_err(|e| anyhow::anyhow!("TOTP set-up failed: {e}"))?;
        Ok(Self { totp })
    }

    /// The secret as typed into an app by hand (base32).
    pub fn secret_base32(&self) -> String {
        self.totp.secret().to_base32()
    }

    /// The `otpauth://totp/…` URI a QR code carries.
    pub fn uri(&self) -> anyhow::Result<String> {
        self.totp
            .to_url()
            .map_err(|e| anyhow::anyhow!("TOTP URI failed: {e}"))
    }

    /// The step (unix time / 30) whose code `typed` is, within one step of `now`; spaces are
    /// ignored. Compared in constant time.
    pub fn step_of(&self, typed: &str, now: u64) -> Option<i64> {
        let digits: String = typed.chars().filter(|c| !c.is_whitespace()).collect();
        let step = self.totp.check(&digits, now)?;
        i64::try_from(step).ok()
    }

    /// The code for the step holding `time` (tests, and nothing else, need it).
    pub fn code_at(&self, time: u64) -> String {
        self.totp.generate(time).to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_match_their_step_and_the_neighbours_only() {
        let app = Authenticator::new(&[7u8; SECRET_BYTES], "Acme: Auth", "alice").unwrap();
        let now = 1_800_000_015;
        let step = i64::try_from(now / 30).unwrap();
        assert_eq!(app.step_of(&app.code_at(now), now), Some(step));
        assert_eq!(app.step_of(&app.code_at(now - 30), now), Some(step - 1));
        assert_eq!(app.step_of(&app.code_at(now + 30), now), Some(step + 1));
        assert_eq!(app.step_of(&app.code_at(now - 60), now), None);
        assert_eq!(app.step_of(&app.code_at(now + 60), now), None);
        let code = app.code_at(now);
        assert_eq!(
            app.step_of(&format!("{} {}", &code[..3], &code[3..]), now),
            Some(step)
        );
        assert_eq!(app.step_of("12345", now), None);
        assert_eq!(app.step_of("abcdef", now), None);
        let uri = app.uri().unwrap();
        assert!(uri.starts_with("otpauth://totp/"), "{uri}");
        assert!(uri.contains(&app.secret_base32()), "{uri}");
    }
}
