//! Request and response bodies, field names as the tutorial's clients expect them.

use serde::{Deserialize, Serialize};

/// Route paths, so the server and clients cannot drift apart.
pub mod paths {
    pub const HEALTHZ: &str = "/healthz";
    pub const JWKS: &str = "/.well-known/jwks.json";
    pub const SIGNUP: &str = "/api/auth/signup";
    pub const SIGNIN: &str = "/api/auth/signin";
    pub const TEST_ALL: &str = "/api/test/all";
    pub const TEST_USER: &str = "/api/test/user";
    pub const TEST_MOD: &str = "/api/test/mod";
    pub const TEST_ADMIN: &str = "/api/test/admin";
    pub const ME: &str = "/api/user/me";
    pub const PASSWORD: &str = "/api/user/password";
    pub const REFRESH: &str = "/api/auth/refresh";
    pub const REFRESH_TOKEN: &str = "/api/auth/refreshtoken";
    pub const LOGOUT: &str = "/api/auth/logout";
    pub const SIGNOUT: &str = "/api/auth/signout";
    pub const SESSIONS: &str = "/api/auth/sessions";
    pub const SESSION: &str = "/api/auth/sessions/{id}";
    pub const ADMIN_USERS: &str = "/api/admin/users";
    pub const ADMIN_USER: &str = "/api/admin/users/{id}";
    pub const ADMIN_USER_ROLES: &str = "/api/admin/users/{id}/roles";
    pub const ADMIN_USER_DISABLE: &str = "/api/admin/users/{id}/disable";
    pub const ADMIN_USER_ENABLE: &str = "/api/admin/users/{id}/enable";
    pub const ADMIN_USER_SESSIONS: &str = "/api/admin/users/{id}/sessions";
    pub const ADMIN_AUDIT: &str = "/api/admin/audit";
    pub const INTROSPECT: &str = "/oauth/introspect";
    pub const ADMIN_CLIENTS: &str = "/api/admin/clients";
    pub const ADMIN_CLIENT: &str = "/api/admin/clients/{name}";
    pub const FORWARD_AUTH: &str = "/api/authz/forward-auth";
    pub const AUTH_REQUEST: &str = "/api/authz/auth-request";
    /// Where the refresh cookie is sent: the auth routes only.
    pub const REFRESH_COOKIE_PATH: &str = "/api/auth";
}

/// Name of the HttpOnly cookie that carries the refresh token.
pub const REFRESH_COOKIE: &str = "tollgate_refresh";

/// Name of the HttpOnly cookie that carries the access token for page loads of the sites
/// Tollgate protects (forward-auth); Tollgate's own API reads tokens from headers only.
pub const ACCESS_COOKIE: &str = "tollgate_access";

/// Header the tutorial uses for the access token (besides `Authorization: Bearer`).
pub const ACCESS_TOKEN_HEADER: &str = "x-access-token";

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SignupRequest {
    pub username: String,
    pub email: String,
    pub password: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub roles: Option<Vec<String>>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SigninRequest {
    pub username: String,
    pub password: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SigninResponse {
    pub id: i64,
    pub username: String,
    pub email: String,
    /// Authorities such as `ROLE_USER`, as the tutorial's clients read them.
    pub roles: Vec<String>,
    pub access_token: String,
    pub token_type: String,
    /// Seconds until the access token expires.
    pub expires_in: u64,
    /// Only when the operator enables the tutorial-compatible body token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
}

/// `POST /api/auth/refresh` (cookie): a new access token; the rotated refresh token is in the cookie.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RefreshResponse {
    pub access_token: String,
    pub token_type: String,
    pub expires_in: u64,
}

/// `POST /api/auth/refreshtoken`, the tutorial's body route.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RefreshTokenRequest {
    #[serde(default)]
    pub refresh_token: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RefreshTokenResponse {
    pub access_token: String,
    pub refresh_token: String,
}

/// One of the caller's sessions.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SessionInfo {
    pub id: String,
    pub created_at: String,
    pub last_used_at: String,
    /// When the session ends if it is not used again.
    pub expires_at: String,
    pub user_agent: Option<String>,
    pub ip: Option<String>,
    /// The session the request was made with.
    pub current: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ChangePasswordRequest {
    pub current_password: String,
    pub new_password: String,
}

/// A user as admins see them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AdminUser {
    pub id: i64,
    pub username: String,
    pub email: String,
    pub roles: Vec<String>,
    pub disabled: bool,
    pub created_at: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UserList {
    pub users: Vec<AdminUser>,
    pub page: u32,
    pub per_page: u32,
    pub total: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SetRolesRequest {
    pub roles: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AuditEntry {
    pub id: i64,
    pub at: String,
    pub kind: String,
    pub user_id: Option<i64>,
    pub actor_id: Option<i64>,
    pub session_id: Option<String>,
    pub ip: Option<String>,
    pub detail: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AuditPage {
    pub events: Vec<AuditEntry>,
    pub page: u32,
    pub per_page: u32,
    pub total: i64,
}

/// The signed-in user's profile.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Profile {
    pub id: i64,
    pub username: String,
    pub email: String,
    pub roles: Vec<String>,
    /// RFC 3339 time of sign-up.
    pub created_at: String,
}

/// Every error answer, and the plain success messages.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageBody {
    pub message: String,
}

/// The tutorial's failed-signin body: `{"accessToken": null, "message": ...}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SigninFailure {
    pub access_token: Option<String>,
    pub message: String,
}

/// Messages that clients may match on.
pub mod messages {
    pub const USER_REGISTERED: &str = "User registered successfully!";
    pub const SIGNED_OUT: &str = "You've been signed out!";
    pub const USERNAME_TAKEN: &str = "Failed! Username is already in use!";
    pub const EMAIL_TAKEN: &str = "Failed! Email is already in use!";
    pub const INVALID_CREDENTIALS: &str = "Invalid username or password.";
    pub const NO_TOKEN: &str = "No token provided!";
    pub const UNAUTHORIZED: &str = "Unauthorized!";
    pub const TOKEN_EXPIRED: &str = "Unauthorized! Access Token was expired!";
    pub const ROLE_ASSIGNMENT_FORBIDDEN: &str = "Only an admin can assign roles other than 'user'; sign up without roles or send an admin's token.";
    pub const PUBLIC_CONTENT: &str = "Public Content.";
    pub const USER_CONTENT: &str = "User Content.";
    pub const MODERATOR_CONTENT: &str = "Moderator Content.";
    pub const ADMIN_CONTENT: &str = "Admin Content.";
}
