//! The tutorial's test content, one route per access level.

use api::wire::{messages, paths};

use super::extract::{Admin, AuthUser, Moderator, RequireRole};
use crate::openapi::ErrorBody;

#[utoipa::path(get, path = paths::TEST_ALL, tag = "content",
    responses(
        (status = 200, description = "`Public Content.`", body = String, content_type = "text/plain"),
    ))]
pub async fn public() -> &'static str {
    messages::PUBLIC_CONTENT
}

#[utoipa::path(get, path = paths::TEST_USER, tag = "content", security(("bearer" = []), ("accessToken" = [])),
    responses(
        (status = 200, description = "`User Content.`", body = String, content_type = "text/plain"),
        (status = 401, description = "No token, or it is invalid, expired or revoked.", body = ErrorBody),
        (status = 403, description = "The token is good only for enrolling a second factor (`reason: mfa_enrollment_required`).", body = ErrorBody),
    ))]
pub async fn user(_: AuthUser) -> &'static str {
    messages::USER_CONTENT
}

#[utoipa::path(get, path = paths::TEST_MOD, tag = "content", security(("bearer" = []), ("accessToken" = [])),
    responses(
        (status = 200, description = "`Moderator Content.`", body = String, content_type = "text/plain"),
        (status = 401, description = "No token, or it is invalid, expired or revoked.", body = ErrorBody),
        (status = 403, description = "The caller lacks the role.", body = ErrorBody),
    ))]
pub async fn moderator(_: RequireRole<Moderator>) -> &'static str {
    messages::MODERATOR_CONTENT
}

#[utoipa::path(get, path = paths::TEST_ADMIN, tag = "content", security(("bearer" = []), ("accessToken" = [])),
    responses(
        (status = 200, description = "`Admin Content.`", body = String, content_type = "text/plain"),
        (status = 401, description = "No token, or it is invalid, expired or revoked.", body = ErrorBody),
        (status = 403, description = "The caller lacks the role.", body = ErrorBody),
    ))]
pub async fn admin(_: RequireRole<Admin>) -> &'static str {
    messages::ADMIN_CONTENT
}
