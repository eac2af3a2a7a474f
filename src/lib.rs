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
//! - [`tokens`]: signed link and session tokens, the [`Keyring`] that signs them with key
//!   rotation, and link URLs;
//! - the [`MagicLinks`] facade that ties a store, a keyring and a [`Clock`] together;
//! - signed webhooks in the Standard Webhooks form: [`WebhookSecret`] and [`WebhookVerifier`]
//!   (also for the receiving backend), [`WebhookPayload`], and the [`Dispatcher`] that delivers
//!   the outbox at least once through a [`Transport`], with state in a [`WebhookStore`].
//!
//! A link URL carries a [link token](LinkToken): the link's id and expiry, signed with
//! HMAC-SHA256 by a key that only the host service holds. Nothing about a token is stored, and
//! a forged, altered or expired token is rejected before any store access.
//!
//! Opening a link must never consume it: email scanners open links before people do. A landing
//! page calls [`MagicLinks::inspect`] on GET and HEAD; only an explicit POST calls
//! [`MagicLinks::redeem`], which returns the new session and its [session token](SessionToken)
//! for the verification flow page.
//!
//! # Examples
//!
//! ```
//! use magic_link::{
//!     token_from_url, AccountId, Flow, IdempotencyKey, Keyring, LinkBase, MagicLinks,
//!     MemoryStore, NewLink, Rejection,
//! };
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let keyring = Keyring::generate()?;
//! let base = LinkBase::new("https://verify.example.com/l/")?;
//! let links = MagicLinks::new(MemoryStore::new(), keyring, base);
//! let account = links.create_account(AccountId::new()).await?;
//! links.top_up(account.id, 5, IdempotencyKey::new("invoice-7")?).await?;
//! let created = links.create_link(account.id, NewLink::new("Invite", Flow::Selfie)).await?;
//!
//! // The landing page receives the URL's path and takes the token from it.
//! let token = token_from_url(&created.url)?;
//! links.redeem(token).await?;
//! let again = links.redeem(token).await.unwrap_err();
//! assert_eq!(again.rejection(), Some(Rejection::Exhausted));
//! # Ok(()) }
//! ```
//!
//! # Features
//!
//! - `test-util`: the `conformance` suite for any store and the `ReferenceStore` model.
//! - `postgres`: `PostgresStore`, the store (a `LinkStore` and a `WebhookStore`) shared by the
//!   instances of a service that runs on more than one machine (sqlx on Tokio), and a re-export
//!   of `sqlx` for building its pool.
//! - `http`: `HttpTransport`, webhook delivery over HTTP(S) with reqwest and rustls.
//! - `qr`: QR codes of link URLs as SVG and PNG (`qr::svg`, `qr::png`).
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
#[cfg(feature = "qr")]
#[cfg_attr(docsrs, doc(cfg(feature = "qr")))]
pub mod qr;
pub mod rules;
mod sessions;
mod store;
pub mod tokens;
mod webhooks;

pub use clock::{Clock, ManualClock, SystemClock};
pub use credits::{Account, IdempotencyKey, LedgerEntry, LedgerKind, MAX_IDEMPOTENCY_KEY_LEN};
pub use error::{Error, InvalidInput, Rejection};
pub use events::{Event, EventKind};
pub use facade::{CreatedLink, Inspection, MagicLinks, Redemption};
pub use ids::{AccountId, EventId, LinkId, SessionId};
pub use links::{Flow, Language, Link, LinkStatus, NewLink, UsageLimit, MAX_NAME_CHARS};
pub use rules::SessionTtl;
pub use sessions::{AbandonReason, Outcome, Session, SessionStatus};
/// The sqlx crate that [`PostgresStore`] is built on, for making its pool with matching types.
#[cfg(feature = "postgres")]
pub use sqlx;
#[cfg(feature = "test-util")]
pub use store::conformance;
pub use store::memory::MemoryStore;
#[cfg(feature = "postgres")]
pub use store::postgres::{InvalidSchemaName, PostgresStore, PostgresStoreBuilder, DEFAULT_SCHEMA};
#[cfg(feature = "test-util")]
pub use store::reference::ReferenceStore;
pub use store::webhooks::{
    Attempt, AttemptOutcome, Claim, Delivery, DeliveryStatus, FailReason, Lease, NextStep,
    WebhookStore,
};
pub use store::{LinkStats, LinkStore, OutcomeCounts, Page, Paged, MAX_PAGE};
pub use tokens::{
    token_from_url, Keyring, KeyringError, KeyringSecret, LinkBase, LinkToken, SessionToken,
    SigningKey, TokenError, KEY_LEN, MAX_KEYS,
};
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

/// The README's examples compile and run as doc tests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
