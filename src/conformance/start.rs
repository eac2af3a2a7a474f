//! Checks of idempotent starts and hand-offs, and their races.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use chrono::Duration;

use super::fixtures::{account_with, epoch, events_of, kinds_of, link_with, ok, rejected, ttl};
use crate::start::{HandoffId, StartKey, StartKeyHash};
use crate::store::LinkStore;
use crate::tokens::TokenError;
use crate::{
    AbandonReason, Error, EventKind, Outcome, Rejection, SessionId, SessionStatus, UsageLimit,
};

fn start_key(n: u64) -> StartKeyHash {
    StartKey::new(format!("conformance-key-{n:016}"))
        .expect("valid key")
        .hash()
}

fn new_handoff() -> HandoffId {
    HandoffId::from_bytes(*SessionId::new().as_bytes())
}

/// A start key on a link: while its session is open, the same key returns it and changes
/// nothing (no use, no hold, no event); another key, another link, or no key starts a new
/// session; once the key's session ends, the key starts a new one; a stale session of the key
/// is abandoned as expired in the same step as the new start; a rejected keyed start changes
/// nothing, even with a stale session. `started_session` reports the open session only.
pub async fn keyed_starts<S: LinkStore>(store: &S) {
    let account = account_with(store, 10).await;
    let link = link_with(store, account.id, UsageLimit::multi(4).expect("4"), None).await;
    let other_link = link_with(store, account.id, UsageLimit::Unlimited, None).await;
    let (a, b) = (start_key(1), start_key(2));

    let first = ok(
        store
            .redeem(link.id, SessionId::new(), Some(a), None, ttl(), epoch())
            .await,
        "keyed redeem",
    );
    let events = events_of(store, account.id).await.len();
    let later = epoch() + Duration::minutes(5);
    let again = ok(
        store
            .redeem(link.id, SessionId::new(), Some(a), None, ttl(), later)
            .await,
        "keyed redeem again",
    );
    assert_eq!(
        again, first,
        "the same key returns its open session unchanged"
    );
    assert_eq!(
        ok(store.link(account.id, link.id).await, "link").uses,
        1,
        "a resumed start consumes no use"
    );
    assert_eq!(
        ok(store.account(account.id).await, "account").held,
        1,
        "a resumed start holds no credit"
    );
    assert_eq!(
        events_of(store, account.id).await.len(),
        events,
        "a resumed start writes no event"
    );
    assert_eq!(
        ok(
            store.started_session(link.id, a, later).await,
            "started_session"
        ),
        Some(first.clone()),
        "started_session reports the key's open session"
    );
    assert_eq!(
        ok(
            store.started_session(link.id, b, later).await,
            "started_session"
        ),
        None,
        "another key has no session"
    );
    assert_eq!(
        ok(
            store.started_session(other_link.id, a, later).await,
            "started_session"
        ),
        None,
        "a key is scoped to its link"
    );

    let with_b = ok(
        store
            .redeem(link.id, SessionId::new(), Some(b), None, ttl(), later)
            .await,
        "another key",
    );
    assert_ne!(with_b.id, first.id, "another key starts another session");
    let elsewhere = ok(
        store
            .redeem(other_link.id, SessionId::new(), Some(a), None, ttl(), later)
            .await,
        "the key on another link",
    );
    assert_ne!(
        elsewhere.id, first.id,
        "the same key on another link starts another session"
    );

    // Once the key's session ends, the key starts a new one.
    ok(
        store
            .complete(account.id, first.id, Outcome::Approved, later)
            .await,
        "complete",
    );
    assert_eq!(
        ok(
            store.started_session(link.id, a, later).await,
            "started_session"
        ),
        None,
        "a completed session is not open"
    );
    let second = ok(
        store
            .redeem(link.id, SessionId::new(), Some(a), None, ttl(), later)
            .await,
        "keyed redeem after completion",
    );
    assert_ne!(
        second.id, first.id,
        "after its session ended, the key starts a new one"
    );
    assert_eq!(ok(store.link(account.id, link.id).await, "link").uses, 3);

    // Past its time to live, the key's session is stale: abandoned as expired in the step
    // that starts the next one.
    let stale_at = second.expires_at;
    assert_eq!(
        ok(
            store.started_session(link.id, a, stale_at).await,
            "started_session"
        ),
        None,
        "a stale session is not open"
    );
    let before = events_of(store, account.id).await.len();
    let third = ok(
        store
            .redeem(link.id, SessionId::new(), Some(a), None, ttl(), stale_at)
            .await,
        "keyed redeem with a stale session",
    );
    assert_ne!(third.id, second.id);
    let stale = ok(store.session(account.id, second.id).await, "session");
    assert_eq!(
        stale.status,
        SessionStatus::Abandoned {
            reason: AbandonReason::Expired,
            at: stale_at
        },
        "the stale session is abandoned as expired"
    );
    let kinds: Vec<EventKind> = kinds_of(store, account.id).await.split_off(before);
    assert_eq!(
        kinds,
        [
            EventKind::SessionAbandoned {
                link: link.id,
                session: second.id,
                reason: AbandonReason::Expired,
            },
            EventKind::LinkRedeemed {
                link: link.id,
                session: third.id,
            },
            EventKind::LinkExhausted { link: link.id },
        ],
        "the abandonment and the new start are one step, in this order"
    );
    let account_now = ok(store.account(account.id).await, "account");
    // b's session and the other link's are open, and `third`: 3 held; 1 billed.
    assert_eq!((account_now.balance, account_now.held), (9, 3));

    // The link is used up: a keyed start with a stale session is rejected and changes nothing.
    let stale_at = third.expires_at;
    let before = events_of(store, account.id).await.len();
    rejected(
        store
            .redeem(link.id, SessionId::new(), Some(a), None, ttl(), stale_at)
            .await,
        Rejection::Exhausted,
        "a rejected keyed start",
    );
    assert!(
        ok(store.session(account.id, third.id).await, "session").is_open(),
        "a rejected keyed start leaves the stale session to the sweep"
    );
    assert_eq!(events_of(store, account.id).await.len(), before);
    // But the same key still resumes its open session on an exhausted link.
    let resumed = ok(
        store
            .redeem(
                link.id,
                SessionId::new(),
                Some(a),
                None,
                ttl(),
                third.started_at + Duration::minutes(1),
            )
            .await,
        "resume on an exhausted link",
    );
    assert_eq!(resumed.id, third.id);

    // No key: a new session every time.
    let open = link_with(store, account.id, UsageLimit::Unlimited, None).await;
    let x = ok(
        store
            .redeem(open.id, SessionId::new(), None, None, ttl(), epoch())
            .await,
        "redeem",
    );
    let y = ok(
        store
            .redeem(open.id, SessionId::new(), None, None, ttl(), epoch())
            .await,
        "redeem",
    );
    assert_ne!(x.id, y.id, "without a key every start is new");
}

/// Hand-offs: made for an open session only; accepted once, before expiry, while the session is
/// open, with one `session.handed_off`; nothing else changes. Unknown ids are `NotFound`.
pub async fn handoffs<S: LinkStore>(store: &S) {
    let account = account_with(store, 10).await;
    let link = link_with(store, account.id, UsageLimit::Unlimited, None).await;
    let session = ok(
        store
            .redeem(link.id, SessionId::new(), None, None, ttl(), epoch())
            .await,
        "redeem",
    );
    let soon = epoch() + Duration::minutes(10);
    let id = new_handoff();
    let made = ok(
        store
            .create_handoff(account.id, session.id, id, soon, epoch())
            .await,
        "create_handoff",
    );
    assert_eq!(made, session);
    assert!(
        matches!(
            store
                .create_handoff(account.id, session.id, id, soon, epoch())
                .await,
            Err(Error::AlreadyExists)
        ),
        "a hand-off id is never reused"
    );
    let stranger = account_with(store, 0).await;
    rejected(
        store
            .create_handoff(stranger.id, session.id, new_handoff(), soon, epoch())
            .await,
        Rejection::NotFound,
        "another account's session",
    );
    let before = events_of(store, account.id).await.len();
    let account_before = ok(store.account(account.id).await, "account");

    let at = epoch() + Duration::minutes(1);
    // Checking changes nothing and writes no event (the count of events below includes it).
    for _ in 0..2 {
        let checked = ok(store.check_handoff(id, at).await, "check_handoff");
        assert_eq!(checked, session, "checking returns the session");
    }
    rejected(
        store.check_handoff(new_handoff(), at).await,
        Rejection::NotFound,
        "checking an unknown hand-off",
    );
    let accepted = ok(store.accept_handoff(id, at).await, "accept_handoff");
    assert_eq!(accepted, session, "accepting returns the same session");
    rejected(
        store.accept_handoff(id, at).await,
        Rejection::HandoffUsed,
        "a hand-off is single-use",
    );
    rejected(
        store.check_handoff(id, at).await,
        Rejection::HandoffUsed,
        "checking a used hand-off",
    );
    rejected(
        store.accept_handoff(new_handoff(), at).await,
        Rejection::NotFound,
        "an unknown hand-off",
    );
    let kinds: Vec<EventKind> = kinds_of(store, account.id).await.split_off(before);
    assert_eq!(
        kinds,
        [EventKind::SessionHandedOff {
            link: link.id,
            session: session.id
        }],
        "exactly one session.handed_off"
    );
    assert_eq!(
        ok(store.account(account.id).await, "account"),
        account_before,
        "a hand-off moves no credit"
    );
    assert_eq!(ok(store.link(account.id, link.id).await, "link").uses, 1);

    // Expired.
    let late = new_handoff();
    ok(
        store
            .create_handoff(account.id, session.id, late, soon, epoch())
            .await,
        "create_handoff",
    );
    let r = store.check_handoff(late, soon).await;
    assert!(
        matches!(r, Err(Error::InvalidToken(TokenError::Expired))),
        "checking a hand-off at its expiry: {r:?}"
    );
    let r = store.accept_handoff(late, soon).await;
    assert!(
        matches!(r, Err(Error::InvalidToken(TokenError::Expired))),
        "a hand-off at its expiry is expired: {r:?}"
    );

    // The session ended.
    let pending = new_handoff();
    ok(
        store
            .create_handoff(account.id, session.id, pending, soon, epoch())
            .await,
        "create_handoff",
    );
    ok(
        store
            .complete(account.id, session.id, Outcome::Denied, at)
            .await,
        "complete",
    );
    rejected(
        store.check_handoff(pending, at).await,
        Rejection::SessionCompleted,
        "checking a hand-off of a completed session",
    );
    rejected(
        store.accept_handoff(pending, at).await,
        Rejection::SessionCompleted,
        "a hand-off of a completed session",
    );
    rejected(
        store
            .create_handoff(account.id, session.id, new_handoff(), soon, at)
            .await,
        Rejection::SessionCompleted,
        "no hand-off of a completed session",
    );
    let abandoned = ok(
        store
            .redeem(link.id, SessionId::new(), None, None, ttl(), epoch())
            .await,
        "redeem",
    );
    let pending = new_handoff();
    ok(
        store
            .create_handoff(account.id, abandoned.id, pending, soon, epoch())
            .await,
        "create_handoff",
    );
    ok(store.abandon(account.id, abandoned.id, at).await, "abandon");
    rejected(
        store.accept_handoff(pending, at).await,
        Rejection::SessionAbandoned,
        "a hand-off of an abandoned session",
    );
    let stale = ok(
        store
            .redeem(link.id, SessionId::new(), None, None, ttl(), epoch())
            .await,
        "redeem",
    );
    let pending = new_handoff();
    let far = stale.expires_at + Duration::hours(1);
    ok(
        store
            .create_handoff(account.id, stale.id, pending, far, epoch())
            .await,
        "create_handoff",
    );
    rejected(
        store.accept_handoff(pending, stale.expires_at).await,
        Rejection::SessionExpired,
        "a hand-off of a session past its time to live",
    );
    rejected(
        store
            .create_handoff(account.id, stale.id, new_handoff(), far, stale.expires_at)
            .await,
        Rejection::SessionExpired,
        "no hand-off of a session past its time to live",
    );
}

/// What a [`keyed_race`] observed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyedRaceReport {
    /// Redemptions that returned a session.
    pub successes: u64,
    /// Distinct sessions returned.
    pub distinct_sessions: u64,
    /// Typed rejections, by kind.
    pub rejections: HashMap<Rejection, u64>,
    /// The link's uses afterwards.
    pub uses: u64,
    /// The account's held credits afterwards.
    pub held: u64,
    /// `link.redeemed` events of the link.
    pub redeemed_events: u64,
}

/// `tasks` tasks redeem one link of `limit` at once, each with start key `key_of(task)`, on an
/// account with plenty of credits. Returns what they saw; checks that uses, holds and
/// `link.redeemed` events equal the distinct sessions, and that every task got a session or a
/// typed rejection. With one key for all: 1 use and 1 session; with distinct keys on a link of
/// `k` uses: exactly `k`.
///
/// # Panics
///
/// When a rule is broken or a store operation fails.
pub async fn keyed_race<S: LinkStore + 'static>(
    store: Arc<S>,
    tasks: usize,
    limit: UsageLimit,
    key_of: impl Fn(usize) -> u64,
) -> KeyedRaceReport {
    let account = account_with(&*store, 1_000).await;
    let link = link_with(&*store, account.id, limit, None).await;
    let handles: Vec<_> = (0..tasks)
        .map(|task| {
            let store = Arc::clone(&store);
            let key = start_key(key_of(task));
            tokio::spawn(async move {
                store
                    .redeem(link.id, SessionId::new(), Some(key), None, ttl(), epoch())
                    .await
            })
        })
        .collect();
    let mut sessions = HashSet::new();
    let mut report = KeyedRaceReport {
        successes: 0,
        distinct_sessions: 0,
        rejections: HashMap::new(),
        uses: 0,
        held: 0,
        redeemed_events: 0,
    };
    for handle in handles {
        match handle.await.expect("task") {
            Ok(session) => {
                report.successes += 1;
                sessions.insert(session.id);
            }
            Err(Error::Rejected(r)) => *report.rejections.entry(r).or_default() += 1,
            Err(other) => panic!("redeem failed: {other:?}"),
        }
    }
    report.distinct_sessions = sessions.len() as u64;
    report.uses = ok(store.link(account.id, link.id).await, "link").uses;
    report.held = ok(store.account(account.id).await, "account").held;
    report.redeemed_events = events_of(&*store, account.id)
        .await
        .iter()
        .filter(|e| matches!(e.kind, EventKind::LinkRedeemed { link: l, .. } if l == link.id))
        .count() as u64;
    assert_eq!(
        report.uses, report.distinct_sessions,
        "uses == sessions: {report:?}"
    );
    assert_eq!(
        report.held, report.distinct_sessions,
        "holds == sessions: {report:?}"
    );
    assert_eq!(
        report.redeemed_events, report.distinct_sessions,
        "link.redeemed == sessions: {report:?}"
    );
    assert_eq!(
        report.successes + report.rejections.values().sum::<u64>(),
        tasks as u64,
        "every task got a session or a typed rejection: {report:?}"
    );
    report
}

/// `tasks` tasks accept one hand-off at once: exactly one succeeds, the others meet
/// `HandoffUsed`, and one `session.handed_off` is written. Returns the number of successes.
///
/// # Panics
///
/// When a rule is broken or a store operation fails.
pub async fn handoff_race<S: LinkStore + 'static>(store: Arc<S>, tasks: usize) -> u64 {
    let account = account_with(&*store, 1).await;
    let link = link_with(&*store, account.id, UsageLimit::Single, None).await;
    let session = ok(
        store
            .redeem(link.id, SessionId::new(), None, None, ttl(), epoch())
            .await,
        "redeem",
    );
    let id = new_handoff();
    let soon = epoch() + Duration::minutes(10);
    ok(
        store
            .create_handoff(account.id, session.id, id, soon, epoch())
            .await,
        "create_handoff",
    );
    let handles: Vec<_> = (0..tasks)
        .map(|_| {
            let store = Arc::clone(&store);
            tokio::spawn(async move { store.accept_handoff(id, epoch()).await })
        })
        .collect();
    let mut successes = 0;
    for handle in handles {
        match handle.await.expect("task") {
            Ok(s) => {
                assert_eq!(s.id, session.id);
                successes += 1;
            }
            Err(Error::Rejected(Rejection::HandoffUsed)) => {}
            Err(other) => panic!("accept_handoff failed: {other:?}"),
        }
    }
    let handed_off = kinds_of(&*store, account.id)
        .await
        .iter()
        .filter(|k| matches!(k, EventKind::SessionHandedOff { .. }))
        .count();
    assert_eq!(successes, 1, "a hand-off is accepted once");
    assert_eq!(handed_off, 1, "one session.handed_off");
    successes
}
