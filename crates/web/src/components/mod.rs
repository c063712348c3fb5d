//! Small shared views.

pub mod denied;
pub mod field;
pub mod pager;
