//! Sign-up and sign-in.

use std::collections::BTreeSet;

use api::{Email, Password, Role, Username};

use crate::{
    app::AppState,
    error::{Error, Result},
    passwords::Verdict,
    storage::{NewUser, UserRecord},
    tokens::{IssuedToken, Principal},
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
pub async fn sign_up(state: &AppState, request: SignUp, caller: Option<&Principal>) -> Result<i64> {
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
        })
        .await?;
    tracing::info!(user_id = id, username = %request.username, ?roles, by_admin = caller_is_admin, "user signed up");
    Ok(id)
}

/// A successful sign-in.
#[derive(Debug)]
pub struct SignedIn {
    pub user: UserRecord,
    pub access: IssuedToken,
}

/// Checks a username and password. Unknown users and wrong passwords fail alike, in the same
/// time: an unknown user's password is checked against a dummy hash. A legacy or weaker hash is
/// replaced by a fresh argon2id hash on success.
pub async fn sign_in(state: &AppState, username: &str, password: &str) -> Result<SignedIn> {
    // A name that could never have signed up cannot exist; still pay for a hash.
    let user = match Username::parse(username) {
        Ok(name) => state.storage.user_by_username(name.as_str()).await?,
        Err(_) => None,
    };
    let verdict = state
        .passwords
        .verify(password, user.as_ref().map(|u| u.password_hash.as_str()))
        .await?;
    let user = match (user, verdict) {
        (Some(user), Verdict::Match | Verdict::MatchNeedsRehash) => user,
        _ => return Err(Error::InvalidCredentials),
    };
    if verdict == Verdict::MatchNeedsRehash {
        rehash(state, &user, password).await;
    }
    let access = state.tokens.issue(user.id, &user.roles)?;
    tracing::info!(user_id = user.id, "user signed in");
    Ok(SignedIn { user, access })
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
