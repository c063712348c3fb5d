//! Small shared views.

pub mod denied;
pub mod field;
