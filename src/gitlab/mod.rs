//! GitLab's side: webhook deliveries (verification and the facts golive keeps of them), the
//! probe, and the egress policy that decides where the probe may connect.

pub mod egress;
pub mod probe;
pub mod webhook;
