//! golive: the system of record for onboarding self-hosted GitLab integrations.
//!
//! Each onboarding is an event-sourced state machine following Factory's guide
//! (`created → info_gathered → network_established → webhook_live → tested → validated → live`).
//! The [`domain`] module is the pure core; [`secrets`] seals what customers send;
//! [`fixtures`] replays scripted journeys for tests and the demo.
//!
//! # Embedding
//!
//! A backend embeds golive without HTTP: open a store, execute commands, read states and
//! subscribe to the log. (`golive::http::router(engine, config)` adds the HTTP API as an axum
//! `Router`.)
//!
//! ```
//! use golive::domain::{Actor, CommandRequest, Event, HttpUrl, LongText, OpenIntegration, ShortText, Stage};
//! use golive::engine::{Engine, EngineConfig, OpenOptions};
//!
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! let dir = tempfile::tempdir().unwrap();
//! let config = EngineConfig::new(HttpUrl::parse("https://golive.example.com").unwrap(), None);
//! let (engine, _warnings) = Engine::open_dir(dir.path(), config, OpenOptions::default()).await.unwrap();
//! let rep = Actor::parse("dana.reyes").unwrap();
//!
//! // Open an onboarding, then record a step of the guide: typed values, checked when this
//! // compiles and parsed (`ShortText::parse`, ...) where they come in.
//! let request = OpenIntegration {
//!     customer: ShortText::parse("Hooli").unwrap(),
//!     gitlab_url: HttpUrl::parse("https://gitlab.hooli.example").unwrap(),
//!     owner: None,
//!     playbook: None,
//!     ca_certificate_pem: None,
//! };
//! let opened = engine.open_typed(request, None, &rep).await.unwrap();
//! let id = opened.state.id;
//! assert_eq!(opened.state.stage, Stage::Created);
//! let note = CommandRequest::AddNote { text: LongText::parse("kick-off call booked").unwrap() };
//! let executed = engine.execute_typed(id, note, &rep).await.unwrap();
//! assert_eq!(executed.state.version, opened.state.version + 1);
//! assert!(matches!(&executed.domain_events().unwrap()[..], [Event::NoteAdded { .. }]));
//!
//! // Every event, from the first, then each new one as it is appended.
//! let mut subscription = engine.subscribe(0);
//! let first = subscription.next().await.unwrap();
//! assert_eq!((first.position, first.event_type.as_str()), (1, "integration_opened"));
//!
//! // The log verifies, and the state can be read now or as it was.
//! assert!(engine.verify(None).await.unwrap().valid);
//! assert_eq!(engine.state(id).await.unwrap().version, executed.state.version);
//! engine.close().await.unwrap();
//! # });
//! ```
//!
//! The HTTP API and the CLI take the same operations as JSON (`Engine::open_integration`,
//! `Engine::execute`), parsed once at the edge into these types. A subscription yields stored
//! envelopes (hash, position, the payload as stored); `golive::engine::decode` turns one into its
//! typed `domain::Event`, upcast from an older schema version if need be. Typed calls take no
//! idempotency key: an embedder that cannot tell whether a call landed reads the state (or
//! history) before it retries, or uses `Engine::execute` with an `Idempotency-Key`.

pub mod auth;
pub mod cli;
pub mod domain;
pub mod engine;
pub mod error_kind;
pub mod fixtures;
pub mod gitlab;
pub mod http;
pub mod ids;
pub mod outbound;
pub mod secrets;
pub mod sources;
pub mod store;
pub mod views;
