//! HTTP handlers, grouped by resource, and the extractors they share.

pub mod admin;
pub mod auth;
pub mod authz;
pub mod content;
pub mod cookies;
pub mod email;
pub mod extract;
pub mod gate;
pub mod introspect;
pub mod meta;
pub mod mfa;
pub mod passkeys;
pub mod sessions;
pub mod ui;
pub mod user;
