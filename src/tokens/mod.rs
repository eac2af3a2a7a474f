//! Signed link and session tokens, the keyring that signs them, and link URLs.
//!
//! A link token is what a link URL carries; a personal link token is a link token for one
//! recipient of a shared link, which also carries the owner's [`Reference`] for them; a session
//! token is what a person's verification flow page carries to say which session it is. Both are bytes signed with HMAC-SHA256 and
//! encoded as base64url without padding (RFC 4648 §5), so they need no escaping in a URL path.
//! Nothing about a token is stored: the store holds ids, and a token is derived from an id by
//! a key that only the host service holds. A token cannot be forged without a key, and a
//! leaked store yields no usable link.
//!
//! # Byte layout, version 1
//!
//! All integers are big-endian (network order). `||` is concatenation.
//!
//! Link token, 45 bytes, 60 characters:
//!
//! | offset | length | field                                                          |
//! |-------:|-------:|----------------------------------------------------------------|
//! |      0 |      1 | version, `0x01`                                                |
//! |      1 |      4 | key id, `u32`                                                  |
//! |      5 |     16 | link id, the UUID's 16 bytes                                   |
//! |     21 |      8 | expiry, `u64` Unix seconds; `0` for a link that never expires  |
//! |     29 |     16 | tag                                                            |
//!
//! Session token, 61 bytes, 82 characters:
//!
//! | offset | length | field                                      |
//! |-------:|-------:|--------------------------------------------|
//! |      0 |      1 | version, `0x01`                            |
//! |      1 |      4 | key id, `u32`                              |
//! |      5 |     16 | session id, the UUID's 16 bytes            |
//! |     21 |     16 | account id (the session's owner), 16 bytes |
//! |     37 |      8 | expiry, `u64` Unix seconds, never `0`      |
//! |     45 |     16 | tag                                        |
//!
//! Form token ([`FormToken`]), 29 bytes, 39 characters:
//!
//! | offset | length | field                                      |
//! |-------:|-------:|--------------------------------------------|
//! |      0 |      1 | version, `0x01`                            |
//! |      1 |      4 | key id, `u32`                              |
//! |      5 |      8 | expiry, `u64` Unix seconds, never `0`      |
//! |     13 |     16 | tag                                        |
//!
//! Hand-off token ([`HandoffToken`]), 45 bytes, 60 characters:
//!
//! | offset | length | field                                      |
//! |-------:|-------:|--------------------------------------------|
//! |      0 |      1 | version, `0x01`                            |
//! |      1 |      4 | key id, `u32`                              |
//! |      5 |     16 | hand-off id, 16 random bytes               |
//! |     21 |      8 | expiry, `u64` Unix seconds, never `0`      |
//! |     29 |     16 | tag                                        |
//!
//! Personal link token ([`PersonalToken`]), 47 to 174 bytes, 63 to 232 characters:
//!
//! | offset | length | field                                                          |
//! |-------:|-------:|----------------------------------------------------------------|
//! |      0 |      1 | version, `0x01`                                                |
//! |      1 |      4 | key id, `u32`                                                  |
//! |      5 |     16 | link id, the UUID's 16 bytes                                   |
//! |     21 |      8 | expiry, `u64` Unix seconds; `0` for a link that never expires  |
//! |     29 |      1 | `n`, the reference's length in bytes, 1 to 128                 |
//! |     30 |    `n` | reference, UTF-8 without control characters ([`Reference`])    |
//! | 30+`n` |     16 | tag                                                            |
//!
//! The tag is the first 16 bytes (128 bits) of
//! `HMAC-SHA256(key, context || bytes before the tag)`, where `context` is the ASCII string
//! `magic-link/v1/link` for link tokens, `magic-link/v1/session` for session tokens,
//! `magic-link/v1/form` for form tokens, `magic-link/v1/handoff` for hand-off tokens and
//! `magic-link/v1/personal` for personal link tokens, with no terminator. No context is a
//! prefix of another, so no token verifies as a token of another kind (a hand-off token has a
//! link token's length, and fails as forged). A link token (60 characters) is shorter than any
//! personal link token (63 at least), so each fails the other's length check. A session token
//! (82 characters) has the length of a personal link token with a 15-byte reference, but
//! neither is ever well-formed as the other: where that reference would be, a session token
//! has the top bytes of its expiry, which are zero (control characters), and where a session
//! token's expiry would be, a personal link token has reference bytes, which are not, so the
//! expiry is out of range. Each fails as [`TokenError::Malformed`].
//!
//! A form token's tag covers more than its bytes: `HMAC-SHA256(key, context || bytes before
//! the tag || link id (16 bytes) || n || start key)`, where `n` is the start key's length in
//! one byte and the start key is its ASCII text. The token carries neither: whoever checks it
//! supplies the link (from the link token) and the key (from the browser's cookie), so it
//! verifies only for the link and the browser it was minted for.
//!
//! An expiry is a whole second, rounded down from the object's expiry, so a token never
//! outlives its link or session; an expiry at or before 1970-01-01T00:00:01Z is written as
//! `1`. Expiries above 2<sup>40</sup> − 1 (year 36812) are reserved and rejected as
//! malformed. A token is expired when `now >= expiry`.
//!
//! `tests/vectors/tokens.json` holds test vectors for other implementations.
//!
//! # Verification
//!
//! [`LinkToken::verify`] and [`SessionToken::verify`] are pure (`now` is passed in), allocate
//! nothing and never panic. They check, in this order, stopping at the first failure:
//!
//! 1. the version, from the first two characters ([`TokenError::UnknownVersion`]; a
//!    character outside base64url is [`TokenError::Malformed`]);
//! 2. the length ([`TokenError::Truncated`], [`TokenError::TooLong`]);
//! 3. the base64url text, decoded into a buffer on the stack, and the fields' ranges
//!    ([`TokenError::Malformed`]);
//! 4. the key id ([`TokenError::UnknownKey`]);
//! 5. the tag, recomputed from the key's precomputed HMAC state and compared in constant time
//!    ([`TokenError::Forged`]);
//! 6. the expiry ([`TokenError::Expired`]).
//!
//! So nothing but an authentic token ever reaches a store, and an expired one is reported as
//! expired only when it is authentic.
//!
//! [`PersonalToken::verify`] checks in the same order, with two differences. Its length step
//! knows only the bounds, 63 to 232 characters; a length between them that no byte count has
//! is malformed, as is a length byte `n` that does not give the decoded length exactly (so a
//! personal link token cut short, but not below 63 characters, is
//! [`TokenError::Malformed`]). Its field step also checks that the reference is a valid
//! [`Reference`] (UTF-8, no control characters), before the key id. It decodes into a buffer
//! on the stack of the largest size and keeps the reference inline, so it allocates nothing
//! either ([`PersonalToken::to_reference`] makes a [`Reference`] of it).

mod keys;
mod url;

use std::fmt;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::start::{HandoffId, StartKey};
use crate::{AccountId, Link, LinkId, Reference, Session, SessionId};

pub use keys::{Keyring, KeyringError, KeyringSecret, SigningKey, KEY_LEN, MAX_KEYS};
pub use url::{token_from_url, LinkBase};

use keys::Entry;

/// The token format version this crate writes and reads.
const VERSION: u8 = 1;

/// The length of the tag: HMAC-SHA256 truncated to 128 bits.
const TAG_LEN: usize = 16;

/// The domain-separation context of link tokens.
pub(crate) const LINK_CONTEXT: &[u8] = b"magic-link/v1/link";

/// The domain-separation context of session tokens.
pub(crate) const SESSION_CONTEXT: &[u8] = b"magic-link/v1/session";

/// The domain-separation context of form tokens.
pub(crate) const FORM_CONTEXT: &[u8] = b"magic-link/v1/form";

/// The domain-separation context of hand-off tokens.
pub(crate) const HANDOFF_CONTEXT: &[u8] = b"magic-link/v1/handoff";

/// The domain-separation context of personal link tokens.
pub(crate) const PERSONAL_CONTEXT: &[u8] = b"magic-link/v1/personal";

/// The largest expiry a token carries, in Unix seconds.
const MAX_EXPIRY: u64 = (1 << 40) - 1;

const LINK_BYTES: usize = 1 + 4 + 16 + 8 + TAG_LEN;
const SESSION_BYTES: usize = 1 + 4 + 16 + 16 + 8 + TAG_LEN;
const FORM_BYTES: usize = 1 + 4 + 8 + TAG_LEN;
const HANDOFF_BYTES: usize = 1 + 4 + 16 + 8 + TAG_LEN;
/// Where a personal link token's reference starts: after version, key id, link id, expiry and
/// the length byte.
const PERSONAL_REFERENCE_AT: usize = 1 + 4 + 16 + 8 + 1;
const PERSONAL_MIN_BYTES: usize = PERSONAL_REFERENCE_AT + 1 + TAG_LEN;
const PERSONAL_MAX_BYTES: usize = PERSONAL_REFERENCE_AT + Reference::MAX_LEN + TAG_LEN;
// The length byte holds any reference's length.
const _: () = assert!(Reference::MAX_LEN <= u8::MAX as usize);

/// Why a token was rejected. Each reason is its own variant; none carries secret material.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
#[non_exhaustive]
pub enum TokenError {
    /// Not base64url without padding, or a field out of its range.
    #[error("the token is malformed")]
    Malformed,
    /// Shorter than a token of its version.
    #[error("the token is truncated")]
    Truncated,
    /// Longer than a token of its version.
    #[error("the token is too long")]
    TooLong,
    /// A format version this crate does not know.
    #[error("the token has an unknown version ({version})")]
    UnknownVersion {
        /// The version byte.
        version: u8,
    },
    /// Signed by a key that is not (or no longer) in the keyring.
    #[error("the token was signed by an unknown key ({key_id})")]
    UnknownKey {
        /// The key id the token names.
        key_id: u32,
    },
    /// The tag does not match: the token was altered or not made by this keyring.
    #[error("the token's signature does not match")]
    Forged,
    /// Authentic, but its expiry has passed.
    #[error("the token has expired")]
    Expired,
}

/// The claims of a link token: which link, and until when.
///
/// A link token is the capability to inspect and redeem one link; it is what a link URL
/// carries. [`sign`](Self::sign) makes it with the keyring's newest key;
/// [`verify`](Self::verify) checks it. Its expiry is kept in whole seconds.
///
/// # Examples
///
/// ```
/// use chrono::{DateTime, Duration};
/// use magic_link::tokens::{Keyring, LinkToken, TokenError};
/// use magic_link::LinkId;
///
/// let keyring = Keyring::generate()?;
/// let now = DateTime::from_timestamp(1_700_000_000, 0).unwrap();
/// let claims = LinkToken::new(LinkId::new(), Some(now + Duration::days(7)));
/// let token = claims.sign(&keyring);
/// assert_eq!(token.len(), LinkToken::LEN);
///
/// assert_eq!(LinkToken::verify(&token, &keyring, now), Ok(claims));
/// assert_eq!(
///     LinkToken::verify(&token, &keyring, now + Duration::days(7)),
///     Err(TokenError::Expired)
/// );
/// # Ok::<(), magic_link::tokens::KeyringError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct LinkToken {
    link: LinkId,
    /// Unix seconds; 0 for none.
    expiry: u64,
}

impl LinkToken {
    /// The length of an encoded link token, in characters.
    pub const LEN: usize = encoded_len(LINK_BYTES);

    /// The claims for `link`, which expires at `expires_at` (rounded down to the second).
    pub fn new(link: LinkId, expires_at: Option<DateTime<Utc>>) -> Self {
        Self {
            link,
            expiry: expires_at.map_or(0, encode_expiry),
        }
    }

    /// The claims for a link: its id and its expiry.
    pub fn for_link(link: &Link) -> Self {
        Self::new(link.id, link.expires_at)
    }

    /// The link's id.
    pub fn link(&self) -> LinkId {
        self.link
    }

    /// When the token expires (whole seconds), if ever.
    pub fn expires_at(&self) -> Option<DateTime<Utc>> {
        (self.expiry != 0).then(|| decode_expiry(self.expiry))
    }

    /// The encoded token, signed with the keyring's newest key.
    pub fn sign(&self, keys: &Keyring) -> String {
        let entry = keys.signing();
        let mut buf = [0u8; LINK_BYTES];
        buf[5..21].copy_from_slice(self.link.as_bytes());
        buf[21..29].copy_from_slice(&self.expiry.to_be_bytes());
        seal(buf, entry, &entry.link)
    }

    /// Checks an encoded token with any key of `keys` and reads its claims.
    ///
    /// Pure (the caller passes `now`), free of heap allocation, and constant-time in the tag.
    ///
    /// # Errors
    ///
    /// One [`TokenError`] per reason, checked in the order the [module docs](crate::tokens) give.
    pub fn verify(token: &str, keys: &Keyring, now: DateTime<Utc>) -> Result<Self, TokenError> {
        let buf = open::<LINK_BYTES>(token, keys, |e| &e.link, |b| read_u64(b, 21) <= MAX_EXPIRY)?;
        let claims = Self {
            link: LinkId::from_bytes(read_16(&buf, 5)),
            expiry: read_u64(&buf, 21),
        };
        if claims.expiry != 0 && is_past(claims.expiry, now) {
            return Err(TokenError::Expired);
        }
        Ok(claims)
    }
}

/// The claims of a personal link token: which link, until when, and for whom.
///
/// A shared link (one with several uses, or unlimited) is one URL for many people. A personal
/// link token is a link token for one recipient of it: it also carries the owner's
/// [`Reference`] for that recipient (their customer's id, say), under the tag, so editing the
/// reference makes the token invalid. Its expiry follows the link token's rules. It is 63 to
/// 232 characters long ([`MIN_LEN`](Self::MIN_LEN), [`MAX_LEN`](Self::MAX_LEN)), depending on
/// the reference's length in bytes.
///
/// The reference travels in clear (base64url is no encryption): keep it an opaque id, as
/// [`Reference`] asks.
///
/// # Examples
///
/// ```
/// use chrono::{DateTime, Duration};
/// use magic_link::tokens::{Keyring, LinkToken, PersonalToken, TokenError};
/// use magic_link::{LinkId, Reference};
///
/// let keyring = Keyring::generate()?;
/// let now = DateTime::from_timestamp(1_700_000_000, 0).unwrap();
/// let reference = Reference::new("cus_8f2k")?;
/// let claims = PersonalToken::new(LinkId::new(), Some(now + Duration::days(7)), reference);
/// let token = claims.sign(&keyring);
/// assert!((PersonalToken::MIN_LEN..=PersonalToken::MAX_LEN).contains(&token.len()));
///
/// let verified = PersonalToken::verify(&token, &keyring, now)?;
/// assert_eq!(verified.reference(), "cus_8f2k");
/// assert_eq!(verified, claims);
/// assert_eq!(
///     PersonalToken::verify(&token, &keyring, now + Duration::days(7)),
///     Err(TokenError::Expired)
/// );
/// // Never a link token, nor the reverse.
/// assert_eq!(LinkToken::verify(&token, &keyring, now), Err(TokenError::TooLong));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct PersonalToken {
    /// The token's bytes in its layout, with the key id and the tag zeroed: the link id, the
    /// expiry (0 for none), the length byte and the reference, inline, so that verifying
    /// decodes straight into the claims and allocates nothing.
    bytes: [u8; PERSONAL_MAX_BYTES],
}

impl fmt::Debug for PersonalToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PersonalToken")
            .field("link", &self.link())
            .field("expires_at", &self.expires_at())
            .field("reference", &self.reference())
            .finish()
    }
}

impl PersonalToken {
    /// The length of the shortest encoded personal link token (a 1-byte reference), in
    /// characters.
    pub const MIN_LEN: usize = encoded_len(PERSONAL_MIN_BYTES);

    /// The length of the longest encoded personal link token (a reference of
    /// [`Reference::MAX_LEN`] bytes), in characters.
    pub const MAX_LEN: usize = encoded_len(PERSONAL_MAX_BYTES);

    /// The claims for `reference`'s token to `link`, which expires at `expires_at` (rounded
    /// down to the second).
    pub fn new(link: LinkId, expires_at: Option<DateTime<Utc>>, reference: Reference) -> Self {
        let reference = reference.as_str().as_bytes();
        // 1 to `Reference::MAX_LEN` (128) bytes.
        let len = reference.len().min(Reference::MAX_LEN);
        let mut bytes = [0u8; PERSONAL_MAX_BYTES];
        bytes[5..21].copy_from_slice(link.as_bytes());
        bytes[21..29].copy_from_slice(&expires_at.map_or(0, encode_expiry).to_be_bytes());
        bytes[29] = len as u8;
        bytes[PERSONAL_REFERENCE_AT..PERSONAL_REFERENCE_AT + len]
            .copy_from_slice(&reference[..len]);
        Self { bytes }
    }

    /// Where the reference ends (and the tag starts).
    fn end(&self) -> usize {
        PERSONAL_REFERENCE_AT + usize::from(self.bytes[29])
    }

    fn expiry(&self) -> u64 {
        read_u64(&self.bytes, 21)
    }

    /// The claims for a link, its id and its expiry, and one recipient's `reference`.
    pub fn for_link(link: &Link, reference: Reference) -> Self {
        Self::new(link.id, link.expires_at, reference)
    }

    /// The link's id.
    pub fn link(&self) -> LinkId {
        LinkId::from_bytes(read_16(&self.bytes, 5))
    }

    /// When the token expires (whole seconds), if ever.
    pub fn expires_at(&self) -> Option<DateTime<Utc>> {
        let expiry = self.expiry();
        (expiry != 0).then(|| decode_expiry(expiry))
    }

    /// The owner's reference for the recipient, as text (borrowed from the token, which
    /// holds it inline: [`verify`](Self::verify) allocates nothing).
    pub fn reference(&self) -> &str {
        let bytes = self
            .bytes
            .get(PERSONAL_REFERENCE_AT..self.end())
            .unwrap_or_default();
        // Always the bytes of a valid `Reference` (`new`, or checked by `verify`).
        std::str::from_utf8(bytes).unwrap_or_default()
    }

    /// The owner's reference for the recipient, as a [`Reference`] (one allocation).
    pub fn to_reference(&self) -> Reference {
        Reference::from_valid(self.reference())
    }

    /// The encoded token, signed with the keyring's newest key.
    pub fn sign(&self, keys: &Keyring) -> String {
        let entry = keys.signing();
        let mut buf = self.bytes;
        seal_into(
            &mut buf[..self.end() + TAG_LEN],
            entry,
            &entry.personal,
            &[],
        )
    }

    /// Checks an encoded token with any key of `keys` and reads its claims.
    ///
    /// Pure (the caller passes `now`), constant-time in the tag, and allocates nothing, like
    /// the other tokens' (the reference is kept inline; [`to_reference`](Self::to_reference)
    /// makes a [`Reference`] of it).
    ///
    /// # Errors
    ///
    /// One [`TokenError`] per reason, checked in the order the [module docs](crate::tokens)
    /// give. A length byte that does not match the decoded length, or a reference that is not a
    /// valid [`Reference`], is [`TokenError::Malformed`].
    pub fn verify(token: &str, keys: &Keyring, now: DateTime<Utc>) -> Result<Self, TokenError> {
        let text = token.as_bytes();
        check_version(text)?;
        if text.len() < Self::MIN_LEN {
            return Err(TokenError::Truncated);
        }
        if text.len() > Self::MAX_LEN {
            return Err(TokenError::TooLong);
        }
        // The bytes `text` holds, if its length is one that base64url without padding has.
        let len = text.len() * 3 / 4;
        // Decoded straight into the claims' buffer.
        let mut claims = Self {
            bytes: [0u8; PERSONAL_MAX_BYTES],
        };
        let Some(bytes) = claims.bytes.get_mut(..len) else {
            return Err(TokenError::Malformed);
        };
        if !decode_into(text, bytes) {
            return Err(TokenError::Malformed);
        }
        let bytes = &*bytes;
        // `len` is 47 to 174, so byte 29 exists, and the reference ends where the tag starts.
        let end = PERSONAL_REFERENCE_AT + usize::from(bytes[29]);
        if end + TAG_LEN != len || read_u64(bytes, 21) > MAX_EXPIRY {
            return Err(TokenError::Malformed);
        }
        if !Reference::is_valid_utf8(&bytes[PERSONAL_REFERENCE_AT..end]) {
            return Err(TokenError::Malformed);
        }
        let key_id = u32::from_be_bytes([bytes[1], bytes[2], bytes[3], bytes[4]]);
        let entry = keys
            .entry(key_id)
            .ok_or(TokenError::UnknownKey { key_id })?;
        let (body, tag) = bytes.split_at(end);
        let mut mac = entry.personal.clone();
        mac.update(body);
        mac.verify_truncated_left(tag)
            .map_err(|_| TokenError::Forged)?;
        let expiry = read_u64(bytes, 21);
        if expiry != 0 && is_past(expiry, now) {
            return Err(TokenError::Expired);
        }
        // The claims are the fields: the version, key id and tag are not kept.
        claims.bytes[..5].fill(0);
        claims.bytes[end..].fill(0);
        Ok(claims)
    }
}

/// The claims of a session token: which session, whose, and until when.
///
/// A session token is how a person's verification flow page proves which session it is
/// driving: [`MagicLinks::redeem`](crate::MagicLinks::redeem) returns one, and
/// [`MagicLinks::complete_session_with_token`](crate::MagicLinks::complete_session_with_token)
/// takes one. It carries the owning account so that the session can be found with the
/// account-scoped store operations. Its expiry is the session's time to live, in whole seconds.
///
/// # Security
///
/// A session token is a bearer credential for one session, like a session cookie: whoever
/// holds it can drive that session until it expires. Keep it out of logs and out of URLs that
/// are shared.
///
/// # Examples
///
/// ```
/// use chrono::{DateTime, Duration};
/// use magic_link::tokens::{Keyring, LinkToken, SessionToken, TokenError};
/// use magic_link::{AccountId, SessionId};
///
/// let keyring = Keyring::generate()?;
/// let now = DateTime::from_timestamp(1_700_000_000, 0).unwrap();
/// let claims = SessionToken::new(SessionId::new(), AccountId::new(), now + Duration::hours(1));
/// let token = claims.sign(&keyring);
/// assert_eq!(SessionToken::verify(&token, &keyring, now), Ok(claims));
/// // A session token is never a link token.
/// assert_eq!(LinkToken::verify(&token, &keyring, now), Err(TokenError::TooLong));
/// # Ok::<(), magic_link::tokens::KeyringError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SessionToken {
    session: SessionId,
    account: AccountId,
    /// Unix seconds, never 0.
    expiry: u64,
}

impl SessionToken {
    /// The length of an encoded session token, in characters.
    pub const LEN: usize = encoded_len(SESSION_BYTES);

    /// The claims for `session` of `account`, which expires at `expires_at` (rounded down to
    /// the second).
    pub fn new(session: SessionId, account: AccountId, expires_at: DateTime<Utc>) -> Self {
        Self {
            session,
            account,
            expiry: encode_expiry(expires_at),
        }
    }

    /// The claims for a session: its id, its account and its expiry.
    pub fn for_session(session: &Session) -> Self {
        Self::new(session.id, session.account, session.expires_at)
    }

    /// The session's id.
    pub fn session(&self) -> SessionId {
        self.session
    }

    /// The account that owns the session.
    pub fn account(&self) -> AccountId {
        self.account
    }

    /// When the token expires (whole seconds).
    pub fn expires_at(&self) -> DateTime<Utc> {
        decode_expiry(self.expiry)
    }

    /// The encoded token, signed with the keyring's newest key.
    pub fn sign(&self, keys: &Keyring) -> String {
        let entry = keys.signing();
        let mut buf = [0u8; SESSION_BYTES];
        buf[5..21].copy_from_slice(self.session.as_bytes());
        buf[21..37].copy_from_slice(self.account.as_bytes());
        buf[37..45].copy_from_slice(&self.expiry.to_be_bytes());
        seal(buf, entry, &entry.session)
    }

    /// Checks an encoded token with any key of `keys` and reads its claims.
    ///
    /// Pure (the caller passes `now`), free of heap allocation, and constant-time in the tag.
    ///
    /// # Errors
    ///
    /// One [`TokenError`] per reason, checked in the order the [module docs](crate::tokens) give.
    pub fn verify(token: &str, keys: &Keyring, now: DateTime<Utc>) -> Result<Self, TokenError> {
        let buf = open::<SESSION_BYTES>(
            token,
            keys,
            |e| &e.session,
            |b| (1..=MAX_EXPIRY).contains(&read_u64(b, 37)),
        )?;
        let claims = Self {
            session: SessionId::from_bytes(read_16(&buf, 5)),
            account: AccountId::from_bytes(read_16(&buf, 21)),
            expiry: read_u64(&buf, 37),
        };
        if is_past(claims.expiry, now) {
            return Err(TokenError::Expired);
        }
        Ok(claims)
    }
}

/// The claims of a form token: until when the landing page's form may start a session.
///
/// [`MagicLinks::inspect`](crate::MagicLinks::inspect) mints one for the landing page of a
/// link and a browser's [`StartKey`]; the page puts it in its start form, and
/// [`Start::from_landing_page`](crate::start::Start::from_landing_page) hands it back to
/// [`MagicLinks::redeem`](crate::MagicLinks::redeem), which checks it before any store access.
/// The token carries only its expiry; its tag binds the link id and the start key too, which
/// the checker supplies, so a form token works only for the link and the browser it was minted
/// for. A token for another link or another browser's key fails as
/// [`TokenError::Forged`].
///
/// # Examples
///
/// ```
/// use chrono::{DateTime, Duration};
/// use magic_link::start::StartKey;
/// use magic_link::tokens::{FormToken, Keyring, TokenError};
/// use magic_link::LinkId;
///
/// let keyring = Keyring::generate()?;
/// let now = DateTime::from_timestamp(1_700_000_000, 0).unwrap();
/// let (link, key) = (LinkId::new(), StartKey::new("0123456789abcdef")?);
/// let token = FormToken::new(now + Duration::hours(1)).sign(&keyring, link, &key);
/// assert_eq!(token.len(), FormToken::LEN);
/// assert!(FormToken::verify(&token, &keyring, link, &key, now).is_ok());
/// let other = StartKey::new("fedcba9876543210")?;
/// assert_eq!(FormToken::verify(&token, &keyring, link, &other, now), Err(TokenError::Forged));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FormToken {
    /// Unix seconds, never 0.
    expiry: u64,
}

impl FormToken {
    /// The length of an encoded form token, in characters.
    pub const LEN: usize = encoded_len(FORM_BYTES);

    /// The claims of a form token that expires at `expires_at` (rounded down to the second).
    pub fn new(expires_at: DateTime<Utc>) -> Self {
        Self {
            expiry: encode_expiry(expires_at),
        }
    }

    /// When the token expires (whole seconds).
    pub fn expires_at(&self) -> DateTime<Utc> {
        decode_expiry(self.expiry)
    }

    /// The encoded token for `link` and `key`, signed with the keyring's newest key.
    pub fn sign(&self, keys: &Keyring, link: LinkId, key: &StartKey) -> String {
        let entry = keys.signing();
        let mut buf = [0u8; FORM_BYTES];
        buf[5..13].copy_from_slice(&self.expiry.to_be_bytes());
        let secret = key.expose_secret().as_bytes();
        seal_bound(
            buf,
            entry,
            &entry.form,
            &[link.as_bytes(), &[secret.len() as u8], secret],
        )
    }

    /// Checks an encoded token for `link` and `key` with any key of `keys`: one HMAC.
    ///
    /// Pure, free of heap allocation, and constant-time in the tag.
    ///
    /// # Errors
    ///
    /// One [`TokenError`] per reason, checked in the order the [module docs](crate::tokens)
    /// give; a token for another link or key is [`TokenError::Forged`].
    pub fn verify(
        token: &str,
        keys: &Keyring,
        link: LinkId,
        key: &StartKey,
        now: DateTime<Utc>,
    ) -> Result<Self, TokenError> {
        let secret = key.expose_secret().as_bytes();
        let buf = open_bound::<FORM_BYTES>(
            token,
            keys,
            |e| &e.form,
            |b| (1..=MAX_EXPIRY).contains(&read_u64(b, 5)),
            &[link.as_bytes(), &[secret.len() as u8], secret],
        )?;
        let claims = Self {
            expiry: read_u64(&buf, 5),
        };
        if is_past(claims.expiry, now) {
            return Err(TokenError::Expired);
        }
        Ok(claims)
    }
}

/// The claims of a hand-off token: which hand-off, and until when.
///
/// [`MagicLinks::handoff`](crate::MagicLinks::handoff) makes one for an open session; the store
/// keeps the hand-off's id with its session and whether it was used, and
/// [`MagicLinks::accept_handoff`](crate::MagicLinks::accept_handoff) consumes it once. The
/// token is 60 characters, so `https://verify.example.com/h/<token>` is 89.
///
/// # Security
///
/// Until it is used or expires, a hand-off token is a bearer credential for its session.
///
/// # Examples
///
/// ```
/// use chrono::{DateTime, Duration};
/// use magic_link::start::HandoffId;
/// use magic_link::tokens::{HandoffToken, Keyring, LinkToken};
///
/// let keyring = Keyring::generate()?;
/// let now = DateTime::from_timestamp(1_700_000_000, 0).unwrap();
/// let claims = HandoffToken::new(HandoffId::generate()?, now + Duration::minutes(10));
/// let token = claims.sign(&keyring);
/// assert_eq!(token.len(), HandoffToken::LEN);
/// assert_eq!(HandoffToken::verify(&token, &keyring, now), Ok(claims));
/// // Never a link token, though as long.
/// assert!(LinkToken::verify(&token, &keyring, now).is_err());
/// # Ok::<(), magic_link::tokens::KeyringError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct HandoffToken {
    handoff: HandoffId,
    /// Unix seconds, never 0.
    expiry: u64,
}

impl HandoffToken {
    /// The length of an encoded hand-off token, in characters.
    pub const LEN: usize = encoded_len(HANDOFF_BYTES);

    /// The claims for hand-off `handoff`, which expires at `expires_at` (rounded down to the
    /// second).
    pub fn new(handoff: HandoffId, expires_at: DateTime<Utc>) -> Self {
        Self {
            handoff,
            expiry: encode_expiry(expires_at),
        }
    }

    /// The hand-off's id.
    pub fn handoff(&self) -> HandoffId {
        self.handoff
    }

    /// When the token expires (whole seconds).
    pub fn expires_at(&self) -> DateTime<Utc> {
        decode_expiry(self.expiry)
    }

    /// The encoded token, signed with the keyring's newest key.
    pub fn sign(&self, keys: &Keyring) -> String {
        let entry = keys.signing();
        let mut buf = [0u8; HANDOFF_BYTES];
        buf[5..21].copy_from_slice(self.handoff.as_bytes());
        buf[21..29].copy_from_slice(&self.expiry.to_be_bytes());
        seal(buf, entry, &entry.handoff)
    }

    /// Checks an encoded token with any key of `keys` and reads its claims.
    ///
    /// Pure, free of heap allocation, and constant-time in the tag.
    ///
    /// # Errors
    ///
    /// One [`TokenError`] per reason, checked in the order the [module docs](crate::tokens) give.
    pub fn verify(token: &str, keys: &Keyring, now: DateTime<Utc>) -> Result<Self, TokenError> {
        let buf = open::<HANDOFF_BYTES>(
            token,
            keys,
            |e| &e.handoff,
            |b| (1..=MAX_EXPIRY).contains(&read_u64(b, 21)),
        )?;
        let claims = Self {
            handoff: HandoffId::from_bytes(read_16(&buf, 5)),
            expiry: read_u64(&buf, 21),
        };
        if is_past(claims.expiry, now) {
            return Err(TokenError::Expired);
        }
        Ok(claims)
    }
}

/// The number of base64 characters, without padding, for `bytes` bytes.
const fn encoded_len(bytes: usize) -> usize {
    (bytes * 4).div_ceil(3)
}

fn encode_expiry(at: DateTime<Utc>) -> u64 {
    u64::try_from(at.timestamp()).map_or(1, |s| s.clamp(1, MAX_EXPIRY))
}

fn decode_expiry(expiry: u64) -> DateTime<Utc> {
    // `expiry <= MAX_EXPIRY` (year 36812) is always within chrono's range.
    i64::try_from(expiry)
        .ok()
        .and_then(|s| DateTime::from_timestamp(s, 0))
        .unwrap_or(DateTime::<Utc>::MAX_UTC)
}

/// Whether `now >= expiry`, for an expiry in whole Unix seconds.
fn is_past(expiry: u64, now: DateTime<Utc>) -> bool {
    // `now >= e` for a whole second `e` exactly when `floor(now) >= e`.
    u64::try_from(now.timestamp()).is_ok_and(|now| now >= expiry)
}

fn read_u64(buf: &[u8], at: usize) -> u64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&buf[at..at + 8]);
    u64::from_be_bytes(b)
}

fn read_16(buf: &[u8], at: usize) -> [u8; 16] {
    let mut b = [0u8; 16];
    b.copy_from_slice(&buf[at..at + 16]);
    b
}

/// Marks a byte outside the base64url alphabet in [`SEXTETS`].
const INVALID: u8 = 0xFF;

/// The value of each base64url character, [`INVALID`] for every other byte.
static SEXTETS: [u8; 256] = {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut table = [INVALID; 256];
    let mut i = 0;
    while i < 64 {
        table[ALPHABET[i] as usize] = i as u8;
        i += 1;
    }
    table
};

/// Marks a byte outside the base64url alphabet in [`SHIFTED`], above the 24 bits of a
/// quarter's values.
const SHIFTED_INVALID: u32 = 1 << 31;

/// [`SEXTETS`] shifted to the place of each of the four characters that make three bytes:
/// the first character's value shifted by 18, the second's by 12, the third's by 6, the
/// fourth's by 0. Every other byte is [`SHIFTED_INVALID`].
static SHIFTED: [[u32; 256]; 4] = {
    let mut tables = [[SHIFTED_INVALID; 256]; 4];
    let mut t = 0;
    while t < 4 {
        let mut c = 0;
        while c < 256 {
            if SEXTETS[c] != INVALID {
                tables[t][c] = (SEXTETS[c] as u32) << (18 - 6 * t);
            }
            c += 1;
        }
        t += 1;
    }
    tables
};

/// The value of a base64url character.
#[inline]
fn sextet(c: u8) -> Option<u8> {
    let v = SEXTETS[usize::from(c)];
    (v != INVALID).then_some(v)
}

/// Decodes exactly `N` bytes from `text`, base64url without padding, which must be
/// [`encoded_len(N)`](encoded_len) characters long. Rejects any character outside the alphabet
/// and non-zero bits after the last byte (so every token has one spelling). No allocation and no
/// early exit on the data: eight characters at a time into six bytes.
#[inline]
fn decode_exact<const N: usize>(text: &[u8], out: &mut [u8; N]) -> bool {
    decode_into(text, out)
}

/// As [`decode_exact`], into a slice: exactly `out.len()` bytes from
/// [`encoded_len(out.len())`](encoded_len) characters.
#[inline(always)]
fn decode_into(text: &[u8], out: &mut [u8]) -> bool {
    if text.len() != encoded_len(out.len()) {
        return false;
    }
    // For the last characters: every valid value is below 64; `INVALID` sets bits 6 and 7.
    let mut seen = 0u8;
    // Bit 31 of `marks` is set once any character of the groups was invalid.
    let mut marks = 0u32;
    let mut octets = text.chunks_exact(8);
    let mut sextuples = out.chunks_exact_mut(6);
    // `encoded_len(n) / 8 == n / 6`, so the two run out together.
    for (chars, bytes) in (&mut octets).zip(&mut sextuples) {
        // Eight independent lookups, combined as trees: a chain through every character
        // (`v = v << 6 | x`) made decoding latency-bound, as long as the token. Each quarter of
        // a group has its own table of shifted values, so a lookup needs no shift.
        let Ok(&[c0, c1, c2, c3, c4, c5, c6, c7]) = <&[u8; 8]>::try_from(chars) else {
            return false;
        };
        let [t0, t1, t2, t3] = &SHIFTED;
        let x = |table: &[u32; 256], c: u8| table[usize::from(c)];
        let high = (x(t0, c0) | x(t1, c1)) | (x(t2, c2) | x(t3, c3));
        let low = (x(t0, c4) | x(t1, c5)) | (x(t2, c6) | x(t3, c7));
        marks |= high | low;
        // The low three bytes of each half (an invalid character's mark is above them), as
        // a 4-byte and a 2-byte store: a slice's copy would be a `memcpy` call, and an array
        // of six bytes was stored byte by byte.
        let (first, rest) = bytes.split_at_mut(4);
        if let (Ok(first), Ok(rest)) = (
            <&mut [u8; 4]>::try_from(first),
            <&mut [u8; 2]>::try_from(rest),
        ) {
            *first = (high << 8 | (low >> 16 & 0xFF)).to_be_bytes();
            *rest = (low as u16).to_be_bytes();
        }
    }
    // The last 0 to 7 characters hold the last 0 to 5 bytes and 0, 2 or 4 spare bits.
    let chars = octets.remainder();
    let bytes = sextuples.into_remainder();
    let mut v = 0u64;
    for &c in chars {
        let x = SEXTETS[usize::from(c)];
        seen |= x;
        v = v << 6 | u64::from(x);
    }
    let spare = chars.len() * 6 - bytes.len() * 8;
    if v & ((1 << spare) - 1) != 0 {
        return false;
    }
    // Byte by byte: at most 5, and a copy of a slice this short would be a `memcpy` call.
    let v = v >> spare;
    let last = bytes.len().saturating_sub(1);
    for (i, byte) in bytes.iter_mut().enumerate() {
        *byte = (v >> ((last - i) * 8)) as u8;
    }
    seen < 64 && marks & SHIFTED_INVALID == 0
}

/// Fills in the version, key id and tag of `buf`, whose fields are set, and encodes it.
fn seal<const N: usize>(buf: [u8; N], entry: &Entry, mac: &Hmac<Sha256>) -> String {
    seal_bound(buf, entry, mac, &[])
}

/// As [`seal`], with `bound` absorbed after the bytes: values the tag binds that the token does
/// not carry.
fn seal_bound<const N: usize>(
    mut buf: [u8; N],
    entry: &Entry,
    mac: &Hmac<Sha256>,
    bound: &[&[u8]],
) -> String {
    seal_into(&mut buf, entry, mac, bound)
}

/// As [`seal_bound`], for a token of `buf.len()` bytes, the last [`TAG_LEN`] of them the tag.
fn seal_into(buf: &mut [u8], entry: &Entry, mac: &Hmac<Sha256>, bound: &[&[u8]]) -> String {
    let body = buf.len() - TAG_LEN;
    buf[0] = VERSION;
    buf[1..5].copy_from_slice(&entry.id.to_be_bytes());
    let mut mac = mac.clone();
    mac.update(&buf[..body]);
    for b in bound {
        mac.update(b);
    }
    let tag = mac.finalize().into_bytes();
    buf[body..].copy_from_slice(&tag[..TAG_LEN]);
    URL_SAFE_NO_PAD.encode(buf)
}

/// The first check of every verification: the version, from the first two characters.
#[inline]
fn check_version(text: &[u8]) -> Result<(), TokenError> {
    let (Some(&c0), Some(&c1)) = (text.first(), text.get(1)) else {
        return Err(TokenError::Truncated);
    };
    let (Some(hi), Some(lo)) = (sextet(c0), sextet(c1)) else {
        return Err(TokenError::Malformed);
    };
    let version = (hi << 2) | (lo >> 4);
    if version != VERSION {
        return Err(TokenError::UnknownVersion { version });
    }
    Ok(())
}

/// Decodes and authenticates a token of `N` bytes: version, length, base64url, the fields'
/// ranges (`fields_ok`), key id, then the tag. Returns the bytes; the caller checks expiry.
#[inline]
fn open<const N: usize>(
    token: &str,
    keys: &Keyring,
    mac: impl FnOnce(&Entry) -> &Hmac<Sha256>,
    fields_ok: impl FnOnce(&[u8; N]) -> bool,
) -> Result<[u8; N], TokenError> {
    open_bound(token, keys, mac, fields_ok, &[])
}

/// As [`open`], with `bound` absorbed after the bytes (see [`seal_bound`]).
#[inline]
fn open_bound<const N: usize>(
    token: &str,
    keys: &Keyring,
    mac: impl FnOnce(&Entry) -> &Hmac<Sha256>,
    fields_ok: impl FnOnce(&[u8; N]) -> bool,
    bound: &[&[u8]],
) -> Result<[u8; N], TokenError> {
    let text = token.as_bytes();
    check_version(text)?;
    let len = encoded_len(N);
    if text.len() < len {
        return Err(TokenError::Truncated);
    }
    if text.len() > len {
        return Err(TokenError::TooLong);
    }
    let mut buf = [0u8; N];
    if !decode_exact(text, &mut buf) || !fields_ok(&buf) {
        return Err(TokenError::Malformed);
    }
    let key_id = u32::from_be_bytes([buf[1], buf[2], buf[3], buf[4]]);
    let entry = keys
        .entry(key_id)
        .ok_or(TokenError::UnknownKey { key_id })?;
    let (body, tag) = buf.split_at(N - TAG_LEN);
    let mut mac = mac(entry).clone();
    mac.update(body);
    for b in bound {
        mac.update(b);
    }
    mac.verify_truncated_left(tag)
        .map_err(|_| TokenError::Forged)?;
    Ok(buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keyring() -> Keyring {
        Keyring::new(3, SigningKey::from_bytes([0x42; KEY_LEN]))
    }

    fn at(s: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(s, 0).unwrap()
    }

    #[test]
    fn lengths() {
        assert_eq!(LINK_BYTES, 45);
        assert_eq!(LinkToken::LEN, 60);
        const { assert!(LinkToken::LEN <= 64) };
        assert_eq!(FormToken::LEN, 39);
        assert_eq!(HandoffToken::LEN, 60);
        assert_eq!(PERSONAL_MIN_BYTES, 47);
        assert_eq!(PERSONAL_MAX_BYTES, 174);
        assert_eq!(PersonalToken::MIN_LEN, 63);
        assert_eq!(PersonalToken::MAX_LEN, 232);
        // A link token is never as long as a personal link token.
        const { assert!(LinkToken::LEN < PersonalToken::MIN_LEN) };
        let contexts = [
            LINK_CONTEXT,
            SESSION_CONTEXT,
            FORM_CONTEXT,
            HANDOFF_CONTEXT,
            PERSONAL_CONTEXT,
        ];
        for (i, a) in contexts.iter().enumerate() {
            for (j, b) in contexts.iter().enumerate() {
                assert!(i == j || !a.starts_with(b), "{a:?} {b:?}");
            }
        }
        assert_eq!(SESSION_BYTES, 61);
        assert_eq!(SessionToken::LEN, 82);
        assert!(!LINK_CONTEXT.starts_with(SESSION_CONTEXT));
        assert!(!SESSION_CONTEXT.starts_with(LINK_CONTEXT));
    }

    #[test]
    fn expiry_is_rounded_down_and_clamped() {
        let t = DateTime::from_timestamp(1_700_000_000, 999_999_000).unwrap();
        let claims = LinkToken::new(LinkId::new(), Some(t));
        assert_eq!(claims.expires_at(), Some(at(1_700_000_000)));
        assert_eq!(LinkToken::new(LinkId::new(), None).expires_at(), None);
        let early = DateTime::from_timestamp(0, 500_000_000).unwrap();
        assert_eq!(
            LinkToken::new(LinkId::new(), Some(early)).expires_at(),
            Some(at(1))
        );
        assert_eq!(
            LinkToken::new(LinkId::new(), Some(at(-5))).expires_at(),
            Some(at(1))
        );
        let far = DateTime::<Utc>::MAX_UTC;
        assert_eq!(
            SessionToken::new(SessionId::new(), AccountId::new(), far).expires_at(),
            at(MAX_EXPIRY as i64)
        );
    }

    #[test]
    fn errors_in_order() {
        let keys = keyring();
        let now = at(1_000);
        let token = LinkToken::new(LinkId::new(), Some(at(2_000))).sign(&keys);
        let verify = |t: &str| LinkToken::verify(t, &keys, now);
        assert!(verify(&token).is_ok());
        assert_eq!(verify(""), Err(TokenError::Truncated));
        assert_eq!(verify("A"), Err(TokenError::Truncated));
        assert_eq!(verify("A="), Err(TokenError::Malformed));
        assert_eq!(verify("é"), Err(TokenError::Malformed));
        assert_eq!(verify("AA"), Err(TokenError::UnknownVersion { version: 0 }));
        assert_eq!(verify(&token[..59]), Err(TokenError::Truncated));
        assert_eq!(verify(&format!("{token}A")), Err(TokenError::TooLong));
        let mut bad = token.clone();
        bad.replace_range(30..31, "+");
        assert_eq!(verify(&bad), Err(TokenError::Malformed));
        let other = Keyring::new(4, SigningKey::from_bytes([0x42; KEY_LEN]));
        assert_eq!(
            LinkToken::verify(&token, &other, now),
            Err(TokenError::UnknownKey { key_id: 3 })
        );
        let forger = Keyring::new(3, SigningKey::from_bytes([0x43; KEY_LEN]));
        assert_eq!(
            LinkToken::verify(&token, &forger, now),
            Err(TokenError::Forged)
        );
        assert_eq!(
            LinkToken::verify(&token, &keys, at(2_000)),
            Err(TokenError::Expired)
        );
        assert!(LinkToken::verify(&token, &keys, at(1_999)).is_ok());
    }

    #[test]
    fn out_of_range_expiry_is_malformed_before_the_tag() {
        let keys = keyring();
        let mut buf = [0u8; LINK_BYTES];
        buf[0] = VERSION;
        buf[1..5].copy_from_slice(&3u32.to_be_bytes());
        buf[21..29].copy_from_slice(&(MAX_EXPIRY + 1).to_be_bytes());
        let token = seal(buf, keys.signing(), &keys.signing().link);
        assert_eq!(
            LinkToken::verify(&token, &keys, at(0)),
            Err(TokenError::Malformed)
        );
        let mut buf = [0u8; SESSION_BYTES];
        buf[0] = VERSION;
        let token = seal(buf, keys.signing(), &keys.signing().session);
        assert_eq!(
            SessionToken::verify(&token, &keys, at(0)),
            Err(TokenError::Malformed)
        );
        buf[37..45].copy_from_slice(&1u64.to_be_bytes());
        let token = seal(buf, keys.signing(), &keys.signing().session);
        assert_eq!(
            SessionToken::verify(&token, &keys, at(0)).map(|c| c.expires_at()),
            Ok(at(1))
        );
    }

    /// The hand-written decoder agrees with the `base64` crate on every input tried.
    #[test]
    fn decoder_agrees_with_the_base64_crate() {
        fn agree<const N: usize>(text: &[u8]) {
            let mut ours = [0u8; N];
            let ok = decode_exact(text, &mut ours);
            let theirs = URL_SAFE_NO_PAD.decode(text);
            match theirs {
                Ok(bytes) if bytes.len() == N => {
                    assert!(ok, "{text:?}");
                    assert_eq!(&ours[..], &bytes[..]);
                }
                _ => assert!(!ok, "{text:?}"),
            }
        }
        let mut seed = 0x9E37_79B9_7F4A_7C15u64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_+/=*";
        for _ in 0..20_000 {
            let mut bytes = [0u8; 61];
            bytes.iter_mut().for_each(|b| *b = next() as u8);
            let text = URL_SAFE_NO_PAD.encode(bytes);
            agree::<61>(text.as_bytes());
            agree::<45>(&text.as_bytes()[..60]);
            agree::<44>(&text.as_bytes()[..59]);
            // Mutate one character, sometimes to one outside the alphabet.
            let mut text = text.into_bytes();
            let at = next() as usize % text.len();
            text[at] = alphabet[next() as usize % alphabet.len()];
            agree::<61>(&text);
            agree::<45>(&text[..60]);
            agree::<44>(&text[..59]);
            text[at] = next() as u8;
            agree::<61>(&text);
        }
        // The slice decoder, for every personal link token length, on valid and mutated text.
        for n in PERSONAL_MIN_BYTES..=PERSONAL_MAX_BYTES {
            let mut bytes = [0u8; PERSONAL_MAX_BYTES];
            bytes.iter_mut().for_each(|b| *b = next() as u8);
            let text = URL_SAFE_NO_PAD.encode(&bytes[..n]);
            let mut ours = [0u8; PERSONAL_MAX_BYTES];
            assert!(decode_into(text.as_bytes(), &mut ours[..n]));
            assert_eq!(ours[..n], bytes[..n]);
            assert!(!decode_into(text.as_bytes(), &mut ours[..n - 1]));
            let mut text = text.into_bytes();
            let at = next() as usize % text.len();
            text[at] = alphabet[next() as usize % alphabet.len()];
            let theirs = URL_SAFE_NO_PAD.decode(&text);
            let ok = decode_into(&text, &mut ours[..n]);
            assert_eq!(ok, theirs.is_ok(), "{text:?}");
            if let Ok(theirs) = theirs {
                assert_eq!(ours[..n], theirs[..]);
            }
        }
        agree::<61>(b"");
        agree::<1>(b"AA");
        agree::<1>(b"AB");
        agree::<2>(b"AAE");
        agree::<2>(b"AAB");
    }

    /// `decode_into` against the `base64` crate's strict URL_SAFE_NO_PAD decoding, for `text`
    /// and each output length near the one its length implies: the same verdict, the same bytes.
    fn agrees_with_the_base64_crate(
        text: &[u8],
    ) -> Result<(), proptest::test_runner::TestCaseError> {
        let theirs = URL_SAFE_NO_PAD.decode(text);
        let implied = text.len() * 3 / 4;
        for n in implied.saturating_sub(1)..=implied + 1 {
            let mut ours = vec![0xA5; n];
            let ok = decode_into(text, &mut ours);
            match &theirs {
                Ok(bytes) if bytes.len() == n => {
                    proptest::prop_assert!(ok, "{:?} into {}", text, n);
                    proptest::prop_assert_eq!(&ours, bytes);
                }
                _ => proptest::prop_assert!(!ok, "{:?} into {}", text, n),
            }
        }
        Ok(())
    }

    proptest::proptest! {
        #[test]
        fn decoder_agrees_on_arbitrary_bytes(text in proptest::collection::vec(proptest::num::u8::ANY, 0..=240)) {
            agrees_with_the_base64_crate(&text)?;
        }

        #[test]
        fn decoder_agrees_on_arbitrary_ascii(text in proptest::collection::vec(0u8..0x80, 0..=240)) {
            agrees_with_the_base64_crate(&text)?;
        }

        /// Mostly the alphabet, so that long inputs are often valid, with at times one byte
        /// (any, or one next to a run of the alphabet) put in.
        #[test]
        fn decoder_agrees_near_the_alphabet(
            text in "[A-Za-z0-9_-]{0,240}",
            at in proptest::num::usize::ANY,
            byte in proptest::prop_oneof![
                proptest::num::u8::ANY,
                proptest::sample::select(b",./:@[`{+=*\x7f\x80\xff".to_vec()),
            ],
            put in proptest::bool::ANY,
        ) {
            let mut text = text.into_bytes();
            if put && !text.is_empty() {
                let at = at % text.len();
                text[at] = byte;
            }
            agrees_with_the_base64_crate(&text)?;
        }

        /// Every encoding of any bytes decodes to them.
        #[test]
        fn decoder_reads_every_encoding(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..=180)) {
            let text = URL_SAFE_NO_PAD.encode(&bytes);
            let mut ours = vec![0; bytes.len()];
            proptest::prop_assert!(decode_into(text.as_bytes(), &mut ours));
            proptest::prop_assert_eq!(ours, bytes);
            agrees_with_the_base64_crate(text.as_bytes())?;
        }
    }

    fn reference(text: &str) -> Reference {
        Reference::new(text).unwrap()
    }

    /// A personal link token signed correctly over any bytes: `n` as the length byte, then
    /// `reference`, for a token of `30 + reference.len() + 16` bytes.
    fn personal_raw(keys: &Keyring, n: u8, reference: &[u8], expiry: u64) -> String {
        let mut buf = vec![0u8; PERSONAL_REFERENCE_AT + reference.len() + TAG_LEN];
        buf[21..29].copy_from_slice(&expiry.to_be_bytes());
        buf[29] = n;
        buf[PERSONAL_REFERENCE_AT..PERSONAL_REFERENCE_AT + reference.len()]
            .copy_from_slice(reference);
        seal_into(&mut buf, keys.signing(), &keys.signing().personal, &[])
    }

    #[test]
    fn personal_lengths_follow_the_reference() {
        let keys = keyring();
        for (text, len) in [
            ("a", 63),
            ("ab", 64),
            ("abc", 66),
            ("cus_8f2k", 72),
            (&"é".repeat(64), 232),
        ] {
            let claims = PersonalToken::new(LinkId::new(), None, reference(text));
            let token = claims.sign(&keys);
            assert_eq!(token.len(), len, "{text}");
            assert_eq!(PersonalToken::verify(&token, &keys, at(0)), Ok(claims));
        }
    }

    #[test]
    fn personal_errors_in_order() {
        let keys = keyring();
        let now = at(1_000);
        let claims = PersonalToken::new(LinkId::new(), Some(at(2_000)), reference("cus_8f2k"));
        let token = claims.sign(&keys);
        let verify = |t: &str| PersonalToken::verify(t, &keys, now);
        assert_eq!(verify(&token), Ok(claims.clone()));
        assert_eq!(verify(""), Err(TokenError::Truncated));
        assert_eq!(verify("A"), Err(TokenError::Truncated));
        assert_eq!(verify("A="), Err(TokenError::Malformed));
        assert_eq!(verify("AA"), Err(TokenError::UnknownVersion { version: 0 }));
        assert_eq!(verify(&token[..62]), Err(TokenError::Truncated));
        assert_eq!(
            verify(&format!("{token}{}", "A".repeat(200))),
            Err(TokenError::TooLong)
        );
        // Cut within the bounds: a length no byte count has, or a length byte that disagrees.
        assert_eq!(verify(&token[..69]), Err(TokenError::Malformed));
        assert_eq!(verify(&token[..71]), Err(TokenError::Malformed));
        assert_eq!(verify(&format!("{token}AAAA")), Err(TokenError::Malformed));
        let mut bad = token.clone();
        bad.replace_range(30..31, "+");
        assert_eq!(verify(&bad), Err(TokenError::Malformed));
        let other = Keyring::new(4, SigningKey::from_bytes([0x42; KEY_LEN]));
        assert_eq!(
            PersonalToken::verify(&token, &other, now),
            Err(TokenError::UnknownKey { key_id: 3 })
        );
        let forger = Keyring::new(3, SigningKey::from_bytes([0x43; KEY_LEN]));
        assert_eq!(
            PersonalToken::verify(&token, &forger, now),
            Err(TokenError::Forged)
        );
        assert_eq!(
            PersonalToken::verify(&token, &keys, at(2_000)),
            Err(TokenError::Expired)
        );
        assert!(PersonalToken::verify(&token, &keys, at(1_999)).is_ok());
    }

    /// Field checks come before the key id and the tag: each of these is signed correctly.
    #[test]
    fn personal_fields_are_checked_before_the_key() {
        let keys = keyring();
        let stranger = Keyring::new(9, SigningKey::from_bytes([0x42; KEY_LEN]));
        let valid = personal_raw(&keys, 3, b"abc", 0);
        let expected = PersonalToken::new(LinkId::from_bytes([0; 16]), None, reference("abc"));
        assert_eq!(PersonalToken::verify(&valid, &keys, at(0)), Ok(expected));
        for (n, reference, expiry) in [
            (4, &b"abc"[..], 0),         // length byte too large
            (2, b"abc", 0),              // too small
            (0, b"a", 0),                // zero
            (3, b"a\x07c", 0),           // a control character
            (3, b"a\x7fc", 0),           // DEL is one too
            (2, "\u{85}".as_bytes(), 0), // and so is NEL, in UTF-8
            (2, b"\xc3\x28", 0),         // not UTF-8
            (3, b"abc", MAX_EXPIRY + 1), // an expiry out of range
        ] {
            let token = personal_raw(&keys, n, reference, expiry);
            for keys in [&keys, &stranger] {
                assert_eq!(
                    PersonalToken::verify(&token, keys, at(0)),
                    Err(TokenError::Malformed),
                    "{n} {reference:?}"
                );
            }
        }
        let token = personal_raw(&keys, 3, b"abc", MAX_EXPIRY);
        assert!(PersonalToken::verify(&token, &keys, at(0)).is_ok());
    }

    #[test]
    fn personal_and_other_tokens_never_cross() {
        let keys = keyring();
        let now = at(1_000);
        let link = LinkId::new();
        let link_token = LinkToken::new(link, None).sign(&keys);
        let personal = PersonalToken::new(link, None, reference("x")).sign(&keys);
        assert_eq!(
            PersonalToken::verify(&link_token, &keys, now),
            Err(TokenError::Truncated)
        );
        assert_eq!(
            LinkToken::verify(&personal, &keys, now),
            Err(TokenError::TooLong)
        );
        // A session token has a personal link token's length. Whatever its byte 29, it is
        // malformed as one: where a 15-byte reference would be, it has the zero top bytes of
        // its expiry (control characters).
        for byte in 0..=u8::MAX {
            let mut account = [b'a'; 16];
            account[8] = byte; // byte 29 of the token
            let session = SessionToken::new(
                SessionId::new(),
                AccountId::from_bytes(account),
                at(MAX_EXPIRY as i64),
            )
            .sign(&keys);
            assert_eq!(
                PersonalToken::verify(&session, &keys, now),
                Err(TokenError::Malformed),
                "{byte}"
            );
        }
        // A personal link token with a 15-byte reference has a session token's length, and
        // the last 8 bytes of the reference, its expiry's place, are never below 2^40.
        let personal = PersonalToken::new(link, None, reference("fifteen-bytes!!")).sign(&keys);
        assert_eq!(personal.len(), SessionToken::LEN);
        assert_eq!(
            SessionToken::verify(&personal, &keys, now),
            Err(TokenError::Malformed)
        );
    }

    #[test]
    fn before_the_epoch_nothing_is_expired() {
        let keys = keyring();
        let token = LinkToken::new(LinkId::new(), Some(at(10))).sign(&keys);
        assert!(LinkToken::verify(&token, &keys, at(-100)).is_ok());
        let almost = DateTime::from_timestamp(9, 999_999_000).unwrap();
        assert!(LinkToken::verify(&token, &keys, almost).is_ok());
    }
}
