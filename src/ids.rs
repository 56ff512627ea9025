//! Id sources for [`crate::domain::Context`]: random in production, sequential in tests.

use std::cell::Cell;

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
    next: Cell<u128>,
}

impl SequentialIds {
    pub fn starting_at(first: u128) -> Self {
        Self { next: Cell::new(first) }
    }
}

impl IdSource for SequentialIds {
    fn next_id(&self) -> Uuid {
        let n = self.next.get() + 1;
        self.next.set(n);
        Uuid::from_u128(n)
    }
}
