//! Signing keys and the keyring.

use std::fmt::{self, Write as _};
use std::str::FromStr;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use zeroize::{Zeroize, Zeroizing};

use super::{FORM_CONTEXT, HANDOFF_CONTEXT, LINK_CONTEXT, PERSONAL_CONTEXT, SESSION_CONTEXT};

/// The length of a signing key, in bytes (256 bits).
pub const KEY_LEN: usize = 32;

/// The most keys a [`Keyring`] holds.
pub const MAX_KEYS: usize = 32;

/// The prefix of a keyring's printable form, which names the format's version.
const KEYRING_PREFIX: &str = "mlk1:";

/// The length of one key in base64url without padding.
const KEY_CHARS: usize = 43;

/// A 256-bit secret key that signs and verifies tokens.
///
/// Its `Debug` prints `SigningKey([redacted])`; it has no `Display` and no `PartialEq`, and its
/// bytes are overwritten with zeros when it is dropped.
///
/// # Examples
///
/// ```
/// use magic_link::tokens::SigningKey;
/// let key = SigningKey::generate()?;
/// assert_eq!(format!("{key:?}"), "SigningKey([redacted])");
/// # Ok::<(), magic_link::tokens::KeyringError>(())
/// ```
#[derive(Clone)]
pub struct SigningKey([u8; KEY_LEN]);

impl SigningKey {
    /// A new key from the operating system's random source.
    ///
    /// # Errors
    ///
    /// [`KeyringError::Random`] if the operating system's random source fails.
    pub fn generate() -> Result<Self, KeyringError> {
        let mut key = Self([0; KEY_LEN]);
        getrandom::fill(&mut key.0).map_err(|e| KeyringError::Random(e.into()))?;
        Ok(key)
    }

    /// A key from its 32 bytes.
    ///
    /// Only for keys that come from a secret store of your own or for test vectors; a new key
    /// should come from [`generate`](Self::generate).
    pub const fn from_bytes(bytes: [u8; KEY_LEN]) -> Self {
        Self(bytes)
    }

    /// The key's bytes.
    ///
    /// # Security
    ///
    /// Anyone with these bytes can sign link and session tokens that this crate accepts. Do not
    /// log them, put them in error messages or send them anywhere but to a secret store.
    pub fn expose_secret(&self) -> &[u8; KEY_LEN] {
        &self.0
    }
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SigningKey([redacted])")
    }
}

impl Drop for SigningKey {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

/// A keyring in its printable form: the whole keyring as one line of ASCII, for an environment
/// variable or a secret manager. Made by [`Keyring::export`], read back by [`Keyring::parse`].
///
/// The form is `mlk1:` followed by comma-separated entries `<key id>.<key>`, newest first,
/// where the key id is decimal and the key is its 32 bytes in base64url without padding:
///
/// ```text
/// mlk1:2.<43 characters>,1.<43 characters>
/// ```
///
/// It is as secret as the keys in it: its `Debug` prints `KeyringSecret([redacted])`, it has no
/// `Display`, and its text is overwritten with zeros when it is dropped.
pub struct KeyringSecret(String);

impl KeyringSecret {
    /// The printable form.
    ///
    /// # Security
    ///
    /// This string holds every key of the keyring: anyone with it can sign tokens that this
    /// crate accepts. Store it in a secret manager or an environment variable that only the
    /// service can read; never log it.
    pub fn expose_secret(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for KeyringSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("KeyringSecret([redacted])")
    }
}

impl Drop for KeyringSecret {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

/// Why a keyring could not be built, loaded or changed. Never contains key material.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyringError {
    /// A keyring needs at least one key (to sign with).
    #[error("the keyring has no keys")]
    Empty,
    /// The printable form does not start with the `mlk1:` prefix of a known format version.
    #[error("the keyring string is not in a known format (it must start with `mlk1:`)")]
    UnknownFormat,
    /// An entry of the printable form is not `<key id>.<key>`, or its key id is not a decimal
    /// number that fits 32 bits.
    #[error("the keyring string is malformed (entry {entry})")]
    Malformed {
        /// The position of the bad entry, from 1.
        entry: usize,
    },
    /// A key is not 32 bytes in base64url without padding.
    #[error("key {key_id} is not 32 bytes in base64url without padding")]
    InvalidKey {
        /// The key's id.
        key_id: u32,
    },
    /// Two keys have the same id.
    #[error("key id {key_id} appears twice")]
    DuplicateKeyId {
        /// The repeated id.
        key_id: u32,
    },
    /// More than [`MAX_KEYS`] keys.
    #[error("a keyring holds at most {max} keys")]
    TooManyKeys {
        /// The limit.
        max: usize,
    },
    /// No key with this id.
    #[error("no key with id {key_id}")]
    UnknownKey {
        /// The id asked for.
        key_id: u32,
    },
    /// The newest key already has id `u32::MAX`, so no newer id exists.
    #[error("no key id is left after {}", u32::MAX)]
    KeyIdsExhausted,
    /// The operating system's random source failed.
    #[error("the operating system's random source failed")]
    Random(#[source] std::io::Error),
}

/// One key with its precomputed HMAC states.
#[derive(Clone)]
pub(super) struct Entry {
    pub(super) id: u32,
    key: SigningKey,
    /// HMAC-SHA256 keyed with `key` that has already absorbed the link context.
    pub(super) link: Hmac<Sha256>,
    /// HMAC-SHA256 keyed with `key` that has already absorbed the session context.
    pub(super) session: Hmac<Sha256>,
    /// HMAC-SHA256 keyed with `key` that has already absorbed the form context.
    pub(super) form: Hmac<Sha256>,
    /// HMAC-SHA256 keyed with `key` that has already absorbed the hand-off context.
    pub(super) handoff: Hmac<Sha256>,
    /// HMAC-SHA256 keyed with `key` that has already absorbed the personal link context.
    pub(super) personal: Hmac<Sha256>,
}

impl Entry {
    fn new(id: u32, key: SigningKey) -> Self {
        let keyed = <Hmac<Sha256> as KeyInit>::new_from_slice(key.expose_secret())
            .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
        let mut link = keyed.clone();
        link.update(LINK_CONTEXT);
        let mut session = keyed.clone();
        session.update(SESSION_CONTEXT);
        let mut form = keyed.clone();
        form.update(FORM_CONTEXT);
        let mut handoff = keyed.clone();
        handoff.update(HANDOFF_CONTEXT);
        let mut personal = keyed;
        personal.update(PERSONAL_CONTEXT);
        Self {
            id,
            key,
            link,
            session,
            form,
            handoff,
            personal,
        }
    }
}

/// The keys that sign and verify link and session tokens.
///
/// Each key has a key id, a `u32` that the token carries in clear. The key with the highest id
/// is the newest: it signs every new token. Every key in the keyring verifies the tokens it
/// signed. So keys rotate without breaking live links: [`rotate`](Self::rotate) adds a newer
/// key, which signs from then on, while the older keys still verify the links already sent;
/// [`remove`](Self::remove) retires a key, and with it every token it signed.
///
/// Each key's keyed HMAC state is computed once, when the key is added, so verifying a token
/// only clones it.
///
/// The keyring's `Debug` prints only the key ids; its keys are zeroized when it is dropped.
///
/// # Examples
///
/// ```
/// use magic_link::tokens::Keyring;
///
/// // Once: make a keyring and store its printable form in a secret manager.
/// let mut keyring = Keyring::generate()?;
/// let secret = keyring.export();
///
/// // At start-up: load it (here from the string; usually from an environment variable).
/// let loaded = Keyring::parse(secret.expose_secret())?;
/// assert_eq!(loaded.signing_key_id(), 1);
///
/// // Later: rotate. Key 2 signs new tokens; key 1 still verifies the old ones.
/// assert_eq!(keyring.rotate()?, 2);
/// assert_eq!(keyring.key_ids().collect::<Vec<_>>(), [2, 1]);
/// # Ok::<(), magic_link::tokens::KeyringError>(())
/// ```
#[derive(Clone)]
pub struct Keyring {
    /// Sorted by id, highest (newest) first; never empty.
    /// Boxed, so that growing or shrinking the `Vec` moves pointers, never key material: each
    /// entry is zeroized in place when dropped.
    #[allow(clippy::vec_box)] // deliberate: see above
    entries: Vec<Box<Entry>>,
}

impl Keyring {
    /// A keyring with one new key, id 1, from the operating system's random source.
    ///
    /// # Errors
    ///
    /// [`KeyringError::Random`] if the operating system's random source fails.
    pub fn generate() -> Result<Self, KeyringError> {
        Ok(Self::new(1, SigningKey::generate()?))
    }

    /// A keyring with one key.
    pub fn new(key_id: u32, key: SigningKey) -> Self {
        Self {
            entries: vec![Box::new(Entry::new(key_id, key))],
        }
    }

    /// Adds a key. It signs new tokens if its id is the highest in the keyring; otherwise it
    /// only verifies.
    ///
    /// # Errors
    ///
    /// [`KeyringError::DuplicateKeyId`] if the id is taken; [`KeyringError::TooManyKeys`] if the
    /// keyring already holds [`MAX_KEYS`] keys.
    pub fn insert(&mut self, key_id: u32, key: SigningKey) -> Result<(), KeyringError> {
        if self.entries.len() >= MAX_KEYS {
            return Err(KeyringError::TooManyKeys { max: MAX_KEYS });
        }
        match self.entries.binary_search_by(|e| key_id.cmp(&e.id)) {
            Ok(_) => Err(KeyringError::DuplicateKeyId { key_id }),
            Err(at) => {
                self.entries.insert(at, Box::new(Entry::new(key_id, key)));
                Ok(())
            }
        }
    }

    /// Adds a new key from the operating system's random source, with the next id after the
    /// newest; it signs every token from now on. Returns its id.
    ///
    /// # Errors
    ///
    /// [`KeyringError::Random`], [`KeyringError::TooManyKeys`] or
    /// [`KeyringError::KeyIdsExhausted`].
    pub fn rotate(&mut self) -> Result<u32, KeyringError> {
        let key_id = self
            .signing_key_id()
            .checked_add(1)
            .ok_or(KeyringError::KeyIdsExhausted)?;
        self.insert(key_id, SigningKey::generate()?)?;
        Ok(key_id)
    }

    /// Removes a key: every token it signed stops verifying. If it was the newest, the next
    /// newest signs from now on.
    ///
    /// # Errors
    ///
    /// [`KeyringError::UnknownKey`] if no key has this id; [`KeyringError::Empty`] if it is the
    /// only key.
    pub fn remove(&mut self, key_id: u32) -> Result<(), KeyringError> {
        let at = self
            .entries
            .iter()
            .position(|e| e.id == key_id)
            .ok_or(KeyringError::UnknownKey { key_id })?;
        if self.entries.len() == 1 {
            return Err(KeyringError::Empty);
        }
        self.entries.remove(at);
        Ok(())
    }

    /// The id of the key that signs new tokens: the highest.
    pub fn signing_key_id(&self) -> u32 {
        self.signing().id
    }

    /// The key ids, newest first.
    pub fn key_ids(&self) -> impl Iterator<Item = u32> + '_ {
        self.entries.iter().map(|e| e.id)
    }

    /// The key with this id.
    pub fn key(&self, key_id: u32) -> Option<&SigningKey> {
        self.entry(key_id).map(|e| &e.key)
    }

    /// Loads a keyring from its printable form (see [`KeyringSecret`]). White space around it,
    /// such as the final newline of a file, is ignored.
    ///
    /// # Errors
    ///
    /// [`KeyringError::UnknownFormat`], [`KeyringError::Malformed`],
    /// [`KeyringError::InvalidKey`], [`KeyringError::DuplicateKeyId`],
    /// [`KeyringError::TooManyKeys`] or [`KeyringError::Empty`]. The error never contains key
    /// material.
    pub fn parse(text: &str) -> Result<Self, KeyringError> {
        let body = text
            .trim()
            .strip_prefix(KEYRING_PREFIX)
            .ok_or(KeyringError::UnknownFormat)?;
        if body.is_empty() {
            return Err(KeyringError::Empty);
        }
        let mut entries: Vec<Box<Entry>> = Vec::new();
        for (n, item) in body.split(',').enumerate() {
            let entry = n + 1;
            if entries.len() >= MAX_KEYS {
                return Err(KeyringError::TooManyKeys { max: MAX_KEYS });
            }
            let (id, key) = item
                .split_once('.')
                .ok_or(KeyringError::Malformed { entry })?;
            if id.is_empty() || !id.bytes().all(|b| b.is_ascii_digit()) {
                return Err(KeyringError::Malformed { entry });
            }
            let key_id: u32 = id.parse().map_err(|_| KeyringError::Malformed { entry })?;
            let mut bytes = Zeroizing::new([0u8; KEY_LEN]);
            let decoded = if key.len() == KEY_CHARS {
                URL_SAFE_NO_PAD.decode_slice(key, &mut bytes[..]).ok()
            } else {
                None
            };
            if decoded != Some(KEY_LEN) {
                return Err(KeyringError::InvalidKey { key_id });
            }
            if entries.iter().any(|e| e.id == key_id) {
                return Err(KeyringError::DuplicateKeyId { key_id });
            }
            entries.push(Box::new(Entry::new(key_id, SigningKey::from_bytes(*bytes))));
        }
        entries.sort_unstable_by_key(|e| std::cmp::Reverse(e.id));
        Ok(Self { entries })
    }

    /// The keyring's printable form, newest key first (see [`KeyringSecret`]).
    pub fn export(&self) -> KeyringSecret {
        // Reserve the exact length first so the string is never reallocated, which would leave
        // copies of the keys in freed memory.
        let len = KEYRING_PREFIX.len()
            + self
                .entries
                .iter()
                .map(|e| decimal_len(e.id) + 1 + KEY_CHARS + 1)
                .sum::<usize>()
            - 1;
        let mut out = String::with_capacity(len);
        out.push_str(KEYRING_PREFIX);
        for (n, e) in self.entries.iter().enumerate() {
            if n > 0 {
                out.push(',');
            }
            // Writing to a `String` cannot fail.
            let _ = write!(out, "{}.", e.id);
            URL_SAFE_NO_PAD.encode_string(e.key.expose_secret(), &mut out);
        }
        debug_assert_eq!(out.len(), len);
        KeyringSecret(out)
    }

    pub(super) fn signing(&self) -> &Entry {
        &self.entries[0]
    }

    #[inline]
    pub(super) fn entry(&self, key_id: u32) -> Option<&Entry> {
        self.entries.iter().find(|e| e.id == key_id).map(|e| &**e)
    }
}

impl fmt::Debug for Keyring {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Keyring")
            .field("signing_key_id", &self.signing_key_id())
            .field("key_ids", &self.key_ids().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl FromStr for Keyring {
    type Err = KeyringError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

fn decimal_len(n: u32) -> usize {
    n.checked_ilog10().map_or(1, |digits| digits as usize + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(byte: u8) -> SigningKey {
        SigningKey::from_bytes([byte; KEY_LEN])
    }

    #[test]
    fn debug_never_shows_key_material() {
        let k = key(0xAB);
        let b64 = URL_SAFE_NO_PAD.encode(k.expose_secret());
        let mut keyring = Keyring::new(7, k.clone());
        keyring.insert(9, key(0xCD)).unwrap();
        let secret = keyring.export();
        for printed in [
            format!("{k:?}"),
            format!("{k:#?}"),
            format!("{keyring:?}"),
            format!("{keyring:#?}"),
            format!("{secret:?}"),
        ] {
            assert!(!printed.contains(&b64[..8]), "{printed}");
            assert!(!printed.to_lowercase().contains("abab"), "{printed}");
            assert!(!printed.contains("171"), "{printed}");
        }
        assert_eq!(format!("{k:?}"), "SigningKey([redacted])");
        assert_eq!(format!("{secret:?}"), "KeyringSecret([redacted])");
        assert_eq!(
            format!("{keyring:?}"),
            "Keyring { signing_key_id: 9, key_ids: [9, 7], .. }"
        );
    }

    #[test]
    fn export_and_parse_round_trip() {
        let mut keyring = Keyring::new(1, key(1));
        keyring.insert(4_000_000_000, key(2)).unwrap();
        keyring.insert(10, key(3)).unwrap();
        let text = keyring.export();
        assert!(text.expose_secret().starts_with("mlk1:4000000000."));
        let back = Keyring::parse(text.expose_secret()).unwrap();
        assert_eq!(back.key_ids().collect::<Vec<_>>(), [4_000_000_000, 10, 1]);
        assert_eq!(back.key(10).unwrap().expose_secret(), &[3; KEY_LEN]);
        assert_eq!(back.export().expose_secret(), text.expose_secret());
        let padded = format!("  {}\n", text.expose_secret());
        assert!(padded.parse::<Keyring>().is_ok());
    }

    #[test]
    fn generate_and_rotate() {
        let mut keyring = Keyring::generate().unwrap();
        assert_eq!(keyring.signing_key_id(), 1);
        assert_eq!(keyring.rotate().unwrap(), 2);
        assert_ne!(
            keyring.key(1).unwrap().expose_secret(),
            keyring.key(2).unwrap().expose_secret()
        );
        keyring.remove(2).unwrap();
        assert_eq!(keyring.signing_key_id(), 1);
        assert!(matches!(keyring.remove(1), Err(KeyringError::Empty)));
        assert!(matches!(
            keyring.remove(5),
            Err(KeyringError::UnknownKey { key_id: 5 })
        ));
        let mut full = Keyring::new(u32::MAX, key(0));
        assert!(matches!(full.rotate(), Err(KeyringError::KeyIdsExhausted)));
        for id in 0..(MAX_KEYS as u32 - 1) {
            full.insert(id, key(0)).unwrap();
        }
        assert!(matches!(
            full.insert(1000, key(0)),
            Err(KeyringError::TooManyKeys { .. })
        ));
        assert!(matches!(
            full.insert(3, key(0)),
            Err(KeyringError::TooManyKeys { .. })
        ));
    }

    #[test]
    fn malformed_strings_are_typed_errors() {
        let good = URL_SAFE_NO_PAD.encode([7u8; KEY_LEN]);
        let cases: Vec<(String, &str)> = vec![
            (String::new(), "UnknownFormat"),
            ("mlk2:1.".to_owned() + &good, "UnknownFormat"),
            (good.clone(), "UnknownFormat"),
            ("mlk1:".into(), "Empty"),
            ("mlk1:1".into(), "Malformed"),
            ("mlk1:.".to_owned() + &good, "Malformed"),
            ("mlk1:-1.".to_owned() + &good, "Malformed"),
            ("mlk1:+1.".to_owned() + &good, "Malformed"),
            ("mlk1:4294967296.".to_owned() + &good, "Malformed"),
            (format!("mlk1:1.{good},"), "Malformed"),
            ("mlk1:1.short".into(), "InvalidKey"),
            (format!("mlk1:1.{good}A"), "InvalidKey"),
            (format!("mlk1:1.{}", &good[..42]), "InvalidKey"),
            (format!("mlk1:1.{}+", &good[..42]), "InvalidKey"),
            (format!("mlk1:1.{good}=="), "InvalidKey"),
            (format!("mlk1:1.{good},1.{good}"), "DuplicateKeyId"),
        ];
        for (text, want) in cases {
            let err = Keyring::parse(&text).unwrap_err();
            assert!(format!("{err:?}").starts_with(want), "{text:?}: {err:?}");
            assert!(!err.to_string().contains(&good[..8]));
        }
        let many = (0..=MAX_KEYS)
            .map(|i| format!("{i}.{good}"))
            .collect::<Vec<_>>()
            .join(",");
        assert!(matches!(
            Keyring::parse(&format!("mlk1:{many}")),
            Err(KeyringError::TooManyKeys { .. })
        ));
    }

    #[test]
    fn decimal() {
        for n in [0, 9, 10, 99, 100, 12345, u32::MAX] {
            assert_eq!(decimal_len(n), n.to_string().len());
        }
    }
}
