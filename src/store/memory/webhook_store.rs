//! [`WebhookStore`] for [`MemoryStore`]: one lock over the delivery book, taken after any
//! other but the outbox's (queueing reads the outbox under it), and never held across an
//! `await`.

use std::time::Duration;

use chrono::{DateTime, Utc};

use super::{lock, MemoryStore};
use crate::store::WebhookStore;
use crate::webhooks::Endpoint;
use crate::webhooks::{Attempt, Claim, Delivery, Lease, NextStep};
use crate::{AccountId, Error, EventId, Rejection};
use crate::{Page, Paged};

impl WebhookStore for MemoryStore {
    async fn set_endpoint(&self, endpoint: Endpoint) -> Result<Endpoint, Error> {
        let account = endpoint.account;
        let accounts = self.accounts.lock(&account);
        if !accounts.contains_key(&account) {
            return Err(Rejection::NotFound.into());
        }
        Ok(lock(&self.webhooks).set_endpoint(endpoint))
    }

    async fn endpoint(&self, account: AccountId) -> Result<Option<Endpoint>, Error> {
        Ok(lock(&self.webhooks).endpoint(account))
    }

    async fn disable_endpoint(
        &self,
        account: AccountId,
        now: DateTime<Utc>,
    ) -> Result<Endpoint, Error> {
        lock(&self.webhooks)
            .disable_endpoint(account, now)
            .ok_or_else(|| Rejection::NotFound.into())
    }

    async fn queue_deliveries(&self, now: DateTime<Utc>, limit: usize) -> Result<usize, Error> {
        // The outbox is read under the book's lock, so a redaction, which scrubs the outbox
        // and then the book, never leaves an unscrubbed copy queued (see `MemoryStore::scrub`).
        let mut book = lock(&self.webhooks);
        let events = self.read_outbox(book.cursor(), limit);
        Ok(book.queue(events, now))
    }

    async fn claim_due(
        &self,
        now: DateTime<Utc>,
        lease: Duration,
        limit: usize,
    ) -> Result<Vec<Claim>, Error> {
        Ok(lock(&self.webhooks).claim(now, lease, limit, &self.ids))
    }

    async fn record_attempt(
        &self,
        lease: Lease,
        attempt: Attempt,
        next: NextStep,
    ) -> Result<bool, Error> {
        Ok(lock(&self.webhooks).record(lease, attempt, next))
    }

    async fn release(&self, lease: Lease) -> Result<bool, Error> {
        Ok(lock(&self.webhooks).release(lease))
    }

    async fn delivery(&self, account: AccountId, event: EventId) -> Result<Delivery, Error> {
        lock(&self.webhooks)
            .delivery(account, event)
            .ok_or_else(|| Rejection::NotFound.into())
    }

    async fn failed_deliveries(
        &self,
        account: AccountId,
        page: Page,
    ) -> Result<Paged<Delivery>, Error> {
        Ok(lock(&self.webhooks).failed(account, page))
    }

    async fn requeue(
        &self,
        account: AccountId,
        event: EventId,
        now: DateTime<Utc>,
    ) -> Result<Delivery, Error> {
        lock(&self.webhooks)
            .requeue(account, event, now)
            .ok_or_else(|| Rejection::NotFound.into())
    }

    async fn prune_delivered(&self, before: DateTime<Utc>, limit: usize) -> Result<usize, Error> {
        Ok(lock(&self.webhooks).prune(before, limit))
    }
}
