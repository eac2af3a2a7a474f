//! Retention: what [`LinkStore::prune`](crate::store::LinkStore::prune) removed.

use serde::{Deserialize, Serialize};

/// What one prune removed (see [`MagicLinks::prune`](crate::MagicLinks::prune) and
/// [`LinkStore::prune`](crate::store::LinkStore::prune)): counts only.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Pruned {
    /// Finished sessions (completed and, if they needed review, reviewed; or abandoned).
    pub sessions: u64,
    /// Outbox events.
    pub events: u64,
    /// Webhook delivery records (delivered or failed).
    pub deliveries: u64,
    /// Hand-offs.
    pub handoffs: u64,
}

impl Pruned {
    /// Everything removed, in all.
    pub fn total(&self) -> u64 {
        self.sessions + self.events + self.deliveries + self.handoffs
    }

    /// Adds another batch's counts.
    pub fn add(&mut self, other: Pruned) {
        self.sessions += other.sessions;
        self.events += other.events;
        self.deliveries += other.deliveries;
        self.handoffs += other.handoffs;
    }
}
