//! `LinkToken::verify` and `token_from_url` on arbitrary text.
//!
//! Properties: verification returns `Ok` or a `TokenError` at every instant; the reason for a
//! rejection does not depend on the instant, except `Expired`; a token that verifies re-encodes
//! to the same string with the key that signed it, and expires exactly at its expiry; the token
//! of a link URL made from it is extracted unchanged. Inputs of 24 bytes or more also sign
//! claims made from their first bytes, which must verify to the same claims, and stop
//! verifying when one character is changed.
#![no_main]

mod common;

use chrono::{DateTime, Duration};
use libfuzzer_sys::fuzz_target;
use magic_link::tokens::{token_from_url, LinkBase, LinkToken, TokenError};
use magic_link::LinkId;

use common::{at, instant_from, instants, tamper, KEYS, SINGLES, T0};

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        check_text(text);
    }
    if let Some((claim, rest)) = data.split_first_chunk::<24>() {
        check_claims(claim, rest);
    }
});

fn check_text(text: &str) {
    let results = instants().map(|now| LinkToken::verify(text, &KEYS, now));
    let rejection = results
        .iter()
        .find_map(|r| r.err().filter(|e| *e != TokenError::Expired));
    if let Some(reason) = rejection {
        assert!(
            results.iter().all(|r| *r == Err(reason)),
            "{text:?}: {results:?}"
        );
    }
    if let Some(claims) = results.iter().find_map(|r| r.ok()) {
        // Exactly one key of the keyring made it; re-signing with that key alone gives it back.
        let resigned = SINGLES.iter().filter(|k| claims.sign(k) == text).count();
        assert_eq!(resigned, 1, "{text:?} does not re-encode");
        assert_eq!(text.len(), LinkToken::LEN);
        if let Some(expiry) = claims.expires_at() {
            assert_eq!(
                LinkToken::verify(text, &KEYS, expiry),
                Err(TokenError::Expired)
            );
            assert_eq!(
                LinkToken::verify(text, &KEYS, expiry - Duration::seconds(1)),
                Ok(claims)
            );
        }
        let base = LinkBase::new("https://verify.example.com/l/").expect("valid base");
        assert_eq!(token_from_url(&base.url(text)), Ok(text));
    }
    if let Ok(token) = token_from_url(text) {
        assert!(!token.is_empty());
        assert!(!token.contains(['/', '?', '#']), "{text:?} -> {token:?}");
    }
}

fn check_claims(claim: &[u8; 24], rest: &[u8]) {
    let (id, expiry) = claim.split_at(16);
    let link = LinkId::from_bytes(id.try_into().expect("16 bytes"));
    let expiry = i64::from_be_bytes(expiry.try_into().expect("8 bytes"));
    let expires_at = (expiry % 3 != 0).then(|| instant_from(expiry));
    let claims = LinkToken::new(link, expires_at);
    let token = claims.sign(&KEYS);
    assert_eq!(token.len(), LinkToken::LEN);
    let now = at(T0);
    let verified = LinkToken::verify(&token, &KEYS, now);
    match claims.expires_at() {
        Some(e) if e <= now => assert_eq!(verified, Err(TokenError::Expired)),
        _ => assert_eq!(verified, Ok(claims)),
    }
    let (&pos, with) = rest.split_first().unwrap_or((&0, &[]));
    let tampered = tamper(&token, usize::from(pos), with.first().copied().unwrap_or(0));
    assert!(
        LinkToken::verify(&tampered, &KEYS, DateTime::UNIX_EPOCH).is_err(),
        "{token} tampered as {tampered} still verifies"
    );
}
