//! Id sources for [`crate::domain::Context`]: random in production, sequential in tests. They
//! live in [`crate::sources`], with the clock; this path stays for embedders.

pub use crate::sources::{RandomIds, SequentialIds};
