//! Inputs found by the fuzz targets in `fuzz/` (run `fuzz/run.sh`), each kept as a test after its
//! fix. Each test names the target that found it.

use chrono::DateTime;
use magic_link::webhooks::{Endpoint, WebhookSecret};
use magic_link::{AccountId, InvalidInput};

fn endpoint(url: &str) -> Result<Endpoint, InvalidInput> {
    let secret = WebhookSecret::from_bytes(&[7; 32]).unwrap();
    Endpoint::new(
        AccountId::from_bytes([1; 16]),
        url,
        vec![secret],
        DateTime::UNIX_EPOCH,
    )
}

/// `urls`: `http://[:x` (an IPv6 literal that is never closed) was accepted as a webhook URL, and
/// its `Debug` showed all of it, as if it were the host. Fixed: the authority must be a name or a
/// closed IPv6 literal, followed by nothing or a numeric port (now by the WHATWG URL parser).
#[test]
fn endpoint_urls_with_a_malformed_authority_are_rejected() {
    for url in [
        "http://[:x",
        "http://[::1",
        "http://[::1]x/",
        "http://[::1]:80x/",
        "http://[::1]]/",
        "http://[example.com]/",
        "http://exa[mple.com/",
        "http://example.com]/",
        "http://example.com:http/",
        "http://example.com:65536/",
        "http://example.com:-1/",
        "http://user@[:x/",
    ] {
        assert_eq!(
            endpoint(url).unwrap_err(),
            InvalidInput::InvalidWebhookUrl,
            "{url:?}"
        );
    }
    for url in [
        "http://[::1]/",
        "http://[::1]:9000/x",
        "http://[::ffff:127.0.0.1]:65535",
        "https://example.com:/hook",
        "https://example.com:08443/hook",
        "https://example.com/a[b]?c=[d]",
    ] {
        assert!(endpoint(url).is_ok(), "{url:?}");
    }
}
