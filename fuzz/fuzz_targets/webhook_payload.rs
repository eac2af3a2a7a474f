//! `serde_json::from_slice::<WebhookPayload>` on arbitrary bytes, as a receiver parses a body.
//!
//! Properties: parsing returns `Ok` or a `serde_json::Error`; a payload that parses serialises
//! with `to_json` to bytes that parse back to the same payload, and serialise to the same bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use magic_link::webhooks::{EventData, WebhookPayload};

fuzz_target!(|data: &[u8]| {
    if let Ok(payload) = serde_json::from_slice::<WebhookPayload>(data) {
        let json = payload.to_json();
        let again: WebhookPayload = serde_json::from_slice(&json).unwrap_or_else(|e| {
            panic!(
                "{} does not parse back: {e}",
                String::from_utf8_lossy(&json)
            )
        });
        assert_eq!(again, payload);
        assert_eq!(again.to_json(), json);
    }
    let _ = serde_json::from_slice::<EventData>(data);
});
