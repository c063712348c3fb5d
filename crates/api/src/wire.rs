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
}

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
