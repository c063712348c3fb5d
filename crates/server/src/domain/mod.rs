//! The multi-step operations behind the handlers.

pub mod accounts;
