//! The facade a host service uses: a store, a clock, a keyring and the settings, tied together.

use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::clock::{Clock, SystemClock};
use crate::returns::{ReturnParams, ReturnSecret, ReturnSecrets, ReturnStatus, ReturnUrl};
use crate::start::{Handoff, HandoffId, HandoffTtl, Start, StartKey, FORM_TOKEN_TTL};
use crate::store::{IdSource, LinkStore};
use crate::tokens::{
    FormToken, HandoffToken, Keyring, LinkBase, LinkToken, PersonalToken, SessionToken,
};
use crate::{
    Account, AccountId, AccountProfile, Error, Event, IdempotencyKey, Link, LinkId, LinkStats,
    LinkStatus, NewLink, Outcome, Page, Paged, Pruned, Reference, Rejection, Session, SessionId,
    SessionTtl,
};

#[cfg(feature = "background")]
mod subscribe;
#[cfg(feature = "background")]
mod sweeper;
mod webhook_endpoints;

/// A new link with its token and URL, as [`MagicLinks::create_link`] returns it.
///
/// The token is not stored anywhere: [`MagicLinks::link_url`] derives it again from the link's
/// id and expiry.
///
/// The token and URL are bearer capabilities (whoever holds them can start verifications on
/// the account's credits), so `Debug` redacts both.
#[derive(Clone, PartialEq, Eq)]
pub struct CreatedLink {
    /// The link.
    pub link: Link,
    /// Its link token, signed with the keyring's newest key.
    pub token: String,
    /// Its URL: the configured [`LinkBase`] followed by the token. Share this.
    pub url: String,
}

impl fmt::Debug for CreatedLink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CreatedLink")
            .field("link", &self.link)
            .field("token", &"[redacted]")
            .field("url", &"[redacted]")
            .finish()
    }
}

/// A started session with its session token, as [`MagicLinks::redeem`] returns it.
///
/// Its `Debug` leaves out the session token, a bearer credential.
#[derive(Clone, PartialEq, Eq)]
pub struct Redemption {
    /// The session.
    pub session: Session,
    /// Its session token: give it to the person's verification flow page, which hands it back
    /// to [`MagicLinks::complete_session_with_token`] or
    /// [`MagicLinks::abandon_session_with_token`].
    ///
    /// # Security
    ///
    /// It is a bearer credential for this session until the session expires: keep it out of
    /// logs and shared URLs.
    pub session_token: String,
    /// Whether this call started nothing: the start key's open session was returned (see
    /// [`Start`]), or a hand-off was accepted. A new session is `false`.
    pub resumed: bool,
}

impl fmt::Debug for Redemption {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Redemption")
            .field("session", &self.session)
            .field("session_token", &"[redacted]")
            .field("resumed", &self.resumed)
            .finish()
    }
}

/// What a landing page needs to know about a link. Inspecting consumes nothing.
///
/// It holds the whole [`Link`], owner and internal counters included: render the fields a
/// visitor should see (name, flow, language, status), don't serialize it onto a public page.
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
    /// The form token for the landing page's start form, when inspected with a start key:
    /// bound to the link and the key, valid for an hour. Pass it back with
    /// [`Start::from_landing_page`]. `None` without a key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub form_token: Option<String>,
    /// The open session that the start key started on this link, if any: the landing page
    /// offers "Continue your verification" (its form starts nothing new, it returns this
    /// session). `None` without a key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub open_session: Option<Session>,
    /// The recipient's reference, when the URL is a personal URL
    /// ([`MagicLinks::personal_url`]). A page may use it to tell the recipient apart, but
    /// should not show it: it is the owner's id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reference: Option<Reference>,
    /// The owner's display name, for the page to show (never the link's internal name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    /// The owner's support URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub support_url: Option<ReturnUrl>,
    /// Where to send a visitor instead of the built-in page: the link's dead-link URL, when
    /// the link is used up, expired or deactivated and the URL's origin is still one its owner
    /// allows. A page answers a GET with a redirect to it (303).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dead_link_url: Option<ReturnUrl>,
}

/// A dead link's redirect: its dead-link URL when `status` is not active and the owner still
/// allows its origin.
fn dead_link_url(link: &Link, owner: &AccountProfile, status: LinkStatus) -> Option<ReturnUrl> {
    link.dead_link_url
        .as_ref()
        .filter(|url| status != LinkStatus::Active && owner.allows(url))
        .cloned()
}

impl Inspection {
    /// Whether a redemption would succeed now, or the rejection it would meet.
    ///
    /// # Errors
    ///
    /// `Deactivated`, `Expired`, `Exhausted` or `NoCredits`, in that order.
    pub fn can_start(&self) -> Result<(), Rejection> {
        crate::rules::check_start(self.status, self.credit_available)
    }
}

/// Magic Links for a host service: creates links, inspects and redeems them by token,
/// completes and abandons sessions, and reports.
///
/// Every method reads the time from the clock and passes it to the store, which applies the
/// [`rules`](crate::rules) atomically. Methods that take a token verify it first, with the
/// keyring and the clock's time: a token that is malformed, forged, signed by an unknown key or
/// expired is an [`Error::InvalidToken`] and never reaches the store.
///
/// # Examples
///
/// ```
/// use magic_link::start::Start;
/// use magic_link::store::MemoryStore;
/// use magic_link::tokens::Keyring;
/// use magic_link::{AccountId, Flow, IdempotencyKey, MagicLinks, NewLink, Outcome, UsageLimit};
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let keyring = Keyring::generate()?; // in production: Keyring::parse(&env_var)?
/// let links = MagicLinks::new(
///     MemoryStore::new(),
///     keyring,
///     "https://verify.example.com/l/".parse()?,
/// );
/// let account = links.create_account(AccountId::new()).await?;
/// links.top_up(account.id, 10, IdempotencyKey::new("invoice-1")?).await?;
///
/// let spec = NewLink::new("Onboarding", Flow::DocumentAndSelfie).limit(UsageLimit::multi(3)?);
/// let created = links.create_link(account.id, spec).await?;
/// assert!(created.url.starts_with("https://verify.example.com/l/"));
///
/// // A GET of the landing page (or an email scanner) only inspects.
/// assert!(links.inspect(&created.token, None).await?.can_start().is_ok());
/// // The person presses "Start verification" (a backend start: no start key, no form token).
/// let started = links.redeem(&created.token, Start::new()).await?;
/// // The flow page reports the verification's outcome with the session token.
/// links
///     .complete_session_with_token(&started.session_token, Outcome::Approved)
///     .await?;
/// assert_eq!(links.account(account.id).await?.balance, 9);
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct MagicLinks<S, C = SystemClock> {
    store: S,
    clock: C,
    keyring: Keyring,
    link_base: LinkBase,
    session_ttl: SessionTtl,
    handoff_ttl: HandoffTtl,
    ids: IdSource,
    /// The reader that [`subscribe`](Self::subscribe) starts, shared by clones.
    #[cfg(feature = "background")]
    live: crate::live::Hub,
}

impl<S: LinkStore> MagicLinks<S> {
    /// Magic Links over `store`, signing and verifying tokens with `keyring`, with link URLs
    /// under `link_base`; on the system clock, with sessions that expire after 24 hours.
    pub fn new(store: S, keyring: Keyring, link_base: LinkBase) -> Self {
        Self {
            store,
            clock: SystemClock,
            keyring,
            link_base,
            session_ttl: SessionTtl::default(),
            handoff_ttl: HandoffTtl::default(),
            ids: IdSource::random(),
            #[cfg(feature = "background")]
            live: crate::live::Hub::default(),
        }
    }
}

impl<S: LinkStore, C: Clock> MagicLinks<S, C> {
    /// The same, on another clock (for tests, a [`ManualClock`](crate::clock::ManualClock)).
    pub fn with_clock<C2: Clock>(self, clock: C2) -> MagicLinks<S, C2> {
        MagicLinks {
            store: self.store,
            clock,
            keyring: self.keyring,
            link_base: self.link_base,
            session_ttl: self.session_ttl,
            handoff_ttl: self.handoff_ttl,
            ids: self.ids,
            #[cfg(feature = "background")]
            live: self.live,
        }
    }

    /// Takes the ids of new links and sessions from `ids` (random by default;
    /// [`IdSource::sequential`] in tests whose tokens and payloads must be the same on every
    /// run). Give the store the same source (`MemoryStore::with_ids`) for event ids.
    #[must_use]
    pub fn with_ids(mut self, ids: IdSource) -> Self {
        self.ids = ids;
        self
    }

    /// Sets how long a started session stays open before it is abandoned as expired.
    pub fn session_ttl(mut self, ttl: SessionTtl) -> Self {
        self.session_ttl = ttl;
        self
    }

    /// Sets how long a hand-off token stays valid (10 minutes by default; never beyond its
    /// session's expiry).
    #[must_use]
    pub fn handoff_ttl(mut self, ttl: HandoffTtl) -> Self {
        self.handoff_ttl = ttl;
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

    /// The keyring.
    pub fn keyring(&self) -> &Keyring {
        &self.keyring
    }

    /// The base of link URLs.
    pub fn link_base(&self) -> &LinkBase {
        &self.link_base
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

    /// Sets an account's public profile and return-URL settings (see [`AccountProfile`]).
    /// Removing an origin stops redirects to it at once: origins are checked again at every
    /// redirect.
    ///
    /// # Errors
    ///
    /// [`InvalidInput`](crate::InvalidInput) for a bad display name or too many origins;
    /// `NotFound`; backend failures.
    pub async fn set_account_profile(
        &self,
        account: AccountId,
        profile: AccountProfile,
    ) -> Result<Account, Error> {
        self.store.set_profile(account, profile).await
    }

    /// Makes a new random return secret the account's current one, keeping the current one as
    /// the previous (so the owner's site can verify with both while it switches), and returns
    /// it: show it to the owner once, as a webhook secret.
    ///
    /// # Errors
    ///
    /// `NotFound`; the system's random source failing (as a backend failure); backend
    /// failures.
    pub async fn rotate_return_secret(&self, account: AccountId) -> Result<ReturnSecret, Error> {
        let secret = ReturnSecret::generate().map_err(Error::backend)?;
        self.store
            .rotate_return_secret(account, secret.clone())
            .await?;
        Ok(secret)
    }

    /// The account's return secrets (current and previous), `None` before the first
    /// [`rotate_return_secret`](Self::rotate_return_secret).
    ///
    /// # Errors
    ///
    /// `NotFound`; backend failures.
    pub async fn return_secrets(&self, account: AccountId) -> Result<Option<ReturnSecrets>, Error> {
        self.store.return_secrets(account).await
    }

    /// The signed return URL for the person of a session that ended, from its session token:
    /// the link's return URL with `session_id`, `link_id`, `reference` (the session's, if
    /// any), `status` (`completed`, or `quit` for an abandoned session), `outcome` (only if the
    /// account opted in, see [`AccountProfile::return_outcome`]), `timestamp` and `signature`
    /// (see [`returns`](crate::returns)). The flow page redirects the browser there.
    ///
    /// `Ok(None)`, and no redirect, when the session is still open, its link has no return
    /// URL, the URL's origin is no longer allowed, or the account has no return secret.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidToken`] (before any store access); `NotFound`; backend failures.
    pub async fn return_redirect(&self, session_token: &str) -> Result<Option<String>, Error> {
        let claims = self.verify_session_token(session_token)?;
        let session = self
            .store
            .session(claims.account(), claims.session())
            .await?;
        let status = match session.status {
            crate::SessionStatus::Completed { outcome, .. } => {
                (ReturnStatus::Completed, Some(outcome))
            }
            crate::SessionStatus::Abandoned { .. } => (ReturnStatus::Quit, None),
            crate::SessionStatus::Started => return Ok(None),
        };
        let link = self.store.link(session.account, session.link).await?;
        let Some(url) = link.return_url else {
            return Ok(None);
        };
        let owner = self.store.account(session.account).await?;
        if !owner.profile.allows(&url) {
            return Ok(None);
        }
        let Some(secrets) = self.store.return_secrets(session.account).await? else {
            return Ok(None);
        };
        let params = ReturnParams {
            session: session.id,
            link: session.link,
            reference: session.reference,
            status: status.0,
            outcome: status.1.filter(|_| owner.profile.return_outcome),
            timestamp: self.clock.now().timestamp(),
        };
        Ok(Some(url.signed(&params, secrets.current())))
    }

    /// Where to send the visitor of a link URL whose token is authentic but expired (what
    /// [`inspect`](Self::inspect) refuses with
    /// [`TokenError::Expired`](crate::tokens::TokenError::Expired) before any store access):
    /// the link's dead-link URL if it has one on an origin its owner allows, after one store
    /// read. A forged or malformed token never reaches the store.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidToken`] for a token that is not authentic (before any store access);
    /// `NotFound`; backend failures.
    pub async fn dead_link_redirect(&self, token: &str) -> Result<Option<ReturnUrl>, Error> {
        // Every authentic token's expiry is after the earliest instant: this checks all but it.
        let never = DateTime::<Utc>::MIN_UTC;
        let link = if token.len() <= LinkToken::LEN {
            LinkToken::verify(token, &self.keyring, never)?.link()
        } else {
            PersonalToken::verify(token, &self.keyring, never)?.link()
        };
        let (link, owner) = self.store.inspect(link).await?;
        let status = link.status(self.clock.now());
        Ok(dead_link_url(&link, &owner.profile, status))
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

    /// Validates `spec`, creates a link owned by `account`, and signs its token and URL.
    ///
    /// # Errors
    ///
    /// [`InvalidInput`](crate::InvalidInput) for bad settings; `NotFound` for an unknown
    /// account; backend failures.
    pub async fn create_link(
        &self,
        account: AccountId,
        spec: NewLink,
    ) -> Result<CreatedLink, Error> {
        let link = Link::new(
            LinkId::from_uuid(self.ids.next()),
            account,
            spec,
            self.clock.now(),
        )?;
        if link.return_url.is_some() || link.dead_link_url.is_some() {
            // No open redirect: every redirect target is on an origin the owner allows.
            let owner = self.store.account(account).await?;
            let allowed = |url: &Option<ReturnUrl>| url.iter().all(|u| owner.profile.allows(u));
            if !allowed(&link.return_url) || !allowed(&link.dead_link_url) {
                return Err(crate::InvalidInput::ReturnOriginNotAllowed.into());
            }
        }
        let link = self.store.insert_link(link).await?;
        let token = LinkToken::for_link(&link).sign(&self.keyring);
        Ok(CreatedLink {
            url: self.link_base.url(&token),
            link,
            token,
        })
    }

    /// The URL of a link of `account`, derived again from its id and expiry (tokens are not
    /// stored). It is signed with the keyring's newest key, so after a rotation it differs
    /// from the URL first sent, which still works while its key is in the keyring.
    ///
    /// # Errors
    ///
    /// `NotFound`; backend failures.
    pub async fn link_url(&self, account: AccountId, link: LinkId) -> Result<String, Error> {
        let link = self.store.link(account, link).await?;
        Ok(self.url_of(&link))
    }

    /// The URL of a link already read (from [`links`](Self::links), say), derived from its id
    /// and expiry without a store read; see [`link_url`](Self::link_url). The caller is
    /// trusted to pass a link of the right account: the URL is a capability to start sessions
    /// on it, so never show one account's link URLs to another.
    pub fn url_of(&self, link: &Link) -> String {
        self.link_base
            .url(&LinkToken::for_link(link).sign(&self.keyring))
    }

    /// A personal URL of a link of `account`: a URL for one recipient of a shared
    /// (multi-use or unlimited) link, whose [token](PersonalToken) carries the recipient's
    /// `reference`, signed, so that editing it makes the URL invalid. A session started from
    /// it records the reference ([`Session::reference`]), which its webhooks carry as
    /// `session_reference`. Like [`link_url`](Self::link_url) it is derived, not stored: make
    /// as many as there are recipients.
    ///
    /// The reference travels in the URL, which mail scanners, proxies and logs see: use an
    /// opaque id, never a name or an email address (see [`Reference`]).
    ///
    /// # Errors
    ///
    /// `NotFound`; backend failures.
    ///
    /// # Examples
    ///
    /// ```
    /// # use magic_link::{store::MemoryStore, tokens::{token_from_url, Keyring}, start::Start};
    /// # use magic_link::{AccountId, Flow, IdempotencyKey, MagicLinks, NewLink, Reference, UsageLimit};
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let links = MagicLinks::new(MemoryStore::new(), Keyring::generate()?, "https://verify.example.com/l/".parse()?);
    /// # let account = links.create_account(AccountId::new()).await?;
    /// # links.top_up(account.id, 5, IdempotencyKey::new("first")?).await?;
    /// let shared = NewLink::new("Spring cohort", Flow::Selfie).limit(UsageLimit::Unlimited);
    /// let created = links.create_link(account.id, shared).await?;
    /// let url = links.personal_url(account.id, created.link.id, Reference::new("cus_8f2k")?).await?;
    /// let started = links.redeem(token_from_url(&url)?, Start::new()).await?;
    /// assert_eq!(started.session.reference.unwrap().as_str(), "cus_8f2k");
    /// # Ok(()) }
    /// ```
    pub async fn personal_url(
        &self,
        account: AccountId,
        link: LinkId,
        reference: Reference,
    ) -> Result<String, Error> {
        let link = self.store.link(account, link).await?;
        Ok(self.personal_url_of(&link, reference))
    }

    /// A personal URL of a link already read, without a store read; see
    /// [`personal_url`](Self::personal_url) and [`url_of`](Self::url_of) (the caller is
    /// trusted to pass a link of the right account).
    pub fn personal_url_of(&self, link: &Link, reference: Reference) -> String {
        self.link_base
            .url(&PersonalToken::for_link(link, reference).sign(&self.keyring))
    }

    /// Verifies the token of a link URL, shared or personal, now, without touching the store:
    /// the link, and the recipient's reference for a personal URL. A token of a link token's
    /// length or shorter is read as a link token, a longer one as a personal token.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidToken`].
    pub fn verify_url_token(&self, token: &str) -> Result<(LinkId, Option<Reference>), Error> {
        let now = self.clock.now();
        if token.len() <= LinkToken::LEN {
            Ok((LinkToken::verify(token, &self.keyring, now)?.link(), None))
        } else {
            let personal = PersonalToken::verify(token, &self.keyring, now)?;
            Ok((personal.link(), Some(personal.to_reference())))
        }
    }

    /// Verifies a link token now, without touching the store.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidToken`].
    pub fn verify_link_token(&self, token: &str) -> Result<LinkToken, Error> {
        Ok(LinkToken::verify(token, &self.keyring, self.clock.now())?)
    }

    /// Verifies a session token now, without touching the store: the session's id and its
    /// account, for the account-scoped methods such as [`session`](Self::session).
    ///
    /// # Errors
    ///
    /// [`Error::InvalidToken`].
    pub fn verify_session_token(&self, token: &str) -> Result<SessionToken, Error> {
        Ok(SessionToken::verify(
            token,
            &self.keyring,
            self.clock.now(),
        )?)
    }

    /// Reports a link's state for a landing page, from the token in its URL (see
    /// [`token_from_url`](crate::tokens::token_from_url)). Consumes nothing and writes
    /// nothing: a GET or HEAD from an email scanner must call this, never
    /// [`redeem`](Self::redeem).
    ///
    /// With the browser's start key (from its cookie), it also mints the
    /// [form token](Inspection::form_token) for the page's start form and reports the key's
    /// [open session](Inspection::open_session) on this link, for "Continue your
    /// verification" (one more store read).
    ///
    /// # Errors
    ///
    /// [`Error::InvalidToken`] (before any store access), including
    /// [`TokenError::Expired`](crate::tokens::TokenError::Expired) for an authentic token of an expired
    /// link; `NotFound`; backend failures.
    pub async fn inspect(&self, token: &str, key: Option<&StartKey>) -> Result<Inspection, Error> {
        let (link, reference) = self.verify_url_token(token)?;
        let (link, owner) = self.store.inspect(link).await?;
        let credit_available = owner.available() > 0;
        let at = self.clock.now();
        let (form_token, open_session) = match key {
            Some(key) => (
                Some(FormToken::new(at + FORM_TOKEN_TTL).sign(&self.keyring, link.id, key)),
                self.store
                    .started_session(link.id, key.hash_for(reference.as_ref()), at)
                    .await?,
            ),
            None => (None, None),
        };
        let status = link.status(at);
        Ok(Inspection {
            dead_link_url: dead_link_url(&link, &owner.profile, status),
            status,
            link,
            credit_available,
            at,
            form_token,
            open_session,
            reference,
            display_name: owner.profile.display_name,
            support_url: owner.profile.support_url,
        })
    }

    /// Counts a view of a link's landing page, from the token in its URL, as the kind the host
    /// service judged it ([`ViewKind`](crate::funnel::ViewKind)), or confirms an unconfirmed
    /// view as human ([`ViewChange::Confirm`](crate::funnel::ViewChange::Confirm)); returns the
    /// link's view counts after it. The crate only counts: the service decides what a view
    /// was (see [`funnel`](crate::funnel)). A view consumes nothing, changes no other state and
    /// writes no outbox event; the counts appear in [`stats`](Self::stats).
    ///
    /// The token is verified as [`inspect`](Self::inspect) verifies it, so a view of an
    /// expired link (whose token has expired) is not counted.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidToken`] (before any store access); `NotFound`; backend failures.
    ///
    /// # Examples
    ///
    /// ```
    /// use magic_link::funnel::{ViewChange, ViewKind};
    /// # use magic_link::{store::MemoryStore, tokens::Keyring, AccountId, Flow, MagicLinks, NewLink};
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let links = MagicLinks::new(MemoryStore::new(), Keyring::generate()?, "https://verify.example.com/l/".parse()?);
    /// # let account = links.create_account(AccountId::new()).await?;
    /// # let created = links.create_link(account.id, NewLink::new("Invite", Flow::Selfie)).await?;
    /// // A GET of the landing page: not known yet who it was.
    /// links.record_view(&created.token, ViewKind::Unconfirmed).await?;
    /// // The page's script reported back: a person.
    /// let views = links.record_view(&created.token, ViewChange::Confirm).await?;
    /// assert_eq!((views.human, views.unconfirmed), (1, 0));
    /// # Ok(()) }
    /// ```
    pub async fn record_view(
        &self,
        token: &str,
        change: impl Into<crate::funnel::ViewChange>,
    ) -> Result<crate::funnel::ViewCounts, Error> {
        let (link, _) = self.verify_url_token(token)?;
        self.store.record_view(link, change.into()).await
    }

    /// Starts a verification from a link token: consumes a use, holds a credit and creates a
    /// session, and signs the session's token. Call it from an explicit action of the person (a
    /// POST), never from a GET.
    ///
    /// `start` says how (see [`start`](crate::start)): [`Start::new`] for a backend, which
    /// starts a new session on every call; [`Start::with_key`] to make it idempotent (while the
    /// session a key started on the link is open, the same key returns it, with
    /// [`resumed`](Redemption::resumed), and consumes nothing), so a retry after a backend
    /// error is safe; [`Start::from_landing_page`] to also require the page's form token.
    ///
    /// The checks run in this order: the link token, the form token (one HMAC), then the store.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidToken`] (before any store access); [`Error::InvalidFormToken`] (before
    /// any store access); `NotFound`, `Deactivated`, `Expired`, `Exhausted` or `NoCredits`
    /// (nothing changed); backend failures.
    pub async fn redeem(&self, token: &str, start: Start) -> Result<Redemption, Error> {
        let (link, reference) = self.verify_url_token(token)?;
        let now = self.clock.now();
        if let (Some(form), Some(key)) = (start.form_token(), start.key()) {
            FormToken::verify(form, &self.keyring, link, key, now)
                .map_err(Error::InvalidFormToken)?;
        }
        let id = SessionId::from_uuid(self.ids.next());
        let key = start.key().map(|key| key.hash_for(reference.as_ref()));
        let session = self
            .store
            .redeem(link, id, key, reference, self.session_ttl, now)
            .await?;
        let session_token = SessionToken::for_session(&session).sign(&self.keyring);
        Ok(Redemption {
            resumed: session.id != id,
            session,
            session_token,
        })
    }

    /// Hands an open session off to another device: a single-use
    /// [hand-off token](crate::tokens::HandoffToken), valid for the
    /// [hand-off time to live](Self::handoff_ttl) (10 minutes by default, never beyond the
    /// session's expiry), for a short URL and its QR code. Consumes nothing and writes no
    /// event.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidToken`] for the session token (before any store access); `NotFound`;
    /// `SessionCompleted`, `SessionAbandoned` or `SessionExpired`; backend failures.
    pub async fn handoff(&self, session_token: &str) -> Result<Handoff, Error> {
        let claims = self.verify_session_token(session_token)?;
        let now = self.clock.now();
        let expires_at = (now + self.handoff_ttl.duration()).min(claims.expires_at());
        let id = HandoffId::from_bytes(*self.ids.next().as_bytes());
        let session = self
            .store
            .create_handoff(claims.account(), claims.session(), id, expires_at, now)
            .await?;
        let token = HandoffToken::new(id, expires_at);
        Ok(Handoff {
            session,
            expires_at: token.expires_at(),
            token: token.sign(&self.keyring),
        })
    }

    /// Accepts a hand-off on the other device: consumes the hand-off token (once, atomically),
    /// writes `session.handed_off`, and returns the session with a session token for this
    /// device ([`resumed`](Redemption::resumed) is `true`). Consumes no use and no credit.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidToken`] (before any store access; an expired hand-off is
    /// [`TokenError::Expired`](crate::tokens::TokenError::Expired)); `NotFound`; `HandoffUsed`
    /// for a second use; `SessionCompleted`, `SessionAbandoned` or `SessionExpired` once the
    /// session has ended; backend failures.
    pub async fn accept_handoff(&self, handoff_token: &str) -> Result<Redemption, Error> {
        let now = self.clock.now();
        let claims = HandoffToken::verify(handoff_token, &self.keyring, now)?;
        let session = self.store.accept_handoff(claims.handoff(), now).await?;
        let session_token = SessionToken::for_session(&session).sign(&self.keyring);
        Ok(Redemption {
            session,
            session_token,
            resumed: true,
        })
    }

    /// Checks a hand-off token without consuming it: verifies it, then asks the store whether
    /// it could be accepted now ([`LinkStore::check_handoff`]). Changes nothing and writes no
    /// event: for the page a hand-off URL opens (scanners open links too), so that a used,
    /// expired or ended hand-off is refused there at once rather than after "Continue".
    ///
    /// # Errors
    ///
    /// As [`accept_handoff`](Self::accept_handoff).
    pub async fn check_handoff(&self, handoff_token: &str) -> Result<Session, Error> {
        let now = self.clock.now();
        let claims = HandoffToken::verify(handoff_token, &self.keyring, now)?;
        self.store.check_handoff(claims.handoff(), now).await
    }

    /// The session token of a session of `account`, signed again (tokens are not stored).
    ///
    /// # Errors
    ///
    /// `NotFound`; backend failures.
    pub async fn session_token(
        &self,
        account: AccountId,
        session: SessionId,
    ) -> Result<String, Error> {
        let session = self.store.session(account, session).await?;
        Ok(SessionToken::for_session(&session).sign(&self.keyring))
    }

    /// Completes a session with the verification's outcome, billing one credit. Idempotent.
    /// For the host's backend, which knows the account; a flow page holding a session token
    /// uses [`complete_session_with_token`](Self::complete_session_with_token).
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

    /// Records the owner's final decision, [`Outcome::Approved`] or [`Outcome::Denied`], on a
    /// session that completed with [`Outcome::NeedsReview`], and writes `session.reviewed`.
    /// Bills nothing more: the credit was captured when the session completed. The session
    /// keeps its outcome at completion and gains [`decision`](Session::decision) and
    /// [`reviewed_at`](Session::reviewed_at). Idempotent with the same decision; a decision is
    /// final.
    ///
    /// # Errors
    ///
    /// [`InvalidInput::InvalidDecision`](crate::InvalidInput::InvalidDecision) for
    /// `NeedsReview`; `NotFound` (also for another account's session); `NotUnderReview` for a
    /// session that did not complete needing review; `ReviewConflict` after a review with the
    /// other decision; backend failures.
    ///
    /// # Examples
    ///
    /// ```
    /// use magic_link::store::MemoryStore;
    /// use magic_link::tokens::Keyring;
    /// use magic_link::{AccountId, Flow, IdempotencyKey, MagicLinks, NewLink, Outcome, Rejection};
    ///
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let base = "https://verify.example.com/l/".parse()?;
    /// let links = MagicLinks::new(MemoryStore::new(), Keyring::generate()?, base);
    /// let account = links.create_account(AccountId::new()).await?;
    /// links.top_up(account.id, 1, IdempotencyKey::new("first")?).await?;
    /// let created = links.create_link(account.id, NewLink::new("Case", Flow::Document)).await?;
    /// let started = links.redeem(&created.token, magic_link::start::Start::new()).await?;
    /// let id = started.session.id;
    /// links.complete_session(account.id, id, Outcome::NeedsReview).await?;
    /// // A person looked at the case.
    /// let reviewed = links.review_session(account.id, id, Outcome::Approved).await?;
    /// assert_eq!(reviewed.decision, Some(Outcome::Approved));
    /// let again = links.review_session(account.id, id, Outcome::Denied).await.unwrap_err();
    /// assert_eq!(again.rejection(), Some(Rejection::ReviewConflict));
    /// assert_eq!(links.account(account.id).await?.balance, 0, "one credit, billed once");
    /// # Ok(()) }
    /// ```
    pub async fn review_session(
        &self,
        account: AccountId,
        session: SessionId,
        decision: Outcome,
    ) -> Result<Session, Error> {
        self.store
            .review(account, session, decision, self.clock.now())
            .await
    }

    /// Completes the session a session token names, as
    /// [`complete_session`](Self::complete_session) does.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidToken`] (before any store access; an expired session token is
    /// [`TokenError::Expired`](crate::tokens::TokenError::Expired)); then as
    /// [`complete_session`](Self::complete_session).
    pub async fn complete_session_with_token(
        &self,
        token: &str,
        outcome: Outcome,
    ) -> Result<Session, Error> {
        let claims = self.verify_session_token(token)?;
        self.complete_session(claims.account(), claims.session(), outcome)
            .await
    }

    /// Abandons the session a session token names, as
    /// [`abandon_session`](Self::abandon_session) does.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidToken`] (before any store access); then as
    /// [`abandon_session`](Self::abandon_session).
    pub async fn abandon_session_with_token(&self, token: &str) -> Result<Session, Error> {
        let claims = self.verify_session_token(token)?;
        self.abandon_session(claims.account(), claims.session())
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

    /// Abandons up to `limit` sessions whose time to live has passed; call it periodically
    /// (with the `background` feature, `run_session_sweeper` does).
    ///
    /// # Errors
    ///
    /// Backend failures.
    pub async fn expire_sessions(&self, limit: usize) -> Result<usize, Error> {
        self.store.expire_sessions(self.clock.now(), limit).await
    }

    /// Writes `link.expired` for up to `limit` links whose expiry has passed, once per link;
    /// call it periodically, so the owner's backend learns that a link died and can send a new
    /// one.
    ///
    /// # Errors
    ///
    /// Backend failures.
    pub async fn expire_links(&self, limit: usize) -> Result<usize, Error> {
        self.store.expire_links(self.clock.now(), limit).await
    }

    /// Removes the records older than `before` that retention allows, in batches until none
    /// is left, and returns how many of each it removed: finished sessions (never an open one,
    /// nor one waiting for its review), outbox events already queued for webhook delivery and
    /// no longer needed by one, delivered and failed webhook deliveries, and spent hand-offs
    /// (see [`LinkStore::prune`] for the exact rules). Statistics stay exact; links, accounts
    /// and the ledger are never pruned. Call it periodically with a cutoff such as 90 days
    /// ago.
    ///
    /// # Errors
    ///
    /// Backend failures (the batches before the failure stay pruned).
    ///
    /// # Examples
    ///
    /// ```
    /// # use magic_link::store::MemoryStore;
    /// # use magic_link::MagicLinks;
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), magic_link::Error> {
    /// # let keyring = magic_link::tokens::Keyring::generate().unwrap();
    /// # let base = "https://verify.example.com/l/".parse().unwrap();
    /// let links = MagicLinks::new(MemoryStore::new(), keyring, base);
    /// let pruned = links.prune(chrono::Utc::now() - chrono::Duration::days(90)).await?;
    /// assert_eq!(pruned.total(), 0);
    /// # Ok(()) }
    /// ```
    pub async fn prune(&self, before: DateTime<Utc>) -> Result<Pruned, Error> {
        const BATCH: usize = 1000;
        let mut total = Pruned::default();
        loop {
            let batch = self.store.prune(before, BATCH).await?;
            total.add(batch);
            let full = [
                batch.sessions,
                batch.events,
                batch.deliveries,
                batch.handoffs,
            ]
            .iter()
            .any(|&n| n >= BATCH as u64);
            if !full {
                return Ok(total);
            }
        }
    }

    /// Deactivates a link for good. There is no re-activation, extension or refresh.
    ///
    /// # Errors
    ///
    /// `NotFound`; backend failures.
    pub async fn deactivate_link(&self, account: AccountId, link: LinkId) -> Result<Link, Error> {
        self.store.deactivate(account, link, self.clock.now()).await
    }

    /// Erases the owner's labels of a link: its reference and metadata, the reference of each
    /// of its sessions, and these labels in every stored event about them (so no later
    /// webhook delivery or retry sends them), and appends `link.redacted`. Later redemptions,
    /// also from personal URLs, record no reference. Ids, counts, outcomes, statistics and
    /// the ledger stay. A repeat returns the link and appends nothing.
    ///
    /// A webhook already on its way (claimed by a dispatcher) and whatever receivers stored
    /// is beyond the store's reach.
    ///
    /// # Errors
    ///
    /// `NotFound`; backend failures.
    pub async fn redact_link(&self, account: AccountId, link: LinkId) -> Result<Link, Error> {
        self.store
            .redact_link(account, link, self.clock.now())
            .await
    }

    /// Erases a session's reference (the recipient of the personal URL that started it),
    /// with the reference in every stored event about it, and appends `session.redacted`.
    /// Nothing else changes. A repeat (also after [`redact_link`](Self::redact_link) erased
    /// its reference) returns the session and appends nothing.
    ///
    /// # Errors
    ///
    /// `NotFound`; backend failures.
    pub async fn redact_session(
        &self,
        account: AccountId,
        session: SessionId,
    ) -> Result<Session, Error> {
        self.store
            .redact_session(account, session, self.clock.now())
            .await
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

    /// The links of `account` with this reference, oldest first (at most
    /// [`MAX_BY_REFERENCE`](crate::store::MAX_BY_REFERENCE)).
    ///
    /// # Errors
    ///
    /// Backend failures (an unknown account has none).
    pub async fn links_by_reference(
        &self,
        account: AccountId,
        reference: &Reference,
    ) -> Result<Vec<Link>, Error> {
        self.store.links_by_reference(account, reference).await
    }

    /// The sessions of `account` that recorded this reference (started from personal URLs),
    /// in order of start (at most [`MAX_BY_REFERENCE`](crate::store::MAX_BY_REFERENCE)).
    ///
    /// # Errors
    ///
    /// Backend failures (an unknown account has none).
    pub async fn sessions_by_reference(
        &self,
        account: AccountId,
        reference: &Reference,
    ) -> Result<Vec<Session>, Error> {
        self.store.sessions_by_reference(account, reference).await
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

    /// Reads up to `limit` of `account`'s outbox events with a [`seq`](Event::seq) after
    /// `cursor` (0 for the first), oldest first; the next call passes the last one's `seq`.
    /// Other accounts' events are never returned.
    ///
    /// The outbox is shared by all accounts ([`LinkStore::outbox_after`] is the dispatcher's
    /// cross-account read); this call reads it in pages from `cursor` and keeps `account`'s
    /// events, so it suits an owner's event log and tests, not a hot path.
    ///
    /// # Errors
    ///
    /// Backend failures.
    pub async fn events_after(
        &self,
        account: AccountId,
        cursor: u64,
        limit: usize,
    ) -> Result<Vec<Event>, Error> {
        let mut events = Vec::new();
        let mut cursor = cursor;
        while events.len() < limit {
            let batch = self.store.outbox_after(cursor, Page::MAX_LIMIT).await?;
            let Some(last) = batch.last() else { break };
            cursor = last.seq;
            events.extend(batch.into_iter().filter(|e| e.account == account));
        }
        events.truncate(limit);
        Ok(events)
    }
}
