//! The conformance suite: checks that a [`LinkStore`] keeps every rule.
//!
//! Each check is a plain `async fn` taking a store, so any implementation, including a
//! third-party one, runs the same suite:
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! let store = magic_link::MemoryStore::new();
//! magic_link::conformance::run_all(&store).await;
//! # }
//! ```
//!
//! The checks create their own accounts and links with fresh ids, so they can share one store
//! and run in any order. They panic, with a message naming the rule, when a store breaks one.
//!
//! [`race`] and [`compare_with_model`] go further: many tasks redeeming one link at once, and
//! random operation sequences replayed against the [`ReferenceStore`](crate::ReferenceStore)
//! model.

use std::collections::HashMap;
use std::fmt::Debug;
use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};

use crate::store::{LinkStore, Page};
use crate::{
    AbandonReason, Account, AccountId, Error, Event, EventKind, IdempotencyKey, InvalidInput,
    LedgerKind, Link, LinkId, NewLink, Outcome, ReferenceStore, Rejection, Session, SessionId,
    SessionStatus, SessionTtl, UsageLimit,
};

/// The time the checks start at: 2030-01-01T00:00:00Z.
pub fn epoch() -> DateTime<Utc> {
    DateTime::from_timestamp(1_893_456_000, 0).unwrap_or_default()
}

fn ttl() -> SessionTtl {
    SessionTtl::new(Duration::minutes(30)).unwrap_or_default()
}

fn key(k: &str) -> IdempotencyKey {
    IdempotencyKey::new(k).expect("valid key")
}

#[track_caller]
fn rejected<T: Debug>(result: Result<T, Error>, expected: Rejection, rule: &str) {
    match result {
        Err(Error::Rejected(r)) if r == expected => {}
        other => panic!("{rule}: expected {expected:?}, got {other:?}"),
    }
}

#[track_caller]
fn ok<T>(result: Result<T, Error>, what: &str) -> T {
    match result {
        Ok(v) => v,
        Err(e) => panic!("{what} failed: {e:?}"),
    }
}

/// A new account with `credits` credits.
pub async fn account_with<S: LinkStore>(store: &S, credits: u64) -> Account {
    let id = AccountId::new();
    ok(
        store.create_account(Account::new(id, epoch())).await,
        "create_account",
    );
    if credits > 0 {
        ok(
            store.top_up(id, credits, key("initial"), epoch()).await,
            "top_up",
        );
    }
    ok(store.account(id).await, "account")
}

/// A new link of `account` with `limit`, created at [`epoch`].
pub async fn link_with<S: LinkStore>(
    store: &S,
    account: AccountId,
    limit: UsageLimit,
    expires_at: Option<DateTime<Utc>>,
) -> Link {
    let mut spec = NewLink::new("conformance", crate::Flow::DocumentAndSelfie)
        .limit(limit)
        .language("lt");
    spec.expires_at = expires_at;
    let link = Link::new(LinkId::new(), account, spec, epoch()).expect("valid link");
    ok(store.insert_link(link).await, "insert_link")
}

async fn events_of<S: LinkStore>(store: &S, account: AccountId) -> Vec<Event> {
    let mut all = Vec::new();
    let mut cursor = 0;
    loop {
        let batch = store
            .outbox_after(cursor, 1000)
            .await
            .expect("outbox_after");
        let Some(last) = batch.last() else { break };
        cursor = last.seq;
        all.extend(batch.into_iter().filter(|e| e.account == account));
    }
    all
}

async fn kinds_of<S: LinkStore>(store: &S, account: AccountId) -> Vec<EventKind> {
    events_of(store, account)
        .await
        .into_iter()
        .map(|e| e.kind)
        .collect()
}

/// Runs every check of the suite except [`race`] (which needs a multi-threaded runtime).
pub async fn run_all<S: LinkStore>(store: &S) {
    accounts_and_links(store).await;
    redeem_success(store).await;
    redeem_rejections(store).await;
    complete_and_abandon(store).await;
    session_expiry(store).await;
    deactivation_is_final(store).await;
    top_up_idempotency(store).await;
    tenant_isolation(store).await;
    stats_and_paging(store).await;
    outbox_order(store).await;
}

/// Atomic create: ids are never overwritten; links need an existing account.
pub async fn accounts_and_links<S: LinkStore>(store: &S) {
    let account = account_with(store, 0).await;
    assert_eq!(account.balance, 0, "a new account has no credits");
    let again = store
        .create_account(Account::new(account.id, epoch()))
        .await;
    assert!(
        matches!(again, Err(Error::AlreadyExists)),
        "create_account must not overwrite: {again:?}"
    );

    let link = link_with(store, account.id, UsageLimit::Single, None).await;
    assert_eq!(link.uses, 0);
    let mut twin = link.clone();
    twin.name = "overwrite attempt".into();
    let again = store.insert_link(twin).await;
    assert!(
        matches!(again, Err(Error::AlreadyExists)),
        "insert_link must not overwrite: {again:?}"
    );
    let read = store.link(account.id, link.id).await.expect("link");
    assert_eq!(read, link, "a stored link reads back unchanged");

    let orphan = Link::new(
        LinkId::new(),
        AccountId::new(),
        NewLink::new("orphan", crate::Flow::Selfie),
        epoch(),
    )
    .expect("valid");
    rejected(
        store.insert_link(orphan).await,
        Rejection::NotFound,
        "link of unknown account",
    );
    assert_eq!(
        kinds_of(store, account.id).await,
        vec![EventKind::LinkCreated { link: link.id }],
        "creating a link emits link.created once"
    );
}

/// A successful redemption consumes a use, holds a credit, starts a session and emits one
/// event, atomically.
pub async fn redeem_success<S: LinkStore>(store: &S) {
    let account = account_with(store, 3).await;
    let link = link_with(store, account.id, UsageLimit::multi(2).expect("n"), None).await;
    let id = SessionId::new();
    let now = epoch() + Duration::seconds(5);
    let session = store.redeem(link.id, id, ttl(), now).await.expect("redeem");
    assert_eq!(session.id, id);
    assert_eq!(session.account, account.id);
    assert_eq!(session.link, link.id);
    assert_eq!(session.number, 1);
    assert_eq!(session.flow, link.flow);
    assert_eq!(session.language, link.language);
    assert_eq!(session.status, SessionStatus::Started);
    assert_eq!(session.started_at, now);
    assert_eq!(session.expires_at, now + ttl().duration());

    let after = store.link(account.id, link.id).await.expect("link");
    assert_eq!(after.uses, 1, "redeem increments uses by exactly one");
    let credits = store.account(account.id).await.expect("account");
    assert_eq!(
        (credits.balance, credits.held),
        (3, 1),
        "redeem holds one credit"
    );
    assert_eq!(
        store.session(account.id, id).await.expect("session"),
        session
    );

    let kinds = kinds_of(store, account.id).await;
    assert_eq!(
        kinds.last(),
        Some(&EventKind::LinkRedeemed {
            link: link.id,
            session: id
        }),
        "redeem emits link.redeemed"
    );
    let ledger = store
        .ledger(account.id, Page::first(10))
        .await
        .expect("ledger");
    assert_eq!(
        ledger.items.last().map(|e| (&e.kind, e.amount)),
        Some((&LedgerKind::Hold { session: id }, 1)),
        "redeem records a hold"
    );

    let dup = store.redeem(link.id, id, ttl(), now).await;
    assert!(
        matches!(dup, Err(Error::AlreadyExists)),
        "a session id is never reused: {dup:?}"
    );
    let after_dup = store.link(account.id, link.id).await.expect("link");
    assert_eq!(after_dup.uses, 1, "a failed redemption consumes nothing");
}

/// What a rejected operation must leave as it was.
#[derive(Debug)]
struct Observed {
    link: Link,
    events: usize,
    credits: Account,
}

impl Observed {
    async fn of<S: LinkStore>(store: &S, link: Link) -> Self {
        Self {
            events: events_of(store, link.account).await.len(),
            credits: ok(store.account(link.account).await, "account"),
            link,
        }
    }

    async fn unchanged<S: LinkStore>(self, store: &S, rule: &str) {
        let account = self.link.account;
        let link = ok(store.link(account, self.link.id).await, "link");
        assert_eq!(link, self.link, "{rule}: the link must not change");
        let events = events_of(store, account).await.len();
        assert_eq!(events, self.events, "{rule}: no event");
        let credits = ok(store.account(account).await, "account");
        assert_eq!(credits, self.credits, "{rule}: credits must not change");
    }
}

/// Every rejection of a redemption is typed and changes nothing.
pub async fn redeem_rejections<S: LinkStore>(store: &S) {
    let account = account_with(store, 1).await;
    rejected(
        store
            .redeem(LinkId::new(), SessionId::new(), ttl(), epoch())
            .await,
        Rejection::NotFound,
        "unknown link",
    );

    // Expired at exactly `expires_at`, not a microsecond later.
    let expires = epoch() + Duration::hours(1);
    let expiring = link_with(store, account.id, UsageLimit::Unlimited, Some(expires)).await;
    let state = Observed::of(store, expiring.clone()).await;
    rejected(
        store
            .redeem(expiring.id, SessionId::new(), ttl(), expires)
            .await,
        Rejection::Expired,
        "expired at exactly expires_at",
    );
    state.unchanged(store, "expired").await;

    let deactivated = link_with(store, account.id, UsageLimit::Unlimited, None).await;
    let deactivated = store
        .deactivate(account.id, deactivated.id, epoch())
        .await
        .expect("deactivate");
    let state = Observed::of(store, deactivated.clone()).await;
    rejected(
        store
            .redeem(deactivated.id, SessionId::new(), ttl(), epoch())
            .await,
        Rejection::Deactivated,
        "deactivated",
    );
    state.unchanged(store, "deactivated").await;

    let single = link_with(store, account.id, UsageLimit::Single, None).await;
    store
        .redeem(single.id, SessionId::new(), ttl(), epoch())
        .await
        .expect("first use of a single-use link");
    let single = store.link(account.id, single.id).await.expect("link");
    // The account's only credit is now held: the next redemption must fail as exhausted (the
    // limit is checked before credits).
    let state = Observed::of(store, single.clone()).await;
    rejected(
        store
            .redeem(single.id, SessionId::new(), ttl(), epoch())
            .await,
        Rejection::Exhausted,
        "exhausted",
    );
    state.unchanged(store, "exhausted").await;

    let hungry = link_with(store, account.id, UsageLimit::Unlimited, None).await;
    let state = Observed::of(store, hungry.clone()).await;
    rejected(
        store
            .redeem(hungry.id, SessionId::new(), ttl(), epoch())
            .await,
        Rejection::NoCredits,
        "no available credit (all held)",
    );
    state.unchanged(store, "no credits").await;

    let broke = account_with(store, 0).await;
    let link = link_with(store, broke.id, UsageLimit::Unlimited, None).await;
    rejected(
        store
            .redeem(link.id, SessionId::new(), ttl(), epoch())
            .await,
        Rejection::NoCredits,
        "zero credits",
    );
}

/// Completion captures the hold once and is idempotent; abandonment releases it.
pub async fn complete_and_abandon<S: LinkStore>(store: &S) {
    let account = account_with(store, 5).await;
    let link = link_with(store, account.id, UsageLimit::Unlimited, None).await;
    let now = epoch() + Duration::minutes(1);
    let a = store
        .redeem(link.id, SessionId::new(), ttl(), now)
        .await
        .expect("redeem");
    let b = store
        .redeem(link.id, SessionId::new(), ttl(), now)
        .await
        .expect("redeem");

    let done = store
        .complete(account.id, a.id, Outcome::Approved, now)
        .await
        .expect("complete");
    assert_eq!(
        done.status,
        SessionStatus::Completed {
            outcome: Outcome::Approved,
            at: now
        }
    );
    let credits = store.account(account.id).await.expect("account");
    assert_eq!(
        (credits.balance, credits.held),
        (4, 1),
        "completion bills one credit"
    );
    let events = events_of(store, account.id).await.len();

    let later = now + Duration::minutes(1);
    let again = store
        .complete(account.id, a.id, Outcome::Approved, later)
        .await
        .expect("repeat completion with the same outcome");
    assert_eq!(again, done, "a repeat completion returns the same result");
    let credits = store.account(account.id).await.expect("account");
    assert_eq!(
        (credits.balance, credits.held),
        (4, 1),
        "a repeat bills nothing"
    );
    assert_eq!(
        events_of(store, account.id).await.len(),
        events,
        "a repeat emits nothing"
    );
    rejected(
        store
            .complete(account.id, a.id, Outcome::Denied, later)
            .await,
        Rejection::OutcomeConflict,
        "completing twice with different outcomes",
    );
    rejected(
        store.abandon(account.id, a.id, later).await,
        Rejection::SessionCompleted,
        "abandoning a completed session",
    );

    let gone = store.abandon(account.id, b.id, now).await.expect("abandon");
    assert_eq!(
        gone.status,
        SessionStatus::Abandoned {
            reason: AbandonReason::Explicit,
            at: now
        }
    );
    let credits = store.account(account.id).await.expect("account");
    assert_eq!(
        (credits.balance, credits.held),
        (4, 0),
        "abandonment releases the hold"
    );
    assert_eq!(
        store
            .abandon(account.id, b.id, later)
            .await
            .expect("repeat abandon"),
        gone,
        "abandoning is idempotent"
    );
    rejected(
        store
            .complete(account.id, b.id, Outcome::Approved, later)
            .await,
        Rejection::SessionAbandoned,
        "completing an abandoned session",
    );
    assert_eq!(
        store.link(account.id, link.id).await.expect("link").uses,
        2,
        "an abandoned session's use stays consumed"
    );
    rejected(
        store
            .complete(account.id, SessionId::new(), Outcome::Approved, now)
            .await,
        Rejection::NotFound,
        "completing an unknown session",
    );

    let kinds = kinds_of(store, account.id).await;
    let captures = store
        .ledger(account.id, Page::first(100))
        .await
        .expect("ledger")
        .items
        .iter()
        .filter(|e| matches!(e.kind, LedgerKind::Capture { .. }))
        .count();
    assert_eq!(captures, 1, "captured credits == completed sessions");
    assert!(kinds.contains(&EventKind::SessionCompleted {
        link: link.id,
        session: a.id,
        outcome: Outcome::Approved
    }));
    assert!(kinds.contains(&EventKind::SessionAbandoned {
        link: link.id,
        session: b.id,
        reason: AbandonReason::Explicit
    }));
}

/// A session past its time to live cannot complete, and the sweep abandons it.
pub async fn session_expiry<S: LinkStore>(store: &S) {
    let account = account_with(store, 2).await;
    let link = link_with(store, account.id, UsageLimit::Unlimited, None).await;
    let session = store
        .redeem(link.id, SessionId::new(), ttl(), epoch())
        .await
        .expect("redeem");
    let before = session.expires_at - Duration::microseconds(1);
    assert_eq!(
        store.expire_sessions(before, 1000).await.expect("sweep"),
        0,
        "a session is not stale before its expiry"
    );
    rejected(
        store
            .complete(
                account.id,
                session.id,
                Outcome::Approved,
                session.expires_at,
            )
            .await,
        Rejection::SessionExpired,
        "completing at exactly the session's expiry",
    );
    let swept = store
        .expire_sessions(session.expires_at, 1000)
        .await
        .expect("sweep");
    assert!(swept >= 1, "the sweep abandons the stale session");
    let read = store
        .session(account.id, session.id)
        .await
        .expect("session");
    assert_eq!(
        read.status,
        SessionStatus::Abandoned {
            reason: AbandonReason::Expired,
            at: session.expires_at
        }
    );
    let credits = store.account(account.id).await.expect("account");
    assert_eq!(
        (credits.balance, credits.held),
        (2, 0),
        "expiry releases the hold"
    );
    assert_eq!(
        kinds_of(store, account.id).await.last(),
        Some(&EventKind::SessionAbandoned {
            link: link.id,
            session: session.id,
            reason: AbandonReason::Expired
        })
    );
}

/// Deactivation is final and idempotent; nothing re-activates a link.
pub async fn deactivation_is_final<S: LinkStore>(store: &S) {
    let account = account_with(store, 1).await;
    let link = link_with(store, account.id, UsageLimit::Unlimited, None).await;
    let at = epoch() + Duration::seconds(1);
    let off = store
        .deactivate(account.id, link.id, at)
        .await
        .expect("deactivate");
    assert_eq!(off.deactivated_at, Some(at));
    let again = store
        .deactivate(account.id, link.id, at + Duration::hours(1))
        .await
        .expect("repeat deactivate");
    assert_eq!(
        again.deactivated_at,
        Some(at),
        "the first deactivation time stays"
    );
    let deactivations = kinds_of(store, account.id)
        .await
        .iter()
        .filter(|k| matches!(k, EventKind::LinkDeactivated { .. }))
        .count();
    assert_eq!(deactivations, 1, "deactivating twice emits one event");
    rejected(
        store.redeem(link.id, SessionId::new(), ttl(), at).await,
        Rejection::Deactivated,
        "a deactivated link stays deactivated",
    );
}

/// Top-ups are idempotent by key and validated.
pub async fn top_up_idempotency<S: LinkStore>(store: &S) {
    let account = account_with(store, 0).await;
    let k = key("invoice-1");
    let first = store
        .top_up(account.id, 10, k.clone(), epoch())
        .await
        .expect("top up");
    assert_eq!(first.balance, 10);
    let again = store
        .top_up(account.id, 10, k.clone(), epoch())
        .await
        .expect("retry");
    assert_eq!(again.balance, 10, "a retried top-up adds nothing");
    rejected(
        store.top_up(account.id, 11, k, epoch()).await,
        Rejection::IdempotencyConflict,
        "same key, other amount",
    );
    let zero = store.top_up(account.id, 0, key("zero"), epoch()).await;
    assert!(
        matches!(zero, Err(Error::Invalid(InvalidInput::ZeroAmount))),
        "a top-up of zero is invalid: {zero:?}"
    );
    let overflow = store
        .top_up(account.id, u64::MAX, key("huge"), epoch())
        .await;
    assert!(
        matches!(overflow, Err(Error::Invalid(InvalidInput::Overflow))),
        "an overflowing top-up is invalid: {overflow:?}"
    );
    rejected(
        store.top_up(AccountId::new(), 1, key("x"), epoch()).await,
        Rejection::NotFound,
        "top up of an unknown account",
    );
    let added = kinds_of(store, account.id)
        .await
        .iter()
        .filter(|k| matches!(k, EventKind::CreditsAdded { .. }))
        .count();
    assert_eq!(added, 1, "one top-up, one event");
    let entries = store
        .ledger(account.id, Page::first(10))
        .await
        .expect("ledger");
    assert_eq!(entries.items.len(), 1, "one top-up, one ledger entry");
}

/// Another account's objects answer `NotFound`, exactly like unknown ids.
pub async fn tenant_isolation<S: LinkStore>(store: &S) {
    let alice = account_with(store, 2).await;
    let mallory = account_with(store, 2).await;
    let link = link_with(store, alice.id, UsageLimit::Unlimited, None).await;
    let session = store
        .redeem(link.id, SessionId::new(), ttl(), epoch())
        .await
        .expect("redeem");
    let m = mallory.id;
    rejected(
        store.link(m, link.id).await,
        Rejection::NotFound,
        "read another's link",
    );
    rejected(
        store.deactivate(m, link.id, epoch()).await,
        Rejection::NotFound,
        "deactivate another's link",
    );
    rejected(
        store.stats(m, link.id).await,
        Rejection::NotFound,
        "stats of another's link",
    );
    rejected(
        store.sessions(m, link.id, Page::default()).await,
        Rejection::NotFound,
        "sessions of another's link",
    );
    rejected(
        store.session(m, session.id).await,
        Rejection::NotFound,
        "read another's session",
    );
    rejected(
        store
            .complete(m, session.id, Outcome::Approved, epoch())
            .await,
        Rejection::NotFound,
        "complete another's session",
    );
    rejected(
        store.abandon(m, session.id, epoch()).await,
        Rejection::NotFound,
        "abandon another's session",
    );
    let listed = store.links(m, Page::default()).await.expect("links");
    assert!(listed.items.is_empty(), "another's links are not listed");
    let untouched = store.link(alice.id, link.id).await.expect("link");
    assert!(untouched.deactivated_at.is_none());
    assert!(store
        .session(alice.id, session.id)
        .await
        .expect("session")
        .is_open());
    let credits = store.account(mallory.id).await.expect("account");
    assert_eq!(
        (credits.balance, credits.held),
        (2, 0),
        "mallory paid nothing"
    );
    assert!(
        kinds_of(store, m)
            .await
            .iter()
            .all(|k| matches!(k, EventKind::CreditsAdded { .. })),
        "no event was emitted for mallory's attempts"
    );
}

/// Statistics count sessions by status; listing pages through them in redemption order.
pub async fn stats_and_paging<S: LinkStore>(store: &S) {
    let account = account_with(store, 10).await;
    let link = link_with(store, account.id, UsageLimit::multi(8).expect("n"), None).await;
    let mut ids = Vec::new();
    for i in 0..7 {
        let at = epoch() + Duration::seconds(i);
        let s = store
            .redeem(link.id, SessionId::new(), ttl(), at)
            .await
            .expect("redeem");
        ids.push(s.id);
    }
    let now = epoch() + Duration::minutes(1);
    for (id, outcome) in ids
        .iter()
        .zip([Outcome::Approved, Outcome::Approved, Outcome::Denied])
    {
        store
            .complete(account.id, *id, outcome, now)
            .await
            .expect("complete");
    }
    store
        .complete(account.id, ids[3], Outcome::NeedsReview, now)
        .await
        .expect("complete");
    store
        .abandon(account.id, ids[4], now)
        .await
        .expect("abandon");

    let stats = store.stats(account.id, link.id).await.expect("stats");
    assert_eq!(stats.uses, 7);
    assert_eq!(stats.remaining, Some(1));
    assert_eq!(stats.started, 2);
    assert_eq!(
        (
            stats.completed.approved,
            stats.completed.denied,
            stats.completed.needs_review
        ),
        (2, 1, 1)
    );
    assert_eq!(stats.abandoned, 1);

    let mut listed = Vec::new();
    let mut page = Page::first(3);
    loop {
        let got = store
            .sessions(account.id, link.id, page)
            .await
            .expect("sessions");
        assert!(got.items.len() <= 3, "a page holds at most its limit");
        listed.extend(got.items.iter().map(|s: &Session| (s.number, s.id)));
        match got.next {
            Some(next) => page.after = next,
            None => break,
        }
    }
    let expected: Vec<_> = ids
        .iter()
        .enumerate()
        .map(|(i, id)| (i as u64 + 1, *id))
        .collect();
    assert_eq!(
        listed, expected,
        "paging lists every session once, in order"
    );

    let links = store
        .links(account.id, Page::first(10))
        .await
        .expect("links");
    assert_eq!(
        links.items.iter().map(|l| l.id).collect::<Vec<_>>(),
        vec![link.id]
    );
    rejected(
        store.stats(account.id, LinkId::new()).await,
        Rejection::NotFound,
        "stats of an unknown link",
    );
}

/// The outbox is read after a cursor, in increasing `seq`, without gaps or repeats.
pub async fn outbox_order<S: LinkStore>(store: &S) {
    let account = account_with(store, 4).await;
    let link = link_with(store, account.id, UsageLimit::Unlimited, None).await;
    for _ in 0..3 {
        store
            .redeem(link.id, SessionId::new(), ttl(), epoch())
            .await
            .expect("redeem");
    }
    let start = events_of(store, account.id).await;
    assert_eq!(start.len(), 5, "top-up, creation and three redemptions");
    let mut seen = Vec::new();
    let mut cursor = 0;
    loop {
        let batch = store.outbox_after(cursor, 2).await.expect("outbox_after");
        assert!(
            batch.len() <= 2,
            "outbox_after returns at most `limit` events"
        );
        let Some(last) = batch.last() else { break };
        for pair in batch.windows(2) {
            assert!(pair[0].seq < pair[1].seq, "events come in increasing seq");
        }
        assert!(batch[0].seq > cursor, "events come after the cursor");
        cursor = last.seq;
        seen.extend(batch.into_iter().filter(|e| e.account == account.id));
    }
    assert_eq!(seen, start, "reading in small pages sees the same events");
    let mut ids: Vec<_> = seen.iter().map(|e| e.id).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), seen.len(), "event ids are unique");
}

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
                        .redeem(link.id, SessionId::new(), ttl(), epoch())
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
    report.redeemed_events = events_of(&*store, account.id)
        .await
        .iter()
        .filter(|e| matches!(e.kind, EventKind::LinkRedeemed { link: l, .. } if l == link.id))
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
    report
}

/// One step of a random operation sequence for [`compare_with_model`]. Indices pick among the
/// objects created so far (modulo their number), so any sequence is meaningful.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    /// Create a link for account `account % 2` with `limit` (`None`: unlimited; `Some(0)`:
    /// single-use) expiring after `expires_in` seconds, if given.
    CreateLink {
        /// Which account.
        account: u8,
        /// The limit.
        limit: Option<u8>,
        /// Seconds until expiry.
        expires_in: Option<u16>,
    },
    /// Redeem a link (an index past the end means an unknown id).
    Redeem {
        /// Which link.
        link: u8,
    },
    /// Complete a session as account `account % 2` with an outcome.
    Complete {
        /// Which session.
        session: u8,
        /// Acting account.
        account: u8,
        /// Which outcome (`% 3`).
        outcome: u8,
    },
    /// Abandon a session as account `account % 2`.
    Abandon {
        /// Which session.
        session: u8,
        /// Acting account.
        account: u8,
    },
    /// Deactivate a link as account `account % 2`.
    Deactivate {
        /// Which link.
        link: u8,
        /// Acting account.
        account: u8,
    },
    /// Top up account `account % 2` with `amount` under key `key % 4`.
    TopUp {
        /// Which account.
        account: u8,
        /// Credits (0 is invalid).
        amount: u8,
        /// Idempotency key index.
        key: u8,
    },
    /// Move the clock forward.
    Advance {
        /// Seconds.
        seconds: u16,
    },
    /// Sweep stale sessions.
    Expire,
}

/// What an operation returned, comparable across stores.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Returned {
    Link(Link),
    Session(Session),
    Account(Account),
    Count(usize),
    Rejected(Rejection),
    Invalid(InvalidInput),
    AlreadyExists,
    None,
}

impl<T: Into<Returned>> From<Result<T, Error>> for Returned {
    fn from(r: Result<T, Error>) -> Self {
        match r {
            Ok(v) => v.into(),
            Err(Error::Rejected(r)) => Self::Rejected(r),
            Err(Error::Invalid(i)) => Self::Invalid(i),
            Err(Error::AlreadyExists) => Self::AlreadyExists,
            Err(e) => panic!("backend failure: {e:?}"),
        }
    }
}

macro_rules! returned {
    ($($t:ident),*) => {$(impl From<$t> for Returned {
        fn from(v: $t) -> Self { Self::$t(v) }
    })*};
}
returned!(Link, Session, Account);

impl From<usize> for Returned {
    fn from(n: usize) -> Self {
        Self::Count(n)
    }
}

/// The objects a sequence created, shared by both stores (ids are chosen by the harness).
#[derive(Debug, Default)]
struct World {
    accounts: Vec<AccountId>,
    links: Vec<LinkId>,
    sessions: Vec<SessionId>,
}

impl World {
    fn account(&self, i: u8) -> AccountId {
        self.accounts[usize::from(i) % self.accounts.len()]
    }

    fn link(&self, i: u8) -> LinkId {
        self.links
            .get(usize::from(i))
            .copied()
            .unwrap_or_else(|| LinkId::from_bytes([0xff; 16]))
    }

    fn session(&self, i: u8) -> Option<SessionId> {
        (!self.sessions.is_empty()).then(|| self.sessions[usize::from(i) % self.sessions.len()])
    }
}

/// Everything observable about the world in one store, for comparison.
#[derive(Debug, PartialEq, Eq)]
struct Snapshot {
    accounts: Vec<Account>,
    links: Vec<Link>,
    sessions: Vec<Session>,
    ledger: Vec<(AccountId, LedgerKind, u64)>,
    events: Vec<(AccountId, DateTime<Utc>, EventKind)>,
}

async fn snapshot<S: LinkStore>(store: &S, world: &World) -> Snapshot {
    let mut snap = Snapshot {
        accounts: Vec::new(),
        links: Vec::new(),
        sessions: Vec::new(),
        ledger: Vec::new(),
        events: Vec::new(),
    };
    for &a in &world.accounts {
        snap.accounts.push(store.account(a).await.expect("account"));
        let ledger = store
            .ledger(a, Page::first(crate::MAX_PAGE))
            .await
            .expect("ledger");
        snap.ledger.extend(
            ledger
                .items
                .into_iter()
                .map(|e| (e.account, e.kind, e.amount)),
        );
        for l in store
            .links(a, Page::first(crate::MAX_PAGE))
            .await
            .expect("links")
            .items
        {
            let sessions = store.sessions(a, l.id, Page::first(crate::MAX_PAGE)).await;
            snap.sessions.extend(sessions.expect("sessions").items);
            snap.links.push(l);
        }
    }
    let mut cursor = 0;
    loop {
        let batch = store
            .outbox_after(cursor, 1000)
            .await
            .expect("outbox_after");
        let Some(last) = batch.last() else { break };
        cursor = last.seq;
        snap.events.extend(
            batch
                .into_iter()
                .filter(|e| world.accounts.contains(&e.account))
                .map(|e| (e.account, e.at, e.kind)),
        );
    }
    snap
}

fn check_invariants(snap: &Snapshot, step: usize) {
    for link in &snap.links {
        if let Some(max) = link.limit.max_uses() {
            assert!(link.uses <= max, "step {step}: uses > limit: {link:?}");
        }
        let sessions = snap.sessions.iter().filter(|s| s.link == link.id).count() as u64;
        assert_eq!(sessions, link.uses, "step {step}: each use has its session");
    }
    for account in &snap.accounts {
        assert!(
            account.held <= account.balance,
            "step {step}: held > balance: {account:?}"
        );
        let of = |s: &&Session| s.account == account.id;
        let open = snap
            .sessions
            .iter()
            .filter(of)
            .filter(|s| s.is_open())
            .count() as u64;
        assert_eq!(open, account.held, "step {step}: holds == open sessions");
        let completed = snap
            .sessions
            .iter()
            .filter(of)
            .filter(|s| matches!(s.status, SessionStatus::Completed { .. }))
            .count();
        let captured = snap
            .ledger
            .iter()
            .filter(|(a, k, _)| *a == account.id && matches!(k, LedgerKind::Capture { .. }))
            .count();
        assert_eq!(
            captured, completed,
            "step {step}: captured credits == completed sessions"
        );
    }
}

/// Replays `ops` against `store` and against a fresh [`ReferenceStore`], from [`epoch`].
/// After every step, checks that both returned the same thing, that both hold the same state,
/// that the invariants hold (uses <= limit, held <= balance, holds == open sessions, captured
/// credits == completed sessions), and that a step emitted exactly one event if it changed
/// state and none otherwise.
///
/// `store` should be empty of other activity while this runs (it reads the whole outbox).
///
/// # Panics
///
/// On the first difference or broken invariant, naming the step.
pub async fn compare_with_model<S: LinkStore>(store: &S, ops: &[Op]) {
    let model = ReferenceStore::new();
    let mut world = World::default();
    let mut now = epoch();
    for _ in 0..2 {
        let id = AccountId::new();
        store
            .create_account(Account::new(id, now))
            .await
            .expect("account");
        model
            .create_account(Account::new(id, now))
            .await
            .expect("account");
        world.accounts.push(id);
    }
    let mut before = snapshot(store, &world).await;
    for (step, op) in ops.iter().enumerate() {
        let (got, want): (Returned, Returned) = match *op {
            Op::CreateLink {
                account,
                limit,
                expires_in,
            } => {
                let limit = match limit {
                    None => UsageLimit::Unlimited,
                    Some(0) => UsageLimit::Single,
                    Some(n) => UsageLimit::multi(u32::from(n)).expect("n > 0"),
                };
                let mut spec = NewLink::new("model", crate::Flow::Document).limit(limit);
                spec.expires_at = expires_in.map(|s| now + Duration::seconds(i64::from(s) + 1));
                let link = Link::new(LinkId::new(), world.account(account), spec, now)
                    .expect("valid link");
                world.links.push(link.id);
                (
                    store.insert_link(link.clone()).await.into(),
                    model.insert_link(link).await.into(),
                )
            }
            Op::Redeem { link } => {
                let id = SessionId::new();
                let link = world.link(link);
                let got: Returned = store.redeem(link, id, ttl(), now).await.into();
                let want = model.redeem(link, id, ttl(), now).await.into();
                if matches!(got, Returned::Session(_)) {
                    world.sessions.push(id);
                }
                (got, want)
            }
            Op::Complete {
                session,
                account,
                outcome,
            } => match world.session(session) {
                None => (Returned::None, Returned::None),
                Some(s) => {
                    let a = world.account(account);
                    let o = Outcome::ALL[usize::from(outcome) % 3];
                    (
                        store.complete(a, s, o, now).await.into(),
                        model.complete(a, s, o, now).await.into(),
                    )
                }
            },
            Op::Abandon { session, account } => match world.session(session) {
                None => (Returned::None, Returned::None),
                Some(s) => {
                    let a = world.account(account);
                    (
                        store.abandon(a, s, now).await.into(),
                        model.abandon(a, s, now).await.into(),
                    )
                }
            },
            Op::Deactivate { link, account } => {
                let (l, a) = (world.link(link), world.account(account));
                (
                    store.deactivate(a, l, now).await.into(),
                    model.deactivate(a, l, now).await.into(),
                )
            }
            Op::TopUp {
                account,
                amount,
                key: k,
            } => {
                let a = world.account(account);
                let k = key(&format!("key-{}", k % 4));
                let amount = u64::from(amount);
                (
                    store.top_up(a, amount, k.clone(), now).await.into(),
                    model.top_up(a, amount, k, now).await.into(),
                )
            }
            Op::Advance { seconds } => {
                now += Duration::seconds(i64::from(seconds));
                (Returned::None, Returned::None)
            }
            Op::Expire => (
                store.expire_sessions(now, 1000).await.into(),
                model.expire_sessions(now, 1000).await.into(),
            ),
        };
        assert_eq!(
            got, want,
            "step {step} ({op:?}): the store and the model disagree"
        );
        let after = snapshot(store, &world).await;
        let mut expected = snapshot(&model, &world).await;
        check_invariants(&after, step);
        assert_eq!(
            after.events[..before.events.len()],
            before.events[..],
            "step {step} ({op:?}): the outbox is append-only"
        );
        // Within one step (a sweep may expire several sessions) the order of events is free.
        let new_events = |s: &Snapshot| {
            let mut tail: Vec<_> = s.events[before.events.len()..]
                .iter()
                .map(|e| format!("{e:?}"))
                .collect();
            tail.sort();
            tail
        };
        assert_eq!(
            new_events(&after),
            new_events(&expected),
            "step {step} ({op:?}): events differ"
        );
        expected.events.clone_from(&after.events);
        assert_eq!(after, expected, "step {step} ({op:?}): states differ");
        let emitted = after.events.len() - before.events.len();
        let changed = after.accounts != before.accounts
            || after.links != before.links
            || after.sessions != before.sessions;
        let expected_events = match got {
            Returned::Count(n) => n,
            _ => usize::from(changed),
        };
        assert_eq!(
            emitted, expected_events,
            "step {step} ({op:?}): every state change has exactly one event"
        );
        before = after;
    }
}

/// The conformance suite for [`WebhookStore`](crate::WebhookStore) implementations.
pub use super::delivery_conformance as delivery;
