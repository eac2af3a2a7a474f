//! The URL validation of `Endpoint::new` (webhook endpoints) and `LinkBase::new` (the base of
//! link URLs) on arbitrary text.
//!
//! Properties: both return `Ok` or an `InvalidInput`; an endpoint's URL (the parser's
//! serialisation) is at most `MAX_WEBHOOK_URL_LEN` bytes and validates again unchanged; its
//! `Debug` never shows an `@`, nor the URL as given when anything follows the host; a
//! link base ends with `/`, starts with the input, validates again unchanged, and yields link
//! URLs from which `token_from_url` takes back the token.
#![no_main]

use std::sync::LazyLock;

use chrono::DateTime;
use libfuzzer_sys::fuzz_target;
use magic_link::tokens::{token_from_url, LinkBase};
use magic_link::webhooks::{Endpoint, WebhookSecret, MAX_WEBHOOK_URL_LEN};
use magic_link::AccountId;

static SECRET: LazyLock<WebhookSecret> =
    LazyLock::new(|| WebhookSecret::from_bytes(&[7; 32]).expect("valid"));

fuzz_target!(|data: &[u8]| {
    let Ok(url) = std::str::from_utf8(data) else {
        return;
    };
    let account = AccountId::from_bytes([1; 16]);
    if let Ok(endpoint) = Endpoint::new(account, url, vec![SECRET.clone()], DateTime::UNIX_EPOCH) {
        let stored = endpoint.url();
        assert!(stored.len() <= MAX_WEBHOOK_URL_LEN, "{stored}");
        assert!(
            stored.starts_with("http://") || stored.starts_with("https://"),
            "{stored}"
        );
        let again = Endpoint::new(account, stored, vec![SECRET.clone()], DateTime::UNIX_EPOCH)
            .unwrap_or_else(|e| panic!("{url:?} is stored as {stored:?}, which is refused: {e}"));
        assert_eq!(again.url(), stored);
        let shown = format!("{endpoint:?}");
        assert!(!shown.contains('@'), "{shown}");
        let after_host = url.split_once("://").and_then(|(_, rest)| {
            // Skip an IPv6 literal, whose colons are not a port.
            let from = if rest.starts_with('[') {
                rest.find(']').unwrap_or(0)
            } else {
                0
            };
            rest[from..]
                .find(['/', '?', '#', '@', ':'])
                .map(|i| &rest[from + i..])
        });
        if after_host.is_some_and(|rest| rest.len() > 1) {
            // Without its marker, so that `http://h/[` is not taken as shown in `/[redacted]`.
            assert!(!shown.replace("/[redacted]", "").contains(url), "{shown}");
        }
    }
    if let Ok(base) = LinkBase::new(url) {
        let b = base.as_str();
        assert!(
            b.starts_with(url) && b.ends_with('/') && b.len() <= url.len() + 1,
            "{b}"
        );
        assert_eq!(LinkBase::new(b), Ok(base.clone()));
        let token = "AQAAAAcAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
        assert_eq!(token_from_url(&base.url(token)), Ok(token));
    }
});
