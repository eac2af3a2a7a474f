//! For webhook senders and receivers: outgoing webhooks in the Standard Webhooks form, their
//! delivery, and their verification on the receiving side.
//!
//! - Receiving (the customer's backend): [`WebhookVerifier`] checks the `webhook-*` headers
//!   ([`WebhookHeaders`]) of a request against its body, then [`WebhookPayload`] parses it.
//! - Sending (the host service): an account's [`Endpoint`] with its [`WebhookSecret`]s, the
//!   [`Dispatcher`] that delivers the outbox at least once through a [`Transport`] (such as
//!   `HttpTransport`, feature `http`), and the delivery state it keeps in a
//!   [`WebhookStore`](crate::store::WebhookStore): [`Delivery`], [`Lease`], [`Attempt`], ...
//! - The delivery [`rules`] as pure functions, for the dispatcher, stores and model tests.
//! - Where webhooks may go: endpoint URLs are customer input, so `HttpTransport` sends only to
//!   [global](is_global) addresses and to those an [`AllowList`] names.

mod delivery;
mod dispatcher;
mod endpoint;
mod event_type;
#[cfg(feature = "http")]
mod http;
mod network;
mod payload;
pub mod rules;
mod signing;
mod transport;

pub use delivery::{
    Attempt, AttemptOutcome, Claim, Delivery, DeliveryStatus, FailReason, Lease, NextStep,
    TransportFailure,
};
pub use dispatcher::{DispatchReport, Dispatcher, RetrySchedule, DEFAULT_TIMEOUT};
pub use endpoint::{Endpoint, MAX_WEBHOOK_SECRETS, MAX_WEBHOOK_URL_LEN};
pub use event_type::EventType;
#[cfg(feature = "http")]
#[cfg_attr(docsrs, doc(cfg(feature = "http")))]
pub use http::{HttpTransport, HttpTransportBuilder};
pub use network::{is_global, AllowList, AllowListError, IpNetwork};
pub use payload::{EventData, WebhookPayload};
pub use signing::{
    signature_header, Signature, WebhookError, WebhookHeaders, WebhookSecret, WebhookVerifier,
    DEFAULT_TOLERANCE, WEBHOOK_ID_HEADER, WEBHOOK_SIGNATURE_HEADER, WEBHOOK_TIMESTAMP_HEADER,
};
pub use transport::{Transport, TransportError, WebhookRequest, WebhookResponse};
