//! What the background tasks (feature `background`) share: the shutdown signal with its grace
//! period, and the backoff after failures.

use std::future::{poll_fn, Future};
use std::pin::Pin;
use std::task::Poll;
use std::time::Duration;

use tokio::time::Instant;

/// The longest wait [`backoff`] doubles up to before its cap: 2^16 times the first.
const MAX_DOUBLINGS: u32 = 16;

/// The wait after `failures` (at least 1) failures in a row: `first`, doubling with each
/// further failure, at most `cap` (but never less than `first`).
pub(crate) fn backoff(first: Duration, failures: u32, cap: Duration) -> Duration {
    let doublings = failures.saturating_sub(1).min(MAX_DOUBLINGS);
    first.saturating_mul(1 << doublings).min(cap.max(first))
}

/// A shutdown signal, polled only until it fires, and the grace period that starts then.
pub(crate) struct Shutdown<F> {
    signal: Pin<Box<F>>,
    grace: Duration,
    /// Set when the signal fired: the end of the grace period.
    deadline: Option<Instant>,
}

impl<F: Future<Output = ()>> Shutdown<F> {
    pub(crate) fn new(signal: F, grace: Duration) -> Self {
        Self {
            signal: Box::pin(signal),
            grace,
            deadline: None,
        }
    }

    /// Whether the signal has fired, checking it without waiting.
    pub(crate) async fn fired(&mut self) -> bool {
        if self.deadline.is_none() {
            let ready = poll_fn(|cx| Poll::Ready(self.signal.as_mut().poll(cx).is_ready())).await;
            if ready {
                self.deadline = Some(Instant::now() + self.grace);
            }
        }
        self.deadline.is_some()
    }

    /// Waits for the signal (at once if it has fired).
    pub(crate) async fn wait(&mut self) {
        if self.deadline.is_none() {
            self.signal.as_mut().await;
            self.deadline = Some(Instant::now() + self.grace);
        }
    }

    /// Runs `work` to its end, unless the signal fires first: then `work` has until the grace
    /// period ends, and is dropped unfinished (`None`) if it needs longer.
    pub(crate) async fn within_grace<W: Future>(&mut self, work: W) -> Option<W::Output> {
        let mut work = std::pin::pin!(work);
        if self.deadline.is_none() {
            tokio::select! {
                biased;
                output = &mut work => return Some(output),
                () = self.wait() => {}
            }
        }
        let deadline = self.deadline.unwrap_or_else(Instant::now);
        tokio::time::timeout_at(deadline, work).await.ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let s = Duration::from_secs;
        let waits: Vec<u64> = (1..=6).map(|n| backoff(s(1), n, s(10)).as_secs()).collect();
        assert_eq!(waits, [1, 2, 4, 8, 10, 10]);
        assert_eq!(backoff(s(1), 0, s(10)), s(1), "0 failures count as 1");
        assert_eq!(backoff(s(5), 3, s(2)), s(5), "never below the first wait");
        assert_eq!(backoff(s(1), u32::MAX, Duration::MAX), s(1 << 16));
        assert_eq!(backoff(Duration::MAX, 9, Duration::MAX), Duration::MAX);
    }
}
