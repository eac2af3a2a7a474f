//! Signed return URLs: the committed vectors both ways, an independent recomputation, the
//! vectors checked by Python's standard library, and property tests.

use std::time::Duration;

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use chrono::{DateTime, Utc};
use hmac::{Hmac, KeyInit, Mac};
use magic_link::returns::{
    ReturnError, ReturnOrigin, ReturnParams, ReturnSecret, ReturnSecrets, ReturnStatus, ReturnUrl,
    ReturnVerifier, VerifiedReturn,
};
use magic_link::{LinkId, Outcome, Reference, SessionId};
use proptest::prelude::*;
use serde_json::Value;
use sha2::Sha256;

fn vectors() -> Value {
    serde_json::from_str(include_str!("vectors/returns.json")).unwrap()
}

fn at(seconds: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(seconds, 0).unwrap()
}

fn secret_of(v: &Value, field: &str) -> ReturnSecret {
    v[field].as_str().unwrap().parse().unwrap()
}

fn verifier(v: &Value) -> (ReturnVerifier, DateTime<Utc>) {
    let verifier = ReturnVerifier::new(secret_of(v, "secret")).tolerance(Duration::from_secs(
        v["tolerance_seconds"].as_u64().unwrap(),
    ));
    (verifier, at(v["now"].as_i64().unwrap()))
}

fn outcome(text: &str) -> Outcome {
    Outcome::ALL
        .into_iter()
        .find(|o| o.as_str() == text)
        .unwrap()
}

fn params_of(p: &Value) -> ReturnParams {
    ReturnParams {
        session: p["session_id"].as_str().unwrap().parse().unwrap(),
        link: p["link_id"].as_str().unwrap().parse().unwrap(),
        reference: p["reference"].as_str().map(|r| Reference::new(r).unwrap()),
        status: match p["status"].as_str().unwrap() {
            "completed" => ReturnStatus::Completed,
            "quit" => ReturnStatus::Quit,
            other => panic!("{other}"),
        },
        outcome: p["outcome"].as_str().map(outcome),
        timestamp: p["timestamp"].as_i64().unwrap(),
    }
}

fn error_of(v: &Value) -> ReturnError {
    let parameter = || -> &'static str {
        match v["parameter"].as_str().unwrap() {
            "session_id" => "session_id",
            "link_id" => "link_id",
            "reference" => "reference",
            "status" => "status",
            "outcome" => "outcome",
            "timestamp" => "timestamp",
            "signature" => "signature",
            other => panic!("{other}"),
        }
    };
    match v["error"].as_str().unwrap() {
        "malformed" => ReturnError::Malformed,
        "missing_parameter" => ReturnError::MissingParameter(parameter()),
        "duplicate_parameter" => ReturnError::DuplicateParameter(parameter()),
        "signature_not_last" => ReturnError::SignatureNotLast,
        "bad_signature" => ReturnError::BadSignature,
        "invalid_parameter" => ReturnError::InvalidParameter(parameter()),
        "timestamp_too_old" => ReturnError::TimestampTooOld,
        "timestamp_too_new" => ReturnError::TimestampTooNew,
        other => panic!("{other}"),
    }
}

fn same(verified: &VerifiedReturn, params: &ReturnParams) -> bool {
    ReturnParams::from(verified.clone()) == *params
}

#[test]
fn valid_vectors_sign_byte_for_byte_and_verify() {
    let v = vectors();
    assert_eq!(v["context"], "magic-link/v1/return\n");
    let secret = secret_of(&v, "secret");
    let (verifier, now) = verifier(&v);
    let cases = v["valid"].as_array().unwrap();
    assert!(cases.len() >= 4);
    for case in cases {
        let name = case["name"].as_str().unwrap();
        let url = ReturnUrl::parse(case["return_url"].as_str().unwrap()).unwrap();
        assert_eq!(url.as_str(), case["return_url"], "{name}: kept as given");
        let params = params_of(&case["params"]);
        let signed = url.signed(&params, &secret);
        assert_eq!(signed, case["url"].as_str().unwrap(), "{name}");

        let verified = verifier.verify_at(&signed, now).unwrap();
        assert!(same(&verified, &params), "{name}: {verified:?}");
        // As a request target and as a bare query.
        let (_, query) = signed.split_once('?').unwrap();
        let path_start = signed.find("://").unwrap() + 3;
        let target = &signed[path_start + signed[path_start..].find('/').unwrap()..];
        for form in [target, query] {
            let verified = verifier.verify_at(form, now).unwrap();
            assert!(same(&verified, &params), "{name}: {form}");
        }
    }
}

#[test]
fn invalid_vectors_fail_with_their_error() {
    let v = vectors();
    let (verifier, now) = verifier(&v);
    let cases = v["invalid"].as_array().unwrap();
    for case in cases {
        let name = case["name"].as_str().unwrap();
        let url = case["url"].as_str().unwrap();
        assert_eq!(
            verifier.verify_at(url, now),
            Err(error_of(case)),
            "{name}: {url}"
        );
    }
    // The kinds the brief names are all there.
    let names: Vec<&str> = cases.iter().map(|c| c["name"].as_str().unwrap()).collect();
    for needed in [
        "session_id changed",
        "link_id changed",
        "reference changed",
        "status changed",
        "outcome changed",
        "timestamp changed",
        "owner parameter changed",
        "signed with another secret",
        "duplicate session_id (signed)",
        "signature not last",
        "too old",
        "too new",
        "unknown version",
    ] {
        assert!(names.contains(&needed), "{needed}");
    }
}

#[test]
fn the_other_secret_verifies_its_own_and_rotation_accepts_both() {
    let v = vectors();
    let (_, now) = verifier(&v);
    let other = secret_of(&v, "other_secret");
    let forged = v["invalid"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "signed with another secret")
        .unwrap()["url"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(ReturnVerifier::new(other.clone())
        .verify_at(&forged, now)
        .is_ok());

    let mut secrets = ReturnSecrets::new(secret_of(&v, "secret"));
    let original = v["valid"][1]["url"].as_str().unwrap();
    secrets.rotate(other.clone());
    let both = ReturnVerifier::new(secrets.clone());
    assert!(both.verify_at(original, now).is_ok());
    assert!(both.verify_at(&forged, now).is_ok());
    secrets.rotate(ReturnSecret::generate().unwrap());
    assert_eq!(
        ReturnVerifier::new(secrets.clone()).verify_at(original, now),
        Err(ReturnError::BadSignature),
        "the secret before the previous one is dropped"
    );
    let with = ReturnVerifier::new(secrets).with_secret(secret_of(&v, "secret"));
    assert!(with.verify_at(original, now).is_ok());
}

#[test]
fn recomputes_a_signature_from_the_documented_rule() {
    let v = vectors();
    let case = &v["valid"][1];
    let text = v["secret"].as_str().unwrap();
    let key = STANDARD
        .decode(text.strip_prefix("whsec_").unwrap())
        .unwrap();
    let url = case["url"].as_str().unwrap();
    // Q: after the first `?`, up to the `&signature=` before the last parameter.
    let query = url.split_once('?').unwrap().1;
    let (q, last) = query.rsplit_once('&').unwrap();
    assert!(last.starts_with("signature="));
    assert_eq!(q, case["signed_content"].as_str().unwrap());
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(&key).unwrap();
    mac.update(b"magic-link/v1/return\n");
    mac.update(q.as_bytes());
    let tag = mac.finalize().into_bytes();
    let signature = format!("v1,{}", URL_SAFE_NO_PAD.encode(tag));
    assert_eq!(signature, case["signature"].as_str().unwrap());
    assert_eq!(last, format!("signature={}", signature.replace(',', "%2C")));
}

#[test]
fn python_standard_library_reproduces_the_vectors() {
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/vectors/check_returns.py"
    );
    let vectors = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/vectors/returns.json");
    let output = match std::process::Command::new("python3")
        .arg(script)
        .arg(vectors)
        .output()
    {
        Ok(output) => output,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            eprintln!("skipped: python3 is not installed (CI has it)");
            return;
        }
        Err(e) => panic!("running python3: {e}"),
    };
    assert!(
        output.status.success(),
        "check_returns.py failed:\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn the_signature_comma_may_arrive_encoded_or_not() {
    let v = vectors();
    let (verifier, now) = verifier(&v);
    let url = v["valid"][0]["url"].as_str().unwrap();
    for comma in ["%2c", ","] {
        let changed = url.replace("signature=v1%2C", &format!("signature=v1{comma}"));
        assert!(verifier.verify_at(&changed, now).is_ok(), "{changed}");
    }
    // A fragment after the query is ignored, as browsers do not send it.
    assert!(verifier.verify_at(&format!("{url}#x"), now).is_ok());
}

#[test]
fn tolerance_and_system_clock() {
    let secret = ReturnSecret::generate().unwrap();
    let url = ReturnUrl::parse("https://shop.example/done").unwrap();
    let params = ReturnParams {
        session: SessionId::new(),
        link: LinkId::new(),
        reference: None,
        status: ReturnStatus::Quit,
        outcome: None,
        timestamp: Utc::now().timestamp(),
    };
    let signed = url.signed(&params, &secret);
    let verifier = ReturnVerifier::new(secret);
    assert!(same(&verifier.verify(&signed).unwrap(), &params));
    let later = at(params.timestamp + 3600);
    assert_eq!(
        verifier.verify_at(&signed, later),
        Err(ReturnError::TimestampTooOld)
    );
    let lenient = verifier.tolerance(Duration::from_secs(3600));
    assert!(lenient.verify_at(&signed, later).is_ok());
    assert_eq!(
        lenient.verify_at(&signed, at(params.timestamp - 3601)),
        Err(ReturnError::TimestampTooNew)
    );
}

fn arb_params() -> impl Strategy<Value = ReturnParams> {
    (
        any::<[u8; 16]>(),
        any::<[u8; 16]>(),
        proptest::option::of("[^\\p{Cc}]{1,40}"),
        any::<bool>(),
        proptest::option::of(0usize..3),
        prop_oneof![Just(1_900_000_000i64), i64::MIN + 1..=i64::MAX],
    )
        .prop_filter_map(
            "a valid reference",
            |(session, link, reference, quit, outcome, timestamp)| {
                let reference = match reference {
                    Some(r) => Some(Reference::new(r).ok()?),
                    None => None,
                };
                Some(ReturnParams {
                    session: SessionId::from_bytes(session),
                    link: LinkId::from_bytes(link),
                    reference,
                    status: if quit {
                        ReturnStatus::Quit
                    } else {
                        ReturnStatus::Completed
                    },
                    outcome: outcome.map(|i| Outcome::ALL[i]),
                    timestamp,
                })
            },
        )
}

fn arb_return_url() -> impl Strategy<Value = ReturnUrl> {
    prop_oneof![
        Just("https://shop.example/done".to_owned()),
        Just("https://shop.example/done?".to_owned()),
        Just("http://localhost:3000/".to_owned()),
        "[a-z0-9=&%/+.~-]{0,30}".prop_map(|q| format!("https://shop.example/r?{q}")),
        "[a-zA-Z0-9=&%/+.~ü-]{0,30}".prop_map(|p| format!("https://Shop.example/{p}")),
    ]
    .prop_filter_map("a valid return URL", |u| ReturnUrl::parse(&u).ok())
}

fn test_secret() -> ReturnSecret {
    ReturnSecret::from_bytes(&[0x5a; 32]).unwrap()
}

proptest! {
    #[test]
    fn arbitrary_text_never_panics(text in any::<String>(), now in any::<i64>()) {
        let now = DateTime::from_timestamp(now, 0).unwrap_or(DateTime::UNIX_EPOCH);
        let verifier = ReturnVerifier::new(test_secret());
        let _ = verifier.verify_at(&text, now);
        let _ = verifier.verify_at(&format!("https://shop.example/?{text}"), now);
        if let Ok(url) = ReturnUrl::parse(&text) {
            prop_assert!(url.as_str().len() <= magic_link::returns::MAX_RETURN_URL_LEN);
            prop_assert_eq!(ReturnUrl::parse(url.as_str()), Ok(url.clone()));
            prop_assert_eq!(url.origin(), ReturnOrigin::parse(url.origin().as_str()).unwrap());
        }
        if let Ok(origin) = ReturnOrigin::parse(&text) {
            prop_assert_eq!(ReturnOrigin::parse(origin.as_str()), Ok(origin.clone()));
        }
    }

    #[test]
    fn query_like_text_never_panics(text in "[a-z_=&%0-9A-F,v+]{0,200}") {
        let verifier = ReturnVerifier::new(test_secret());
        let _ = verifier.verify_at(&text, DateTime::UNIX_EPOCH);
        let _ = verifier.verify_at(&format!("{text}&signature=v1%2C{}", "A".repeat(43)), DateTime::UNIX_EPOCH);
    }

    #[test]
    fn sign_then_verify_round_trips(url in arb_return_url(), params in arb_params()) {
        let signed = url.signed(&params, &test_secret());
        prop_assert!(signed.starts_with(url.as_str()));
        // Any timestamp but i64::MIN is within an unbounded tolerance of the epoch.
        let verified = ReturnVerifier::new(test_secret())
            .tolerance(Duration::MAX)
            .verify_at(&signed, DateTime::UNIX_EPOCH);
        prop_assert!(verified.is_ok(), "{signed}: {verified:?}");
        prop_assert!(same(&verified.unwrap(), &params));
        let stranger = ReturnVerifier::new(ReturnSecret::from_bytes(&[1; 32]).unwrap())
            .tolerance(Duration::MAX);
        prop_assert_eq!(stranger.verify_at(&signed, DateTime::UNIX_EPOCH), Err(ReturnError::BadSignature));
    }

    #[test]
    fn changing_one_character_of_the_query_fails(
        url in arb_return_url(),
        params in arb_params(),
        pos in any::<prop::sample::Index>(),
        with in prop::sample::select(
            "abcxyzAZ09%+&=,-_.~/?#".chars().collect::<Vec<_>>()
        ),
    ) {
        let signed = url.signed(&params, &test_secret());
        let query_start = signed.find('?').unwrap() + 1;
        let chars: Vec<(usize, char)> = signed[query_start..].char_indices().collect();
        let (i, old) = chars[pos.index(chars.len())];
        prop_assume!(old != with);
        let mut changed = signed.clone();
        changed.replace_range(query_start + i..query_start + i + old.len_utf8(), with.encode_utf8(&mut [0; 4]));
        let verifier = ReturnVerifier::new(test_secret()).tolerance(Duration::MAX);
        match verifier.verify_at(&changed, DateTime::UNIX_EPOCH) {
            Err(_) => {}
            // Only a change the query encoding does not see (`%2C` to `%2c` or `,` in the
            // signature, which is not signed) may still verify, and then to the same values.
            Ok(verified) => {
                prop_assert!(same(&verified, &params), "{changed}");
                prop_assert!(i >= changed[query_start..].rfind("&signature=").unwrap(), "{changed}");
            }
        }
    }
}
