//! golive: the system of record for onboarding self-hosted GitLab integrations.
//!
//! Each onboarding is an event-sourced state machine following Factory's guide
//! (`created → info_gathered → network_established → webhook_live → tested → validated → live`).
//! The [`domain`] module is the pure core; [`secrets`] seals what customers send;
//! [`fixtures`] replays scripted journeys for tests and the demo.

pub mod auth;
pub mod cli;
pub mod domain;
pub mod engine;
pub mod error_kind;
pub mod fixtures;
pub mod gitlab;
pub mod http;
pub mod ids;
pub mod secrets;
pub mod sources;
pub mod store;
pub mod views;
