//! [`Dispatcher::run`]: delivery as a background task that backs off on store failures and
//! stops on a shutdown signal without stranding a claimed delivery.

use std::fmt;
use std::future::{pending, poll_fn, Future};
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use tokio::sync::Notify;

use super::{join_all, DispatchReport, Dispatcher, PRUNE_BATCH};
use crate::background::{backoff, Shutdown};
use crate::clock::Clock;
use crate::store::{ChangeSignal, WebhookStore};
use crate::webhooks::{Lease, Transport};
use crate::Error;

/// The shortest wait between passes.
const MIN_POLL_INTERVAL: Duration = Duration::from_millis(1);
/// The default wait after an idle pass.
const DEFAULT_POLL_INTERVAL: Duration = Duration::from_secs(1);
/// The default wait after an idle pass when woken by a store's changes: only a fallback for
/// lost notifications.
pub(crate) const WOKEN_POLL_INTERVAL: Duration = Duration::from_secs(5);
/// The least time given to the store to take back the leases at shutdown.
const MIN_RELEASE_WAIT: Duration = Duration::from_secs(5);
/// How often delivered deliveries past their retention are pruned, by the dispatcher's clock.
const PRUNE_EVERY: TimeDelta = TimeDelta::hours(1);

/// What [`Dispatcher::on_error`] sets.
type ErrorHook = Box<dyn Fn(&Error) + Send + Sync>;

/// The settings of [`Dispatcher::run`].
pub(super) struct Background {
    /// Set by [`Dispatcher::poll_interval`]; else 1 s, or 5 s with a change signal.
    poll_interval: Option<Duration>,
    max_backoff: Duration,
    grace: Duration,
    wake: Option<Arc<Notify>>,
    changes: Option<ChangeSignal>,
    on_error: Option<ErrorHook>,
}

impl Background {
    fn poll_interval(&self) -> Duration {
        self.poll_interval.unwrap_or(if self.changes.is_some() {
            WOKEN_POLL_INTERVAL
        } else {
            DEFAULT_POLL_INTERVAL
        })
    }
}

impl Default for Background {
    fn default() -> Self {
        Self {
            poll_interval: None,
            max_backoff: Duration::from_secs(60),
            grace: Duration::from_secs(10),
            wake: None,
            changes: None,
            on_error: None,
        }
    }
}

impl fmt::Debug for Background {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Background")
            .field("poll_interval", &self.poll_interval())
            .field("max_backoff", &self.max_backoff)
            .field("grace", &self.grace)
            .field("wake", &self.wake.is_some())
            .field("changes", &self.changes.is_some())
            .field("on_error", &self.on_error.is_some())
            .finish()
    }
}

impl<S, T, C> Dispatcher<S, T, C> {
    /// Sets how long [`run`](Self::run) waits after a pass that found nothing due (default
    /// 1 s; 5 s with [`wake_on_changes`](Self::wake_on_changes), where it is only the fallback
    /// for lost notifications; at least 1 ms). A [wake-up](Self::wake_on) cuts the wait short.
    #[cfg_attr(docsrs, doc(cfg(feature = "background")))]
    #[must_use]
    pub fn poll_interval(mut self, interval: Duration) -> Self {
        self.background.poll_interval = Some(interval.max(MIN_POLL_INTERVAL));
        self
    }

    /// Wakes [`run`](Self::run) whenever the store's change signal is raised, that is as soon
    /// as a change commits (from this process or, on PostgreSQL, from any instance sharing the
    /// database), so that its event is sent at once. The [poll](Self::poll_interval) stays as
    /// a fallback for lost notifications, 5 s unless set. A raise during a pass cuts the wait
    /// after it. Waits after store failures are not cut.
    ///
    /// ```no_run
    /// # use std::sync::Arc;
    /// use magic_link::store::{Changes, MemoryStore};
    /// use magic_link::webhooks::{Dispatcher, Transport};
    ///
    /// async fn deliver(store: Arc<MemoryStore>, transport: impl Transport) -> Result<(), magic_link::Error> {
    ///     let signal = store.changes().await?;
    ///     let dispatcher = Dispatcher::new(store, transport).wake_on_changes(signal);
    ///     dispatcher.run(async { tokio::signal::ctrl_c().await.ok(); }).await;
    ///     Ok(())
    /// }
    /// ```
    #[cfg_attr(docsrs, doc(cfg(feature = "background")))]
    #[must_use]
    pub fn wake_on_changes(mut self, signal: ChangeSignal) -> Self {
        self.background.changes = Some(signal);
        self
    }

    /// Sets the longest wait of [`run`](Self::run) after store failures (default 60 s). The
    /// first failure waits one poll interval; each further failure in a row doubles the wait,
    /// up to this.
    #[cfg_attr(docsrs, doc(cfg(feature = "background")))]
    #[must_use]
    pub fn max_backoff(mut self, max: Duration) -> Self {
        self.background.max_backoff = max;
        self
    }

    /// Sets how long [`run`](Self::run) lets attempts in flight finish once the shutdown
    /// signal fires (default 10 s). Attempts still unfinished then are cancelled and their
    /// deliveries given back to the store.
    #[cfg_attr(docsrs, doc(cfg(feature = "background")))]
    #[must_use]
    pub fn shutdown_grace(mut self, grace: Duration) -> Self {
        self.background.grace = grace;
        self
    }

    /// Cuts [`run`](Self::run)'s idle wait short whenever `wake` is notified
    /// ([`notify_one`](Notify::notify_one) or [`notify_waiters`](Notify::notify_waiters)),
    /// for example by the code that just changed something, so that its event is sent at once
    /// rather than at the next poll. A notification during a pass cuts the wait after it.
    /// Waits after store failures are not cut.
    #[cfg_attr(docsrs, doc(cfg(feature = "background")))]
    #[must_use]
    pub fn wake_on(mut self, wake: Arc<Notify>) -> Self {
        self.background.wake = Some(wake);
        self
    }

    /// Calls `report` with every store failure that [`run`](Self::run) meets (it goes on after
    /// a backoff), for logging.
    #[cfg_attr(docsrs, doc(cfg(feature = "background")))]
    #[must_use]
    pub fn on_error(mut self, report: impl Fn(&Error) + Send + Sync + 'static) -> Self {
        self.background.on_error = Some(Box::new(report));
        self
    }
}

impl<S: WebhookStore, T: Transport, C: Clock> Dispatcher<S, T, C> {
    /// Delivers the outbox until `shutdown` completes: what a service runs for as long as it
    /// is up, on a task of its own. Returns what it did, summed over its passes.
    ///
    /// It repeats the pass of [`run_once`](Self::run_once) (queue new events, claim what is
    /// due, send it concurrently, record the attempts), at once while there is work and after
    /// the [poll interval](Self::poll_interval) when a pass claimed nothing. Delivered
    /// deliveries older than the [retention](Self::retention) are
    /// [pruned](Self::prune) at the start and then hourly.
    ///
    /// - **Store failures** do not stop it: each is passed to the [`on_error`](Self::on_error)
    ///   hook, and it waits one poll interval, doubling with each further failure in a row up
    ///   to the [`max_backoff`](Self::max_backoff), before the next pass.
    /// - **Shutdown** stops it from claiming. Sends in flight get the
    ///   [grace period](Self::shutdown_grace) to finish and be recorded; the rest are
    ///   cancelled, and their deliveries (with any claimed but not yet sent) are
    ///   [released](WebhookStore::release): pending again, with their attempt counts, and
    ///   claimable by another dispatcher at once rather than when their leases run out.
    ///   Releasing waits for the store at most the grace period again (at least 5 s). A
    ///   shutdown during a store call that claims gives the call the grace period too; if it
    ///   is cut, what it may have claimed comes due when its lease runs out, as after a crash.
    ///
    /// A send that completed at the receiver but was cut before it was recorded is sent again:
    /// delivery stays at least once, and receivers deduplicate on `webhook-id`.
    ///
    /// It needs a Tokio runtime with timers enabled (as `#[tokio::main]` sets up); `shutdown`
    /// is any future, such as `async { tokio::signal::ctrl_c().await.ok(); }` or a channel's
    /// receiver, and is not polled again once it has completed.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use std::sync::Arc;
    /// use std::time::Duration;
    /// use magic_link::store::MemoryStore;
    /// use magic_link::webhooks::{Dispatcher, Transport};
    ///
    /// async fn deliver(store: Arc<MemoryStore>, transport: impl Transport) {
    ///     let dispatcher = Dispatcher::new(store, transport)
    ///         .shutdown_grace(Duration::from_secs(5))
    ///         .on_error(|err| eprintln!("webhook delivery: {err}"));
    ///     let report = dispatcher
    ///         .run(async {
    ///             tokio::signal::ctrl_c().await.ok();
    ///         })
    ///         .await;
    ///     println!("stopped: {} delivered, {} given back", report.delivered, report.released);
    /// }
    /// ```
    #[cfg_attr(docsrs, doc(cfg(feature = "background")))]
    pub async fn run<F: Future<Output = ()>>(&self, shutdown: F) -> DispatchReport {
        let settings = &self.background;
        let mut shutdown = Shutdown::new(shutdown, settings.grace);
        let mut totals = DispatchReport::default();
        let mut failures = 0u32;
        let mut last_prune: Option<DateTime<Utc>> = None;
        while !shutdown.fired().await {
            // Armed before the pass, so that a wake-up during the pass is not missed.
            let mut woken = settings.wake.as_deref().map(|n| Box::pin(n.notified()));
            if let Some(notified) = &mut woken {
                notified.as_mut().enable();
            }
            let mut changes = settings.changes.as_ref().map(ChangeSignal::listen);
            let mut failed = false;

            let Some(taken) = shutdown.within_grace(self.take_due(&mut totals)).await else {
                break;
            };
            let claims = taken.unwrap_or_else(|err| {
                self.store_failed(&err, &mut totals);
                failed = true;
                Vec::new()
            });
            let idle = claims.is_empty();
            if shutdown.fired().await {
                let leases = claims.iter().map(|claim| claim.lease).collect();
                self.give_back(leases, &mut totals).await;
                break;
            }

            totals.attempted += claims.len();
            let mut flight = InFlight::new(
                claims
                    .into_iter()
                    .map(|claim| (claim.lease, self.attempt(claim))),
            );
            // `None` when the grace period ran out: the unfinished attempts are given back.
            let _ = shutdown.within_grace(flight.run()).await;
            let (results, unfinished) = flight.finish();
            for result in results {
                if let Err(err) = totals.count(result) {
                    self.store_failed(&err, &mut totals);
                    failed = true;
                }
            }
            if shutdown.fired().await {
                self.give_back(unfinished, &mut totals).await;
                break;
            }

            let now = self.clock.now();
            if last_prune.is_none_or(|at| now.signed_duration_since(at) >= PRUNE_EVERY) {
                last_prune = Some(now);
                while let Some(pruned) = shutdown.within_grace(self.prune()).await {
                    match pruned {
                        Ok(n) if n >= PRUNE_BATCH => {}
                        Ok(_) => break,
                        Err(err) => {
                            self.store_failed(&err, &mut totals);
                            failed = true;
                            break;
                        }
                    }
                }
            }

            let wait = if failed {
                failures = failures.saturating_add(1);
                Some(backoff(
                    settings.poll_interval(),
                    failures,
                    settings.max_backoff,
                ))
            } else {
                failures = 0;
                idle.then_some(settings.poll_interval())
            };
            let Some(wait) = wait else { continue };
            let woken = async {
                if failed {
                    return pending().await;
                }
                let changed = async {
                    match &mut changes {
                        Some(listener) => listener.changed().await,
                        None => pending().await,
                    }
                };
                match woken {
                    Some(notified) => tokio::select! {
                        () = notified => {}
                        () = changed => {}
                    },
                    None => changed.await,
                }
            };
            tokio::select! {
                biased;
                () = shutdown.wait() => break,
                () = tokio::time::sleep(wait) => {}
                () = woken => {}
            }
        }
        totals
    }

    fn store_failed(&self, err: &Error, totals: &mut DispatchReport) {
        totals.store_errors += 1;
        if let Some(report) = &self.background.on_error {
            report(err);
        }
    }

    /// Releases `leases`, waiting for the store at most the grace period (at least 5 s).
    async fn give_back(&self, leases: Vec<Lease>, totals: &mut DispatchReport) {
        if leases.is_empty() {
            return;
        }
        let wait = self.background.grace.max(MIN_RELEASE_WAIT);
        let releasing = join_all(leases.into_iter().map(|l| self.store.release(l)).collect());
        // If the store does not answer in time, the leases run out by themselves.
        let Ok(results) = tokio::time::timeout(wait, releasing).await else {
            return;
        };
        for result in results {
            match result {
                Ok(true) => totals.released += 1,
                // Recorded meanwhile (a store call cut at shutdown may still have landed).
                Ok(false) => {}
                Err(err) => self.store_failed(&err, totals),
            }
        }
    }
}

/// Attempts under way, each with the lease it holds, polled together. Unfinished ones can be
/// dropped, which cancels their sends, and their leases given back.
struct InFlight<F: Future> {
    attempts: Vec<Attempting<F>>,
}

enum Attempting<F: Future> {
    Running(Lease, Pin<Box<F>>),
    Done(F::Output),
}

impl<F: Future> InFlight<F> {
    fn new(attempts: impl IntoIterator<Item = (Lease, F)>) -> Self {
        Self {
            attempts: attempts
                .into_iter()
                .map(|(lease, attempt)| Attempting::Running(lease, Box::pin(attempt)))
                .collect(),
        }
    }

    /// Drives every attempt; completes when all are done.
    async fn run(&mut self) {
        poll_fn(|cx| {
            let mut running = false;
            for attempt in &mut self.attempts {
                if let Attempting::Running(_, future) = attempt {
                    match future.as_mut().poll(cx) {
                        Poll::Ready(output) => *attempt = Attempting::Done(output),
                        Poll::Pending => running = true,
                    }
                }
            }
            if running {
                Poll::Pending
            } else {
                Poll::Ready(())
            }
        })
        .await;
    }

    /// The outputs of the finished attempts and the leases of the others, which are dropped.
    fn finish(self) -> (Vec<F::Output>, Vec<Lease>) {
        let mut outputs = Vec::new();
        let mut unfinished = Vec::new();
        for attempt in self.attempts {
            match attempt {
                Attempting::Done(output) => outputs.push(output),
                Attempting::Running(lease, _) => unfinished.push(lease),
            }
        }
        (outputs, unfinished)
    }
}
