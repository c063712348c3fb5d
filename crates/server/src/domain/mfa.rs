//! Second factors: an authenticator app (TOTP) and recovery codes. The challenge between a
//! proven password and a proven factor; step-up for sensitive changes; the policy that some
//! roles must have a factor; an admin's reset. Guessing codes meets the same back-off as
//! guessing passwords.

use std::time::Duration;

use api::Role;
use webauthn_rs::prelude::{PublicKeyCredential, RequestChallengeResponse};

use super::{
    accounts::{SignInRoute, SignedIn, guard_attempt, open_session},
    admin::Actor,
    sessions::{Client, end_sessions, issue_access},
};
use crate::{
    audit::{AuditEvent, AuditKind},
    clock::{self, unix_now},
    codes,
    error::{Error, Result},
    state::AppState,
    storage::{PasskeyRecord, SecretRef, SessionFilter, ThrottleKey, UserRecord},
    tokens::{self, Amr, IssuedToken, Principal},
    totp::{Authenticator, SECRET_BYTES},
};

/// How long a sign-in waits for its second factor.
pub const CHALLENGE_LIFETIME: Duration = Duration::from_secs(5 * 60);
/// Wrong factors a challenge survives; the last one ends it.
pub const MAX_CHALLENGE_ATTEMPTS: i64 = 5;

/// What the user typed as their second factor.
#[derive(Debug, Clone, Copy)]
pub enum Factor<'a> {
    /// A code from the authenticator app.
    Otp(&'a str),
    /// One of the recovery codes.
    Recovery(&'a str),
    /// A passkey's answer to the options of a ceremony.
    Passkey {
        ceremony: &'a str,
        answer: &'a PublicKeyCredential,
    },
}

/// After the password, for a user with a second factor: the challenge token that
/// `/api/auth/mfa/verify` takes. Opaque and kept hashed; it is no access token and works
/// nowhere else.
pub async fn challenge(state: &AppState, user: &UserRecord, via: SignInRoute) -> Result<String> {
    let token = state.tokens.random_id::<32>()?;
    let now = unix_now();
    state
        .storage
        .put_mfa_challenge(
            &codes::link_hash(&token),
            user.id,
            user.credential_version,
            via == SignInRoute::Login,
            now,
            clock::after(now, CHALLENGE_LIFETIME),
        )
        .await?;
    Ok(token)
}

/// The methods a challenge can be met with.
pub fn methods(user: &UserRecord) -> Vec<&'static str> {
    [
        (user.has_totp, "otp"),
        (user.has_passkey, "passkey"),
        (true, "recovery"),
    ]
    .into_iter()
    .filter_map(|(has, name)| has.then_some(name))
    .collect()
}

/// `POST /api/auth/mfa/verify`: meets the challenge and opens the session. Says which route
/// the sign-in started at, whose shape the answer takes.
pub async fn complete_sign_in(
    state: &AppState,
    challenge_token: &str,
    factor: Factor<'_>,
    client: &Client,
) -> Result<(SignedIn, SignInRoute)> {
    let hash = codes::link_hash(challenge_token.trim());
    let now = unix_now();
    let challenge = state
        .storage
        .claim_challenge_attempt(&hash, MAX_CHALLENGE_ATTEMPTS, now)
        .await?
        .ok_or(Error::ChallengeExpired)?;
    let user = state
        .storage
        .user_by_id(challenge.user_id)
        .await?
        .filter(|u| u.credential_version == challenge.credential_version)
        .ok_or(Error::ChallengeExpired)?;
    if user.disabled {
        return Err(Error::AccountDisabled);
    }
    let proven = prove(state, &user, factor, client).await?;
    if !state.storage.take_mfa_challenge(&hash, now).await? {
        return Err(Error::ChallengeExpired);
    }
    let signed_in = open_session(state, user, Amr::PASSWORD.with(proven), client).await?;
    let route = if challenge.via_login {
        SignInRoute::Login
    } else {
        SignInRoute::Signin
    };
    Ok((signed_in, route))
}

/// Options for proving a passkey as the second step of the sign-in `challenge_token` began.
/// Takes no attempt: the answer, at `/api/auth/mfa/verify`, does.
pub async fn begin_passkey(
    state: &AppState,
    challenge_token: &str,
) -> Result<(String, RequestChallengeResponse)> {
    let challenge = state
        .storage
        .live_challenge(&codes::link_hash(challenge_token.trim()), unix_now())
        .await?
        .ok_or(Error::ChallengeExpired)?;
    let user = user(state, challenge.user_id).await?;
    super::passkeys::begin_authentication(state, &user).await
}

/// Options for proving a passkey as a step-up in the caller's session.
pub async fn begin_passkey_step_up(
    state: &AppState,
    principal: &Principal,
) -> Result<(String, RequestChallengeResponse)> {
    let user = user(state, principal.user_id).await?;
    super::passkeys::begin_authentication(state, &user).await
}

/// Checks a factor of `user`, under the same back-off as passwords (per user, before any
/// check). Returns what was proven.
async fn prove(
    state: &AppState,
    user: &UserRecord,
    factor: Factor<'_>,
    client: &Client,
) -> Result<Amr> {
    let key = factor_key(user.id);
    // No exemption for the owner's usual address here: whoever guesses codes has the password
    // already, and may share the address (a NAT) or hold an older password-only session.
    guard_attempt(state, &key, None, client).await?;
    let now = unix_now();
    let proven = match factor {
        Factor::Otp(code) => match state.storage.totp_of(user.id).await? {
            Some(totp) if totp.confirmed_at.is_some() => {
                let app = authenticator(state, user, &totp.secret)?;
                match app.step_of(code, now.unsigned_abs()) {
                    Some(step) => state
                        .storage
                        .use_totp_step(user.id, step)
                        .await?
                        .then_some(Amr::OTP),
                    None => None,
                }
            }
            _ => None,
        },
        Factor::Passkey { ceremony, answer } => {
            super::passkeys::authenticate(state, user, ceremony, answer)
                .await?
                .then_some(Amr::HARDWARE_KEY)
        }
        Factor::Recovery(code) => match state.codes.recovery_hash(user.id, code) {
            Some(hash) => state
                .storage
                .use_recovery_code(user.id, &hash, now)
                .await?
                .then_some(Amr::RECOVERY_CODE),
            None => None,
        },
    };
    match proven {
        Some(amr) => {
            state.storage.signin_succeeded(&key).await?;
            if amr == Amr::RECOVERY_CODE {
                let left = state.storage.recovery_codes_left(user.id).await?;
                state
                    .audit(AuditEvent {
                        ip: client.ip.clone(),
                        detail: Some(format!("{left} left")),
                        ..AuditEvent::new(AuditKind::RecoveryCodeUsed, Some(user.id))
                    })
                    .await;
            }
            Ok(amr)
        }
        None => {
            state
                .audit(AuditEvent {
                    ip: client.ip.clone(),
                    ..AuditEvent::new(AuditKind::MfaFailed, Some(user.id))
                })
                .await;
            Err(Error::InvalidFactor)
        }
    }
}

/// The back-off key for guessing a user's factors.
fn factor_key(user_id: i64) -> ThrottleKey {
    ThrottleKey::for_name(&format!("\u{0}factor:{user_id}"))
}

/// The user's authenticator app, from its secret as stored (sealed under the master key, if
/// there is one).
fn authenticator(state: &AppState, user: &UserRecord, stored: &[u8]) -> Result<Authenticator> {
    let secret = state
        .settings
        .sealer
        .open(&SecretRef::Totp(user.id).context(), stored)?;
    Ok(Authenticator::new(
        &secret,
        &state.settings.product_name,
        &user.username,
    )?)
}

/// The caller's account; gone (deleted a moment ago) means a dead token: 401.
pub(super) async fn user(state: &AppState, user_id: i64) -> Result<UserRecord> {
    state
        .storage
        .user_by_id(user_id)
        .await?
        .ok_or(Error::InvalidToken)
}

/// `POST /api/auth/mfa/step-up`: proves a factor again in the current session, for the
/// changes that ask for a recent one. Returns a new access token saying so.
pub async fn step_up(
    state: &AppState,
    principal: &Principal,
    factor: Factor<'_>,
    client: &Client,
) -> Result<IssuedToken> {
    let user = user(state, principal.user_id).await?;
    let proven = prove(state, &user, factor, client).await?;
    let amr = principal.amr.with(proven);
    state
        .storage
        .note_factor_proven(&principal.session_id, &amr.joined(), unix_now())
        .await?;
    issue_access(state, &user, &principal.session_id, amr)
}

/// For a change that needs a recently proven factor: passes users without one; refuses the
/// others (401, reason `step_up_required`) unless their session proved a factor within the
/// step-up window.
pub async fn require_recent_factor(state: &AppState, principal: &Principal) -> Result<()> {
    // A caller whose account is gone (deleted a moment ago) holds a dead token: 401.
    match state.storage.has_second_factor(principal.user_id).await? {
        None => return Err(Error::InvalidToken),
        Some(false) => return Ok(()),
        Some(true) => {}
    }
    let window = state.settings.step_up_window.as_secs();
    let recent = state
        .storage
        .factor_proven_at(&principal.session_id)
        .await?
        .is_some_and(|at| at >= unix_now().saturating_sub_unsigned(window));
    if recent {
        Ok(())
    } else {
        Err(Error::StepUpRequired)
    }
}

/// Before a factor is added: the current password, so a stolen access token cannot put the
/// thief's factor on the account (not asked of a user who must enrol and has no factor yet,
/// whose token was issued at their sign-in); and, if the user has a factor already, one proven
/// recently in this session, as for any change to the factors.
pub async fn confirm_adding_factor(
    state: &AppState,
    principal: &Principal,
    user: &UserRecord,
    current_password: Option<&str>,
    client: &Client,
) -> Result<()> {
    if user.has_second_factor() {
        require_recent_factor(state, principal).await?;
    }
    if !principal.must_enrol || user.has_second_factor() {
        let password = current_password.ok_or(Error::WrongCurrentPassword)?;
        super::accounts::confirm_password(state, user, password, client).await?;
    }
    Ok(())
}

/// A TOTP enrolment under way: what the user's app needs.
#[derive(Debug)]
pub struct Enrolment {
    pub secret: String,
    pub uri: String,
}

/// Starts enrolling an authenticator app (or restarts an enrolment not yet confirmed), after
/// [`confirm_adding_factor`].
pub async fn begin_totp(
    state: &AppState,
    principal: &Principal,
    current_password: Option<&str>,
    client: &Client,
) -> Result<Enrolment> {
    let user = user(state, principal.user_id).await?;
    if user.has_totp {
        return Err(Error::FactorExists);
    }
    confirm_adding_factor(state, principal, &user, current_password, client).await?;
    let secret = tokens::random_secret()?;
    let stored = state
        .settings
        .sealer
        .seal(&SecretRef::Totp(user.id).context(), &secret[..SECRET_BYTES])?;
    if !state
        .storage
        .begin_totp(user.id, &stored, unix_now())
        .await?
    {
        return Err(Error::FactorExists);
    }
    let app = authenticator(state, &user, &stored)?;
    Ok(Enrolment {
        secret: app.secret_base32(),
        uri: app.uri()?,
    })
}

/// A confirmed enrolment: the recovery codes (shown once) and a new access token for the
/// session, which has just proven the factor.
#[derive(Debug)]
pub struct Enrolled {
    pub recovery_codes: Vec<String>,
    pub access: IssuedToken,
}

/// Confirms the enrolment with a first code from the app.
pub async fn confirm_totp(
    state: &AppState,
    principal: &Principal,
    code: &str,
    client: &Client,
) -> Result<Enrolled> {
    let user = user(state, principal.user_id).await?;
    let key = factor_key(user.id);
    guard_attempt(state, &key, None, client).await?;
    let now = unix_now();
    let pending = state
        .storage
        .totp_of(user.id)
        .await?
        .filter(|t| t.confirmed_at.is_none())
        .ok_or(Error::NoEnrolment)?;
    let app = authenticator(state, &user, &pending.secret)?;
    let (recovery_codes, hashes) = state.codes.recovery_codes(user.id)?;
    let confirmed = match app.step_of(code, now.unsigned_abs()) {
        Some(step) => {
            state
                .storage
                .confirm_totp(user.id, step, &pending.secret, &hashes, now)
                .await?
        }
        None => false,
    };
    if !confirmed {
        return Err(Error::InvalidFactor);
    }
    state.storage.signin_succeeded(&key).await?;
    let amr = principal.amr.with(Amr::PASSWORD).with(Amr::OTP);
    state
        .storage
        .note_factor_proven(&principal.session_id, &amr.joined(), now)
        .await?;
    state
        .audit(AuditEvent {
            ip: client.ip.clone(),
            detail: Some("totp".to_owned()),
            ..AuditEvent::new(AuditKind::MfaEnrolled, Some(user.id))
        })
        .await;
    // Reloaded: the user has a factor now, so the token is no longer for enrolment only.
    let user = self::user(state, user.id).await?;
    let access = issue_access(state, &user, &principal.session_id, amr)?;
    Ok(Enrolled {
        recovery_codes,
        access,
    })
}

/// Removes the authenticator app (and the recovery codes with it). Not for users whose role
/// requires a factor.
pub async fn remove_totp(state: &AppState, principal: &Principal, client: &Client) -> Result<()> {
    let user = user(state, principal.user_id).await?;
    if !user.has_passkey && required_for(state, &user.roles) {
        return Err(Error::FactorRequired);
    }
    if !state.storage.remove_totp(user.id).await? {
        return Err(Error::NotFound("No authenticator app is set up."));
    }
    state
        .audit(AuditEvent {
            ip: client.ip.clone(),
            detail: Some("totp".to_owned()),
            ..AuditEvent::new(AuditKind::MfaRemoved, Some(user.id))
        })
        .await;
    Ok(())
}

/// A new set of recovery codes; the old set stops working.
pub async fn regenerate_recovery_codes(
    state: &AppState,
    principal: &Principal,
    client: &Client,
) -> Result<Vec<String>> {
    let user = user(state, principal.user_id).await?;
    if !user.has_second_factor() {
        return Err(Error::NoFactor);
    }
    let (codes, hashes) = state.codes.recovery_codes(user.id)?;
    state
        .storage
        .replace_recovery_codes(user.id, &hashes)
        .await?;
    state
        .audit(AuditEvent {
            ip: client.ip.clone(),
            ..AuditEvent::new(AuditKind::RecoveryCodesRegenerated, Some(user.id))
        })
        .await;
    Ok(codes)
}

/// What a user has set up.
#[derive(Debug, Clone)]
pub struct Status {
    pub totp: bool,
    pub passkeys: Vec<PasskeyRecord>,
    pub recovery_codes_left: i64,
    /// The user's role requires a factor.
    pub required: bool,
}

pub async fn status(state: &AppState, user_id: i64) -> Result<Status> {
    let user = user(state, user_id).await?;
    Ok(Status {
        totp: user.has_totp,
        passkeys: super::passkeys::list(state, user_id).await?,
        recovery_codes_left: state.storage.recovery_codes_left(user_id).await?,
        required: required_for(state, &user.roles),
    })
}

/// Whether a user with these roles must have a second factor.
pub fn required_for(state: &AppState, roles: &[Role]) -> bool {
    state
        .settings
        .require_mfa_for_roles
        .iter()
        .any(|role| roles.contains(role))
}

/// An admin removes every factor of a user (who lost their phone and codes): their sessions
/// end, so the next sign-in is with the password alone (and, if their role requires one,
/// straight into enrolment).
pub async fn admin_reset(
    state: &AppState,
    actor: Actor<'_>,
    user_id: i64,
    client: &Client,
) -> Result<()> {
    super::admin::target(state, user_id).await?;
    if !state.storage.remove_factors(user_id).await? {
        return Err(Error::NoFactor);
    }
    end_sessions(
        state,
        SessionFilter::AllOf { user_id },
        "second factors reset",
    )
    .await?;
    state
        .audit(actor.audit(AuditEvent::new(AuditKind::MfaReset, Some(user_id)), client))
        .await;
    Ok(())
}
