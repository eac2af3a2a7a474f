//! Property tests of the pure delivery rules (`magic_link::webhooks::rules`): `Retry-After`
//! parsing over garbage, the retry schedule's bounds, the 410 and lease rules.

use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use magic_link::webhooks::rules::{
    accepts_attempt, honours_retry_after, lease_until, next_step, parse_retry_after, retry_delay,
    step_to_apply, RetryAfterError, MAX_LEASE, MAX_RETRY_AFTER_LEN, MIN_LEASE,
};
use magic_link::webhooks::{
    Attempt, AttemptOutcome, DeliveryStatus, Endpoint, FailReason, NextStep, RetrySchedule,
    TransportFailure, WebhookSecret,
};
use magic_link::AccountId;
use proptest::prelude::*;

/// A time between 1970 and about 2100, in whole seconds.
fn time() -> impl Strategy<Value = DateTime<Utc>> {
    (0i64..4_102_444_800).prop_map(|s| DateTime::from_timestamp(s, 0).unwrap())
}

fn schedule() -> impl Strategy<Value = RetrySchedule> {
    proptest::collection::vec(0u64..200_000, 0..10)
        .prop_map(|secs| RetrySchedule::new(secs.into_iter().map(Duration::from_secs).collect()))
}

fn outcome() -> impl Strategy<Value = AttemptOutcome> {
    prop_oneof![
        4 => any::<u16>().prop_map(|code| AttemptOutcome::Status { code }),
        4 => proptest::sample::select(vec![200u16, 204, 299, 410, 429, 502, 503, 504, 500, 301])
            .prop_map(|code| AttemptOutcome::Status { code }),
        1 => Just(AttemptOutcome::Timeout),
        1 => prop_oneof![
            Just(TransportFailure::Refused),
            Just(TransportFailure::Tls),
            Just(TransportFailure::Blocked),
            Just(TransportFailure::Other),
        ]
        .prop_map(|failure| AttemptOutcome::Transport { failure }),
    ]
}

fn retry_after() -> impl Strategy<Value = Option<String>> {
    proptest::option::of(prop_oneof![
        any::<u64>().prop_map(|n| n.to_string()),
        any::<String>(),
        "[0-9 ]{0,30}",
    ])
}

fn status() -> impl Strategy<Value = DeliveryStatus> {
    (time(), any::<bool>()).prop_flat_map(|(at, exhausted)| {
        let reason = if exhausted {
            FailReason::Exhausted
        } else {
            FailReason::EndpointDisabled
        };
        prop_oneof![
            Just(DeliveryStatus::Pending {
                next_attempt_at: at
            }),
            Just(DeliveryStatus::Delivered { at }),
            Just(DeliveryStatus::Failed { at, reason }),
        ]
    })
}

fn next() -> impl Strategy<Value = NextStep> {
    (time(), 1u64..5).prop_flat_map(|(at, version)| {
        prop_oneof![
            Just(NextStep::Delivered),
            Just(NextStep::RetryAt(at)),
            Just(NextStep::GiveUp),
            Just(NextStep::DisableEndpoint {
                endpoint_version: version
            }),
        ]
    })
}

/// An endpoint at `version`, all set at one instant: only the version tells them apart.
fn endpoint(version: u64) -> Endpoint {
    let secret = WebhookSecret::from_bytes(&[9; 24]).unwrap();
    let mut endpoint = Endpoint::new(
        AccountId::new(),
        "https://example.com/h",
        vec![secret],
        DateTime::from_timestamp(1_750_000_000, 0).unwrap(),
    )
    .unwrap();
    endpoint.version = version;
    endpoint
}

fn later(now: DateTime<Utc>, delay: Duration) -> DateTime<Utc> {
    TimeDelta::from_std(delay)
        .ok()
        .and_then(|d| now.checked_add_signed(d))
        .unwrap_or(DateTime::<Utc>::MAX_UTC)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn retry_after_never_panics_on_any_text(value in any::<String>(), now in time()) {
        let parsed = parse_retry_after(&value, now);
        if value.len() > MAX_RETRY_AFTER_LEN {
            prop_assert_eq!(parsed, Err(RetryAfterError::TooLong { max: MAX_RETRY_AFTER_LEN }));
        }
    }

    #[test]
    fn retry_after_never_panics_on_any_bytes(
        bytes in proptest::collection::vec(any::<u8>(), 0..80),
        now in time(),
    ) {
        let value = String::from_utf8_lossy(&bytes);
        let _ = parse_retry_after(&value, now);
    }

    #[test]
    fn retry_after_reads_delay_seconds(n in any::<u64>(), now in time()) {
        prop_assert_eq!(parse_retry_after(&n.to_string(), now), Ok(Duration::from_secs(n)));
        prop_assert_eq!(
            parse_retry_after(&format!(" {n} "), now),
            Ok(Duration::from_secs(n))
        );
        prop_assert_eq!(
            parse_retry_after(&format!("-{n}"), now),
            Err(RetryAfterError::Malformed)
        );
    }

    #[test]
    fn retry_after_reads_every_http_date_form(
        now in time(),
        offset in -10_000_000i64..10_000_000,
        form in 0usize..3,
    ) {
        let date = now + TimeDelta::seconds(offset);
        let format = [
            "%a, %d %b %Y %H:%M:%S GMT", // IMF-fixdate
            "%A, %d-%b-%y %H:%M:%S GMT", // RFC 850
            "%a %b %e %H:%M:%S %Y",      // asctime
        ][form];
        // RFC 850 has a two-digit year, read with chrono's pivot (70-99 are 19xx, 00-69 are 20xx):
        // keep to the years it reads back as themselves.
        prop_assume!(form != 1 || (1970..2070).contains(&date.format("%Y").to_string().parse::<i32>().unwrap()));
        let expected = Duration::from_secs(u64::try_from(offset.max(0)).unwrap());
        prop_assert_eq!(
            parse_retry_after(&date.format(format).to_string(), now),
            Ok(expected)
        );
    }

    /// The schedule decides how many attempts a delivery gets; `Retry-After` only delays
    /// retries, never adds one, never shortens the schedule's delay and never goes past
    /// `max_retry_after` (unless the schedule itself asks for more).
    #[test]
    fn the_schedule_is_never_retried_past_its_end(
        schedule in schedule(),
        number in 1u32..14,
        outcome in outcome(),
        retry_after in retry_after(),
        version in 1u64..1_000,
        now in time(),
        max_retry_after in (0u64..1_000_000).prop_map(Duration::from_secs),
    ) {
        let attempt = Attempt { number, at: now, outcome: outcome.clone() };
        let next = next_step(&attempt, retry_after.as_deref(), version, &schedule, max_retry_after);
        match outcome {
            AttemptOutcome::Status { code: 200..=299 } => prop_assert_eq!(next, NextStep::Delivered),
            AttemptOutcome::Status { code: 410 } => prop_assert_eq!(
                next,
                NextStep::DisableEndpoint { endpoint_version: version }
            ),
            outcome => {
                if number >= schedule.max_attempts() {
                    prop_assert_eq!(next, NextStep::GiveUp);
                } else {
                    let delay = schedule.delay_after(number).unwrap();
                    let honoured = matches!(outcome, AttemptOutcome::Status { code } if honours_retry_after(code));
                    let latest = if honoured { delay.max(max_retry_after) } else { delay };
                    let NextStep::RetryAt(at) = next else {
                        return Err(TestCaseError::fail(format!("expected a retry, got {next:?}")));
                    };
                    prop_assert!(later(now, delay) <= at && at <= later(now, latest), "{at} for {delay:?}");
                }
            }
        }
    }

    /// A delivery that keeps failing gets exactly `max_attempts` attempts, whatever the
    /// receiver answers in `Retry-After`.
    #[test]
    fn a_failing_delivery_gets_exactly_max_attempts(
        schedule in schedule(),
        replies in proptest::collection::vec(
            (proptest::sample::select(vec![429u16, 500, 502, 503, 504, 404]), retry_after()),
            12,
        ),
        start in time(),
    ) {
        let mut now = start;
        let mut attempts = 0;
        for (number, (code, retry_after)) in (1u32..).zip(&replies) {
            attempts = number;
            let attempt = Attempt { number, at: now, outcome: AttemptOutcome::Status { code: *code } };
            match next_step(&attempt, retry_after.as_deref(), 1, &schedule, Duration::from_secs(3600)) {
                NextStep::RetryAt(at) => {
                    prop_assert!(at >= now);
                    now = at;
                }
                NextStep::GiveUp => break,
                other => return Err(TestCaseError::fail(format!("{other:?} after a {code}"))),
            }
        }
        prop_assert_eq!(attempts, schedule.max_attempts().min(12));
    }

    #[test]
    fn retry_delay_never_shortens_the_schedule(
        schedule in schedule(),
        number in 0u32..14,
        asked in proptest::option::of((0u64..10_000_000).prop_map(Duration::from_secs)),
        max in (0u64..1_000_000).prop_map(Duration::from_secs),
    ) {
        let delay = retry_delay(&schedule, number, asked, max);
        prop_assert_eq!(delay.is_some(), number >= 1 && number < schedule.max_attempts());
        if let Some(delay) = delay {
            let planned = schedule.delay_after(number).unwrap();
            prop_assert!(delay >= planned);
            prop_assert!(delay <= planned.max(max));
        }
    }

    #[test]
    fn a_gone_only_disables_the_endpoint_it_came_from(
        next in next(),
        current in proptest::option::of(1u64..5),
        at in time(),
    ) {
        let current = current.map(endpoint);
        let applied = step_to_apply(next, current.as_ref(), at);
        match next {
            NextStep::DisableEndpoint { endpoint_version }
                if current.as_ref().is_some_and(|e| e.version != endpoint_version) =>
            {
                prop_assert_eq!(applied, NextStep::RetryAt(at));
            }
            other => prop_assert_eq!(applied, other),
        }
    }

    #[test]
    fn only_the_current_lease_records_except_a_success(
        status in status(),
        current in any::<bool>(),
        next in next(),
    ) {
        let accepted = accepts_attempt(&status, current, next);
        let delivered = matches!(status, DeliveryStatus::Delivered { .. });
        let pending = matches!(status, DeliveryStatus::Pending { .. });
        if next == NextStep::Delivered {
            prop_assert_eq!(accepted, !delivered);
        } else {
            prop_assert_eq!(accepted, current && pending);
        }
    }

    #[test]
    fn leases_stay_within_bounds(now in time(), secs in any::<u64>(), nanos in 0u32..1_000_000_000) {
        let until = lease_until(now, Duration::new(secs, nanos));
        prop_assert!(until >= later(now, MIN_LEASE));
        prop_assert!(until <= later(now, MAX_LEASE));
    }
}
