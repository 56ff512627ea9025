//! Where time, ids and randomness come from: the one module that reads the wall clock
//! (`Utc::now`), makes random UUIDs (`Uuid::new_v4`) and reads the operating system's random
//! source (`OsRng`). An architecture test forbids all three anywhere else.
//!
//! Everything else gets the time from a [`Clock`] and ids from an [`IdSource`] that its caller
//! injects (the engine's, set by whoever opened it), so a test can stand the clock still or
//! count ids from a seed, and a replay sees the same values. Secret material (keys, tokens,
//! nonces) is the exception by design: it comes from [`fill_random`], never from anything a
//! caller could make predictable.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use chrono::{DateTime, Duration, Utc};
use rand::RngCore;
use uuid::Uuid;

use crate::domain::IdSource;

/// Fills `bytes` from the operating system's random source: for keys, tokens and nonces.
pub fn fill_random(bytes: &mut [u8]) {
    rand::rngs::OsRng.fill_bytes(bytes);
}

/// The test-only switch that disables one stage's guard (`GOLIVE_BREAK_GUARD=<stage>`, with the
/// `break-guards` feature): read once, at run time, so `.ci/break-guards` compiles the suite once
/// and runs it once per guard (it used to recompile per guard, a third of CI's time). Processes
/// the tests start inherit the variable and so break the same guard.
#[cfg(feature = "break-guards")]
pub(crate) fn broken_guard() -> Option<&'static str> {
    static BROKEN_GUARD: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();
    BROKEN_GUARD.get_or_init(|| std::env::var("GOLIVE_BREAK_GUARD").ok()).as_deref()
}

pub trait Clock: Send + Sync + 'static {
    fn now(&self) -> DateTime<Utc>;
}

/// The system clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// A clock that stands still until moved (tests, fixture loading).
#[derive(Debug)]
pub struct ManualClock(Mutex<DateTime<Utc>>);

impl ManualClock {
    pub fn new(at: DateTime<Utc>) -> Self {
        Self(Mutex::new(at))
    }
    pub fn set(&self, at: DateTime<Utc>) {
        *self.0.lock().expect("clock lock") = at;
    }
    pub fn advance(&self, by: Duration) {
        *self.0.lock().expect("clock lock") += by;
    }
}

impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        *self.0.lock().expect("clock lock")
    }
}

/// Random (v4) UUIDs.
#[derive(Debug, Default, Clone, Copy)]
pub struct RandomIds;

impl IdSource for RandomIds {
    fn next_id(&self) -> Uuid {
        Uuid::new_v4()
    }
}

/// Deterministic UUIDs `00000000-0000-0000-0000-<n>` counting up from a seed, for tests.
#[derive(Debug, Default)]
pub struct SequentialIds {
    next: AtomicU64,
}

impl SequentialIds {
    pub fn starting_at(first: u64) -> Self {
        Self { next: AtomicU64::new(first) }
    }
}

impl IdSource for SequentialIds {
    fn next_id(&self) -> Uuid {
        let n = self.next.fetch_add(1, Ordering::Relaxed) + 1;
        Uuid::from_u128(u128::from(n))
    }
}
