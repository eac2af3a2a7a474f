//! `PersonalToken::verify` on arbitrary text.
//!
//! Properties: verification returns `Ok` or a `TokenError` at every instant; the reason for a
//! rejection does not depend on the instant, except `Expired`; a token that verifies re-encodes
//! to the same string with the key that signed it, is 63 to 232 characters long, expires exactly
//! at its expiry, is never a link token, and comes out of a link URL unchanged. Inputs of 24
//! bytes or more also sign claims made from their first bytes and a reference made from the
//! rest, which must verify to the same claims, and stop verifying when one character is
//! changed.
#![no_main]

mod common;

use chrono::{DateTime, Duration};
use libfuzzer_sys::fuzz_target;
use magic_link::tokens::{token_from_url, LinkBase, LinkToken, PersonalToken, TokenError};
use magic_link::{LinkId, Reference};

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
    let results = instants().map(|now| PersonalToken::verify(text, &KEYS, now));
    let rejection = results
        .iter()
        .find_map(|r| r.as_ref().err().filter(|e| **e != TokenError::Expired));
    if let Some(reason) = rejection {
        assert!(
            results.iter().all(|r| r.as_ref().err() == Some(reason)),
            "{text:?}: {results:?}"
        );
    }
    if let Some(claims) = results.iter().find_map(|r| r.as_ref().ok()) {
        // Exactly one key of the keyring made it; re-signing with that key alone gives it back.
        let resigned = SINGLES.iter().filter(|k| claims.sign(k) == text).count();
        assert_eq!(resigned, 1, "{text:?} does not re-encode");
        assert!((PersonalToken::MIN_LEN..=PersonalToken::MAX_LEN).contains(&text.len()));
        if let Some(expiry) = claims.expires_at() {
            assert_eq!(
                PersonalToken::verify(text, &KEYS, expiry),
                Err(TokenError::Expired)
            );
            assert_eq!(
                PersonalToken::verify(text, &KEYS, expiry - Duration::seconds(1)).as_ref(),
                Ok(claims)
            );
        }
        assert!(LinkToken::verify(text, &KEYS, DateTime::UNIX_EPOCH).is_err());
        let base = LinkBase::new("https://verify.example.com/p/").expect("valid base");
        assert_eq!(token_from_url(&base.url(text)), Ok(text));
    }
}

fn check_claims(claim: &[u8; 24], rest: &[u8]) {
    let (id, expiry) = claim.split_at(16);
    let link = LinkId::from_bytes(id.try_into().expect("16 bytes"));
    let expiry = i64::from_be_bytes(expiry.try_into().expect("8 bytes"));
    let expires_at = (expiry % 3 != 0).then(|| instant_from(expiry));
    let (&pos, rest) = rest.split_first().unwrap_or((&0, &[]));
    let (&with, rest) = rest.split_first().unwrap_or((&0, &[]));
    let claims = PersonalToken::new(link, expires_at, reference_from(rest));
    let token = claims.sign(&KEYS);
    assert!((PersonalToken::MIN_LEN..=PersonalToken::MAX_LEN).contains(&token.len()));
    let now = at(T0);
    let verified = PersonalToken::verify(&token, &KEYS, now);
    match claims.expires_at() {
        Some(e) if e <= now => assert_eq!(verified, Err(TokenError::Expired)),
        _ => assert_eq!(verified, Ok(claims)),
    }
    let tampered = tamper(&token, usize::from(pos), with);
    assert!(
        PersonalToken::verify(&tampered, &KEYS, DateTime::UNIX_EPOCH).is_err(),
        "{token} tampered as {tampered} still verifies"
    );
}

/// A valid reference from fuzzer bytes: their text without control characters, cut to at most
/// 128 bytes on a character boundary, or `x` when nothing is left.
fn reference_from(bytes: &[u8]) -> Reference {
    let mut text = String::new();
    for c in String::from_utf8_lossy(bytes).chars() {
        if c.is_control() {
            continue;
        }
        if text.len() + c.len_utf8() > Reference::MAX_LEN {
            break;
        }
        text.push(c);
    }
    if text.is_empty() {
        text.push('x');
    }
    Reference::new(text).expect("no control characters, 1 to 128 bytes")
}
