//! Signing and verifying a 1 KiB payload: this crate, the `standardwebhooks` crate, and the
//! floor (a pre-keyed HMAC-SHA256 of the same signed content, plus a constant-time compare
//! when verifying), on the same inputs in one run.
//!
//! `cargo bench --bench webhooks`; BENCHMARKS.md records the ratios. The bench first prints a
//! paired table (the cases in alternation, each keeping its fastest round, so that load from
//! other processes hits every case alike), then runs the criterion groups.

use std::hint::black_box;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use criterion::{criterion_group, criterion_main, Criterion};
use hmac::{Hmac, KeyInit, Mac};
use magic_link::webhooks::{signature_header, WebhookHeaders, WebhookSecret, WebhookVerifier};
use sha2::Sha256;
use subtle::ConstantTimeEq;

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const ID: &str = "msg_p5jXN8AQM9LWM0D4loKWxJek";

/// 1 KiB of JSON (UTF-8, which `standardwebhooks` requires).
fn payload() -> Vec<u8> {
    let mut body = String::from(r#"{"type":"session.completed","data":{"note":""#);
    while body.len() < 1024 - 3 {
        body.push('x');
    }
    body.push_str(r#""}}"#);
    assert_eq!(body.len(), 1024);
    body.into_bytes()
}

struct Inputs {
    payload: Vec<u8>,
    timestamp: i64,
    timestamp_text: String,
    signature: String,
    tag: [u8; 32],
    now: DateTime<Utc>,
}

fn inputs() -> Inputs {
    // Current time: `standardwebhooks` verifies against the system clock.
    let now = Utc::now();
    let timestamp = now.timestamp();
    let payload = payload();
    let secret: WebhookSecret = SECRET.parse().unwrap();
    let signature = secret.sign(ID, timestamp, &payload);
    Inputs {
        tag: *signature.as_bytes(),
        signature: signature.to_string(),
        timestamp_text: timestamp.to_string(),
        payload,
        timestamp,
        now,
    }
}

/// The floor: HMAC-SHA256 of `id.timestamp.payload` from a pre-keyed state.
fn floor_tag(keyed: &Hmac<Sha256>, timestamp: &[u8], payload: &[u8]) -> [u8; 32] {
    let mut mac = keyed.clone();
    mac.update(ID.as_bytes());
    mac.update(b".");
    mac.update(timestamp);
    mac.update(b".");
    mac.update(payload);
    mac.finalize().into_bytes().into()
}

fn bench(c: &mut Criterion) {
    let input = inputs();
    let ours: WebhookSecret = SECRET.parse().unwrap();
    let verifier = WebhookVerifier::new(ours.clone());
    let theirs = standardwebhooks::Webhook::new(SECRET).unwrap();
    let keyed = Hmac::<Sha256>::new_from_slice(ours.key_bytes()).unwrap();
    let mut headers = http::HeaderMap::new();
    headers.insert("webhook-id", ID.parse().unwrap());
    headers.insert("webhook-timestamp", input.timestamp_text.parse().unwrap());
    headers.insert("webhook-signature", input.signature.parse().unwrap());

    // The three agree before anything is timed.
    assert_eq!(
        theirs.sign(ID, input.timestamp, &input.payload).unwrap(),
        input.signature
    );
    assert_eq!(
        floor_tag(&keyed, input.timestamp_text.as_bytes(), &input.payload),
        input.tag
    );
    theirs.verify(&input.payload, &headers).unwrap();
    let our_headers = WebhookHeaders::new(ID, &input.timestamp_text, &input.signature);
    verifier
        .verify_at(our_headers, &input.payload, input.now)
        .unwrap();

    let our_sign = || {
        signature_header(
            std::slice::from_ref(&ours),
            black_box(ID),
            black_box(input.timestamp),
            black_box(&input.payload),
        )
        .len()
    };
    let their_sign = || {
        theirs
            .sign(
                black_box(ID),
                black_box(input.timestamp),
                black_box(&input.payload),
            )
            .map_or(0, |s| s.len())
    };
    let floor_sign = || {
        floor_tag(
            &keyed,
            black_box(input.timestamp_text.as_bytes()),
            black_box(&input.payload),
        )[0] as usize
    };
    let our_verify = || {
        usize::from(
            verifier
                .verify_at(
                    black_box(our_headers),
                    black_box(&input.payload),
                    black_box(input.now),
                )
                .is_ok(),
        )
    };
    let their_verify = || {
        usize::from(
            theirs
                .verify(black_box(&input.payload), black_box(&headers))
                .is_ok(),
        )
    };
    let floor_verify = || {
        let tag = floor_tag(
            &keyed,
            black_box(input.timestamp_text.as_bytes()),
            black_box(&input.payload),
        );
        usize::from(bool::from(tag.ct_eq(black_box(&input.tag))))
    };
    paired(&[
        ("sign: floor", &floor_sign),
        ("sign: magic_link", &our_sign),
        ("sign: standardwebhooks", &their_sign),
        ("verify: floor", &floor_verify),
        ("verify: magic_link", &our_verify),
        ("verify: standardwebhooks", &their_verify),
    ]);

    let mut sign = c.benchmark_group("sign_1KiB");
    sign.bench_function("magic_link", |b| {
        b.iter(|| {
            signature_header(
                std::slice::from_ref(&ours),
                black_box(ID),
                black_box(input.timestamp),
                black_box(&input.payload),
            )
        })
    });
    sign.bench_function("standardwebhooks", |b| {
        b.iter(|| {
            theirs
                .sign(
                    black_box(ID),
                    black_box(input.timestamp),
                    black_box(&input.payload),
                )
                .unwrap()
        })
    });
    sign.bench_function("floor", |b| {
        b.iter(|| {
            floor_tag(
                &keyed,
                black_box(input.timestamp_text.as_bytes()),
                black_box(&input.payload),
            )
        })
    });
    sign.finish();

    let mut verify = c.benchmark_group("verify_1KiB");
    verify.bench_function("magic_link", |b| {
        b.iter(|| {
            verifier
                .verify_at(
                    black_box(our_headers),
                    black_box(&input.payload),
                    black_box(input.now),
                )
                .unwrap()
        })
    });
    verify.bench_function("standardwebhooks", |b| {
        b.iter(|| {
            theirs
                .verify(black_box(&input.payload), black_box(&headers))
                .unwrap()
        })
    });
    verify.bench_function("floor", |b| {
        b.iter(|| {
            let tag = floor_tag(
                &keyed,
                black_box(input.timestamp_text.as_bytes()),
                black_box(&input.payload),
            );
            assert!(bool::from(tag.ct_eq(black_box(&input.tag))));
        })
    });
    verify.finish();
}

type Case<'a> = (&'a str, &'a dyn Fn() -> usize);

/// Runs the cases in alternation, 100 rounds of 500 calls each, and prints each case's fastest
/// round per call, with its ratio to the floor of its kind and the standardwebhooks ratio.
fn paired(cases: &[Case<'_>]) {
    const ROUNDS: usize = 100;
    const CALLS: u32 = 500;
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
    let find = |kind: &str, what: &str| {
        cases
            .iter()
            .position(|(n, _)| n.starts_with(kind) && n.ends_with(what))
            .map_or(f64::NAN, |i| best[i])
    };
    println!("paired, fastest of {ROUNDS} rounds of {CALLS} calls:");
    for (i, (name, _)) in cases.iter().enumerate() {
        let kind = name.split(':').next().unwrap_or_default();
        println!(
            "  {name:28} {:9.1} ns  {:5.2}x floor  {:5.2}x faster than standardwebhooks",
            best[i],
            best[i] / find(kind, "floor"),
            find(kind, "standardwebhooks") / best[i],
        );
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .sample_size(50);
    targets = bench
}
criterion_main!(benches);
