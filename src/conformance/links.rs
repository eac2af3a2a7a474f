//! The core suite: one check per rule of [`LinkStore`], each a plain `async fn`.

use chrono::Duration;

use super::fixtures::{
    account_with, epoch, events_of, key, kinds_of, link_with, ok, rejected, ttl,
};
use crate::store::LinkStore;
use crate::{
    AbandonReason, Account, AccountId, Error, EventKind, InvalidInput, LedgerKind, Link, LinkId,
    NewLink, Outcome, Page, Rejection, Session, SessionId, SessionStatus, UsageLimit,
};

/// Runs every check of the suite except [`race`](super::race) (which needs a multi-threaded runtime).
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
    inconsistent_inserts_and_precision(store).await;
    lifecycle_events(store).await;
    super::review_decides_once(store).await;
    views_change_nothing_else(store).await;
    funnel_stats(store).await;
    super::keyed_starts(store).await;
    super::handoffs(store).await;
    super::profiles_and_return_secrets(store).await;
    super::references_and_labels(store).await;
    super::redaction(store).await;
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
    let session = store
        .redeem(link.id, id, None, None, ttl(), now)
        .await
        .expect("redeem");
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

    let dup = store.redeem(link.id, id, None, None, ttl(), now).await;
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
            .redeem(LinkId::new(), SessionId::new(), None, None, ttl(), epoch())
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
            .redeem(expiring.id, SessionId::new(), None, None, ttl(), expires)
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
            .redeem(deactivated.id, SessionId::new(), None, None, ttl(), epoch())
            .await,
        Rejection::Deactivated,
        "deactivated",
    );
    state.unchanged(store, "deactivated").await;

    let single = link_with(store, account.id, UsageLimit::Single, None).await;
    store
        .redeem(single.id, SessionId::new(), None, None, ttl(), epoch())
        .await
        .expect("first use of a single-use link");
    let single = store.link(account.id, single.id).await.expect("link");
    // The account's only credit is now held: the next redemption must fail as exhausted (the
    // limit is checked before credits).
    let state = Observed::of(store, single.clone()).await;
    rejected(
        store
            .redeem(single.id, SessionId::new(), None, None, ttl(), epoch())
            .await,
        Rejection::Exhausted,
        "exhausted",
    );
    state.unchanged(store, "exhausted").await;

    let hungry = link_with(store, account.id, UsageLimit::Unlimited, None).await;
    let state = Observed::of(store, hungry.clone()).await;
    rejected(
        store
            .redeem(hungry.id, SessionId::new(), None, None, ttl(), epoch())
            .await,
        Rejection::NoCredits,
        "no available credit (all held)",
    );
    state.unchanged(store, "no credits").await;

    let broke = account_with(store, 0).await;
    let link = link_with(store, broke.id, UsageLimit::Unlimited, None).await;
    rejected(
        store
            .redeem(link.id, SessionId::new(), None, None, ttl(), epoch())
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
        .redeem(link.id, SessionId::new(), None, None, ttl(), now)
        .await
        .expect("redeem");
    let b = store
        .redeem(link.id, SessionId::new(), None, None, ttl(), now)
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
        .redeem(link.id, SessionId::new(), None, None, ttl(), epoch())
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
        store
            .redeem(link.id, SessionId::new(), None, None, ttl(), at)
            .await,
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
        .redeem(link.id, SessionId::new(), None, None, ttl(), epoch())
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
            .redeem(link.id, SessionId::new(), None, None, ttl(), at)
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
            .redeem(link.id, SessionId::new(), None, None, ttl(), epoch())
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

/// Every store refuses the same inconsistent inserts with the same typed error (as
/// PostgreSQL's `CHECK`s would), and keeps times to the microsecond: what a store returns from
/// an insert is what it reads back.
pub async fn inconsistent_inserts_and_precision<S: LinkStore>(store: &S) {
    let mut greedy = Account::new(AccountId::new(), epoch());
    greedy.balance = 1;
    greedy.held = 2;
    let refused = store.create_account(greedy.clone()).await;
    assert!(
        matches!(
            refused,
            Err(Error::Invalid(InvalidInput::HeldExceedsBalance))
        ),
        "held > balance is refused: {refused:?}"
    );
    rejected(
        store.account(greedy.id).await,
        Rejection::NotFound,
        "a refused account is not stored",
    );

    let account = account_with(store, 1).await;
    let mut overused = Link::new(
        LinkId::new(),
        account.id,
        NewLink::new("overused", crate::Flow::Selfie).limit(UsageLimit::multi(2).expect("2")),
        epoch(),
    )
    .expect("valid");
    overused.uses = 3;
    let refused = store.insert_link(overused.clone()).await;
    assert!(
        matches!(refused, Err(Error::Invalid(InvalidInput::UsesExceedLimit))),
        "uses > limit is refused: {refused:?}"
    );
    rejected(
        store.link(account.id, overused.id).await,
        Rejection::NotFound,
        "a refused link is not stored",
    );
    assert!(
        kinds_of(store, account.id)
            .await
            .iter()
            .all(|k| !matches!(k, EventKind::LinkCreated { .. })),
        "a refused link emits nothing"
    );

    let nanos = epoch() + Duration::days(1) + Duration::nanoseconds(123_456_789);
    let mut spec = NewLink::new("precise", crate::Flow::Selfie);
    spec.expires_at = Some(nanos);
    let mut precise = Link::new(
        LinkId::new(),
        account.id,
        spec,
        epoch() + Duration::nanoseconds(999),
    )
    .expect("valid");
    precise.expires_at = Some(nanos);
    let stored = ok(store.insert_link(precise).await, "insert_link");
    assert_eq!(
        stored.expires_at,
        Some(epoch() + Duration::days(1) + Duration::microseconds(123_456)),
        "expiry truncated to microseconds"
    );
    let read = ok(store.link(account.id, stored.id).await, "link");
    assert_eq!(
        read, stored,
        "what insert_link returns is what the store reads back"
    );
}

/// Lifecycle events: `link.exhausted` in the step that takes the last use, `link.expired` once
/// per link however often the sweep runs and never for a link deactivated first, and a session
/// abandoned after its time to live is abandoned as expired.
pub async fn lifecycle_events<S: LinkStore>(store: &S) {
    let account = account_with(store, 10).await;
    let two = link_with(store, account.id, UsageLimit::multi(2).expect("2"), None).await;
    ok(
        store
            .redeem(two.id, SessionId::new(), None, None, ttl(), epoch())
            .await,
        "redeem",
    );
    assert!(
        !kinds_of(store, account.id)
            .await
            .contains(&EventKind::LinkExhausted { link: two.id }),
        "not exhausted after the first of two uses"
    );
    let last = SessionId::new();
    ok(
        store.redeem(two.id, last, None, None, ttl(), epoch()).await,
        "redeem",
    );
    let kinds = kinds_of(store, account.id).await;
    assert_eq!(
        kinds[kinds.len() - 2..],
        [
            EventKind::LinkRedeemed {
                link: two.id,
                session: last
            },
            EventKind::LinkExhausted { link: two.id },
        ],
        "the last use writes link.redeemed then link.exhausted"
    );
    rejected(
        store
            .redeem(two.id, SessionId::new(), None, None, ttl(), epoch())
            .await,
        Rejection::Exhausted,
        "exhausted",
    );
    let exhausted = |kinds: &[EventKind]| {
        kinds
            .iter()
            .filter(|k| **k == EventKind::LinkExhausted { link: two.id })
            .count()
    };
    assert_eq!(
        exhausted(&kinds_of(store, account.id).await),
        1,
        "a refused redemption writes nothing"
    );

    let at = epoch() + Duration::hours(1);
    let expiring = link_with(store, account.id, UsageLimit::Unlimited, Some(at)).await;
    let deactivated = link_with(store, account.id, UsageLimit::Unlimited, Some(at)).await;
    ok(
        store.deactivate(account.id, deactivated.id, epoch()).await,
        "deactivate",
    );
    let expired = |kinds: &[EventKind], link: LinkId| {
        kinds
            .iter()
            .filter(|k| **k == EventKind::LinkExpired { link })
            .count()
    };
    // Other checks may share the store: sweep everything due, and count this account's.
    while ok(
        store.expire_links(at - Duration::seconds(1), 1000).await,
        "sweep",
    ) == 1000
    {}
    assert_eq!(
        expired(&kinds_of(store, account.id).await, expiring.id),
        0,
        "not before expiry"
    );
    for _ in 0..3 {
        while ok(store.expire_links(at, 1000).await, "sweep") == 1000 {}
    }
    let kinds = kinds_of(store, account.id).await;
    assert_eq!(
        expired(&kinds, expiring.id),
        1,
        "link.expired once, across repeated sweeps"
    );
    assert_eq!(
        expired(&kinds, deactivated.id),
        0,
        "never for a link deactivated first"
    );
    assert_eq!(
        expired(&kinds, two.id),
        0,
        "never for a link without an expiry"
    );

    let session = SessionId::new();
    let open = link_with(store, account.id, UsageLimit::Unlimited, None).await;
    ok(
        store
            .redeem(open.id, session, None, None, ttl(), epoch())
            .await,
        "redeem",
    );
    let late = epoch() + ttl().duration();
    let abandoned = ok(store.abandon(account.id, session, late).await, "abandon");
    assert!(
        matches!(
            abandoned.status,
            SessionStatus::Abandoned {
                reason: AbandonReason::Expired,
                ..
            }
        ),
        "an abandon after the time to live is an expiry: {abandoned:?}"
    );
}

/// Views never change uses, holds or the outbox: counting landing-page views (of every kind,
/// and confirming them) leaves links, sessions, the account, its ledger and the outbox as they
/// were, and only the view counters move, never below zero.
pub async fn views_change_nothing_else<S: LinkStore>(store: &S) {
    use crate::funnel::{ViewChange, ViewCounts, ViewKind};

    let account = account_with(store, 3).await;
    let link = link_with(store, account.id, UsageLimit::multi(2).expect("n"), None).await;
    let single = link_with(store, account.id, UsageLimit::Single, None).await;
    let now = epoch() + Duration::seconds(1);
    let session = ok(
        store
            .redeem(link.id, SessionId::new(), None, None, ttl(), now)
            .await,
        "redeem",
    );
    ok(
        store
            .redeem(single.id, SessionId::new(), None, None, ttl(), now)
            .await,
        "redeem",
    );
    ok(
        store.deactivate(account.id, single.id, now).await,
        "deactivate",
    );
    let read = |link: LinkId| async move {
        (
            store.link(account.id, link).await.expect("link"),
            store
                .sessions(account.id, link, Page::first(10))
                .await
                .expect("sessions")
                .items,
        )
    };
    let before = (
        read(link.id).await,
        read(single.id).await,
        store.account(account.id).await.expect("account"),
        store
            .ledger(account.id, Page::first(100))
            .await
            .expect("ledger")
            .items,
        events_of(store, account.id).await,
    );

    assert_eq!(
        ok(
            store.record_view(link.id, ViewChange::Confirm).await,
            "confirm"
        ),
        ViewCounts::default(),
        "confirming with no unconfirmed view changes nothing"
    );
    for kind in [
        ViewKind::Unconfirmed,
        ViewKind::Scanner,
        ViewKind::Unconfirmed,
        ViewKind::Human,
    ] {
        ok(store.record_view(link.id, kind.into()).await, "record_view");
    }
    let mut last = ViewCounts::default();
    for _ in 0..3 {
        last = ok(
            store.record_view(link.id, ViewChange::Confirm).await,
            "confirm",
        );
    }
    assert_eq!(
        last,
        ViewCounts {
            human: 3,
            scanner: 1,
            unconfirmed: 0
        },
        "two unconfirmed views confirmed; the third confirmation changes nothing"
    );
    // A used-up, deactivated link still counts its views: the store only counts.
    ok(
        store.record_view(single.id, ViewKind::Scanner.into()).await,
        "record_view of a deactivated link",
    );
    rejected(
        store
            .record_view(LinkId::new(), ViewKind::Human.into())
            .await,
        Rejection::NotFound,
        "a view of an unknown link",
    );

    let after = (
        read(link.id).await,
        read(single.id).await,
        store.account(account.id).await.expect("account"),
        store
            .ledger(account.id, Page::first(100))
            .await
            .expect("ledger")
            .items,
        events_of(store, account.id).await,
    );
    assert_eq!(
        after, before,
        "views never change uses, holds, sessions, the ledger or the outbox"
    );
    assert_eq!(after.2.held, 2, "both open sessions keep their holds");
    assert_eq!(
        after.0 .1,
        vec![session],
        "the session stays open, as it was"
    );
    let stats = ok(store.stats(account.id, link.id).await, "stats");
    assert_eq!(stats.views, last, "stats report the view counters");
    assert_eq!(stats.uses, 1);
    let stats = ok(store.stats(account.id, single.id).await, "stats");
    assert_eq!(
        stats.views,
        ViewCounts {
            human: 0,
            scanner: 1,
            unconfirmed: 0
        },
        "each link has its own counters"
    );
}

/// A link's funnel, exactly, after a scripted scenario: views by kind, starts, completions by
/// outcome, explicit abandons, expiries, conversion and the (lower) median time to complete.
pub async fn funnel_stats<S: LinkStore>(store: &S) {
    use crate::funnel::{ViewChange, ViewCounts, ViewKind};

    let account = account_with(store, 10).await;
    let link = link_with(store, account.id, UsageLimit::multi(10).expect("n"), None).await;
    let fresh = ok(store.stats(account.id, link.id).await, "stats");
    assert_eq!(fresh.views, ViewCounts::default());
    assert_eq!(
        fresh.conversion(),
        None,
        "no conversion without human views"
    );
    assert_eq!(fresh.median_time_to_complete, None);

    for kind in [
        ViewKind::Unconfirmed,
        ViewKind::Unconfirmed,
        ViewKind::Unconfirmed,
        ViewKind::Scanner,
        ViewKind::Scanner,
        ViewKind::Human,
        ViewKind::Human,
    ] {
        ok(store.record_view(link.id, kind.into()).await, "record_view");
    }
    for _ in 0..3 {
        ok(
            store.record_view(link.id, ViewChange::Confirm).await,
            "confirm",
        );
    }
    ok(
        store
            .record_view(link.id, ViewKind::Unconfirmed.into())
            .await,
        "record_view",
    );

    // Six starts, a second apart; four complete after 60, 90, 120 and 30 seconds.
    let mut ids = Vec::new();
    for i in 0..6 {
        let at = epoch() + Duration::seconds(i);
        let s = ok(
            store
                .redeem(link.id, SessionId::new(), None, None, ttl(), at)
                .await,
            "redeem",
        );
        ids.push(s);
    }
    for (session, (outcome, after)) in ids.iter().zip([
        (Outcome::Approved, 60),
        (Outcome::Approved, 90),
        (Outcome::Denied, 120),
        (Outcome::NeedsReview, 30),
    ]) {
        let at = session.started_at + Duration::seconds(after);
        ok(
            store.complete(account.id, session.id, outcome, at).await,
            "complete",
        );
    }
    ok(
        store
            .abandon(account.id, ids[4].id, epoch() + Duration::seconds(10))
            .await,
        "abandon",
    );
    let swept = ok(
        store.expire_sessions(ids[5].expires_at, 1000).await,
        "expire_sessions",
    );
    assert!(swept >= 1, "the sweep expires the last session");

    let stats = ok(store.stats(account.id, link.id).await, "stats");
    assert_eq!(
        stats.views,
        ViewCounts {
            human: 5,
            scanner: 2,
            unconfirmed: 1
        }
    );
    assert_eq!(stats.uses, 6, "starts");
    assert_eq!(stats.started, 0, "none open");
    assert_eq!(
        (
            stats.completed.approved,
            stats.completed.denied,
            stats.completed.needs_review
        ),
        (2, 1, 1)
    );
    assert_eq!(stats.abandoned, 1, "explicit abandons only");
    assert_eq!(stats.expired, 1, "expired sessions apart from abandons");
    assert_eq!(
        stats.median_time_to_complete,
        Some(std::time::Duration::from_secs(60)),
        "the lower median of 30, 60, 90 and 120 seconds"
    );
    assert_eq!(stats.conversion(), Some(0.8), "4 completed / 5 human views");
}
