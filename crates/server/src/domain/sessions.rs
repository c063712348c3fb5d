//! Sessions: opening one at sign-in, refresh-token rotation with reuse detection, ending them.

use crate::{
    audit::{AuditEvent, AuditKind},
    clock::{self, unix_now},
    error::{Error, RefreshFailure, Result},
    state::AppState,
    storage::{NewSession, Revocation, SessionFilter, SessionOpened, UserRecord},
    tokens::{Amr, IssuedToken, Principal, RefreshToken, Subject, Tokens},
};

/// Where a request came from, as recorded on sessions and audit events.
#[derive(Debug, Clone, Default)]
pub struct Client {
    pub ip: Option<String>,
    pub user_agent: Option<String>,
}

/// A refresh token handed to the client, and how long its cookie should live.
#[derive(Debug)]
pub struct Grant {
    pub session_id: String,
    pub refresh_token: RefreshToken,
    /// Seconds until the session expires if not refreshed.
    pub max_age_secs: i64,
}

/// A new access token (and the rotated refresh token) for a session.
#[derive(Debug)]
pub struct Refreshed {
    pub access: IssuedToken,
    pub grant: Grant,
}

/// Opens a session for a user who just proved who they are. If the password they proved
/// changed meanwhile, or the user was disabled or deleted, no session opens and the sign-in
/// fails as with a wrong password.
pub async fn open(
    state: &AppState,
    user: &UserRecord,
    client: &Client,
    amr: Amr,
) -> Result<(IssuedToken, Grant)> {
    let now = unix_now();
    let settings = &state.settings;
    let session_id = state.tokens.random_id::<16>()?;
    let refresh_token = state.tokens.new_refresh_token()?;
    let absolute_expires_at = clock::after(now, settings.refresh_absolute_ttl);
    let idle_expires_at = clock::after(now, settings.refresh_idle_ttl).min(absolute_expires_at);
    let opened = state
        .storage
        .insert_session(&NewSession {
            id: &session_id,
            user_id: user.id,
            now,
            idle_expires_at,
            absolute_expires_at,
            user_agent: client.user_agent.as_deref(),
            ip: client.ip.as_deref(),
            token_hash: &Tokens::refresh_hash(&refresh_token),
            credential_version: user.credential_version,
            amr: &amr.joined(),
            factor_proven_at: amr.has_second_factor().then_some(now),
        })
        .await?;
    if opened == SessionOpened::CredentialChanged {
        return Err(Error::InvalidCredentials);
    }
    let access = issue_access(state, user, &session_id, amr)?;
    Ok((
        access,
        Grant {
            session_id,
            refresh_token,
            max_age_secs: idle_expires_at - now,
        },
    ))
}

/// An access token for `user` in `session_id`. A user whose role requires a second factor,
/// in a session that has not proven one, gets a token good for enrolment (or step-up) only.
pub fn issue_access(
    state: &AppState,
    user: &UserRecord,
    session_id: &str,
    amr: Amr,
) -> Result<IssuedToken> {
    // What the session proved counts, not what the account has: a password-only session of
    // a user who enrolled elsewhere must prove the factor (step-up) before it is more.
    let must_enrol = !amr.has_second_factor()
        && state
            .settings
            .require_mfa_for_roles
            .iter()
            .any(|role| user.roles.contains(role));
    Ok(state.tokens.issue(Subject {
        user_id: user.id,
        username: &user.username,
        email: &user.email,
        roles: &user.roles,
        session_id,
        version: user.token_version,
        amr,
        must_enrol,
    })?)
}

/// Exchanges a refresh token for a new access token and the token's successor.
///
/// Each token works once. Presenting one that was already rotated means it was copied: the
/// whole session is ended and the event audited. The one exception is the token rotated
/// most recently, within the grace window: parallel refreshes (two tabs) all succeed and
/// all receive the same successor, so the session survives whichever response lands last.
pub async fn refresh(state: &AppState, presented: &str, client: &Client) -> Result<Refreshed> {
    let unknown = Error::Refresh(RefreshFailure::Unknown);
    let now = unix_now();
    let token = RefreshToken::parse(presented).ok_or(Error::Refresh(RefreshFailure::Unknown))?;
    let hash = Tokens::refresh_hash(&token);
    let found = state
        .storage
        .find_refresh_token(&hash)
        .await?
        .ok_or(Error::Refresh(RefreshFailure::Unknown))?;
    if found.revoked {
        return Err(unknown);
    }
    if found.absolute_expires_at <= now || found.idle_expires_at <= now {
        return Err(Error::Refresh(RefreshFailure::Expired));
    }
    let user = match state.storage.user_by_id(found.user_id).await? {
        Some(user) if !user.disabled => user,
        _ => return Err(unknown),
    };

    let successor = state.tokens.successor(&token);
    let successor_hash = Tokens::refresh_hash(&successor);
    let idle_expires_at =
        clock::after(now, state.settings.refresh_idle_ttl).min(found.absolute_expires_at);
    let won = found.rotated_at.is_none()
        && match state
            .storage
            .rotate_refresh_token(
                &found.session_id,
                &hash,
                &successor_hash,
                now,
                idle_expires_at,
                client.user_agent.as_deref(),
                client.ip.as_deref(),
            )
            .await
        {
            Ok(won) => won,
            // The session (or its user) was deleted under our feet.
            Err(Error::Database(e))
                if e.as_database_error()
                    .is_some_and(|d| d.is_foreign_key_violation()) =>
            {
                return Err(unknown);
            }
            Err(e) => return Err(e),
        };
    if !won {
        // Rotated before: by a parallel request a moment ago (fine), or long ago (reuse).
        let rotated_at = state
            .storage
            .refresh_token_rotated_at(&hash)
            .await?
            .flatten();
        let successor_is_current = state
            .storage
            .refresh_token_rotated_at(&successor_hash)
            .await?
            == Some(None);
        let grace = i64::try_from(state.settings.refresh_grace.as_secs()).unwrap_or(0);
        let within_grace = grace > 0 && rotated_at.is_some_and(|at| now - at <= grace);
        if !(within_grace && successor_is_current) {
            end_sessions(
                state,
                SessionFilter::One {
                    id: &found.session_id,
                    user_id: found.user_id,
                },
                "refresh token reuse",
            )
            .await?;
            state
                .audit(AuditEvent {
                    session_id: Some(found.session_id.clone()),
                    ip: client.ip.clone(),
                    ..AuditEvent::new(AuditKind::RefreshReuseDetected, Some(found.user_id))
                })
                .await;
            tracing::warn!(user_id = found.user_id, session = %found.session_id, "refresh token reuse: session ended");
            return Err(unknown);
        }
    }
    let amr = Amr::parse(found.amr.split(','));
    let access = issue_access(state, &user, &found.session_id, amr)?;
    state
        .metrics
        .counter("tollgate_refreshes_total", &[])
        .increment(1);
    Ok(Refreshed {
        access,
        grant: Grant {
            session_id: found.session_id,
            refresh_token: successor,
            max_age_secs: idle_expires_at - now,
        },
    })
}

/// The session a refresh token belongs to, if it is one of ours: (session id, user id).
pub async fn session_of(state: &AppState, presented: &str) -> Result<Option<(String, i64)>> {
    let Some(token) = RefreshToken::parse(presented) else {
        return Ok(None);
    };
    Ok(state
        .storage
        .find_refresh_token(&Tokens::refresh_hash(&token))
        .await?
        .filter(|found| !found.revoked)
        .map(|found| (found.session_id, found.user_id)))
}

/// Signs a session out (logout): ends it everywhere and audits it.
pub async fn log_out(
    state: &AppState,
    session_id: &str,
    user_id: i64,
    client: &Client,
) -> Result<()> {
    end_sessions(
        state,
        SessionFilter::One {
            id: session_id,
            user_id,
        },
        "logout",
    )
    .await?;
    state
        .audit(AuditEvent {
            ip: client.ip.clone(),
            session_id: Some(session_id.to_owned()),
            ..AuditEvent::new(AuditKind::Logout, Some(user_id))
        })
        .await;
    Ok(())
}

/// Ends one of the caller's own sessions (the current one too). Returns whether there was
/// such a session to end.
pub async fn end_own_session(
    state: &AppState,
    caller: &Principal,
    session_id: &str,
    client: &Client,
) -> Result<bool> {
    let ended = end_sessions(
        state,
        SessionFilter::One {
            id: session_id,
            user_id: caller.user_id,
        },
        "ended by user",
    )
    .await?;
    audit_ended(state, caller.user_id, client, ended.len()).await;
    Ok(!ended.is_empty())
}

/// Ends every session of the caller but the current one. Returns how many ended.
pub async fn end_other_sessions(
    state: &AppState,
    caller: &Principal,
    client: &Client,
) -> Result<usize> {
    let ended = end_sessions(
        state,
        SessionFilter::AllOfExcept {
            user_id: caller.user_id,
            keep: &caller.session_id,
        },
        "ended by user",
    )
    .await?;
    audit_ended(state, caller.user_id, client, ended.len()).await;
    Ok(ended.len())
}

async fn audit_ended(state: &AppState, user_id: i64, client: &Client, count: usize) {
    if count > 0 {
        state
            .audit(AuditEvent {
                ip: client.ip.clone(),
                detail: Some(format!("{count} sessions")),
                ..AuditEvent::new(AuditKind::SessionRevoked, Some(user_id))
            })
            .await;
    }
}

/// Ends sessions and makes their access tokens stop working at once, here and on every node.
/// Returns the ids of the sessions ended.
pub async fn end_sessions(
    state: &AppState,
    filter: SessionFilter<'_>,
    reason: &str,
) -> Result<Vec<String>> {
    let notices = state
        .storage
        .revoke_sessions(filter, reason, unix_now(), own_ttl_secs(state))
        .await?;
    let mut ended = Vec::with_capacity(notices.len());
    for notice in notices {
        state.revocations.apply(&notice);
        if let Revocation::Session { id } = notice.revocation {
            ended.push(id);
        }
    }
    Ok(ended)
}

/// This node's access-token lifetime in seconds: a revocation it records lasts at least this
/// long (and as long as any other node's, see the storage).
pub fn own_ttl_secs(state: &AppState) -> i64 {
    i64::try_from(state.tokens.access_token_ttl().as_secs()).unwrap_or(i64::MAX / 2)
}
