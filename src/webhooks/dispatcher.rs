//! Delivery: takes due events from the store, signs them and sends them, at least once.

use std::future::{poll_fn, Future};
use std::pin::Pin;
use std::task::Poll;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};

use crate::clock::{Clock, SystemClock};
use crate::store::WebhookStore;
use crate::webhooks::{rules, Attempt, AttemptOutcome, Claim, NextStep};
use crate::webhooks::{signature_header, Transport, WebhookPayload, WebhookRequest};
use crate::Error;

#[cfg(feature = "background")]
mod run;

/// The default request timeout: 15 seconds.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(15);

/// Outbox events queued per store call.
const QUEUE_BATCH: usize = 500;
/// Store calls per [`Dispatcher::run_once`] to catch up with the outbox.
const QUEUE_ROUNDS: usize = 20;
/// Deliveries deleted per [`Dispatcher::prune`].
const PRUNE_BATCH: usize = 1000;

/// The delays between attempts of a delivery. The first attempt is immediate; after the
/// `n`-th failed attempt the next waits the `n`-th delay; after the last, the delivery fails.
///
/// The default is the Standard Webhooks schedule: 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h
/// (8 attempts over about 28 hours).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RetrySchedule(Vec<Duration>);

impl RetrySchedule {
    /// A schedule with these delays before the second, third, ... attempt. An empty list means
    /// a single attempt.
    pub fn new(retries: Vec<Duration>) -> Self {
        Self(retries)
    }

    /// The delays before each retry.
    pub fn retries(&self) -> &[Duration] {
        &self.0
    }

    /// How many attempts a delivery gets.
    pub fn max_attempts(&self) -> u32 {
        u32::try_from(self.0.len()).unwrap_or(u32::MAX - 1) + 1
    }

    /// The delay after attempt `attempt` (1-based) failed, or `None` if it was the last.
    pub fn delay_after(&self, attempt: u32) -> Option<Duration> {
        let index = usize::try_from(attempt.checked_sub(1)?).ok()?;
        self.0.get(index).copied()
    }
}

impl Default for RetrySchedule {
    fn default() -> Self {
        let minutes = |m: u64| Duration::from_secs(m * 60);
        Self(vec![
            Duration::from_secs(5),
            minutes(5),
            minutes(30),
            minutes(2 * 60),
            minutes(5 * 60),
            minutes(10 * 60),
            minutes(10 * 60),
        ])
    }
}

/// What one [`Dispatcher::run_once`] did, or a whole `Dispatcher::run` (feature `background`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct DispatchReport {
    /// Outbox events taken (queued for delivery, or skipped for having no endpoint).
    pub taken: usize,
    /// Attempts made.
    pub attempted: usize,
    /// Deliveries completed by a `2xx`.
    pub delivered: usize,
    /// Failed attempts scheduled for a retry.
    pub retrying: usize,
    /// Deliveries that failed for good (schedule used up).
    pub failed: usize,
    /// Endpoints disabled by a `410 Gone`.
    pub endpoints_disabled: usize,
    /// Attempts whose lease ran out before they were recorded: another dispatcher took over.
    pub lost_leases: usize,
    /// Claimed deliveries given back unattempted or unfinished at shutdown (only `run`).
    pub released: usize,
    /// Store failures met and gone past (only `run`, which backs off and goes on).
    pub store_errors: usize,
}

/// Adds up reports, such as those of successive [`Dispatcher::run_once`] calls.
impl std::ops::AddAssign for DispatchReport {
    fn add_assign(&mut self, other: Self) {
        let Self {
            taken,
            attempted,
            delivered,
            retrying,
            failed,
            endpoints_disabled,
            lost_leases,
            released,
            store_errors,
        } = other;
        self.taken += taken;
        self.attempted += attempted;
        self.delivered += delivered;
        self.retrying += retrying;
        self.failed += failed;
        self.endpoints_disabled += endpoints_disabled;
        self.lost_leases += lost_leases;
        self.released += released;
        self.store_errors += store_errors;
    }
}

impl DispatchReport {
    /// Counts the result of one attempt; passes a store failure on.
    fn count(&mut self, result: Result<(NextStep, bool), Error>) -> Result<(), Error> {
        match result? {
            (NextStep::Delivered, true) => self.delivered += 1,
            (NextStep::RetryAt(_), true) => self.retrying += 1,
            (NextStep::GiveUp, true) => self.failed += 1,
            (NextStep::DisableEndpoint { .. }, true) => self.endpoints_disabled += 1,
            (_, false) => self.lost_leases += 1,
        }
        Ok(())
    }
}

/// Delivers outbox events to the accounts' endpoints, at least once.
///
/// Each [`run_once`](Self::run_once) queues new outbox events, claims the deliveries that are
/// due (under a lease, so that several dispatchers can run against one store), sends them
/// concurrently through the [`Transport`], and records each attempt in the store. Every
/// attempt carries the event id as `webhook-id` and a fresh `webhook-timestamp` and
/// signature. A `2xx` completes a delivery; `410 Gone` disables the endpoint; anything else
/// (other codes, `3xx` included, timeouts, connection failures) is retried on the
/// [`RetrySchedule`], and `429`, `502`, `503` and `504` have their `Retry-After` honoured
/// (never sooner than the schedule, at most [`max_retry_after`](Self::max_retry_after)). When
/// the schedule is used up the delivery is marked failed and kept, to be listed and
/// re-queued. These decisions are [`rules::next_step`].
///
/// All state is in the store: a dispatcher can be dropped at any point and a new one resumes.
/// A delivery whose attempt was in flight is retried once its lease runs out.
///
/// With the `background` feature, `run` is the loop to run on a task of its own: it polls,
/// backs off on store failures, and on a shutdown signal lets sends in flight finish within a
/// grace period and gives the rest back to the store at once. Without it the dispatcher is
/// runtime-agnostic; drive it from a loop of your own:
///
/// ```no_run
/// use std::sync::Arc;
/// use std::time::Duration;
/// use magic_link::store::MemoryStore;
/// use magic_link::webhooks::{Dispatcher, Transport};
/// use magic_link::MagicLinks;
///
/// async fn deliver(store: Arc<MemoryStore>, transport: impl Transport) -> Result<(), magic_link::Error> {
///     let dispatcher = Dispatcher::new(store, transport);
///     loop {
///         let report = dispatcher.run_once().await?;
///         if report.attempted == 0 {
///             tokio::time::sleep(Duration::from_secs(1)).await;
///         }
///     }
/// }
/// ```
#[derive(Debug)]
pub struct Dispatcher<S, T, C = SystemClock> {
    store: S,
    transport: T,
    clock: C,
    schedule: RetrySchedule,
    timeout: Duration,
    lease: Option<Duration>,
    batch: usize,
    retention: Duration,
    max_retry_after: Duration,
    #[cfg(feature = "background")]
    background: run::Background,
}

impl<S: WebhookStore, T: Transport> Dispatcher<S, T> {
    /// A dispatcher over `store` and `transport` on the system clock, with the default
    /// schedule and a 15-second timeout.
    pub fn new(store: S, transport: T) -> Self {
        Self {
            store,
            transport,
            clock: SystemClock,
            schedule: RetrySchedule::default(),
            timeout: DEFAULT_TIMEOUT,
            lease: None,
            batch: 32,
            retention: Duration::from_secs(7 * 24 * 3600),
            max_retry_after: Duration::from_secs(24 * 3600),
            #[cfg(feature = "background")]
            background: run::Background::default(),
        }
    }
}

impl<S, T, C> Dispatcher<S, T, C> {
    /// The same dispatcher on another clock.
    pub fn with_clock<C2: Clock>(self, clock: C2) -> Dispatcher<S, T, C2> {
        Dispatcher {
            store: self.store,
            transport: self.transport,
            clock,
            schedule: self.schedule,
            timeout: self.timeout,
            lease: self.lease,
            batch: self.batch,
            retention: self.retention,
            max_retry_after: self.max_retry_after,
            #[cfg(feature = "background")]
            background: self.background,
        }
    }

    /// Sets the retry schedule.
    #[must_use]
    pub fn schedule(mut self, schedule: RetrySchedule) -> Self {
        self.schedule = schedule;
        self
    }

    /// Sets the request timeout (default 15 s).
    #[must_use]
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Sets how long a claimed delivery stays reserved for this dispatcher (default: the
    /// timeout plus 45 s; never less than the timeout plus 5 s).
    #[must_use]
    pub fn lease(mut self, lease: Duration) -> Self {
        self.lease = Some(lease);
        self
    }

    /// Sets how many deliveries one [`run_once`](Self::run_once) claims and sends
    /// concurrently (default 32, at least 1).
    #[must_use]
    pub fn batch_size(mut self, batch: usize) -> Self {
        self.batch = batch.max(1);
        self
    }

    /// Sets how long delivered deliveries are kept before [`prune`](Self::prune) deletes
    /// them (default 7 days).
    #[must_use]
    pub fn retention(mut self, retention: Duration) -> Self {
        self.retention = retention;
        self
    }

    /// Sets the longest `Retry-After` honoured (default 24 h); longer values are cut to it.
    #[must_use]
    pub fn max_retry_after(mut self, max: Duration) -> Self {
        self.max_retry_after = max;
        self
    }

    /// The store.
    pub fn store(&self) -> &S {
        &self.store
    }

    /// The transport.
    pub fn transport(&self) -> &T {
        &self.transport
    }

    /// The clock.
    pub fn clock(&self) -> &C {
        &self.clock
    }

    fn lease_duration(&self) -> Duration {
        let floor = self.timeout.saturating_add(Duration::from_secs(5));
        self.lease
            .unwrap_or(self.timeout.saturating_add(Duration::from_secs(45)))
            .max(floor)
    }
}

impl<S: WebhookStore, T: Transport, C: Clock> Dispatcher<S, T, C> {
    /// Queues new outbox events, then claims, sends and records the deliveries due now (up to
    /// the batch size). Call it in a loop.
    ///
    /// # Errors
    ///
    /// Store failures. Deliveries already sent when a store call fails are retried once their
    /// lease runs out.
    pub async fn run_once(&self) -> Result<DispatchReport, Error> {
        let mut report = DispatchReport::default();
        let claims = self.take_due(&mut report).await?;
        report.attempted = claims.len();
        let results = join_all(claims.into_iter().map(|c| self.attempt(c)).collect()).await;
        let mut first_error = None;
        for result in results {
            if let Err(err) = report.count(result) {
                first_error.get_or_insert(err);
            }
        }
        match first_error {
            Some(err) => Err(err),
            None => Ok(report),
        }
    }

    /// Queues new outbox events, then claims the deliveries due now (up to the batch size).
    async fn take_due(&self, report: &mut DispatchReport) -> Result<Vec<Claim>, Error> {
        let now = self.clock.now();
        for _ in 0..QUEUE_ROUNDS {
            let taken = self.store.queue_deliveries(now, QUEUE_BATCH).await?;
            report.taken += taken;
            if taken < QUEUE_BATCH {
                break;
            }
        }
        self.store
            .claim_due(now, self.lease_duration(), self.batch)
            .await
    }

    /// Deletes deliveries delivered longer ago than the retention (up to 1000 per call);
    /// returns how many.
    ///
    /// # Errors
    ///
    /// Store failures.
    pub async fn prune(&self) -> Result<usize, Error> {
        let retention = TimeDelta::from_std(self.retention).unwrap_or(TimeDelta::MAX);
        let now = self.clock.now();
        let before = now
            .checked_sub_signed(retention)
            .unwrap_or(DateTime::<Utc>::MIN_UTC);
        self.store.prune_delivered(before, PRUNE_BATCH).await
    }

    /// Makes one attempt of a claimed delivery and records it.
    async fn attempt(&self, claim: Claim) -> Result<(NextStep, bool), Error> {
        let body = WebhookPayload::from_event(&claim.event).to_json();
        let id = claim.event.id.to_string();
        let timestamp = self.clock.now().timestamp();
        let signature = signature_header(claim.endpoint.secrets(), &id, timestamp, &body);
        let request = WebhookRequest::new(
            claim.endpoint.url().to_owned(),
            id,
            timestamp.to_string(),
            signature,
            body,
            self.timeout,
        );
        let result = self.transport.send(request).await;
        let (outcome, retry_after) = match result {
            Ok(response) => (
                AttemptOutcome::Status {
                    code: response.status,
                },
                response.retry_after,
            ),
            Err(err) => match err.failure() {
                None => (AttemptOutcome::Timeout, None),
                Some(failure) => (AttemptOutcome::Transport { failure }, None),
            },
        };
        let attempt = Attempt {
            number: claim.lease.attempt,
            at: self.clock.now(),
            outcome,
        };
        let next = rules::next_step(
            &attempt,
            retry_after.as_deref(),
            claim.endpoint.version,
            &self.schedule,
            self.max_retry_after,
        );
        let recorded = self
            .store
            .record_attempt(claim.lease, attempt, next)
            .await?;
        Ok((next, recorded))
    }
}

/// Polls every future until all are done; outputs in input order. Needs no runtime.
async fn join_all<F: Future>(futures: Vec<F>) -> Vec<F::Output> {
    let mut futures: Vec<Pin<Box<F>>> = futures.into_iter().map(Box::pin).collect();
    let mut outputs: Vec<Option<F::Output>> = futures.iter().map(|_| None).collect();
    poll_fn(|cx| {
        let mut pending = false;
        for (future, output) in futures.iter_mut().zip(outputs.iter_mut()) {
            if output.is_none() {
                match future.as_mut().poll(cx) {
                    Poll::Ready(value) => *output = Some(value),
                    Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            Poll::Pending
        } else {
            Poll::Ready(())
        }
    })
    .await;
    outputs.into_iter().flatten().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_schedule_is_the_standard_one() {
        let s = RetrySchedule::default();
        assert_eq!(s.max_attempts(), 8);
        let secs: Vec<u64> = (1..=8)
            .map_while(|n| s.delay_after(n))
            .map(|d| d.as_secs())
            .collect();
        assert_eq!(secs, [5, 300, 1800, 7200, 18000, 36000, 36000]);
        assert_eq!(s.delay_after(0), None);
        assert_eq!(s.delay_after(8), None);
    }
}
