//! Where new ids come from: random in production, a fixed sequence in tests.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use uuid::Uuid;

/// The source of every id the crate makes for new objects: links and sessions (in the
/// [`MagicLinks`](crate::MagicLinks) facade), outbox events and delivery leases (in
/// [`MemoryStore`](super::MemoryStore)).
///
/// [`IdSource::random`], the default, makes UUIDv4s from the operating system's random source.
/// [`IdSource::sequential`] makes a fixed sequence instead, so that a test which does the same
/// steps in the same order gets the same ids, tokens, signatures and payloads on every run
/// (snapshot tests). Clones share one sequence. Never use a sequential source in production:
/// its ids are guessable.
///
/// `PostgresStore` makes event and lease ids inside the database and always at random.
///
/// # Examples
///
/// ```
/// use magic_link::store::IdSource;
///
/// let a = IdSource::sequential(7);
/// let b = IdSource::sequential(7);
/// assert_eq!(a.next(), b.next());
/// assert_ne!(a.next(), IdSource::sequential(8).next());
/// ```
#[derive(Clone, Default)]
pub struct IdSource(Option<Arc<Sequence>>);

struct Sequence {
    seed: u64,
    next: AtomicU64,
}

impl IdSource {
    /// Random UUIDv4s (the default).
    pub fn random() -> Self {
        Self(None)
    }

    /// A fixed sequence of UUIDs for tests, determined by `seed`: the `n`-th id has the seed in
    /// its first half and `n` in its second, with the version and variant bits of a UUIDv4.
    pub fn sequential(seed: u64) -> Self {
        Self(Some(Arc::new(Sequence {
            seed,
            next: AtomicU64::new(1),
        })))
    }

    /// Whether this source is random.
    pub fn is_random(&self) -> bool {
        self.0.is_none()
    }

    /// The next id.
    pub fn next(&self) -> Uuid {
        match &self.0 {
            None => Uuid::new_v4(),
            Some(sequence) => {
                let n = sequence.next.fetch_add(1, Ordering::Relaxed);
                uuid::Builder::from_u128((u128::from(sequence.seed) << 64) | u128::from(n))
                    .with_version(uuid::Version::Random)
                    .with_variant(uuid::Variant::RFC4122)
                    .into_uuid()
            }
        }
    }
}

impl fmt::Debug for IdSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            None => f.write_str("IdSource::Random"),
            Some(sequence) => f
                .debug_struct("IdSource::Sequential")
                .field("seed", &sequence.seed)
                .finish_non_exhaustive(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sequential_ids_are_valid_v4_and_repeat_per_seed() {
        let ids = IdSource::sequential(42);
        let first = ids.next();
        assert_eq!(first.get_version(), Some(uuid::Version::Random));
        assert_eq!(first.get_variant(), uuid::Variant::RFC4122);
        let clone = ids.clone();
        assert_ne!(clone.next(), first, "clones share one sequence");
        let again = IdSource::sequential(42);
        assert_eq!(again.next(), first);
        assert!(IdSource::random().is_random());
        assert_ne!(IdSource::random().next(), IdSource::random().next());
    }
}
