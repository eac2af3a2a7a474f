//! For store implementers and for choosing a store: the storage contract and its
//! implementations.
//!
//! [`LinkStore`] is made of the atomic operations the rules need (redeem, complete, abandon,
//! deactivate, top up, ...), never of blind reads and writes: a store must never let a caller
//! read a link in one step and write it back in another. Each operation that changes state
//! applies the pure functions of [`rules`](crate::rules) and appends the events they return to
//! the outbox in the same atomic step. [`WebhookStore`] adds webhook endpoints and the delivery
//! state that a [`Dispatcher`](crate::webhooks::Dispatcher) needs. [`Changes`] wakes those who
//! wait for committed changes (a dispatcher, a live page) with a [`ChangeSignal`].
//!
//! - [`MemoryStore`]: the embedded default, for tests and single-process services.
//! - `PostgresStore` (feature `postgres`): shared by the instances of a service that runs on
//!   more than one machine.
//!
//! A store of your own proves that it keeps the rules with the conformance suite
//! (`magic_link::conformance`, feature `test-util`).

mod arc;
mod changes;
mod id_source;
mod link_store;
pub(crate) mod memory;
#[cfg(feature = "postgres")]
pub(crate) mod postgres;
mod webhook_store;

pub use changes::{ChangeListener, ChangeSignal, Changed, Changes};
pub use id_source::IdSource;
pub use link_store::{LinkStore, MAX_BY_REFERENCE};
pub use memory::MemoryStore;
#[cfg(feature = "postgres")]
#[cfg_attr(docsrs, doc(cfg(feature = "postgres")))]
pub use postgres::{InvalidSchemaName, PostgresStore, PostgresStoreBuilder, DEFAULT_SCHEMA};
/// The sqlx crate that [`PostgresStore`] is built on, for making its pool with matching types.
#[cfg(feature = "postgres")]
#[cfg_attr(docsrs, doc(cfg(feature = "postgres")))]
pub use sqlx;
pub use webhook_store::WebhookStore;
