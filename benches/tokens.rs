//! Token signing and verification, beside a floor in the same run: a pre-keyed
//! `Hmac<Sha256>` state, cloned, fed the same already-decoded bytes (context and body) and
//! checked with `verify_slice`. Personal link tokens are measured with a 16-byte and a
//! 128-byte reference, each beside its own floor (its body is 46 or 158 bytes). That floor is the HMAC work alone; verifying a token adds the
//! version and length checks, base64url decoding, the key lookup and the expiry check.
//!
//! Run: `cargo bench --bench tokens -- --warm-up-time 1 --measurement-time 3`.
//!
//! Before the criterion groups it prints a paired table: the cases run in alternation, in
//! short batches, and each keeps its fastest batch. On a shared machine, where criterion's
//! back-to-back groups can each meet a different load, that is what the ratios are taken from.

use std::hint::black_box;
use std::time::Instant;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use chrono::{DateTime, Utc};
use criterion::{criterion_group, criterion_main, Criterion};
use hmac::{Hmac, KeyInit, Mac};
use magic_link::tokens::{Keyring, LinkToken, PersonalToken, SessionToken, SigningKey};
use magic_link::{AccountId, LinkId, Reference, SessionId};
use sha2::Sha256;

const KEY: [u8; 32] = [0x42; 32];

fn now() -> DateTime<Utc> {
    DateTime::from_timestamp(1_900_000_000, 0).unwrap_or_default()
}

/// The HMAC floor for one token: the decoded body, the full 32-byte tag over
/// `context || body`, and the pre-keyed state.
struct Floor {
    keyed: Hmac<Sha256>,
    context: &'static [u8],
    body: Vec<u8>,
    tag: Vec<u8>,
}

impl Floor {
    fn new(context: &'static [u8], token: &str, tag_at: usize) -> Self {
        let keyed = <Hmac<Sha256> as KeyInit>::new_from_slice(&KEY).expect("any key length");
        let body = URL_SAFE_NO_PAD.decode(token).expect("valid token")[..tag_at].to_vec();
        let mut mac = keyed.clone();
        mac.update(context);
        mac.update(&body);
        let tag = mac.finalize().into_bytes().to_vec();
        Self {
            keyed,
            context,
            body,
            tag,
        }
    }

    fn check(&self, body: &[u8], tag: &[u8]) -> bool {
        let mut mac = self.keyed.clone();
        mac.update(self.context);
        mac.update(body);
        mac.verify_slice(tag).is_ok()
    }
}

fn tokens(c: &mut Criterion) {
    let mut keyring = Keyring::new(1, SigningKey::from_bytes(KEY));
    // A keyring mid-rotation: the token's key is not the newest.
    keyring
        .insert(2, SigningKey::from_bytes([7; 32]))
        .expect("new id");
    keyring
        .insert(0, SigningKey::from_bytes([8; 32]))
        .expect("new id");
    let signer = Keyring::new(1, SigningKey::from_bytes(KEY));

    let link = LinkToken::new(
        LinkId::new(),
        Some(DateTime::from_timestamp(2_000_000_000, 0).unwrap_or_default()),
    );
    let link_token = link.sign(&signer);
    let mut forged = link_token.clone();
    let last = if forged.ends_with('A') { "B" } else { "A" };
    forged.replace_range(LinkToken::LEN - 1.., last);
    let truncated = &link_token[..LinkToken::LEN - 1];
    let mut bad_char = link_token.clone();
    bad_char.replace_range(30..31, "*");
    let session = SessionToken::new(
        SessionId::new(),
        AccountId::new(),
        DateTime::from_timestamp(2_000_000_000, 0).unwrap_or_default(),
    );
    let session_token = session.sign(&signer);
    assert!(LinkToken::verify(&link_token, &keyring, now()).is_ok());
    assert!(LinkToken::verify(&forged, &keyring, now()).is_err());
    assert!(SessionToken::verify(&session_token, &keyring, now()).is_ok());
    let personal = |reference: &str| {
        let reference = Reference::new(reference).expect("valid reference");
        let claims = PersonalToken::new(
            LinkId::new(),
            Some(DateTime::from_timestamp(2_000_000_000, 0).unwrap_or_default()),
            reference,
        );
        let token = claims.sign(&signer);
        assert!(PersonalToken::verify(&token, &keyring, now()).is_ok());
        (claims, token)
    };
    let (personal_16, personal_16_token) = personal("cus_0123456789ab");
    let (personal_128, personal_128_token) = personal(&"0123456789abcdef".repeat(8));
    assert_eq!(personal_16.reference().len(), 16);
    assert_eq!(personal_128_token.len(), PersonalToken::MAX_LEN);

    let t = now();
    let link_floor = Floor::new(b"magic-link/v1/link", &link_token, 29);
    let session_floor = Floor::new(b"magic-link/v1/session", &session_token, 45);
    let personal_16_floor = Floor::new(b"magic-link/v1/personal", &personal_16_token, 30 + 16);
    let personal_128_floor = Floor::new(b"magic-link/v1/personal", &personal_128_token, 30 + 128);
    assert!(personal_16_floor.check(&personal_16_floor.body, &personal_16_floor.tag));
    assert!(personal_128_floor.check(&personal_128_floor.body, &personal_128_floor.tag));
    assert!(link_floor.check(&link_floor.body, &link_floor.tag));

    if std::env::args().any(|a| a == "--bench") {
        let cases: Vec<Case<'_>> = vec![
            (
                "link floor: keyed HMAC clone + verify_slice",
                Box::new(|| {
                    link_floor.check(black_box(&link_floor.body), black_box(&link_floor.tag))
                }),
            ),
            (
                "link verify valid",
                Box::new(|| LinkToken::verify(black_box(&link_token), &keyring, t).is_ok()),
            ),
            (
                "link reject forged",
                Box::new(|| LinkToken::verify(black_box(&forged), &keyring, t).is_ok()),
            ),
            (
                "link reject truncated",
                Box::new(|| LinkToken::verify(black_box(truncated), &keyring, t).is_ok()),
            ),
            (
                "link reject bad character",
                Box::new(|| LinkToken::verify(black_box(&bad_char), &keyring, t).is_ok()),
            ),
            (
                "link sign",
                Box::new(|| !black_box(&link).sign(&keyring).is_empty()),
            ),
            (
                "session floor: keyed HMAC clone + verify_slice",
                Box::new(|| {
                    session_floor.check(
                        black_box(&session_floor.body),
                        black_box(&session_floor.tag),
                    )
                }),
            ),
            (
                "session verify valid",
                Box::new(|| SessionToken::verify(black_box(&session_token), &keyring, t).is_ok()),
            ),
            (
                "session sign",
                Box::new(|| !black_box(&session).sign(&keyring).is_empty()),
            ),
            (
                "personal-16 floor: keyed HMAC clone + verify_slice",
                Box::new(|| {
                    personal_16_floor.check(
                        black_box(&personal_16_floor.body),
                        black_box(&personal_16_floor.tag),
                    )
                }),
            ),
            (
                "personal-16 verify valid",
                Box::new(|| {
                    PersonalToken::verify(black_box(&personal_16_token), &keyring, t).is_ok()
                }),
            ),
            (
                "personal-16 sign",
                Box::new(|| !black_box(&personal_16).sign(&keyring).is_empty()),
            ),
            (
                "personal-128 floor: keyed HMAC clone + verify_slice",
                Box::new(|| {
                    personal_128_floor.check(
                        black_box(&personal_128_floor.body),
                        black_box(&personal_128_floor.tag),
                    )
                }),
            ),
            (
                "personal-128 verify valid",
                Box::new(|| {
                    PersonalToken::verify(black_box(&personal_128_token), &keyring, t).is_ok()
                }),
            ),
            (
                "personal-128 sign",
                Box::new(|| !black_box(&personal_128).sign(&keyring).is_empty()),
            ),
        ];
        paired(&cases);
    }

    let mut g = c.benchmark_group("link_token");
    g.bench_function("floor: keyed HMAC clone + verify_slice", |b| {
        b.iter(|| link_floor.check(black_box(&link_floor.body), black_box(&link_floor.tag)))
    });
    g.bench_function("sign", |b| b.iter(|| black_box(&link).sign(&keyring)));
    g.bench_function("verify valid", |b| {
        b.iter(|| LinkToken::verify(black_box(&link_token), &keyring, t))
    });
    g.bench_function("reject forged", |b| {
        b.iter(|| LinkToken::verify(black_box(&forged), &keyring, t))
    });
    g.bench_function("reject malformed (truncated)", |b| {
        b.iter(|| LinkToken::verify(black_box(truncated), &keyring, t))
    });
    g.bench_function("reject malformed (bad character)", |b| {
        b.iter(|| LinkToken::verify(black_box(&bad_char), &keyring, t))
    });
    g.finish();

    let mut g = c.benchmark_group("session_token");
    g.bench_function("floor: keyed HMAC clone + verify_slice", |b| {
        b.iter(|| {
            session_floor.check(
                black_box(&session_floor.body),
                black_box(&session_floor.tag),
            )
        })
    });
    g.bench_function("sign", |b| b.iter(|| black_box(&session).sign(&keyring)));
    g.bench_function("verify valid", |b| {
        b.iter(|| SessionToken::verify(black_box(&session_token), &keyring, t))
    });
    g.finish();

    let mut g = c.benchmark_group("personal_token");
    for (name, claims, token, floor) in [
        ("16", &personal_16, &personal_16_token, &personal_16_floor),
        (
            "128",
            &personal_128,
            &personal_128_token,
            &personal_128_floor,
        ),
    ] {
        g.bench_function(
            format!("floor ({name}-byte reference): keyed HMAC clone + verify_slice"),
            |b| b.iter(|| floor.check(black_box(&floor.body), black_box(&floor.tag))),
        );
        g.bench_function(format!("sign ({name}-byte reference)"), |b| {
            b.iter(|| black_box(claims).sign(&keyring))
        });
        g.bench_function(format!("verify valid ({name}-byte reference)"), |b| {
            b.iter(|| PersonalToken::verify(black_box(token), &keyring, t))
        });
    }
    g.finish();
}

/// A named case of the paired table.
type Case<'a> = (&'static str, Box<dyn Fn() -> bool + 'a>);

/// Runs the cases in alternation, 200 rounds of 2,000 calls each, and prints each case's
/// fastest round and its ratio to the floor of its kind (the first case naming it).
fn paired(cases: &[Case<'_>]) {
    const ROUNDS: usize = 200;
    const CALLS: u32 = 2_000;
    let mut best = vec![f64::MAX; cases.len()];
    for _ in 0..ROUNDS {
        for (i, (_, f)) in cases.iter().enumerate() {
            let start = Instant::now();
            for _ in 0..CALLS {
                black_box(f());
            }
            let per_call = start.elapsed().as_secs_f64() * 1e9 / f64::from(CALLS);
            best[i] = best[i].min(per_call);
        }
    }
    println!("paired, fastest of {ROUNDS} rounds of {CALLS} calls:");
    for (i, (name, _)) in cases.iter().enumerate() {
        let kind = name.split(' ').next().unwrap_or_default();
        let floor = cases
            .iter()
            .position(|(n, _)| n.starts_with(kind) && n.contains("floor"))
            .map_or(f64::NAN, |f| best[f]);
        println!(
            "  {name:48} {:8.1} ns  {:5.2}x floor",
            best[i],
            best[i] / floor
        );
    }
}

criterion_group!(benches, tokens);
criterion_main!(benches);
