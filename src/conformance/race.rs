//! The race check: many tasks redeem one link at once.

use std::collections::HashMap;
use std::sync::Arc;

use super::fixtures::{account_with, epoch, events_of, link_with, ttl};
use crate::store::LinkStore;
use crate::{Error, EventKind, Rejection, SessionId, UsageLimit};

/// What a [`race`] observed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RaceReport {
    /// Redemptions that succeeded.
    pub successes: u64,
    /// Typed rejections, by kind.
    pub rejections: HashMap<Rejection, u64>,
    /// The link's uses afterwards.
    pub uses: u64,
    /// The account's held credits afterwards.
    pub held: u64,
    /// `link.redeemed` events of the link.
    pub redeemed_events: u64,
    /// `link.exhausted` events of the link.
    pub exhausted_events: u64,
    /// Sessions listed for the link.
    pub sessions: u64,
}

/// `tasks` tasks each try `attempts` redemptions of one link with `limit`, owned by an account
/// with `credits` credits, all at once (on the current Tokio runtime; use a multi-threaded one).
/// Checks that successes are exactly `min(limit, credits, tasks * attempts)`, that every other
/// attempt met a typed rejection, and that uses, holds, sessions and events all agree.
///
/// # Panics
///
/// When a rule is broken or a store operation fails.
pub async fn race<S: LinkStore + 'static>(
    store: Arc<S>,
    tasks: usize,
    attempts: usize,
    limit: UsageLimit,
    credits: u64,
) -> RaceReport {
    let account = account_with(&*store, credits).await;
    let link = link_with(&*store, account.id, limit, None).await;
    let handles: Vec<_> = (0..tasks)
        .map(|_| {
            let store = Arc::clone(&store);
            tokio::spawn(async move {
                let mut outcomes = Vec::with_capacity(attempts);
                for _ in 0..attempts {
                    let r = store
                        .redeem(link.id, SessionId::new(), None, None, ttl(), epoch())
                        .await;
                    outcomes.push(r.map(|_| ()).map_err(|e| match e {
                        Error::Rejected(r) => r,
                        other => panic!("redeem failed: {other:?}"),
                    }));
                }
                outcomes
            })
        })
        .collect();
    let mut report = RaceReport {
        successes: 0,
        rejections: HashMap::new(),
        uses: 0,
        held: 0,
        redeemed_events: 0,
        exhausted_events: 0,
        sessions: 0,
    };
    for handle in handles {
        for outcome in handle.await.expect("task") {
            match outcome {
                Ok(()) => report.successes += 1,
                Err(r) => *report.rejections.entry(r).or_default() += 1,
            }
        }
    }
    let stored = store.link(account.id, link.id).await.expect("link");
    report.uses = stored.uses;
    report.held = store.account(account.id).await.expect("account").held;
    let events = events_of(&*store, account.id).await;
    report.redeemed_events = events
        .iter()
        .filter(|e| matches!(e.kind, EventKind::LinkRedeemed { link: l, .. } if l == link.id))
        .count() as u64;
    report.exhausted_events = events
        .iter()
        .filter(|e| matches!(e.kind, EventKind::LinkExhausted { link: l } if l == link.id))
        .count() as u64;
    report.sessions = store
        .stats(account.id, link.id)
        .await
        .expect("stats")
        .started;

    let total = (tasks * attempts) as u64;
    let expected = [limit.max_uses().unwrap_or(u64::MAX), credits, total]
        .into_iter()
        .min()
        .unwrap_or(0);
    assert_eq!(report.successes, expected, "successes: {report:?}");
    assert_eq!(
        report.rejections.values().sum::<u64>(),
        total - expected,
        "every other attempt is a typed rejection: {report:?}"
    );
    assert_eq!(report.uses, expected, "uses == successes: {report:?}");
    assert_eq!(report.held, expected, "holds == successes: {report:?}");
    assert_eq!(
        report.redeemed_events, expected,
        "events == successes: {report:?}"
    );
    assert_eq!(
        report.sessions, expected,
        "sessions == successes: {report:?}"
    );
    let used_up = limit.max_uses() == Some(expected);
    assert_eq!(
        report.exhausted_events,
        u64::from(used_up),
        "exactly one link.exhausted when the last use is taken, none before: {report:?}"
    );
    report
}
