//! placeholder

/// The conformance suite for [`WebhookStore`](crate::WebhookStore) implementations.
pub use super::delivery_conformance as delivery;
