//! GitLab's side: webhook deliveries (verification and the facts golive keeps of them).

pub mod probe;
pub mod webhook;
