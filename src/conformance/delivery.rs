//! The conformance suite for [`WebhookStore`] implementations: endpoints, queueing from the
//! outbox, leases, attempts, failures, re-queueing and pruning.
//!
//! Each check is a plain `async fn` taking a store; it creates its own accounts and panics
//! when the store breaks the contract. The checks can share one store, also with the core
//! suite:
//!
//! ```
//! use magic_link::store::MemoryStore;
//! use magic_link::conformance;
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! let store = MemoryStore::new();
//! conformance::run_all(&store).await;
//! conformance::delivery::run_all(&store).await;
//! # }
//! ```

use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};

use super::fixtures::{account_with, epoch, events_of, rejected};
use crate::store::WebhookStore;
use crate::webhooks::{
    Attempt, AttemptOutcome, Claim, DeliveryStatus, FailReason, Lease, NextStep,
};
use crate::webhooks::{Endpoint, EventType, WebhookSecret};
use crate::{AccountId, Error, Event, EventId, IdempotencyKey, Rejection};
use crate::{EventKind, Flow, Link, LinkId, NewLink, Page};

const LEASE: Duration = Duration::from_secs(60);

fn secs(s: i64) -> TimeDelta {
    TimeDelta::seconds(s)
}

fn secret(byte: u8) -> WebhookSecret {
    WebhookSecret::from_bytes(&[byte; 24]).expect("a 24-byte key")
}

fn endpoint(account: AccountId, url: &str, now: DateTime<Utc>) -> Endpoint {
    Endpoint::new(account, url, vec![secret(1), secret(2)], now).expect("a valid endpoint")
}

fn status(code: u16, number: u32, at: DateTime<Utc>) -> Attempt {
    Attempt {
        number,
        at,
        outcome: AttemptOutcome::Status { code },
    }
}

#[track_caller]
fn assert_not_found<T: std::fmt::Debug>(result: Result<T, Error>) {
    rejected(
        result,
        Rejection::NotFound,
        "an unknown id, or another account's",
    );
}

async fn account<S: WebhookStore>(store: &S) -> AccountId {
    account_with(store, 0).await.id
}

async fn account_with_endpoint<S: WebhookStore>(store: &S) -> AccountId {
    let id = account(store).await;
    store
        .set_endpoint(endpoint(id, "https://example.com/hook", epoch()))
        .await
        .expect("set endpoint");
    id
}

/// Appends one event (`credits.added`) for `account` and returns it.
async fn event<S: WebhookStore>(store: &S, account: AccountId) -> Event {
    let key = IdempotencyKey::new(EventId::new().to_string()).expect("a key");
    store
        .top_up(account, 1, key, epoch())
        .await
        .expect("top up");
    events_of(store, account).await.pop().expect("the event")
}

/// Claims what is due at `now` and keeps the claims of `accounts`: other checks may have left
/// due deliveries in a shared store.
async fn claim_mine<S: WebhookStore>(
    store: &S,
    now: DateTime<Utc>,
    accounts: &[AccountId],
) -> Vec<Claim> {
    store
        .claim_due(now, LEASE, 10_000)
        .await
        .expect("claim")
        .into_iter()
        .filter(|c| accounts.contains(&c.event.account))
        .collect()
}

async fn queue_all<S: WebhookStore>(store: &S, now: DateTime<Utc>) -> usize {
    let mut total = 0;
    loop {
        let taken = store.queue_deliveries(now, 100).await.expect("queue");
        total += taken;
        if taken < 100 {
            return total;
        }
    }
}

/// Runs every check on one store, in order. The checks use their own accounts, so the store
/// may hold other data (for example after [`run_all`](crate::conformance::run_all)).
pub async fn run_all<S: WebhookStore>(store: &S) {
    endpoints(store).await;
    queues_events_of_accounts_with_an_endpoint(store).await;
    concurrent_queueing_queues_each_event_once(store).await;
    claims_are_exclusive_until_the_lease_runs_out(store).await;
    attempts_move_deliveries_along(store).await;
    success_under_a_lost_lease_counts(store).await;
    exhausted_deliveries_fail_and_can_be_requeued(store).await;
    gone_endpoint_is_disabled(store).await;
    gone_from_a_replaced_endpoint_disables_nothing(store).await;
    disabling_an_endpoint_fails_its_pending_deliveries(store).await;
    failed_deliveries_page_and_filter(store).await;
    owner_operations_answer_not_found_to_other_accounts(store).await;
    prune_deletes_only_old_delivered(store).await;
    released_leases_are_claimable_at_once(store).await;
    endpoints_receive_only_their_event_types(store).await;
    // Prunes at a cutoff long before the other checks' records.
    super::retention(store).await;
}

/// Endpoints: set, read, replace, disable (idempotent), re-enable; unknown accounts.
pub async fn endpoints<S: WebhookStore>(store: &S) {
    let unknown = AccountId::new();
    assert_not_found(
        store
            .set_endpoint(endpoint(unknown, "https://a.example", epoch()))
            .await,
    );
    assert_not_found(store.disable_endpoint(unknown, epoch()).await);
    assert!(store.endpoint(unknown).await.expect("read").is_none());

    let id = account(store).await;
    assert!(store.endpoint(id).await.expect("read").is_none());
    assert_not_found(store.disable_endpoint(id, epoch()).await);

    let set = store
        .set_endpoint(endpoint(id, "https://a.example/x?token=1", epoch()))
        .await
        .expect("set");
    let read = store
        .endpoint(id)
        .await
        .expect("read")
        .expect("an endpoint");
    assert_eq!(read.url(), "https://a.example/x?token=1");
    assert_eq!(read.account, id);
    assert_eq!(read.secrets().len(), 2);
    assert_eq!(read.secrets()[0].key_bytes(), secret(1).key_bytes());
    assert_eq!(read.secrets()[1].key_bytes(), secret(2).key_bytes());
    assert_eq!(read.updated_at, set.updated_at);
    assert!(read.is_enabled());

    let replaced =
        Endpoint::new(id, "https://b.example/", vec![secret(3)], epoch() + secs(1)).expect("valid");
    store.set_endpoint(replaced).await.expect("replace");
    let read = store
        .endpoint(id)
        .await
        .expect("read")
        .expect("an endpoint");
    assert_eq!(read.url(), "https://b.example/");
    assert_eq!(read.secrets().len(), 1);
    assert_eq!(read.secrets()[0].key_bytes(), secret(3).key_bytes());

    let disabled = store
        .disable_endpoint(id, epoch() + secs(2))
        .await
        .expect("disable");
    assert_eq!(disabled.disabled_at, Some(epoch() + secs(2)));
    let again = store
        .disable_endpoint(id, epoch() + secs(3))
        .await
        .expect("disable");
    assert_eq!(
        again.disabled_at,
        Some(epoch() + secs(2)),
        "disabling is idempotent"
    );

    store
        .set_endpoint(endpoint(id, "https://c.example/", epoch() + secs(4)))
        .await
        .expect("set again");
    assert!(store
        .endpoint(id)
        .await
        .expect("read")
        .expect("an endpoint")
        .is_enabled());
}

/// Only events of accounts with an endpoint are queued; each event once; the cursor advances.
pub async fn queues_events_of_accounts_with_an_endpoint<S: WebhookStore>(store: &S) {
    let with = account_with_endpoint(store).await;
    let without = account(store).await;
    let a = event(store, with).await;
    let b = event(store, without).await;
    assert!(queue_all(store, epoch()).await >= 2);
    let delivery = store.delivery(a.account, a.id).await.expect("queued");
    assert_eq!(delivery.account, with);
    assert_eq!(delivery.seq, a.seq);
    assert_eq!(delivery.attempts, 0);
    assert_eq!(delivery.last_attempt, None);
    assert_eq!(
        delivery.status,
        DeliveryStatus::Pending {
            next_attempt_at: epoch()
        }
    );
    assert_not_found(store.delivery(b.account, b.id).await);
    assert_eq!(queue_all(store, epoch()).await, 0, "the cursor advanced");

    // An endpoint set later does not receive earlier events.
    store
        .set_endpoint(endpoint(without, "https://late.example/", epoch()))
        .await
        .expect("set");
    assert_eq!(queue_all(store, epoch()).await, 0);
    assert_not_found(store.delivery(b.account, b.id).await);
    let c = event(store, without).await;
    assert_eq!(queue_all(store, epoch()).await, 1);
    assert!(store.delivery(c.account, c.id).await.is_ok());
}

/// Two dispatchers queueing at once queue each event once.
pub async fn concurrent_queueing_queues_each_event_once<S: WebhookStore>(store: &S) {
    let id = account_with_endpoint(store).await;
    let mine = [id];
    let mut events = Vec::new();
    for _ in 0..20 {
        events.push(event(store, id).await);
    }
    let (a, b) = tokio_free_join(
        store.queue_deliveries(epoch(), 7),
        store.queue_deliveries(epoch(), 7),
    )
    .await;
    a.expect("queue");
    b.expect("queue");
    queue_all(store, epoch()).await;
    let claims = claim_mine(store, epoch(), &mine).await;
    let mut claimed: Vec<EventId> = claims.iter().map(|c| c.event.id).collect();
    claimed.sort();
    let mut expected: Vec<EventId> = events.iter().map(|e| e.id).collect();
    expected.sort();
    assert_eq!(claimed, expected);
}

/// A claimed delivery is leased: no one else claims it until the lease runs out, and a lost
/// lease cannot record a retry.
pub async fn claims_are_exclusive_until_the_lease_runs_out<S: WebhookStore>(store: &S) {
    let id = account_with_endpoint(store).await;
    let mine = [id];
    let e = event(store, id).await;
    queue_all(store, epoch()).await;

    let first = claim_mine(store, epoch(), &mine).await;
    assert_eq!(first.len(), 1);
    let first = &first[0];
    assert_eq!(first.event, e);
    assert_eq!(first.endpoint.url(), "https://example.com/hook");
    assert_eq!(first.endpoint.secrets().len(), 2);
    assert_eq!(first.lease.event, e.id);
    assert_eq!(first.lease.attempt, 1);
    assert_eq!(first.lease.until, epoch() + secs(60));
    let leased = store.delivery(e.account, e.id).await.expect("delivery");
    assert_eq!(leased.leased_until, Some(epoch() + secs(60)));

    assert!(claim_mine(store, epoch(), &mine).await.is_empty());
    assert!(claim_mine(store, epoch() + secs(59), &mine)
        .await
        .is_empty());

    // The first dispatcher stalls; its lease runs out and another takes over.
    let second = claim_mine(store, epoch() + secs(60), &mine).await;
    assert_eq!(second.len(), 1);
    let second = &second[0];
    assert_eq!(
        second.lease.attempt, 1,
        "an unrecorded attempt is not counted"
    );
    assert_ne!(second.lease.id, first.lease.id);

    let later = epoch() + secs(61);
    let stale = store
        .record_attempt(first.lease, status(500, 1, later), NextStep::RetryAt(later))
        .await
        .expect("record");
    assert!(!stale, "a lost lease records nothing");
    assert_eq!(
        store
            .delivery(e.account, e.id)
            .await
            .expect("delivery")
            .attempts,
        0
    );
    let fresh = store
        .record_attempt(
            second.lease,
            status(500, 1, later),
            NextStep::RetryAt(later + secs(5)),
        )
        .await
        .expect("record");
    assert!(fresh);
    let again = store
        .record_attempt(second.lease, status(500, 1, later), NextStep::GiveUp)
        .await
        .expect("record");
    assert!(!again, "a lease records one attempt");
}

/// Recording: a retry is due at its time with the next attempt number; success is final.
pub async fn attempts_move_deliveries_along<S: WebhookStore>(store: &S) {
    let id = account_with_endpoint(store).await;
    let mine = [id];
    let e = event(store, id).await;
    queue_all(store, epoch()).await;

    let claim = claim_mine(store, epoch(), &mine).await.remove(0);
    let retry_at = epoch() + secs(5);
    assert!(store
        .record_attempt(
            claim.lease,
            status(503, 1, epoch()),
            NextStep::RetryAt(retry_at)
        )
        .await
        .expect("record"));
    let d = store.delivery(e.account, e.id).await.expect("delivery");
    assert_eq!(
        d.status,
        DeliveryStatus::Pending {
            next_attempt_at: retry_at
        }
    );
    assert_eq!(d.attempts, 1);
    assert_eq!(d.leased_until, None);
    assert_eq!(d.last_attempt, Some(status(503, 1, epoch())));

    assert!(claim_mine(store, epoch() + secs(4), &mine).await.is_empty());
    let claim = claim_mine(store, retry_at, &mine).await.remove(0);
    assert_eq!(claim.lease.attempt, 2);
    assert!(store
        .record_attempt(claim.lease, status(204, 2, retry_at), NextStep::Delivered)
        .await
        .expect("record"));
    let d = store.delivery(e.account, e.id).await.expect("delivery");
    assert_eq!(d.status, DeliveryStatus::Delivered { at: retry_at });
    assert_eq!(d.attempts, 2);
    assert!(claim_mine(store, epoch() + secs(100_000), &mine)
        .await
        .is_empty());
    assert!(!store
        .record_attempt(claim.lease, status(204, 2, retry_at), NextStep::Delivered)
        .await
        .expect("record"));
}

/// A `2xx` is recorded even under a lost lease, and a later failure does not undo it.
pub async fn success_under_a_lost_lease_counts<S: WebhookStore>(store: &S) {
    let id = account_with_endpoint(store).await;
    let mine = [id];
    let e = event(store, id).await;
    queue_all(store, epoch()).await;
    let slow = claim_mine(store, epoch(), &mine).await.remove(0);
    let fast = claim_mine(store, epoch() + secs(60), &mine).await.remove(0);
    assert!(store
        .record_attempt(
            slow.lease,
            status(200, 1, epoch() + secs(61)),
            NextStep::Delivered
        )
        .await
        .expect("record"));
    assert!(!store
        .record_attempt(
            fast.lease,
            status(500, 1, epoch() + secs(62)),
            NextStep::RetryAt(epoch() + secs(70))
        )
        .await
        .expect("record"));
    assert_eq!(
        store
            .delivery(e.account, e.id)
            .await
            .expect("delivery")
            .status,
        DeliveryStatus::Delivered {
            at: epoch() + secs(61)
        }
    );
}

/// Giving up fails the delivery; it is listed, and re-queueing restarts its schedule.
pub async fn exhausted_deliveries_fail_and_can_be_requeued<S: WebhookStore>(store: &S) {
    let id = account_with_endpoint(store).await;
    let mine = [id];
    let e = event(store, id).await;
    queue_all(store, epoch()).await;
    let claim = claim_mine(store, epoch(), &mine).await.remove(0);
    assert!(store
        .record_attempt(claim.lease, status(500, 1, epoch()), NextStep::GiveUp)
        .await
        .expect("record"));
    let d = store.delivery(e.account, e.id).await.expect("delivery");
    assert_eq!(
        d.status,
        DeliveryStatus::Failed {
            at: epoch(),
            reason: FailReason::Exhausted
        }
    );
    assert!(claim_mine(store, epoch() + secs(100_000), &mine)
        .await
        .is_empty());
    let failed = store
        .failed_deliveries(id, Page::first(10))
        .await
        .expect("list");
    assert_eq!(failed.items, vec![d.clone()]);

    let later = epoch() + secs(10);
    let requeued = store
        .requeue(e.account, e.id, later)
        .await
        .expect("requeue");
    assert_eq!(
        requeued.status,
        DeliveryStatus::Pending {
            next_attempt_at: later
        }
    );
    assert_eq!(requeued.attempts, 0);
    assert!(store
        .failed_deliveries(id, Page::first(10))
        .await
        .expect("list")
        .items
        .is_empty());
    let claim = claim_mine(store, later, &mine).await.remove(0);
    assert_eq!(claim.lease.attempt, 1);
    assert!(store
        .record_attempt(claim.lease, status(200, 1, later), NextStep::Delivered)
        .await
        .expect("record"));
    let delivered = store
        .requeue(e.account, e.id, later)
        .await
        .expect("requeue");
    assert!(
        matches!(delivered.status, DeliveryStatus::Delivered { .. }),
        "only failed deliveries are re-queued"
    );
    assert_not_found(store.requeue(id, EventId::new(), later).await);
}

/// `410 Gone` disables the endpoint and fails every pending delivery of its account; events
/// queued while it is disabled are failed too, and all can be re-queued once it is set again.
pub async fn gone_endpoint_is_disabled<S: WebhookStore>(store: &S) {
    let id = account_with_endpoint(store).await;
    let other = account_with_endpoint(store).await;
    let mine = [id, other];
    let a = event(store, id).await;
    let b = event(store, id).await;
    let c = event(store, other).await;
    queue_all(store, epoch()).await;
    let claims = claim_mine(store, epoch(), &mine).await;
    assert_eq!(claims.len(), 3);
    let gone = claims
        .iter()
        .find(|claim| claim.event.id == a.id)
        .expect("a is due");
    assert!(store
        .record_attempt(
            gone.lease,
            status(410, 1, epoch()),
            NextStep::DisableEndpoint {
                endpoint_version: gone.endpoint.version,
            },
        )
        .await
        .expect("record"));
    let endpoint = store
        .endpoint(id)
        .await
        .expect("read")
        .expect("an endpoint");
    assert_eq!(endpoint.disabled_at, Some(epoch()));
    for event in [a.id, b.id] {
        assert_eq!(
            store.delivery(id, event).await.expect("delivery").status,
            DeliveryStatus::Failed {
                at: epoch(),
                reason: FailReason::EndpointDisabled
            },
            "pending deliveries fail, leased ones too"
        );
    }
    assert!(matches!(
        store
            .delivery(c.account, c.id)
            .await
            .expect("delivery")
            .status,
        DeliveryStatus::Pending { .. }
    ));

    let d = event(store, id).await;
    queue_all(store, epoch()).await;
    assert!(matches!(
        store
            .delivery(d.account, d.id)
            .await
            .expect("queued as failed")
            .status,
        DeliveryStatus::Failed {
            reason: FailReason::EndpointDisabled,
            ..
        }
    ));
    // Only the other account's delivery comes due again, when its lease runs out.
    let at = epoch() + secs(60);
    let claims = claim_mine(store, at, &mine).await;
    assert_eq!(claims.len(), 1);
    assert_eq!(claims[0].event.id, c.id);

    // Re-queued while the endpoint is still disabled: failed again when due.
    store.requeue(b.account, b.id, at).await.expect("requeue");
    assert!(claim_mine(store, at, &mine).await.is_empty());
    assert!(matches!(
        store
            .delivery(b.account, b.id)
            .await
            .expect("delivery")
            .status,
        DeliveryStatus::Failed { .. }
    ));

    let at = at + secs(1);
    store
        .set_endpoint(endpoint_at(id, at))
        .await
        .expect("set again");
    for event in [a.id, b.id, d.id] {
        store.requeue(id, event, at).await.expect("requeue");
    }
    let claims = claim_mine(store, at, &mine).await;
    let mut claimed: Vec<EventId> = claims.iter().map(|c| c.event.id).collect();
    claimed.sort();
    let mut expected = vec![a.id, b.id, d.id];
    expected.sort();
    assert_eq!(claimed, expected);
}

fn endpoint_at(account: AccountId, now: DateTime<Utc>) -> Endpoint {
    endpoint(account, "https://example.com/hook", now)
}

/// Disabling an endpoint by hand fails its pending deliveries.
pub async fn disabling_an_endpoint_fails_its_pending_deliveries<S: WebhookStore>(store: &S) {
    let id = account_with_endpoint(store).await;
    let mine = [id];
    let e = event(store, id).await;
    queue_all(store, epoch()).await;
    store
        .disable_endpoint(id, epoch() + secs(1))
        .await
        .expect("disable");
    assert_eq!(
        store
            .delivery(e.account, e.id)
            .await
            .expect("delivery")
            .status,
        DeliveryStatus::Failed {
            at: epoch() + secs(1),
            reason: FailReason::EndpointDisabled
        }
    );
    assert!(claim_mine(store, epoch() + secs(1), &mine).await.is_empty());
}

/// Failed deliveries page by `seq`, each account's own only.
pub async fn failed_deliveries_page_and_filter<S: WebhookStore>(store: &S) {
    let a = account_with_endpoint(store).await;
    let b = account_with_endpoint(store).await;
    let mine = [a, b];
    let mut failed_a = Vec::new();
    let mut failed_b = Vec::new();
    for account in [a, b, a, b, a] {
        let e = event(store, account).await;
        if account == a {
            failed_a.push(e.seq);
        } else {
            failed_b.push(e.seq);
        }
    }
    queue_all(store, epoch()).await;
    for due in claim_mine(store, epoch(), &mine).await {
        assert!(store
            .record_attempt(due.lease, status(500, 1, epoch()), NextStep::GiveUp)
            .await
            .expect("record"));
    }
    let of_b = store
        .failed_deliveries(b, Page::first(1000))
        .await
        .expect("list");
    assert_eq!(of_b.next, None);
    assert!(of_b.items.iter().all(|d| d.account == b));
    let seqs: Vec<u64> = of_b.items.iter().map(|d| d.seq).collect();
    assert_eq!(seqs, failed_b, "b's failed deliveries, in outbox order");
    let stranger = account(store).await;
    assert!(store
        .failed_deliveries(stranger, Page::first(1000))
        .await
        .expect("list")
        .items
        .is_empty());

    let mut seen = Vec::new();
    let mut page = Page::first(2);
    loop {
        let got = store.failed_deliveries(a, page).await.expect("list");
        assert!(got.items.len() <= 2);
        assert!(got.items.iter().all(|d| d.account == a));
        seen.extend(got.items.iter().map(|d| d.seq));
        match got.next {
            Some(next) => page.after = next,
            None => break,
        }
    }
    assert_eq!(seen, failed_a);
}

/// `delivery`, `failed_deliveries` and `requeue` take the owning account: another account's
/// delivery is `NotFound` (or not listed), exactly like an unknown one, and is left unchanged.
pub async fn owner_operations_answer_not_found_to_other_accounts<S: WebhookStore>(store: &S) {
    let owner = account_with_endpoint(store).await;
    let with_endpoint = account_with_endpoint(store).await;
    let without = account(store).await;
    let e = event(store, owner).await;
    queue_all(store, epoch()).await;
    for stranger in [with_endpoint, without] {
        assert_not_found(store.delivery(stranger, e.id).await);
    }
    let claim = claim_mine(store, epoch(), &[owner]).await.remove(0);
    assert!(store
        .record_attempt(claim.lease, status(500, 1, epoch()), NextStep::GiveUp)
        .await
        .expect("record"));
    let failed = store.delivery(owner, e.id).await.expect("the owner's");
    let later = epoch() + secs(1);
    for stranger in [with_endpoint, without, AccountId::new()] {
        assert_not_found(store.delivery(stranger, e.id).await);
        assert_not_found(store.requeue(stranger, e.id, later).await);
        assert!(
            store
                .failed_deliveries(stranger, Page::first(1000))
                .await
                .expect("list")
                .items
                .is_empty(),
            "another account's failed delivery is not listed"
        );
    }
    assert_eq!(
        store.delivery(owner, e.id).await.expect("the owner's"),
        failed,
        "a stranger's requeue changes nothing"
    );
    assert_eq!(
        store
            .failed_deliveries(owner, Page::first(1000))
            .await
            .expect("list")
            .items,
        vec![failed]
    );
    let requeued = store.requeue(owner, e.id, later).await.expect("requeue");
    assert_eq!(
        requeued.status,
        DeliveryStatus::Pending {
            next_attempt_at: later
        }
    );
}

/// Pruning deletes only deliveries delivered before the cutoff.
pub async fn prune_deletes_only_old_delivered<S: WebhookStore>(store: &S) {
    let id = account_with_endpoint(store).await;
    let mine = [id];
    let old = event(store, id).await;
    let recent = event(store, id).await;
    let failed = event(store, id).await;
    let pending = event(store, id).await;
    queue_all(store, epoch()).await;
    let claims = claim_mine(store, epoch(), &mine).await;
    for claim in claims {
        let (at, next) = if claim.event.id == old.id {
            (epoch(), NextStep::Delivered)
        } else if claim.event.id == recent.id {
            (epoch() + secs(100), NextStep::Delivered)
        } else if claim.event.id == failed.id {
            (epoch(), NextStep::GiveUp)
        } else {
            (epoch(), NextStep::RetryAt(epoch() + secs(5)))
        };
        let code = if next == NextStep::Delivered {
            200
        } else {
            500
        };
        assert!(store
            .record_attempt(claim.lease, status(code, 1, at), next)
            .await
            .expect("record"));
    }
    assert!(
        store
            .prune_delivered(epoch() + secs(50), 10_000)
            .await
            .expect("prune")
            >= 1
    );
    assert_not_found(store.delivery(old.account, old.id).await);
    for kept in [recent.id, failed.id, pending.id] {
        assert!(store.delivery(id, kept).await.is_ok());
    }
    assert_eq!(
        store
            .prune_delivered(epoch() + secs(50), 10_000)
            .await
            .expect("prune"),
        0
    );
    assert_eq!(
        queue_all(store, epoch()).await,
        0,
        "a pruned event is not queued again"
    );
}

/// Runs two futures to completion, polling both, without a runtime.
async fn tokio_free_join<A: std::future::Future, B: std::future::Future>(
    a: A,
    b: B,
) -> (A::Output, B::Output) {
    let mut a = Box::pin(a);
    let mut b = Box::pin(b);
    let mut out_a = None;
    let mut out_b = None;
    std::future::poll_fn(|cx| {
        if out_a.is_none() {
            if let std::task::Poll::Ready(v) = a.as_mut().poll(cx) {
                out_a = Some(v);
            }
        }
        if out_b.is_none() {
            if let std::task::Poll::Ready(v) = b.as_mut().poll(cx) {
                out_b = Some(v);
            }
        }
        if out_a.is_some() && out_b.is_some() {
            std::task::Poll::Ready(())
        } else {
            std::task::Poll::Pending
        }
    })
    .await;
    match (out_a, out_b) {
        (Some(a), Some(b)) => (a, b),
        _ => unreachable!("both futures completed"),
    }
}

/// A `410` from an endpoint its owner has replaced since the claim disables nothing: the
/// delivery is due again at once, for the new endpoint.
pub async fn gone_from_a_replaced_endpoint_disables_nothing<S: WebhookStore>(store: &S) {
    let id = account_with_endpoint(store).await;
    let a = event(store, id).await;
    queue_all(store, epoch()).await;
    let claims = claim_mine(store, epoch(), &[id]).await;
    let claim = claims
        .iter()
        .find(|claim| claim.event.id == a.id)
        .expect("a is due");
    assert_eq!(
        claim.endpoint.version, 1,
        "an account's first endpoint is version 1"
    );
    // Replaced in the very microsecond it was set: only the version tells the two apart.
    let replaced = store
        .set_endpoint(endpoint(id, "https://example.com/new-hook", epoch()))
        .await
        .expect("replace endpoint");
    assert_eq!(replaced.version, 2, "every set adds one to the version");
    let done = epoch() + TimeDelta::seconds(1);
    assert!(store
        .record_attempt(
            claim.lease,
            status(410, 1, done),
            NextStep::DisableEndpoint {
                endpoint_version: claim.endpoint.version,
            },
        )
        .await
        .expect("record"));
    let current = store.endpoint(id).await.expect("read").expect("endpoint");
    assert_eq!(current.disabled_at, None, "the new endpoint stays enabled");
    assert_eq!(current.url(), "https://example.com/new-hook");
    assert_eq!(current.version, 2, "the version reads back");
    assert_eq!(
        store
            .delivery(a.account, a.id)
            .await
            .expect("delivery")
            .status,
        DeliveryStatus::Pending {
            next_attempt_at: done
        },
        "the delivery is due again at once"
    );
}

/// Releasing a lease makes its delivery claimable at once, still due when it was, with its
/// attempt count unchanged; only the delivery's current lease can be released.
pub async fn released_leases_are_claimable_at_once<S: WebhookStore>(store: &S) {
    let id = account_with_endpoint(store).await;
    let mine = [id];
    let e = event(store, id).await;
    queue_all(store, epoch()).await;

    let first = claim_mine(store, epoch(), &mine).await.remove(0);
    assert!(store.release(first.lease).await.expect("release"));
    let d = store.delivery(e.account, e.id).await.expect("delivery");
    assert_eq!(
        d.status,
        DeliveryStatus::Pending {
            next_attempt_at: epoch()
        }
    );
    assert_eq!(d.leased_until, None);
    assert_eq!(d.attempts, 0);
    assert!(
        !store.release(first.lease).await.expect("release"),
        "a lease is released once"
    );

    // Claimable at once, long before the released lease would have run out.
    let second = claim_mine(store, epoch() + secs(1), &mine).await.remove(0);
    assert_eq!(second.lease.attempt, 1);
    assert_ne!(second.lease.id, first.lease.id);
    assert!(
        !store.release(first.lease).await.expect("release"),
        "an old lease releases nothing"
    );
    let forged = Lease {
        id: uuid::Uuid::new_v4(),
        ..second.lease
    };
    assert!(
        !store.release(forged).await.expect("release"),
        "another lease id releases nothing"
    );
    assert!(
        claim_mine(store, epoch() + secs(1), &mine).await.is_empty(),
        "the current lease still holds"
    );
    assert!(
        !store
            .record_attempt(
                first.lease,
                status(500, 1, epoch()),
                NextStep::RetryAt(epoch())
            )
            .await
            .expect("record"),
        "a released lease records nothing"
    );

    // Recorded: the lease is spent, and releasing it does not make the retry due early.
    let retry_at = epoch() + secs(30);
    assert!(store
        .record_attempt(
            second.lease,
            status(503, 1, epoch() + secs(1)),
            NextStep::RetryAt(retry_at)
        )
        .await
        .expect("record"));
    assert!(!store.release(second.lease).await.expect("release"));
    assert!(claim_mine(store, epoch() + secs(29), &mine)
        .await
        .is_empty());

    // A released retry keeps its attempt count and its due time.
    let third = claim_mine(store, retry_at, &mine).await.remove(0);
    assert_eq!(third.lease.attempt, 2);
    assert!(store.release(third.lease).await.expect("release"));
    let d = store.delivery(e.account, e.id).await.expect("delivery");
    assert_eq!(
        d.status,
        DeliveryStatus::Pending {
            next_attempt_at: retry_at
        }
    );
    assert_eq!(d.attempts, 1);
    assert_eq!(d.leased_until, None);
    assert_eq!(d.last_attempt, Some(status(503, 1, epoch() + secs(1))));

    // A lease that ran out and was taken over releases nothing.
    let stalled = claim_mine(store, retry_at, &mine).await.remove(0);
    let taken_over = claim_mine(store, retry_at + secs(60), &mine)
        .await
        .remove(0);
    assert!(!store.release(stalled.lease).await.expect("release"));
    assert!(claim_mine(store, retry_at + secs(60), &mine)
        .await
        .is_empty());
    assert!(store
        .record_attempt(
            taken_over.lease,
            status(204, 2, retry_at + secs(60)),
            NextStep::Delivered
        )
        .await
        .expect("record"));
    assert!(!store.release(taken_over.lease).await.expect("release"));
    assert!(matches!(
        store
            .delivery(e.account, e.id)
            .await
            .expect("delivery")
            .status,
        DeliveryStatus::Delivered { .. }
    ));

    // Unknown events and leases release nothing.
    let unknown = Lease {
        id: uuid::Uuid::new_v4(),
        event: EventId::new(),
        attempt: 1,
        until: epoch(),
    };
    assert!(!store.release(unknown).await.expect("release"));
}

/// Event types per endpoint: an endpoint set without a choice takes every type this version
/// knows, stored explicitly; a choice reads back as set; an event whose type the endpoint does
/// not take is not queued (as for an account without an endpoint), enabled or disabled, and
/// choosing its type later does not queue it; a claim carries the endpoint's choice.
pub async fn endpoints_receive_only_their_event_types<S: WebhookStore>(store: &S) {
    let id = account(store).await;
    let all = store
        .set_endpoint(endpoint(id, "https://types.example/", epoch()))
        .await
        .expect("set");
    assert_eq!(
        all.event_types(),
        EventType::ALL,
        "the default is every type"
    );
    let read = store
        .endpoint(id)
        .await
        .expect("read")
        .expect("an endpoint");
    assert_eq!(read.event_types(), EventType::ALL, "stored as a list");

    let links_only = endpoint(id, "https://types.example/links", epoch() + secs(1))
        .with_event_types([EventType::LinkCreated, EventType::SessionReviewed])
        .expect("types");
    store.set_endpoint(links_only).await.expect("set");
    let read = store
        .endpoint(id)
        .await
        .expect("read")
        .expect("an endpoint");
    assert_eq!(
        read.event_types(),
        [EventType::LinkCreated, EventType::SessionReviewed],
        "a choice reads back as set"
    );

    let credits = event(store, id).await;
    let spec = NewLink::new("types", Flow::Selfie);
    let link = Link::new(LinkId::new(), id, spec, epoch()).expect("a valid link");
    store.insert_link(link).await.expect("insert link");
    let created = events_of(store, id).await.pop().expect("the event");
    assert!(matches!(created.kind, EventKind::LinkCreated { .. }));
    queue_all(store, epoch()).await;
    assert_not_found(store.delivery(id, credits.id).await);
    let delivery = store.delivery(id, created.id).await.expect("queued");
    assert!(matches!(delivery.status, DeliveryStatus::Pending { .. }));
    let claims = claim_mine(store, epoch(), &[id]).await;
    assert_eq!(claims.len(), 1, "only the chosen type: {claims:?}");
    assert_eq!(claims[0].event.id, created.id);
    assert_eq!(
        claims[0].endpoint.event_types(),
        [EventType::LinkCreated, EventType::SessionReviewed],
        "a claim carries the endpoint's choice"
    );

    // Choosing the type later does not queue the earlier event.
    store
        .set_endpoint(endpoint(id, "https://types.example/", epoch() + secs(2)))
        .await
        .expect("set");
    queue_all(store, epoch()).await;
    assert_not_found(store.delivery(id, credits.id).await);

    // A disabled endpoint: failed if it takes the type, not queued if it does not.
    let mut disabled = endpoint(id, "https://types.example/off", epoch() + secs(3))
        .with_event_types([EventType::CreditsAdded])
        .expect("types");
    disabled.disabled_at = Some(epoch() + secs(3));
    store.set_endpoint(disabled).await.expect("set");
    let taken = event(store, id).await;
    let link = Link::new(
        LinkId::new(),
        id,
        NewLink::new("off", Flow::Selfie),
        epoch(),
    )
    .expect("a valid link");
    store.insert_link(link).await.expect("insert link");
    let skipped = events_of(store, id).await.pop().expect("the event");
    queue_all(store, epoch() + secs(4)).await;
    let failed = store
        .delivery(id, taken.id)
        .await
        .expect("queued as failed");
    assert_eq!(
        failed.status,
        DeliveryStatus::Failed {
            at: epoch() + secs(4),
            reason: FailReason::EndpointDisabled
        }
    );
    assert_not_found(store.delivery(id, skipped.id).await);
    let read = store
        .disable_endpoint(id, epoch() + secs(5))
        .await
        .expect("disable");
    assert_eq!(
        read.event_types(),
        [EventType::CreditsAdded],
        "disabling keeps the choice"
    );
}
