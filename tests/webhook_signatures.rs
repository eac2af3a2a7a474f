//! Standard Webhooks signing and verification: the published vectors, every rejection, and
//! garbage in.

use std::time::Duration;

use chrono::{DateTime, Utc};
use magic_link::webhooks::{
    signature_header, WebhookError, WebhookHeaders, WebhookSecret, WebhookVerifier,
    WEBHOOK_ID_HEADER, WEBHOOK_SIGNATURE_HEADER, WEBHOOK_TIMESTAMP_HEADER,
};
use proptest::prelude::*;

struct Vector {
    secret: &'static str,
    id: &'static str,
    timestamp: i64,
    payload: &'static [u8],
    signature: &'static str,
}

/// The vectors published with the Standard Webhooks specification.
const VECTORS: [Vector; 2] = [
    Vector {
        secret: "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        id: "msg_p5jXN8AQM9LWM0D4loKWxJek",
        timestamp: 1614265330,
        payload: br#"{"test": 2432232314}"#,
        signature: "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
    },
    Vector {
        secret: "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD",
        id: "msg_27UH4WbU6Z5A5EzD8u03UvzRbpk",
        timestamp: 1649367553,
        payload: br#"{"email":"test@example.com","username":"test_user"}"#,
        signature: "v1,tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw=",
    },
];

fn at(seconds: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(seconds, 0).unwrap()
}

fn secret(text: &str) -> WebhookSecret {
    text.parse().unwrap()
}

fn verifier(v: &Vector) -> WebhookVerifier {
    WebhookVerifier::new(secret(v.secret))
}

fn check(
    v: &Vector,
    id: &str,
    timestamp: &str,
    signature: &str,
    payload: &[u8],
    now: i64,
) -> Result<(), WebhookError> {
    verifier(v).verify_at(
        WebhookHeaders::new(id, timestamp, signature),
        payload,
        at(now),
    )
}

#[test]
fn published_vectors_sign_byte_for_byte() {
    for v in &VECTORS {
        let secret = secret(v.secret);
        assert_eq!(
            secret.sign(v.id, v.timestamp, v.payload).to_string(),
            v.signature
        );
        assert_eq!(
            signature_header(std::slice::from_ref(&secret), v.id, v.timestamp, v.payload),
            v.signature
        );
        // Without base64 padding the secret is the same key.
        let unpadded = v.secret.trim_end_matches('=');
        assert_eq!(
            self::secret(unpadded)
                .sign(v.id, v.timestamp, v.payload)
                .to_string(),
            v.signature
        );
    }
}

#[test]
fn published_vectors_verify() {
    for v in &VECTORS {
        let ts = v.timestamp.to_string();
        check(v, v.id, &ts, v.signature, v.payload, v.timestamp).unwrap();
    }
}

#[test]
fn tampered_payload_id_or_timestamp_is_rejected() {
    for v in &VECTORS {
        let ts = v.timestamp.to_string();
        let mut payload = v.payload.to_vec();
        payload[3] ^= 1;
        assert_eq!(
            check(v, v.id, &ts, v.signature, &payload, v.timestamp),
            Err(WebhookError::NoMatchingSignature)
        );
        let mut longer = v.payload.to_vec();
        longer.push(b' ');
        assert_eq!(
            check(v, v.id, &ts, v.signature, &longer, v.timestamp),
            Err(WebhookError::NoMatchingSignature)
        );
        let id = format!("{}x", v.id);
        assert_eq!(
            check(v, &id, &ts, v.signature, v.payload, v.timestamp),
            Err(WebhookError::NoMatchingSignature)
        );
        let ts_plus = (v.timestamp + 1).to_string();
        assert_eq!(
            check(v, v.id, &ts_plus, v.signature, v.payload, v.timestamp),
            Err(WebhookError::NoMatchingSignature)
        );
        // A signature made with another secret.
        let other = WebhookSecret::generate().unwrap();
        let forged = other.sign(v.id, v.timestamp, v.payload).to_string();
        assert_eq!(
            check(v, v.id, &ts, &forged, v.payload, v.timestamp),
            Err(WebhookError::NoMatchingSignature)
        );
    }
}

#[test]
fn timestamps_outside_five_minutes_are_rejected_both_ways() {
    let v = &VECTORS[0];
    let ts = v.timestamp.to_string();
    let verify = |now| check(v, v.id, &ts, v.signature, v.payload, now);
    assert_eq!(verify(v.timestamp + 300), Ok(()));
    assert_eq!(
        verify(v.timestamp + 301),
        Err(WebhookError::TimestampTooOld)
    );
    assert_eq!(verify(v.timestamp - 300), Ok(()));
    assert_eq!(
        verify(v.timestamp - 301),
        Err(WebhookError::TimestampTooNew)
    );
    // The timestamp is checked before the signature: a stale forgery costs no HMAC.
    assert_eq!(
        check(v, v.id, &ts, "v1,junk", v.payload, v.timestamp + 301),
        Err(WebhookError::TimestampTooOld)
    );
}

#[test]
fn tolerance_is_configurable() {
    let v = &VECTORS[0];
    let headers = WebhookHeaders::new(v.id, "1614265330", v.signature);
    let strict = verifier(v).tolerance(Duration::from_secs(10));
    assert_eq!(
        strict.verify_at(headers, v.payload, at(v.timestamp + 10)),
        Ok(())
    );
    assert_eq!(
        strict.verify_at(headers, v.payload, at(v.timestamp + 11)),
        Err(WebhookError::TimestampTooOld)
    );
    assert_eq!(
        strict.verify_at(headers, v.payload, at(v.timestamp - 11)),
        Err(WebhookError::TimestampTooNew)
    );
}

#[test]
fn verify_reads_the_system_clock() {
    let v = &VECTORS[0];
    let now = Utc::now().timestamp();
    let signature = secret(v.secret).sign(v.id, now, v.payload).to_string();
    let ts = now.to_string();
    let headers = WebhookHeaders::new(v.id, &ts, &signature);
    assert_eq!(verifier(v).verify(headers, v.payload), Ok(()));
    // The published vector is years old.
    let ts = v.timestamp.to_string();
    let old = WebhookHeaders::new(v.id, &ts, v.signature);
    assert_eq!(
        verifier(v).verify(old, v.payload),
        Err(WebhookError::TimestampTooOld)
    );
}

#[test]
fn each_missing_header_is_named() {
    let v = &VECTORS[0];
    let full = WebhookHeaders::new(v.id, "1614265330", v.signature);
    let cases = [
        (WebhookHeaders { id: None, ..full }, WEBHOOK_ID_HEADER),
        (
            WebhookHeaders {
                timestamp: None,
                ..full
            },
            WEBHOOK_TIMESTAMP_HEADER,
        ),
        (
            WebhookHeaders {
                signature: None,
                ..full
            },
            WEBHOOK_SIGNATURE_HEADER,
        ),
    ];
    for (headers, name) in cases {
        assert_eq!(
            verifier(v).verify_at(headers, v.payload, at(v.timestamp)),
            Err(WebhookError::MissingHeader(name))
        );
    }
    assert_eq!(
        verifier(v).verify_at(WebhookHeaders::default(), v.payload, at(v.timestamp)),
        Err(WebhookError::MissingHeader(WEBHOOK_ID_HEADER))
    );
}

#[test]
fn malformed_headers_are_named() {
    let v = &VECTORS[0];
    let ts = "1614265330";
    let malformed = |name| Err(WebhookError::MalformedHeader(name));
    for id in ["", "msg 1", "msg\u{e9}", "a\tb"] {
        assert_eq!(
            check(v, id, ts, v.signature, v.payload, v.timestamp),
            malformed(WEBHOOK_ID_HEADER),
            "{id:?}"
        );
    }
    for ts in [
        "",
        "soon",
        "-1614265330",
        "+1614265330",
        "1614265330.0",
        "99999999999999999999",
        " 1614265330",
    ] {
        assert_eq!(
            check(v, v.id, ts, v.signature, v.payload, v.timestamp),
            malformed(WEBHOOK_TIMESTAMP_HEADER),
            "{ts:?}"
        );
    }
    for signature in ["", "   ", "v1,\u{e9}"] {
        assert_eq!(
            check(v, v.id, ts, signature, v.payload, v.timestamp),
            malformed(WEBHOOK_SIGNATURE_HEADER),
            "{signature:?}"
        );
    }
    let binary = WebhookHeaders {
        id: Some(&[0xff, 0xfe]),
        ..WebhookHeaders::new(v.id, ts, v.signature)
    };
    assert_eq!(
        verifier(v).verify_at(binary, v.payload, at(v.timestamp)),
        malformed(WEBHOOK_ID_HEADER)
    );
}

#[test]
fn a_header_of_junk_signatures_matches_nothing() {
    let v = &VECTORS[0];
    let ts = "1614265330";
    let tag = v.signature.trim_start_matches("v1,");
    for junk in [
        "junk",
        "v1,",
        "v1,!!!!",
        "v1,AAAA",
        "v2,AAAA v1a,BBBB ,,, v1",
        "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1O=", // one character short
        &format!("v2,{tag}"),                             // the right tag, another version
        &format!("v1a,{tag}"),
        &format!("V1,{tag}"),
        &format!("v1,{tag}AAAA"),
        &format!("v1 {tag}"),
    ] {
        assert_eq!(
            check(v, v.id, ts, junk, v.payload, v.timestamp),
            Err(WebhookError::NoMatchingSignature),
            "{junk:?}"
        );
    }
    // Junk around a valid entry is skipped.
    let mixed = format!("v2,xyz   junk v1,AAAA {}  v1a,{tag}", v.signature);
    assert_eq!(check(v, v.id, ts, &mixed, v.payload, v.timestamp), Ok(()));
    // An unpadded tag is accepted too.
    let unpadded = v.signature.trim_end_matches('=');
    assert_eq!(check(v, v.id, ts, unpadded, v.payload, v.timestamp), Ok(()));
}

#[test]
fn rotated_secrets_carry_both_signatures() {
    let v = &VECTORS[0];
    let old = secret(v.secret);
    let new = WebhookSecret::generate().unwrap();
    let header = signature_header(&[new.clone(), old.clone()], v.id, v.timestamp, v.payload);
    let entries: Vec<&str> = header.split(' ').collect();
    assert_eq!(entries.len(), 2);
    assert_eq!(entries[1], v.signature);
    assert_eq!(
        entries[0],
        new.sign(v.id, v.timestamp, v.payload).to_string()
    );

    let headers = WebhookHeaders::new(v.id, "1614265330", &header);
    let now = at(v.timestamp);
    // A receiver still on the old secret, one already on the new, one accepting both.
    WebhookVerifier::new(old.clone())
        .verify_at(headers, v.payload, now)
        .unwrap();
    WebhookVerifier::new(new.clone())
        .verify_at(headers, v.payload, now)
        .unwrap();
    let both = WebhookVerifier::new(new.clone()).with_secret(old.clone());
    both.verify_at(headers, v.payload, now).unwrap();
    // A receiver on the new secret, sent only the old signature, and one on neither.
    let only_old = WebhookHeaders::new(v.id, "1614265330", v.signature);
    assert_eq!(
        WebhookVerifier::new(new.clone()).verify_at(only_old, v.payload, now),
        Err(WebhookError::NoMatchingSignature)
    );
    let stranger = WebhookVerifier::new(WebhookSecret::generate().unwrap());
    assert_eq!(
        stranger.verify_at(headers, v.payload, now),
        Err(WebhookError::NoMatchingSignature)
    );
    // Many secrets (more than the verifier keeps on the stack).
    let mut many = WebhookVerifier::new(WebhookSecret::generate().unwrap());
    for _ in 0..3 {
        many = many.with_secret(WebhookSecret::generate().unwrap());
    }
    many = many.with_secret(old);
    many.verify_at(headers, v.payload, now).unwrap();
}

#[test]
fn payloads_are_any_bytes() {
    let secret = WebhookSecret::generate().unwrap();
    let payload = [0u8, 0xff, 0xfe, b'.', 0x80];
    let signature = secret.sign("msg_bin", 1_700_000_000, &payload).to_string();
    let headers = WebhookHeaders::new("msg_bin", "1700000000", &signature);
    WebhookVerifier::new(secret)
        .verify_at(headers, &payload, at(1_700_000_000))
        .unwrap();
}

#[test]
fn malformed_secrets_are_rejected() {
    for bad in [
        "",
        "whsec_",
        "whsec",
        "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaS!",
        "whsec_MfKQ 9r8G",
        "whsec_====",
        "WHSEC_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
    ] {
        assert_eq!(
            bad.parse::<WebhookSecret>().unwrap_err(),
            WebhookError::MalformedSecret,
            "{bad:?}"
        );
    }
    assert_eq!(
        WebhookSecret::from_bytes(&[]).unwrap_err(),
        WebhookError::SecretLength
    );
}

#[test]
fn secrets_are_24_to_64_bytes_and_generated_ones_32() {
    for len in [0, 1, 16, 23, 65, 128] {
        assert_eq!(
            WebhookSecret::from_bytes(&vec![7; len]).unwrap_err(),
            WebhookError::SecretLength,
            "{len} bytes"
        );
    }
    for len in [24, 32, 64] {
        assert!(
            WebhookSecret::from_bytes(&vec![7; len]).is_ok(),
            "{len} bytes"
        );
    }
    // 16 bytes written as whsec_ + base64: well formed, but too short.
    assert_eq!(
        "whsec_AAAAAAAAAAAAAAAAAAAAAA=="
            .parse::<WebhookSecret>()
            .unwrap_err(),
        WebhookError::SecretLength
    );
    assert_eq!(WebhookSecret::generate().unwrap().key_bytes().len(), 32);
}

#[test]
fn secrets_show_no_material() {
    let s = secret(VECTORS[0].secret);
    let shown = format!("{s:?} {:?}", WebhookVerifier::new(s.clone()));
    assert!(!shown.contains("MfKQ"), "{shown}");
    assert_eq!(format!("{s:?}"), "WebhookSecret([redacted])");
    assert_eq!(s.expose().as_str(), VECTORS[0].secret);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn arbitrary_secrets_never_panic(text in ".*", bytes in proptest::collection::vec(any::<u8>(), 0..80)) {
        let _ = text.parse::<WebhookSecret>();
        let _ = format!("whsec_{text}").parse::<WebhookSecret>();
        if let Ok(secret) = WebhookSecret::from_bytes(&bytes) {
            let back: WebhookSecret = secret.expose().parse().unwrap();
            prop_assert_eq!(back.key_bytes(), bytes.as_slice());
        }
    }

    #[test]
    fn arbitrary_headers_never_panic(
        id in proptest::option::of(proptest::collection::vec(any::<u8>(), 0..40)),
        timestamp in proptest::option::of(prop_oneof![
            "[0-9]{0,22}".prop_map(String::into_bytes),
            proptest::collection::vec(any::<u8>(), 0..24),
        ]),
        signature in proptest::option::of(prop_oneof![
            "(v[0-9a-z]{0,2},[A-Za-z0-9+/=]{0,50} ?){0,4}".prop_map(String::into_bytes),
            proptest::collection::vec(any::<u8>(), 0..120),
        ]),
        payload in proptest::collection::vec(any::<u8>(), 0..64),
        now in any::<i64>(),
        tolerance in any::<u64>(),
    ) {
        let verifier = WebhookVerifier::new(WebhookSecret::from_bytes(b"a key of twenty-four bytes").unwrap())
            .tolerance(Duration::from_secs(tolerance));
        let headers = WebhookHeaders {
            id: id.as_deref(),
            timestamp: timestamp.as_deref(),
            signature: signature.as_deref(),
        };
        let now = DateTime::from_timestamp(now / 1_000_000, 0).unwrap_or_default();
        // Garbage never verifies (the tag is 256 bits).
        prop_assert!(verifier.verify_at(headers, &payload, now).is_err());
    }

    #[test]
    fn signing_round_trips_and_any_flipped_byte_fails(
        key in proptest::collection::vec(any::<u8>(), 24..=64),
        id in "[!-~]{1,40}",
        timestamp in 0i64..4_000_000_000,
        payload in proptest::collection::vec(any::<u8>(), 1..200),
        flip in any::<prop::sample::Index>(),
    ) {
        let secret = WebhookSecret::from_bytes(&key).unwrap();
        let signature = secret.sign(&id, timestamp, &payload).to_string();
        let ts = timestamp.to_string();
        let verifier = WebhookVerifier::new(secret);
        let now = DateTime::from_timestamp(timestamp, 0).unwrap();
        prop_assert_eq!(
            verifier.verify_at(WebhookHeaders::new(&id, &ts, &signature), &payload, now),
            Ok(())
        );
        let mut tampered = payload.clone();
        tampered[flip.index(payload.len())] ^= 0x01;
        prop_assert_eq!(
            verifier.verify_at(WebhookHeaders::new(&id, &ts, &signature), &tampered, now),
            Err(WebhookError::NoMatchingSignature)
        );
    }
}
