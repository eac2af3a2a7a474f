//! Signed return URLs: where a person's browser goes after a verification, with parameters the
//! link owner's site can trust.
//!
//! When a person completes or quits a verification, the flow page redirects their browser to
//! the link's [`ReturnUrl`] with the session's id, the link's id, the owner's reference, the
//! [status](ReturnStatus), optionally the [outcome](crate::Outcome) and a timestamp appended
//! to its query, and last an HMAC-SHA256 `signature` made with the account's
//! [`ReturnSecret`]. The owner's site checks them with a [`ReturnVerifier`] holding the same
//! secret (two during a [rotation](ReturnSecrets::rotate)).
//!
//! Everything here is pure: no clock reads except in [`ReturnVerifier::verify`], no I/O.
//! Where secrets and allowed [origins](ReturnOrigin) are kept is the host service's choice.
//!
//! # The format (version 1)
//!
//! This is a published format: a site written in any language can verify it from this
//! description, and `tests/vectors/returns.json` in the repository holds test vectors (checked
//! there with Rust and with Python's standard library).
//!
//! **Secret.** `whsec_` followed by the standard base64 (padding optional) of 24 to 64 key
//! bytes, the form of a Standard Webhooks secret. The HMAC key is the decoded bytes. Each
//! account has its own.
//!
//! **Encoding of a value.** The `application/x-www-form-urlencoded` byte serializer of the
//! WHATWG URL standard applied to the value's UTF-8 bytes: `A`–`Z`, `a`–`z`, `0`–`9`, `*`,
//! `-`, `.` and `_` stay as they are, a space becomes `+`, every other byte becomes `%XX`
//! with upper-case hexadecimal digits (so `~` becomes `%7E`, unlike Python's `quote_plus`).
//!
//! **Appended parameters**, in this order, each as `name=encoded value`, joined with `&`:
//!
//! | name | value | when |
//! |---|---|---|
//! | `session_id` | the session's UUID, hyphenated, lower case | always |
//! | `link_id` | the link's UUID, hyphenated, lower case | always |
//! | `reference` | the owner's [reference](crate::Reference) | only when the session has one |
//! | `status` | `completed` or `quit` | always |
//! | `outcome` | `approved`, `denied` or `needs_review` | only when the account opted in, and the session completed |
//! | `timestamp` | Unix seconds, decimal (a `-` when negative) | always |
//!
//! They follow the return URL's own query after a `&`, or after a `?` when it has none (when
//! the URL ends with an empty query, `…?`, directly after it). The return URL is kept as the
//! WHATWG URL parser writes it (`https://Shop.Example` becomes `https://shop.example/`); its
//! query never already uses one of these names nor `signature`.
//!
//! **Signed content.** Let `Q` be the query of the URL so far: the bytes after its first `?`,
//! the owner's own parameters and every appended one, exactly as they appear in the URL. The
//! tag is `HMAC-SHA256(key, "magic-link/v1/return\n" || Q)` (the context string ends with one
//! line feed, byte `0x0A`), and the signature is `v1,` followed by the tag in base64url
//! without padding (43 characters). It is appended last as `&signature=` and its encoded
//! value: `v1%2C…`, since the comma is encoded too.
//!
//! To **verify**, take the raw query of the request (the bytes after the first `?`, before
//! any `#`), split it at its last `&`: the part after it must be the `signature` parameter
//! (decode its value: the comma may arrive as `%2C`, `%2c` or `,`), the part before it is `Q`.
//! Recompute the tag over `Q` and compare in constant time. Only then read the parameters,
//! and accept the timestamp only within a tolerance of the current time (5 minutes by
//! default, both ways). Refuse a query in which `signature` or an appended name appears more
//! than once (after percent-decoding the names): a framework that reads the first occurrence
//! and one that reads the last must not see different values.
//!
//! Why so: any change to any byte of the query, the owner's own parameters included, fails;
//! the path and the host are not covered, since proxies and load balancers rewrite them and
//! the secret, per account, already says whose URL it is; the timestamp bounds how long a
//! leaked URL (browser history, a `Referer` header, logs) can be replayed. A return proves
//! that this crate sent the browser there, with these values, recently: the owner's backend
//! should still read the session's final state from the host service or its webhooks, and
//! treat a repeated `session_id` as one return.
//!
//! # Worked example
//!
//! With the secret `whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw`, the return URL
//! `https://shop.example/kyc/done?order=42`, session `0190f3a8-7c41-7d2e-9b6a-3c5e8f0a1b2c`,
//! link `6f9619ff-8b86-d011-b42d-00c04fc964ff`, reference `cus 8f/2k`, status `completed`,
//! outcome `approved` and timestamp `1899999990`:
//!
//! ```text
//! Q = order=42&session_id=0190f3a8-7c41-7d2e-9b6a-3c5e8f0a1b2c&link_id=6f9619ff-8b86-d011-b42d-00c04fc964ff&reference=cus+8f%2F2k&status=completed&outcome=approved&timestamp=1899999990
//! HMAC-SHA256(key, "magic-link/v1/return\n" || Q) = ef08827e2ad1f076955c987f0800b554e47628b4c230fb448d7874e703ba22d8
//! signature = v1,7wiCfirR8HaVXJh_CAC1VOR2KLTCMPtEjXh05wO6Itg
//! URL = https://shop.example/kyc/done?order=42&session_id=…&timestamp=1899999990&signature=v1%2C7wiCfirR8HaVXJh_CAC1VOR2KLTCMPtEjXh05wO6Itg
//! ```
//!
//! ```
//! use chrono::DateTime;
//! use magic_link::returns::{ReturnParams, ReturnSecret, ReturnStatus, ReturnUrl, ReturnVerifier};
//! use magic_link::{Outcome, Reference};
//!
//! let secret: ReturnSecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw".parse()?;
//! let url = ReturnUrl::parse("https://shop.example/kyc/done?order=42")?;
//! let params = ReturnParams {
//!     session: "0190f3a8-7c41-7d2e-9b6a-3c5e8f0a1b2c".parse()?,
//!     link: "6f9619ff-8b86-d011-b42d-00c04fc964ff".parse()?,
//!     reference: Some(Reference::new("cus 8f/2k")?),
//!     status: ReturnStatus::Completed,
//!     outcome: Some(Outcome::Approved),
//!     timestamp: 1_899_999_990,
//! };
//! let signed = url.signed(&params, &secret);
//! assert!(signed.ends_with("&timestamp=1899999990&signature=v1%2C7wiCfirR8HaVXJh_CAC1VOR2KLTCMPtEjXh05wO6Itg"));
//!
//! // The owner's site, 10 seconds later, with the request target it received.
//! let target = &signed["https://shop.example".len()..];
//! let now = DateTime::from_timestamp(1_900_000_000, 0).unwrap();
//! let verified = ReturnVerifier::new(secret).verify_at(target, now)?;
//! assert_eq!(verified.session, params.session);
//! assert_eq!(verified.reference.as_ref().map(|r| r.as_str()), Some("cus 8f/2k"));
//! assert_eq!(verified.outcome, Some(Outcome::Approved));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::borrow::Cow;
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use chrono::{DateTime, Utc};
use hmac::{Hmac, KeyInit, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use subtle::ConstantTimeEq;
use url::{form_urlencoded, Host, Url};
use zeroize::Zeroizing;

use crate::clock::{Clock, SystemClock};
use crate::webhooks::{WebhookError, WebhookSecret};
use crate::{InvalidInput, LinkId, Outcome, Reference, SessionId};

/// The longest [`ReturnUrl`] accepted, in bytes (as given and as the URL parser writes it).
pub const MAX_RETURN_URL_LEN: usize = 2048;
/// The longest input [`ReturnVerifier::verify_at`] reads, in bytes: a return URL of the
/// longest kind with every parameter appended fits well within it.
pub const MAX_SIGNED_URL_LEN: usize = 8192;
/// How far a return's timestamp may be from the verifier's clock, in either direction, by
/// default: 5 minutes.
pub const DEFAULT_TOLERANCE: Duration = Duration::from_secs(300);

/// The domain-separation prefix of the signed content.
const CONTEXT: &[u8] = b"magic-link/v1/return\n";

const SESSION_ID: &str = "session_id";
const LINK_ID: &str = "link_id";
const REFERENCE: &str = "reference";
const STATUS: &str = "status";
const OUTCOME: &str = "outcome";
const TIMESTAMP: &str = "timestamp";
const SIGNATURE: &str = "signature";

/// The names appended, in order, then `signature`.
const APPENDED: [&str; 6] = [SESSION_ID, LINK_ID, REFERENCE, STATUS, OUTCOME, TIMESTAMP];
/// The appended names that every return carries.
const REQUIRED: [&str; 4] = [SESSION_ID, LINK_ID, STATUS, TIMESTAMP];

/// The query parameter names a signed return URL appends, in order (`signature` last). A
/// [`ReturnUrl`]'s own query never uses them.
pub const PARAMETER_NAMES: [&str; 7] = [
    SESSION_ID, LINK_ID, REFERENCE, STATUS, OUTCOME, TIMESTAMP, SIGNATURE,
];

/// Why a return failed verification, or a secret failed to parse.
///
/// The variants never carry the secret, the URL or the values of its parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
#[non_exhaustive]
pub enum ReturnError {
    /// The input is longer than [`MAX_SIGNED_URL_LEN`] or holds a byte that is not printable
    /// ASCII (white space and control characters included): no URL this module signs does.
    #[error("the return URL is malformed")]
    Malformed,
    /// A parameter that every return carries is absent (`signature`, `session_id`, `link_id`,
    /// `status` or `timestamp`).
    #[error("missing parameter {0}")]
    MissingParameter(&'static str),
    /// A parameter appears more than once (names compared after percent-decoding).
    #[error("duplicate parameter {0}")]
    DuplicateParameter(&'static str),
    /// The `signature` parameter is present but not the last parameter of the query.
    #[error("the signature is not the last parameter")]
    SignatureNotLast,
    /// The signature is not a `v1` signature (another version, or not base64url of 32
    /// bytes), or matches under none of the secrets: the query was changed or signed with
    /// another secret.
    #[error("the signature does not match")]
    BadSignature,
    /// The signature matches but a parameter's value is not what the format allows (not a
    /// UUID, an unknown status or outcome, an invalid reference, a timestamp that is not a
    /// decimal number). Only reported for authentic input: it means a faulty signer.
    #[error("invalid parameter {0}")]
    InvalidParameter(&'static str),
    /// The timestamp is further in the past than the tolerance.
    #[error("the return timestamp is too old")]
    TimestampTooOld,
    /// The timestamp is further in the future than the tolerance.
    #[error("the return timestamp is too far in the future")]
    TimestampTooNew,
    /// A secret is not `whsec_` followed by non-empty base64.
    #[error("malformed return secret: expected whsec_ followed by base64")]
    MalformedSecret,
    /// A secret's key is shorter than [`ReturnSecret::MIN_LEN`] or longer than
    /// [`ReturnSecret::MAX_LEN`] bytes.
    #[error("a return secret must be 24 to 64 bytes long")]
    SecretLength,
}

impl From<WebhookError> for ReturnError {
    fn from(err: WebhookError) -> Self {
        match err {
            WebhookError::SecretLength => Self::SecretLength,
            _ => Self::MalformedSecret,
        }
    }
}

/// Whether a URL with this scheme and host may be a return target: `https`, or `http` to the
/// local machine (for development).
fn allowed_scheme(url: &Url) -> bool {
    match url.scheme() {
        "https" => true,
        "http" => match url.host() {
            Some(Host::Domain(d)) => d == "localhost",
            Some(Host::Ipv4(ip)) => ip == std::net::Ipv4Addr::LOCALHOST,
            Some(Host::Ipv6(ip)) => ip == std::net::Ipv6Addr::LOCALHOST,
            None => false,
        },
        _ => false,
    }
}

/// The checks on the text shared by [`ReturnUrl`] and [`ReturnOrigin`]; returns the part
/// after `scheme://`.
fn spelled_out(input: &str) -> Option<&str> {
    if input.len() > MAX_RETURN_URL_LEN
        || input.chars().any(|c| c.is_whitespace() || c.is_control())
    {
        return None;
    }
    // The WHATWG parser forgives `https:host`, `https:///host` and `https:\host`; a return
    // target must spell out `scheme://host`.
    let (scheme, rest) = input.split_once("://")?;
    let known = scheme.eq_ignore_ascii_case("http") || scheme.eq_ignore_ascii_case("https");
    (known && !rest.starts_with(['/', '\\'])).then_some(rest)
}

/// The URL if it is absolute, has an allowed scheme and a host, and no user information.
fn parse_target(input: &str) -> Option<Url> {
    spelled_out(input)?;
    let url = Url::parse(input).ok()?;
    let valid = allowed_scheme(&url)
        && url.host_str().is_some_and(|h| !h.is_empty())
        && url.username().is_empty()
        && url.password().is_none()
        && url.as_str().len() <= MAX_RETURN_URL_LEN;
    valid.then_some(url)
}

/// A validated redirect target for the end of a verification.
///
/// An absolute `https` URL (or `http` to `localhost`, `127.0.0.1` or `[::1]`, for
/// development) with a host, without user information or fragment, of at most
/// [`MAX_RETURN_URL_LEN`] bytes, without white space or control characters, whose query does
/// not use any of the [`PARAMETER_NAMES`] (that would make the signed parameters ambiguous).
/// It is kept as the WHATWG URL parser writes it. Serde writes it as a string and validates
/// it when reading.
///
/// # Examples
///
/// ```
/// use magic_link::returns::{ReturnOrigin, ReturnUrl};
///
/// let url = ReturnUrl::parse("https://Shop.Example:443/done?order=42")?;
/// assert_eq!(url.as_str(), "https://shop.example/done?order=42");
/// assert_eq!(url.origin(), ReturnOrigin::parse("https://shop.example")?);
/// assert!(ReturnUrl::parse("http://shop.example/done").is_err());
/// assert!(ReturnUrl::parse("https://shop.example/done?status=ok").is_err());
/// # Ok::<(), magic_link::InvalidInput>(())
/// ```
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct ReturnUrl(Url);

impl ReturnUrl {
    /// Validates a return URL.
    ///
    /// # Errors
    ///
    /// [`InvalidInput::InvalidReturnUrl`] for anything but the URLs described on
    /// [`ReturnUrl`].
    pub fn parse(input: &str) -> Result<Self, InvalidInput> {
        let url = parse_target(input).ok_or(InvalidInput::InvalidReturnUrl)?;
        if url.fragment().is_some() {
            return Err(InvalidInput::InvalidReturnUrl);
        }
        if let Some(query) = url.query() {
            let reserved = query
                .split('&')
                .any(|piece| PARAMETER_NAMES.iter().any(|n| name_is(piece, n)));
            if reserved {
                return Err(InvalidInput::InvalidReturnUrl);
            }
        }
        Ok(Self(url))
    }

    /// The URL, as the WHATWG URL parser writes it.
    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }

    /// The URL's origin, `scheme://host[:port]`.
    pub fn origin(&self) -> ReturnOrigin {
        ReturnOrigin(self.0.origin().ascii_serialization())
    }

    /// The URL with `params` appended to its query and signed with `secret` (an account's
    /// [current](ReturnSecrets::current) secret), as the [module docs](self) describe: where
    /// the browser is redirected.
    pub fn signed(&self, params: &ReturnParams, secret: &ReturnSecret) -> String {
        let base = self.as_str();
        let mut out = String::with_capacity(base.len() + 300);
        out.push_str(base);
        // A return URL has no fragment: its query, if any, ends it.
        let query_start = match self.0.query() {
            None => {
                out.push('?');
                out.len()
            }
            Some("") => out.len(),
            Some(query) => {
                out.push('&');
                base.len() - query.len()
            }
        };
        let session = params.session.to_string();
        let link = params.link.to_string();
        let timestamp = params.timestamp.to_string();
        let pairs = [
            (SESSION_ID, Some(session.as_str())),
            (LINK_ID, Some(link.as_str())),
            (REFERENCE, params.reference.as_ref().map(Reference::as_str)),
            (STATUS, Some(params.status.as_str())),
            (OUTCOME, params.outcome.map(Outcome::as_str)),
            (TIMESTAMP, Some(timestamp.as_str())),
        ];
        for (i, (name, value)) in pairs.into_iter().enumerate() {
            let Some(value) = value else { continue };
            if i > 0 {
                out.push('&');
            }
            out.push_str(name);
            out.push('=');
            out.extend(form_urlencoded::byte_serialize(value.as_bytes()));
        }

        let tag = secret.tag(&out.as_bytes()[query_start..]);
        out.push_str("&signature=v1%2C");
        URL_SAFE_NO_PAD.encode_string(tag, &mut out);
        out
    }
}

impl fmt::Debug for ReturnUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ReturnUrl({:?})", self.as_str())
    }
}

impl fmt::Display for ReturnUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ReturnUrl {
    type Err = InvalidInput;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl AsRef<str> for ReturnUrl {
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}

impl Serialize for ReturnUrl {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for ReturnUrl {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = <Cow<'de, str>>::deserialize(deserializer)?;
        Self::parse(&text).map_err(serde::de::Error::custom)
    }
}

/// The origin of a return target, `scheme://host[:port]`: what an account allows.
///
/// Written as [`url::Origin::ascii_serialization`] writes it: host in lower case (an
/// internationalised name in its `xn--` form), default port left out. The scheme rules of a
/// [`ReturnUrl`] hold. [`ReturnUrl::origin`] of a URL on the same site equals it. Serde writes
/// it as a string and validates it when reading.
///
/// # Examples
///
/// ```
/// use magic_link::returns::ReturnOrigin;
///
/// let origin = ReturnOrigin::parse("https://Shop.Example:443/")?;
/// assert_eq!(origin.as_str(), "https://shop.example");
/// assert_eq!(ReturnOrigin::parse("http://localhost:3000")?.as_str(), "http://localhost:3000");
/// assert!(ReturnOrigin::parse("https://shop.example/done").is_err());
/// # Ok::<(), magic_link::InvalidInput>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ReturnOrigin(String);

impl ReturnOrigin {
    /// Validates an origin: `scheme://host[:port]`, optionally followed by one `/`, nothing
    /// else.
    ///
    /// # Errors
    ///
    /// [`InvalidInput::InvalidReturnOrigin`] for a path, a query, a fragment, user
    /// information, or a scheme or host a [`ReturnUrl`] may not have.
    pub fn parse(input: &str) -> Result<Self, InvalidInput> {
        let invalid = InvalidInput::InvalidReturnOrigin;
        let rest = spelled_out(input).ok_or(InvalidInput::InvalidReturnOrigin)?;
        let authority = rest.strip_suffix('/').unwrap_or(rest);
        if authority.contains(['/', '\\', '?', '#', '@']) {
            return Err(invalid);
        }
        let url = parse_target(input).ok_or(InvalidInput::InvalidReturnOrigin)?;
        if url.path() != "/" || url.query().is_some() || url.fragment().is_some() {
            return Err(invalid);
        }
        Ok(Self(url.origin().ascii_serialization()))
    }

    /// The origin, `scheme://host[:port]`.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ReturnOrigin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for ReturnOrigin {
    type Err = InvalidInput;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl AsRef<str> for ReturnOrigin {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl Serialize for ReturnOrigin {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for ReturnOrigin {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = <Cow<'de, str>>::deserialize(deserializer)?;
        Self::parse(&text).map_err(serde::de::Error::custom)
    }
}

/// An account's return signing secret: the HMAC-SHA256 key shared with the owner's site,
/// written `whsec_` + base64 of the key bytes, like a [`WebhookSecret`].
///
/// Its `Debug` prints `ReturnSecret([redacted])`; it has no `Display` and no `PartialEq`; its
/// memory is zeroized on drop.
///
/// # Examples
///
/// ```
/// use magic_link::returns::ReturnSecret;
///
/// let secret = ReturnSecret::generate()?;
/// let shown_once = secret.expose(); // give it to the account owner
/// assert!(shown_once.starts_with("whsec_"));
/// assert_eq!(format!("{secret:?}"), "ReturnSecret([redacted])");
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Clone)]
pub struct ReturnSecret {
    secret: WebhookSecret,
    /// Pre-keyed; zeroized on drop (the `zeroize` features of `hmac` and `sha2`).
    mac: Hmac<Sha256>,
}

impl ReturnSecret {
    /// The shortest key accepted, in bytes.
    pub const MIN_LEN: usize = WebhookSecret::MIN_LEN;
    /// The longest key accepted, in bytes.
    pub const MAX_LEN: usize = WebhookSecret::MAX_LEN;

    /// A new random secret of 32 bytes from the operating system's random source.
    ///
    /// # Errors
    ///
    /// The operating system's random source failed.
    pub fn generate() -> std::io::Result<Self> {
        let secret = WebhookSecret::generate()?;
        Self::new(secret).map_err(std::io::Error::other)
    }

    /// A secret from raw key bytes, [`MIN_LEN`](Self::MIN_LEN) to
    /// [`MAX_LEN`](Self::MAX_LEN) of them.
    ///
    /// # Errors
    ///
    /// [`ReturnError::SecretLength`] for a key of another length.
    pub fn from_bytes(key: &[u8]) -> Result<Self, ReturnError> {
        Self::new(WebhookSecret::from_bytes(key)?)
    }

    /// Parses `whsec_` + base64 (standard alphabet, padding optional), the form
    /// [`expose`](Self::expose) writes.
    ///
    /// # Errors
    ///
    /// [`ReturnError::MalformedSecret`] or [`ReturnError::SecretLength`].
    pub fn parse(text: &str) -> Result<Self, ReturnError> {
        Self::new(text.parse::<WebhookSecret>()?)
    }

    /// The key bytes.
    ///
    /// # Security
    ///
    /// Anyone holding these bytes can forge returns for the account. Store them encrypted or
    /// in a secret manager, never log them.
    pub fn key_bytes(&self) -> &[u8] {
        self.secret.key_bytes()
    }

    /// The secret written as `whsec_` + padded base64, the form shown to the account owner.
    ///
    /// # Security
    ///
    /// As for [`key_bytes`](Self::key_bytes): the returned string is zeroized when dropped,
    /// but copies made of it are not.
    pub fn expose(&self) -> Zeroizing<String> {
        self.secret.expose()
    }

    fn new(secret: WebhookSecret) -> Result<Self, ReturnError> {
        let mac = <Hmac<Sha256> as KeyInit>::new_from_slice(secret.key_bytes())
            .map_err(|_| ReturnError::MalformedSecret)?;
        Ok(Self { secret, mac })
    }

    /// HMAC-SHA256 over the context and `query`, from the pre-keyed state.
    fn tag(&self, query: &[u8]) -> [u8; 32] {
        let mut mac = self.mac.clone();
        mac.update(CONTEXT);
        mac.update(query);
        mac.finalize().into_bytes().into()
    }
}

impl FromStr for ReturnSecret {
    type Err = ReturnError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl fmt::Debug for ReturnSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ReturnSecret([redacted])")
    }
}

/// An account's return secrets: the current one, which signs, and during a rotation the
/// previous one, which still verifies. Never more than two.
///
/// `Debug` shows no key material.
///
/// # Examples
///
/// ```
/// use magic_link::returns::{ReturnSecret, ReturnSecrets};
///
/// let mut secrets = ReturnSecrets::new(ReturnSecret::generate()?);
/// secrets.rotate(ReturnSecret::generate()?);
/// assert!(secrets.previous().is_some());
/// assert_eq!(secrets.iter().count(), 2);
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct ReturnSecrets {
    current: ReturnSecret,
    previous: Option<ReturnSecret>,
}

impl ReturnSecrets {
    /// One secret, no previous one.
    pub fn new(current: ReturnSecret) -> Self {
        Self {
            current,
            previous: None,
        }
    }

    /// Makes `new` the current secret; the current one becomes the previous one, and the old
    /// previous one is dropped.
    pub fn rotate(&mut self, new: ReturnSecret) {
        let old = std::mem::replace(&mut self.current, new);
        self.previous = Some(old);
    }

    /// Ends a rotation: only the current secret verifies.
    pub fn drop_previous(&mut self) {
        self.previous = None;
    }

    /// The secret that signs.
    pub fn current(&self) -> &ReturnSecret {
        &self.current
    }

    /// The secret that still verifies during a rotation.
    pub fn previous(&self) -> Option<&ReturnSecret> {
        self.previous.as_ref()
    }

    /// The current secret, then the previous one if any.
    pub fn iter(&self) -> impl Iterator<Item = &ReturnSecret> + '_ {
        std::iter::once(&self.current).chain(self.previous.as_ref())
    }
}

impl From<ReturnSecret> for ReturnSecrets {
    fn from(current: ReturnSecret) -> Self {
        Self::new(current)
    }
}

/// How the verification ended, from the person's side: the `status` parameter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReturnStatus {
    /// The person finished the verification (`completed`).
    Completed,
    /// The person left it before the end (`quit`).
    Quit,
}

impl ReturnStatus {
    /// The value in the query: `completed` or `quit`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Completed => "completed",
            Self::Quit => "quit",
        }
    }

    fn parse(value: &str) -> Option<Self> {
        match value {
            "completed" => Some(Self::Completed),
            "quit" => Some(Self::Quit),
            _ => None,
        }
    }
}

/// What a signed return URL carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReturnParams {
    /// The session, `session_id`.
    pub session: SessionId,
    /// The link it was started from, `link_id`.
    pub link: LinkId,
    /// The owner's reference of the session, `reference`, if it has one.
    pub reference: Option<Reference>,
    /// `status`.
    pub status: ReturnStatus,
    /// `outcome`: only when the account opted in to sending it (and the session completed).
    pub outcome: Option<Outcome>,
    /// When the URL was signed, in Unix seconds, `timestamp`.
    pub timestamp: i64,
}

/// The parameters of a return that verified.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct VerifiedReturn {
    /// The session.
    pub session: SessionId,
    /// The link it was started from.
    pub link: LinkId,
    /// The owner's reference of the session, if it has one.
    pub reference: Option<Reference>,
    /// Whether the person completed or quit.
    pub status: ReturnStatus,
    /// The outcome, when the account has it sent.
    pub outcome: Option<Outcome>,
    /// When the URL was signed, in Unix seconds.
    pub timestamp: i64,
}

impl From<VerifiedReturn> for ReturnParams {
    fn from(v: VerifiedReturn) -> Self {
        Self {
            session: v.session,
            link: v.link,
            reference: v.reference,
            status: v.status,
            outcome: v.outcome,
            timestamp: v.timestamp,
        }
    }
}

/// Verifies signed return URLs on the owner's site.
///
/// A return verifies when its query ends with a `v1` signature that matches under one of the
/// secrets (compared in constant time), no appended parameter appears twice, and its timestamp
/// is within the tolerance of now (5 minutes by default, in both directions). See the
/// [module docs](self) for the format and an example.
#[derive(Debug, Clone)]
pub struct ReturnVerifier {
    secrets: Vec<ReturnSecret>,
    tolerance: Duration,
}

impl ReturnVerifier {
    /// A verifier with the account's secret (or current and previous secrets) and the default
    /// tolerance of 5 minutes.
    pub fn new(secrets: impl Into<ReturnSecrets>) -> Self {
        Self {
            secrets: secrets.into().iter().cloned().collect(),
            tolerance: DEFAULT_TOLERANCE,
        }
    }

    /// Also accepts signatures made with `secret`.
    #[must_use]
    pub fn with_secret(mut self, secret: ReturnSecret) -> Self {
        self.secrets.push(secret);
        self
    }

    /// Sets how far the timestamp may be from now, in either direction (whole seconds).
    #[must_use]
    pub fn tolerance(mut self, tolerance: Duration) -> Self {
        self.tolerance = tolerance;
        self
    }

    /// Verifies against the system clock.
    ///
    /// # Errors
    ///
    /// As for [`verify_at`](Self::verify_at).
    pub fn verify(&self, url_or_request_target: &str) -> Result<VerifiedReturn, ReturnError> {
        self.verify_at(url_or_request_target, SystemClock.now())
    }

    /// Verifies as if the time were `now`.
    ///
    /// Takes a full URL (`https://shop.example/done?…`), a request target (`/done?…`) or a
    /// bare query (`order=42&session_id=…`): the query is what follows the first `?` (all of
    /// the input when it has none), up to a `#`. Give it the raw query as the browser sent
    /// it, not one a framework decoded and re-encoded.
    ///
    /// # Errors
    ///
    /// In this order: [`Malformed`](ReturnError::Malformed);
    /// [`MissingParameter("signature")`](ReturnError::MissingParameter),
    /// [`DuplicateParameter("signature")`](ReturnError::DuplicateParameter) or
    /// [`SignatureNotLast`](ReturnError::SignatureNotLast);
    /// [`DuplicateParameter`](ReturnError::DuplicateParameter) or
    /// [`MissingParameter`](ReturnError::MissingParameter) for the other parameters;
    /// [`BadSignature`](ReturnError::BadSignature);
    /// [`InvalidParameter`](ReturnError::InvalidParameter) (only once the signature matched);
    /// [`TimestampTooOld`](ReturnError::TimestampTooOld) or
    /// [`TimestampTooNew`](ReturnError::TimestampTooNew).
    pub fn verify_at(
        &self,
        url_or_request_target: &str,
        now: DateTime<Utc>,
    ) -> Result<VerifiedReturn, ReturnError> {
        let input = url_or_request_target;
        if input.len() > MAX_SIGNED_URL_LEN || !input.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(ReturnError::Malformed);
        }
        let query = input.split_once('?').map_or(input, |(_, q)| q);
        let query = query.split_once('#').map_or(query, |(q, _)| q);

        // Structure: `signature` once and last, every appended name at most once.
        let mut counts = [0usize; PARAMETER_NAMES.len()];
        for piece in query.split('&') {
            if let Some(i) = PARAMETER_NAMES.iter().position(|n| name_is(piece, n)) {
                counts[i] += 1;
            }
        }
        let signature_count = counts[PARAMETER_NAMES.len() - 1];
        if signature_count == 0 {
            return Err(ReturnError::MissingParameter(SIGNATURE));
        }
        if signature_count > 1 {
            return Err(ReturnError::DuplicateParameter(SIGNATURE));
        }
        let (signed, last) = query.rsplit_once('&').unwrap_or(("", query));
        if !name_is(last, SIGNATURE) {
            return Err(ReturnError::SignatureNotLast);
        }
        for (name, &count) in APPENDED.iter().zip(&counts) {
            if count > 1 {
                return Err(ReturnError::DuplicateParameter(name));
            }
        }
        for (name, &count) in APPENDED.iter().zip(&counts) {
            if count == 0 && REQUIRED.contains(name) {
                return Err(ReturnError::MissingParameter(name));
            }
        }

        // The signature, before reading any value.
        let tag = parse_signature(value_of(last)).ok_or(ReturnError::BadSignature)?;
        let mut matched = subtle::Choice::from(0);
        for secret in &self.secrets {
            matched |= secret.tag(signed.as_bytes()).ct_eq(&tag);
        }
        if !bool::from(matched) {
            return Err(ReturnError::BadSignature);
        }

        // The values, authentic from here on.
        let verified = read_fields(signed)?;
        let tolerance = i64::try_from(self.tolerance.as_secs()).unwrap_or(i64::MAX);
        let now = now.timestamp();
        if verified.timestamp < now.saturating_sub(tolerance) {
            return Err(ReturnError::TimestampTooOld);
        }
        if verified.timestamp > now.saturating_add(tolerance) {
            return Err(ReturnError::TimestampTooNew);
        }
        Ok(verified)
    }
}

/// Reads the appended parameters of an authentic signed query (each present at most once).
fn read_fields(signed: &str) -> Result<VerifiedReturn, ReturnError> {
    let mut values: [Option<&str>; APPENDED.len()] = [None; APPENDED.len()];
    for piece in signed.split('&') {
        if let Some(i) = APPENDED.iter().position(|n| name_is(piece, n)) {
            values[i] = Some(value_of(piece));
        }
    }
    let [session, link, reference, status, outcome, timestamp] = values;
    let text = |raw: Option<&str>, name: &'static str| -> Result<String, ReturnError> {
        let raw = raw.ok_or(ReturnError::MissingParameter(name))?;
        String::from_utf8(decode(raw.as_bytes()).into_owned())
            .map_err(|_| ReturnError::InvalidParameter(name))
    };
    let invalid = ReturnError::InvalidParameter;
    let session = text(session, SESSION_ID)?
        .parse()
        .map_err(|_| invalid(SESSION_ID))?;
    let link = text(link, LINK_ID)?.parse().map_err(|_| invalid(LINK_ID))?;
    let reference = match reference {
        Some(raw) => {
            Some(Reference::new(text(Some(raw), REFERENCE)?).map_err(|_| invalid(REFERENCE))?)
        }
        None => None,
    };
    let status = ReturnStatus::parse(&text(status, STATUS)?).ok_or(invalid(STATUS))?;
    let outcome = match outcome {
        Some(raw) => {
            let value = text(Some(raw), OUTCOME)?;
            let outcome = Outcome::ALL.into_iter().find(|o| o.as_str() == value);
            Some(outcome.ok_or(invalid(OUTCOME))?)
        }
        None => None,
    };
    let timestamp = parse_timestamp(&text(timestamp, TIMESTAMP)?).ok_or(invalid(TIMESTAMP))?;
    Ok(VerifiedReturn {
        session,
        link,
        reference,
        status,
        outcome,
        timestamp,
    })
}

/// A decimal number of seconds: an optional `-`, then 1 to 19 ASCII digits, fitting an `i64`.
fn parse_timestamp(text: &str) -> Option<i64> {
    let digits = text.strip_prefix('-').unwrap_or(text);
    if digits.is_empty() || digits.len() > 19 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

/// The tag of a `v1,<base64url>` signature value (after decoding the query encoding).
fn parse_signature(raw: &str) -> Option<[u8; 32]> {
    let value = decode(raw.as_bytes());
    let encoded = value.strip_prefix(b"v1,")?;
    if encoded.len() != 43 {
        return None;
    }
    let mut tag = [0u8; 33];
    match URL_SAFE_NO_PAD.decode_slice(encoded, &mut tag) {
        Ok(32) => tag[..32].try_into().ok(),
        _ => None,
    }
}

/// The raw value of a query piece: after its first `=`, empty if it has none.
fn value_of(piece: &str) -> &str {
    piece.split_once('=').map_or("", |(_, v)| v)
}

/// Whether the query piece's name, decoded as `application/x-www-form-urlencoded`, is `name`.
fn name_is(piece: &str, name: &str) -> bool {
    let raw = piece.split_once('=').map_or(piece, |(n, _)| n);
    // A name spelled plainly is compared as it is; one with `%` or `+` after decoding.
    if raw.len() < name.len() {
        return false;
    }
    *decode(raw.as_bytes()) == *name.as_bytes()
}

/// Percent-decodes `application/x-www-form-urlencoded` bytes: `+` is a space, `%XX` a byte,
/// and a `%` not followed by two hexadecimal digits stays as it is (as the WHATWG URL
/// standard decodes).
fn decode(raw: &[u8]) -> Cow<'_, [u8]> {
    if !raw.iter().any(|&b| b == b'%' || b == b'+') {
        return Cow::Borrowed(raw);
    }
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        match raw[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = raw.get(i + 1..i + 3).and_then(|h| {
                    let h = std::str::from_utf8(h).ok()?;
                    u8::from_str_radix(h, 16)
                        .ok()
                        .filter(|_| h.bytes().all(|b| b.is_ascii_hexdigit()))
                });
                if let Some(byte) = hex {
                    out.push(byte);
                    i += 3;
                    continue;
                }
                out.push(b'%');
            }
            b => out.push(b),
        }
        i += 1;
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_like_the_url_standard() {
        for (raw, decoded) in [
            ("abc", "abc"),
            ("a+b", "a b"),
            ("%2F%2f", "//"),
            ("%", "%"),
            ("%4", "%4"),
            ("%zz", "%zz"),
            ("%+1", "% 1"),
            ("100%25", "100%"),
        ] {
            assert_eq!(*decode(raw.as_bytes()), *decoded.as_bytes(), "{raw}");
        }
        assert!(name_is("session%5Fid=1", SESSION_ID));
        assert!(name_is("status", STATUS));
        assert!(!name_is("statu=s", STATUS));
    }

    #[test]
    fn timestamps_are_plain_decimal() {
        assert_eq!(parse_timestamp("1900000000"), Some(1_900_000_000));
        assert_eq!(parse_timestamp("-5"), Some(-5));
        for bad in ["", "-", "+5", " 5", "1e9", "99999999999999999999", "--5"] {
            assert_eq!(parse_timestamp(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn debug_shows_no_secret_material() {
        let secret = ReturnSecret::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        let mut secrets = ReturnSecrets::new(secret.clone());
        secrets.rotate(secret.clone());
        let verifier = ReturnVerifier::new(secrets.clone());
        for text in [
            format!("{secret:?}"),
            format!("{secret:#?}"),
            format!("{secrets:?}"),
            format!("{verifier:?}"),
        ] {
            assert!(!text.contains("MfKQ9r8G"), "{text}");
            assert!(text.contains("[redacted]"), "{text}");
        }
        let err = ReturnSecret::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaS!").unwrap_err();
        assert_eq!(err, ReturnError::MalformedSecret);
        assert!(!err.to_string().contains("MfKQ"));
        assert_eq!(
            ReturnSecret::from_bytes(&[1; 8]).unwrap_err(),
            ReturnError::SecretLength
        );
    }

    #[test]
    fn rotation_keeps_at_most_two() {
        let [a, b, c] = [1u8, 2, 3].map(|n| ReturnSecret::from_bytes(&[n; 32]).unwrap());
        let mut secrets = ReturnSecrets::new(a);
        assert_eq!(secrets.iter().count(), 1);
        secrets.rotate(b);
        secrets.rotate(c);
        let keys: Vec<u8> = secrets.iter().map(|s| s.key_bytes()[0]).collect();
        assert_eq!(keys, [3, 2]);
        assert_eq!(secrets.current().key_bytes()[0], 3);
        assert_eq!(secrets.previous().map(|s| s.key_bytes()[0]), Some(2));
        secrets.drop_previous();
        assert_eq!(secrets.iter().count(), 1);
    }

    #[test]
    fn return_urls() {
        for (input, stored) in [
            ("https://shop.example", "https://shop.example/"),
            (
                "HTTPS://Shop.EXAMPLE:443/a/b?x=1&y",
                "https://shop.example/a/b?x=1&y",
            ),
            ("https://shop.example/done?", "https://shop.example/done?"),
            ("http://localhost:3000/r", "http://localhost:3000/r"),
            ("http://127.0.0.1/r", "http://127.0.0.1/r"),
            ("http://[::1]:8080/r", "http://[::1]:8080/r"),
            (
                "https://bücher.example/ü",
                "https://xn--bcher-kva.example/%C3%BC",
            ),
            (
                "https://shop.example/?sessionid=1&statuses=2",
                "https://shop.example/?sessionid=1&statuses=2",
            ),
        ] {
            assert_eq!(ReturnUrl::parse(input).unwrap().as_str(), stored, "{input}");
        }
        let long = format!("https://shop.example/{}", "a".repeat(MAX_RETURN_URL_LEN));
        for bad in [
            "",
            "shop.example/done",
            "/done",
            "http://shop.example/",
            "http://127.0.0.2/",
            "http://localhost.example/",
            "ftp://shop.example/",
            "https:shop.example",
            "https:///shop.example",
            "https://user:pw@shop.example/",
            "https://user@shop.example/",
            "https://shop.example/#top",
            "https://shop.example/#",
            "https://shop.example/ done",
            "https://shop.example/\tdone",
            "https://shop.example/done\n",
            "https://shop.example/?session_id=1",
            "https://shop.example/?a=1&signature=x",
            "https://shop.example/?status",
            "https://shop.example/?session%5Fid=1",
            "https://shop.example/?time%73tamp=1",
            long.as_str(),
        ] {
            assert_eq!(
                ReturnUrl::parse(bad),
                Err(InvalidInput::InvalidReturnUrl),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn origins() {
        for (input, origin) in [
            ("https://shop.example", "https://shop.example"),
            ("https://shop.example/", "https://shop.example"),
            ("https://Shop.Example:443", "https://shop.example"),
            ("https://shop.example:8443/", "https://shop.example:8443"),
            ("http://localhost:3000", "http://localhost:3000"),
            ("http://[::1]", "http://[::1]"),
            ("https://bücher.example", "https://xn--bcher-kva.example"),
        ] {
            let parsed = ReturnOrigin::parse(input).unwrap();
            assert_eq!(parsed.as_str(), origin, "{input}");
            assert_eq!(ReturnOrigin::parse(parsed.as_str()).unwrap(), parsed);
        }
        for bad in [
            "https://shop.example//",
            "https://shop.example/done",
            "https://shop.example?",
            "https://shop.example/?a=1",
            "https://shop.example#",
            "https://user@shop.example",
            "http://shop.example",
            "https://shop.example/.",
            "shop.example",
            "",
        ] {
            assert_eq!(
                ReturnOrigin::parse(bad),
                Err(InvalidInput::InvalidReturnOrigin),
                "{bad:?}"
            );
        }
        for (url, origin) in [
            ("https://SHOP.example:443/a?b=c", "https://shop.example/"),
            ("http://localhost:80/x", "http://localhost"),
            ("https://bücher.example/x", "https://xn--bcher-kva.example"),
        ] {
            assert_eq!(
                ReturnUrl::parse(url).unwrap().origin(),
                ReturnOrigin::parse(origin).unwrap()
            );
        }
    }

    #[test]
    fn serde_validates() {
        let url: ReturnUrl = serde_json::from_str(r#""https://shop.example/d""#).unwrap();
        assert_eq!(
            serde_json::to_string(&url).unwrap(),
            r#""https://shop.example/d""#
        );
        assert!(serde_json::from_str::<ReturnUrl>(r#""http://shop.example/d""#).is_err());
        let origin: ReturnOrigin = serde_json::from_str(r#""https://shop.example/""#).unwrap();
        assert_eq!(
            serde_json::to_string(&origin).unwrap(),
            r#""https://shop.example""#
        );
        assert!(serde_json::from_str::<ReturnOrigin>(r#""https://shop.example/x""#).is_err());
        assert_eq!(
            serde_json::to_string(&ReturnStatus::Quit).unwrap(),
            r#""quit""#
        );
    }
}
