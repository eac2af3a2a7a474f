//! Per-link statistics.

use serde::{Deserialize, Serialize};

use crate::funnel::ViewCounts;
use crate::{AbandonReason, Link, LinkId, Outcome, Session, SessionStatus};

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

/// Per-link statistics: the link's funnel from landing-page views through starts to
/// completions, abandons and expiries.
///
/// Views are counters kept by the store (see [`funnel`](crate::funnel)); the session counts
/// and the median time to complete are computed from the sessions the store holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct LinkStats {
    /// The link.
    pub link: LinkId,
    /// Landing-page views by kind, as the host service recorded them with
    /// [`MagicLinks::record_view`](crate::MagicLinks::record_view).
    #[serde(default)]
    pub views: ViewCounts,
    /// Redemptions so far: the funnel's starts.
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
    /// Sessions abandoned explicitly (by the person or the host service).
    pub abandoned: u64,
    /// Sessions abandoned because their time to live passed (by the expiry sweep); not
    /// counted in `abandoned`.
    #[serde(default)]
    pub expired: u64,
    /// The median time from start to completion of the completed sessions the store holds
    /// (the lower median for an even count: a time that occurred), to the microsecond;
    /// `None` while none has completed.
    #[serde(default)]
    pub median_time_to_complete: Option<std::time::Duration>,
}

/// What pruned sessions of one link leave behind for its [`LinkStats`]: their counts and
/// their times to complete (microseconds only, no ids and nothing personal), so that
/// statistics stay exact after [`LinkStore::prune`](crate::store::LinkStore::prune).
///
/// A store adds each session it prunes with [`add`](Self::add) and computes statistics with
/// [`LinkStats::tally_with`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PrunedTally {
    /// Started sessions (always 0: open sessions are never pruned).
    pub started: u64,
    /// Completed sessions by outcome at completion.
    pub completed: OutcomeCounts,
    /// Reviewed sessions by decision.
    pub reviewed: OutcomeCounts,
    /// Sessions abandoned explicitly.
    pub abandoned: u64,
    /// Sessions abandoned as expired.
    pub expired: u64,
    /// The times to complete of the completed sessions, in microseconds, in the order added.
    pub times: Vec<u64>,
}

impl PrunedTally {
    /// Counts a session that is being pruned.
    pub fn add(&mut self, session: &Session) {
        match session.status {
            SessionStatus::Started => self.started += 1,
            SessionStatus::Completed { outcome, at } => {
                self.completed.add(outcome);
                let time = time_to_complete(session.started_at, at);
                self.times
                    .push(u64::try_from(time.as_micros()).unwrap_or(u64::MAX));
            }
            SessionStatus::Abandoned {
                reason: AbandonReason::Explicit,
                ..
            } => self.abandoned += 1,
            SessionStatus::Abandoned {
                reason: AbandonReason::Expired,
                ..
            } => self.expired += 1,
        }
        if let Some(decision) = session.decision {
            self.reviewed.add(decision);
        }
    }

    /// Whether nothing was pruned.
    pub fn is_empty(&self) -> bool {
        self == &Self::default()
    }
}

impl LinkStats {
    /// Statistics of `link` from its sessions.
    pub fn tally<'a>(link: &Link, sessions: impl IntoIterator<Item = &'a Session>) -> Self {
        Self::tally_with(link, sessions, &PrunedTally::default())
    }

    /// Statistics of `link` from the sessions the store holds and what its pruned sessions
    /// left behind: the same as [`tally`](Self::tally) over all of them before pruning.
    pub fn tally_with<'a>(
        link: &Link,
        sessions: impl IntoIterator<Item = &'a Session>,
        pruned: &PrunedTally,
    ) -> Self {
        let mut stats = Self {
            link: link.id,
            uses: link.uses,
            remaining: link.remaining(),
            started: 0,
            completed: OutcomeCounts::default(),
            reviewed: OutcomeCounts::default(),
            abandoned: 0,
            views: ViewCounts::default(),
            expired: 0,
            median_time_to_complete: None,
        };
        stats.started = pruned.started;
        stats.completed = pruned.completed;
        stats.reviewed = pruned.reviewed;
        stats.abandoned = pruned.abandoned;
        stats.expired = pruned.expired;
        let mut times: Vec<std::time::Duration> = pruned
            .times
            .iter()
            .map(|&micros| std::time::Duration::from_micros(micros))
            .collect();
        for session in sessions {
            match session.status {
                SessionStatus::Started => stats.started += 1,
                SessionStatus::Completed { outcome, at } => {
                    stats.completed.add(outcome);
                    times.push(time_to_complete(session.started_at, at));
                }
                SessionStatus::Abandoned {
                    reason: AbandonReason::Explicit,
                    ..
                } => stats.abandoned += 1,
                SessionStatus::Abandoned {
                    reason: AbandonReason::Expired,
                    ..
                } => stats.expired += 1,
            }
            if let Some(decision) = session.decision {
                stats.reviewed.add(decision);
            }
        }
        stats.median_time_to_complete = lower_median(&mut times);
        stats
    }

    /// Completed sessions per human view (`completed / views.human`); `None` while there is no
    /// human view. It can exceed 1 when sessions start without a recorded human view (a
    /// visitor whose browser ran no script, a start through the API).
    pub fn conversion(&self) -> Option<f64> {
        (self.views.human > 0).then(|| self.completed.total() as f64 / self.views.human as f64)
    }
}

/// How long a session took from start to completion, to the microsecond (0 if the times are
/// out of order).
fn time_to_complete(
    started: chrono::DateTime<chrono::Utc>,
    completed: chrono::DateTime<chrono::Utc>,
) -> std::time::Duration {
    let micros = (completed - started).num_microseconds().unwrap_or(i64::MAX);
    std::time::Duration::from_micros(u64::try_from(micros).unwrap_or(0))
}

/// The lower median: the middle value, or the smaller of the two middle values.
fn lower_median(values: &mut [std::time::Duration]) -> Option<std::time::Duration> {
    if values.is_empty() {
        return None;
    }
    let middle = (values.len() - 1) / 2;
    Some(*values.select_nth_unstable(middle).1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn the_median_is_the_lower_middle_value() {
        let s = Duration::from_secs;
        assert_eq!(lower_median(&mut []), None);
        assert_eq!(lower_median(&mut [s(5)]), Some(s(5)));
        assert_eq!(lower_median(&mut [s(9), s(1)]), Some(s(1)));
        assert_eq!(lower_median(&mut [s(9), s(1), s(4)]), Some(s(4)));
        assert_eq!(lower_median(&mut [s(9), s(1), s(4), s(7)]), Some(s(4)));
    }
}
