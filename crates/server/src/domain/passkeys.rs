//! Passkeys and security keys (WebAuthn): registering several, naming and removing them, and
//! proving one, as the second step of a sign-in, as a step-up, or as the whole sign-in (a
//! discoverable credential: no username typed).
//!
//! Between the request for options and the answer, the server's half of the ceremony waits in
//! the database (any node may take the answer), under the SHA-256 of an opaque token the
//! client holds; it is single use and lives [`CEREMONY_LIFETIME`].

use std::time::Duration;

use serde::{Serialize, de::DeserializeOwned};
use webauthn_rs::prelude::{
    CreationChallengeResponse, DiscoverableAuthentication, Passkey, PasskeyAuthentication,
    PasskeyRegistration, PublicKeyCredential, RegisterPublicKeyCredential,
    RequestChallengeResponse, Uuid,
};
use webauthn_rs_proto::ResidentKeyRequirement;

use super::{
    accounts::{SignedIn, admit, open_session},
    mfa::{confirm_adding_factor, required_for, user},
    sessions::{Client, issue_access},
};
use crate::{
    audit::{AuditEvent, AuditKind},
    clock::{self, unix_now},
    codes,
    error::{Error, Result},
    state::AppState,
    storage::{NewPasskey, PasskeyRecord, UserRecord},
    tokens::{self, Amr, IssuedToken, Principal},
};

/// How long a ceremony waits for the authenticator's answer.
pub const CEREMONY_LIFETIME: Duration = Duration::from_secs(5 * 60);
/// Passkeys one account may have.
pub const MAX_PASSKEYS: usize = 20;
/// Characters a passkey's name may have.
pub const MAX_NAME_CHARS: usize = 64;

/// What a ceremony is for; the answer must be for the same.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Purpose {
    Register,
    /// A named user's passkey: a second step, or a step-up.
    Authenticate,
    /// Whoever's passkey it turns out to be: a sign-in with no username.
    Discover,
}

impl Purpose {
    fn as_str(self) -> &'static str {
        match self {
            Purpose::Register => "register",
            Purpose::Authenticate => "authenticate",
            Purpose::Discover => "discover",
        }
    }
}

/// Stores the server's half of a ceremony; returns the token for the client.
async fn put_ceremony(
    state: &AppState,
    user_id: Option<i64>,
    purpose: Purpose,
    ceremony: &impl Serialize,
) -> Result<String> {
    let token = state.tokens.random_id::<32>()?;
    let json = serde_json::to_string(ceremony).map_err(anyhow::Error::from)?;
    state
        .storage
        .put_ceremony(
            &codes::link_hash(&token),
            user_id,
            purpose.as_str(),
            &json,
            clock::after(unix_now(), CEREMONY_LIFETIME),
        )
        .await?;
    Ok(token)
}

/// Takes up a ceremony of `purpose` made for `user_id` (`None`: for nobody yet).
async fn take_ceremony<T: DeserializeOwned>(
    state: &AppState,
    token: &str,
    purpose: Purpose,
    user_id: Option<i64>,
) -> Result<T> {
    let ceremony = state
        .storage
        .take_ceremony(
            &codes::link_hash(token.trim()),
            purpose.as_str(),
            unix_now(),
        )
        .await?
        .filter(|c| c.user_id == user_id)
        .ok_or(Error::CeremonyExpired)?;
    Ok(serde_json::from_str(&ceremony.state).map_err(anyhow::Error::from)?)
}

/// A stored passkey, as webauthn-rs knows it.
fn credential(record: &PasskeyRecord) -> Result<Passkey> {
    Ok(serde_json::from_str(&record.credential).map_err(anyhow::Error::from)?)
}

fn to_json(passkey: &Passkey) -> Result<String> {
    Ok(serde_json::to_string(passkey).map_err(anyhow::Error::from)?)
}

/// A passkey's name: trimmed, 1 to [`MAX_NAME_CHARS`] characters, no control characters.
pub fn parse_name(raw: &str) -> Result<String> {
    let name = raw.trim();
    if name.is_empty()
        || name.chars().count() > MAX_NAME_CHARS
        || name.chars().any(char::is_control)
    {
        return Err(Error::BadBody {
            status: axum::http::StatusCode::BAD_REQUEST,
            message: format!(
                "A passkey's name must have 1 to {MAX_NAME_CHARS} characters and no control characters."
            ),
        });
    }
    Ok(name.to_owned())
}

/// Starts registering a passkey, after [`confirm_adding_factor`] (as for an authenticator app:
/// a stolen access token cannot give the thief a way in).
pub async fn begin_registration(
    state: &AppState,
    principal: &Principal,
    current_password: Option<&str>,
    client: &Client,
) -> Result<(String, CreationChallengeResponse)> {
    let webauthn = state.relying_party.webauthn()?;
    let user = user(state, principal.user_id).await?;
    confirm_adding_factor(state, principal, &user, current_password, client).await?;
    let existing = state.storage.passkeys_of(user.id).await?;
    if existing.len() >= MAX_PASSKEYS {
        return Err(Error::TooManyPasskeys);
    }
    let exclude = existing
        .iter()
        .map(|record| credential(record).map(|p| p.cred_id().clone()))
        .collect::<Result<Vec<_>>>()?;
    let handle = user_handle(state, user.id).await?;
    let (mut options, registration) = webauthn
        .start_passkey_registration(handle, &user.username, &user.username, Some(exclude))
        .map_err(|e| anyhow::anyhow!("passkey registration could not start: {e}"))?;
    // A discoverable credential, so the passkey alone can sign in later.
    if let Some(selection) = options.public_key.authenticator_selection.as_mut() {
        selection.resident_key = Some(ResidentKeyRequirement::Required);
        selection.require_resident_key = true;
    }
    let ceremony = put_ceremony(state, Some(user.id), Purpose::Register, &registration).await?;
    Ok((ceremony, options))
}

/// The user's handle for authenticators, made at their first passkey.
async fn user_handle(state: &AppState, user_id: i64) -> Result<Uuid> {
    let fresh = tokens::random_secret()?;
    let stored = state
        .storage
        .webauthn_handle(user_id, &fresh[..16])
        .await?
        .ok_or(Error::InvalidToken)?;
    Uuid::from_slice(&stored).map_err(|e| Error::Internal(anyhow::anyhow!("bad handle: {e}")))
}

/// A registered passkey, with the recovery codes if it is the account's first factor, and an
/// access token for the session, which has just proven it.
#[derive(Debug)]
pub struct Registered {
    pub passkey: PasskeyRecord,
    pub recovery_codes: Option<Vec<String>>,
    pub access: IssuedToken,
}

pub async fn finish_registration(
    state: &AppState,
    principal: &Principal,
    ceremony: &str,
    name: &str,
    answer: &RegisterPublicKeyCredential,
    client: &Client,
) -> Result<Registered> {
    let webauthn = state.relying_party.webauthn()?;
    let name = parse_name(name)?;
    let user = user(state, principal.user_id).await?;
    let registration: PasskeyRegistration =
        take_ceremony(state, ceremony, Purpose::Register, Some(user.id)).await?;
    let passkey = webauthn
        .finish_passkey_registration(answer, &registration)
        .map_err(|e| {
            tracing::debug!(error = %e, "passkey registration refused");
            Error::PasskeyRejected
        })?;
    if state.storage.passkeys_of(user.id).await?.len() >= MAX_PASSKEYS {
        return Err(Error::TooManyPasskeys);
    }
    let now = unix_now();
    let id = state
        .storage
        .add_passkey(NewPasskey {
            user_id: user.id,
            credential_id: passkey.cred_id().as_ref(),
            name: &name,
            credential: &to_json(&passkey)?,
            now,
        })
        .await?
        .ok_or(Error::PasskeyExists)?;
    // The first factor brings recovery codes, for the day the passkey is lost.
    let recovery_codes = if user.has_second_factor() {
        None
    } else {
        let (codes, hashes) = state.codes.recovery_codes(user.id)?;
        state
            .storage
            .replace_recovery_codes(user.id, &hashes)
            .await?;
        Some(codes)
    };
    let amr = principal.amr.with(Amr::HARDWARE_KEY);
    state
        .storage
        .note_factor_proven(&principal.session_id, &amr.joined(), now)
        .await?;
    state
        .audit(AuditEvent {
            ip: client.ip.clone(),
            detail: Some(format!("passkey: {name}")),
            ..AuditEvent::new(AuditKind::MfaEnrolled, Some(user.id))
        })
        .await;
    // Reloaded: the user has a factor now, so the token is no longer for enrolment only.
    let user = self::user(state, user.id).await?;
    let access = issue_access(state, &user, &principal.session_id, amr)?;
    Ok(Registered {
        passkey: PasskeyRecord {
            id,
            user_id: user.id,
            name,
            credential: String::new(),
            created_at: now,
            last_used_at: None,
        },
        recovery_codes,
        access,
    })
}

pub async fn list(state: &AppState, user_id: i64) -> Result<Vec<PasskeyRecord>> {
    state.storage.passkeys_of(user_id).await
}

pub async fn rename(state: &AppState, user_id: i64, id: i64, name: &str) -> Result<()> {
    let name = parse_name(name)?;
    if state.storage.rename_passkey(user_id, id, &name).await? {
        Ok(())
    } else {
        Err(Error::NotFound("No such passkey."))
    }
}

/// Removes one of the caller's passkeys; not the last factor of a user whose role requires
/// one.
pub async fn remove(
    state: &AppState,
    principal: &Principal,
    id: i64,
    client: &Client,
) -> Result<()> {
    let user = user(state, principal.user_id).await?;
    let passkeys = state.storage.passkeys_of(user.id).await?;
    let Some(passkey) = passkeys.iter().find(|p| p.id == id) else {
        return Err(Error::NotFound("No such passkey."));
    };
    let last_factor = passkeys.len() == 1 && !user.has_totp;
    if last_factor && required_for(state, &user.roles) {
        return Err(Error::FactorRequired);
    }
    if !state.storage.remove_passkey(user.id, id).await? {
        return Err(Error::NotFound("No such passkey."));
    }
    state
        .audit(AuditEvent {
            ip: client.ip.clone(),
            detail: Some(format!("passkey: {}", passkey.name)),
            ..AuditEvent::new(AuditKind::MfaRemoved, Some(user.id))
        })
        .await;
    Ok(())
}

/// Options to prove one of `user`'s passkeys (a second step or a step-up).
pub async fn begin_authentication(
    state: &AppState,
    user: &UserRecord,
) -> Result<(String, RequestChallengeResponse)> {
    let webauthn = state.relying_party.webauthn()?;
    let passkeys = state
        .storage
        .passkeys_of(user.id)
        .await?
        .iter()
        .map(credential)
        .collect::<Result<Vec<_>>>()?;
    if passkeys.is_empty() {
        return Err(Error::NotFound("No passkey is registered."));
    }
    let (options, authentication) = webauthn
        .start_passkey_authentication(&passkeys)
        .map_err(|e| anyhow::anyhow!("passkey authentication could not start: {e}"))?;
    let ceremony =
        put_ceremony(state, Some(user.id), Purpose::Authenticate, &authentication).await?;
    Ok((ceremony, options))
}

/// Checks an answer to [`begin_authentication`] for `user`: whether one of their passkeys
/// signed it. An expired or foreign ceremony is an error of its own.
pub async fn authenticate(
    state: &AppState,
    user: &UserRecord,
    ceremony: &str,
    answer: &PublicKeyCredential,
) -> Result<bool> {
    let webauthn = state.relying_party.webauthn()?;
    let authentication: PasskeyAuthentication =
        take_ceremony(state, ceremony, Purpose::Authenticate, Some(user.id)).await?;
    let result = match webauthn.finish_passkey_authentication(answer, &authentication) {
        Ok(result) => result,
        Err(e) => {
            tracing::debug!(error = %e, "passkey assertion refused");
            return Ok(false);
        }
    };
    let owned = state
        .storage
        .passkey_by_credential_id(result.cred_id().as_ref())
        .await?
        .is_some_and(|p| p.user_id == user.id);
    Ok(owned && note_use(state, &result).await?)
}

/// Records a use: the counter and backup state the authentication reported. `false` (not
/// accepted) if the counter is not past the one stored now, which another ceremony begun
/// alongside this one may have moved on since (a cloned authenticator, or a replay), or if
/// such a use is being recorded at the same moment.
async fn note_use(
    state: &AppState,
    result: &webauthn_rs::prelude::AuthenticationResult,
) -> Result<bool> {
    let Some(current) = state
        .storage
        .passkey_by_credential_id(result.cred_id().as_ref())
        .await?
    else {
        return Ok(false);
    };
    let stored: serde_json::Value =
        serde_json::from_str(&current.credential).map_err(anyhow::Error::from)?;
    let stored_counter = stored["cred"]["counter"].as_u64().unwrap_or(0);
    if result.counter() != 0 && u64::from(result.counter()) <= stored_counter {
        tracing::warn!(
            passkey = current.id,
            user_id = current.user_id,
            "passkey counter did not advance: refused (a cloned authenticator, or a replay)"
        );
        return Ok(false);
    }
    let mut passkey = credential(&current)?;
    passkey.update_credential(result);
    state
        .storage
        .passkey_used(
            current.id,
            &current.credential,
            &to_json(&passkey)?,
            unix_now(),
        )
        .await
}

/// Options for a sign-in with a passkey alone: any discoverable credential of this site.
pub async fn begin_sign_in(state: &AppState) -> Result<(String, RequestChallengeResponse)> {
    let webauthn = state.relying_party.webauthn()?;
    let (mut options, authentication) = webauthn
        .start_discoverable_authentication()
        .map_err(|e| anyhow::anyhow!("passkey sign-in could not start: {e}"))?;
    // A button press asks the browser outright; autofill ("conditional") is the page's choice.
    options.mediation = None;
    let ceremony = put_ceremony(state, None, Purpose::Discover, &authentication).await?;
    Ok((ceremony, options))
}

/// A sign-in with a passkey alone. The authenticator verified its user (a PIN or biometric),
/// so the session counts a second factor as proven (`amr` `hwk`).
pub async fn sign_in(
    state: &AppState,
    ceremony: &str,
    answer: &PublicKeyCredential,
    client: &Client,
) -> Result<SignedIn> {
    let webauthn = state.relying_party.webauthn()?;
    let authentication: DiscoverableAuthentication =
        take_ceremony(state, ceremony, Purpose::Discover, None).await?;
    let (handle, credential_id) = webauthn
        .identify_discoverable_authentication(answer)
        .map_err(|_| Error::PasskeyNotAccepted)?;
    let record = state
        .storage
        .passkey_by_credential_id(credential_id)
        .await?
        .ok_or(Error::PasskeyNotAccepted)?;
    // The handle the authenticator keeps must be that of the passkey's owner.
    if state
        .storage
        .user_of_webauthn_handle(handle.as_bytes())
        .await?
        != Some(record.user_id)
    {
        return Err(Error::PasskeyNotAccepted);
    }
    let passkey = credential(&record)?;
    let result = webauthn
        .finish_discoverable_authentication_v2(answer, authentication, &passkey)
        .map_err(|e| {
            tracing::debug!(error = %e, "passkey sign-in refused");
            Error::PasskeyNotAccepted
        })?;
    if !note_use(state, &result).await? {
        return Err(Error::PasskeyNotAccepted);
    }
    let user = user(state, record.user_id)
        .await
        .map_err(|_| Error::PasskeyNotAccepted)?;
    admit(state, &user).await?;
    open_session(state, user, Amr::HARDWARE_KEY, client).await
}
