//! The WebAuthn relying party: who Tollgate is to authenticators, taken from `--public-url`.
//!
//! A relying-party id is a domain name; browsers refuse IP addresses. A loopback public URL
//! (the default, `http://127.0.0.1:8080`) becomes `http://localhost:<port>`, where passkeys
//! work in every browser; any other IP address leaves passkeys off, with a clear answer.

use url::{Host, Url};
use webauthn_rs::{Webauthn, WebauthnBuilder};

/// The relying party, or why there is none.
pub enum RelyingParty {
    On(Box<Webauthn>),
    Off(&'static str),
}

impl std::fmt::Debug for RelyingParty {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RelyingParty::On(webauthn) => f
                .debug_tuple("On")
                .field(&webauthn.get_allowed_origins())
                .finish(),
            RelyingParty::Off(why) => f.debug_tuple("Off").field(why).finish(),
        }
    }
}

pub const NEEDS_DOMAIN: &str = "Passkeys need Tollgate's public URL (--public-url) to name a host, not an IP address, e.g. https://auth.example.com.";

impl RelyingParty {
    /// The relying party for the UI at `public_url`, named `product` to users.
    pub fn new(public_url: &str, product: &str) -> anyhow::Result<Self> {
        let Some(origin) = origin(public_url)? else {
            tracing::info!("passkeys are off: {NEEDS_DOMAIN}");
            return Ok(RelyingParty::Off(NEEDS_DOMAIN));
        };
        let Some(rp_id) = origin.domain() else {
            return Ok(RelyingParty::Off(NEEDS_DOMAIN));
        };
        let webauthn = WebauthnBuilder::new(rp_id, &origin)
            .and_then(|builder| builder.rp_name(product).build())
            .map_err(|e| anyhow::anyhow!("passkeys cannot be set up for {origin}: {e}"))?;
        Ok(RelyingParty::On(Box::new(webauthn)))
    }

    pub fn webauthn(&self) -> crate::error::Result<&Webauthn> {
        match self {
            RelyingParty::On(webauthn) => Ok(webauthn),
            RelyingParty::Off(why) => Err(crate::error::Error::PasskeysUnavailable(why)),
        }
    }
}

/// The origin browsers will report: the public URL's, with a loopback address as
/// `localhost`; `None` for any other IP address.
fn origin(public_url: &str) -> anyhow::Result<Option<Url>> {
    let mut url = Url::parse(public_url)?;
    url.set_path("");
    let loopback = match url.host() {
        Some(Host::Domain(_)) => return Ok(Some(url)),
        Some(Host::Ipv4(ip)) => ip.is_loopback(),
        Some(Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    };
    if !loopback {
        return Ok(None);
    }
    url.set_host(Some("localhost"))?;
    Ok(Some(url))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins() {
        let origin = |url| origin(url).ok().flatten().map(|u| u.to_string());
        assert_eq!(
            origin("https://auth.example.com").as_deref(),
            Some("https://auth.example.com/")
        );
        assert_eq!(
            origin("http://127.0.0.1:8080").as_deref(),
            Some("http://localhost:8080/")
        );
        assert_eq!(
            origin("http://[::1]:9000").as_deref(),
            Some("http://localhost:9000/")
        );
        assert_eq!(origin("http://10.0.0.5:8080"), None);
    }

    #[test]
    fn relying_party() {
        assert!(matches!(
            RelyingParty::new("https://auth.example.com", "Tollgate"),
            Ok(RelyingParty::On(_))
        ));
        assert!(matches!(
            RelyingParty::new("http://192.168.1.2", "Tollgate"),
            Ok(RelyingParty::Off(_))
        ));
    }
}
