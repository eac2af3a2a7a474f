//! The storage contract for webhook endpoints and delivery state.

use std::future::Future;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::store::{LinkStore, Page, Paged};
use crate::{AccountId, Endpoint, Error, Event, EventId};

/// The delivery of one outbox event to its account's endpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Delivery {
    /// The event, whose id is the `webhook-id`.
    pub event: EventId,
    /// The event's position in the outbox.
    pub seq: u64,
    /// The account whose endpoint receives it.
    pub account: AccountId,
    /// Where it stands.
    pub status: DeliveryStatus,
    /// Attempts recorded so far (since it was queued or last re-queued).
    pub attempts: u32,
    /// The last attempt recorded.
    pub last_attempt: Option<Attempt>,
    /// While a dispatcher holds it: when that lease runs out.
    pub leased_until: Option<DateTime<Utc>>,
    /// When it was queued (or last re-queued).
    pub queued_at: DateTime<Utc>,
}

/// Where a delivery stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum DeliveryStatus {
    /// To be attempted at or after `next_attempt_at`.
    Pending {
        /// When the next attempt is due.
        next_attempt_at: DateTime<Utc>,
    },
    /// A `2xx` was received.
    Delivered {
        /// When.
        at: DateTime<Utc>,
    },
    /// Given up on; kept, and can be [re-queued](WebhookStore::requeue).
    Failed {
        /// When.
        at: DateTime<Utc>,
        /// Why.
        reason: FailReason,
    },
}

/// Why a delivery failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum FailReason {
    /// Every attempt of the retry schedule failed.
    Exhausted,
    /// The endpoint is disabled (by its owner, or because it answered `410 Gone`).
    EndpointDisabled,
}

/// One recorded delivery attempt.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attempt {
    /// 1 for the first attempt, counting from when the delivery was queued or re-queued.
    pub number: u32,
    /// When the attempt ended.
    pub at: DateTime<Utc>,
    /// What happened.
    pub outcome: AttemptOutcome,
}

/// What one attempt got.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
#[non_exhaustive]
pub enum AttemptOutcome {
    /// An HTTP response with this status.
    Status {
        /// The status code.
        code: u16,
    },
    /// No response within the timeout.
    Timeout,
    /// No response: the request failed (connection refused, DNS, TLS, ...).
    Transport {
        /// The error, without the URL.
        message: String,
    },
}

/// A dispatcher's exclusive hold on one due delivery, from
/// [`claim_due`](WebhookStore::claim_due) until it records the attempt or `until` passes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Lease {
    /// Unique per claim.
    pub id: Uuid,
    /// The event being delivered.
    pub event: EventId,
    /// The number this attempt will have.
    pub attempt: u32,
    /// When the lease runs out and another dispatcher may claim the delivery.
    pub until: DateTime<Utc>,
}

/// A claimed delivery: what a dispatcher needs to make one attempt.
#[derive(Debug, Clone)]
pub struct Claim {
    /// The lease to record the attempt under.
    pub lease: Lease,
    /// The event to send.
    pub event: Event,
    /// Where to send it and the secrets to sign it with.
    pub endpoint: Endpoint,
}

/// What happens after an attempt; see [`record_attempt`](WebhookStore::record_attempt).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[non_exhaustive]
pub enum NextStep {
    /// The receiver answered `2xx`: the delivery is done.
    Delivered,
    /// Try again at this time.
    RetryAt(DateTime<Utc>),
    /// The retry schedule is used up: the delivery fails (and is kept).
    GiveUp,
    /// The receiver answered `410 Gone`: the endpoint is disabled and every pending delivery
    /// of its account, this one included, fails.
    ///
    /// Only if the account's endpoint is still the one the attempt was sent to (same
    /// `updated_at`): if its owner replaced it meanwhile, the old URL's `410` says nothing about
    /// the new one, and the delivery is instead due again at once, for the new endpoint.
    DisableEndpoint {
        /// The [`updated_at`](crate::Endpoint::updated_at) of the endpoint the attempt went to.
        endpoint_updated_at: DateTime<Utc>,
    },
}

/// Storage for webhook endpoints and for the delivery state of outbox events: what lets a
/// [`Dispatcher`](crate::Dispatcher) deliver every event at least once, across restarts and
/// with several dispatchers at once.
///
/// Deliveries are made from the [outbox](LinkStore::outbox_after) by
/// [`queue_deliveries`](Self::queue_deliveries), which keeps its own cursor in the store. An
/// event is queued (as pending, due at once) when its account has an enabled endpoint at that
/// moment; it is queued as failed ([`FailReason::EndpointDisabled`]) when the endpoint is
/// disabled, so that it can be re-queued; and it is **not queued** when the account has no
/// endpoint: events from before an endpoint was first set are never sent (they stay readable
/// in the outbox).
///
/// Every method is atomic. The delivery-conformance suite (`magic_link::conformance::delivery`,
/// feature `test-util`) checks an implementation.
pub trait WebhookStore: LinkStore {
    /// Sets `endpoint` as its account's endpoint, replacing any other (a disabled one is thus
    /// re-enabled unless `endpoint.disabled_at` is set).
    ///
    /// # Errors
    ///
    /// `NotFound` if the account does not exist.
    fn set_endpoint(
        &self,
        endpoint: Endpoint,
    ) -> impl Future<Output = Result<Endpoint, Error>> + Send;

    /// Reads an account's endpoint; `None` if it has none.
    ///
    /// # Errors
    ///
    /// Only backend failures.
    fn endpoint(
        &self,
        account: AccountId,
    ) -> impl Future<Output = Result<Option<Endpoint>, Error>> + Send;

    /// Disables an account's endpoint at `now` (idempotent) and fails its pending deliveries
    /// with [`FailReason::EndpointDisabled`].
    ///
    /// # Errors
    ///
    /// `NotFound` if the account has no endpoint.
    fn disable_endpoint(
        &self,
        account: AccountId,
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<Endpoint, Error>> + Send;

    /// Queues deliveries for up to `limit` outbox events after the store's delivery cursor
    /// (see the trait's documentation for which are queued) and advances the cursor past
    /// them. Returns how many outbox events it took: fewer than `limit` means it caught up.
    /// Safe to call from several dispatchers at once: no event is queued twice.
    ///
    /// # Errors
    ///
    /// Only backend failures.
    fn queue_deliveries(
        &self,
        now: DateTime<Utc>,
        limit: usize,
    ) -> impl Future<Output = Result<usize, Error>> + Send;

    /// Claims up to `limit` pending deliveries that are due at `now` and not leased, oldest due
    /// first, each under a new [`Lease`] that runs for `lease` (at least one second). A
    /// delivery under a lease is claimed by no one else until the lease runs out. Due
    /// deliveries whose endpoint is disabled fail instead ([`FailReason::EndpointDisabled`]).
    ///
    /// # Errors
    ///
    /// Only backend failures.
    fn claim_due(
        &self,
        now: DateTime<Utc>,
        lease: Duration,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<Claim>, Error>> + Send;

    /// Records an attempt made under `lease` and applies `next`. Returns `false`, changing
    /// nothing, when the lease is no longer the delivery's current one (it ran out and another
    /// dispatcher claimed the delivery, or the delivery was failed or pruned meanwhile).
    ///
    /// [`NextStep::Delivered`] is the exception: it is recorded whatever the lease, unless the
    /// delivery is already delivered or gone, because a receiver that answered `2xx` has the
    /// event.
    ///
    /// # Errors
    ///
    /// Only backend failures.
    fn record_attempt(
        &self,
        lease: Lease,
        attempt: Attempt,
        next: NextStep,
    ) -> impl Future<Output = Result<bool, Error>> + Send;

    /// Reads the delivery of an event.
    ///
    /// # Errors
    ///
    /// `NotFound` if the event was not queued (or its delivery was pruned).
    fn delivery(&self, event: EventId) -> impl Future<Output = Result<Delivery, Error>> + Send;

    /// Lists failed deliveries, of one account or of all, in outbox order; the cursor is the
    /// [`seq`](Delivery::seq).
    ///
    /// # Errors
    ///
    /// Only backend failures.
    fn failed_deliveries(
        &self,
        account: Option<AccountId>,
        page: Page,
    ) -> impl Future<Output = Result<Paged<Delivery>, Error>> + Send;

    /// Puts a failed delivery back to pending, due at `now`, with a fresh retry schedule
    /// (its attempt count restarts). A delivery that is not failed is returned unchanged.
    ///
    /// # Errors
    ///
    /// `NotFound` if the event has no delivery.
    fn requeue(
        &self,
        event: EventId,
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<Delivery, Error>> + Send;

    /// Deletes up to `limit` delivered deliveries that were delivered before `before`; returns
    /// how many. Pending and failed deliveries are never pruned. The outbox events themselves
    /// are the [`LinkStore`]'s and stay.
    ///
    /// # Errors
    ///
    /// Only backend failures.
    fn prune_delivered(
        &self,
        before: DateTime<Utc>,
        limit: usize,
    ) -> impl Future<Output = Result<usize, Error>> + Send;
}
