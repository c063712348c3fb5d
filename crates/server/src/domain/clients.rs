//! Service clients: the services that may introspect tokens (RFC 7662), each with a name and a
//! generated secret. The secret is shown once, when the client is added; only its SHA-256 is
//! stored (it is 256 random bits, so no password hashing is needed to protect it).

use base64::{Engine, engine::general_purpose::STANDARD};
use ring::digest;
use subtle::ConstantTimeEq;

use crate::{
    audit::{AuditEvent, AuditKind},
    clock::unix_now,
    error::{Error, Result},
    state::AppState,
    storage::ClientRecord,
    tokens::random_secret,
};

/// A client's name: 1 to 64 of `a-z 0-9 - _ .`, which is also its `client_id`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientName(String);

impl ClientName {
    pub fn parse(raw: &str) -> Result<Self, String> {
        let valid = (1..=64).contains(&raw.len())
            && raw
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"-_.".contains(&b));
        if valid {
            Ok(Self(raw.to_owned()))
        } else {
            Err(format!(
                "client name `{raw}` must be 1 to 64 of a-z, 0-9, `-`, `_` and `.`"
            ))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

fn secret_hash(secret: &str) -> Vec<u8> {
    digest::digest(&digest::SHA256, secret.as_bytes())
        .as_ref()
        .to_vec()
}

/// Adds a client and returns its secret, which is never shown again.
pub async fn add(state: &AppState, name: &ClientName, actor: Option<i64>) -> Result<String> {
    let secret = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(random_secret()?);
    if !state
        .storage
        .insert_client(name.as_str(), &secret_hash(&secret), unix_now())
        .await?
    {
        return Err(Error::ClientNameTaken);
    }
    audit(state, AuditKind::ClientAdded, name.as_str(), actor).await;
    Ok(secret)
}

/// Removes a client: its secret stops working at once.
pub async fn remove(state: &AppState, name: &str, actor: Option<i64>) -> Result<()> {
    if !state.storage.remove_client(name).await? {
        return Err(Error::NotFound("No such client."));
    }
    audit(state, AuditKind::ClientRemoved, name, actor).await;
    Ok(())
}

/// Records a change of the clients: which client, and the admin who made it (`None`: the CLI).
async fn audit(state: &AppState, kind: AuditKind, name: &str, actor: Option<i64>) {
    let mut event = AuditEvent::new(kind, None);
    event.actor_id = actor;
    event.detail = Some(name.to_owned());
    state.audit(event).await;
}

pub async fn list(state: &AppState) -> Result<Vec<ClientRecord>> {
    state.storage.list_clients().await
}

/// The client proven by `Authorization: Basic base64(name:secret)` (RFC 6749 §2.3.1; the
/// name and secret are form-urlencoded inside, which changes nothing for our alphabet).
pub async fn authenticate(state: &AppState, authorization: Option<&str>) -> Result<String> {
    let invalid = || Error::InvalidClient;
    let encoded = authorization
        .and_then(|value| value.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("basic"))
        .map(|(_, rest)| rest.trim())
        .ok_or_else(invalid)?;
    let decoded = STANDARD.decode(encoded).map_err(|_| invalid())?;
    let decoded = String::from_utf8(decoded).map_err(|_| invalid())?;
    let (name, secret) = decoded.split_once(':').ok_or_else(invalid)?;
    let name = ClientName::parse(name).map_err(|_| invalid())?;
    // The same work whether or not the client exists.
    let presented = secret_hash(secret);
    let stored = state.storage.client_secret_hash(name.as_str()).await?;
    let matches = stored.is_some_and(|stored| bool::from(stored.ct_eq(&presented)));
    if !matches {
        return Err(invalid());
    }
    if let Err(e) = state.storage.touch_client(name.as_str(), unix_now()).await {
        tracing::debug!(error = %e, "could not note the client's last use");
    }
    Ok(name.0)
}
