//! Link, session and personal link tokens: committed vectors, property tests, domain
//! separation, redaction.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use chrono::{DateTime, Duration, Utc};
use hmac::{Hmac, KeyInit, Mac};
use magic_link::tokens::{
    token_from_url, Keyring, LinkBase, LinkToken, PersonalToken, SessionToken, SigningKey,
    TokenError,
};
use magic_link::{AccountId, LinkId, Reference, SessionId};
use proptest::prelude::*;
use serde_json::Value;
use sha2::Sha256;

const LINK_CONTEXT: &[u8] = b"magic-link/v1/link";
const SESSION_CONTEXT: &[u8] = b"magic-link/v1/session";
const PERSONAL_CONTEXT: &[u8] = b"magic-link/v1/personal";

fn at(seconds: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(seconds, 0).unwrap()
}

fn unhex(text: &str) -> Vec<u8> {
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap())
        .collect()
}

fn key_of(v: &Value) -> [u8; 32] {
    unhex(v["key"].as_str().unwrap()).try_into().unwrap()
}

fn uuid_bytes(v: &Value, field: &str) -> [u8; 16] {
    *v[field]
        .as_str()
        .unwrap()
        .parse::<LinkId>()
        .unwrap()
        .as_bytes()
}

/// The tag as the module docs define it, computed with `hmac` directly.
fn reference_tag(key: &[u8], context: &[u8], body: &[u8]) -> [u8; 16] {
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(key).unwrap();
    mac.update(context);
    mac.update(body);
    mac.finalize().into_bytes()[..16].try_into().unwrap()
}

fn vectors() -> Value {
    serde_json::from_str(include_str!("vectors/tokens.json")).unwrap()
}

#[test]
fn link_vectors_byte_for_byte() {
    let vectors = vectors();
    assert_eq!(
        vectors["link_context"].as_str().unwrap().as_bytes(),
        LINK_CONTEXT
    );
    let cases = vectors["link_tokens"].as_array().unwrap();
    assert!(cases.len() >= 4);
    assert!(cases.iter().any(|v| v["expires_at"].is_null()));
    assert!(cases.iter().any(|v| !v["expires_at"].is_null()));
    for v in cases {
        let key = key_of(v);
        let key_id = u32::try_from(v["key_id"].as_u64().unwrap()).unwrap();
        let link: LinkId = v["link_id"].as_str().unwrap().parse().unwrap();
        let expiry = v["expires_at"].as_i64();
        let token = v["token"].as_str().unwrap();

        // The implementation reproduces the token.
        let keyring = Keyring::new(key_id, SigningKey::from_bytes(key));
        let claims = LinkToken::new(link, expiry.map(at));
        assert_eq!(claims.sign(&keyring), token, "{v}");
        assert_eq!(LinkToken::verify(token, &keyring, at(0)), Ok(claims));
        assert_eq!(token.len(), LinkToken::LEN);

        // The documented layout reproduces it too, without the implementation.
        let mut body = vec![1u8];
        body.extend_from_slice(&key_id.to_be_bytes());
        body.extend_from_slice(link.as_bytes());
        body.extend_from_slice(&expiry.map_or(0, |s| s as u64).to_be_bytes());
        assert_eq!(body.len(), 29);
        let decoded = URL_SAFE_NO_PAD.decode(token).unwrap();
        assert_eq!(&decoded[..29], &body[..]);
        assert_eq!(decoded[29..], reference_tag(&key, LINK_CONTEXT, &body));
    }
}

#[test]
fn session_vectors_byte_for_byte() {
    let vectors = vectors();
    assert_eq!(
        vectors["session_context"].as_str().unwrap().as_bytes(),
        SESSION_CONTEXT
    );
    let cases = vectors["session_tokens"].as_array().unwrap();
    assert!(cases.len() >= 2);
    for v in cases {
        let key = key_of(v);
        let key_id = u32::try_from(v["key_id"].as_u64().unwrap()).unwrap();
        let session = SessionId::from_bytes(uuid_bytes(v, "session_id"));
        let account = AccountId::from_bytes(uuid_bytes(v, "account_id"));
        let expiry = v["expires_at"].as_i64().unwrap();
        let token = v["token"].as_str().unwrap();

        let keyring = Keyring::new(key_id, SigningKey::from_bytes(key));
        let claims = SessionToken::new(session, account, at(expiry));
        assert_eq!(claims.sign(&keyring), token, "{v}");
        assert_eq!(SessionToken::verify(token, &keyring, at(0)), Ok(claims));
        assert_eq!(token.len(), SessionToken::LEN);

        let mut body = vec![1u8];
        body.extend_from_slice(&key_id.to_be_bytes());
        body.extend_from_slice(session.as_bytes());
        body.extend_from_slice(account.as_bytes());
        body.extend_from_slice(&(expiry as u64).to_be_bytes());
        assert_eq!(body.len(), 45);
        let decoded = URL_SAFE_NO_PAD.decode(token).unwrap();
        assert_eq!(&decoded[..45], &body[..]);
        assert_eq!(decoded[45..], reference_tag(&key, SESSION_CONTEXT, &body));
    }
}

/// The body of a personal link token as the module docs lay it out, built without the
/// implementation: version, key id, link id, expiry, the reference's length, the reference.
fn personal_body(key_id: u32, link: &[u8; 16], expiry: u64, reference: &[u8]) -> Vec<u8> {
    let mut body = vec![1u8];
    body.extend_from_slice(&key_id.to_be_bytes());
    body.extend_from_slice(link);
    body.extend_from_slice(&expiry.to_be_bytes());
    body.push(u8::try_from(reference.len()).unwrap());
    body.extend_from_slice(reference);
    body
}

/// The personal vectors both ways: a valid one verifies to its fields and its fields sign to
/// it, and its bytes and tag follow from the documented layout with `hmac` alone; an invalid
/// one fails with its error.
#[test]
fn personal_vectors_byte_for_byte() {
    let vectors = vectors();
    assert_eq!(
        vectors["personal_context"].as_str().unwrap().as_bytes(),
        PERSONAL_CONTEXT
    );
    let cases = vectors["personal_tokens"].as_array().unwrap();
    let (valid, invalid): (Vec<_>, Vec<_>) = cases.iter().partition(|v| v["error"].is_null());
    assert!(valid.len() >= 4 && invalid.len() >= 6);
    assert!(valid.iter().any(|v| v["expires_at"].is_null()));
    assert!(valid
        .iter()
        .any(|v| !v["reference"].as_str().unwrap().is_ascii()));
    let lengths: Vec<usize> = valid
        .iter()
        .map(|v| v["token"].as_str().unwrap().len())
        .collect();
    assert!(lengths.contains(&PersonalToken::MIN_LEN) && lengths.contains(&PersonalToken::MAX_LEN));

    for v in valid {
        let key = key_of(v);
        let key_id = u32::try_from(v["key_id"].as_u64().unwrap()).unwrap();
        let link: LinkId = v["link_id"].as_str().unwrap().parse().unwrap();
        let expiry = v["expires_at"].as_i64();
        let text = v["reference"].as_str().unwrap();
        let token = v["token"].as_str().unwrap();

        // The implementation reproduces the token, and reads the fields back.
        let keyring = Keyring::new(key_id, SigningKey::from_bytes(key));
        let claims = PersonalToken::new(link, expiry.map(at), Reference::new(text).unwrap());
        assert_eq!(claims.sign(&keyring), token, "{v}");
        let verified = PersonalToken::verify(token, &keyring, at(0)).unwrap();
        assert_eq!(verified, claims);
        assert_eq!(verified.link(), link);
        assert_eq!(verified.expires_at(), expiry.map(at));
        assert_eq!(verified.reference(), text);

        // The documented layout reproduces it too, without the implementation.
        let body = personal_body(
            key_id,
            link.as_bytes(),
            expiry.map_or(0, |s| s as u64),
            text.as_bytes(),
        );
        assert_eq!(body.len(), 30 + text.len());
        let decoded = URL_SAFE_NO_PAD.decode(token).unwrap();
        assert_eq!(decoded.len(), body.len() + 16);
        assert_eq!(&decoded[..body.len()], &body[..]);
        assert_eq!(
            decoded[body.len()..],
            reference_tag(&key, PERSONAL_CONTEXT, &body)
        );
    }

    let mut errors = Vec::new();
    for v in invalid {
        let key = key_of(v);
        let key_id = u32::try_from(v["key_id"].as_u64().unwrap()).unwrap();
        let keyring = Keyring::new(key_id, SigningKey::from_bytes(key));
        let token = v["token"].as_str().unwrap();
        let now = at(v["now"].as_i64().unwrap());
        let expected = match v["error"].as_str().unwrap() {
            "Malformed" => TokenError::Malformed,
            "Truncated" => TokenError::Truncated,
            "TooLong" => TokenError::TooLong,
            "Forged" => TokenError::Forged,
            "Expired" => TokenError::Expired,
            "UnknownKey" => TokenError::UnknownKey {
                key_id: u32::try_from(v["token_key_id"].as_u64().unwrap()).unwrap(),
            },
            other => panic!("unknown error {other}"),
        };
        assert_eq!(
            PersonalToken::verify(token, &keyring, now),
            Err(expected),
            "{v}"
        );
        errors.push(expected);

        // Those that give their fields are signed correctly over them: what fails is the
        // field check (before the key id) or the expiry, not the tag.
        if let Some(text) = v["reference"].as_str() {
            let link: LinkId = v["link_id"].as_str().unwrap().parse().unwrap();
            let expiry = v["expires_at"].as_u64().unwrap();
            let body = personal_body(key_id, link.as_bytes(), expiry, text.as_bytes());
            let mut bytes = body.clone();
            bytes.extend_from_slice(&reference_tag(&key, PERSONAL_CONTEXT, &body));
            assert_eq!(URL_SAFE_NO_PAD.encode(&bytes), token, "{v}");
            if expected == TokenError::Malformed {
                let stranger = Keyring::new(key_id ^ 1, SigningKey::from_bytes([0; 32]));
                assert_eq!(
                    PersonalToken::verify(token, &stranger, now),
                    Err(TokenError::Malformed)
                );
            }
        }
    }
    for kind in [
        TokenError::Malformed,
        TokenError::Truncated,
        TokenError::Forged,
        TokenError::Expired,
    ] {
        assert!(errors.contains(&kind), "no vector for {kind:?}");
    }
    assert!(errors
        .iter()
        .any(|e| matches!(e, TokenError::UnknownKey { .. })));
}

#[test]
fn vector_keyring_string_holds_every_vector_key() {
    let vectors = vectors();
    let text = vectors["keyring"].as_str().unwrap();
    let keyring = Keyring::parse(text).unwrap();
    assert_eq!(keyring.export().expose_secret(), text);
    assert_eq!(keyring.signing_key_id(), u32::MAX);
    for v in vectors["link_tokens"].as_array().unwrap() {
        let id = u32::try_from(v["key_id"].as_u64().unwrap()).unwrap();
        assert_eq!(keyring.key(id).unwrap().expose_secret(), &key_of(v));
        let token = v["token"].as_str().unwrap();
        assert!(LinkToken::verify(token, &keyring, at(0)).is_ok());
    }
    for v in vectors["session_tokens"].as_array().unwrap() {
        let token = v["token"].as_str().unwrap();
        assert!(SessionToken::verify(token, &keyring, at(0)).is_ok());
    }
    for v in vectors["personal_tokens"].as_array().unwrap() {
        if v["error"].is_null() {
            let id = u32::try_from(v["key_id"].as_u64().unwrap()).unwrap();
            assert_eq!(keyring.key(id).unwrap().expose_secret(), &key_of(v));
            let token = v["token"].as_str().unwrap();
            assert!(PersonalToken::verify(token, &keyring, at(0)).is_ok());
        }
    }
}

#[test]
fn each_rejection_has_its_own_variant() {
    let vectors = vectors();
    let keyring = Keyring::parse(vectors["keyring"].as_str().unwrap()).unwrap();
    let expiring = vectors["link_tokens"][1]["token"].as_str().unwrap();
    let now = at(1_800_000_000);
    let verify = |t: &str| LinkToken::verify(t, &keyring, now);
    assert!(verify(expiring).is_ok());

    let mut forged = expiring.to_owned();
    let last = if forged.ends_with('A') { "B" } else { "A" };
    forged.replace_range(59..60, last);
    let mut unknown_key = URL_SAFE_NO_PAD.decode(expiring).unwrap();
    unknown_key[4] = 3;
    let mut version_2 = URL_SAFE_NO_PAD.decode(expiring).unwrap();
    version_2[0] = 2;

    let cases = [
        ("", TokenError::Truncated),
        (&expiring[..59], TokenError::Truncated),
        (&format!("{expiring}A"), TokenError::TooLong),
        (&expiring.replace('_', "/"), TokenError::Malformed),
        (&format!("{}=", &expiring[..59]), TokenError::Malformed),
        (
            &URL_SAFE_NO_PAD.encode(&version_2),
            TokenError::UnknownVersion { version: 2 },
        ),
        (
            &URL_SAFE_NO_PAD.encode(&unknown_key),
            TokenError::UnknownKey { key_id: 3 },
        ),
        (&forged, TokenError::Forged),
    ];
    for (token, expected) in cases {
        assert_eq!(verify(token), Err(expected), "{token:?}");
    }
    assert_eq!(
        LinkToken::verify(expiring, &keyring, at(1_900_000_000)),
        Err(TokenError::Expired)
    );
}

/// Tokens of one kind never verify as the other, not even when the tag is computed over the
/// other kind's layout with the right key: the context differs.
#[test]
fn link_and_session_tokens_never_cross() {
    let key = [9u8; 32];
    let keyring = Keyring::new(1, SigningKey::from_bytes(key));
    let now = at(1_000);
    let link = LinkToken::new(LinkId::new(), None).sign(&keyring);
    let session = SessionToken::new(SessionId::new(), AccountId::new(), at(2_000)).sign(&keyring);
    assert!(LinkToken::verify(&link, &keyring, now).is_ok());
    assert!(SessionToken::verify(&session, &keyring, now).is_ok());
    assert_eq!(
        SessionToken::verify(&link, &keyring, now),
        Err(TokenError::Truncated)
    );
    assert_eq!(
        LinkToken::verify(&session, &keyring, now),
        Err(TokenError::TooLong)
    );

    // A session-shaped token tagged under the link context, and the reverse.
    let mut body = URL_SAFE_NO_PAD.decode(&session).unwrap();
    body.truncate(45);
    let tag = reference_tag(&key, LINK_CONTEXT, &body);
    body.extend_from_slice(&tag);
    assert_eq!(
        SessionToken::verify(&URL_SAFE_NO_PAD.encode(&body), &keyring, now),
        Err(TokenError::Forged)
    );
    let mut body = URL_SAFE_NO_PAD.decode(&link).unwrap();
    body.truncate(29);
    let tag = reference_tag(&key, SESSION_CONTEXT, &body);
    body.extend_from_slice(&tag);
    assert_eq!(
        LinkToken::verify(&URL_SAFE_NO_PAD.encode(&body), &keyring, now),
        Err(TokenError::Forged)
    );
    // Sanity: the same construction with the right context verifies.
    let tag = reference_tag(&key, LINK_CONTEXT, &body[..29]);
    body[29..].copy_from_slice(&tag);
    assert!(LinkToken::verify(&URL_SAFE_NO_PAD.encode(&body), &keyring, now).is_ok());
}

#[test]
fn debug_output_holds_no_key_material() {
    let bytes: [u8; 32] = std::array::from_fn(|i| 0xA0 + i as u8);
    let key = SigningKey::from_bytes(bytes);
    let mut keyring = Keyring::new(1, key.clone());
    keyring.rotate().unwrap();
    let secret = keyring.export();
    let printed = [
        format!("{key:?}"),
        format!("{key:#?}"),
        format!("{keyring:?}"),
        format!("{keyring:#?}"),
        format!("{secret:?}"),
    ];
    assert_eq!(printed[0], "SigningKey([redacted])");
    assert_eq!(printed[4], "KeyringSecret([redacted])");
    let forms = [
        URL_SAFE_NO_PAD.encode(bytes)[..10].to_owned(),
        bytes[..6].iter().map(|b| format!("{b:02x}")).collect(),
        bytes[..6].iter().map(|b| format!("{b:02X}")).collect(),
        format!("{}, {}, {}", bytes[0], bytes[1], bytes[2]),
    ];
    for text in &printed {
        for form in &forms {
            assert!(!text.contains(form.as_str()), "{text} contains {form}");
        }
    }
}

#[test]
fn urls_round_trip() {
    let keyring = Keyring::generate().unwrap();
    let base = LinkBase::new("https://verify.example.com/l/").unwrap();
    let claims = LinkToken::new(LinkId::new(), Some(at(2_000_000_000)));
    let url = base.url(&claims.sign(&keyring));
    assert!(url.len() <= base.as_str().len() + 64);
    for shape in [
        url.clone(),
        format!("{url}?utm_source=mail"),
        format!("{url}/"),
        url.trim_start_matches("https://verify.example.com")
            .to_owned(),
    ] {
        let token = token_from_url(&shape).unwrap();
        assert_eq!(LinkToken::verify(token, &keyring, at(0)), Ok(claims));
    }
}

fn claims_strategy() -> impl Strategy<Value = LinkToken> {
    (
        any::<[u8; 16]>(),
        prop::option::of(1i64..(1 << 40)),
        0u32..1_000_000_000,
    )
        .prop_map(|(id, expiry, nanos)| {
            LinkToken::new(
                LinkId::from_bytes(id),
                expiry.map(|s| DateTime::from_timestamp(s, nanos).unwrap()),
            )
        })
}

fn session_strategy() -> impl Strategy<Value = SessionToken> {
    (any::<[u8; 16]>(), any::<[u8; 16]>(), 1i64..(1 << 40)).prop_map(|(s, a, expiry)| {
        SessionToken::new(
            SessionId::from_bytes(s),
            AccountId::from_bytes(a),
            at(expiry),
        )
    })
}

/// Any valid reference: 1 to 128 bytes of characters other than control characters, from all
/// of Unicode.
fn reference_strategy() -> impl Strategy<Value = Reference> {
    prop::collection::vec(
        any::<char>().prop_filter("no control characters", |c| !c.is_control()),
        1..=128,
    )
    .prop_map(|chars| {
        let mut text = String::new();
        for c in chars {
            if text.len() + c.len_utf8() > Reference::MAX_LEN {
                break;
            }
            text.push(c);
        }
        Reference::new(text).unwrap()
    })
}

fn personal_strategy() -> impl Strategy<Value = PersonalToken> {
    (claims_strategy(), reference_strategy())
        .prop_map(|(link, reference)| PersonalToken::new(link.link(), link.expires_at(), reference))
}

fn keyring_strategy() -> impl Strategy<Value = Keyring> {
    (any::<u32>(), any::<[u8; 32]>())
        .prop_map(|(id, key)| Keyring::new(id, SigningKey::from_bytes(key)))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    /// Arbitrary text never panics a parser, and anything accepted is a genuine token.
    #[test]
    fn arbitrary_strings_never_panic(text in any::<String>(), keyring in keyring_strategy()) {
        let now = at(0);
        if let Ok(claims) = LinkToken::verify(&text, &keyring, now) {
            prop_assert_eq!(claims.sign(&keyring), text.clone());
        }
        if let Ok(claims) = SessionToken::verify(&text, &keyring, now) {
            prop_assert_eq!(claims.sign(&keyring), text.clone());
        }
        if let Ok(claims) = PersonalToken::verify(&text, &keyring, now) {
            prop_assert_eq!(claims.sign(&keyring), text.clone());
        }
        if let Ok(token) = token_from_url(&text) {
            prop_assert!(!token.is_empty() && text.contains(token));
        }
        let _ = Keyring::parse(&text);
        let _ = LinkBase::new(text);
    }

    /// Arbitrary bytes, raw and as base64url of any length (so they get past the alphabet check
    /// and reach the version, key and tag checks), never panic and never verify.
    #[test]
    fn arbitrary_bytes_never_verify(bytes in prop::collection::vec(any::<u8>(), 0..200)) {
        let keyring = Keyring::new(1, SigningKey::from_bytes([1; 32]));
        let now = at(0);
        let mut forged = bytes.clone();
        if let Some(first) = forged.first_mut() {
            *first = 1;
        }
        if forged.len() > 4 {
            forged[1..5].copy_from_slice(&1u32.to_be_bytes());
        }
        for text in [
            String::from_utf8_lossy(&bytes).into_owned(),
            URL_SAFE_NO_PAD.encode(&bytes),
            URL_SAFE_NO_PAD.encode(&forged),
        ] {
            prop_assert!(LinkToken::verify(&text, &keyring, now).is_err());
            prop_assert!(SessionToken::verify(&text, &keyring, now).is_err());
            prop_assert!(PersonalToken::verify(&text, &keyring, now).is_err());
        }
    }

    /// Arbitrary bytes in a personal link token's shape (version, key id, a length byte that
    /// matches, any reference bytes) pass the early checks often and still never verify.
    #[test]
    fn arbitrary_personal_shaped_bytes_never_verify(
        mut bytes in prop::collection::vec(any::<u8>(), 47..=174),
        expiry in 0u64..(1 << 40),
    ) {
        let keyring = Keyring::new(1, SigningKey::from_bytes([1; 32]));
        bytes[0] = 1;
        bytes[1..5].copy_from_slice(&1u32.to_be_bytes());
        bytes[21..29].copy_from_slice(&expiry.to_be_bytes());
        bytes[29] = u8::try_from(bytes.len() - 46).unwrap();
        let text = URL_SAFE_NO_PAD.encode(&bytes);
        let result = PersonalToken::verify(&text, &keyring, at(0));
        prop_assert!(
            matches!(result, Err(TokenError::Malformed | TokenError::Forged)),
            "{:?}", result
        );
    }

    /// Sign, then verify, gives back the claims for any valid reference, link and expiry.
    #[test]
    fn personal_round_trip(claims in personal_strategy(), keyring in keyring_strategy()) {
        let token = claims.sign(&keyring);
        let n = claims.reference().len();
        prop_assert_eq!(token.len(), (30 + n + 16) * 4 / 3 + usize::from((30 + n + 16) % 3 != 0));
        prop_assert!((PersonalToken::MIN_LEN..=PersonalToken::MAX_LEN).contains(&token.len()));
        let verified = PersonalToken::verify(&token, &keyring, at(0));
        prop_assert_eq!(verified.as_ref(), Ok(&claims));
        let verified = verified.unwrap();
        prop_assert_eq!(verified.reference(), claims.reference());
        prop_assert!(LinkToken::verify(&token, &keyring, at(0)).is_err());
        prop_assert!(SessionToken::verify(&token, &keyring, at(0)).is_err());
        if let Some(expiry) = claims.expires_at() {
            prop_assert_eq!(
                PersonalToken::verify(&token, &keyring, expiry),
                Err(TokenError::Expired)
            );
        }
    }

    /// Replacing any one character of a valid personal link token by any other character
    /// makes it fail, and so does flipping any bit of its decoded bytes.
    #[test]
    fn personal_any_character_change_invalidates(
        claims in personal_strategy(),
        keyring in keyring_strategy(),
        pick in any::<prop::sample::Index>(),
        with in any::<char>(),
    ) {
        let now = at(0);
        let token = claims.sign(&keyring);
        let at_char = pick.index(token.len());
        if !token[at_char..].starts_with(with) {
            let mut changed = token.clone();
            changed.replace_range(at_char..at_char + 1, with.encode_utf8(&mut [0; 4]));
            prop_assert!(
                PersonalToken::verify(&changed, &keyring, now).is_err(),
                "{} changed at {} to {:?}", token, at_char, with
            );
        }
        let mut bytes = URL_SAFE_NO_PAD.decode(&token).unwrap();
        let bit = pick.index(bytes.len() * 8);
        bytes[bit / 8] ^= 1 << (bit % 8);
        prop_assert!(PersonalToken::verify(&URL_SAFE_NO_PAD.encode(&bytes), &keyring, now).is_err());
    }

    /// Flipping any one bit of a valid token, in its text or in its decoded bytes, makes it
    /// invalid.
    #[test]
    fn any_single_bit_flip_invalidates(
        link in claims_strategy(),
        session in session_strategy(),
        keyring in keyring_strategy(),
        pick in any::<prop::sample::Index>(),
    ) {
        let now = at(0);
        let link_token = link.sign(&keyring);
        let session_token = session.sign(&keyring);
        prop_assert_eq!(LinkToken::verify(&link_token, &keyring, now), Ok(link));
        prop_assert_eq!(SessionToken::verify(&session_token, &keyring, now), Ok(session));

        let check = |token: &str, verify: &dyn Fn(&str) -> bool| -> Result<(), TestCaseError> {
            let text_bit = pick.index(token.len() * 8);
            let mut text = token.as_bytes().to_vec();
            text[text_bit / 8] ^= 1 << (text_bit % 8);
            if let Ok(text) = String::from_utf8(text) {
                prop_assert!(!verify(&text), "text bit {} of {}", text_bit, token);
            }
            let mut bytes = URL_SAFE_NO_PAD.decode(token).unwrap();
            let byte_bit = pick.index(bytes.len() * 8);
            bytes[byte_bit / 8] ^= 1 << (byte_bit % 8);
            prop_assert!(!verify(&URL_SAFE_NO_PAD.encode(&bytes)), "byte bit {}", byte_bit);
            Ok(())
        };
        check(&link_token, &|t| LinkToken::verify(t, &keyring, now).is_ok())?;
        check(&session_token, &|t| SessionToken::verify(t, &keyring, now).is_ok())?;
    }

    /// A token verifies after the keyring gains newer (or older) keys, and fails once its key
    /// is removed; tokens signed after a rotation use the new key.
    #[test]
    fn rotation_keeps_tokens_until_their_key_is_removed(
        link in claims_strategy(),
        session in session_strategy(),
        first in 0u32..1_000_000,
        rotations in 1usize..6,
        older in prop::option::of(any::<[u8; 32]>()),
    ) {
        let now = at(0);
        let mut keyring = Keyring::new(first, SigningKey::generate().unwrap());
        let link_token = link.sign(&keyring);
        let session_token = session.sign(&keyring);
        if let Some(key) = older {
            if first > 0 {
                keyring.insert(first - 1, SigningKey::from_bytes(key)).unwrap();
            }
        }
        for n in 1..=rotations {
            prop_assert_eq!(keyring.rotate().unwrap(), first + n as u32);
            prop_assert_eq!(LinkToken::verify(&link_token, &keyring, now), Ok(link));
            prop_assert_eq!(SessionToken::verify(&session_token, &keyring, now), Ok(session));
        }
        let newer = link.sign(&keyring);
        prop_assert_ne!(&newer, &link_token);
        keyring.remove(first).unwrap();
        prop_assert_eq!(
            LinkToken::verify(&link_token, &keyring, now),
            Err(TokenError::UnknownKey { key_id: first })
        );
        prop_assert_eq!(
            SessionToken::verify(&session_token, &keyring, now),
            Err(TokenError::UnknownKey { key_id: first })
        );
        prop_assert_eq!(LinkToken::verify(&newer, &keyring, now), Ok(link));
    }

    /// A token is valid up to the microsecond before its expiry and rejected at exactly its
    /// expiry and after.
    #[test]
    fn expired_at_exactly_its_expiry(
        link in claims_strategy(),
        session in session_strategy(),
        keyring in keyring_strategy(),
        later in 0i64..10_000_000,
    ) {
        let link_token = link.sign(&keyring);
        if let Some(expiry) = link.expires_at() {
            let just_before = expiry - Duration::microseconds(1);
            prop_assert_eq!(LinkToken::verify(&link_token, &keyring, just_before), Ok(link));
            prop_assert_eq!(LinkToken::verify(&link_token, &keyring, expiry), Err(TokenError::Expired));
            prop_assert_eq!(
                LinkToken::verify(&link_token, &keyring, expiry + Duration::seconds(later)),
                Err(TokenError::Expired)
            );
        } else {
            prop_assert_eq!(LinkToken::verify(&link_token, &keyring, DateTime::<Utc>::MAX_UTC), Ok(link));
        }
        let session_token = session.sign(&keyring);
        let expiry = session.expires_at();
        let just_before = expiry - Duration::microseconds(1);
        prop_assert_eq!(SessionToken::verify(&session_token, &keyring, just_before), Ok(session));
        prop_assert_eq!(SessionToken::verify(&session_token, &keyring, expiry), Err(TokenError::Expired));
        prop_assert_eq!(
            SessionToken::verify(&session_token, &keyring, expiry + Duration::seconds(later)),
            Err(TokenError::Expired)
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 32, ..ProptestConfig::default() })]

    /// Every character, replaced by every base64url character and a few others, for one
    /// random personal link token.
    #[test]
    fn personal_every_character_change_invalidates(claims in personal_strategy(), keyring in keyring_strategy()) {
        let now = at(0);
        let token = claims.sign(&keyring);
        prop_assert!(PersonalToken::verify(&token, &keyring, now).is_ok());
        let others = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_+/=. é";
        for i in 0..token.len() {
            for c in others.chars().filter(|&c| token.as_bytes()[i] != c as u8) {
                let mut changed = token.clone();
                changed.replace_range(i..i + 1, c.encode_utf8(&mut [0; 4]));
                prop_assert!(
                    PersonalToken::verify(&changed, &keyring, now).is_err(),
                    "{} changed at {} to {:?}", token, i, c
                );
            }
        }
    }

    /// Every bit, exhaustively, for one random token of each kind.
    #[test]
    fn every_bit_flip_invalidates(link in claims_strategy(), session in session_strategy(), keyring in keyring_strategy()) {
        let now = at(0);
        for (token, is_link) in [(link.sign(&keyring), true), (session.sign(&keyring), false)] {
            let verify = |t: &str| if is_link {
                LinkToken::verify(t, &keyring, now).is_ok()
            } else {
                SessionToken::verify(t, &keyring, now).is_ok()
            };
            prop_assert!(verify(&token));
            for bit in 0..token.len() * 8 {
                let mut text = token.as_bytes().to_vec();
                text[bit / 8] ^= 1 << (bit % 8);
                if let Ok(text) = String::from_utf8(text) {
                    prop_assert!(!verify(&text), "bit {} of {}", bit, token);
                }
            }
        }
    }
}
