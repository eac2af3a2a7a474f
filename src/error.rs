//! Errors: domain rejections, invalid input, and infrastructure failures, kept apart.

use std::error::Error as StdError;

use crate::tokens::TokenError;

/// Why the rules refused an operation. A rejection changes nothing.
///
/// Rejections are normal outcomes that a service shows to people ("this link has been used
/// up"), not failures of the system.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
#[non_exhaustive]
pub enum Rejection {
    /// No such object for this caller. Also returned for another account's objects, so that
    /// callers cannot learn which ids exist.
    #[error("not found")]
    NotFound,
    /// The link was deactivated by its owner.
    #[error("the link has been deactivated")]
    Deactivated,
    /// The link's expiry time has passed (`now >= expires_at`).
    #[error("the link has expired")]
    Expired,
    /// The link has reached its usage limit.
    #[error("the link has been used up")]
    Exhausted,
    /// The account has no available credit (`balance - held < 1`).
    #[error("the account has no available credit")]
    NoCredits,
    /// The session was abandoned (or timed out); it can no longer be completed.
    #[error("the session was abandoned")]
    SessionAbandoned,
    /// The session is already completed; it can no longer be abandoned.
    #[error("the session is already completed")]
    SessionCompleted,
    /// The session is already completed with a different outcome.
    #[error("the session is already completed with another outcome")]
    OutcomeConflict,
    /// The session's time to live has passed; it is abandoned by the next sweep.
    #[error("the session has expired")]
    SessionExpired,
    /// A top-up reused an idempotency key with a different amount.
    #[error("the idempotency key was already used for a different top-up")]
    IdempotencyConflict,
    /// A review of a session that did not complete with
    /// [`Outcome::NeedsReview`](crate::Outcome::NeedsReview) (it is open, abandoned, or
    /// completed with another outcome).
    #[error("the session is not waiting for a review")]
    NotUnderReview,
    /// The session was already reviewed with the other decision; a decision is final.
    #[error("the session was already reviewed with another decision")]
    ReviewConflict,
    /// A hand-off token that was already accepted: a hand-off is single-use.
    #[error("the hand-off was already used")]
    HandoffUsed,
}

/// Input that fails validation. Returned before anything is stored.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum InvalidInput {
    /// The link name is empty or only white space.
    #[error("the link name is empty")]
    EmptyName,
    /// The link name is longer than [`Link::MAX_NAME_CHARS`](crate::Link::MAX_NAME_CHARS) characters.
    #[error("the link name is longer than {max} characters")]
    NameTooLong {
        /// The limit.
        max: usize,
    },
    /// The link name contains control characters.
    #[error("the link name contains control characters")]
    NameControlCharacter,
    /// A multi-use limit of zero uses.
    #[error("a multi-use link needs at least one use")]
    ZeroUses,
    /// The expiry is not in the future.
    #[error("the expiry time is not in the future")]
    ExpiryInPast,
    /// The language is not a well-formed BCP 47 tag.
    #[error("the language is not a well-formed BCP 47 language tag")]
    InvalidLanguage,
    /// A top-up of zero credits.
    #[error("a top-up must add at least one credit")]
    ZeroAmount,
    /// The amount would overflow the balance.
    #[error("the amount would overflow the balance")]
    Overflow,
    /// An idempotency key that is empty, too long or not printable ASCII.
    #[error("the idempotency key must be 1 to {max} printable ASCII characters")]
    InvalidIdempotencyKey {
        /// The limit.
        max: usize,
    },
    /// A session time to live that is zero, negative or too long.
    #[error("the session time to live must be positive and at most one year")]
    InvalidTtl,
    /// A link base URL that is not an absolute `https`/`http` URL without query or fragment.
    #[error("the link base URL must be an absolute https or http URL without query or fragment")]
    InvalidLinkBase,
    /// A webhook endpoint URL that is not an absolute `http` or `https` URL with a host and no
    /// user information, of at most [`MAX_WEBHOOK_URL_LEN`](crate::webhooks::MAX_WEBHOOK_URL_LEN)
    /// bytes, without white space or control characters (see
    /// [`Endpoint::new`](crate::webhooks::Endpoint::new)). The URL itself is not repeated: it
    /// may hold a secret.
    #[error("the webhook URL must be an absolute http or https URL")]
    InvalidWebhookUrl,
    /// A return URL that is not an absolute `https` URL (or `http` to `localhost`, `127.0.0.1`
    /// or `[::1]`) with a host, without user information or fragment, of at most
    /// [`MAX_RETURN_URL_LEN`](crate::returns::MAX_RETURN_URL_LEN) bytes, without white space or
    /// control characters, whose query does not already use a name that
    /// [`ReturnUrl::signed`](crate::returns::ReturnUrl::signed) appends (see
    /// [`ReturnUrl::parse`](crate::returns::ReturnUrl::parse)). The URL itself is not repeated.
    #[error("the return URL must be an absolute https URL (http only to localhost) without user information, fragment or the parameters the signature appends")]
    InvalidReturnUrl,
    /// A return origin that is not `scheme://host[:port]`, with an optional trailing `/`, under
    /// the scheme rules of a return URL (see
    /// [`ReturnOrigin::parse`](crate::returns::ReturnOrigin::parse)). The origin itself is not
    /// repeated.
    #[error("the return origin must be https://host[:port] (http only to localhost), without path, query or fragment")]
    InvalidReturnOrigin,
    /// A return or dead-link URL whose origin the account does not allow
    /// ([`AccountProfile::return_origins`](crate::AccountProfile::return_origins)).
    #[error("the URL's origin is not one of the account's allowed return origins")]
    ReturnOriginNotAllowed,
    /// A display name that is empty, too long or holds a control character.
    #[error("the display name must be 1 to {max} characters without control characters")]
    InvalidDisplayName {
        /// The limit, in characters.
        max: usize,
    },
    /// More return origins than an account may allow.
    #[error("an account may allow at most {max} return origins")]
    TooManyReturnOrigins {
        /// The limit.
        max: usize,
    },
    /// An account whose held credits exceed its balance (`held <= balance` always).
    #[error("an account cannot hold more credits than its balance")]
    HeldExceedsBalance,
    /// A link whose uses exceed its usage limit (`uses <= limit` always).
    #[error("a link cannot have more uses than its limit")]
    UsesExceedLimit,
    /// A webhook endpoint with no signing secret or more than
    /// [`MAX_WEBHOOK_SECRETS`](crate::webhooks::MAX_WEBHOOK_SECRETS).
    #[error("a webhook endpoint needs 1 to {max} signing secrets")]
    WebhookSecretCount {
        /// The limit.
        max: usize,
    },
    /// An event type name that this version of the crate does not know (see
    /// [`EventType`](crate::webhooks::EventType)). The name itself is not repeated.
    #[error("unknown webhook event type")]
    UnknownEventType,
    /// A webhook endpoint that would receive no event type: disable it instead.
    #[error("a webhook endpoint must receive at least one event type")]
    NoEventTypes,
    /// A review decision other than [`Outcome::Approved`](crate::Outcome::Approved) or
    /// [`Outcome::Denied`](crate::Outcome::Denied).
    #[error("a review decision must be approved or denied")]
    InvalidDecision,
    /// A start key that is not 16 to 64 URL-safe characters (see
    /// [`StartKey`](crate::start::StartKey)). The key itself is not repeated.
    #[error("a start key must be 16 to 64 URL-safe characters")]
    InvalidStartKey,
    /// A [`Reference`](crate::Reference) that is empty, longer than `max` bytes or holds a
    /// control character. The reference itself is not repeated.
    #[error("a reference must be 1 to {max} bytes of UTF-8 without control characters")]
    InvalidReference {
        /// The limit, in bytes.
        max: usize,
    },
    /// [`Metadata`](crate::Metadata) past its limits, or with an empty key or a control
    /// character. Nothing of it is repeated.
    #[error(
        "metadata holds at most {max_keys} keys of 1 to {max_key_chars} characters, \
         values of at most {max_value_chars}, without control characters"
    )]
    InvalidMetadata {
        /// The most keys.
        max_keys: usize,
        /// The longest key, in characters.
        max_key_chars: usize,
        /// The longest value, in characters.
        max_value_chars: usize,
    },
}

/// The crate's error: what every store operation and every facade call returns.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The rules refused the operation; nothing changed.
    #[error(transparent)]
    Rejected(#[from] Rejection),
    /// The input failed validation; nothing changed.
    #[error(transparent)]
    Invalid(#[from] InvalidInput),
    /// A link or session token was rejected: malformed, truncated, too long, of an unknown
    /// version, signed by an unknown key, forged or expired. Checked before any store access.
    #[error(transparent)]
    InvalidToken(#[from] TokenError),
    /// The landing page's form token of a [`Start`](crate::start::Start) was rejected:
    /// malformed, minted for another link or another browser's start key (`Forged`), or
    /// expired. Checked after the link token and before any store access; a page answers it
    /// with 400 and a link back to the landing page.
    #[error("the form token was rejected: {0}")]
    InvalidFormToken(#[source] TokenError),
    /// An object with this id already exists (atomic create).
    #[error("an object with this id already exists")]
    AlreadyExists,
    /// The storage backend failed (connection, I/O, serialization). The operation may or may
    /// not have been applied only if the failure happened at commit; stores document this.
    #[error("storage backend failure")]
    Backend(#[source] Box<dyn StdError + Send + Sync>),
}

impl Error {
    /// Wraps a backend failure, keeping it as the error's source.
    pub fn backend(err: impl Into<Box<dyn StdError + Send + Sync>>) -> Self {
        Self::Backend(err.into())
    }

    /// The rejection, if the rules refused the operation.
    pub fn rejection(&self) -> Option<Rejection> {
        match self {
            Self::Rejected(r) => Some(*r),
            _ => None,
        }
    }

    /// The token error, if a link, session or hand-off token was rejected (not a form token:
    /// see [`form_token_error`](Self::form_token_error)).
    pub fn token_error(&self) -> Option<TokenError> {
        match self {
            Self::InvalidToken(e) => Some(*e),
            _ => None,
        }
    }

    /// The token error, if a start's form token was rejected.
    pub fn form_token_error(&self) -> Option<TokenError> {
        match self {
            Self::InvalidFormToken(e) => Some(*e),
            _ => None,
        }
    }
}
