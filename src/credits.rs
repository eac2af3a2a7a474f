//! Accounts, credits and the ledger.

use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::returns::{ReturnOrigin, ReturnUrl};
use crate::{AccountId, InvalidInput, SessionId};

/// An account's credits. `held <= balance`, always; the available credit is `balance - held`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Account {
    /// The account's id.
    pub id: AccountId,
    /// Credits owned, including those held.
    pub balance: u64,
    /// Credits held by started sessions.
    pub held: u64,
    /// When the account was created.
    pub created_at: DateTime<Utc>,
    /// What visitors see of the account, and where its return URLs may go.
    #[serde(default)]
    pub profile: AccountProfile,
}

/// An account's public face and return-URL settings, set with
/// [`MagicLinks::set_account_profile`](crate::MagicLinks::set_account_profile).
///
/// Visitors of its links see the display name and support URL, never a link's internal name.
/// Return URLs ([`NewLink::return_url`](crate::NewLink::return_url)) must be on one of
/// `return_origins`, checked when a link is created and again at each redirect, so removing an
/// origin stops redirects to it at once.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountProfile {
    /// The name visitors see ("Acme Bank"): 1 to [`MAX_DISPLAY_NAME_CHARS`](Self::MAX_DISPLAY_NAME_CHARS)
    /// characters, no control characters.
    #[serde(default)]
    pub display_name: Option<String>,
    /// Where visitors can get help, shown on the landing and problem pages.
    #[serde(default)]
    pub support_url: Option<ReturnUrl>,
    /// The origins return and dead-link URLs may use, at most
    /// [`MAX_RETURN_ORIGINS`](Self::MAX_RETURN_ORIGINS).
    #[serde(default)]
    pub return_origins: Vec<ReturnOrigin>,
    /// Whether signed return URLs carry the outcome (approved, denied, needs review). Off by
    /// default: the person's browser should not learn a fraud decision.
    #[serde(default)]
    pub return_outcome: bool,
}

impl AccountProfile {
    /// The longest display name accepted, in characters.
    pub const MAX_DISPLAY_NAME_CHARS: usize = 100;
    /// The most return origins an account may allow.
    pub const MAX_RETURN_ORIGINS: usize = 20;

    /// Checks the limits (the URLs and origins are valid by their types).
    ///
    /// # Errors
    ///
    /// [`InvalidInput::InvalidDisplayName`] or [`InvalidInput::TooManyReturnOrigins`].
    pub fn validate(mut self) -> Result<Self, InvalidInput> {
        if let Some(name) = self.display_name.take() {
            let name = name.trim();
            if name.is_empty()
                || name.chars().count() > Self::MAX_DISPLAY_NAME_CHARS
                || name.chars().any(char::is_control)
            {
                return Err(InvalidInput::InvalidDisplayName {
                    max: Self::MAX_DISPLAY_NAME_CHARS,
                });
            }
            self.display_name = Some(name.to_owned());
        }
        self.return_origins.sort();
        self.return_origins.dedup();
        if self.return_origins.len() > Self::MAX_RETURN_ORIGINS {
            return Err(InvalidInput::TooManyReturnOrigins {
                max: Self::MAX_RETURN_ORIGINS,
            });
        }
        Ok(self)
    }

    /// Whether a return or dead-link URL may be used now: its origin is allowed.
    pub fn allows(&self, url: &ReturnUrl) -> bool {
        self.return_origins.contains(&url.origin())
    }
}

impl Account {
    /// A new account with no credits.
    pub fn new(id: AccountId, now: DateTime<Utc>) -> Self {
        Self {
            id,
            balance: 0,
            held: 0,
            created_at: now,
            profile: AccountProfile::default(),
        }
    }

    /// Credits that a redemption can hold: `balance - held`.
    pub fn available(&self) -> u64 {
        self.balance.saturating_sub(self.held)
    }
}

/// A caller-chosen key that makes a top-up safe to retry: a repeat with the same key and amount
/// adds nothing.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct IdempotencyKey(String);

impl IdempotencyKey {
    /// The longest idempotency key accepted, in bytes.
    pub const MAX_LEN: usize = 128;

    /// Validates a key: 1 to 128 printable ASCII characters.
    ///
    /// # Errors
    ///
    /// [`InvalidInput::InvalidIdempotencyKey`] otherwise.
    pub fn new(key: impl Into<String>) -> Result<Self, InvalidInput> {
        let key = key.into();
        let printable = key.bytes().all(|b| b.is_ascii_graphic() || b == b' ');
        if key.is_empty() || key.len() > Self::MAX_LEN || !printable {
            return Err(InvalidInput::InvalidIdempotencyKey { max: Self::MAX_LEN });
        }
        Ok(Self(key))
    }

    /// The key.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for IdempotencyKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "IdempotencyKey({:?})", self.0)
    }
}

impl TryFrom<String> for IdempotencyKey {
    type Error = InvalidInput;

    fn try_from(key: String) -> Result<Self, Self::Error> {
        Self::new(key)
    }
}

impl From<IdempotencyKey> for String {
    fn from(key: IdempotencyKey) -> Self {
        key.0
    }
}

/// What a ledger entry records. Each kind has its idempotency key: the caller's key for a
/// top-up, the session for a hold, capture or release (a session holds, then captures or
/// releases, once).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum LedgerKind {
    /// Credits bought: `balance += amount`.
    TopUp {
        /// The caller's idempotency key.
        key: IdempotencyKey,
    },
    /// A redemption held one credit: `held += 1`.
    Hold {
        /// The session started.
        session: SessionId,
    },
    /// A completion billed the held credit: `balance -= 1`, `held -= 1`.
    Capture {
        /// The session completed.
        session: SessionId,
    },
    /// An abandonment released the held credit: `held -= 1`.
    Release {
        /// The session abandoned.
        session: SessionId,
    },
}

/// One change to an account's credits.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LedgerEntry {
    /// The account.
    pub account: AccountId,
    /// What happened, with its idempotency key.
    #[serde(flatten)]
    pub kind: LedgerKind,
    /// Credits moved.
    pub amount: u64,
    /// When.
    pub at: DateTime<Utc>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn idempotency_keys_are_validated() {
        assert!(IdempotencyKey::new("order-42").is_ok());
        for bad in [
            String::new(),
            "x".repeat(129),
            "tab\there".into(),
            "é".into(),
        ] {
            assert!(IdempotencyKey::new(bad.clone()).is_err(), "{bad:?}");
        }
        assert!(serde_json::from_str::<IdempotencyKey>("\"\"").is_err());
    }
}
