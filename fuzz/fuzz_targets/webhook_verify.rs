//! `WebhookVerifier::verify_at` over arbitrary `webhook-id`, `webhook-timestamp` and
//! `webhook-signature` header bytes (each possibly absent), body, clock and tolerance.
//!
//! Properties: verification returns `Ok` or a `WebhookError`, and a missing header is reported
//! before anything else; a message signed with `signature_header` verifies at its timestamp,
//! also when the fuzzed signature entries stand before the real one, and never under another
//! secret.
#![no_main]

use std::sync::LazyLock;
use std::time::Duration;

use chrono::DateTime;
use libfuzzer_sys::arbitrary::{self, Arbitrary};
use libfuzzer_sys::fuzz_target;
use magic_link::webhooks::{
    signature_header, WebhookError, WebhookHeaders, WebhookSecret, WebhookVerifier,
    WEBHOOK_ID_HEADER, WEBHOOK_SIGNATURE_HEADER, WEBHOOK_TIMESTAMP_HEADER,
};

/// The Standard Webhooks example secret, and a second one for rotation.
static SECRETS: LazyLock<[WebhookSecret; 2]> = LazyLock::new(|| {
    [
        "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
            .parse()
            .expect("valid"),
        WebhookSecret::from_bytes(&[0x42; 32]).expect("valid"),
    ]
});
static OTHER: LazyLock<WebhookSecret> =
    LazyLock::new(|| WebhookSecret::from_bytes(b"not the receiver's secret").expect("valid"));

#[derive(Debug, Arbitrary)]
struct Input<'a> {
    id: Option<&'a [u8]>,
    timestamp: Option<&'a [u8]>,
    signature: Option<&'a [u8]>,
    now: i64,
    tolerance: u64,
    both_secrets: bool,
    body: &'a [u8],
}

fuzz_target!(|input: Input<'_>| {
    let now = DateTime::from_timestamp(input.now, 0).unwrap_or(DateTime::UNIX_EPOCH);
    let mut verifier =
        WebhookVerifier::new(SECRETS[0].clone()).tolerance(Duration::from_secs(input.tolerance));
    if input.both_secrets {
        verifier = verifier.with_secret(SECRETS[1].clone());
    }
    let headers = WebhookHeaders {
        id: input.id,
        timestamp: input.timestamp,
        signature: input.signature,
    };
    let result = verifier.verify_at(headers, input.body, now);
    let missing = [
        (input.id, WEBHOOK_ID_HEADER),
        (input.timestamp, WEBHOOK_TIMESTAMP_HEADER),
        (input.signature, WEBHOOK_SIGNATURE_HEADER),
    ]
    .into_iter()
    .find_map(|(h, name)| h.is_none().then_some(name));
    if let Some(name) = missing {
        assert_eq!(result, Err(WebhookError::MissingHeader(name)));
    }

    // Sign the fuzzed id and body, at `now`, and verify.
    let Some(id) = input
        .id
        .and_then(|id| std::str::from_utf8(id).ok())
        .filter(|id| !id.is_empty() && id.bytes().all(|b| b.is_ascii_graphic()))
    else {
        return;
    };
    let sent = now.timestamp().max(0);
    let timestamp = sent.to_string();
    let at = DateTime::from_timestamp(sent, 0).expect("in range");
    let header = signature_header(&SECRETS[..1], id, sent, input.body);
    let ok = WebhookHeaders::new(id, &timestamp, &header);
    assert_eq!(verifier.verify_at(ok, input.body, at), Ok(()), "{id:?}");
    let stranger = WebhookVerifier::new(OTHER.clone());
    assert_eq!(
        stranger.verify_at(ok, input.body, at),
        Err(WebhookError::NoMatchingSignature)
    );
    // Entries that come before the real signature do not stop it from matching.
    if let Some(fuzzed) = input
        .signature
        .and_then(|s| std::str::from_utf8(s).ok())
        .filter(|s| s.is_ascii())
    {
        let both = format!("{fuzzed} {header}");
        let headers = WebhookHeaders::new(id, &timestamp, &both);
        assert_eq!(
            verifier.verify_at(headers, input.body, at),
            Ok(()),
            "{both:?}"
        );
    }
});
