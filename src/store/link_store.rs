//! The [`LinkStore`] trait: the atomic operations on links, sessions, accounts and the outbox.

use std::future::Future;

use chrono::{DateTime, Utc};

use crate::funnel::{ViewChange, ViewCounts};
use crate::returns::{ReturnSecret, ReturnSecrets};
use crate::start::{HandoffId, StartKeyHash};
use crate::{
    Account, AccountId, AccountProfile, Error, Event, IdempotencyKey, LedgerEntry, Link, LinkId,
    LinkStats, Outcome, Page, Paged, Pruned, Reference, Session, SessionId, SessionTtl,
};

/// The most objects [`LinkStore::links_by_reference`] and
/// [`LinkStore::sessions_by_reference`] return: a reference names one customer or order, not
/// a crowd.
pub const MAX_BY_REFERENCE: usize = 1000;

/// Storage for links, sessions, accounts and the outbox.
///
/// Every operation is atomic and keeps the rules of [`rules`](crate::rules) under any
/// concurrency. Operations on an owner's objects take the owner's [`AccountId`] and answer
/// [`Rejection::NotFound`](crate::Rejection::NotFound) for another account's objects, exactly
/// as for unknown ids. [`redeem`](Self::redeem) and [`inspect`](Self::inspect) take only a link
/// id: a verified link token is the capability to use a link.
///
/// Each state change appends exactly one [`Event`] to the outbox in the same atomic step;
/// idempotent repeats append none.
///
/// The conformance suite (`magic_link::conformance`, feature `test-util`) checks all of this
/// for any implementation.
///
/// # Implementing a store
///
/// A store that wraps another, here to count redemptions, implements every method; a store of
/// your own would apply the [`rules`](crate::rules) inside its own transactions in the same
/// places.
///
/// ```
/// use std::sync::atomic::{AtomicU64, Ordering};
/// use chrono::{DateTime, Utc};
/// use magic_link::clock::Clock;
/// use magic_link::start::{HandoffId, Start, StartKeyHash};
/// use magic_link::store::{LinkStore, MemoryStore};
/// use magic_link::tokens::Keyring;
/// use magic_link::*;
///
/// #[derive(Debug, Default)]
/// struct Counting<S> {
///     inner: S,
///     redemptions: AtomicU64,
/// }
///
/// impl<S: LinkStore> LinkStore for Counting<S> {
///     async fn create_account(&self, account: Account) -> Result<Account, Error> {
///         self.inner.create_account(account).await
///     }
///     async fn insert_link(&self, link: Link) -> Result<Link, Error> {
///         self.inner.insert_link(link).await
///     }
///     async fn redeem(
///         &self,
///         link: LinkId,
///         session: SessionId,
///         key: Option<StartKeyHash>,
///         reference: Option<Reference>,
///         ttl: SessionTtl,
///         now: DateTime<Utc>,
///     ) -> Result<Session, Error> {
///         let started = self.inner.redeem(link, session, key, reference, ttl, now).await?;
///         if started.id == session {
///             // Not a resumed start.
///             self.redemptions.fetch_add(1, Ordering::Relaxed);
///         }
///         Ok(started)
///     }
///     async fn started_session(
///         &self,
///         link: LinkId,
///         key: StartKeyHash,
///         now: DateTime<Utc>,
///     ) -> Result<Option<Session>, Error> {
///         self.inner.started_session(link, key, now).await
///     }
///     async fn create_handoff(
///         &self,
///         account: AccountId,
///         session: SessionId,
///         handoff: HandoffId,
///         expires_at: DateTime<Utc>,
///         now: DateTime<Utc>,
///     ) -> Result<Session, Error> {
///         self.inner.create_handoff(account, session, handoff, expires_at, now).await
///     }
///     async fn accept_handoff(&self, handoff: HandoffId, now: DateTime<Utc>) -> Result<Session, Error> {
///         self.inner.accept_handoff(handoff, now).await
///     }
///     async fn check_handoff(&self, handoff: HandoffId, now: DateTime<Utc>) -> Result<Session, Error> {
///         self.inner.check_handoff(handoff, now).await
///     }
///     async fn complete(
///         &self,
///         account: AccountId,
///         session: SessionId,
///         outcome: Outcome,
///         now: DateTime<Utc>,
///     ) -> Result<Session, Error> {
///         self.inner.complete(account, session, outcome, now).await
///     }
///     async fn review(
///         &self,
///         account: AccountId,
///         session: SessionId,
///         decision: Outcome,
///         now: DateTime<Utc>,
///     ) -> Result<Session, Error> {
///         self.inner.review(account, session, decision, now).await
///     }
///     async fn abandon(
///         &self,
///         account: AccountId,
///         session: SessionId,
///         now: DateTime<Utc>,
///     ) -> Result<Session, Error> {
///         self.inner.abandon(account, session, now).await
///     }
///     async fn expire_sessions(&self, now: DateTime<Utc>, limit: usize) -> Result<usize, Error> {
///         self.inner.expire_sessions(now, limit).await
///     }
///     async fn expire_links(&self, now: DateTime<Utc>, limit: usize) -> Result<usize, Error> {
///         self.inner.expire_links(now, limit).await
///     }
///     async fn prune(&self, before: DateTime<Utc>, limit: usize) -> Result<Pruned, Error> {
///         self.inner.prune(before, limit).await
///     }
///     async fn deactivate(
///         &self,
///         account: AccountId,
///         link: LinkId,
///         now: DateTime<Utc>,
///     ) -> Result<Link, Error> {
///         self.inner.deactivate(account, link, now).await
///     }
///     async fn redact_link(
///         &self,
///         account: AccountId,
///         link: LinkId,
///         now: DateTime<Utc>,
///     ) -> Result<Link, Error> {
///         self.inner.redact_link(account, link, now).await
///     }
///     async fn redact_session(
///         &self,
///         account: AccountId,
///         session: SessionId,
///         now: DateTime<Utc>,
///     ) -> Result<Session, Error> {
///         self.inner.redact_session(account, session, now).await
///     }
///     async fn top_up(
///         &self,
///         account: AccountId,
///         amount: u64,
///         key: IdempotencyKey,
///         now: DateTime<Utc>,
///     ) -> Result<Account, Error> {
///         self.inner.top_up(account, amount, key, now).await
///     }
///     async fn inspect(&self, link: LinkId) -> Result<(Link, Account), Error> {
///         self.inner.inspect(link).await
///     }
///     async fn set_profile(&self, account: AccountId, profile: AccountProfile) -> Result<Account, Error> {
///         self.inner.set_profile(account, profile).await
///     }
///     async fn return_secrets(
///         &self,
///         account: AccountId,
///     ) -> Result<Option<magic_link::returns::ReturnSecrets>, Error> {
///         self.inner.return_secrets(account).await
///     }
///     async fn rotate_return_secret(
///         &self,
///         account: AccountId,
///         secret: magic_link::returns::ReturnSecret,
///     ) -> Result<(), Error> {
///         self.inner.rotate_return_secret(account, secret).await
///     }
///     async fn record_view(
///         &self,
///         link: LinkId,
///         change: magic_link::funnel::ViewChange,
///     ) -> Result<magic_link::funnel::ViewCounts, Error> {
///         self.inner.record_view(link, change).await
///     }
///     async fn link(&self, account: AccountId, link: LinkId) -> Result<Link, Error> {
///         self.inner.link(account, link).await
///     }
///     async fn links(&self, account: AccountId, page: Page) -> Result<Paged<Link>, Error> {
///         self.inner.links(account, page).await
///     }
///     async fn links_by_reference(
///         &self,
///         account: AccountId,
///         reference: &Reference,
///     ) -> Result<Vec<Link>, Error> {
///         self.inner.links_by_reference(account, reference).await
///     }
///     async fn sessions_by_reference(
///         &self,
///         account: AccountId,
///         reference: &Reference,
///     ) -> Result<Vec<Session>, Error> {
///         self.inner.sessions_by_reference(account, reference).await
///     }
///     async fn session(&self, account: AccountId, session: SessionId) -> Result<Session, Error> {
///         self.inner.session(account, session).await
///     }
///     async fn sessions(
///         &self,
///         account: AccountId,
///         link: LinkId,
///         page: Page,
///     ) -> Result<Paged<Session>, Error> {
///         self.inner.sessions(account, link, page).await
///     }
///     async fn stats(&self, account: AccountId, link: LinkId) -> Result<LinkStats, Error> {
///         self.inner.stats(account, link).await
///     }
///     async fn account(&self, account: AccountId) -> Result<Account, Error> {
///         self.inner.account(account).await
///     }
///     async fn ledger(&self, account: AccountId, page: Page) -> Result<Paged<LedgerEntry>, Error> {
///         self.inner.ledger(account, page).await
///     }
///     async fn outbox_after(&self, cursor: u64, limit: usize) -> Result<Vec<Event>, Error> {
///         self.inner.outbox_after(cursor, limit).await
///     }
/// }
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let keyring = Keyring::generate().unwrap();
/// let base = "https://verify.example.com/l/".parse().unwrap();
/// let links = MagicLinks::new(Counting::<MemoryStore>::default(), keyring, base);
/// let account = links.create_account(AccountId::new()).await.unwrap();
/// links.top_up(account.id, 1, IdempotencyKey::new("first").unwrap()).await.unwrap();
/// let created = links.create_link(account.id, NewLink::new("Demo", Flow::Selfie)).await.unwrap();
/// links.redeem(&created.token, Start::new()).await.unwrap();
/// assert_eq!(links.store().redemptions.load(Ordering::Relaxed), 1);
/// # }
/// ```
pub trait LinkStore: Send + Sync {
    /// Creates an account with the given id, balance and holds.
    ///
    /// # Errors
    ///
    /// [`Error::AlreadyExists`] if the id is taken.
    fn create_account(
        &self,
        account: Account,
    ) -> impl Future<Output = Result<Account, Error>> + Send;

    /// Stores a new link (built by [`Link::new`]) and appends `link.created`.
    ///
    /// # Errors
    ///
    /// [`Error::AlreadyExists`] if the id is taken; `NotFound` if its account does not exist.
    fn insert_link(&self, link: Link) -> impl Future<Output = Result<Link, Error>> + Send;

    /// Redeems a link in one atomic step: checks it with [`rules::redeem`](crate::rules::redeem)
    /// against its owner's credits, consumes a use, holds a credit, stores the new session with
    /// id `session` and appends `link.redeemed`.
    ///
    /// With a start key (its hash, `key`), under the same lock of the link: if a session that
    /// this key started on this link is open at `now` (started and before its `expires_at`),
    /// returns that session and changes nothing (no use, no hold, no event; the returned id is
    /// not `session`, which is how a caller tells a resumed start). If the key's session is
    /// started but stale, it is abandoned as expired (with its `session.abandoned`) in the same
    /// step, before the new session is started with the key. Completed and abandoned sessions
    /// of the key are ignored. The store keeps the hash with the session.
    ///
    /// The new session records `reference` (a personal URL's recipient) unless the link was
    /// redacted; a resumed session keeps its own.
    ///
    /// # Errors
    ///
    /// A [`Rejection`](crate::Rejection) (`NotFound`, `Deactivated`, `Expired`, `Exhausted`,
    /// `NoCredits`) that changed nothing; [`Error::AlreadyExists`] if the session id is taken.
    fn redeem(
        &self,
        link: LinkId,
        session: SessionId,
        key: Option<StartKeyHash>,
        reference: Option<Reference>,
        ttl: SessionTtl,
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<Session, Error>> + Send;

    /// The open session (started, and before its `expires_at` at `now`) that start key `key`
    /// started on `link`, if any, for a landing page's "Continue your verification". Any
    /// caller holding a valid link token may do this; it changes nothing.
    ///
    /// # Errors
    ///
    /// Only backend failures (an unknown link has no session: `Ok(None)`).
    fn started_session(
        &self,
        link: LinkId,
        key: StartKeyHash,
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<Option<Session>, Error>> + Send;

    /// Records a hand-off of session `session` of `account`: `handoff` may be accepted once,
    /// before `expires_at`, while the session is open. Changes nothing else and writes no
    /// event.
    ///
    /// # Errors
    ///
    /// `NotFound`; `SessionCompleted`, `SessionAbandoned` or `SessionExpired` (at `now`) for
    /// a session that is not open; [`Error::AlreadyExists`] if the hand-off id is taken.
    fn create_handoff(
        &self,
        account: AccountId,
        session: SessionId,
        handoff: HandoffId,
        expires_at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<Session, Error>> + Send;

    /// Accepts a hand-off in one atomic step: checks that it exists, was not used, has not
    /// expired at `now` and that its session is open at `now`; marks it used and appends
    /// `session.handed_off`. Returns the session. Of concurrent accepts of one hand-off,
    /// exactly one succeeds.
    ///
    /// # Errors
    ///
    /// `NotFound`; `HandoffUsed`; `SessionCompleted`, `SessionAbandoned` or
    /// `SessionExpired`; [`TokenError::Expired`](crate::tokens::TokenError::Expired) (as
    /// [`Error::InvalidToken`]) for a hand-off past its expiry. Nothing changes on an error.
    fn accept_handoff(
        &self,
        handoff: HandoffId,
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<Session, Error>> + Send;

    /// Checks, without changing anything or writing an event, whether a hand-off could be
    /// accepted at `now` (see [`rules::check_handoff`](crate::rules::check_handoff)); returns
    /// its session. For the page a hand-off URL opens, which must not consume it (scanners
    /// open links too) but should show a used or expired hand-off as refused at once.
    ///
    /// # Errors
    ///
    /// As [`accept_handoff`](Self::accept_handoff).
    fn check_handoff(
        &self,
        handoff: HandoffId,
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<Session, Error>> + Send;

    /// Completes a session of `account` (see [`rules::complete`](crate::rules::complete)).
    ///
    /// # Errors
    ///
    /// `NotFound`, `OutcomeConflict`, `SessionAbandoned` or `SessionExpired`.
    fn complete(
        &self,
        account: AccountId,
        session: SessionId,
        outcome: Outcome,
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<Session, Error>> + Send;

    /// Records the owner's final decision on a session of `account` that completed with
    /// [`Outcome::NeedsReview`] and appends `session.reviewed`, atomically (see
    /// [`rules::review`](crate::rules::review)). No credit moves and no ledger entry is
    /// written. A repeat with the same decision returns the session and appends nothing; under
    /// concurrent reviews exactly one decision wins.
    ///
    /// # Errors
    ///
    /// [`InvalidInput::InvalidDecision`](crate::InvalidInput::InvalidDecision) for
    /// `NeedsReview` (before any lookup); `NotFound`, `NotUnderReview` or `ReviewConflict`.
    fn review(
        &self,
        account: AccountId,
        session: SessionId,
        decision: Outcome,
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<Session, Error>> + Send;

    /// Abandons a session of `account` (see [`rules::abandon`](crate::rules::abandon)).
    ///
    /// # Errors
    ///
    /// `NotFound` or `SessionCompleted`.
    fn abandon(
        &self,
        account: AccountId,
        session: SessionId,
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<Session, Error>> + Send;

    /// Abandons, as expired, up to `limit` started sessions (of any account) whose time to live
    /// has passed at `now`, each atomically with its event, in order of `expires_at` then
    /// session id. Returns how many it abandoned.
    ///
    /// # Errors
    ///
    /// Only backend failures.
    fn expire_sessions(
        &self,
        now: DateTime<Utc>,
        limit: usize,
    ) -> impl Future<Output = Result<usize, Error>> + Send;

    /// Writes `link.expired` for up to `limit` links (of any account) that are past their
    /// expiry at `now`, not deactivated and not reported before (see
    /// [`rules::expire_link`](crate::rules::expire_link)), each atomically with its event, in
    /// order of `expires_at` then link id. Returns how many it reported. A link is reported
    /// once, however often the sweep runs.
    ///
    /// # Errors
    ///
    /// Only backend failures.
    fn expire_links(
        &self,
        now: DateTime<Utc>,
        limit: usize,
    ) -> impl Future<Output = Result<usize, Error>> + Send;

    /// Removes old records of every account, each at most `limit` per kind in one call, and
    /// returns how many of each it removed (see [`Pruned`]); a caller repeats while any count
    /// is `limit` ([`MagicLinks::prune`](crate::MagicLinks::prune) does). It removes, with
    /// cutoff `before`:
    ///
    /// - webhook delivery records delivered or failed before `before` (never pending ones,
    ///   leased or not; see [`rules::prunable_delivery`](crate::rules::prunable_delivery)),
    ///   for a store that is also a [`WebhookStore`](crate::store::WebhookStore);
    /// - outbox events written before `before` that were already queued for delivery and
    ///   have no delivery left that may need them (none, or a delivered one; see
    ///   [`rules::prunable_event`](crate::rules::prunable_event)). An event not yet queued
    ///   is never removed. [`outbox_after`](Self::outbox_after) keeps working: it returns the
    ///   remaining events after a cursor, with their own `seq`;
    /// - sessions that finished before `before` (see
    ///   [`rules::prunable_session`](crate::rules::prunable_session): never an open one,
    ///   never one waiting for its review), with their start keys, and the hand-offs of those
    ///   sessions;
    /// - hand-offs that expired before `before`.
    ///
    /// Statistics stay exact: what a pruned session counted in [`stats`](Self::stats) is kept
    /// per link (a [`PrunedTally`](crate::PrunedTally): counts and times to complete, nothing
    /// personal), in the same step as its removal. The remaining sessions keep their
    /// [`number`](Session::number)s, and [`sessions`](Self::sessions) pages over them by
    /// number. Links, accounts and the ledger are never pruned. Each removal is atomic; a
    /// prune changes nothing else and writes no event.
    ///
    /// # Errors
    ///
    /// Only backend failures.
    fn prune(
        &self,
        before: DateTime<Utc>,
        limit: usize,
    ) -> impl Future<Output = Result<Pruned, Error>> + Send;

    /// Deactivates a link of `account` for good (idempotent).
    ///
    /// # Errors
    ///
    /// `NotFound`.
    fn deactivate(
        &self,
        account: AccountId,
        link: LinkId,
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<Link, Error>> + Send;

    /// Erases the owner's labels of a link of `account` (see
    /// [`rules::redact_link`](crate::rules::redact_link)) in one atomic step: the link's
    /// reference and metadata, the reference of each of its sessions (which get their
    /// `redacted_at` if they had one), and these labels in every stored outbox event about the
    /// link and in the delivery records of those events, so no later delivery or retry sends
    /// them. Appends `link.redacted` (with no labels) the first time; a repeat returns the
    /// link and appends nothing. Ids, counters, outcomes, statistics and the ledger do not
    /// change; later redemptions of the link record no reference.
    ///
    /// # Errors
    ///
    /// `NotFound`.
    fn redact_link(
        &self,
        account: AccountId,
        link: LinkId,
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<Link, Error>> + Send;

    /// Erases the reference of a session of `account` (see
    /// [`rules::redact_session`](crate::rules::redact_session)) in one atomic step, with the
    /// session's reference in every stored outbox event about it and in the delivery records
    /// of those events. Appends `session.redacted` the first time (it carries its link's
    /// labels, not the session's); a repeat (also after its link's redaction erased a
    /// reference) returns the session and appends nothing. Nothing else changes.
    ///
    /// # Errors
    ///
    /// `NotFound`.
    fn redact_session(
        &self,
        account: AccountId,
        session: SessionId,
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<Session, Error>> + Send;

    /// Adds credits to `account`; a repeat with the same key and amount adds nothing.
    ///
    /// # Errors
    ///
    /// `NotFound`, `IdempotencyConflict`, or invalid input (zero, overflow).
    fn top_up(
        &self,
        account: AccountId,
        amount: u64,
        key: IdempotencyKey,
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<Account, Error>> + Send;

    /// Reads a link for a landing page, with its owner (whose available credit says whether
    /// it can start, and whose profile what the page shows), in one read. Any caller holding
    /// a valid link token may do this; it changes nothing.
    ///
    /// # Errors
    ///
    /// `NotFound`.
    fn inspect(&self, link: LinkId) -> impl Future<Output = Result<(Link, Account), Error>> + Send;

    /// Sets `account`'s profile (validated by [`AccountProfile::validate`]) and returns the
    /// account. Changes no link or session and writes no event.
    ///
    /// # Errors
    ///
    /// `NotFound`.
    fn set_profile(
        &self,
        account: AccountId,
        profile: AccountProfile,
    ) -> impl Future<Output = Result<Account, Error>> + Send;

    /// The secrets that sign `account`'s return URLs, `None` before the first
    /// [`rotate_return_secret`](Self::rotate_return_secret).
    ///
    /// # Errors
    ///
    /// `NotFound`.
    fn return_secrets(
        &self,
        account: AccountId,
    ) -> impl Future<Output = Result<Option<ReturnSecrets>, Error>> + Send;

    /// Makes `secret` the current return secret of `account`, atomically keeping the current
    /// one as the previous (two at once, for rotation) and dropping the older.
    ///
    /// # Errors
    ///
    /// `NotFound`.
    fn rotate_return_secret(
        &self,
        account: AccountId,
        secret: ReturnSecret,
    ) -> impl Future<Output = Result<(), Error>> + Send;

    /// Counts a landing-page view of a link, or confirms one as human (see
    /// [`ViewCounts::apply`], the rule), and returns the link's view counts after it. Like
    /// [`inspect`](Self::inspect) it takes only a link id: a verified link token is the
    /// capability. A view changes no link, session, account, ledger entry or outbox event;
    /// it is atomic per link and never waits on redemptions of other links.
    ///
    /// # Errors
    ///
    /// `NotFound`.
    fn record_view(
        &self,
        link: LinkId,
        change: ViewChange,
    ) -> impl Future<Output = Result<ViewCounts, Error>> + Send;

    /// Reads a link of `account`.
    ///
    /// # Errors
    ///
    /// `NotFound`.
    fn link(
        &self,
        account: AccountId,
        link: LinkId,
    ) -> impl Future<Output = Result<Link, Error>> + Send;

    /// Lists `account`'s links, oldest first.
    ///
    /// # Errors
    ///
    /// `NotFound` for an unknown account.
    fn links(
        &self,
        account: AccountId,
        page: Page,
    ) -> impl Future<Output = Result<Paged<Link>, Error>> + Send;

    /// The links of `account` whose reference is `reference`, oldest first, at most
    /// [`MAX_BY_REFERENCE`]. Indexed in `PostgresStore`.
    ///
    /// # Errors
    ///
    /// Only backend failures (an unknown account has none).
    fn links_by_reference(
        &self,
        account: AccountId,
        reference: &Reference,
    ) -> impl Future<Output = Result<Vec<Link>, Error>> + Send;

    /// The sessions of `account` that recorded `reference` (started from personal URLs of
    /// its links), in order of start then id, at most [`MAX_BY_REFERENCE`]. Indexed in
    /// `PostgresStore`.
    ///
    /// # Errors
    ///
    /// Only backend failures (an unknown account has none).
    fn sessions_by_reference(
        &self,
        account: AccountId,
        reference: &Reference,
    ) -> impl Future<Output = Result<Vec<Session>, Error>> + Send;

    /// Reads a session of `account`.
    ///
    /// # Errors
    ///
    /// `NotFound`.
    fn session(
        &self,
        account: AccountId,
        session: SessionId,
    ) -> impl Future<Output = Result<Session, Error>> + Send;

    /// Lists a link's sessions in redemption order; the cursor is the session
    /// [`number`](Session::number): a page holds the sessions with a number above it (pruned
    /// sessions leave gaps), and its `next` is the last one's number.
    ///
    /// # Errors
    ///
    /// `NotFound`.
    fn sessions(
        &self,
        account: AccountId,
        link: LinkId,
        page: Page,
    ) -> impl Future<Output = Result<Paged<Session>, Error>> + Send;

    /// Per-link statistics.
    ///
    /// # Errors
    ///
    /// `NotFound`.
    fn stats(
        &self,
        account: AccountId,
        link: LinkId,
    ) -> impl Future<Output = Result<LinkStats, Error>> + Send;

    /// Reads an account.
    ///
    /// # Errors
    ///
    /// `NotFound`.
    fn account(&self, account: AccountId) -> impl Future<Output = Result<Account, Error>> + Send;

    /// Lists an account's ledger, oldest first; the cursor counts entries.
    ///
    /// # Errors
    ///
    /// `NotFound`.
    fn ledger(
        &self,
        account: AccountId,
        page: Page,
    ) -> impl Future<Output = Result<Paged<LedgerEntry>, Error>> + Send;

    /// Reads up to `limit` outbox events with `seq > cursor`, in `seq` order, with no gaps: an
    /// event not yet visible never has a smaller `seq` than one returned. A store may return
    /// fewer than `limit` (`MemoryStore` at most [`Page::MAX_LIMIT`]); an empty result means there is
    /// nothing after `cursor` yet.
    ///
    /// # Errors
    ///
    /// Only backend failures.
    fn outbox_after(
        &self,
        cursor: u64,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<Event>, Error>> + Send;
}
