//! The rules, as pure functions over values.
//!
//! Nothing here reads a clock or does I/O: `now` is an argument, and every function either
//! returns the change to apply (with the event and ledger entry it implies) or a [`Rejection`]
//! and leaves its arguments untouched. Stores apply these changes atomically; the reference
//! model and the property tests drive them directly.

use chrono::{DateTime, Utc};

use crate::clock::truncate_to_micros;

use crate::{
    AbandonReason, Account, Error, Event, EventKind, IdempotencyKey, InvalidInput, LedgerEntry,
    LedgerKind, Link, LinkId, LinkStatus, Metadata, Outcome, Reference, Rejection, Session,
    SessionId, SessionStatus, SessionTtl,
};

/// A change the rules decided: the new value, plus the outbox events and ledger entry the
/// store must write with it in one atomic step. A store writes exactly these events, in this
/// order, no more and no fewer; an idempotent repeat has none.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Effects<T> {
    /// The object after the change.
    pub value: T,
    /// The events to append to the outbox: empty if and only if the state did not change.
    pub events: Vec<EventKind>,
    /// The ledger entry to append, if credits moved.
    pub ledger: Option<LedgerEntry>,
}

impl<T> Effects<T> {
    fn unchanged(value: T) -> Self {
        Self {
            value,
            events: Vec::new(),
            ledger: None,
        }
    }
}

/// Whether a session can start on a link in `status` when its owner has (or has not) a
/// credit available: the one place where a link's status becomes a refusal. The status comes
/// from [`Link::status`], which ranks deactivation over expiry over exhaustion; a missing
/// credit counts only on an active link.
///
/// # Errors
///
/// [`Rejection::Deactivated`], [`Rejection::Expired`], [`Rejection::Exhausted`] for those
/// statuses; [`Rejection::NoCredits`] for an active link without an available credit.
pub fn check_start(status: LinkStatus, credit_available: bool) -> Result<(), Rejection> {
    match status {
        LinkStatus::Deactivated => Err(Rejection::Deactivated),
        LinkStatus::Expired => Err(Rejection::Expired),
        LinkStatus::Exhausted => Err(Rejection::Exhausted),
        LinkStatus::Active if !credit_available => Err(Rejection::NoCredits),
        LinkStatus::Active => Ok(()),
    }
}

/// Whether `link` can be redeemed at `now` with `account`'s credits: [`check_start`] with the
/// link's [status](Link::status) at `now` and the account's available credit.
///
/// # Errors
///
/// In this order: [`Rejection::Deactivated`], [`Rejection::Expired`] (at exactly
/// `expires_at`), [`Rejection::Exhausted`], [`Rejection::NoCredits`].
pub fn check_redeemable(
    link: &Link,
    account: &Account,
    now: DateTime<Utc>,
) -> Result<(), Rejection> {
    check_start(link.status(now), account.available() >= 1)
}

/// Redeems `link`: consumes a use, holds one of `account`'s credits and starts a session.
///
/// `account` must be the link's owner; stores guarantee it. The session records `reference`
/// (a personal URL's recipient) unless the link was redacted.
///
/// # Errors
///
/// See [`check_redeemable`]; on a rejection nothing changes.
pub fn redeem(
    link: &mut Link,
    account: &mut Account,
    session: SessionId,
    reference: Option<Reference>,
    ttl: SessionTtl,
    now: DateTime<Utc>,
) -> Result<Effects<Session>, Rejection> {
    debug_assert_eq!(link.account, account.id);
    check_redeemable(link, account, now)?;
    link.uses += 1;
    account.held += 1;
    let value = Session {
        id: session,
        account: account.id,
        link: link.id,
        number: link.uses,
        flow: link.flow,
        language: link.language.clone(),
        status: SessionStatus::Started,
        started_at: now,
        expires_at: now
            .checked_add_signed(ttl.duration())
            .unwrap_or(DateTime::<Utc>::MAX_UTC),
        decision: None,
        reviewed_at: None,
        // A redacted link records no reference, even from a personal URL.
        reference: reference.filter(|_| link.redacted_at.is_none()),
        redacted_at: None,
    };
    let mut events = vec![EventKind::LinkRedeemed {
        link: link.id,
        session,
    }];
    if link.remaining() == Some(0) {
        events.push(EventKind::LinkExhausted { link: link.id });
    }
    Ok(Effects {
        events,
        ledger: Some(ledger(account, LedgerKind::Hold { session }, 1, now)),
        value,
    })
}

/// Completes a started session with `outcome`, billing its held credit.
///
/// Idempotent: completing again with the same outcome returns the session unchanged and bills
/// nothing.
///
/// # Errors
///
/// [`Rejection::OutcomeConflict`] if it was completed with another outcome,
/// [`Rejection::SessionAbandoned`] if it was abandoned, [`Rejection::SessionExpired`] if it is
/// still open but past its time to live.
pub fn complete(
    session: &mut Session,
    account: &mut Account,
    outcome: Outcome,
    now: DateTime<Utc>,
) -> Result<Effects<Session>, Rejection> {
    debug_assert_eq!(session.account, account.id);
    match session.status {
        SessionStatus::Completed { outcome: done, .. } if done == outcome => {
            Ok(Effects::unchanged(session.clone()))
        }
        SessionStatus::Completed { .. } => Err(Rejection::OutcomeConflict),
        SessionStatus::Abandoned { .. } => Err(Rejection::SessionAbandoned),
        SessionStatus::Started if session.is_stale(now) => Err(Rejection::SessionExpired),
        SessionStatus::Started => {
            session.status = SessionStatus::Completed { outcome, at: now };
            account.held -= 1;
            account.balance -= 1;
            Ok(Effects {
                events: vec![EventKind::SessionCompleted {
                    link: session.link,
                    session: session.id,
                    outcome,
                }],
                ledger: Some(ledger(
                    account,
                    LedgerKind::Capture {
                        session: session.id,
                    },
                    1,
                    now,
                )),
                value: session.clone(),
            })
        }
    }
}

/// Whether `decision` can be a review's decision: [`Outcome::Approved`] or
/// [`Outcome::Denied`]. Stores check it before any lookup.
///
/// # Errors
///
/// [`InvalidInput::InvalidDecision`] for [`Outcome::NeedsReview`].
pub fn check_decision(decision: Outcome) -> Result<(), InvalidInput> {
    match decision {
        Outcome::Approved | Outcome::Denied => Ok(()),
        Outcome::NeedsReview => Err(InvalidInput::InvalidDecision),
    }
}

/// Records the owner's final `decision` on a session that completed with
/// [`Outcome::NeedsReview`], and `session.reviewed`. Bills nothing and moves no credit: the
/// credit was captured at completion. The outcome at completion stays as it was.
///
/// Idempotent: reviewing again with the same decision returns the session unchanged, with no
/// event.
///
/// # Errors
///
/// [`InvalidInput::InvalidDecision`] for a decision of `NeedsReview`;
/// [`Rejection::NotUnderReview`] if the session is open, abandoned, or completed with another
/// outcome; [`Rejection::ReviewConflict`] if it was reviewed with the other decision.
pub fn review(
    session: &mut Session,
    decision: Outcome,
    now: DateTime<Utc>,
) -> Result<Effects<Session>, Error> {
    check_decision(decision)?;
    let needs_review = matches!(
        session.status,
        SessionStatus::Completed {
            outcome: Outcome::NeedsReview,
            ..
        }
    );
    match session.decision {
        _ if !needs_review => Err(Rejection::NotUnderReview.into()),
        Some(done) if done == decision => Ok(Effects::unchanged(session.clone())),
        Some(_) => Err(Rejection::ReviewConflict.into()),
        None => {
            session.decision = Some(decision);
            session.reviewed_at = Some(now);
            Ok(Effects {
                events: vec![EventKind::SessionReviewed {
                    link: session.link,
                    session: session.id,
                    decision,
                }],
                ledger: None,
                value: session.clone(),
            })
        }
    }
}

/// Abandons a started session, releasing its held credit. The use it consumed stays consumed.
/// A session abandoned at or after its time to live is abandoned as
/// [`Expired`](AbandonReason::Expired), whatever `reason` says.
///
/// Idempotent: abandoning an abandoned session returns it unchanged.
///
/// # Errors
///
/// [`Rejection::SessionCompleted`] if it was completed.
pub fn abandon(
    session: &mut Session,
    account: &mut Account,
    reason: AbandonReason,
    now: DateTime<Utc>,
) -> Result<Effects<Session>, Rejection> {
    debug_assert_eq!(session.account, account.id);
    match session.status {
        SessionStatus::Abandoned { .. } => Ok(Effects::unchanged(session.clone())),
        SessionStatus::Completed { .. } => Err(Rejection::SessionCompleted),
        SessionStatus::Started => {
            let reason = if session.is_stale(now) {
                AbandonReason::Expired
            } else {
                reason
            };
            session.status = SessionStatus::Abandoned { reason, at: now };
            account.held -= 1;
            Ok(Effects {
                events: vec![EventKind::SessionAbandoned {
                    link: session.link,
                    session: session.id,
                    reason,
                }],
                ledger: Some(ledger(
                    account,
                    LedgerKind::Release {
                        session: session.id,
                    },
                    1,
                    now,
                )),
                value: session.clone(),
            })
        }
    }
}

/// What a start key's last session on a link means for a new start with that key (see
/// [`start`](crate::start)).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyedStart {
    /// The session is open at `now`: return it, change nothing.
    Resume,
    /// The session is started but past its time to live: abandon it as expired
    /// ([`expire`]) in the same step, then redeem.
    ExpireThenRedeem,
    /// The session has ended: redeem as without a key.
    Redeem,
}

/// Decides a keyed start from the key's last session on the link.
pub fn keyed_start(session: &Session, now: DateTime<Utc>) -> KeyedStart {
    if session.is_stale(now) {
        KeyedStart::ExpireThenRedeem
    } else if session.is_open() {
        KeyedStart::Resume
    } else {
        KeyedStart::Redeem
    }
}

/// Whether `session` is open at `now`: started and within its time to live.
///
/// # Errors
///
/// [`Rejection::SessionCompleted`], [`Rejection::SessionAbandoned`] or
/// [`Rejection::SessionExpired`].
pub fn check_open(session: &Session, now: DateTime<Utc>) -> Result<(), Rejection> {
    match session.status {
        SessionStatus::Completed { .. } => Err(Rejection::SessionCompleted),
        SessionStatus::Abandoned { .. } => Err(Rejection::SessionAbandoned),
        SessionStatus::Started if now >= session.expires_at => Err(Rejection::SessionExpired),
        SessionStatus::Started => Ok(()),
    }
}

/// Whether a hand-off of `session` that expires at `expires_at` and was `used` or not could be
/// accepted at `now`: the checks of [`accept_handoff`], in its order, changing nothing (for a
/// page that shows the refusal before anyone presses "Continue").
///
/// # Errors
///
/// As [`accept_handoff`].
pub fn check_handoff(
    used: bool,
    expires_at: DateTime<Utc>,
    session: &Session,
    now: DateTime<Utc>,
) -> Result<(), crate::Error> {
    if used {
        return Err(Rejection::HandoffUsed.into());
    }
    if now >= expires_at {
        return Err(crate::tokens::TokenError::Expired.into());
    }
    check_open(session, now)?;
    Ok(())
}

/// Accepts a hand-off of `session` that expires at `expires_at` and was `used` or not: marks it
/// used and returns `session.handed_off`. Checks, in this order: single use, the hand-off's
/// expiry, then that the session is open ([`check_open`]). On an error nothing changes.
///
/// # Errors
///
/// [`Rejection::HandoffUsed`]; [`TokenError::Expired`](crate::tokens::TokenError::Expired);
/// the errors of [`check_open`].
pub fn accept_handoff(
    used: &mut bool,
    expires_at: DateTime<Utc>,
    session: &Session,
    now: DateTime<Utc>,
) -> Result<Effects<Session>, crate::Error> {
    check_handoff(*used, expires_at, session, now)?;
    *used = true;
    Ok(Effects {
        value: session.clone(),
        events: vec![EventKind::SessionHandedOff {
            link: session.link,
            session: session.id,
        }],
        ledger: None,
    })
}

/// Abandons `session` as expired if it is open and past its time to live; `None` otherwise.
pub fn expire(
    session: &mut Session,
    account: &mut Account,
    now: DateTime<Utc>,
) -> Option<Effects<Session>> {
    if session.is_stale(now) {
        abandon(session, account, AbandonReason::Expired, now).ok()
    } else {
        None
    }
}

/// Whether the expiry sweep reports `link` as expired at `now`: `link.expired`, once per link
/// (`reported`: the store already wrote it), only when it is past its expiry and was not
/// deactivated first. The link itself does not change; the store records that it reported it.
pub fn expire_link(link: &Link, reported: bool, now: DateTime<Utc>) -> Option<Effects<Link>> {
    (!reported && link.deactivated_at.is_none() && link.is_expired(now)).then(|| Effects {
        value: link.clone(),
        events: vec![EventKind::LinkExpired { link: link.id }],
        ledger: None,
    })
}

/// Deactivates `link` for good. Idempotent: a deactivated link is returned unchanged.
pub fn deactivate(link: &mut Link, now: DateTime<Utc>) -> Effects<Link> {
    if link.deactivated_at.is_some() {
        return Effects::unchanged(link.clone());
    }
    link.deactivated_at = Some(now);
    Effects {
        events: vec![EventKind::LinkDeactivated { link: link.id }],
        ledger: None,
        value: link.clone(),
    }
}

/// Erases the owner's labels of `link`: its reference and metadata, and marks it redacted at
/// `now`, with `link.redacted`. The store erases the references of its sessions
/// ([`erase_session_reference`]) and the labels of the stored events about it
/// ([`scrub_labels`]) in the same step; the event is appended after the erasure, so it
/// carries no labels. Later redemptions of the link record no reference ([`redeem`]).
///
/// Idempotent: a redacted link is returned unchanged, with no event.
pub fn redact_link(link: &mut Link, now: DateTime<Utc>) -> Effects<Link> {
    if link.redacted_at.is_some() {
        return Effects::unchanged(link.clone());
    }
    link.reference = None;
    link.metadata = Metadata::new();
    link.redacted_at = Some(now);
    Effects {
        events: vec![EventKind::LinkRedacted { link: link.id }],
        ledger: None,
        value: link.clone(),
    }
}

/// Erases the reference of a session of a link being redacted: a session that had one is
/// marked redacted at `now`, one without one is left as it was. Writes no event of its own
/// (the link's `link.redacted` covers it). Returns whether the session changed.
pub fn erase_session_reference(session: &mut Session, now: DateTime<Utc>) -> bool {
    if session.reference.take().is_some() {
        session.redacted_at = Some(now);
        true
    } else {
        false
    }
}

/// Erases the reference of `session` (a personal URL's recipient) and marks it redacted at
/// `now`, with `session.redacted`; its status, outcome and credits do not change. The store
/// scrubs the reference from the stored events about it ([`scrub_labels`]) in the same step.
///
/// Idempotent: a redacted session (also one whose link's redaction erased its reference) is
/// returned unchanged, with no event.
pub fn redact_session(session: &mut Session, now: DateTime<Utc>) -> Effects<Session> {
    if session.redacted_at.is_some() {
        return Effects::unchanged(session.clone());
    }
    session.reference = None;
    session.redacted_at = Some(now);
    Effects {
        events: vec![EventKind::SessionRedacted {
            link: session.link,
            session: session.id,
        }],
        ledger: None,
        value: session.clone(),
    }
}

/// What a redaction erased, for scrubbing stored copies of events ([`scrub_labels`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Redaction {
    /// A link's labels and its sessions' references ([`redact_link`]).
    Link(LinkId),
    /// A session's reference ([`redact_session`]).
    Session(SessionId),
}

/// Erases from a stored copy of `event` (in the outbox, or kept for its delivery) the labels
/// that `redaction` erased: for a link, every label of every event about it; for a session,
/// the session reference of the events about it. Returns whether the event changed.
pub fn scrub_labels(event: &mut Event, redaction: Redaction) -> bool {
    let labels = &mut event.labels;
    match redaction {
        Redaction::Link(link) if event.kind.link() == Some(link) => {
            let changed = !labels.is_empty();
            *labels = crate::Labels::default();
            changed
        }
        Redaction::Session(session) if event.kind.session() == Some(session) => {
            labels.session_reference.take().is_some()
        }
        _ => false,
    }
}

/// The effects of storing a new link: the link as stored, with its times truncated to whole
/// microseconds (the precision every store keeps), and `link.created`.
///
/// # Errors
///
/// [`InvalidInput::UsesExceedLimit`] for a link with more uses than its limit; every store
/// refuses it alike.
pub fn create_link(link: &Link) -> Result<Effects<Link>, InvalidInput> {
    if link.limit.max_uses().is_some_and(|max| link.uses > max) {
        return Err(InvalidInput::UsesExceedLimit);
    }
    let mut value = link.clone();
    value.created_at = truncate_to_micros(value.created_at);
    value.expires_at = value.expires_at.map(truncate_to_micros);
    value.deactivated_at = value.deactivated_at.map(truncate_to_micros);
    Ok(Effects {
        events: vec![EventKind::LinkCreated { link: link.id }],
        value,
        ledger: None,
    })
}

/// A new account as stored: its creation time truncated to whole microseconds. It emits no
/// event.
///
/// # Errors
///
/// [`InvalidInput::HeldExceedsBalance`] for an account holding more credits than its balance;
/// every store refuses it alike.
pub fn create_account(account: &Account) -> Result<Account, InvalidInput> {
    if account.held > account.balance {
        return Err(InvalidInput::HeldExceedsBalance);
    }
    let mut value = account.clone();
    value.created_at = truncate_to_micros(value.created_at);
    Ok(value)
}

/// Adds `amount` credits to `account`.
///
/// `previous` is the amount of an earlier top-up with the same key, if the store has one: a
/// repeat with the same amount changes nothing.
///
/// # Errors
///
/// [`InvalidInput::ZeroAmount`], [`InvalidInput::Overflow`], or
/// [`Rejection::IdempotencyConflict`] when `previous` differs from `amount`.
pub fn top_up(
    account: &mut Account,
    amount: u64,
    key: &IdempotencyKey,
    previous: Option<u64>,
    now: DateTime<Utc>,
) -> Result<Effects<Account>, Error> {
    match previous {
        Some(earlier) if earlier == amount => return Ok(Effects::unchanged(account.clone())),
        Some(_) => return Err(Rejection::IdempotencyConflict.into()),
        None => {}
    }
    if amount == 0 {
        return Err(InvalidInput::ZeroAmount.into());
    }
    account.balance = account
        .balance
        .checked_add(amount)
        .ok_or(InvalidInput::Overflow)?;
    Ok(Effects {
        events: vec![EventKind::CreditsAdded {
            amount,
            balance: account.balance,
        }],
        ledger: Some(ledger(
            account,
            LedgerKind::TopUp { key: key.clone() },
            amount,
            now,
        )),
        value: account.clone(),
    })
}

fn ledger(account: &Account, kind: LedgerKind, amount: u64, at: DateTime<Utc>) -> LedgerEntry {
    LedgerEntry {
        account: account.id,
        kind,
        amount,
        at,
    }
}

/// Whether `session` may be pruned by a prune with cutoff `before`
/// ([`LinkStore::prune`](crate::store::LinkStore::prune)): it finished before `before`,
/// completed or abandoned, and a session that completed needing review also has its
/// decision, recorded before `before`. Open sessions are never pruned, nor are sessions still
/// waiting for their review.
pub fn prunable_session(session: &Session, before: DateTime<Utc>) -> bool {
    match session.status {
        SessionStatus::Started => false,
        SessionStatus::Abandoned { at, .. } => at < before,
        SessionStatus::Completed { outcome, at } => {
            at < before
                && (outcome != Outcome::NeedsReview
                    || session
                        .reviewed_at
                        .is_some_and(|reviewed| reviewed < before))
        }
    }
}

/// Whether a hand-off that expires at `expires_at` may be pruned with cutoff `before`: it
/// expired before `before` (used or not: either way it can no longer be accepted). A store
/// also removes the hand-offs of the sessions it prunes.
pub fn prunable_handoff(expires_at: DateTime<Utc>, before: DateTime<Utc>) -> bool {
    expires_at < before
}

/// Whether a webhook delivery in `status` may be pruned with cutoff `before`: delivered or
/// failed before `before`. Pending deliveries (leased or not) are never pruned.
pub fn prunable_delivery(status: &crate::webhooks::DeliveryStatus, before: DateTime<Utc>) -> bool {
    use crate::webhooks::DeliveryStatus;
    match *status {
        DeliveryStatus::Pending { .. } => false,
        DeliveryStatus::Delivered { at } | DeliveryStatus::Failed { at, .. } => at < before,
    }
}

/// Whether an outbox event written at `at` with sequence number `seq` may be pruned with
/// cutoff `before`, given the store's delivery cursor `queued_up_to` (the last `seq`
/// [queued](crate::store::WebhookStore::queue_deliveries)) and the status of the event's
/// delivery record, if one is left (after the prune's deliveries were removed).
///
/// It must be older than `before` and already queued (an event not yet queued is never
/// pruned: its delivery would be lost), and must have no delivery that may still need it: none
/// at all (the account had no endpoint for it, or the record was pruned) or one that was
/// delivered. A pending delivery (leased or not) needs its event; so does a failed one, which
/// its owner may [re-queue](crate::store::WebhookStore::requeue), until the failed record is
/// itself pruned.
pub fn prunable_event(
    at: DateTime<Utc>,
    seq: u64,
    queued_up_to: u64,
    delivery: Option<&crate::webhooks::DeliveryStatus>,
    before: DateTime<Utc>,
) -> bool {
    use crate::webhooks::DeliveryStatus;
    at < before
        && seq <= queued_up_to
        && matches!(delivery, None | Some(DeliveryStatus::Delivered { .. }))
}
