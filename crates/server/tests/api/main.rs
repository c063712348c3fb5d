//! Integration tests through the real router, on SQLite or (in CI) PostgreSQL.
#![allow(clippy::unwrap_used)]

mod binary;
mod content;
mod input;
mod signin;
mod signup;
mod support;
mod tokens;
