//! Paging of lists: a request ([`Page`]) and its answer ([`Paged`]).

use serde::{Deserialize, Serialize};

/// A page request: items after `after` (0 for the first page), at most `limit` of them
/// (clamped to `1..=`[`Page::MAX_LIMIT`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Page {
    /// The cursor: the `next` of the previous page, or 0.
    pub after: u64,
    /// How many items at most.
    pub limit: usize,
}

impl Page {
    /// The largest page a store returns.
    pub const MAX_LIMIT: usize = 1000;

    /// The first page of `limit` items.
    pub fn first(limit: usize) -> Self {
        Self { after: 0, limit }
    }

    /// The limit clamped to `1..=MAX_LIMIT`.
    pub fn clamped_limit(&self) -> usize {
        self.limit.clamp(1, Self::MAX_LIMIT)
    }
}

impl Default for Page {
    fn default() -> Self {
        Self::first(100)
    }
}

/// One page of results.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Paged<T> {
    /// The items, oldest first.
    pub items: Vec<T>,
    /// The cursor of the next page, if there may be one.
    pub next: Option<u64>,
}
