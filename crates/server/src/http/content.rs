//! The tutorial's test content, one route per access level.

use api::wire::messages;

use super::extract::{Admin, AuthUser, Moderator, RequireRole};

pub async fn public() -> &'static str {
    messages::PUBLIC_CONTENT
}

pub async fn user(_: AuthUser) -> &'static str {
    messages::USER_CONTENT
}

pub async fn moderator(_: RequireRole<Moderator>) -> &'static str {
    messages::MODERATOR_CONTENT
}

pub async fn admin(_: RequireRole<Admin>) -> &'static str {
    messages::ADMIN_CONTENT
}
