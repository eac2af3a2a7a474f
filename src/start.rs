//! Starting a verification: start keys, the [`Start`] that [`MagicLinks::redeem`] takes, and
//! hand-offs of a session to another device.
//!
//! # One person, one use
//!
//! A person's browser keeps a [`StartKey`], a random value the landing page sets in a cookie
//! (`HttpOnly`, `SameSite=Lax`, `Secure` when the base URL is https). A redemption that carries
//! one is idempotent while its session is open: the same key on the same link returns the
//! session it started (with [`Redemption::resumed`](crate::Redemption::resumed) set), consuming
//! no use, holding no credit and writing no event. After that session ends (completed,
//! abandoned, or past its time to live) the key starts a new one; a stale session of the key is
//! abandoned as expired in the same atomic step. So a double submit, a reload, the back button,
//! and a retry after a [`Error::Backend`](crate::Error::Backend) whose commit outcome is unknown
//! are all safe.
//!
//! Stores never see the key: they keep its SHA-256 ([`StartKeyHash`]), so a database dump does
//! not let anyone resume another person's session.
//!
//! # No start without the landing page
//!
//! [`MagicLinks::inspect`] with the browser's start key returns a
//! [form token](crate::tokens::FormToken) for the landing page's form: it binds the link, the
//! start key and an expiry (an hour). [`Start::from_landing_page`] makes
//! [`redeem`](MagicLinks::redeem) check it after the link token and before the store: one HMAC,
//! no store access. A backend that calls `redeem` directly uses [`Start::new`] or
//! [`Start::with_key`], which need none.
//!
//! # Hand-off
//!
//! [`MagicLinks::handoff`] turns a session token into a short-lived, single-use
//! [hand-off token](crate::tokens::HandoffToken) (60 characters, so a URL such as
//! `https://verify.example.com/h/<token>` stays within 100 characters) for a QR code;
//! [`MagicLinks::accept_handoff`] on the phone consumes it atomically and returns a session
//! token for the same session, and writes `session.handed_off`. No use and no credit are
//! consumed.
//!
//! # Examples
//!
//! ```
//! use magic_link::start::{Start, StartKey};
//! # use magic_link::{store::MemoryStore, tokens::Keyring, AccountId, Flow, IdempotencyKey, MagicLinks, NewLink};
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let links = MagicLinks::new(MemoryStore::new(), Keyring::generate()?, "https://verify.example.com/l/".parse()?);
//! # let account = links.create_account(AccountId::new()).await?;
//! # links.top_up(account.id, 5, IdempotencyKey::new("first")?).await?;
//! # let created = links.create_link(account.id, NewLink::new("Invite", Flow::Selfie)).await?;
//! // The landing page's GET: the browser's key from its cookie (or a new one, set as a cookie).
//! let key = StartKey::generate()?;
//! let page = links.inspect(&created.token, Some(&key)).await?;
//! let form_token = page.form_token.expect("minted for the key");
//!
//! // The form's POST, twice (a double click): one session, one use.
//! let first = links.redeem(&created.token, Start::from_landing_page(key.clone(), form_token.clone())).await?;
//! let again = links.redeem(&created.token, Start::from_landing_page(key, form_token)).await?;
//! assert_eq!(first.session.id, again.session.id);
//! assert!(again.resumed);
//! assert_eq!(links.link(account.id, created.link.id).await?.uses, 1);
//!
//! // "Continue on your phone".
//! let handoff = links.handoff(&first.session_token).await?;
//! let phone = links.accept_handoff(&handoff.token).await?;
//! assert_eq!(phone.session.id, first.session.id);
//! assert!(links.accept_handoff(&handoff.token).await.is_err(), "single use");
//! # Ok(()) }
//! ```

use std::fmt;

use chrono::{DateTime, Duration, Utc};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::tokens::KeyringError;
#[allow(unused_imports)] // for intra-doc links
use crate::MagicLinks;
use crate::{InvalidInput, Session};

/// A browser's start key: 16 to 64 URL-safe characters (`A`–`Z`, `a`–`z`, `0`–`9`, `-`, `_`).
///
/// The landing page keeps it in an `HttpOnly`, `SameSite=Lax` cookie (`Secure` on https) and
/// passes it with each start; see the [module docs](self). It is scoped to the link it starts:
/// the same browser on two links gets two sessions.
///
/// Its `Debug` prints `StartKey([redacted])`.
#[derive(Clone)]
pub struct StartKey(String);

impl StartKey {
    /// The fewest characters in a key.
    pub const MIN_LEN: usize = 16;
    /// The most characters in a key.
    pub const MAX_LEN: usize = 64;

    /// Validates a key, from a cookie say.
    ///
    /// # Errors
    ///
    /// [`InvalidInput::InvalidStartKey`] unless it has 16 to 64 URL-safe characters.
    pub fn new(key: impl Into<String>) -> Result<Self, InvalidInput> {
        let key = key.into();
        let ok = (Self::MIN_LEN..=Self::MAX_LEN).contains(&key.len())
            && key
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if ok {
            Ok(Self(key))
        } else {
            Err(InvalidInput::InvalidStartKey)
        }
    }

    /// A new random key: 32 characters, 192 bits from the operating system.
    ///
    /// # Errors
    ///
    /// [`KeyringError::Random`] if the operating system's random source failed.
    pub fn generate() -> Result<Self, KeyringError> {
        use base64::Engine as _;
        let mut bytes = [0u8; 24];
        getrandom::fill(&mut bytes).map_err(|e| KeyringError::Random(e.into()))?;
        Ok(Self(
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes),
        ))
    }

    /// The key, for the cookie that keeps it.
    ///
    /// # Security
    ///
    /// Whoever holds it and the link's URL can resume the browser's open session on that
    /// link: set it only in an `HttpOnly` cookie and keep it out of logs.
    pub fn expose_secret(&self) -> &str {
        &self.0
    }

    /// Its SHA-256, what stores keep.
    pub fn hash(&self) -> StartKeyHash {
        StartKeyHash(Sha256::digest(self.0.as_bytes()).into())
    }

    /// The hash that scopes this key to one recipient: [`hash`](Self::hash) for a link's
    /// shared URL (`None`), and for a personal URL the SHA-256 of the key, a zero byte and the
    /// recipient's [`Reference`](crate::Reference). So one browser holds one start per link
    /// and recipient: opening a second recipient's personal URL of the same link starts (or
    /// resumes) that recipient's own session, never the first one's.
    pub fn hash_for(&self, reference: Option<&crate::Reference>) -> StartKeyHash {
        match reference {
            None => self.hash(),
            Some(reference) => {
                let mut digest = Sha256::new();
                digest.update(self.0.as_bytes());
                digest.update([0]);
                digest.update(reference.as_str().as_bytes());
                StartKeyHash(digest.finalize().into())
            }
        }
    }
}

impl fmt::Debug for StartKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("StartKey([redacted])")
    }
}

/// The SHA-256 of a [`StartKey`]: what a [`LinkStore`](crate::store::LinkStore) stores on the
/// session the key started and looks it up by. Compared in constant time.
#[derive(Clone, Copy, Eq)]
pub struct StartKeyHash([u8; 32]);

impl StartKeyHash {
    /// A hash from its 32 bytes, as a store reads it back.
    pub const fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// Its 32 bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl PartialEq for StartKeyHash {
    fn eq(&self, other: &Self) -> bool {
        self.0.ct_eq(&other.0).into()
    }
}

impl std::hash::Hash for StartKeyHash {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.0.hash(state);
    }
}

impl fmt::Debug for StartKeyHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("StartKeyHash([redacted])")
    }
}

/// How a verification is started: what [`MagicLinks::redeem`] takes besides the link token.
///
/// Its `Debug` redacts the key and the form token.
#[derive(Clone, Default)]
pub struct Start {
    key: Option<StartKey>,
    form_token: Option<String>,
}

impl Start {
    /// A start with no key and no form token, for a backend that redeems on a person's behalf:
    /// every call starts a new session.
    pub fn new() -> Self {
        Self::default()
    }

    /// A start with a key and no form token: while the session this key started on the link
    /// is open, the same key returns it. For a backend that retries after an unknown outcome.
    pub fn with_key(key: StartKey) -> Self {
        Self {
            key: Some(key),
            form_token: None,
        }
    }

    /// A start from a landing page's form: the browser's key (from its cookie) and the form
    /// token that [`MagicLinks::inspect`] minted for the page. [`MagicLinks::redeem`] checks
    /// the form token before any store access.
    pub fn from_landing_page(key: StartKey, form_token: impl Into<String>) -> Self {
        Self {
            key: Some(key),
            form_token: Some(form_token.into()),
        }
    }

    /// The start key, if any.
    pub fn key(&self) -> Option<&StartKey> {
        self.key.as_ref()
    }

    /// The form token to check, if any.
    pub fn form_token(&self) -> Option<&str> {
        self.form_token.as_deref()
    }
}

impl fmt::Debug for Start {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Start")
            .field("key", &self.key.as_ref().map(|_| "[redacted]"))
            .field(
                "form_token",
                &self.form_token.as_ref().map(|_| "[redacted]"),
            )
            .finish()
    }
}

/// The id of a hand-off: 16 random bytes that a [hand-off token](crate::tokens::HandoffToken)
/// carries and a store keys its single use by.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct HandoffId([u8; 16]);

impl HandoffId {
    /// A new random id.
    ///
    /// # Errors
    ///
    /// [`KeyringError::Random`] if the operating system's random source failed.
    pub fn generate() -> Result<Self, KeyringError> {
        let mut bytes = [0u8; 16];
        getrandom::fill(&mut bytes).map_err(|e| KeyringError::Random(e.into()))?;
        Ok(Self(bytes))
    }

    /// An id from its 16 bytes.
    pub const fn from_bytes(bytes: [u8; 16]) -> Self {
        Self(bytes)
    }

    /// Its 16 bytes.
    pub fn as_bytes(&self) -> &[u8; 16] {
        &self.0
    }
}

impl fmt::Debug for HandoffId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Not a secret on its own (the token's tag is), but kept short.
        write!(f, "HandoffId({:02x}{:02x}..)", self.0[0], self.0[1])
    }
}

/// A hand-off of an open session to another device, as [`MagicLinks::handoff`] returns it.
///
/// Its `Debug` redacts the token.
#[derive(Clone, PartialEq, Eq)]
pub struct Handoff {
    /// The session handed off.
    pub session: Session,
    /// The hand-off token: put it in a short URL (`https://verify.example.com/h/<token>`) and
    /// show that as a QR code.
    ///
    /// # Security
    ///
    /// Until it is used or expires, whoever holds it can take over the session.
    pub token: String,
    /// When the token expires.
    pub expires_at: DateTime<Utc>,
}

impl fmt::Debug for Handoff {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Handoff")
            .field("session", &self.session)
            .field("token", &"[redacted]")
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

/// How long a hand-off token stays valid: between one second and one day; 10 minutes by
/// default.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct HandoffTtl(i64);

impl HandoffTtl {
    /// Validates a time to live.
    ///
    /// # Errors
    ///
    /// [`InvalidInput::InvalidTtl`] unless `1 s <= ttl <= 1 day`.
    pub fn new(ttl: Duration) -> Result<Self, InvalidInput> {
        let s = ttl.num_seconds();
        if (1..=24 * 3600).contains(&s) {
            Ok(Self(s))
        } else {
            Err(InvalidInput::InvalidTtl)
        }
    }

    /// The time to live.
    pub fn duration(self) -> Duration {
        Duration::seconds(self.0)
    }
}

impl Default for HandoffTtl {
    fn default() -> Self {
        Self(600)
    }
}

/// How long a form token stays valid: an hour.
pub(crate) const FORM_TOKEN_TTL: Duration = Duration::hours(1);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_validated_and_redacted() {
        assert!(StartKey::new("a".repeat(15)).is_err());
        assert!(StartKey::new("a".repeat(65)).is_err());
        assert!(StartKey::new(format!("{}+", "a".repeat(20))).is_err());
        assert!(StartKey::new("é".repeat(10)).is_err());
        let key = StartKey::new("abcdefghij-_0123").unwrap();
        assert_eq!(format!("{key:?}"), "StartKey([redacted])");
        let generated = StartKey::generate().unwrap();
        assert_eq!(generated.expose_secret().len(), 32);
        assert!(StartKey::new(generated.expose_secret()).is_ok());
        assert_eq!(key.hash(), key.clone().hash());
        assert!(key.hash() != generated.hash());
        let start = Start::from_landing_page(key, "form");
        assert!(!format!("{start:?}").contains("abcdef"));
        assert!(!format!("{start:?}").contains("form\""));
    }
}
