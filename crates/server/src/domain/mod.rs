//! The multi-step operations behind the handlers.

pub mod accounts;
pub mod admin;
pub mod clients;
pub mod email;
pub mod keys;
pub mod mfa;
pub mod passkeys;
pub mod sessions;
