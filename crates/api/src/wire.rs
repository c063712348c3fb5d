//! Request and response bodies, field names as the tutorial's clients expect them.

use serde::{Deserialize, Serialize};
use webauthn_rs_proto::{
    CreationChallengeResponse, PublicKeyCredential, RegisterPublicKeyCredential,
    RequestChallengeResponse,
};

/// Route paths, so the server and clients cannot drift apart.
pub mod paths {
    pub const HEALTHZ: &str = "/healthz";
    pub const READYZ: &str = "/readyz";
    pub const METRICS: &str = "/metrics";
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
    pub const LOGIN: &str = "/api/auth/login";
    pub const PASSWORD_FORGOT: &str = "/api/auth/password/forgot";
    pub const PASSWORD_RESET: &str = "/api/auth/password/reset";
    pub const VERIFY_EMAIL: &str = "/api/auth/verify-email";
    pub const VERIFY_EMAIL_RESEND: &str = "/api/auth/verify-email/resend";
    pub const EMAIL_CONFIRM: &str = "/api/auth/email/confirm";
    pub const EMAIL_REPORT: &str = "/api/auth/email/report";
    pub const EMAIL: &str = "/api/user/email";
    pub const ADMIN_USER_PASSWORD: &str = "/api/admin/users/{id}/password";
    pub const ADMIN_USER_RESET_MAIL: &str = "/api/admin/users/{id}/password-reset";
    pub const ADMIN_USER_VERIFY_EMAIL: &str = "/api/admin/users/{id}/verify-email";
    pub const MFA_VERIFY: &str = "/api/auth/mfa/verify";
    pub const MFA_STEP_UP: &str = "/api/auth/mfa/step-up";
    pub const MFA: &str = "/api/user/mfa";
    pub const MFA_TOTP: &str = "/api/user/mfa/totp";
    pub const MFA_TOTP_CONFIRM: &str = "/api/user/mfa/totp/confirm";
    pub const MFA_RECOVERY_CODES: &str = "/api/user/mfa/recovery-codes";
    pub const ADMIN_USER_MFA: &str = "/api/admin/users/{id}/mfa";
    pub const PASSKEYS: &str = "/api/user/passkeys";
    pub const PASSKEYS_BEGIN: &str = "/api/user/passkeys/begin";
    pub const PASSKEY: &str = "/api/user/passkeys/{id}";
    /// Sign-in with a passkey alone: options, then the assertion.
    pub const PASSKEY_SIGNIN_BEGIN: &str = "/api/auth/passkey/begin";
    pub const PASSKEY_SIGNIN: &str = "/api/auth/passkey";
    /// Options for a passkey as the second step of a sign-in (`mfaToken`).
    pub const MFA_PASSKEY: &str = "/api/auth/mfa/passkey";
    /// Options for a passkey as a step-up in the current session.
    pub const MFA_STEP_UP_PASSKEY: &str = "/api/auth/mfa/step-up/passkey";
    /// The UI pages that mailed links open.
    pub const PAGE_RESET_PASSWORD: &str = "/reset-password";
    pub const PAGE_VERIFY_EMAIL: &str = "/verify-email";
    pub const PAGE_CONFIRM_EMAIL: &str = "/confirm-email";
    pub const PAGE_REPORT_EMAIL: &str = "/report-email-change";
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
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SignupRequest {
    #[cfg_attr(
        feature = "openapi",
        schema(min_length = 3, max_length = 20, pattern = "^[A-Za-z0-9._-]+$")
    )]
    pub username: String,
    #[cfg_attr(feature = "openapi", schema(max_length = 254))]
    pub email: String,
    #[cfg_attr(feature = "openapi", schema(min_length = 8, max_length = 128))]
    pub password: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub roles: Option<Vec<String>>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SigninRequest {
    pub username: String,
    pub password: String,
}

/// `POST /api/auth/login`: by address or username (the production guide's route).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LoginRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    pub password: String,
}

/// The user in a [`LoginResponse`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct LoginUser {
    pub id: i64,
    pub username: String,
    pub email: String,
    /// Role names: `user`, `moderator`, `admin`.
    pub roles: Vec<String>,
    /// The highest of them: admin > moderator > user.
    pub role: String,
    pub email_verified: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct LoginResponse {
    pub access_token: String,
    pub token_type: String,
    pub expires_in: u64,
    pub user: LoginUser,
}

/// Why a request was refused, for clients to act on (`reason` beside `message`).
pub mod reasons {
    /// Sign-in needs a second factor: `mfaToken` goes to `/api/auth/mfa/verify`.
    pub const MFA_REQUIRED: &str = "mfa_required";
    /// Prove a factor at `/api/auth/mfa/step-up`, then retry.
    pub const STEP_UP_REQUIRED: &str = "step_up_required";
    /// Enrol a second factor first (`--require-mfa-for-role`).
    pub const MFA_ENROLLMENT_REQUIRED: &str = "mfa_enrollment_required";
}

/// The refusal of a sign-in that needs a second factor (401).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct MfaChallenge {
    pub access_token: Option<String>,
    pub message: String,
    pub reason: String,
    /// The single-purpose challenge token: not an access token.
    pub mfa_token: String,
    /// `otp`, `recovery`, `passkey`.
    pub methods: Vec<String>,
}

/// A refusal with a machine-readable reason.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ReasonBody {
    pub message: String,
    pub reason: String,
}

/// `POST /api/auth/mfa/verify`: the challenge and one factor.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct MfaVerifyRequest {
    pub mfa_token: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recovery_code: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub passkey: Option<PasskeyAssertion>,
}

/// `POST /api/auth/mfa/step-up`: one factor.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct StepUpRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recovery_code: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub passkey: Option<PasskeyAssertion>,
}

/// `POST /api/auth/mfa/passkey`: the options for a passkey as the sign-in's second step.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct MfaPasskeyRequest {
    pub mfa_token: String,
}

/// What the browser needs to ask an authenticator for an assertion (`navigator.credentials.get`),
/// and the ceremony to send its answer back with.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PasskeyRequestOptions {
    pub ceremony: String,
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub options: RequestChallengeResponse,
}

/// A passkey's answer to [`PasskeyRequestOptions`].
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PasskeyAssertion {
    pub ceremony: String,
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub credential: PublicKeyCredential,
}

/// `POST /api/user/passkeys/begin`: the current password (not asked of a user who must enrol).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct PasskeyBeginRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_password: Option<String>,
}

/// What the browser needs to create a passkey (`navigator.credentials.create`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PasskeyCreationOptions {
    pub ceremony: String,
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub options: CreationChallengeResponse,
}

/// `POST /api/user/passkeys`: the new passkey, and the name to know it by.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PasskeyRegisterRequest {
    pub ceremony: String,
    pub name: String,
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub credential: RegisterPublicKeyCredential,
}

/// A registered passkey. Times are unix seconds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct PasskeyInfo {
    pub id: i64,
    pub name: String,
    pub created_at: i64,
    pub last_used_at: Option<i64>,
}

/// The answer to a registration: the passkey; the recovery codes if it is the account's first
/// factor (shown this once); a new access token (the session has just proven the passkey).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct PasskeyRegistered {
    pub passkey: PasskeyInfo,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recovery_codes: Option<Vec<String>>,
    pub access_token: String,
    pub token_type: String,
    pub expires_in: u64,
}

/// `PATCH /api/user/passkeys/{id}`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PasskeyRename {
    pub name: String,
}

/// `POST /api/user/mfa/totp`: the current password (not asked of a user who must enrol, who
/// has just given it).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct TotpBeginRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_password: Option<String>,
}

/// `POST /api/user/mfa/totp`: what the authenticator app needs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TotpEnrolment {
    /// Base32, to type in by hand.
    pub secret: String,
    /// `otpauth://totp/…`, for the QR code.
    pub uri: String,
}

/// `POST /api/user/mfa/totp/confirm`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TotpConfirmRequest {
    pub code: String,
}

/// The answer to a confirmed enrolment: recovery codes, shown this once, and a new access
/// token (the session has just proven the factor).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct TotpConfirmed {
    pub recovery_codes: Vec<String>,
    pub access_token: String,
    pub token_type: String,
    pub expires_in: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct RecoveryCodes {
    pub recovery_codes: Vec<String>,
}

/// `GET /api/user/mfa`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct MfaStatus {
    pub totp: bool,
    #[serde(default)]
    pub passkeys: Vec<PasskeyInfo>,
    pub recovery_codes_left: i64,
    /// The user's role requires a second factor.
    pub required: bool,
}

/// `POST /api/auth/password/forgot`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ForgotPasswordRequest {
    pub email: String,
}

/// `POST /api/auth/password/reset`: the mailed code with the address, or the link's token.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct ResetPasswordRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    #[cfg_attr(feature = "openapi", schema(min_length = 8, max_length = 128))]
    pub new_password: String,
}

/// `POST /api/auth/verify-email` (the link's token, or the code by a signed-in user or with
/// the address it went to) and `POST /api/auth/email/confirm` (token, or code signed in).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ConfirmRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
}

/// `POST /api/auth/verify-email/resend`: for the signed-in user, or for an address.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ResendVerificationRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
}

/// `POST /api/auth/email/report`: the token of the link sent to the old address.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ReportRequest {
    pub token: String,
}

/// `POST /api/user/email`: a new address, confirmed by the current password.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct ChangeEmailRequest {
    #[cfg_attr(feature = "openapi", schema(max_length = 254))]
    pub new_email: String,
    pub current_password: String,
}

/// `POST /api/admin/users`: an account made by an admin. Without a password, the user is
/// mailed a link to choose one (`sendSetPasswordMail`, the default then).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct CreateUserRequest {
    #[cfg_attr(
        feature = "openapi",
        schema(min_length = 3, max_length = 20, pattern = "^[A-Za-z0-9._-]+$")
    )]
    pub username: String,
    #[cfg_attr(feature = "openapi", schema(max_length = 254))]
    pub email: String,
    #[serde(default)]
    pub roles: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(min_length = 8, max_length = 128))]
    pub password: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub send_set_password_mail: Option<bool>,
    #[serde(default)]
    pub email_verified: bool,
}

/// `PUT /api/admin/users/{id}/password`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SetPasswordRequest {
    #[cfg_attr(feature = "openapi", schema(min_length = 8, max_length = 128))]
    pub password: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
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
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct RefreshResponse {
    pub access_token: String,
    pub token_type: String,
    pub expires_in: u64,
}

/// `POST /api/auth/refreshtoken`, the tutorial's body route.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct RefreshTokenRequest {
    #[serde(default)]
    pub refresh_token: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct RefreshTokenResponse {
    pub access_token: String,
    pub refresh_token: String,
}

/// One of the caller's sessions.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
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
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct ChangePasswordRequest {
    pub current_password: String,
    #[cfg_attr(feature = "openapi", schema(min_length = 8, max_length = 128))]
    pub new_password: String,
}

/// A user as admins see them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct AdminUser {
    pub id: i64,
    pub username: String,
    pub email: String,
    pub roles: Vec<String>,
    pub disabled: bool,
    pub created_at: String,
    pub email_verified: bool,
    /// RFC 3339 time of the last successful sign-in, if any.
    pub last_signin_at: Option<String>,
    /// Whether the user has a second factor.
    pub mfa: bool,
    /// Which: `totp`, `passkey`.
    #[serde(default)]
    pub factors: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct UserList {
    pub users: Vec<AdminUser>,
    pub page: u32,
    pub per_page: u32,
    pub total: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SetRolesRequest {
    pub roles: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
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
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct AuditPage {
    pub events: Vec<AuditEntry>,
    pub page: u32,
    pub per_page: u32,
    pub total: i64,
}

/// The signed-in user's profile.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct Profile {
    pub id: i64,
    pub username: String,
    pub email: String,
    pub roles: Vec<String>,
    /// RFC 3339 time of sign-up.
    pub created_at: String,
    pub email_verified: bool,
}

/// Every error answer, and the plain success messages.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct MessageBody {
    pub message: String,
}

/// The tutorial's failed-signin body: `{"accessToken": null, "message": ...}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
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
    /// The answer to a forgotten password, whether or not the address has an account.
    pub const RESET_MAIL_MAYBE_SENT: &str =
        "If an account uses this address, a message with a reset code is on its way.";
    pub const VERIFY_MAIL_MAYBE_SENT: &str =
        "If this address needs verifying, a message with a code is on its way.";
    pub const EMAIL_CHANGE_MAIL_SENT: &str =
        "To finish, confirm the new address with the code or link we sent to it.";
    pub const PASSWORD_RESET_DONE: &str = "Your password has been reset; sign in with it.";
    pub const EMAIL_VERIFIED: &str = "Your email address is verified.";
    pub const EMAIL_CHANGED: &str = "Your email address has been changed.";
    pub const EMAIL_CHANGE_UNDONE: &str = "The change was undone: this address is back on the account, every session has ended, and the password no longer works. Choose a new one with \"Forgot password?\".";
}
