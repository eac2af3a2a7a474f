//! `IdempotencyKey::new`, `WebhookSecret`'s `FromStr` and the ids' `FromStr` on arbitrary text.
//!
//! Properties: each returns `Ok` or a typed error; an idempotency key is kept as written, is 1
//! to 128 printable ASCII characters and survives a JSON round trip; a webhook secret has a key
//! of 24 to 64 bytes, a redacted `Debug` and an exposed form that parses back to it; an id
//! prints in a form that parses back to the same id.
#![no_main]

use libfuzzer_sys::fuzz_target;
use magic_link::webhooks::WebhookSecret;
use magic_link::{IdempotencyKey, LinkId};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(key) = IdempotencyKey::new(text) {
        assert_eq!(key.as_str(), text);
        assert!((1..=IdempotencyKey::MAX_LEN).contains(&text.len()));
        assert!(text.bytes().all(|b| b.is_ascii_graphic() || b == b' '));
        let json = serde_json::to_string(&key).expect("a key serialises");
        assert_eq!(
            serde_json::from_str::<IdempotencyKey>(&json).ok(),
            Some(key)
        );
    }
    if let Ok(secret) = text.parse::<WebhookSecret>() {
        let len = secret.key_bytes().len();
        assert!((WebhookSecret::MIN_LEN..=WebhookSecret::MAX_LEN).contains(&len));
        assert_eq!(format!("{secret:?}"), "WebhookSecret([redacted])");
        let again: WebhookSecret = secret.expose().parse().expect("an exposed secret parses");
        assert_eq!(again.key_bytes(), secret.key_bytes());
    }
    if let Ok(id) = text.parse::<LinkId>() {
        assert_eq!(id.to_string().parse::<LinkId>(), Ok(id));
    }
});
