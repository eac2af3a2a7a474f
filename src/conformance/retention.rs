//! The retention check: [`LinkStore::prune`](crate::store::LinkStore::prune) removes exactly
//! what the retention rules allow and keeps statistics, the ledger and outbox cursors exact.

use std::collections::HashSet;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};

use super::fixtures::{epoch, events_of, key, ok, rejected, ttl};
use crate::start::{HandoffId, StartKeyHash};
use crate::store::WebhookStore;
use crate::webhooks::{Attempt, AttemptOutcome, DeliveryStatus, Endpoint, NextStep, WebhookSecret};
use crate::{
    Account, AccountId, Event, EventId, Flow, Link, LinkId, NewLink, Outcome, Page, Pruned,
    Rejection, Session, SessionId, UsageLimit,
};

fn mins(m: i64) -> TimeDelta {
    TimeDelta::minutes(m)
}

/// A time long before the other checks' (which start at [`epoch`]), so that pruning at a
/// cutoff before `epoch` touches only this check's records.
fn base() -> DateTime<Utc> {
    epoch() - TimeDelta::days(400)
}

/// The prune's cutoff.
fn cutoff() -> DateTime<Utc> {
    base() + TimeDelta::days(10)
}

async fn account_at<S: WebhookStore>(store: &S, credits: u64) -> AccountId {
    let id = AccountId::new();
    ok(
        store.create_account(Account::new(id, base())).await,
        "create_account",
    );
    ok(
        store.top_up(id, credits, key("initial"), base()).await,
        "top_up",
    );
    id
}

async fn link_at<S: WebhookStore>(store: &S, account: AccountId) -> LinkId {
    let spec = NewLink::new("retention", Flow::Selfie).limit(UsageLimit::Unlimited);
    let link = Link::new(LinkId::new(), account, spec, base()).expect("valid link");
    ok(store.insert_link(link).await, "insert_link").id
}

async fn start<S: WebhookStore>(
    store: &S,
    link: LinkId,
    key: Option<StartKeyHash>,
    at: DateTime<Utc>,
) -> Session {
    ok(
        store
            .redeem(link, SessionId::new(), key, None, ttl(), at)
            .await,
        "redeem",
    )
}

async fn top_up_event<S: WebhookStore>(store: &S, account: AccountId, at: DateTime<Utc>) -> Event {
    ok(
        store
            .top_up(account, 1, key(&EventId::new().to_string()), at)
            .await,
        "top_up",
    );
    events_of(store, account).await.pop().expect("the event")
}

async fn all_sessions<S: WebhookStore>(store: &S, account: AccountId, link: LinkId) -> Vec<u64> {
    let mut numbers = Vec::new();
    let mut after = 0;
    loop {
        let page = ok(
            store
                .sessions(account, link, Page { after, limit: 2 })
                .await,
            "sessions",
        );
        assert!(page.items.len() <= 2, "a page holds at most its limit");
        numbers.extend(page.items.iter().map(|s| s.number));
        match page.next {
            Some(next) => {
                assert_eq!(
                    Some(next),
                    page.items.last().map(|s| s.number),
                    "a sessions page's cursor is its last session's number"
                );
                after = next;
            }
            None => return numbers,
        }
    }
}

async fn whole_ledger<S: WebhookStore>(store: &S, account: AccountId) -> Vec<crate::LedgerEntry> {
    ok(
        store
            .ledger(account, Page::first(crate::Page::MAX_LIMIT))
            .await,
        "ledger",
    )
    .items
}

async fn prune_all<S: WebhookStore>(store: &S, before: DateTime<Utc>) -> Pruned {
    // A small batch, so that the batching is exercised.
    const BATCH: usize = 2;
    let mut total = Pruned::default();
    loop {
        let batch = ok(store.prune(before, BATCH).await, "prune");
        for n in [
            batch.sessions,
            batch.events,
            batch.deliveries,
            batch.handoffs,
        ] {
            assert!(
                n <= BATCH as u64,
                "prune removes at most `limit` of each kind"
            );
        }
        total.add(batch);
        if [
            batch.sessions,
            batch.events,
            batch.deliveries,
            batch.handoffs,
        ]
        .iter()
        .all(|&n| n < BATCH as u64)
        {
            return total;
        }
    }
}

/// Pruning removes the finished sessions, queued events no delivery needs, delivered and
/// failed deliveries and spent hand-offs older than the cutoff, and nothing else; statistics,
/// the ledger, session numbers and outbox sequence numbers stay as they were, and a second
/// prune removes nothing.
pub async fn retention<S: WebhookStore>(store: &S) {
    let b = base();
    let with_endpoint = account_at(store, 100).await;
    let without = account_at(store, 100).await;
    let secret = WebhookSecret::from_bytes(&[7; 24]).expect("a 24-byte key");
    let endpoint = Endpoint::new(with_endpoint, "https://example.com/hook", vec![secret], b)
        .expect("a valid endpoint");
    ok(store.set_endpoint(endpoint).await, "set_endpoint");
    let link = link_at(store, with_endpoint).await;
    let other = link_at(store, without).await;

    // Sessions of every end state, all ending before the cutoff, and some that must stay.
    let approved = start(store, link, Some(StartKeyHash::from_bytes([1; 32])), b).await;
    let denied = start(store, link, None, b).await;
    let waiting = start(store, link, None, b).await;
    let reviewed = start(store, link, None, b).await;
    let abandoned = start(store, link, None, b).await;
    let expired = start(store, link, None, b).await;
    let gone_handoff = HandoffId::from_bytes(*SessionId::new().as_bytes());
    ok(
        store
            .create_handoff(
                with_endpoint,
                approved.id,
                gone_handoff,
                cutoff() + mins(120),
                b,
            )
            .await,
        "create_handoff",
    );
    let finish =
        |s: SessionId, o: Outcome, m: i64| store.complete(with_endpoint, s, o, b + mins(m));
    ok(finish(approved.id, Outcome::Approved, 3).await, "complete");
    ok(finish(denied.id, Outcome::Denied, 5).await, "complete");
    ok(
        finish(waiting.id, Outcome::NeedsReview, 25).await,
        "complete",
    );
    ok(
        finish(reviewed.id, Outcome::NeedsReview, 9).await,
        "complete",
    );
    ok(
        store
            .review(with_endpoint, reviewed.id, Outcome::Approved, b + mins(20))
            .await,
        "review",
    );
    ok(
        store
            .abandon(with_endpoint, abandoned.id, b + mins(2))
            .await,
        "abandon",
    );
    // Abandoned at its time to live: as expired.
    ok(
        store.abandon(with_endpoint, expired.id, b + mins(31)).await,
        "abandon",
    );
    let open = start(store, link, None, b + mins(40)).await;
    let expired_handoff = HandoffId::from_bytes(*SessionId::new().as_bytes());
    let live_handoff = HandoffId::from_bytes(*SessionId::new().as_bytes());
    for (handoff, until) in [
        (expired_handoff, b + mins(45)),
        (live_handoff, cutoff() + mins(120)),
    ] {
        ok(
            store
                .create_handoff(with_endpoint, open.id, handoff, until, b + mins(41))
                .await,
            "create_handoff",
        );
    }
    let recent = start(store, link, None, cutoff() + mins(30)).await;
    ok(
        finish(recent.id, Outcome::Approved, 14_445).await,
        "complete",
    );
    let other_old = start(store, other, None, b).await;
    ok(
        store
            .complete(without, other_old.id, Outcome::Denied, b + mins(4))
            .await,
        "complete",
    );

    // Deliveries in every state, for events written before the cutoff.
    let delivered_old = top_up_event(store, with_endpoint, b + mins(50)).await;
    let delivered_recent = top_up_event(store, with_endpoint, b + mins(50)).await;
    let failed_old = top_up_event(store, with_endpoint, b + mins(50)).await;
    let failed_recent = top_up_event(store, with_endpoint, b + mins(50)).await;
    let pending = top_up_event(store, with_endpoint, b + mins(50)).await;
    let leased = top_up_event(store, with_endpoint, b + mins(50)).await;
    let other_recent = top_up_event(store, without, cutoff() + mins(60)).await;
    loop {
        if ok(store.queue_deliveries(b + mins(60), 100).await, "queue") < 100 {
            break;
        }
    }
    let claims: Vec<_> = ok(
        store
            .claim_due(b + mins(60), Duration::from_secs(60), 10_000)
            .await,
        "claim_due",
    )
    .into_iter()
    .filter(|c| c.event.account == with_endpoint)
    .collect();
    let mut leased_claim = None;
    // Deliveries delivered or failed before the cutoff.
    let mut done_before = 0;
    for claim in claims {
        let id = claim.event.id;
        let (at, next) = if id == leased.id {
            leased_claim = Some(claim);
            continue;
        } else if id == pending.id {
            (b + mins(60), NextStep::RetryAt(cutoff() + mins(600)))
        } else if id == failed_old.id {
            (b + mins(60), NextStep::GiveUp)
        } else if id == failed_recent.id {
            (cutoff() + mins(60), NextStep::GiveUp)
        } else if id == delivered_recent.id || claim.event.at >= cutoff() {
            (cutoff() + mins(60), NextStep::Delivered)
        } else {
            (b + mins(60), NextStep::Delivered)
        };
        let code = if next == NextStep::Delivered {
            200
        } else {
            500
        };
        if at < cutoff() && !matches!(next, NextStep::RetryAt(_)) {
            done_before += 1;
        }
        let attempt = Attempt {
            number: claim.lease.attempt,
            at,
            outcome: AttemptOutcome::Status { code },
        };
        assert!(
            ok(
                store.record_attempt(claim.lease, attempt, next).await,
                "record_attempt"
            ),
            "an attempt under a current lease is recorded"
        );
    }
    let leased_claim = leased_claim.expect("the leased delivery was claimed");
    // Written before the cutoff, but never queued.
    let unqueued = top_up_event(store, with_endpoint, b + mins(70)).await;

    let stats_before = (
        ok(store.stats(with_endpoint, link).await, "stats"),
        ok(store.stats(without, other).await, "stats"),
    );
    let ledgers_before = (
        whole_ledger(store, with_endpoint).await,
        whole_ledger(store, without).await,
    );
    let events_before = (
        events_of(store, with_endpoint).await,
        events_of(store, without).await,
    );

    let pruned = prune_all(store, cutoff()).await;

    // Sessions: the finished ones went; the open one, the one waiting for its review and the
    // recent one stayed, with their numbers.
    for gone in [
        approved.id,
        denied.id,
        reviewed.id,
        abandoned.id,
        expired.id,
    ] {
        rejected(
            store.session(with_endpoint, gone).await,
            Rejection::NotFound,
            "a session that finished before the cutoff is pruned",
        );
    }
    rejected(
        store.session(without, other_old.id).await,
        Rejection::NotFound,
        "a session that finished before the cutoff is pruned",
    );
    for kept in [&waiting, &open, &recent] {
        assert_eq!(
            ok(store.session(with_endpoint, kept.id).await, "session").number,
            kept.number,
            "open, unreviewed and recent sessions are never pruned, and keep their number"
        );
    }
    assert_eq!(
        all_sessions(store, with_endpoint, link).await,
        vec![waiting.number, open.number, recent.number],
        "sessions pages over the remaining sessions by number"
    );
    assert!(all_sessions(store, without, other).await.is_empty());

    // Statistics and the ledger are exact.
    assert_eq!(
        (
            ok(store.stats(with_endpoint, link).await, "stats"),
            ok(store.stats(without, other).await, "stats"),
        ),
        stats_before,
        "statistics count pruned sessions as before"
    );
    assert_eq!(
        (
            whole_ledger(store, with_endpoint).await,
            whole_ledger(store, without).await,
        ),
        ledgers_before,
        "the ledger is never pruned"
    );

    // Deliveries: delivered or failed before the cutoff went; the others stayed.
    for gone in [delivered_old.id, failed_old.id] {
        rejected(
            store.delivery(with_endpoint, gone).await,
            Rejection::NotFound,
            "a delivery delivered or failed before the cutoff is pruned",
        );
    }
    for kept in [delivered_recent.id, failed_recent.id, pending.id, leased.id] {
        ok(
            store.delivery(with_endpoint, kept).await,
            "a recent or pending delivery stays",
        );
    }

    // Events: the ones before the cutoff that were queued and need no delivery went; events
    // with a pending (leased or not) or failed delivery and the unqueued one stayed, with
    // their sequence numbers.
    let kept: HashSet<EventId> = [pending.id, leased.id, failed_recent.id, unqueued.id].into();
    let expected = |events: &[Event]| -> Vec<Event> {
        events
            .iter()
            .filter(|e| e.at >= cutoff() || kept.contains(&e.id))
            .cloned()
            .collect()
    };
    let events_after = (
        events_of(store, with_endpoint).await,
        events_of(store, without).await,
    );
    assert_eq!(
        events_after.0,
        expected(&events_before.0),
        "exactly the queued events that no delivery needs are pruned"
    );
    assert_eq!(events_after.1, vec![other_recent.clone()]);
    // A cursor inside the pruned range still reads what remains after it.
    let after_first = ok(
        store.outbox_after(delivered_old.seq - 1, 1).await,
        "outbox_after",
    );
    assert!(
        after_first
            .first()
            .is_some_and(|e| e.seq > delivered_old.seq),
        "outbox_after skips pruned events"
    );

    // Hand-offs: the expired one and the one of a pruned session went.
    for gone in [expired_handoff, gone_handoff] {
        rejected(
            store.check_handoff(gone, b + mins(42)).await,
            Rejection::NotFound,
            "a spent hand-off is pruned",
        );
    }
    ok(
        store.check_handoff(live_handoff, b + mins(42)).await,
        "a hand-off that expires after the cutoff, of a kept session, stays",
    );

    let removed_events = (events_before.0.len() - events_after.0.len())
        + (events_before.1.len() - events_after.1.len());
    // At least this check's records: other checks sharing the store may have left records
    // from before the cutoff too.
    let mine = Pruned {
        sessions: 6,
        events: removed_events as u64,
        deliveries: done_before,
        handoffs: 2,
    };
    assert!(
        pruned.sessions >= mine.sessions
            && pruned.events >= mine.events
            && pruned.deliveries >= mine.deliveries
            && pruned.handoffs >= mine.handoffs,
        "prune reports what it removed: {pruned:?}, this check's: {mine:?}"
    );
    assert_eq!(
        prune_all(store, cutoff()).await,
        Pruned::default(),
        "a second prune removes nothing"
    );

    // The leased delivery is still recorded under its lease.
    let lease = leased_claim.lease;
    let attempt = Attempt {
        number: lease.attempt,
        at: b + mins(61),
        outcome: AttemptOutcome::Status { code: 200 },
    };
    assert!(ok(
        store
            .record_attempt(lease, attempt, NextStep::Delivered)
            .await,
        "record_attempt"
    ));
    assert!(matches!(
        ok(store.delivery(with_endpoint, leased.id).await, "delivery").status,
        DeliveryStatus::Delivered { .. }
    ));
}
