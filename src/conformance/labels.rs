//! Checks of the owner's labels (references and metadata) and of their redaction.

use chrono::{DateTime, Duration, Utc};

use super::fixtures::{account_with, epoch, events_of, ok, rejected, ttl};
use crate::start::{StartKey, StartKeyHash};
use crate::store::LinkStore;
use crate::{
    AccountId, Event, EventKind, Labels, Link, LinkId, Metadata, NewLink, Outcome, Page, Reference,
    Rejection, Session, SessionId, UsageLimit,
};

fn reference(text: &str) -> Reference {
    Reference::new(text).expect("valid reference")
}

fn metadata(pairs: &[(&str, &str)]) -> Metadata {
    Metadata::from_pairs(pairs.iter().copied()).expect("valid metadata")
}

fn at(seconds: i64) -> DateTime<Utc> {
    epoch() + Duration::seconds(seconds)
}

/// A new unlimited link of `account` with these labels, created at [`epoch`].
async fn labelled<S: LinkStore>(
    store: &S,
    account: AccountId,
    reference: Option<Reference>,
    metadata: Metadata,
) -> Link {
    let mut spec = NewLink::new("labelled", crate::Flow::Selfie).limit(UsageLimit::Unlimited);
    spec.reference = reference;
    spec.metadata = metadata;
    let link = Link::new(LinkId::new(), account, spec, epoch()).expect("valid link");
    ok(store.insert_link(link).await, "insert_link")
}

async fn start<S: LinkStore>(
    store: &S,
    link: LinkId,
    reference: Option<Reference>,
    now: DateTime<Utc>,
) -> Session {
    ok(
        store
            .redeem(link, SessionId::new(), None, reference, ttl(), now)
            .await,
        "redeem",
    )
}

/// The labels of `account`'s events of `kind`.
fn labels_of(events: &[Event], kind: &EventKind) -> Vec<Labels> {
    events
        .iter()
        .filter(|e| &e.kind == kind)
        .map(|e| e.labels.clone())
        .collect()
}

fn ids(sessions: &[Session]) -> Vec<SessionId> {
    sessions.iter().map(|s| s.id).collect()
}

/// References and metadata: links read back with them; `links_by_reference` finds exactly
/// the account's links with that reference, in creation order; a redemption records the
/// personal URL's reference (none without one) and `sessions_by_reference` finds those
/// sessions, of the account only; every event carries the labels of its link and session as
/// at the event; a resumed keyed start keeps its own reference.
pub async fn references_and_labels<S: LinkStore>(store: &S) {
    let account = account_with(store, 20).await;
    let other = account_with(store, 5).await;
    let (shared, order) = (reference("ref-shared"), metadata(&[("order", "o-1")]));
    let first = labelled(store, account.id, Some(shared.clone()), order.clone()).await;
    let plain = labelled(store, account.id, None, Metadata::new()).await;
    let second = labelled(store, account.id, Some(shared.clone()), Metadata::new()).await;
    let foreign = labelled(store, other.id, Some(shared.clone()), Metadata::new()).await;
    assert_eq!(first.reference.as_ref(), Some(&shared));
    assert_eq!(first.metadata, order);
    assert_eq!(first.redacted_at, None);
    assert_eq!(
        ok(store.link(account.id, first.id).await, "link"),
        first,
        "a link reads back with its reference and metadata"
    );
    assert_eq!(
        ok(store.link(account.id, plain.id).await, "link"),
        plain,
        "a link without labels reads back without"
    );

    let found = ok(
        store.links_by_reference(account.id, &shared).await,
        "links_by_reference",
    );
    assert_eq!(
        found,
        vec![first.clone(), second.clone()],
        "links_by_reference: the account's links with the reference, oldest first"
    );
    let found = ok(
        store.links_by_reference(other.id, &shared).await,
        "links_by_reference",
    );
    assert_eq!(found, vec![foreign.clone()], "only the account's own links");
    assert!(
        ok(
            store
                .links_by_reference(account.id, &reference("ref-none"))
                .await,
            "links_by_reference"
        )
        .is_empty(),
        "no link has an unused reference"
    );
    assert!(
        ok(
            store.links_by_reference(AccountId::new(), &shared).await,
            "links_by_reference"
        )
        .is_empty(),
        "an unknown account has no links"
    );

    let (ann, bob) = (reference("cus-ann"), reference("cus-bob"));
    let personal = start(store, first.id, Some(ann.clone()), at(1)).await;
    assert_eq!(
        personal.reference.as_ref(),
        Some(&ann),
        "a redemption records the personal URL's reference"
    );
    assert_eq!(personal.redacted_at, None);
    let anonymous = start(store, first.id, None, at(2)).await;
    assert_eq!(anonymous.reference, None, "no reference: none recorded");
    let plain_personal = start(store, plain.id, Some(bob.clone()), at(3)).await;
    let plain_anonymous = start(store, plain.id, None, at(4)).await;
    let foreign_personal = start(store, foreign.id, Some(ann.clone()), at(5)).await;
    assert_eq!(
        ok(store.session(account.id, personal.id).await, "session"),
        personal,
        "a session reads back with its reference"
    );
    ok(
        store
            .complete(account.id, personal.id, Outcome::Approved, at(6))
            .await,
        "complete",
    );
    ok(
        store
            .complete(account.id, plain_anonymous.id, Outcome::Denied, at(7))
            .await,
        "complete",
    );

    let found = ok(
        store.sessions_by_reference(account.id, &ann).await,
        "sessions_by_reference",
    );
    assert_eq!(
        ids(&found),
        vec![personal.id],
        "sessions_by_reference: the account's sessions with the reference"
    );
    let found = ok(
        store.sessions_by_reference(other.id, &ann).await,
        "sessions_by_reference",
    );
    assert_eq!(
        ids(&found),
        vec![foreign_personal.id],
        "sessions_by_reference: only the account's own sessions"
    );
    let found = ok(
        store.sessions_by_reference(account.id, &bob).await,
        "sessions_by_reference",
    );
    assert_eq!(found, vec![plain_personal.clone()]);
    assert!(ok(
        store.sessions_by_reference(account.id, &shared).await,
        "sessions_by_reference"
    )
    .is_empty());

    let events = events_of(store, account.id).await;
    let link_labels = Labels {
        reference: Some(shared.clone()),
        session_reference: None,
        metadata: order.clone(),
    };
    assert_eq!(
        labels_of(&events, &EventKind::LinkCreated { link: first.id }),
        vec![link_labels.clone()],
        "link.created carries the link's reference and metadata"
    );
    let personal_labels = Labels {
        session_reference: Some(ann.clone()),
        ..link_labels.clone()
    };
    assert_eq!(
        labels_of(
            &events,
            &EventKind::LinkRedeemed {
                link: first.id,
                session: personal.id
            }
        ),
        vec![personal_labels.clone()],
        "link.redeemed of a personal session carries its reference too"
    );
    assert_eq!(
        labels_of(
            &events,
            &EventKind::SessionCompleted {
                link: first.id,
                session: personal.id,
                outcome: Outcome::Approved
            }
        ),
        vec![personal_labels],
        "session.completed of a personal session carries its reference"
    );
    assert_eq!(
        labels_of(
            &events,
            &EventKind::LinkRedeemed {
                link: first.id,
                session: anonymous.id
            }
        ),
        vec![link_labels],
        "a session without a reference: the link's labels only"
    );
    assert_eq!(
        labels_of(
            &events,
            &EventKind::LinkRedeemed {
                link: plain.id,
                session: plain_personal.id
            }
        ),
        vec![Labels {
            session_reference: Some(bob.clone()),
            ..Labels::default()
        }],
        "a personal session of a link without labels: its reference only"
    );
    assert_eq!(
        labels_of(
            &events,
            &EventKind::SessionCompleted {
                link: plain.id,
                session: plain_anonymous.id,
                outcome: Outcome::Denied
            }
        ),
        vec![Labels::default()],
        "a session event of a link without labels carries none"
    );
    assert!(
        events
            .iter()
            .filter(|e| matches!(e.kind, EventKind::CreditsAdded { .. }))
            .all(|e| e.labels.is_empty()),
        "credit events carry no labels"
    );

    // A resumed keyed start keeps its own reference.
    let key: StartKeyHash = StartKey::new("labels-conformance-key-0001")
        .expect("valid key")
        .hash();
    let keyed = ok(
        store
            .redeem(
                second.id,
                SessionId::new(),
                Some(key),
                Some(ann.clone()),
                ttl(),
                at(10),
            )
            .await,
        "keyed redeem",
    );
    let resumed = ok(
        store
            .redeem(
                second.id,
                SessionId::new(),
                Some(key),
                Some(bob.clone()),
                ttl(),
                at(11),
            )
            .await,
        "keyed redeem again",
    );
    assert_eq!(resumed, keyed, "a resumed start is the key's session");
    assert_eq!(
        resumed.reference.as_ref(),
        Some(&ann),
        "a resumed start keeps its own reference"
    );
}

/// Everything an account's redaction must leave as it was.
#[derive(Debug, PartialEq)]
struct Untouched {
    stats: crate::LinkStats,
    account: crate::Account,
    ledger: Vec<crate::LedgerEntry>,
}

async fn untouched<S: LinkStore>(store: &S, account: AccountId, link: LinkId) -> Untouched {
    Untouched {
        stats: ok(store.stats(account, link).await, "stats"),
        account: ok(store.account(account).await, "account"),
        ledger: ok(store.ledger(account, Page::first(100)).await, "ledger").items,
    }
}

/// Redaction: `redact_link` erases the link's reference and metadata and the reference of each
/// of its sessions (marking those redacted), scrubs them from every stored event about the
/// link, appends one `link.redacted` without labels, and is idempotent; later redemptions
/// record no reference. `redact_session` erases one session's reference, scrubs it from the
/// events about the session (the link's labels stay) and appends `session.redacted` once.
/// Ids, counters, outcomes, stats and the ledger stay; other links keep their labels; another
/// account gets `NotFound` and changes nothing.
pub async fn redaction<S: LinkStore>(store: &S) {
    let account = account_with(store, 20).await;
    let other = account_with(store, 1).await;
    let (red, kept) = (reference("red-link"), reference("kept-link"));
    let data = metadata(&[("case", "c-77")]);
    let link = labelled(store, account.id, Some(red.clone()), data.clone()).await;
    let control = labelled(store, account.id, Some(kept.clone()), data.clone()).await;
    let (ann, bob) = (reference("red-ann"), reference("red-bob"));
    let personal = start(store, link.id, Some(ann.clone()), at(1)).await;
    let anonymous = start(store, link.id, None, at(2)).await;
    let bobs = start(store, control.id, Some(bob.clone()), at(3)).await;
    let personal = ok(
        store
            .complete(account.id, personal.id, Outcome::Approved, at(4))
            .await,
        "complete",
    );
    let before = untouched(store, account.id, link.id).await;
    let events_before = events_of(store, account.id).await;
    let link_before = ok(store.link(account.id, link.id).await, "link");

    rejected(
        store.redact_link(other.id, link.id, at(5)).await,
        Rejection::NotFound,
        "redact_link of another account's link",
    );
    rejected(
        store.redact_session(other.id, personal.id, at(5)).await,
        Rejection::NotFound,
        "redact_session of another account's session",
    );
    rejected(
        store.redact_link(account.id, LinkId::new(), at(5)).await,
        Rejection::NotFound,
        "redact_link of an unknown link",
    );
    rejected(
        store
            .redact_session(account.id, SessionId::new(), at(5))
            .await,
        Rejection::NotFound,
        "redact_session of an unknown session",
    );
    assert_eq!(
        events_of(store, account.id).await,
        events_before,
        "a refused redaction changes nothing"
    );
    assert_eq!(
        ok(store.link(account.id, link.id).await, "link"),
        link_before
    );

    let redacted = ok(
        store.redact_link(account.id, link.id, at(6)).await,
        "redact",
    );
    let expected = Link {
        reference: None,
        metadata: Metadata::new(),
        redacted_at: Some(at(6)),
        ..link_before.clone()
    };
    assert_eq!(
        redacted, expected,
        "redact_link erases the reference and metadata, marks the link, changes nothing else"
    );
    assert_eq!(ok(store.link(account.id, link.id).await, "link"), expected);
    assert_eq!(
        ok(store.session(account.id, personal.id).await, "session"),
        Session {
            reference: None,
            redacted_at: Some(at(6)),
            ..personal.clone()
        },
        "the link's redaction erases its sessions' references and marks them"
    );
    assert_eq!(
        ok(store.session(account.id, anonymous.id).await, "session"),
        anonymous,
        "a session without a reference stays as it was"
    );
    assert_eq!(
        untouched(store, account.id, link.id).await,
        before,
        "redaction changes no stats, credits or ledger"
    );

    let events = events_of(store, account.id).await;
    assert_eq!(
        events.len(),
        events_before.len() + 1,
        "redact_link appends one event"
    );
    let last = events.last().expect("an event");
    assert_eq!(last.kind, EventKind::LinkRedacted { link: link.id });
    assert!(last.labels.is_empty(), "link.redacted carries no labels");
    for (now, then) in events.iter().zip(&events_before) {
        assert_eq!(
            (now.seq, now.id, &now.kind, now.at),
            (then.seq, then.id, &then.kind, then.at),
            "redaction rewrites no event but its labels"
        );
        if now.kind.link() == Some(link.id) {
            assert!(
                now.labels.is_empty(),
                "every stored event about the redacted link loses its labels: {now:?}"
            );
        } else {
            assert_eq!(now.labels, then.labels, "other events keep their labels");
        }
    }
    assert!(
        events.iter().any(|e| e.kind.session() == Some(bobs.id)
            && e.labels.session_reference == Some(bob.clone())),
        "another link's events keep their labels"
    );
    assert!(ok(
        store.links_by_reference(account.id, &red).await,
        "links_by_reference"
    )
    .is_empty());
    assert!(ok(
        store.sessions_by_reference(account.id, &ann).await,
        "sessions_by_reference"
    )
    .is_empty());
    let found = ok(
        store.links_by_reference(account.id, &kept).await,
        "links_by_reference",
    );
    assert_eq!(
        found.iter().map(|l| l.id).collect::<Vec<_>>(),
        vec![control.id],
        "another link keeps its reference"
    );

    let again = ok(
        store.redact_link(account.id, link.id, at(7)).await,
        "redact again",
    );
    assert_eq!(
        again, expected,
        "a repeat returns the link as redacted first"
    );
    assert_eq!(
        events_of(store, account.id).await,
        events,
        "a repeated redact_link appends nothing"
    );
    let repeat = ok(
        store.redact_session(account.id, personal.id, at(7)).await,
        "redact_session",
    );
    assert_eq!(
        repeat.redacted_at,
        Some(at(6)),
        "a session its link's redaction erased is redacted already"
    );
    assert_eq!(
        events_of(store, account.id).await,
        events,
        "and appends nothing"
    );

    let later = start(store, link.id, Some(reference("red-carl")), at(8)).await;
    assert_eq!(
        later.reference, None,
        "a redeem of a redacted link records no reference"
    );
    let events = events_of(store, account.id).await;
    assert!(
        events
            .iter()
            .filter(|e| e.kind.session() == Some(later.id))
            .all(|e| e.labels.is_empty()),
        "nor do its events carry one"
    );

    // One session's redaction: its reference goes; its link's labels stay.
    let before = untouched(store, account.id, control.id).await;
    let erased = ok(
        store.redact_session(account.id, bobs.id, at(9)).await,
        "redact_session",
    );
    assert_eq!(
        erased,
        Session {
            reference: None,
            redacted_at: Some(at(9)),
            ..bobs.clone()
        },
        "redact_session erases the reference and marks the session"
    );
    assert_eq!(
        ok(store.session(account.id, bobs.id).await, "session"),
        erased
    );
    assert_eq!(untouched(store, account.id, control.id).await, before);
    let after = events_of(store, account.id).await;
    assert_eq!(
        after.len(),
        events.len() + 1,
        "redact_session appends one event"
    );
    let last = after.last().expect("an event");
    assert_eq!(
        last.kind,
        EventKind::SessionRedacted {
            link: control.id,
            session: bobs.id
        }
    );
    let control_labels = Labels {
        reference: Some(kept.clone()),
        session_reference: None,
        metadata: data.clone(),
    };
    assert_eq!(
        last.labels, control_labels,
        "session.redacted carries its link's labels, not the session's reference"
    );
    for event in after.iter().filter(|e| e.kind.link() == Some(control.id)) {
        assert_eq!(
            event.labels, control_labels,
            "the session's reference leaves every event; the link's labels stay: {event:?}"
        );
    }
    assert!(ok(
        store.sessions_by_reference(account.id, &bob).await,
        "sessions_by_reference"
    )
    .is_empty());
    let again = ok(
        store.redact_session(account.id, bobs.id, at(10)).await,
        "redact_session again",
    );
    assert_eq!(
        again, erased,
        "a repeat returns the session as redacted first"
    );
    assert_eq!(
        events_of(store, account.id).await,
        after,
        "a repeated redact_session appends nothing"
    );

    // A session without a reference can be marked too, once.
    let marked = ok(
        store.redact_session(account.id, anonymous.id, at(11)).await,
        "redact_session",
    );
    assert_eq!(marked.redacted_at, Some(at(11)));
    assert_eq!(marked.reference, None);
    let last = events_of(store, account.id).await;
    assert_eq!(
        last.last().map(|e| (&e.kind, e.labels.is_empty())),
        Some((
            &EventKind::SessionRedacted {
                link: link.id,
                session: anonymous.id
            },
            true
        )),
        "session.redacted of a redacted link's session carries no labels"
    );
}
