//! Identity-verification Magic Links.
//!
//! A Magic Link is a URL that lets a person start an identity verification at once, with no
//! login and no account. A link is single-use, multi-use (N uses) or unlimited, may expire,
//! and can be deactivated, never extended. Each start ([redemption](MagicLinks::redeem))
//! consumes a use even if the person quits; the account is billed a credit only when the
//! verification [completes](MagicLinks::complete_session).
//!
//! The crate is a storage-agnostic core. Its items are grouped by who uses them:
//!
//! | module | what it holds | who uses it |
//! |---|---|---|
//! | the crate root | the [`MagicLinks`] facade, its inputs and outputs ([`NewLink`], [`CreatedLink`], [`Inspection`], [`Redemption`], [`Page`], ...), the domain ([`Link`], [`Session`], [`Account`], [`Event`], ids) and [`Error`] | every host service, every day |
//! | [`tokens`] | signed link and session tokens, the [`Keyring`](tokens::Keyring) that signs them with key rotation, link URLs | host services (setup), and anyone reading a token |
//! | [`clock`] | the [`Clock`](clock::Clock) trait, the system clock and a manual clock for tests | host services and tests |
//! | [`store`] | the [`LinkStore`](store::LinkStore) and [`WebhookStore`](store::WebhookStore) traits, [`MemoryStore`](store::MemoryStore) and `PostgresStore` | choosing a store; implementing one |
//! | [`webhooks`] | Standard Webhooks signing and verification, payloads, endpoints, the [`Dispatcher`](webhooks::Dispatcher), transports and delivery state | webhook senders and receivers |
//! | [`returns`] | signed return URLs: the [`ReturnUrl`](returns::ReturnUrl) a person is sent to after a verification, allowed [origins](returns::ReturnOrigin), per-account [secrets](returns::ReturnSecrets), and the [`ReturnVerifier`](returns::ReturnVerifier) for the owner's site | host services (setup), link owners' sites |
//! | [`start`] | start keys and the [`Start`](start::Start) that [`MagicLinks::redeem`] takes (idempotent starts, form tokens), hand-offs to a phone | landing and flow pages |
//! | [`funnel`] | landing-page views by kind ([`ViewKind`](funnel::ViewKind)), the top of a link's funnel in [`LinkStats`] | landing pages, dashboards |
//! | [`rules`] | the rules as pure functions with `now` passed in | store implementers, model tests |
//! | `qr` | QR codes of link URLs (feature `qr`) | pages that show a link |
//! | `live` | the `Subscription` of an account's events that `MagicLinks::subscribe` returns, for live pages (feature `background`) | host services with live pages |
//! | `testing` | a test kit for services that use the crate: a ready facade on the in-memory store, a recording webhook transport, deterministic ids (feature `test-util`; a stable API); the README's section *Testing your integration* walks through it | host services' tests |
//! | `conformance` | the conformance suite and reference model (feature `test-util`; not a stable API) | store implementers' tests |
//!
//! A link URL carries a [link token](tokens::LinkToken): the link's id and expiry, signed with
//! HMAC-SHA256 by a key that only the host service holds. Nothing about a token is stored, and
//! a forged, altered or expired token is rejected before any store access.
//!
//! Opening a link must never consume it: email scanners open links before people do. A landing
//! page calls [`MagicLinks::inspect`] on GET and HEAD; only an explicit POST calls
//! [`MagicLinks::redeem`], which returns the new session and its
//! [session token](tokens::SessionToken) for the verification flow page. With a
//! [start key](start::StartKey) from the browser's cookie a start is idempotent, and with the
//! landing page's [form token](tokens::FormToken) it works only from a browser that loaded the
//! page; a session can move to a phone with a [hand-off](MagicLinks::handoff) (see
//! [`start`]).
//!
//! # Examples
//!
//! ```
//! use magic_link::start::Start;
//! use magic_link::store::MemoryStore;
//! use magic_link::tokens::{token_from_url, Keyring, LinkBase};
//! use magic_link::{AccountId, Flow, IdempotencyKey, MagicLinks, NewLink, Rejection};
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
//! links.redeem(token, Start::new()).await?;
//! let again = links.redeem(token, Start::new()).await.unwrap_err();
//! assert_eq!(again.rejection(), Some(Rejection::Exhausted));
//! # Ok(()) }
//! ```
//!
//! # Testing your integration
//!
//! A service's own tests run on the in-memory store with the kit in `magic_link::testing`
//! (feature `test-util`): the README's section *Testing your integration*
//! ([README.md](https://docs.rs/crate/magic-link/latest/source/README.md), included in the
//! package) and the module's docs show how, and `tests/testing_kit.rs` in the repository is a
//! complete file to copy.
//!
//! # Features
//!
//! None is on by default: the default build does no I/O.
//!
#![doc = document_features::document_features!()]
#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![warn(missing_debug_implementations, unreachable_pub)]
#![cfg_attr(docsrs, feature(doc_cfg))]

#[cfg(feature = "background")]
mod background;
pub mod clock;
#[cfg(feature = "test-util")]
#[cfg_attr(docsrs, doc(cfg(feature = "test-util")))]
pub mod conformance;
mod credits;
mod error;
mod events;
mod facade;
pub mod funnel;
mod ids;
mod links;
#[cfg(feature = "background")]
#[cfg_attr(docsrs, doc(cfg(feature = "background")))]
pub mod live;
mod page;
#[cfg(feature = "qr")]
#[cfg_attr(docsrs, doc(cfg(feature = "qr")))]
pub mod qr;
mod references;
mod retention;
pub mod returns;
pub mod rules;
mod sessions;
pub mod start;
mod stats;
pub mod store;
#[cfg(feature = "test-util")]
#[cfg_attr(docsrs, doc(cfg(feature = "test-util")))]
pub mod testing;
pub mod tokens;
pub mod webhooks;

pub use credits::{Account, AccountProfile, IdempotencyKey, LedgerEntry, LedgerKind};
pub use error::{Error, InvalidInput, Rejection};
pub use events::{Event, EventKind, Labels};
pub use facade::{CreatedLink, Inspection, MagicLinks, Redemption};
pub use ids::{AccountId, EventId, LinkId, SessionId};
pub use links::{Flow, Language, Link, LinkStatus, NewLink, UsageLimit};
pub use page::{Page, Paged};
pub use references::{Metadata, Reference};
pub use retention::Pruned;
pub use sessions::{AbandonReason, Outcome, Session, SessionStatus, SessionTtl};
pub use stats::{LinkStats, OutcomeCounts, PrunedTally};

/// The README's examples compile and run as doc tests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
