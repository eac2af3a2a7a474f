//! Form and hand-off tokens: committed vectors checked byte for byte, domain separation from
//! link and session tokens, binding to the link and the start key, garbage rejected.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use chrono::{DateTime, Utc};
use hmac::{Hmac, KeyInit, Mac};
use magic_link::start::{HandoffId, StartKey};
use magic_link::tokens::{
    FormToken, HandoffToken, Keyring, LinkToken, SessionToken, SigningKey, TokenError,
};
use magic_link::LinkId;
use proptest::prelude::*;
use serde_json::Value;
use sha2::Sha256;

const FORM_CONTEXT: &[u8] = b"magic-link/v1/form";
const HANDOFF_CONTEXT: &[u8] = b"magic-link/v1/handoff";

fn at(seconds: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(seconds, 0).unwrap()
}

fn unhex(text: &str) -> Vec<u8> {
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap())
        .collect()
}

fn vectors() -> Value {
    serde_json::from_str(include_str!("vectors/tokens.json")).unwrap()
}

fn keyring_of(v: &Value) -> Keyring {
    let key: [u8; 32] = unhex(v["key"].as_str().unwrap()).try_into().unwrap();
    let key_id = u32::try_from(v["key_id"].as_u64().unwrap()).unwrap();
    Keyring::new(key_id, SigningKey::from_bytes(key))
}

fn reference_tag(key: &[u8], parts: &[&[u8]]) -> [u8; 16] {
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(key).unwrap();
    for p in parts {
        mac.update(p);
    }
    mac.finalize().into_bytes()[..16].try_into().unwrap()
}

#[test]
fn form_vectors_byte_for_byte() {
    let vectors = vectors();
    assert_eq!(
        vectors["form_context"].as_str().unwrap().as_bytes(),
        FORM_CONTEXT
    );
    let cases = vectors["form_tokens"].as_array().unwrap();
    assert!(cases.len() >= 3);
    for v in cases {
        let keyring = keyring_of(v);
        let link: LinkId = v["link_id"].as_str().unwrap().parse().unwrap();
        let start_key = StartKey::new(v["start_key"].as_str().unwrap()).unwrap();
        let expiry = v["expires_at"].as_i64().unwrap();
        let token = v["token"].as_str().unwrap();

        let claims = FormToken::new(at(expiry));
        assert_eq!(claims.sign(&keyring, link, &start_key), token, "{v}");
        assert_eq!(
            FormToken::verify(token, &keyring, link, &start_key, at(0)),
            Ok(claims)
        );
        assert_eq!(token.len(), FormToken::LEN);

        // The documented layout reproduces it, without the implementation.
        let key = unhex(v["key"].as_str().unwrap());
        let mut body = vec![1u8];
        body.extend_from_slice(&(v["key_id"].as_u64().unwrap() as u32).to_be_bytes());
        body.extend_from_slice(&(expiry as u64).to_be_bytes());
        let secret = start_key.expose_secret().as_bytes();
        let decoded = URL_SAFE_NO_PAD.decode(token).unwrap();
        assert_eq!(&decoded[..13], &body[..]);
        assert_eq!(
            decoded[13..],
            reference_tag(
                &key,
                &[
                    FORM_CONTEXT,
                    &body,
                    link.as_bytes(),
                    &[secret.len() as u8],
                    secret
                ]
            )
        );
    }
}

#[test]
fn handoff_vectors_byte_for_byte() {
    let vectors = vectors();
    assert_eq!(
        vectors["handoff_context"].as_str().unwrap().as_bytes(),
        HANDOFF_CONTEXT
    );
    let cases = vectors["handoff_tokens"].as_array().unwrap();
    assert!(cases.len() >= 3);
    for v in cases {
        let keyring = keyring_of(v);
        let id: [u8; 16] = unhex(v["handoff_id"].as_str().unwrap()).try_into().unwrap();
        let expiry = v["expires_at"].as_i64().unwrap();
        let token = v["token"].as_str().unwrap();

        let claims = HandoffToken::new(HandoffId::from_bytes(id), at(expiry));
        assert_eq!(claims.sign(&keyring), token, "{v}");
        assert_eq!(HandoffToken::verify(token, &keyring, at(0)), Ok(claims));
        assert_eq!(token.len(), HandoffToken::LEN);

        let key = unhex(v["key"].as_str().unwrap());
        let mut body = vec![1u8];
        body.extend_from_slice(&(v["key_id"].as_u64().unwrap() as u32).to_be_bytes());
        body.extend_from_slice(&id);
        body.extend_from_slice(&(expiry as u64).to_be_bytes());
        let decoded = URL_SAFE_NO_PAD.decode(token).unwrap();
        assert_eq!(&decoded[..29], &body[..]);
        assert_eq!(
            decoded[29..],
            reference_tag(&key, &[HANDOFF_CONTEXT, &body])
        );
    }
}

/// A hand-off URL under a typical host stays within 100 characters.
#[test]
fn a_handoff_url_is_short() {
    assert_eq!(HandoffToken::LEN, 60);
    let url = format!(
        "https://verify.example.com/h/{}",
        "x".repeat(HandoffToken::LEN)
    );
    assert!(url.len() <= 100, "{}", url.len());
}

/// A form token works only for its link, its start key and until its expiry; no token of
/// another kind verifies as one, nor the reverse.
#[test]
fn form_tokens_are_bound_and_separate() {
    let keyring = Keyring::generate().unwrap();
    let (link, other_link) = (LinkId::new(), LinkId::new());
    let key = StartKey::new("browser-one-0123456789").unwrap();
    let other_key = StartKey::new("browser-two-0123456789").unwrap();
    let now = at(1_900_000_000);
    let token = FormToken::new(at(1_900_003_600)).sign(&keyring, link, &key);
    assert!(FormToken::verify(&token, &keyring, link, &key, now).is_ok());
    assert_eq!(
        FormToken::verify(&token, &keyring, other_link, &key, now),
        Err(TokenError::Forged),
        "another link"
    );
    assert_eq!(
        FormToken::verify(&token, &keyring, link, &other_key, now),
        Err(TokenError::Forged),
        "another browser"
    );
    assert_eq!(
        FormToken::verify(&token, &keyring, link, &key, at(1_900_003_600)),
        Err(TokenError::Expired)
    );
    let other_ring = Keyring::generate().unwrap();
    assert_eq!(
        FormToken::verify(&token, &other_ring, link, &key, now),
        Err(TokenError::Forged)
    );

    // Hand-off and link tokens have the same length: only the context tells them apart.
    let handoff = HandoffToken::new(HandoffId::generate().unwrap(), at(1_900_000_600));
    let handoff = handoff.sign(&keyring);
    assert_eq!(handoff.len(), LinkToken::LEN);
    assert_eq!(
        LinkToken::verify(&handoff, &keyring, now),
        Err(TokenError::Forged)
    );
    let link_token = LinkToken::new(link, Some(at(1_900_000_600))).sign(&keyring);
    assert_eq!(
        HandoffToken::verify(&link_token, &keyring, now),
        Err(TokenError::Forged)
    );
    assert!(FormToken::verify(&link_token, &keyring, link, &key, now).is_err());
    assert!(SessionToken::verify(&token, &keyring, now).is_err());
    assert!(LinkToken::verify(&token, &keyring, now).is_err());
}

proptest! {
    /// Garbage is a typed error, never a panic.
    #[test]
    fn garbage_is_rejected(text in "\\PC{0,120}", bytes in proptest::collection::vec(any::<u8>(), 0..80)) {
        let keyring = Keyring::new(1, SigningKey::from_bytes([7; 32]));
        let key = StartKey::new("0123456789abcdef").unwrap();
        let link = LinkId::from_bytes([1; 16]);
        prop_assert!(FormToken::verify(&text, &keyring, link, &key, at(0)).is_err());
        prop_assert!(HandoffToken::verify(&text, &keyring, at(0)).is_err());
        let encoded = URL_SAFE_NO_PAD.encode(&bytes);
        prop_assert!(FormToken::verify(&encoded, &keyring, link, &key, at(0)).is_err());
        prop_assert!(HandoffToken::verify(&encoded, &keyring, at(0)).is_err());
        prop_assert!(StartKey::new(text.clone()).is_ok() == (
            (16..=64).contains(&text.len())
                && text.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        ));
    }
}
