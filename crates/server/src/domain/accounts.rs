//! Sign-up and sign-in.

use std::collections::BTreeSet;

use api::{Email, Password, Role, Username};

use super::sessions::{self, Client, Grant};
use crate::{
    audit::{AuditEvent, AuditKind},
    clock::unix_now,
    config::EmailVerification,
    error::{Error, Result},
    passwords::Verdict,
    state::AppState,
    storage::{NewUser, SessionFilter, SigninAttempt, ThrottleKey, UserRecord},
    tokens::{Amr, IssuedToken, Principal},
};

/// A sign-up whose fields have been parsed.
#[derive(Debug)]
pub struct SignUp {
    pub username: Username,
    pub email: Email,
    pub password: Password,
    /// Requested roles; empty means `user`.
    pub roles: BTreeSet<Role>,
}

/// Registers a user. Roles beyond `user` are an admin's decision: they need an admin caller,
/// unless the operator allows self-assigned roles.
pub async fn sign_up(
    state: &AppState,
    request: SignUp,
    caller: Option<&Principal>,
    client: &Client,
) -> Result<i64> {
    let mut roles = request.roles;
    if roles.is_empty() {
        roles.insert(Role::User);
    }
    let privileged = roles.iter().any(|r| *r != Role::User);
    let caller_is_admin = caller.is_some_and(|p| p.roles.contains(Role::Admin));
    if privileged && !caller_is_admin && !state.settings.allow_self_assigned_roles {
        return Err(Error::RoleAssignmentForbidden);
    }
    if state.storage.username_taken(&request.username).await? {
        return Err(Error::UsernameTaken);
    }
    if state.storage.email_taken(&request.email).await? {
        return Err(Error::EmailTaken);
    }
    let password_hash = state.passwords.hash(&request.password).await?;
    let roles: Vec<Role> = roles.into_iter().collect();
    let id = state
        .storage
        .insert_user(&NewUser {
            username: &request.username,
            email: &request.email,
            password_hash: &password_hash,
            roles: &roles,
            email_verified_at: None,
        })
        .await?;
    state
        .audit(AuditEvent {
            actor_id: caller.filter(|_| caller_is_admin).map(|p| p.user_id),
            ip: client.ip.clone(),
            detail: Some(
                roles
                    .iter()
                    .map(|r| r.as_str())
                    .collect::<Vec<_>>()
                    .join(","),
            ),
            ..AuditEvent::new(AuditKind::Signup, Some(id))
        })
        .await;
    super::email::verify::after_signup(state, id).await;
    Ok(id)
}

/// Which sign-in route a password was given at: `/api/auth/signin` (the tutorial's) or
/// `/api/auth/login` (the production guide's), whose answers differ in shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignInRoute {
    Signin,
    Login,
}

/// A successful sign-in.
#[derive(Debug)]
pub struct SignedIn {
    pub user: UserRecord,
    pub access: IssuedToken,
    pub grant: Grant,
}

/// Checks a username and password and opens a session. Unknown users and wrong passwords fail
/// alike, in the same time: an unknown user's password is checked against a dummy hash, and
/// every name typed, existing or not, counts failures and backs off (429) the same way, before
/// any hashing. A legacy or weaker hash is replaced by a fresh argon2id hash on success. The
/// session opens only if the password verified is still the user's when it is stored.
pub async fn sign_in(
    state: &AppState,
    username: &str,
    password: &str,
    client: &Client,
    via: SignInRoute,
) -> Result<SignedIn> {
    // Today's username rules are not applied here: accounts imported from the tutorial's
    // database may predate them. Only absurd input skips the look-up (and still pays a hash).
    let plausible =
        (1..=254).contains(&username.chars().count()) && !username.chars().any(char::is_control);
    let user = if !plausible {
        None
    } else if username.contains('@') {
        // An address in the username field: the production guide's clients sign in by email.
        // (An imported username with an `@` in it is still found by name.)
        let by_email = match Email::parse(username) {
            Ok(email) => state.storage.user_by_email(&email).await?,
            Err(_) => None,
        };
        match by_email {
            Some(user) => Some(user),
            None => state.storage.user_by_username(username.trim()).await?,
        }
    } else {
        state.storage.user_by_username(username.trim()).await?
    };
    let key = ThrottleKey::for_name(username);
    guard_attempt(state, &key, user.as_ref().map(|u| u.id), client).await?;
    let verdict = state
        .passwords
        .verify(password, user.as_ref().map(|u| u.password_hash.as_str()))
        .await?;
    let user = match (user, verdict) {
        (Some(user), Verdict::Match | Verdict::MatchNeedsRehash) => user,
        (user, _) => {
            let user_id = user.as_ref().map(|u| u.id);
            state
                .audit(AuditEvent {
                    ip: client.ip.clone(),
                    detail: user_id.is_none().then(|| unknown_username(username)),
                    ..AuditEvent::new(AuditKind::SigninFailed, user_id)
                })
                .await;
            return Err(Error::InvalidCredentials);
        }
    };
    state.storage.signin_succeeded(&key).await?;
    admit(state, &user).await?;
    if verdict == Verdict::MatchNeedsRehash {
        rehash(state, &user, password).await;
    }
    // A second factor to prove: no session yet, a challenge for /api/auth/mfa/verify.
    if user.has_second_factor() {
        let challenge = super::mfa::challenge(state, &user, via).await?;
        return Err(Error::SecondFactorRequired {
            challenge,
            methods: super::mfa::methods(&user),
        });
    }
    open_session(state, user, Amr::PASSWORD, client).await
}

/// Whether a user who proved who they are may have a session: not if disabled, nor (under
/// `--email-verification required`) with an address not verified. Told only to whoever
/// proved it, so it says nothing about the address to anyone else.
pub(crate) async fn admit(state: &AppState, user: &UserRecord) -> Result<()> {
    if user.disabled {
        return Err(Error::AccountDisabled);
    }
    if state.settings.email_verification == EmailVerification::Required
        && user.email_verified_at.is_none()
    {
        // A fresh mail (at most one a minute), so "check your inbox" is true even for an
        // account made before verification was required.
        super::email::verify::after_signup(state, user.id).await;
        return Err(Error::EmailNotVerified);
    }
    Ok(())
}

/// Opens the session of a sign-in, proven by `amr`; records and audits it.
pub(crate) async fn open_session(
    state: &AppState,
    user: UserRecord,
    amr: Amr,
    client: &Client,
) -> Result<SignedIn> {
    let (access, grant) = sessions::open(state, &user, client, amr).await?;
    state.storage.note_signin(user.id, unix_now()).await?;
    state
        .audit(AuditEvent {
            ip: client.ip.clone(),
            session_id: Some(grant.session_id.clone()),
            detail: (amr != Amr::PASSWORD).then(|| amr.joined()),
            ..AuditEvent::new(AuditKind::SigninOk, Some(user.id))
        })
        .await;
    Ok(SignedIn {
        user,
        access,
        grant,
    })
}

/// Counts a password attempt against the name before any hashing; refuses with 429 while it
/// backs off. The owner is let through even then (still limited per IP), so an attacker
/// elsewhere cannot lock them out: that is, a client at an address where this account's
/// correct password was given for a session that is still valid and was opened with the
/// current password. Unknown names take the same steps.
pub(crate) async fn guard_attempt(
    state: &AppState,
    key: &ThrottleKey,
    user_id: Option<i64>,
    client: &Client,
) -> Result<()> {
    let now = unix_now();
    let SigninAttempt::LockedUntil(until) = state.storage.begin_signin_attempt(key, now).await?
    else {
        return Ok(());
    };
    let known_client = match &client.ip {
        // An unknown name looks for a user that cannot exist, at the same cost.
        Some(ip) => {
            state
                .storage
                .has_trusted_session_from(user_id.unwrap_or(-1), ip, now)
                .await?
        }
        None => false,
    };
    if known_client {
        return Ok(());
    }
    Err(Error::AccountBackoff {
        retry_after_secs: u64::try_from(until - now).unwrap_or(1),
    })
}

/// The audit detail for a sign-in as nobody. What was typed is often a password in the wrong
/// field, so it is kept only if it could be a username, and then in canonical form.
fn unknown_username(typed: &str) -> String {
    match Username::parse(typed.trim()) {
        Ok(name) => format!("unknown username: {}", name.canonical()),
        Err(_) => "unknown username (invalid)".to_owned(),
    }
}

/// Changes the caller's password and ends every other session of theirs.
pub async fn change_password(
    state: &AppState,
    user_id: i64,
    current_session: &str,
    current: &str,
    new: &Password,
    client: &Client,
) -> Result<()> {
    let user = state
        .storage
        .user_by_id(user_id)
        .await?
        .ok_or(Error::NotFound("User not found."))?;
    confirm_password(state, &user, current, client).await?;
    let hash = state.passwords.hash(new).await?;
    // The new password and the end of every other session land together, and only if the
    // password verified above is still the current one.
    let now = unix_now();
    let notices = state
        .storage
        .replace_password(
            user_id,
            user.credential_version,
            &hash,
            SessionFilter::AllOfExcept {
                user_id,
                keep: current_session,
            },
            now,
            sessions::own_ttl_secs(state),
        )
        .await?
        .ok_or(Error::WrongCurrentPassword)?;
    for notice in &notices {
        state.revocations.apply(notice);
    }
    state
        .audit(AuditEvent {
            ip: client.ip.clone(),
            session_id: Some(current_session.to_owned()),
            ..AuditEvent::new(AuditKind::PasswordChanged, Some(user_id))
        })
        .await;
    Ok(())
}

/// Checks a signed-in user's current password before a sensitive change. Guessing it with a
/// stolen access token meets the same back-off as guessing at sign-in.
pub async fn confirm_password(
    state: &AppState,
    user: &UserRecord,
    password: &str,
    client: &Client,
) -> Result<()> {
    let key = ThrottleKey::for_name(&user.username);
    guard_attempt(state, &key, Some(user.id), client).await?;
    let verdict = state
        .passwords
        .verify(password, Some(&user.password_hash))
        .await?;
    if verdict == Verdict::Mismatch {
        return Err(Error::WrongCurrentPassword);
    }
    state.storage.signin_succeeded(&key).await
}

/// Upgrades a stored hash; a failure here must not fail the sign-in, so it is only logged.
async fn rehash(state: &AppState, user: &UserRecord, password: &str) {
    // Legacy passwords may break today's length rules; hash them as they are.
    let upgraded = match Password::parse(password) {
        Ok(parsed) => state.passwords.hash(&parsed).await,
        Err(_) => state.passwords.hash_legacy(password).await,
    };
    let stored = match upgraded {
        Ok(hash) => state.storage.set_password_hash(user.id, &hash).await,
        Err(e) => Err(e),
    };
    match stored {
        Ok(()) => tracing::info!(user_id = user.id, "password hash upgraded to argon2id"),
        Err(e) => tracing::warn!(user_id = user.id, error = %e, "password hash upgrade failed"),
    }
}
