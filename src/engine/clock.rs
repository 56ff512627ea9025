//! The engine's sense of time, injected so tests can move it. It lives in [`crate::sources`];
//! this path stays for embedders.

pub use crate::sources::{Clock, ManualClock, SystemClock};
