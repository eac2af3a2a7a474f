//! Fixtures shared by the token targets: a fixed keyring and the instants tokens are checked at.
#![allow(dead_code)] // each target uses part of it

use std::sync::LazyLock;

use chrono::{DateTime, Utc};
use magic_link::tokens::{Keyring, SigningKey, KEY_LEN};

/// The key ids of [`KEYS`], and each key's fill byte.
pub const KEY_IDS: [(u32, u8); 2] = [(1, 0x11), (7, 0x77)];

/// The seeds in `seeds/` were signed at this instant, with expiries a day after it (or none).
pub const T0: i64 = 1_700_000_000;

/// A keyring of two keys, 7 signing and 1 only verifying.
pub static KEYS: LazyLock<Keyring> = LazyLock::new(|| {
    let mut keys = single(KEY_IDS[0].0, KEY_IDS[0].1);
    for &(id, byte) in &KEY_IDS[1..] {
        keys.insert(id, SigningKey::from_bytes([byte; KEY_LEN]))
            .expect("distinct ids");
    }
    keys
});

/// One keyring per key of [`KEYS`], to re-sign a token with the key that made it.
pub static SINGLES: LazyLock<Vec<Keyring>> =
    LazyLock::new(|| KEY_IDS.iter().map(|&(id, byte)| single(id, byte)).collect());

fn single(id: u32, byte: u8) -> Keyring {
    Keyring::new(id, SigningKey::from_bytes([byte; KEY_LEN]))
}

/// The instants every token is verified at: before and after the seeds' expiry, the epoch, and
/// chrono's extremes (negative and far-future timestamps).
pub fn instants() -> [DateTime<Utc>; 5] {
    [
        DateTime::<Utc>::MIN_UTC,
        DateTime::UNIX_EPOCH,
        at(T0),
        at(T0 + 30 * 86_400),
        DateTime::<Utc>::MAX_UTC,
    ]
}

pub fn at(secs: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(secs, 0).expect("in range")
}

/// An instant from fuzzer bytes: any second chrono can represent, or the epoch.
pub fn instant_from(secs: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(secs, 0).unwrap_or(DateTime::UNIX_EPOCH)
}

/// Replaces the character at `pos` (modulo the length) of a base64url token by another
/// base64url character chosen by `with`.
pub fn tamper(token: &str, pos: usize, with: u8) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut bytes = token.as_bytes().to_vec();
    let pos = pos % bytes.len();
    let old = bytes[pos];
    let mut new = ALPHABET[usize::from(with % 64)];
    if new == old {
        new = ALPHABET[(usize::from(with % 64) + 1) % 64];
    }
    bytes[pos] = new;
    String::from_utf8(bytes).expect("ASCII")
}
