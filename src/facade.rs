//! The facade a host service uses: a store, a clock and the settings, tied together.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::store::{LinkStats, LinkStore, Page, Paged};
use crate::{
    Account, AccountId, Clock, Error, Event, IdempotencyKey, Link, LinkId, LinkStatus, NewLink,
    Outcome, Rejection, Session, SessionId, SessionTtl, SystemClock,
};

/// What a landing page shows about a link. Inspecting consumes nothing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Inspection {
    /// The link.
    pub link: Link,
    /// Its status at the time of inspection.
    pub status: LinkStatus,
    /// Whether the owner had a credit available to start a session.
    pub credit_available: bool,
    /// When it was inspected.
    pub at: DateTime<Utc>,
}

impl Inspection {
    /// Whether a redemption would succeed now, or the rejection it would meet.
    ///
    /// # Errors
    ///
    /// `Deactivated`, `Expired`, `Exhausted` or `NoCredits`, in that order.
    pub fn can_start(&self) -> Result<(), Rejection> {
        match self.status {
            LinkStatus::Deactivated => Err(Rejection::Deactivated),
            LinkStatus::Expired => Err(Rejection::Expired),
            LinkStatus::Exhausted => Err(Rejection::Exhausted),
            LinkStatus::Active if !self.credit_available => Err(Rejection::NoCredits),
            LinkStatus::Active => Ok(()),
        }
    }
}

/// Magic Links for a host service: creates links, inspects and redeems them, completes and
/// abandons sessions, and reports.
///
/// Every method reads the time from the clock and passes it to the store, which applies the
/// [`rules`](crate::rules) atomically.
///
/// # Examples
///
/// ```
/// use magic_link::{AccountId, Flow, IdempotencyKey, MagicLinks, MemoryStore, NewLink, Outcome, UsageLimit};
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), magic_link::Error> {
/// let links = MagicLinks::new(MemoryStore::new());
/// let account = links.create_account(AccountId::new()).await?;
/// links.top_up(account.id, 10, IdempotencyKey::new("invoice-1")?).await?;
///
/// let spec = NewLink::new("Onboarding", Flow::DocumentAndSelfie).limit(UsageLimit::multi(3)?);
/// let link = links.create_link(account.id, spec).await?;
///
/// // A GET of the landing page (or an email scanner) only inspects.
/// assert!(links.inspect(link.id).await?.can_start().is_ok());
/// // The person presses "Start verification".
/// let session = links.redeem(link.id).await?;
/// links.complete_session(account.id, session.id, Outcome::Approved).await?;
/// assert_eq!(links.account(account.id).await?.balance, 9);
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct MagicLinks<S, C = SystemClock> {
    store: S,
    clock: C,
    session_ttl: SessionTtl,
}

impl<S: LinkStore> MagicLinks<S> {
    /// Magic Links over `store`, on the system clock, with sessions that expire after 24 hours.
    pub fn new(store: S) -> Self {
        Self::with_clock(store, SystemClock)
    }
}

impl<S: LinkStore, C: Clock> MagicLinks<S, C> {
    /// Magic Links over `store` on `clock`.
    pub fn with_clock(store: S, clock: C) -> Self {
        Self {
            store,
            clock,
            session_ttl: SessionTtl::default(),
        }
    }

    /// Sets how long a started session stays open before it is abandoned as expired.
    pub fn session_ttl(mut self, ttl: SessionTtl) -> Self {
        self.session_ttl = ttl;
        self
    }

    /// The store.
    pub fn store(&self) -> &S {
        &self.store
    }

    /// The clock.
    pub fn clock(&self) -> &C {
        &self.clock
    }

    /// Creates an account with no credits.
    ///
    /// # Errors
    ///
    /// [`Error::AlreadyExists`] if the id is taken; backend failures.
    pub async fn create_account(&self, id: AccountId) -> Result<Account, Error> {
        self.store
            .create_account(Account::new(id, self.clock.now()))
            .await
    }

    /// Adds credits; retrying with the same `key` and amount adds nothing.
    ///
    /// # Errors
    ///
    /// `NotFound`, `IdempotencyConflict`, zero amount or overflow; backend failures.
    pub async fn top_up(
        &self,
        account: AccountId,
        amount: u64,
        key: IdempotencyKey,
    ) -> Result<Account, Error> {
        self.store
            .top_up(account, amount, key, self.clock.now())
            .await
    }

    /// Validates `spec` and creates a link owned by `account`.
    ///
    /// # Errors
    ///
    /// [`InvalidInput`](crate::InvalidInput) for bad settings; `NotFound` for an unknown
    /// account; backend failures.
    pub async fn create_link(&self, account: AccountId, spec: NewLink) -> Result<Link, Error> {
        let link = Link::new(LinkId::new(), account, spec, self.clock.now())?;
        self.store.insert_link(link).await
    }

    /// Reports a link's state for a landing page. Consumes nothing: a GET or HEAD from an email
    /// scanner must call this, never [`redeem`](Self::redeem).
    ///
    /// # Errors
    ///
    /// `NotFound`; backend failures.
    pub async fn inspect(&self, link: LinkId) -> Result<Inspection, Error> {
        let (link, credit_available) = self.store.inspect(link).await?;
        let at = self.clock.now();
        Ok(Inspection {
            status: link.status(at),
            link,
            credit_available,
            at,
        })
    }

    /// Starts a verification: consumes a use, holds a credit and creates a session. Call it
    /// from an explicit action of the person (a POST), never from a GET.
    ///
    /// # Errors
    ///
    /// `NotFound`, `Deactivated`, `Expired`, `Exhausted` or `NoCredits` (nothing changed);
    /// backend failures.
    pub async fn redeem(&self, link: LinkId) -> Result<Session, Error> {
        self.store
            .redeem(link, SessionId::new(), self.session_ttl, self.clock.now())
            .await
    }

    /// Completes a session with the verification's outcome, billing one credit. Idempotent.
    ///
    /// # Errors
    ///
    /// `NotFound`, `OutcomeConflict`, `SessionAbandoned`, `SessionExpired`; backend failures.
    pub async fn complete_session(
        &self,
        account: AccountId,
        session: SessionId,
        outcome: Outcome,
    ) -> Result<Session, Error> {
        self.store
            .complete(account, session, outcome, self.clock.now())
            .await
    }

    /// Abandons a session, releasing its credit; its use stays consumed. Idempotent.
    ///
    /// # Errors
    ///
    /// `NotFound`, `SessionCompleted`; backend failures.
    pub async fn abandon_session(
        &self,
        account: AccountId,
        session: SessionId,
    ) -> Result<Session, Error> {
        self.store.abandon(account, session, self.clock.now()).await
    }

    /// Abandons up to `limit` sessions whose time to live has passed; call it periodically.
    ///
    /// # Errors
    ///
    /// Backend failures.
    pub async fn expire_sessions(&self, limit: usize) -> Result<usize, Error> {
        self.store.expire_sessions(self.clock.now(), limit).await
    }

    /// Deactivates a link for good. There is no re-activation, extension or refresh.
    ///
    /// # Errors
    ///
    /// `NotFound`; backend failures.
    pub async fn deactivate_link(&self, account: AccountId, link: LinkId) -> Result<Link, Error> {
        self.store.deactivate(account, link, self.clock.now()).await
    }

    /// Reads a link of `account`.
    ///
    /// # Errors
    ///
    /// `NotFound`; backend failures.
    pub async fn link(&self, account: AccountId, link: LinkId) -> Result<Link, Error> {
        self.store.link(account, link).await
    }

    /// Lists `account`'s links.
    ///
    /// # Errors
    ///
    /// `NotFound`; backend failures.
    pub async fn links(&self, account: AccountId, page: Page) -> Result<Paged<Link>, Error> {
        self.store.links(account, page).await
    }

    /// Reads a session of `account`.
    ///
    /// # Errors
    ///
    /// `NotFound`; backend failures.
    pub async fn session(&self, account: AccountId, session: SessionId) -> Result<Session, Error> {
        self.store.session(account, session).await
    }

    /// Lists a link's sessions in redemption order.
    ///
    /// # Errors
    ///
    /// `NotFound`; backend failures.
    pub async fn sessions(
        &self,
        account: AccountId,
        link: LinkId,
        page: Page,
    ) -> Result<Paged<Session>, Error> {
        self.store.sessions(account, link, page).await
    }

    /// Per-link statistics.
    ///
    /// # Errors
    ///
    /// `NotFound`; backend failures.
    pub async fn stats(&self, account: AccountId, link: LinkId) -> Result<LinkStats, Error> {
        self.store.stats(account, link).await
    }

    /// Reads an account's credits.
    ///
    /// # Errors
    ///
    /// `NotFound`; backend failures.
    pub async fn account(&self, account: AccountId) -> Result<Account, Error> {
        self.store.account(account).await
    }

    /// Reads outbox events after `cursor`.
    ///
    /// # Errors
    ///
    /// Backend failures.
    pub async fn events_after(&self, cursor: u64, limit: usize) -> Result<Vec<Event>, Error> {
        self.store.outbox_after(cursor, limit).await
    }
}
