//! `ReturnVerifier::verify_at` over arbitrary text (as a full URL, a request target or a bare
//! query), clock and tolerance; `ReturnUrl::parse` and `ReturnOrigin::parse` over the same text.
//!
//! Properties: verification returns `Ok` or a `ReturnError` and never panics; a return URL
//! built from the fuzzed text (as its query) and signed with the fuzzed reference verifies at
//! its timestamp to the same values, and never under another secret; an accepted return URL
//! and origin validate again unchanged, and the URL's origin is an accepted origin.
#![no_main]

use std::sync::LazyLock;
use std::time::Duration;

use chrono::DateTime;
use libfuzzer_sys::arbitrary::{self, Arbitrary};
use libfuzzer_sys::fuzz_target;
use magic_link::returns::{
    ReturnError, ReturnOrigin, ReturnParams, ReturnSecret, ReturnStatus, ReturnUrl, ReturnVerifier,
};
use magic_link::{LinkId, Outcome, Reference, SessionId};

static SECRETS: LazyLock<[ReturnSecret; 2]> = LazyLock::new(|| {
    [
        "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
            .parse()
            .expect("valid"),
        ReturnSecret::from_bytes(&[0x42; 32]).expect("valid"),
    ]
});
static OTHER: LazyLock<ReturnSecret> =
    LazyLock::new(|| ReturnSecret::from_bytes(b"not the owner's return secret").expect("valid"));

#[derive(Debug, Arbitrary)]
struct Input<'a> {
    text: &'a str,
    reference: &'a str,
    now: i64,
    tolerance: u64,
    both_secrets: bool,
    quit: bool,
    outcome: Option<u8>,
    ids: [u8; 32],
}

fuzz_target!(|input: Input<'_>| {
    let now = DateTime::from_timestamp(input.now, 0).unwrap_or(DateTime::UNIX_EPOCH);
    let mut verifier =
        ReturnVerifier::new(SECRETS[0].clone()).tolerance(Duration::from_secs(input.tolerance));
    if input.both_secrets {
        verifier = verifier.with_secret(SECRETS[1].clone());
    }
    let _ = verifier.verify_at(input.text, now);

    if let Ok(url) = ReturnUrl::parse(input.text) {
        assert_eq!(ReturnUrl::parse(url.as_str()).as_ref(), Ok(&url));
        assert_eq!(ReturnOrigin::parse(url.origin().as_str()), Ok(url.origin()));
    }
    if let Ok(origin) = ReturnOrigin::parse(input.text) {
        assert_eq!(ReturnOrigin::parse(origin.as_str()).as_ref(), Ok(&origin));
    }

    // Sign with the fuzzed text as the owner's query, and verify.
    let Ok(url) = ReturnUrl::parse(&format!("https://shop.example/done?{}", input.text)) else {
        return;
    };
    let (session, link) = input.ids.split_at(16);
    let params = ReturnParams {
        session: SessionId::from_bytes(session.try_into().expect("16 bytes")),
        link: LinkId::from_bytes(link.try_into().expect("16 bytes")),
        reference: Reference::new(input.reference).ok(),
        status: if input.quit {
            ReturnStatus::Quit
        } else {
            ReturnStatus::Completed
        },
        outcome: input
            .outcome
            .map(|i| Outcome::ALL[usize::from(i) % Outcome::ALL.len()]),
        timestamp: now.timestamp(),
    };
    let signed = url.signed(&params, &SECRETS[0]);
    let verified = verifier
        .verify_at(&signed, now)
        .unwrap_or_else(|e| panic!("{signed:?}: {e}"));
    assert_eq!(ReturnParams::from(verified), params);
    assert_eq!(
        ReturnVerifier::new(OTHER.clone()).verify_at(&signed, now),
        Err(ReturnError::BadSignature)
    );
});
