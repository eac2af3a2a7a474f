//! Events: every state change appends one to the store's outbox, in the same atomic step.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::webhooks::EventType;
use crate::{AbandonReason, AccountId, EventId, LinkId, Metadata, Outcome, Reference, SessionId};

/// What happened. Each state-changing operation emits exactly one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type")]
#[non_exhaustive]
pub enum EventKind {
    /// A link was created.
    #[serde(rename = "link.created")]
    LinkCreated {
        /// The link.
        link: LinkId,
    },
    /// A link was redeemed: a use was consumed, a credit held and a session started.
    #[serde(rename = "link.redeemed")]
    LinkRedeemed {
        /// The link.
        link: LinkId,
        /// The session started.
        session: SessionId,
    },
    /// A session completed; its credit was billed.
    #[serde(rename = "session.completed")]
    SessionCompleted {
        /// The link.
        link: LinkId,
        /// The session.
        session: SessionId,
        /// The verification's result.
        outcome: Outcome,
    },
    /// The owner recorded the final decision on a session that completed with
    /// [`Outcome::NeedsReview`] ([`MagicLinks::review_session`](crate::MagicLinks::review_session)).
    /// Bills nothing: the credit was captured when the session completed. Written once per
    /// session.
    #[serde(rename = "session.reviewed")]
    SessionReviewed {
        /// The link.
        link: LinkId,
        /// The session.
        session: SessionId,
        /// The decision: [`Outcome::Approved`] or [`Outcome::Denied`].
        decision: Outcome,
    },
    /// A session was abandoned; its credit was released.
    #[serde(rename = "session.abandoned")]
    SessionAbandoned {
        /// The link.
        link: LinkId,
        /// The session.
        session: SessionId,
        /// Why.
        reason: AbandonReason,
    },
    /// A session was handed off to another device: a hand-off token was accepted
    /// ([`MagicLinks::accept_handoff`](crate::MagicLinks::accept_handoff)). Consumes no use and
    /// no credit.
    #[serde(rename = "session.handed_off")]
    SessionHandedOff {
        /// The link.
        link: LinkId,
        /// The session.
        session: SessionId,
    },
    /// A link was deactivated (final).
    #[serde(rename = "link.deactivated")]
    LinkDeactivated {
        /// The link.
        link: LinkId,
    },
    /// A redemption took the link's last use: it can start no more sessions. Written in the
    /// same atomic step as that redemption's `link.redeemed`.
    #[serde(rename = "link.exhausted")]
    LinkExhausted {
        /// The link.
        link: LinkId,
    },
    /// The link's expiry passed: it can start no more sessions. Written once per link, by the
    /// expiry sweep ([`MagicLinks::expire_links`](crate::MagicLinks::expire_links)), and never
    /// for a link deactivated before the sweep found it expired.
    #[serde(rename = "link.expired")]
    LinkExpired {
        /// The link.
        link: LinkId,
    },
    /// A link's reference and metadata were erased
    /// ([`MagicLinks::redact_link`](crate::MagicLinks::redact_link)); so were those of its
    /// sessions, and the labels of every stored event about them.
    #[serde(rename = "link.redacted")]
    LinkRedacted {
        /// The link.
        link: LinkId,
    },
    /// A session's reference was erased
    /// ([`MagicLinks::redact_session`](crate::MagicLinks::redact_session)), with the labels of
    /// every stored event about it.
    #[serde(rename = "session.redacted")]
    SessionRedacted {
        /// The link.
        link: LinkId,
        /// The session.
        session: SessionId,
    },
    /// Credits were added to the account.
    #[serde(rename = "credits.added")]
    CreditsAdded {
        /// Credits added.
        amount: u64,
        /// The balance afterwards.
        balance: u64,
    },
}

impl EventKind {
    /// The link the event is about, if any.
    pub fn link(&self) -> Option<LinkId> {
        match self {
            Self::LinkCreated { link }
            | Self::LinkRedeemed { link, .. }
            | Self::SessionCompleted { link, .. }
            | Self::SessionReviewed { link, .. }
            | Self::SessionAbandoned { link, .. }
            | Self::SessionHandedOff { link, .. }
            | Self::LinkDeactivated { link }
            | Self::LinkExhausted { link }
            | Self::LinkExpired { link }
            | Self::LinkRedacted { link }
            | Self::SessionRedacted { link, .. } => Some(*link),
            Self::CreditsAdded { .. } => None,
        }
    }

    /// The session the event is about, if any.
    pub fn session(&self) -> Option<SessionId> {
        match self {
            Self::LinkRedeemed { session, .. }
            | Self::SessionCompleted { session, .. }
            | Self::SessionReviewed { session, .. }
            | Self::SessionAbandoned { session, .. }
            | Self::SessionHandedOff { session, .. }
            | Self::SessionRedacted { session, .. } => Some(*session),
            _ => None,
        }
    }

    /// The event type's name, as webhooks send it (`link.redeemed`, `session.completed`, ...).
    pub fn name(&self) -> &'static str {
        self.event_type().name()
    }

    /// The event's type, which an endpoint chooses to receive or not.
    pub fn event_type(&self) -> EventType {
        EventType::of(self)
    }
}

/// An event in the outbox.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    /// Position in the store's outbox: increasing, assigned by the store. Read the outbox after
    /// a cursor with [`LinkStore::outbox_after`](crate::store::LinkStore::outbox_after).
    pub seq: u64,
    /// Unique id; webhooks send it as `webhook-id`.
    pub id: EventId,
    /// The account whose objects changed.
    pub account: AccountId,
    /// When the change happened.
    pub at: DateTime<Utc>,
    /// What happened.
    #[serde(flatten)]
    pub kind: EventKind,
    /// The owner's labels of the event's link and session as they were when it happened
    /// (redaction erases them here too). Absent from JSON while empty.
    #[serde(default, skip_serializing_if = "Labels::is_empty")]
    pub labels: Labels,
}

/// The owner's labels of an event's link and session: what a webhook receiver ties the event
/// to its own records with.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Labels {
    /// The link's [`Reference`](crate::Reference).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reference: Option<Reference>,
    /// The session's reference: the recipient of the personal URL that started it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_reference: Option<Reference>,
    /// The link's [`Metadata`](crate::Metadata).
    #[serde(default, skip_serializing_if = "Metadata::is_empty")]
    pub metadata: Metadata,
}

impl Labels {
    /// Whether there are no labels.
    pub fn is_empty(&self) -> bool {
        self.reference.is_none() && self.session_reference.is_none() && self.metadata.is_empty()
    }
}
