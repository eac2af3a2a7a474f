//! The delivery state of outbox events: what a [`WebhookStore`](crate::store::WebhookStore)
//! keeps and a [`Dispatcher`](super::Dispatcher) reads and records.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::webhooks::Endpoint;
use crate::{AccountId, Event, EventId};

/// The delivery of one outbox event to its account's endpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Delivery {
    /// The event, whose id is the `webhook-id`.
    pub event: EventId,
    /// The event's position in the outbox.
    pub seq: u64,
    /// The account whose endpoint receives it.
    pub account: AccountId,
    /// Where it stands.
    pub status: DeliveryStatus,
    /// Attempts recorded so far (since it was queued or last re-queued).
    pub attempts: u32,
    /// The last attempt recorded.
    pub last_attempt: Option<Attempt>,
    /// While a dispatcher holds it: when that lease runs out.
    pub leased_until: Option<DateTime<Utc>>,
    /// When it was queued (or last re-queued).
    pub queued_at: DateTime<Utc>,
}

/// Where a delivery stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum DeliveryStatus {
    /// To be attempted at or after `next_attempt_at`.
    Pending {
        /// When the next attempt is due.
        next_attempt_at: DateTime<Utc>,
    },
    /// A `2xx` was received.
    Delivered {
        /// When.
        at: DateTime<Utc>,
    },
    /// Given up on; kept, and can be [re-queued](crate::store::WebhookStore::requeue).
    Failed {
        /// When.
        at: DateTime<Utc>,
        /// Why.
        reason: FailReason,
    },
}

/// Why a delivery failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum FailReason {
    /// Every attempt of the retry schedule failed.
    Exhausted,
    /// The endpoint is disabled (by its owner, or because it answered `410 Gone`).
    EndpointDisabled,
}

/// One recorded delivery attempt.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attempt {
    /// 1 for the first attempt, counting from when the delivery was queued or re-queued.
    pub number: u32,
    /// When the attempt ended.
    pub at: DateTime<Utc>,
    /// What happened.
    pub outcome: AttemptOutcome,
}

/// What one attempt got.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
#[non_exhaustive]
pub enum AttemptOutcome {
    /// An HTTP response with this status.
    Status {
        /// The status code.
        code: u16,
    },
    /// No response within the timeout.
    Timeout,
    /// No response: the request failed before one came.
    Transport {
        /// What kind of failure, never the error's text: a raw message could hold the URL,
        /// or tell an endpoint's owner why a port is closed.
        failure: TransportFailure,
    },
}

/// The kind of failure of a request that got no response: what a delivery records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum TransportFailure {
    /// The connection was refused or reset.
    Refused,
    /// The TLS handshake failed (certificate, protocol).
    Tls,
    /// The transport refused the endpoint's address: not public and not allowed
    /// ([`TransportError::Blocked`](super::TransportError::Blocked)). Nothing was sent.
    Blocked,
    /// Any other failure (name resolution, I/O, a transport of your own).
    Other,
}

impl TransportFailure {
    /// The name stored and shown: `refused`, `tls`, `blocked` or `other`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Refused => "refused",
            Self::Tls => "tls",
            Self::Blocked => "blocked",
            Self::Other => "other",
        }
    }

    /// The failure named `name`; any other text (such as a raw message stored by an earlier
    /// version) reads as [`Other`](Self::Other).
    pub fn from_name(name: &str) -> Self {
        match name {
            "refused" => Self::Refused,
            "tls" => Self::Tls,
            "blocked" => Self::Blocked,
            _ => Self::Other,
        }
    }
}

/// A dispatcher's exclusive hold on one due delivery, from
/// [`claim_due`](crate::store::WebhookStore::claim_due) until it records the attempt or `until` passes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Lease {
    /// Unique per claim.
    pub id: Uuid,
    /// The event being delivered.
    pub event: EventId,
    /// The number this attempt will have.
    pub attempt: u32,
    /// When the lease runs out and another dispatcher may claim the delivery.
    pub until: DateTime<Utc>,
}

/// A claimed delivery: what a dispatcher needs to make one attempt.
#[derive(Debug, Clone)]
pub struct Claim {
    /// The lease to record the attempt under.
    pub lease: Lease,
    /// The event to send.
    pub event: Event,
    /// Where to send it and the secrets to sign it with.
    pub endpoint: Endpoint,
}

/// What happens after an attempt; see [`record_attempt`](crate::store::WebhookStore::record_attempt).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[non_exhaustive]
pub enum NextStep {
    /// The receiver answered `2xx`: the delivery is done.
    Delivered,
    /// Try again at this time.
    RetryAt(DateTime<Utc>),
    /// The retry schedule is used up: the delivery fails (and is kept).
    GiveUp,
    /// The receiver answered `410 Gone`: the endpoint is disabled and every pending delivery
    /// of its account, this one included, fails.
    ///
    /// Only if the account's endpoint is still the one the attempt was sent to (same
    /// [`version`](crate::webhooks::Endpoint::version)): if its owner replaced it meanwhile,
    /// the old URL's `410` says nothing about the new one, and the delivery is instead due
    /// again at once, for the new endpoint.
    DisableEndpoint {
        /// The [`version`](crate::webhooks::Endpoint::version) of the endpoint the attempt
        /// went to.
        endpoint_version: u64,
    },
}
