//! Per-link statistics.

use serde::{Deserialize, Serialize};

use crate::{Link, LinkId, Outcome, Session, SessionStatus};

/// Completed sessions of a link, by outcome.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct OutcomeCounts {
    /// Approved.
    pub approved: u64,
    /// Denied.
    pub denied: u64,
    /// Needing review.
    pub needs_review: u64,
}

impl OutcomeCounts {
    /// Counts one more `outcome`.
    pub fn add(&mut self, outcome: Outcome) {
        match outcome {
            Outcome::Approved => self.approved += 1,
            Outcome::Denied => self.denied += 1,
            Outcome::NeedsReview => self.needs_review += 1,
        }
    }

    /// All completed sessions.
    pub fn total(&self) -> u64 {
        self.approved + self.denied + self.needs_review
    }
}

/// Per-link statistics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct LinkStats {
    /// The link.
    pub link: LinkId,
    /// Redemptions so far.
    pub uses: u64,
    /// Redemptions left, `None` for unlimited.
    pub remaining: Option<u64>,
    /// Sessions still started (neither completed nor abandoned).
    pub started: u64,
    /// Completed sessions by their outcome at completion. A session that needed review stays
    /// counted under `needs_review` after its review: see [`reviewed`](Self::reviewed).
    pub completed: OutcomeCounts,
    /// Sessions that completed needing review and were then reviewed, by the owner's decision
    /// (`approved` or `denied`; `needs_review` is always 0). Those still waiting number
    /// `completed.needs_review - reviewed.total()`.
    #[serde(default)]
    pub reviewed: OutcomeCounts,
    /// Abandoned sessions (explicitly or expired).
    pub abandoned: u64,
}

impl LinkStats {
    /// Statistics of `link` from its sessions.
    pub fn tally<'a>(link: &Link, sessions: impl IntoIterator<Item = &'a Session>) -> Self {
        let mut stats = Self {
            link: link.id,
            uses: link.uses,
            remaining: link.remaining(),
            started: 0,
            completed: OutcomeCounts::default(),
            reviewed: OutcomeCounts::default(),
            abandoned: 0,
        };
        for session in sessions {
            match session.status {
                SessionStatus::Started => stats.started += 1,
                SessionStatus::Completed { outcome, .. } => stats.completed.add(outcome),
                SessionStatus::Abandoned { .. } => stats.abandoned += 1,
            }
            if let Some(decision) = session.decision {
                stats.reviewed.add(decision);
            }
        }
        stats
    }
}
