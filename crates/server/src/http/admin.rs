//! The admin API. Every handler takes `RequireRole<Admin>`.

use api::{
    Email, Password, Role, Username,
    wire::{
        AdminUser, AuditEntry, AuditPage, CreateUserRequest, MessageBody, SessionInfo,
        SetPasswordRequest, SetRolesRequest, UserList, paths,
    },
};
use axum::{extract::State, http::StatusCode};
use serde::Deserialize;
use time::format_description::well_known::Rfc3339;
use utoipa::IntoParams;

use super::extract::{Admin, ClientInfo, Json, Path, Query, RecentlyVerified, RequireRole};
use crate::{
    audit::AuditKind,
    clock::rfc3339,
    domain::{
        admin::{self, Actor, NewAccount, UserChange, change_user, end_user_sessions},
        email::Sent,
    },
    error::{Error, Result},
    openapi::ErrorBody,
    state::AppState,
    storage::UserRecord,
};

const DEFAULT_PER_PAGE: u32 = 20;
const MAX_PER_PAGE: u32 = 100;

/// `page` (from 1) and `per_page` (1 to 100): (page, per_page, offset), or a 400 naming the
/// bad parameter. (The query structs list both fields themselves: `serde(flatten)` would read
/// numbers in a query string as strings.)
fn paging(page: Option<u32>, per_page: Option<u32>) -> Result<(u32, u32, i64)> {
    let page = page.unwrap_or(1);
    let per_page = per_page.unwrap_or(DEFAULT_PER_PAGE);
    if page == 0 {
        return Err(bad_query("page starts at 1"));
    }
    if !(1..=MAX_PER_PAGE).contains(&per_page) {
        return Err(bad_query("per_page must be between 1 and 100"));
    }
    Ok((page, per_page, i64::from(page - 1) * i64::from(per_page)))
}

fn bad_query(message: &str) -> Error {
    Error::BadBody {
        status: axum::http::StatusCode::BAD_REQUEST,
        message: format!("Invalid query string: {message}"),
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct UserQuery {
    /// Any part of a username or an address, whatever the case.
    #[serde(default)]
    #[param(max_length = 254)]
    q: String,
    /// The page, from 1.
    #[param(minimum = 1)]
    page: Option<u32>,
    /// Users per page, 1 to 100 (20 unless given).
    #[param(minimum = 1, maximum = 100)]
    per_page: Option<u32>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AuditQuery {
    /// Events about this user.
    user: Option<i64>,
    /// Events of this kind, such as `signin`, `signin_failed`, `role_change`.
    kind: Option<String>,
    /// The page, from 1.
    #[param(minimum = 1)]
    page: Option<u32>,
    /// Events per page, 1 to 100 (20 unless given).
    #[param(minimum = 1, maximum = 100)]
    per_page: Option<u32>,
}

fn admin_user(user: UserRecord) -> AdminUser {
    AdminUser {
        // Before the fields that move out of `user`.
        roles: user.authorities(),
        mfa: user.has_second_factor(),
        factors: user.factor_names().into_iter().map(str::to_owned).collect(),
        id: user.id,
        username: user.username,
        email: user.email,
        disabled: user.disabled,
        created_at: user.created_at.format(&Rfc3339).unwrap_or_default(),
        email_verified: user.email_verified_at.is_some(),
        last_signin_at: user.last_signin_at.map(crate::clock::rfc3339),
    }
}

fn done(message: &str) -> axum::Json<MessageBody> {
    axum::Json(MessageBody {
        message: message.to_owned(),
    })
}

/// `GET /api/admin/users?q=…`: users whose username or address contains `q`, oldest first.
#[utoipa::path(get, path = paths::ADMIN_USERS, tag = "admin", security(("bearer" = []), ("accessToken" = [])), params(UserQuery),
    responses(
        (status = 200, description = "A page of users.", body = UserList),
        (status = 400, description = "A query parameter is out of range.", body = ErrorBody),
        (status = 401, description = "No token, or it is invalid, expired or revoked.", body = ErrorBody), (status = 403, description = "The caller is not an admin.", body = ErrorBody),
    ))]
pub async fn list_users(
    State(state): State<AppState>,
    _: RequireRole<Admin>,
    Query(query): Query<UserQuery>,
) -> Result<axum::Json<UserList>> {
    let (page, per_page, offset) = paging(query.page, query.per_page)?;
    if query.q.chars().count() > 254 {
        return Err(bad_query("q is too long"));
    }
    if query.q.chars().any(char::is_control) {
        return Err(bad_query("q must not contain control characters"));
    }
    let found = state
        .storage
        .search_users(query.q.trim(), i64::from(per_page), offset)
        .await?;
    Ok(axum::Json(UserList {
        users: found.users.into_iter().map(admin_user).collect(),
        page,
        per_page,
        total: found.total,
    }))
}

#[utoipa::path(get, path = paths::ADMIN_USER, tag = "admin", security(("bearer" = []), ("accessToken" = [])), params(("id" = i64, Path, description = "The user's id.")),
    responses(
        (status = 200, description = "The user.", body = AdminUser),
        (status = 401, description = "No token, or it is invalid, expired or revoked.", body = ErrorBody), (status = 403, description = "The caller is not an admin.", body = ErrorBody), (status = 404, description = "No such user.", body = ErrorBody),
    ))]
pub async fn get_user(
    State(state): State<AppState>,
    _: RequireRole<Admin>,
    Path(id): Path<i64>,
) -> Result<axum::Json<AdminUser>> {
    let user = state
        .storage
        .user_by_id(id)
        .await?
        .ok_or(Error::NotFound("User not found."))?;
    Ok(axum::Json(admin_user(user)))
}

/// `PUT /api/admin/users/{id}/roles`: replaces the user's roles.
#[utoipa::path(put, path = paths::ADMIN_USER_ROLES, tag = "admin", request_body = SetRolesRequest, security(("bearer" = []), ("accessToken" = [])), params(("id" = i64, Path, description = "The user's id.")),
    responses(
        (status = 200, description = "The user, with the new roles; their older tokens stop working.", body = AdminUser),
        (status = 400, description = "A role is unknown, or none is given.", body = ErrorBody),
        (status = 401, description = "No valid token; or a second factor was not proven recently (`reason: step_up_required`): prove one at `/api/auth/mfa/step-up`, then retry.", body = ErrorBody), (status = 403, description = "The caller is not an admin.", body = ErrorBody), (status = 404, description = "No such user.", body = ErrorBody),
        (status = 409, description = "The last admin would lose the admin role.", body = ErrorBody),
    ))]
pub async fn set_roles(
    State(state): State<AppState>,
    RequireRole(admin, ..): RequireRole<Admin>,
    _: RecentlyVerified,
    client: ClientInfo,
    Path(id): Path<i64>,
    Json(body): Json<SetRolesRequest>,
) -> Result<axum::Json<AdminUser>> {
    let mut roles = body
        .roles
        .iter()
        .map(|name| Role::parse(name))
        .collect::<Result<Vec<_>, _>>()?;
    roles.sort();
    roles.dedup();
    if roles.is_empty() {
        return Err(Error::BadBody {
            status: axum::http::StatusCode::BAD_REQUEST,
            message: "roles must name at least one role.".to_owned(),
        });
    }
    change_user(
        &state,
        Actor::Admin(&admin),
        id,
        UserChange::SetRoles(roles),
        &client.client(),
    )
    .await?;
    get_user(State(state), RequireRole::trusted(admin), Path(id)).await
}

#[utoipa::path(post, path = paths::ADMIN_USER_DISABLE, tag = "admin", security(("bearer" = []), ("accessToken" = [])), params(("id" = i64, Path, description = "The user's id.")),
    responses(
        (status = 200, description = "Disabled: their sessions are over and they cannot sign in.", body = MessageBody),
        (status = 401, description = "No valid token; or a second factor was not proven recently (`reason: step_up_required`): prove one at `/api/auth/mfa/step-up`, then retry.", body = ErrorBody), (status = 403, description = "The caller is not an admin.", body = ErrorBody), (status = 404, description = "No such user.", body = ErrorBody),
        (status = 409, description = "The last admin cannot be disabled.", body = ErrorBody),
    ))]
pub async fn disable(
    State(state): State<AppState>,
    RequireRole(admin, ..): RequireRole<Admin>,
    _: RecentlyVerified,
    client: ClientInfo,
    Path(id): Path<i64>,
) -> Result<axum::Json<MessageBody>> {
    change_user(
        &state,
        Actor::Admin(&admin),
        id,
        UserChange::Disable,
        &client.client(),
    )
    .await?;
    Ok(done("User disabled."))
}

#[utoipa::path(post, path = paths::ADMIN_USER_ENABLE, tag = "admin", security(("bearer" = []), ("accessToken" = [])), params(("id" = i64, Path, description = "The user's id.")),
    responses(
        (status = 200, description = "Enabled.", body = MessageBody),
        (status = 401, description = "No valid token; or a second factor was not proven recently (`reason: step_up_required`): prove one at `/api/auth/mfa/step-up`, then retry.", body = ErrorBody), (status = 403, description = "The caller is not an admin.", body = ErrorBody), (status = 404, description = "No such user.", body = ErrorBody),
    ))]
pub async fn enable(
    State(state): State<AppState>,
    RequireRole(admin, ..): RequireRole<Admin>,
    _: RecentlyVerified,
    client: ClientInfo,
    Path(id): Path<i64>,
) -> Result<axum::Json<MessageBody>> {
    change_user(
        &state,
        Actor::Admin(&admin),
        id,
        UserChange::Enable,
        &client.client(),
    )
    .await?;
    Ok(done("User enabled."))
}

#[utoipa::path(delete, path = paths::ADMIN_USER, tag = "admin", security(("bearer" = []), ("accessToken" = [])), params(("id" = i64, Path, description = "The user's id.")),
    responses(
        (status = 200, description = "Deleted, with their sessions.", body = MessageBody),
        (status = 401, description = "No valid token; or a second factor was not proven recently (`reason: step_up_required`): prove one at `/api/auth/mfa/step-up`, then retry.", body = ErrorBody), (status = 403, description = "The caller is not an admin.", body = ErrorBody), (status = 404, description = "No such user.", body = ErrorBody),
        (status = 409, description = "The last admin cannot be deleted.", body = ErrorBody),
    ))]
pub async fn delete_user(
    State(state): State<AppState>,
    RequireRole(admin, ..): RequireRole<Admin>,
    _: RecentlyVerified,
    client: ClientInfo,
    Path(id): Path<i64>,
) -> Result<axum::Json<MessageBody>> {
    change_user(
        &state,
        Actor::Admin(&admin),
        id,
        UserChange::Delete,
        &client.client(),
    )
    .await?;
    Ok(done("User deleted."))
}

#[utoipa::path(delete, path = paths::ADMIN_USER_SESSIONS, tag = "admin", security(("bearer" = []), ("accessToken" = [])), params(("id" = i64, Path, description = "The user's id.")),
    responses(
        (status = 200, description = "Every session of the user is over.", body = MessageBody),
        (status = 401, description = "No valid token; or a second factor was not proven recently (`reason: step_up_required`): prove one at `/api/auth/mfa/step-up`, then retry.", body = ErrorBody), (status = 403, description = "The caller is not an admin.", body = ErrorBody), (status = 404, description = "No such user.", body = ErrorBody),
    ))]
pub async fn end_sessions(
    State(state): State<AppState>,
    RequireRole(admin, ..): RequireRole<Admin>,
    _: RecentlyVerified,
    client: ClientInfo,
    Path(id): Path<i64>,
) -> Result<axum::Json<MessageBody>> {
    let ended = end_user_sessions(&state, Actor::Admin(&admin), id, &client.client()).await?;
    Ok(done(&format!("{ended} session(s) ended.")))
}

/// `GET /api/admin/audit`: the audit log, newest first.
#[utoipa::path(get, path = paths::ADMIN_AUDIT, tag = "admin", security(("bearer" = []), ("accessToken" = [])), params(AuditQuery),
    responses(
        (status = 200, description = "A page of events.", body = AuditPage),
        (status = 400, description = "A query parameter is out of range, or the kind unknown.", body = ErrorBody),
        (status = 401, description = "No token, or it is invalid, expired or revoked.", body = ErrorBody), (status = 403, description = "The caller is not an admin.", body = ErrorBody),
    ))]
pub async fn audit(
    State(state): State<AppState>,
    _: RequireRole<Admin>,
    Query(query): Query<AuditQuery>,
) -> Result<axum::Json<AuditPage>> {
    let (page, per_page, offset) = paging(query.page, query.per_page)?;
    let kind = match query.kind.as_deref().filter(|k| !k.is_empty()) {
        Some(raw) => Some(AuditKind::parse(raw).ok_or_else(|| bad_query("unknown kind"))?),
        None => None,
    };
    let (events, total) = state
        .storage
        .audit_events(query.user, kind, i64::from(per_page), offset)
        .await?;
    Ok(axum::Json(AuditPage {
        events: events
            .into_iter()
            .map(|e| AuditEntry {
                id: e.id,
                at: rfc3339(e.at),
                kind: e.kind,
                user_id: e.user_id,
                actor_id: e.actor_id,
                session_id: e.session_id,
                ip: e.ip,
                detail: e.detail,
            })
            .collect(),
        page,
        per_page,
        total,
    }))
}

/// `POST /api/admin/users`: creates a user with any roles; without a password, the user is
/// mailed a link to choose one (unless `sendSetPasswordMail` is false).
#[utoipa::path(post, path = paths::ADMIN_USERS, tag = "admin", request_body = CreateUserRequest, security(("bearer" = []), ("accessToken" = [])),
    responses(
        (status = 201, description = "Created.", body = AdminUser),
        (status = 400, description = "A field is invalid, a role unknown, or the username or address taken.", body = ErrorBody),
        (status = 401, description = "No valid token; or a second factor was not proven recently (`reason: step_up_required`): prove one at `/api/auth/mfa/step-up`, then retry.", body = ErrorBody), (status = 403, description = "The caller is not an admin.", body = ErrorBody),
        (status = 501, description = "No password given and no mail configured to send the link.", body = ErrorBody),
    ))]
pub async fn create_user(
    State(state): State<AppState>,
    RequireRole(admin, ..): RequireRole<Admin>,
    _: RecentlyVerified,
    client: ClientInfo,
    Json(body): Json<CreateUserRequest>,
) -> Result<(StatusCode, axum::Json<AdminUser>)> {
    let password = body.password.as_deref().map(Password::parse).transpose()?;
    let account = NewAccount {
        username: Username::parse(&body.username)?,
        email: Email::parse(&body.email)?,
        roles: body
            .roles
            .iter()
            .map(|name| Role::parse(name))
            .collect::<Result<Vec<_>, _>>()?,
        send_set_password_mail: body.send_set_password_mail.unwrap_or(password.is_none()),
        password,
        email_verified: body.email_verified,
    };
    let (id, sent) =
        admin::create_user(&state, Actor::Admin(&admin), account, &client.client()).await?;
    if sent == Some(Sent::Throttled) {
        tracing::warn!(user_id = id, "set-password mail throttled for a new user");
    }
    let user = get_user(State(state), RequireRole::trusted(admin), Path(id)).await?;
    Ok((StatusCode::CREATED, user))
}

/// `PUT /api/admin/users/{id}/password {password}`: ends every session of the user.
#[utoipa::path(put, path = paths::ADMIN_USER_PASSWORD, tag = "admin", request_body = SetPasswordRequest, security(("bearer" = []), ("accessToken" = [])), params(("id" = i64, Path, description = "The user's id.")),
    responses(
        (status = 200, description = "Set; every session of the user is over.", body = MessageBody),
        (status = 400, description = "The password is not acceptable.", body = ErrorBody),
        (status = 401, description = "No valid token; or a second factor was not proven recently (`reason: step_up_required`): prove one at `/api/auth/mfa/step-up`, then retry.", body = ErrorBody), (status = 403, description = "The caller is not an admin.", body = ErrorBody), (status = 404, description = "No such user.", body = ErrorBody),
    ))]
pub async fn set_password(
    State(state): State<AppState>,
    RequireRole(admin, ..): RequireRole<Admin>,
    _: RecentlyVerified,
    client: ClientInfo,
    Path(id): Path<i64>,
    Json(body): Json<SetPasswordRequest>,
) -> Result<axum::Json<MessageBody>> {
    let password = Password::parse(&body.password)?;
    admin::set_password(
        &state,
        Actor::Admin(&admin),
        id,
        &password,
        &client.client(),
    )
    .await?;
    Ok(done("Password set. The user's sessions were ended."))
}

/// `POST /api/admin/users/{id}/password-reset`: mails the user a link to choose a password.
#[utoipa::path(post, path = paths::ADMIN_USER_RESET_MAIL, tag = "admin", security(("bearer" = []), ("accessToken" = [])), params(("id" = i64, Path, description = "The user's id.")),
    responses(
        (status = 200, description = "The user is mailed a link to choose a password.", body = MessageBody),
        (status = 401, description = "No valid token; or a second factor was not proven recently (`reason: step_up_required`): prove one at `/api/auth/mfa/step-up`, then retry.", body = ErrorBody), (status = 403, description = "The caller is not an admin.", body = ErrorBody), (status = 404, description = "No such user.", body = ErrorBody),
        (status = 429, description = "A message went to this user less than a minute ago.", body = ErrorBody),
        (status = 501, description = "No mail is configured on this server.", body = ErrorBody),
    ))]
pub async fn send_reset(
    State(state): State<AppState>,
    RequireRole(admin, ..): RequireRole<Admin>,
    _: RecentlyVerified,
    client: ClientInfo,
    Path(id): Path<i64>,
) -> Result<axum::Json<MessageBody>> {
    admin::send_reset(&state, Actor::Admin(&admin), id, &client.client()).await?;
    Ok(done("A message to choose a new password is on its way."))
}

/// `POST /api/admin/users/{id}/verify-email`.
#[utoipa::path(post, path = paths::ADMIN_USER_VERIFY_EMAIL, tag = "admin", security(("bearer" = []), ("accessToken" = [])), params(("id" = i64, Path, description = "The user's id.")),
    responses(
        (status = 200, description = "The address is marked as verified.", body = MessageBody),
        (status = 401, description = "No valid token; or a second factor was not proven recently (`reason: step_up_required`): prove one at `/api/auth/mfa/step-up`, then retry.", body = ErrorBody), (status = 403, description = "The caller is not an admin.", body = ErrorBody), (status = 404, description = "No such user.", body = ErrorBody),
    ))]
pub async fn verify_email(
    State(state): State<AppState>,
    RequireRole(admin, ..): RequireRole<Admin>,
    _: RecentlyVerified,
    client: ClientInfo,
    Path(id): Path<i64>,
) -> Result<axum::Json<MessageBody>> {
    admin::mark_email_verified(&state, Actor::Admin(&admin), id, &client.client()).await?;
    Ok(done("Email address marked as verified."))
}

/// `GET /api/admin/users/{id}/sessions`: the user's live sessions.
#[utoipa::path(get, path = paths::ADMIN_USER_SESSIONS, tag = "admin", security(("bearer" = []), ("accessToken" = [])), params(("id" = i64, Path, description = "The user's id.")),
    responses(
        (status = 200, description = "The user's live sessions.", body = Vec<SessionInfo>),
        (status = 401, description = "No token, or it is invalid, expired or revoked.", body = ErrorBody), (status = 403, description = "The caller is not an admin.", body = ErrorBody), (status = 404, description = "No such user.", body = ErrorBody),
    ))]
pub async fn user_sessions(
    State(state): State<AppState>,
    _: RequireRole<Admin>,
    Path(id): Path<i64>,
) -> Result<axum::Json<Vec<SessionInfo>>> {
    if state.storage.user_by_id(id).await?.is_none() {
        return Err(Error::NotFound("User not found."));
    }
    Ok(axum::Json(
        super::sessions::sessions_of(&state, id, None).await?,
    ))
}
