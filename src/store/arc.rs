//! Stores shared behind an [`Arc`]: a host hands one store to the [`MagicLinks`] facade and
//! to a [`Dispatcher`] at once.
//!
//! [`MagicLinks`]: crate::MagicLinks
//! [`Dispatcher`]: crate::webhooks::Dispatcher

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::returns::{ReturnSecret, ReturnSecrets};
use crate::start::{HandoffId, StartKeyHash};
use crate::store::LinkStore;
use crate::store::WebhookStore;
use crate::webhooks::Endpoint;
use crate::webhooks::{Attempt, Claim, Delivery, Lease, NextStep};
use crate::{
    Account, AccountId, AccountProfile, Error, Event, EventId, IdempotencyKey, LedgerEntry, Link,
    LinkId, Outcome, Reference, Session, SessionId, SessionTtl,
};
use crate::{LinkStats, Page, Paged};

impl<S: LinkStore> LinkStore for Arc<S> {
    fn create_account(
        &self,
        account: Account,
    ) -> impl Future<Output = Result<Account, Error>> + Send {
        (**self).create_account(account)
    }

    fn insert_link(&self, link: Link) -> impl Future<Output = Result<Link, Error>> + Send {
        (**self).insert_link(link)
    }

    fn redeem(
        &self,
        link: LinkId,
        session: SessionId,
        key: Option<StartKeyHash>,
        reference: Option<Reference>,
        ttl: SessionTtl,
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<Session, Error>> + Send {
        (**self).redeem(link, session, key, reference, ttl, now)
    }

    fn started_session(
        &self,
        link: LinkId,
        key: StartKeyHash,
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<Option<Session>, Error>> + Send {
        (**self).started_session(link, key, now)
    }

    fn create_handoff(
        &self,
        account: AccountId,
        session: SessionId,
        handoff: HandoffId,
        expires_at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<Session, Error>> + Send {
        (**self).create_handoff(account, session, handoff, expires_at, now)
    }

    fn accept_handoff(
        &self,
        handoff: HandoffId,
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<Session, Error>> + Send {
        (**self).accept_handoff(handoff, now)
    }

    fn check_handoff(
        &self,
        handoff: HandoffId,
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<Session, Error>> + Send {
        (**self).check_handoff(handoff, now)
    }

    fn complete(
        &self,
        account: AccountId,
        session: SessionId,
        outcome: Outcome,
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<Session, Error>> + Send {
        (**self).complete(account, session, outcome, now)
    }

    fn review(
        &self,
        account: AccountId,
        session: SessionId,
        decision: Outcome,
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<Session, Error>> + Send {
        (**self).review(account, session, decision, now)
    }

    fn abandon(
        &self,
        account: AccountId,
        session: SessionId,
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<Session, Error>> + Send {
        (**self).abandon(account, session, now)
    }

    fn expire_sessions(
        &self,
        now: DateTime<Utc>,
        limit: usize,
    ) -> impl Future<Output = Result<usize, Error>> + Send {
        (**self).expire_sessions(now, limit)
    }

    fn expire_links(
        &self,
        now: DateTime<Utc>,
        limit: usize,
    ) -> impl Future<Output = Result<usize, Error>> + Send {
        (**self).expire_links(now, limit)
    }

    fn prune(
        &self,
        before: DateTime<Utc>,
        limit: usize,
    ) -> impl Future<Output = Result<crate::Pruned, Error>> + Send {
        (**self).prune(before, limit)
    }

    fn deactivate(
        &self,
        account: AccountId,
        link: LinkId,
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<Link, Error>> + Send {
        (**self).deactivate(account, link, now)
    }

    fn redact_link(
        &self,
        account: AccountId,
        link: LinkId,
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<Link, Error>> + Send {
        (**self).redact_link(account, link, now)
    }

    fn redact_session(
        &self,
        account: AccountId,
        session: SessionId,
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<Session, Error>> + Send {
        (**self).redact_session(account, session, now)
    }

    fn top_up(
        &self,
        account: AccountId,
        amount: u64,
        key: IdempotencyKey,
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<Account, Error>> + Send {
        (**self).top_up(account, amount, key, now)
    }

    fn inspect(&self, link: LinkId) -> impl Future<Output = Result<(Link, Account), Error>> + Send {
        (**self).inspect(link)
    }

    fn set_profile(
        &self,
        account: AccountId,
        profile: AccountProfile,
    ) -> impl Future<Output = Result<Account, Error>> + Send {
        (**self).set_profile(account, profile)
    }

    fn return_secrets(
        &self,
        account: AccountId,
    ) -> impl Future<Output = Result<Option<ReturnSecrets>, Error>> + Send {
        (**self).return_secrets(account)
    }

    fn rotate_return_secret(
        &self,
        account: AccountId,
        secret: ReturnSecret,
    ) -> impl Future<Output = Result<(), Error>> + Send {
        (**self).rotate_return_secret(account, secret)
    }

    fn link(
        &self,
        account: AccountId,
        link: LinkId,
    ) -> impl Future<Output = Result<Link, Error>> + Send {
        (**self).link(account, link)
    }

    fn links(
        &self,
        account: AccountId,
        page: Page,
    ) -> impl Future<Output = Result<Paged<Link>, Error>> + Send {
        (**self).links(account, page)
    }

    fn links_by_reference(
        &self,
        account: AccountId,
        reference: &Reference,
    ) -> impl Future<Output = Result<Vec<Link>, Error>> + Send {
        (**self).links_by_reference(account, reference)
    }

    fn sessions_by_reference(
        &self,
        account: AccountId,
        reference: &Reference,
    ) -> impl Future<Output = Result<Vec<Session>, Error>> + Send {
        (**self).sessions_by_reference(account, reference)
    }

    fn session(
        &self,
        account: AccountId,
        session: SessionId,
    ) -> impl Future<Output = Result<Session, Error>> + Send {
        (**self).session(account, session)
    }

    fn sessions(
        &self,
        account: AccountId,
        link: LinkId,
        page: Page,
    ) -> impl Future<Output = Result<Paged<Session>, Error>> + Send {
        (**self).sessions(account, link, page)
    }

    fn record_view(
        &self,
        link: LinkId,
        change: crate::funnel::ViewChange,
    ) -> impl Future<Output = Result<crate::funnel::ViewCounts, Error>> + Send {
        (**self).record_view(link, change)
    }

    fn stats(
        &self,
        account: AccountId,
        link: LinkId,
    ) -> impl Future<Output = Result<LinkStats, Error>> + Send {
        (**self).stats(account, link)
    }

    fn account(&self, account: AccountId) -> impl Future<Output = Result<Account, Error>> + Send {
        (**self).account(account)
    }

    fn ledger(
        &self,
        account: AccountId,
        page: Page,
    ) -> impl Future<Output = Result<Paged<LedgerEntry>, Error>> + Send {
        (**self).ledger(account, page)
    }

    fn outbox_after(
        &self,
        cursor: u64,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<Event>, Error>> + Send {
        (**self).outbox_after(cursor, limit)
    }
}

impl<S: WebhookStore> WebhookStore for Arc<S> {
    fn set_endpoint(
        &self,
        endpoint: Endpoint,
    ) -> impl Future<Output = Result<Endpoint, Error>> + Send {
        (**self).set_endpoint(endpoint)
    }

    fn endpoint(
        &self,
        account: AccountId,
    ) -> impl Future<Output = Result<Option<Endpoint>, Error>> + Send {
        (**self).endpoint(account)
    }

    fn disable_endpoint(
        &self,
        account: AccountId,
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<Endpoint, Error>> + Send {
        (**self).disable_endpoint(account, now)
    }

    fn queue_deliveries(
        &self,
        now: DateTime<Utc>,
        limit: usize,
    ) -> impl Future<Output = Result<usize, Error>> + Send {
        (**self).queue_deliveries(now, limit)
    }

    fn claim_due(
        &self,
        now: DateTime<Utc>,
        lease: Duration,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<Claim>, Error>> + Send {
        (**self).claim_due(now, lease, limit)
    }

    fn record_attempt(
        &self,
        lease: Lease,
        attempt: Attempt,
        next: NextStep,
    ) -> impl Future<Output = Result<bool, Error>> + Send {
        (**self).record_attempt(lease, attempt, next)
    }

    fn release(&self, lease: Lease) -> impl Future<Output = Result<bool, Error>> + Send {
        (**self).release(lease)
    }

    fn delivery(
        &self,
        account: AccountId,
        event: EventId,
    ) -> impl Future<Output = Result<Delivery, Error>> + Send {
        (**self).delivery(account, event)
    }

    fn failed_deliveries(
        &self,
        account: AccountId,
        page: Page,
    ) -> impl Future<Output = Result<Paged<Delivery>, Error>> + Send {
        (**self).failed_deliveries(account, page)
    }

    fn requeue(
        &self,
        account: AccountId,
        event: EventId,
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<Delivery, Error>> + Send {
        (**self).requeue(account, event, now)
    }

    fn prune_delivered(
        &self,
        before: DateTime<Utc>,
        limit: usize,
    ) -> impl Future<Output = Result<usize, Error>> + Send {
        (**self).prune_delivered(before, limit)
    }
}
