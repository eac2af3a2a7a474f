//! The [`WebhookStore`] trait: webhook endpoints and the delivery state of outbox events.

use std::future::Future;
use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::store::LinkStore;
use crate::webhooks::{Attempt, Claim, Delivery, Endpoint, Lease, NextStep};
use crate::{AccountId, Error, EventId, Page, Paged};

/// Storage for webhook endpoints and for the delivery state of outbox events: what lets a
/// [`Dispatcher`](crate::webhooks::Dispatcher) deliver every event at least once, across restarts and
/// with several dispatchers at once.
///
/// Deliveries are made from the [outbox](LinkStore::outbox_after) by
/// [`queue_deliveries`](Self::queue_deliveries), which keeps its own cursor in the store. An
/// event is queued (as pending, due at once) when its account has an enabled endpoint at that
/// moment; it is queued as failed ([`FailReason::EndpointDisabled`](crate::webhooks::FailReason::EndpointDisabled)) when the endpoint is
/// disabled, so that it can be re-queued; and it is **not queued** when the account has no
/// endpoint, or has one that does not take the event's type
/// ([`Endpoint::receives`](crate::webhooks::Endpoint::receives)): events from before an
/// endpoint was first set, and events of types it does not take, are never sent (they stay
/// readable in the outbox; choosing a type later does not queue its earlier events). Whether an
/// event is queued is decided by [`rules::queued_status`](crate::webhooks::rules::queued_status).
///
/// The owner operations ([`delivery`](Self::delivery),
/// [`failed_deliveries`](Self::failed_deliveries), [`requeue`](Self::requeue)) take the owning
/// [`AccountId`], like every [`LinkStore`] owner operation: another account's event is
/// `NotFound`, exactly like an unknown one. The dispatcher's operations
/// ([`queue_deliveries`](Self::queue_deliveries), [`claim_due`](Self::claim_due),
/// [`record_attempt`](Self::record_attempt), [`prune_delivered`](Self::prune_delivered)) work
/// across accounts.
///
/// Every method is atomic. What queueing, claiming and recording do is written once, as the pure
/// [delivery rules](crate::webhooks::rules); an implementation applies them. The
/// delivery-conformance suite (`magic_link::conformance::delivery`, feature `test-util`) and the
/// delivery model test (`magic_link::conformance::compare_delivery_with_model`) check an
/// implementation.
pub trait WebhookStore: LinkStore {
    /// Sets `endpoint` as its account's endpoint, replacing any other (a disabled one is thus
    /// re-enabled unless `endpoint.disabled_at` is set), with the
    /// [event types](crate::webhooks::Endpoint::event_types) it carries, stored as given.
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
    /// with [`FailReason::EndpointDisabled`](crate::webhooks::FailReason::EndpointDisabled).
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
    /// deliveries whose endpoint is disabled fail instead ([`FailReason::EndpointDisabled`](crate::webhooks::FailReason::EndpointDisabled)).
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

    /// Gives a lease up before it runs out, for a dispatcher that stops without recording an
    /// attempt (as `Dispatcher::run` does at shutdown, feature `background`): the delivery stays
    /// pending, due when it was due, with its attempt count unchanged, and any dispatcher may
    /// claim it again at once. Returns `false`, changing nothing, when the lease is no longer
    /// the delivery's current one (an attempt was recorded under it, it ran out and another
    /// dispatcher claimed the delivery, or the delivery was failed or pruned meanwhile).
    ///
    /// # Errors
    ///
    /// Only backend failures.
    fn release(&self, lease: Lease) -> impl Future<Output = Result<bool, Error>> + Send;

    /// Reads `account`'s delivery of an event.
    ///
    /// # Errors
    ///
    /// `NotFound` if the event was not queued (or its delivery was pruned), or is another
    /// account's.
    fn delivery(
        &self,
        account: AccountId,
        event: EventId,
    ) -> impl Future<Output = Result<Delivery, Error>> + Send;

    /// Lists `account`'s failed deliveries in outbox order; the cursor is the
    /// [`seq`](Delivery::seq).
    ///
    /// # Errors
    ///
    /// Only backend failures.
    fn failed_deliveries(
        &self,
        account: AccountId,
        page: Page,
    ) -> impl Future<Output = Result<Paged<Delivery>, Error>> + Send;

    /// Puts `account`'s failed delivery of an event back to pending, due at `now`, with a fresh
    /// retry schedule (its attempt count restarts). A delivery that is not failed is returned
    /// unchanged.
    ///
    /// # Errors
    ///
    /// `NotFound` if the event has no delivery, or is another account's.
    fn requeue(
        &self,
        account: AccountId,
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
