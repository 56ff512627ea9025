//! Id sources for [`crate::domain::Context`]: random in production, sequential in tests.

use std::sync::atomic::{AtomicU64, Ordering};

use uuid::Uuid;

use crate::domain::IdSource;

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
