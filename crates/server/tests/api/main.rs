//! Integration tests through the real router, on SQLite or (in CI) PostgreSQL.
#![allow(clippy::unwrap_used)]

mod admin;
mod authenticator;
mod authz;
mod binary;
mod connections;
mod content;
mod disk;
mod email;
mod gaps;
mod gate;
mod guide;
mod hardening;
mod import;
mod input;
mod introspect;
mod keys;
#[path = "../support/mail_sink.rs"]
mod mail_sink;
mod mfa;
mod nodes;
mod openapi;
mod ops;
mod outage;
mod passkeys;
mod proxies;
mod sealing;
mod sessions;
mod signin;
mod signup;
mod support;
mod tokens;
mod ui;
