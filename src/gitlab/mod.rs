//! GitLab's side: webhook deliveries (verification and the facts golive keeps of them), the
//! probe, the checks of the guide through GitLab's API, and the egress policy that decides where
//! the probe and the checks may connect.

pub mod branch_filter;
pub mod checks;
pub mod egress;
pub mod probe;
pub mod test_route;
pub mod webhook;
