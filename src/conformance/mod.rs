//! The conformance suite: checks that a store keeps every rule, for the crate's own stores and
//! for third-party ones.
//!
//! **Not a stable part of the public API.** The checks grow and change with the rules, in
//! minor versions too; pin the crate's version in a store's test dependencies.
//!
//! Each check is a plain `async fn` taking a store, so any implementation, including a
//! third-party one, runs the same suite:
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! let store = magic_link::store::MemoryStore::new();
//! magic_link::conformance::run_all(&store).await;
//! magic_link::conformance::delivery::run_all(&store).await;
//! # }
//! ```
//!
//! The checks create their own accounts and links with fresh ids, so they can share one store
//! and run in any order. They panic, with a message naming the rule, when a store breaks one.
//!
//! What is here:
//!
//! - the core suite of [`LinkStore`](crate::store::LinkStore) checks ([`run_all`] and the
//!   checks it runs), with its fixtures ([`epoch`], [`account_with`], [`link_with`]);
//! - [`race`]: many tasks redeeming one link at once; [`review_race`]: many tasks reviewing
//!   one session at once; [`keyed_race`]: many tasks redeeming one link with start keys;
//!   [`handoff_race`]: many tasks accepting one hand-off;
//! - the model test: [`compare_with_model`] replays random [`Op`] sequences against a store and
//!   the [`ReferenceStore`], the rules applied to plain maps, and compares them after every
//!   step;
//! - [`delivery`]: the suite for [`WebhookStore`](crate::store::WebhookStore) implementations,
//!   ending with [`retention`], the check of
//!   [`LinkStore::prune`](crate::store::LinkStore::prune) (it needs a store that is both);
//! - the delivery model test: [`compare_delivery_with_model`] replays random [`DeliveryOp`]
//!   sequences against a webhook store and a simple model of the delivery state that applies
//!   the [delivery rules](crate::webhooks::rules), and compares them after every step. The
//!   same model is the [`ReferenceStore`]'s webhook half.

pub mod delivery;
mod delivery_model;
mod fixtures;
mod labels;
mod links;
mod model;
mod profile;
mod race;
mod reference;
mod retention;
mod review;
mod start;

pub use delivery_model::{compare_delivery_with_model, AttemptReply, DeliveryOp, RetryAfterHeader};
pub use fixtures::{account_with, epoch, link_with};
pub use labels::{redaction, references_and_labels};
pub use links::*;
pub use model::{compare_with_model, Op};
pub use profile::profiles_and_return_secrets;
pub use race::{race, RaceReport};
pub use reference::ReferenceStore;
pub use retention::retention;
pub use review::{review_decides_once, review_race, ReviewRaceReport};
pub use start::{handoff_race, handoffs, keyed_race, keyed_starts, KeyedRaceReport};
