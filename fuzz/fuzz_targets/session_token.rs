//! `SessionToken::verify` on arbitrary text.
//!
//! Properties: verification returns `Ok` or a `TokenError` at every instant; the reason for a
//! rejection does not depend on the instant, except `Expired`; a token that verifies re-encodes
//! to the same string with the key that signed it, and expires exactly at its expiry; no text
//! verifies as both a link token and a session token. Inputs of 40 bytes or more also sign
//! claims made from their first bytes, which must verify to the same claims, and stop
//! verifying when one character is changed.
#![no_main]

mod common;

use chrono::{DateTime, Duration};
use libfuzzer_sys::fuzz_target;
use magic_link::tokens::{LinkToken, SessionToken, TokenError};
use magic_link::{AccountId, SessionId};

use common::{at, instant_from, instants, tamper, KEYS, SINGLES, T0};

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        check_text(text);
    }
    if let Some((claim, rest)) = data.split_first_chunk::<40>() {
        check_claims(claim, rest);
    }
});

fn check_text(text: &str) {
    let results = instants().map(|now| SessionToken::verify(text, &KEYS, now));
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
        let resigned = SINGLES.iter().filter(|k| claims.sign(k) == text).count();
        assert_eq!(resigned, 1, "{text:?} does not re-encode");
        assert_eq!(text.len(), SessionToken::LEN);
        let expiry = claims.expires_at();
        assert_eq!(
            SessionToken::verify(text, &KEYS, expiry),
            Err(TokenError::Expired)
        );
        assert_eq!(
            SessionToken::verify(text, &KEYS, expiry - Duration::seconds(1)),
            Ok(claims)
        );
        assert!(LinkToken::verify(text, &KEYS, DateTime::UNIX_EPOCH).is_err());
    }
}

fn check_claims(claim: &[u8; 40], rest: &[u8]) {
    let session = SessionId::from_bytes(claim[..16].try_into().expect("16 bytes"));
    let account = AccountId::from_bytes(claim[16..32].try_into().expect("16 bytes"));
    let expiry = i64::from_be_bytes(claim[32..].try_into().expect("8 bytes"));
    let claims = SessionToken::new(session, account, instant_from(expiry));
    let token = claims.sign(&KEYS);
    assert_eq!(token.len(), SessionToken::LEN);
    let now = at(T0);
    let verified = SessionToken::verify(&token, &KEYS, now);
    if claims.expires_at() <= now {
        assert_eq!(verified, Err(TokenError::Expired));
    } else {
        assert_eq!(verified, Ok(claims));
    }
    let (&pos, with) = rest.split_first().unwrap_or((&0, &[]));
    let tampered = tamper(&token, usize::from(pos), with.first().copied().unwrap_or(0));
    assert!(
        SessionToken::verify(&tampered, &KEYS, DateTime::UNIX_EPOCH).is_err(),
        "{token} tampered as {tampered} still verifies"
    );
}
