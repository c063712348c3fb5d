//! One file per page.

pub mod admin;
pub mod boards;
pub mod email_links;
pub mod home;
pub mod login;
pub mod not_found;
pub mod profile;
pub mod recovery;
pub mod register;
pub mod two_step;
