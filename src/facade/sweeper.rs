//! [`MagicLinks::run_session_sweeper`]: the expiry of sessions as a background task.

use std::future::Future;
use std::time::Duration;

use crate::background::{backoff, Shutdown};
use crate::clock::Clock;
use crate::store::LinkStore;
use crate::{Error, MagicLinks};

/// Sessions expired per store call.
const SWEEP_BATCH: usize = 500;
/// The shortest period.
const MIN_PERIOD: Duration = Duration::from_millis(1);
/// The longest wait after failures, unless the period is longer.
const MAX_BACKOFF: Duration = Duration::from_secs(600);

impl<S: LinkStore, C: Clock> MagicLinks<S, C> {
    /// Abandons expired sessions every `period` until `shutdown` completes, releasing their
    /// credits: what a service runs for as long as it is up, on a task of its own. Returns how
    /// many sessions it abandoned.
    ///
    /// Each sweep calls [`expire_sessions`](Self::expire_sessions) in batches of 500 until it
    /// has caught up, starting at once. A store failure is passed to `on_error` (for logging)
    /// and ends the sweep; the next one comes after the period, doubled for each further
    /// failure in a row, up to 10 minutes (or the period, if longer). `shutdown` stops it at
    /// once, also in the middle of a sweep: each batch is atomic, so nothing is left half
    /// done.
    ///
    /// It needs a Tokio runtime with timers enabled (as `#[tokio::main]` sets up); `shutdown`
    /// is any future, such as `async { tokio::signal::ctrl_c().await.ok(); }` or a channel's
    /// receiver, and is not polled again once it has completed. `period` is at least 1 ms.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use std::sync::Arc;
    /// use std::time::Duration;
    /// use magic_link::store::MemoryStore;
    /// use magic_link::MagicLinks;
    ///
    /// async fn sweep(links: Arc<MagicLinks<MemoryStore>>, stop: tokio::sync::oneshot::Receiver<()>) {
    ///     let expired = links
    ///         .run_session_sweeper(
    ///             Duration::from_secs(30),
    ///             |err| eprintln!("expiring sessions: {err}"),
    ///             async {
    ///                 stop.await.ok();
    ///             },
    ///         )
    ///         .await;
    ///     println!("stopped after expiring {expired} sessions");
    /// }
    /// ```
    #[cfg_attr(docsrs, doc(cfg(feature = "background")))]
    pub async fn run_session_sweeper<F: Future<Output = ()>>(
        &self,
        period: Duration,
        mut on_error: impl FnMut(&Error),
        shutdown: F,
    ) -> usize {
        let period = period.max(MIN_PERIOD);
        let mut shutdown = Shutdown::new(shutdown, Duration::ZERO);
        let mut expired = 0usize;
        let mut failures = 0u32;
        loop {
            let failed = loop {
                let batch = tokio::select! {
                    biased;
                    () = shutdown.wait() => return expired,
                    batch = self.expire_sessions(SWEEP_BATCH) => batch,
                };
                match batch {
                    Ok(n) => {
                        expired = expired.saturating_add(n);
                        if n < SWEEP_BATCH {
                            break false;
                        }
                    }
                    Err(err) => {
                        on_error(&err);
                        break true;
                    }
                }
            };
            let wait = if failed {
                failures = failures.saturating_add(1);
                backoff(period, failures, MAX_BACKOFF)
            } else {
                failures = 0;
                period
            };
            tokio::select! {
                biased;
                () = shutdown.wait() => return expired,
                () = tokio::time::sleep(wait) => {}
            }
        }
    }
}
