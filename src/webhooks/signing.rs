//! Standard Webhooks signatures, version 1: signing and verification, both pure.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig, STANDARD};
use base64::engine::DecodePaddingMode;
use base64::{alphabet, Engine as _};
use chrono::{DateTime, Utc};
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use crate::clock::{Clock, SystemClock};

/// The header that carries the message id, the receiver's idempotency key.
pub const WEBHOOK_ID_HEADER: &str = "webhook-id";
/// The header that carries the signing time, in Unix seconds.
pub const WEBHOOK_TIMESTAMP_HEADER: &str = "webhook-timestamp";
/// The header that carries the space-separated signatures, `v1,<base64>` each.
pub const WEBHOOK_SIGNATURE_HEADER: &str = "webhook-signature";
/// How far a `webhook-timestamp` may be from the receiver's clock, in either direction, by
/// default: 5 minutes.
pub const DEFAULT_TOLERANCE: Duration = Duration::from_secs(300);

const SECRET_PREFIX: &str = "whsec_";
/// Bytes of a key made by [`WebhookSecret::generate`].
const GENERATED_KEY_LEN: usize = 32;
/// `v1,` and the padded base64 of a 32-byte tag.
const SIGNATURE_LEN: usize = 3 + 44;

/// Standard base64 that decodes with or without padding.
const LENIENT: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// Why a webhook failed verification, or a secret failed to parse.
///
/// The variants never carry the secret, the payload or the signatures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
#[non_exhaustive]
pub enum WebhookError {
    /// A required header is absent.
    #[error("missing header {0}")]
    MissingHeader(&'static str),
    /// A header is present but not well formed (an empty or non-ASCII id, a timestamp that is
    /// not a decimal number of seconds, a signature header with no entries).
    #[error("malformed header {0}")]
    MalformedHeader(&'static str),
    /// The timestamp is further in the past than the tolerance.
    #[error("the webhook timestamp is too old")]
    TimestampTooOld,
    /// The timestamp is further in the future than the tolerance.
    #[error("the webhook timestamp is too far in the future")]
    TimestampTooNew,
    /// No `v1` signature in the header matches the payload under any of the secrets.
    #[error("no matching signature")]
    NoMatchingSignature,
    /// A secret is not `whsec_` followed by non-empty base64 (an empty key included).
    #[error("malformed webhook secret: expected whsec_ followed by base64")]
    MalformedSecret,
    /// A secret's key is shorter than [`WebhookSecret::MIN_LEN`] or longer than
    /// [`WebhookSecret::MAX_LEN`] bytes, the bounds of the Standard Webhooks specification.
    #[error("a webhook secret must be 24 to 64 bytes long")]
    SecretLength,
}

/// A webhook signing secret: the HMAC-SHA256 key shared by the sender and the receiver,
/// written `whsec_` + base64 of the key bytes.
///
/// The key is kept pre-keyed (the HMAC state after absorbing the key), so signing and
/// verifying do not redo the key schedule. Its `Debug` prints `WebhookSecret([redacted])`; it
/// has no `Display` and no `PartialEq`; its memory is zeroized on drop.
///
/// # Examples
///
/// ```
/// use magic_link::webhooks::WebhookSecret;
///
/// let secret: WebhookSecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw".parse()?;
/// let signature = secret.sign("msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, br#"{"test": 2432232314}"#);
/// assert_eq!(signature.to_string(), "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
/// assert_eq!(format!("{secret:?}"), "WebhookSecret([redacted])");
/// # Ok::<(), magic_link::webhooks::WebhookError>(())
/// ```
#[derive(Clone)]
pub struct WebhookSecret {
    key: Zeroizing<Vec<u8>>,
    /// Zeroized on drop (the `zeroize` features of `hmac` and `sha2`).
    mac: Hmac<Sha256>,
}

impl WebhookSecret {
    /// The shortest key accepted on input, in bytes (Standard Webhooks: 24).
    pub const MIN_LEN: usize = 24;
    /// The longest key accepted on input, in bytes (Standard Webhooks: 64).
    pub const MAX_LEN: usize = 64;

    /// A secret from raw key bytes: 24 to 64 of them, as the Standard Webhooks specification
    /// says. [`generate`](Self::generate) makes 32.
    ///
    /// # Errors
    ///
    /// [`WebhookError::SecretLength`] for a key of another length.
    pub fn from_bytes(key: &[u8]) -> Result<Self, WebhookError> {
        if !(Self::MIN_LEN..=Self::MAX_LEN).contains(&key.len()) {
            return Err(WebhookError::SecretLength);
        }
        Self::from_stored(key)
    }

    /// A secret a store kept from before keys were bounded: any non-empty length, so that an
    /// endpoint saved with a shorter secret still loads and sends. Never for new input.
    pub(crate) fn from_stored(key: &[u8]) -> Result<Self, WebhookError> {
        if key.is_empty() {
            return Err(WebhookError::MalformedSecret);
        }
        let mac = Hmac::<Sha256>::new_from_slice(key).map_err(|_| WebhookError::MalformedSecret)?;
        Ok(Self {
            key: Zeroizing::new(key.to_vec()),
            mac,
        })
    }

    /// A new random secret of 32 bytes from the operating system's random source.
    ///
    /// # Errors
    ///
    /// The operating system's random source failed.
    pub fn generate() -> std::io::Result<Self> {
        let mut key = Zeroizing::new([0u8; GENERATED_KEY_LEN]);
        getrandom::fill(key.as_mut()).map_err(std::io::Error::other)?;
        Self::from_bytes(key.as_ref()).map_err(std::io::Error::other)
    }

    /// The key bytes.
    ///
    /// # Security
    ///
    /// Anyone holding these bytes can forge webhooks. Store them encrypted or in a secret
    /// manager, never log them.
    pub fn key_bytes(&self) -> &[u8] {
        &self.key
    }

    /// The secret written as `whsec_` + padded base64, the form shown to the receiver.
    ///
    /// # Security
    ///
    /// As for [`key_bytes`](Self::key_bytes): the returned string is zeroized when dropped,
    /// but copies made of it are not.
    pub fn expose(&self) -> Zeroizing<String> {
        let mut out = Zeroizing::new(String::with_capacity(
            SECRET_PREFIX.len() + self.key.len().div_ceil(3) * 4,
        ));
        out.push_str(SECRET_PREFIX);
        STANDARD.encode_string(self.key.as_slice(), &mut out);
        out
    }

    /// Signs `{id}.{timestamp}.{payload}`. The payload is any bytes, signed as they are sent.
    pub fn sign(&self, id: &str, timestamp: i64, payload: &[u8]) -> Signature {
        let mut digits = itoa_buf();
        let timestamp = format_i64(timestamp, &mut digits);
        Signature(self.tag(id.as_bytes(), timestamp, payload))
    }

    /// HMAC-SHA256 over `id.timestamp.payload`, from the pre-keyed state; nothing is copied.
    fn tag(&self, id: &[u8], timestamp: &[u8], payload: &[u8]) -> [u8; 32] {
        let mut mac = self.mac.clone();
        mac.update(id);
        mac.update(b".");
        mac.update(timestamp);
        mac.update(b".");
        mac.update(payload);
        mac.finalize().into_bytes().into()
    }
}

impl FromStr for WebhookSecret {
    type Err = WebhookError;

    /// Parses `whsec_` + base64 (standard alphabet, padding optional).
    fn from_str(s: &str) -> Result<Self, WebhookError> {
        let encoded = s
            .strip_prefix(SECRET_PREFIX)
            .ok_or(WebhookError::MalformedSecret)?;
        // The decode error is dropped: it names the offending byte of the secret.
        let key = Zeroizing::new(
            LENIENT
                .decode(encoded)
                .map_err(|_| WebhookError::MalformedSecret)?,
        );
        if key.is_empty() {
            return Err(WebhookError::MalformedSecret);
        }
        Self::from_bytes(&key)
    }
}

impl fmt::Debug for WebhookSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("WebhookSecret([redacted])")
    }
}

/// One `v1` signature: an HMAC-SHA256 tag. Not secret: it travels in the
/// `webhook-signature` header. `Display` writes `v1,<base64>`.
#[derive(Clone, Copy)]
pub struct Signature([u8; 32]);

impl Signature {
    /// The tag's bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Compares with another tag in constant time.
    pub fn ct_eq(&self, other: &[u8]) -> bool {
        self.0.ct_eq(other).into()
    }

    fn push_to(&self, out: &mut String) {
        let mut buf = [0u8; SIGNATURE_LEN];
        buf[..3].copy_from_slice(b"v1,");
        // 32 bytes encode to exactly 44 base64 characters, which are ASCII.
        if let Ok(44) = STANDARD.encode_slice(self.0, &mut buf[3..]) {
            if let Ok(text) = std::str::from_utf8(&buf) {
                out.push_str(text);
            }
        }
    }
}

impl fmt::Display for Signature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut out = String::with_capacity(SIGNATURE_LEN);
        self.push_to(&mut out);
        f.write_str(&out)
    }
}

impl fmt::Debug for Signature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Signature({self})")
    }
}

/// The `webhook-signature` header value for a message signed with each of `secrets`: one
/// `v1,<base64>` per secret, separated by spaces (the form used during secret rotation).
///
/// # Examples
///
/// ```
/// use magic_link::webhooks::{WebhookSecret, signature_header};
///
/// let old = WebhookSecret::generate()?;
/// let new = WebhookSecret::generate()?;
/// let header = signature_header(&[new, old], "msg_1", 1_700_000_000, b"{}");
/// assert_eq!(header.split(' ').count(), 2);
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn signature_header(
    secrets: &[WebhookSecret],
    id: &str,
    timestamp: i64,
    payload: &[u8],
) -> String {
    let mut digits = itoa_buf();
    let ts = format_i64(timestamp, &mut digits);
    let mut out = String::with_capacity(secrets.len() * (SIGNATURE_LEN + 1));
    for (i, secret) in secrets.iter().enumerate() {
        if i > 0 {
            out.push(' ');
        }
        Signature(secret.tag(id.as_bytes(), ts, payload)).push_to(&mut out);
    }
    out
}

/// The three Standard Webhooks headers of an incoming request, as raw bytes (`None` when
/// absent). Build it from whatever HTTP library the receiver uses.
///
/// # Examples
///
/// ```
/// use magic_link::webhooks::WebhookHeaders;
/// # let request_headers: Vec<(String, Vec<u8>)> = Vec::new();
/// let headers = WebhookHeaders::from_fn(|name| {
///     request_headers
///         .iter()
///         .find(|(n, _)| n.eq_ignore_ascii_case(name))
///         .map(|(_, v)| v.as_slice())
/// });
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WebhookHeaders<'a> {
    /// `webhook-id`.
    pub id: Option<&'a [u8]>,
    /// `webhook-timestamp`.
    pub timestamp: Option<&'a [u8]>,
    /// `webhook-signature`.
    pub signature: Option<&'a [u8]>,
}

impl<'a> WebhookHeaders<'a> {
    /// All three headers present, with these values.
    pub fn new(id: &'a str, timestamp: &'a str, signature: &'a str) -> Self {
        Self {
            id: Some(id.as_bytes()),
            timestamp: Some(timestamp.as_bytes()),
            signature: Some(signature.as_bytes()),
        }
    }

    /// Looks up each header by its lower-case name (`webhook-id`, `webhook-timestamp`,
    /// `webhook-signature`).
    pub fn from_fn(mut get: impl FnMut(&str) -> Option<&'a [u8]>) -> Self {
        Self {
            id: get(WEBHOOK_ID_HEADER),
            timestamp: get(WEBHOOK_TIMESTAMP_HEADER),
            signature: get(WEBHOOK_SIGNATURE_HEADER),
        }
    }
}

/// Verifies incoming webhooks: for the receiving backend, or to test one's own sender.
///
/// A webhook verifies when its timestamp is within the tolerance of now (in both directions)
/// and one `v1` entry of its signature header matches the payload under one of the secrets
/// (several secrets during rotation). Entries of other versions and undecodable entries are
/// skipped. Tags are compared in constant time. After verifying, deduplicate on `webhook-id`:
/// delivery is at least once.
///
/// # Examples
///
/// ```
/// use chrono::DateTime;
/// use magic_link::webhooks::{WebhookHeaders, WebhookVerifier};
///
/// let verifier = WebhookVerifier::new("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw".parse()?);
/// let headers = WebhookHeaders::new(
///     "msg_p5jXN8AQM9LWM0D4loKWxJek",
///     "1614265330",
///     "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
/// );
/// let now = DateTime::from_timestamp(1614265330, 0).unwrap();
/// verifier.verify_at(headers, br#"{"test": 2432232314}"#, now)?;
/// # Ok::<(), magic_link::webhooks::WebhookError>(())
/// ```
#[derive(Debug, Clone)]
pub struct WebhookVerifier {
    secrets: Vec<WebhookSecret>,
    tolerance: Duration,
}

impl WebhookVerifier {
    /// A verifier with one secret and the default tolerance of 5 minutes.
    pub fn new(secret: WebhookSecret) -> Self {
        Self {
            secrets: vec![secret],
            tolerance: DEFAULT_TOLERANCE,
        }
    }

    /// Also accepts signatures made with `secret` (during rotation).
    #[must_use]
    pub fn with_secret(mut self, secret: WebhookSecret) -> Self {
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
    pub fn verify(&self, headers: WebhookHeaders<'_>, payload: &[u8]) -> Result<(), WebhookError> {
        self.verify_at(headers, payload, SystemClock.now())
    }

    /// Verifies as if the time were `now`.
    ///
    /// # Errors
    ///
    /// In this order: [`MissingHeader`](WebhookError::MissingHeader),
    /// [`MalformedHeader`](WebhookError::MalformedHeader),
    /// [`TimestampTooOld`](WebhookError::TimestampTooOld) or
    /// [`TimestampTooNew`](WebhookError::TimestampTooNew),
    /// [`NoMatchingSignature`](WebhookError::NoMatchingSignature).
    pub fn verify_at(
        &self,
        headers: WebhookHeaders<'_>,
        payload: &[u8],
        now: DateTime<Utc>,
    ) -> Result<(), WebhookError> {
        let id = headers
            .id
            .ok_or(WebhookError::MissingHeader(WEBHOOK_ID_HEADER))?;
        let timestamp = headers
            .timestamp
            .ok_or(WebhookError::MissingHeader(WEBHOOK_TIMESTAMP_HEADER))?;
        let signatures = headers
            .signature
            .ok_or(WebhookError::MissingHeader(WEBHOOK_SIGNATURE_HEADER))?;

        if id.is_empty() || !id.iter().all(u8::is_ascii_graphic) {
            return Err(WebhookError::MalformedHeader(WEBHOOK_ID_HEADER));
        }
        let sent = parse_timestamp(timestamp)
            .ok_or(WebhookError::MalformedHeader(WEBHOOK_TIMESTAMP_HEADER))?;
        if !signatures.is_ascii() || signatures.iter().all(u8::is_ascii_whitespace) {
            return Err(WebhookError::MalformedHeader(WEBHOOK_SIGNATURE_HEADER));
        }

        let tolerance = i64::try_from(self.tolerance.as_secs()).unwrap_or(i64::MAX);
        let now = now.timestamp();
        if sent < now.saturating_sub(tolerance) {
            return Err(WebhookError::TimestampTooOld);
        }
        if sent > now.saturating_add(tolerance) {
            return Err(WebhookError::TimestampTooNew);
        }

        // The signed content uses the timestamp exactly as sent.
        let mut on_stack = [[0u8; 32]; 2];
        let on_heap: Vec<[u8; 32]>;
        let expected: &[[u8; 32]] = if self.secrets.len() <= on_stack.len() {
            for (slot, secret) in on_stack.iter_mut().zip(&self.secrets) {
                *slot = secret.tag(id, timestamp, payload);
            }
            &on_stack[..self.secrets.len()]
        } else {
            on_heap = self
                .secrets
                .iter()
                .map(|s| s.tag(id, timestamp, payload))
                .collect();
            &on_heap
        };

        for entry in signatures
            .split(u8::is_ascii_whitespace)
            .filter(|e| !e.is_empty())
        {
            let Some(encoded) = entry.strip_prefix(b"v1,") else {
                continue;
            };
            let mut tag = [0u8; 33];
            let Ok(32) = LENIENT.decode_slice(encoded, &mut tag) else {
                continue;
            };
            let mut matched = subtle::Choice::from(0);
            for candidate in expected {
                matched |= candidate.ct_eq(&tag[..32]);
            }
            if bool::from(matched) {
                return Ok(());
            }
        }
        Err(WebhookError::NoMatchingSignature)
    }
}

/// A decimal number of seconds: ASCII digits only, no sign, fitting an `i64`.
fn parse_timestamp(raw: &[u8]) -> Option<i64> {
    if raw.is_empty() || raw.len() > 19 {
        return None;
    }
    raw.iter().try_fold(0i64, |acc, &b| {
        let digit = b.checked_sub(b'0').filter(|d| *d <= 9)?;
        acc.checked_mul(10)?.checked_add(i64::from(digit))
    })
}

fn itoa_buf() -> [u8; 20] {
    [0; 20]
}

/// Writes `n` in decimal into `buf` without allocating; returns the digits.
fn format_i64(n: i64, buf: &mut [u8; 20]) -> &[u8] {
    let mut i = buf.len();
    let mut v = n.unsigned_abs();
    loop {
        i -= 1;
        buf[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    if n < 0 {
        i -= 1;
        buf[i] = b'-';
    }
    &buf[i..]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_integers_like_display() {
        for n in [0, 7, -7, 1614265330, i64::MAX, i64::MIN] {
            let mut buf = itoa_buf();
            assert_eq!(format_i64(n, &mut buf), n.to_string().as_bytes());
        }
    }

    #[test]
    fn parses_only_plain_decimal_timestamps() {
        assert_eq!(parse_timestamp(b"1614265330"), Some(1614265330));
        assert_eq!(parse_timestamp(b"0"), Some(0));
        for bad in [
            &b""[..],
            b"-1",
            b"+1",
            b" 1",
            b"1.5",
            b"99999999999999999999",
            b"1e9",
        ] {
            assert_eq!(parse_timestamp(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn secrets_parse_with_or_without_padding_and_round_trip() {
        let padded: WebhookSecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw".parse().unwrap();
        assert_eq!(padded.key_bytes().len(), 24);
        // 25 bytes need padding.
        let key = [7u8; 25];
        let secret = WebhookSecret::from_bytes(&key).unwrap();
        let exposed = secret.expose();
        assert!(exposed.ends_with('='));
        let unpadded = exposed.trim_end_matches('=');
        for text in [exposed.as_str(), unpadded] {
            let back: WebhookSecret = text.parse().unwrap();
            assert_eq!(back.key_bytes(), key);
        }
        for bad in [
            "",
            "whsec_",
            "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
            "whsec_!!!!",
            "whsec_ab c",
        ] {
            assert_eq!(
                bad.parse::<WebhookSecret>().unwrap_err(),
                WebhookError::MalformedSecret,
                "{bad:?}"
            );
        }
    }

    #[test]
    fn generated_secrets_are_random_and_32_bytes() {
        let a = WebhookSecret::generate().unwrap();
        let b = WebhookSecret::generate().unwrap();
        assert_eq!(a.key_bytes().len(), 32);
        assert_ne!(a.key_bytes(), b.key_bytes());
    }

    #[test]
    fn debug_shows_no_secret_material() {
        let secret: WebhookSecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw".parse().unwrap();
        let verifier = WebhookVerifier::new(secret.clone());
        for text in [
            format!("{secret:?}"),
            format!("{secret:#?}"),
            format!("{verifier:?}"),
        ] {
            assert!(!text.contains("MfKQ9r8G"), "{text}");
            assert!(text.contains("[redacted]"), "{text}");
        }
        let err = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaS!"
            .parse::<WebhookSecret>()
            .unwrap_err();
        assert!(!err.to_string().contains("MfKQ"));
    }
}
