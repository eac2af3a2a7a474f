//! The JSON body of a webhook, in the Standard Webhooks shape.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::{
    AbandonReason, AccountId, Event, EventKind, LinkId, Metadata, Outcome, Reference, SessionId,
};

/// The body of a webhook: `{"type": ..., "timestamp": ..., "data": {...}}`.
///
/// `type` is the event's name ([`EventKind::name`]), `timestamp` the time of the change (RFC
/// 3339, UTC), and `data` the objects involved; fields that do not apply to a type are
/// omitted. The event's id is not in the body: it is the `webhook-id` header. Every delivery
/// attempt of an event sends the same bytes.
///
/// | `type` | `data` fields |
/// |---|---|
/// | `link.created` | `account_id`, `link_id` |
/// | `link.redeemed` | `account_id`, `link_id`, `session_id` |
/// | `session.completed` | `account_id`, `link_id`, `session_id`, `outcome` (`approved`, `denied`, `needs_review`) |
/// | `session.reviewed` | `account_id`, `link_id`, `session_id`, `decision` (`approved`, `denied`) |
/// | `session.handed_off` | `account_id`, `link_id`, `session_id` |
/// | `session.abandoned` | `account_id`, `link_id`, `session_id`, `reason` (`explicit`, `expired`) |
/// | `link.deactivated` | `account_id`, `link_id` |
/// | `link.exhausted` | `account_id`, `link_id` |
/// | `link.expired` | `account_id`, `link_id` |
/// | `link.redacted` | `account_id`, `link_id` |
/// | `session.redacted` | `account_id`, `link_id`, `session_id` |
/// | `credits.added` | `account_id`, `amount`, `balance` |
///
/// Every event about a link or its sessions also carries the owner's labels as they were when
/// it happened, each only when set: `reference` (the link's), `metadata` (the link's, an
/// object of strings) and, for session events, `session_reference` (the recipient of the
/// personal URL that started the session). Redaction erases them from stored events, so a
/// later retry of a delivery sends them no more.
///
/// A receiver parses it with `serde_json::from_slice::<WebhookPayload>(body)` after
/// verifying the signature.
///
/// # Examples
///
/// ```
/// use magic_link::webhooks::WebhookPayload;
///
/// let body = br#"{"type":"session.completed","timestamp":"2025-01-02T03:04:05Z",
///   "data":{"account_id":"67e55044-10b1-426f-9247-bb680e5fe0c8",
///           "link_id":"2f1c1e4a-3b9f-4a8e-9d2c-0d7b9d0e8a11",
///           "session_id":"9a0c0d6e-5f3b-4e2a-8c1d-7b6a5e4d3c2b","outcome":"approved"}}"#;
/// let payload: WebhookPayload = serde_json::from_slice(body)?;
/// assert_eq!(payload.kind, "session.completed");
/// assert_eq!(payload.data.outcome, Some(magic_link::Outcome::Approved));
/// # Ok::<(), serde_json::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct WebhookPayload {
    /// The event type: `link.redeemed`, `session.completed`, ...
    #[serde(rename = "type")]
    pub kind: String,
    /// When the change happened.
    pub timestamp: DateTime<Utc>,
    /// The objects involved.
    pub data: EventData,
}

/// The `data` of a [`WebhookPayload`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct EventData {
    /// The account whose objects changed.
    pub account_id: AccountId,
    /// The link.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub link_id: Option<LinkId>,
    /// The session.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_id: Option<SessionId>,
    /// A completed session's outcome.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outcome: Option<Outcome>,
    /// A reviewed session's final decision (`session.reviewed`): `approved` or `denied`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decision: Option<Outcome>,
    /// Why a session was abandoned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<AbandonReason>,
    /// Credits added.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub amount: Option<u64>,
    /// The balance after credits were added.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub balance: Option<u64>,
    /// The link's reference when the event happened ([`Labels`](crate::Labels)).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reference: Option<Reference>,
    /// The session's reference when the event happened: the recipient of the personal URL
    /// that started it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_reference: Option<Reference>,
    /// The link's metadata when the event happened.
    #[serde(default, skip_serializing_if = "Metadata::is_empty")]
    pub metadata: Metadata,
}

impl WebhookPayload {
    /// The payload of an outbox event.
    pub fn from_event(event: &Event) -> Self {
        let mut data = EventData {
            account_id: event.account,
            link_id: None,
            session_id: None,
            outcome: None,
            decision: None,
            reason: None,
            amount: None,
            balance: None,
            reference: event.labels.reference.clone(),
            session_reference: event.labels.session_reference.clone(),
            metadata: event.labels.metadata.clone(),
        };
        match &event.kind {
            EventKind::LinkCreated { link }
            | EventKind::LinkDeactivated { link }
            | EventKind::LinkExhausted { link }
            | EventKind::LinkExpired { link }
            | EventKind::LinkRedacted { link } => {
                data.link_id = Some(*link);
            }
            EventKind::LinkRedeemed { link, session }
            | EventKind::SessionHandedOff { link, session }
            | EventKind::SessionRedacted { link, session } => {
                data.link_id = Some(*link);
                data.session_id = Some(*session);
            }
            EventKind::SessionCompleted {
                link,
                session,
                outcome,
            } => {
                data.link_id = Some(*link);
                data.session_id = Some(*session);
                data.outcome = Some(*outcome);
            }
            EventKind::SessionReviewed {
                link,
                session,
                decision,
            } => {
                data.link_id = Some(*link);
                data.session_id = Some(*session);
                data.decision = Some(*decision);
            }
            EventKind::SessionAbandoned {
                link,
                session,
                reason,
            } => {
                data.link_id = Some(*link);
                data.session_id = Some(*session);
                data.reason = Some(*reason);
            }
            EventKind::CreditsAdded { amount, balance } => {
                data.amount = Some(*amount);
                data.balance = Some(*balance);
            }
        }
        Self {
            kind: event.kind.name().to_owned(),
            timestamp: event.at,
            data,
        }
    }

    /// The JSON bytes that are signed and sent.
    pub fn to_json(&self) -> Vec<u8> {
        // Only strings, numbers and ids: serialising cannot fail.
        serde_json::to_vec(self).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::EventId;

    fn event(kind: EventKind) -> Event {
        Event {
            seq: 1,
            id: EventId::new(),
            account: AccountId::from_bytes([1; 16]),
            at: DateTime::from_timestamp(1_700_000_000, 123_000).unwrap(),
            kind,
            labels: crate::Labels::default(),
        }
    }

    #[test]
    fn session_completed_has_the_standard_shape() {
        let link = LinkId::from_bytes([2; 16]);
        let session = SessionId::from_bytes([3; 16]);
        let payload = WebhookPayload::from_event(&event(EventKind::SessionCompleted {
            link,
            session,
            outcome: Outcome::NeedsReview,
        }));
        let json: serde_json::Value = serde_json::from_slice(&payload.to_json()).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "type": "session.completed",
                "timestamp": "2023-11-14T22:13:20.000123Z",
                "data": {
                    "account_id": "01010101-0101-0101-0101-010101010101",
                    "link_id": "02020202-0202-0202-0202-020202020202",
                    "session_id": "03030303-0303-0303-0303-030303030303",
                    "outcome": "needs_review",
                }
            })
        );
        let back: WebhookPayload = serde_json::from_slice(&payload.to_json()).unwrap();
        assert_eq!(back, payload);
    }

    #[test]
    fn every_kind_names_its_objects() {
        let link = LinkId::new();
        let session = SessionId::new();
        let cases = [
            (EventKind::LinkCreated { link }, "link.created", 2),
            (
                EventKind::LinkRedeemed { link, session },
                "link.redeemed",
                3,
            ),
            (
                EventKind::SessionAbandoned {
                    link,
                    session,
                    reason: AbandonReason::Expired,
                },
                "session.abandoned",
                4,
            ),
            (
                EventKind::SessionReviewed {
                    link,
                    session,
                    decision: Outcome::Denied,
                },
                "session.reviewed",
                4,
            ),
            (EventKind::LinkDeactivated { link }, "link.deactivated", 2),
            (EventKind::LinkExhausted { link }, "link.exhausted", 2),
            (EventKind::LinkExpired { link }, "link.expired", 2),
            (
                EventKind::CreditsAdded {
                    amount: 5,
                    balance: 7,
                },
                "credits.added",
                3,
            ),
        ];
        for (kind, name, fields) in cases {
            let json: serde_json::Value =
                serde_json::from_slice(&WebhookPayload::from_event(&event(kind)).to_json())
                    .unwrap();
            assert_eq!(json["type"], name);
            if name == "session.reviewed" {
                assert_eq!(json["data"]["decision"], "denied");
            }
            assert_eq!(json["data"].as_object().unwrap().len(), fields, "{json}");
        }
    }
}
