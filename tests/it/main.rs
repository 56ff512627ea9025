//! golive's integration tests: one binary, one module per area.

mod architecture;
mod browser;
mod cli;
mod dashboard;
mod disk_faults;
mod domain_inputs;
mod domain_intake;
mod domain_model;
mod domain_rules;
mod engine;
mod fixtures_replay;
mod frozen_logs;
mod hostile;
mod http;
mod outside_the_log;
mod overload;
mod pg;
mod pg_tls;
mod probe;
mod replicas;
mod soak;
mod store_conformance;
mod store_faults;
mod store_model;
mod support;
