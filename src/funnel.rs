//! The landing-page views of a link, the top of its funnel: views, starts, completions.
//!
//! A host service counts each view of a link's landing page with
//! [`MagicLinks::record_view`](crate::MagicLinks::record_view) as [`ViewKind::Human`],
//! [`ViewKind::Scanner`] or [`ViewKind::Unconfirmed`]. The crate only counts: the service
//! decides which kind a view is. A view consumes nothing (no use, no credit) and writes no
//! outbox event. The counters are part of [`LinkStats`](crate::LinkStats), next to starts,
//! completions by outcome, abandoned and expired sessions.
//!
//! A service usually cannot tell at once whether a visitor is a person: the example service
//! records each plain `GET` as unconfirmed, and *confirms* it ([`ViewChange::Confirm`]) when the
//! page's own script sends a beacon, or when a start follows from the same browser. `HEAD`
//! requests and known scanner user agents count as scanners.
//!
//! [`ViewCounts::apply`] is the rule every store applies, atomically per link.

use serde::{Deserialize, Serialize};

/// What a landing-page view was, as the host service judged it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ViewKind {
    /// A person's browser (for instance, the page's script ran and reported back).
    Human,
    /// Likely an email security scanner or a link preview bot (a `HEAD` request, a known
    /// scanner's user agent).
    Scanner,
    /// Not known yet: neither a scanner nor confirmed as a person.
    Unconfirmed,
}

impl ViewKind {
    /// Every kind, in a fixed order.
    pub const ALL: [ViewKind; 3] = [Self::Human, Self::Scanner, Self::Unconfirmed];

    /// The kind's name as it appears in JSON (`human`, `scanner`, `unconfirmed`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Human => "human",
            Self::Scanner => "scanner",
            Self::Unconfirmed => "unconfirmed",
        }
    }
}

/// One change to a link's view counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ViewChange {
    /// A new view of this kind.
    View(ViewKind),
    /// An unconfirmed view turned out to be a person's: moves one view from unconfirmed to
    /// human. With no unconfirmed view left it changes nothing, so the counts never go
    /// negative and a confirmation never adds a view. Make sure one page load is confirmed
    /// once (the example service remembers a random view id per page load).
    Confirm,
}

impl From<ViewKind> for ViewChange {
    fn from(kind: ViewKind) -> Self {
        Self::View(kind)
    }
}

/// A link's landing-page views, by kind. Counters: kept exactly, never recounted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ViewCounts {
    /// Views by people.
    pub human: u64,
    /// Views by likely scanners and preview bots.
    pub scanner: u64,
    /// Views not (yet) known to be either.
    pub unconfirmed: u64,
}

impl ViewCounts {
    /// Applies one change (the rule every store applies under the link's lock or in one
    /// statement). Returns whether the counts changed: a [`ViewChange::Confirm`] with no
    /// unconfirmed view left changes nothing. Counters saturate at `u64::MAX`.
    pub fn apply(&mut self, change: ViewChange) -> bool {
        match change {
            ViewChange::View(ViewKind::Human) => self.human = self.human.saturating_add(1),
            ViewChange::View(ViewKind::Scanner) => self.scanner = self.scanner.saturating_add(1),
            ViewChange::View(ViewKind::Unconfirmed) => {
                self.unconfirmed = self.unconfirmed.saturating_add(1);
            }
            ViewChange::Confirm => {
                if self.unconfirmed == 0 {
                    return false;
                }
                self.unconfirmed -= 1;
                self.human = self.human.saturating_add(1);
            }
        }
        true
    }

    /// All views.
    pub fn total(&self) -> u64 {
        self.human
            .saturating_add(self.scanner)
            .saturating_add(self.unconfirmed)
    }

    /// The count of one kind.
    pub fn of(&self, kind: ViewKind) -> u64 {
        match kind {
            ViewKind::Human => self.human,
            ViewKind::Scanner => self.scanner,
            ViewKind::Unconfirmed => self.unconfirmed,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn confirming_moves_one_unconfirmed_view_and_never_goes_negative() {
        let mut counts = ViewCounts::default();
        assert!(!counts.apply(ViewChange::Confirm), "nothing to confirm");
        assert_eq!(counts, ViewCounts::default());
        for kind in ViewKind::ALL {
            assert!(counts.apply(kind.into()));
        }
        assert!(counts.apply(ViewKind::Unconfirmed.into()));
        assert_eq!(
            (counts.human, counts.scanner, counts.unconfirmed),
            (1, 1, 2)
        );
        assert!(counts.apply(ViewChange::Confirm));
        assert!(counts.apply(ViewChange::Confirm));
        assert!(!counts.apply(ViewChange::Confirm));
        assert_eq!(
            (counts.human, counts.scanner, counts.unconfirmed),
            (3, 1, 0)
        );
        assert_eq!(counts.total(), 4);
    }
}
