//! Verification sessions, created by redemptions.

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

use crate::{AccountId, Flow, InvalidInput, Language, LinkId, Reference, SessionId};

/// The result of a completed verification, reported by the host service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Outcome {
    /// The identity was verified.
    Approved,
    /// The identity was not verified.
    Denied,
    /// A person must review the case.
    NeedsReview,
}

impl Outcome {
    /// Every outcome, in a fixed order.
    pub const ALL: [Outcome; 3] = [Self::Approved, Self::Denied, Self::NeedsReview];

    /// The outcome's name as it appears in JSON (`approved`, `denied`, `needs_review`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Approved => "approved",
            Self::Denied => "denied",
            Self::NeedsReview => "needs_review",
        }
    }
}

/// Why a session was abandoned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AbandonReason {
    /// The host service (or the person) gave up explicitly.
    Explicit,
    /// The session's time to live passed before it completed.
    Expired,
}

/// Where a session stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum SessionStatus {
    /// Started by a redemption; a credit is held.
    Started,
    /// Completed with an outcome; the held credit was captured (billed).
    Completed {
        /// The verification's result.
        outcome: Outcome,
        /// When it completed.
        at: DateTime<Utc>,
    },
    /// Abandoned; the held credit was released.
    Abandoned {
        /// Why.
        reason: AbandonReason,
        /// When.
        at: DateTime<Utc>,
    },
}

/// A verification session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Session {
    /// The session's id.
    pub id: SessionId,
    /// The account that owns the link (and pays for the session).
    pub account: AccountId,
    /// The link redeemed.
    pub link: LinkId,
    /// The redemption's ordinal on its link: 1 for the first, and so on.
    pub number: u64,
    /// The steps, copied from the link.
    pub flow: Flow,
    /// The interface language, copied from the link.
    pub language: Language,
    /// Where it stands.
    pub status: SessionStatus,
    /// When the redemption happened.
    pub started_at: DateTime<Utc>,
    /// When a session still started is abandoned as expired.
    pub expires_at: DateTime<Utc>,
    /// The owner's final decision on a session that completed with [`Outcome::NeedsReview`]
    /// ([`Outcome::Approved`] or [`Outcome::Denied`]), once recorded by
    /// [`MagicLinks::review_session`](crate::MagicLinks::review_session); `None` before. The
    /// outcome at completion stays in [`status`](Self::status). Absent from JSON while `None`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decision: Option<Outcome>,
    /// When the decision was recorded; set together with [`decision`](Self::decision).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reviewed_at: Option<DateTime<Utc>>,
    /// The recipient's reference, for a session started from a personal URL
    /// ([`MagicLinks::personal_url`](crate::MagicLinks::personal_url)); `None` for the link's
    /// shared URL, and after redaction. Absent from JSON while `None`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reference: Option<Reference>,
    /// When the session's reference was erased
    /// ([`MagicLinks::redact_session`](crate::MagicLinks::redact_session), or its link's
    /// redaction). Absent from JSON while `None`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redacted_at: Option<DateTime<Utc>>,
}

impl Session {
    /// Whether the session is still started (neither completed nor abandoned).
    pub fn is_open(&self) -> bool {
        matches!(self.status, SessionStatus::Started)
    }

    /// Whether it completed with [`Outcome::NeedsReview`] and waits for the owner's decision.
    pub fn awaits_review(&self) -> bool {
        self.decision.is_none()
            && matches!(
                self.status,
                SessionStatus::Completed {
                    outcome: Outcome::NeedsReview,
                    ..
                }
            )
    }

    /// Whether an open session is past its time to live at `now`.
    pub fn is_stale(&self, now: DateTime<Utc>) -> bool {
        self.is_open() && now >= self.expires_at
    }
}

/// How long a started session may stay open before it is abandoned as expired.
///
/// Between one second and one year; the default is 24 hours.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "i64", into = "i64")]
pub struct SessionTtl(i64);

impl SessionTtl {
    const MAX_SECONDS: i64 = 366 * 24 * 3600;

    /// Validates a time to live.
    ///
    /// # Errors
    ///
    /// [`InvalidInput::InvalidTtl`] unless `1 s <= ttl <= 366 days`.
    pub fn new(ttl: Duration) -> Result<Self, InvalidInput> {
        Self::try_from(ttl.num_seconds())
    }

    /// The time to live.
    pub fn duration(self) -> Duration {
        Duration::seconds(self.0)
    }
}

impl Default for SessionTtl {
    fn default() -> Self {
        Self(24 * 3600)
    }
}

impl TryFrom<i64> for SessionTtl {
    type Error = InvalidInput;

    fn try_from(seconds: i64) -> Result<Self, Self::Error> {
        if (1..=Self::MAX_SECONDS).contains(&seconds) {
            Ok(Self(seconds))
        } else {
            Err(InvalidInput::InvalidTtl)
        }
    }
}

impl From<SessionTtl> for i64 {
    fn from(ttl: SessionTtl) -> Self {
        ttl.0
    }
}
