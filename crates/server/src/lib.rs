//! Tollgate: a self-hosted authentication and authorization server.
//!
//! The binary is a thin shell over this library, so tests and tools reuse every part.

pub mod app;
pub mod audit;
pub mod authz;
pub mod cli;
pub mod clock;
pub mod codes;
pub mod config;
pub mod domain;
pub mod error;
pub mod http;
pub mod import;
pub mod limits;
pub mod mail;
pub mod metrics;
pub mod openapi;
pub mod passkeys;
pub mod passwords;
pub mod revocation;
pub mod sealing;
pub mod serve;
pub mod state;
pub mod storage;
pub mod tokens;
pub mod totp;

pub use app::app;
pub use serve::serve;
pub use state::AppState;
