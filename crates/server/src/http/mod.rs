//! HTTP handlers, grouped by resource, and the extractors they share.

pub mod auth;
pub mod content;
pub mod extract;
pub mod meta;
pub mod user;
