//! The model test: random operation sequences applied to a store and to the
//! [`ReferenceStore`], compared after every step.

use chrono::{DateTime, Duration, Utc};

use super::fixtures::{epoch, key, ttl};
use super::ReferenceStore;
use crate::funnel::{ViewChange, ViewCounts, ViewKind};
use crate::start::{HandoffId, StartKey, StartKeyHash};
use crate::store::LinkStore;
use crate::tokens::TokenError;
use crate::{
    Account, AccountId, Error, EventKind, InvalidInput, Labels, LedgerKind, Link, LinkId,
    LinkStats, Metadata, NewLink, Outcome, Page, Reference, Rejection, Session, SessionId,
    SessionStatus, UsageLimit,
};

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
    /// Review a session as account `account % 2` with a decision (`% 3` over
    /// [`Outcome::ALL`]: `needs_review` is invalid input).
    Review {
        /// Which session.
        session: u8,
        /// Acting account.
        account: u8,
        /// Which decision (`% 3`).
        decision: u8,
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
    /// Sweep expired links (`link.expired`).
    ExpireLinks,
    /// Count a landing-page view of a link (an index past the end means an unknown id):
    /// `change % 4` picks human, scanner, unconfirmed, or confirm.
    View {
        /// Which link.
        link: u8,
        /// Which change.
        change: u8,
    },
    /// Redeem a link with start key `key % 3` (an index past the end means an unknown id).
    RedeemWithKey {
        /// Which link.
        link: u8,
        /// Which start key.
        key: u8,
    },
    /// Read the open session of start key `key % 3` on a link.
    StartedSession {
        /// Which link.
        link: u8,
        /// Which start key.
        key: u8,
    },
    /// Hand off a session as account `account % 2`, valid for `ttl` seconds.
    Handoff {
        /// Which session.
        session: u8,
        /// Acting account.
        account: u8,
        /// Seconds until the hand-off expires.
        ttl: u16,
    },
    /// Accept a hand-off made so far.
    AcceptHandoff {
        /// Which hand-off.
        handoff: u8,
    },
    /// Prune ([`LinkStore::prune`]) what is older than `age` seconds before now, at most
    /// `limit % 4 + 1` of each kind.
    Prune {
        /// Seconds before now.
        age: u16,
        /// Which limit.
        limit: u8,
    },
    /// Create an unlimited link for account `account % 2` with the owner's labels: reference
    /// `model-ref-{reference % 2}` if given, and metadata `{"case": "c-{metadata % 2}"}`
    /// unless `metadata` is 0.
    CreateLabelledLink {
        /// Which account.
        account: u8,
        /// Which reference, if any.
        reference: Option<u8>,
        /// Which metadata (0: none).
        metadata: u8,
    },
    /// Redeem a link from a personal URL for recipient `model-cus-{reference % 2}` (an index
    /// past the end means an unknown id).
    RedeemAs {
        /// Which link.
        link: u8,
        /// Which recipient.
        reference: u8,
    },
    /// Read account `account % 2`'s links with reference `model-ref-{reference % 2}` and its
    /// sessions with reference `model-cus-{reference % 2}`.
    ByReference {
        /// Which account.
        account: u8,
        /// Which references.
        reference: u8,
    },
    /// Redact a link as account `account % 2`.
    RedactLink {
        /// Which link.
        link: u8,
        /// Acting account.
        account: u8,
    },
    /// Redact a session as account `account % 2`.
    RedactSession {
        /// Which session.
        session: u8,
        /// Acting account.
        account: u8,
    },
}

/// Link reference `i % 2` of the model test.
fn model_reference(i: u8) -> Reference {
    Reference::new(format!("model-ref-{}", i % 2)).expect("valid reference")
}

/// Recipient reference `i % 2` of the model test.
fn model_recipient(i: u8) -> Reference {
    Reference::new(format!("model-cus-{}", i % 2)).expect("valid reference")
}

/// What an operation returned, comparable across stores.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Returned {
    Link(Link),
    Views(ViewCounts),
    Session(Session),
    Account(Account),
    Count(usize),
    Rejected(Rejection),
    Invalid(InvalidInput),
    Token(TokenError),
    Open(Option<Session>),
    Pruned(crate::Pruned),
    Found(Vec<Link>, Vec<Session>),
    AlreadyExists,
    None,
}

impl From<crate::Pruned> for Returned {
    fn from(p: crate::Pruned) -> Self {
        Self::Pruned(p)
    }
}

impl<T: Into<Returned>> From<Result<T, Error>> for Returned {
    fn from(r: Result<T, Error>) -> Self {
        match r {
            Ok(v) => v.into(),
            Err(Error::Rejected(r)) => Self::Rejected(r),
            Err(Error::Invalid(i)) => Self::Invalid(i),
            Err(Error::AlreadyExists) => Self::AlreadyExists,
            Err(Error::InvalidToken(t)) => Self::Token(t),
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

impl From<ViewCounts> for Returned {
    fn from(v: ViewCounts) -> Self {
        Self::Views(v)
    }
}

impl From<Option<Session>> for Returned {
    fn from(s: Option<Session>) -> Self {
        Self::Open(s)
    }
}

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
    handoffs: Vec<HandoffId>,
}

/// Start key `i % 3` of the model test.
fn model_key(i: u8) -> StartKeyHash {
    StartKey::new(format!("model-start-key-{}", i % 3))
        .expect("valid key")
        .hash()
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
    /// With the labels each event has now (a redaction erases them from earlier events).
    events: Vec<(AccountId, DateTime<Utc>, EventKind, Labels)>,
    /// Every link's statistics, views included.
    stats: Vec<LinkStats>,
}

async fn snapshot<S: LinkStore>(store: &S, world: &World) -> Snapshot {
    let mut snap = Snapshot {
        accounts: Vec::new(),
        links: Vec::new(),
        sessions: Vec::new(),
        ledger: Vec::new(),
        events: Vec::new(),
        stats: Vec::new(),
    };
    for &a in &world.accounts {
        snap.accounts.push(store.account(a).await.expect("account"));
        let ledger = store
            .ledger(a, Page::first(crate::Page::MAX_LIMIT))
            .await
            .expect("ledger");
        snap.ledger.extend(
            ledger
                .items
                .into_iter()
                .map(|e| (e.account, e.kind, e.amount)),
        );
        for l in store
            .links(a, Page::first(crate::Page::MAX_LIMIT))
            .await
            .expect("links")
            .items
        {
            let sessions = store
                .sessions(a, l.id, Page::first(crate::Page::MAX_LIMIT))
                .await;
            snap.sessions.extend(sessions.expect("sessions").items);
            snap.stats.push(store.stats(a, l.id).await.expect("stats"));
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
                .map(|e| (e.account, e.at, e.kind, e.labels)),
        );
    }
    snap
}

fn check_invariants(snap: &Snapshot, step: usize) {
    for session in &snap.sessions {
        let reviewed = session.decision.is_some();
        assert_eq!(
            reviewed,
            session.reviewed_at.is_some(),
            "step {step}: a decision has its time: {session:?}"
        );
        if reviewed {
            assert!(
                matches!(
                    session.status,
                    SessionStatus::Completed {
                        outcome: Outcome::NeedsReview,
                        ..
                    }
                ) && session.decision != Some(Outcome::NeedsReview),
                "step {step}: only needs_review sessions are reviewed, approved or denied: \
                 {session:?}"
            );
        }
        let reviews = snap
            .events
            .iter()
            .filter(|(_, _, e, _)| {
                matches!(e, EventKind::SessionReviewed { session: s, .. } if *s == session.id)
            })
            .count();
        assert_eq!(
            reviews,
            usize::from(reviewed),
            "step {step}: one session.reviewed per reviewed session"
        );
    }
    for link in snap.links.iter().filter(|l| l.redacted_at.is_some()) {
        assert!(
            link.reference.is_none() && link.metadata.is_empty(),
            "step {step}: a redacted link has no labels: {link:?}"
        );
        assert!(
            snap.sessions
                .iter()
                .filter(|s| s.link == link.id)
                .all(|s| s.reference.is_none()),
            "step {step}: a redacted link's sessions have no reference"
        );
        assert!(
            snap.events
                .iter()
                .filter(|(_, _, e, _)| e.link() == Some(link.id))
                .all(|(.., labels)| labels.is_empty()),
            "step {step}: no stored event about a redacted link has labels"
        );
    }
    for session in snap.sessions.iter().filter(|s| s.redacted_at.is_some()) {
        assert!(
            session.reference.is_none()
                && snap
                    .events
                    .iter()
                    .filter(|(_, _, e, _)| e.session() == Some(session.id))
                    .all(|(.., labels)| labels.session_reference.is_none()),
            "step {step}: a redacted session's reference is nowhere: {session:?}"
        );
    }
    for link in &snap.links {
        if let Some(max) = link.limit.max_uses() {
            assert!(link.uses <= max, "step {step}: uses > limit: {link:?}");
        }
        // Pruned sessions still count in the link's statistics.
        let sessions = snap.sessions.iter().filter(|s| s.link == link.id).count() as u64;
        assert!(
            sessions <= link.uses,
            "step {step}: a session per use at most"
        );
        if let Some(stats) = snap.stats.iter().find(|s| s.link == link.id) {
            let counted = stats.started + stats.completed.total() + stats.abandoned + stats.expired;
            assert_eq!(counted, link.uses, "step {step}: each use has its session");
        }
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
        // Completed sessions, pruned ones included (from the statistics).
        let completed = snap
            .links
            .iter()
            .filter(|l| l.account == account.id)
            .filter_map(|l| snap.stats.iter().find(|s| s.link == l.id))
            .map(|s| s.completed.total() as usize)
            .sum::<usize>();
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
/// state and none otherwise. The compared state includes every link's [`LinkStats`], view
/// counters too, and a view ([`Op::View`]) must change nothing else: no use, hold, session,
/// ledger entry or event.
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
                let got: Returned = store.redeem(link, id, None, None, ttl(), now).await.into();
                let want = model.redeem(link, id, None, None, ttl(), now).await.into();
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
            Op::Review {
                session,
                account,
                decision,
            } => match world.session(session) {
                None => (Returned::None, Returned::None),
                Some(s) => {
                    let a = world.account(account);
                    let d = Outcome::ALL[usize::from(decision) % 3];
                    (
                        store.review(a, s, d, now).await.into(),
                        model.review(a, s, d, now).await.into(),
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
            Op::ExpireLinks => (
                store.expire_links(now, 1000).await.into(),
                model.expire_links(now, 1000).await.into(),
            ),
            Op::Expire => (
                store.expire_sessions(now, 1000).await.into(),
                model.expire_sessions(now, 1000).await.into(),
            ),
            Op::View { link, change } => {
                let link = world.link(link);
                let change = match change % 4 {
                    3 => ViewChange::Confirm,
                    k => ViewKind::ALL[usize::from(k)].into(),
                };
                (
                    store.record_view(link, change).await.into(),
                    model.record_view(link, change).await.into(),
                )
            }
            Op::RedeemWithKey { link, key } => {
                let id = SessionId::new();
                let (link, key) = (world.link(link), Some(model_key(key)));
                let got: Returned = store.redeem(link, id, key, None, ttl(), now).await.into();
                let want = model.redeem(link, id, key, None, ttl(), now).await.into();
                if matches!(&got, Returned::Session(s) if s.id == id) {
                    world.sessions.push(id);
                }
                (got, want)
            }
            Op::StartedSession { link, key } => {
                let (link, key) = (world.link(link), model_key(key));
                (
                    store.started_session(link, key, now).await.into(),
                    model.started_session(link, key, now).await.into(),
                )
            }
            Op::Handoff {
                session,
                account,
                ttl: seconds,
            } => match world.session(session) {
                None => (Returned::None, Returned::None),
                Some(s) => {
                    let a = world.account(account);
                    let id = HandoffId::from_bytes(*SessionId::new().as_bytes());
                    let until = now + Duration::seconds(i64::from(seconds));
                    let got: Returned = store.create_handoff(a, s, id, until, now).await.into();
                    let want = model.create_handoff(a, s, id, until, now).await.into();
                    if matches!(got, Returned::Session(_)) {
                        world.handoffs.push(id);
                    }
                    (got, want)
                }
            },
            Op::Prune { age, limit } => {
                let cutoff = now - Duration::seconds(i64::from(age));
                let limit = usize::from(limit % 4) + 1;
                (
                    store.prune(cutoff, limit).await.into(),
                    model.prune(cutoff, limit).await.into(),
                )
            }
            Op::AcceptHandoff { handoff } => {
                if world.handoffs.is_empty() {
                    (Returned::None, Returned::None)
                } else {
                    let id = world.handoffs[usize::from(handoff) % world.handoffs.len()];
                    (
                        store.accept_handoff(id, now).await.into(),
                        model.accept_handoff(id, now).await.into(),
                    )
                }
            }
            Op::CreateLabelledLink {
                account,
                reference,
                metadata,
            } => {
                let mut spec =
                    NewLink::new("model", crate::Flow::Document).limit(UsageLimit::Unlimited);
                spec.reference = reference.map(model_reference);
                if metadata > 0 {
                    spec.metadata = Metadata::from_pairs([("case", format!("c-{}", metadata % 2))])
                        .expect("valid metadata");
                }
                let link = Link::new(LinkId::new(), world.account(account), spec, now)
                    .expect("valid link");
                world.links.push(link.id);
                (
                    store.insert_link(link.clone()).await.into(),
                    model.insert_link(link).await.into(),
                )
            }
            Op::RedeemAs { link, reference } => {
                let id = SessionId::new();
                let (link, r) = (world.link(link), Some(model_recipient(reference)));
                let got: Returned = store
                    .redeem(link, id, None, r.clone(), ttl(), now)
                    .await
                    .into();
                let want = model.redeem(link, id, None, r, ttl(), now).await.into();
                if matches!(got, Returned::Session(_)) {
                    world.sessions.push(id);
                }
                (got, want)
            }
            Op::ByReference { account, reference } => {
                let a = world.account(account);
                let (l, r) = (model_reference(reference), model_recipient(reference));
                let found = |links: Result<Vec<Link>, Error>,
                             sessions: Result<Vec<Session>, Error>| {
                    Returned::Found(
                        links.expect("links_by_reference"),
                        sessions.expect("sessions_by_reference"),
                    )
                };
                (
                    found(
                        store.links_by_reference(a, &l).await,
                        store.sessions_by_reference(a, &r).await,
                    ),
                    found(
                        model.links_by_reference(a, &l).await,
                        model.sessions_by_reference(a, &r).await,
                    ),
                )
            }
            Op::RedactLink { link, account } => {
                let (l, a) = (world.link(link), world.account(account));
                (
                    store.redact_link(a, l, now).await.into(),
                    model.redact_link(a, l, now).await.into(),
                )
            }
            Op::RedactSession { session, account } => match world.session(session) {
                None => (Returned::None, Returned::None),
                Some(s) => {
                    let a = world.account(account);
                    (
                        store.redact_session(a, s, now).await.into(),
                        model.redact_session(a, s, now).await.into(),
                    )
                }
            },
        };
        assert_eq!(
            got, want,
            "step {step} ({op:?}): the store and the model disagree"
        );
        let after = snapshot(store, &world).await;
        let mut expected = snapshot(&model, &world).await;
        check_invariants(&after, step);
        let unlabelled = |events: &[(AccountId, DateTime<Utc>, EventKind, Labels)]| {
            events
                .iter()
                .map(|(a, at, k, _)| (*a, *at, k.clone()))
                .collect::<Vec<_>>()
        };
        assert_eq!(
            unlabelled(&after.events[..before.events.len()]),
            unlabelled(&before.events),
            "step {step} ({op:?}): the outbox is append-only (but for redacted labels)"
        );
        // Every event's labels, the earlier ones too (a redaction scrubs them), as the
        // model's; the order within a step is free, so compare sorted.
        let all_events = |s: &Snapshot| {
            let mut all: Vec<_> = s.events.iter().map(|e| format!("{e:?}")).collect();
            all.sort();
            all
        };
        assert_eq!(
            all_events(&after),
            all_events(&expected),
            "step {step} ({op:?}): events or their labels differ"
        );
        if !matches!(op, Op::RedactLink { .. } | Op::RedactSession { .. }) {
            assert_eq!(
                after.events[..before.events.len()],
                before.events[..],
                "step {step} ({op:?}): only a redaction changes earlier events' labels"
            );
        }
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
        // Rule 6: the step wrote exactly the events its rules returned (the model's outbox
        // holds exactly those, compared above), and a step writes events if and only if it
        // changed state. (The link sweep's change, "reported", is the store's own
        // bookkeeping and not part of a link: its events are counted below instead.)
        let emitted = after.events.len() - before.events.len();
        if let Op::Prune { .. } = op {
            assert!(
                emitted == 0
                    && after.accounts == before.accounts
                    && after.links == before.links
                    && after.ledger == before.ledger
                    && after.stats == before.stats,
                "step {step} ({op:?}): a prune writes no event and changes no account, link, \
                 ledger entry or statistic"
            );
            before = after;
            continue;
        }
        let changed = after.accounts != before.accounts
            || after.links != before.links
            || after.sessions != before.sessions
            || matches!(op, Op::ExpireLinks) && emitted > 0
            // An accepted hand-off changes the hand-off (the store's own bookkeeping, not part
            // of a session) and writes `session.handed_off`.
            || matches!(op, Op::AcceptHandoff { .. }) && matches!(got, Returned::Session(_));
        assert_eq!(
            emitted > 0,
            changed,
            "step {step} ({op:?}): no state change without an event, no event without a change"
        );
        if let Op::AcceptHandoff { .. } = op {
            let handed_off = after.events[before.events.len()..]
                .iter()
                .filter(|(_, _, e, _)| matches!(e, EventKind::SessionHandedOff { .. }))
                .count();
            assert_eq!(
                handed_off,
                usize::from(matches!(got, Returned::Session(_))),
                "step {step} ({op:?}): one session.handed_off per accepted hand-off"
            );
        }
        if let Op::View { .. } = op {
            assert!(
                after.accounts == before.accounts
                    && after.links == before.links
                    && after.sessions == before.sessions
                    && after.ledger == before.ledger
                    && emitted == 0,
                "step {step} ({op:?}): views never change uses, holds or the outbox"
            );
        }
        if let Returned::Count(n) = got {
            assert_eq!(
                emitted, n,
                "step {step} ({op:?}): a sweep writes one event per expired session or link"
            );
        }
        before = after;
    }
}
