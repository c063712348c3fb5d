//! Tollgate's contract: the domain parsers and the JSON bodies exchanged over HTTP.
//! Shared by the server and the web UI, so it depends on nothing but serde.

pub mod domain;
pub mod wire;

pub use domain::{Email, FieldError, Password, Role, UnknownRole, Username};
