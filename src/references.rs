//! The owner's reference and metadata of a link or session: whom or what it is for.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::InvalidInput;

/// The owner's id for whom or what a link or session is: their customer's or order's id.
///
/// At most [`MAX_LEN`](Self::MAX_LEN) bytes of UTF-8, not empty, with no control characters.
/// It travels in personal URLs (see `MagicLinks::personal_url`)
/// and webhook payloads, and URLs pass through mail scanners, proxies and logs: use an
/// opaque id (`cus_8f2k`), never a name, an email address or a phone number.
///
/// Cloning is cheap.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Reference(Arc<str>);

impl Reference {
    /// The longest reference accepted, in bytes.
    pub const MAX_LEN: usize = 128;

    /// Validates a reference.
    ///
    /// # Errors
    ///
    /// [`InvalidInput::InvalidReference`] for an empty reference, one longer than
    /// [`MAX_LEN`](Self::MAX_LEN) bytes, or one with a control character.
    pub fn new(reference: impl AsRef<str>) -> Result<Self, InvalidInput> {
        let reference = reference.as_ref();
        if !Self::is_valid(reference) {
            return Err(InvalidInput::InvalidReference { max: Self::MAX_LEN });
        }
        Ok(Self(reference.into()))
    }

    /// Whether `reference` is a valid reference, without allocating (for token verification).
    pub(crate) fn is_valid(reference: &str) -> bool {
        let bytes = reference.as_bytes();
        !bytes.is_empty() && bytes.len() <= Self::MAX_LEN && !has_control(bytes)
    }

    /// Whether `bytes` are the UTF-8 of a valid reference, without allocating (for token
    /// verification). Printable ASCII, the usual reference, takes one pass that the compiler
    /// vectorizes; any other byte, the UTF-8 check and [`is_valid`](Self::is_valid).
    pub(crate) fn is_valid_utf8(bytes: &[u8]) -> bool {
        let printable = bytes
            .iter()
            .fold(true, |ok, &b| ok & (b' '..=b'~').contains(&b));
        if printable {
            return !bytes.is_empty() && bytes.len() <= Self::MAX_LEN;
        }
        std::str::from_utf8(bytes).is_ok_and(Self::is_valid)
    }

    /// A reference that [`is_valid`](Self::is_valid) has accepted.
    pub(crate) fn from_valid(reference: &str) -> Self {
        debug_assert!(Self::is_valid(reference));
        Self(reference.into())
    }

    /// Validates a reference given as bytes (from a token).
    ///
    /// # Errors
    ///
    /// [`InvalidInput::InvalidReference`] for bytes that are not UTF-8 or not a valid
    /// reference.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, InvalidInput> {
        let text = std::str::from_utf8(bytes)
            .map_err(|_| InvalidInput::InvalidReference { max: Self::MAX_LEN })?;
        Self::new(text)
    }

    /// The reference.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Reference({:?})", &*self.0)
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for Reference {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl std::str::FromStr for Reference {
    type Err = InvalidInput;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::new(s)
    }
}

impl Serialize for Reference {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Reference {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        Self::new(&*text).map_err(serde::de::Error::custom)
    }
}

/// The owner's key-value metadata of a link: string keys to string values, as Stripe's.
///
/// At most [`MAX_KEYS`](Self::MAX_KEYS) keys; a key is 1 to [`MAX_KEY_CHARS`](Self::MAX_KEY_CHARS)
/// characters, a value at most [`MAX_VALUE_CHARS`](Self::MAX_VALUE_CHARS); neither holds control
/// characters. Keys are kept in order. Like a [`Reference`], it reaches webhook payloads and
/// logs: keep personal data out of it.
#[derive(Clone, Default, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct Metadata(BTreeMap<String, String>);

impl Metadata {
    /// The most keys accepted.
    pub const MAX_KEYS: usize = 50;
    /// The longest key accepted, in characters.
    pub const MAX_KEY_CHARS: usize = 40;
    /// The longest value accepted, in characters.
    pub const MAX_VALUE_CHARS: usize = 500;

    /// No metadata.
    pub fn new() -> Self {
        Self::default()
    }

    /// Validates metadata from key-value pairs; a repeated key keeps its last value.
    ///
    /// # Errors
    ///
    /// [`InvalidInput::InvalidMetadata`] when a limit is passed or a key or value holds a
    /// control character (an empty key too).
    pub fn from_pairs<K, V>(pairs: impl IntoIterator<Item = (K, V)>) -> Result<Self, InvalidInput>
    where
        K: Into<String>,
        V: Into<String>,
    {
        let mut map = BTreeMap::new();
        for (key, value) in pairs {
            let (key, value) = (key.into(), value.into());
            check_entry(&key, &value)?;
            map.insert(key, value);
            if map.len() > Self::MAX_KEYS {
                return Err(invalid_metadata());
            }
        }
        Ok(Self(map))
    }

    /// Adds or replaces one entry.
    ///
    /// # Errors
    ///
    /// [`InvalidInput::InvalidMetadata`] as for [`from_pairs`](Self::from_pairs); nothing
    /// changes then.
    pub fn insert(
        &mut self,
        key: impl Into<String>,
        value: impl Into<String>,
    ) -> Result<(), InvalidInput> {
        let (key, value) = (key.into(), value.into());
        check_entry(&key, &value)?;
        if self.0.len() == Self::MAX_KEYS && !self.0.contains_key(&key) {
            return Err(invalid_metadata());
        }
        self.0.insert(key, value);
        Ok(())
    }

    /// The value of `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(String::as_str)
    }

    /// The entries, in key order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// The number of keys.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are no keys.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Metadata {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.0.iter()).finish()
    }
}

impl<'de> Deserialize<'de> for Metadata {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let map = BTreeMap::<String, String>::deserialize(deserializer)?;
        Self::from_pairs(map).map_err(serde::de::Error::custom)
    }
}

/// Whether the UTF-8 text `bytes` holds a control character ([`char::is_control`]: U+0000 to
/// U+001F and U+007F to U+009F), read from its bytes with no branch on the data: U+0080 to
/// U+009F are `C2 80` to `C2 9F`, and in UTF-8 `C2` is only ever a leading byte. Text without
/// a `C2` byte (all ASCII references, say) needs only the first pass, which has no dependency
/// from one byte to the next, so the compiler vectorizes it.
fn has_control(bytes: &[u8]) -> bool {
    let c0 = bytes
        .iter()
        .fold(false, |found, &b| found | (b < 0x20) | (b == 0x7f));
    if c0 || !bytes.contains(&0xc2) {
        return c0;
    }
    let mut previous = 0u8;
    bytes.iter().any(|&b| {
        let c1 = previous == 0xc2 && b < 0xa0;
        previous = b;
        c1
    })
}

fn invalid_metadata() -> InvalidInput {
    InvalidInput::InvalidMetadata {
        max_keys: Metadata::MAX_KEYS,
        max_key_chars: Metadata::MAX_KEY_CHARS,
        max_value_chars: Metadata::MAX_VALUE_CHARS,
    }
}

fn check_entry(key: &str, value: &str) -> Result<(), InvalidInput> {
    let key_ok = !key.is_empty()
        && key.chars().count() <= Metadata::MAX_KEY_CHARS
        && !key.chars().any(char::is_control);
    let value_ok =
        value.chars().count() <= Metadata::MAX_VALUE_CHARS && !value.chars().any(char::is_control);
    if key_ok && value_ok {
        Ok(())
    } else {
        Err(invalid_metadata())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    proptest::proptest! {
        /// The bytes check (with its printable-ASCII shortcut) is the UTF-8 check and then
        /// `is_valid`, near the ASCII boundaries and the C1 controls, and on any bytes.
        #[test]
        fn valid_utf8_is_utf8_and_valid(
            bytes in proptest::collection::vec(
                proptest::prop_oneof![
                    0x1eu8..0x22,
                    0x7du8..0x82,
                    proptest::sample::select(vec![b'a', 0xc2, 0x9f, 0xa0, 0xc3, 0xa9]),
                    proptest::num::u8::ANY,
                ],
                0..=130,
            )
        ) {
            let expected = std::str::from_utf8(&bytes).is_ok_and(Reference::is_valid);
            proptest::prop_assert_eq!(Reference::is_valid_utf8(&bytes), expected);
        }
    }

    #[test]
    fn references_are_bounded_and_free_of_control_characters() {
        assert!(Reference::new("cus_8f2k").is_ok());
        assert!(Reference::new("é".repeat(64)).is_ok()); // 128 bytes
        assert!(Reference::new("é".repeat(64) + "x").is_err());
        assert!(Reference::new("").is_err());
        assert!(Reference::new("a\nb").is_err());
        assert!(Reference::new("a\u{7f}b").is_err());
        assert!(Reference::from_bytes(&[0xff, 0x41]).is_err());
        assert!(serde_json::from_str::<Reference>("\"a\\u0000\"").is_err());
    }

    /// The byte-level check agrees with `char::is_control` on every character, alone and
    /// between others.
    #[test]
    fn control_characters_by_bytes() {
        for c in (0..=0x10_FFFF).filter_map(char::from_u32) {
            let mut buf = [0u8; 4];
            let alone = c.encode_utf8(&mut buf);
            assert_eq!(has_control(alone.as_bytes()), c.is_control(), "{c:?}");
            let framed = format!("a\u{c2}{c}\u{a0}é");
            assert_eq!(has_control(framed.as_bytes()), c.is_control(), "{c:?}");
        }
    }

    #[test]
    fn metadata_keeps_stripes_limits() {
        let full = Metadata::from_pairs((0..50).map(|i| (format!("k{i}"), "v"))).unwrap();
        assert_eq!(full.len(), 50);
        assert!(Metadata::from_pairs((0..51).map(|i| (format!("k{i}"), "v"))).is_err());
        let mut m = full.clone();
        assert!(m.insert("k50", "v").is_err());
        assert!(m.insert("k1", "w").is_ok());
        assert_eq!(m.get("k1"), Some("w"));
        assert!(Metadata::from_pairs([("k".repeat(41), "v")]).is_err());
        assert!(Metadata::from_pairs([("k".repeat(40), "é".repeat(500))]).is_ok());
        assert!(Metadata::from_pairs([("k", "v".repeat(501))]).is_err());
        assert!(Metadata::from_pairs([("", "v")]).is_err());
        assert!(Metadata::from_pairs([("k", "a\rb")]).is_err());
        assert!(serde_json::from_str::<Metadata>(r#"{"":"x"}"#).is_err());
        let json = serde_json::to_string(&full).unwrap();
        assert_eq!(serde_json::from_str::<Metadata>(&json).unwrap(), full);
    }
}
