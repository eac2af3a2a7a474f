//! Identity-verification Magic Links.
//!
//! A Magic Link is a URL that lets a person start an identity verification at once, with no
//! login and no account. A link is single-use, multi-use (N uses) or unlimited, may expire,
//! and can be deactivated, never extended. Each start ([redemption](MagicLinks::redeem))
//! consumes a use even if the person quits; the account is billed a credit only when the
//! verification [completes](MagicLinks::complete_session).
//!
//! The crate is a storage-agnostic core:
//!
//! - the domain: [`Link`], [`Session`], [`Account`] and its [`LedgerEntry`]s, [`Event`]s;
//! - the [`rules`], pure functions with `now` passed in;
//! - the [`LinkStore`] trait of atomic operations, with [`MemoryStore`], the embedded default;
//! - the [`MagicLinks`] facade that ties a store and a [`Clock`] together;
//! - signed webhooks in the Standard Webhooks form: [`WebhookSecret`] and [`WebhookVerifier`]
//!   (also for the receiving backend), [`WebhookPayload`], and the [`Dispatcher`] that delivers
//!   the outbox at least once through a [`Transport`], with state in a [`WebhookStore`].
//!
//! Opening a link must never consume it: email scanners open links before people do. A landing
//! page calls [`MagicLinks::inspect`] on GET and HEAD; only an explicit POST calls
//! [`MagicLinks::redeem`].
//!
//! # Examples
//!
//! ```
//! use magic_link::{AccountId, Flow, IdempotencyKey, MagicLinks, MemoryStore, NewLink, Rejection};
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), magic_link::Error> {
//! let links = MagicLinks::new(MemoryStore::new());
//! let account = links.create_account(AccountId::new()).await?;
//! links.top_up(account.id, 5, IdempotencyKey::new("invoice-7")?).await?;
//! let link = links.create_link(account.id, NewLink::new("Invite", Flow::Selfie)).await?;
//! links.redeem(link.id).await?;
//! let again = links.redeem(link.id).await.unwrap_err();
//! assert_eq!(again.rejection(), Some(Rejection::Exhausted));
//! # Ok(()) }
//! ```
//!
//! # Features
//!
//! - `test-util`: the [`conformance`] suite for any store and the [`ReferenceStore`] model.
//! - `http`: `HttpTransport`, webhook delivery over HTTP(S) with reqwest and rustls.
#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![warn(missing_debug_implementations, unreachable_pub)]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod clock;
mod credits;
mod error;
mod events;
mod facade;
mod ids;
mod links;
pub mod rules;
mod sessions;
mod store;
mod webhooks;

pub use clock::{Clock, ManualClock, SystemClock};
pub use credits::{Account, IdempotencyKey, LedgerEntry, LedgerKind, MAX_IDEMPOTENCY_KEY_LEN};
pub use error::{Error, InvalidInput, Rejection};
pub use events::{Event, EventKind};
pub use facade::{Inspection, MagicLinks};
pub use ids::{AccountId, EventId, LinkId, SessionId};
pub use links::{Flow, Language, Link, LinkStatus, NewLink, UsageLimit, MAX_NAME_CHARS};
pub use rules::SessionTtl;
pub use sessions::{AbandonReason, Outcome, Session, SessionStatus};
#[cfg(feature = "test-util")]
pub use store::conformance;
pub use store::memory::MemoryStore;
#[cfg(feature = "test-util")]
pub use store::reference::ReferenceStore;
pub use store::webhooks::{
    Attempt, AttemptOutcome, Claim, Delivery, DeliveryStatus, FailReason, Lease, NextStep,
    WebhookStore,
};
pub use store::{LinkStats, LinkStore, OutcomeCounts, Page, Paged, MAX_PAGE};
pub use webhooks::dispatcher::{DispatchReport, Dispatcher, RetrySchedule, DEFAULT_TIMEOUT};
pub use webhooks::endpoint::{Endpoint, MAX_WEBHOOK_SECRETS, MAX_WEBHOOK_URL_LEN};
#[cfg(feature = "http")]
pub use webhooks::http::HttpTransport;
pub use webhooks::payload::{EventData, WebhookPayload};
pub use webhooks::signing::{
    signature_header, Signature, WebhookError, WebhookHeaders, WebhookSecret, WebhookVerifier,
    DEFAULT_TOLERANCE, WEBHOOK_ID_HEADER, WEBHOOK_SIGNATURE_HEADER, WEBHOOK_TIMESTAMP_HEADER,
};
pub use webhooks::transport::{Transport, TransportError, WebhookRequest, WebhookResponse};
