//! Time, injected: the rules never read a clock themselves.

use std::fmt::Debug;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};

/// A source of the current time.
///
/// Times are whole microseconds, the precision every store keeps, so that a value read back
/// from a database equals the one written.
pub trait Clock: Debug + Send + Sync {
    /// The current time, truncated to whole microseconds.
    fn now(&self) -> DateTime<Utc>;
}

/// The operating system's clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        truncate_to_micros(Utc::now())
    }
}

/// A clock that moves only when told to. Clones share one time, so a test can hand a clone to
/// the code under test and advance it from outside.
///
/// # Examples
///
/// ```
/// use magic_link::clock::{Clock, ManualClock};
/// use chrono::Duration;
///
/// let clock = ManualClock::at_timestamp(1_700_000_000);
/// let shared = clock.clone();
/// clock.advance(Duration::minutes(5));
/// assert_eq!(shared.now().timestamp(), 1_700_000_300);
/// ```
#[derive(Debug, Clone)]
pub struct ManualClock(Arc<AtomicI64>);

impl ManualClock {
    /// A clock stopped at `at` (truncated to microseconds).
    pub fn new(at: DateTime<Utc>) -> Self {
        Self(Arc::new(AtomicI64::new(at.timestamp_micros())))
    }

    /// A clock stopped at a Unix time in seconds.
    pub fn at_timestamp(seconds: i64) -> Self {
        Self::new(DateTime::from_timestamp(seconds, 0).unwrap_or_default())
    }

    /// Moves the clock by `by` (backwards if negative).
    pub fn advance(&self, by: Duration) {
        let micros = by.num_microseconds().unwrap_or(i64::MAX);
        let _ = self
            .0
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |t| {
                Some(t.saturating_add(micros))
            });
    }

    /// Sets the clock to `at`.
    pub fn set(&self, at: DateTime<Utc>) {
        self.0.store(at.timestamp_micros(), Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        DateTime::from_timestamp_micros(self.0.load(Ordering::SeqCst))
            .unwrap_or(DateTime::<Utc>::MAX_UTC)
    }
}

impl<C: Clock + ?Sized> Clock for Arc<C> {
    fn now(&self) -> DateTime<Utc> {
        (**self).now()
    }
}

/// `t` truncated to whole microseconds, the precision every store keeps.
pub(crate) fn truncate_to_micros(t: DateTime<Utc>) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(t.timestamp_micros()).unwrap_or(t)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn system_clock_has_microsecond_precision() {
        let now = SystemClock.now();
        assert_eq!(now.timestamp_subsec_nanos() % 1000, 0);
    }

    #[test]
    fn manual_clock_clones_share_time() {
        let a = ManualClock::at_timestamp(10);
        let b = a.clone();
        a.advance(Duration::seconds(5));
        assert_eq!(b.now().timestamp(), 15);
        b.set(DateTime::from_timestamp(3, 0).unwrap());
        assert_eq!(a.now().timestamp(), 3);
    }
}
