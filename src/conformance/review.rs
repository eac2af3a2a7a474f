//! The review decision after `needs_review`: its check, and a race of concurrent reviews.

use std::collections::HashMap;
use std::sync::Arc;

use chrono::Duration;

use super::fixtures::{account_with, epoch, events_of, link_with, ok, rejected, ttl};
use crate::store::LinkStore;
use crate::{
    AccountId, Error, EventKind, InvalidInput, Outcome, Page, Rejection, Session, SessionId,
    SessionStatus, UsageLimit,
};

/// A started session of a new link of `account`, at [`epoch`].
async fn started<S: LinkStore>(store: &S, account: AccountId) -> Session {
    let link = link_with(store, account, UsageLimit::Unlimited, None).await;
    ok(
        store
            .redeem(link.id, SessionId::new(), None, None, ttl(), epoch())
            .await,
        "redeem",
    )
}

/// `session.reviewed` events of `session`, with their decisions.
async fn reviews_of<S: LinkStore>(
    store: &S,
    account: AccountId,
    session: SessionId,
) -> Vec<Outcome> {
    events_of(store, account)
        .await
        .into_iter()
        .filter_map(|e| match e.kind {
            EventKind::SessionReviewed {
                session: s,
                decision,
                ..
            } if s == session => Some(decision),
            _ => None,
        })
        .collect()
}

/// The review decision: only a session completed with `needs_review` is reviewed, once, with
/// `session.reviewed` and without billing; the same decision again is idempotent, the other is
/// refused; `needs_review` is no decision; other accounts get `NotFound`; the outcome at
/// completion stays, and the stats count the decision apart.
pub async fn review_decides_once<S: LinkStore>(store: &S) {
    let account = account_with(store, 5).await;
    let other = account_with(store, 0).await;
    let at = epoch() + Duration::minutes(1);
    let later = at + Duration::minutes(1);

    let session = started(store, account.id).await;
    rejected(
        store
            .review(account.id, session.id, Outcome::Approved, at)
            .await,
        Rejection::NotUnderReview,
        "reviewing an open session",
    );
    ok(
        store
            .complete(account.id, session.id, Outcome::NeedsReview, at)
            .await,
        "complete",
    );
    let invalid = store
        .review(account.id, session.id, Outcome::NeedsReview, at)
        .await;
    assert!(
        matches!(invalid, Err(Error::Invalid(InvalidInput::InvalidDecision))),
        "needs_review is not a decision: {invalid:?}"
    );
    rejected(
        store
            .review(other.id, session.id, Outcome::Approved, at)
            .await,
        Rejection::NotFound,
        "reviewing another account's session",
    );
    rejected(
        store
            .review(account.id, SessionId::new(), Outcome::Approved, at)
            .await,
        Rejection::NotFound,
        "reviewing an unknown session",
    );
    let credits = ok(store.account(account.id).await, "account");
    let ledger = ok(store.ledger(account.id, Page::first(100)).await, "ledger");
    let events = events_of(store, account.id).await.len();

    let reviewed = ok(
        store
            .review(account.id, session.id, Outcome::Approved, later)
            .await,
        "review",
    );
    assert_eq!(reviewed.decision, Some(Outcome::Approved));
    assert_eq!(reviewed.reviewed_at, Some(later));
    assert_eq!(
        reviewed.status,
        SessionStatus::Completed {
            outcome: Outcome::NeedsReview,
            at
        },
        "the outcome at completion stays"
    );
    assert!(!reviewed.awaits_review());
    assert_eq!(
        ok(store.session(account.id, session.id).await, "session"),
        reviewed,
        "a review reads back"
    );
    assert_eq!(
        ok(store.account(account.id).await, "account"),
        credits,
        "a review bills nothing"
    );
    assert_eq!(
        ok(store.ledger(account.id, Page::first(100)).await, "ledger"),
        ledger,
        "a review writes no ledger entry"
    );
    assert_eq!(
        events_of(store, account.id).await.len(),
        events + 1,
        "a review writes one event"
    );
    assert_eq!(
        reviews_of(store, account.id, session.id).await,
        [Outcome::Approved]
    );
    let last = events_of(store, account.id).await.pop().expect("an event");
    assert_eq!(last.at, later, "session.reviewed is dated at the review");

    let again = ok(
        store
            .review(
                account.id,
                session.id,
                Outcome::Approved,
                later + Duration::minutes(1),
            )
            .await,
        "the same decision again",
    );
    assert_eq!(again, reviewed, "a repeat returns the session unchanged");
    rejected(
        store
            .review(account.id, session.id, Outcome::Denied, later)
            .await,
        Rejection::ReviewConflict,
        "reviewing again with the other decision",
    );
    assert_eq!(
        reviews_of(store, account.id, session.id).await,
        [Outcome::Approved],
        "repeats and refusals write nothing"
    );
    rejected(
        store
            .complete(account.id, session.id, Outcome::Approved, later)
            .await,
        Rejection::OutcomeConflict,
        "a review does not change the outcome at completion",
    );
    ok(
        store
            .complete(account.id, session.id, Outcome::NeedsReview, later)
            .await,
        "repeat completion of a reviewed session",
    );

    // Sessions that did not complete needing review are not reviewed.
    let approved = started(store, account.id).await;
    ok(
        store
            .complete(account.id, approved.id, Outcome::Approved, at)
            .await,
        "complete",
    );
    let abandoned = started(store, account.id).await;
    ok(store.abandon(account.id, abandoned.id, at).await, "abandon");
    for id in [approved.id, abandoned.id] {
        for decision in [Outcome::Approved, Outcome::Denied] {
            rejected(
                store.review(account.id, id, decision, later).await,
                Rejection::NotUnderReview,
                "reviewing a session that did not complete with needs_review",
            );
        }
    }

    // A denial, and the stats.
    let denied = started(store, account.id).await;
    ok(
        store
            .complete(account.id, denied.id, Outcome::NeedsReview, at)
            .await,
        "complete",
    );
    let stats = ok(store.stats(account.id, denied.link).await, "stats");
    assert_eq!(stats.completed.needs_review, 1);
    assert_eq!(stats.reviewed.total(), 0, "not reviewed yet");
    let denial = ok(
        store
            .review(account.id, denied.id, Outcome::Denied, later)
            .await,
        "review",
    );
    assert_eq!(denial.decision, Some(Outcome::Denied));
    let stats = ok(store.stats(account.id, denied.link).await, "stats");
    assert_eq!(
        (
            stats.completed.needs_review,
            stats.reviewed.denied,
            stats.reviewed.approved
        ),
        (1, 1, 0),
        "the stats keep the outcome at completion and count the decision apart"
    );
    let stats = ok(store.stats(account.id, session.link).await, "stats");
    assert_eq!((stats.reviewed.approved, stats.reviewed.denied), (1, 0));
}

/// What a [`review_race`] observed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReviewRaceReport {
    /// The decision that won.
    pub decision: Outcome,
    /// Reviews that returned the session (the winner and the repeats of its decision).
    pub successes: u64,
    /// Typed rejections, by kind.
    pub rejections: HashMap<Rejection, u64>,
    /// `session.reviewed` events of the session.
    pub reviewed_events: u64,
}

/// `tasks` tasks review one session that completed with `needs_review` at once (on the current
/// Tokio runtime; use a multi-threaded one), half of them approving and half denying. Checks
/// that exactly one decision is recorded: every success carries it, every task with the other
/// decision meets `ReviewConflict`, the session reads back with it, exactly one
/// `session.reviewed` is written, and no credit moves.
///
/// # Panics
///
/// When a rule is broken or a store operation fails.
pub async fn review_race<S: LinkStore + 'static>(store: Arc<S>, tasks: usize) -> ReviewRaceReport {
    let account = account_with(&*store, 1).await;
    let session = started(&*store, account.id).await;
    let at = epoch() + Duration::minutes(1);
    ok(
        store
            .complete(account.id, session.id, Outcome::NeedsReview, at)
            .await,
        "complete",
    );
    let credits = ok(store.account(account.id).await, "account");
    let later = at + Duration::minutes(1);
    let handles: Vec<_> = (0..tasks)
        .map(|i| {
            let store = Arc::clone(&store);
            let decision = if i % 2 == 0 {
                Outcome::Approved
            } else {
                Outcome::Denied
            };
            tokio::spawn(async move {
                let result = store.review(account.id, session.id, decision, later).await;
                (decision, result)
            })
        })
        .collect();
    let mut winners = Vec::new();
    let mut rejections: HashMap<Rejection, u64> = HashMap::new();
    let mut by_decision: HashMap<Outcome, u64> = HashMap::new();
    for handle in handles {
        let (decision, result) = handle.await.expect("task");
        *by_decision.entry(decision).or_default() += 1;
        match result {
            Ok(s) => {
                assert_eq!(s.decision, Some(decision), "a success carries its decision");
                winners.push(decision);
            }
            Err(Error::Rejected(r)) => *rejections.entry(r).or_default() += 1,
            Err(other) => panic!("review failed: {other:?}"),
        }
    }
    let decision = *winners.first().expect("one review succeeds");
    assert!(
        winners.iter().all(|&w| w == decision),
        "exactly one decision wins: {winners:?}"
    );
    let report = ReviewRaceReport {
        decision,
        successes: winners.len() as u64,
        reviewed_events: reviews_of(&*store, account.id, session.id).await.len() as u64,
        rejections,
    };
    assert_eq!(
        report.successes, by_decision[&decision],
        "every review with the winning decision returns the session: {report:?}"
    );
    let losers = tasks as u64 - report.successes;
    assert_eq!(
        report
            .rejections
            .get(&Rejection::ReviewConflict)
            .copied()
            .unwrap_or(0),
        losers,
        "every review with the other decision is a conflict: {report:?}"
    );
    assert_eq!(
        report.reviewed_events, 1,
        "exactly one session.reviewed: {report:?}"
    );
    let stored = ok(store.session(account.id, session.id).await, "session");
    assert_eq!(
        stored.decision,
        Some(decision),
        "the winner's decision is stored"
    );
    assert_eq!(
        ok(store.account(account.id).await, "account"),
        credits,
        "reviews bill nothing"
    );
    report
}
