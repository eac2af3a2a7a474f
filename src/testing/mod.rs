//! A test kit for the services that use the crate: their own tests on the in-memory store,
//! fast and deterministic, with no HTTP and no database.
//!
//! Unlike [`conformance`](crate::conformance), this module's API is **stable**: it follows the
//! crate's semantic versioning like the rest of the public API.
//!
//! - [`TestKit`]: one call gives a [`MagicLinks`] on a [`MemoryStore`] with a [`ManualClock`],
//!   a fixed keyring, a link base, a funded account and a webhook endpoint, plus shortcuts that
//!   create each kind of link, start sessions and complete them.
//! - [`RecordingTransport`]: records every webhook request and answers from a script of
//!   [`Reply`]s (`200`, `500`, `410`, `429` with `Retry-After`, a timeout, a connection error);
//!   [`TestKit::deliver`] runs the [`Dispatcher`] until nothing is due, and retries happen by
//!   advancing the clock, never by sleeping.
//! - Ids come from a sequential [`IdSource`], so ids, tokens, signatures and payloads are the
//!   same on every run: snapshot tests are stable.
//! - [`SignedWebhook`]: a payload signed exactly as the dispatcher signs it, for any secret,
//!   id and timestamp, to test a receiver's accept and reject paths without a dispatcher.
//!
//! # Examples
//!
//! ```
//! use magic_link::testing::{Reply, TestKit};
//! use magic_link::Outcome;
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), magic_link::Error> {
//! let kit = TestKit::new().await?;
//! let link = kit.single_use_link().await?;
//! let started = kit.start(&link).await?;
//! kit.deliver().await?; // credits.added, link.created, link.redeemed, link.exhausted
//!
//! kit.complete(&started, Outcome::Approved).await?;
//! kit.transport().push([Reply::Status(500)]);
//! kit.deliver().await?; // session.completed gets a 500 and waits for its retry
//! assert_eq!(kit.transport().delivered().unwrap().len(), 4);
//! kit.advance(chrono::Duration::seconds(5)); // the first retry is due after 5 s
//! kit.deliver().await?;
//! let last = kit.transport().delivered().unwrap().pop().unwrap();
//! assert_eq!(last.kind, "session.completed");
//! assert_eq!(kit.links().account(kit.account()).await?.balance, 99);
//! # Ok(()) }
//! ```

mod transport;

use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};

use crate::clock::{Clock, ManualClock};
use crate::store::{IdSource, MemoryStore};
use crate::tokens::{Keyring, LinkBase, SigningKey};
use crate::webhooks::{
    signature_header, DispatchReport, Dispatcher, RetrySchedule, WebhookPayload, WebhookRequest,
    WebhookSecret, WebhookVerifier,
};
use crate::{
    AccountId, CreatedLink, Error, Event, Flow, IdempotencyKey, MagicLinks, NewLink, Outcome,
    Redemption, Session, UsageLimit,
};

pub use transport::{RecordedRequest, RecordingTransport, Reply};

/// The store a [`TestKit`] runs on.
pub type TestStore = Arc<MemoryStore>;

/// A ready [`MagicLinks`] for tests, with its clock, webhook transport and dispatcher.
///
/// Everything is fixed: the clock starts at [`TestKit::START`], the keyring holds one key of
/// 32 bytes of `0x42` (key id 1), links live under [`TestKit::LINK_BASE`], the account has
/// [`TestKit::CREDITS`] credits and a webhook endpoint at [`TestKit::WEBHOOK_URL`] signed with
/// [`TestKit::webhook_secret`], and ids come from [`IdSource::sequential`]. The same steps give
/// the same ids, tokens, URLs, signatures and payloads on every run.
///
/// The dispatcher uses the default Standard Webhooks retry schedule (5 s, 5 min, 30 min, ...),
/// on the kit's clock.
#[derive(Debug)]
pub struct TestKit {
    links: MagicLinks<TestStore, ManualClock>,
    dispatcher: Dispatcher<TestStore, Arc<RecordingTransport>, ManualClock>,
    transport: Arc<RecordingTransport>,
    account: AccountId,
    secret: WebhookSecret,
}

impl TestKit {
    /// Where the clock starts: 2030-01-01T00:00:00Z, in Unix seconds.
    pub const START: i64 = 1_893_456_000;
    /// The link base URL.
    pub const LINK_BASE: &'static str = "https://verify.test/l/";
    /// The webhook endpoint URL (nothing is sent over the network).
    pub const WEBHOOK_URL: &'static str = "https://hooks.test/magic-link";
    /// The account's credits at the start.
    pub const CREDITS: u64 = 100;
    /// The seed of the kit's [`IdSource`].
    pub const SEED: u64 = 0x6d61_6769_636c_6e6b;

    /// A kit with a funded account and its webhook endpoint.
    ///
    /// # Errors
    ///
    /// None in practice: the in-memory store does not fail. The signature is fallible so a
    /// test can use `?`.
    pub async fn new() -> Result<Self, Error> {
        Self::with_seed(Self::SEED).await
    }

    /// The same with another id seed: two kits with different seeds make different ids.
    ///
    /// # Errors
    ///
    /// As for [`new`](Self::new).
    pub async fn with_seed(seed: u64) -> Result<Self, Error> {
        let ids = IdSource::sequential(seed);
        let clock = ManualClock::at_timestamp(Self::START);
        let store = Arc::new(MemoryStore::new().with_ids(ids.clone()));
        let keyring = Keyring::new(1, SigningKey::from_bytes([0x42; 32]));
        let base = LinkBase::new(Self::LINK_BASE)?;
        let links = MagicLinks::new(Arc::clone(&store), keyring, base)
            .with_clock(clock.clone())
            .with_ids(ids.clone());
        let account = AccountId::from_uuid(ids.next());
        links.create_account(account).await?;
        links
            .top_up(account, Self::CREDITS, IdempotencyKey::new("test-kit")?)
            .await?;
        let secret = Self::webhook_secret_for(seed);
        links
            .set_webhook_endpoint(account, Self::WEBHOOK_URL, vec![secret.clone()])
            .await?;
        let transport = Arc::new(RecordingTransport::new());
        let dispatcher = Dispatcher::new(store, Arc::clone(&transport))
            .with_clock(clock)
            .schedule(RetrySchedule::default());
        Ok(Self {
            links,
            dispatcher,
            transport,
            account,
            secret,
        })
    }

    fn webhook_secret_for(seed: u64) -> WebhookSecret {
        let mut key = [0x5e; 32];
        key[..8].copy_from_slice(&seed.to_be_bytes());
        match WebhookSecret::from_bytes(&key) {
            Ok(secret) => secret,
            Err(_) => unreachable!("32 bytes is a valid webhook secret length"),
        }
    }

    /// The facade, for everything the shortcuts don't cover.
    pub fn links(&self) -> &MagicLinks<TestStore, ManualClock> {
        &self.links
    }

    /// The store.
    pub fn store(&self) -> &TestStore {
        self.links.store()
    }

    /// The clock (clones share its time).
    pub fn clock(&self) -> &ManualClock {
        self.links.clock()
    }

    /// The clock's time.
    pub fn now(&self) -> DateTime<Utc> {
        self.clock().now()
    }

    /// Moves the clock forward: expiries pass and retries fall due, without sleeping.
    pub fn advance(&self, by: Duration) {
        self.clock().advance(by);
    }

    /// The funded account.
    pub fn account(&self) -> AccountId {
        self.account
    }

    /// The transport the dispatcher sends through.
    pub fn transport(&self) -> &RecordingTransport {
        &self.transport
    }

    /// The dispatcher, for a test that drives it itself.
    pub fn dispatcher(&self) -> &Dispatcher<TestStore, Arc<RecordingTransport>, ManualClock> {
        &self.dispatcher
    }

    /// The secret the account's webhooks are signed with: give it to the receiver under test.
    pub fn webhook_secret(&self) -> &WebhookSecret {
        &self.secret
    }

    /// A verifier for the account's webhooks, as a receiver would build one.
    pub fn verifier(&self) -> WebhookVerifier {
        WebhookVerifier::new(self.secret.clone())
    }

    /// Creates a link of the account with `limit` and an optional expiry.
    ///
    /// # Errors
    ///
    /// As for [`MagicLinks::create_link`].
    pub async fn link(
        &self,
        limit: UsageLimit,
        expires_at: Option<DateTime<Utc>>,
    ) -> Result<CreatedLink, Error> {
        let mut spec = NewLink::new("test link", Flow::DocumentAndSelfie).limit(limit);
        spec.expires_at = expires_at;
        self.links.create_link(self.account, spec).await
    }

    /// A single-use link.
    ///
    /// # Errors
    ///
    /// As for [`MagicLinks::create_link`].
    pub async fn single_use_link(&self) -> Result<CreatedLink, Error> {
        self.link(UsageLimit::Single, None).await
    }

    /// A link with `uses` uses.
    ///
    /// # Errors
    ///
    /// [`InvalidInput`](crate::InvalidInput) for 0 uses; as for [`MagicLinks::create_link`].
    pub async fn multi_use_link(&self, uses: u32) -> Result<CreatedLink, Error> {
        self.link(UsageLimit::multi(uses)?, None).await
    }

    /// An unlimited link.
    ///
    /// # Errors
    ///
    /// As for [`MagicLinks::create_link`].
    pub async fn unlimited_link(&self) -> Result<CreatedLink, Error> {
        self.link(UsageLimit::Unlimited, None).await
    }

    /// An unlimited link that expires `after` from now.
    ///
    /// # Errors
    ///
    /// As for [`MagicLinks::create_link`] (an expiry not after now is invalid input).
    pub async fn expiring_link(&self, after: Duration) -> Result<CreatedLink, Error> {
        let at = self.now().checked_add_signed(after);
        self.link(UsageLimit::Unlimited, at).await
    }

    /// Starts a session on `link`, as the landing page's button does.
    ///
    /// # Errors
    ///
    /// As for [`MagicLinks::redeem`].
    pub async fn start(&self, link: &CreatedLink) -> Result<Redemption, Error> {
        self.links
            .redeem(&link.token, crate::start::Start::new())
            .await
    }

    /// Completes a started session with `outcome`, as the verification flow does.
    ///
    /// # Errors
    ///
    /// As for [`MagicLinks::complete_session_with_token`].
    pub async fn complete(&self, started: &Redemption, outcome: Outcome) -> Result<Session, Error> {
        self.links
            .complete_session_with_token(&started.session_token, outcome)
            .await
    }

    /// Runs the dispatcher until nothing is due at the clock's time, and returns what it did
    /// in total. Deliveries that wait for a retry stay pending until the clock is advanced.
    ///
    /// # Errors
    ///
    /// Store failures (none with the in-memory store).
    pub async fn deliver(&self) -> Result<DispatchReport, Error> {
        let mut total = DispatchReport::default();
        // Bounded: each round either attempts something due now or stops; a 410 from a
        // replaced endpoint is the only step due again at once, and it cannot repeat forever.
        for _ in 0..10_000 {
            let report = self.dispatcher.run_once().await?;
            total += report;
            if report.attempted == 0 && report.taken == 0 {
                break;
            }
        }
        Ok(total)
    }
}

/// A webhook signed exactly as the [`Dispatcher`] signs it: the headers a receiver gets with
/// the body. Build one for any secret, id and timestamp to test a receiver without a
/// dispatcher: a wrong secret, an old timestamp, an altered body.
///
/// # Examples
///
/// ```
/// use magic_link::testing::SignedWebhook;
/// use magic_link::webhooks::{WebhookHeaders, WebhookSecret, WebhookVerifier};
///
/// let secret = WebhookSecret::from_bytes(&[7; 32])?;
/// let signed = SignedWebhook::new(&secret, "msg_1", 1_700_000_000, br#"{"type":"x"}"#.to_vec());
/// let headers = WebhookHeaders::from_fn(|name| signed.header(name).map(str::as_bytes));
/// let now = chrono::DateTime::from_timestamp(1_700_000_000, 0).unwrap();
/// assert!(WebhookVerifier::new(secret).verify_at(headers, &signed.body, now).is_ok());
/// # Ok::<(), magic_link::webhooks::WebhookError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SignedWebhook {
    /// Every header, `(lower-case name, value)`, `content-type` included.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Vec<u8>,
}

impl SignedWebhook {
    /// Signs `body` with `secret` as message `id` sent at `timestamp` (Unix seconds).
    pub fn new(secret: &WebhookSecret, id: &str, timestamp: i64, body: Vec<u8>) -> Self {
        let signature = signature_header(std::slice::from_ref(secret), id, timestamp, &body);
        let request = WebhookRequest::new(
            String::new(),
            id.to_owned(),
            timestamp.to_string(),
            signature,
            body,
            std::time::Duration::ZERO,
        );
        Self {
            headers: request
                .headers()
                .iter()
                .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
                .collect(),
            body: request.body,
        }
    }

    /// The webhook of an outbox event: its payload, with the event id as `webhook-id`.
    pub fn for_event(secret: &WebhookSecret, event: &Event, timestamp: i64) -> Self {
        let body = WebhookPayload::from_event(event).to_json();
        Self::new(secret, &event.id.to_string(), timestamp, body)
    }

    /// The value of header `name` (lower case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}
