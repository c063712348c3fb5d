//! Small shared views.

pub mod denied;
pub mod field;
pub mod pager;
pub mod qr;
pub mod step_up;
